//! RFC 4474 against OpenSSL: signatures made by `openssl dgst` verify here,
//! signatures made here verify with `openssl dgst`.

mod support;

use std::process::Command;

use peering_identity::rfc4474::{Rfc4474Config, Rfc4474Signer, Rfc4474Verifier, digest_string};
use peering_identity::sti::CertTrust;
use peering_identity::{CertProblem, Error, RequestView, sip_date};
use rustls_pki_types::CertificateDer;
use support::{pki, run, tool};

struct Fixture {
    dir: tempfile::TempDir,
    ca: pki::Ca,
    leaf: pki::Leaf,
    key_pem: String,
}

fn fixture(domain: &str) -> Fixture {
    let openssl = tool("openssl", "openssl");
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("key.pem");
    run(Command::new(&openssl)
        .args([
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
            "-out",
        ])
        .arg(&key));
    let key_pem = std::fs::read_to_string(&key).unwrap();
    let ca = pki::Ca::new("Identity CA");
    let kp = rcgen::KeyPair::from_pem(&key_pem).unwrap();
    let leaf = ca.leaf_with_key(kp, domain, &[pki::dns(domain)], |_| {});
    std::fs::write(dir.path().join("cert.pem"), &leaf.pem).unwrap();
    Fixture {
        dir,
        ca,
        leaf,
        key_pem,
    }
}

fn request<'a>(date: &'a str, body: &'a [u8]) -> RequestView<'a> {
    RequestView {
        from: "\"Alice\" <sip:alice@atlanta.example.com>;tag=1928301774",
        to: "Bob <sip:bob@biloxi.example.org>",
        call_id: "a84b4c76e66710",
        cseq: "314159  INVITE",
        date: Some(date),
        contact: Some("<sip:alice@pc33.atlanta.example.com>"),
        body,
    }
}

const SDP: &[u8] = b"v=0\r\no=UserA 2890844526 2890844526 IN IP4 pc33.atlanta.example.com\r\ns=Session SDP\r\nc=IN IP4 pc33.atlanta.example.com\r\nt=0 0\r\nm=audio 49172 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n";

fn verifier(ca: &pki::Ca, allow_sha1: bool) -> Rfc4474Verifier {
    let mut trust = CertTrust::new();
    trust.add_pem(ca.pem().as_bytes()).unwrap();
    Rfc4474Verifier::new(
        trust,
        Rfc4474Config {
            allow_sha1,
            ..Rfc4474Config::default()
        },
    )
}

fn openssl_sign(f: &Fixture, digest: &[u8], md: &str) -> String {
    let input = f.dir.path().join("digest.txt");
    let sig = f.dir.path().join("sig.bin");
    std::fs::write(&input, digest).unwrap();
    run(Command::new(tool("openssl", "openssl"))
        .args(["dgst", md, "-sign"])
        .arg(f.dir.path().join("key.pem"))
        .arg("-out")
        .arg(&sig)
        .arg(&input));
    use base64::Engine as _;
    format!(
        "\"{}\"",
        base64::engine::general_purpose::STANDARD.encode(std::fs::read(sig).unwrap())
    )
}

#[test]
fn digest_string_layout() {
    let date = "Thu, 21 Feb 2002 13:02:03 GMT";
    let d = digest_string(&request(date, b"body")).unwrap();
    assert_eq!(
        String::from_utf8(d).unwrap(),
        "sip:alice@atlanta.example.com|sip:bob@biloxi.example.org|a84b4c76e66710|314159 INVITE|Thu, 21 Feb 2002 13:02:03 GMT|sip:alice@pc33.atlanta.example.com|body"
    );
    let no_contact = RequestView {
        contact: None,
        ..request(date, b"")
    };
    assert!(
        String::from_utf8(digest_string(&no_contact).unwrap())
            .unwrap()
            .ends_with("GMT||")
    );
}

#[test]
fn openssl_signature_verifies_here() {
    let f = fixture("atlanta.example.com");
    let now = support::now();
    let date = sip_date(now);
    let req = request(&date, SDP);
    let identity = openssl_sign(&f, &digest_string(&req).unwrap(), "-sha256");
    let info = "<https://atlanta.example.com/cert.pem>;alg=rsa-sha256";
    let v = verifier(&f.ca, false);
    let chain = vec![f.leaf.der.clone()];
    let r = v.verify_with(Some(&identity), Some(info), &req, now, |url| {
        assert_eq!(url, "https://atlanta.example.com/cert.pem");
        Ok(chain.clone())
    });
    assert!(r.is_valid(), "{:?}", r.outcome);
    // Replayed: 403.
    let r = v.verify_with(
        Some(&identity),
        Some(info),
        &req,
        now,
        |_| Ok(chain.clone()),
    );
    assert_eq!(r.status(), Some((403, "Replayed Identity")));
}

#[test]
fn here_signed_verifies_with_openssl() {
    let f = fixture("atlanta.example.com");
    let date = sip_date(support::now());
    let req = request(&date, SDP);
    let signer =
        Rfc4474Signer::from_pem(&f.key_pem, "https://atlanta.example.com/cert.pem").unwrap();
    let headers = signer.sign(&req).unwrap();
    assert_eq!(
        headers.identity_info,
        "<https://atlanta.example.com/cert.pem>;alg=rsa-sha256"
    );
    use base64::Engine as _;
    let sig = base64::engine::general_purpose::STANDARD
        .decode(headers.identity.trim_matches('"'))
        .unwrap();
    std::fs::write(f.dir.path().join("sig.bin"), sig).unwrap();
    std::fs::write(
        f.dir.path().join("digest.txt"),
        digest_string(&req).unwrap(),
    )
    .unwrap();
    let openssl = tool("openssl", "openssl");
    let pubkey = f.dir.path().join("pub.pem");
    run(Command::new(&openssl)
        .args(["x509", "-pubkey", "-noout", "-in"])
        .arg(f.dir.path().join("cert.pem"))
        .arg("-out")
        .arg(&pubkey));
    let out = run(Command::new(&openssl)
        .args(["dgst", "-sha256", "-verify"])
        .arg(&pubkey)
        .arg("-signature")
        .arg(f.dir.path().join("sig.bin"))
        .arg(f.dir.path().join("digest.txt")));
    assert!(out.contains("Verified OK"), "{out}");
}

#[test]
fn failures_map_to_rfc4474_codes() {
    let f = fixture("atlanta.example.com");
    let now = support::now();
    let date = sip_date(now);
    let req = request(&date, SDP);
    let chain = vec![f.leaf.der.clone()];
    let fetch =
        |_: &str| -> peering_identity::Result<Vec<CertificateDer<'static>>> { Ok(chain.clone()) };
    let v = verifier(&f.ca, false);
    let sha256 = openssl_sign(&f, &digest_string(&req).unwrap(), "-sha256");
    let info = "<https://atlanta.example.com/cert.pem>;alg=rsa-sha256";

    // 428: no Identity.
    assert_eq!(
        v.verify_with(None, Some(info), &req, now, fetch).status(),
        Some((428, "Use Identity Header"))
    );
    // 436: no Identity-Info, or a malformed one.
    assert_eq!(
        v.verify_with(Some(&sha256), None, &req, now, fetch)
            .status()
            .unwrap()
            .0,
        436
    );
    assert_eq!(
        v.verify_with(Some(&sha256), Some("https://x"), &req, now, fetch)
            .status()
            .unwrap()
            .0,
        436
    );
    // 437: rsa-sha1 is off by default; certificate for another domain.
    let sha1 = openssl_sign(&f, &digest_string(&req).unwrap(), "-sha1");
    let info1 = "<https://atlanta.example.com/cert.pem>;alg=rsa-sha1";
    assert_eq!(
        v.verify_with(Some(&sha1), Some(info1), &req, now, fetch)
            .status()
            .unwrap()
            .0,
        437
    );
    let other_from = RequestView {
        from: "<sip:mallory@evil.example.net>;tag=9",
        ..req
    };
    let forged = openssl_sign(&f, &digest_string(&other_from).unwrap(), "-sha256");
    let r = v.verify_with(Some(&forged), Some(info), &other_from, now, fetch);
    assert!(matches!(
        r.outcome,
        Err(Error::Certificate {
            problem: CertProblem::NameMismatch
        })
    ));
    assert_eq!(r.status().unwrap().0, 437);
    // 438: tampered body.
    let tampered = RequestView {
        body: b"v=0\r\n",
        ..req
    };
    assert_eq!(
        v.verify_with(Some(&sha256), Some(info), &tampered, now, fetch)
            .status(),
        Some((438, "Invalid Identity Header"))
    );
    // 403: Date outside the window.
    assert_eq!(
        v.verify_with(Some(&sha256), Some(info), &req, now + 3601, fetch)
            .status(),
        Some((403, "Stale Date"))
    );
    // rsa-sha1 verifies when enabled.
    let v1 = verifier(&f.ca, true);
    assert!(
        v1.verify_with(Some(&sha1), Some(info1), &req, now, fetch)
            .is_valid()
    );
    // Identity-Info without alg means rsa-sha1 (RFC 4474 section 10).
    let v1 = verifier(&f.ca, true);
    assert!(
        v1.verify_with(
            Some(&sha1),
            Some("<https://atlanta.example.com/cert.pem>"),
            &req,
            now,
            fetch
        )
        .is_valid()
    );
    // Untrusted CA: 437.
    let other = verifier(&pki::Ca::new("other"), false);
    assert_eq!(
        other
            .verify_with(Some(&sha256), Some(info), &req, now, fetch)
            .status()
            .unwrap()
            .0,
        437
    );
}
