//! The federation's ENUM zone as data: single numbers and number ranges,
//! each with its NAPTR records and its owner (a member), the DNS records
//! they expand to, and the zone as an RFC 1035 master file.
//!
//! A range is served with a wildcard (`*.<reversed prefix>`, RFC 4592).
//! Because a wildcard does not cover names below an existing node, every
//! node that a more specific entry creates inside a range also gets the
//! range's NAPTRs and wildcard, so that numbers next to a carved-out number
//! still resolve to the range.
//!
//! ```text
//! entry  digits 441632960083  (single)  ->  3.8.0.0.6.9.2.3.6.1.4.4.<origin> NAPTR ...
//! entry  digits 4930          (range)   ->  0.3.9.4.<origin> NAPTR ...,  *.0.3.9.4.<origin> NAPTR ...
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::RwLock;

use crate::e164::{E164, MAX_DIGITS};
use crate::error::{Error, Result, ZoneProblem};
use crate::naptr::NaptrRecord;
use crate::rfc3263::SrvRecord;

/// The SOA fields of a zone (RFC 1035 §3.3.13), without its owner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Soa {
    /// MNAME: the primary name server.
    pub mname: String,
    /// RNAME: the mailbox of the person responsible, as a domain name.
    pub rname: String,
    /// SERIAL.
    pub serial: u32,
    /// REFRESH, seconds.
    pub refresh: u32,
    /// RETRY, seconds.
    pub retry: u32,
    /// EXPIRE, seconds.
    pub expire: u32,
    /// MINIMUM: the negative-caching TTL (RFC 2308 §4).
    pub minimum: u32,
}

/// The data of one DNS record the zone serves.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RecordData {
    /// SOA.
    Soa(Soa),
    /// NS with its target.
    Ns(String),
    /// NAPTR.
    Naptr(NaptrRecord),
    /// SRV.
    Srv(SrvRecord),
    /// A.
    A(Ipv4Addr),
    /// AAAA.
    Aaaa(Ipv6Addr),
}

/// One DNS record: an absolute owner name, a TTL and data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZoneRecord {
    /// The owner, absolute with a final dot. In [`EnumZone::extra`] a name
    /// without a final dot is relative to the origin, and `@` is the origin.
    pub name: String,
    /// TTL in seconds.
    pub ttl: u32,
    /// The record data.
    pub data: RecordData,
}

/// A number or a number range with its NAPTR records and owner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZoneEntry {
    /// The digits of the number, or the prefix of the range, without `+`.
    pub digits: String,
    /// True for a range: every number that starts with `digits`.
    pub range: bool,
    /// The member that owns it.
    pub owner: String,
    /// The NAPTR records to serve for it.
    pub naptrs: Vec<NaptrRecord>,
}

impl ZoneEntry {
    /// A single number.
    pub fn number(digits: &str, owner: &str, naptrs: Vec<NaptrRecord>) -> Self {
        Self {
            digits: digits.to_owned(),
            range: false,
            owner: owner.to_owned(),
            naptrs,
        }
    }

    /// A range of every number starting with `prefix`.
    pub fn range(prefix: &str, owner: &str, naptrs: Vec<NaptrRecord>) -> Self {
        Self {
            digits: prefix.to_owned(),
            range: true,
            owner: owner.to_owned(),
            naptrs,
        }
    }
}

/// An ENUM zone: its origin (an ENUM suffix such as `e164.arpa.` or the
/// federation's own tree), SOA, NS, entries and any extra records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnumZone {
    /// The origin, absolute.
    pub origin: String,
    /// The TTL of every record.
    pub ttl: u32,
    /// SOA fields.
    pub soa: Soa,
    /// NS targets, absolute.
    pub ns: Vec<String>,
    /// Numbers and ranges.
    pub entries: Vec<ZoneEntry>,
    /// Other records served in the zone (hosts, SRV, ...).
    pub extra: Vec<ZoneRecord>,
}

#[derive(Default)]
struct Node<'a> {
    exact: Option<&'a [NaptrRecord]>,
    wildcard: Option<&'a [NaptrRecord]>,
}

impl EnumZone {
    /// An empty zone with sensible SOA timers and one NS.
    pub fn new(origin: &str, ns: &str, serial: u32) -> Self {
        Self {
            origin: absolute(origin, "."),
            ttl: 300,
            soa: Soa {
                mname: absolute(ns, "."),
                rname: absolute(&format!("hostmaster.{}", origin.trim_end_matches('.')), "."),
                serial,
                refresh: 3600,
                retry: 600,
                expire: 604_800,
                minimum: 60,
            },
            ns: vec![absolute(ns, ".")],
            entries: Vec::new(),
            extra: Vec::new(),
        }
    }

    /// Checks the origin, the digits, duplicates and NAPTR field sizes.
    pub fn validate(&self) -> Result<()> {
        let zone = |problem| Error::Zone { problem };
        if hickory_proto::rr::Name::from_ascii(&self.origin).is_err() {
            return Err(zone(ZoneProblem::Origin));
        }
        let mut seen = BTreeSet::new();
        for e in &self.entries {
            let ok = !e.digits.is_empty()
                && e.digits.len() <= MAX_DIGITS
                && e.digits.bytes().all(|b| b.is_ascii_digit());
            if !ok {
                return Err(zone(ZoneProblem::Digits {
                    digits: e.digits.clone(),
                }));
            }
            if !seen.insert((e.digits.as_str(), e.range)) {
                return Err(zone(ZoneProblem::Duplicate {
                    digits: e.digits.clone(),
                }));
            }
            for n in &e.naptrs {
                let fits = [&n.flags, &n.services, &n.regexp]
                    .iter()
                    .all(|s| s.len() <= 255)
                    && hickory_proto::rr::Name::from_ascii(&n.replacement).is_ok();
                if !fits {
                    return Err(zone(ZoneProblem::Naptr {
                        digits: e.digits.clone(),
                    }));
                }
            }
        }
        Ok(())
    }

    /// The entry that decides `number`: the single number itself, else the
    /// longest range that covers it.
    pub fn owner_of(&self, number: &E164) -> Option<&ZoneEntry> {
        let digits = number.digits();
        self.entries
            .iter()
            .filter(|e| {
                if e.range {
                    digits.starts_with(&e.digits)
                } else {
                    digits == e.digits
                }
            })
            .max_by_key(|e| (!e.range, e.digits.len()))
    }

    /// The domain of a digit string under this zone's origin.
    fn node_name(&self, digits: &str) -> String {
        let mut out = String::with_capacity(digits.len() * 2 + self.origin.len());
        for d in digits.chars().rev() {
            out.push(d);
            out.push('.');
        }
        out.push_str(&self.origin);
        out
    }

    /// Every record the zone serves: SOA, NS, the expanded entries, then the
    /// extra records. Validates first.
    pub fn records(&self) -> Result<Vec<ZoneRecord>> {
        self.validate()?;
        let mut out = vec![ZoneRecord {
            name: self.origin.clone(),
            ttl: self.ttl,
            data: RecordData::Soa(self.soa.clone()),
        }];
        out.extend(self.ns.iter().map(|ns| ZoneRecord {
            name: self.origin.clone(),
            ttl: self.ttl,
            data: RecordData::Ns(absolute(ns, &self.origin)),
        }));

        let mut nodes: BTreeMap<&str, Node<'_>> = BTreeMap::new();
        let mut ranges: BTreeMap<&str, &[NaptrRecord]> = BTreeMap::new();
        for e in &self.entries {
            let node = nodes.entry(&e.digits).or_default();
            if e.range {
                node.wildcard = Some(&e.naptrs);
                ranges.insert(&e.digits, &e.naptrs);
            } else {
                node.exact = Some(&e.naptrs);
            }
        }
        // Every existing node: entries and their ancestors (empty
        // non-terminals), down to the origin.
        let all: BTreeSet<&str> = self
            .entries
            .iter()
            .flat_map(|e| (1..=e.digits.len()).map(move |n| &e.digits[..n]))
            .collect();
        for digits in all {
            let enclosing = (1..=digits.len())
                .rev()
                .find_map(|n| ranges.get(&digits[..n]).copied());
            let Some(range_naptrs) = enclosing else {
                continue;
            };
            let node = nodes.entry(digits).or_default();
            node.exact.get_or_insert(range_naptrs);
            node.wildcard.get_or_insert(range_naptrs);
        }
        for (digits, node) in &nodes {
            let name = self.node_name(digits);
            for n in node.exact.unwrap_or_default() {
                out.push(ZoneRecord {
                    name: name.clone(),
                    ttl: self.ttl,
                    data: RecordData::Naptr(n.clone()),
                });
            }
            for n in node.wildcard.unwrap_or_default() {
                out.push(ZoneRecord {
                    name: format!("*.{name}"),
                    ttl: self.ttl,
                    data: RecordData::Naptr(n.clone()),
                });
            }
        }
        out.extend(self.extra.iter().map(|r| ZoneRecord {
            name: absolute(&r.name, &self.origin),
            ttl: r.ttl,
            data: r.data.clone(),
        }));
        Ok(out)
    }

    /// The zone as an RFC 1035 §5 master file, with absolute names.
    pub fn to_master_file(&self) -> Result<String> {
        let records = self.records()?;
        let mut out = String::new();
        let _ = writeln!(out, "$ORIGIN {}", self.origin);
        let _ = writeln!(out, "$TTL {}", self.ttl);
        for r in &records {
            let _ = write!(out, "{} {} IN ", r.name, r.ttl);
            match &r.data {
                RecordData::Soa(s) => {
                    let _ = writeln!(
                        out,
                        "SOA {} {} {} {} {} {} {}",
                        s.mname, s.rname, s.serial, s.refresh, s.retry, s.expire, s.minimum
                    );
                }
                RecordData::Ns(t) => {
                    let _ = writeln!(out, "NS {t}");
                }
                RecordData::Naptr(n) => {
                    let _ = writeln!(
                        out,
                        "NAPTR {} {} {} {} {} {}",
                        n.order,
                        n.preference,
                        quote(&n.flags),
                        quote(&n.services),
                        quote(&n.regexp),
                        n.replacement
                    );
                }
                RecordData::Srv(s) => {
                    let _ = writeln!(
                        out,
                        "SRV {} {} {} {}",
                        s.priority, s.weight, s.port, s.target
                    );
                }
                RecordData::A(ip) => {
                    let _ = writeln!(out, "A {ip}");
                }
                RecordData::Aaaa(ip) => {
                    let _ = writeln!(out, "AAAA {ip}");
                }
            }
        }
        Ok(out)
    }
}

/// A `<character-string>` in master-file syntax (RFC 1035 §5.1): quoted,
/// with `"` and `\` escaped.
fn quote(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// `name` made absolute under `origin` (`@` is the origin).
fn absolute(name: &str, origin: &str) -> String {
    if name == "@" {
        return origin.to_owned();
    }
    if name.ends_with('.') {
        return name.to_owned();
    }
    if origin == "." {
        return format!("{name}.");
    }
    format!("{name}.{origin}")
}

/// The zones the node serves, at one version.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ZoneSnapshot {
    /// Grows whenever the zones change.
    pub version: u64,
    /// The zones.
    pub zones: Vec<EnumZone>,
}

/// Where the authoritative server gets its zones: the store implements
/// this; [`MemoryZoneSource`] is the in-process one.
pub trait ZoneSource: Send + Sync + 'static {
    /// The current version; cheap, asked on every query.
    fn version(&self) -> u64;
    /// The zones at the current version.
    fn snapshot(&self) -> Arc<ZoneSnapshot>;
}

/// A [`ZoneSource`] held in memory; [`replace`](Self::replace) publishes new
/// zones.
#[derive(Debug, Default)]
pub struct MemoryZoneSource {
    version: AtomicU64,
    current: RwLock<Arc<ZoneSnapshot>>,
}

impl MemoryZoneSource {
    /// A source serving `zones` at version 1.
    pub fn new(zones: Vec<EnumZone>) -> Self {
        Self {
            version: AtomicU64::new(1),
            current: RwLock::new(Arc::new(ZoneSnapshot { version: 1, zones })),
        }
    }

    /// Publishes `zones`; returns the new version.
    pub fn replace(&self, zones: Vec<EnumZone>) -> u64 {
        let mut current = self.current.write();
        let version = current.version + 1;
        *current = Arc::new(ZoneSnapshot { version, zones });
        self.version.store(version, Ordering::Release);
        version
    }
}

impl ZoneSource for MemoryZoneSource {
    fn version(&self) -> u64 {
        self.version.load(Ordering::Acquire)
    }

    fn snapshot(&self) -> Arc<ZoneSnapshot> {
        self.current.read().clone()
    }
}

#[cfg(test)]
mod tests;
