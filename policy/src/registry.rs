//! The federation registry: plain data loaded from the store ([`Snapshot`]),
//! the write vocabulary ([`Change`]) and an indexed read-only form
//! ([`Registry`]) that [`crate::evaluate`] consults on every call.

use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// A SHAKEN attestation level (RFC 8588 `attest` claim).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Attestation {
    /// Full attestation.
    A,
    /// Partial attestation.
    B,
    /// Gateway attestation.
    C,
}

impl Attestation {
    /// Parses `A`, `B` or `C` (case-insensitive).
    pub fn parse(s: &str) -> Result<Self> {
        match s.trim() {
            "A" | "a" => Ok(Self::A),
            "B" | "b" => Ok(Self::B),
            "C" | "c" => Ok(Self::C),
            other => Err(Error::InvalidAttestation {
                value: other.to_owned(),
            }),
        }
    }

    /// The letter, as in the PASSporT claim.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::A => "A",
            Self::B => "B",
            Self::C => "C",
        }
    }

    /// Parses a comma-separated list (the store's column format). Empty
    /// entries are ignored.
    pub fn parse_list(s: &str) -> Result<Vec<Self>> {
        let mut out: Vec<Self> = s
            .split(',')
            .filter(|t| !t.trim().is_empty())
            .map(Self::parse)
            .collect::<Result<_>>()?;
        out.sort();
        out.dedup();
        Ok(out)
    }

    /// Formats a list as the store's comma-separated column.
    pub fn join(list: &[Self]) -> String {
        list.iter()
            .map(|a| a.as_str())
            .collect::<Vec<_>>()
            .join(",")
    }
}

impl fmt::Display for Attestation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Normalises an E.164 number or prefix to its digits: an optional leading
/// `+` is removed, visual separators (`-`, `.`, space, parentheses) are
/// dropped, and the rest must be 1 to 15 digits.
pub fn normalize_number(s: &str) -> Result<String> {
    let body = s.trim();
    let body = body.strip_prefix('+').unwrap_or(body);
    let digits: String = body
        .chars()
        .filter(|c| !matches!(c, '-' | '.' | ' ' | '(' | ')'))
        .collect();
    if digits.is_empty() || digits.len() > 15 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Error::InvalidNumber {
            value: s.to_owned(),
        });
    }
    Ok(digits)
}

/// A number range a member owns, by E.164 prefix.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NumberRange {
    /// E.164 digits of the prefix, without `+`.
    pub prefix: String,
    /// The member may send calls with caller numbers in this range.
    pub may_originate: bool,
    /// Calls to numbers in this range are delivered to the member.
    pub terminates: bool,
    /// Lower is preferred when several members terminate the same number.
    pub preference: i32,
}

/// Limits that apply to a member's calls over the whole federation, and to
/// each of its source addresses.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// New calls per second, all nodes together.
    pub cps: Option<u32>,
    /// Calls in progress, all nodes together.
    pub concurrent: Option<u32>,
    /// New calls per second from one source address.
    pub source_cps: Option<u32>,
    /// Calls in progress from one source address.
    pub source_concurrent: Option<u32>,
}

impl Limits {
    /// True when no limit is set.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// The member-level attributes (the `members` row).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberInfo {
    /// Unique short name, the key everything else refers to.
    pub name: String,
    /// Human-readable name.
    pub display_name: String,
    /// Disabled members can neither send nor receive.
    pub enabled: bool,
    /// The SIP URI calls to this member are relayed to, when routing does
    /// not go through ENUM.
    pub sip_target: Option<String>,
}

/// A member with everything that belongs to it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    /// The `members` row.
    pub info: MemberInfo,
    /// SIP domains (lower case), sorted.
    pub domains: Vec<String>,
    /// Certificate identities (subjectAltName DNS/URI values), sorted.
    pub identities: Vec<String>,
    /// Source networks of legacy UDP/TCP peers, sorted.
    pub networks: Vec<IpNet>,
    /// Owned number ranges, sorted by prefix.
    pub ranges: Vec<NumberRange>,
    /// Limits.
    pub limits: Limits,
}

impl Member {
    /// A member with no domains, networks, ranges or limits.
    pub fn new(info: MemberInfo) -> Self {
        Self {
            info,
            domains: Vec::new(),
            identities: Vec::new(),
            networks: Vec::new(),
            ranges: Vec::new(),
            limits: Limits::default(),
        }
    }

    /// The member's name.
    pub fn name(&self) -> &str {
        &self.info.name
    }

    fn normalize(&mut self) {
        for d in &mut self.domains {
            *d = d.to_ascii_lowercase();
        }
        self.domains.sort();
        self.domains.dedup();
        self.identities.sort();
        self.identities.dedup();
        self.networks.sort();
        self.networks.dedup();
        self.ranges.sort_by(|a, b| a.prefix.cmp(&b.prefix));
        self.ranges.dedup_by(|a, b| a.prefix == b.prefix);
    }
}

/// Header rules applied to calls crossing one agreement.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeaderRules {
    /// Hide the sender's topology (Via, Record-Route, Contact) from the
    /// receiver, as Kamailio's topos does.
    pub topology_hiding: bool,
    /// Header names removed before relaying (lower case).
    pub strip: Vec<String>,
}

/// An agreement: `from` may send calls to `to`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Agreement {
    /// Originating member.
    pub from: String,
    /// Terminating member.
    pub to: String,
    /// Disabled agreements allow nothing.
    pub enabled: bool,
    /// Calls must carry a valid Identity header (RFC 8224).
    pub require_identity: bool,
    /// Accepted SHAKEN attestation levels; empty accepts any.
    pub accepted_attestation: Vec<Attestation>,
    /// Header rules towards `to`.
    pub headers: HeaderRules,
}

/// Whether a list entry blocks or allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ListKind {
    /// Calls from matching callers are refused.
    Block,
    /// Calls from matching callers skip block lists and SPIT scoring.
    Allow,
}

impl ListKind {
    /// The store's column value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Block => "block",
            Self::Allow => "allow",
        }
    }

    /// Parses the store's column value.
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "block" => Ok(Self::Block),
            "allow" => Ok(Self::Allow),
            other => Err(Error::InvalidListKind {
                value: other.to_owned(),
            }),
        }
    }
}

/// A caller-number block or allow list entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListEntry {
    /// `None`: federation-wide; otherwise the member whose calls it applies
    /// to: a block entry refuses the caller's calls from that member and
    /// keeps the member from being chosen as terminator for that caller; an
    /// allow entry exempts the caller's calls from that member from
    /// federation-wide block entries.
    pub scope: Option<String>,
    /// Block or allow.
    pub kind: ListKind,
    /// E.164 digits without `+`.
    pub pattern: String,
    /// Match the whole number (true) or a prefix (false).
    pub exact: bool,
    /// SIP status sent when a block entry matches.
    pub status: u16,
    /// Reason text for the response's Warning and the log.
    pub reason: String,
    /// Expiry, in milliseconds since the Unix epoch.
    pub expires_at: Option<i64>,
}

impl ListEntry {
    fn matches(&self, caller: &str) -> bool {
        if self.exact {
            caller == self.pattern
        } else {
            caller.starts_with(&self.pattern)
        }
    }
}

/// A source network banned federation-wide.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddressBan {
    /// The banned network.
    pub network: IpNet,
    /// Why.
    pub reason: String,
    /// Expiry, in milliseconds since the Unix epoch.
    pub expires_at: Option<i64>,
}

/// The whole registry as plain data, as the store loads it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    /// The store's registry version counter when this was read.
    pub version: i64,
    /// Members, sorted by name.
    pub members: Vec<Member>,
    /// Agreements, sorted by (from, to).
    pub agreements: Vec<Agreement>,
    /// Caller lists, sorted by (scope, kind, pattern).
    pub lists: Vec<ListEntry>,
    /// Address bans, sorted by network.
    pub bans: Vec<AddressBan>,
}

impl Snapshot {
    /// Sorts every collection into its canonical order, so that two
    /// snapshots with the same content compare equal.
    pub fn normalize(&mut self) {
        for m in &mut self.members {
            m.normalize();
        }
        self.members.sort_by(|a, b| a.info.name.cmp(&b.info.name));
        for a in &mut self.agreements {
            a.accepted_attestation.sort();
            a.accepted_attestation.dedup();
            for h in &mut a.headers.strip {
                *h = h.to_ascii_lowercase();
            }
        }
        self.agreements
            .sort_by(|a, b| (&a.from, &a.to).cmp(&(&b.from, &b.to)));
        self.lists
            .sort_by(|a, b| (&a.scope, a.kind, &a.pattern).cmp(&(&b.scope, b.kind, &b.pattern)));
        self.bans.sort_by_key(|b| b.network);
    }

    /// The member called `name`.
    pub fn member(&self, name: &str) -> Option<&Member> {
        self.members.iter().find(|m| m.info.name == name)
    }

    fn member_mut(&mut self, name: &str) -> Result<&mut Member> {
        self.members
            .iter_mut()
            .find(|m| m.info.name == name)
            .ok_or_else(|| Error::UnknownMember {
                name: name.to_owned(),
            })
    }

    /// Applies one change in memory, with the same semantics as the store
    /// (removing a member removes everything that refers to it).
    pub fn apply(&mut self, change: &Change) -> Result<()> {
        match change {
            Change::CreateMember(info) => {
                if self.member(&info.name).is_some() {
                    return Err(Error::DuplicateMember {
                        name: info.name.clone(),
                    });
                }
                self.members.push(Member::new(info.clone()));
            }
            Change::UpdateMember(info) => self.member_mut(&info.name)?.info = info.clone(),
            Change::RemoveMember { name } => {
                self.member_mut(name)?;
                self.members.retain(|m| &m.info.name != name);
                self.agreements.retain(|a| &a.from != name && &a.to != name);
                self.lists.retain(|l| l.scope.as_ref() != Some(name));
            }
            Change::AddDomain { member, domain } => {
                self.member_mut(member)?.domains.push(domain.clone());
            }
            Change::RemoveDomain { member, domain } => {
                self.member_mut(member)?.domains.retain(|d| d != domain);
            }
            Change::AddIdentity { member, identity } => {
                self.member_mut(member)?.identities.push(identity.clone());
            }
            Change::RemoveIdentity { member, identity } => {
                self.member_mut(member)?
                    .identities
                    .retain(|d| d != identity);
            }
            Change::AddNetwork { member, network } => {
                self.member_mut(member)?.networks.push(*network);
            }
            Change::RemoveNetwork { member, network } => {
                self.member_mut(member)?.networks.retain(|n| n != network);
            }
            Change::PutRange { member, range } => {
                let m = self.member_mut(member)?;
                m.ranges.retain(|r| r.prefix != range.prefix);
                m.ranges.push(range.clone());
            }
            Change::RemoveRange { member, prefix } => {
                self.member_mut(member)?
                    .ranges
                    .retain(|r| &r.prefix != prefix);
            }
            Change::SetLimits { member, limits } => self.member_mut(member)?.limits = *limits,
            Change::PutAgreement(a) => {
                self.member_mut(&a.from)?;
                self.member_mut(&a.to)?;
                self.agreements
                    .retain(|x| !(x.from == a.from && x.to == a.to));
                self.agreements.push(a.clone());
            }
            Change::RemoveAgreement { from, to } => {
                self.agreements
                    .retain(|x| !(&x.from == from && &x.to == to));
            }
            Change::PutListEntry(e) => {
                self.lists.retain(|x| {
                    !(x.scope == e.scope && x.kind == e.kind && x.pattern == e.pattern)
                });
                self.lists.push(e.clone());
            }
            Change::RemoveListEntry {
                scope,
                kind,
                pattern,
            } => self
                .lists
                .retain(|x| !(&x.scope == scope && x.kind == *kind && &x.pattern == pattern)),
            Change::PutBan(b) => {
                self.bans.retain(|x| x.network != b.network);
                self.bans.push(b.clone());
            }
            Change::RemoveBan { network } => self.bans.retain(|x| &x.network != network),
        }
        self.normalize();
        Ok(())
    }
}

/// One write to the registry. A list of changes is applied by the store in
/// one transaction, in order; [`crate::federation::diff`] produces them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Change {
    /// Insert a member.
    CreateMember(MemberInfo),
    /// Update a member's attributes.
    UpdateMember(MemberInfo),
    /// Remove a member and everything that refers to it.
    RemoveMember {
        /// Member name.
        name: String,
    },
    /// Add a SIP domain to a member.
    AddDomain {
        /// Member name.
        member: String,
        /// Domain, lower case.
        domain: String,
    },
    /// Remove a SIP domain.
    RemoveDomain {
        /// Member name.
        member: String,
        /// Domain.
        domain: String,
    },
    /// Add a certificate identity.
    AddIdentity {
        /// Member name.
        member: String,
        /// Identity.
        identity: String,
    },
    /// Remove a certificate identity.
    RemoveIdentity {
        /// Member name.
        member: String,
        /// Identity.
        identity: String,
    },
    /// Add a source network.
    AddNetwork {
        /// Member name.
        member: String,
        /// Network.
        network: IpNet,
    },
    /// Remove a source network.
    RemoveNetwork {
        /// Member name.
        member: String,
        /// Network.
        network: IpNet,
    },
    /// Insert or replace a number range (keyed by member and prefix).
    PutRange {
        /// Member name.
        member: String,
        /// The range.
        range: NumberRange,
    },
    /// Remove a number range.
    RemoveRange {
        /// Member name.
        member: String,
        /// Prefix digits.
        prefix: String,
    },
    /// Set a member's limits (all `None` removes them).
    SetLimits {
        /// Member name.
        member: String,
        /// The limits.
        limits: Limits,
    },
    /// Insert or replace an agreement (keyed by from and to).
    PutAgreement(Agreement),
    /// Remove an agreement.
    RemoveAgreement {
        /// Originating member.
        from: String,
        /// Terminating member.
        to: String,
    },
    /// Insert or replace a list entry (keyed by scope, kind and pattern).
    PutListEntry(ListEntry),
    /// Remove a list entry.
    RemoveListEntry {
        /// Scope (`None` is federation-wide).
        scope: Option<String>,
        /// Kind.
        kind: ListKind,
        /// Pattern digits.
        pattern: String,
    },
    /// Insert or replace an address ban.
    PutBan(AddressBan),
    /// Remove an address ban.
    RemoveBan {
        /// The network.
        network: IpNet,
    },
}

fn check_name(name: &str) -> Result<()> {
    if crate::federation::valid_name(name) {
        Ok(())
    } else {
        Err(Error::InvalidMemberName {
            name: name.to_owned(),
        })
    }
}

fn check_digits(value: &str) -> Result<()> {
    if normalize_number(value)? == value {
        Ok(())
    } else {
        Err(Error::InvalidNumber {
            value: value.to_owned(),
        })
    }
}

impl Change {
    /// Checks the values a change would write: member names
    /// (`[a-z0-9_.-]`, at most 64), number prefixes and list patterns
    /// (1-15 digits, no `+`), list status codes (400-699). The store calls
    /// this before writing, so the admin API cannot store what the
    /// federation file would refuse.
    pub fn validate(&self) -> Result<()> {
        match self {
            Self::CreateMember(i) | Self::UpdateMember(i) => check_name(&i.name),
            Self::RemoveMember { name } => check_name(name),
            Self::AddDomain { member, .. }
            | Self::RemoveDomain { member, .. }
            | Self::AddIdentity { member, .. }
            | Self::RemoveIdentity { member, .. }
            | Self::AddNetwork { member, .. }
            | Self::RemoveNetwork { member, .. }
            | Self::SetLimits { member, .. } => check_name(member),
            Self::PutRange { member, range } => {
                check_name(member)?;
                check_digits(&range.prefix)
            }
            Self::RemoveRange { member, prefix } => {
                check_name(member)?;
                check_digits(prefix)
            }
            Self::PutAgreement(a) => {
                check_name(&a.from)?;
                check_name(&a.to)
            }
            Self::RemoveAgreement { from, to } => {
                check_name(from)?;
                check_name(to)
            }
            Self::PutListEntry(e) => {
                if let Some(scope) = &e.scope {
                    check_name(scope)?;
                }
                if !(400..=699).contains(&e.status) {
                    return Err(Error::InvalidStatus { status: e.status });
                }
                check_digits(&e.pattern)
            }
            Self::RemoveListEntry { pattern, .. } => check_digits(pattern),
            Self::PutBan(_) | Self::RemoveBan { .. } => Ok(()),
        }
    }
}

fn opt<T: fmt::Display>(v: &Option<T>) -> String {
    v.as_ref()
        .map_or_else(|| "-".to_owned(), ToString::to_string)
}

impl fmt::Display for Change {
    /// One line per change, prefixed `+` (create), `~` (update) or `-`
    /// (remove): the `--dry-run` diff format.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::CreateMember(i) => write!(
                f,
                "+ member {} (display_name={:?}, enabled={}, sip_target={})",
                i.name,
                i.display_name,
                i.enabled,
                opt(&i.sip_target)
            ),
            Self::UpdateMember(i) => write!(
                f,
                "~ member {} (display_name={:?}, enabled={}, sip_target={})",
                i.name,
                i.display_name,
                i.enabled,
                opt(&i.sip_target)
            ),
            Self::RemoveMember { name } => write!(f, "- member {name}"),
            Self::AddDomain { member, domain } => write!(f, "+ domain {member} {domain}"),
            Self::RemoveDomain { member, domain } => write!(f, "- domain {member} {domain}"),
            Self::AddIdentity { member, identity } => {
                write!(f, "+ identity {member} {identity}")
            }
            Self::RemoveIdentity { member, identity } => {
                write!(f, "- identity {member} {identity}")
            }
            Self::AddNetwork { member, network } => write!(f, "+ network {member} {network}"),
            Self::RemoveNetwork { member, network } => {
                write!(f, "- network {member} {network}")
            }
            Self::PutRange { member, range } => write!(
                f,
                "~ range {member} +{} (originate={}, terminate={}, preference={})",
                range.prefix, range.may_originate, range.terminates, range.preference
            ),
            Self::RemoveRange { member, prefix } => write!(f, "- range {member} +{prefix}"),
            Self::SetLimits { member, limits } => write!(
                f,
                "~ limits {member} (cps={}, concurrent={}, source_cps={}, source_concurrent={})",
                opt(&limits.cps),
                opt(&limits.concurrent),
                opt(&limits.source_cps),
                opt(&limits.source_concurrent)
            ),
            Self::PutAgreement(a) => write!(
                f,
                "~ agreement {} -> {} (enabled={}, require_identity={}, attestation=[{}], topology_hiding={}, strip=[{}])",
                a.from,
                a.to,
                a.enabled,
                a.require_identity,
                Attestation::join(&a.accepted_attestation),
                a.headers.topology_hiding,
                a.headers.strip.join(",")
            ),
            Self::RemoveAgreement { from, to } => write!(f, "- agreement {from} -> {to}"),
            Self::PutListEntry(e) => write!(
                f,
                "~ {} {} +{}{} (status={}, reason={:?}, expires_at={})",
                e.kind.as_str(),
                e.scope.as_deref().unwrap_or("*"),
                e.pattern,
                if e.exact { "" } else { "*" },
                e.status,
                e.reason,
                opt(&e.expires_at)
            ),
            Self::RemoveListEntry {
                scope,
                kind,
                pattern,
            } => write!(
                f,
                "- {} {} +{pattern}",
                kind.as_str(),
                scope.as_deref().unwrap_or("*")
            ),
            Self::PutBan(b) => write!(
                f,
                "~ ban {} (reason={:?}, expires_at={})",
                b.network,
                b.reason,
                opt(&b.expires_at)
            ),
            Self::RemoveBan { network } => write!(f, "- ban {network}"),
        }
    }
}

/// One member that terminates a called number, in preference order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Terminator {
    /// Index into [`Registry::members`].
    pub member: usize,
    /// The matching range prefix.
    pub prefix: String,
    /// The range preference (lower first).
    pub preference: i32,
}

/// The registry indexed for lookups on the call path. Built once per
/// snapshot (on every reload), then shared read-only.
#[derive(Debug, Clone, Default)]
pub struct Registry {
    snapshot: Snapshot,
    by_name: HashMap<String, usize>,
    by_domain: HashMap<String, usize>,
    by_identity: HashMap<String, usize>,
    /// (network, member), longest prefix first.
    networks: Vec<(IpNet, usize)>,
    /// Terminating prefix -> members, in preference order.
    terminating: HashMap<String, Vec<(i32, usize)>>,
    agreements: HashMap<(usize, usize), usize>,
}

impl Registry {
    /// Indexes a snapshot.
    pub fn new(mut snapshot: Snapshot) -> Self {
        snapshot.normalize();
        let mut r = Self::default();
        for (i, m) in snapshot.members.iter().enumerate() {
            r.by_name.insert(m.info.name.clone(), i);
            for d in &m.domains {
                r.by_domain.insert(d.clone(), i);
            }
            for id in &m.identities {
                r.by_identity.insert(id.to_ascii_lowercase(), i);
            }
            for n in &m.networks {
                r.networks.push((*n, i));
            }
            for range in m.ranges.iter().filter(|r| r.terminates) {
                r.terminating
                    .entry(range.prefix.clone())
                    .or_default()
                    .push((range.preference, i));
            }
        }
        r.networks
            .sort_by_key(|n| std::cmp::Reverse(n.0.prefix_len()));
        for v in r.terminating.values_mut() {
            v.sort();
        }
        for (i, a) in snapshot.agreements.iter().enumerate() {
            if let (Some(&f), Some(&t)) = (r.by_name.get(&a.from), r.by_name.get(&a.to)) {
                r.agreements.insert((f, t), i);
            }
        }
        r.snapshot = snapshot;
        r
    }

    /// The snapshot this registry indexes.
    pub fn snapshot(&self) -> &Snapshot {
        &self.snapshot
    }

    /// The store version of the snapshot.
    pub fn version(&self) -> i64 {
        self.snapshot.version
    }

    /// All members, in name order (indices are stable for this registry).
    pub fn members(&self) -> &[Member] {
        &self.snapshot.members
    }

    /// Looks a member up by name.
    pub fn member_index(&self, name: &str) -> Option<usize> {
        self.by_name.get(name).copied()
    }

    /// The member whose certificate identity or domain matches one of
    /// `names` (the verified TLS peer's subjectAltNames).
    pub fn member_by_tls(&self, names: &[String]) -> Option<usize> {
        names.iter().find_map(|n| {
            let n = n.to_ascii_lowercase();
            self.by_identity
                .get(&n)
                .or_else(|| self.by_domain.get(&n))
                .copied()
        })
    }

    /// The member with the most specific source network containing `addr`.
    pub fn member_by_address(&self, addr: IpAddr) -> Option<usize> {
        let addr = canonical_ip(addr);
        self.networks
            .iter()
            .find(|(n, _)| n.contains(&addr))
            .map(|(_, m)| *m)
    }

    /// The members terminating `number` (digits), at the longest matching
    /// prefix, best preference first.
    pub fn terminators(&self, number: &str) -> Vec<Terminator> {
        for len in (1..=number.len()).rev() {
            let Some(prefix) = number.get(..len) else {
                continue;
            };
            if let Some(list) = self.terminating.get(prefix) {
                return list
                    .iter()
                    .map(|&(preference, member)| Terminator {
                        member,
                        prefix: prefix.to_owned(),
                        preference,
                    })
                    .collect();
            }
        }
        Vec::new()
    }

    /// The agreement from member index `from` to member index `to`.
    pub fn agreement(&self, from: usize, to: usize) -> Option<&Agreement> {
        self.agreements
            .get(&(from, to))
            .and_then(|&i| self.snapshot.agreements.get(i))
    }

    /// True if `member` may originate calls from `caller`.
    pub fn may_originate(&self, member: usize, caller: &str) -> bool {
        self.snapshot.members.get(member).is_some_and(|m| {
            m.ranges
                .iter()
                .any(|r| r.may_originate && caller.starts_with(&r.prefix))
        })
    }

    /// The first list entry of `kind` matching `caller`, member-scoped
    /// entries before federation-wide ones, ignoring expired entries.
    pub fn list_match(
        &self,
        kind: ListKind,
        member: Option<&str>,
        caller: &str,
        now_ms: i64,
    ) -> Option<&ListEntry> {
        let live = |e: &&ListEntry| {
            e.kind == kind && e.expires_at.is_none_or(|t| t > now_ms) && e.matches(caller)
        };
        let scoped = member.and_then(|m| {
            self.snapshot
                .lists
                .iter()
                .filter(|e| e.scope.as_deref() == Some(m))
                .find(live)
        });
        scoped.or_else(|| {
            self.snapshot
                .lists
                .iter()
                .filter(|e| e.scope.is_none())
                .find(live)
        })
    }

    /// The first live block entry scoped to `member` (only) that matches
    /// `caller`: the terminating member's own block list.
    pub fn member_blocks(&self, member: &str, caller: &str, now_ms: i64) -> Option<&ListEntry> {
        self.snapshot.lists.iter().find(|e| {
            e.kind == ListKind::Block
                && e.scope.as_deref() == Some(member)
                && e.expires_at.is_none_or(|t| t > now_ms)
                && e.matches(caller)
        })
    }

    /// The live federation-wide ban covering `addr`.
    pub fn banned(&self, addr: IpAddr, now_ms: i64) -> Option<&AddressBan> {
        let addr = canonical_ip(addr);
        self.snapshot
            .bans
            .iter()
            .find(|b| b.expires_at.is_none_or(|t| t > now_ms) && b.network.contains(&addr))
    }
}

/// Maps IPv4-mapped IPv6 addresses to IPv4, so dual-stack sockets match
/// IPv4 networks.
pub fn canonical_ip(addr: IpAddr) -> IpAddr {
    match addr {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 @ IpAddr::V4(_) => v4,
    }
}
