use std::collections::BTreeSet;
use std::net::IpAddr;

use super::*;

fn section(toml_text: &str) -> IdentitySection {
    toml::from_str(toml_text).expect("identity section")
}

fn ip(s: &str) -> IpAddr {
    s.parse().expect("ip")
}

fn domains(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|s| (*s).to_owned()).collect()
}

#[test]
fn members_by_tls_domain_and_by_network() {
    let s = section(
        r#"
        [tls_members]
        "Member-A.Example." = "member-a"
        [[member]]
        name = "member-b"
        domains = ["b.example"]
        networks = ["192.0.2.0/24"]
        "#,
    );
    let screen = IdentityScreen::new(&s, "node1").expect("screen");
    let tls = Transport::Tls;
    assert_eq!(
        screen
            .authenticate(tls, ip("10.0.0.1"), &domains(&["member-a.example"]))
            .expect("member a"),
        Some("member-a".to_owned())
    );
    assert_eq!(
        screen
            .authenticate(tls, ip("10.0.0.1"), &domains(&["x.test", "b.example"]))
            .expect("member b"),
        Some("member-b".to_owned())
    );
    let refused = screen
        .authenticate(tls, ip("192.0.2.1"), &domains(&["other.example"]))
        .expect_err("no member");
    assert_eq!(refused.status, 403);
    let warning = &refused.headers[0];
    assert_eq!(warning.0, HeaderName::Warning);
    assert!(warning.1.starts_with("399 node1 \""), "{}", warning.1);

    assert_eq!(
        screen
            .authenticate(Transport::Udp, ip("192.0.2.77"), &BTreeSet::new())
            .expect("network"),
        Some("member-b".to_owned())
    );
    let refused = screen
        .authenticate(Transport::Tcp, ip("198.51.100.1"), &BTreeSet::new())
        .expect_err("outside");
    assert_eq!(refused.status, 403);
}

#[test]
fn without_member_tables_every_peer_passes_unbound() {
    let screen = IdentityScreen::new(&section(""), "n").expect("screen");
    assert_eq!(
        screen.authenticate(Transport::Tls, ip("10.1.1.1"), &domains(&["x.example"])),
        Ok(None)
    );
    assert_eq!(
        screen.authenticate(Transport::Udp, ip("10.1.1.1"), &BTreeSet::new()),
        Ok(None)
    );
}

#[test]
fn pai_trust_by_network_or_tls_domain() {
    let s = section(
        r#"
        trusted_pai_sources = ["127.0.0.2/32", "2001:db8::/32"]
        trusted_pai_domains = ["Trusted.Example"]
        "#,
    );
    let screen = IdentityScreen::new(&s, "n").expect("screen");
    let none = BTreeSet::new();
    assert!(screen.pai_trusted(ip("127.0.0.2"), &none));
    assert!(screen.pai_trusted(ip("2001:db8::5"), &none));
    assert!(!screen.pai_trusted(ip("127.0.0.1"), &none));
    assert!(screen.pai_trusted(ip("127.0.0.1"), &domains(&["trusted.example"])));
    assert!(!screen.pai_trusted(ip("127.0.0.1"), &domains(&["other.example"])));
}

#[test]
fn validation_names_the_key() {
    let cases = [
        ("attestation = [\"D\"]", "identity.attestation"),
        ("sign_attestation = \"X\"", "identity.sign_attestation"),
        ("sign_standard = \"jwt\"", "identity.sign_standard"),
        ("sign_x5u = \"https://a/b.pem\"", "identity.sign_key"),
        ("sign_sources = [\"10.0.0.0/8\"]", "identity.sign_sources"),
        ("require = true", "identity.sti_ca"),
    ];
    for (text, key) in cases {
        let err = section(text).validate().expect_err(text);
        assert_eq!(err.0, key, "{text}");
    }
    section("require = true\nsti_ca = \"ca\"")
        .validate()
        .expect("valid");
}

#[test]
fn relative_paths_resolve_against_the_base() {
    let mut s = section(
        r#"
        sti_ca = "sti-ca"
        repository = "/abs/repo"
        sign_key = "keys/sp.key"
        sign_x5u = "https://sti.example/sp.pem"
        https_ca = ["ca.pem"]
        "#,
    );
    s.resolve_paths(Path::new("/etc/peering"));
    assert_eq!(s.sti_ca.as_deref(), Some(Path::new("/etc/peering/sti-ca")));
    assert_eq!(s.repository.as_deref(), Some(Path::new("/abs/repo")));
    assert_eq!(
        s.sign_key.as_deref(),
        Some(Path::new("/etc/peering/keys/sp.key"))
    );
    assert_eq!(s.https_ca, vec![PathBuf::from("/etc/peering/ca.pem")]);
}

#[test]
fn request_view_reads_the_signed_headers() {
    let text = "INVITE sip:+12155550101@b.example SIP/2.0\r\n\
        Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1\r\n\
        From: <sip:+12155550100@a.example>;tag=1\r\nTo: <sip:+12155550101@b.example>\r\n\
        Call-ID: c1\r\nCSeq: 7 INVITE\r\nDate: Sun, 22 Nov 2026 00:00:00 GMT\r\n\
        Contact: <sip:a@192.0.2.1>\r\nMax-Forwards: 70\r\nContent-Length: 3\r\n\r\nabc";
    let msg = Message::parse(bytes::Bytes::from(text)).expect("parse");
    let view = request_view(&msg);
    assert_eq!(view.from.trim(), "<sip:+12155550100@a.example>;tag=1");
    assert_eq!(view.cseq.trim(), "7 INVITE");
    assert_eq!(view.call_id.trim(), "c1");
    assert_eq!(view.contact.map(str::trim), Some("<sip:a@192.0.2.1>"));
    assert!(view.date_unix().is_some());
    assert_eq!(view.body, b"abc");
}
