//! `peering-loadgen`: SIP load generator (UAC, UAS) and test certificates.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use clap::{Args, Parser, Subcommand};
use peering_loadgen::error::Error;
use peering_loadgen::numbers::Numbers;
use peering_loadgen::run::{self, ClientTls, ServerTls, UacJob, UasJob};
use peering_loadgen::sip::Transport;

// Many small buffers per call from one thread per worker: mimalloc keeps
// the generator's own cost low (glibc's arenas trim with mprotect).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
use peering_loadgen::stats::{Stats, Summary};
use peering_loadgen::uac::{IdentityHook, UacConfig, UacCore};
use peering_loadgen::uas::{Mix, UasConfig, UasCore, UasStats};
use peering_loadgen::{identity, tls};

#[derive(Debug, Parser)]
#[command(
    name = "peering-loadgen",
    version,
    about = "SIP load generator: UAC, UAS, test certificates"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Place calls at a rate and report a JSON summary.
    Uac(UacArgs),
    /// Answer calls by a mix until SIGINT/SIGTERM (or --duration).
    Uas(UasArgs),
    /// Write a test CA and leaf certificates (for 127.0.0.1 and localhost).
    Certs(CertArgs),
}

#[derive(Debug, Args)]
struct Timers {
    /// RFC 3261 T1, milliseconds.
    #[arg(long, default_value_t = 500)]
    t1_ms: u64,
    /// RFC 3261 T2, milliseconds.
    #[arg(long, default_value_t = 4000)]
    t2_ms: u64,
}

#[derive(Debug, Args)]
struct UacArgs {
    /// Next hop: the node (or a UAS directly), IP:port.
    #[arg(long)]
    target: SocketAddr,
    /// Transport.
    #[arg(long, value_enum, default_value_t = Transport::Udp)]
    transport: Transport,
    /// Calls per second (all workers together).
    #[arg(long, default_value_t = 100.0)]
    rate: f64,
    /// Seconds during which calls are started.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Seconds to wait for calls in flight after --duration.
    #[arg(long, default_value_t = 40.0)]
    drain: f64,
    /// Most calls in flight (all workers together).
    #[arg(long, default_value_t = 200_000)]
    max_in_flight: usize,
    /// Worker threads (each a current_thread runtime with its own sockets).
    #[arg(long, default_value_t = 1)]
    workers: usize,
    /// First source address; sources are consecutive IPv4 addresses from it.
    #[arg(long, default_value = "127.0.1.1")]
    source_base: Ipv4Addr,
    /// Number of source addresses (one UDP socket each).
    #[arg(long, default_value_t = 16)]
    source_count: u32,
    /// Leave the UDP sockets unconnected. By default each is connected to
    /// --target (cheaper sends), so that datagrams from any other address,
    /// such as responses a system sends from another port than the one it
    /// listens on, are not received.
    #[arg(long)]
    udp_unconnected: bool,
    /// TCP/TLS connections per source address.
    #[arg(long, default_value_t = 1)]
    connections_per_source: usize,
    /// Milliseconds between ACK and BYE.
    #[arg(long, default_value_t = 0)]
    hold_ms: u64,
    /// Percentage of calls cancelled after --cancel-after-ms.
    #[arg(long, default_value_t = 0)]
    cancel_percent: u32,
    /// Milliseconds from INVITE to CANCEL for cancelled calls.
    #[arg(long, default_value_t = 100)]
    cancel_after_ms: u64,
    /// Milliseconds after which an unanswered call is cancelled and failed.
    #[arg(long, default_value_t = 32_000)]
    answer_timeout_ms: u64,
    #[command(flatten)]
    timers: Timers,
    /// User part of From.
    #[arg(long, default_value = "+4720000000")]
    caller: String,
    /// Callee numbers, one per line.
    #[arg(long, conflicts_with = "numbers_range")]
    numbers_file: Option<PathBuf>,
    /// Callee number range FIRST-LAST.
    #[arg(long, default_value = "+4721000000-+4721999999")]
    numbers_range: String,
    /// Send INVITEs without SDP.
    #[arg(long)]
    no_sdp: bool,
    /// CA (PEM) that issued the node's certificate (TLS).
    #[arg(long)]
    tls_ca: Option<PathBuf>,
    /// Client certificate chain (PEM), for mutual TLS.
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// Client private key (PEM).
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Name checked in the server certificate (a DNS name or an IP address).
    #[arg(long, default_value = "127.0.0.1")]
    tls_server_name: String,
    /// Sign each INVITE with this P-256 key (PEM): SHAKEN Identity header.
    #[arg(long, requires = "identity_x5u")]
    identity_key: Option<PathBuf>,
    /// Certificate URL announced in the Identity header.
    #[arg(long)]
    identity_x5u: Option<String>,
    /// Write the JSON summary here ("-" for stdout).
    #[arg(long, default_value = "-")]
    json: PathBuf,
}

#[derive(Debug, Args)]
struct UasArgs {
    /// Where to listen, IP:port.
    #[arg(long, default_value = "127.0.0.1:5090")]
    listen: SocketAddr,
    /// Transport.
    #[arg(long, value_enum, default_value_t = Transport::Udp)]
    transport: Transport,
    /// Worker threads (UDP only; they share the port with SO_REUSEPORT).
    #[arg(long, default_value_t = 1)]
    workers: usize,
    /// Percentage of calls that ring for --ring-ms before the answer.
    #[arg(long, default_value_t = 0)]
    ring_percent: u32,
    /// Ringing time, milliseconds.
    #[arg(long, default_value_t = 1000)]
    ring_ms: u64,
    /// Percentage of calls rejected with --reject-code.
    #[arg(long, default_value_t = 0)]
    reject_percent: u32,
    /// Status of rejected calls.
    #[arg(long, default_value_t = 486)]
    reject_code: u16,
    /// Percentage of calls that ring and are never answered.
    #[arg(long, default_value_t = 0)]
    timeout_percent: u32,
    /// Answer at once without a 180 first.
    #[arg(long)]
    no_180: bool,
    /// Answer without SDP.
    #[arg(long)]
    no_sdp: bool,
    #[command(flatten)]
    timers: Timers,
    /// Server certificate chain (PEM), TLS.
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// Server private key (PEM).
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Demand client certificates issued by this CA (mutual TLS).
    #[arg(long)]
    tls_client_ca: Option<PathBuf>,
    /// Stop after this many seconds (0: only on SIGINT/SIGTERM).
    #[arg(long, default_value_t = 0.0)]
    duration: f64,
    /// Write the JSON summary here on exit ("-" for stdout).
    #[arg(long, default_value = "-")]
    json: PathBuf,
}

#[derive(Debug, Args)]
struct CertArgs {
    /// Output folder.
    #[arg(long)]
    out: PathBuf,
    /// Leaf certificates to issue (files NAME.pem and NAME.key).
    #[arg(long, value_delimiter = ',', default_value = "node,uas,uac,kamailio")]
    names: Vec<String>,
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let res = match cli.cmd {
        Cmd::Uac(a) => uac(a),
        Cmd::Uas(a) => uas(a),
        Cmd::Certs(a) => {
            let names: Vec<&str> = a.names.iter().map(String::as_str).collect();
            tls::generate(&a.out, &names)
        }
    };
    match res {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("peering-loadgen: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn write_json(path: &PathBuf, value: &impl serde::Serialize) -> Result<(), Error> {
    let text = serde_json::to_string_pretty(value).unwrap_or_default();
    if path.as_os_str() == "-" {
        println!("{text}");
        Ok(())
    } else {
        std::fs::write(path, text + "\n").map_err(|source| Error::Io {
            what: "writing the JSON summary",
            source,
        })
    }
}

fn invalid(what: &'static str, reason: &'static str) -> Error {
    Error::Invalid { what, reason }
}

fn uac(a: UacArgs) -> Result<(), Error> {
    if a.rate.is_nan()
        || a.rate <= 0.0
        || a.duration.is_nan()
        || a.duration < 0.0
        || a.drain.is_nan()
        || a.drain < 0.0
    {
        return Err(invalid("rate/duration", "must be positive"));
    }
    if a.workers == 0 || a.source_count == 0 {
        return Err(invalid("workers/source-count", "must be at least 1"));
    }
    if a.cancel_percent > 100 {
        return Err(invalid("cancel-percent", "at most 100"));
    }
    let numbers = match &a.numbers_file {
        Some(p) => Numbers::from_file(p)?,
        None => Numbers::from_range(&a.numbers_range)?,
    };
    let hook: Option<Arc<dyn IdentityHook>> = match (&a.identity_key, &a.identity_x5u) {
        (Some(k), Some(x5u)) => Some(Arc::new(identity::StirHook::from_pem_file(k, x5u)?)),
        _ => None,
    };
    let tls = match a.transport {
        Transport::Tls => {
            let ca = a
                .tls_ca
                .as_ref()
                .ok_or_else(|| invalid("tls-ca", "TLS needs --tls-ca"))?;
            let id = a.tls_cert.as_deref().zip(a.tls_key.as_deref());
            let cfg = tls::client_config(ca, id)?;
            let server_name = rustls_pki_types::ServerName::try_from(a.tls_server_name.clone())
                .map_err(|_| invalid("tls-server-name", "not a DNS name or IP address"))?;
            Some(ClientTls {
                connector: tokio_rustls::TlsConnector::from(Arc::new(cfg)),
                server_name,
            })
        }
        _ => None,
    };
    let base = u32::from(a.source_base);
    let sources: Vec<IpAddr> = (0..a.source_count)
        .map(|i| IpAddr::V4(Ipv4Addr::from(base.wrapping_add(i))))
        .collect();
    let nonce = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| d.subsec_nanos() ^ (d.as_secs() as u32));
    let stop = Arc::new(AtomicBool::new(false));
    let start = Instant::now();
    let mut handles = Vec::new();
    for w in 0..a.workers {
        let mine: Vec<IpAddr> = if sources.len() >= a.workers {
            sources.iter().copied().skip(w).step_by(a.workers).collect()
        } else {
            vec![sources[w % sources.len()]]
        };
        let cfg = UacConfig {
            transport: a.transport,
            target: a.target,
            caller: a.caller.clone(),
            hold: Duration::from_millis(a.hold_ms),
            cancel_percent: a.cancel_percent,
            cancel_after: Duration::from_millis(a.cancel_after_ms),
            answer_timeout: Duration::from_millis(a.answer_timeout_ms),
            t1: Duration::from_millis(a.timers.t1_ms),
            t2: Duration::from_millis(a.timers.t2_ms),
            sdp: !a.no_sdp,
            worker: w as u32,
            nonce,
        };
        let job = UacJob {
            core: UacCore::new(cfg, numbers.clone(), hook.clone(), start),
            rate: a.rate / a.workers as f64,
            max_in_flight: a.max_in_flight.div_ceil(a.workers),
            duration: Duration::from_secs_f64(a.duration),
            drain: Duration::from_secs_f64(a.drain),
            sources: mine,
            connections_per_source: a.connections_per_source,
            connect_udp: !a.udp_unconnected,
            tls: tls.clone(),
            stop: stop.clone(),
        };
        handles.push(
            std::thread::Builder::new()
                .name(format!("uac-{w}"))
                .spawn(move || run::run_uac(job))
                .map_err(|source| Error::Io {
                    what: "thread",
                    source,
                })?,
        );
    }
    let mut total = Stats::default();
    let mut first_err = None;
    for h in handles {
        match h.join() {
            Ok(Ok(s)) => total.merge(s),
            Ok(Err(e)) => {
                first_err.get_or_insert(e);
            }
            Err(_) => {
                first_err.get_or_insert_with(|| invalid("worker", "panicked"));
            }
        }
    }
    if let Some(e) = first_err {
        return Err(e);
    }
    let summary = Summary::new("uac", a.transport, a.rate, a.duration, total);
    eprintln!(
        "uac: {} attempted ({:.0} cps), {} succeeded, {} failed ({:.4} %), {} retransmissions, setup p50 {} us p99 {} us max {} us",
        summary.attempted,
        summary.achieved_cps,
        summary.succeeded,
        summary.failed,
        summary.failed_ratio * 100.0,
        summary.retransmissions,
        summary.setup_latency.p50_us,
        summary.setup_latency.p99_us,
        summary.setup_latency.max_us
    );
    write_json(&a.json, &summary)
}

#[derive(Debug, serde::Serialize)]
struct UasSummary {
    role: &'static str,
    transport: Transport,
    #[serde(flatten)]
    stats: UasStats,
}

fn uas(a: UasArgs) -> Result<(), Error> {
    if a.ring_percent + a.reject_percent + a.timeout_percent > 100 {
        return Err(invalid("mix", "the percentages add up to more than 100"));
    }
    if a.workers == 0 {
        return Err(invalid("workers", "must be at least 1"));
    }
    let workers = if a.transport == Transport::Udp {
        a.workers
    } else {
        1
    };
    let tls = match a.transport {
        Transport::Tls => {
            let cert = a
                .tls_cert
                .as_ref()
                .ok_or_else(|| invalid("tls-cert", "TLS needs --tls-cert"))?;
            let key = a
                .tls_key
                .as_ref()
                .ok_or_else(|| invalid("tls-key", "TLS needs --tls-key"))?;
            let cfg = tls::server_config(cert, key, a.tls_client_ca.as_deref())?;
            Some(ServerTls {
                acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(cfg)),
            })
        }
        _ => None,
    };
    let stop = Arc::new(AtomicBool::new(false));
    let mut handles = Vec::new();
    for w in 0..workers {
        let cfg = UasConfig {
            transport: a.transport,
            mix: Mix {
                ring_percent: a.ring_percent,
                reject_percent: a.reject_percent,
                timeout_percent: a.timeout_percent,
                reject_code: a.reject_code,
            },
            ring: Duration::from_millis(a.ring_ms),
            send_180: !a.no_180,
            t1: Duration::from_millis(a.timers.t1_ms),
            t2: Duration::from_millis(a.timers.t2_ms),
            sdp: !a.no_sdp,
        };
        let job = UasJob {
            core: UasCore::new(cfg),
            listen: a.listen,
            transport: a.transport,
            reuse_port: workers > 1,
            tls: tls.clone(),
            stop: stop.clone(),
        };
        handles.push(
            std::thread::Builder::new()
                .name(format!("uas-{w}"))
                .spawn(move || run::run_uas(job))
                .map_err(|source| Error::Io {
                    what: "thread",
                    source,
                })?,
        );
    }
    // Wait for a signal (or the duration) on a small runtime of our own.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|source| Error::Io {
            what: "runtime",
            source,
        })?;
    let duration = a.duration;
    rt.block_on(async {
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        let term_fut = async {
            match term.as_mut() {
                Some(t) => {
                    t.recv().await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        let timer = async {
            if duration > 0.0 {
                tokio::time::sleep(Duration::from_secs_f64(duration)).await;
            } else {
                std::future::pending::<()>().await;
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term_fut => {}
            _ = timer => {}
        }
    });
    stop.store(true, Ordering::Relaxed);
    let mut total = UasStats::default();
    for h in handles {
        match h.join() {
            Ok(Ok(s)) => total.merge(&s),
            Ok(Err(e)) => return Err(e),
            Err(_) => return Err(invalid("worker", "panicked")),
        }
    }
    eprintln!(
        "uas: {} invites, {} answered, {} rejected, {} cancelled, {} byes, {} no-ack, {} retransmissions",
        total.invites,
        total.answered,
        total.rejected,
        total.cancelled,
        total.byes,
        total.no_ack,
        total.retransmissions
    );
    write_json(
        &a.json,
        &UasSummary {
            role: "uas",
            transport: a.transport,
            stats: total,
        },
    )
}
