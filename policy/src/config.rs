//! The `[policy]` section of the node's configuration file, as serde
//! types with defaults, and conversions to the guards' settings. Every key
//! is optional; with none, the node gets the defaults shown here.
//!
//! ```toml
//! [policy.flood]
//! interval_ms = 2000        # sampling interval
//! threshold = 60            # requests per interval before a ban
//! ban_secs = 60             # ban length
//! capacity = 16384          # addresses tracked (memory bound)
//! trusted = ["127.0.0.1/32"]  # never banned
//! banned = ["192.0.2.0/24"]   # always refused
//!
//! [policy.scanners]
//! user_agents = ["friendly-scanner", "sipvicious", "sipcli"]  # default: a built-in list
//! ban = true                # also ban the address for ban_secs
//!
//! [policy.spit]
//! enabled = true
//! max_calls_per_minute = 30
//! short_call_ms = 6000
//! short_ratio = 0.6
//! min_answered = 10
//! reject_score = 70
//! greylist = false
//! greylist_min_delay_secs = 5
//! greylist_window_secs = 3600
//!
//! [policy.limits]
//! sync_interval_ms = 150    # usage exchange with the other nodes
//! horizon_ms = 1000         # rows older than this are ignored
//! ```

use std::time::Duration;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::flood::{DEFAULT_SCANNER_SIGNATURES, FloodConfig, ScannerRules};
use crate::spit::{GreylistConfig, SpitConfig};

/// `[policy]`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PolicyConfig {
    /// `[policy.flood]`.
    pub flood: FloodSection,
    /// `[policy.scanners]`.
    pub scanners: ScannerSection,
    /// `[policy.spit]`.
    pub spit: SpitSection,
    /// `[policy.limits]`.
    pub limits: LimitsSection,
}

/// `[policy.flood]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FloodSection {
    /// Sampling interval in milliseconds.
    pub interval_ms: u64,
    /// Requests per interval before a ban.
    pub threshold: u32,
    /// Ban length in seconds.
    pub ban_secs: u64,
    /// Addresses tracked.
    pub capacity: usize,
    /// Networks never banned.
    pub trusted: Vec<IpNet>,
    /// Networks always refused.
    pub banned: Vec<IpNet>,
}

impl Default for FloodSection {
    fn default() -> Self {
        let d = FloodConfig::default();
        Self {
            interval_ms: u64::try_from(d.interval.as_millis()).unwrap_or(2000),
            threshold: d.threshold,
            ban_secs: d.ban_time.as_secs(),
            capacity: d.capacity,
            trusted: Vec::new(),
            banned: Vec::new(),
        }
    }
}

/// `[policy.scanners]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ScannerSection {
    /// User-Agent substrings (case-insensitive).
    pub user_agents: Vec<String>,
    /// Ban the address as well as refusing the request.
    pub ban: bool,
}

impl Default for ScannerSection {
    fn default() -> Self {
        Self {
            user_agents: DEFAULT_SCANNER_SIGNATURES
                .iter()
                .map(|s| (*s).to_owned())
                .collect(),
            ban: true,
        }
    }
}

/// `[policy.spit]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SpitSection {
    /// Score calls at all.
    pub enabled: bool,
    /// See [`SpitConfig::max_calls_per_minute`].
    pub max_calls_per_minute: u32,
    /// See [`SpitConfig::short_call_ms`].
    pub short_call_ms: i64,
    /// See [`SpitConfig::short_ratio`].
    pub short_ratio: f64,
    /// See [`SpitConfig::min_answered`].
    pub min_answered: u64,
    /// See [`SpitConfig::reject_score`].
    pub reject_score: u32,
    /// Greylist first-time callers.
    pub greylist: bool,
    /// See [`GreylistConfig::min_delay`].
    pub greylist_min_delay_secs: u64,
    /// See [`GreylistConfig::retry_window`].
    pub greylist_window_secs: u64,
}

impl Default for SpitSection {
    fn default() -> Self {
        let d = SpitConfig::default();
        let g = GreylistConfig::default();
        Self {
            enabled: true,
            max_calls_per_minute: d.max_calls_per_minute,
            short_call_ms: d.short_call_ms,
            short_ratio: d.short_ratio,
            min_answered: d.min_answered,
            reject_score: d.reject_score,
            greylist: false,
            greylist_min_delay_secs: g.min_delay.as_secs(),
            greylist_window_secs: g.retry_window.as_secs(),
        }
    }
}

/// `[policy.limits]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsSection {
    /// Usage exchange interval in milliseconds.
    pub sync_interval_ms: u64,
    /// Rows older than this (milliseconds) are ignored.
    pub horizon_ms: u64,
}

impl Default for LimitsSection {
    fn default() -> Self {
        Self {
            sync_interval_ms: 150,
            horizon_ms: 1000,
        }
    }
}

impl PolicyConfig {
    /// The flood guard's settings.
    pub fn flood(&self) -> FloodConfig {
        FloodConfig {
            interval: Duration::from_millis(self.flood.interval_ms.max(1)),
            threshold: self.flood.threshold,
            ban_time: Duration::from_secs(self.flood.ban_secs),
            capacity: self.flood.capacity,
            trusted: self.flood.trusted.clone(),
        }
    }

    /// A flood guard with these settings and the static ban list.
    pub fn flood_guard(&self, now: std::time::Instant) -> crate::flood::FloodGuard {
        let mut g = crate::flood::FloodGuard::new(self.flood(), now);
        for n in &self.flood.banned {
            g.ban_network(*n, None);
        }
        g
    }

    /// The scanner rules.
    pub fn scanner_rules(&self) -> ScannerRules {
        ScannerRules::new(&self.scanners.user_agents)
    }

    /// The SPIT settings, or `None` when scoring is off.
    pub fn spit(&self) -> Option<SpitConfig> {
        let s = &self.spit;
        s.enabled.then(|| SpitConfig {
            max_calls_per_minute: s.max_calls_per_minute,
            short_call_ms: s.short_call_ms,
            short_ratio: s.short_ratio,
            min_answered: s.min_answered,
            reject_score: s.reject_score,
            greylist: s.greylist.then(|| GreylistConfig {
                min_delay: Duration::from_secs(s.greylist_min_delay_secs),
                retry_window: Duration::from_secs(s.greylist_window_secs),
                ..GreylistConfig::default()
            }),
            ..SpitConfig::default()
        })
    }

    /// The usage exchange interval.
    pub fn sync_interval(&self) -> Duration {
        Duration::from_millis(self.limits.sync_interval_ms.max(10))
    }

    /// The usage horizon.
    pub fn horizon(&self) -> Duration {
        Duration::from_millis(self.limits.horizon_ms.max(1))
    }
}
