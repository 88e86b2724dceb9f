//! Federation policy in the node: the registry from the store (reloaded
//! live, served from the last good copy when the store is down), call
//! admission (`peering_policy::evaluate`), federation-wide rate and
//! concurrency limits, flood and scanner defence before routing, and SPIT
//! scoring.
//!
//! ```text
//! datagram/connection ─► admit_packet (flood ban, pike-style;      drop
//!                        answers to our requests not counted)
//! parsed request      ─► check_request (scanner User-Agent)        403 + ban
//! initial request     ─► PolicyScreen: evaluate ─► limits ─► SPIT  403/404/503/607...
//! BYE, final non-2xx  ─► release the call's concurrency slot
//! every 150 ms        ─► usage exchange with the other nodes (PostgreSQL)
//! ```

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use peering_policy::config::PolicyConfig;
use peering_policy::flood::{FloodGuard, ScannerRules};
use peering_policy::ratelimit::{Limiter, Slot};
use peering_policy::spit::{CallerHistory, SpitGuard, SpitInput};
use peering_policy::{Attestation, CallAttempt, IdentityCheck, Registry, evaluate};
use peering_proto::msg::{HeaderName, Message, Method, Uri};
use peering_proto::proxy::{Flow, Rejection, RouteKind};
use peering_store::{CallRecord, RegistryWatcher, Store};
use tokio::sync::{mpsc, watch};
use tracing::{info, warn};

use crate::metrics::Metrics;
use crate::router::{BoxFuture, CallInfo, IdentityVerdict, RouteRequest, Screen, called_number};
use crate::transport::Traffic;

/// How long a concurrency slot is kept when no BYE is seen (a call that
/// ended without its BYE crossing this node, e.g. after a failover).
const SLOT_MAX_AGE: Duration = Duration::from_secs(4 * 3600);

/// The policy state a node holds.
pub struct PolicyLayer {
    node: String,
    watcher: RegistryWatcher,
    store: Arc<dyn Store>,
    flood: Mutex<FloodGuard>,
    scanners: ScannerRules,
    scanner_ban: bool,
    limiter: Arc<Mutex<Limiter>>,
    spit: Option<Mutex<SpitGuard>>,
    slots: Mutex<HashMap<String, (Slot, Instant)>>,
    /// Call records of admitted calls, until they end.
    calls: Mutex<HashMap<String, CallRecord>>,
    cdr_tx: mpsc::UnboundedSender<CallRecord>,
    /// Tells the call record writer to write what waits and stop.
    cdr_closing: watch::Sender<bool>,
    cdr_writer: Mutex<Option<tokio::task::JoinHandle<()>>>,
    config: PolicyConfig,
    metrics: Arc<Metrics>,
}

impl std::fmt::Debug for PolicyLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PolicyLayer")
            .field("node", &self.node)
            .finish_non_exhaustive()
    }
}

fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl PolicyLayer {
    /// Loads the registry (the first load must succeed) and starts the
    /// background tasks: registry watching and the usage exchange.
    pub async fn start(
        node: &str,
        config: PolicyConfig,
        store: Arc<dyn Store>,
        metrics: Arc<Metrics>,
    ) -> anyhow::Result<Arc<Self>> {
        let watcher = RegistryWatcher::start(store.clone(), Duration::from_secs(2))
            .await
            .map_err(|e| anyhow::anyhow!("loading the federation registry: {e}"))?;
        let start = now();
        let (cdr_tx, cdr_rx) = mpsc::unbounded_channel();
        let (cdr_closing, closing_rx) = watch::channel(false);
        let writer = tokio::spawn(write_call_records(
            store.clone(),
            cdr_rx,
            closing_rx,
            WRITER,
        ));
        let mut limiter = Limiter::new(start);
        limiter.set_limits(&watcher.current(), start);
        let layer = Arc::new(Self {
            node: node.to_owned(),
            store,
            flood: Mutex::new(config.flood_guard(start)),
            scanners: config.scanner_rules(),
            scanner_ban: config.scanners.ban,
            limiter: Arc::new(Mutex::new(limiter)),
            spit: config.spit().map(|c| Mutex::new(SpitGuard::new(c))),
            slots: Mutex::new(HashMap::new()),
            calls: Mutex::new(HashMap::new()),
            cdr_tx,
            cdr_closing,
            cdr_writer: Mutex::new(Some(writer)),
            watcher,
            config,
            metrics,
        });
        // One usage exchange before serving, so that a node joining a busy
        // federation does not admit a whole limit's worth on its own.
        if let Err(error) = peering_store::sync_usage(
            layer.store.as_ref(),
            &layer.node,
            &layer.limiter,
            layer.config.horizon(),
        )
        .await
        {
            warn!(%error, "first rate-limit usage exchange failed");
        }
        tokio::spawn(follow_registry(
            Arc::downgrade(&layer),
            layer.watcher.subscribe(),
        ));
        tokio::spawn(exchange_usage(Arc::downgrade(&layer)));
        Ok(layer)
    }

    /// Writes the call records still waiting (at most [`FLUSH_LIMIT`]) and
    /// stops the writer: the last step of a graceful shutdown, after the
    /// core has stopped. Records of calls still up are not final and are
    /// not written.
    pub async fn close(&self) {
        let _ = self.cdr_closing.send(true);
        let Some(writer) = lock(&self.cdr_writer).take() else {
            return;
        };
        if tokio::time::timeout(FLUSH_LIMIT, writer).await.is_err() {
            warn!(
                limit_secs = FLUSH_LIMIT.as_secs(),
                "call records not all written at shutdown: store unreachable"
            );
        }
    }

    /// The registry in use.
    pub fn registry(&self) -> Arc<Registry> {
        self.watcher.current()
    }

    /// Cheap check before parsing: is this address banned for flooding?
    /// A request (or a new connection) counts against the address's flood
    /// threshold; so does a response, unless it comes from an address this
    /// node sent requests to (an answer).
    pub fn admit_packet(&self, addr: IpAddr, traffic: Traffic) -> bool {
        let verdict = match traffic {
            Traffic::Request => lock(&self.flood).check(addr, now()),
            Traffic::Response => lock(&self.flood).check_response(addr, now()),
        };
        if verdict.is_banned() {
            self.metrics
                .incr_labelled("flood_dropped", addr.to_string());
            false
        } else {
            true
        }
    }

    /// After parsing, before the proxy: scanner signatures in User-Agent.
    /// `Some` is the response to send (and the address is banned when
    /// configured).
    pub fn check_request(&self, msg: &Message, flow: &Flow) -> Option<Rejection> {
        let user_agent = msg.header(&HeaderName::UserAgent)?;
        let signature = self.scanners.matches(user_agent)?;
        info!(remote = %flow.remote, %signature, "scanner refused");
        self.metrics
            .incr_labelled("rejections", "403 Scanner".to_owned());
        if self.scanner_ban {
            lock(&self.flood).ban(flow.remote.ip(), now());
        }
        Some(
            Rejection::new(403, "Forbidden")
                .with_header(HeaderName::Warning, "399 peering \"scanner refused\""),
        )
    }

    /// A call ended or failed: frees its concurrency slot.
    pub fn call_ended(&self, call_id: &str) {
        if let Some((slot, _)) = lock(&self.slots).remove(call_id) {
            lock(&self.limiter).release(slot);
        }
    }

    /// The final response to an INVITE went upstream: a failed call ends
    /// here (slot freed, record written); an answered one waits for BYE.
    pub fn call_final(&self, call_id: &str, status: u16) {
        let mut calls = lock(&self.calls);
        let Some(record) = calls.get_mut(call_id) else {
            return;
        };
        record.status = status;
        if (200..300).contains(&status) {
            record.answered_at = Some(unix_ms());
            record.reason = "answered".to_owned();
            return;
        }
        if let Some(mut record) = calls.remove(call_id) {
            drop(calls);
            record.ended_at = Some(unix_ms());
            record.reason = "failed".to_owned();
            let _ = self.cdr_tx.send(record);
            self.call_ended(call_id);
        }
    }

    /// A BYE crossed the node: the call ends.
    fn call_hung_up(&self, call_id: &str) {
        if let Some(mut record) = lock(&self.calls).remove(call_id) {
            record.ended_at = Some(unix_ms());
            record.reason = "hangup".to_owned();
            let _ = self.cdr_tx.send(record);
        }
        self.call_ended(call_id);
    }

    /// Records a call the policy refused.
    fn refused(&self, mut record: CallRecord, status: u16, reason: &str) {
        record.status = status;
        record.reason = reason.to_owned();
        record.ended_at = Some(record.started_at);
        let _ = self.cdr_tx.send(record);
    }

    fn expire_slots(&self) {
        let cutoff = now().checked_sub(SLOT_MAX_AGE);
        let Some(cutoff) = cutoff else {
            return;
        };
        let expired: Vec<Slot> = {
            let mut slots = lock(&self.slots);
            let old: Vec<String> = slots
                .iter()
                .filter(|(_, (_, at))| *at < cutoff)
                .map(|(k, _)| k.clone())
                .collect();
            old.into_iter()
                .filter_map(|k| slots.remove(&k).map(|(s, _)| s))
                .collect()
        };
        let mut limiter = lock(&self.limiter);
        for slot in expired {
            limiter.release(slot);
        }
        drop(limiter);
        let cutoff_ms = unix_ms() - i64::try_from(SLOT_MAX_AGE.as_millis()).unwrap_or(i64::MAX);
        lock(&self.calls).retain(|_, r| r.started_at > cutoff_ms);
    }
}

fn unix_ms() -> i64 {
    SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// How the call record writer groups and bounds its records.
#[derive(Debug, Clone, Copy)]
struct WriterLimits {
    /// Records written in one transaction, at most.
    batch_max: usize,
    /// How long the first record of a batch waits for others before the
    /// batch is written.
    linger: Duration,
    /// Records waiting to be written, at most: past this (a store down for
    /// a long time) the oldest are dropped and counted in the log.
    max_pending: usize,
}

/// Each transaction is a synchronous commit (an fsync with the embedded
/// store): writing as soon as anything waited made a commit every few calls
/// under load, a tenth of the node's CPU at 3,000 calls per second. A
/// linger of 200 ms bounds commits to five a second below 2,500 calls per
/// second, and to one per 500 records above.
const WRITER: WriterLimits = WriterLimits {
    batch_max: 500,
    linger: Duration::from_millis(200),
    max_pending: 100_000,
};
/// How long a shutdown waits for the last records to be written.
const FLUSH_LIMIT: Duration = Duration::from_secs(5);

/// Writes call records in batches (see [`WriterLimits`]); a batch that
/// fails is kept and retried, so a database outage delays records instead
/// of losing them (up to `max_pending`). When `closing`
/// turns true (or every sender is gone) it writes what is waiting, without
/// lingering, and returns.
async fn write_call_records(
    store: Arc<dyn Store>,
    mut rx: mpsc::UnboundedReceiver<CallRecord>,
    mut closing: watch::Receiver<bool>,
    limits: WriterLimits,
) {
    let WriterLimits {
        batch_max,
        linger,
        max_pending,
    } = limits;
    let mut pending: Vec<CallRecord> = Vec::new();
    let mut backoff = Duration::from_millis(200);
    let mut open = true;
    loop {
        if open && pending.is_empty() {
            tokio::select! {
                n = rx.recv_many(&mut pending, batch_max) => open = n > 0,
                _ = closing.wait_for(|c| *c) => open = false,
            }
        }
        if open && pending.len() < batch_max {
            let linger = tokio::time::sleep(linger);
            tokio::pin!(linger);
            while open && pending.len() < batch_max {
                let room = batch_max - pending.len();
                tokio::select! {
                    n = rx.recv_many(&mut pending, room) => open = n > 0,
                    _ = closing.wait_for(|c| *c) => open = false,
                    () = &mut linger => break,
                }
            }
        }
        // Everything already queued joins `pending`, so that the bound
        // below holds while the store is down (the batch taken from
        // `pending` stays at most `batch_max`).
        while let Ok(r) = rx.try_recv() {
            pending.push(r);
        }
        if !open && pending.is_empty() {
            return;
        }
        if pending.len() > max_pending {
            let drop_n = pending.len() - max_pending;
            pending.drain(..drop_n);
            warn!(
                dropped = drop_n,
                "call records dropped: store unreachable for too long"
            );
        }
        let batch: Vec<CallRecord> = pending.iter().take(batch_max).cloned().collect();
        let n = batch.len();
        match store.insert_call_records(batch).await {
            Ok(_) => {
                pending.drain(..n);
                backoff = Duration::from_millis(200);
            }
            Err(error) => {
                warn!(%error, pending = pending.len(), "call records not written yet; retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    }
}

async fn follow_registry(
    layer: std::sync::Weak<PolicyLayer>,
    mut updates: watch::Receiver<Arc<Registry>>,
) {
    while updates.changed().await.is_ok() {
        let Some(layer) = layer.upgrade() else {
            return;
        };
        let registry = updates.borrow().clone();
        lock(&layer.limiter).set_limits(&registry, now());
        info!("federation registry reloaded");
    }
}

async fn exchange_usage(layer: std::sync::Weak<PolicyLayer>) {
    let interval = match layer.upgrade() {
        Some(l) => l.config.sync_interval(),
        None => return,
    };
    let mut ticker = tokio::time::interval(interval);
    let mut failing = false;
    loop {
        ticker.tick().await;
        let Some(layer) = layer.upgrade() else {
            return;
        };
        match peering_store::sync_usage(
            layer.store.as_ref(),
            &layer.node,
            &layer.limiter,
            layer.config.horizon(),
        )
        .await
        {
            Ok(_) if failing => {
                info!("rate-limit usage exchange recovered");
                failing = false;
            }
            Ok(_) => {}
            Err(error) if !failing => {
                warn!(%error, "rate-limit usage exchange failed; keeping the last shares");
                failing = true;
            }
            Err(_) => {}
        }
        lock(&layer.limiter).retain_recent(now());
        layer.expire_slots();
    }
}

impl crate::transport::PacketFilter for PolicyLayer {
    fn admit(&self, ip: IpAddr, traffic: Traffic) -> bool {
        self.admit_packet(ip, traffic)
    }

    fn expect_responses(&self, to: &[IpAddr]) {
        let now = now();
        let mut flood = lock(&self.flood);
        for ip in to {
            flood.expect_responses(*ip, now);
        }
    }
}

/// E.164 digits of a URI's number (no `+`), if it is one.
fn digits(uri: &Uri) -> Option<String> {
    let number = called_number(uri)?;
    let number = number.split(';').next().unwrap_or_default();
    let d: String = number
        .chars()
        .filter(|c| !matches!(c, '-' | '.' | '(' | ')' | ' '))
        .collect();
    let d = d.strip_prefix('+').unwrap_or(&d).to_owned();
    (!d.is_empty() && d.bytes().all(|b| b.is_ascii_digit())).then_some(d)
}

/// The calling number: P-Asserted-Identity when it survived the identity
/// screen (trusted source), else From.
fn caller(msg: &Message, info: &CallInfo) -> Option<String> {
    let pai_trusted = !info.remove_headers.contains(&HeaderName::PAssertedIdentity);
    if pai_trusted
        && let Some(pai) = msg.header(&HeaderName::PAssertedIdentity)
        && let Ok(na) = peering_proto::msg::NameAddr::parse(pai.split(',').next().unwrap_or(pai))
        && let Some(d) = digits(&na.uri)
    {
        return Some(d);
    }
    digits(&msg.from().uri)
}

/// The identity screen's outcome, as policy needs it.
fn identity_check(info: &CallInfo) -> IdentityCheck {
    match info.identity_verdict {
        IdentityVerdict::Absent => IdentityCheck::Absent,
        IdentityVerdict::Invalid => IdentityCheck::Invalid,
        IdentityVerdict::Valid { attestation } => match attestation {
            Some('A') => IdentityCheck::Valid(Attestation::A),
            Some('B') => IdentityCheck::Valid(Attestation::B),
            Some('C') => IdentityCheck::Valid(Attestation::C),
            // RFC 4474, or a PASSporT without SHAKEN claims: the identity is
            // vouched for but no attestation level is stated; it counts as
            // the weakest level (gateway, C), so that agreements accepting
            // only A or B still refuse it.
            _ => IdentityCheck::Valid(Attestation::C),
        },
    }
}

fn to_rejection(r: &peering_policy::Rejection) -> Rejection {
    let status = r.status();
    let mut out = Rejection::new(status.code, status.reason);
    if let Some(text) = status.warning {
        out = out.with_header(
            HeaderName::Warning,
            format!("399 peering \"{}\"", text.replace('"', "'")),
        );
    }
    if let Some(secs) = status.retry_after {
        out = out.with_header(HeaderName::RetryAfter, secs.to_string());
    }
    out
}

/// The policy screen: admission, limits and SPIT for initial requests;
/// slot release for BYE.
#[derive(Debug, Clone)]
pub struct PolicyScreen(pub Arc<PolicyLayer>);

impl Screen for PolicyScreen {
    /// Admission and limits are table lookups (well under a microsecond);
    /// SPIT history comes from the store and makes the answer pending.
    fn is_cheap(&self, _request: &RouteRequest) -> bool {
        true
    }

    fn screen<'a>(
        &'a self,
        request: &'a RouteRequest,
        info: &'a mut CallInfo,
    ) -> BoxFuture<'a, Result<(), Rejection>> {
        Box::pin(async move {
            let layer = &self.0;
            let msg = &request.request;
            if let RouteKind::InDialog { .. } = request.kind {
                if msg.method() == Some(&Method::Bye) {
                    layer.call_hung_up(msg.call_id());
                }
                return Ok(());
            }
            let Some(uri) = msg.request_uri() else {
                return Err(Rejection::new(400, "Bad Request-URI"));
            };
            let Some(callee) = digits(uri) else {
                return Err(Rejection::new(404, "Not A Telephone Number"));
            };
            let tls_names = request
                .peer_certificates
                .as_ref()
                .and_then(|c| peering_identity::tls::peer_domains(Some(c.as_slice())).ok())
                .map(|set| set.into_iter().collect())
                .unwrap_or_default();
            let identity = identity_check(info);
            let attempt = CallAttempt {
                source: request.flow.remote.ip(),
                tls_names,
                caller: caller(msg, info),
                callee,
                identity,
            };
            let is_invite = msg.method() == Some(&Method::Invite);
            let mut record = CallRecord {
                node: layer.node.clone(),
                call_id: msg.call_id().to_owned(),
                from_member: None,
                to_member: None,
                caller: attempt.caller.clone().unwrap_or_default(),
                callee: attempt.callee.clone(),
                source_addr: attempt.source.to_string(),
                started_at: unix_ms(),
                answered_at: None,
                ended_at: None,
                status: 0,
                reason: String::new(),
                attestation: match attempt.identity {
                    IdentityCheck::Valid(a) => Some(a.as_str().to_owned()),
                    IdentityCheck::Invalid => Some("invalid".to_owned()),
                    IdentityCheck::Absent => None,
                },
                spit_score: None,
                spit_decision: None,
            };
            let registry = layer.registry();
            let refuse = |record: CallRecord, r: &peering_policy::Rejection| {
                layer
                    .metrics
                    .incr_labelled("policy_rejections", r.label().to_owned());
                info!(
                    call_id = msg.call_id(),
                    source = %attempt.source,
                    reason = r.label(),
                    "call refused by policy"
                );
                let rejection = to_rejection(r);
                if is_invite {
                    layer.refused(record, rejection.status, r.label());
                }
                Err(rejection)
            };
            let admission = match evaluate(&attempt, &registry, SystemTime::now()) {
                Ok(a) => a,
                Err(r) => return refuse(record, &r),
            };
            info.member = Some(admission.from.clone());
            record.from_member = Some(admission.from.clone());
            record.to_member = admission.targets.first().map(|t| t.member.clone());
            if is_invite {
                let slot = lock(&layer.limiter).try_admit(&admission.from, attempt.source, now());
                match slot {
                    Ok(slot) => {
                        lock(&layer.slots).insert(msg.call_id().to_owned(), (slot, now()));
                    }
                    Err(r) => return refuse(record, &r),
                }
                if let Some(spit) = &layer.spit
                    && let Some(caller) = attempt.caller.as_deref()
                {
                    let window_ms = 3_600_000;
                    let short_ms = layer.config.spit.short_call_ms;
                    let history = layer
                        .store
                        .caller_stats(caller.to_owned(), unix_ms() - window_ms, short_ms)
                        .await
                        .map(|s| CallerHistory {
                            calls: s.calls,
                            answered: s.answered,
                            short_calls: s.short_calls,
                        })
                        .unwrap_or_default();
                    let assessment = lock(spit).assess(
                        &SpitInput {
                            caller,
                            identity: attempt.identity,
                            allowed: admission.caller_allowed,
                            history,
                        },
                        now(),
                    );
                    info.spit = Some(format!(
                        "{} score={}",
                        assessment.decision.as_str(),
                        assessment.score
                    ));
                    record.spit_score = Some(assessment.score);
                    record.spit_decision = Some(assessment.decision.as_str().to_owned());
                    if let Some(r) = assessment.rejection() {
                        layer.call_ended(msg.call_id());
                        return refuse(record, &r);
                    }
                }
                lock(&layer.calls).insert(msg.call_id().to_owned(), record);
            }
            // The agreement's header rules towards the (first) terminating
            // member: topology hiding and headers to strip.
            if let Some(first) = admission.targets.first() {
                info.hide_topology |= first.headers.topology_hiding;
                for name in &first.headers.strip {
                    if let Ok(name) = HeaderName::parse(name)
                        && !info.remove_headers.contains(&name)
                    {
                        info.remove_headers.push(name);
                    }
                }
            }
            let targets: Vec<Uri> = admission
                .targets
                .iter()
                .filter_map(|t| t.sip_target.as_deref())
                .filter_map(|t| t.parse().ok())
                .collect();
            if !targets.is_empty() {
                info.targets = Some(targets);
            }
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    use peering_policy::{Change, Snapshot};
    use peering_store::{
        BoxFuture, CallerStats, EmbeddedStore, EnumEntry, MigrationReport, NodeUsage, Notification,
        RateUsage, Result,
    };
    use tokio::sync::broadcast;

    use super::*;

    /// The embedded store, counting the batches of call records written to
    /// it (each is one transaction), and refusing them while `down` (the
    /// database unreachable).
    struct Counting {
        inner: EmbeddedStore,
        batches: AtomicUsize,
        down: AtomicBool,
    }

    impl Counting {
        async fn open(dir: &std::path::Path) -> Arc<Self> {
            let inner = EmbeddedStore::open(dir.join("node.db"))
                .await
                .expect("store");
            inner.migrate().await.expect("migrate");
            Arc::new(Self {
                inner,
                batches: AtomicUsize::new(0),
                down: AtomicBool::new(false),
            })
        }
    }

    impl Store for Counting {
        fn migrate(&self) -> BoxFuture<'_, Result<MigrationReport>> {
            self.inner.migrate()
        }
        fn check_schema(&self) -> BoxFuture<'_, Result<i64>> {
            self.inner.check_schema()
        }
        fn registry_version(&self) -> BoxFuture<'_, Result<i64>> {
            self.inner.registry_version()
        }
        fn load_snapshot(&self) -> BoxFuture<'_, Result<Snapshot>> {
            self.inner.load_snapshot()
        }
        fn apply(&self, changes: Vec<Change>) -> BoxFuture<'_, Result<()>> {
            self.inner.apply(changes)
        }
        fn enum_entries(&self) -> BoxFuture<'_, Result<Vec<EnumEntry>>> {
            self.inner.enum_entries()
        }
        fn put_enum_entry(&self, entry: EnumEntry) -> BoxFuture<'_, Result<i64>> {
            self.inner.put_enum_entry(entry)
        }
        fn remove_enum_entry(&self, id: i64) -> BoxFuture<'_, Result<bool>> {
            self.inner.remove_enum_entry(id)
        }
        fn insert_call_records(&self, records: Vec<CallRecord>) -> BoxFuture<'_, Result<Vec<i64>>> {
            self.batches.fetch_add(1, Ordering::SeqCst);
            if self.down.load(Ordering::SeqCst) {
                return Box::pin(async {
                    Err(peering_store::Error::Io {
                        path: "node.db".into(),
                        source: std::io::Error::other("database unreachable"),
                    })
                });
            }
            self.inner.insert_call_records(records)
        }
        fn call_records(
            &self,
            since_ms: i64,
            limit: u32,
        ) -> BoxFuture<'_, Result<Vec<(i64, CallRecord)>>> {
            self.inner.call_records(since_ms, limit)
        }
        fn purge_call_records(&self, before_ms: i64) -> BoxFuture<'_, Result<u64>> {
            self.inner.purge_call_records(before_ms)
        }
        fn caller_stats(
            &self,
            caller: String,
            since_ms: i64,
            short_ms: i64,
        ) -> BoxFuture<'_, Result<CallerStats>> {
            self.inner.caller_stats(caller, since_ms, short_ms)
        }
        fn report_usage(
            &self,
            node: String,
            usage: Vec<RateUsage>,
            now_ms: i64,
            horizon_ms: i64,
        ) -> BoxFuture<'_, Result<Vec<NodeUsage>>> {
            self.inner.report_usage(node, usage, now_ms, horizon_ms)
        }
        fn subscribe(&self) -> broadcast::Receiver<Notification> {
            self.inner.subscribe()
        }
    }

    fn record(n: u32) -> CallRecord {
        CallRecord {
            node: "n1".to_owned(),
            call_id: format!("call-{n}@test"),
            from_member: Some("a".to_owned()),
            to_member: Some("b".to_owned()),
            caller: "15550100001".to_owned(),
            callee: "15550100002".to_owned(),
            source_addr: "192.0.2.1:5060".to_owned(),
            started_at: 1_000 + i64::from(n),
            answered_at: None,
            ended_at: Some(2_000),
            status: 486,
            reason: "failed".to_owned(),
            attestation: None,
            spit_score: None,
            spit_decision: None,
        }
    }

    async fn written(store: &Counting) -> Vec<String> {
        let rows = store.call_records(0, 10_000).await.expect("read records");
        rows.into_iter().map(|(_, r)| r.call_id).collect()
    }

    /// Waits until the store holds `n` records; fails with `what` at
    /// `deadline`.
    async fn wait_written(store: &Counting, n: usize, deadline: tokio::time::Instant, what: &str) {
        while written(store).await.len() < n {
            assert!(tokio::time::Instant::now() < deadline, "{what}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Tells the writer to write what waits and stop, and waits for it.
    async fn stop_writer(closing: &watch::Sender<bool>, writer: tokio::task::JoinHandle<()>) {
        closing.send(true).expect("writer listening");
        tokio::time::timeout(FLUSH_LIMIT, writer)
            .await
            .expect("writer stops")
            .expect("writer task");
    }

    #[tokio::test]
    async fn call_records_are_grouped_and_the_last_ones_written_at_close() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = Counting::open(dir.path()).await;
        let (tx, rx) = mpsc::unbounded_channel();
        let (closing, closing_rx) = watch::channel(false);
        let writer = tokio::spawn(write_call_records(store.clone(), rx, closing_rx, WRITER));

        // A burst: full batches at once, the rest after the linger.
        for n in 0..1_200 {
            tx.send(record(n)).expect("send");
        }
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        wait_written(&store, 1_200, deadline, "burst not written").await;
        assert_eq!(store.batches.load(Ordering::SeqCst), 3, "500 + 500 + 200");

        // Records that trickle in (one every 2 ms) share a transaction
        // instead of taking one each.
        for n in 1_200..1_240 {
            tx.send(record(n)).expect("send");
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        wait_written(&store, 1_240, deadline, "trickle not written").await;
        let trickle = store.batches.load(Ordering::SeqCst) - 3;
        assert!(
            (1..=3).contains(&trickle),
            "40 records over about 80 ms took {trickle} transactions"
        );

        // At shutdown what waits is written at once, and the writer stops.
        for n in 1_240..1_243 {
            tx.send(record(n)).expect("send");
        }
        stop_writer(&closing, writer).await;
        let ids = written(&store).await;
        assert_eq!(ids.len(), 1_243);
        assert!(ids.iter().any(|c| c == "call-1242@test"));
    }

    #[tokio::test]
    async fn an_outage_keeps_the_newest_records_up_to_the_bound() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = Counting::open(dir.path()).await;
        store.down.store(true, Ordering::SeqCst);
        let (tx, rx) = mpsc::unbounded_channel();
        let (closing, closing_rx) = watch::channel(false);
        let limits = WriterLimits {
            batch_max: 100,
            linger: Duration::from_millis(20),
            max_pending: 1_000,
        };
        let writer = tokio::spawn(write_call_records(store.clone(), rx, closing_rx, limits));
        // All queued before the writer first runs: its first round takes a
        // batch, then everything else, and must apply the bound to it all.
        for n in 0..1_500 {
            tx.send(record(n)).expect("send");
        }
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while store.batches.load(Ordering::SeqCst) < 2 {
            assert!(tokio::time::Instant::now() < deadline, "no retry");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        store.down.store(false, Ordering::SeqCst);
        wait_written(&store, 1_000, deadline, "not written after the outage").await;
        stop_writer(&closing, writer).await;
        let ids = written(&store).await;
        let expected: Vec<String> = (500..1_500).map(|n| format!("call-{n}@test")).collect();
        assert!(
            ids == expected,
            "want the 1,000 newest in order; got {} records, from {:?} to {:?}",
            ids.len(),
            ids.first(),
            ids.last()
        );
    }
}
