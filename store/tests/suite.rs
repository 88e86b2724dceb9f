//! The same suite against both stores: PostgreSQL (an ephemeral cluster
//! from `test_postgres`, or `PEERING_TEST_DATABASE_URL`) and the embedded
//! SQLite store. Each case gets a fresh, migrated database.

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use peering_policy::Registry;
use peering_policy::federation::{FederationFile, diff};
use peering_policy::ratelimit::Limiter;
use peering_policy::{
    AddressBan, Agreement, Attestation, Change, HeaderRules, Limits, ListEntry, ListKind,
    MemberInfo, NumberRange, Snapshot,
};
use peering_store::{
    CallRecord, EmbeddedStore, EnumEntry, Error, Notification, PgStore, RateUsage, RegistryWatcher,
    Store, apply_federation, latest_version, parse_federation, sync_usage, testing::test_postgres,
};

/// A way to write to the database behind the store's back.
#[derive(Clone)]
enum Raw {
    Pg(String),
    Sqlite(PathBuf),
}

impl Raw {
    async fn execute(&self, sql: &str) {
        match self {
            Self::Pg(url) => {
                let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
                    .await
                    .unwrap();
                let driver = tokio::spawn(conn);
                client.batch_execute(sql).await.unwrap();
                drop(client);
                let _ = driver.await;
            }
            Self::Sqlite(path) => {
                let path = path.clone();
                let sql = sql.to_owned();
                tokio::task::spawn_blocking(move || {
                    let conn = rusqlite::Connection::open(path).unwrap();
                    conn.pragma_update(None, "foreign_keys", true).unwrap();
                    conn.execute_batch(&sql).unwrap();
                })
                .await
                .unwrap();
            }
        }
    }
}

type Case = fn(Arc<dyn Store>, Raw) -> Pin<Box<dyn Future<Output = ()> + Send>>;

macro_rules! cases {
    ($($name:ident),* $(,)?) => {
        const CASES: &[(&str, Case)] = &[$((stringify!($name), |s, r| Box::pin($name(s, r)))),*];
    };
}

cases!(
    migrations_apply_once,
    registry_round_trip,
    failed_batch_rolls_back,
    remove_member_cascades,
    enum_entries_crud,
    call_records_and_caller_stats,
    usage_table_shares,
    writes_are_announced,
    outside_writes_are_announced,
    federation_file_round_trip,
    watcher_follows_outside_changes,
    limiters_share_through_the_store,
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_suite() {
    let pg = tokio::task::spawn_blocking(test_postgres)
        .await
        .unwrap()
        .expect("PostgreSQL for tests (initdb/pg_ctl, or PEERING_TEST_DATABASE_URL)");
    for (name, case) in CASES {
        let url = pg.fresh_database(&format!("peering_{name}")).await.unwrap();
        let store = PgStore::connect(&url).await.unwrap();
        assert!(matches!(
            store.check_schema().await,
            Err(Error::SchemaMissing)
        ));
        store.migrate().await.unwrap();
        eprintln!("postgres: {name}");
        case(Arc::new(store), Raw::Pg(url)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_suite() {
    let dir = tempfile::tempdir().unwrap();
    for (name, case) in CASES {
        let path = dir.path().join(name).join("registry.db");
        let store = EmbeddedStore::open(&path).await.unwrap();
        assert!(matches!(
            store.check_schema().await,
            Err(Error::SchemaMissing)
        ));
        store.migrate().await.unwrap();
        eprintln!("embedded: {name}");
        case(Arc::new(store), Raw::Sqlite(path)).await;
    }
}

fn info(name: &str) -> MemberInfo {
    MemberInfo {
        name: name.into(),
        display_name: format!("Member {name}"),
        enabled: true,
        sip_target: Some(format!("sip:{name}.example:5060")),
    }
}

fn sample_changes() -> Vec<Change> {
    vec![
        Change::CreateMember(info("a")),
        Change::CreateMember(info("b")),
        Change::AddDomain {
            member: "a".into(),
            domain: "A.Example".into(),
        },
        Change::AddIdentity {
            member: "a".into(),
            identity: "sip.a.example".into(),
        },
        Change::AddNetwork {
            member: "a".into(),
            network: "127.0.0.2/32".parse().unwrap(),
        },
        Change::AddNetwork {
            member: "b".into(),
            network: "2001:db8::/32".parse().unwrap(),
        },
        Change::PutRange {
            member: "a".into(),
            range: NumberRange {
                prefix: "1555010".into(),
                may_originate: true,
                terminates: true,
                preference: 100,
            },
        },
        Change::PutRange {
            member: "b".into(),
            range: NumberRange {
                prefix: "4721345".into(),
                may_originate: false,
                terminates: true,
                preference: 10,
            },
        },
        Change::SetLimits {
            member: "a".into(),
            limits: Limits {
                cps: Some(20),
                concurrent: Some(100),
                source_cps: None,
                source_concurrent: Some(5),
            },
        },
        Change::PutAgreement(Agreement {
            from: "a".into(),
            to: "b".into(),
            enabled: true,
            require_identity: true,
            accepted_attestation: vec![Attestation::A, Attestation::B],
            headers: HeaderRules {
                topology_hiding: true,
                strip: vec!["p-charging-vector".into()],
            },
        }),
        Change::PutListEntry(ListEntry {
            scope: None,
            kind: ListKind::Block,
            pattern: "15550100666".into(),
            exact: true,
            status: 603,
            reason: "fraud".into(),
            expires_at: None,
        }),
        Change::PutListEntry(ListEntry {
            scope: Some("a".into()),
            kind: ListKind::Allow,
            pattern: "1555".into(),
            exact: false,
            status: 603,
            reason: String::new(),
            expires_at: Some(4_102_444_800_000),
        }),
        Change::PutBan(AddressBan {
            network: "192.0.2.0/24".parse().unwrap(),
            reason: "scanner".into(),
            expires_at: None,
        }),
    ]
}

fn expected(changes: &[Change]) -> Snapshot {
    let mut s = Snapshot::default();
    for c in changes {
        s.apply(c).unwrap();
    }
    s
}

async fn migrations_apply_once(store: Arc<dyn Store>, _raw: Raw) {
    let again = store.migrate().await.unwrap();
    assert!(again.applied.is_empty());
    assert_eq!(again.version, latest_version());
    assert_eq!(store.check_schema().await.unwrap(), latest_version());
    let snap = store.load_snapshot().await.unwrap();
    assert!(snap.members.is_empty());
}

async fn registry_round_trip(store: Arc<dyn Store>, _raw: Raw) {
    let v0 = store.registry_version().await.unwrap();
    let changes = sample_changes();
    store.apply(changes.clone()).await.unwrap();
    let mut snap = store.load_snapshot().await.unwrap();
    assert!(snap.version > v0, "version bumped");
    snap.version = 0;
    assert_eq!(snap, expected(&changes));
    assert_eq!(snap.member("a").unwrap().domains, vec!["a.example"]);

    let update = vec![
        Change::UpdateMember(MemberInfo {
            enabled: false,
            ..info("b")
        }),
        Change::SetLimits {
            member: "a".into(),
            limits: Limits::default(),
        },
        Change::RemoveDomain {
            member: "a".into(),
            domain: "a.example".into(),
        },
    ];
    store.apply(update.clone()).await.unwrap();
    let mut snap = store.load_snapshot().await.unwrap();
    snap.version = 0;
    let all: Vec<Change> = changes.into_iter().chain(update).collect();
    assert_eq!(snap, expected(&all));
    assert!(!snap.member("b").unwrap().info.enabled);
    assert!(snap.member("a").unwrap().limits.is_empty());
}

async fn failed_batch_rolls_back(store: Arc<dyn Store>, _raw: Raw) {
    let err = store
        .apply(vec![
            Change::CreateMember(info("a")),
            Change::UpdateMember(info("ghost")),
        ])
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::NotFound { what: "member", .. }),
        "{err}"
    );
    assert!(store.load_snapshot().await.unwrap().members.is_empty());
    // A reference to a missing member violates a foreign key.
    let err = store
        .apply(vec![Change::AddDomain {
            member: "ghost".into(),
            domain: "x.example".into(),
        }])
        .await;
    assert!(err.is_err());
    // Values the model refuses never reach the database.
    let err = store
        .apply(vec![Change::CreateMember(info("Bad Name"))])
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Invalid { .. }), "{err}");
    // Duplicate creation fails and leaves the first intact.
    store
        .apply(vec![Change::CreateMember(info("a"))])
        .await
        .unwrap();
    assert!(
        store
            .apply(vec![Change::CreateMember(info("a"))])
            .await
            .is_err()
    );
    assert_eq!(store.load_snapshot().await.unwrap().members.len(), 1);
}

async fn remove_member_cascades(store: Arc<dyn Store>, _raw: Raw) {
    store.apply(sample_changes()).await.unwrap();
    store
        .put_enum_entry(enum_entry("4721345", "b"))
        .await
        .unwrap();
    store
        .apply(vec![Change::RemoveMember { name: "a".into() }])
        .await
        .unwrap();
    let snap = store.load_snapshot().await.unwrap();
    assert_eq!(snap.members.len(), 1);
    assert!(snap.agreements.is_empty());
    assert!(snap.lists.iter().all(|l| l.scope.is_none()));
    assert_eq!(snap.lists.len(), 1);
    store
        .apply(vec![Change::RemoveMember { name: "b".into() }])
        .await
        .unwrap();
    assert!(store.enum_entries().await.unwrap().is_empty());
}

fn enum_entry(prefix: &str, member: &str) -> EnumEntry {
    EnumEntry {
        id: None,
        prefix: prefix.into(),
        is_range: true,
        member: member.into(),
        order: 10,
        preference: 100,
        flags: "u".into(),
        services: "E2U+sip".into(),
        regexp: "!^\\+?(.*)$!sip:\\1@b.example!".into(),
        replacement: ".".into(),
        ttl: 300,
    }
}

async fn enum_entries_crud(store: Arc<dyn Store>, _raw: Raw) {
    // Owners need not be in the registry yet.
    let early = store
        .put_enum_entry(enum_entry("4400", "not-yet-onboarded"))
        .await
        .unwrap();
    assert!(store.remove_enum_entry(early).await.unwrap());
    store.apply(sample_changes()).await.unwrap();
    let id = store
        .put_enum_entry(enum_entry("4721345", "b"))
        .await
        .unwrap();
    let mut second = enum_entry("15550100001", "a");
    second.is_range = false;
    second.order = 20;
    let id2 = store.put_enum_entry(second.clone()).await.unwrap();
    assert_ne!(id, id2);
    let all = store.enum_entries().await.unwrap();
    assert_eq!(all.len(), 2);
    assert_eq!(all[0].prefix, "15550100001");
    assert_eq!(
        all[1],
        EnumEntry {
            id: Some(id),
            ..enum_entry("4721345", "b")
        }
    );
    let updated = EnumEntry {
        id: Some(id2),
        preference: 5,
        ..second
    };
    assert_eq!(store.put_enum_entry(updated.clone()).await.unwrap(), id2);
    assert!(store.enum_entries().await.unwrap().contains(&updated));
    let missing = EnumEntry {
        id: Some(id2 + 1000),
        ..updated
    };
    assert!(matches!(
        store.put_enum_entry(missing).await,
        Err(Error::NotFound { .. })
    ));
    assert!(store.remove_enum_entry(id).await.unwrap());
    assert!(!store.remove_enum_entry(id).await.unwrap());
    assert_eq!(store.enum_entries().await.unwrap().len(), 1);
}

fn cdr(caller: &str, started: i64, answered: Option<i64>, ended: Option<i64>) -> CallRecord {
    CallRecord {
        node: "n1".into(),
        call_id: format!("{caller}-{started}"),
        from_member: Some("a".into()),
        to_member: Some("b".into()),
        caller: caller.into(),
        callee: "4721345000".into(),
        source_addr: "127.0.0.2:5060".into(),
        started_at: started,
        answered_at: answered,
        ended_at: ended,
        status: if answered.is_some() { 200 } else { 486 },
        reason: "ok".into(),
        attestation: Some("A".into()),
        spit_score: Some(12),
        spit_decision: Some("accept".into()),
    }
}

async fn call_records_and_caller_stats(store: Arc<dyn Store>, _raw: Raw) {
    let ids = store
        .insert_call_records(vec![
            cdr("1555", 1_000, Some(1_100), Some(2_000)),
            cdr("1555", 2_000, Some(2_100), Some(60_000)),
            cdr("1555", 3_000, None, Some(3_500)),
            cdr("1666", 3_000, Some(3_100), Some(3_200)),
            cdr("1555", 100, Some(200), Some(300)),
        ])
        .await
        .unwrap();
    assert_eq!(ids.len(), 5);
    assert!(ids.windows(2).all(|w| w[0] < w[1]));
    let stats = store
        .caller_stats("1555".into(), 1_000, 6_000)
        .await
        .unwrap();
    assert_eq!((stats.calls, stats.answered, stats.short_calls), (3, 2, 1));
    let none = store.caller_stats("1777".into(), 0, 6_000).await.unwrap();
    assert_eq!(none.calls, 0);
    let all = store.call_records(0, 100).await.unwrap();
    assert_eq!(all.len(), 5);
    assert_eq!(all[0].1, cdr("1555", 100, Some(200), Some(300)));
    assert_eq!(all[0].0, ids[4]);
    let page = store.call_records(2_000, 2).await.unwrap();
    assert_eq!(page.len(), 2);
    assert_eq!(page[0].1.started_at, 2_000);
    assert_eq!(store.purge_call_records(2_000).await.unwrap(), 2);
    assert_eq!(store.call_records(0, 100).await.unwrap().len(), 3);
}

async fn usage_table_shares(store: Arc<dyn Store>, _raw: Raw) {
    let u = |key: &str, d, c| RateUsage {
        key: key.into(),
        demand_milli: d,
        concurrent: c,
    };
    store
        .report_usage("n1".into(), vec![u("member:a", 10_000, 3)], 10_000, 1_000)
        .await
        .unwrap();
    let rows = store
        .report_usage(
            "n2".into(),
            vec![u("member:a", 30_000, 1), u("member:b", 5_000, 0)],
            10_500,
            1_000,
        )
        .await
        .unwrap();
    assert_eq!(rows.len(), 3);
    let total: i64 = rows
        .iter()
        .filter(|r| r.usage.key == "member:a")
        .map(|r| r.usage.demand_milli)
        .sum();
    assert_eq!(total, 40_000);
    // n1's row goes stale after the horizon; an update replaces, not adds.
    let rows = store
        .report_usage("n2".into(), vec![u("member:a", 20_000, 2)], 11_200, 1_000)
        .await
        .unwrap();
    assert_eq!(rows.len(), 2);
    assert!(
        rows.iter()
            .all(|r| r.node == "n2" && r.updated_at >= 10_500)
    );
    assert!(rows.iter().any(|r| r.usage.demand_milli == 20_000));
}

async fn next_change(rx: &mut tokio::sync::broadcast::Receiver<Notification>) {
    tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            if let Notification::Changed { .. } = rx.recv().await.unwrap() {
                return;
            }
        }
    })
    .await
    .expect("change notification within 5 s");
}

async fn writes_are_announced(store: Arc<dyn Store>, _raw: Raw) {
    let mut rx = store.subscribe();
    // Let the PostgreSQL listener connect before writing.
    tokio::time::sleep(Duration::from_millis(300)).await;
    store
        .apply(vec![Change::CreateMember(info("a"))])
        .await
        .unwrap();
    next_change(&mut rx).await;
}

async fn outside_writes_are_announced(store: Arc<dyn Store>, raw: Raw) {
    let mut rx = store.subscribe();
    // Prime the embedded store's version and let the listener connect.
    store.load_snapshot().await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    raw.execute("INSERT INTO members (name, display_name, enabled) VALUES ('z', 'Z', TRUE)")
        .await;
    next_change(&mut rx).await;
    assert!(store.load_snapshot().await.unwrap().member("z").is_some());
}

const FEDERATION: &str = r#"
[[member]]
name = "a"
networks = ["127.0.0.2/32"]
ranges = [{ prefix = "+1555010" }]
limits = { cps = 20 }

[[member]]
name = "b"
sip_target = "sip:127.0.0.1:5090"
domains = ["b.example"]
ranges = [{ prefix = "+4721345", originate = false }]

[[agreement]]
from = "a"
to = "b"

[[list]]
kind = "block"
number = "+15550100666"
"#;

async fn federation_file_round_trip(store: Arc<dyn Store>, _raw: Raw) {
    let desired = FederationFile::parse(FEDERATION)
        .unwrap()
        .to_snapshot()
        .unwrap();
    // Start from something different, to exercise removals and updates.
    store.apply(sample_changes()).await.unwrap();
    let current = store.load_snapshot().await.unwrap();
    let changes = diff(&current, &desired);
    assert!(!changes.is_empty());
    let dry = apply_federation(&*store, &desired, true).await.unwrap();
    assert_eq!(dry.changes, changes);
    assert!(!dry.applied);
    let mut unchanged = store.load_snapshot().await.unwrap();
    unchanged.version = current.version;
    assert_eq!(unchanged, current);
    let done = apply_federation(&*store, &parse_federation(FEDERATION).unwrap(), false)
        .await
        .unwrap();
    assert!(done.applied);
    let mut after = store.load_snapshot().await.unwrap();
    after.version = 0;
    assert_eq!(after, desired);
    assert!(diff(&after, &desired).is_empty());
}

async fn watcher_follows_outside_changes(store: Arc<dyn Store>, raw: Raw) {
    let watcher = RegistryWatcher::start(Arc::clone(&store), Duration::from_millis(500))
        .await
        .unwrap();
    assert!(watcher.current().members().is_empty());
    let mut rx = watcher.subscribe();
    tokio::time::sleep(Duration::from_millis(300)).await;
    raw.execute("INSERT INTO members (name, display_name, enabled) VALUES ('y', 'Y', TRUE)")
        .await;
    tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            rx.changed().await.unwrap();
            if rx.borrow().member_index("y").is_some() {
                return;
            }
        }
    })
    .await
    .expect("registry reloaded within 5 s");
    // The status is updated right after the new registry is published.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let status = watcher.status();
    assert!(status.healthy);
    assert!(status.version >= rx.borrow().version());
    assert!(status.reloads >= 1);
}

async fn limiters_share_through_the_store(store: Arc<dyn Store>, _raw: Raw) {
    store
        .apply(
            parse_federation(FEDERATION)
                .map(|d| diff(&Snapshot::default(), &d))
                .unwrap(),
        )
        .await
        .unwrap();
    let registry = Registry::new(store.load_snapshot().await.unwrap());
    let now = tokio::time::Instant::now().into_std();
    let busy = std::sync::Mutex::new(Limiter::new(now));
    let idle = std::sync::Mutex::new(Limiter::new(now));
    busy.lock().unwrap().set_limits(&registry, now);
    idle.lock().unwrap().set_limits(&registry, now);
    let src = "127.0.0.2".parse().unwrap();
    for i in 0..30u64 {
        let t = now + Duration::from_millis(i * 10);
        let mut l = busy.lock().unwrap();
        if let Ok(slot) = l.try_admit("a", src, t) {
            l.release(slot);
        }
    }
    let horizon = Duration::from_secs(5);
    sync_usage(&*store, "busy", &busy, horizon).await.unwrap();
    let rows = sync_usage(&*store, "idle", &idle, horizon).await.unwrap();
    assert_eq!(rows, 2);
    sync_usage(&*store, "busy", &busy, horizon).await.unwrap();
    let busy_rate = busy.lock().unwrap().local_rate("a").unwrap();
    let idle_rate = idle.lock().unwrap().local_rate("a").unwrap();
    assert!(idle_rate < 2.0, "idle node's share {idle_rate}");
    assert!(busy_rate > 18.0, "busy node's share {busy_rate}");
    assert!(busy_rate + idle_rate <= 20.5);
}

/// PostgreSQL goes away: the watcher keeps the cached registry and reports
/// the outage; when PostgreSQL returns, a change made after the restart is
/// picked up and the watcher is healthy again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_outage_keeps_cached_registry() {
    let pg = Arc::new(
        tokio::task::spawn_blocking(test_postgres)
            .await
            .unwrap()
            .expect("PostgreSQL for tests"),
    );
    if !pg.is_ephemeral() {
        eprintln!("external database: the outage test needs an ephemeral cluster");
        return;
    }
    let url = pg.fresh_database("peering_outage").await.unwrap();
    let store: Arc<dyn Store> = Arc::new(PgStore::connect(&url).await.unwrap());
    store.migrate().await.unwrap();
    store
        .apply(diff(
            &Snapshot::default(),
            &parse_federation(FEDERATION).unwrap(),
        ))
        .await
        .unwrap();
    let watcher = RegistryWatcher::start(Arc::clone(&store), Duration::from_millis(200))
        .await
        .unwrap();
    assert!(watcher.status().healthy);

    let stopper = Arc::clone(&pg);
    tokio::task::spawn_blocking(move || stopper.stop())
        .await
        .unwrap()
        .unwrap();
    let down = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let s = watcher.status();
            if !s.healthy {
                return s;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("outage noticed");
    assert!(!down.healthy);
    // Policy keeps working from the cached copy.
    assert!(watcher.current().member_index("a").is_some());
    assert!(store.load_snapshot().await.unwrap_err().is_unavailable());

    let starter = Arc::clone(&pg);
    tokio::task::spawn_blocking(move || starter.start())
        .await
        .unwrap()
        .unwrap();
    // Writes work again once the pool reconnects.
    let write = async {
        loop {
            let r = store.apply(vec![Change::CreateMember(info("late"))]).await;
            if r.is_ok() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(10), write)
        .await
        .expect("store usable after restart");
    tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let s = watcher.status();
            if s.healthy && watcher.current().member_index("late").is_some() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("watcher recovered and reloaded");
}

/// Two nodes share one PostgreSQL and a member limit of 20 calls per
/// second; each is offered 30 per second for 10 s (real time), exchanging
/// usage every 150 ms. Together they admit 200 calls within 10%.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_share_a_cps_limit_through_postgres() {
    let pg = tokio::task::spawn_blocking(test_postgres)
        .await
        .unwrap()
        .expect("PostgreSQL for tests");
    let url = pg.fresh_database("peering_two_nodes").await.unwrap();
    let store: Arc<dyn Store> = Arc::new(PgStore::connect(&url).await.unwrap());
    store.migrate().await.unwrap();
    store
        .apply(diff(
            &Snapshot::default(),
            &parse_federation(FEDERATION).unwrap(),
        ))
        .await
        .unwrap();
    let registry = Registry::new(store.load_snapshot().await.unwrap());
    let run = Duration::from_secs(10);
    let start = tokio::time::Instant::now();
    let mut tasks = Vec::new();
    for (node, offset) in [("n1", 0u64), ("n2", 16)] {
        let limiter = Arc::new(std::sync::Mutex::new(Limiter::new(start.into_std())));
        limiter
            .lock()
            .unwrap()
            .set_limits(&registry, start.into_std());
        // Sync once before serving, as the node should.
        sync_usage(&*store, node, &limiter, Duration::from_secs(1))
            .await
            .unwrap();
        let sync = {
            let store = Arc::clone(&store);
            let limiter = Arc::clone(&limiter);
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(Duration::from_millis(150));
                while start.elapsed() < run {
                    tick.tick().await;
                    let _ = sync_usage(&*store, node, &limiter, Duration::from_secs(1)).await;
                }
            })
        };
        let load = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(offset)).await;
            let mut tick = tokio::time::interval(Duration::from_millis(33));
            let src = "127.0.0.2".parse().unwrap();
            let mut admitted = 0u32;
            while start.elapsed() < run {
                tick.tick().await;
                let now = tokio::time::Instant::now().into_std();
                let mut l = limiter.lock().unwrap();
                if let Ok(slot) = l.try_admit("a", src, now) {
                    admitted += 1;
                    l.release(slot);
                }
            }
            admitted
        });
        tasks.push((sync, load));
    }
    let mut admitted = Vec::new();
    for (sync, load) in tasks {
        admitted.push(load.await.unwrap());
        sync.await.unwrap();
    }
    let total: u32 = admitted.iter().sum();
    eprintln!("two nodes through PostgreSQL, 20 cps, 60 offered for 10 s: {admitted:?} = {total}");
    assert!((180..=220).contains(&total), "{admitted:?} = {total}");
}
