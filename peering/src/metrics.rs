//! Counters and gauges of the node, rendered in the Prometheus text format
//! on the admin API's `/metrics`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

/// The node's metrics. Cheap to update from any task.
#[derive(Debug, Default)]
pub struct Metrics {
    /// SIP messages received, all transports.
    pub messages_received: AtomicU64,
    /// Requests that failed to parse (answered 400/505 where possible).
    pub parse_errors_requests: AtomicU64,
    /// Responses that failed to parse (dropped).
    pub parse_errors_responses: AtomicU64,
    /// Responses that matched no transaction (dropped).
    pub stray_responses: AtomicU64,
    /// Messages handed to the transports.
    pub messages_sent: AtomicU64,
    /// Sends that failed.
    pub send_errors: AtomicU64,
    /// Stream connections accepted.
    pub connections_accepted: AtomicU64,
    /// Stream connections opened by the node.
    pub connections_opened: AtomicU64,
    /// Stream connections currently open.
    pub connections_open: AtomicI64,
    /// TLS handshakes that failed.
    pub tls_handshake_failures: AtomicU64,
    /// Streams closed because of a framing error or an oversized message.
    pub framing_errors: AtomicU64,
    /// Live transactions in the proxy core.
    pub transactions: AtomicI64,
    /// Calls (INVITE contexts) in the proxy core.
    pub contexts: AtomicI64,
    /// 1 while the node sheds new calls because it cannot keep up.
    pub overloaded: AtomicI64,
    /// New calls refused with 503 because of overload.
    pub overload_rejections: AtomicU64,
    /// The smallest time a datagram waited in the kernel's UDP receive
    /// queue during the last 500 ms with traffic, in microseconds.
    pub udp_queue_delay_us: AtomicI64,
    /// Datagrams the kernel dropped because a UDP receive queue was full.
    pub udp_receive_drops: AtomicU64,
    labelled: Mutex<BTreeMap<(&'static str, String), u64>>,
}

impl Metrics {
    /// Adds one to a labelled counter, e.g. `("rejections", "403 Forbidden")`.
    pub fn incr_labelled(&self, family: &'static str, label: String) {
        let mut map = self.labelled.lock().unwrap_or_else(|e| e.into_inner());
        *map.entry((family, label)).or_insert(0) += 1;
    }

    /// The value of a labelled counter (for tests and the admin API).
    pub fn labelled(&self, family: &'static str, label: &str) -> u64 {
        let map = self.labelled.lock().unwrap_or_else(|e| e.into_inner());
        map.get(&(family, label.to_owned())).copied().unwrap_or(0)
    }

    /// Renders all metrics in the Prometheus text exposition format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let counters: [(&str, &str, u64); 13] = [
            (
                "peering_sip_messages_received_total",
                "SIP messages received",
                self.messages_received.load(Ordering::Relaxed),
            ),
            (
                "peering_sip_request_parse_errors_total",
                "Requests that failed to parse",
                self.parse_errors_requests.load(Ordering::Relaxed),
            ),
            (
                "peering_sip_response_parse_errors_total",
                "Responses that failed to parse and were dropped",
                self.parse_errors_responses.load(Ordering::Relaxed),
            ),
            (
                "peering_sip_stray_responses_total",
                "Responses that matched no transaction",
                self.stray_responses.load(Ordering::Relaxed),
            ),
            (
                "peering_sip_messages_sent_total",
                "SIP messages sent",
                self.messages_sent.load(Ordering::Relaxed),
            ),
            (
                "peering_sip_send_errors_total",
                "Sends that failed",
                self.send_errors.load(Ordering::Relaxed),
            ),
            (
                "peering_connections_accepted_total",
                "Stream connections accepted",
                self.connections_accepted.load(Ordering::Relaxed),
            ),
            (
                "peering_connections_opened_total",
                "Stream connections opened by the node",
                self.connections_opened.load(Ordering::Relaxed),
            ),
            (
                "peering_tls_handshake_failures_total",
                "TLS handshakes that failed",
                self.tls_handshake_failures.load(Ordering::Relaxed),
            ),
            (
                "peering_stream_framing_errors_total",
                "Streams closed on a framing error",
                self.framing_errors.load(Ordering::Relaxed),
            ),
            (
                "peering_overload_rejections_total",
                "New calls refused with 503 because the node could not keep up",
                self.overload_rejections.load(Ordering::Relaxed),
            ),
            (
                "peering_udp_receive_drops_total",
                "Datagrams the kernel dropped because a UDP receive queue was full",
                self.udp_receive_drops.load(Ordering::Relaxed),
            ),
            ("peering_build_info", "Always 1", 1),
        ];
        for (name, help, value) in counters {
            let kind = if name.ends_with("_total") {
                "counter"
            } else {
                "gauge"
            };
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
            );
        }
        let gauges: [(&str, &str, i64); 4] = [
            (
                "peering_connections_open",
                "Stream connections open",
                self.connections_open.load(Ordering::Relaxed),
            ),
            (
                "peering_transactions",
                "Live SIP transactions",
                self.transactions.load(Ordering::Relaxed),
            ),
            (
                "peering_calls_in_progress",
                "Requests being routed or forwarded (proxy contexts), each until its final response",
                self.contexts.load(Ordering::Relaxed),
            ),
            (
                "peering_overloaded",
                "1 while new calls are shed (sip.overload_backlog, sip.overload_queue_delay_ms)",
                self.overloaded.load(Ordering::Relaxed),
            ),
        ];
        for (name, help, value) in gauges {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}"
            );
        }
        let delay = self.udp_queue_delay_us.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(
            out,
            "# HELP peering_udp_queue_delay_seconds Shortest wait of a datagram in the kernel's UDP receive queue over the last 500 ms with traffic\n# TYPE peering_udp_queue_delay_seconds gauge\npeering_udp_queue_delay_seconds {delay}"
        );
        let map = self.labelled.lock().unwrap_or_else(|e| e.into_inner());
        let mut last_family = "";
        for ((family, label), value) in map.iter() {
            let name = format!("peering_{family}_total");
            if *family != last_family {
                let _ = writeln!(out, "# TYPE {name} counter");
                last_family = family;
            }
            let label = label.replace('\\', "\\\\").replace('"', "\\\"");
            let _ = writeln!(out, "{name}{{value=\"{label}\"}} {value}");
        }
        out
    }
}
