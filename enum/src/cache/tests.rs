use std::sync::atomic::{AtomicUsize, Ordering};

use super::*;

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

#[test]
fn positive_expires_with_ttl() {
    let t0 = Instant::now();
    let mut c: DnsCache<&str, u32> = DnsCache::new(4);
    c.insert("a", Cached::Positive(1), secs(30), t0);
    assert_eq!(c.get(&"a", t0 + secs(29)), Some(Cached::Positive(1)));
    assert_eq!(c.get(&"a", t0 + secs(30)), None);
    assert!(c.is_empty());
}

#[test]
fn zero_ttl_not_stored() {
    let t0 = Instant::now();
    let mut c: DnsCache<&str, u32> = DnsCache::new(4);
    c.insert("a", Cached::Positive(1), Duration::ZERO, t0);
    assert_eq!(c.get(&"a", t0), None);
}

#[test]
fn negative_ttl_is_soa_min() {
    // RFC 2308 §5: min(SOA TTL, SOA MINIMUM).
    assert_eq!(negative_ttl(3600, 300, secs(10_800)), secs(300));
    assert_eq!(negative_ttl(60, 300, secs(10_800)), secs(60));
    assert_eq!(negative_ttl(86_400, 86_400, secs(10_800)), secs(10_800));
    let t0 = Instant::now();
    let mut c: DnsCache<&str, u32> = DnsCache::new(4);
    c.insert(
        "gone",
        Cached::Negative(Negative::NxDomain),
        negative_ttl(3600, 300, secs(10_800)),
        t0,
    );
    assert_eq!(
        c.get(&"gone", t0 + secs(299)),
        Some(Cached::Negative(Negative::NxDomain))
    );
    assert_eq!(c.get(&"gone", t0 + secs(300)), None);
}

#[test]
fn bounded_evicts_soonest_expiry() {
    let t0 = Instant::now();
    let mut c: DnsCache<u32, u32> = DnsCache::new(3);
    c.insert(1, Cached::Positive(1), secs(100), t0);
    c.insert(2, Cached::Positive(2), secs(10), t0);
    c.insert(3, Cached::Positive(3), secs(50), t0);
    c.insert(4, Cached::Positive(4), secs(70), t0);
    assert_eq!(c.len(), 3);
    assert_eq!(c.get(&2, t0), None);
    assert!(c.get(&1, t0).is_some() && c.get(&3, t0).is_some() && c.get(&4, t0).is_some());
    // Re-inserting a key does not grow the cache.
    c.insert(4, Cached::Positive(40), secs(70), t0);
    assert_eq!(c.len(), 3);
    assert_eq!(c.get(&4, t0), Some(Cached::Positive(40)));
}

#[test]
fn purge_drops_expired() {
    let t0 = Instant::now();
    let mut c: DnsCache<u32, u32> = DnsCache::new(10);
    for i in 0..5 {
        c.insert(i, Cached::Positive(i), secs(u64::from(i) + 1), t0);
    }
    c.purge(t0 + secs(3));
    assert_eq!(c.len(), 2);
}

#[tokio::test]
async fn single_flight_runs_once() {
    let cache: Arc<SharedCache<String, u32>> = Arc::new(SharedCache::new(16));
    let calls = Arc::new(AtomicUsize::new(0));
    let gate = Arc::new(tokio::sync::Notify::new());
    let now = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..50 {
        let cache = cache.clone();
        let calls = calls.clone();
        let gate = gate.clone();
        tasks.push(tokio::spawn(async move {
            cache
                .get_or_fetch("n".to_owned(), now, move || async move {
                    calls.fetch_add(1, Ordering::SeqCst);
                    gate.notified().await;
                    Ok((Cached::Positive(7), secs(60)))
                })
                .await
        }));
    }
    // Let every task reach the gate, then open it.
    while cache.in_flight() == 0 {
        tokio::task::yield_now().await;
    }
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    gate.notify_waiters();
    gate.notify_one();
    for t in tasks {
        assert_eq!(t.await.unwrap().unwrap(), Cached::Positive(7));
    }
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert_eq!(cache.in_flight(), 0);
    // Now a hit, without fetching.
    let hit = cache
        .get_or_fetch("n".to_owned(), now, || async {
            Ok((Cached::Positive(8), secs(1)))
        })
        .await
        .unwrap();
    assert_eq!(hit, Cached::Positive(7));
}

#[tokio::test]
async fn errors_are_shared_not_cached() {
    let cache: SharedCache<String, u32> = SharedCache::new(16);
    let now = Instant::now();
    let err = cache
        .get_or_fetch("n".to_owned(), now, || async {
            Err(crate::Error::DnsFailure {
                name: "n".into(),
                rcode: 2,
            })
        })
        .await
        .unwrap_err();
    assert_eq!(err.status().0, 503);
    let ok = cache
        .get_or_fetch("n".to_owned(), now, || async {
            Ok((Cached::Positive(1), secs(5)))
        })
        .await
        .unwrap();
    assert_eq!(ok, Cached::Positive(1));
}
