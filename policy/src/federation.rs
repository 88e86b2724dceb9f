//! The declarative federation file: members, domains, networks, number
//! ranges, agreements, limits, caller lists and bans in one TOML file, and
//! [`diff`], which turns "what the store has" and "what the file says" into
//! the ordered list of [`Change`]s that `peering federation apply` writes in
//! one transaction (or prints with `--dry-run`).
//!
//! ```toml
//! [[member]]
//! name = "a"                       # [a-z0-9_.-], the key
//! display_name = "Member A"
//! enabled = true                   # default true
//! sip_target = "sip:127.0.0.1:5080"
//! domains = ["a.example"]
//! identities = ["sip.a.example"]   # certificate subjectAltNames
//! networks = ["127.0.0.2/32"]
//! ranges = [{ prefix = "+1555010", originate = true, terminate = true, preference = 100 }]
//! limits = { cps = 20, concurrent = 100, source_cps = 20, source_concurrent = 100 }
//!
//! [[agreement]]
//! from = "a"
//! to = "b"
//! require_identity = false
//! accepted_attestation = ["A", "B"]  # empty: any
//! topology_hiding = true
//! strip_headers = ["P-Charging-Vector"]
//!
//! [[list]]
//! kind = "block"                   # or "allow"
//! scope = "a"                      # omit for federation-wide
//! number = "+15550100666"
//! prefix = false                   # true: `number` is a prefix
//! status = 603
//! reason = "reported for fraud"
//!
//! [[ban]]
//! network = "192.0.2.0/24"
//! reason = "scanner"
//! ```

use std::collections::{BTreeMap, BTreeSet, HashMap};

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::registry::{
    AddressBan, Agreement, Attestation, Change, HeaderRules, Limits, ListEntry, ListKind, Member,
    MemberInfo, NumberRange, Snapshot, normalize_number,
};
use crate::{Error, Result};

fn yes() -> bool {
    true
}

fn default_preference() -> i32 {
    100
}

fn default_status() -> u16 {
    603
}

/// The whole file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FederationFile {
    /// `[[member]]` tables.
    #[serde(default, rename = "member")]
    pub members: Vec<MemberSpec>,
    /// `[[agreement]]` tables.
    #[serde(default, rename = "agreement")]
    pub agreements: Vec<AgreementSpec>,
    /// `[[list]]` tables.
    #[serde(default, rename = "list")]
    pub lists: Vec<ListSpec>,
    /// `[[ban]]` tables.
    #[serde(default, rename = "ban")]
    pub bans: Vec<BanSpec>,
}

/// A `[[member]]` table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemberSpec {
    /// Unique name.
    pub name: String,
    /// Human-readable name.
    #[serde(default)]
    pub display_name: String,
    /// Enabled (default true).
    #[serde(default = "yes")]
    pub enabled: bool,
    /// SIP URI calls to this member are relayed to.
    #[serde(default)]
    pub sip_target: Option<String>,
    /// SIP domains.
    #[serde(default)]
    pub domains: Vec<String>,
    /// Certificate identities.
    #[serde(default)]
    pub identities: Vec<String>,
    /// Source networks.
    #[serde(default)]
    pub networks: Vec<IpNet>,
    /// Number ranges.
    #[serde(default)]
    pub ranges: Vec<RangeSpec>,
    /// Limits.
    #[serde(default)]
    pub limits: LimitsSpec,
}

/// A member's number range.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RangeSpec {
    /// E.164 prefix, with or without `+`.
    pub prefix: String,
    /// May originate (default true).
    #[serde(default = "yes")]
    pub originate: bool,
    /// Terminates (default true).
    #[serde(default = "yes")]
    pub terminate: bool,
    /// Preference, lower first (default 100).
    #[serde(default = "default_preference")]
    pub preference: i32,
}

/// A member's limits.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsSpec {
    /// Calls per second, federation-wide.
    #[serde(default)]
    pub cps: Option<u32>,
    /// Concurrent calls, federation-wide.
    #[serde(default)]
    pub concurrent: Option<u32>,
    /// Calls per second per source address.
    #[serde(default)]
    pub source_cps: Option<u32>,
    /// Concurrent calls per source address.
    #[serde(default)]
    pub source_concurrent: Option<u32>,
}

/// An `[[agreement]]` table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgreementSpec {
    /// Originating member.
    pub from: String,
    /// Terminating member.
    pub to: String,
    /// Enabled (default true).
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Require a valid Identity header.
    #[serde(default)]
    pub require_identity: bool,
    /// Accepted attestation levels (`A`, `B`, `C`); empty: any.
    #[serde(default)]
    pub accepted_attestation: Vec<String>,
    /// Hide topology towards `to`.
    #[serde(default)]
    pub topology_hiding: bool,
    /// Headers to remove towards `to`.
    #[serde(default)]
    pub strip_headers: Vec<String>,
}

/// A `[[list]]` table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListSpec {
    /// Block or allow.
    pub kind: ListKind,
    /// Member scope; omitted: federation-wide.
    #[serde(default)]
    pub scope: Option<String>,
    /// The caller number or prefix.
    pub number: String,
    /// `number` is a prefix.
    #[serde(default)]
    pub prefix: bool,
    /// Status for block entries (default 603).
    #[serde(default = "default_status")]
    pub status: u16,
    /// Reason text.
    #[serde(default)]
    pub reason: String,
    /// Expiry in milliseconds since the Unix epoch.
    #[serde(default)]
    pub expires_at: Option<i64>,
}

/// A `[[ban]]` table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BanSpec {
    /// The network.
    pub network: IpNet,
    /// Reason.
    #[serde(default)]
    pub reason: String,
    /// Expiry in milliseconds since the Unix epoch.
    #[serde(default)]
    pub expires_at: Option<i64>,
}

pub(crate) fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_.-".contains(&b))
}

impl FederationFile {
    /// Parses the TOML text (unknown keys are errors). Call
    /// [`Self::to_snapshot`] to validate.
    pub fn parse(text: &str) -> Result<Self> {
        Ok(toml::from_str(text)?)
    }

    /// Validates the file and converts it to the registry model: names are
    /// unique and well-formed, references resolve, numbers are E.164,
    /// domains belong to one member, agreements are unique.
    pub fn to_snapshot(&self) -> Result<Snapshot> {
        let mut snap = Snapshot::default();
        let mut names = BTreeSet::new();
        let mut domains: HashMap<String, String> = HashMap::new();
        for m in &self.members {
            if !valid_name(&m.name) {
                return Err(Error::InvalidMemberName {
                    name: m.name.clone(),
                });
            }
            if !names.insert(m.name.clone()) {
                return Err(Error::DuplicateMember {
                    name: m.name.clone(),
                });
            }
            let mut member = Member::new(MemberInfo {
                name: m.name.clone(),
                display_name: m.display_name.clone(),
                enabled: m.enabled,
                sip_target: m.sip_target.clone(),
            });
            for d in &m.domains {
                let d = d.to_ascii_lowercase();
                if let Some(first) = domains.insert(d.clone(), m.name.clone())
                    && first != m.name
                {
                    return Err(Error::DuplicateDomain {
                        domain: d,
                        first,
                        second: m.name.clone(),
                    });
                }
                member.domains.push(d);
            }
            member.identities = m.identities.clone();
            member.networks = m.networks.iter().map(IpNet::trunc).collect();
            for r in &m.ranges {
                member.ranges.push(NumberRange {
                    prefix: normalize_number(&r.prefix)?,
                    may_originate: r.originate,
                    terminates: r.terminate,
                    preference: r.preference,
                });
            }
            member.limits = Limits {
                cps: m.limits.cps,
                concurrent: m.limits.concurrent,
                source_cps: m.limits.source_cps,
                source_concurrent: m.limits.source_concurrent,
            };
            snap.members.push(member);
        }
        let known = |name: &str| -> Result<()> {
            if names.contains(name) {
                Ok(())
            } else {
                Err(Error::UnknownMember {
                    name: name.to_owned(),
                })
            }
        };
        let mut pairs = BTreeSet::new();
        for a in &self.agreements {
            known(&a.from)?;
            known(&a.to)?;
            if !pairs.insert((a.from.clone(), a.to.clone())) {
                return Err(Error::DuplicateAgreement {
                    from: a.from.clone(),
                    to: a.to.clone(),
                });
            }
            snap.agreements.push(Agreement {
                from: a.from.clone(),
                to: a.to.clone(),
                enabled: a.enabled,
                require_identity: a.require_identity,
                accepted_attestation: a
                    .accepted_attestation
                    .iter()
                    .map(|s| Attestation::parse(s))
                    .collect::<Result<_>>()?,
                headers: HeaderRules {
                    topology_hiding: a.topology_hiding,
                    strip: a.strip_headers.clone(),
                },
            });
        }
        for l in &self.lists {
            if let Some(scope) = &l.scope {
                known(scope)?;
            }
            if !(400..=699).contains(&l.status) {
                return Err(Error::InvalidStatus { status: l.status });
            }
            snap.lists.push(ListEntry {
                scope: l.scope.clone(),
                kind: l.kind,
                pattern: normalize_number(&l.number)?,
                exact: !l.prefix,
                status: l.status,
                reason: l.reason.clone(),
                expires_at: l.expires_at,
            });
        }
        for b in &self.bans {
            snap.bans.push(AddressBan {
                network: b.network.trunc(),
                reason: b.reason.clone(),
                expires_at: b.expires_at,
            });
        }
        snap.normalize();
        Ok(snap)
    }
}

fn set_diff<T: Ord + Clone>(current: &[T], desired: &[T]) -> (Vec<T>, Vec<T>) {
    let c: BTreeSet<&T> = current.iter().collect();
    let d: BTreeSet<&T> = desired.iter().collect();
    let added = d.difference(&c).map(|x| (*x).clone()).collect();
    let removed = c.difference(&d).map(|x| (*x).clone()).collect();
    (added, removed)
}

/// The changes that turn `current` into `desired`, in an order the store
/// can apply in one transaction: member creations and updates first, then
/// each member's children (removals before additions), limits, agreements,
/// caller lists and bans, and member removals last (they cascade).
///
/// `diff(x, x)` is empty, and applying `diff(a, b)` to `a` gives `b`
/// (see [`Snapshot::apply`]). The snapshots' `version` is ignored.
pub fn diff(current: &Snapshot, desired: &Snapshot) -> Vec<Change> {
    let mut current = current.clone();
    let mut desired = desired.clone();
    current.normalize();
    desired.normalize();
    let cur: BTreeMap<&str, &Member> = current.members.iter().map(|m| (m.name(), m)).collect();
    let des: BTreeMap<&str, &Member> = desired.members.iter().map(|m| (m.name(), m)).collect();
    let mut out = Vec::new();
    for (name, d) in &des {
        match cur.get(name) {
            None => out.push(Change::CreateMember(d.info.clone())),
            Some(c) if c.info != d.info => out.push(Change::UpdateMember(d.info.clone())),
            Some(_) => {}
        }
    }
    let empty = Member::new(MemberInfo {
        name: String::new(),
        display_name: String::new(),
        enabled: true,
        sip_target: None,
    });
    for (name, d) in &des {
        let c = cur.get(name).copied().unwrap_or(&empty);
        let member = (*name).to_owned();
        let (add, rem) = set_diff(&c.domains, &d.domains);
        out.extend(rem.into_iter().map(|domain| Change::RemoveDomain {
            member: member.clone(),
            domain,
        }));
        out.extend(add.into_iter().map(|domain| Change::AddDomain {
            member: member.clone(),
            domain,
        }));
        let (add, rem) = set_diff(&c.identities, &d.identities);
        out.extend(rem.into_iter().map(|identity| Change::RemoveIdentity {
            member: member.clone(),
            identity,
        }));
        out.extend(add.into_iter().map(|identity| Change::AddIdentity {
            member: member.clone(),
            identity,
        }));
        let (add, rem) = set_diff(&c.networks, &d.networks);
        out.extend(rem.into_iter().map(|network| Change::RemoveNetwork {
            member: member.clone(),
            network,
        }));
        out.extend(add.into_iter().map(|network| Change::AddNetwork {
            member: member.clone(),
            network,
        }));
        for r in &c.ranges {
            if !d.ranges.iter().any(|x| x.prefix == r.prefix) {
                out.push(Change::RemoveRange {
                    member: member.clone(),
                    prefix: r.prefix.clone(),
                });
            }
        }
        for r in &d.ranges {
            if !c.ranges.contains(r) {
                out.push(Change::PutRange {
                    member: member.clone(),
                    range: r.clone(),
                });
            }
        }
        if c.limits != d.limits {
            out.push(Change::SetLimits {
                member: member.clone(),
                limits: d.limits,
            });
        }
    }
    let gone = |name: &str| !des.contains_key(name);
    for a in &current.agreements {
        let kept = desired
            .agreements
            .iter()
            .any(|x| x.from == a.from && x.to == a.to);
        // Agreements of removed members go with the member.
        if !kept && !gone(&a.from) && !gone(&a.to) {
            out.push(Change::RemoveAgreement {
                from: a.from.clone(),
                to: a.to.clone(),
            });
        }
    }
    for a in &desired.agreements {
        if !current.agreements.contains(a) {
            out.push(Change::PutAgreement(a.clone()));
        }
    }
    for e in &current.lists {
        let kept = desired
            .lists
            .iter()
            .any(|x| x.scope == e.scope && x.kind == e.kind && x.pattern == e.pattern);
        if !kept {
            out.push(Change::RemoveListEntry {
                scope: e.scope.clone(),
                kind: e.kind,
                pattern: e.pattern.clone(),
            });
        }
    }
    for e in &desired.lists {
        if !current.lists.contains(e) {
            out.push(Change::PutListEntry(e.clone()));
        }
    }
    for b in &current.bans {
        if !desired.bans.iter().any(|x| x.network == b.network) {
            out.push(Change::RemoveBan { network: b.network });
        }
    }
    for b in &desired.bans {
        if !current.bans.contains(b) {
            out.push(Change::PutBan(b.clone()));
        }
    }
    for name in cur.keys() {
        if gone(name) {
            out.push(Change::RemoveMember {
                name: (*name).to_owned(),
            });
        }
    }
    out
}

/// Renders changes as the `--dry-run` diff, one line each.
pub fn render(changes: &[Change]) -> String {
    let mut s = String::new();
    for c in changes {
        s.push_str(&c.to_string());
        s.push('\n');
    }
    s
}
