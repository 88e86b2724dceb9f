//! Glue between the store and the policy crate's stateful parts: the
//! federation-wide usage exchange for [`Limiter`] (docs/rate-limits.md) and
//! `peering federation apply`.

use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use peering_policy::federation::{FederationFile, diff};
use peering_policy::ratelimit::{Limiter, LocalUsage, PeerUsage};
use peering_policy::{Change, Snapshot};

use crate::{Error, NodeUsage, RateUsage, Result, Store};

fn unix_ms(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Converts the limiter's report to the store's rows.
pub fn to_rate_usage(usage: Vec<LocalUsage>) -> Vec<RateUsage> {
    usage
        .into_iter()
        .map(|u| RateUsage {
            key: u.key,
            demand_milli: u.demand_milli,
            concurrent: u.concurrent,
        })
        .collect()
}

/// Converts the store's rows to the limiter's input.
pub fn to_peer_usage(rows: Vec<NodeUsage>) -> Vec<PeerUsage> {
    rows.into_iter()
        .map(|r| PeerUsage {
            node: r.node,
            usage: LocalUsage {
                key: r.usage.key,
                demand_milli: r.usage.demand_milli,
                concurrent: r.usage.concurrent,
            },
        })
        .collect()
}

/// One usage exchange: reports `limiter`'s usage as `node`, reads every
/// node's rows from the last `horizon`, and re-divides the limits. Call it
/// every 100-200 ms. On error the limiter keeps its last shares.
pub async fn sync_usage(
    store: &dyn Store,
    node: &str,
    limiter: &Mutex<Limiter>,
    horizon: Duration,
) -> Result<usize> {
    let now = tokio::time::Instant::now().into_std();
    let usage = {
        let l = limiter.lock().map_err(|_| Error::Poisoned)?;
        l.usage(now)
    };
    let now_ms = unix_ms(SystemTime::now());
    let horizon_ms = i64::try_from(horizon.as_millis()).unwrap_or(i64::MAX);
    let rows = store
        .report_usage(node.to_owned(), to_rate_usage(usage), now_ms, horizon_ms)
        .await?;
    let n = rows.len();
    let rows = to_peer_usage(rows);
    let now = tokio::time::Instant::now().into_std();
    limiter
        .lock()
        .map_err(|_| Error::Poisoned)?
        .apply_global(node, &rows, now);
    Ok(n)
}

/// The result of [`apply_federation`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FederationApply {
    /// The changes, in order (print them with
    /// `peering_policy::federation::render`).
    pub changes: Vec<Change>,
    /// Whether they were written.
    pub applied: bool,
}

/// `peering federation apply`: reconciles the store with a desired
/// snapshot (from [`FederationFile::to_snapshot`]) in one transaction, or
/// only computes the diff when `dry_run`.
pub async fn apply_federation(
    store: &dyn Store,
    desired: &Snapshot,
    dry_run: bool,
) -> Result<FederationApply> {
    let current = store.load_snapshot().await?;
    let changes = diff(&current, desired);
    let applied = !dry_run && !changes.is_empty();
    if applied {
        store.apply(changes.clone()).await?;
    }
    Ok(FederationApply { changes, applied })
}

/// Parses and validates a federation file's text into the desired
/// snapshot.
pub fn parse_federation(text: &str) -> peering_policy::Result<Snapshot> {
    FederationFile::parse(text)?.to_snapshot()
}
