//! The federation's ENUM zone provisioned in the node's own store: served
//! by the node's authoritative server with the same answers as an
//! independent server (Knot) gives for the same zone, changed live, used for
//! routing, and pushed to Knot with RFC 2136 + TSIG.

use std::net::SocketAddr;
use std::time::Duration;

use peering_proto::proxy::Transport;
use peering_store::EnumEntry;
use peering_tests::knot::{Knot, dig};
use peering_tests::ua::{Answer, Call, Callee};
use peering_tests::{free_port, node_config};

const TSIG_NAME: &str = "peering-update.";
/// base64 of 32 bytes, as `keymgr -t` prints a secret.
const TSIG_SECRET: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";

fn entry(
    prefix: &str,
    range: bool,
    member: &str,
    order: u16,
    pref: u16,
    regexp: &str,
) -> EnumEntry {
    EnumEntry {
        id: None,
        prefix: prefix.to_owned(),
        is_range: range,
        member: member.to_owned(),
        order,
        preference: pref,
        flags: "u".to_owned(),
        services: "E2U+sip".to_owned(),
        regexp: regexp.to_owned(),
        replacement: ".".to_owned(),
        ttl: 60,
    }
}

/// The provisioned entries, and the same zone written by hand for Knot.
fn provisioning(callee: u16) -> (Vec<EnumEntry>, String) {
    let entries = vec![
        entry(
            "4721345601",
            false,
            "member-b",
            10,
            10,
            &format!("!^.*$!sip:one@127.0.0.1:{callee}!"),
        ),
        entry(
            "4721345602",
            false,
            "member-b",
            10,
            10,
            "!^.*$!sip:two-a@192.0.2.1!",
        ),
        entry(
            "4721345602",
            false,
            "member-b",
            10,
            20,
            "!^.*$!sip:two-b@192.0.2.2!",
        ),
        entry(
            "4721345603",
            false,
            "member-b",
            10,
            10,
            "!^\\+(47)(.*)$!sip:\\2@192.0.2.3!",
        ),
    ];
    let zone = format!(
        r#"$ORIGIN e164.arpa.
$TTL 60
@ SOA ns.e164.arpa. hostmaster.e164.arpa. 1 3600 600 86400 60
@ NS ns.e164.arpa.
1.0.6.5.4.3.1.2.7.4 NAPTR 10 10 "u" "E2U+sip" "!^.*$!sip:one@127.0.0.1:{callee}!" .
2.0.6.5.4.3.1.2.7.4 NAPTR 10 10 "u" "E2U+sip" "!^.*$!sip:two-a@192.0.2.1!" .
2.0.6.5.4.3.1.2.7.4 NAPTR 10 20 "u" "E2U+sip" "!^.*$!sip:two-b@192.0.2.2!" .
3.0.6.5.4.3.1.2.7.4 NAPTR 10 10 "u" "E2U+sip" "!^\\+(47)(.*)$!sip:\\2@192.0.2.3!" .
"#
    );
    (entries, zone)
}

fn naptr_name(number: &str) -> String {
    let digits: String = number.chars().filter(char::is_ascii_digit).rev().collect();
    let labels: Vec<String> = digits.chars().map(String::from).collect();
    format!("{}.e164.arpa.", labels.join("."))
}

/// Status and NAPTR answers, owner names and TTLs aside (they differ only
/// in case and in the TTL the zone was configured with).
fn naptr(server: SocketAddr, number: &str) -> (String, Vec<String>) {
    let (status, answers) = dig(server, &naptr_name(number), "NAPTR");
    let answers = answers
        .into_iter()
        .map(|a| a.split_whitespace().skip(1).collect::<Vec<_>>().join(" "))
        .collect();
    (status, answers)
}

async fn wait_for(
    server: SocketAddr,
    number: &str,
    expect: impl Fn(&(String, Vec<String>)) -> bool,
) -> (String, Vec<String>) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let got = tokio::task::spawn_blocking({
            let number = number.to_owned();
            move || naptr(server, &number)
        })
        .await
        .expect("dig task");
        if expect(&got) || tokio::time::Instant::now() > deadline {
            return got;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provisioned_zone_is_served_like_knot_changes_live_and_is_pushed() {
    let callee = Callee::start(0, Answer::RingThenAnswer).await;
    let (entries, zone_text) = provisioning(callee.addr.port());
    let independent = Knot::start(&[("e164.arpa", zone_text)], None);
    let primary = Knot::start(
        &[(
            "e164.arpa",
            "$ORIGIN e164.arpa.\n$TTL 60\n@ SOA ns.e164.arpa. hostmaster.e164.arpa. 1 3600 600 86400 60\n@ NS ns.e164.arpa.\n"
                .to_owned(),
        )],
        Some((TSIG_NAME, TSIG_SECRET)),
    );

    // Provision the store before the node starts, as `peering enum add` does.
    let zone_port = free_port();
    let (config, data) = node_config(&format!(
        r#"
[node]
grace_period_secs = 0
[[sip.listen]]
transport = "udp"
address = "127.0.0.1:0"
[enum]
server = "127.0.0.1:{zone_port}"
suffixes = ["e164.arpa"]
[enum_zone]
origin = "e164.arpa."
ttl = 60
listen = "127.0.0.1:{zone_port}"
poll_ms = 200
[enum_zone.push]
primary = "{primary}"
key_name = "{TSIG_NAME}"
key_secret = "{TSIG_SECRET}"
[admin]
listen = "127.0.0.1:0"
"#,
        primary = primary.addr
    ));
    let store_url = config.store_url(&std::collections::HashMap::new());
    let store = peering_store::open(&store_url).await.expect("store");
    store.migrate().await.expect("migrate");
    for e in &entries {
        store.put_enum_entry(e.clone()).await.expect("provision");
    }
    let node = peering::node::start(config).await.expect("node starts");
    let own: SocketAddr = format!("127.0.0.1:{zone_port}").parse().expect("addr");

    // Identical answers to dig from the node's server and from Knot.
    for number in ["+4721345601", "+4721345602", "+4721345603", "+4721345699"] {
        let mine = tokio::task::spawn_blocking(move || naptr(own, number))
            .await
            .expect("dig");
        let knot_addr = independent.addr;
        let theirs = tokio::task::spawn_blocking(move || naptr(knot_addr, number))
            .await
            .expect("dig");
        assert_eq!(mine, theirs, "{number}: node's zone server vs Knot");
        if number != "+4721345699" {
            assert!(!mine.1.is_empty(), "{number} has NAPTR records");
        }
    }
    assert_eq!(naptr(own, "+4721345699").0, "NXDOMAIN");

    // The node routes by its own zone.
    let node_udp = node.addr(Transport::Udp).expect("udp");
    let mut call = Call::invite(node_udp, "sip:+4721345601@node.test").await;
    assert_eq!(call.wait_final(Duration::from_secs(10)).await, Some(200));
    call.in_dialog("ACK", 1).await;

    // The whole zone reached the primary by RFC 2136 + TSIG.
    let pushed = wait_for(primary.addr, "+4721345602", |(_, a)| a.len() == 2).await;
    assert_eq!(
        pushed,
        naptr(independent.addr, "+4721345602"),
        "{}",
        primary.log()
    );

    // A change in the store shows up in answers without a restart, and is
    // pushed too.
    store
        .put_enum_entry(entry(
            "4721345604",
            false,
            "member-b",
            10,
            10,
            &format!("!^.*$!sip:four@127.0.0.1:{}!", callee.addr.port()),
        ))
        .await
        .expect("provision a new number");
    let live = wait_for(own, "+4721345604", |(s, _)| s == "NOERROR").await;
    assert_eq!(live.0, "NOERROR", "served without a restart");
    assert_eq!(live.1.len(), 1);
    let pushed = wait_for(primary.addr, "+4721345604", |(s, _)| s == "NOERROR").await;
    assert_eq!(pushed, live, "pushed to the primary:\n{}", primary.log());
    let mut call = Call::invite(node_udp, "sip:+4721345604@node.test").await;
    assert_eq!(call.wait_final(Duration::from_secs(10)).await, Some(200));
    call.in_dialog("ACK", 1).await;

    // Removal is served and pushed as well.
    let id = store
        .enum_entries()
        .await
        .expect("entries")
        .into_iter()
        .find(|e| e.prefix == "4721345604")
        .and_then(|e| e.id)
        .expect("id");
    assert!(store.remove_enum_entry(id).await.expect("remove"));
    let gone = wait_for(own, "+4721345604", |(s, _)| s == "NXDOMAIN").await;
    assert_eq!(gone.0, "NXDOMAIN");
    let gone = wait_for(primary.addr, "+4721345604", |(s, _)| s != "NOERROR").await;
    assert_ne!(gone.0, "NOERROR", "removal pushed");
    node.shutdown().await;
    drop(data);
}
