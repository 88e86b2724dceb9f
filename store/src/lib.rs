//! The federation's storage: one [`Store`] interface over PostgreSQL
//! ([`PgStore`], for federations of several nodes) and an embedded SQLite
//! default ([`EmbeddedStore`], for one node with no server to install), both
//! with the schema from `migrations/`.
//!
//! The store holds the registry (members, domains, certificate identities,
//! networks, number ranges, agreements, limits, caller lists, address bans),
//! the federation's ENUM zone, call records and the shared rate-limit usage
//! table. It does not decide anything: `peering-policy` evaluates calls
//! against a [`Snapshot`] loaded from here, and the node composes the two.
//!
//! ```text
//!   node ── load_snapshot() ──> Snapshot ──> policy::Registry::new ──> evaluate()
//!    ^                                                   ^
//!    └── subscribe(): Notification::Changed ── reload ──┘
//! ```
//!
//! `Store` is object-safe (methods return boxed futures), so the node can
//! hold an `Arc<dyn Store>` chosen at run time by [`open`].
//!
//! Around the trait:
//!
//! - [`RegistryWatcher`] keeps an `Arc<Registry>` current (reload on
//!   notification, version poll as a fallback, last good copy and
//!   [`SyncStatus`] while the database is unreachable);
//! - [`sync_usage`] is one federation-wide rate-limit exchange for a
//!   `peering_policy::ratelimit::Limiter` (docs/rate-limits.md);
//! - [`apply_federation`] reconciles the store with a federation file
//!   (`peering federation apply [--dry-run]`);
//! - [`testing::test_postgres`] gives tests a PostgreSQL: an external URL or
//!   an ephemeral cluster.
//!
//! Change notification: PostgreSQL triggers send `NOTIFY peering_registry,
//! '<table>'` on every registry write (also writes made with `psql`); the
//! embedded store announces its own writes at once and notices writes by
//! other processes within a second by polling the version counter.
//!
//! ```no_run
//! # async fn demo() -> Result<(), peering_store::Error> {
//! let store = peering_store::open("sqlite:/var/lib/peering/registry.db").await?;
//! store.migrate().await?;
//! let snapshot = store.load_snapshot().await?;
//! let mut changes = store.subscribe();
//! # let _ = (snapshot, changes.recv().await);
//! # Ok(()) }
//! ```
#![warn(missing_docs)]
#![forbid(unsafe_code)]

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use peering_policy::{Change, Snapshot};
use tokio::sync::broadcast;

mod embedded;
mod error;
mod migrate;
mod postgres;
mod sql;
mod sync;
pub mod testing;
mod watch;

pub use embedded::EmbeddedStore;
pub use error::{Error, Result};
pub use migrate::{
    BOOKKEEPING, Dialect, MIGRATIONS, Migration, MigrationReport, latest_version, translate,
};
pub use postgres::PgStore;
pub use sync::{
    FederationApply, apply_federation, parse_federation, sync_usage, to_peer_usage, to_rate_usage,
};
pub use watch::{RegistryWatcher, SyncStatus};

/// A boxed, sendable future: what [`Store`] methods return.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The channel on which registry changes are announced.
pub const NOTIFY_CHANNEL: &str = "peering_registry";

/// A registry change notification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notification {
    /// A registry table changed (the payload names it).
    Changed {
        /// The table that changed.
        table: String,
    },
    /// The change listener (re)connected: changes may have been missed, so
    /// reload.
    Connected,
    /// The change listener lost its connection; the node keeps its cached
    /// registry until [`Notification::Connected`].
    Disconnected,
}

/// A NAPTR record of the federation's ENUM zone, for one number or range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnumEntry {
    /// Row id; `None` for a new entry.
    pub id: Option<i64>,
    /// E.164 digits of the number or range prefix, without `+`.
    pub prefix: String,
    /// `prefix` is a range (every number under it) rather than one number.
    pub is_range: bool,
    /// The owning member.
    pub member: String,
    /// NAPTR order.
    pub order: u16,
    /// NAPTR preference.
    pub preference: u16,
    /// NAPTR flags (`u`, or empty for non-terminal).
    pub flags: String,
    /// NAPTR services (`E2U+sip`).
    pub services: String,
    /// NAPTR regexp (`!^.*$!sip:...!`).
    pub regexp: String,
    /// NAPTR replacement (`.` when the regexp is used).
    pub replacement: String,
    /// TTL in seconds.
    pub ttl: u32,
}

/// One call record (CDR). Times are milliseconds since the Unix epoch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallRecord {
    /// The node that handled the call.
    pub node: String,
    /// The SIP Call-ID.
    pub call_id: String,
    /// Source member.
    pub from_member: Option<String>,
    /// Terminating member.
    pub to_member: Option<String>,
    /// Caller, E.164 digits.
    pub caller: String,
    /// Callee, E.164 digits.
    pub callee: String,
    /// Source address.
    pub source_addr: String,
    /// When the INVITE arrived.
    pub started_at: i64,
    /// When the call was answered.
    pub answered_at: Option<i64>,
    /// When the call ended.
    pub ended_at: Option<i64>,
    /// Final SIP status.
    pub status: u16,
    /// Reason (the policy label or the response's reason).
    pub reason: String,
    /// SHAKEN attestation seen.
    pub attestation: Option<String>,
    /// SPIT score.
    pub spit_score: Option<u32>,
    /// SPIT decision.
    pub spit_decision: Option<String>,
}

/// Per-caller counts from call records, the SPIT scorer's
/// federation-wide input.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CallerStats {
    /// Calls started in the window.
    pub calls: u64,
    /// Of those, answered.
    pub answered: u64,
    /// Of those, answered and shorter than the threshold.
    pub short_calls: u64,
}

/// One node's usage of one federation-wide limit (docs/rate-limits.md).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateUsage {
    /// The limit key, e.g. `member:a`.
    pub key: String,
    /// Smoothed demand (attempts per second) times 1000.
    pub demand_milli: i64,
    /// Calls in progress on the node.
    pub concurrent: i64,
}

/// A row of the shared usage table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeUsage {
    /// The reporting node.
    pub node: String,
    /// Its usage.
    pub usage: RateUsage,
    /// When it reported (ms since the Unix epoch).
    pub updated_at: i64,
}

/// The storage interface. Every write is one transaction: it either lands
/// completely (and is durable when the future resolves) or not at all.
///
/// Object-safe: methods return [`BoxFuture`]s, so `Arc<dyn Store>` works.
pub trait Store: Send + Sync {
    /// Applies pending migrations; safe to run concurrently from several
    /// nodes (PostgreSQL takes an advisory lock).
    fn migrate(&self) -> BoxFuture<'_, Result<MigrationReport>>;

    /// Checks that the database schema matches this binary; returns the
    /// version. Call at start-up.
    fn check_schema(&self) -> BoxFuture<'_, Result<i64>>;

    /// The registry version counter (bumped by every registry write,
    /// including writes made directly in the database).
    fn registry_version(&self) -> BoxFuture<'_, Result<i64>>;

    /// Loads the whole registry in one consistent read.
    fn load_snapshot(&self) -> BoxFuture<'_, Result<Snapshot>>;

    /// Applies registry changes, in order, in one transaction.
    fn apply(&self, changes: Vec<Change>) -> BoxFuture<'_, Result<()>>;

    /// All ENUM zone entries, by prefix, order, preference.
    fn enum_entries(&self) -> BoxFuture<'_, Result<Vec<EnumEntry>>>;

    /// Inserts (`id: None`) or replaces (`id: Some`) an ENUM entry; returns
    /// its id.
    fn put_enum_entry(&self, entry: EnumEntry) -> BoxFuture<'_, Result<i64>>;

    /// Removes an ENUM entry; returns whether it existed.
    fn remove_enum_entry(&self, id: i64) -> BoxFuture<'_, Result<bool>>;

    /// Inserts call records in one transaction; returns their ids.
    fn insert_call_records(&self, records: Vec<CallRecord>) -> BoxFuture<'_, Result<Vec<i64>>>;

    /// Call records started at or after `since_ms`, oldest first, at most
    /// `limit`, with their ids (for export and settlement).
    fn call_records(
        &self,
        since_ms: i64,
        limit: u32,
    ) -> BoxFuture<'_, Result<Vec<(i64, CallRecord)>>>;

    /// Deletes call records started before `before_ms` (retention); returns
    /// how many.
    fn purge_call_records(&self, before_ms: i64) -> BoxFuture<'_, Result<u64>>;

    /// Counts `caller`'s calls since `since_ms`, and those answered and
    /// shorter than `short_ms`.
    fn caller_stats(
        &self,
        caller: String,
        since_ms: i64,
        short_ms: i64,
    ) -> BoxFuture<'_, Result<CallerStats>>;

    /// Reports this node's usage of federation-wide limits at `now_ms` and
    /// returns every node's rows reported since `now_ms - horizon_ms` (this
    /// node's included). Rows older than a minute are purged.
    fn report_usage(
        &self,
        node: String,
        usage: Vec<RateUsage>,
        now_ms: i64,
        horizon_ms: i64,
    ) -> BoxFuture<'_, Result<Vec<NodeUsage>>>;

    /// Subscribes to registry change notifications.
    fn subscribe(&self) -> broadcast::Receiver<Notification>;
}

/// Opens a store from a URL: `postgres://...` or `postgresql://...` for
/// [`PgStore`], `sqlite:PATH` (or a plain path) for [`EmbeddedStore`].
pub async fn open(url: &str) -> Result<Arc<dyn Store>> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(Arc::new(PgStore::connect(url).await?))
    } else {
        let path = url.strip_prefix("sqlite:").unwrap_or(url);
        Ok(Arc::new(EmbeddedStore::open(path).await?))
    }
}

#[cfg(test)]
mod tests;
