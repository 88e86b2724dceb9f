//! The tokio edge: ENUM lookups and RFC 3263 server location over DNS with
//! hickory-resolver, through the crate's cache.
//!
//! ```text
//! CalledNumber ──► for each suffix: NAPTR(enum domain) ──► NaptrWalk ──► SIP URIs
//! SIP URI ──► rfc3263::plan ──► NAPTR(host) ─► SRV ─► A/AAAA ──► Targets
//! ```

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use hickory_resolver::TokioResolver;
use hickory_resolver::config::{
    ConnectionConfig, NameServerConfig, ResolveHosts, ResolverConfig, ResolverOpts,
};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::net::{DnsError, NetError};
use hickory_resolver::proto::op::ResponseCode;
use hickory_resolver::proto::rr::{Name, RData, RecordType};

use crate::cache::{Cached, SharedCache, negative_ttl};
use crate::e164::{CalledNumber, CalledUri};
use crate::error::{Error, Result};
use crate::naptr::{NaptrRecord, NaptrWalk, RegexpCache};
use crate::rfc3263::{self, Plan, SipUri, SrvQuery, SrvRecord, Target, Transport};

/// How the resolver finds numbers and servers.
#[derive(Debug, Clone)]
pub struct EnumConfig {
    /// ENUM suffixes, asked in order (e.g. the federation's tree, then
    /// `e164.arpa`).
    pub suffixes: Vec<String>,
    /// The DNS server to ask (UDP, with TCP on truncation).
    pub server: SocketAddr,
    /// How long to wait for one DNS answer.
    pub timeout: Duration,
    /// Extra tries after a timeout.
    pub attempts: usize,
    /// The longest chain of non-terminal NAPTRs to follow.
    pub max_chain: usize,
    /// How many DNS answers to cache.
    pub cache_capacity: usize,
    /// The longest time to keep a positive answer.
    pub max_positive_ttl: Duration,
    /// The longest time to keep a negative answer (RFC 2308 §5 suggests
    /// one to three hours).
    pub max_negative_ttl: Duration,
    /// The transports this node speaks, in order of preference, for SRV
    /// lookups without NAPTR.
    pub transports: Vec<Transport>,
}

impl EnumConfig {
    /// Defaults for a server and suffixes: 2 s timeout, one retry, chains
    /// of 5, 10 000 cached answers, one day / three hours TTL caps,
    /// UDP then TCP then TLS.
    pub fn new(server: SocketAddr, suffixes: Vec<String>) -> Self {
        Self {
            suffixes,
            server,
            timeout: Duration::from_secs(2),
            attempts: 1,
            max_chain: crate::naptr::DEFAULT_MAX_DEPTH,
            cache_capacity: 10_000,
            max_positive_ttl: Duration::from_secs(86_400),
            max_negative_ttl: Duration::from_secs(10_800),
            transports: vec![Transport::Udp, Transport::Tcp, Transport::Tls],
        }
    }
}

/// A place to send the call, with the URI ENUM gave for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedTarget {
    /// The SIP URI from the NAPTR result: the new Request-URI.
    pub uri: String,
    /// Where to send it.
    pub target: Target,
}

/// A typed DNS answer, as cached.
#[derive(Debug, Clone)]
enum Answer {
    Naptr(Vec<NaptrRecord>),
    Srv(Vec<SrvRecord>),
    Addrs(Vec<IpAddr>),
}

type Key = (String, u16);

/// The NAPTR records of an answer (none for an answer of another type).
fn naptr_records(answer: &Answer) -> &[NaptrRecord] {
    match answer {
        Answer::Naptr(records) => records,
        _ => &[],
    }
}

struct Inner {
    config: EnumConfig,
    dns: TokioResolver,
    cache: SharedCache<Key, Arc<Answer>>,
    regexps: Arc<RegexpCache>,
}

/// Resolves called numbers to ordered SIP targets. Cheap to clone; clones
/// share the cache.
#[derive(Clone)]
pub struct EnumResolver {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for EnumResolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EnumResolver")
            .field("config", &self.inner.config)
            .field("cached", &self.inner.cache.len())
            .finish()
    }
}

impl EnumResolver {
    /// A resolver asking `config.server`. Must be called inside a tokio
    /// runtime.
    pub fn new(config: EnumConfig) -> Result<Self> {
        let mut udp = ConnectionConfig::udp();
        udp.port = config.server.port();
        let mut tcp = ConnectionConfig::tcp();
        tcp.port = config.server.port();
        let ns = NameServerConfig::new(config.server.ip(), true, vec![udp, tcp]);
        let mut opts = ResolverOpts::default();
        opts.timeout = config.timeout;
        opts.attempts = config.attempts;
        // This crate caches (with RFC 2308 rules and single flight).
        opts.cache_size = 0;
        opts.use_hosts_file = ResolveHosts::Never;
        opts.ndots = 0;
        opts.num_concurrent_reqs = 1;
        opts.preserve_intermediates = false;
        let mut builder = TokioResolver::builder_with_config(
            ResolverConfig::from_name_servers(vec![ns]),
            TokioRuntimeProvider::default(),
        );
        *builder.options_mut() = opts;
        let dns = builder
            .build()
            .map_err(|e| net_error("", config.server, e))?;
        Ok(Self {
            inner: Arc::new(Inner {
                cache: SharedCache::new(config.cache_capacity),
                regexps: Arc::new(RegexpCache::new(config.cache_capacity)),
                config,
                dns,
            }),
        })
    }

    /// The configuration in use.
    pub fn config(&self) -> &EnumConfig {
        &self.inner.config
    }

    /// Drops every cached answer.
    pub fn clear_cache(&self) {
        self.inner.cache.clear();
    }

    /// How many DNS answers are cached (positive and negative).
    pub fn cached(&self) -> usize {
        self.inner.cache.len()
    }

    /// Takes the called number from a split Request-URI and resolves it:
    /// [`CalledNumber::from_uri`] then [`resolve`](Self::resolve).
    pub async fn resolve_uri(&self, uri: &CalledUri<'_>) -> Result<Vec<ResolvedTarget>> {
        let called = CalledNumber::from_uri(uri)?;
        self.resolve(&called).await
    }

    /// ENUM and RFC 3263 together: the ordered targets for a called number.
    /// URIs whose server does not resolve are left out; if none resolves,
    /// the first failure is returned.
    pub async fn resolve(&self, called: &CalledNumber) -> Result<Vec<ResolvedTarget>> {
        let uris = self.lookup_uris(called).await?;
        let mut out = Vec::new();
        let mut first_error = None;
        for uri in uris {
            match self.locate(&uri).await {
                Ok(targets) => out.extend(targets.into_iter().map(|target| ResolvedTarget {
                    uri: uri.clone(),
                    target,
                })),
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        match (out.is_empty(), first_error) {
            (true, Some(e)) => Err(e),
            _ => Ok(out),
        }
    }

    /// The ENUM step (RFC 6116): the ordered SIP URIs for a called number.
    /// The domain is built from the routing number (`rn` when present); the
    /// regexps are applied to the number dialled.
    pub async fn lookup_uris(&self, called: &CalledNumber) -> Result<Vec<String>> {
        let aus = called.number.aus();
        let mut saw_records = false;
        let mut failure = None;
        for suffix in &self.inner.config.suffixes {
            let domain = called.routing().enum_domain(suffix);
            let first = match self.naptr(&domain).await {
                Ok(Cached::Positive(answer)) if !naptr_records(&answer).is_empty() => answer,
                Ok(_) => continue,
                Err(e) => {
                    failure.get_or_insert(e);
                    continue;
                }
            };
            saw_records = true;
            let mut walk = NaptrWalk::new(&aus, &domain, self.inner.config.max_chain)
                .with_cache(self.inner.regexps.clone());
            walk.handle_answer(naptr_records(&first));
            while let Some(next) = walk.poll_query().map(str::to_owned) {
                match self.naptr(&next).await {
                    Ok(Cached::Positive(answer)) => walk.handle_answer(naptr_records(&answer)),
                    Ok(Cached::Negative(_)) => walk.handle_answer(&[]),
                    Err(e) => walk.handle_failure(e),
                }
            }
            match walk.finish() {
                Ok(uris) if !uris.is_empty() => return Ok(uris),
                Ok(_) => {}
                Err(e) => {
                    failure.get_or_insert(e);
                }
            }
        }
        if let Some(e) = failure {
            return Err(e);
        }
        let number = called.number.aus();
        Err(if saw_records {
            Error::NoSipRoute { number }
        } else {
            Error::NumberNotFound { number }
        })
    }

    /// The RFC 3263 step: where to send a request for `uri`, in order.
    pub async fn locate(&self, uri: &str) -> Result<Vec<Target>> {
        let parsed = SipUri::parse(uri)?;
        let plan = rfc3263::plan(&parsed, &self.inner.config.transports);
        let targets = self.run_plan(&plan).await?;
        if targets.is_empty() {
            return Err(Error::Unresolvable {
                host: parsed.target_host().to_owned(),
            });
        }
        Ok(targets)
    }

    async fn run_plan(&self, plan: &Plan) -> Result<Vec<Target>> {
        match plan {
            Plan::Numeric(target) => Ok(vec![*target]),
            Plan::Address {
                host,
                port,
                transport,
            } => self.addresses(host, *port, *transport, 0).await,
            Plan::Srv {
                queries,
                host,
                fallback,
            } => self.srv_then_address(queries, host, *fallback).await,
            Plan::Naptr { host, allowed, srv } => {
                let queries = match self.naptr(host).await? {
                    Cached::Positive(answer) => {
                        rfc3263::naptr_services(naptr_records(&answer), allowed)
                    }
                    Cached::Negative(_) => rfc3263::naptr_services(&[], allowed),
                };
                match (queries.is_empty(), srv.as_ref()) {
                    (false, Plan::Srv { host, fallback, .. }) => {
                        self.srv_then_address(&queries, host, *fallback).await
                    }
                    _ => Box::pin(self.run_plan(srv)).await,
                }
            }
        }
    }

    async fn srv_then_address(
        &self,
        queries: &[SrvQuery],
        host: &str,
        fallback: Transport,
    ) -> Result<Vec<Target>> {
        let mut out = Vec::new();
        let mut srv_found = false;
        for query in queries {
            let records = match self.lookup(&query.name, RecordType::SRV).await? {
                Cached::Positive(answer) => match answer.as_ref() {
                    Answer::Srv(records) => records.clone(),
                    _ => Vec::new(),
                },
                Cached::Negative(_) => continue,
            };
            // RFC 2782: a lone "." target says the service is decidedly not
            // available; that is still an SRV answer, so no A fallback.
            srv_found |= !records.is_empty();
            let ordered = rfc3263::order_srv(&records, &mut rand::rng());
            for srv in ordered {
                match self
                    .addresses(&srv.target, srv.port, query.transport, srv.priority)
                    .await
                {
                    Ok(targets) => out.extend(targets),
                    Err(e) if out.is_empty() && e.is_timeout() => return Err(e),
                    Err(_) => {}
                }
            }
        }
        if out.is_empty() && !srv_found {
            // RFC 3263 §4.2: no SRV records, so A/AAAA with the default port.
            return self
                .addresses(host, fallback.default_port(), fallback, 0)
                .await;
        }
        Ok(out)
    }

    async fn addresses(
        &self,
        host: &str,
        port: u16,
        transport: Transport,
        priority: u16,
    ) -> Result<Vec<Target>> {
        let mut out = Vec::new();
        let mut failure = None;
        for rtype in [RecordType::A, RecordType::AAAA] {
            match self.lookup(host, rtype).await {
                Ok(Cached::Positive(answer)) => {
                    if let Answer::Addrs(ips) = answer.as_ref() {
                        out.extend(ips.iter().map(|ip| Target {
                            transport,
                            addr: SocketAddr::new(*ip, port),
                            priority,
                        }));
                    }
                }
                Ok(Cached::Negative(_)) => {}
                Err(e) => {
                    failure.get_or_insert(e);
                }
            }
        }
        match (out.is_empty(), failure) {
            (true, Some(e)) => Err(e),
            _ => Ok(out),
        }
    }

    /// The NAPTR records of `name` as cached (shared, not copied: a warm
    /// lookup runs for every call); see [`naptr_records`].
    async fn naptr(&self, name: &str) -> Result<Cached<Arc<Answer>>> {
        self.lookup(name, RecordType::NAPTR).await
    }

    async fn lookup(&self, name: &str, rtype: RecordType) -> Result<Cached<Arc<Answer>>> {
        let mut fqdn = name.to_ascii_lowercase();
        if !fqdn.ends_with('.') {
            fqdn.push('.');
        }
        let key = (fqdn.clone(), u16::from(rtype));
        let inner = self.inner.clone();
        self.inner
            .cache
            .get_or_fetch(
                key,
                tokio::time::Instant::now().into_std(),
                move || async move { inner.fetch(&fqdn, rtype).await },
            )
            .await
    }
}

impl Inner {
    async fn fetch(
        &self,
        fqdn: &str,
        rtype: RecordType,
    ) -> Result<(Cached<Arc<Answer>>, Duration)> {
        let server = self.config.server;
        let name = Name::from_ascii(fqdn).map_err(|_| Error::DnsFailure {
            name: fqdn.to_owned(),
            rcode: u16::from(ResponseCode::FormErr),
        })?;
        match self.dns.lookup(name, rtype).await {
            Ok(lookup) => {
                let mut ttl = u32::MAX;
                let mut naptr = Vec::new();
                let mut srv = Vec::new();
                let mut addrs = Vec::new();
                for record in lookup.answers() {
                    let data = &record.data;
                    match data {
                        RData::NAPTR(n) if rtype == RecordType::NAPTR => {
                            naptr.push(NaptrRecord {
                                order: n.order,
                                preference: n.preference,
                                flags: String::from_utf8_lossy(&n.flags).into_owned(),
                                services: String::from_utf8_lossy(&n.services).into_owned(),
                                regexp: String::from_utf8_lossy(&n.regexp).into_owned(),
                                replacement: n.replacement.to_string(),
                            });
                        }
                        RData::SRV(s) if rtype == RecordType::SRV => srv.push(SrvRecord {
                            priority: s.priority,
                            weight: s.weight,
                            port: s.port,
                            target: s.target.to_string(),
                        }),
                        RData::A(a) if rtype == RecordType::A => addrs.push(IpAddr::V4(a.0)),
                        RData::AAAA(a) if rtype == RecordType::AAAA => {
                            addrs.push(IpAddr::V6(a.0));
                        }
                        _ => continue,
                    }
                    ttl = ttl.min(record.ttl);
                }
                let answer = match rtype {
                    RecordType::NAPTR => Answer::Naptr(naptr),
                    RecordType::SRV => Answer::Srv(srv),
                    _ => Answer::Addrs(addrs),
                };
                let ttl = if ttl == u32::MAX { 0 } else { ttl };
                let ttl = Duration::from_secs(u64::from(ttl)).min(self.config.max_positive_ttl);
                Ok((Cached::Positive(Arc::new(answer)), ttl))
            }
            Err(NetError::Dns(DnsError::NoRecordsFound(no))) => {
                let kind = if no.response_code == ResponseCode::NXDomain {
                    crate::cache::Negative::NxDomain
                } else {
                    crate::cache::Negative::NoData
                };
                // RFC 2308 §5: without an SOA, do not cache.
                let ttl = no.soa.as_ref().map_or(Duration::ZERO, |soa| {
                    negative_ttl(soa.ttl, soa.data.minimum, self.config.max_negative_ttl)
                });
                Ok((Cached::Negative(kind), ttl))
            }
            Err(e) => Err(net_error(fqdn, server, e)),
        }
    }
}

fn net_error(name: &str, server: SocketAddr, error: NetError) -> Error {
    let name = name.to_owned();
    match error {
        NetError::Timeout => Error::DnsTimeout { name, server },
        NetError::Dns(DnsError::ResponseCode(code)) => Error::DnsFailure {
            name,
            rcode: u16::from(code),
        },
        NetError::Io(_) | NetError::NoConnections => Error::DnsFailure {
            name,
            rcode: u16::from(ResponseCode::ServFail),
        },
        other => {
            tracing::debug!(%name, error = %other, "DNS lookup failed");
            Error::DnsFailure {
                name,
                rcode: u16::from(ResponseCode::ServFail),
            }
        }
    }
}
