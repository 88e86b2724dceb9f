//! Sign and verify throughput of both identity schemes.
//!
//! `cargo bench -p peering-identity --bench identity`
//!
//! `rfc8224_es256/ring_verify_bare` is the floor: ring's P-256 check of one
//! PASSporT signature, nothing else. `rfc8224_es256/verify_warm` is the
//! whole check as the node runs it (header, claims, certificate from a warm
//! fetcher cache, chain reuse, signature, TN authorization, replay cache).

use std::hint::black_box;
use std::process::Command;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use criterion::{Criterion, criterion_group, criterion_main};
use peering_identity::fetch::{CertFetcher, FetchConfig, verify_stir};
use peering_identity::passport::{Attestation, Signer};
use peering_identity::rfc4474::{Rfc4474Config, Rfc4474Signer, Rfc4474Verifier};
use peering_identity::rfc8224::{StirConfig, StirSigner, StirVerifier};
use peering_identity::sti::CertTrust;
use peering_identity::{RequestView, sip_date};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, SanType};

const NOW: u64 = 1_800_000_000;

fn ca() -> CertifiedIssuer<'static, KeyPair> {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params
        .distinguished_name
        .push(DnType::CommonName, "bench CA");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.not_before = rcgen::date_time_ymd(2020, 1, 1);
    params.not_after = rcgen::date_time_ymd(2090, 1, 1);
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    CertifiedIssuer::self_signed(params, key).unwrap()
}

fn leaf(
    ca: &CertifiedIssuer<'static, KeyPair>,
    key: &KeyPair,
    sans: Vec<SanType>,
) -> rustls_pki_types::CertificateDer<'static> {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.subject_alt_names = sans;
    params.not_before = rcgen::date_time_ymd(2020, 1, 1);
    params.not_after = rcgen::date_time_ymd(2090, 1, 1);
    params.signed_by(key, ca).unwrap().der().clone()
}

fn request(date: &str) -> RequestView<'_> {
    RequestView {
        from: "<sip:+12155550100@atlanta.example.com;user=phone>;tag=1",
        to: "<sip:+12155550101@biloxi.example.org;user=phone>",
        call_id: "a84b4c76e66710@pc33.atlanta.example.com",
        cseq: "314159 INVITE",
        date: Some(date),
        contact: Some("<sip:alice@pc33.atlanta.example.com>"),
        body: b"v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\nm=audio 49170 RTP/AVP 0\r\n",
    }
}

fn es256(c: &mut Criterion) {
    let ca = ca();
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let cert = leaf(&ca, &key, vec![]);
    let signer = StirSigner::new(
        Signer::from_pem(&key.serialize_pem(), "https://sti.example/sp.pem").unwrap(),
    );
    let mut trust = CertTrust::new();
    trust.add_pem(ca.pem().as_bytes()).unwrap();
    let verifier = StirVerifier::new(
        trust,
        StirConfig {
            replay_capacity: 1,
            ..StirConfig::default()
        },
    );
    let date = sip_date(NOW);
    let req = request(&date);
    let mut g = c.benchmark_group("rfc8224_es256");
    g.bench_function("sign", |b| {
        b.iter(|| {
            signer
                .sign_shaken(
                    black_box(&req),
                    Attestation::A,
                    "de305d54-75b4-431b-adb2-eb6b9e546014",
                    NOW,
                )
                .unwrap()
        })
    });
    // Verify includes header parsing, chain validation, signature and claims;
    // each iteration signs a fresh token outside the timing so the replay
    // cache never trips.
    let chain = vec![cert];
    g.bench_function("verify", |b| {
        let mut iat = NOW;
        b.iter_batched(
            || {
                iat += 1;
                (
                    signer
                        .sign_shaken(
                            &req,
                            Attestation::A,
                            "de305d54-75b4-431b-adb2-eb6b9e546014",
                            iat,
                        )
                        .unwrap(),
                    iat,
                )
            },
            |(identity, iat)| {
                let r = verifier.verify_with(&identity, &req, iat, |_| Ok(chain.clone()));
                assert!(r.is_valid());
            },
            criterion::BatchSize::SmallInput,
        )
    });
    // The floor: ring's P-256 verify of one signature over its signing input.
    let token = signer
        .sign_shaken(
            &req,
            Attestation::A,
            "de305d54-75b4-431b-adb2-eb6b9e546014",
            NOW,
        )
        .unwrap();
    let jws = token.split(';').next().unwrap();
    let (input, sig) = jws.rsplit_once('.').unwrap();
    let sig = B64.decode(sig).unwrap();
    let point = peering_identity::sti::describe(&chain[0])
        .unwrap()
        .public_key;
    g.bench_function("ring_verify_bare", |b| {
        b.iter(|| bare_verify(black_box(&point), black_box(input), black_box(&sig)))
    });
    // The same check with the key's table of multiples (made once, outside
    // the timing), as the verifier runs it for a key it has seen before.
    let key = peering_identity::p256::Es256Key::new(&point).unwrap();
    assert!(key.verify(input.as_bytes(), &sig));
    g.bench_function("table_verify_bare", |b| {
        b.iter(|| table_verify(&key, black_box(input), black_box(&sig)))
    });
    // The whole check as the node runs it, with the certificate in the
    // fetcher's cache (a local repository) and the chain verified before.
    // Distinct tokens (ECDSA signatures differ each time) cycle through a
    // pool larger than the replay cache, so nothing is a replay and nothing
    // is signed inside the timing.
    let dir =
        std::env::temp_dir().join(format!("peering-identity-bench-sti-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("sp.pem"), chain[0].as_ref()).unwrap();
    let fetcher = CertFetcher::new(FetchConfig {
        repository: Some(dir.clone()),
        ..FetchConfig::default()
    })
    .unwrap();
    let warm_verifier = StirVerifier::new(
        {
            let mut trust = CertTrust::new();
            trust.add_pem(ca.pem().as_bytes()).unwrap();
            trust
        },
        StirConfig {
            replay_capacity: 1024,
            ..StirConfig::default()
        },
    );
    let pool: Vec<String> = (0..4096)
        .map(|_| {
            signer
                .sign_shaken(
                    &req,
                    Attestation::A,
                    "de305d54-75b4-431b-adb2-eb6b9e546014",
                    NOW,
                )
                .unwrap()
        })
        .collect();
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let warm = rt.block_on(verify_stir(&warm_verifier, &fetcher, &pool[0], &req, NOW));
    assert!(warm.is_valid(), "{:?}", warm.outcome);
    std::fs::remove_dir_all(&dir).ok();
    // One position for all of criterion's runs: restarting it would replay.
    let mut i = 0usize;
    g.bench_function("verify_warm", |b| {
        b.iter(|| {
            i = (i + 1) % pool.len();
            warm_verify(
                &warm_verifier,
                &fetcher,
                black_box(&pool[i]),
                black_box(&req),
            );
        })
    });
    g.finish();
}

/// One bare ring verify (`--toggle-collect=*bare_verify*` under callgrind).
#[inline(never)]
fn bare_verify(point: &[u8], input: &str, sig: &[u8]) {
    ring::signature::UnparsedPublicKey::new(&ring::signature::ECDSA_P256_SHA256_FIXED, point)
        .verify(input.as_bytes(), sig)
        .unwrap()
}

/// One verify with the key's table (`--toggle-collect=*table_verify*`).
#[inline(never)]
fn table_verify(key: &peering_identity::p256::Es256Key, input: &str, sig: &[u8]) {
    assert!(key.verify(input.as_bytes(), sig));
}

/// One whole check, warm (`--toggle-collect=*warm_verify*` under callgrind).
#[inline(never)]
fn warm_verify(
    verifier: &StirVerifier,
    fetcher: &CertFetcher,
    identity: &str,
    req: &RequestView<'_>,
) {
    let r = poll_ready(verify_stir(verifier, fetcher, identity, req, NOW));
    assert!(r.is_valid(), "{:?}", r.outcome);
}

/// Runs a future that completes without waiting (a warm cache) on this
/// thread, without a runtime's scheduling in the timing.
fn poll_ready<F: Future>(f: F) -> F::Output {
    let mut f = std::pin::pin!(f);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    match f.as_mut().poll(&mut cx) {
        std::task::Poll::Ready(out) => out,
        std::task::Poll::Pending => panic!("the certificate cache is not warm"),
    }
}

fn rsa_sha256(c: &mut Criterion) {
    let dir = std::env::temp_dir().join(format!("peering-identity-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let key_path = dir.join("rsa.pem");
    let status = Command::new("openssl")
        .args([
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
            "-out",
        ])
        .arg(&key_path)
        .status()
        .expect("openssl is needed for the RSA bench key: apt-get install openssl");
    assert!(status.success());
    let key_pem = std::fs::read_to_string(&key_path).unwrap();
    std::fs::remove_dir_all(&dir).ok();
    let ca = ca();
    let key = KeyPair::from_pem(&key_pem).unwrap();
    let cert = leaf(
        &ca,
        &key,
        vec![SanType::DnsName("atlanta.example.com".try_into().unwrap())],
    );
    let signer = Rfc4474Signer::from_pem(&key_pem, "https://atlanta.example.com/cert.pem").unwrap();
    let mut trust = CertTrust::new();
    trust.add_pem(ca.pem().as_bytes()).unwrap();
    let verifier = Rfc4474Verifier::new(
        trust,
        Rfc4474Config {
            replay_capacity: 1,
            ..Rfc4474Config::default()
        },
    );
    let date = sip_date(NOW);
    let req = request(&date);
    let mut g = c.benchmark_group("rfc4474_rsa2048_sha256");
    g.bench_function("sign", |b| b.iter(|| signer.sign(black_box(&req)).unwrap()));
    let chain = vec![cert];
    let dates: Vec<String> = (0..4096).map(|i| sip_date(NOW + i)).collect();
    g.bench_function("verify", |b| {
        let mut i = 0usize;
        b.iter_batched(
            || {
                i = (i + 1) % dates.len();
                let req = request(&dates[i]);
                (signer.sign(&req).unwrap(), i)
            },
            |(headers, i)| {
                let req = request(&dates[i]);
                let r = verifier.verify_with(
                    Some(&headers.identity),
                    Some(&headers.identity_info),
                    &req,
                    NOW + i as u64,
                    |_| Ok(chain.clone()),
                );
                assert!(r.is_valid() || r.status() == Some((403, "Replayed Identity")));
            },
            criterion::BatchSize::SmallInput,
        )
    });
    g.finish();
}

criterion_group!(benches, es256, rsa_sha256);
criterion_main!(benches);
