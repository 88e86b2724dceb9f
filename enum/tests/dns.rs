//! ENUM routing against an independent authoritative server (Knot, started
//! here on loopback), the same zones served by this crate's own server,
//! `dig` comparing the two, a DNS timeout, and an RFC 2136 + TSIG push into
//! Knot.
//!
//! Needs `knotd` (Debian package `knot`) and `dig` (`bind9-dnsutils`); a
//! missing tool fails the test with the install hint.

use std::collections::BTreeSet;
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use peering_enum::e164::{CalledNumber, CalledUri, Scheme};
use peering_enum::naptr::NaptrRecord;
use peering_enum::push::{Hmac, TsigKey, UpdateClient};
use peering_enum::resolver::{EnumConfig, EnumResolver, ResolvedTarget};
use peering_enum::rfc3263::{SrvRecord, Target, Transport};
use peering_enum::server::ZoneServer;
use peering_enum::zone::{
    EnumZone, MemoryZoneSource, RecordData, ZoneEntry, ZoneRecord, ZoneSource,
};
use peering_enum::{Error, Result};

const SUFFIXES: [&str; 2] = ["e164.test", "e164alt.test"];
const TSIG_NAME: &str = "peering-update.";
const TSIG_SECRET: &[u8; 32] = b"0123456789abcdef0123456789abcdef";

// ---------------------------------------------------------------- tools

fn find_tool(name: &str, package: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let dirs = std::env::split_paths(&path).chain(["/usr/sbin".into(), "/sbin".into()]);
    for dir in dirs {
        let candidate = dir.join(name);
        if candidate.is_file() {
            return candidate;
        }
    }
    panic!("`{name}` not found: install it with `apt-get install {package}`");
}

fn free_port() -> u16 {
    // A port free for UDP and TCP at the time of asking.
    loop {
        let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = udp.local_addr().unwrap().port();
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// Runs `dig` and returns (status, aa flag, sorted answer lines).
fn dig(server: SocketAddr, name: &str, rtype: &str) -> (String, bool, Vec<String>) {
    let dig = find_tool("dig", "bind9-dnsutils");
    let out = Command::new(dig)
        .args([
            format!("@{}", server.ip()),
            "-p".into(),
            server.port().to_string(),
            "+norecurse".into(),
            "+noall".into(),
            "+comments".into(),
            "+answer".into(),
            "+time=2".into(),
            "+tries=2".into(),
            name.into(),
            rtype.into(),
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let status = text
        .split("status: ")
        .nth(1)
        .and_then(|s| s.split(',').next())
        .unwrap_or("NO ANSWER")
        .to_owned();
    let aa = text
        .lines()
        .find(|l| l.starts_with(";; flags:"))
        .is_some_and(|l| {
            l.split(';')
                .nth(2)
                .is_some_and(|f| f.split_whitespace().any(|w| w == "aa"))
        });
    let mut answers: Vec<String> = text
        .lines()
        .filter(|l| !l.starts_with(';') && !l.trim().is_empty())
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect();
    answers.sort();
    (status, aa, answers)
}

// ---------------------------------------------------------------- Knot

struct Knot {
    child: Child,
    addr: SocketAddr,
}

impl Drop for Knot {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Knot {
    fn start(dir: &Path, zones: &[EnumZone]) -> Knot {
        let knotd = find_tool("knotd", "knot");
        for z in zones {
            let file = dir.join(format!("{}.zone", z.origin.trim_end_matches('.')));
            std::fs::write(file, z.to_master_file().unwrap()).unwrap();
        }
        let port = free_port();
        let secret = base64::engine::general_purpose::STANDARD.encode(TSIG_SECRET);
        let mut conf = format!(
            "server:\n    rundir: \"{dir}\"\n    listen: 127.0.0.1@{port}\n    udp-workers: 1\n    tcp-workers: 1\n    background-workers: 1\n\
             database:\n    storage: \"{dir}/db\"\n\
             log:\n  - target: stderr\n    any: warning\n\
             key:\n  - id: {TSIG_NAME}\n    algorithm: hmac-sha256\n    secret: {secret}\n\
             acl:\n  - id: update\n    key: {TSIG_NAME}\n    action: update\n\
             template:\n  - id: default\n    storage: \"{dir}\"\n    file: \"%s.zone\"\n    zonefile-sync: -1\n\
             zone:\n",
            dir = dir.display()
        );
        for z in zones {
            conf.push_str(&format!("  - domain: {}\n    acl: update\n", z.origin));
        }
        std::fs::create_dir_all(dir.join("db")).unwrap();
        let conf_path = dir.join("knot.conf");
        std::fs::write(&conf_path, conf).unwrap();
        let child = Command::new(knotd)
            .arg("-c")
            .arg(&conf_path)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start knotd");
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let knot = Knot { child, addr };
        for _ in 0..100 {
            if zones
                .iter()
                .all(|z| dig(addr, &z.origin, "SOA").0 == "NOERROR")
            {
                return knot;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("knotd did not serve the zones on {addr}");
    }
}

// ---------------------------------------------------------------- zones

fn u(order: u16, pref: u16, services: &str, regexp: &str) -> NaptrRecord {
    NaptrRecord::new(order, pref, "u", services, regexp, ".")
}

fn rec(name: &str, data: RecordData) -> ZoneRecord {
    ZoneRecord {
        name: name.into(),
        ttl: 300,
        data,
    }
}

fn srv(priority: u16, weight: u16, port: u16, target: &str) -> RecordData {
    RecordData::Srv(SrvRecord {
        priority,
        weight,
        port,
        target: target.into(),
    })
}

fn enum_zone() -> EnumZone {
    let mut z = EnumZone::new("e164.test.", "ns.sip.test.", 1);
    z.entries = vec![
        // Order/preference ties, unknown flags, a non-SIP service, a numeric host.
        ZoneEntry::number(
            "441632960001",
            "member-a",
            vec![
                u(10, 10, "E2U+sip", "!^.*$!sip:a1@gw1.sip.test!"),
                u(10, 10, "E2U+sip", "!^.*$!sip:a1b@gw2.sip.test!"),
                u(10, 20, "E2U+sip", "!^.*$!sip:a2@gw2.sip.test:5070!"),
                u(20, 10, "E2U+email:mailto", "!^.*$!mailto:a@example.test!"),
                NaptrRecord::new(5, 10, "x", "E2U+sip", "!^.*$!sip:skip@gw1.sip.test!", "."),
                u(30, 10, "E2U+sip", "!^.*$!sip:last@192.0.2.10!"),
            ],
        ),
        // A non-terminal NAPTR into another zone, then a terminal fallback.
        ZoneEntry::number(
            "441632960002",
            "member-a",
            vec![
                NaptrRecord::new(10, 10, "", "", "", "chain.sip.test."),
                u(20, 10, "E2U+sip", "!^.*$!sip:fallback@192.0.2.55!"),
            ],
        ),
        // Several services in one field, back-references with the i flag, sips.
        ZoneEntry::number(
            "441632960003",
            "member-b",
            vec![
                u(
                    10,
                    10,
                    "E2U+voice:sip+video:sip",
                    "!^\\+(44)(1632)(.*)$!sip:\\3-\\2-\\1@GW2.sip.test!i",
                ),
                u(20, 10, "e2u+SIP", "!^.*$!sips:secure@gw1.sip.test!"),
            ],
        ),
        // Ported away: the old entry must not be used when rn is given.
        ZoneEntry::number(
            "441632960004",
            "member-b",
            vec![u(10, 10, "E2U+sip", "!^.*$!sip:old@gw2.sip.test!")],
        ),
        // The routing number of the carrier that now serves it.
        ZoneEntry::number(
            "441632969999",
            "member-c",
            vec![u(10, 10, "E2U+sip", "!^\\+(.*)$!sip:\\1@carrier.sip.test!")],
        ),
        // A loop through another zone.
        ZoneEntry::number(
            "441632960005",
            "member-c",
            vec![NaptrRecord::new(10, 10, "", "", "", "loop.sip.test.")],
        ),
        // NAPTRs, but none for SIP.
        ZoneEntry::number(
            "441632960007",
            "member-c",
            vec![u(
                10,
                10,
                "E2U+email:mailto",
                "!^.*$!mailto:x@example.test!",
            )],
        ),
        // An IPv6-only host, and a host whose SRV says "no SIP here" (RFC 2782 ".").
        ZoneEntry::number(
            "441632960008",
            "member-c",
            vec![
                u(10, 10, "E2U+sip", "!^.*$!sip:v6@gw6.sip.test!"),
                u(
                    20,
                    10,
                    "E2U+sip",
                    "!^.*$!sip:none@nosip.sip.test;transport=tcp!",
                ),
            ],
        ),
        // A range with a carved-out number.
        ZoneEntry::range(
            "44163297",
            "member-d",
            vec![u(10, 10, "E2U+sip", "!^.*$!sip:range@gw2.sip.test!")],
        ),
        ZoneEntry::number(
            "441632970500",
            "member-e",
            vec![u(10, 10, "E2U+sip", "!^.*$!sip:carved@gw2.sip.test!")],
        ),
    ];
    z
}

fn alt_zone() -> EnumZone {
    let mut z = EnumZone::new("e164alt.test.", "ns.sip.test.", 1);
    z.entries = vec![ZoneEntry::number(
        "441632960006",
        "member-f",
        vec![u(10, 10, "E2U+sip", "!^.*$!sip:alt@gw2.sip.test!")],
    )];
    z
}

fn host_zone() -> EnumZone {
    let a = |o: [u8; 4]| RecordData::A(Ipv4Addr::from(o));
    let mut z = EnumZone::new("sip.test.", "ns.sip.test.", 1);
    z.extra = vec![
        rec("ns", a([127, 0, 0, 53])),
        rec("gw1", a([127, 0, 0, 1])),
        rec("gw1b", a([127, 0, 0, 4])),
        rec("gw2", a([127, 0, 0, 2])),
        rec("carrier", a([127, 0, 0, 3])),
        rec("gw6", RecordData::Aaaa(std::net::Ipv6Addr::LOCALHOST)),
        rec("nosip", a([127, 0, 0, 9])),
        rec("_sip._tcp.nosip", srv(0, 0, 0, ".")),
        rec(
            "gw1",
            RecordData::Naptr(NaptrRecord::new(
                10,
                10,
                "s",
                "SIP+D2T",
                "",
                "_sip._tcp.gw1.sip.test.",
            )),
        ),
        rec(
            "gw1",
            RecordData::Naptr(NaptrRecord::new(
                20,
                10,
                "s",
                "SIPS+D2T",
                "",
                "_sips._tcp.gw1.sip.test.",
            )),
        ),
        rec("_sip._tcp.gw1", srv(10, 60, 5062, "gw1.sip.test.")),
        rec("_sip._tcp.gw1", srv(10, 40, 5063, "gw1b.sip.test.")),
        rec("_sips._tcp.gw1", srv(10, 0, 5061, "gw1.sip.test.")),
        rec("_sip._udp.carrier", srv(0, 0, 5080, "carrier.sip.test.")),
        rec(
            "chain",
            RecordData::Naptr(u(10, 10, "E2U+sip", "!^\\+44(.*)$!sip:\\1@gw2.sip.test!")),
        ),
        rec(
            "loop",
            RecordData::Naptr(NaptrRecord::new(
                10,
                10,
                "",
                "",
                "",
                "5.0.0.0.6.9.2.3.6.1.4.4.e164.test.",
            )),
        ),
    ];
    z
}

fn zones() -> Vec<EnumZone> {
    vec![enum_zone(), alt_zone(), host_zone()]
}

// ---------------------------------------------------------------- checks

fn resolver(server: SocketAddr) -> EnumResolver {
    let mut config = EnumConfig::new(server, SUFFIXES.iter().map(|s| s.to_string()).collect());
    config.timeout = Duration::from_secs(2);
    EnumResolver::new(config).unwrap()
}

fn tel(text: &str) -> CalledNumber {
    CalledNumber::parse_tel(text).unwrap()
}

fn t(transport: Transport, addr: &str, priority: u16) -> Target {
    Target {
        transport,
        addr: addr.parse().unwrap(),
        priority,
    }
}

async fn resolve(r: &EnumResolver, number: &str) -> Result<Vec<ResolvedTarget>> {
    r.resolve(&tel(number)).await
}

/// Every routing case of the zone, checked the same way against any server.
async fn check_routing(r: &EnumResolver) {
    // Ties: the two (10,10) records first in either order, then (10,20),
    // then (30,10); unknown flags and mailto skipped.
    let uris = r.lookup_uris(&tel("tel:+44-1632-960001")).await.unwrap();
    assert_eq!(uris.len(), 4, "{uris:?}");
    let first_two: BTreeSet<&str> = uris[..2].iter().map(String::as_str).collect();
    assert_eq!(
        first_two,
        BTreeSet::from(["sip:a1@gw1.sip.test", "sip:a1b@gw2.sip.test"])
    );
    assert_eq!(uris[2], "sip:a2@gw2.sip.test:5070");
    assert_eq!(uris[3], "sip:last@192.0.2.10");

    // RFC 3263 for each: gw1 has NAPTR -> SRV (TCP weighted, then TLS);
    // gw2 has no NAPTR/SRV -> A with UDP 5060; explicit port; numeric host.
    let targets = resolve(r, "tel:+441632960001").await.unwrap();
    let for_uri = |u: &str| -> Vec<Target> {
        targets
            .iter()
            .filter(|x| x.uri == u)
            .map(|x| x.target)
            .collect()
    };
    let gw1 = for_uri("sip:a1@gw1.sip.test");
    assert_eq!(gw1.len(), 3, "{gw1:?}");
    let tcp: BTreeSet<Target> = gw1[..2].iter().copied().collect();
    assert_eq!(
        tcp,
        BTreeSet::from([
            t(Transport::Tcp, "127.0.0.1:5062", 10),
            t(Transport::Tcp, "127.0.0.4:5063", 10)
        ])
    );
    assert_eq!(gw1[2], t(Transport::Tls, "127.0.0.1:5061", 10));
    assert_eq!(
        for_uri("sip:a1b@gw2.sip.test"),
        vec![t(Transport::Udp, "127.0.0.2:5060", 0)]
    );
    assert_eq!(
        for_uri("sip:a2@gw2.sip.test:5070"),
        vec![t(Transport::Udp, "127.0.0.2:5070", 0)]
    );
    assert_eq!(
        for_uri("sip:last@192.0.2.10"),
        vec![t(Transport::Udp, "192.0.2.10:5060", 0)]
    );
    assert_eq!(targets.last().unwrap().uri, "sip:last@192.0.2.10");

    // Non-terminal: the chained result takes the rule's place.
    let uris = r.lookup_uris(&tel("tel:+441632960002")).await.unwrap();
    assert_eq!(
        uris,
        vec!["sip:1632960002@gw2.sip.test", "sip:fallback@192.0.2.55"]
    );

    // Several services in one field; back-references and the i flag; sips -> TLS only.
    let uris = r.lookup_uris(&tel("tel:+441632960003")).await.unwrap();
    assert_eq!(
        uris,
        vec![
            "sip:960003-1632-44@GW2.sip.test",
            "sips:secure@gw1.sip.test"
        ]
    );
    let targets = resolve(r, "tel:+441632960003").await.unwrap();
    let secure: Vec<Target> = targets
        .iter()
        .filter(|x| x.uri.starts_with("sips:"))
        .map(|x| x.target)
        .collect();
    assert_eq!(secure, vec![t(Transport::Tls, "127.0.0.1:5061", 10)]);

    // A ported number routes on rn; the dialled number fills the regexp.
    let targets = resolve(r, "tel:+44-1632-960004;npdi;rn=+44-1632-969999")
        .await
        .unwrap();
    assert_eq!(
        targets,
        vec![ResolvedTarget {
            uri: "sip:441632960004@carrier.sip.test".into(),
            target: t(Transport::Udp, "127.0.0.3:5080", 0),
        }]
    );
    // Without rn the old entry answers.
    let uris = r.lookup_uris(&tel("tel:+441632960004")).await.unwrap();
    assert_eq!(uris, vec!["sip:old@gw2.sip.test"]);

    // AAAA; and an SRV "." answer: the URI gives no target (the A record
    // is not used when SRV says there is no service).
    let targets = resolve(r, "tel:+441632960008").await.unwrap();
    assert_eq!(
        targets,
        vec![ResolvedTarget {
            uri: "sip:v6@gw6.sip.test".into(),
            target: t(Transport::Udp, "[::1]:5060", 0),
        }]
    );

    let err = r
        .locate("sip:none@nosip.sip.test;transport=tcp")
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Unresolvable { .. }), "{err:?}");
    assert_eq!(err.status().0, 503);

    // Ranges, and a number carved out of one.
    let uris = r.lookup_uris(&tel("tel:+441632970123")).await.unwrap();
    assert_eq!(uris, vec!["sip:range@gw2.sip.test"]);
    let uris = r.lookup_uris(&tel("tel:+441632970500")).await.unwrap();
    assert_eq!(uris, vec!["sip:carved@gw2.sip.test"]);
    let uris = r.lookup_uris(&tel("tel:+441632970501")).await.unwrap();
    assert_eq!(uris, vec!["sip:range@gw2.sip.test"]);

    // The second suffix is asked when the first has nothing.
    let uris = r.lookup_uris(&tel("tel:+441632960006")).await.unwrap();
    assert_eq!(uris, vec!["sip:alt@gw2.sip.test"]);

    // NXDOMAIN under every suffix: 604; no SIP NAPTR: 404; a loop: 503.
    let err = resolve(r, "tel:+441632960099").await.unwrap_err();
    assert!(matches!(err, Error::NumberNotFound { .. }), "{err:?}");
    assert_eq!(err.status(), (604, "Does Not Exist Anywhere"));
    let err = resolve(r, "tel:+441632960007").await.unwrap_err();
    assert!(matches!(err, Error::NoSipRoute { .. }), "{err:?}");
    assert_eq!(err.status(), (404, "Not Found"));
    let err = resolve(r, "tel:+441632960005").await.unwrap_err();
    assert!(matches!(err, Error::NaptrLoop { .. }), "{err:?}");
    assert_eq!(err.status().0, 503);
}

/// The questions the two servers must answer alike.
const QUESTIONS: &[(&str, &str)] = &[
    ("1.0.0.0.6.9.2.3.6.1.4.4.e164.test.", "NAPTR"),
    ("2.0.0.0.6.9.2.3.6.1.4.4.e164.test.", "NAPTR"),
    ("3.0.0.0.6.9.2.3.6.1.4.4.e164.test.", "NAPTR"),
    ("9.9.9.9.6.9.2.3.6.1.4.4.e164.test.", "NAPTR"),
    ("9.9.0.0.6.9.2.3.6.1.4.4.e164.test.", "NAPTR"),
    ("3.2.1.0.7.9.2.3.6.1.4.4.e164.test.", "NAPTR"),
    ("0.0.5.0.7.9.2.3.6.1.4.4.e164.test.", "NAPTR"),
    ("1.0.5.0.7.9.2.3.6.1.4.4.e164.test.", "NAPTR"),
    ("1.0.0.0.6.9.2.3.6.1.4.4.e164.test.", "A"),
    ("6.0.0.0.6.9.2.3.6.1.4.4.e164alt.test.", "NAPTR"),
    ("gw1.sip.test.", "NAPTR"),
    ("_sip._tcp.gw1.sip.test.", "SRV"),
    ("gw1.sip.test.", "A"),
    ("gw2.sip.test.", "NAPTR"),
    ("nowhere.sip.test.", "A"),
    ("chain.sip.test.", "NAPTR"),
    ("e164.test.", "SOA"),
    ("gw6.sip.test.", "AAAA"),
    ("_sip._tcp.nosip.sip.test.", "SRV"),
];

// ---------------------------------------------------------------- tests

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn knot_routes_as_the_rfcs_say() {
    let dir = tempfile::tempdir().unwrap();
    let knot = Knot::start(dir.path(), &zones());
    let r = resolver(knot.addr);
    let dead = knot.addr;
    check_routing(&r).await;
    // A second pass is served from the cache and gives the same answers.
    check_routing(&r).await;
    // With Knot gone, a third pass still works: every answer, NXDOMAIN and
    // NODATA included (RFC 2308, SOA MINIMUM 60 s), comes from the cache.
    let cached = r.cached();
    assert!(cached > 20, "{cached}");
    drop(knot);
    check_routing(&r).await;
    assert_eq!(r.cached(), cached);
    // A fresh resolver now fails with 503.
    let mut config = EnumConfig::new(dead, vec!["e164.test".into()]);
    config.timeout = Duration::from_millis(300);
    config.attempts = 0;
    let fresh = EnumResolver::new(config).unwrap();
    let err = fresh
        .lookup_uris(&tel("tel:+441632960001"))
        .await
        .unwrap_err();
    assert_eq!(err.status().0, 503, "{err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sip_uri_with_user_phone_routes() {
    let dir = tempfile::tempdir().unwrap();
    let knot = Knot::start(dir.path(), &zones());
    let r = resolver(knot.addr);
    let params = [("user", Some("phone"))];
    let uri = CalledUri {
        scheme: Scheme::Sip,
        user: "+44-1632-960004;rn=+44-1632-969999;npdi",
        uri_params: &params,
    };
    let targets = r.resolve_uri(&uri).await.unwrap();
    assert_eq!(targets[0].uri, "sip:441632960004@carrier.sip.test");
    let uri = CalledUri {
        scheme: Scheme::Sip,
        user: "alice",
        uri_params: &[],
    };
    assert_eq!(
        r.resolve_uri(&uri).await.unwrap_err().status(),
        (404, "Not Found")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn own_server_answers_like_knot() {
    let dir = tempfile::tempdir().unwrap();
    let knot = Knot::start(dir.path(), &zones());
    let source = Arc::new(MemoryZoneSource::new(zones()));
    let own = ZoneServer::bind(
        "127.0.0.1:0".parse().unwrap(),
        source.clone() as Arc<dyn ZoneSource>,
    )
    .await
    .unwrap();
    let own_addr = own.local_addr();

    let compare = tokio::task::spawn_blocking(move || {
        let mut mismatches = Vec::new();
        let mut answered = 0;
        let mut nxdomain = 0;
        for (name, rtype) in QUESTIONS {
            let theirs = dig(knot.addr, name, rtype);
            let ours = dig(own_addr, name, rtype);
            assert!(theirs.1, "knot answers authoritatively: {name} {rtype}");
            answered += usize::from(!theirs.2.is_empty());
            nxdomain += usize::from(theirs.0 == "NXDOMAIN");
            if theirs != ours {
                mismatches.push(format!(
                    "{name} {rtype}:\n  knot: {theirs:?}\n  own:  {ours:?}"
                ));
            }
        }
        // The questions cover answers, NODATA and NXDOMAIN.
        assert_eq!(answered, 15);
        assert_eq!(nxdomain, 2);
        (knot, mismatches)
    });
    let (knot, mismatches) = compare.await.unwrap();
    assert!(
        mismatches.is_empty(),
        "answers differ:\n{}",
        mismatches.join("\n")
    );

    // The resolver sees the same routing through our server.
    check_routing(&resolver(own_addr)).await;

    // Publishing a new snapshot changes the answers without a restart.
    let name = "9.9.0.0.6.9.2.3.6.1.4.4.e164.test.";
    assert_eq!(dig(own_addr, name, "NAPTR").0, "NXDOMAIN");
    let mut changed = zones();
    changed[0].entries.push(ZoneEntry::number(
        "441632960099",
        "member-z",
        vec![u(10, 10, "E2U+sip", "!^.*$!sip:new@gw2.sip.test!")],
    ));
    changed[0].soa.serial = 2;
    source.replace(changed);
    let (status, _, answers) = dig(own_addr, name, "NAPTR");
    assert_eq!(status, "NOERROR");
    assert_eq!(answers.len(), 1);
    assert!(answers[0].contains("sip:new@gw2.sip.test"), "{answers:?}");
    let uris = resolver(own_addr)
        .lookup_uris(&tel("tel:+441632960099"))
        .await
        .unwrap();
    assert_eq!(uris, vec!["sip:new@gw2.sip.test"]);
    drop(knot);
    own.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_dns_gives_503() {
    // A UDP port that takes queries and never answers (and no TCP listener).
    let silent = UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = silent.local_addr().unwrap();
    let mut config = EnumConfig::new(addr, vec!["e164.test".into()]);
    config.timeout = Duration::from_millis(300);
    config.attempts = 0;
    let r = EnumResolver::new(config).unwrap();
    let started = std::time::Instant::now();
    let err = resolve(&r, "tel:+441632960001").await.unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(err.status(), (503, "Service Unavailable"), "{err:?}");
    assert!(err.is_timeout(), "{err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tsig_push_lands_in_knot() {
    let dir = tempfile::tempdir().unwrap();
    let knot = Knot::start(dir.path(), &zones());
    let name = "7.7.0.0.6.9.2.3.6.1.4.4.e164.test.";
    let addr = knot.addr;
    assert_eq!(
        tokio::task::spawn_blocking(move || dig(addr, name, "NAPTR").0)
            .await
            .unwrap(),
        "NXDOMAIN"
    );

    let old = enum_zone();
    let mut new = enum_zone();
    new.entries.push(ZoneEntry::number(
        "441632960077",
        "member-p",
        vec![u(10, 10, "E2U+sip", "!^\\+(.*)$!sip:\\1@gw2.sip.test!")],
    ));
    // Carve 441632960001 down to one record.
    new.entries[0].naptrs.truncate(1);

    let key = TsigKey {
        name: TSIG_NAME.into(),
        algorithm: Hmac::Sha256,
        secret: TSIG_SECRET.to_vec(),
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();

    // A wrong key is refused.
    let wrong = UpdateClient::new(
        knot.addr,
        TsigKey {
            secret: b"wrong-secret-wrong-secret-wrong!".to_vec(),
            ..key.clone()
        },
        Duration::from_secs(3),
    );
    let err = wrong.push(Some(&old), &new, now).await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::UpdateRefused { rcode: 9, .. } | Error::TsigVerify { .. }
        ),
        "{err:?}"
    );

    let client = UpdateClient::new(knot.addr, key, Duration::from_secs(3));
    let report = client.push(Some(&old), &new, now).await.unwrap();
    assert_eq!(report.deleted, 2);
    assert_eq!(report.added, 2);

    let (status, _, answers) = tokio::task::spawn_blocking(move || dig(addr, name, "NAPTR"))
        .await
        .unwrap();
    assert_eq!(status, "NOERROR");
    assert_eq!(answers.len(), 1);
    assert!(answers[0].contains("sip:\\\\1@gw2.sip.test"), "{answers:?}");
    let r = resolver(knot.addr);
    assert_eq!(
        r.lookup_uris(&tel("tel:+441632960077")).await.unwrap(),
        vec!["sip:441632960077@gw2.sip.test"]
    );
    assert_eq!(
        r.lookup_uris(&tel("tel:+441632960001")).await.unwrap(),
        vec!["sip:a1@gw1.sip.test"]
    );
}

/// A DNS server that counts the questions it gets and answers every NAPTR
/// question, after `delay`, with one terminal SIP rule.
async fn counting_server(
    delay: Duration,
    ttl: u32,
) -> (SocketAddr, Arc<std::sync::atomic::AtomicUsize>) {
    use hickory_proto::op::{Message, OpCode};
    use hickory_proto::rr::rdata::NAPTR;
    use hickory_proto::rr::{Name, RData, Record};

    let socket = Arc::new(tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap());
    let addr = socket.local_addr().unwrap();
    let count = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = count.clone();
    tokio::spawn(async move {
        let mut buf = vec![0u8; 4096];
        loop {
            let Ok((len, from)) = socket.recv_from(&mut buf).await else {
                return;
            };
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let request = Message::from_vec(&buf[..len]).unwrap();
            let socket = socket.clone();
            tokio::spawn(async move {
                tokio::time::sleep(delay).await;
                let mut response = Message::response(request.metadata.id, OpCode::Query);
                response.metadata.authoritative = true;
                let query = request.queries[0].clone();
                let name: Name = query.name().clone();
                response.add_query(query);
                response.add_answer(Record::from_rdata(
                    name,
                    ttl,
                    RData::NAPTR(NAPTR::new(
                        10,
                        10,
                        b"u".to_vec().into(),
                        b"E2U+sip".to_vec().into(),
                        b"!^.*$!sip:one@192.0.2.1!".to_vec().into(),
                        Name::root(),
                    )),
                ));
                let _ = socket.send_to(&response.to_vec().unwrap(), from).await;
            });
        }
    });
    (addr, count)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_query_in_flight_per_name() {
    let (addr, count) = counting_server(Duration::from_millis(200), 60).await;
    let r = EnumResolver::new(EnumConfig::new(addr, vec!["e164.test".into()])).unwrap();
    let mut calls = Vec::new();
    for _ in 0..50 {
        let r = r.clone();
        calls.push(tokio::spawn(async move {
            r.resolve(&tel("tel:+441632960001")).await
        }));
    }
    for call in calls {
        let targets = call.await.unwrap().unwrap();
        assert_eq!(targets[0].uri, "sip:one@192.0.2.1");
    }
    // 50 concurrent calls, one NAPTR question on the wire.
    assert_eq!(count.load(std::sync::atomic::Ordering::SeqCst), 1);
    // And the answer is cached afterwards.
    r.resolve(&tel("tel:+441632960001")).await.unwrap();
    assert_eq!(count.load(std::sync::atomic::Ordering::SeqCst), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_expire_with_their_ttl() {
    let (addr, count) = counting_server(Duration::ZERO, 1).await;
    let r = EnumResolver::new(EnumConfig::new(addr, vec!["e164.test".into()])).unwrap();
    let asked = || count.load(std::sync::atomic::Ordering::SeqCst);
    r.lookup_uris(&tel("tel:+441632960001")).await.unwrap();
    r.lookup_uris(&tel("tel:+441632960001")).await.unwrap();
    assert_eq!(asked(), 1);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    r.lookup_uris(&tel("tel:+441632960001")).await.unwrap();
    assert_eq!(asked(), 2);
}
