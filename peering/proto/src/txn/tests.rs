//! Tests of the transaction layer: a QN-style harness with a virtual clock
//! (`Harness` for one machine, `Pair` for a client and a server over a
//! lossy fake wire). Nothing sleeps; retransmission times are asserted
//! exactly.

use std::collections::HashSet;
use std::mem::size_of;
use std::sync::Arc;
use std::time::{Duration, Instant};

use proptest::prelude::*;

use super::*;

/// A message as the machines see it: opaque, cheap to clone.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Msg {
    Request(&'static str),
    Response(u16),
    /// The ACK built by `ack_for`: for which request and which status.
    Ack {
        method: &'static str,
        status: u16,
    },
}

impl TxnMessage for Msg {
    fn ack_for(request: &Self, response: &Self) -> Self {
        match (request, response) {
            (Msg::Request(method), Msg::Response(status)) => Msg::Ack {
                method,
                status: *status,
            },
            other => panic!("ack_for called with {other:?}"),
        }
    }
}

fn ms(millis: u64) -> Duration {
    Duration::from_millis(millis)
}

/// The one place that reads the real clock: an arbitrary origin for the
/// virtual one.
fn epoch() -> Instant {
    #[expect(
        clippy::disallowed_methods,
        reason = "tests need one arbitrary Instant as the virtual clock's origin"
    )]
    Instant::now()
}

const UDP: Reliability = Reliability::Unreliable;
const TCP: Reliability = Reliability::Reliable;

fn config() -> TimerConfig {
    TimerConfig::default()
}

/// One machine on a virtual clock. Every transmission and event is
/// logged with its time since the origin.
struct Harness<T> {
    txn: T,
    start: Instant,
    now: Instant,
    sent: Vec<(Duration, Msg)>,
    events: Vec<(Duration, Event<Msg>)>,
}

impl<T: Transaction<Message = Msg>> Harness<T> {
    fn new(make: impl FnOnce(Instant) -> T) -> Self {
        let start = epoch();
        let mut harness = Self {
            txn: make(start),
            start,
            now: start,
            sent: Vec::new(),
            events: Vec::new(),
        };
        harness.drain();
        harness
    }

    fn elapsed(&self) -> Duration {
        self.now - self.start
    }

    /// Follows the polling contract: transmissions, then events.
    fn drain(&mut self) {
        let at = self.elapsed();
        while let Some(message) = self.txn.poll_transmit() {
            self.sent.push((at, message));
        }
        while let Some(event) = self.txn.poll_event() {
            assert!(
                !self.events.iter().any(|(_, e)| *e == Event::Terminated),
                "event {event:?} after Terminated"
            );
            self.events.push((at, event));
        }
    }

    /// Fires every timer due up to `t` after the origin, at its exact
    /// deadline, then sets the clock to `t`.
    fn advance_to(&mut self, t: Duration) {
        let target = self.start + t;
        assert!(target >= self.now, "the clock goes forward only");
        while let Some(deadline) = self.txn.poll_timeout() {
            if deadline > target {
                break;
            }
            assert!(deadline >= self.now, "a deadline in the past");
            self.now = deadline;
            self.txn.handle_timeout(deadline);
            self.drain();
        }
        self.now = target;
    }

    /// Runs the clock until no timer is left (bounded).
    fn run(&mut self) {
        for _ in 0..1000 {
            match self.txn.poll_timeout() {
                Some(deadline) => self.advance_to(deadline - self.start),
                None => return,
            }
        }
        panic!("timers never stop");
    }

    /// At `t`, gives the machine an input.
    fn input_at(&mut self, t: Duration, input: impl FnOnce(&mut T, Instant)) {
        self.advance_to(t);
        input(&mut self.txn, self.now);
        self.drain();
    }

    fn sent_times(&self) -> Vec<u64> {
        self.sent.iter().map(|(t, _)| as_ms(*t)).collect()
    }

    fn take_sent(&mut self) -> Vec<(u64, Msg)> {
        self.sent.drain(..).map(|(t, m)| (as_ms(t), m)).collect()
    }

    fn take_events(&mut self) -> Vec<(u64, Event<Msg>)> {
        self.events.drain(..).map(|(t, e)| (as_ms(t), e)).collect()
    }
}

fn as_ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).expect("test durations are small")
}

fn response(status: u16) -> Event<Msg> {
    Event::Response {
        status,
        response: Msg::Response(status),
    }
}

// --- client INVITE ------------------------------------------------------

fn client_invite(reliability: Reliability) -> Harness<ClientInvite<Msg>> {
    Harness::new(|now| ClientInvite::new(now, Msg::Request("INVITE"), reliability, config()))
}

#[test]
fn client_invite_timer_a_doubles_without_cap_until_timer_b() {
    let mut h = client_invite(UDP);
    assert_eq!(h.txn.state(), TxnState::Calling);
    h.run();
    // Timer A: T1, 2T1, 4T1, ... (no T2 cap for INVITE); Timer B at 64*T1.
    assert_eq!(h.sent_times(), [0, 500, 1500, 3500, 7500, 15500, 31500]);
    assert!(h.sent.iter().all(|(_, m)| *m == Msg::Request("INVITE")));
    assert_eq!(
        h.take_events(),
        [
            (32000, Event::Timeout(Timer::B)),
            (32000, Event::Terminated)
        ]
    );
    assert!(h.txn.is_terminated());
    assert_eq!(h.txn.poll_timeout(), None);
}

#[test]
fn client_invite_reliable_sends_once_and_times_out_with_b() {
    let mut h = client_invite(TCP);
    assert_eq!(h.txn.poll_timeout(), Some(h.start + ms(32000)));
    h.run();
    assert_eq!(h.sent_times(), [0]);
    assert_eq!(
        h.take_events(),
        [
            (32000, Event::Timeout(Timer::B)),
            (32000, Event::Terminated)
        ]
    );
}

#[test]
fn client_invite_timers_follow_configured_t1() {
    let config = TimerConfig {
        t1: ms(100),
        ..TimerConfig::default()
    };
    let mut h = Harness::new(|now| ClientInvite::new(now, Msg::Request("INVITE"), UDP, config));
    h.run();
    assert_eq!(h.sent_times(), [0, 100, 300, 700, 1500, 3100, 6300]);
    assert_eq!(h.take_events()[0], (6400, Event::Timeout(Timer::B)));
}

#[test]
fn client_invite_timer_d_is_at_least_32_s() {
    for (t1, d) in [(100, 32_000), (500, 32_000), (1000, 64_000)] {
        let config = TimerConfig {
            t1: ms(t1),
            ..TimerConfig::default()
        };
        assert_eq!(config.duration(Timer::D, UDP), Some(ms(d)));
        assert_eq!(config.duration(Timer::D, TCP), Some(Duration::ZERO));
        let mut h = Harness::new(|now| ClientInvite::new(now, Msg::Request("INVITE"), UDP, config));
        h.input_at(ms(10), |t, now| {
            t.handle_response(now, 404, Msg::Response(404))
        });
        assert_eq!(h.txn.poll_timeout(), Some(h.start + ms(10 + d)));
    }
}

#[test]
fn machines_keep_every_timer_configuration_exactly() {
    use super::timers::Settings;
    for config in [
        TimerConfig::default(),
        TimerConfig {
            t1: ms(100),
            ..TimerConfig::default()
        },
        TimerConfig {
            t1: Duration::from_micros(1500),
            ..TimerConfig::default()
        },
        TimerConfig {
            t4: Duration::from_nanos(1),
            ..TimerConfig::default()
        },
        TimerConfig {
            t2: Duration::from_secs(u64::from(u32::MAX)),
            ..TimerConfig::default()
        },
        TimerConfig {
            t1: Duration::MAX,
            t2: Duration::MAX,
            t4: Duration::MAX,
        },
    ] {
        for reliability in [UDP, TCP] {
            let settings = Settings::new(&config, reliability);
            assert_eq!(settings.config(), config);
            assert_eq!(settings.reliability(), reliability);
        }
    }
    assert!(matches!(
        Settings::new(&TimerConfig::default(), UDP),
        Settings::Millis { .. }
    ));
    assert!(size_of::<Settings>() <= 16);
}

#[test]
fn absurd_timer_values_do_not_overflow() {
    let config = TimerConfig {
        t1: Duration::MAX,
        t2: Duration::MAX,
        t4: Duration::MAX,
    };
    let start = epoch();
    let mut txn = ClientNonInvite::new(start, Msg::Request("OPTIONS"), UDP, config);
    let first = txn.poll_timeout().unwrap();
    assert!(first > start);
    assert_eq!(first, start + ms(24 * 60 * 60 * 1000), "clamped to a day");
    // Timers E and F are both clamped: F wins.
    txn.handle_timeout(first);
    assert!(txn.is_terminated());
    let mut txn = ServerInvite::new(UDP, config);
    txn.respond(start, 500, Msg::Response(500));
    assert!(txn.poll_timeout().unwrap() > start);
}

#[test]
fn client_invite_provisional_stops_retransmissions() {
    let mut h = client_invite(UDP);
    h.input_at(ms(700), |t, now| {
        t.handle_response(now, 100, Msg::Response(100))
    });
    assert_eq!(h.txn.state(), TxnState::Proceeding);
    assert_eq!(h.txn.poll_timeout(), None, "no timer in Proceeding");
    h.input_at(ms(900), |t, now| {
        t.handle_response(now, 180, Msg::Response(180))
    });
    h.advance_to(ms(200_000));
    assert_eq!(h.sent_times(), [0, 500]);
    assert_eq!(
        h.take_events(),
        [(700, response(100)), (900, response(180))]
    );
    assert_eq!(h.txn.state(), TxnState::Proceeding);
}

#[test]
fn client_invite_non_2xx_is_acked_and_retransmissions_reacked() {
    let mut h = client_invite(UDP);
    h.input_at(ms(600), |t, now| {
        t.handle_response(now, 180, Msg::Response(180))
    });
    h.input_at(ms(1000), |t, now| {
        t.handle_response(now, 486, Msg::Response(486))
    });
    assert_eq!(h.txn.state(), TxnState::Completed);
    let ack = Msg::Ack {
        method: "INVITE",
        status: 486,
    };
    // Retransmissions of the final response re-send the ACK and are not
    // passed to the TU; provisional and 2xx stragglers are absorbed.
    h.input_at(ms(1500), |t, now| {
        t.handle_response(now, 486, Msg::Response(486))
    });
    h.input_at(ms(3500), |t, now| {
        t.handle_response(now, 486, Msg::Response(486))
    });
    h.input_at(ms(3600), |t, now| {
        t.handle_response(now, 180, Msg::Response(180))
    });
    h.input_at(ms(3700), |t, now| {
        t.handle_response(now, 200, Msg::Response(200))
    });
    assert_eq!(h.txn.poll_timeout(), Some(h.start + ms(33000)), "Timer D");
    h.run();
    assert_eq!(
        h.take_sent(),
        [
            (0, Msg::Request("INVITE")),
            (500, Msg::Request("INVITE")),
            (1000, ack.clone()),
            (1500, ack.clone()),
            (3500, ack),
        ]
    );
    assert_eq!(
        h.take_events(),
        [
            (600, response(180)),
            (1000, response(486)),
            (33000, Event::Terminated)
        ]
    );
}

#[test]
fn client_invite_non_2xx_on_reliable_transport_terminates_at_once() {
    let mut h = client_invite(TCP);
    h.input_at(ms(50), |t, now| {
        t.handle_response(now, 503, Msg::Response(503))
    });
    assert!(h.txn.is_terminated(), "Timer D is zero");
    assert_eq!(
        h.take_sent(),
        [
            (0, Msg::Request("INVITE")),
            (
                50,
                Msg::Ack {
                    method: "INVITE",
                    status: 503
                }
            )
        ]
    );
    assert_eq!(
        h.take_events(),
        [(50, response(503)), (50, Event::Terminated)]
    );
}

#[test]
fn client_invite_rfc6026_accepted_passes_every_2xx_to_the_tu() {
    for reliability in [UDP, TCP] {
        let mut h = client_invite(reliability);
        h.input_at(ms(200), |t, now| {
            t.handle_response(now, 200, Msg::Response(200))
        });
        assert_eq!(h.txn.state(), TxnState::Accepted);
        assert_eq!(h.txn.poll_timeout(), Some(h.start + ms(32200)), "Timer M");
        // 2xx retransmissions (and 2xx from other forks) go to the TU;
        // anything else is dropped; the transaction never ACKs a 2xx.
        h.input_at(ms(700), |t, now| {
            t.handle_response(now, 200, Msg::Response(200))
        });
        h.input_at(ms(800), |t, now| {
            t.handle_response(now, 183, Msg::Response(183))
        });
        h.input_at(ms(900), |t, now| {
            t.handle_response(now, 486, Msg::Response(486))
        });
        h.input_at(ms(1700), |t, now| {
            t.handle_response(now, 202, Msg::Response(202))
        });
        h.run();
        assert_eq!(h.take_sent(), [(0, Msg::Request("INVITE"))]);
        assert_eq!(
            h.take_events(),
            [
                (200, response(200)),
                (700, response(200)),
                (1700, response(202)),
                (32200, Event::Terminated)
            ]
        );
    }
}

#[test]
fn client_invite_2xx_after_provisional_goes_to_accepted() {
    let mut h = client_invite(UDP);
    h.input_at(ms(100), |t, now| {
        t.handle_response(now, 180, Msg::Response(180))
    });
    h.input_at(ms(5000), |t, now| {
        t.handle_response(now, 200, Msg::Response(200))
    });
    assert_eq!(h.txn.state(), TxnState::Accepted);
    h.run();
    assert_eq!(
        h.take_events(),
        [
            (100, response(180)),
            (5000, response(200)),
            (37000, Event::Terminated)
        ]
    );
}

#[test]
fn client_invite_drops_status_codes_outside_100_to_699() {
    let mut h = client_invite(UDP);
    h.input_at(ms(10), |t, now| {
        t.handle_response(now, 99, Msg::Response(99))
    });
    h.input_at(ms(20), |t, now| {
        t.handle_response(now, 700, Msg::Response(700))
    });
    assert_eq!(h.txn.state(), TxnState::Calling);
    assert!(h.take_events().is_empty());
}

// --- client non-INVITE --------------------------------------------------

fn client_non_invite(reliability: Reliability) -> Harness<ClientNonInvite<Msg>> {
    Harness::new(|now| ClientNonInvite::new(now, Msg::Request("OPTIONS"), reliability, config()))
}

#[test]
fn client_non_invite_timer_e_caps_at_t2_until_timer_f() {
    let mut h = client_non_invite(UDP);
    assert_eq!(h.txn.state(), TxnState::Trying);
    h.run();
    assert_eq!(
        h.sent_times(),
        [
            0, 500, 1500, 3500, 7500, 11500, 15500, 19500, 23500, 27500, 31500
        ]
    );
    assert_eq!(
        h.take_events(),
        [
            (32000, Event::Timeout(Timer::F)),
            (32000, Event::Terminated)
        ]
    );
}

#[test]
fn client_non_invite_reliable_sends_once_and_times_out_with_f() {
    let mut h = client_non_invite(TCP);
    h.run();
    assert_eq!(h.sent_times(), [0]);
    assert_eq!(
        h.take_events(),
        [
            (32000, Event::Timeout(Timer::F)),
            (32000, Event::Terminated)
        ]
    );
}

#[test]
fn client_non_invite_proceeding_retransmits_every_t2_and_f_still_runs() {
    let mut h = client_non_invite(UDP);
    h.input_at(ms(600), |t, now| {
        t.handle_response(now, 100, Msg::Response(100))
    });
    assert_eq!(h.txn.state(), TxnState::Proceeding);
    h.input_at(ms(2000), |t, now| {
        t.handle_response(now, 183, Msg::Response(183))
    });
    h.run();
    // E was due at 1.5 s; from then on it is reset to T2 in Proceeding.
    assert_eq!(
        h.sent_times(),
        [0, 500, 1500, 5500, 9500, 13500, 17500, 21500, 25500, 29500]
    );
    assert_eq!(
        h.take_events(),
        [
            (600, response(100)),
            (2000, response(183)),
            (32000, Event::Timeout(Timer::F)),
            (32000, Event::Terminated)
        ]
    );
}

#[test]
fn client_non_invite_final_response_then_timer_k_absorbs_retransmissions() {
    let mut h = client_non_invite(UDP);
    h.input_at(ms(800), |t, now| {
        t.handle_response(now, 404, Msg::Response(404))
    });
    assert_eq!(h.txn.state(), TxnState::Completed);
    assert_eq!(
        h.txn.poll_timeout(),
        Some(h.start + ms(5800)),
        "Timer K = T4"
    );
    h.input_at(ms(1000), |t, now| {
        t.handle_response(now, 404, Msg::Response(404))
    });
    h.input_at(ms(1100), |t, now| {
        t.handle_response(now, 100, Msg::Response(100))
    });
    h.run();
    assert_eq!(
        h.sent_times(),
        [0, 500],
        "no retransmission after the final response"
    );
    assert_eq!(
        h.take_events(),
        [(800, response(404)), (5800, Event::Terminated)]
    );
}

#[test]
fn client_non_invite_reliable_final_response_terminates_at_once() {
    let mut h = client_non_invite(TCP);
    h.input_at(ms(30), |t, now| {
        t.handle_response(now, 200, Msg::Response(200))
    });
    assert_eq!(
        h.take_events(),
        [(30, response(200)), (30, Event::Terminated)]
    );
    assert_eq!(h.txn.poll_timeout(), None);
}

// --- server INVITE ------------------------------------------------------

fn server_invite(reliability: Reliability) -> Harness<ServerInvite<Msg>> {
    Harness::new(|_| ServerInvite::new(reliability, config()))
}

#[test]
fn server_invite_absorbs_retransmissions_in_proceeding_and_resends_the_100() {
    let mut h = server_invite(UDP);
    assert_eq!(h.txn.state(), TxnState::Proceeding);
    // Before the TU responded, a retransmission is absorbed with nothing to send.
    h.input_at(ms(100), |t, now| t.handle_request(now));
    h.input_at(ms(150), |t, now| t.respond(now, 100, Msg::Response(100)));
    h.input_at(ms(500), |t, now| t.handle_request(now));
    h.input_at(ms(900), |t, now| t.respond(now, 180, Msg::Response(180)));
    h.input_at(ms(1500), |t, now| t.handle_request(now));
    assert_eq!(h.txn.poll_timeout(), None);
    assert_eq!(
        h.take_sent(),
        [
            (150, Msg::Response(100)),
            (500, Msg::Response(100)),
            (900, Msg::Response(180)),
            (1500, Msg::Response(180)),
        ]
    );
    assert_eq!(
        h.take_events(),
        [
            (100, Event::RequestRetransmission),
            (500, Event::RequestRetransmission),
            (1500, Event::RequestRetransmission)
        ]
    );
}

#[test]
fn server_invite_timer_g_caps_at_t2_until_timer_h() {
    let mut h = server_invite(UDP);
    h.input_at(ms(0), |t, now| t.respond(now, 486, Msg::Response(486)));
    assert_eq!(h.txn.state(), TxnState::Completed);
    h.run();
    assert_eq!(
        h.sent_times(),
        [
            0, 500, 1500, 3500, 7500, 11500, 15500, 19500, 23500, 27500, 31500
        ]
    );
    assert!(h.sent.iter().all(|(_, m)| *m == Msg::Response(486)));
    assert_eq!(
        h.take_events(),
        [
            (32000, Event::Timeout(Timer::H)),
            (32000, Event::Terminated)
        ]
    );
}

#[test]
fn server_invite_completed_resends_the_final_response_on_retransmitted_invite() {
    let mut h = server_invite(UDP);
    h.input_at(ms(100), |t, now| t.respond(now, 100, Msg::Response(100)));
    h.input_at(ms(200), |t, now| t.respond(now, 603, Msg::Response(603)));
    h.input_at(ms(300), |t, now| t.handle_request(now));
    // The TU cannot respond again in Completed.
    h.input_at(ms(350), |t, now| t.respond(now, 200, Msg::Response(200)));
    h.input_at(ms(400), |t, now| {
        t.handle_ack(
            now,
            Msg::Ack {
                method: "INVITE",
                status: 603,
            },
        )
    });
    assert_eq!(h.txn.state(), TxnState::Confirmed);
    assert_eq!(
        h.txn.poll_timeout(),
        Some(h.start + ms(5400)),
        "Timer I = T4"
    );
    // Confirmed absorbs ACKs and INVITEs without sending.
    h.input_at(ms(500), |t, now| {
        t.handle_ack(
            now,
            Msg::Ack {
                method: "INVITE",
                status: 603,
            },
        )
    });
    h.input_at(ms(600), |t, now| t.handle_request(now));
    h.run();
    assert_eq!(
        h.take_sent(),
        [
            (100, Msg::Response(100)),
            (200, Msg::Response(603)),
            (300, Msg::Response(603)),
        ]
    );
    assert_eq!(
        h.take_events(),
        [
            (300, Event::RequestRetransmission),
            (600, Event::RequestRetransmission),
            (5400, Event::Terminated)
        ]
    );
}

#[test]
fn server_invite_reliable_has_no_timer_g_and_zero_timer_i() {
    let mut h = server_invite(TCP);
    h.input_at(ms(10), |t, now| t.respond(now, 404, Msg::Response(404)));
    assert_eq!(
        h.txn.poll_timeout(),
        Some(h.start + ms(32010)),
        "only Timer H"
    );
    h.input_at(ms(90), |t, now| {
        t.handle_ack(
            now,
            Msg::Ack {
                method: "INVITE",
                status: 404,
            },
        )
    });
    assert!(h.txn.is_terminated());
    assert_eq!(h.take_sent(), [(10, Msg::Response(404))]);
    assert_eq!(h.take_events(), [(90, Event::Terminated)]);
}

#[test]
fn server_invite_reliable_without_ack_times_out_with_h() {
    let mut h = server_invite(TCP);
    h.input_at(ms(10), |t, now| t.respond(now, 500, Msg::Response(500)));
    h.run();
    assert_eq!(h.sent_times(), [10]);
    assert_eq!(
        h.take_events(),
        [
            (32010, Event::Timeout(Timer::H)),
            (32010, Event::Terminated)
        ]
    );
}

#[test]
fn server_invite_rfc6026_accepted() {
    for reliability in [UDP, TCP] {
        let mut h = server_invite(reliability);
        h.input_at(ms(20), |t, now| t.respond(now, 100, Msg::Response(100)));
        h.input_at(ms(40), |t, now| t.respond(now, 200, Msg::Response(200)));
        assert_eq!(h.txn.state(), TxnState::Accepted);
        assert_eq!(h.txn.poll_timeout(), Some(h.start + ms(32040)), "Timer L");
        // INVITE retransmissions are absorbed without a response: the 2xx
        // retransmissions are the TU's, and pass through.
        h.input_at(ms(500), |t, now| t.handle_request(now));
        h.input_at(ms(540), |t, now| t.respond(now, 200, Msg::Response(200)));
        h.input_at(ms(550), |t, now| t.respond(now, 486, Msg::Response(486)));
        h.input_at(ms(560), |t, now| t.respond(now, 180, Msg::Response(180)));
        h.input_at(ms(600), |t, now| {
            t.handle_ack(
                now,
                Msg::Ack {
                    method: "INVITE",
                    status: 200,
                },
            )
        });
        h.run();
        assert_eq!(
            h.take_sent(),
            [
                (20, Msg::Response(100)),
                (40, Msg::Response(200)),
                (540, Msg::Response(200)),
            ]
        );
        assert_eq!(
            h.take_events(),
            [
                (500, Event::RequestRetransmission),
                (
                    600,
                    Event::Ack(Msg::Ack {
                        method: "INVITE",
                        status: 200
                    })
                ),
                (32040, Event::Terminated)
            ]
        );
    }
}

// --- server non-INVITE --------------------------------------------------

fn server_non_invite(reliability: Reliability) -> Harness<ServerNonInvite<Msg>> {
    Harness::new(|_| ServerNonInvite::new(reliability, config()))
}

#[test]
fn server_non_invite_absorbs_retransmissions_in_every_state() {
    let mut h = server_non_invite(UDP);
    assert_eq!(h.txn.state(), TxnState::Trying);
    h.input_at(ms(100), |t, now| t.handle_request(now));
    h.input_at(ms(200), |t, now| t.respond(now, 100, Msg::Response(100)));
    assert_eq!(h.txn.state(), TxnState::Proceeding);
    h.input_at(ms(600), |t, now| t.handle_request(now));
    h.input_at(ms(700), |t, now| t.respond(now, 202, Msg::Response(202)));
    assert_eq!(h.txn.state(), TxnState::Completed);
    assert_eq!(h.txn.poll_timeout(), Some(h.start + ms(32700)), "Timer J");
    h.input_at(ms(1600), |t, now| t.handle_request(now));
    h.input_at(ms(1700), |t, now| t.respond(now, 500, Msg::Response(500)));
    h.run();
    assert_eq!(
        h.take_sent(),
        [
            (200, Msg::Response(100)),
            (600, Msg::Response(100)),
            (700, Msg::Response(202)),
            (1600, Msg::Response(202)),
        ]
    );
    assert_eq!(
        h.take_events(),
        [
            (100, Event::RequestRetransmission),
            (600, Event::RequestRetransmission),
            (1600, Event::RequestRetransmission),
            (32700, Event::Terminated)
        ]
    );
}

#[test]
fn server_non_invite_reliable_final_response_terminates_at_once() {
    let mut h = server_non_invite(TCP);
    h.input_at(ms(5), |t, now| t.respond(now, 200, Msg::Response(200)));
    assert!(h.txn.is_terminated(), "Timer J is zero");
    assert_eq!(h.take_sent(), [(5, Msg::Response(200))]);
    assert_eq!(h.take_events(), [(5, Event::Terminated)]);
}

// --- transport errors ---------------------------------------------------

fn assert_transport_error<T: Transaction<Message = Msg>>(mut h: Harness<T>) {
    let sent_before = h.sent.len();
    h.input_at(ms(300), |t, now| t.handle_transport_error(now));
    assert!(h.txn.is_terminated());
    assert_eq!(h.txn.poll_timeout(), None);
    let events = h.take_events();
    assert_eq!(
        events[events.len() - 2..],
        [(300, Event::TransportError), (300, Event::Terminated)]
    );
    // A second error and later timers do nothing.
    h.input_at(ms(400), |t, now| t.handle_transport_error(now));
    h.advance_to(ms(100_000));
    assert!(h.take_events().is_empty());
    assert_eq!(h.sent.len(), sent_before);
}

#[test]
fn transport_errors_terminate_client_and_non_invite_machines() {
    assert_transport_error(client_invite(UDP));
    let mut h = client_invite(UDP);
    h.input_at(ms(10), |t, now| {
        t.handle_response(now, 180, Msg::Response(180))
    });
    assert_transport_error(h);
    let mut h = client_invite(UDP);
    h.input_at(ms(10), |t, now| {
        t.handle_response(now, 486, Msg::Response(486))
    });
    assert_transport_error(h);

    assert_transport_error(client_non_invite(UDP));
    let mut h = client_non_invite(TCP);
    h.input_at(ms(10), |t, now| {
        t.handle_response(now, 100, Msg::Response(100))
    });
    assert_transport_error(h);

    assert_transport_error(server_non_invite(UDP));
    let mut h = server_non_invite(UDP);
    h.input_at(ms(10), |t, now| t.respond(now, 408, Msg::Response(408)));
    assert_transport_error(h);
}

#[test]
fn transport_errors_leave_the_server_invite_to_its_timers() {
    // RFC 6026 §7.1: the TU is told, the state and its timers stay.
    let mut h = server_invite(UDP);
    h.input_at(ms(10), |t, now| t.handle_transport_error(now));
    assert_eq!(h.txn.state(), TxnState::Proceeding);
    h.input_at(ms(20), |t, now| t.respond(now, 480, Msg::Response(480)));
    h.input_at(ms(30), |t, now| t.handle_transport_error(now));
    assert_eq!(h.txn.state(), TxnState::Completed);
    h.run();
    assert_eq!(
        h.sent_times(),
        [
            20, 520, 1520, 3520, 7520, 11520, 15520, 19520, 23520, 27520, 31520
        ],
        "Timer G keeps retransmitting"
    );
    assert_eq!(
        h.take_events(),
        [
            (10, Event::TransportError),
            (30, Event::TransportError),
            (32020, Event::Timeout(Timer::H)),
            (32020, Event::Terminated)
        ]
    );

    let mut h = server_invite(TCP);
    h.input_at(ms(10), |t, now| t.respond(now, 200, Msg::Response(200)));
    h.input_at(ms(20), |t, now| t.handle_transport_error(now));
    assert_eq!(h.txn.state(), TxnState::Accepted);
    h.input_at(ms(30), |t, now| t.respond(now, 200, Msg::Response(200)));
    h.run();
    assert_eq!(
        h.sent_times(),
        [10, 30],
        "the TU may still retransmit its 2xx"
    );
    assert_eq!(
        h.take_events(),
        [(20, Event::TransportError), (32010, Event::Terminated)]
    );
    // Once terminated, a transport error is ignored.
    h.input_at(ms(40_000), |t, now| t.handle_transport_error(now));
    assert!(h.take_events().is_empty());
}

// --- a client and a server over a lossy wire ---------------------------

/// A client INVITE transaction and the server INVITE transaction it
/// creates, joined by a zero-latency wire that can drop messages. The
/// server's TU answers 100 at once and `final_status` after
/// `answer_after`.
struct Pair {
    start: Instant,
    now: Instant,
    client: ClientInvite<Msg>,
    server: Option<ServerInvite<Msg>>,
    reliability: Reliability,
    /// Decides, per message, whether the wire loses it.
    lose: Box<dyn FnMut(&Msg) -> bool>,
    answer: Option<(Duration, u16)>,
    /// Delivered messages, with their time.
    wire: Vec<(u64, Msg)>,
    client_events: Vec<(u64, Event<Msg>)>,
    server_events: Vec<(u64, Event<Msg>)>,
}

impl Pair {
    fn new(reliability: Reliability, lose: impl FnMut(&Msg) -> bool + 'static) -> Self {
        let start = epoch();
        Self {
            start,
            now: start,
            client: ClientInvite::new(start, Msg::Request("INVITE"), reliability, config()),
            server: None,
            reliability,
            lose: Box::new(lose),
            answer: None,
            wire: Vec::new(),
            client_events: Vec::new(),
            server_events: Vec::new(),
        }
    }

    fn at(&self) -> u64 {
        as_ms(self.now - self.start)
    }

    /// Moves messages until both sides are quiet at the current time.
    fn step(&mut self) {
        loop {
            let mut moved = false;
            while let Some(message) = self.client.poll_transmit() {
                moved = true;
                if (self.lose)(&message) {
                    continue;
                }
                self.wire.push((self.at(), message.clone()));
                match (&mut self.server, message) {
                    (None, Msg::Request(_)) => {
                        let mut server = ServerInvite::new(self.reliability, config());
                        server.respond(self.now, 100, Msg::Response(100));
                        self.server = Some(server);
                    }
                    (Some(server), Msg::Request(_)) => server.handle_request(self.now),
                    (Some(server), ack @ Msg::Ack { .. }) => server.handle_ack(self.now, ack),
                    (_, other) => panic!("client sent {other:?}"),
                }
            }
            while let Some(event) = self.client.poll_event() {
                self.client_events.push((self.at(), event));
            }
            if let Some(server) = &mut self.server {
                while let Some(message) = server.poll_transmit() {
                    moved = true;
                    if (self.lose)(&message) {
                        continue;
                    }
                    self.wire
                        .push((as_ms(self.now - self.start), message.clone()));
                    let Msg::Response(status) = message else {
                        panic!("server sent {message:?}");
                    };
                    self.client.handle_response(self.now, status, message);
                }
                while let Some(event) = server.poll_event() {
                    self.server_events
                        .push((as_ms(self.now - self.start), event));
                }
            }
            if !moved {
                return;
            }
        }
    }

    fn next_deadline(&self) -> Option<Instant> {
        let answer = self
            .answer
            .filter(|_| self.server.is_some())
            .map(|(after, _)| self.start + after);
        [
            self.client.poll_timeout(),
            self.server.as_ref().and_then(ServerInvite::poll_timeout),
            answer,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Runs until nothing is left to do.
    fn drive(&mut self) {
        self.step();
        for _ in 0..1000 {
            let Some(deadline) = self.next_deadline() else {
                return;
            };
            self.now = deadline;
            if let Some((after, status)) = self.answer
                && self.start + after <= self.now
            {
                self.answer = None;
                if let Some(server) = &mut self.server {
                    server.respond(self.now, status, Msg::Response(status));
                }
            }
            self.client.handle_timeout(self.now);
            if let Some(server) = &mut self.server {
                server.handle_timeout(self.now);
            }
            self.step();
        }
        panic!("the pair never settles");
    }
}

#[test]
fn pair_lost_invite_is_retransmitted_and_lost_ack_is_resent() {
    let mut invites = 0;
    let mut acks = 0;
    let mut pair = Pair::new(UDP, move |m| match m {
        // The first INVITE and the first ACK are lost.
        Msg::Request(_) => {
            invites += 1;
            invites == 1
        }
        Msg::Ack { .. } => {
            acks += 1;
            acks == 1
        }
        Msg::Response(_) => false,
    });
    pair.answer = Some((ms(2000), 486));
    pair.drive();
    let ack = Msg::Ack {
        method: "INVITE",
        status: 486,
    };
    assert_eq!(
        pair.wire,
        [
            (500, Msg::Request("INVITE")),
            (500, Msg::Response(100)),
            (2000, Msg::Response(486)),
            // The ACK sent at 2 s is lost; Timer G re-sends the 486 and
            // the client answers with its ACK again.
            (2500, Msg::Response(486)),
            (2500, ack),
        ]
    );
    assert_eq!(
        pair.client_events,
        [
            (500, response(100)),
            (2000, response(486)),
            (2000 + 32000, Event::Terminated)
        ]
    );
    assert_eq!(pair.server_events, [(2500 + 5000, Event::Terminated)]);
}

#[test]
fn pair_lost_final_response_is_recovered_by_retransmitted_invite() {
    // Reliable transports never lose; on UDP losing the first 486 means
    // the client retransmits nothing (it is Proceeding after the 100), so
    // Timer G must recover it.
    let mut finals = 0;
    let mut pair = Pair::new(UDP, move |m| {
        if *m == Msg::Response(603) {
            finals += 1;
            finals == 1
        } else {
            false
        }
    });
    pair.answer = Some((ms(100), 603));
    pair.drive();
    let delivered: Vec<_> = pair.wire.iter().map(|(t, m)| (*t, m.clone())).collect();
    assert_eq!(
        delivered[..4],
        [
            (0, Msg::Request("INVITE")),
            (0, Msg::Response(100)),
            (600, Msg::Response(603)),
            (
                600,
                Msg::Ack {
                    method: "INVITE",
                    status: 603
                }
            ),
        ]
    );
    assert_eq!(pair.client_events[1], (600, response(603)));
    assert_eq!(pair.server_events, [(5600, Event::Terminated)]);
}

#[test]
fn pair_rfc6026_2xx_over_reliable_transport() {
    let mut pair = Pair::new(TCP, |_| false);
    pair.answer = Some((ms(3000), 200));
    pair.drive();
    assert_eq!(
        pair.wire,
        [
            (0, Msg::Request("INVITE")),
            (0, Msg::Response(100)),
            (3000, Msg::Response(200)),
        ]
    );
    assert_eq!(
        pair.client_events,
        [
            (0, response(100)),
            (3000, response(200)),
            (35000, Event::Terminated)
        ]
    );
    assert_eq!(pair.server_events, [(35000, Event::Terminated)]);
}

#[test]
fn non_invite_lost_final_response_is_recovered_by_timer_e() {
    // Both sides on their own virtual clock, stepped by hand over a wire
    // that loses the first 200.
    let mut client = client_non_invite(UDP);
    let mut server = server_non_invite(UDP);
    assert_eq!(client.take_sent(), [(0, Msg::Request("OPTIONS"))]);
    server.input_at(ms(100), |t, now| t.respond(now, 200, Msg::Response(200)));
    assert_eq!(server.take_sent(), [(100, Msg::Response(200))], "lost");
    client.advance_to(ms(500));
    assert_eq!(client.take_sent(), [(500, Msg::Request("OPTIONS"))]);
    server.input_at(ms(500), |t, now| t.handle_request(now));
    assert_eq!(server.take_sent(), [(500, Msg::Response(200))]);
    client.input_at(ms(500), |t, now| {
        t.handle_response(now, 200, Msg::Response(200))
    });
    client.run();
    server.run();
    assert!(client.take_sent().is_empty(), "no retransmission after 200");
    assert!(server.take_sent().is_empty());
    assert_eq!(
        client.take_events(),
        [(500, response(200)), (5500, Event::Terminated)]
    );
    assert_eq!(
        server.take_events(),
        [
            (500, Event::RequestRetransmission),
            (32100, Event::Terminated)
        ]
    );
}

// --- keys and the table -------------------------------------------------

#[test]
fn client_keys_match_on_branch_and_cseq_method() {
    let invite = TxnKey::client("z9hG4bK776asdhds", "INVITE");
    assert_eq!(invite, TxnKey::client("z9hG4bK776asdhds", "INVITE"));
    // A CANCEL shares the branch but has its own transaction.
    assert_ne!(invite, TxnKey::client("z9hG4bK776asdhds", "CANCEL"));
    assert_ne!(invite, TxnKey::client("z9hG4bK776asdhdS", "INVITE"));
    assert!(invite.is_client());
    assert_eq!(invite.branch(), Some("z9hG4bK776asdhds"));
    assert_eq!(invite.to_string(), "client z9hG4bK776asdhds;INVITE");
    assert_eq!(Timer::B.to_string(), "Timer B");
    assert_eq!(TxnState::Accepted.to_string(), "Accepted");
}

#[test]
fn server_keys_match_ack_to_invite_and_give_cancel_its_own() {
    let branch = "z9hG4bKnashds8";
    let invite = TxnKey::server(branch, "pc33.Atlanta.com", Some(5060), "INVITE").unwrap();
    let ack = TxnKey::server(branch, "PC33.atlanta.com", Some(5060), "ACK").unwrap();
    assert_eq!(invite, ack, "ACK matches the INVITE; host case-insensitive");
    assert_eq!(ack.method(), "INVITE");
    let cancel = TxnKey::server(branch, "pc33.atlanta.com", Some(5060), "CANCEL").unwrap();
    assert_ne!(cancel, invite);
    assert_eq!(cancel.cancel_target(), Some(invite.clone()));
    assert_eq!(invite.cancel_target(), None);
    // sent-by and method take part.
    assert_ne!(
        invite,
        TxnKey::server(branch, "pc33.atlanta.com", None, "INVITE").unwrap()
    );
    assert_ne!(
        invite,
        TxnKey::server(branch, "pc34.atlanta.com", Some(5060), "INVITE").unwrap()
    );
    assert_ne!(
        TxnKey::server(branch, "h", None, "BYE").unwrap(),
        TxnKey::server(branch, "h", None, "OPTIONS").unwrap()
    );
    // A client key never equals a server key.
    assert_ne!(TxnKey::client(branch, "INVITE"), invite);
    // Without the magic cookie the RFC 2543 rules apply.
    assert_eq!(
        TxnKey::server("776asdhds", "pc33.atlanta.com", None, "INVITE"),
        None
    );
}

#[test]
fn rfc2543_keys_match_ack_and_cancel_to_the_invite() {
    let parts = Rfc2543Parts {
        request_uri: "sip:bob@biloxi.com",
        from_tag: Some("1928301774"),
        call_id: "a84b4c76e66710",
        cseq: 314159,
        method: "INVITE",
        top_via: "SIP/2.0/UDP pc33.atlanta.com",
    };
    let invite = TxnKey::server_rfc2543(&parts);
    let ack = TxnKey::server_rfc2543(&Rfc2543Parts {
        method: "ACK",
        ..parts
    });
    assert_eq!(invite, ack);
    let cancel = TxnKey::server_rfc2543(&Rfc2543Parts {
        method: "CANCEL",
        ..parts
    });
    assert_ne!(cancel, invite);
    assert_eq!(cancel.cancel_target(), Some(invite.clone()));
    assert_eq!(invite.branch(), None);
    for other in [
        Rfc2543Parts {
            cseq: 314160,
            ..parts
        },
        Rfc2543Parts {
            from_tag: None,
            ..parts
        },
        Rfc2543Parts {
            top_via: "SIP/2.0/UDP pc34.atlanta.com",
            ..parts
        },
        Rfc2543Parts {
            request_uri: "sip:carol@biloxi.com",
            ..parts
        },
        Rfc2543Parts {
            call_id: "other",
            ..parts
        },
    ] {
        assert_ne!(TxnKey::server_rfc2543(&other), invite, "{other:?}");
    }
}

#[test]
fn table_fires_timers_of_many_transactions_in_order() {
    let start = epoch();
    let mut table = TxnTable::new();
    let key = |branch: &str| TxnKey::client(branch, "OPTIONS");
    for (branch, offset) in [("z9hG4bKa", 0), ("z9hG4bKb", 200), ("z9hG4bKc", 100)] {
        let mut txn =
            ClientNonInvite::new(start + ms(offset), Msg::Request("OPTIONS"), UDP, config());
        assert_eq!(txn.poll_transmit(), Some(Msg::Request("OPTIONS")));
        assert!(table.insert(key(branch), txn).is_ok());
    }
    let duplicate = ClientNonInvite::new(start, Msg::Request("OPTIONS"), UDP, config());
    assert!(table.insert(key("z9hG4bKa"), duplicate).is_err());
    assert_eq!(table.len(), 3);
    // b answers at 300 ms: Completed, Timer K.
    let answered = table.update(&key("z9hG4bKb"), |txn| {
        txn.handle_response(start + ms(300), 200, Msg::Response(200));
        txn.poll_event()
    });
    assert_eq!(answered, Some(Some(response(200))));
    // c is removed: its queued timers are dropped lazily.
    assert!(table.remove(&key("z9hG4bKc")).is_some());

    let mut fired = Vec::new();
    while let Some(deadline) = table.poll_timeout() {
        while let Some(k) = table.handle_timeout(deadline) {
            let mut sends = 0;
            table.update(&k, |txn| {
                while txn.poll_transmit().is_some() {
                    sends += 1;
                }
                while txn.poll_event().is_some() {}
            });
            fired.push((
                as_ms(deadline - start),
                k.branch().unwrap().to_owned(),
                sends,
            ));
            if table.get(&k).is_some_and(Transaction::is_terminated) {
                table.remove(&k);
            }
        }
    }
    assert!(table.is_empty());
    let fired: Vec<_> = fired.iter().map(|(t, b, s)| (*t, b.as_str(), *s)).collect();
    assert_eq!(
        fired,
        [
            (500, "z9hG4bKa", 1),
            (1500, "z9hG4bKa", 1),
            (3500, "z9hG4bKa", 1),
            (5300, "z9hG4bKb", 0),
            (7500, "z9hG4bKa", 1),
            (11500, "z9hG4bKa", 1),
            (15500, "z9hG4bKa", 1),
            (19500, "z9hG4bKa", 1),
            (23500, "z9hG4bKa", 1),
            (27500, "z9hG4bKa", 1),
            (31500, "z9hG4bKa", 1),
            (32000, "z9hG4bKa", 0),
        ]
    );
}

// --- sizes ----------------------------------------------------------------

/// A message handle as the proxy would use it: a reference-counted parsed
/// message (one pointer and a length).
type Handle = Arc<[u8]>;

impl TxnMessage for Handle {
    fn ack_for(request: &Self, _response: &Self) -> Self {
        request.clone()
    }
}

#[test]
fn machines_are_small() {
    let sizes = [
        ("ClientInvite", size_of::<ClientInvite<Handle>>()),
        ("ClientNonInvite", size_of::<ClientNonInvite<Handle>>()),
        ("ServerInvite", size_of::<ServerInvite<Handle>>()),
        ("ServerNonInvite", size_of::<ServerNonInvite<Handle>>()),
    ];
    for (name, size) in sizes {
        println!("{name}<Arc<[u8]>>: {size} bytes");
        assert!(size <= 128, "{name} is {size} bytes");
    }
    // With the crate's own message type (a shared buffer and shared
    // parse results).
    type Message = crate::msg::Message;
    for (name, size) in [
        ("ClientInvite", size_of::<ClientInvite<Message>>()),
        ("ClientNonInvite", size_of::<ClientNonInvite<Message>>()),
        ("ServerInvite", size_of::<ServerInvite<Message>>()),
        ("ServerNonInvite", size_of::<ServerNonInvite<Message>>()),
    ] {
        println!("{name}<msg::Message>: {size} bytes");
        // The output queues are boxed while they hold something (a null
        // pointer in between), the timer settings are compact: 320 bytes
        // when the queues were inline.
        assert!(size <= 128, "{name} is {size} bytes");
    }
    println!("TxnKey: {} bytes", size_of::<TxnKey>());
    assert!(size_of::<TxnKey>() <= 64);
    // Worst case with the heap: the inline machine (its queues are freed
    // once drained), plus the message a 1500-octet datagram's handle
    // points to.
    let worst = sizes.iter().map(|(_, s)| s).max().unwrap() + 1500;
    println!("worst case per transaction with a 1500-octet message: {worst} bytes");
    assert!(worst < 4096);
}

// --- arbitrary event sequences ------------------------------------------

/// One input to a machine, after a pause of `after_ms`.
#[derive(Clone, Debug)]
enum Op {
    Wait(u64),
    Response(u16),
    Request,
    Ack,
    TransportError,
    /// A timeout call at an arbitrary time (maybe early).
    Poke,
}

fn op() -> impl Strategy<Value = Op> {
    let status = prop::sample::select(vec![
        0u16, 99, 100, 180, 183, 200, 202, 299, 300, 404, 486, 503, 603, 699, 700,
    ]);
    prop_oneof![
        4 => (0u64..40_000).prop_map(Op::Wait),
        4 => status.prop_map(Op::Response),
        2 => Just(Op::Request),
        2 => Just(Op::Ack),
        1 => Just(Op::TransportError),
        2 => Just(Op::Poke),
    ]
}

#[derive(Clone, Copy, Debug)]
enum Kind {
    Client,
    ClientNon,
    Server,
    ServerNon,
}

/// A machine of any kind, driven by `Op`s.
enum Any {
    Ci(ClientInvite<Msg>),
    Cn(ClientNonInvite<Msg>),
    Si(ServerInvite<Msg>),
    Sn(ServerNonInvite<Msg>),
}

impl Any {
    fn new(kind: Kind, now: Instant, reliability: Reliability, config: TimerConfig) -> Self {
        match kind {
            Kind::Client => Any::Ci(ClientInvite::new(
                now,
                Msg::Request("INVITE"),
                reliability,
                config,
            )),
            Kind::ClientNon => Any::Cn(ClientNonInvite::new(
                now,
                Msg::Request("BYE"),
                reliability,
                config,
            )),
            Kind::Server => Any::Si(ServerInvite::new(reliability, config)),
            Kind::ServerNon => Any::Sn(ServerNonInvite::new(reliability, config)),
        }
    }

    fn txn(&mut self) -> &mut dyn Transaction<Message = Msg> {
        match self {
            Any::Ci(t) => t,
            Any::Cn(t) => t,
            Any::Si(t) => t,
            Any::Sn(t) => t,
        }
    }

    /// A network response (clients) or a TU response (servers).
    fn response(&mut self, now: Instant, status: u16) {
        let message = Msg::Response(status);
        match self {
            Any::Ci(t) => t.handle_response(now, status, message),
            Any::Cn(t) => t.handle_response(now, status, message),
            Any::Si(t) => t.respond(now, status, message),
            Any::Sn(t) => t.respond(now, status, message),
        }
    }

    fn request(&mut self, now: Instant) {
        match self {
            Any::Si(t) => t.handle_request(now),
            Any::Sn(t) => t.handle_request(now),
            Any::Ci(_) | Any::Cn(_) => {}
        }
    }

    fn ack(&mut self, now: Instant) {
        if let Any::Si(t) = self {
            t.handle_ack(
                now,
                Msg::Ack {
                    method: "INVITE",
                    status: 0,
                },
            );
        }
    }

    /// States that by RFC 3261 wait for the peer or the TU with no timer:
    /// the client INVITE in "Proceeding" (the proxy's Timer C ends it) and
    /// the server transactions before the TU's final response.
    fn waits_without_timer(&mut self) -> bool {
        let state = self.txn().state();
        match self {
            Any::Ci(_) => state == TxnState::Proceeding,
            Any::Si(_) => state == TxnState::Proceeding,
            Any::Sn(_) => matches!(state, TxnState::Trying | TxnState::Proceeding),
            Any::Cn(_) => false,
        }
    }
}

/// Drains a machine and checks what it said.
#[derive(Default)]
struct Checker {
    terminated_events: usize,
}

impl Checker {
    /// Returns how many messages the machine sent.
    fn drain(&mut self, machine: &mut Any) -> usize {
        let txn = machine.txn();
        let was_terminated = self.terminated_events > 0;
        let mut sent = 0;
        while txn.poll_transmit().is_some() {
            sent += 1;
        }
        assert!(
            !(was_terminated && sent > 0),
            "sent {sent} messages after Terminated"
        );
        while let Some(event) = txn.poll_event() {
            assert_eq!(self.terminated_events, 0, "{event:?} after Terminated");
            if event == Event::Terminated {
                self.terminated_events += 1;
            }
        }
        assert_eq!(txn.is_terminated(), self.terminated_events == 1);
        if txn.is_terminated() {
            assert_eq!(txn.poll_timeout(), None);
        }
        sent
    }
}

/// Fires every timer up to `until`, at its deadline.
/// On a reliable transport no timer ever sends anything.
fn run_timers(
    machine: &mut Any,
    checker: &mut Checker,
    reliability: Reliability,
    now: &mut Instant,
    until: Instant,
) {
    for _ in 0..10_000 {
        match machine.txn().poll_timeout() {
            Some(deadline) if deadline <= until => {
                // A deadline is never in the past of the last input.
                assert!(deadline >= *now);
                *now = deadline;
                machine.txn().handle_timeout(deadline);
                let sent = checker.drain(machine);
                assert!(
                    !(reliability.is_reliable() && sent > 0),
                    "a timer retransmitted on a reliable transport"
                );
            }
            _ => {
                *now = until;
                return;
            }
        }
    }
    panic!("timers never stop");
}

fn check_sequence(kind: Kind, reliability: Reliability, t1_ms: u64, ops: &[Op], final_status: u16) {
    let config = TimerConfig {
        t1: ms(t1_ms),
        ..TimerConfig::default()
    };
    // 64*T1 + T4, except that Timer D never runs less than 32 s.
    let bound = config.timeout().max(ms(32_000)) + config.t4;
    let start = epoch();
    let mut now = start;
    let mut machine = Any::new(kind, now, reliability, config);
    let mut checker = Checker::default();
    checker.drain(&mut machine);
    for op in ops {
        match op {
            Op::Wait(wait) => {
                let until = now + ms(*wait);
                run_timers(&mut machine, &mut checker, reliability, &mut now, until);
            }
            Op::Response(status) => machine.response(now, *status),
            Op::Request => machine.request(now),
            Op::Ack => machine.ack(now),
            Op::TransportError => machine.txn().handle_transport_error(now),
            Op::Poke => machine.txn().handle_timeout(now),
        }
        checker.drain(&mut machine);
    }
    // With no further input, the machine terminates within 64*T1 + T4,
    // unless it is in a state the RFC leaves to the peer or the TU.
    let last_input = now;
    run_timers(
        &mut machine,
        &mut checker,
        reliability,
        &mut now,
        last_input + bound,
    );
    if !machine.txn().is_terminated() {
        assert!(
            machine.waits_without_timer(),
            "{kind:?} still {:?} {bound:?} after its last input",
            machine.txn().state()
        );
        assert_eq!(machine.txn().poll_timeout(), None);
        // The final response (from the peer or the TU) ends the wait.
        let last_input = now;
        machine.response(now, final_status);
        checker.drain(&mut machine);
        run_timers(
            &mut machine,
            &mut checker,
            reliability,
            &mut now,
            last_input + bound,
        );
        assert!(
            machine.txn().is_terminated(),
            "{kind:?} still {:?} after its final response",
            machine.txn().state()
        );
    }
}

proptest! {
    #[test]
    fn arbitrary_inputs_never_panic_and_always_terminate(
        kind in prop::sample::select(vec![
            Kind::Client, Kind::ClientNon, Kind::Server, Kind::ServerNon,
        ]),
        reliable in any::<bool>(),
        t1_ms in prop::sample::select(vec![1u64, 100, 500, 2000]),
        ops in prop::collection::vec(op(), 0..40),
        final_status in 200u16..700,
    ) {
        let reliability = if reliable { TCP } else { UDP };
        check_sequence(kind, reliability, t1_ms, &ops, final_status);
    }
}

#[test]
fn every_state_is_reached_by_some_sequence() {
    // The proptest above is only as good as its coverage: check that the
    // kind of sequences it draws reach every state of every machine.
    let start = epoch();
    let mut seen = HashSet::new();
    let statuses = [100, 200, 486];
    for kind in [Kind::Client, Kind::ClientNon, Kind::Server, Kind::ServerNon] {
        for first in statuses {
            for ack in [false, true] {
                let mut machine = Any::new(kind, start, UDP, config());
                seen.insert((format!("{kind:?}"), machine.txn().state()));
                machine.response(start, first);
                seen.insert((format!("{kind:?}"), machine.txn().state()));
                machine.response(start, 603);
                seen.insert((format!("{kind:?}"), machine.txn().state()));
                if ack {
                    machine.ack(start);
                    seen.insert((format!("{kind:?}"), machine.txn().state()));
                }
                machine.txn().handle_timeout(start + ms(100_000));
                seen.insert((format!("{kind:?}"), machine.txn().state()));
            }
        }
    }
    let expect = |kind: &str, states: &[TxnState]| {
        for state in states {
            assert!(
                seen.contains(&(kind.to_owned(), *state)),
                "{kind} never reached {state:?}"
            );
        }
    };
    use TxnState::*;
    expect(
        "Client",
        &[Calling, Proceeding, Completed, Accepted, Terminated],
    );
    expect("ClientNon", &[Trying, Proceeding, Completed, Terminated]);
    expect(
        "Server",
        &[Proceeding, Completed, Confirmed, Accepted, Terminated],
    );
    expect("ServerNon", &[Trying, Proceeding, Completed, Terminated]);
}
