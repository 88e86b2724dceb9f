//! Node configuration: a TOML file read with serde, with defaults that serve
//! a single machine when no file is given at all.
//!
//! Every key is documented in `docs/configuration.md`; keep the two in step.
//! Relative paths in a file resolve against the folder of that file.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

#[cfg(test)]
mod tests;

/// Errors met while loading or checking a configuration.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not valid TOML, or has unknown or mistyped keys.
    #[error("{path}: {source}")]
    Syntax {
        /// The file.
        path: PathBuf,
        /// What serde/toml said, with line and column.
        source: Box<toml::de::Error>,
    },
    /// A value is well-formed TOML but not acceptable.
    #[error("invalid value for `{key}`: {reason}")]
    Invalid {
        /// The dotted key.
        key: String,
        /// Why it is rejected.
        reason: String,
    },
}

/// The whole configuration of a node.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// `[node]`: identity and lifecycle of this node.
    #[serde(default)]
    pub node: NodeSection,
    /// `[sip]`: listeners and SIP behaviour.
    #[serde(default)]
    pub sip: SipSection,
    /// `[tls]`: certificate and key for TLS listeners and outbound TLS.
    #[serde(default)]
    pub tls: Option<TlsSection>,
    /// `[timers]`: RFC 3261 timer base values.
    #[serde(default)]
    pub timers: TimersSection,
    /// `[enum]`: ENUM routing of telephone numbers.
    #[serde(default, rename = "enum")]
    pub enum_routing: Option<crate::enum_routing::EnumSection>,
    /// `[identity]`: peer authentication, P-Asserted-Identity trust and
    /// caller identity (STIR/SHAKEN, RFC 4474); see `docs/identity.md`.
    #[serde(default)]
    pub identity: Option<crate::identity::IdentitySection>,
    /// `[[route]]`: the static routing table.
    #[serde(default, rename = "route")]
    pub routes: Vec<RouteEntry>,
    /// `[store]`: where the federation registry and the ENUM zone live.
    #[serde(default)]
    pub store: StoreSection,
    /// `[enum_zone]`: the federation's ENUM zone, served from the store.
    #[serde(default)]
    pub enum_zone: Option<crate::zone_service::ZoneSection>,
    /// `[policy]`: federation policy from the registry in the store
    /// (admission, limits, flood and SPIT defence). Without it the node
    /// routes by its table and ENUM only.
    #[serde(default)]
    pub policy: Option<peering_policy::config::PolicyConfig>,
    /// `[admin]`: the admin HTTP API (health and metrics).
    #[serde(default)]
    pub admin: AdminSection,
    /// `[log]`: logging.
    #[serde(default)]
    pub log: LogSection,
}

/// `[node]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeSection {
    /// A name for this node in logs and metrics.
    #[serde(default = "default_node_name")]
    pub name: String,
    /// Seconds to let transactions finish after SIGTERM before exiting.
    #[serde(default = "default_grace_period")]
    pub grace_period_secs: u64,
    /// Folder for the embedded store and other local state.
    /// Unset means `peering-data` in the working directory; a relative path
    /// written in the file resolves against the file's folder.
    #[serde(default)]
    pub data_dir: Option<PathBuf>,
}

impl NodeSection {
    /// The data folder: as configured, or `peering-data` in the working
    /// directory.
    pub fn data_dir(&self) -> PathBuf {
        self.data_dir
            .clone()
            .unwrap_or_else(|| PathBuf::from("peering-data"))
    }
}

impl Default for NodeSection {
    fn default() -> Self {
        Self {
            name: default_node_name(),
            grace_period_secs: default_grace_period(),
            data_dir: None,
        }
    }
}

fn default_node_name() -> String {
    "peering".to_owned()
}
fn default_grace_period() -> u64 {
    10
}

/// Transport protocol of a listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TransportKind {
    /// SIP over UDP.
    Udp,
    /// SIP over TCP.
    Tcp,
    /// SIP over TLS over TCP.
    Tls,
}

/// One `[[sip.listen]]` entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Listen {
    /// `udp`, `tcp` or `tls`.
    pub transport: TransportKind,
    /// Address and port to bind, IPv4 or `[IPv6]:port`.
    pub address: SocketAddr,
    /// Host (and optional port) to put in Via and Record-Route instead of the
    /// bound address, e.g. a public name behind a load balancer.
    #[serde(default)]
    pub advertise: Option<String>,
}

/// `[sip]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SipSection {
    /// Listeners. Default: UDP and TCP on 127.0.0.1:5060.
    #[serde(default = "default_listen")]
    pub listen: Vec<Listen>,
    /// Domains and hosts that this node answers for (OPTIONS to them are
    /// answered locally); the listeners' addresses are always included.
    #[serde(default)]
    pub domains: Vec<String>,
    /// Largest message accepted on a stream, in bytes.
    #[serde(default = "default_max_message_size")]
    pub max_message_size: usize,
    /// Seconds an idle TCP/TLS connection is kept open.
    #[serde(default = "default_idle_timeout")]
    pub idle_timeout_secs: u64,
    /// Seconds allowed for a TLS handshake (and for the first message on TCP).
    #[serde(default = "default_handshake_timeout")]
    pub handshake_timeout_secs: u64,
    /// RFC 3261 §18.1.1: the path MTU. A request larger than this minus 200
    /// bytes goes over TCP instead of UDP when the target allows it; if the
    /// TCP connect fails, it is retried once over UDP.
    /// Set `udp_size_switch = false` to always keep UDP.
    #[serde(default = "default_udp_switch_size")]
    pub udp_switch_size: usize,
    /// Whether §18.1.1's switch to TCP for large requests applies.
    #[serde(default = "default_true")]
    pub udp_size_switch: bool,
    /// Insert Record-Route so that in-dialog requests traverse the node.
    #[serde(default = "default_true")]
    pub record_route: bool,
    /// Value of the Server and User-Agent headers the node writes in local
    /// responses.
    #[serde(default = "default_server_header")]
    pub server_header: String,
    /// Received messages waiting for the proxy core beyond which new calls
    /// are refused with 503 + Retry-After until the queue is down to a
    /// quarter of this; 0 never sheds load.
    #[serde(default = "default_overload_backlog")]
    pub overload_backlog: usize,
    /// Milliseconds: when, for 500 ms, no datagram waited less than this in
    /// the kernel's UDP receive queue (or 1 % or more of them were dropped
    /// because that queue was full), new calls are refused with 503 +
    /// Retry-After; 0 does not watch the queue.
    #[serde(default = "default_overload_queue_delay")]
    pub overload_queue_delay_ms: u64,
}

impl Default for SipSection {
    fn default() -> Self {
        Self {
            listen: default_listen(),
            domains: Vec::new(),
            max_message_size: default_max_message_size(),
            idle_timeout_secs: default_idle_timeout(),
            handshake_timeout_secs: default_handshake_timeout(),
            udp_switch_size: default_udp_switch_size(),
            udp_size_switch: true,
            record_route: true,
            server_header: default_server_header(),
            overload_backlog: default_overload_backlog(),
            overload_queue_delay_ms: default_overload_queue_delay(),
        }
    }
}

fn default_listen() -> Vec<Listen> {
    let address = SocketAddr::from(([127, 0, 0, 1], 5060));
    vec![
        Listen {
            transport: TransportKind::Udp,
            address,
            advertise: None,
        },
        Listen {
            transport: TransportKind::Tcp,
            address,
            advertise: None,
        },
    ]
}
fn default_max_message_size() -> usize {
    64 * 1024
}
fn default_idle_timeout() -> u64 {
    120
}
fn default_handshake_timeout() -> u64 {
    10
}
fn default_udp_switch_size() -> usize {
    1300
}
fn default_overload_backlog() -> usize {
    4096
}
fn default_overload_queue_delay() -> u64 {
    20
}
fn default_true() -> bool {
    true
}
fn default_server_header() -> String {
    format!("peering/{}", env!("CARGO_PKG_VERSION"))
}

/// `[tls]`: this node's certificate for TLS listeners and outbound TLS.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsSection {
    /// PEM file with the node's certificate chain (leaf first).
    pub certificate: PathBuf,
    /// PEM file with the node's private key (PKCS#8, SEC1 or PKCS#1).
    pub private_key: PathBuf,
    /// PEM files of the CAs trusted for peers' certificates.
    #[serde(default)]
    pub ca: Vec<PathBuf>,
    /// Demand a client certificate from TLS peers (mutual TLS).
    #[serde(default = "default_true")]
    pub require_client_certificate: bool,
    /// Verify the certificates of servers the node connects to. Turning this
    /// off is for lab use only.
    #[serde(default = "default_true")]
    pub verify_server: bool,
    /// CRL files (PEM or DER) checked for peers' certificates.
    #[serde(default)]
    pub crl: Vec<PathBuf>,
    /// Refuse peers whose issuer has no CRL in `crl` (default: check only
    /// where a CRL is given).
    #[serde(default)]
    pub require_crl: bool,
    /// Lowest TLS version: `"1.2"` (default) or `"1.3"`.
    #[serde(default = "default_tls_min_version")]
    pub min_version: String,
    /// Cipher suites allowed, by IANA/rustls name (for example
    /// `TLS13_AES_256_GCM_SHA384`); empty means the provider's defaults.
    #[serde(default)]
    pub cipher_suites: Vec<String>,
}

fn default_tls_min_version() -> String {
    "1.2".to_owned()
}

/// `[timers]`: RFC 3261 §17 timer bases, in milliseconds.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimersSection {
    /// T1, the RTT estimate (default 500).
    #[serde(default = "default_t1")]
    pub t1_ms: u64,
    /// T2, the retransmission cap for non-INVITE requests and INVITE
    /// responses (default 4000).
    #[serde(default = "default_t2")]
    pub t2_ms: u64,
    /// T4, how long the network may keep a message (default 5000).
    #[serde(default = "default_t4")]
    pub t4_ms: u64,
    /// Timer C, how long a proxy waits for a final response to an INVITE
    /// after the last provisional one (default 180000; at least 180000 by
    /// RFC 3261 §16.6).
    #[serde(default = "default_timer_c")]
    pub timer_c_ms: u64,
}

impl Default for TimersSection {
    fn default() -> Self {
        Self {
            t1_ms: default_t1(),
            t2_ms: default_t2(),
            t4_ms: default_t4(),
            timer_c_ms: default_timer_c(),
        }
    }
}

fn default_t1() -> u64 {
    500
}
fn default_t2() -> u64 {
    4000
}
fn default_t4() -> u64 {
    5000
}
fn default_timer_c() -> u64 {
    180_000
}

/// One `[[route]]` entry of the static routing table.
///
/// A request matches an entry by `prefix` (on the called number: the user
/// part of a `sip:`/`sips:` Request-URI or the number of a `tel:` URI) or by
/// `domain` (the Request-URI host). Among prefix entries the longest prefix
/// wins; domain entries match exactly (case-insensitive) and are tried first.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteEntry {
    /// Called-number prefix, e.g. `+` or `+4721`.
    #[serde(default)]
    pub prefix: Option<String>,
    /// Request-URI host, e.g. `carrier-b.example`.
    #[serde(default)]
    pub domain: Option<String>,
    /// Ordered target URIs; later ones are failover targets.
    pub targets: Vec<String>,
}

/// `[store]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreSection {
    /// `postgres://user@host/db` for a federation of several nodes, or
    /// `sqlite:PATH` for the embedded store. Default: the embedded store in
    /// `<node.data_dir>/registry.db`. `PEERING_DATABASE_URL` overrides it.
    #[serde(default)]
    pub url: Option<String>,
}

impl Config {
    /// The store URL: the environment, then `[store] url`, then the
    /// embedded default under the data folder.
    pub fn store_url(&self, env: &dyn crate::env::Strings) -> String {
        env.get(crate::env::ENV_DATABASE_URL)
            .or_else(|| self.store.url.clone())
            .unwrap_or_else(|| {
                format!(
                    "sqlite:{}",
                    self.node.data_dir().join("registry.db").display()
                )
            })
    }
}

/// `[admin]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminSection {
    /// Address of the admin HTTP API (`/live`, `/ready`, `/metrics`).
    /// Keep it on loopback.
    #[serde(default = "default_admin_listen")]
    pub listen: Option<SocketAddr>,
}

impl Default for AdminSection {
    fn default() -> Self {
        Self {
            listen: default_admin_listen(),
        }
    }
}

fn default_admin_listen() -> Option<SocketAddr> {
    Some(SocketAddr::from(([127, 0, 0, 1], 8060)))
}

/// `[log]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogSection {
    /// Filter in `RUST_LOG` syntax, used when `RUST_LOG` is not set.
    #[serde(default = "default_log_level")]
    pub level: String,
    /// `text` or `json`.
    #[serde(default = "default_log_format")]
    pub format: String,
}

impl Default for LogSection {
    fn default() -> Self {
        Self {
            level: default_log_level(),
            format: default_log_format(),
        }
    }
}

fn default_log_level() -> String {
    "info".to_owned()
}
fn default_log_format() -> String {
    "text".to_owned()
}

impl Config {
    /// Reads, parses and validates a file; relative paths in it are made
    /// relative to the file's folder.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let mut config = Self::from_toml(&text).map_err(|e| match e {
            ConfigError::Syntax { source, .. } => ConfigError::Syntax {
                path: path.to_owned(),
                source,
            },
            other => other,
        })?;
        let base = path.parent().unwrap_or_else(|| Path::new("."));
        config.resolve_paths(base);
        Ok(config)
    }

    /// Parses and validates TOML text (paths stay as written).
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        let config: Self = toml::from_str(text).map_err(|source| ConfigError::Syntax {
            path: PathBuf::new(),
            source: Box::new(source),
        })?;
        config.validate()?;
        Ok(config)
    }

    fn resolve_paths(&mut self, base: &Path) {
        let fix = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        if let Some(dir) = &mut self.node.data_dir {
            fix(dir);
        }
        if let Some(url) = &mut self.store.url
            && let Some(path) = url.strip_prefix("sqlite:")
            && Path::new(path).is_relative()
        {
            *url = format!("sqlite:{}", base.join(path).display());
        }
        if let Some(tls) = &mut self.tls {
            fix(&mut tls.certificate);
            fix(&mut tls.private_key);
            tls.ca.iter_mut().for_each(fix);
            tls.crl.iter_mut().for_each(fix);
        }
        if let Some(identity) = &mut self.identity {
            identity.resolve_paths(base);
        }
    }

    /// Checks values that serde cannot.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key: &str, reason: &str| ConfigError::Invalid {
            key: key.to_owned(),
            reason: reason.to_owned(),
        };
        if self.sip.listen.is_empty() {
            return Err(invalid("sip.listen", "at least one listener is needed"));
        }
        if self
            .sip
            .listen
            .iter()
            .any(|l| l.transport == TransportKind::Tls)
            && self.tls.is_none()
        {
            return Err(invalid(
                "tls",
                "a `tls` listener needs a [tls] section with certificate and private_key",
            ));
        }
        if !(1024..=16 * 1024 * 1024).contains(&self.sip.max_message_size) {
            return Err(invalid(
                "sip.max_message_size",
                "must be between 1024 and 16777216 bytes",
            ));
        }
        if self.timers.t1_ms == 0 || self.timers.t2_ms < self.timers.t1_ms {
            return Err(invalid("timers", "need 0 < t1_ms <= t2_ms"));
        }
        if self.timers.timer_c_ms < 180_000 {
            return Err(invalid(
                "timers.timer_c_ms",
                "RFC 3261 §16.6 requires at least 180000 (3 minutes)",
            ));
        }
        for (i, route) in self.routes.iter().enumerate() {
            let key = format!("route[{i}]");
            match (&route.prefix, &route.domain) {
                (Some(_), Some(_)) | (None, None) => {
                    return Err(invalid(&key, "give exactly one of `prefix` or `domain`"));
                }
                _ => {}
            }
            if route.targets.is_empty() {
                return Err(invalid(&key, "`targets` must not be empty"));
            }
            for target in &route.targets {
                if let Err(e) = target.parse::<peering_proto::msg::Uri>() {
                    return Err(invalid(
                        &format!("{key}.targets"),
                        &format!("`{target}` is not a SIP URI: {e}"),
                    ));
                }
                if !(target.starts_with("sip:") || target.starts_with("sips:")) {
                    return Err(invalid(
                        &format!("{key}.targets"),
                        &format!("`{target}` must be a sip: or sips: URI"),
                    ));
                }
            }
        }
        if let Some(tls) = &self.tls
            && !matches!(tls.min_version.as_str(), "1.2" | "1.3")
        {
            return Err(invalid("tls.min_version", "must be \"1.2\" or \"1.3\""));
        }
        if let Some(identity) = &self.identity
            && let Err((key, reason)) = identity.validate()
        {
            return Err(ConfigError::Invalid { key, reason });
        }
        if !matches!(self.log.format.as_str(), "text" | "json") {
            return Err(invalid("log.format", "must be `text` or `json`"));
        }
        Ok(())
    }

    /// The grace period as a duration.
    pub fn grace_period(&self) -> Duration {
        Duration::from_secs(self.node.grace_period_secs)
    }
}
