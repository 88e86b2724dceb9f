//! The called side, sans-IO: [`UasCore`] answers INVITEs by a configured
//! mix (answer at once, ring then answer, reject, or ring and never answer),
//! retransmits its final responses over UDP until the ACK (RFC 3261 §13.3.1.4
//! and Timer G), answers CANCEL (200 + 487) and BYE (200).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use peering_proto::msg::{Message, Method};
use serde::Serialize;

use crate::Out;
use crate::sip::{self, Transport};
use crate::timers::Timers;

/// Shares of INVITEs (percent, summing to at most 100; the rest is answered
/// at once) and their parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mix {
    /// Ring for `ring` then answer.
    pub ring_percent: u32,
    /// Reject with `reject_code`.
    pub reject_percent: u32,
    /// Ring and never answer (the caller times out or cancels).
    pub timeout_percent: u32,
    /// Final status for rejected calls.
    pub reject_code: u16,
}

/// How the UAS behaves.
#[derive(Debug, Clone)]
pub struct UasConfig {
    /// Transport of every flow.
    pub transport: Transport,
    /// Mix of outcomes.
    pub mix: Mix,
    /// Ringing time of the `ring` share.
    pub ring: Duration,
    /// Send 180 Ringing before answering at once.
    pub send_180: bool,
    /// RFC 3261 T1.
    pub t1: Duration,
    /// RFC 3261 T2.
    pub t2: Duration,
    /// Include an SDP answer in 200 responses.
    pub sdp: bool,
}

/// What the UAS saw and did.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq, Eq)]
pub struct UasStats {
    /// New INVITEs.
    pub invites: u64,
    /// INVITE retransmissions absorbed (last response repeated).
    pub invite_retransmissions: u64,
    /// Calls answered with 200.
    pub answered: u64,
    /// Calls rejected.
    pub rejected: u64,
    /// Calls left ringing (never answered).
    pub timed_out: u64,
    /// Calls cancelled (487 sent).
    pub cancelled: u64,
    /// ACKs that completed a transaction.
    pub acks: u64,
    /// Final responses never acknowledged within 64·T1.
    pub no_ack: u64,
    /// BYEs answered.
    pub byes: u64,
    /// Final responses retransmitted.
    pub retransmissions: u64,
    /// Messages that did not parse.
    pub unparsable: u64,
    /// Messages that could not be sent.
    pub send_errors: u64,
    /// Requests matching nothing (late ACKs, CANCEL of unknown calls, ...).
    pub stray: u64,
    /// Most calls held in memory at once.
    pub peak_calls: u64,
}

impl UasStats {
    /// Adds another worker's counters.
    pub fn merge(&mut self, o: &UasStats) {
        self.invites += o.invites;
        self.invite_retransmissions += o.invite_retransmissions;
        self.answered += o.answered;
        self.rejected += o.rejected;
        self.timed_out += o.timed_out;
        self.cancelled += o.cancelled;
        self.acks += o.acks;
        self.no_ack += o.no_ack;
        self.byes += o.byes;
        self.retransmissions += o.retransmissions;
        self.unparsable += o.unparsable;
        self.send_errors += o.send_errors;
        self.stray += o.stray;
        self.peak_calls += o.peak_calls;
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// 180 sent; answer at `deadline`.
    Ringing,
    /// 180 sent; never answered; forgotten at `deadline`.
    Silent,
    /// Final response sent; waiting for ACK, retransmitting over UDP.
    Completed,
}

#[derive(Debug)]
struct Call {
    key: Box<str>,
    state: State,
    flow: usize,
    dest: SocketAddr,
    invite: Message,
    last: Bytes,
    rtx_interval: Duration,
    next_rtx: Option<Instant>,
    deadline: Instant,
    timer_seq: u32,
}

#[derive(Debug, Default)]
struct Slot {
    generation: u32,
    call: Option<Call>,
}

/// The UAS state machine of one worker.
#[derive(Debug)]
pub struct UasCore {
    cfg: UasConfig,
    contacts: Vec<String>,
    calls: HashMap<Box<str>, u32>,
    slots: Vec<Slot>,
    free: Vec<u32>,
    timers: Timers,
    seq: u64,
    stats: UasStats,
}

impl UasCore {
    /// A UAS with no flow yet.
    pub fn new(cfg: UasConfig) -> Self {
        Self {
            cfg,
            contacts: Vec::new(),
            calls: HashMap::new(),
            slots: Vec::new(),
            free: Vec::new(),
            timers: Timers::new(),
            seq: 0,
            stats: UasStats::default(),
        }
    }

    /// Registers a flow whose local address is `local`; returns its index.
    pub fn add_flow(&mut self, local: SocketAddr) -> usize {
        self.contacts.push(format!(
            "<sip:uas@{local}{}>",
            self.cfg.transport.uri_param()
        ));
        self.contacts.len() - 1
    }

    /// The counters so far.
    pub fn stats(&self) -> &UasStats {
        &self.stats
    }

    /// Mutable counters (for the driver's send errors and parse failures).
    pub fn stats_mut(&mut self) -> &mut UasStats {
        &mut self.stats
    }

    /// Calls held in memory.
    pub fn calls(&self) -> usize {
        self.calls.len()
    }

    /// The earliest pending timer.
    pub fn next_timer(&self) -> Option<Instant> {
        self.timers.next()
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

    fn remove(&mut self, slot: u32) {
        let s = &mut self.slots[slot as usize];
        if let Some(call) = s.call.take() {
            s.generation = s.generation.wrapping_add(1);
            self.free.push(slot);
            self.calls.remove(&call.key);
        }
    }

    fn to_tag(slot: u32, gen_: u32) -> String {
        format!("{slot:x}.{gen_:x}")
    }

    fn answer(&mut self, slot: u32, now: Instant, out: &mut Vec<Out>) {
        let gen_ = self.slots[slot as usize].generation;
        let tag = Self::to_tag(slot, gen_);
        let sdp = self.cfg.sdp.then_some(sip::SDP);
        let unreliable = self.cfg.transport.is_unreliable();
        let t1 = self.cfg.t1;
        let Some(call) = self.slots[slot as usize].call.as_mut() else {
            return;
        };
        let contact = self.contacts[call.flow].as_str();
        let ok = sip::response(&call.invite, 200, "OK", &tag, Some(contact), true, sdp);
        out.push(Out {
            flow: call.flow,
            dest: call.dest,
            data: ok.clone(),
        });
        call.last = ok;
        call.state = State::Completed;
        call.rtx_interval = t1;
        call.next_rtx = unreliable.then_some(now + t1);
        call.deadline = now + t1 * 64;
        self.stats.answered += 1;
        self.arm(slot, now);
    }

    fn reject(&mut self, slot: u32, code: u16, reason: &str, now: Instant, out: &mut Vec<Out>) {
        let gen_ = self.slots[slot as usize].generation;
        let tag = Self::to_tag(slot, gen_);
        let unreliable = self.cfg.transport.is_unreliable();
        let t1 = self.cfg.t1;
        let Some(call) = self.slots[slot as usize].call.as_mut() else {
            return;
        };
        let resp = sip::response(&call.invite, code, reason, &tag, None, false, None);
        out.push(Out {
            flow: call.flow,
            dest: call.dest,
            data: resp.clone(),
        });
        call.last = resp;
        call.state = State::Completed;
        call.rtx_interval = t1;
        call.next_rtx = unreliable.then_some(now + t1);
        call.deadline = now + t1 * 64;
        self.arm(slot, now);
    }

    /// Handles a request or response received on `flow` from `from`.
    pub fn on_message(
        &mut self,
        msg: Message,
        flow: usize,
        from: SocketAddr,
        now: Instant,
        out: &mut Vec<Out>,
    ) {
        let Some(method) = msg.method().cloned() else {
            // Responses are not expected (the UAS sends no requests).
            self.stats.stray += 1;
            return;
        };
        let contact = self.contacts.get(flow).map_or("", String::as_str);
        match method {
            Method::Invite => self.on_invite(msg, flow, from, now, out),
            Method::Ack => match self.calls.get(msg.call_id()).copied() {
                Some(slot) => {
                    let completed = self.slots[slot as usize]
                        .call
                        .as_ref()
                        .is_some_and(|c| c.state == State::Completed);
                    if completed {
                        self.stats.acks += 1;
                        self.remove(slot);
                    } else {
                        self.stats.stray += 1;
                    }
                }
                None => self.stats.stray += 1,
            },
            Method::Cancel => {
                let slot = self.calls.get(msg.call_id()).copied();
                let ok = sip::response(&msg, 200, "OK", "", None, false, None);
                out.push(Out {
                    flow,
                    dest: from,
                    data: if slot.is_some() {
                        ok
                    } else {
                        sip::response(
                            &msg,
                            481,
                            "Call/Transaction Does Not Exist",
                            "",
                            None,
                            false,
                            None,
                        )
                    },
                });
                if let Some(slot) = slot {
                    let ringing = self.slots[slot as usize]
                        .call
                        .as_ref()
                        .is_some_and(|c| c.state != State::Completed);
                    if ringing {
                        self.stats.cancelled += 1;
                        self.reject(slot, 487, "Request Terminated", now, out);
                    }
                } else {
                    self.stats.stray += 1;
                }
            }
            Method::Bye => {
                // An early BYE (our 200 retransmitted, ACK lost) ends it too.
                if let Some(slot) = self.calls.get(msg.call_id()).copied() {
                    self.remove(slot);
                }
                self.stats.byes += 1;
                out.push(Out {
                    flow,
                    dest: from,
                    data: sip::response(&msg, 200, "OK", "", None, false, None),
                });
            }
            Method::Options => out.push(Out {
                flow,
                dest: from,
                data: sip::response(&msg, 200, "OK", "", Some(contact), false, None),
            }),
            _ => out.push(Out {
                flow,
                dest: from,
                data: sip::response(&msg, 405, "Method Not Allowed", "", None, false, None),
            }),
        }
    }

    fn on_invite(
        &mut self,
        msg: Message,
        flow: usize,
        from: SocketAddr,
        now: Instant,
        out: &mut Vec<Out>,
    ) {
        if let Some(&slot) = self.calls.get(msg.call_id()) {
            if let Some(call) = self.slots[slot as usize].call.as_ref() {
                self.stats.invite_retransmissions += 1;
                out.push(Out {
                    flow: call.flow,
                    dest: call.dest,
                    data: call.last.clone(),
                });
            }
            return;
        }
        self.stats.invites += 1;
        let slot = match self.free.pop() {
            Some(s) => s,
            None => {
                self.slots.push(Slot::default());
                (self.slots.len() - 1) as u32
            }
        };
        let gen_ = self.slots[slot as usize].generation;
        let key: Box<str> = msg.call_id().into();
        self.calls.insert(key.clone(), slot);
        self.stats.peak_calls = self.stats.peak_calls.max(self.calls.len() as u64);
        let pick = (self.seq % 100) as u32;
        self.seq += 1;
        let mix = self.cfg.mix;
        let tag = Self::to_tag(slot, gen_);
        let contact = self.contacts.get(flow).map_or("", String::as_str);
        let ringing = sip::response(&msg, 180, "Ringing", &tag, Some(contact), true, None);
        self.slots[slot as usize].call = Some(Call {
            key,
            state: State::Ringing,
            flow,
            dest: from,
            invite: msg,
            last: ringing.clone(),
            rtx_interval: self.cfg.t1,
            next_rtx: None,
            deadline: now,
            timer_seq: 0,
        });
        let ring_until = mix.ring_percent;
        let reject_until = ring_until + mix.reject_percent;
        let timeout_until = reject_until + mix.timeout_percent;
        if pick < ring_until {
            out.push(Out {
                flow,
                dest: from,
                data: ringing,
            });
            if let Some(call) = self.slots[slot as usize].call.as_mut() {
                call.deadline = now + self.cfg.ring;
            }
            self.arm(slot, now);
        } else if pick < reject_until {
            self.stats.rejected += 1;
            let code = mix.reject_code;
            self.reject(slot, code, reason_phrase(code), now, out);
        } else if pick < timeout_until {
            self.stats.timed_out += 1;
            out.push(Out {
                flow,
                dest: from,
                data: ringing,
            });
            if let Some(call) = self.slots[slot as usize].call.as_mut() {
                call.state = State::Silent;
                call.deadline = now + self.cfg.t1 * 64 * 4;
            }
            self.arm(slot, now);
        } else {
            if self.cfg.send_180 {
                out.push(Out {
                    flow,
                    dest: from,
                    data: ringing,
                });
            }
            self.answer(slot, now, out);
        }
    }

    /// Fires every timer due at `now`.
    pub fn on_timers(&mut self, now: Instant, out: &mut Vec<Out>) {
        while let Some((slot, seq)) = self.timers.pop_due(now) {
            let Some(call) = self.slots[slot as usize].call.as_mut() else {
                continue;
            };
            if call.timer_seq != seq {
                continue;
            }
            if now >= call.deadline {
                match call.state {
                    State::Ringing => self.answer(slot, now, out),
                    State::Silent => self.remove(slot),
                    State::Completed => {
                        self.stats.no_ack += 1;
                        self.remove(slot);
                    }
                }
                continue;
            }
            if let Some(at) = call.next_rtx
                && now >= at
            {
                out.push(Out {
                    flow: call.flow,
                    dest: call.dest,
                    data: call.last.clone(),
                });
                call.rtx_interval = (call.rtx_interval * 2).min(self.cfg.t2);
                call.next_rtx = Some(now + call.rtx_interval);
                self.stats.retransmissions += 1;
            }
            self.arm(slot, now);
        }
    }
}

/// The reason phrase of common final statuses.
pub fn reason_phrase(code: u16) -> &'static str {
    match code {
        403 => "Forbidden",
        404 => "Not Found",
        408 => "Request Timeout",
        480 => "Temporarily Unavailable",
        486 => "Busy Here",
        487 => "Request Terminated",
        500 => "Server Internal Error",
        503 => "Service Unavailable",
        603 => "Decline",
        _ => "Rejected",
    }
}
