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

/// The shipped example PKI: `examples/sti-ca`, `examples/sti-repo` and its
/// published demo key.
fn example(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples")
        .join(path)
}

const SAMPLE_X5U: &str = "https://sti.example.net/certs/sp-sample.pem";

fn verifying_section(extra: &str) -> IdentitySection {
    let mut s = section(&format!(
        "require = true\nsti_ca = \"sti-ca\"\nrepository = \"sti-repo\"\n{extra}"
    ));
    s.resolve_paths(&example(""));
    s
}

fn invite(extra: &str) -> Message {
    let text = format!(
        "INVITE sip:+12155550101@b.example SIP/2.0\r\n\
         Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK{n}\r\n\
         From: <sip:+12155550100@a.example;user=phone>;tag=1\r\n\
         To: <sip:+12155550101@b.example;user=phone>\r\n\
         Call-ID: {n}@a.example\r\nCSeq: 1 INVITE\r\nContact: <sip:a@192.0.2.1>\r\n\
         Max-Forwards: 70\r\n{extra}Content-Length: 0\r\n\r\n",
        n = rand::random::<u64>()
    );
    Message::parse(bytes::Bytes::from(text)).expect("parse")
}

fn route_request(msg: Message, remote: &str) -> RouteRequest {
    RouteRequest {
        request: msg,
        flow: peering_proto::proxy::Flow {
            transport: Transport::Udp,
            local: "127.0.0.1:5060".parse().expect("addr"),
            remote: remote.parse().expect("addr"),
            conn: None,
        },
        kind: RouteKind::Initial,
        peer_certificates: None,
    }
}

fn demo_signer() -> StirSigner {
    let pem = std::fs::read_to_string(example("sti-repo/DEMO-ONLY-sp-sample.key")).expect("key");
    StirSigner::new(Signer::from_pem(&pem, SAMPLE_X5U).expect("signer"))
}

fn now() -> u64 {
    peering_identity::unix_seconds(SystemTime::now())
}

async fn run(screen: &IdentityScreen, req: &RouteRequest) -> (Result<(), Rejection>, CallInfo) {
    let mut info = CallInfo::default();
    let result = screen.screen(req, &mut info).await;
    (result, info)
}

#[tokio::test]
async fn valid_shaken_identity_is_recorded_for_the_call() {
    let screen = IdentityScreen::new(&verifying_section(""), "n").expect("screen");
    let msg = invite("");
    let value = demo_signer()
        .sign_shaken(&request_view(&msg), Attestation::B, &new_origid(), now())
        .expect("sign");
    let req = route_request(invite(&format!("Identity: {value}\r\n")), "192.0.2.1:5060");
    let (result, info) = run(&screen, &req).await;
    assert_eq!(result, Ok(()));
    assert_eq!(info.identity.as_deref(), Some("rfc8224 valid attest=B"));
    assert!(info.add_headers.is_empty() && info.remove_headers.is_empty());

    // The same header again: replay, 403 with a Warning.
    let (result, info) = run(&screen, &req).await;
    let rejection = result.expect_err("replay");
    assert_eq!(rejection.status, 403);
    assert_eq!(rejection.reason, "Replayed Identity");
    assert_eq!(info.identity.as_deref(), Some("rfc8224 403"));
}

#[tokio::test]
async fn missing_identity_is_428_unless_not_required() {
    let screen = IdentityScreen::new(&verifying_section(""), "n").expect("screen");
    let (result, info) = run(&screen, &route_request(invite(""), "192.0.2.1:5060")).await;
    assert_eq!(result.expect_err("428").status, 428);
    assert_eq!(info.identity.as_deref(), Some("none"));

    let mut lenient = verifying_section("");
    lenient.require = false;
    let screen = IdentityScreen::new(&lenient, "n").expect("screen");
    let (result, _) = run(&screen, &route_request(invite(""), "192.0.2.1:5060")).await;
    assert_eq!(result, Ok(()));
}

#[tokio::test]
async fn node_signature_round_trips_and_pai_is_screened() {
    let key = example("sti-repo/DEMO-ONLY-sp-sample.key");
    let signing = verifying_section(&format!(
        "sign_key = \"{}\"\nsign_x5u = \"{SAMPLE_X5U}\"\nsign_sources = [\"192.0.2.0/24\"]\n\
         trusted_pai_sources = [\"192.0.2.0/24\"]\n",
        key.display()
    ));
    let screen = IdentityScreen::new(&signing, "n").expect("screen");
    let pai = "P-Asserted-Identity: <sip:+12155550100@a.example>\r\n";

    // From a signing source: signed, PAI kept.
    let msg = invite(pai);
    let (result, info) = run(&screen, &route_request(msg.clone(), "192.0.2.7:5060")).await;
    assert_eq!(result, Ok(()));
    assert_eq!(info.identity.as_deref(), Some("rfc8224 signed attest=A"));
    assert!(info.remove_headers.is_empty());
    let [(name, value)] = info.add_headers.as_slice() else {
        panic!("one header added: {:?}", info.add_headers);
    };
    assert_eq!(name, &HeaderName::Identity);

    // The header the node added verifies on the same request.
    let text = String::from_utf8_lossy(msg.as_bytes()).replacen(
        "Max-Forwards: 70\r\n",
        &format!("Max-Forwards: 70\r\nIdentity: {value}\r\n"),
        1,
    );
    let signed = Message::parse(bytes::Bytes::from(text)).expect("parse");
    let (result, info) = run(&screen, &route_request(signed, "198.51.100.1:5060")).await;
    assert_eq!(result, Ok(()));
    assert_eq!(info.identity.as_deref(), Some("rfc8224 valid attest=A"));
    // From outside the trust domain: PAI removed.
    assert_eq!(info.remove_headers, vec![HeaderName::PAssertedIdentity]);

    // Not a signing source and no Identity: 428.
    let (result, _) = run(&screen, &route_request(invite(""), "198.51.100.1:5060")).await;
    assert_eq!(result.expect_err("428").status, 428);
}

#[test]
fn valid_tokens_name_standard_and_attestation() {
    for standard in [Standard::Rfc8224, Standard::Rfc4474] {
        assert_eq!(
            valid_token(standard, None),
            format!("{} valid", standard.as_str())
        );
        for a in [Attestation::A, Attestation::B, Attestation::C] {
            assert_eq!(
                valid_token(standard, Some(a)),
                format!("{} valid attest={}", standard.as_str(), a.as_str())
            );
        }
    }
}

#[test]
fn only_initial_invites_that_need_a_signature_are_not_cheap() {
    let verifying = IdentityScreen::new(&verifying_section(""), "n").expect("screen");
    let with_identity = route_request(
        invite("Identity: x.y.z;info=<https://a/b>\r\n"),
        "192.0.2.1:5060",
    );
    assert!(!verifying.is_cheap(&with_identity));
    // Without Identity and without signing: 428 or pass, no signature.
    assert!(verifying.is_cheap(&route_request(invite(""), "192.0.2.1:5060")));
    // In-dialog requests (ACK, BYE) are only screened for member and PAI.
    let mut in_dialog = with_identity.clone();
    in_dialog.kind = RouteKind::InDialog {
        next_hop: "sip:192.0.2.9".parse().expect("uri"),
    };
    assert!(verifying.is_cheap(&in_dialog));

    // A node that does not verify passes the header on.
    let passing = IdentityScreen::new(&section(""), "n").expect("screen");
    assert!(passing.is_cheap(&with_identity));

    // A node that signs for the source does not answer inline.
    let key = example("sti-repo/DEMO-ONLY-sp-sample.key");
    let signing = verifying_section(&format!(
        "sign_key = \"{}\"\nsign_x5u = \"{SAMPLE_X5U}\"\nsign_sources = [\"192.0.2.0/24\"]\n",
        key.display()
    ));
    let signing = IdentityScreen::new(&signing, "n").expect("screen");
    assert!(!signing.is_cheap(&route_request(invite(""), "192.0.2.1:5060")));
}
