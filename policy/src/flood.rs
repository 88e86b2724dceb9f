//! Flood detection per source address, in the style of Kamailio's `pike`
//! module, plus a static ban list and scanner signatures.
//!
//! [`FloodGuard::check`] takes only the source address and `now`, so the
//! node can call it for every request datagram or new connection before
//! parsing the SIP message. [`FloodGuard::check_response`] checks a
//! response: from an address the node sent requests to
//! ([`FloodGuard::expect_responses`]) it is an answer and counts nothing,
//! from any other it counts like a request. The request rate per address
//! is estimated over a sliding window of two sampling intervals (the
//! previous interval's count decays linearly as the current one fills, like
//! pike's two-slot history); an address whose estimate exceeds the
//! threshold is banned until `now + ban_time`.
//!
//! Memory is bounded: addresses live in a fixed-capacity open-addressed
//! table, probed over a small neighbourhood. When the neighbourhood is full,
//! the least recently seen unbanned entry is evicted (or, if all are banned,
//! the ban that ends first), so a flood of distinct (spoofed) addresses can
//! neither grow memory nor push out a ban cheaply: an attacker must fill
//! every slot of that neighbourhood with fresher entries.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use ipnet::IpNet;

use crate::registry::canonical_ip;

/// Flood detection settings (pike's `sampling_time_unit`,
/// `reqs_density_per_unit` and `remove_latency`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FloodConfig {
    /// Sampling interval.
    pub interval: Duration,
    /// Requests per interval above which an address is banned.
    pub threshold: u32,
    /// How long a ban lasts (at most a year).
    pub ban_time: Duration,
    /// Number of addresses tracked (rounded up to a power of two, at most
    /// 2^24).
    pub capacity: usize,
    /// Networks never banned (e.g. the federation's own nodes).
    pub trusted: Vec<IpNet>,
}

impl Default for FloodConfig {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(2),
            threshold: 60,
            ban_time: Duration::from_secs(60),
            capacity: 16_384,
            trusted: Vec::new(),
        }
    }
}

/// The result of [`FloodGuard::check`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FloodVerdict {
    /// Go on.
    Allow,
    /// Drop or refuse the request: the address is banned until `until`.
    Banned {
        /// When the ban ends.
        until: Instant,
        /// This request started the ban (log it once).
        new: bool,
    },
}

impl FloodVerdict {
    /// True for [`FloodVerdict::Banned`].
    pub fn is_banned(&self) -> bool {
        matches!(self, Self::Banned { .. })
    }
}

/// Times are milliseconds since the guard's base instant.
#[derive(Debug, Clone, Copy)]
struct Entry {
    addr: IpAddr,
    window: u64,
    prev: u32,
    cur: u32,
    banned_until: u64,
    last_seen: u64,
    /// Until when responses from the address answer requests this node
    /// sent it (see [`FloodGuard::expect_responses`]).
    answers_until: u64,
}

const PROBE: usize = 8;

/// How long after the node's last request to an address its responses are
/// taken as answers: longer than any transaction (Timer C, 3 minutes,
/// bounds an INVITE's provisional responses).
const ANSWER_WINDOW_MS: u64 = 300_000;

/// The largest table (16M slots, about 1 GiB): larger capacities are clamped.
const MAX_CAPACITY: usize = 1 << 24;

/// The longest ban (a year): longer ban times are clamped, so ban ends
/// always fit an `Instant`.
const MAX_BAN: Duration = Duration::from_secs(365 * 86_400);

fn at(base: Instant, ms: u64) -> Instant {
    base + Duration::from_millis(ms)
}

/// Per-address flood state with bounded memory.
#[derive(Debug)]
pub struct FloodGuard {
    config: FloodConfig,
    interval_ms: u64,
    ban_ms: u64,
    base: Instant,
    hasher: RandomState,
    slots: Box<[Option<Entry>]>,
    mask: usize,
    static_bans: Vec<(IpNet, Option<Instant>)>,
    evictions: u64,
}

impl FloodGuard {
    /// A guard with `config`; `now` anchors its clock.
    pub fn new(config: FloodConfig, now: Instant) -> Self {
        let capacity = config
            .capacity
            .clamp(PROBE, MAX_CAPACITY)
            .next_power_of_two();
        Self {
            interval_ms: u64::try_from(config.interval.as_millis())
                .unwrap_or(u64::MAX)
                .max(1),
            ban_ms: u64::try_from(config.ban_time.min(MAX_BAN).as_millis()).unwrap_or(u64::MAX),
            config,
            base: now,
            hasher: RandomState::new(),
            slots: vec![None; capacity].into_boxed_slice(),
            mask: capacity - 1,
            static_bans: Vec::new(),
            evictions: 0,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &FloodConfig {
        &self.config
    }

    /// Number of slots (the most addresses tracked at once).
    pub fn capacity(&self) -> usize {
        self.slots.len()
    }

    /// Addresses currently tracked.
    pub fn tracked(&self) -> usize {
        self.slots.iter().filter(|s| s.is_some()).count()
    }

    /// Entries evicted to make room since the guard was created.
    pub fn evictions(&self) -> u64 {
        self.evictions
    }

    fn ms(&self, now: Instant) -> u64 {
        u64::try_from(now.saturating_duration_since(self.base).as_millis()).unwrap_or(u64::MAX)
    }

    fn at(&self, ms: u64) -> Instant {
        at(self.base, ms)
    }

    /// Adds a network to the static ban list, until `until` (or forever).
    pub fn ban_network(&mut self, network: IpNet, until: Option<Instant>) {
        self.static_bans.retain(|(n, _)| *n != network);
        self.static_bans.push((network.trunc(), until));
    }

    /// Removes a network from the static ban list.
    pub fn unban_network(&mut self, network: IpNet) {
        self.static_bans.retain(|(n, _)| *n != network.trunc());
    }

    /// Bans one address for the configured ban time (e.g. after a scanner
    /// signature matched).
    pub fn ban(&mut self, addr: IpAddr, now: Instant) {
        let addr = canonical_ip(addr);
        let t = self.ms(now);
        let until = t.saturating_add(self.ban_ms);
        let e = self.entry(addr, t);
        e.banned_until = e.banned_until.max(until);
    }

    /// `addr`'s entry, made (fresh) when it has none.
    fn entry(&mut self, addr: IpAddr, t: u64) -> &mut Entry {
        let i = self.slot_for(addr, t);
        self.slots[i].get_or_insert(Entry {
            addr,
            window: t,
            prev: 0,
            cur: 0,
            banned_until: 0,
            last_seen: t,
            answers_until: 0,
        })
    }

    fn trusted(&self, addr: &IpAddr) -> bool {
        self.config.trusted.iter().any(|n| n.contains(addr))
    }

    /// Finds `addr`'s slot, or frees one for it.
    fn slot_for(&mut self, addr: IpAddr, t: u64) -> usize {
        let start = (self.hasher.hash_one(addr) as usize) & self.mask;
        let mut empty = None;
        let mut victim = start;
        let mut victim_key = (true, u64::MAX);
        for k in 0..PROBE {
            let i = (start + k) & self.mask;
            match &self.slots[i] {
                Some(e) if e.addr == addr => return i,
                Some(e) => {
                    // Prefer evicting unbanned entries, then the least recently
                    // seen (or the ban that ends first).
                    let banned = e.banned_until > t;
                    let key = (banned, if banned { e.banned_until } else { e.last_seen });
                    if key < victim_key {
                        victim_key = key;
                        victim = i;
                    }
                }
                None => {
                    empty.get_or_insert(i);
                }
            }
        }
        if let Some(i) = empty {
            return i;
        }
        self.evictions += 1;
        self.slots[victim] = None;
        victim
    }

    /// Counts one request from `addr` at `now` and says whether it is
    /// banned.
    pub fn check(&mut self, addr: IpAddr, now: Instant) -> FloodVerdict {
        self.count(addr, now, false)
    }

    /// The node sent a request to `addr` at `now`: for the next five
    /// minutes its responses are answers (see [`FloodGuard::check_response`]).
    pub fn expect_responses(&mut self, addr: IpAddr, now: Instant) {
        let addr = canonical_ip(addr);
        if self.trusted(&addr) {
            return;
        }
        let t = self.ms(now);
        let e = self.entry(addr, t);
        e.last_seen = e.last_seen.max(t);
        e.answers_until = e.answers_until.max(t.saturating_add(ANSWER_WINDOW_MS));
    }

    /// Checks a response from `addr` at `now`. From an address the node
    /// sent requests to in the last five minutes it is an answer, counted
    /// nothing: a terminating peer answers at the node's own rate, and
    /// counting its answers banned a busy one (and dropped every answer it
    /// sent after that). From any other address it counts as a request, so
    /// a flood of forged responses is banned like any flood. A banned
    /// address is refused whatever it sends.
    pub fn check_response(&mut self, addr: IpAddr, now: Instant) -> FloodVerdict {
        self.count(addr, now, true)
    }

    /// [`FloodGuard::check`] and, with `response`, [`FloodGuard::check_response`]:
    /// a response from an address that has answers due counts nothing.
    fn count(&mut self, addr: IpAddr, now: Instant, response: bool) -> FloodVerdict {
        let addr = canonical_ip(addr);
        if let Some(until) = self.static_ban(&addr, now) {
            return FloodVerdict::Banned { until, new: false };
        }
        if self.trusted(&addr) {
            return FloodVerdict::Allow;
        }
        let t = self.ms(now);
        let interval = self.interval_ms;
        let threshold = u64::from(self.config.threshold);
        let ban_ms = self.ban_ms;
        let e = self.entry(addr, t);
        if response && e.answers_until > t && e.banned_until <= t {
            // An answer: not counted, and not a sign of life either (the
            // requests sent to the address keep it fresh).
            return FloodVerdict::Allow;
        }
        e.last_seen = e.last_seen.max(t);
        if e.banned_until > t {
            let until = e.banned_until;
            return FloodVerdict::Banned {
                until: self.at(until),
                new: false,
            };
        }
        let elapsed = t.saturating_sub(e.window);
        if elapsed >= interval {
            let periods = elapsed / interval;
            e.prev = if periods == 1 { e.cur } else { 0 };
            e.cur = 0;
            e.window += periods * interval;
        }
        e.cur = e.cur.saturating_add(1);
        // Sliding estimate: the previous interval's count, weighted by the
        // part of it still inside the window, plus the current count.
        let into = t.saturating_sub(e.window);
        let weighted_prev = u64::from(e.prev) * interval.saturating_sub(into) / interval;
        if weighted_prev + u64::from(e.cur) > threshold {
            e.banned_until = t.saturating_add(ban_ms);
            e.prev = 0;
            e.cur = 0;
            let until = e.banned_until;
            return FloodVerdict::Banned {
                until: self.at(until),
                new: true,
            };
        }
        FloodVerdict::Allow
    }

    fn static_ban(&mut self, addr: &IpAddr, now: Instant) -> Option<Instant> {
        self.static_bans
            .retain(|(_, until)| until.is_none_or(|u| u > now));
        self.static_bans
            .iter()
            .find(|(n, _)| n.contains(addr))
            .map(|(_, until)| until.unwrap_or(now + Duration::from_secs(3600)))
    }

    /// The addresses banned at `now`, with their ban ends (for the admin
    /// API).
    pub fn banned(&self, now: Instant) -> Vec<(IpAddr, Instant)> {
        let t = self.ms(now);
        self.slots
            .iter()
            .flatten()
            .filter(|e| e.banned_until > t)
            .map(|e| (e.addr, self.at(e.banned_until)))
            .collect()
    }
}

/// Scanner signatures: case-insensitive substrings of the User-Agent (or
/// Server) header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScannerRules {
    patterns: Vec<String>,
}

/// User-Agents of common SIP scanners (sipvicious, sipcli, SIPScan and
/// friends).
pub const DEFAULT_SCANNER_SIGNATURES: &[&str] = &[
    "friendly-scanner",
    "sipvicious",
    "sipcli",
    "sip-scan",
    "sipscan",
    "sundayddr",
    "iwar",
    "vaxsipuseragent",
    "pplsip",
    "smap",
    "nmap",
];

impl Default for ScannerRules {
    fn default() -> Self {
        Self::new(DEFAULT_SCANNER_SIGNATURES.iter().copied())
    }
}

impl ScannerRules {
    /// Rules from patterns (matched case-insensitively anywhere in the
    /// header value). Empty patterns are ignored.
    pub fn new<S: AsRef<str>>(patterns: impl IntoIterator<Item = S>) -> Self {
        Self {
            patterns: patterns
                .into_iter()
                .map(|p| p.as_ref().trim().to_ascii_lowercase())
                .filter(|p| !p.is_empty())
                .collect(),
        }
    }

    /// The first pattern found in `user_agent`.
    pub fn matches(&self, user_agent: &str) -> Option<&str> {
        // Header values are short: one lower-case copy, then substring
        // search (two-way) per pattern.
        let ua = user_agent.to_ascii_lowercase();
        self.patterns
            .iter()
            .find(|p| ua.contains(p.as_str()))
            .map(String::as_str)
    }
}
