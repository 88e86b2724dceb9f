//! [`PgStore`]: the store on PostgreSQL, through a deadpool-postgres pool,
//! with change notification by LISTEN/NOTIFY (the triggers in
//! `0001_init.sql` send `NOTIFY peering_registry, '<table>'`).

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use futures::StreamExt;
use peering_policy::{Change, Snapshot};
use tokio::sync::{broadcast, mpsc};
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::{AsyncMessage, IsolationLevel, NoTls, Row};

use crate::migrate::{BOOKKEEPING, Dialect, MIGRATIONS, MigrationReport, check_version, translate};
use crate::sql::{self, Cell, Param, Rows, Stmt};
use crate::{
    BoxFuture, CallRecord, CallerStats, EnumEntry, Error, NOTIFY_CHANNEL, NodeUsage, Notification,
    RateUsage, Result, Store,
};

/// Key of the advisory lock held while migrating.
const MIGRATION_LOCK: i64 = 0x0070_6565_7269_6e67;

/// How long the listener waits before reconnecting.
const RECONNECT_DELAY: Duration = Duration::from_secs(1);

/// The PostgreSQL store. Cheap to clone; clones share the pool and the
/// change listener, which stops when the last clone is dropped.
#[derive(Clone)]
pub struct PgStore {
    pool: Pool,
    events: broadcast::Sender<Notification>,
    _listener: Arc<ListenerGuard>,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore")
            .field("pool", &self.pool.status())
            .finish_non_exhaustive()
    }
}

struct ListenerGuard(tokio::task::AbortHandle);

impl Drop for ListenerGuard {
    fn drop(&mut self) {
        self.0.abort();
    }
}

fn params(p: &[Param]) -> Vec<&(dyn ToSql + Sync)> {
    p.iter()
        .map(|p| -> &(dyn ToSql + Sync) {
            match p {
                Param::Text(v) => v,
                Param::OptText(v) => v,
                Param::I32(v) => v,
                Param::OptI32(v) => v,
                Param::I64(v) => v,
                Param::OptI64(v) => v,
                Param::Bool(v) => v,
            }
        })
        .collect()
}

fn cells(row: &Row) -> Result<Vec<Cell>> {
    let mut out = Vec::with_capacity(row.len());
    for (i, col) in row.columns().iter().enumerate() {
        let ty = col.type_();
        let cell = if *ty == Type::BOOL {
            row.try_get::<_, Option<bool>>(i)?.map(Cell::Bool)
        } else if *ty == Type::INT2 {
            row.try_get::<_, Option<i16>>(i)?
                .map(|v| Cell::Int(v.into()))
        } else if *ty == Type::INT4 {
            row.try_get::<_, Option<i32>>(i)?
                .map(|v| Cell::Int(v.into()))
        } else if *ty == Type::INT8 {
            row.try_get::<_, Option<i64>>(i)?.map(Cell::Int)
        } else {
            row.try_get::<_, Option<String>>(i)?.map(Cell::Text)
        };
        out.push(cell.unwrap_or(Cell::Null));
    }
    Ok(out)
}

fn to_rows(rows: &[Row]) -> Result<Rows> {
    rows.iter().map(cells).collect()
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

impl PgStore {
    /// Connects a pool to `url` (a libpq-style URL or key=value string) and
    /// starts the change listener. Connections are made lazily: this
    /// succeeds while the database is down, and calls fail with
    /// [`Error::is_unavailable`] until it is back.
    pub async fn connect(url: &str) -> Result<Self> {
        let mut config: tokio_postgres::Config = url.parse()?;
        config.connect_timeout(Duration::from_secs(5));
        config.keepalives_idle(Duration::from_secs(30));
        let manager = Manager::from_config(
            config.clone(),
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(16)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(Duration::from_secs(5)))
            .create_timeout(Some(Duration::from_secs(5)))
            .recycle_timeout(Some(Duration::from_secs(5)))
            .build()?;
        let (events, _) = broadcast::channel(64);
        let task = tokio::spawn(listen(config, events.clone()));
        Ok(Self {
            pool,
            events,
            _listener: Arc::new(ListenerGuard(task.abort_handle())),
        })
    }

    async fn write(&self, stmts: Vec<Stmt>) -> Result<()> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        for s in &stmts {
            let prepared = tx.prepare_cached(s.sql).await?;
            let n = tx.execute(&prepared, &params(&s.params)).await?;
            if n == 0
                && let Some((what, key)) = &s.must_touch
            {
                return Err(Error::NotFound {
                    what,
                    key: key.clone(),
                });
            }
        }
        tx.commit().await?;
        Ok(())
    }

    async fn query(&self, sql: &str, p: Vec<Param>) -> Result<Rows> {
        let client = self.pool.get().await?;
        let prepared = client.prepare_cached(sql).await?;
        to_rows(&client.query(&prepared, &params(&p)).await?)
    }
}

/// Holds a dedicated connection with `LISTEN peering_registry` and forwards
/// notifications; reconnects forever.
async fn listen(config: tokio_postgres::Config, events: broadcast::Sender<Notification>) {
    let mut connected = false;
    loop {
        match config.connect(NoTls).await {
            Ok((client, mut connection)) => {
                let (tx, mut rx) = mpsc::unbounded_channel();
                let driver = tokio::spawn(async move {
                    let mut messages =
                        futures::stream::poll_fn(move |cx| connection.poll_message(cx));
                    while let Some(message) = messages.next().await {
                        match message {
                            Ok(AsyncMessage::Notification(n)) => {
                                if tx.send(n.payload().to_owned()).is_err() {
                                    break;
                                }
                            }
                            Ok(_) => {}
                            Err(error) => {
                                tracing::warn!(%error, "registry listener connection failed");
                                break;
                            }
                        }
                    }
                });
                match client
                    .batch_execute(&format!("LISTEN {NOTIFY_CHANNEL}"))
                    .await
                {
                    Ok(()) => {
                        tracing::info!("registry listener connected");
                        connected = true;
                        let _ = events.send(Notification::Connected);
                        while let Some(table) = rx.recv().await {
                            let _ = events.send(Notification::Changed { table });
                        }
                    }
                    Err(error) => tracing::warn!(%error, "LISTEN failed"),
                }
                driver.abort();
            }
            Err(error) => {
                if connected {
                    tracing::warn!(%error, "registry listener cannot reconnect");
                }
            }
        }
        if connected {
            connected = false;
            tracing::warn!("registry listener disconnected; serving the cached registry");
            let _ = events.send(Notification::Disconnected);
        }
        tokio::time::sleep(RECONNECT_DELAY).await;
    }
}

impl Store for PgStore {
    fn migrate(&self) -> BoxFuture<'_, Result<MigrationReport>> {
        Box::pin(async move {
            let mut client = self.pool.get().await?;
            let tx = client.transaction().await?;
            tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
                .await?;
            tx.batch_execute(BOOKKEEPING).await?;
            let done: Vec<i64> = tx
                .query(
                    "SELECT version FROM schema_migrations ORDER BY version",
                    &[],
                )
                .await?
                .iter()
                .map(|r| r.try_get(0))
                .collect::<Result<_, _>>()?;
            let mut report = MigrationReport::default();
            for m in MIGRATIONS.iter().filter(|m| !done.contains(&m.version)) {
                tx.batch_execute(&translate(m.sql, Dialect::Postgres))
                    .await?;
                tx.execute(
                    "INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)",
                    &[&m.version, &m.name, &now_ms()],
                )
                .await?;
                report.applied.push(m.version);
            }
            let version: Option<i64> = tx
                .query_one("SELECT MAX(version) FROM schema_migrations", &[])
                .await?
                .try_get(0)?;
            tx.commit().await?;
            report.version = version.unwrap_or(0);
            Ok(report)
        })
    }

    fn check_schema(&self) -> BoxFuture<'_, Result<i64>> {
        Box::pin(async move {
            let client = self.pool.get().await?;
            let exists: Option<String> = client
                .query_one("SELECT to_regclass('schema_migrations')::text", &[])
                .await?
                .try_get(0)?;
            if exists.is_none() {
                return Err(Error::SchemaMissing);
            }
            let version: Option<i64> = client
                .query_one("SELECT MAX(version) FROM schema_migrations", &[])
                .await?
                .try_get(0)?;
            check_version(version)
        })
    }

    fn registry_version(&self) -> BoxFuture<'_, Result<i64>> {
        Box::pin(async move {
            let rows = self.query(sql::SNAPSHOT_QUERIES[0], Vec::new()).await?;
            match rows.first().and_then(|r| r.first()) {
                Some(Cell::Int(v)) => Ok(*v),
                _ => Err(Error::SchemaMissing),
            }
        })
    }

    fn load_snapshot(&self) -> BoxFuture<'_, Result<Snapshot>> {
        Box::pin(async move {
            let mut client = self.pool.get().await?;
            let tx = client
                .build_transaction()
                .isolation_level(IsolationLevel::RepeatableRead)
                .read_only(true)
                .start()
                .await?;
            let mut results = Vec::with_capacity(sql::SNAPSHOT_QUERIES.len());
            for q in sql::SNAPSHOT_QUERIES {
                let prepared = tx.prepare_cached(q).await?;
                results.push(to_rows(&tx.query(&prepared, &[]).await?)?);
            }
            tx.commit().await?;
            sql::load_snapshot(&results)
        })
    }

    fn apply(&self, changes: Vec<Change>) -> BoxFuture<'_, Result<()>> {
        Box::pin(async move {
            for c in &changes {
                c.validate()?;
            }
            let stmts = changes.iter().flat_map(sql::change_statements).collect();
            self.write(stmts).await
        })
    }

    fn enum_entries(&self) -> BoxFuture<'_, Result<Vec<EnumEntry>>> {
        Box::pin(async move { sql::enum_entries(&self.query(sql::ENUM_SELECT, Vec::new()).await?) })
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
                Ok(id)
            } else {
                let rows = self.query(sql::ENUM_INSERT, p).await?;
                match rows.first().and_then(|r| r.first()) {
                    Some(Cell::Int(id)) => Ok(*id),
                    _ => Err(Error::UnexpectedType {
                        column: 0,
                        found: "no id",
                    }),
                }
            }
        })
    }

    fn remove_enum_entry(&self, id: i64) -> BoxFuture<'_, Result<bool>> {
        Box::pin(async move {
            let client = self.pool.get().await?;
            Ok(client.execute(sql::ENUM_DELETE, &[&id]).await? > 0)
        })
    }

    fn insert_call_records(&self, records: Vec<CallRecord>) -> BoxFuture<'_, Result<Vec<i64>>> {
        Box::pin(async move {
            let mut client = self.pool.get().await?;
            let tx = client.transaction().await?;
            let prepared = tx.prepare_cached(sql::CDR_INSERT).await?;
            let mut ids = Vec::with_capacity(records.len());
            for r in &records {
                let p = sql::cdr_params(r);
                ids.push(tx.query_one(&prepared, &params(&p)).await?.try_get(0)?);
            }
            tx.commit().await?;
            Ok(ids)
        })
    }

    fn call_records(
        &self,
        since_ms: i64,
        limit: u32,
    ) -> BoxFuture<'_, Result<Vec<(i64, CallRecord)>>> {
        Box::pin(async move {
            let rows = self
                .query(
                    sql::CDR_SELECT,
                    vec![Param::I64(since_ms), Param::I64(i64::from(limit))],
                )
                .await?;
            sql::call_records(&rows)
        })
    }

    fn purge_call_records(&self, before_ms: i64) -> BoxFuture<'_, Result<u64>> {
        Box::pin(async move {
            let client = self.pool.get().await?;
            Ok(client.execute(sql::CDR_PURGE, &[&before_ms]).await?)
        })
    }

    fn caller_stats(
        &self,
        caller: String,
        since_ms: i64,
        short_ms: i64,
    ) -> BoxFuture<'_, Result<CallerStats>> {
        Box::pin(async move {
            let rows = self
                .query(
                    sql::CALLER_STATS,
                    vec![
                        Param::Text(caller),
                        Param::I64(since_ms),
                        Param::I64(short_ms),
                    ],
                )
                .await?;
            sql::caller_stats(&rows)
        })
    }

    fn report_usage(
        &self,
        node: String,
        usage: Vec<RateUsage>,
        now_ms: i64,
        horizon_ms: i64,
    ) -> BoxFuture<'_, Result<Vec<NodeUsage>>> {
        Box::pin(async move {
            let mut client = self.pool.get().await?;
            let tx = client.transaction().await?;
            let upsert = tx.prepare_cached(sql::USAGE_UPSERT).await?;
            for u in &usage {
                let p = sql::usage_params(&node, u, now_ms);
                tx.execute(&upsert, &params(&p)).await?;
            }
            tx.execute(sql::USAGE_PURGE, &[&(now_ms - 60_000)]).await?;
            let select = tx.prepare_cached(sql::USAGE_SELECT).await?;
            let rows = to_rows(&tx.query(&select, &[&(now_ms - horizon_ms)]).await?)?;
            tx.commit().await?;
            sql::usage_rows(&rows)
        })
    }

    fn subscribe(&self) -> broadcast::Receiver<Notification> {
        self.events.subscribe()
    }
}
