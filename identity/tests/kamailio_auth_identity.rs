//! RFC 4474 interop with Kamailio's `auth_identity` module (Debian package
//! `kamailio-extra-modules`): Kamailio signs an INVITE as the
//! authentication service (it signs with rsa-sha1), this crate verifies it.
//!
//! Two quirks of auth_identity (Kamailio 5.6) shape the request: it builds
//! the Contact and body parts of the digest string only when it can
//! resolve the next hop (otherwise it repeats the Date in their place), so
//! the Request-URI is a literal IP; and it leaves the Contact out of the
//! digest string of the outgoing message even when one is present (its own
//! verifier puts it in), so the request is a MESSAGE without Contact, for
//! which RFC 4474 and Kamailio agree on an empty Contact part.

mod support;

use std::net::UdpSocket;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use peering_identity::rfc4474::{Rfc4474Config, Rfc4474Verifier};
use peering_identity::sti::CertTrust;
use peering_identity::{RequestView, sip_date};
use support::{pki, run, tool};

const MODULES: &str = "/usr/lib/x86_64-linux-gnu/kamailio/modules";

struct Kamailio(Child);

impl Drop for Kamailio {
    fn drop(&mut self) {
        support::stop_process_group(&mut self.0);
    }
}

fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Header values of a SIP message (first occurrence, no folding) and its body.
fn headers(msg: &str) -> (Vec<(String, String)>, String) {
    let (head, body) = msg.split_once("\r\n\r\n").unwrap();
    let hs = head
        .split("\r\n")
        .skip(1)
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    (hs, body.to_owned())
}

fn get<'a>(hs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    hs.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
}

#[test]
fn kamailio_signed_request_verifies() {
    let kamailio = tool("kamailio", "kamailio");
    assert!(
        std::path::Path::new(MODULES)
            .join("auth_identity.so")
            .exists(),
        "Kamailio's auth_identity module is required: apt-get install kamailio-extra-modules"
    );
    let openssl = tool("openssl", "openssl");
    let dir = tempfile::tempdir().unwrap();
    let key_path = dir.path().join("key.pem");
    run(Command::new(&openssl)
        .args([
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
            "-out",
        ])
        .arg(&key_path));
    // auth_identity reads a traditional RSA key.
    let rsa_path = dir.path().join("rsa.pem");
    run(Command::new(&openssl)
        .args(["rsa", "-traditional", "-in"])
        .arg(&key_path)
        .arg("-out")
        .arg(&rsa_path));
    let key_pem = std::fs::read_to_string(&key_path).unwrap();
    let ca = pki::Ca::new("Identity CA");
    let leaf = ca.leaf_with_key(
        rcgen::KeyPair::from_pem(&key_pem).unwrap(),
        "atlanta.example.com",
        &[pki::dns("atlanta.example.com")],
        |p| {
            // auth_identity reads notAfter as UTCTime only (years before 2050).
            p.not_before = rcgen::date_time_ymd(2020, 1, 1);
            p.not_after = rcgen::date_time_ymd(2045, 1, 1);
        },
    );
    let cert_path = dir.path().join("cert.pem");
    std::fs::write(&cert_path, &leaf.pem).unwrap();

    let sink = UdpSocket::bind("127.0.0.1:0").unwrap();
    sink.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let sink_port = sink.local_addr().unwrap().port();
    let kam_port = free_udp_port();
    let cfg = format!(
        r#"#!KAMAILIO
debug=2
log_stderror=yes
children=1
auto_aliases=no
listen=udp:127.0.0.1:{kam_port}
mpath="{MODULES}/"
loadmodule "sl.so"
loadmodule "auth_identity.so"
modparam("auth_identity", "privatekey_path", "{rsa}")
modparam("auth_identity", "certificate_path", "{cert}")
modparam("auth_identity", "certificate_url", "https://atlanta.example.com/cert.der")
request_route {{
    if (!auth_date_proc()) {{ sl_send_reply("403", "Date"); exit; }}
    if (!auth_add_identity()) {{ sl_send_reply("500", "Identity"); exit; }}
    forward();
    exit;
}}
"#,
        rsa = rsa_path.display(),
        cert = cert_path.display(),
    );
    let cfg_path = dir.path().join("kamailio.cfg");
    std::fs::write(&cfg_path, cfg).unwrap();
    let child = Command::new(&kamailio)
        .arg("-f")
        .arg(&cfg_path)
        .args(["-DD", "-E", "-m", "32", "-M", "8", "-Y"])
        .process_group(0)
        .arg(dir.path())
        .arg("-P")
        .arg(dir.path().join("kamailio.pid"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut kam = Kamailio(child);

    let now = support::now();
    let date = sip_date(now);
    let body = "Watson, come here.";
    let invite = format!(
        "MESSAGE sip:bob@127.0.0.1:{sink_port} SIP/2.0\r\n\
         Via: SIP/2.0/UDP 127.0.0.1:5099;branch=z9hG4bKnashds8\r\n\
         Max-Forwards: 70\r\n\
         From: Alice <sip:alice@atlanta.example.com>;tag=1928301774\r\n\
         To: Bob <sip:bob@biloxi.example.org>\r\n\
         Call-ID: a84b4c76e66710@{now}\r\n\
         CSeq: 314159 MESSAGE\r\n\
         Date: {date}\r\n\
         Content-Type: text/plain\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let client = UdpSocket::bind("127.0.0.1:0").unwrap();
    client
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut buf = vec![0u8; 65535];
    // Kamailio needs a moment to start; resend until the signed INVITE arrives.
    sink.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let mut received = None;
    for _ in 0..50 {
        client
            .send_to(invite.as_bytes(), ("127.0.0.1", kam_port))
            .unwrap();
        if let Ok(n) = sink.recv(&mut buf) {
            received = Some(String::from_utf8_lossy(&buf[..n]).into_owned());
            break;
        }
        if let Ok(n) = client.recv(&mut buf) {
            panic!(
                "Kamailio answered instead of forwarding: {}",
                String::from_utf8_lossy(&buf[..n])
            );
        }
        if let Ok(Some(status)) = kam.0.try_wait() {
            let mut err = String::new();
            use std::io::Read as _;
            kam.0
                .stderr
                .take()
                .unwrap()
                .read_to_string(&mut err)
                .unwrap();
            panic!("kamailio exited with {status}: {err}");
        }
    }
    let msg = received.expect("Kamailio did not forward the request");
    let (hs, body) = headers(&msg);
    let identity = get(&hs, "identity").expect("Identity added");
    let info = get(&hs, "identity-info").expect("Identity-Info added");
    assert!(info.contains("alg=rsa-sha1"), "{info}");
    let req = RequestView {
        from: get(&hs, "from").unwrap(),
        to: get(&hs, "to").unwrap(),
        call_id: get(&hs, "call-id").unwrap(),
        cseq: get(&hs, "cseq").unwrap(),
        date: get(&hs, "date"),
        contact: get(&hs, "contact"),
        body: body.as_bytes(),
    };
    let mut trust = CertTrust::new();
    trust.add_pem(ca.pem().as_bytes()).unwrap();
    let chain = vec![leaf.der.clone()];

    // rsa-sha1 is off by default: 437.
    let strict = Rfc4474Verifier::new(trust.clone(), Rfc4474Config::default());
    let r = strict.verify_with(Some(identity), Some(info), &req, now, |_| Ok(chain.clone()));
    assert_eq!(r.status().map(|s| s.0), Some(437));

    let v = Rfc4474Verifier::new(
        trust,
        Rfc4474Config {
            allow_sha1: true,
            ..Rfc4474Config::default()
        },
    );
    let r = v.verify_with(Some(identity), Some(info), &req, now, |url| {
        assert_eq!(url, "https://atlanta.example.com/cert.der");
        Ok(chain.clone())
    });
    assert!(
        r.is_valid(),
        "Kamailio's signature did not verify: {:?}\n{msg}",
        r.outcome
    );

    // Any change to a signed part breaks it: 438.
    let tampered = RequestView {
        to: "Bob <sip:carol@biloxi.example.org>",
        ..req
    };
    let r = v.verify_with(Some(identity), Some(info), &tampered, now, |_| {
        Ok(chain.clone())
    });
    assert_eq!(r.status(), Some((438, "Invalid Identity Header")));
}
