//! [`EmbeddedStore`]: the store in a local SQLite file (rusqlite, bundled),
//! for a single node with no database server. Blocking calls run on
//! tokio's blocking pool. Changes made through the store are announced at
//! once; changes made by another process (the `sqlite3` shell, `peering
//! federation apply` while the node runs) are noticed by polling the
//! registry version counter every second.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use peering_policy::{Change, Snapshot};
use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::{Connection, TransactionBehavior};
use tokio::sync::broadcast;

use crate::migrate::{BOOKKEEPING, Dialect, MIGRATIONS, MigrationReport, check_version, translate};
use crate::sql::{self, Cell, Param, Rows, Stmt};
use crate::{
    BoxFuture, CallRecord, CallerStats, EnumEntry, Error, NodeUsage, Notification, RateUsage,
    Result, Store,
};

/// How often the registry version is polled for outside changes.
const POLL_INTERVAL: Duration = Duration::from_secs(1);

/// The embedded store. Cheap to clone; clones share one connection (SQLite
/// serialises writers anyway) and the change poller, which stops when the
/// last clone is dropped.
#[derive(Clone)]
pub struct EmbeddedStore {
    inner: Arc<Inner>,
    _poller: Arc<PollerGuard>,
}

struct Inner {
    path: PathBuf,
    conn: Mutex<Connection>,
    events: broadcast::Sender<Notification>,
    /// The last registry version announced (-1: unknown).
    seen: AtomicI64,
}

impl std::fmt::Debug for EmbeddedStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedStore")
            .field("path", &self.inner.path)
            .finish_non_exhaustive()
    }
}

struct PollerGuard(tokio::task::AbortHandle);

impl Drop for PollerGuard {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl rusqlite::ToSql for Param {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        match self {
            Self::Text(v) => v.to_sql(),
            Self::OptText(v) => v.to_sql(),
            Self::I32(v) => v.to_sql(),
            Self::OptI32(v) => v.to_sql(),
            Self::I64(v) => v.to_sql(),
            Self::OptI64(v) => v.to_sql(),
            Self::Bool(v) => v.to_sql(),
        }
    }
}

/// Binds `$n` to `p[n - 1]` by name: SQLite numbers `$n` parameters in
/// order of first appearance, which need not be `n`.
fn bind(stmt: &mut rusqlite::CachedStatement<'_>, p: &[Param]) -> Result<()> {
    for (i, value) in p.iter().enumerate() {
        if let Some(index) = stmt.parameter_index(&format!("${}", i + 1))? {
            stmt.raw_bind_parameter(index, value)?;
        }
    }
    Ok(())
}

fn query(conn: &Connection, sql: &str, p: &[Param]) -> Result<Rows> {
    let mut stmt = conn.prepare_cached(sql)?;
    let n = stmt.column_count();
    bind(&mut stmt, p)?;
    let mut rows = stmt.raw_query();
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        let mut cells = Vec::with_capacity(n);
        for i in 0..n {
            cells.push(match row.get_ref(i)? {
                ValueRef::Null => Cell::Null,
                ValueRef::Integer(v) => Cell::Int(v),
                ValueRef::Text(t) => Cell::Text(String::from_utf8_lossy(t).into_owned()),
                ValueRef::Real(_) => {
                    return Err(Error::UnexpectedType {
                        column: i,
                        found: "real",
                    });
                }
                ValueRef::Blob(_) => {
                    return Err(Error::UnexpectedType {
                        column: i,
                        found: "blob",
                    });
                }
            });
        }
        out.push(cells);
    }
    Ok(out)
}

fn execute(conn: &Connection, s: &Stmt) -> Result<()> {
    let mut stmt = conn.prepare_cached(s.sql)?;
    bind(&mut stmt, &s.params)?;
    let n = stmt.raw_execute()?;
    if n == 0
        && let Some((what, key)) = &s.must_touch
    {
        return Err(Error::NotFound {
            what,
            key: key.clone(),
        });
    }
    Ok(())
}

fn version(conn: &Connection) -> Result<i64> {
    match query(conn, sql::SNAPSHOT_QUERIES[0], &[])?
        .first()
        .and_then(|r| r.first())
    {
        Some(Cell::Int(v)) => Ok(*v),
        _ => Err(Error::SchemaMissing),
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

impl EmbeddedStore {
    /// Opens (creating it and its directory if needed) the database file at
    /// `path`, in WAL mode
    /// with `synchronous = FULL`, so a committed write survives a crash.
    /// Must be called inside a tokio runtime (it starts the change poller).
    pub async fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let p = path.clone();
        let conn = tokio::task::spawn_blocking(move || -> Result<Connection> {
            if let Some(dir) = p.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir).map_err(|source| Error::Io {
                    path: dir.to_path_buf(),
                    source,
                })?;
            }
            let conn = Connection::open(&p)?;
            conn.busy_timeout(Duration::from_secs(5))?;
            conn.pragma_update(None, "journal_mode", "WAL")?;
            conn.pragma_update(None, "synchronous", "FULL")?;
            conn.pragma_update(None, "foreign_keys", true)?;
            Ok(conn)
        })
        .await??;
        let (events, _) = broadcast::channel(64);
        let inner = Arc::new(Inner {
            path,
            conn: Mutex::new(conn),
            events,
            seen: AtomicI64::new(-1),
        });
        let task = tokio::spawn(poll(Arc::downgrade(&inner)));
        Ok(Self {
            inner,
            _poller: Arc::new(PollerGuard(task.abort_handle())),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    async fn run<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T> + Send + 'static,
    {
        let inner = Arc::clone(&self.inner);
        tokio::task::spawn_blocking(move || {
            let mut conn = inner.conn.lock().map_err(|_| Error::Poisoned)?;
            f(&mut conn)
        })
        .await?
    }

    /// Runs statements in one immediate transaction and announces the
    /// registry change.
    async fn write(&self, stmts: Vec<Stmt>) -> Result<()> {
        let v = self
            .run(move |conn| {
                let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
                for s in &stmts {
                    execute(&tx, s)?;
                }
                tx.commit()?;
                version(conn)
            })
            .await?;
        self.inner.announce(v, true);
        Ok(())
    }
}

impl Inner {
    /// Records `version` and announces a change: always after our own
    /// write (`wrote`), otherwise when the version moved since last seen.
    fn announce(&self, version: i64, wrote: bool) {
        let old = self.seen.swap(version, Ordering::AcqRel);
        if wrote || (old != version && old != -1) {
            let _ = self.events.send(Notification::Changed {
                table: "registry_version".to_owned(),
            });
        }
    }
}

async fn poll(inner: std::sync::Weak<Inner>) {
    let mut interval = tokio::time::interval(POLL_INTERVAL);
    loop {
        interval.tick().await;
        let Some(strong) = inner.upgrade() else {
            return;
        };
        let result = tokio::task::spawn_blocking(move || {
            let v = {
                let conn = strong.conn.lock().map_err(|_| Error::Poisoned)?;
                version(&conn)
            };
            if let Ok(v) = v {
                strong.announce(v, false);
            }
            Ok::<_, Error>(())
        })
        .await;
        if let Ok(Err(error)) = result {
            tracing::warn!(%error, "embedded store poll failed");
        }
    }
}

impl Store for EmbeddedStore {
    fn migrate(&self) -> BoxFuture<'_, Result<MigrationReport>> {
        Box::pin(self.run(|conn| {
            conn.execute_batch(BOOKKEEPING)?;
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let done: Vec<i64> = query(&tx, "SELECT version FROM schema_migrations", &[])?
                .iter()
                .filter_map(|r| match r.first() {
                    Some(Cell::Int(v)) => Some(*v),
                    _ => None,
                })
                .collect();
            let mut report = MigrationReport::default();
            for m in MIGRATIONS.iter().filter(|m| !done.contains(&m.version)) {
                tx.execute_batch(&translate(m.sql, Dialect::Sqlite))?;
                tx.execute(
                    "INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)",
                    rusqlite::params![m.version, m.name, now_ms()],
                )?;
                report.applied.push(m.version);
            }
            report.version = tx.query_row(
                "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
                [],
                |r| r.get(0),
            )?;
            tx.commit()?;
            Ok(report)
        }))
    }

    fn check_schema(&self) -> BoxFuture<'_, Result<i64>> {
        Box::pin(self.run(|conn| {
            let exists = query(
                conn,
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'",
                &[],
            )?;
            if exists.is_empty() {
                return Err(Error::SchemaMissing);
            }
            let v = match query(conn, "SELECT MAX(version) FROM schema_migrations", &[])?
                .first()
                .and_then(|r| r.first())
            {
                Some(Cell::Int(v)) => Some(*v),
                _ => None,
            };
            check_version(v)
        }))
    }

    fn registry_version(&self) -> BoxFuture<'_, Result<i64>> {
        Box::pin(self.run(|conn| version(conn)))
    }

    fn load_snapshot(&self) -> BoxFuture<'_, Result<Snapshot>> {
        Box::pin(async move {
            let (snapshot, v) = self
                .run(|conn| {
                    let tx = conn.transaction()?;
                    let mut results = Vec::with_capacity(sql::SNAPSHOT_QUERIES.len());
                    for q in sql::SNAPSHOT_QUERIES {
                        results.push(query(&tx, q, &[])?);
                    }
                    tx.commit()?;
                    let snapshot = sql::load_snapshot(&results)?;
                    let v = snapshot.version;
                    Ok((snapshot, v))
                })
                .await?;
            self.inner.seen.fetch_max(v, Ordering::AcqRel);
            Ok(snapshot)
        })
    }

    fn apply(&self, changes: Vec<Change>) -> BoxFuture<'_, Result<()>> {
        Box::pin(async move {
            for c in &changes {
                c.validate()?;
            }
            self.write(changes.iter().flat_map(sql::change_statements).collect())
                .await
        })
    }

    fn enum_entries(&self) -> BoxFuture<'_, Result<Vec<EnumEntry>>> {
        Box::pin(self.run(|conn| sql::enum_entries(&query(conn, sql::ENUM_SELECT, &[])?)))
    }

    fn put_enum_entry(&self, entry: EnumEntry) -> BoxFuture<'_, Result<i64>> {
        Box::pin(async move {
            let p = sql::enum_params(&entry);
            if let Some(id) = entry.id {
                self.write(vec![Stmt {
                    sql: sql::ENUM_UPDATE,
                    params: p,
                    must_touch: Some(("ENUM entry", id.to_string())),
                }])
                .await?;
                return Ok(id);
            }
            let (id, v) = self
                .run(move |conn| {
                    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
                    let rows = query(&tx, sql::ENUM_INSERT, &p)?;
                    tx.commit()?;
                    match rows.first().and_then(|r| r.first()) {
                        Some(Cell::Int(id)) => Ok((*id, version(conn)?)),
                        _ => Err(Error::UnexpectedType {
                            column: 0,
                            found: "no id",
                        }),
                    }
                })
                .await?;
            self.inner.announce(v, true);
            Ok(id)
        })
    }

    fn remove_enum_entry(&self, id: i64) -> BoxFuture<'_, Result<bool>> {
        Box::pin(async move {
            let (n, v) = self
                .run(move |conn| {
                    let n = conn.execute(sql::ENUM_DELETE, [id])?;
                    Ok((n, version(conn)?))
                })
                .await?;
            self.inner.announce(v, true);
            Ok(n > 0)
        })
    }

    fn insert_call_records(&self, records: Vec<CallRecord>) -> BoxFuture<'_, Result<Vec<i64>>> {
        Box::pin(self.run(move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let mut ids = Vec::with_capacity(records.len());
            for r in &records {
                let rows = query(&tx, sql::CDR_INSERT, &sql::cdr_params(r))?;
                match rows.first().and_then(|r| r.first()) {
                    Some(Cell::Int(id)) => ids.push(*id),
                    _ => {
                        return Err(Error::UnexpectedType {
                            column: 0,
                            found: "no id",
                        });
                    }
                }
            }
            tx.commit()?;
            Ok(ids)
        }))
    }

    fn call_records(
        &self,
        since_ms: i64,
        limit: u32,
    ) -> BoxFuture<'_, Result<Vec<(i64, CallRecord)>>> {
        Box::pin(self.run(move |conn| {
            let p = [Param::I64(since_ms), Param::I64(i64::from(limit))];
            sql::call_records(&query(conn, sql::CDR_SELECT, &p)?)
        }))
    }

    fn purge_call_records(&self, before_ms: i64) -> BoxFuture<'_, Result<u64>> {
        Box::pin(self.run(move |conn| {
            let n = conn.execute(sql::CDR_PURGE, [before_ms])?;
            Ok(u64::try_from(n).unwrap_or(u64::MAX))
        }))
    }

    fn caller_stats(
        &self,
        caller: String,
        since_ms: i64,
        short_ms: i64,
    ) -> BoxFuture<'_, Result<CallerStats>> {
        Box::pin(self.run(move |conn| {
            let p = [
                Param::Text(caller),
                Param::I64(since_ms),
                Param::I64(short_ms),
            ];
            sql::caller_stats(&query(conn, sql::CALLER_STATS, &p)?)
        }))
    }

    fn report_usage(
        &self,
        node: String,
        usage: Vec<RateUsage>,
        now_ms: i64,
        horizon_ms: i64,
    ) -> BoxFuture<'_, Result<Vec<NodeUsage>>> {
        Box::pin(self.run(move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            for u in &usage {
                execute(
                    &tx,
                    &Stmt {
                        sql: sql::USAGE_UPSERT,
                        params: sql::usage_params(&node, u, now_ms),
                        must_touch: None,
                    },
                )?;
            }
            tx.execute(sql::USAGE_PURGE, [now_ms - 60_000])?;
            let rows = query(&tx, sql::USAGE_SELECT, &[Param::I64(now_ms - horizon_ms)])?;
            tx.commit()?;
            sql::usage_rows(&rows)
        }))
    }

    fn subscribe(&self) -> broadcast::Receiver<Notification> {
        self.inner.events.subscribe()
    }
}
