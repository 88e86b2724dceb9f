//! Certificate fetching: local repository, allowlist, HTTPS only unless
//! configured, size and time limits, cache; and verification through it.

mod support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use peering_identity::fetch::{CertFetcher, CertUrl, FetchConfig, verify_stir};
use peering_identity::passport::{Attestation, Signer};
use peering_identity::rfc8224::{StirConfig, StirSigner, StirVerifier};
use peering_identity::sti::CertTrust;
use peering_identity::{Error, FetchProblem, InfoProblem, RequestView};
use support::pki;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

#[derive(Clone)]
enum Reply {
    Body(Vec<u8>),
    Chunked(Vec<u8>),
    Status(u16),
    Stall,
}

/// A one-response-per-connection HTTP(S) server on loopback; counts requests.
async fn serve(
    reply: Reply,
    tls: Option<Arc<rustls::ServerConfig>>,
) -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            counter.fetch_add(1, Ordering::SeqCst);
            let reply = reply.clone();
            let tls = tls.clone();
            tokio::spawn(async move {
                match tls {
                    Some(cfg) => {
                        if let Ok(s) = tokio_rustls::TlsAcceptor::from(cfg).accept(tcp).await {
                            respond(s, reply).await;
                        }
                    }
                    None => respond(tcp, reply).await,
                }
            });
        }
    });
    (addr, hits)
}

async fn respond<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(mut s: S, reply: Reply) {
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if s.read(&mut b).await.unwrap_or(0) == 0 {
            return;
        }
        head.push(b[0]);
    }
    assert!(
        head.starts_with(b"GET /"),
        "{}",
        String::from_utf8_lossy(&head)
    );
    let out = match reply {
        Reply::Body(body) => {
            let mut out = format!("HTTP/1.1 200 OK\r\nContent-Type: application/x-pem-file\r\nContent-Length: {}\r\n\r\n", body.len()).into_bytes();
            out.extend(body);
            out
        }
        Reply::Chunked(body) => {
            let mut out = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
            for piece in body.chunks(100) {
                out.extend(format!("{:x}\r\n", piece.len()).into_bytes());
                out.extend(piece);
                out.extend(b"\r\n");
            }
            out.extend(b"0\r\n\r\n");
            out
        }
        Reply::Status(code) => {
            format!("HTTP/1.1 {code} Nope\r\nContent-Length: 0\r\n\r\n").into_bytes()
        }
        Reply::Stall => {
            tokio::time::sleep(Duration::from_secs(10)).await;
            return;
        }
    };
    let _ = s.write_all(&out).await;
    let _ = s.shutdown().await;
}

fn https_server_config(ca: &pki::Ca) -> Arc<rustls::ServerConfig> {
    let leaf = ca.leaf(
        "127.0.0.1",
        &[rcgen::SanType::IpAddress("127.0.0.1".parse().unwrap())],
        |_| {},
    );
    let key = peering_identity::tls::key_from_pem(leaf.key_pem.as_bytes()).unwrap();
    let cfg = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![leaf.der.clone()], key)
    .unwrap();
    Arc::new(cfg)
}

fn fail_reason(e: &Error) -> Option<FetchProblem> {
    match e {
        Error::FetchFailed { reason, .. } => Some(*reason),
        _ => None,
    }
}

#[test]
fn url_parsing() {
    let u = CertUrl::parse("https://Cert.Example:8443/a/b/sp-1.pem?x=1").unwrap();
    assert_eq!(
        (u.host.as_str(), u.port, u.path.as_str()),
        ("cert.example", 8443, "/a/b/sp-1.pem?x=1")
    );
    assert_eq!(u.file_name(), Some("sp-1.pem"));
    assert_eq!(CertUrl::parse("http://[::1]/x").unwrap().host, "::1");
    assert!(CertUrl::parse("https://user@host/x").is_err());
    assert!(CertUrl::parse("ftp://host/x").is_err());
    assert_eq!(CertUrl::parse("https://h/../..").unwrap().file_name(), None);
    assert_eq!(CertUrl::parse("https://h/").unwrap().file_name(), None);
}

#[tokio::test]
async fn local_repository_serves_by_last_segment_and_caches() {
    let dir = tempfile::tempdir().unwrap();
    let ca = pki::Ca::new("STI-CA");
    let leaf = ca.leaf("sp", &[], |_| {});
    std::fs::write(dir.path().join("sp-1234.pem"), &leaf.pem).unwrap();
    let fetcher = CertFetcher::new(FetchConfig {
        repository: Some(dir.path().to_owned()),
        ..FetchConfig::default()
    })
    .unwrap();
    let chain = fetcher
        .fetch("https://anywhere.example/certs/sp-1234.pem")
        .await
        .unwrap();
    assert_eq!(chain[0], leaf.der);
    // Cached: the file can go away.
    std::fs::remove_file(dir.path().join("sp-1234.pem")).unwrap();
    assert!(
        fetcher
            .fetch("https://anywhere.example/certs/sp-1234.pem")
            .await
            .is_ok()
    );
    assert_eq!(fetcher.cached(), 1);
    // Unknown files of a host not on the allowlist are not fetched: 436.
    let err = fetcher
        .fetch("https://anywhere.example/certs/other.pem")
        .await
        .unwrap_err();
    assert_eq!(fail_reason(&err), Some(FetchProblem::NotFound));
    assert_eq!(err.status(), (436, "Bad Identity Info"));
    // Traversal is not a file name.
    std::fs::write(dir.path().join("secret"), "x").unwrap();
    let err = fetcher
        .fetch("https://anywhere.example/..%2Fsecret/..")
        .await
        .unwrap_err();
    assert_eq!(err.status().0, 436);
}

#[tokio::test]
async fn allowlist_and_scheme_rules() {
    let ca = pki::Ca::new("STI-CA");
    let leaf = ca.leaf("sp", &[], |_| {});
    let (addr, hits) = serve(Reply::Body(leaf.pem.clone().into_bytes()), None).await;
    let url = format!("http://127.0.0.1:{}/sp.pem", addr.port());
    // Not allowlisted: never contacted.
    let fetcher = CertFetcher::new(FetchConfig {
        allow_http: true,
        ..FetchConfig::default()
    })
    .unwrap();
    let err = fetcher.fetch(&url).await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::BadInfo {
                reason: InfoProblem::NotAllowed,
                ..
            }
        ),
        "{err:?}"
    );
    // Allowlisted but plain HTTP not enabled.
    let fetcher = CertFetcher::new(FetchConfig {
        allowed_hosts: vec![format!("127.0.0.1:{}", addr.port())],
        ..FetchConfig::default()
    })
    .unwrap();
    let err = fetcher.fetch(&url).await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::BadInfo {
                reason: InfoProblem::Scheme,
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(hits.load(Ordering::SeqCst), 0);
    // Both: fetched once, then cached.
    let fetcher = CertFetcher::new(FetchConfig {
        allowed_hosts: vec!["127.0.0.1".into()],
        allow_http: true,
        ..FetchConfig::default()
    })
    .unwrap();
    assert_eq!(fetcher.fetch(&url).await.unwrap()[0], leaf.der);
    assert_eq!(fetcher.fetch(&url).await.unwrap()[0], leaf.der);
    assert_eq!(hits.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn https_fetch_with_chunked_body() {
    let ca = pki::Ca::new("Web CA");
    let sti = pki::Ca::new("STI-CA");
    let leaf = sti.leaf("sp", &[], |_| {});
    let bundle = format!("{}{}", leaf.pem, sti.pem());
    let (addr, _) = serve(
        Reply::Chunked(bundle.into_bytes()),
        Some(https_server_config(&ca)),
    )
    .await;
    let fetcher = CertFetcher::new(FetchConfig {
        allowed_hosts: vec!["127.0.0.1".into()],
        https_roots: vec![ca.der()],
        ..FetchConfig::default()
    })
    .unwrap();
    let chain = fetcher
        .fetch(&format!("https://127.0.0.1:{}/sp.pem", addr.port()))
        .await
        .unwrap();
    assert_eq!(chain.len(), 2);
    // An HTTPS server with an untrusted certificate fails as transport.
    let (addr, _) = serve(
        Reply::Body(leaf.pem.clone().into_bytes()),
        Some(https_server_config(&pki::Ca::new("Other"))),
    )
    .await;
    let err = fetcher
        .fetch(&format!("https://127.0.0.1:{}/sp.pem", addr.port()))
        .await
        .unwrap_err();
    assert_eq!(fail_reason(&err), Some(FetchProblem::Transport));
}

#[tokio::test]
async fn size_time_and_status_limits() {
    let config = |max_bytes| FetchConfig {
        allowed_hosts: vec!["127.0.0.1".into()],
        allow_http: true,
        max_bytes,
        timeout: Duration::from_millis(300),
        ..FetchConfig::default()
    };
    let (addr, _) = serve(Reply::Body(vec![b'A'; 10_000]), None).await;
    let err = CertFetcher::new(config(4096))
        .unwrap()
        .fetch(&format!("http://127.0.0.1:{}/big.pem", addr.port()))
        .await
        .unwrap_err();
    assert_eq!(fail_reason(&err), Some(FetchProblem::TooLarge));
    let (addr, _) = serve(Reply::Chunked(vec![b'A'; 10_000]), None).await;
    let err = CertFetcher::new(config(4096))
        .unwrap()
        .fetch(&format!("http://127.0.0.1:{}/big.pem", addr.port()))
        .await
        .unwrap_err();
    assert_eq!(fail_reason(&err), Some(FetchProblem::TooLarge));
    let (addr, _) = serve(Reply::Stall, None).await;
    let err = CertFetcher::new(config(4096))
        .unwrap()
        .fetch(&format!("http://127.0.0.1:{}/slow.pem", addr.port()))
        .await
        .unwrap_err();
    assert_eq!(fail_reason(&err), Some(FetchProblem::Timeout));
    // With one fetch in flight allowed, a second one to a stalling server
    // waits and times out too, without opening a second connection.
    let fetcher = Arc::new(
        CertFetcher::new(FetchConfig {
            max_in_flight: 1,
            ..config(4096)
        })
        .unwrap(),
    );
    let (addr, hits) = serve(Reply::Stall, None).await;
    let (url_a, url_b) = (
        format!("http://127.0.0.1:{}/a.pem", addr.port()),
        format!("http://127.0.0.1:{}/b.pem", addr.port()),
    );
    let (a, b) = tokio::join!(fetcher.fetch(&url_a), fetcher.fetch(&url_b));
    assert_eq!(fail_reason(&a.unwrap_err()), Some(FetchProblem::Timeout));
    assert_eq!(fail_reason(&b.unwrap_err()), Some(FetchProblem::Timeout));
    assert_eq!(hits.load(Ordering::SeqCst), 1);
    let (addr, _) = serve(Reply::Status(404), None).await;
    let err = CertFetcher::new(config(4096))
        .unwrap()
        .fetch(&format!("http://127.0.0.1:{}/none.pem", addr.port()))
        .await
        .unwrap_err();
    assert_eq!(fail_reason(&err), Some(FetchProblem::Status(404)));
    let (addr, _) = serve(Reply::Body(b"not a certificate".to_vec()), None).await;
    let err = CertFetcher::new(config(4096))
        .unwrap()
        .fetch(&format!("http://127.0.0.1:{}/junk.pem", addr.port()))
        .await
        .unwrap_err();
    assert_eq!(fail_reason(&err), Some(FetchProblem::NoCertificate));
    assert_eq!(err.status().0, 436);
}

#[tokio::test]
async fn verification_through_the_fetcher() {
    let dir = tempfile::tempdir().unwrap();
    let ca = pki::Ca::new("STI-CA");
    let leaf = ca.leaf("sp", &[], |_| {});
    std::fs::write(dir.path().join("sp.pem"), &leaf.pem).unwrap();
    let fetcher = CertFetcher::new(FetchConfig {
        repository: Some(dir.path().to_owned()),
        ..FetchConfig::default()
    })
    .unwrap();
    // Trust anchors from a folder, as a node configuration names it.
    let ca_dir = tempfile::tempdir().unwrap();
    std::fs::write(ca_dir.path().join("sti-ca.pem"), ca.pem()).unwrap();
    std::fs::write(ca_dir.path().join("README"), "not a certificate").unwrap();
    let mut trust = CertTrust::new();
    assert_eq!(trust.load_dir(ca_dir.path()).unwrap(), 1);
    let verifier = StirVerifier::new(trust, StirConfig::default());
    let req = RequestView {
        from: "<sip:+4930123456@a.example>",
        to: "<sip:+4940654321@b.example>",
        ..RequestView::default()
    };
    let now = support::now();
    let signer =
        StirSigner::new(Signer::from_pem(&leaf.key_pem, "https://sti.example/sp.pem").unwrap());
    let identity = signer
        .sign_shaken(
            &req,
            Attestation::A,
            "c0ffee00-0000-4000-8000-000000000000",
            now,
        )
        .unwrap();
    let result = verify_stir(&verifier, &fetcher, &identity, &req, now).await;
    assert!(result.is_valid(), "{:?}", result.outcome);
    assert_eq!(result.attestation(), Some(Attestation::A));
    // An x5u outside the repository and the allowlist: 436, nothing fetched.
    let rogue =
        StirSigner::new(Signer::from_pem(&leaf.key_pem, "https://evil.example/x.pem").unwrap());
    let identity = rogue
        .sign_shaken(
            &req,
            Attestation::A,
            "c0ffee00-0000-4000-8000-000000000001",
            now,
        )
        .unwrap();
    let result = verify_stir(&verifier, &fetcher, &identity, &req, now).await;
    assert_eq!(result.status(), Some((436, "Bad Identity Info")));
}
