use std::net::Ipv4Addr;

use super::*;
use crate::naptr::NaptrRecord;
use crate::zone::ZoneEntry;

fn zone(entries: Vec<ZoneEntry>) -> EnumZone {
    let mut z = EnumZone::new("e164.test.", "ns.e164.test.", 1);
    z.entries = entries;
    z
}

fn sip(host: &str) -> Vec<NaptrRecord> {
    vec![NaptrRecord::new(
        10,
        10,
        "u",
        "E2U+sip",
        &format!("!^.*$!sip:x@{host}!"),
        ".",
    )]
}

#[test]
fn diff_adds_changes_and_deletes() {
    let old = zone(vec![
        ZoneEntry::number("4930", "a", sip("a")),
        ZoneEntry::number("4931", "b", sip("b")),
        ZoneEntry::number("4932", "c", sip("c")),
    ]);
    let new = zone(vec![
        ZoneEntry::number("4930", "a", sip("a")),
        ZoneEntry::number("4931", "b", sip("b2")),
        ZoneEntry::number("4933", "d", sip("d")),
    ]);
    let d = diff(
        Some(&old.records().unwrap()),
        &new.records().unwrap(),
        &new.origin,
    );
    let naptr = u16::from(RecordType::NAPTR);
    let mut deleted = d.delete.clone();
    deleted.sort();
    assert_eq!(
        deleted,
        vec![
            ("1.3.9.4.e164.test.".to_owned(), naptr),
            ("2.3.9.4.e164.test.".to_owned(), naptr),
            ("3.3.9.4.e164.test.".to_owned(), naptr),
        ]
    );
    let mut added: Vec<&str> = d.add.iter().map(|r| r.name.as_str()).collect();
    added.sort();
    assert_eq!(added, vec!["1.3.9.4.e164.test.", "3.3.9.4.e164.test."]);
}

#[test]
fn diff_skips_soa_and_apex_ns_and_unchanged() {
    let mut old = zone(vec![ZoneEntry::number("1", "a", sip("a"))]);
    old.extra.push(ZoneRecord {
        name: "gw".into(),
        ttl: 60,
        data: RecordData::A(Ipv4Addr::LOCALHOST),
    });
    let mut new = old.clone();
    new.soa.serial = 99;
    let d = diff(
        Some(&old.records().unwrap()),
        &new.records().unwrap(),
        &new.origin,
    );
    assert!(d.is_empty());
    let full = diff(None, &new.records().unwrap(), &new.origin);
    assert_eq!(full.delete.len(), 2);
    assert_eq!(full.add.len(), 2);
}

#[test]
fn key_debug_hides_secret() {
    let key = TsigKey {
        name: "k".into(),
        algorithm: Hmac::Sha256,
        secret: b"topsecret".to_vec(),
    };
    assert!(!format!("{key:?}").contains("topsecret"));
}
