use rand::SeedableRng;
use rand::rngs::StdRng;

use super::*;

const ALL: [Transport; 3] = [Transport::Udp, Transport::Tcp, Transport::Tls];

fn uri(text: &str) -> SipUri {
    SipUri::parse(text).unwrap()
}

#[test]
fn parse_uris() {
    let u = uri("sip:+4930123@gw.example.net:5070;transport=TCP;user=phone");
    assert!(!u.secure);
    assert_eq!(u.host, "gw.example.net");
    assert_eq!(u.port, Some(5070));
    assert_eq!(u.transport, Some(Transport::Tcp));
    let u = uri("SIPS:[2001:db8::1]:5071");
    assert!(u.secure);
    assert_eq!(u.host, "2001:db8::1");
    assert_eq!(u.port, Some(5071));
    let u = uri("sip:example.net;maddr=192.0.2.7");
    assert_eq!(u.target_host(), "192.0.2.7");
    assert!(matches!(
        SipUri::parse("tel:+1234"),
        Err(Error::BadSipUri {
            problem: UriProblem::Scheme
        })
    ));
    assert!(matches!(
        SipUri::parse("sip:a@h:0"),
        Err(Error::BadSipUri {
            problem: UriProblem::Port
        })
    ));
    assert!(matches!(
        SipUri::parse("sip:a@h;transport=sctp"),
        Err(Error::BadSipUri {
            problem: UriProblem::Transport
        })
    ));
    assert!(matches!(
        SipUri::parse("sip:a@"),
        Err(Error::BadSipUri {
            problem: UriProblem::NoHost
        })
    ));
}

#[test]
fn numeric_host_short_cuts() {
    let p = plan(&uri("sip:a@192.0.2.1"), &ALL);
    assert_eq!(
        p,
        Plan::Numeric(Target {
            transport: Transport::Udp,
            addr: "192.0.2.1:5060".parse().unwrap(),
            priority: 0
        })
    );
    let p = plan(&uri("sips:a@[2001:db8::1]"), &ALL);
    assert_eq!(
        p,
        Plan::Numeric(Target {
            transport: Transport::Tls,
            addr: "[2001:db8::1]:5061".parse().unwrap(),
            priority: 0
        })
    );
    let p = plan(&uri("sip:a@192.0.2.1:5080;transport=tcp"), &ALL);
    assert!(
        matches!(p, Plan::Numeric(t) if t.transport == Transport::Tcp && t.addr.port() == 5080)
    );
    // maddr replaces the host.
    let p = plan(&uri("sip:a@example.net;maddr=192.0.2.9"), &ALL);
    assert!(matches!(p, Plan::Numeric(t) if t.addr.ip().to_string() == "192.0.2.9"));
}

#[test]
fn explicit_port_skips_srv() {
    assert_eq!(
        plan(&uri("sip:a@example.net:5070"), &ALL),
        Plan::Address {
            host: "example.net".into(),
            port: 5070,
            transport: Transport::Udp
        }
    );
    assert_eq!(
        plan(&uri("sips:a@example.net:5071;transport=tcp"), &ALL),
        Plan::Address {
            host: "example.net".into(),
            port: 5071,
            transport: Transport::Tls
        }
    );
}

#[test]
fn explicit_transport_asks_srv_for_it() {
    assert_eq!(
        plan(&uri("sip:a@example.net;transport=tcp"), &ALL),
        Plan::Srv {
            queries: vec![SrvQuery {
                transport: Transport::Tcp,
                name: "_sip._tcp.example.net".into()
            }],
            host: "example.net".into(),
            fallback: Transport::Tcp,
        }
    );
}

#[test]
fn no_hints_asks_naptr() {
    let Plan::Naptr { host, allowed, srv } = plan(&uri("sip:a@example.net"), &ALL) else {
        panic!("expected NAPTR plan");
    };
    assert_eq!(host, "example.net");
    assert_eq!(allowed, ALL.to_vec());
    let Plan::Srv {
        queries, fallback, ..
    } = *srv
    else {
        panic!("expected SRV fallback");
    };
    assert_eq!(
        queries.iter().map(|q| q.name.as_str()).collect::<Vec<_>>(),
        vec![
            "_sip._udp.example.net",
            "_sip._tcp.example.net",
            "_sips._tcp.example.net"
        ]
    );
    assert_eq!(fallback, Transport::Udp);
    // sips: only TLS.
    let Plan::Naptr { allowed, srv, .. } = plan(&uri("sips:a@example.net"), &ALL) else {
        panic!("expected NAPTR plan");
    };
    assert_eq!(allowed, vec![Transport::Tls]);
    assert!(matches!(
        *srv,
        Plan::Srv {
            fallback: Transport::Tls,
            ..
        }
    ));
}

#[test]
fn naptr_service_selection() {
    // RFC 3263 §4.1 example, plus noise.
    let records = [
        NaptrRecord::new(90, 50, "s", "SIP+D2T", "", "_sip._tcp.example.com."),
        NaptrRecord::new(100, 50, "s", "SIP+D2U", "", "_sip._udp.example.com."),
        NaptrRecord::new(50, 50, "s", "SIPS+D2T", "", "_sips._tcp.example.com."),
        NaptrRecord::new(10, 10, "s", "SIP+D2S", "", "_sip._sctp.example.com."),
        NaptrRecord::new(10, 10, "a", "SIP+D2U", "", "a.example.com."),
    ];
    let got = naptr_services(&records, &ALL);
    assert_eq!(
        got,
        vec![
            SrvQuery {
                transport: Transport::Tls,
                name: "_sips._tcp.example.com".into()
            },
            SrvQuery {
                transport: Transport::Tcp,
                name: "_sip._tcp.example.com".into()
            },
            SrvQuery {
                transport: Transport::Udp,
                name: "_sip._udp.example.com".into()
            },
        ]
    );
    let got = naptr_services(&records, &[Transport::Tls]);
    assert_eq!(got.len(), 1);
    let lower = [NaptrRecord::new(
        1,
        1,
        "S",
        "sip+d2u",
        "",
        "_sip._udp.example.com.",
    )];
    assert_eq!(naptr_services(&lower, &ALL).len(), 1);
}

fn srv(priority: u16, weight: u16, target: &str) -> SrvRecord {
    SrvRecord {
        priority,
        weight,
        port: 5060,
        target: target.into(),
    }
}

#[test]
fn srv_priority_first_and_dot_dropped() {
    let mut rng = StdRng::seed_from_u64(7);
    let records = [
        srv(20, 0, "c."),
        srv(10, 5, "a."),
        srv(10, 5, "b."),
        srv(5, 0, "."),
    ];
    let got = order_srv(&records, &mut rng);
    assert_eq!(got.len(), 3);
    assert_eq!(got[2].target, "c.");
    assert!(got[..2].iter().all(|r| r.priority == 10));
}

#[test]
fn srv_weights_are_honoured() {
    // RFC 2782: with weights 60/30/10, "a" is first about 60% of the time.
    let records = [
        srv(1, 60, "a."),
        srv(1, 30, "b."),
        srv(1, 10, "c."),
        srv(1, 0, "z."),
    ];
    let mut rng = StdRng::seed_from_u64(42);
    let mut first = std::collections::HashMap::new();
    let n = 20_000;
    for _ in 0..n {
        let got = order_srv(&records, &mut rng);
        assert_eq!(got.len(), 4);
        *first.entry(got[0].target.clone()).or_insert(0u32) += 1;
    }
    let share = |t: &str| f64::from(*first.get(t).unwrap_or(&0)) / f64::from(n);
    assert!((share("a.") - 0.6).abs() < 0.03, "a: {}", share("a."));
    assert!((share("b.") - 0.3).abs() < 0.03, "b: {}", share("b."));
    assert!((share("c.") - 0.1).abs() < 0.03, "c: {}", share("c."));
    // Weight 0 wins only when the random pick is exactly 0.
    assert!(share("z.") < 0.01);
}

/// An RNG that always returns the same word, to pin the choice.
struct Fixed(u64);

impl rand::RngCore for Fixed {
    fn next_u32(&mut self) -> u32 {
        self.0 as u32
    }
    fn next_u64(&mut self) -> u64 {
        self.0
    }
    fn fill_bytes(&mut self, dst: &mut [u8]) {
        dst.fill(self.0 as u8);
    }
}

#[test]
fn srv_zero_pick_takes_weight_zero_first() {
    let records = [srv(1, 10, "a."), srv(1, 0, "z.")];
    let got = order_srv(&records, &mut Fixed(0));
    assert_eq!(got[0].target, "z.");
}

proptest::proptest! {
    #[test]
    fn srv_order_is_a_permutation_by_priority(
        raw in proptest::collection::vec((0u16..4, 0u16..100), 0..12),
        seed in 0u64..1000,
    ) {
        let records: Vec<SrvRecord> = raw
            .iter()
            .enumerate()
            .map(|(i, (p, w))| srv(*p, *w, &format!("t{i}.")))
            .collect();
        let got = order_srv(&records, &mut StdRng::seed_from_u64(seed));
        proptest::prop_assert_eq!(got.len(), records.len());
        proptest::prop_assert!(got.windows(2).all(|w| w[0].priority <= w[1].priority));
        for r in &records {
            proptest::prop_assert!(got.contains(r));
        }
    }
}
