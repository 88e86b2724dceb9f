//! Conversions between the crate's zone records and hickory's.

use hickory_proto::rr::rdata::{A, AAAA, NAPTR, NS, SOA, SRV};
use hickory_proto::rr::{Name, RData, Record};

use crate::error::{Error, Result, ZoneProblem};
use crate::zone::{RecordData, ZoneRecord};

/// A name from zone data; an invalid name is a zone error.
pub(crate) fn name(text: &str) -> Result<Name> {
    Name::from_ascii(text).map_err(|_| Error::Zone {
        problem: ZoneProblem::Origin,
    })
}

fn secs(v: u32) -> i32 {
    i32::try_from(v).unwrap_or(i32::MAX)
}

/// A hickory record for a zone record.
pub(crate) fn record(r: &ZoneRecord) -> Result<Record> {
    let owner = name(&r.name)?;
    let data = match &r.data {
        RecordData::Soa(s) => RData::SOA(SOA::new(
            name(&s.mname)?,
            name(&s.rname)?,
            s.serial,
            secs(s.refresh),
            secs(s.retry),
            secs(s.expire),
            s.minimum,
        )),
        RecordData::Ns(t) => RData::NS(NS(name(t)?)),
        RecordData::Naptr(n) => RData::NAPTR(NAPTR::new(
            n.order,
            n.preference,
            n.flags.as_bytes().into(),
            n.services.as_bytes().into(),
            n.regexp.as_bytes().into(),
            name(&n.replacement)?,
        )),
        RecordData::Srv(s) => RData::SRV(SRV::new(s.priority, s.weight, s.port, name(&s.target)?)),
        RecordData::A(ip) => RData::A(A(*ip)),
        RecordData::Aaaa(ip) => RData::AAAA(AAAA(*ip)),
    };
    Ok(Record::from_rdata(owner, r.ttl, data))
}
