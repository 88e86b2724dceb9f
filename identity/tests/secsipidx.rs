//! Interop with `secsipidx` (Debian package `secsipidx`), an independent
//! STIR/SHAKEN implementation: it signs, we verify; we sign, it verifies.
#![allow(clippy::cloned_ref_to_slice_refs)]

mod support;

use std::path::Path;
use std::process::Command;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use peering_identity::passport::{Attestation, Signer};
use peering_identity::rfc8224::{IdentityHeader, StirConfig, StirSigner, StirVerifier};
use peering_identity::sip::Party;
use peering_identity::sti::CertTrust;
use peering_identity::{CertProblem, Error, RequestView, Result};
use rustls_pki_types::CertificateDer;
use support::{pki, run, tool, try_run};

const X5U: &str = "https://sti.example.net/certs/sp-1234.pem";
const ORIGID: &str = "4437c7eb-8f7a-4f0e-a863-f53a0e60251a";

fn req() -> RequestView<'static> {
    RequestView {
        from: "\"Alice\" <sip:+1-215-555-0100@orig.example;user=phone>;tag=a73kszlfl",
        to: "<sip:+12155550101@term.example;user=phone>",
        call_id: "1j9FpLxk3uxtm8tn@orig.example",
        cseq: "1 INVITE",
        ..RequestView::default()
    }
}

struct Setup {
    dir: tempfile::TempDir,
    ca: pki::Ca,
    leaf: pki::Leaf,
}

fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let ca = pki::Ca::new("STI-CA test");
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    std::fs::write(dir.path().join("key.pem"), key.serialize_pem()).unwrap();
    std::fs::write(dir.path().join("pub.pem"), key.public_key_pem()).unwrap();
    let leaf = ca.leaf_with_key(key, "SHAKEN 1234", &[], |_| {});
    Setup { dir, ca, leaf }
}

fn verifier(ca: &pki::Ca) -> StirVerifier {
    let mut trust = CertTrust::new();
    trust.add_pem(ca.pem().as_bytes()).unwrap();
    StirVerifier::new(trust, StirConfig::default())
}

fn secsipidx_sign(dir: &Path, extra: &[&str]) -> String {
    let bin = tool("secsipidx", "secsipidx");
    let out = run(Command::new(bin)
        .arg("-sign-full")
        .arg("-k")
        .arg(dir.join("key.pem"))
        .args([
            "-o",
            "12155550100",
            "-d",
            "12155550101",
            "-a",
            "A",
            "-orig-id",
            ORIGID,
            "-x5u",
            X5U,
        ])
        .args(extra));
    out.trim().to_owned()
}

fn secsipidx_check(dir: &Path, identity: &str, expire: u64) -> (bool, String) {
    let bin = tool("secsipidx", "secsipidx");
    std::fs::write(dir.join("identity.txt"), identity).unwrap();
    try_run(
        Command::new(bin)
            .arg("-check")
            .arg("-fidentity")
            .arg(dir.join("identity.txt"))
            .arg("-p")
            .arg(dir.join("pub.pem"))
            .arg("-expire")
            .arg(expire.to_string()),
    )
}

fn verify(
    v: &StirVerifier,
    identity: &str,
    chain: &[CertificateDer<'static>],
    now: u64,
) -> Result<peering_identity::Verified> {
    v.verify_with(identity, &req(), now, |url| {
        assert_eq!(url, X5U);
        Ok(chain.to_vec())
    })
    .outcome
}

#[test]
fn secsipidx_signed_identity_verifies_here() {
    let s = setup();
    let identity = secsipidx_sign(s.dir.path(), &[]);
    let header = IdentityHeader::parse(&identity).unwrap();
    assert_eq!(header.info.as_deref(), Some(X5U));
    let v = verifier(&s.ca);
    let now = support::now();
    let ok = verify(&v, &identity, &[s.leaf.der.clone()], now).unwrap();
    assert_eq!(ok.attestation, Some(Attestation::A));
    assert_eq!(ok.orig, Party::Tn("12155550100".into()));
    assert_eq!(ok.origid.as_deref(), Some(ORIGID));

    // The same header again is a replay.
    let err = verify(&v, &identity, &[s.leaf.der.clone()], now + 1).unwrap_err();
    assert!(matches!(err, Error::Replay), "{err:?}");
    assert_eq!(err.status(), (403, "Replayed Identity"));
}

#[test]
fn secsipidx_bare_passport_verifies_here() {
    // `-sign` writes the JWS alone; the x5u then names the certificate.
    let s = setup();
    let bin = tool("secsipidx", "secsipidx");
    let jws = run(Command::new(bin)
        .arg("-sign")
        .arg("-k")
        .arg(s.dir.path().join("key.pem"))
        .args([
            "-o",
            "12155550100",
            "-d",
            "12155550101",
            "-a",
            "B",
            "-orig-id",
            ORIGID,
            "-x5u",
            X5U,
        ]));
    let v = verifier(&s.ca);
    let ok = verify(&v, jws.trim(), &[s.leaf.der.clone()], support::now()).unwrap();
    assert_eq!(ok.attestation, Some(Attestation::B));
}

#[test]
fn tampered_stale_and_wrong_certificate_are_rejected() {
    let s = setup();
    let v = verifier(&s.ca);
    let now = support::now();

    // Tampered claims: attest A -> C, signature kept.
    let identity = secsipidx_sign(s.dir.path(), &[]);
    let header = IdentityHeader::parse(&identity).unwrap();
    let parts: Vec<&str> = header.token.split('.').collect();
    let claims = String::from_utf8(B64.decode(parts[1]).unwrap()).unwrap();
    let forged = B64.encode(claims.replace("\"attest\":\"A\"", "\"attest\":\"C\""));
    let tampered = IdentityHeader {
        token: format!("{}.{}.{}", parts[0], forged, parts[2]),
        ..header.clone()
    }
    .to_value();
    let err = verify(&v, &tampered, &[s.leaf.der.clone()], now).unwrap_err();
    assert!(matches!(err, Error::BadSignature), "{err:?}");
    assert_eq!(err.status(), (438, "Invalid Identity Header"));

    // Stale iat: signed two minutes ago.
    // (`-iat` is ignored by `-sign-full`; `-sign` takes the claims verbatim.)
    let bin = tool("secsipidx", "secsipidx");
    let stale = run(Command::new(bin)
        .arg("-sign")
        .arg("-k")
        .arg(s.dir.path().join("key.pem"))
        .arg("-header")
        .arg(format!(r#"{{"alg":"ES256","ppt":"shaken","typ":"passport","x5u":"{X5U}"}}"#))
        .arg("-payload")
        .arg(format!(
            r#"{{"attest":"A","dest":{{"tn":["12155550101"]}},"iat":{},"orig":{{"tn":"12155550100"}},"origid":"{ORIGID}"}}"#,
            now - 120
        )));
    let stale = format!("{};info=<{X5U}>;alg=ES256;ppt=shaken", stale.trim());
    let err = verify(&v, &stale, &[s.leaf.der.clone()], now).unwrap_err();
    assert!(err.is_stale(), "{err:?}");
    assert_eq!(err.status(), (403, "Stale Date"));

    // Wrong certificate from the trusted CA: the signature does not verify.
    let other = s.ca.leaf("SHAKEN 9999", &[], |_| {});
    let err = verify(&v, &identity, &[other.der.clone()], now).unwrap_err();
    assert_eq!(err.status().0, 438, "{err:?}");

    // The right key, but certified by an untrusted CA.
    let rogue = pki::Ca::new("Rogue STI-CA");
    let key =
        rcgen::KeyPair::from_pem(&std::fs::read_to_string(s.dir.path().join("key.pem")).unwrap())
            .unwrap();
    let rogue_leaf = rogue.leaf_with_key(key, "SHAKEN 1234", &[], |_| {});
    let err = verify(&v, &identity, &[rogue_leaf.der.clone()], now).unwrap_err();
    assert!(
        matches!(
            err,
            Error::Certificate {
                problem: CertProblem::Untrusted
            }
        ),
        "{err:?}"
    );
    assert_eq!(err.status(), (437, "Unsupported Credential"));

    // After all the failures the genuine header still verifies once.
    verify(&v, &identity, &[s.leaf.der.clone()], now).unwrap();
}

#[test]
fn node_signed_identity_verifies_with_secsipidx() {
    let s = setup();
    let signer = StirSigner::new(Signer::from_pem(&s.leaf.key_pem, X5U).unwrap());
    let now = support::now();
    let identity = signer
        .sign_shaken(&req(), Attestation::A, ORIGID, now)
        .unwrap();
    let (ok, out) = secsipidx_check(s.dir.path(), &identity, 60);
    assert!(ok, "secsipidx rejected our header: {out}");

    // secsipidx rejects a tampered copy and a stale one: its check is real.
    let header = IdentityHeader::parse(&identity).unwrap();
    let parts: Vec<&str> = header.token.split('.').collect();
    let claims = String::from_utf8(B64.decode(parts[1]).unwrap()).unwrap();
    let forged = B64.encode(claims.replace("12155550101", "12155550199"));
    let tampered = IdentityHeader {
        token: format!("{}.{}.{}", parts[0], forged, parts[2]),
        ..header
    }
    .to_value();
    let (ok, out) = secsipidx_check(s.dir.path(), &tampered, 60);
    assert!(!ok, "secsipidx accepted a tampered header: {out}");
    let stale = signer
        .sign_shaken(&req(), Attestation::A, ORIGID, now - 3600)
        .unwrap();
    let (ok, out) = secsipidx_check(s.dir.path(), &stale, 60);
    assert!(!ok, "secsipidx accepted a stale header: {out}");
}
