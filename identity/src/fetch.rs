//! Certificate fetching for `Identity-Info` and `x5u` (the tokio edge).
//!
//! A forged header must not make the node fetch arbitrary URLs, so a URL is
//! served only
//!
//! 1. from the local repository folder, when it holds a file named as the
//!    URL's last path segment (any host: the folder is the operator's
//!    statement of which certificates exist), or
//! 2. over the network, when its host is on the allowlist, by HTTPS (plain
//!    HTTP only when [`FetchConfig::allow_http`] is set), within a size and
//!    a time limit.
//!
//! Results are cached by URL until [`FetchConfig::cache_ttl`] passes.
//! Failures are not cached.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::error::{Error, FetchProblem, InfoProblem, Result};
use crate::rfc4474::Rfc4474Verifier;
use crate::rfc8224::StirVerifier;
use crate::sti::{ChainDigest, chain_digest};
use crate::verify::{RequestView, Standard, VerificationResult};

/// A fetched certificate chain, end-entity first.
pub type Chain = Arc<Vec<CertificateDer<'static>>>;

/// Settings of the certificate fetcher.
#[derive(Debug, Clone)]
pub struct FetchConfig {
    /// Hosts that may be fetched from: `host` (any port) or `host:port`.
    pub allowed_hosts: Vec<String>,
    /// Local folder of certificates, looked up by the URL's last path segment.
    pub repository: Option<PathBuf>,
    /// Allow `http:` URLs (default: HTTPS only).
    pub allow_http: bool,
    /// Largest certificate body accepted, bytes (default 64 KiB).
    pub max_bytes: usize,
    /// Time limit of one fetch, connect to last byte (default 2 s).
    pub timeout: Duration,
    /// How long a fetched chain is reused (default 1 h).
    pub cache_ttl: Duration,
    /// Most URLs kept in the cache (default 1024).
    pub cache_capacity: usize,
    /// Trust anchors for the HTTPS servers that publish certificates.
    pub https_roots: Vec<CertificateDer<'static>>,
    /// Most network fetches in flight at once (default 16); further
    /// requests wait within their time limit, so a flood of forged headers
    /// cannot open unbounded connections.
    pub max_in_flight: usize,
}

impl Default for FetchConfig {
    fn default() -> Self {
        Self {
            allowed_hosts: Vec::new(),
            repository: None,
            allow_http: false,
            max_bytes: 64 * 1024,
            timeout: Duration::from_secs(2),
            cache_ttl: Duration::from_secs(3600),
            cache_capacity: 1024,
            https_roots: Vec::new(),
            max_in_flight: 16,
        }
    }
}

/// A URL split into the parts the fetcher needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertUrl {
    /// `true` for `https`.
    pub https: bool,
    /// Host, lower-case, without brackets for IPv6.
    pub host: String,
    /// Port (443/80 by default).
    pub port: u16,
    /// Path and query, starting with `/`.
    pub path: String,
}

impl CertUrl {
    /// Parses an absolute `http(s)` URL; no user info is allowed.
    pub fn parse(url: &str) -> Result<Self> {
        let bad = |reason| Error::BadInfo {
            url: url.to_owned(),
            reason,
        };
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| bad(InfoProblem::Syntax))?;
        let https = match scheme.to_ascii_lowercase().as_str() {
            "https" => true,
            "http" => false,
            _ => return Err(bad(InfoProblem::Scheme)),
        };
        let (authority, path) = match rest.find(['/', '?', '#']) {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        let path = path.split('#').next().unwrap_or("/");
        let path = if path.starts_with('/') {
            path.to_owned()
        } else {
            format!("/{path}")
        };
        if authority.is_empty()
            || authority.contains('@')
            || path.bytes().any(|b| b <= b' ' || b == 0x7f)
        {
            return Err(bad(InfoProblem::Syntax));
        }
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (host, after) = v6.split_once(']').ok_or_else(|| bad(InfoProblem::Syntax))?;
            (host, after.strip_prefix(':'))
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (authority, None),
            }
        };
        let port = match port {
            Some(p) => p.parse().map_err(|_| bad(InfoProblem::Syntax))?,
            None if https => 443,
            None => 80,
        };
        if host.is_empty()
            || !host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b':' | b'_'))
        {
            return Err(bad(InfoProblem::Syntax));
        }
        Ok(Self {
            https,
            host: host.to_ascii_lowercase(),
            port,
            path,
        })
    }

    /// The last path segment (before any query), if it is a plain file name.
    pub fn file_name(&self) -> Option<&str> {
        let path = self.path.split('?').next()?;
        let name = path.rsplit('/').next()?;
        let ok = !name.is_empty()
            && !name.starts_with('.')
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'));
        ok.then_some(name)
    }
}

#[derive(Debug)]
struct Entry {
    chain: Chain,
    /// [`chain_digest`] of `chain`, computed once when it was fetched.
    digest: ChainDigest,
    expires: Instant,
}

/// Fetches and caches certificate chains (see the module docs).
#[derive(Debug)]
pub struct CertFetcher {
    config: FetchConfig,
    cache: Mutex<HashMap<String, Entry>>,
    tls: Option<Arc<rustls::ClientConfig>>,
    in_flight: tokio::sync::Semaphore,
}

impl CertFetcher {
    /// A fetcher with `config`.
    pub fn new(config: FetchConfig) -> Result<Self> {
        let tls = if config.https_roots.is_empty() {
            None
        } else {
            let mut roots = rustls::RootCertStore::empty();
            for root in &config.https_roots {
                roots.add(root.clone())?;
            }
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let tls = rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()?
                .with_root_certificates(roots)
                .with_no_client_auth();
            Some(Arc::new(tls))
        };
        Ok(Self {
            in_flight: tokio::sync::Semaphore::new(config.max_in_flight.max(1)),
            config,
            cache: Mutex::new(HashMap::new()),
            tls,
        })
    }

    /// The settings.
    pub fn config(&self) -> &FetchConfig {
        &self.config
    }

    /// How many URLs are cached.
    pub fn cached(&self) -> usize {
        self.cache.lock().len()
    }

    fn host_allowed(&self, url: &CertUrl) -> bool {
        self.config.allowed_hosts.iter().any(|allowed| {
            let allowed = allowed.trim().to_ascii_lowercase();
            let allowed = allowed.trim_start_matches('[');
            match allowed.rsplit_once(':') {
                Some((h, p)) if !h.contains(':') || h.ends_with(']') => {
                    h.trim_end_matches(']') == url.host && p.parse() == Ok(url.port)
                }
                _ => allowed.trim_end_matches(']') == url.host,
            }
        })
    }

    /// The chain for `url`, from the cache, the repository or the network.
    pub async fn fetch(&self, url: &str) -> Result<Chain> {
        self.fetch_with_digest(url).await.map(|(chain, _)| chain)
    }

    /// [`CertFetcher::fetch`] with the chain's [`chain_digest`], which the
    /// verifiers use to find the chain among those already verified.
    pub(crate) async fn fetch_with_digest(&self, url: &str) -> Result<(Chain, ChainDigest)> {
        let now = Instant::now();
        if let Some(entry) = self.cache.lock().get(url)
            && entry.expires > now
        {
            return Ok((entry.chain.clone(), entry.digest));
        }
        let parsed = CertUrl::parse(url)?;
        let body = self.fetch_body(url, &parsed).await?;
        let chain = crate::sti::parse_chain(&body).map_err(|_| Error::FetchFailed {
            url: url.to_owned(),
            reason: FetchProblem::NoCertificate,
        })?;
        let digest = chain_digest(&chain);
        let chain: Chain = Arc::new(chain);
        self.store(url, chain.clone(), digest, now);
        Ok((chain, digest))
    }

    fn store(&self, url: &str, chain: Chain, digest: ChainDigest, now: Instant) {
        let mut cache = self.cache.lock();
        if cache.len() >= self.config.cache_capacity {
            cache.retain(|_, e| e.expires > now);
        }
        while cache.len() >= self.config.cache_capacity.max(1) {
            let Some(oldest) = cache
                .iter()
                .min_by_key(|(_, e)| e.expires)
                .map(|(k, _)| k.clone())
            else {
                break;
            };
            cache.remove(&oldest);
        }
        cache.insert(
            url.to_owned(),
            Entry {
                chain,
                digest,
                expires: now + self.config.cache_ttl,
            },
        );
    }

    async fn fetch_body(&self, url: &str, parsed: &CertUrl) -> Result<Vec<u8>> {
        let failed = |reason| Error::FetchFailed {
            url: url.to_owned(),
            reason,
        };
        if let Some(dir) = &self.config.repository
            && let Some(name) = parsed.file_name()
        {
            let path = dir.join(name);
            match tokio::fs::metadata(&path).await {
                Ok(meta) if meta.is_file() => {
                    if meta.len() > self.config.max_bytes as u64 {
                        return Err(failed(FetchProblem::TooLarge));
                    }
                    return tokio::fs::read(&path).await.map_err(|source| Error::Io {
                        path: path.display().to_string(),
                        source,
                    });
                }
                _ if !self.host_allowed(parsed) => return Err(failed(FetchProblem::NotFound)),
                _ => {}
            }
        }
        if !self.host_allowed(parsed) {
            return Err(Error::BadInfo {
                url: url.to_owned(),
                reason: InfoProblem::NotAllowed,
            });
        }
        if !parsed.https && !self.config.allow_http {
            return Err(Error::BadInfo {
                url: url.to_owned(),
                reason: InfoProblem::Scheme,
            });
        }
        // The time allowed covers the wait for a slot too; a fetch whose
        // time ran out while it waited gives up without connecting (its
        // timeout would otherwise be noticed only after the connect began).
        let deadline = Instant::now() + self.config.timeout;
        let fetch = async {
            let _permit = self
                .in_flight
                .acquire()
                .await
                .map_err(|_| FetchProblem::Transport)?;
            if Instant::now() >= deadline {
                return Err(FetchProblem::Timeout);
            }
            self.get(parsed).await
        };
        match tokio::time::timeout_at(deadline, fetch).await {
            Ok(result) => result.map_err(failed),
            Err(_) => Err(failed(FetchProblem::Timeout)),
        }
    }

    async fn get(&self, url: &CertUrl) -> Result<Vec<u8>, FetchProblem> {
        let tcp = TcpStream::connect((url.host.as_str(), url.port))
            .await
            .map_err(|_| FetchProblem::Transport)?;
        if url.https {
            let tls =
                tokio_rustls::TlsConnector::from(self.tls.clone().ok_or(FetchProblem::Transport)?);
            let name =
                ServerName::try_from(url.host.clone()).map_err(|_| FetchProblem::Transport)?;
            let stream = tls
                .connect(name, tcp)
                .await
                .map_err(|_| FetchProblem::Transport)?;
            http_get(stream, url, self.config.max_bytes).await
        } else {
            http_get(tcp, url, self.config.max_bytes).await
        }
    }
}

/// Largest response head accepted.
const MAX_HEAD: usize = 8 * 1024;

/// A minimal HTTP/1.1 GET with `Connection: close`; returns the body of a
/// 200 response (identity or chunked encoding), at most `max_bytes`.
async fn http_get<S>(
    mut stream: S,
    url: &CertUrl,
    max_bytes: usize,
) -> Result<Vec<u8>, FetchProblem>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let default_port = if url.https { 443 } else { 80 };
    let host = if url.host.contains(':') {
        format!("[{}]", url.host)
    } else {
        url.host.clone()
    };
    let host = if url.port == default_port {
        host
    } else {
        format!("{host}:{}", url.port)
    };
    let request = format!(
        "GET {} HTTP/1.1\r\nHost: {host}\r\nAccept: application/pem-certificate-chain, application/pkix-cert, */*\r\nUser-Agent: peering-identity\r\nConnection: close\r\n\r\n",
        url.path
    );
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(|_| FetchProblem::Transport)?;
    stream.flush().await.map_err(|_| FetchProblem::Transport)?;
    let limit = MAX_HEAD + max_bytes + 64;
    let mut buf = Vec::with_capacity(4096);
    let mut chunk = [0u8; 4096];
    loop {
        let n = match stream.read(&mut chunk).await {
            Ok(n) => n,
            // Servers often close TLS without close_notify after the body.
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => 0,
            Err(_) => return Err(FetchProblem::Transport),
        };
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
        if buf.len() > limit {
            return Err(FetchProblem::TooLarge);
        }
        if let Some(body) = complete_body(&buf, max_bytes)? {
            return Ok(body);
        }
    }
    match complete_body(&buf, max_bytes)? {
        Some(body) => Ok(body),
        None => {
            // Connection closed: without a length the rest is the body.
            let (status, headers, start) = parse_head(&buf)?.ok_or(FetchProblem::BadResponse)?;
            if status != 200 {
                return Err(FetchProblem::Status(status));
            }
            if headers.chunked || headers.content_length.is_some() {
                return Err(FetchProblem::BadResponse);
            }
            let body = &buf[start..];
            if body.len() > max_bytes {
                return Err(FetchProblem::TooLarge);
            }
            Ok(body.to_vec())
        }
    }
}

struct Head {
    content_length: Option<usize>,
    chunked: bool,
}

fn parse_head(buf: &[u8]) -> Result<Option<(u16, Head, usize)>, FetchProblem> {
    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
        if buf.len() > MAX_HEAD {
            return Err(FetchProblem::BadResponse);
        }
        return Ok(None);
    };
    let head = std::str::from_utf8(&buf[..end]).map_err(|_| FetchProblem::BadResponse)?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().ok_or(FetchProblem::BadResponse)?;
    let mut parts = status_line.splitn(3, ' ');
    let version = parts.next().unwrap_or_default();
    if !version.starts_with("HTTP/1.") {
        return Err(FetchProblem::BadResponse);
    }
    let status: u16 = parts
        .next()
        .and_then(|s| s.parse().ok())
        .ok_or(FetchProblem::BadResponse)?;
    let mut headers = Head {
        content_length: None,
        chunked: false,
    };
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            headers.content_length = Some(value.parse().map_err(|_| FetchProblem::BadResponse)?);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            headers.chunked = value.to_ascii_lowercase().contains("chunked");
        }
    }
    Ok(Some((status, headers, end + 4)))
}

/// The body once the response is complete (by Content-Length or chunked).
fn complete_body(buf: &[u8], max_bytes: usize) -> Result<Option<Vec<u8>>, FetchProblem> {
    let Some((status, head, start)) = parse_head(buf)? else {
        return Ok(None);
    };
    if status != 200 {
        return Err(FetchProblem::Status(status));
    }
    let body = &buf[start..];
    if head.chunked {
        return dechunk(body, max_bytes);
    }
    match head.content_length {
        Some(len) if len > max_bytes => Err(FetchProblem::TooLarge),
        Some(len) if body.len() >= len => Ok(Some(body[..len].to_vec())),
        _ => Ok(None),
    }
}

fn dechunk(mut body: &[u8], max_bytes: usize) -> Result<Option<Vec<u8>>, FetchProblem> {
    let mut out = Vec::new();
    loop {
        let Some(eol) = body.windows(2).position(|w| w == b"\r\n") else {
            return Ok(None);
        };
        let size_line = std::str::from_utf8(&body[..eol]).map_err(|_| FetchProblem::BadResponse)?;
        let size_hex = size_line.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_hex, 16).map_err(|_| FetchProblem::BadResponse)?;
        if size == 0 {
            return Ok(Some(out));
        }
        if out.len() + size > max_bytes {
            return Err(FetchProblem::TooLarge);
        }
        let data_start = eol + 2;
        if body.len() < data_start + size + 2 {
            return Ok(None);
        }
        out.extend_from_slice(&body[data_start..data_start + size]);
        body = &body[data_start + size + 2..];
    }
}

/// Verifies an RFC 8224 Identity, fetching its certificate with `fetcher`.
pub async fn verify_stir(
    verifier: &StirVerifier,
    fetcher: &CertFetcher,
    identity: &str,
    req: &RequestView<'_>,
    now: u64,
) -> VerificationResult {
    let outcome = match verifier.prepare(identity, req, now) {
        Ok(pending) => match fetcher.fetch_with_digest(pending.cert_url()).await {
            Ok((chain, digest)) => verifier.verify_fetched(&pending, &chain, &digest, req, now),
            Err(e) => Err(e),
        },
        Err(e) => Err(e),
    };
    VerificationResult {
        standard: Standard::Rfc8224,
        outcome,
    }
}

/// Verifies an RFC 4474 Identity, fetching its certificate with `fetcher`.
pub async fn verify_rfc4474(
    verifier: &Rfc4474Verifier,
    fetcher: &CertFetcher,
    identity: Option<&str>,
    identity_info: Option<&str>,
    req: &RequestView<'_>,
    now: u64,
) -> VerificationResult {
    let outcome = match verifier.prepare(identity, identity_info, req, now) {
        Ok(pending) => match fetcher.fetch(pending.cert_url()).await {
            Ok(chain) => verifier.verify(&pending, &chain, req, now),
            Err(e) => Err(e),
        },
        Err(e) => Err(e),
    };
    VerificationResult {
        standard: Standard::Rfc4474,
        outcome,
    }
}
