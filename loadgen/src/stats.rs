//! Counters kept by each worker, merged at the end into a [`Summary`].

use std::collections::BTreeMap;

use serde::Serialize;

/// One second of the run.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq, Eq)]
pub struct Second {
    /// Calls started in this second.
    pub attempted: u64,
    /// Calls that completed their scenario in this second.
    pub succeeded: u64,
    /// Calls that failed in this second.
    pub failed: u64,
    /// Retransmissions sent in this second.
    pub retransmissions: u64,
}

/// The counters of one worker (or of a whole run after [`Stats::merge`]).
#[derive(Debug, Clone, Default)]
pub struct Stats {
    /// Calls started.
    pub attempted: u64,
    /// Calls that completed their scenario.
    pub succeeded: u64,
    /// Failed calls by reason (`"486"`, `"timeout-invite"`, `"bye-481"`, ...).
    pub failed: BTreeMap<String, u64>,
    /// Retransmissions sent (requests by the UAC, responses by the UAS).
    pub retransmissions: u64,
    /// Messages that could not be sent (socket buffer full, connection gone).
    pub send_errors: u64,
    /// Received messages that matched no call (late retransmissions).
    pub stray: u64,
    /// Received datagrams or frames that did not parse.
    pub unparsable: u64,
    /// Setup latencies (INVITE sent to 200 received), microseconds.
    pub latencies_us: Vec<u32>,
    /// Per-second timeline, index = second since the start.
    pub timeline: Vec<Second>,
    /// Most calls in flight at once.
    pub peak_in_flight: u64,
    /// Calls not started because the in-flight cap was reached.
    pub throttled: u64,
}

impl Stats {
    /// The timeline entry of second `sec`, created on demand.
    pub fn second(&mut self, sec: usize) -> &mut Second {
        if self.timeline.len() <= sec {
            self.timeline.resize(sec + 1, Second::default());
        }
        &mut self.timeline[sec]
    }

    /// Counts a failure with its reason.
    pub fn fail(&mut self, sec: usize, reason: &str) {
        match self.failed.get_mut(reason) {
            Some(n) => *n += 1,
            None => {
                self.failed.insert(reason.to_owned(), 1);
            }
        }
        self.second(sec).failed += 1;
    }

    /// Counts a success.
    pub fn succeed(&mut self, sec: usize) {
        self.succeeded += 1;
        self.second(sec).succeeded += 1;
    }

    /// Counts a retransmission.
    pub fn retransmit(&mut self, sec: usize) {
        self.retransmissions += 1;
        self.second(sec).retransmissions += 1;
    }

    /// Adds another worker's counters to these.
    pub fn merge(&mut self, other: Stats) {
        self.attempted += other.attempted;
        self.succeeded += other.succeeded;
        for (k, v) in other.failed {
            *self.failed.entry(k).or_default() += v;
        }
        self.retransmissions += other.retransmissions;
        self.send_errors += other.send_errors;
        self.stray += other.stray;
        self.unparsable += other.unparsable;
        self.latencies_us.extend(other.latencies_us);
        if self.timeline.len() < other.timeline.len() {
            self.timeline
                .resize(other.timeline.len(), Second::default());
        }
        for (a, b) in self.timeline.iter_mut().zip(other.timeline) {
            a.attempted += b.attempted;
            a.succeeded += b.succeeded;
            a.failed += b.failed;
            a.retransmissions += b.retransmissions;
        }
        self.peak_in_flight += other.peak_in_flight;
        self.throttled += other.throttled;
    }

    /// Total failed calls.
    pub fn failed_total(&self) -> u64 {
        self.failed.values().sum()
    }
}

/// Latency percentiles, microseconds.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq, Eq)]
pub struct Latency {
    /// Number of samples.
    pub samples: u64,
    /// Median.
    pub p50_us: u32,
    /// 99th percentile.
    pub p99_us: u32,
    /// Largest.
    pub max_us: u32,
}

impl Latency {
    /// Percentiles of `samples` (sorted in place).
    pub fn of(samples: &mut [u32]) -> Self {
        if samples.is_empty() {
            return Self::default();
        }
        samples.sort_unstable();
        let at = |q: f64| {
            let i = ((samples.len() as f64 - 1.0) * q).round() as usize;
            samples[i.min(samples.len() - 1)]
        };
        Self {
            samples: samples.len() as u64,
            p50_us: at(0.50),
            p99_us: at(0.99),
            max_us: samples[samples.len() - 1],
        }
    }
}

/// The JSON summary of a UAC run.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// `"uac"` or `"uas"`.
    pub role: &'static str,
    /// Transport used.
    pub transport: crate::sip::Transport,
    /// Rate asked for, calls per second.
    pub target_cps: f64,
    /// Seconds calls were started for.
    pub duration_s: f64,
    /// Calls started per second actually achieved over `duration_s`.
    pub achieved_cps: f64,
    /// Calls started.
    pub attempted: u64,
    /// Calls that completed their scenario.
    pub succeeded: u64,
    /// Failed calls.
    pub failed: u64,
    /// `failed / attempted`.
    pub failed_ratio: f64,
    /// Failed calls by reason.
    pub failed_by_reason: BTreeMap<String, u64>,
    /// Retransmissions sent.
    pub retransmissions: u64,
    /// Messages that could not be sent.
    pub send_errors: u64,
    /// Messages matching no call.
    pub stray: u64,
    /// Unparsable messages received.
    pub unparsable: u64,
    /// Highest number of calls in flight (sum of the workers' peaks).
    pub peak_in_flight: u64,
    /// Calls not started because the in-flight cap was reached.
    pub throttled: u64,
    /// Setup latency (INVITE sent to 200 received).
    pub setup_latency: Latency,
    /// Per-second timeline.
    pub timeline: Vec<Second>,
}

impl Summary {
    /// Builds the summary of merged counters.
    pub fn new(
        role: &'static str,
        transport: crate::sip::Transport,
        target_cps: f64,
        duration_s: f64,
        mut stats: Stats,
    ) -> Self {
        let failed = stats.failed_total();
        let failed_ratio = if stats.attempted == 0 {
            0.0
        } else {
            failed as f64 / stats.attempted as f64
        };
        Self {
            role,
            transport,
            target_cps,
            duration_s,
            achieved_cps: if duration_s > 0.0 {
                stats.attempted as f64 / duration_s
            } else {
                0.0
            },
            attempted: stats.attempted,
            succeeded: stats.succeeded,
            failed,
            failed_ratio,
            failed_by_reason: std::mem::take(&mut stats.failed),
            retransmissions: stats.retransmissions,
            send_errors: stats.send_errors,
            stray: stats.stray,
            unparsable: stats.unparsable,
            peak_in_flight: stats.peak_in_flight,
            throttled: stats.throttled,
            setup_latency: Latency::of(&mut stats.latencies_us),
            timeline: stats.timeline,
        }
    }
}
