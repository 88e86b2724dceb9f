//! Call admission: [`evaluate`] decides whether a call attempt may cross the
//! federation, and to which members, against a [`Registry`].

use std::net::IpAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::registry::{Attestation, HeaderRules, ListKind, Registry};

/// What the node knows about the call before routing it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallAttempt {
    /// The source address of the request (the transport peer).
    pub source: IpAddr,
    /// The verified TLS peer's identities (subjectAltName DNS/URI values);
    /// empty for UDP/TCP or unauthenticated TLS.
    pub tls_names: Vec<String>,
    /// The calling number, E.164 digits without `+` (from PAI or From).
    pub caller: Option<String>,
    /// The called number, E.164 digits without `+`.
    pub callee: String,
    /// Result of Identity header verification.
    pub identity: IdentityCheck,
}

/// The result of verifying the request's Identity header (RFC 8224), done by
/// the identity crate before policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdentityCheck {
    /// No Identity header.
    Absent,
    /// A valid SHAKEN PASSporT with this attestation.
    Valid(Attestation),
    /// Present but failed verification.
    Invalid,
}

/// Why a call is refused. Every reason maps to a SIP response through
/// [`Rejection::status`], and to a metric label through [`Rejection::label`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Rejection {
    /// The source address is banned federation-wide.
    AddressBanned {
        /// Ban reason.
        reason: String,
    },
    /// The source is not a member (no TLS identity or network matches).
    UnknownSource,
    /// The source member is disabled.
    MemberDisabled {
        /// Member name.
        member: String,
    },
    /// The call carries no usable caller number.
    NoCaller,
    /// The caller is on a block list.
    CallerBlocked {
        /// Configured status code.
        status: u16,
        /// Configured reason text.
        reason: String,
    },
    /// The member may not originate calls from this number.
    CallerNotOwned {
        /// Member name.
        member: String,
    },
    /// No member terminates the called number.
    UnknownDestination,
    /// Members terminate the number, but the source has no agreement with
    /// any of them.
    NoAgreement {
        /// Source member.
        from: String,
        /// Best terminating member.
        to: String,
    },
    /// The agreement requires an Identity header and there is none.
    IdentityRequired,
    /// The Identity header failed verification and the agreement requires one.
    IdentityInvalid,
    /// The attestation level is not accepted by the agreement.
    AttestationNotAccepted {
        /// The level presented.
        level: Attestation,
    },
    /// A calls-per-second limit is exhausted.
    RateLimited {
        /// Which limit (`member` or `source`).
        scope: LimitScope,
        /// When to retry.
        retry_after: Duration,
    },
    /// A concurrent-calls limit is exhausted.
    ConcurrencyLimited {
        /// Which limit.
        scope: LimitScope,
    },
    /// The source address is banned for flooding.
    Flooding {
        /// Remaining ban time.
        retry_after: Duration,
    },
    /// The User-Agent matched a scanner signature.
    Scanner,
    /// SPIT scoring refused the call.
    Spit {
        /// The score.
        score: u32,
    },
    /// Greylisted: first-time caller asked to retry later.
    Greylisted {
        /// When to retry.
        retry_after: Duration,
    },
}

/// Which limit a rate or concurrency rejection hit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LimitScope {
    /// The member's federation-wide limit.
    Member,
    /// The per-source-address limit.
    Source,
}

/// A SIP response for a rejection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    /// Status code.
    pub code: u16,
    /// Reason phrase.
    pub reason: &'static str,
    /// Text for a `Warning: 399 <host> "<text>"` header.
    pub warning: Option<String>,
    /// Seconds for a Retry-After header.
    pub retry_after: Option<u32>,
}

fn secs(d: Duration) -> u32 {
    let s = d.as_secs() + u64::from(d.subsec_nanos() > 0);
    u32::try_from(s.max(1)).unwrap_or(u32::MAX)
}

fn reason_for(code: u16) -> &'static str {
    match code {
        403 => "Forbidden",
        404 => "Not Found",
        480 => "Temporarily Unavailable",
        486 => "Busy Here",
        488 => "Not Acceptable Here",
        503 => "Service Unavailable",
        600 => "Busy Everywhere",
        603 => "Decline",
        604 => "Does Not Exist Anywhere",
        607 => "Unwanted",
        _ => "Rejected",
    }
}

impl Rejection {
    /// The SIP response for this rejection.
    pub fn status(&self) -> Status {
        let (code, reason, warning, retry_after) = match self {
            Self::AddressBanned { reason } => (
                403,
                "Forbidden",
                Some(format!("source banned: {reason}")),
                None,
            ),
            Self::UnknownSource => (403, "Forbidden", Some("unknown peer".to_owned()), None),
            Self::MemberDisabled { .. } => {
                (403, "Forbidden", Some("member disabled".to_owned()), None)
            }
            Self::NoCaller => (
                403,
                "Forbidden",
                Some("no E.164 caller number".to_owned()),
                None,
            ),
            Self::CallerBlocked { status, reason } => (
                *status,
                reason_for(*status),
                Some(if reason.is_empty() {
                    "caller blocked".to_owned()
                } else {
                    reason.clone()
                }),
                None,
            ),
            Self::CallerNotOwned { .. } => (
                403,
                "Forbidden",
                Some("caller number not in member's ranges".to_owned()),
                None,
            ),
            Self::UnknownDestination => (
                404,
                "Not Found",
                Some("number not in federation".to_owned()),
                None,
            ),
            Self::NoAgreement { .. } => (
                403,
                "Forbidden",
                Some("no agreement with destination".to_owned()),
                None,
            ),
            Self::IdentityRequired => (428, "Use Identity Header", None, None),
            Self::IdentityInvalid => (438, "Invalid Identity Header", None, None),
            Self::AttestationNotAccepted { level } => (
                403,
                "Forbidden",
                Some(format!("attestation {level} not accepted")),
                None,
            ),
            Self::RateLimited { scope, retry_after } => (
                503,
                "Service Unavailable",
                Some(match scope {
                    LimitScope::Member => "member call rate exceeded".to_owned(),
                    LimitScope::Source => "source call rate exceeded".to_owned(),
                }),
                Some(secs(*retry_after)),
            ),
            Self::ConcurrencyLimited { scope } => (
                503,
                "Service Unavailable",
                Some(match scope {
                    LimitScope::Member => "member concurrent calls exceeded".to_owned(),
                    LimitScope::Source => "source concurrent calls exceeded".to_owned(),
                }),
                Some(1),
            ),
            Self::Flooding { retry_after } => (
                503,
                "Service Unavailable",
                Some("flooding".to_owned()),
                Some(secs(*retry_after)),
            ),
            Self::Scanner => (403, "Forbidden", None, None),
            Self::Spit { .. } => (
                607,
                "Unwanted",
                Some("call rejected as SPIT".to_owned()),
                None,
            ),
            Self::Greylisted { retry_after } => (
                480,
                "Temporarily Unavailable",
                Some("greylisted, retry later".to_owned()),
                Some(secs(*retry_after)),
            ),
        };
        Status {
            code,
            reason,
            warning,
            retry_after,
        }
    }

    /// A short stable label for logs and metrics.
    pub fn label(&self) -> &'static str {
        match self {
            Self::AddressBanned { .. } => "address_banned",
            Self::UnknownSource => "unknown_source",
            Self::MemberDisabled { .. } => "member_disabled",
            Self::NoCaller => "no_caller",
            Self::CallerBlocked { .. } => "caller_blocked",
            Self::CallerNotOwned { .. } => "caller_not_owned",
            Self::UnknownDestination => "unknown_destination",
            Self::NoAgreement { .. } => "no_agreement",
            Self::IdentityRequired => "identity_required",
            Self::IdentityInvalid => "identity_invalid",
            Self::AttestationNotAccepted { .. } => "attestation_not_accepted",
            Self::RateLimited { .. } => "rate_limited",
            Self::ConcurrencyLimited { .. } => "concurrency_limited",
            Self::Flooding { .. } => "flooding",
            Self::Scanner => "scanner",
            Self::Spit { .. } => "spit",
            Self::Greylisted { .. } => "greylisted",
        }
    }
}

/// A member the call may be delivered to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// Member name.
    pub member: String,
    /// The member's SIP target, if routing does not go through ENUM.
    pub sip_target: Option<String>,
    /// Header rules of the agreement.
    pub headers: HeaderRules,
    /// Range preference (lower first).
    pub preference: i32,
}

/// An admitted call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Admission {
    /// The source member.
    pub from: String,
    /// The caller was on an allow list (skip SPIT scoring).
    pub caller_allowed: bool,
    /// Terminating members, in the order to try them.
    pub targets: Vec<Target>,
}

/// The decision for one call attempt.
pub type Verdict = Result<Admission, Rejection>;

fn unix_ms(now: SystemTime) -> i64 {
    now.duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Decides whether `attempt` may cross the federation, at wall-clock time
/// `now` (used only for list and ban expiry).
///
/// The order of the checks, each of which may reject:
///
/// ```text
/// 1. federation-wide address ban                     403
/// 2. source member by TLS identity, then source CIDR 403 unknown peer / disabled
/// 3. caller number present                           403
/// 4. caller allow list (member, then federation);
///    otherwise block list                            configured code (603)
/// 5. caller inside the member's originating ranges   403
/// 6. terminating members at the longest prefix       404
/// 7. terminator's own block list (each target)       configured code
/// 8. agreement source -> terminator (each target)    403
/// 9. Identity requirement and attestation (each)     428 / 438 / 403
/// ```
///
/// Targets that fail 7, 8 or 9 are dropped; when none is left, the first
/// failure is reported (preferring any other over a missing agreement).
/// Rate and concurrency limits are stateful and live in
/// [`crate::ratelimit`].
pub fn evaluate(attempt: &CallAttempt, registry: &Registry, now: SystemTime) -> Verdict {
    let now_ms = unix_ms(now);
    if let Some(ban) = registry.banned(attempt.source, now_ms) {
        return Err(Rejection::AddressBanned {
            reason: ban.reason.clone(),
        });
    }
    let from_idx = registry
        .member_by_tls(&attempt.tls_names)
        .or_else(|| registry.member_by_address(attempt.source))
        .ok_or(Rejection::UnknownSource)?;
    let from = registry
        .members()
        .get(from_idx)
        .ok_or(Rejection::UnknownSource)?;
    if !from.info.enabled {
        return Err(Rejection::MemberDisabled {
            member: from.info.name.clone(),
        });
    }
    let caller = attempt.caller.as_deref().ok_or(Rejection::NoCaller)?;
    let allowed = registry
        .list_match(ListKind::Allow, Some(from.name()), caller, now_ms)
        .is_some();
    if !allowed
        && let Some(block) = registry.list_match(ListKind::Block, Some(from.name()), caller, now_ms)
    {
        return Err(Rejection::CallerBlocked {
            status: block.status,
            reason: block.reason.clone(),
        });
    }
    if !registry.may_originate(from_idx, caller) {
        return Err(Rejection::CallerNotOwned {
            member: from.info.name.clone(),
        });
    }
    let terminators = registry.terminators(&attempt.callee);
    if terminators.is_empty() {
        return Err(Rejection::UnknownDestination);
    }
    let mut first_failure = None;
    let mut targets = Vec::new();
    for t in &terminators {
        let Some(to) = registry.members().get(t.member) else {
            continue;
        };
        if let Some(block) = registry.member_blocks(to.name(), caller, now_ms) {
            note_failure(
                &mut first_failure,
                Rejection::CallerBlocked {
                    status: block.status,
                    reason: block.reason.clone(),
                },
            );
            continue;
        }
        let check = match registry.agreement(from_idx, t.member) {
            Some(a) if a.enabled && to.info.enabled => {
                check_identity(a, attempt.identity).map(|()| Target {
                    member: to.info.name.clone(),
                    sip_target: to.info.sip_target.clone(),
                    headers: a.headers.clone(),
                    preference: t.preference,
                })
            }
            _ => Err(Rejection::NoAgreement {
                from: from.info.name.clone(),
                to: to.info.name.clone(),
            }),
        };
        match check {
            Ok(target) => targets.push(target),
            Err(r) => note_failure(&mut first_failure, r),
        }
    }
    if targets.is_empty() {
        return Err(first_failure.unwrap_or(Rejection::UnknownDestination));
    }
    Ok(Admission {
        from: from.info.name.clone(),
        caller_allowed: allowed,
        targets,
    })
}

/// Keeps the failure to report when no target is left: the first one,
/// except that a target the source has an agreement with explains the
/// refusal better than one it has none with.
fn note_failure(slot: &mut Option<Rejection>, r: Rejection) {
    match slot {
        None => *slot = Some(r),
        Some(Rejection::NoAgreement { .. }) if !matches!(r, Rejection::NoAgreement { .. }) => {
            *slot = Some(r);
        }
        Some(_) => {}
    }
}

fn check_identity(
    agreement: &crate::registry::Agreement,
    identity: IdentityCheck,
) -> Result<(), Rejection> {
    match identity {
        IdentityCheck::Absent if agreement.require_identity => Err(Rejection::IdentityRequired),
        IdentityCheck::Invalid if agreement.require_identity => Err(Rejection::IdentityInvalid),
        IdentityCheck::Valid(level)
            if !agreement.accepted_attestation.is_empty()
                && !agreement.accepted_attestation.contains(&level) =>
        {
            Err(Rejection::AttestationNotAccepted { level })
        }
        _ => Ok(()),
    }
}
