//! Pushing zone changes to an external primary with RFC 2136 dynamic
//! update, signed with TSIG (RFC 8945).
//!
//! [`diff`] is pure: it compares two record lists RRset by RRset and says
//! which RRsets to delete and which records to add (RFC 2136 §2.5.2 "Delete
//! an RRset", §2.5.1 "Add to an RRset"). [`UpdateClient::push`] sends one
//! signed UPDATE over TCP and checks the signed answer. SOA and the apex NS
//! RRset are left to the primary.
//!
//! ```text
//! UPDATE  zone: <origin> SOA IN
//!         update: <name> ANY <type> 0   (delete RRset)    for each changed RRset
//!                 <name> IN  <type> ttl rdata (add)       for each new record
//!         additional: TSIG hmac-sha256
//! ```

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use hickory_proto::op::{Message, OpCode, Query, ResponseCode, UpdateMessage};
use hickory_proto::rr::rdata::tsig::TsigAlgorithm;
use hickory_proto::rr::{DNSClass, Record, RecordType, TSigner};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::dns;
use crate::error::{Error, Result};
use crate::zone::{EnumZone, RecordData, ZoneRecord};

/// A TSIG HMAC algorithm (RFC 8945 §6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hmac {
    /// hmac-sha256, the one RFC 8945 requires.
    Sha256,
    /// hmac-sha384.
    Sha384,
    /// hmac-sha512.
    Sha512,
}

/// A TSIG key shared with the primary.
#[derive(Clone, PartialEq, Eq)]
pub struct TsigKey {
    /// The key name, as configured on the primary.
    pub name: String,
    /// The algorithm.
    pub algorithm: Hmac,
    /// The secret (decoded, not base64).
    pub secret: Vec<u8>,
}

impl std::fmt::Debug for TsigKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TsigKey")
            .field("name", &self.name)
            .field("algorithm", &self.algorithm)
            .finish_non_exhaustive()
    }
}

/// An RRset: an owner name (lower case) and a record type code.
pub type RrsetKey = (String, u16);

/// The changes that turn one record list into another.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ZoneDiff {
    /// RRsets to delete before adding.
    pub delete: Vec<RrsetKey>,
    /// Records to add.
    pub add: Vec<ZoneRecord>,
}

impl ZoneDiff {
    /// True when there is nothing to send.
    pub fn is_empty(&self) -> bool {
        self.delete.is_empty() && self.add.is_empty()
    }
}

fn type_code(data: &RecordData) -> u16 {
    u16::from(match data {
        RecordData::Soa(_) => RecordType::SOA,
        RecordData::Ns(_) => RecordType::NS,
        RecordData::Naptr(_) => RecordType::NAPTR,
        RecordData::Srv(_) => RecordType::SRV,
        RecordData::A(_) => RecordType::A,
        RecordData::Aaaa(_) => RecordType::AAAA,
    })
}

fn rrsets<'a>(records: &'a [ZoneRecord], origin: &str) -> BTreeMap<RrsetKey, Vec<&'a ZoneRecord>> {
    let mut sets: BTreeMap<RrsetKey, Vec<&ZoneRecord>> = BTreeMap::new();
    for r in records {
        let code = type_code(&r.data);
        let apex = r.name.eq_ignore_ascii_case(origin);
        if code == u16::from(RecordType::SOA) || (apex && code == u16::from(RecordType::NS)) {
            continue;
        }
        sets.entry((r.name.to_ascii_lowercase(), code))
            .or_default()
            .push(r);
    }
    sets
}

/// The RRset changes from `old` to `new` for the zone at `origin`. With no
/// `old`, every RRset of `new` is replaced.
pub fn diff(old: Option<&[ZoneRecord]>, new: &[ZoneRecord], origin: &str) -> ZoneDiff {
    let new_sets = rrsets(new, origin);
    let old_sets = old.map(|o| rrsets(o, origin));
    let mut out = ZoneDiff::default();
    if let Some(old_sets) = &old_sets {
        for key in old_sets.keys() {
            if !new_sets.contains_key(key) {
                out.delete.push(key.clone());
            }
        }
    }
    for (key, set) in &new_sets {
        let same = old_sets
            .as_ref()
            .and_then(|o| o.get(key))
            .is_some_and(|old| old.len() == set.len() && old.iter().all(|r| set.contains(r)));
        if same {
            continue;
        }
        out.delete.push(key.clone());
        out.add.extend(set.iter().map(|r| (*r).clone()));
    }
    out
}

/// What a push did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PushReport {
    /// RRsets deleted.
    pub deleted: usize,
    /// Records added.
    pub added: usize,
}

/// Sends signed dynamic updates to one primary.
#[derive(Debug, Clone)]
pub struct UpdateClient {
    server: SocketAddr,
    key: TsigKey,
    timeout: Duration,
}

impl UpdateClient {
    /// A client for the primary at `server`.
    pub fn new(server: SocketAddr, key: TsigKey, timeout: Duration) -> Self {
        Self {
            server,
            key,
            timeout,
        }
    }

    fn signer(&self) -> Result<TSigner> {
        let algorithm = match self.key.algorithm {
            Hmac::Sha256 => TsigAlgorithm::HmacSha256,
            Hmac::Sha384 => TsigAlgorithm::HmacSha384,
            Hmac::Sha512 => TsigAlgorithm::HmacSha512,
        };
        TSigner::new(
            self.key.secret.clone(),
            algorithm,
            dns::name(&self.key.name)?,
            300,
        )
        .map_err(|_| Error::TsigVerify {
            server: self.server,
        })
    }

    /// Pushes the change from `old` (what the primary has, if known) to
    /// `new`. `now_unix` is the TSIG time signed (seconds since 1970).
    pub async fn push(
        &self,
        old: Option<&EnumZone>,
        new: &EnumZone,
        now_unix: u64,
    ) -> Result<PushReport> {
        let old_records = old.map(EnumZone::records).transpose()?;
        let new_records = new.records()?;
        let changes = diff(old_records.as_deref(), &new_records, &new.origin);
        if changes.is_empty() {
            return Ok(PushReport {
                deleted: 0,
                added: 0,
            });
        }
        self.send(&new.origin, &changes, now_unix).await?;
        Ok(PushReport {
            deleted: changes.delete.len(),
            added: changes.add.len(),
        })
    }

    /// Sends one UPDATE carrying `changes` for the zone at `origin`.
    pub async fn send(&self, origin: &str, changes: &ZoneDiff, now_unix: u64) -> Result<()> {
        let mut message = Message::query();
        message.metadata.op_code = OpCode::Update;
        message.metadata.recursion_desired = false;
        message.metadata.id = rand::random();
        let mut zone = Query::new();
        zone.set_name(dns::name(origin)?)
            .set_query_class(DNSClass::IN)
            .set_query_type(RecordType::SOA);
        message.add_zone(zone);
        for (name, code) in &changes.delete {
            let mut record = Record::update0(dns::name(name)?, 0, RecordType::from(*code));
            record.dns_class = DNSClass::ANY;
            message.add_update(record.into_record_of_rdata());
        }
        for r in &changes.add {
            message.add_update(dns::record(r)?);
        }
        let signer = self.signer()?;
        let verifier = message.finalize(&signer, now_unix)?;
        let bytes = message.to_vec()?;
        let answer = tokio::time::timeout(self.timeout, self.exchange(&bytes))
            .await
            .map_err(|_| Error::DnsTimeout {
                name: origin.to_owned(),
                server: self.server,
            })??;
        let reply = Message::from_vec(&answer).map_err(|_| Error::DnsFailure {
            name: origin.to_owned(),
            rcode: u16::from(ResponseCode::FormErr),
        })?;
        if reply.metadata.response_code != ResponseCode::NoError {
            return Err(Error::UpdateRefused {
                server: self.server,
                rcode: u16::from(reply.metadata.response_code),
            });
        }
        match verifier {
            Some(mut v) => v
                .verify(&answer)
                .map(|_| ())
                .map_err(|_| Error::TsigVerify {
                    server: self.server,
                }),
            None => Err(Error::TsigVerify {
                server: self.server,
            }),
        }
    }

    async fn exchange(&self, request: &[u8]) -> Result<Vec<u8>> {
        let mut stream = TcpStream::connect(self.server).await?;
        let len = u16::try_from(request.len())
            .map_err(|_| std::io::Error::from(std::io::ErrorKind::InvalidInput))?;
        let mut framed = Vec::with_capacity(request.len() + 2);
        framed.extend_from_slice(&len.to_be_bytes());
        framed.extend_from_slice(request);
        stream.write_all(&framed).await?;
        let mut len = [0u8; 2];
        stream.read_exact(&mut len).await?;
        let mut answer = vec![0u8; usize::from(u16::from_be_bytes(len))];
        stream.read_exact(&mut answer).await?;
        Ok(answer)
    }
}

#[cfg(test)]
mod tests;
