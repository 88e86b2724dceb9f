use super::*;

fn sip(user: &str) -> Vec<NaptrRecord> {
    vec![NaptrRecord::new(
        10,
        10,
        "u",
        "E2U+sip",
        &format!("!^\\+(.*)$!sip:\\1@{user}!"),
        ".",
    )]
}

fn zone() -> EnumZone {
    let mut z = EnumZone::new("e164.fed.example", "ns1.fed.example", 7);
    z.entries
        .push(ZoneEntry::range("4930", "member-a", sip("a.example")));
    z.entries
        .push(ZoneEntry::number("4930123", "member-b", sip("b.example")));
    z.entries.push(ZoneEntry::number(
        "441632960083",
        "member-c",
        sip("c.example"),
    ));
    z
}

fn names_with(records: &[ZoneRecord], user: &str) -> Vec<String> {
    records
        .iter()
        .filter(|r| matches!(&r.data, RecordData::Naptr(n) if n.regexp.contains(user)))
        .map(|r| r.name.clone())
        .collect()
}

#[test]
fn single_number_expands_to_its_domain() {
    let records = zone().records().unwrap();
    assert_eq!(
        names_with(&records, "c.example"),
        vec!["3.8.0.0.6.9.2.3.6.1.4.4.e164.fed.example."]
    );
    assert_eq!(
        names_with(&records, "b.example"),
        vec!["3.2.1.0.3.9.4.e164.fed.example."]
    );
}

#[test]
fn range_covers_nodes_created_inside_it() {
    let records = zone().records().unwrap();
    let mut got = names_with(&records, "a.example");
    got.sort();
    // The range node and its wildcard, plus the empty non-terminals that
    // 4930123 creates (49301, 493012), each with the range's NAPTRs and a
    // wildcard, but not the carved-out number itself.
    let mut want = vec![
        "0.3.9.4.e164.fed.example.",
        "*.0.3.9.4.e164.fed.example.",
        "1.0.3.9.4.e164.fed.example.",
        "*.1.0.3.9.4.e164.fed.example.",
        "2.1.0.3.9.4.e164.fed.example.",
        "*.2.1.0.3.9.4.e164.fed.example.",
        "*.3.2.1.0.3.9.4.e164.fed.example.",
    ];
    want.sort();
    assert_eq!(got, want);
}

#[test]
fn owner_is_the_most_specific_entry() {
    let z = zone();
    let owner = |d: &str| {
        z.owner_of(&E164::from_digits(d.to_owned()).unwrap())
            .map(|e| e.owner.as_str())
    };
    assert_eq!(owner("4930123"), Some("member-b"));
    assert_eq!(owner("4930124"), Some("member-a"));
    assert_eq!(owner("49301234"), Some("member-a"));
    assert_eq!(owner("4930"), Some("member-a"));
    assert_eq!(owner("493"), None);
    assert_eq!(owner("441632960083"), Some("member-c"));
    assert_eq!(owner("441632960084"), None);
}

#[test]
fn master_file_text() {
    let mut z = zone();
    z.extra.push(ZoneRecord {
        name: "gw".into(),
        ttl: 60,
        data: RecordData::A(Ipv4Addr::new(192, 0, 2, 1)),
    });
    let text = z.to_master_file().unwrap();
    assert!(text.starts_with("$ORIGIN e164.fed.example.\n$TTL 300\n"));
    assert!(text.contains(
        "e164.fed.example. 300 IN SOA ns1.fed.example. hostmaster.e164.fed.example. 7 3600 600 604800 60\n"
    ));
    assert!(text.contains("e164.fed.example. 300 IN NS ns1.fed.example.\n"));
    assert!(text.contains(
        "3.8.0.0.6.9.2.3.6.1.4.4.e164.fed.example. 300 IN NAPTR 10 10 \"u\" \"E2U+sip\" \"!^\\\\+(.*)$!sip:\\\\1@c.example!\" .\n"
    ));
    assert!(text.contains("gw.e164.fed.example. 60 IN A 192.0.2.1\n"));
}

#[test]
fn quoting_escapes_quotes_and_backslashes() {
    assert_eq!(quote(r#"a"b\c"#), r#""a\"b\\c""#);
    assert_eq!(quote(""), "\"\"");
}

#[test]
fn validation() {
    let mut z = zone();
    z.entries.push(ZoneEntry::number("4930123", "x", sip("x")));
    assert!(matches!(
        z.records(),
        Err(Error::Zone {
            problem: ZoneProblem::Duplicate { .. }
        })
    ));
    let mut z = zone();
    z.entries.push(ZoneEntry::number("12a", "x", sip("x")));
    assert!(matches!(
        z.validate(),
        Err(Error::Zone {
            problem: ZoneProblem::Digits { .. }
        })
    ));
    let mut z = zone();
    z.entries
        .push(ZoneEntry::number("1234567890123456", "x", sip("x")));
    assert!(z.validate().is_err());
    let mut z = zone();
    z.entries.push(ZoneEntry::number(
        "1",
        "x",
        vec![NaptrRecord::new(
            1,
            1,
            "u",
            "E2U+sip",
            &"x".repeat(256),
            ".",
        )],
    ));
    assert!(matches!(
        z.validate(),
        Err(Error::Zone {
            problem: ZoneProblem::Naptr { .. }
        })
    ));
    // A number and a range with the same digits may coexist.
    let mut z = zone();
    z.entries.push(ZoneEntry::number("4930", "x", sip("x")));
    assert!(z.validate().is_ok());
}

#[test]
fn memory_source_versions() {
    let src = MemoryZoneSource::new(vec![zone()]);
    assert_eq!(src.version(), 1);
    let v = src.replace(vec![]);
    assert_eq!(v, 2);
    assert_eq!(src.version(), 2);
    assert!(src.snapshot().zones.is_empty());
}
