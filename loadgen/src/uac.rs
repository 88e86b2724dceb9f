//! The calling side, sans-IO: [`UacCore`] starts calls, reacts to responses
//! and timers, and returns the messages to send as [`Out`]s. The driver in
//! [`crate::run`] owns the sockets and the clock.
//!
//! Per call: INVITE → 1xx → 200 → ACK → hold → BYE → 200, or (for the share
//! of calls chosen for CANCEL) INVITE → 1xx → CANCEL → 200 → 487 → ACK.
//! Over UDP, requests are retransmitted (Timer A for INVITE, Timer E for
//! CANCEL and BYE) and a call fails after 64·T1 without a final response.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use peering_proto::msg::{HeaderName, Message};

use crate::Out;
use crate::numbers::Numbers;
use crate::sip::{self, ResponseView, Transport};
use crate::stats::Stats;
use crate::timers::Timers;

/// Signs INVITEs: returns the value of an Identity header for a call from
/// `from` to `to` (both header values), or `None` to send none.
pub trait IdentityHook: Send + Sync {
    /// The Identity header value, signed at `now_unix` (UNIX seconds).
    fn identity(&self, from: &str, to: &str, now_unix: u64) -> Option<String>;
}

/// How the UAC behaves.
#[derive(Debug, Clone)]
pub struct UacConfig {
    /// Transport of every flow.
    pub transport: Transport,
    /// Where requests go (the node, or the UAS directly).
    pub target: SocketAddr,
    /// User part of From.
    pub caller: String,
    /// Time between ACK and BYE.
    pub hold: Duration,
    /// Share of calls (0..=100 %) cancelled after `cancel_after`.
    pub cancel_percent: u32,
    /// Delay from INVITE to CANCEL for those calls (sent once a provisional
    /// response has arrived).
    pub cancel_after: Duration,
    /// A call not answered within this time is cancelled and counted failed.
    pub answer_timeout: Duration,
    /// RFC 3261 T1.
    pub t1: Duration,
    /// RFC 3261 T2.
    pub t2: Duration,
    /// Include an SDP offer in INVITEs.
    pub sdp: bool,
    /// Number of this worker (part of every Call-ID).
    pub worker: u32,
    /// Run identifier (part of every Call-ID) so that leftovers of an
    /// earlier run never match.
    pub nonce: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Calling,
    Proceeding,
    Cancelling,
    Confirmed,
    Terminating,
}

#[derive(Debug)]
struct Dialog {
    ruri: String,
    routes: String,
    to: String,
    ack: Bytes,
}

#[derive(Debug)]
struct Call {
    state: State,
    flow: u32,
    cancel: bool,
    callee: Box<str>,
    sent_at: Instant,
    /// Message retransmitted on Timer A/E, if any.
    rtx: Option<Bytes>,
    rtx_interval: Duration,
    next_rtx: Option<Instant>,
    /// Timer B/F, or the next action (CANCEL, BYE) in Proceeding/Confirmed.
    deadline: Instant,
    timer_seq: u32,
    dialog: Option<Box<Dialog>>,
}

#[derive(Debug, Default)]
struct Slot {
    generation: u32,
    call: Option<Call>,
}

#[derive(Debug)]
struct Flow {
    local: SocketAddr,
    /// `host:port` of the local address.
    local_str: String,
    /// The local IP address, rendered.
    ip_str: String,
}

/// The UAC state machine of one worker.
pub struct UacCore {
    cfg: UacConfig,
    numbers: Numbers,
    identity: Option<std::sync::Arc<dyn IdentityHook>>,
    flows: Vec<Flow>,
    next_flow: usize,
    slots: Vec<Slot>,
    free: Vec<u32>,
    timers: Timers,
    in_flight: usize,
    seq: u64,
    start: Instant,
    target_str: String,
    stats: Stats,
}

impl std::fmt::Debug for UacCore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UacCore")
            .field("cfg", &self.cfg)
            .field("in_flight", &self.in_flight)
            .finish_non_exhaustive()
    }
}

impl UacCore {
    /// A UAC with no flow yet; `start` is time zero of the timeline.
    pub fn new(
        cfg: UacConfig,
        numbers: Numbers,
        identity: Option<std::sync::Arc<dyn IdentityHook>>,
        start: Instant,
    ) -> Self {
        let target_str = cfg.target.to_string();
        Self {
            cfg,
            numbers,
            identity,
            flows: Vec::new(),
            next_flow: 0,
            slots: Vec::new(),
            free: Vec::new(),
            timers: Timers::new(),
            in_flight: 0,
            seq: 0,
            start,
            target_str,
            stats: Stats::default(),
        }
    }

    /// Registers a flow (a UDP socket or a connection) whose local address is
    /// `local`; returns its index, used in [`Out::flow`].
    pub fn add_flow(&mut self, local: SocketAddr) -> usize {
        self.flows.push(Flow {
            local,
            local_str: local.to_string(),
            ip_str: local.ip().to_string(),
        });
        self.flows.len() - 1
    }

    /// Calls in flight.
    pub fn in_flight(&self) -> usize {
        self.in_flight
    }

    /// The counters so far.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Ends the run: calls still in flight count as failed (`unfinished`),
    /// and the counters are returned (the core is left empty).
    pub fn finish(&mut self, now: Instant) -> Stats {
        let sec = self.sec(now);
        for slot in &mut self.slots {
            if slot.call.take().is_some() {
                self.stats.fail(sec, "unfinished");
            }
        }
        self.in_flight = 0;
        self.timers.clear();
        std::mem::take(&mut self.stats)
    }

    /// The transport of the flows.
    pub fn transport(&self) -> Transport {
        self.cfg.transport
    }

    /// Where requests go.
    pub fn target(&self) -> SocketAddr {
        self.cfg.target
    }

    /// Counts a received message that did not parse.
    pub fn count_unparsable(&mut self) {
        self.stats.unparsable += 1;
    }

    /// Counts messages that could not be sent.
    pub fn count_send_errors(&mut self, n: u64) {
        self.stats.send_errors += n;
    }

    /// Counts calls not started because the in-flight cap was reached.
    pub fn count_throttled(&mut self, n: u64) {
        self.stats.throttled += n;
    }

    fn sec(&self, now: Instant) -> usize {
        now.saturating_duration_since(self.start).as_secs() as usize
    }

    /// The earliest pending timer.
    pub fn next_timer(&self) -> Option<Instant> {
        self.timers.next()
    }

    fn put_call_id(buf: &mut BytesMut, cfg: &UacConfig, slot: u32, gen_: u32) {
        sip::put_hex(buf, u64::from(cfg.nonce));
        buf.put_u8(b'.');
        sip::put_hex(buf, u64::from(cfg.worker));
        buf.put_u8(b'.');
        sip::put_hex(buf, u64::from(slot));
        buf.put_u8(b'.');
        sip::put_hex(buf, u64::from(gen_));
    }

    fn parse_call_id(&self, cid: &str) -> Option<(u32, u32)> {
        let mut it = cid.split('.');
        let nonce = u32::from_str_radix(it.next()?, 16).ok()?;
        let worker = u32::from_str_radix(it.next()?, 16).ok()?;
        let slot = u32::from_str_radix(it.next()?, 16).ok()?;
        let gen_ = u32::from_str_radix(it.next()?, 16).ok()?;
        if it.next().is_some() || nonce != self.cfg.nonce || worker != self.cfg.worker {
            return None;
        }
        Some((slot, gen_))
    }

    /// Writes a request's start line and the headers every request has.
    #[allow(clippy::too_many_arguments)]
    fn put_request(
        &self,
        buf: &mut BytesMut,
        method: &str,
        ruri: &str,
        flow: u32,
        slot: u32,
        gen_: u32,
        branch_suffix: u8,
        routes: &str,
        to: &str,
        cseq: u32,
    ) {
        let f = &self.flows[flow as usize];
        buf.put_slice(method.as_bytes());
        buf.put_u8(b' ');
        buf.put_slice(ruri.as_bytes());
        buf.put_slice(b" SIP/2.0\r\nVia: SIP/2.0/");
        buf.put_slice(self.cfg.transport.via_token().as_bytes());
        buf.put_u8(b' ');
        buf.put_slice(f.local_str.as_bytes());
        buf.put_slice(b";branch=z9hG4bK");
        Self::put_call_id(buf, &self.cfg, slot, gen_);
        buf.put_u8(branch_suffix);
        if self.cfg.transport.is_unreliable() {
            buf.put_slice(b";rport");
        }
        buf.put_slice(b"\r\nMax-Forwards: 70\r\n");
        buf.put_slice(routes.as_bytes());
        buf.put_slice(b"From: <sip:");
        buf.put_slice(self.cfg.caller.as_bytes());
        buf.put_u8(b'@');
        buf.put_slice(f.ip_str.as_bytes());
        buf.put_slice(b">;tag=");
        Self::put_call_id(buf, &self.cfg, slot, gen_);
        buf.put_slice(b"\r\nTo: ");
        buf.put_slice(to.as_bytes());
        buf.put_slice(b"\r\nCall-ID: ");
        Self::put_call_id(buf, &self.cfg, slot, gen_);
        buf.put_slice(b"\r\nCSeq: ");
        sip::put_u64(buf, u64::from(cseq));
        buf.put_u8(b' ');
        buf.put_slice(method.as_bytes());
        buf.put_slice(b"\r\n");
    }

    fn initial_ruri(&self, callee: &str) -> String {
        let mut s = String::with_capacity(callee.len() + self.target_str.len() + 20);
        s.push_str("sip:");
        s.push_str(callee);
        s.push('@');
        s.push_str(&self.target_str);
        s.push_str(self.cfg.transport.uri_param());
        s
    }

    fn initial_to(&self, callee: &str) -> String {
        let mut s = String::with_capacity(callee.len() + self.target_str.len() + 8);
        s.push_str("<sip:");
        s.push_str(callee);
        s.push('@');
        s.push_str(&self.target_str);
        s.push('>');
        s
    }

    fn arm(&mut self, slot: u32, now: Instant) {
        let Some(call) = self.slots[slot as usize].call.as_mut() else {
            return;
        };
        call.timer_seq = call.timer_seq.wrapping_add(1);
        let at = match call.next_rtx {
            Some(r) if r < call.deadline => r,
            _ => call.deadline,
        };
        self.timers.push(now, at, slot, call.timer_seq);
    }

    fn free_slot(&mut self, slot: u32) {
        let s = &mut self.slots[slot as usize];
        if s.call.take().is_some() {
            s.generation = s.generation.wrapping_add(1);
            self.free.push(slot);
            self.in_flight -= 1;
        }
    }

    /// Starts one call now.
    pub fn start_call(&mut self, now: Instant, out: &mut Vec<Out>) {
        if self.flows.is_empty() {
            return;
        }
        let slot = match self.free.pop() {
            Some(s) => s,
            None => {
                self.slots.push(Slot::default());
                (self.slots.len() - 1) as u32
            }
        };
        let gen_ = self.slots[slot as usize].generation;
        let flow = self.next_flow as u32;
        self.next_flow = (self.next_flow + 1) % self.flows.len();
        let seq = self.seq;
        self.seq += 1;
        let cancel = (seq % 100) < u64::from(self.cfg.cancel_percent);
        let callee = self.numbers.get(seq);
        let ruri = self.initial_ruri(&callee);
        let to = self.initial_to(&callee);

        let mut buf = BytesMut::with_capacity(1024);
        self.put_request(
            &mut buf, "INVITE", &ruri, flow, slot, gen_, b'i', "", &to, 1,
        );
        let f = &self.flows[flow as usize];
        buf.put_slice(b"Contact: <sip:");
        buf.put_slice(self.cfg.caller.as_bytes());
        buf.put_u8(b'@');
        buf.put_slice(f.local_str.as_bytes());
        buf.put_slice(self.cfg.transport.uri_param().as_bytes());
        buf.put_slice(b">\r\n");
        if let Some(hook) = &self.identity {
            let from = format!("<sip:{}@{}>", self.cfg.caller, f.local.ip());
            let unix = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            if let Some(v) = hook.identity(&from, &to, unix) {
                sip::put_header(&mut buf, "Identity", &v);
            }
        }
        if self.cfg.sdp {
            sip::put_body(&mut buf, Some("application/sdp"), sip::SDP.as_bytes());
        } else {
            sip::put_body(&mut buf, None, b"");
        }
        let invite = buf.freeze();
        out.push(Out {
            flow: flow as usize,
            dest: self.cfg.target,
            data: invite.clone(),
        });
        let unreliable = self.cfg.transport.is_unreliable();
        self.slots[slot as usize].call = Some(Call {
            state: State::Calling,
            flow,
            cancel,
            callee: callee.into_boxed_str(),
            sent_at: now,
            rtx: unreliable.then_some(invite),
            rtx_interval: self.cfg.t1,
            next_rtx: unreliable.then_some(now + self.cfg.t1),
            deadline: now + self.cfg.t1 * 64,
            timer_seq: 0,
            dialog: None,
        });
        self.in_flight += 1;
        self.stats.peak_in_flight = self.stats.peak_in_flight.max(self.in_flight as u64);
        self.stats.attempted += 1;
        let sec = self.sec(now);
        self.stats.second(sec).attempted += 1;
        self.arm(slot, now);
    }

    /// Handles a received message.
    pub fn on_message(&mut self, msg: &Message, now: Instant, out: &mut Vec<Out>) {
        let Some(resp) = ResponseView::of(msg) else {
            // The UAS never sends requests to us in these scenarios.
            self.stats.stray += 1;
            return;
        };
        let Some((slot, gen_)) = self.parse_call_id(resp.call_id) else {
            self.stats.stray += 1;
            return;
        };
        let live = self
            .slots
            .get(slot as usize)
            .is_some_and(|s| s.generation == gen_ && s.call.is_some());
        if !live {
            self.stats.stray += 1;
            return;
        }
        if resp.is_invite {
            self.on_invite_response(slot, gen_, msg, &resp, now, out);
        } else if resp.is_cancel {
            self.on_cancel_response(slot, &resp, now);
        } else if resp.is_bye {
            self.on_bye_response(slot, &resp, now);
        } else {
            self.stats.stray += 1;
        }
    }

    fn on_invite_response(
        &mut self,
        slot: u32,
        gen_: u32,
        msg: &Message,
        resp: &ResponseView<'_>,
        now: Instant,
        out: &mut Vec<Out>,
    ) {
        let sec = self.sec(now);
        let Some(call) = self.slots[slot as usize].call.as_mut() else {
            return;
        };
        let state = call.state;
        match resp.status {
            100..=199 => {
                if state == State::Calling {
                    call.state = State::Proceeding;
                    call.rtx = None;
                    call.next_rtx = None;
                    call.deadline = if call.cancel {
                        (call.sent_at + self.cfg.cancel_after).max(now)
                    } else {
                        call.sent_at + self.cfg.answer_timeout
                    };
                    self.arm(slot, now);
                }
            }
            200..=299 => match state {
                State::Calling | State::Proceeding | State::Cancelling => {
                    let lat = now.saturating_duration_since(call.sent_at).as_micros();
                    self.stats
                        .latencies_us
                        .push(lat.min(u128::from(u32::MAX)) as u32);
                    let flow = call.flow;
                    let callee = call.callee.clone();
                    let ruri = msg
                        .header(&HeaderName::Contact)
                        .map(|c| sip::uri_of(c).to_owned())
                        .unwrap_or_else(|| self.initial_ruri(&callee));
                    let mut routes = String::new();
                    for rr in msg.header_values(&HeaderName::RecordRoute).iter().rev() {
                        routes.push_str("Route: ");
                        routes.push_str(rr);
                        routes.push_str("\r\n");
                    }
                    let to = resp.to.to_owned();
                    let mut buf = BytesMut::with_capacity(512);
                    self.put_request(
                        &mut buf, "ACK", &ruri, flow, slot, gen_, b'a', &routes, &to, 1,
                    );
                    sip::put_body(&mut buf, None, b"");
                    let ack = buf.freeze();
                    out.push(Out {
                        flow: flow as usize,
                        dest: self.cfg.target,
                        data: ack.clone(),
                    });
                    let hold = if state == State::Cancelling {
                        Duration::ZERO
                    } else {
                        self.cfg.hold
                    };
                    let Some(call) = self.slots[slot as usize].call.as_mut() else {
                        return;
                    };
                    call.dialog = Some(Box::new(Dialog {
                        ruri,
                        routes,
                        to,
                        ack,
                    }));
                    call.state = State::Confirmed;
                    call.rtx = None;
                    call.next_rtx = None;
                    call.deadline = now + hold;
                    self.arm(slot, now);
                }
                State::Confirmed | State::Terminating => {
                    // A retransmitted 2xx: our ACK was lost.
                    if let Some(d) = &call.dialog {
                        out.push(Out {
                            flow: call.flow as usize,
                            dest: self.cfg.target,
                            data: d.ack.clone(),
                        });
                    }
                }
            },
            _ => {
                if matches!(state, State::Confirmed | State::Terminating) {
                    return;
                }
                let flow = call.flow;
                let callee = call.callee.clone();
                let planned = call.cancel;
                let ruri = self.initial_ruri(&callee);
                let mut buf = BytesMut::with_capacity(512);
                self.put_request(
                    &mut buf, "ACK", &ruri, flow, slot, gen_, b'i', "", resp.to, 1,
                );
                sip::put_body(&mut buf, None, b"");
                out.push(Out {
                    flow: flow as usize,
                    dest: self.cfg.target,
                    data: buf.freeze(),
                });
                if state == State::Cancelling && resp.status == 487 {
                    if planned {
                        self.stats.succeed(sec);
                    } else {
                        self.stats.fail(sec, "no-answer");
                    }
                } else {
                    self.stats.fail(sec, &resp.status.to_string());
                }
                self.free_slot(slot);
            }
        }
    }

    fn on_cancel_response(&mut self, slot: u32, resp: &ResponseView<'_>, now: Instant) {
        let sec = self.sec(now);
        let Some(call) = self.slots[slot as usize].call.as_mut() else {
            return;
        };
        if call.state != State::Cancelling {
            return;
        }
        if (200..300).contains(&resp.status) {
            call.rtx = None;
            call.next_rtx = None;
            self.arm(slot, now);
        } else if resp.status >= 300 {
            self.stats.fail(sec, &format!("cancel-{}", resp.status));
            self.free_slot(slot);
        }
    }

    fn on_bye_response(&mut self, slot: u32, resp: &ResponseView<'_>, now: Instant) {
        let sec = self.sec(now);
        let Some(call) = self.slots[slot as usize].call.as_mut() else {
            return;
        };
        if call.state != State::Terminating {
            return;
        }
        match resp.status {
            100..=199 => {
                call.rtx = None;
                call.next_rtx = None;
                self.arm(slot, now);
            }
            200..=299 => {
                self.stats.succeed(sec);
                self.free_slot(slot);
            }
            s => {
                self.stats.fail(sec, &format!("bye-{s}"));
                self.free_slot(slot);
            }
        }
    }

    /// Fires every timer due at `now`.
    pub fn on_timers(&mut self, now: Instant, out: &mut Vec<Out>) {
        while let Some((slot, seq)) = self.timers.pop_due(now) {
            let Some(call) = self.slots[slot as usize].call.as_ref() else {
                continue;
            };
            if call.timer_seq != seq {
                continue;
            }
            self.fire(slot, now, out);
        }
    }

    fn fire(&mut self, slot: u32, now: Instant, out: &mut Vec<Out>) {
        let sec = self.sec(now);
        let gen_ = self.slots[slot as usize].generation;
        let t1 = self.cfg.t1;
        let t2 = self.cfg.t2;
        let target = self.cfg.target;
        let Some(call) = self.slots[slot as usize].call.as_mut() else {
            return;
        };
        let flow = call.flow;
        if now >= call.deadline {
            match call.state {
                State::Calling => {
                    self.stats.fail(sec, "timeout-invite");
                    self.free_slot(slot);
                }
                State::Cancelling => {
                    self.stats.fail(sec, "timeout-cancel");
                    self.free_slot(slot);
                }
                State::Terminating => {
                    self.stats.fail(sec, "timeout-bye");
                    self.free_slot(slot);
                }
                State::Proceeding => {
                    // Time to cancel (planned, or the answer timeout).
                    let callee = call.callee.clone();
                    let ruri = self.initial_ruri(&callee);
                    let to = self.initial_to(&callee);
                    let mut buf = BytesMut::with_capacity(512);
                    self.put_request(
                        &mut buf, "CANCEL", &ruri, flow, slot, gen_, b'i', "", &to, 1,
                    );
                    sip::put_body(&mut buf, None, b"");
                    let cancel = buf.freeze();
                    out.push(Out {
                        flow: flow as usize,
                        dest: target,
                        data: cancel.clone(),
                    });
                    let unreliable = self.cfg.transport.is_unreliable();
                    if let Some(call) = self.slots[slot as usize].call.as_mut() {
                        call.state = State::Cancelling;
                        call.rtx = unreliable.then_some(cancel);
                        call.rtx_interval = t1;
                        call.next_rtx = unreliable.then_some(now + t1);
                        call.deadline = now + t1 * 64;
                    }
                    self.arm(slot, now);
                }
                State::Confirmed => {
                    let Some(d) = call.dialog.take() else {
                        self.stats.fail(sec, "no-dialog");
                        self.free_slot(slot);
                        return;
                    };
                    let mut buf = BytesMut::with_capacity(512);
                    self.put_request(
                        &mut buf, "BYE", &d.ruri, flow, slot, gen_, b'b', &d.routes, &d.to, 2,
                    );
                    sip::put_body(&mut buf, None, b"");
                    let bye = buf.freeze();
                    out.push(Out {
                        flow: flow as usize,
                        dest: target,
                        data: bye.clone(),
                    });
                    let unreliable = self.cfg.transport.is_unreliable();
                    if let Some(call) = self.slots[slot as usize].call.as_mut() {
                        call.dialog = Some(d);
                        call.state = State::Terminating;
                        call.rtx = unreliable.then_some(bye);
                        call.rtx_interval = t1;
                        call.next_rtx = unreliable.then_some(now + t1);
                        call.deadline = now + t1 * 64;
                    }
                    self.arm(slot, now);
                }
            }
            return;
        }
        // A retransmission timer (A or E).
        if let (Some(at), Some(data)) = (call.next_rtx, call.rtx.clone())
            && now >= at
        {
            out.push(Out {
                flow: flow as usize,
                dest: target,
                data,
            });
            call.rtx_interval = if call.state == State::Calling {
                call.rtx_interval * 2
            } else {
                (call.rtx_interval * 2).min(t2)
            };
            call.next_rtx = Some(now + call.rtx_interval);
            self.stats.retransmit(sec);
        }
        self.arm(slot, now);
    }
}
