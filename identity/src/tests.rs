//! Unit tests of the pure core.
#![allow(clippy::cloned_ref_to_slice_refs)]

#[path = "../tests/support/pki.rs"]
mod pki;

use rustls_pki_types::CertificateDer;

use crate::der::{TnEntry, encode_tn_auth_list, parse_tn_auth_list};
use crate::passport::{Attestation, Claims, Passport, Signer};
use crate::rfc8224::{IdentityHeader, StirConfig, StirSigner, StirVerifier, is_passport};
use crate::sip::{Party, addr_spec, normalize_tn};
use crate::sti::CertTrust;
use crate::{CertProblem, Error, ReplayCache, RequestView, sip_date};

const NOW: u64 = 1_800_000_000;
const X5U: &str = "https://sti.example.net/sp.pem";
const ORIGID: &str = "123e4567-e89b-12d3-a456-426655440000";

fn req() -> RequestView<'static> {
    RequestView {
        from: "\"Alice <x>\" <sip:+1-215-555-0100@a.example;user=phone>;tag=a1",
        to: "<tel:+12155550101>",
        call_id: "c1@a.example",
        cseq: "1 INVITE",
        ..RequestView::default()
    }
}

struct Sti {
    ca: pki::Ca,
    leaf: pki::Leaf,
}

fn sti(edit: impl FnOnce(&mut rcgen::CertificateParams)) -> Sti {
    let ca = pki::Ca::new("STI-CA");
    let leaf = ca.leaf("SHAKEN 1234", &[], edit);
    Sti { ca, leaf }
}

fn verifier(ca: &pki::Ca) -> StirVerifier {
    let mut trust = CertTrust::new();
    trust.add_pem(ca.pem().as_bytes()).unwrap();
    StirVerifier::new(trust, StirConfig::default())
}

fn signer(leaf: &pki::Leaf) -> StirSigner {
    StirSigner::new(Signer::from_pem(&leaf.key_pem, X5U).unwrap())
}

fn verify(
    v: &StirVerifier,
    identity: &str,
    req: &RequestView<'_>,
    chain: &[CertificateDer<'static>],
    now: u64,
) -> crate::Result<crate::Verified> {
    v.verify_with(identity, req, now, |url| {
        assert_eq!(url, X5U);
        Ok(chain.to_vec())
    })
    .outcome
}

#[test]
fn addr_spec_forms() {
    assert_eq!(addr_spec("<sip:a@b>;tag=1"), Some("sip:a@b"));
    assert_eq!(addr_spec("\"x<y\" <sip:a@b>"), Some("sip:a@b"));
    assert_eq!(addr_spec("sip:a@b;tag=1"), Some("sip:a@b"));
    assert_eq!(addr_spec("Bob"), None);
}

#[test]
fn tn_normalisation_follows_rfc8224_8_3() {
    assert_eq!(
        normalize_tn("+1 (215) 555-0100").as_deref(),
        Some("12155550100")
    );
    assert_eq!(
        normalize_tn("1.215.555.0100").as_deref(),
        Some("12155550100")
    );
    assert_eq!(normalize_tn("+"), None);
    assert_eq!(normalize_tn("12a"), None);
    assert_eq!(
        Party::from_header("<sip:%2B12155550100@x;user=phone>"),
        Some(Party::Tn("12155550100".into()))
    );
    assert_eq!(
        Party::from_header("<sips:alice@example.com;transport=tls>"),
        Some(Party::Uri("sips:alice@example.com".into()))
    );
    assert_eq!(
        Party::from_header("<tel:+44-20-7946-0000;phone-context=x>"),
        Some(Party::Tn("442079460000".into()))
    );
}

#[test]
fn claims_json_is_canonical() {
    let claims = Claims::shaken(
        Party::Tn("12155550121".into()),
        Party::Tn("12155550131".into()),
        1443208345,
        Attestation::A,
        ORIGID,
    );
    // RFC 8588 section 6 example claims, in RFC 8225 section 9 order.
    assert_eq!(
        claims.to_json(),
        r#"{"attest":"A","dest":{"tn":["12155550131"]},"iat":1443208345,"orig":{"tn":"12155550121"},"origid":"123e4567-e89b-12d3-a456-426655440000"}"#
    );
}

#[test]
fn identity_header_parse_and_format() {
    let value = "aaa.bbb.ccc;info=<https://x.example/c.pem>;alg=ES256;ppt=\"shaken\"";
    let h = IdentityHeader::parse(value).unwrap();
    assert_eq!(h.info.as_deref(), Some("https://x.example/c.pem"));
    assert_eq!(h.ppt.as_deref(), Some("shaken"));
    assert_eq!(h.to_value(), value.replace('"', ""));
    assert!(is_passport(value));
    assert!(!is_passport(
        "\"ZYNBbHC00VMZr2kZt6VmCvPonWJMGvQTBDqghoWeLxJfzB2a1pxAr3VgrB0SsSAa\""
    ));
    assert_eq!(
        IdentityHeader::parse("not a token").unwrap_err().status().0,
        438
    );
}

#[test]
fn shaken_sign_and_verify_roundtrip() {
    let s = sti(|_| {});
    let v = verifier(&s.ca);
    let value = signer(&s.leaf)
        .sign_shaken(&req(), Attestation::B, ORIGID, NOW)
        .unwrap();
    let ok = verify(&v, &value, &req(), &[s.leaf.der.clone()], NOW + 5).unwrap();
    assert_eq!(ok.attestation, Some(Attestation::B));
    assert_eq!(ok.orig, Party::Tn("12155550100".into()));
    assert_eq!(ok.origid.as_deref(), Some(ORIGID));
    // Same header again: replay.
    let again = verify(&v, &value, &req(), &[s.leaf.der.clone()], NOW + 6).unwrap_err();
    assert!(matches!(again, Error::Replay));
    assert_eq!(again.status(), (403, "Replayed Identity"));
}

#[test]
fn stale_iat_is_403() {
    let s = sti(|_| {});
    let v = verifier(&s.ca);
    let value = signer(&s.leaf)
        .sign_shaken(&req(), Attestation::A, ORIGID, NOW)
        .unwrap();
    let err = verify(&v, &value, &req(), &[s.leaf.der.clone()], NOW + 61).unwrap_err();
    assert_eq!(err.status(), (403, "Stale Date"));
    let err = verify(&v, &value, &req(), &[s.leaf.der.clone()], NOW - 61).unwrap_err();
    assert!(err.is_stale());
    verify(&v, &value, &req(), &[s.leaf.der.clone()], NOW + 60).unwrap();
}

/// `h` with its claims replaced by an A-attested call at `iat`, under the
/// original header and signature.
fn with_forged_claims(h: &IdentityHeader, iat: u64) -> IdentityHeader {
    use base64::Engine as _;
    let parts: Vec<&str> = h.token.split('.').collect();
    let forged = Claims::shaken(
        Party::Tn("12155550100".into()),
        Party::Tn("12155550101".into()),
        iat,
        Attestation::A,
        ORIGID,
    );
    let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(forged.to_json());
    IdentityHeader {
        token: format!("{}.{}.{}", parts[0], payload, parts[2]),
        ..h.clone()
    }
}

#[test]
fn tampered_claims_are_438() {
    let s = sti(|_| {});
    let v = verifier(&s.ca);
    let value = signer(&s.leaf)
        .sign_shaken(&req(), Attestation::C, ORIGID, NOW)
        .unwrap();
    let tampered = with_forged_claims(&IdentityHeader::parse(&value).unwrap(), NOW);
    let err = verify(&v, &tampered.to_value(), &req(), &[s.leaf.der.clone()], NOW).unwrap_err();
    assert!(matches!(err, Error::BadSignature));
    assert_eq!(err.status(), (438, "Invalid Identity Header"));

    // A valid signature for another caller does not match this From.
    let other = RequestView {
        from: "<sip:+12155559999@a.example>",
        ..req()
    };
    let value = signer(&s.leaf)
        .sign_shaken(&other, Attestation::A, ORIGID, NOW)
        .unwrap();
    let err = verify(&v, &value, &req(), &[s.leaf.der.clone()], NOW).unwrap_err();
    assert!(matches!(err, Error::ClaimMismatch { claim: "orig" }));
    assert_eq!(err.status().0, 438);
}

/// From its second call on, a signer's key is checked with its table of
/// multiples (crate::p256): the answers are the same as the first call's
/// (ring's), for good, tampered, foreign and replayed tokens.
#[test]
fn a_busy_signer_is_verified_with_its_key_table() {
    let s = sti(|_| {});
    let v = verifier(&s.ca);
    let chain = [s.leaf.der.clone()];
    let other = s.ca.leaf("other", &[], |_| {});
    use base64::Engine as _;
    for i in 0..8u64 {
        let now = NOW + i;
        let value = signer(&s.leaf)
            .sign_shaken(&req(), Attestation::A, ORIGID, now)
            .unwrap();
        let h = IdentityHeader::parse(&value).unwrap();
        let parts: Vec<&str> = h.token.split('.').collect();
        // The claims of another call under this signature.
        let tampered = with_forged_claims(&h, now + 1);
        let err = verify(&v, &tampered.to_value(), &req(), &chain, now).unwrap_err();
        assert!(matches!(err, Error::BadSignature), "call {i}: {err:?}");
        // One flipped bit of the signature.
        let mut sig = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(parts[2])
            .unwrap();
        sig[(i as usize * 7) % 64] ^= 0x10;
        let flipped = IdentityHeader {
            token: format!(
                "{}.{}.{}",
                parts[0],
                parts[1],
                base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&sig)
            ),
            ..h.clone()
        };
        let err = verify(&v, &flipped.to_value(), &req(), &chain, now).unwrap_err();
        assert!(matches!(err, Error::BadSignature), "call {i}: {err:?}");
        // Another certificate's key.
        let err = verify(&v, &value, &req(), &[other.der.clone()], now).unwrap_err();
        assert!(matches!(err, Error::BadSignature), "call {i}: {err:?}");
        // The real one verifies, once.
        let ok = verify(&v, &value, &req(), &chain, now).unwrap();
        assert_eq!(ok.attestation, Some(Attestation::A));
        let err = verify(&v, &value, &req(), &chain, now).unwrap_err();
        assert!(matches!(err, Error::Replay), "call {i}: {err:?}");
    }
    // Both keys were used more than once: both have their tables.
    assert_eq!(v.key_tables(), 2);
}

#[test]
fn wrong_and_untrusted_certificates_are_rejected() {
    let s = sti(|_| {});
    let v = verifier(&s.ca);
    let value = signer(&s.leaf)
        .sign_shaken(&req(), Attestation::A, ORIGID, NOW)
        .unwrap();
    // Another certificate from the same CA: signature does not verify.
    let other = s.ca.leaf("other", &[], |_| {});
    let err = verify(&v, &value, &req(), &[other.der.clone()], NOW).unwrap_err();
    assert_eq!(err.status().0, 438);
    // A certificate from an unknown CA: unsupported credential.
    let rogue = sti(|_| {});
    let value = signer(&rogue.leaf)
        .sign_shaken(&req(), Attestation::A, ORIGID, NOW)
        .unwrap();
    let err = verify(&v, &value, &req(), &[rogue.leaf.der.clone()], NOW).unwrap_err();
    assert!(matches!(
        err,
        Error::Certificate {
            problem: CertProblem::Untrusted
        }
    ));
    assert_eq!(err.status(), (437, "Unsupported Credential"));
}

#[test]
fn intermediate_chain_verifies() {
    let root = pki::Ca::new("root");
    let inter = root.intermediate("inter");
    let leaf = inter.leaf("sp", &[], |_| {});
    let v = verifier(&root);
    let value = signer(&leaf)
        .sign_shaken(&req(), Attestation::A, ORIGID, NOW)
        .unwrap();
    verify(&v, &value, &req(), &[leaf.der.clone(), inter.der()], NOW).unwrap();
    let err = verify(&v, &value, &req(), &[leaf.der.clone()], NOW + 1).unwrap_err();
    assert_eq!(err.status().0, 437);
}

#[test]
fn tn_auth_list_is_honoured() {
    let list = encode_tn_auth_list(&[
        TnEntry::Spc("1234".into()),
        TnEntry::Range {
            start: "12155550100".into(),
            count: 10,
        },
    ]);
    assert_eq!(parse_tn_auth_list(&list).unwrap().len(), 2);
    let s = sti(|p| p.custom_extensions.push(pki::tn_auth_ext(list.clone())));
    let v = verifier(&s.ca);
    let value = signer(&s.leaf)
        .sign_shaken(&req(), Attestation::A, ORIGID, NOW)
        .unwrap();
    let ok = verify(&v, &value, &req(), &[s.leaf.der.clone()], NOW).unwrap();
    assert_eq!(ok.spc, vec!["1234".to_owned()]);

    let outside = RequestView {
        from: "<sip:+12155550110@a.example>",
        ..req()
    };
    let value = signer(&s.leaf)
        .sign_shaken(&outside, Attestation::A, ORIGID, NOW)
        .unwrap();
    let err = verify(&v, &value, &outside, &[s.leaf.der.clone()], NOW).unwrap_err();
    assert!(matches!(
        err,
        Error::Certificate {
            problem: CertProblem::TnNotAuthorized
        }
    ));
    assert_eq!(err.status().0, 437);

    // SPC-only lists do not restrict numbers.
    let spc_only = encode_tn_auth_list(&[TnEntry::Spc("777".into())]);
    let s = sti(|p| p.custom_extensions.push(pki::tn_auth_ext(spc_only)));
    let v = verifier(&s.ca);
    let value = signer(&s.leaf)
        .sign_shaken(&outside, Attestation::A, ORIGID, NOW)
        .unwrap();
    assert!(verify(&v, &value, &outside, &[s.leaf.der.clone()], NOW).is_ok());
}

#[test]
fn compact_form_rebuilds_claims_from_the_request() {
    let s = sti(|_| {});
    let v = verifier(&s.ca);
    let date = sip_date(NOW);
    let r = RequestView {
        date: Some(&date),
        ..req()
    };
    let value = signer(&s.leaf).sign_compact(&r).unwrap();
    let h = IdentityHeader::parse(&value).unwrap();
    assert!(h.is_compact());
    assert_eq!(h.ppt, None);
    verify(&v, &value, &r, &[s.leaf.der.clone()], NOW + 1).unwrap();
    // A different To makes the rebuilt claims differ: signature fails.
    let other = RequestView {
        to: "<tel:+12155550199>",
        ..r
    };
    let err = verify(&v, &value, &other, &[s.leaf.der.clone()], NOW + 1).unwrap_err();
    assert!(matches!(err, Error::BadSignature));
}

#[test]
fn unsupported_parameters() {
    let s = sti(|_| {});
    let v = verifier(&s.ca);
    let value = signer(&s.leaf)
        .sign_shaken(&req(), Attestation::A, ORIGID, NOW)
        .unwrap();
    let rs = value.replace("alg=ES256", "alg=RS256");
    assert_eq!(
        verify(&v, &rs, &req(), &[], NOW).unwrap_err().status().0,
        437
    );
    let ppt = value.replace("ppt=shaken", "ppt=div");
    assert_eq!(
        verify(&v, &ppt, &req(), &[], NOW).unwrap_err().status().0,
        438
    );
    let info = value.replace(X5U, "https://evil.example/x.pem");
    assert_eq!(
        verify(&v, &info, &req(), &[], NOW).unwrap_err().status().0,
        438
    );
    let no_cert = v.verify_with(&value, &req(), NOW, |url| {
        Err(Error::FetchFailed {
            url: url.to_owned(),
            reason: crate::FetchProblem::NotFound,
        })
    });
    assert_eq!(no_cert.status(), Some((436, "Bad Identity Info")));
    assert_eq!(no_cert.cdr_token(), "436");
}

#[test]
fn sec1_keys_load() {
    // openssl ecparam -genkey writes SEC1 "EC PRIVATE KEY"; convert an rcgen key.
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let pkcs8 = key.serialize_der();
    // PKCS#8 wraps the SEC1 structure in an OCTET STRING at the end.
    let sec1_start = pkcs8
        .windows(3)
        .position(|w| w == [0x30, 0x77, 0x02])
        .or_else(|| pkcs8.windows(3).position(|w| w == [0x30, 0x6b, 0x02]));
    if let Some(start) = sec1_start {
        let sec1 = &pkcs8[start..];
        let pem = format!(
            "-----BEGIN EC PRIVATE KEY-----\n{}\n-----END EC PRIVATE KEY-----\n",
            {
                use base64::Engine as _;
                base64::engine::general_purpose::STANDARD.encode(sec1)
            }
        );
        let s = Signer::from_pem(&pem, X5U).unwrap();
        assert_eq!(s.public_point(), key.public_key_raw());
    } else {
        panic!("no SEC1 structure in PKCS#8 output");
    }
}

#[test]
fn passport_decode_rejects_garbage() {
    assert!(Passport::decode("a.b").is_err());
    assert!(Passport::decode("!!.!!.!!").is_err());
    assert_eq!(Passport::decode("e30.e30.AA").unwrap_err().status().0, 438);
}

#[test]
fn replay_cache_is_bounded_and_expires() {
    let cache = ReplayCache::new(3);
    assert!(cache.check_and_insert(b"a", 100, 10));
    assert!(!cache.check_and_insert(b"a", 100, 11));
    assert!(cache.check_and_insert(b"b", 100, 11));
    assert!(cache.check_and_insert(b"c", 100, 11));
    assert!(cache.check_and_insert(b"d", 100, 11));
    assert_eq!(cache.len(), 3);
    // Expired entries are forgotten.
    assert!(cache.check_and_insert(b"b", 300, 200));
    assert_eq!(cache.len(), 1);
}

#[test]
fn rfc5922_domains_of_certificates() {
    let ca = pki::Ca::new("CA");
    let der = |sans: &[rcgen::SanType], cn: &str| ca.leaf(cn, sans, |_| {}).der;
    let names = |d| {
        crate::rfc5922::domains(&d)
            .unwrap()
            .into_iter()
            .collect::<Vec<_>>()
    };
    assert_eq!(
        names(der(
            &[
                pki::uri("sip:Example.COM:5061;transport=tls"),
                pki::uri("sips:x.example"),
                pki::uri("sip:u@y.example"),
                pki::dns("b.example.")
            ],
            "cn.example"
        )),
        ["b.example", "example.com"]
    );
    assert_eq!(names(der(&[], "CN.Example")), ["cn.example"]);
    assert_eq!(names(der(&[], "*.example")), Vec::<String>::new());
    assert!(names(der(&[pki::dns("*.example")], "a.example")).is_empty());
    let set = crate::rfc5922::domains(&der(&[pki::dns("a.example")], "x")).unwrap();
    assert_eq!(
        crate::rfc5922::match_member(&set, ["b.example", "A.EXAMPLE."].iter()),
        Some("A.EXAMPLE.")
    );
    assert_eq!(
        crate::rfc5922::match_member(&set, ["sub.a.example"].iter()),
        None
    );
}

#[test]
fn uri_host_forms() {
    use crate::sip::uri_host;
    assert_eq!(
        uri_host("sip:alice@Atlanta.example.com:5060;transport=tcp").as_deref(),
        Some("atlanta.example.com")
    );
    assert_eq!(
        uri_host("sips:[2001:db8::1]:5061").as_deref(),
        Some("2001:db8::1")
    );
    assert_eq!(uri_host("tel:+1234"), None);
}

#[test]
fn every_error_has_a_sip_status() {
    let cases: Vec<(Error, u16)> = vec![
        (Error::MissingIdentity, 428),
        (Error::MissingInfo, 436),
        (
            Error::BadInfo {
                url: "x".into(),
                reason: crate::InfoProblem::Scheme,
            },
            436,
        ),
        (
            Error::FetchFailed {
                url: "x".into(),
                reason: crate::FetchProblem::Timeout,
            },
            436,
        ),
        (
            Error::UnsupportedAlgorithm {
                alg: "RS256".into(),
            },
            437,
        ),
        (Error::UnsupportedPpt { ppt: "div".into() }, 437),
        (
            Error::Certificate {
                problem: CertProblem::Expired,
            },
            437,
        ),
        (Error::Malformed { what: "JWS" }, 438),
        (Error::BadSignature, 438),
        (Error::ClaimMismatch { claim: "orig" }, 438),
        (
            Error::StaleDate {
                age: -61,
                window: 60,
            },
            403,
        ),
        (Error::Replay, 403),
        (Error::BadKey { what: "x" }, 500),
    ];
    for (err, code) in cases {
        assert_eq!(err.status().0, code, "{err}");
        let internal = code == 500;
        assert_eq!(err.source_kind() == crate::ErrorSource::Internal, internal);
    }
}

#[test]
fn verified_chains_are_reused_only_while_valid() {
    let ca = pki::Ca::new("STI-CA");
    let leaf = ca.leaf("sp", &[], |p| {
        p.not_before = rcgen::date_time_ymd(2020, 1, 1);
        p.not_after = rcgen::date_time_ymd(2030, 1, 1);
    });
    let not_after = 1_893_456_000; // 2030-01-01T00:00:00Z
    let mut trust = CertTrust::new();
    trust.add_pem(ca.pem().as_bytes()).unwrap();
    let chain = [leaf.der.clone()];
    let first = trust.verify(&chain, not_after - 100).unwrap();
    assert_eq!(first.not_after, not_after as i64);
    // Reused within the TTL, with the same result.
    assert_eq!(trust.verify(&chain, not_after - 50).unwrap(), first);
    // Never past notAfter.
    let err = trust.verify(&chain, not_after + 10).unwrap_err();
    assert!(
        matches!(
            err,
            Error::Certificate {
                problem: CertProblem::Expired
            }
        ),
        "{err:?}"
    );
    // A new CRL revoking the leaf takes effect at once.
    let mut revoking = trust.clone();
    revoking
        .add_crls(ca.crl_pem(&[leaf.serial]).as_bytes())
        .unwrap();
    let err = revoking.verify(&chain, not_after - 40).unwrap_err();
    assert!(
        matches!(
            err,
            Error::Certificate {
                problem: CertProblem::Revoked
            }
        ),
        "{err:?}"
    );
}

#[test]
fn origid_is_a_uuid_v4() {
    let a = crate::passport::new_origid();
    let b = crate::passport::new_origid();
    assert_ne!(a, b);
    assert_eq!(a.len(), 36);
    assert_eq!(&a[14..15], "4");
    assert!(matches!(&a[19..20], "8" | "9" | "a" | "b"));
    assert!(a.chars().all(|c| c == '-' || c.is_ascii_hexdigit()));
}

#[test]
fn identity_values_are_classified() {
    use crate::verify::classify;
    assert_eq!(
        classify("eyJh.eyJh.sig;info=<https://x/y>"),
        crate::Standard::Rfc8224
    );
    assert_eq!(
        classify("\"ZYNBbHC00VMZr2kZt6VmCv\""),
        crate::Standard::Rfc4474
    );
}

/// What `Passport::decode` makes of hand-written header and claims JSON.
fn decode_json(header: &str, claims: &str) -> crate::Result<Passport> {
    use base64::Engine as _;
    let b64 = |s: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
    Passport::decode(&format!(
        "{}.{}.{}",
        b64(header.as_bytes()),
        b64(claims.as_bytes()),
        b64(&[0; 64])
    ))
}

fn malformed(r: crate::Result<Passport>) -> &'static str {
    match r {
        Err(Error::Malformed { what }) => what,
        Err(Error::MissingInfo) => "x5u",
        other => panic!("{other:?}"),
    }
}

#[test]
fn passport_json_reading_keeps_its_leniency_and_its_errors() {
    const H: &str = r#"{"alg":"ES256","ppt":"shaken","typ":"passport","x5u":"https://a/b.pem"}"#;
    const C: &str = r#"{"attest":"A","dest":{"tn":["12155550101"]},"iat":1800000000,"orig":{"tn":"12155550100"},"origid":"x"}"#;
    let p = decode_json(H, C).unwrap();
    assert_eq!(p.header.x5u, "https://a/b.pem");
    assert_eq!(p.claims.orig, Party::Tn("12155550100".into()));
    assert_eq!(p.claims.attest, Some(Attestation::A));

    // Escapes, repeated members (the last counts), unknown members and
    // members of another type than expected where that meant "absent".
    let p = decode_json(
        r#"{"alg":"ES256","ppt":7,"typ":{"x":[1]},"x5u":"x","x5u":"https:\/\/a\/b.pem","jku":[null]}"#,
        r#"{"orig":{"tn":5,"uri":"sip:a@b"},"dest":{"uri":["sip:\u0063@d"],"tn":["+1 215"]},"iat":1,"iat":2,"rcd":{"nam":"x"}}"#,
    )
    .unwrap();
    assert_eq!(p.header.x5u, "https://a/b.pem");
    assert_eq!(p.header.ppt, None);
    assert_eq!(p.header.typ, "passport");
    assert_eq!(p.claims.orig, Party::Uri("sip:a@b".into()));
    assert_eq!(
        p.claims.dest,
        vec![Party::Tn("1215".into()), Party::Uri("sip:c@d".into())]
    );
    assert_eq!(p.claims.iat, 2);
    assert_eq!(p.claims.attest, None);

    // Each member's own error.
    assert_eq!(malformed(decode_json("[]", C)), "header");
    assert_eq!(malformed(decode_json("{", C)), "header");
    assert_eq!(malformed(decode_json(r#"{"x5u":"u"}"#, C)), "alg");
    assert_eq!(malformed(decode_json(r#"{"alg":1,"x5u":"u"}"#, C)), "alg");
    assert_eq!(
        malformed(decode_json(r#"{"alg":"ES256","x5u":1}"#, C)),
        "x5u"
    );
    assert_eq!(malformed(decode_json(H, "7")), "claims");
    assert_eq!(malformed(decode_json(H, r#"{"a":1} x"#)), "claims");
    let claims = |edit: &str| C.replacen(r#""iat":1800000000"#, edit, 1);
    assert_eq!(malformed(decode_json(H, &claims(r#""iat":-1"#))), "iat");
    assert_eq!(malformed(decode_json(H, &claims(r#""iat":1.5"#))), "iat");
    assert_eq!(malformed(decode_json(H, &claims(r#""iat":"1""#))), "iat");
    assert_eq!(
        malformed(decode_json(H, &claims(r#""iat":1,"attest":null"#))),
        "attest"
    );
    assert_eq!(
        malformed(decode_json(H, &claims(r#""iat":1,"attest":"D""#))),
        "attest"
    );
    assert_eq!(
        malformed(decode_json(
            H,
            &C.replace(r#""origid":"x""#, r#""origid":[]"#)
        )),
        "origid"
    );
    let orig = |o: &str| C.replacen(r#""orig":{"tn":"12155550100"}"#, o, 1);
    assert_eq!(malformed(decode_json(H, &orig(r#""orig":"x""#))), "orig");
    assert_eq!(
        malformed(decode_json(H, &orig(r#""orig":{"tn":"abc"}"#))),
        "orig"
    );
    assert_eq!(malformed(decode_json(H, &orig(r#""orig":{}"#))), "orig");
    let dest = |d: &str| C.replacen(r#""dest":{"tn":["12155550101"]}"#, d, 1);
    assert_eq!(malformed(decode_json(H, &dest(r#""dest":[]"#))), "dest");
    assert_eq!(malformed(decode_json(H, &dest(r#""dest":{}"#))), "dest");
    assert_eq!(
        malformed(decode_json(H, &dest(r#""dest":{"tn":"1"}"#))),
        "dest"
    );
    assert_eq!(
        malformed(decode_json(H, &dest(r#""dest":{"tn":[1]}"#))),
        "dest"
    );
    assert_eq!(
        malformed(decode_json(H, &dest(r#""dest":{"uri":[null]}"#))),
        "dest"
    );
    assert_eq!(
        malformed(decode_json(H, &dest(r#""dest":{"tn":[]}"#))),
        "dest"
    );
    // Claims larger than the stack buffer take the heap.
    let big = dest(&format!(
        r#""dest":{{"uri":["sip:{}@d"]}}"#,
        "u".repeat(3000)
    ));
    assert_eq!(decode_json(H, &big).unwrap().claims.dest.len(), 1);
}

#[test]
fn identity_header_parameters() {
    let h = IdentityHeader::parse(
        r#" a.b.c ; INFO = < https://x/y.pem > ;alg="ES256";; ppt=shaken;info=<https://x/z.pem>;x="a;b" "#,
    )
    .unwrap();
    assert_eq!(h.token, "a.b.c");
    assert_eq!(h.info.as_deref(), Some("https://x/z.pem"));
    assert_eq!(h.alg.as_deref(), Some("ES256"));
    assert_eq!(h.ppt.as_deref(), Some("shaken"));
    assert!(IdentityHeader::parse("a.b;info=<x>").is_err());
    assert!(IdentityHeader::parse("a.b.c.d;info=<x>").is_err());
    assert!(IdentityHeader::parse("a.b.c;info=x").is_err());
    assert!(IdentityHeader::parse("a.b!.c").is_err());
}

#[test]
fn replay_of_the_same_signature_with_s_negated_is_a_replay() {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let s = sti(|_| {});
    let v = verifier(&s.ca);
    let value = signer(&s.leaf)
        .sign_shaken(&req(), Attestation::A, ORIGID, NOW)
        .unwrap();
    let (jws, params) = value.split_once(';').unwrap();
    let (input, sig) = jws.rsplit_once('.').unwrap();
    let mut sig = b64.decode(sig).unwrap();
    // s' = n - s (P-256 group order n) gives (r, s'), which verifies too.
    const N: [u8; 32] = [
        0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        0xff, 0xbc, 0xe6, 0xfa, 0xad, 0xa7, 0x17, 0x9e, 0x84, 0xf3, 0xb9, 0xca, 0xc2, 0xfc, 0x63,
        0x25, 0x51,
    ];
    let mut borrow = 0i16;
    for i in (0..32).rev() {
        let d = i16::from(N[i]) - i16::from(sig[32 + i]) - borrow;
        borrow = i16::from(d < 0);
        sig[32 + i] = d.rem_euclid(256) as u8;
    }
    let malleated = format!("{input}.{};{params}", b64.encode(&sig));
    assert_ne!(malleated, value);
    let chain = [s.leaf.der.clone()];
    verify(&v, &value, &req(), &chain, NOW).unwrap();
    let again = verify(&v, &malleated, &req(), &chain, NOW + 1).unwrap_err();
    assert!(matches!(again, Error::Replay), "{again:?}");
    // Checked on a fresh verifier: the re-encoded signature is valid, so
    // only the replay cache stops it.
    verify(&verifier(&s.ca), &malleated, &req(), &chain, NOW).unwrap();
}
