//! The node: binds the transports, runs the proxy core in one task, answers
//! the core's routing questions through the [`Router`], and shuts down
//! gracefully.
//!
//! ```text
//!  UDP/TCP/TLS tasks ──Input──► core task (Proxy) ──Transmit──► Transports::send
//!                                  │   ▲
//!                      Event::Route│   │handle_route
//!                                  ▼   │
//!          Router: answered inline when cheap and ready (static table,
//!          cached ENUM, policy lookups), else as its own task
//! ```

use std::future::Future as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::Context as _;
use futures::FutureExt as _;
use peering_proto::proxy::{
    Event, LocalInterface, Proxy, ProxyConfig, RouteDecision, RouteId, Transmit, Transport,
};
use peering_proto::txn::TimerConfig;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

use crate::admin;
use crate::config::{Config, TransportKind};
use crate::enum_routing::EnumRouter;
use crate::env::ProcessEnv;
use crate::metrics::Metrics;
use crate::policy_layer::{PolicyLayer, PolicyScreen};
use crate::router::{FirstMatch, Pipeline, RouteRequest, Router, Screen, StaticRouter};
use crate::tls;
use crate::transport::{Bound, Input, ListenSpec, TransportSettings, Transports};
use crate::zone_service::ZoneService;

/// A running node.
#[derive(Debug)]
pub struct NodeHandle {
    /// The SIP listeners, with the ports actually bound.
    pub sip: Vec<Bound>,
    /// The admin API address, if enabled.
    pub admin: Option<SocketAddr>,
    /// The node's metrics.
    pub metrics: Arc<Metrics>,
    /// The ENUM zone service, when `[enum_zone]` is configured.
    pub zone: Option<ZoneService>,
    policy: Option<Arc<PolicyLayer>>,
    shutdown: watch::Sender<bool>,
    core: JoinHandle<()>,
}

impl NodeHandle {
    /// The first bound address of a transport.
    pub fn addr(&self, transport: Transport) -> Option<SocketAddr> {
        self.sip
            .iter()
            .find(|b| b.transport == transport)
            .map(|b| b.address)
    }

    /// Starts a graceful shutdown and waits for the core to finish (at most
    /// the grace period).
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        let _ = self.core.await;
        if let Some(policy) = self.policy {
            policy.close().await;
        }
        if let Some(zone) = self.zone {
            zone.shutdown().await;
        }
    }

    /// Waits until the core stops by itself.
    pub async fn wait(self) {
        let _ = self.core.await;
    }

    /// Asks for a graceful shutdown without waiting.
    pub fn begin_shutdown(&self) {
        let _ = self.shutdown.send(true);
    }
}

fn transport_of(kind: TransportKind) -> Transport {
    match kind {
        TransportKind::Udp => Transport::Udp,
        TransportKind::Tcp => Transport::Tcp,
        TransportKind::Tls => Transport::Tls,
    }
}

/// Builds the routing seam a configuration describes: the screens
/// (authentication, Identity, policy) in front of the destinations (the
/// static table first, then ENUM).
pub fn build_router(
    config: &Config,
    policy: Option<Arc<PolicyLayer>>,
) -> anyhow::Result<Arc<dyn Router>> {
    let mut screens: Vec<Arc<dyn Screen>> = Vec::new();
    if let Some(section) = &config.identity {
        screens.push(
            crate::identity::screen(section, &config.node.name)
                .context("setting up the [identity] section")?,
        );
    }
    // Policy runs after identity: it takes the verification result and the
    // PAI trust decision as inputs.
    if let Some(policy) = policy {
        screens.push(Arc::new(PolicyScreen(policy)));
    }
    let mut destinations: Vec<Arc<dyn Router>> = vec![Arc::new(StaticRouter::new(&config.routes))];
    if let Some(section) = &config.enum_routing {
        let router = EnumRouter::new(section).context("setting up the ENUM resolver")?;
        destinations.push(Arc::new(router));
    }
    Ok(Arc::new(Pipeline::new(
        screens,
        Arc::new(FirstMatch(destinations)),
    )))
}

/// Starts a node with the routing its configuration describes.
pub async fn start(config: Config) -> anyhow::Result<NodeHandle> {
    let metrics = Arc::new(Metrics::default());
    let store = crate::commands::prepare_store(&config, &ProcessEnv).await?;
    let policy = match &config.policy {
        Some(section) => Some(
            PolicyLayer::start(
                &config.node.name,
                section.clone(),
                store.clone(),
                metrics.clone(),
            )
            .await
            .context("starting the federation policy")?,
        ),
        None => None,
    };
    let router = build_router(&config, policy.clone())?;
    launch(config, router, store, metrics, policy).await
}

/// Starts a node with a given router (tests use it to put their own routing
/// behind the proxy).
pub async fn start_with_router(
    config: Config,
    router: Arc<dyn Router>,
) -> anyhow::Result<NodeHandle> {
    let metrics = Arc::new(Metrics::default());
    let store = crate::commands::prepare_store(&config, &ProcessEnv).await?;
    launch(config, router, store, metrics, None).await
}

async fn launch(
    config: Config,
    router: Arc<dyn Router>,
    store: Arc<dyn peering_store::Store>,
    metrics: Arc<Metrics>,
    policy: Option<Arc<PolicyLayer>>,
) -> anyhow::Result<NodeHandle> {
    let zone = match &config.enum_zone {
        Some(section) => Some(
            ZoneService::start(section.clone(), store.clone())
                .await
                .context("starting the ENUM zone service")?,
        ),
        None => None,
    };
    let (input_tx, input_rx) = mpsc::channel(16 * 1024);
    let (tls_acceptor, tls_connector) = match &config.tls {
        Some(section) => (
            Some(tls::acceptor(section).context("loading the [tls] section for listeners")?),
            Some(tls::connector(section).context("loading the [tls] section for outbound TLS")?),
        ),
        None => (None, None),
    };
    let specs: Vec<ListenSpec> = config
        .sip
        .listen
        .iter()
        .map(|l| ListenSpec {
            transport: transport_of(l.transport),
            address: l.address,
        })
        .collect();
    let settings = TransportSettings {
        udp_queue_target: (config.sip.overload_queue_delay_ms > 0)
            .then(|| Duration::from_millis(config.sip.overload_queue_delay_ms)),
        max_message_size: config.sip.max_message_size,
        idle_timeout: Duration::from_secs(config.sip.idle_timeout_secs),
        handshake_timeout: Duration::from_secs(config.sip.handshake_timeout_secs),
    };
    let (transports, bound) = Transports::bind(
        &specs,
        settings,
        tls_acceptor,
        tls_connector,
        input_tx,
        metrics.clone(),
        policy
            .clone()
            .map(|p| p as Arc<dyn crate::transport::PacketFilter>),
    )
    .await
    .context("binding SIP listeners")?;
    for b in &bound {
        info!(transport = %b.transport, address = %b.address, "SIP listener ready");
    }

    let interfaces: Vec<LocalInterface> = bound
        .iter()
        .zip(config.sip.listen.iter())
        .map(|(b, l)| {
            let (host, port) = advertised(l.advertise.as_deref(), b.address);
            LocalInterface {
                transport: b.transport,
                addr: b.address,
                host,
                port,
            }
        })
        .collect();
    let proxy_config = ProxyConfig {
        interfaces,
        domains: config.sip.domains.clone(),
        record_route: config.sip.record_route,
        timers: TimerConfig {
            t1: Duration::from_millis(config.timers.t1_ms),
            t2: Duration::from_millis(config.timers.t2_ms),
            t4: Duration::from_millis(config.timers.t4_ms),
        },
        timer_c: Duration::from_millis(config.timers.timer_c_ms),
        server_header: config.sip.server_header.clone(),
        udp_switch_size: config
            .sip
            .udp_size_switch
            .then_some(config.sip.udp_switch_size),
        instance: rand::random(),
    };
    let proxy = Proxy::new(proxy_config);

    let admin_addr = match config.admin.listen {
        Some(addr) => Some(
            admin::serve(addr, metrics.clone())
                .await
                .with_context(|| format!("binding the admin API on {addr}"))?,
        ),
        None => None,
    };

    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let parts = CoreParts {
        router,
        transports,
        metrics: metrics.clone(),
        policy: policy.clone(),
        overload_backlog: config.sip.overload_backlog,
    };
    let core = tokio::spawn(core_loop(
        proxy,
        input_rx,
        parts,
        shutdown_rx,
        config.grace_period(),
    ));
    Ok(NodeHandle {
        sip: bound,
        admin: admin_addr,
        metrics,
        zone,
        policy,
        shutdown: shutdown_tx,
        core,
    })
}

/// The host and port written in Via and Record-Route for a listener.
fn advertised(advertise: Option<&str>, bound: SocketAddr) -> (String, u16) {
    let Some(adv) = advertise else {
        return (bound.ip().to_string(), bound.port());
    };
    // `host`, `host:port`, `[v6]:port` or a bare IPv6 address.
    if let Ok(sa) = adv.parse::<SocketAddr>() {
        return (sa.ip().to_string(), sa.port());
    }
    if let Some((host, port)) = adv.rsplit_once(':')
        && !host.contains(':')
        && let Ok(port) = port.parse()
    {
        return (host.to_owned(), port);
    }
    (
        adv.trim_start_matches('[').trim_end_matches(']').to_owned(),
        bound.port(),
    )
}

fn now() -> std::time::Instant {
    tokio::time::Instant::now().into_std()
}

/// What the core task works with besides the proxy itself.
struct CoreParts {
    router: Arc<dyn Router>,
    transports: Transports,
    metrics: Arc<Metrics>,
    policy: Option<Arc<PolicyLayer>>,
    /// `sip.overload_backlog` (0: never shed load).
    overload_backlog: usize,
}

async fn core_loop(
    mut proxy: Proxy,
    mut input: mpsc::Receiver<Input>,
    parts: CoreParts,
    mut shutdown: watch::Receiver<bool>,
    grace: Duration,
) {
    let CoreParts {
        router,
        transports,
        metrics,
        policy,
        overload_backlog,
    } = parts;
    let shed = transports.shed_signal().clone();
    // The node's own queue (with hysteresis) refuses every new call; the
    // kernel's UDP queues a share that follows how far behind the node is.
    let mut backlogged = false;
    let mut shed_permille: u16 = 0;
    let (route_tx, mut route_rx) = mpsc::unbounded_channel::<(RouteId, RouteDecision)>();
    let mut drain_until: Option<tokio::time::Instant> = None;
    // One timer for the proxy's next deadline, moved only when that
    // deadline changes (a new timer per turn of the loop would be inserted
    // into and removed from the runtime's timer wheel at every message).
    let timer = tokio::time::sleep_until(tokio::time::Instant::now());
    tokio::pin!(timer);
    let mut armed: Option<tokio::time::Instant> = None;
    // The transmissions of one turn, sent together at its end.
    let mut outbox: Vec<Transmit> = Vec::with_capacity(INPUT_BATCH * 2);
    // While shedding, a wake-up every overload interval, so that shedding
    // ends (and the gauge says so) even when nothing arrives.
    let recheck = tokio::time::sleep_until(tokio::time::Instant::now());
    tokio::pin!(recheck);
    loop {
        if overload_backlog > 0 {
            let backlog = input.len();
            backlogged = if backlogged {
                backlog > overload_backlog / 4
            } else {
                backlog >= overload_backlog
            };
        }
        let permille = if backlogged {
            1000
        } else {
            shed.shed_permille(std::time::Instant::now())
        };
        if permille != shed_permille {
            proxy.set_shed_permille(permille);
            let backlog = input.len();
            let queue_delay_ms = shed.queue_delay().as_secs_f64() * 1e3;
            if shed_permille == 0 {
                recheck
                    .as_mut()
                    .reset(tokio::time::Instant::now() + crate::overload::INTERVAL);
                metrics.overloaded.store(1, Ordering::Relaxed);
                warn!(
                    backlog,
                    queue_delay_ms,
                    shed_permille = permille,
                    "overloaded: refusing new calls with 503 until the queues drain"
                );
            } else if permille == 0 {
                metrics.overloaded.store(0, Ordering::Relaxed);
                info!(
                    backlog,
                    queue_delay_ms, "no longer overloaded: accepting new calls"
                );
            }
            shed_permille = permille;
        }
        let deadline = proxy.poll_timeout().map(tokio::time::Instant::from_std);
        if deadline != armed {
            if let Some(at) = deadline {
                timer.as_mut().reset(at);
            }
            armed = deadline;
        }
        tokio::select! {
            biased;
            changed = shutdown.changed(), if drain_until.is_none() => {
                if changed.is_err() || *shutdown.borrow() {
                    info!(grace_secs = grace.as_secs(), "shutting down: finishing transactions");
                    proxy.start_draining();
                    drain_until = Some(tokio::time::Instant::now() + grace);
                }
            }
            Some((id, decision)) = route_rx.recv() => {
                // Answers of routing tasks that finished together are
                // taken in one turn, like queued input below.
                let now = now();
                proxy.handle_route(now, id, decision);
                for _ in 1..INPUT_BATCH {
                    let Ok((id, decision)) = route_rx.try_recv() else { break };
                    proxy.handle_route(now, id, decision);
                }
            }
            msg = input.recv() => {
                let Some(first) = msg else { break };
                // Take what else is already queued in the same turn: at
                // thousands of messages per second this saves a wake-up
                // and a pass through this loop per message.
                let now = now();
                let mut next = Some(first);
                let mut taken = 0;
                while let Some(item) = next.take() {
                    match item {
                        Input::Message(message, flow) => {
                            match policy.as_ref().and_then(|p| refuse_early(p, &message, &flow)) {
                                Some(transmit) => outbox.push(transmit),
                                None => proxy.handle_message(now, message, flow),
                            }
                        }
                        Input::TransportError(token) => proxy.handle_transport_error(now, token),
                    }
                    taken += 1;
                    if taken < INPUT_BATCH {
                        next = input.try_recv().ok();
                    }
                }
            }
            () = &mut recheck, if shed_permille > 0 => {
                recheck
                    .as_mut()
                    .reset(tokio::time::Instant::now() + crate::overload::INTERVAL);
            }
            () = &mut timer, if armed.is_some() => {
                armed = None;
                proxy.handle_timeout(now());
            }
            () = sleep_until(drain_until) => {
                warn!(
                    transactions = proxy.transaction_count(),
                    "grace period over, stopping with transactions in progress"
                );
                for line in proxy.describe() {
                    warn!(%line, "abandoned");
                }
                break;
            }
        }
        // Routing answers that were ready at once (static routes, cached
        // ENUM) feed straight back in, which may produce more events.
        loop {
            while let Some(transmit) = proxy.poll_transmit() {
                outbox.push(transmit);
            }
            let mut ready = Vec::new();
            while let Some(event) = proxy.poll_event() {
                if let (
                    Some(policy),
                    Event::CallFinal {
                        call_id, status, ..
                    },
                ) = (&policy, &event)
                {
                    policy.call_final(call_id, *status);
                }
                if let Some(answer) = handle_event(event, &router, &route_tx, &metrics, &transports)
                {
                    ready.push(answer);
                }
            }
            if ready.is_empty() {
                break;
            }
            let now = now();
            for (id, decision) in ready {
                proxy.handle_route(now, id, decision);
            }
        }
        // Everything this turn produced leaves together: one `sendmmsg`
        // per UDP socket instead of a system call per datagram.
        transports.send_all(&mut outbox);
        metrics
            .transactions
            .store(proxy.transaction_count() as i64, Ordering::Relaxed);
        metrics
            .contexts
            .store(proxy.context_count() as i64, Ordering::Relaxed);
        metrics
            .overload_rejections
            .store(proxy.overload_rejections(), Ordering::Relaxed);
        metrics
            .udp_queue_delay_us
            .store(shed.queue_delay().as_micros() as i64, Ordering::Relaxed);
        metrics
            .udp_receive_drops
            .store(shed.dropped(), Ordering::Relaxed);
        if drain_until.is_some() && proxy.is_idle() {
            info!("all transactions finished");
            break;
        }
    }
}

/// Requests refused before the proxy sees them (scanner signatures): a
/// stateless response, nothing kept.
fn refuse_early(
    policy: &PolicyLayer,
    message: &peering_proto::msg::Message,
    flow: &peering_proto::proxy::Flow,
) -> Option<Transmit> {
    if !message.is_request() {
        return None;
    }
    let rejection = policy.check_request(message, flow)?;
    if message.method() == Some(&peering_proto::msg::Method::Ack) {
        return None;
    }
    let headers: Vec<(peering_proto::msg::HeaderName, &str)> = rejection
        .headers
        .iter()
        .map(|(n, v)| (n.clone(), v.as_str()))
        .collect();
    let bytes = peering_proto::msg::response_to(
        message,
        rejection.status,
        &rejection.reason,
        Some("scan"),
        &headers,
    );
    Some(Transmit {
        transport: flow.transport,
        remote: flow.remote,
        local: Some(flow.local),
        conn: flow.conn,
        server_name: None,
        bytes,
        token: None,
    })
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Messages taken from the input queue in one turn of the core loop.
const INPUT_BATCH: usize = 64;

/// The longest a routing question may take before the call is answered 500.
const ROUTING_LIMIT: Duration = Duration::from_secs(30);

/// Acts on one event of the proxy core. A routing question whose answer is
/// ready at the first poll (no I/O needed) is answered in place and
/// returned; otherwise it runs as its own task and answers through
/// `route_tx`.
fn handle_event(
    event: Event,
    router: &Arc<dyn Router>,
    route_tx: &mpsc::UnboundedSender<(RouteId, RouteDecision)>,
    metrics: &Metrics,
    transports: &Transports,
) -> Option<(RouteId, RouteDecision)> {
    match event {
        Event::Route {
            id,
            request,
            flow,
            kind,
        } => {
            let router = router.clone();
            let peer_certificates = flow.conn.and_then(|c| transports.peer_certificates(c));
            let question = RouteRequest {
                request,
                flow,
                kind,
                peer_certificates,
            };
            let cheap = router.is_cheap(&question);
            let mut routing = Box::pin(async move { router.route(question).await });
            let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
            let first = if cheap {
                let poll = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    routing.as_mut().poll(&mut cx)
                }));
                match poll {
                    Ok(poll) => poll,
                    Err(_) => {
                        warn!("routing failed unexpectedly; answering 500");
                        return Some((
                            id,
                            RouteDecision::Reject(peering_proto::proxy::Rejection::new(
                                500,
                                "Routing Failed",
                            )),
                        ));
                    }
                }
            } else {
                std::task::Poll::Pending
            };
            match first {
                std::task::Poll::Ready(decision) => return Some((id, decision)),
                std::task::Poll::Pending => {
                    // Polled again by the runtime, with a real waker.
                    let tx = route_tx.clone();
                    tokio::spawn(async move {
                        // A routing step that hangs (a store or DNS call
                        // without its own limit) must not hold the call,
                        // and its transactions, forever.
                        // A bug that panics in a router must not either.
                        let guarded = std::panic::AssertUnwindSafe(routing).catch_unwind();
                        let decision = match tokio::time::timeout(ROUTING_LIMIT, guarded).await {
                            Ok(Ok(decision)) => decision,
                            Ok(Err(_)) => {
                                warn!("routing failed unexpectedly; answering 500");
                                RouteDecision::Reject(peering_proto::proxy::Rejection::new(
                                    500,
                                    "Routing Failed",
                                ))
                            }
                            Err(_) => {
                                warn!("routing took too long; answering 500");
                                RouteDecision::Reject(
                                    peering_proto::proxy::Rejection::new(500, "Routing Timed Out")
                                        .with_header(
                                            peering_proto::msg::HeaderName::RetryAfter,
                                            "5",
                                        ),
                                )
                            }
                        };
                        let _ = tx.send((id, decision));
                    });
                }
            }
        }
        Event::Rejected {
            status,
            reason,
            method,
            flow,
        } => {
            info!(status, %reason, %method, remote = %flow.remote, transport = %flow.transport, "request rejected");
            metrics.incr_labelled("rejections", format!("{status} {reason}"));
        }
        Event::CallFinal {
            call_id,
            status,
            attempts,
        } => {
            debug!(%call_id, status, attempts, "call final response");
            metrics.incr_labelled("call_final", status.to_string());
        }
        Event::StrayResponse { status } => {
            debug!(status, "stray response dropped");
            metrics.stray_responses.fetch_add(1, Ordering::Relaxed);
        }
    }
    None
}

/// Runs a node until SIGTERM or SIGINT, then shuts down gracefully.
pub async fn run(config: Config) -> anyhow::Result<()> {
    let node = start(config).await?;
    wait_for_signal().await;
    info!("signal received");
    node.shutdown().await;
    Ok(())
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
