//! SQL shared by both backends: parameters and cells as plain values, the
//! statements each [`Change`] becomes, and the decoding of query results
//! into the model. Placeholders are `$1..$n`, numbered in order of first
//! use, which PostgreSQL and SQLite both bind by position.

use std::collections::HashMap;

use ipnet::IpNet;
use peering_policy::{
    AddressBan, Agreement, Attestation, Change, HeaderRules, Limits, ListEntry, ListKind, Member,
    MemberInfo, NumberRange, Snapshot,
};

use crate::{CallRecord, EnumEntry, Error, RateUsage, Result};

/// A statement parameter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Param {
    Text(String),
    OptText(Option<String>),
    I32(i32),
    OptI32(Option<i32>),
    I64(i64),
    OptI64(Option<i64>),
    Bool(bool),
}

/// A value read from a result row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Cell {
    Null,
    Int(i64),
    Text(String),
    Bool(bool),
}

/// A statement with its parameters. `must_touch` names the row for a
/// [`Error::NotFound`] when the statement changes nothing.
#[derive(Debug, Clone)]
pub(crate) struct Stmt {
    pub sql: &'static str,
    pub params: Vec<Param>,
    pub must_touch: Option<(&'static str, String)>,
}

fn stmt(sql: &'static str, params: Vec<Param>) -> Stmt {
    Stmt {
        sql,
        params,
        must_touch: None,
    }
}

fn u32_param(v: Option<u32>) -> Param {
    Param::OptI32(v.map(|x| i32::try_from(x).unwrap_or(i32::MAX)))
}

fn t(s: &str) -> Param {
    Param::Text(s.to_owned())
}

/// Statements for one registry change.
pub(crate) fn change_statements(change: &Change) -> Vec<Stmt> {
    match change {
        Change::CreateMember(i) => vec![stmt(
            "INSERT INTO members (name, display_name, enabled, sip_target) VALUES ($1, $2, $3, $4)",
            vec![
                t(&i.name),
                t(&i.display_name),
                Param::Bool(i.enabled),
                Param::OptText(i.sip_target.clone()),
            ],
        )],
        Change::UpdateMember(i) => vec![Stmt {
            sql: "UPDATE members SET display_name = $2, enabled = $3, sip_target = $4 WHERE name = $1",
            params: vec![
                t(&i.name),
                t(&i.display_name),
                Param::Bool(i.enabled),
                Param::OptText(i.sip_target.clone()),
            ],
            must_touch: Some(("member", i.name.clone())),
        }],
        Change::RemoveMember { name } => vec![
            stmt("DELETE FROM caller_lists WHERE scope = $1", vec![t(name)]),
            stmt("DELETE FROM enum_entries WHERE member = $1", vec![t(name)]),
            stmt("DELETE FROM members WHERE name = $1", vec![t(name)]),
        ],
        Change::AddDomain { member, domain } => vec![stmt(
            "INSERT INTO member_domains (member, domain) VALUES ($1, $2) ON CONFLICT DO NOTHING",
            vec![t(member), t(&domain.to_ascii_lowercase())],
        )],
        Change::RemoveDomain { member, domain } => vec![stmt(
            "DELETE FROM member_domains WHERE member = $1 AND domain = $2",
            vec![t(member), t(&domain.to_ascii_lowercase())],
        )],
        Change::AddIdentity { member, identity } => vec![stmt(
            "INSERT INTO member_identities (member, identity) VALUES ($1, $2) ON CONFLICT DO NOTHING",
            vec![t(member), t(identity)],
        )],
        Change::RemoveIdentity { member, identity } => vec![stmt(
            "DELETE FROM member_identities WHERE member = $1 AND identity = $2",
            vec![t(member), t(identity)],
        )],
        Change::AddNetwork { member, network } => vec![stmt(
            "INSERT INTO member_networks (member, network) VALUES ($1, $2) ON CONFLICT DO NOTHING",
            vec![t(member), Param::Text(network.trunc().to_string())],
        )],
        Change::RemoveNetwork { member, network } => vec![stmt(
            "DELETE FROM member_networks WHERE member = $1 AND network = $2",
            vec![t(member), Param::Text(network.trunc().to_string())],
        )],
        Change::PutRange { member, range } => vec![stmt(
            "INSERT INTO number_ranges (member, prefix, may_originate, terminates, preference) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (member, prefix) DO UPDATE SET \
             may_originate = excluded.may_originate, terminates = excluded.terminates, \
             preference = excluded.preference",
            vec![
                t(member),
                t(&range.prefix),
                Param::Bool(range.may_originate),
                Param::Bool(range.terminates),
                Param::I32(range.preference),
            ],
        )],
        Change::RemoveRange { member, prefix } => vec![stmt(
            "DELETE FROM number_ranges WHERE member = $1 AND prefix = $2",
            vec![t(member), t(prefix)],
        )],
        Change::SetLimits { member, limits } if limits.is_empty() => vec![stmt(
            "DELETE FROM member_limits WHERE member = $1",
            vec![t(member)],
        )],
        Change::SetLimits { member, limits } => vec![stmt(
            "INSERT INTO member_limits (member, cps, concurrent, source_cps, source_concurrent) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (member) DO UPDATE SET cps = excluded.cps, \
             concurrent = excluded.concurrent, source_cps = excluded.source_cps, \
             source_concurrent = excluded.source_concurrent",
            vec![
                t(member),
                u32_param(limits.cps),
                u32_param(limits.concurrent),
                u32_param(limits.source_cps),
                u32_param(limits.source_concurrent),
            ],
        )],
        Change::PutAgreement(a) => vec![stmt(
            "INSERT INTO agreements (from_member, to_member, enabled, require_identity, \
             accepted_attestation, topology_hiding, strip_headers) VALUES ($1, $2, $3, $4, $5, $6, $7) \
             ON CONFLICT (from_member, to_member) DO UPDATE SET enabled = excluded.enabled, \
             require_identity = excluded.require_identity, \
             accepted_attestation = excluded.accepted_attestation, \
             topology_hiding = excluded.topology_hiding, strip_headers = excluded.strip_headers",
            vec![
                t(&a.from),
                t(&a.to),
                Param::Bool(a.enabled),
                Param::Bool(a.require_identity),
                Param::Text(Attestation::join(&a.accepted_attestation)),
                Param::Bool(a.headers.topology_hiding),
                Param::Text(a.headers.strip.join(",")),
            ],
        )],
        Change::RemoveAgreement { from, to } => vec![stmt(
            "DELETE FROM agreements WHERE from_member = $1 AND to_member = $2",
            vec![t(from), t(to)],
        )],
        Change::PutListEntry(e) => vec![stmt(
            "INSERT INTO caller_lists (scope, kind, pattern, exact, status, reason, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (scope, kind, pattern) DO UPDATE SET \
             exact = excluded.exact, status = excluded.status, reason = excluded.reason, \
             expires_at = excluded.expires_at",
            vec![
                Param::Text(e.scope.clone().unwrap_or_default()),
                t(e.kind.as_str()),
                t(&e.pattern),
                Param::Bool(e.exact),
                Param::I32(i32::from(e.status)),
                t(&e.reason),
                Param::OptI64(e.expires_at),
            ],
        )],
        Change::RemoveListEntry {
            scope,
            kind,
            pattern,
        } => vec![stmt(
            "DELETE FROM caller_lists WHERE scope = $1 AND kind = $2 AND pattern = $3",
            vec![
                Param::Text(scope.clone().unwrap_or_default()),
                t(kind.as_str()),
                t(pattern),
            ],
        )],
        Change::PutBan(b) => vec![stmt(
            "INSERT INTO address_bans (network, reason, expires_at) VALUES ($1, $2, $3) \
             ON CONFLICT (network) DO UPDATE SET reason = excluded.reason, expires_at = excluded.expires_at",
            vec![
                Param::Text(b.network.trunc().to_string()),
                t(&b.reason),
                Param::OptI64(b.expires_at),
            ],
        )],
        Change::RemoveBan { network } => vec![stmt(
            "DELETE FROM address_bans WHERE network = $1",
            vec![Param::Text(network.trunc().to_string())],
        )],
        // `Change` is non-exhaustive; a variant this crate does not know yet
        // writes nothing rather than something wrong.
        _ => Vec::new(),
    }
}

/// The queries [`load_snapshot`] decodes, in this order.
pub(crate) const SNAPSHOT_QUERIES: [&str; 10] = [
    "SELECT version FROM registry_version WHERE id = 1",
    "SELECT name, display_name, enabled, sip_target FROM members ORDER BY name",
    "SELECT member, domain FROM member_domains",
    "SELECT member, identity FROM member_identities",
    "SELECT member, network FROM member_networks",
    "SELECT member, prefix, may_originate, terminates, preference FROM number_ranges",
    "SELECT member, cps, concurrent, source_cps, source_concurrent FROM member_limits",
    "SELECT from_member, to_member, enabled, require_identity, accepted_attestation, \
     topology_hiding, strip_headers FROM agreements",
    "SELECT scope, kind, pattern, exact, status, reason, expires_at FROM caller_lists",
    "SELECT network, reason, expires_at FROM address_bans",
];

pub(crate) type Rows = Vec<Vec<Cell>>;

struct RowRef<'a> {
    cells: &'a [Cell],
}

impl RowRef<'_> {
    fn cell(&self, i: usize) -> &Cell {
        self.cells.get(i).unwrap_or(&Cell::Null)
    }
    fn text(&self, i: usize) -> Result<String> {
        match self.cell(i) {
            Cell::Text(s) => Ok(s.clone()),
            other => Err(type_error(i, other)),
        }
    }
    fn opt_text(&self, i: usize) -> Result<Option<String>> {
        match self.cell(i) {
            Cell::Null => Ok(None),
            _ => self.text(i).map(Some),
        }
    }
    fn int(&self, i: usize) -> Result<i64> {
        match self.cell(i) {
            Cell::Int(v) => Ok(*v),
            other => Err(type_error(i, other)),
        }
    }
    fn opt_int(&self, i: usize) -> Result<Option<i64>> {
        match self.cell(i) {
            Cell::Null => Ok(None),
            _ => self.int(i).map(Some),
        }
    }
    fn opt_u32(&self, i: usize) -> Result<Option<u32>> {
        Ok(self
            .opt_int(i)?
            .map(|v| u32::try_from(v.max(0)).unwrap_or(u32::MAX)))
    }
    fn boolean(&self, i: usize) -> Result<bool> {
        match self.cell(i) {
            Cell::Bool(b) => Ok(*b),
            Cell::Int(v) => Ok(*v != 0),
            other => Err(type_error(i, other)),
        }
    }
}

fn type_error(column: usize, cell: &Cell) -> Error {
    Error::UnexpectedType {
        column,
        found: match cell {
            Cell::Null => "NULL",
            Cell::Int(_) => "integer",
            Cell::Text(_) => "text",
            Cell::Bool(_) => "boolean",
        },
    }
}

fn rows(r: &Rows) -> impl Iterator<Item = RowRef<'_>> {
    r.iter().map(|c| RowRef { cells: c })
}

fn parse_net(table: &'static str, s: &str) -> Result<IpNet> {
    s.parse::<IpNet>().map_err(|_| Error::InvalidData {
        table,
        column: "network",
        value: s.to_owned(),
    })
}

fn i32_of(v: i64) -> i32 {
    i32::try_from(v).unwrap_or(if v < 0 { i32::MIN } else { i32::MAX })
}

/// Builds a snapshot from the results of [`SNAPSHOT_QUERIES`].
pub(crate) fn load_snapshot(results: &[Rows]) -> Result<Snapshot> {
    let empty = Rows::new();
    let get = |i: usize| results.get(i).unwrap_or(&empty);
    let mut snap = Snapshot {
        version: rows(get(0))
            .next()
            .map(|r| r.int(0))
            .transpose()?
            .unwrap_or(0),
        ..Snapshot::default()
    };
    let mut index = HashMap::new();
    for r in rows(get(1)) {
        let info = MemberInfo {
            name: r.text(0)?,
            display_name: r.text(1)?,
            enabled: r.boolean(2)?,
            sip_target: r.opt_text(3)?,
        };
        index.insert(info.name.clone(), snap.members.len());
        snap.members.push(Member::new(info));
    }
    fn member<'m>(
        members: &'m mut [Member],
        index: &HashMap<String, usize>,
        name: String,
    ) -> Result<&'m mut Member> {
        index
            .get(&name)
            .and_then(|&i| members.get_mut(i))
            .ok_or(Error::InvalidData {
                table: "members",
                column: "name",
                value: name,
            })
    }
    for r in rows(get(2)) {
        let domain = r.text(1)?;
        member(&mut snap.members, &index, r.text(0)?)?
            .domains
            .push(domain);
    }
    for r in rows(get(3)) {
        let identity = r.text(1)?;
        member(&mut snap.members, &index, r.text(0)?)?
            .identities
            .push(identity);
    }
    for r in rows(get(4)) {
        let network = parse_net("member_networks", &r.text(1)?)?;
        member(&mut snap.members, &index, r.text(0)?)?
            .networks
            .push(network);
    }
    for r in rows(get(5)) {
        let range = NumberRange {
            prefix: r.text(1)?,
            may_originate: r.boolean(2)?,
            terminates: r.boolean(3)?,
            preference: i32_of(r.int(4)?),
        };
        member(&mut snap.members, &index, r.text(0)?)?
            .ranges
            .push(range);
    }
    for r in rows(get(6)) {
        let limits = Limits {
            cps: r.opt_u32(1)?,
            concurrent: r.opt_u32(2)?,
            source_cps: r.opt_u32(3)?,
            source_concurrent: r.opt_u32(4)?,
        };
        member(&mut snap.members, &index, r.text(0)?)?.limits = limits;
    }
    for r in rows(get(7)) {
        let accepted = r.text(4)?;
        snap.agreements.push(Agreement {
            from: r.text(0)?,
            to: r.text(1)?,
            enabled: r.boolean(2)?,
            require_identity: r.boolean(3)?,
            accepted_attestation: Attestation::parse_list(&accepted).map_err(|_| {
                Error::InvalidData {
                    table: "agreements",
                    column: "accepted_attestation",
                    value: accepted.clone(),
                }
            })?,
            headers: HeaderRules {
                topology_hiding: r.boolean(5)?,
                strip: r
                    .text(6)?
                    .split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect(),
            },
        });
    }
    for r in rows(get(8)) {
        let scope = r.text(0)?;
        let kind = r.text(1)?;
        snap.lists.push(ListEntry {
            scope: (!scope.is_empty()).then_some(scope),
            kind: ListKind::parse(&kind).map_err(|_| Error::InvalidData {
                table: "caller_lists",
                column: "kind",
                value: kind.clone(),
            })?,
            pattern: r.text(2)?,
            exact: r.boolean(3)?,
            status: u16::try_from(r.int(4)?).unwrap_or(603),
            reason: r.text(5)?,
            expires_at: r.opt_int(6)?,
        });
    }
    for r in rows(get(9)) {
        snap.bans.push(AddressBan {
            network: parse_net("address_bans", &r.text(0)?)?,
            reason: r.text(1)?,
            expires_at: r.opt_int(2)?,
        });
    }
    snap.normalize();
    Ok(snap)
}

pub(crate) const ENUM_SELECT: &str = "SELECT id, prefix, is_range, member, naptr_order, \
     naptr_preference, flags, services, regexp, replacement, ttl FROM enum_entries ORDER BY prefix, naptr_order, naptr_preference, id";

pub(crate) const ENUM_INSERT: &str = "INSERT INTO enum_entries (prefix, is_range, member, naptr_order, \
     naptr_preference, flags, services, regexp, replacement, ttl) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING id";

pub(crate) const ENUM_UPDATE: &str = "UPDATE enum_entries SET prefix = $1, is_range = $2, member = $3, \
     naptr_order = $4, naptr_preference = $5, flags = $6, services = $7, regexp = $8, \
     replacement = $9, ttl = $10 WHERE id = $11";

pub(crate) const ENUM_DELETE: &str = "DELETE FROM enum_entries WHERE id = $1";

pub(crate) fn enum_params(e: &EnumEntry) -> Vec<Param> {
    let mut p = vec![
        t(&e.prefix),
        Param::Bool(e.is_range),
        t(&e.member),
        Param::I32(i32::from(e.order)),
        Param::I32(i32::from(e.preference)),
        t(&e.flags),
        t(&e.services),
        t(&e.regexp),
        t(&e.replacement),
        Param::I32(i32::try_from(e.ttl).unwrap_or(i32::MAX)),
    ];
    if let Some(id) = e.id {
        p.push(Param::I64(id));
    }
    p
}

pub(crate) fn enum_entries(r: &Rows) -> Result<Vec<EnumEntry>> {
    rows(r)
        .map(|r| {
            Ok(EnumEntry {
                id: Some(r.int(0)?),
                prefix: r.text(1)?,
                is_range: r.boolean(2)?,
                member: r.text(3)?,
                order: u16::try_from(r.int(4)?).unwrap_or(u16::MAX),
                preference: u16::try_from(r.int(5)?).unwrap_or(u16::MAX),
                flags: r.text(6)?,
                services: r.text(7)?,
                regexp: r.text(8)?,
                replacement: r.text(9)?,
                ttl: u32::try_from(r.int(10)?).unwrap_or(0),
            })
        })
        .collect()
}

pub(crate) const CDR_INSERT: &str = "INSERT INTO call_records (node, call_id, from_member, to_member, \
     caller, callee, source_addr, started_at, answered_at, ended_at, status, reason, attestation, \
     spit_score, spit_decision) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15) \
     RETURNING id";

pub(crate) fn cdr_params(c: &CallRecord) -> Vec<Param> {
    vec![
        t(&c.node),
        t(&c.call_id),
        Param::OptText(c.from_member.clone()),
        Param::OptText(c.to_member.clone()),
        t(&c.caller),
        t(&c.callee),
        t(&c.source_addr),
        Param::I64(c.started_at),
        Param::OptI64(c.answered_at),
        Param::OptI64(c.ended_at),
        Param::I32(i32::from(c.status)),
        t(&c.reason),
        Param::OptText(c.attestation.clone()),
        Param::OptI32(c.spit_score.map(|s| i32::try_from(s).unwrap_or(i32::MAX))),
        Param::OptText(c.spit_decision.clone()),
    ]
}

pub(crate) const CDR_SELECT: &str = "SELECT id, node, call_id, from_member, to_member, caller, \
     callee, source_addr, started_at, answered_at, ended_at, status, reason, attestation, \
     spit_score, spit_decision FROM call_records WHERE started_at >= $1 \
     ORDER BY started_at, id LIMIT $2";

pub(crate) const CDR_PURGE: &str = "DELETE FROM call_records WHERE started_at < $1";

pub(crate) fn call_records(r: &Rows) -> Result<Vec<(i64, CallRecord)>> {
    rows(r)
        .map(|r| {
            Ok((
                r.int(0)?,
                CallRecord {
                    node: r.text(1)?,
                    call_id: r.text(2)?,
                    from_member: r.opt_text(3)?,
                    to_member: r.opt_text(4)?,
                    caller: r.text(5)?,
                    callee: r.text(6)?,
                    source_addr: r.text(7)?,
                    started_at: r.int(8)?,
                    answered_at: r.opt_int(9)?,
                    ended_at: r.opt_int(10)?,
                    status: u16::try_from(r.int(11)?).unwrap_or(0),
                    reason: r.text(12)?,
                    attestation: r.opt_text(13)?,
                    spit_score: r.opt_int(14)?.map(|v| u32::try_from(v).unwrap_or(0)),
                    spit_decision: r.opt_text(15)?,
                },
            ))
        })
        .collect()
}

/// Calls, and answered calls shorter than `$3` ms, from caller `$1` since `$2`.
pub(crate) const CALLER_STATS: &str = "SELECT COUNT(*), \
     COALESCE(SUM(CASE WHEN answered_at IS NOT NULL THEN 1 ELSE 0 END), 0), \
     COALESCE(SUM(CASE WHEN answered_at IS NOT NULL AND ended_at IS NOT NULL \
     AND ended_at - answered_at < $3 THEN 1 ELSE 0 END), 0) \
     FROM call_records WHERE caller = $1 AND started_at >= $2";

pub(crate) fn caller_stats(r: &Rows) -> Result<crate::CallerStats> {
    let row = rows(r).next();
    let get = |i| row.as_ref().map_or(Ok(0), |r| r.int(i));
    Ok(crate::CallerStats {
        calls: u64::try_from(get(0)?).unwrap_or(0),
        answered: u64::try_from(get(1)?).unwrap_or(0),
        short_calls: u64::try_from(get(2)?).unwrap_or(0),
    })
}

pub(crate) const USAGE_UPSERT: &str = "INSERT INTO rate_usage (limit_key, node, demand_milli, concurrent, updated_at) \
     VALUES ($1, $2, $3, $4, $5) ON CONFLICT (limit_key, node) DO UPDATE SET \
     demand_milli = excluded.demand_milli, concurrent = excluded.concurrent, updated_at = excluded.updated_at";

pub(crate) const USAGE_PURGE: &str = "DELETE FROM rate_usage WHERE updated_at < $1";

pub(crate) const USAGE_SELECT: &str = "SELECT limit_key, node, demand_milli, concurrent, updated_at \
     FROM rate_usage WHERE updated_at >= $1 ORDER BY limit_key, node";

pub(crate) fn usage_params(node: &str, u: &RateUsage, now_ms: i64) -> Vec<Param> {
    vec![
        t(&u.key),
        t(node),
        Param::I64(u.demand_milli),
        Param::I64(u.concurrent),
        Param::I64(now_ms),
    ]
}

pub(crate) fn usage_rows(r: &Rows) -> Result<Vec<crate::NodeUsage>> {
    rows(r)
        .map(|r| {
            Ok(crate::NodeUsage {
                node: r.text(1)?,
                usage: RateUsage {
                    key: r.text(0)?,
                    demand_milli: r.int(2)?,
                    concurrent: r.int(3)?,
                },
                updated_at: r.int(4)?,
            })
        })
        .collect()
}
