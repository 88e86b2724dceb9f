//! SPIT (spam over IP telephony) scoring: per-caller call rates across the
//! federation, the ratio of very short calls, SHAKEN attestation, allow
//! lists and optional greylisting of first-time callers. The score and the
//! decision go into the call record.
//!
//! The federation-wide counts come from the store (call records of every
//! node, `Store::caller_stats`); the guard adds the attempts this node has
//! seen and not yet recorded, so a burst is visible before its calls end.
//!
//! Score, from 0 (clean) upwards; weights are configurable:
//!
//! ```text
//! attestation A: 0   B: 10   C: 20   none: 30   Identity invalid: 40
//! calls per minute over the limit (federation + local):       +40
//! short-call ratio over the threshold (after min_answered):    +30
//! score >= reject_score  -> Reject (607 Unwanted)
//! first-time caller, greylisting on -> Greylist (480, Retry-After)
//! caller on an allow list -> score 0, Accept
//! ```

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::registry::Attestation;
use crate::rules::{IdentityCheck, Rejection};

/// Greylisting settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GreylistConfig {
    /// A first-time caller must retry after at least this long.
    pub min_delay: Duration,
    /// ... and within this long after the first attempt.
    pub retry_window: Duration,
    /// A caller that passed is remembered this long.
    pub pass_ttl: Duration,
    /// Most callers remembered.
    pub capacity: usize,
}

impl Default for GreylistConfig {
    fn default() -> Self {
        Self {
            min_delay: Duration::from_secs(5),
            retry_window: Duration::from_secs(3600),
            pass_ttl: Duration::from_secs(30 * 86_400),
            capacity: 100_000,
        }
    }
}

/// SPIT settings.
#[derive(Debug, Clone, PartialEq)]
pub struct SpitConfig {
    /// Calls per minute per caller number, federation-wide, before the rate
    /// weight applies.
    pub max_calls_per_minute: u32,
    /// Answered calls shorter than this count as short (milliseconds).
    pub short_call_ms: i64,
    /// Short-call ratio (of answered calls) above which the ratio weight
    /// applies.
    pub short_ratio: f64,
    /// Answered calls needed before the ratio is judged.
    pub min_answered: u64,
    /// Score at or above which calls are rejected.
    pub reject_score: u32,
    /// Weight per attestation: A, B, C, none, invalid.
    pub attestation_weights: [u32; 5],
    /// Weight when the rate is exceeded.
    pub rate_weight: u32,
    /// Weight when the short-call ratio is exceeded.
    pub short_weight: u32,
    /// Greylisting of first-time callers, if enabled.
    pub greylist: Option<GreylistConfig>,
    /// Most caller numbers with local rate state.
    pub capacity: usize,
}

impl Default for SpitConfig {
    fn default() -> Self {
        Self {
            max_calls_per_minute: 30,
            short_call_ms: 6_000,
            short_ratio: 0.6,
            min_answered: 10,
            reject_score: 70,
            attestation_weights: [0, 10, 20, 30, 40],
            rate_weight: 40,
            short_weight: 30,
            greylist: None,
            capacity: 100_000,
        }
    }
}

/// Federation-wide counts for one caller over the last minute (from the
/// store's call records).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CallerHistory {
    /// Calls started.
    pub calls: u64,
    /// Of those, answered.
    pub answered: u64,
    /// Of those, answered and short.
    pub short_calls: u64,
}

/// What the scorer looks at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpitInput<'a> {
    /// Caller number, E.164 digits.
    pub caller: &'a str,
    /// Identity verification result (SHAKEN attestation).
    pub identity: IdentityCheck,
    /// The caller is on an allow list (from [`crate::Admission`]).
    pub allowed: bool,
    /// Federation-wide history.
    pub history: CallerHistory,
}

/// One contribution to the score.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SpitFactor {
    /// On an allow list.
    AllowListed,
    /// Attestation weight.
    Attestation(u32),
    /// Rate over the limit.
    Rate {
        /// Calls per minute seen.
        per_minute: u64,
    },
    /// Short-call ratio over the threshold (per mille).
    ShortCalls {
        /// Ratio in 1/1000.
        ratio_milli: u64,
    },
    /// First-time caller greylisted.
    Greylisted,
}

/// The decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpitDecision {
    /// Relay the call.
    Accept,
    /// Ask the caller to retry after this long (480).
    Greylist(Duration),
    /// Refuse (607).
    Reject,
}

impl SpitDecision {
    /// The label for the call record.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Accept => "accept",
            Self::Greylist(_) => "greylist",
            Self::Reject => "reject",
        }
    }
}

/// The score, decision and reasons.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpitAssessment {
    /// The score.
    pub score: u32,
    /// The decision.
    pub decision: SpitDecision,
    /// What contributed.
    pub factors: Vec<SpitFactor>,
}

impl SpitAssessment {
    /// The rejection for a refused or greylisted call.
    pub fn rejection(&self) -> Option<Rejection> {
        match self.decision {
            SpitDecision::Accept => None,
            SpitDecision::Greylist(retry_after) => Some(Rejection::Greylisted { retry_after }),
            SpitDecision::Reject => Some(Rejection::Spit { score: self.score }),
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Grey {
    first: Instant,
    passed: Option<Instant>,
}

/// Local state: recent attempts per caller and the greylist, both bounded.
#[derive(Debug)]
pub struct SpitGuard {
    config: SpitConfig,
    recent: HashMap<String, Vec<Instant>>,
    grey: HashMap<String, Grey>,
}

const MINUTE: Duration = Duration::from_secs(60);

impl SpitGuard {
    /// A guard with `config`.
    pub fn new(config: SpitConfig) -> Self {
        Self {
            config,
            recent: HashMap::new(),
            grey: HashMap::new(),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &SpitConfig {
        &self.config
    }

    /// Scores one call attempt at `now` and records it.
    pub fn assess(&mut self, input: &SpitInput<'_>, now: Instant) -> SpitAssessment {
        if input.allowed {
            return SpitAssessment {
                score: 0,
                decision: SpitDecision::Accept,
                factors: vec![SpitFactor::AllowListed],
            };
        }
        let mut factors = Vec::new();
        let w = self.config.attestation_weights;
        let att = match input.identity {
            IdentityCheck::Valid(Attestation::A) => w[0],
            IdentityCheck::Valid(Attestation::B) => w[1],
            IdentityCheck::Valid(Attestation::C) => w[2],
            IdentityCheck::Absent => w[3],
            IdentityCheck::Invalid => w[4],
        };
        let mut score = att;
        factors.push(SpitFactor::Attestation(att));

        let local = self.record(input.caller, now);
        let per_minute = input.history.calls.max(local);
        if per_minute > u64::from(self.config.max_calls_per_minute) {
            score += self.config.rate_weight;
            factors.push(SpitFactor::Rate { per_minute });
        }
        let h = input.history;
        if h.answered >= self.config.min_answered && h.answered > 0 {
            let ratio = h.short_calls as f64 / h.answered as f64;
            if ratio > self.config.short_ratio {
                score += self.config.short_weight;
                factors.push(SpitFactor::ShortCalls {
                    ratio_milli: (ratio * 1000.0) as u64,
                });
            }
        }
        let decision = if score >= self.config.reject_score {
            SpitDecision::Reject
        } else if let Some(wait) = self.greylist(input.caller, now) {
            factors.push(SpitFactor::Greylisted);
            SpitDecision::Greylist(wait)
        } else {
            SpitDecision::Accept
        };
        SpitAssessment {
            score,
            decision,
            factors,
        }
    }

    /// Records an attempt; returns the caller's attempts in the last minute
    /// on this node.
    fn record(&mut self, caller: &str, now: Instant) -> u64 {
        if !self.recent.contains_key(caller) && self.recent.len() >= self.config.capacity {
            self.recent.retain(|_, v| {
                v.last()
                    .is_some_and(|t| now.saturating_duration_since(*t) < MINUTE)
            });
            if self.recent.len() >= self.config.capacity {
                return 1;
            }
        }
        let v = self.recent.entry(caller.to_owned()).or_default();
        v.retain(|t| now.saturating_duration_since(*t) < MINUTE);
        // Cap the per-caller history: beyond the limit only "over" matters.
        let cap = usize::try_from(self.config.max_calls_per_minute)
            .unwrap_or(usize::MAX)
            .saturating_mul(2)
            .max(1);
        if v.len() < cap {
            v.push(now);
        }
        v.len() as u64
    }

    /// `Some(wait)` if the caller must be greylisted.
    fn greylist(&mut self, caller: &str, now: Instant) -> Option<Duration> {
        let cfg = self.config.greylist.clone()?;
        if let Some(g) = self.grey.get_mut(caller) {
            if let Some(passed) = g.passed {
                if now.saturating_duration_since(passed) < cfg.pass_ttl {
                    return None;
                }
            } else {
                let since = now.saturating_duration_since(g.first);
                if since < cfg.min_delay {
                    return Some(cfg.min_delay - since);
                }
                if since <= cfg.retry_window {
                    g.passed = Some(now);
                    return None;
                }
            }
            *g = Grey {
                first: now,
                passed: None,
            };
            return Some(cfg.min_delay);
        }
        if self.grey.len() >= cfg.capacity {
            self.grey.retain(|_, g| match g.passed {
                Some(p) => now.saturating_duration_since(p) < cfg.pass_ttl,
                None => now.saturating_duration_since(g.first) <= cfg.retry_window,
            });
            if self.grey.len() >= cfg.capacity {
                // Full of live entries: fail open rather than refuse everyone.
                return None;
            }
        }
        self.grey.insert(
            caller.to_owned(),
            Grey {
                first: now,
                passed: None,
            },
        );
        Some(cfg.min_delay)
    }
}
