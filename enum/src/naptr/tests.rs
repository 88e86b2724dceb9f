use super::*;

const AUS: &str = "+441632960083";

fn r(order: u16, pref: u16, flags: &str, services: &str, regexp: &str, repl: &str) -> NaptrRecord {
    NaptrRecord::new(order, pref, flags, services, regexp, repl)
}

#[test]
fn rfc6116_example_sip_and_mailto() {
    // RFC 6116 §3.2.1 (and RFC 3761 §3.2.1): sip and mailto for +441632960083.
    let records = [
        r(
            100,
            10,
            "u",
            "E2U+sip",
            "!^.*$!sip:phoneme@example.net!",
            ".",
        ),
        r(
            102,
            10,
            "u",
            "E2U+email:mailto",
            "!^.*$!mailto:phoneme@example.net!",
            ".",
        ),
    ];
    assert_eq!(
        select(AUS, &records),
        vec![Rewrite::Uri("sip:phoneme@example.net".into())]
    );
}

#[test]
fn order_then_preference() {
    let records = [
        r(20, 10, "u", "E2U+sip", "!^.*$!sip:c@example.net!", "."),
        r(10, 50, "u", "E2U+sip", "!^.*$!sip:b@example.net!", "."),
        r(10, 10, "u", "E2U+sip", "!^.*$!sip:a@example.net!", "."),
    ];
    let got: Vec<_> = select(AUS, &records);
    assert_eq!(
        got,
        vec![
            Rewrite::Uri("sip:a@example.net".into()),
            Rewrite::Uri("sip:b@example.net".into()),
            Rewrite::Uri("sip:c@example.net".into()),
        ]
    );
}

#[test]
fn ties_keep_answer_order() {
    let records = [
        r(10, 10, "u", "E2U+sip", "!^.*$!sip:x@example.net!", "."),
        r(10, 10, "u", "E2U+sip", "!^.*$!sip:y@example.net!", "."),
    ];
    let got = select(AUS, &records);
    assert_eq!(got[0], Rewrite::Uri("sip:x@example.net".into()));
    assert_eq!(got[1], Rewrite::Uri("sip:y@example.net".into()));
}

#[test]
fn services_forms_and_case() {
    assert!(offers_sip("E2U+sip"));
    assert!(offers_sip("e2u+SIP"));
    assert!(offers_sip("E2U+voice:sip"));
    assert!(offers_sip("E2U+sip:foo"));
    assert!(offers_sip("E2U+email:mailto+sip"));
    assert!(offers_sip("E2U+voice:tel+video:sip"));
    assert!(!offers_sip("E2U+pstn:tel"));
    assert!(!offers_sip("E2U+h323"));
    assert!(!offers_sip("SIP+D2U"));
    assert!(!offers_sip("E2U"));
    assert!(!offers_sip("sip"));
}

#[test]
fn unknown_flags_skipped() {
    let records = [
        r(10, 10, "s", "E2U+sip", "", "_sip._udp.example.net."),
        r(10, 20, "x", "E2U+sip", "!^.*$!sip:x@example.net!", "."),
        r(10, 30, "U", "E2U+sip", "!^.*$!sip:ok@example.net!", "."),
    ];
    assert_eq!(
        select(AUS, &records),
        vec![Rewrite::Uri("sip:ok@example.net".into())]
    );
}

#[test]
fn non_sip_results_skipped() {
    let records = [
        r(10, 10, "u", "E2U+sip", "!^.*$!tel:+15551234!", "."),
        r(10, 10, "u", "E2U+sip", "!^.*$!SIPS:ok@example.net!", "."),
    ];
    assert_eq!(
        select(AUS, &records),
        vec![Rewrite::Uri("SIPS:ok@example.net".into())]
    );
}

#[test]
fn backreferences() {
    let e = SubstExpr::parse(r"!^\+44(.*)$!sip:\1@uk.example.net!").unwrap();
    assert_eq!(e.apply(AUS).unwrap(), "sip:1632960083@uk.example.net");
    let e = SubstExpr::parse(r"!^\+(4)(4)([0-9]{4})(.*)$!sip:\4-\3-\2\1@h!").unwrap();
    assert_eq!(e.apply(AUS).unwrap(), "sip:960083-1632-44@h");
    // A group that did not take part gives the empty string.
    let e = SubstExpr::parse(r"!^\+(1)?(.*)$!sip:\1x\2@h!").unwrap();
    assert_eq!(e.apply(AUS).unwrap(), "sip:x441632960083@h");
    // A back-reference to a group that does not exist is an error.
    assert_eq!(
        SubstExpr::parse(r"!^(.*)$!sip:\2@h!").unwrap_err(),
        RegexpError::Backref(2)
    );
    // No match: no output.
    let e = SubstExpr::parse(r"!^\+1(.*)$!sip:\1@h!").unwrap();
    assert_eq!(e.apply(AUS), None);
}

#[test]
fn i_flag() {
    let e = SubstExpr::parse("!^(ABC)(.*)$!sip:\\2@h!").unwrap();
    assert_eq!(e.apply("abcdef"), None);
    let e = SubstExpr::parse("!^(ABC)(.*)$!sip:\\2@h!i").unwrap();
    assert_eq!(e.apply("abcdef").unwrap(), "sip:def@h");
    assert_eq!(
        SubstExpr::parse("!^.*$!sip:a@h!g").unwrap_err(),
        RegexpError::Flag('g')
    );
}

#[test]
fn other_delimiters_and_escapes() {
    // '/' as delimiter, escaped inside ere and repl.
    let e = SubstExpr::parse(r"/^\+(.*)$/sip:\1@h;a=b\/c/").unwrap();
    assert_eq!(e.apply("+12").unwrap(), "sip:12@h;a=b/c");
    // '#' as delimiter, escaped '#' in the ere is a literal.
    let e = SubstExpr::parse(r"#^\+1\#(.*)$#sip:\1@h#").unwrap();
    assert_eq!(e.apply("+1#99").unwrap(), "sip:99@h");
    // A backslash inside a bracket expression is literal (POSIX).
    let e = SubstExpr::parse(r"!^[\.](.*)$!sip:\1@h!").unwrap();
    assert_eq!(e.apply("\\x").unwrap(), "sip:x@h");
    assert_eq!(e.apply(".x").unwrap(), "sip:x@h");
    // POSIX classes.
    let e = SubstExpr::parse("!^\\+([[:digit:]]{2})(.*)$!sip:\\1@h!").unwrap();
    assert_eq!(e.apply("+4930").unwrap(), "sip:49@h");
    // A literal backslash in repl.
    let e = SubstExpr::parse(r"!^.*$!sip:a\\b@h!").unwrap();
    assert_eq!(e.apply("x").unwrap(), r"sip:a\b@h");
}

#[test]
fn bad_expressions() {
    assert_eq!(SubstExpr::parse("").unwrap_err(), RegexpError::Delimiter);
    assert_eq!(
        SubstExpr::parse("1a1b1").unwrap_err(),
        RegexpError::Delimiter
    );
    assert_eq!(
        SubstExpr::parse("i.*ixi").unwrap_err(),
        RegexpError::Delimiter
    );
    assert_eq!(
        SubstExpr::parse("!^.*$!sip:x").unwrap_err(),
        RegexpError::Unterminated
    );
    assert_eq!(SubstExpr::parse("!(!x!").unwrap_err(), RegexpError::Ere);
}

#[test]
fn non_terminal_with_replacement() {
    let records = [r(10, 10, "", "", "", "sub.example.net.")];
    assert_eq!(
        select(AUS, &records),
        vec![Rewrite::Next("sub.example.net.".into())]
    );
    let records = [r(10, 10, "", "E2U+sip", "", "sub.example.net.")];
    assert_eq!(
        select(AUS, &records),
        vec![Rewrite::Next("sub.example.net.".into())]
    );
    // Non-terminal without replacement and without regexp is useless.
    assert!(select(AUS, &[r(10, 10, "", "", "", ".")]).is_empty());
}

fn walk(start: &str, zone: &[(&str, Vec<NaptrRecord>)], max_depth: usize) -> Result<Vec<String>> {
    let mut w = NaptrWalk::new(AUS, start, max_depth);
    while let Some(q) = w.poll_query() {
        let q = q.to_owned();
        let set = zone
            .iter()
            .find(|(d, _)| same_name(d, &q))
            .map(|(_, s)| s.clone())
            .unwrap_or_default();
        w.handle_answer(&set);
    }
    w.finish()
}

#[test]
fn chain_splices_in_place() {
    let zone = [
        (
            "3.8.0.0.6.9.2.3.6.1.4.4.e164.arpa.",
            vec![
                r(10, 10, "u", "E2U+sip", "!^.*$!sip:first@a.example!", "."),
                r(10, 20, "", "", "", "next.example."),
                r(20, 10, "u", "E2U+sip", "!^.*$!sip:last@a.example!", "."),
            ],
        ),
        (
            "next.example.",
            vec![
                r(1, 1, "u", "E2U+sip", "!^\\+(.*)$!sip:\\1@b.example!", "."),
                r(1, 2, "u", "E2U+sip", "!^.*$!sip:second@b.example!", "."),
            ],
        ),
    ];
    assert_eq!(
        walk("3.8.0.0.6.9.2.3.6.1.4.4.e164.arpa.", &zone, 5).unwrap(),
        vec![
            "sip:first@a.example",
            "sip:441632960083@b.example",
            "sip:second@b.example",
            "sip:last@a.example",
        ]
    );
}

#[test]
fn loops_are_rejected() {
    let zone = [
        ("a.example.", vec![r(10, 10, "", "", "", "b.example.")]),
        ("b.example.", vec![r(10, 10, "", "", "", "A.EXAMPLE")]),
    ];
    assert!(matches!(
        walk("a.example.", &zone, 5),
        Err(Error::NaptrLoop { domain }) if domain == "A.EXAMPLE"
    ));
    // A loop next to a good record: the good record wins.
    let zone = [(
        "a.example.",
        vec![
            r(10, 10, "", "", "", "a.example."),
            r(10, 20, "u", "E2U+sip", "!^.*$!sip:ok@h!", "."),
        ],
    )];
    assert_eq!(walk("a.example.", &zone, 5).unwrap(), vec!["sip:ok@h"]);
}

#[test]
fn overlong_chains_are_rejected() {
    let names: Vec<String> = (0..10).map(|i| format!("n{i}.example.")).collect();
    let zone: Vec<(&str, Vec<NaptrRecord>)> = (0..9)
        .map(|i| (names[i].as_str(), vec![r(1, 1, "", "", "", &names[i + 1])]))
        .chain(std::iter::once((
            names[9].as_str(),
            vec![r(1, 1, "u", "E2U+sip", "!^.*$!sip:deep@h!", ".")],
        )))
        .collect();
    assert!(matches!(
        walk("n0.example.", &zone, 3),
        Err(Error::ChainTooLong { max: 3 })
    ));
    assert_eq!(walk("n0.example.", &zone, 9).unwrap(), vec!["sip:deep@h"]);
}

#[test]
fn missing_target_of_non_terminal_is_skipped() {
    let zone = [(
        "a.example.",
        vec![
            r(10, 10, "", "", "", "gone.example."),
            r(10, 20, "u", "E2U+sip", "!^.*$!sip:ok@h!", "."),
        ],
    )];
    assert_eq!(walk("a.example.", &zone, 5).unwrap(), vec!["sip:ok@h"]);
}

#[test]
fn failure_kept_when_nothing_else_works() {
    let mut w = NaptrWalk::new(AUS, "a.example.", 5);
    w.handle_answer(&[r(10, 10, "", "", "", "b.example.")]);
    assert_eq!(w.poll_query(), Some("b.example."));
    w.handle_failure(Error::DnsFailure {
        name: "b.example.".into(),
        rcode: 2,
    });
    assert_eq!(w.poll_query(), None);
    assert!(matches!(w.finish(), Err(Error::DnsFailure { .. })));
}

proptest::proptest! {
    #[test]
    fn regexp_parse_never_panics(text in "\\PC{0,30}", aus in "\\+[0-9]{1,15}") {
        if let Ok(e) = SubstExpr::parse(&text) {
            let _ = e.apply(&aus);
        }
    }

    #[test]
    fn identity_rewrite(digits in "[0-9]{1,15}") {
        let aus = format!("+{digits}");
        let e = SubstExpr::parse("!^\\+(.*)$!sip:\\1@h!").unwrap();
        proptest::prop_assert_eq!(e.apply(&aus).unwrap(), format!("sip:{digits}@h"));
    }
}

#[test]
fn regexp_cache_gives_the_same_results() {
    let cache = Arc::new(RegexpCache::new(2));
    let records = [
        r(10, 10, "u", "E2U+sip", r"!^\+44(.*)$!sip:\1@h!", "."),
        r(10, 20, "u", "E2U+sip", "!(!x!", "."),
        r(10, 30, "u", "E2U+sip", "!^.*$!sip:b@h!", "."),
    ];
    for _ in 0..3 {
        let mut w = NaptrWalk::new(AUS, "a.example.", 5).with_cache(cache.clone());
        w.handle_answer(&records);
        assert_eq!(w.finish().unwrap(), vec!["sip:1632960083@h", "sip:b@h"]);
        assert!(cache.len() <= 2);
    }
    assert!(cache.get("!(!x!").is_none());
}
