use bytes::{Bytes, BytesMut};
use proptest::prelude::*;

use super::*;

const INVITE: &str = "INVITE sip:bob@biloxi.example.com SIP/2.0\r\n\
Via: SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bK776asdhds, SIP/2.0/TCP 192.0.2.7:5070;branch=z9hG4bKaa;received=192.0.2.8\r\n\
Max-Forwards: 70\r\n\
Route: <sip:p1.example.net;lr>, <sip:p2.example.net;lr>\r\n\
Route: <sip:p3.example.net;lr>\r\n\
To: Bob <sip:bob@biloxi.example.com>\r\n\
From: Alice <sip:alice@atlanta.example.com>;tag=1928301774\r\n\
Call-ID: a84b4c76e66710@pc33.atlanta.example.com\r\n\
CSeq: 314159 INVITE\r\n\
X-Custom:  kept   exactly\r\n \tcontinued\r\n\
Contact: <sip:alice@pc33.atlanta.example.com>\r\n\
Content-Type: application/sdp\r\n\
Content-Length: 4\r\n\
\r\n\
v=0\n";

fn msg(s: &str) -> Message {
    Message::parse(Bytes::copy_from_slice(s.as_bytes())).unwrap()
}

#[test]
fn every_known_header_name_maps_back_in_any_case() {
    for name in HeaderName::ALL {
        let canon = name.as_str();
        for wire in [
            canon.to_owned(),
            canon.to_ascii_lowercase(),
            canon.to_ascii_uppercase(),
        ] {
            assert_eq!(&HeaderName::parse(&wire).unwrap(), name, "{wire}");
            assert!(!matches!(
                HeaderName::parse(&wire).unwrap(),
                HeaderName::Other(_)
            ));
        }
        // One letter off, or one longer: an extension header.
        let mut off = canon.to_ascii_lowercase().into_bytes();
        let last = off.len() - 1;
        off[last] = if off[last] == b'x' { b'y' } else { b'x' };
        let off = String::from_utf8(off).unwrap();
        assert!(
            matches!(HeaderName::parse(&off).unwrap(), HeaderName::Other(_)),
            "{off}"
        );
        let longer = format!("{canon}x");
        assert!(
            matches!(HeaderName::parse(&longer).unwrap(), HeaderName::Other(_)),
            "{longer}"
        );
    }
    assert_eq!(HeaderName::parse("x-Custom").unwrap().as_str(), "x-Custom");
    assert!(matches!(
        HeaderName::parse("q").unwrap(),
        HeaderName::Other(_)
    ));
}

#[test]
fn header_names_are_case_insensitive_and_compact_forms_map() {
    for (wire, name) in [
        ("v", HeaderName::Via),
        ("VIA", HeaderName::Via),
        ("f", HeaderName::From),
        ("t", HeaderName::To),
        ("i", HeaderName::CallId),
        ("I", HeaderName::CallId),
        ("m", HeaderName::Contact),
        ("l", HeaderName::ContentLength),
        ("c", HeaderName::ContentType),
        ("e", HeaderName::ContentEncoding),
        ("s", HeaderName::Subject),
        ("k", HeaderName::Supported),
        ("o", HeaderName::Event),
        ("r", HeaderName::ReferTo),
        ("b", HeaderName::ReferredBy),
        ("x", HeaderName::SessionExpires),
        ("u", HeaderName::AllowEvents),
        ("y", HeaderName::Identity),
        ("n", HeaderName::IdentityInfo),
        ("call-id", HeaderName::CallId),
        ("cseq", HeaderName::CSeq),
        ("RECORD-route", HeaderName::RecordRoute),
        ("p-asserted-identity", HeaderName::PAssertedIdentity),
    ] {
        assert_eq!(wire.parse::<HeaderName>().unwrap(), name, "{wire}");
    }
    let other: HeaderName = "X-Foo".parse().unwrap();
    assert_eq!(other, HeaderName::Other("x-foo".into()));
    assert_eq!(other.as_str(), "X-Foo");
    assert_eq!(HeaderName::CallId.as_str(), "Call-ID");
    assert!("Bad Name".parse::<HeaderName>().is_err());
}

#[test]
fn messages_cross_threads() {
    fn send_sync<T: Send + Sync + Clone>() {}
    send_sync::<Message>();
    send_sync::<Editor>();
    send_sync::<ParseError>();
    send_sync::<StreamDecoder>();
    // A clone shares the buffer and the typed views built so far.
    let m = msg(INVITE);
    let c = m.clone();
    assert_eq!(c.as_bytes().as_ptr(), m.as_bytes().as_ptr());
    assert!(std::ptr::eq(c.from(), m.from()));
}

#[test]
fn methods_are_case_sensitive() {
    assert_eq!("INVITE".parse::<Method>().unwrap(), Method::Invite);
    assert_eq!(
        "invite".parse::<Method>().unwrap(),
        Method::Extension("invite".into())
    );
    assert_eq!(Method::Extension("FOO".into()).to_string(), "FOO");
    assert!("IN VITE".parse::<Method>().is_err());
}

#[test]
fn uris_parse_and_serialise() {
    for s in [
        "sip:alice@atlanta.com",
        "sip:alice:secretword@atlanta.com;transport=tcp",
        "sips:alice@atlanta.com?subject=project%20x&priority=urgent",
        "sip:+1-212-555-1212:1234@gateway.com;user=phone",
        "sip:alice@192.0.2.4",
        "sip:atlanta.com;method=REGISTER?to=alice%40atlanta.com",
        "sip:alice;day=tuesday@atlanta.com",
        "sip:[2001:db8::10]:5070;maddr=[2001:db8::1];lr",
        "tel:+1-201-555-0123",
        "tel:7042;phone-context=example.com",
        "urn:service:sos",
    ] {
        let u = Uri::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"));
        assert_eq!(u.to_string(), s);
    }
    let u: SipUri = "SIP:Bob@Example.COM:5060;Transport=TCP;lr".parse().unwrap();
    assert_eq!(u.scheme, Scheme::Sip);
    assert_eq!(u.port, Some(5060));
    assert_eq!(u.transport(), Some("TCP"));
    assert!(u.is_lr());
    assert_eq!(u.maddr(), None);
    for bad in [
        "sip:",
        "sip:user@",
        "sip:user@host:99999",
        "sip:user@2001:db8::10",
        "sip:user@[2001:db8:::192.0.2.1]",
        "sip:a b@host",
        "sip:host;;lr",
        "sip:host;=x",
        "sip:%zz@host",
        "tel:",
        "tel:+12a",
        "1sip:host",
        "nocolon",
        "sip:host?noequals",
        "sip:host..",
        "sip:a..b",
        "sip:-a.b",
        "sip:a.b-",
        "sip:a.1b",
    ] {
        assert!(Uri::parse(bad).is_err(), "{bad}");
    }
}

#[test]
fn uri_equivalence_follows_rfc3261_19_1_4() {
    let eq = |a: &str, b: &str| Uri::parse(a).unwrap().equivalent(&Uri::parse(b).unwrap());
    assert!(eq(
        "sip:%61lice@atlanta.com;transport=TCP",
        "sip:alice@AtLanTa.CoM;Transport=tcp"
    ));
    assert!(eq(
        "sip:carol@chicago.com",
        "sip:carol@chicago.com;newparam=5"
    ));
    assert!(eq(
        "sip:carol@chicago.com;security=on",
        "sip:carol@chicago.com;newparam=5"
    ));
    assert!(eq(
        "sip:biloxi.com;transport=tcp;method=REGISTER?to=sip:bob%40biloxi.com",
        "sip:biloxi.com;method=REGISTER;transport=tcp?to=sip:bob%40biloxi.com"
    ));
    assert!(!eq(
        "SIP:ALICE@AtLanTa.CoM;Transport=udp",
        "sip:alice@AtLanTa.CoM;Transport=UDP"
    ));
    assert!(!eq("sip:bob@biloxi.com", "sip:bob@biloxi.com:5060"));
    assert!(!eq(
        "sip:bob@biloxi.com",
        "sip:bob@biloxi.com;transport=udp"
    ));
    assert!(!eq(
        "sip:carol@chicago.com;newparam=6",
        "sip:carol@chicago.com;newparam=5"
    ));
    assert!(!eq("sip:bob@biloxi.com", "sips:bob@biloxi.com"));
    assert!(eq("tel:+1-201-555-0123", "tel:+12015550123"));
}

#[test]
fn name_addr_forms() {
    let a = NameAddr::parse("\"A. G. Bell\" <sip:agb@bell-telephone.com> ;tag=a48s").unwrap();
    assert_eq!(a.display.as_deref(), Some("A. G. Bell"));
    assert_eq!(a.tag(), Some("a48s"));
    let a = NameAddr::parse("Anonymous <sip:c8oqz84zk7z@privacy.org>;tag=hyh8").unwrap();
    assert_eq!(a.display.as_deref(), Some("Anonymous"));
    let a = NameAddr::parse("sip:+12125551212@server.phone2net.com;tag=887s").unwrap();
    assert_eq!(a.tag(), Some("887s"));
    assert!(a.uri.as_sip().unwrap().params.is_empty());
    let a = NameAddr::parse("<tel:+12125551212>;q=0.7").unwrap();
    assert!(matches!(a.uri, Uri::Tel(_)));
    assert_eq!(a.to_string(), "<tel:+12125551212>;q=0.7");
    for bad in [
        "Bell, Alexander <sip:a@b.c>",
        "\"unterminated <sip:a@b.c>",
        "< sip:a@b.c >",
        "sip:a@b.c?x=y",
        "<sip:a@b.c>;",
        "<sip:a@b.c>;tag=",
        "<sip:a@b.c",
    ] {
        assert!(NameAddr::parse(bad).is_err(), "{bad}");
    }
}

#[test]
fn via_values() {
    let v: Via = "SIP / 2.0 / UDP [2001:db8::9:1]:6050 ; branch=z9hG4bKx ;rport;received=192.0.2.1"
        .parse()
        .unwrap();
    assert_eq!(v.transport, "UDP");
    assert_eq!(
        v.sent_by(),
        (Host::V6("2001:db8::9:1".parse().unwrap()), Some(6050))
    );
    assert_eq!(v.branch(), Some("z9hG4bKx"));
    assert!(v.is_rfc3261_branch());
    assert_eq!(v.rport(), Some(None));
    assert_eq!(v.received(), Some("192.0.2.1"));
    assert_eq!(
        v.to_string(),
        "SIP/2.0/UDP [2001:db8::9:1]:6050;branch=z9hG4bKx;rport;received=192.0.2.1"
    );
    let mut v: Via = "SIP/2.0/TCP host.example.com;branch=z9hG4bK"
        .parse()
        .unwrap();
    assert!(!v.is_rfc3261_branch());
    v.set_param("rport", Some("5060"));
    assert_eq!(v.rport(), Some(Some(5060)));
    for bad in [
        "SIP/3.0/UDP host",
        "SIP/2.0/UDP",
        "SIP/2.0/UDP host;;",
        "SIP/2.0/UDP host;branch=a b",
        "SIP/2.0/UDP host;received=not-an-ip",
        "SIP/2.0/UDP host:70000",
        "SIP/2.0 UDP host",
    ] {
        assert!(Via::parse(bad).is_err(), "{bad}");
    }
}

#[test]
fn cseq_values() {
    assert_eq!(
        CSeq::parse("0009\r\n  INVITE").unwrap(),
        CSeq {
            seq: 9,
            method: Method::Invite
        }
    );
    assert!(CSeq::parse("INVITE").is_err());
    assert!(CSeq::parse("1INVITE").is_err());
    assert_eq!(CSeq::parse("4294967295 ACK").unwrap().seq, u32::MAX);
    assert_eq!(
        CSeq::parse("4294967296 ACK"),
        Err(ParseError::ValueOutOfRange { name: "CSeq" })
    );
}

#[test]
fn message_accessors() {
    let m = msg(INVITE);
    assert!(m.is_request());
    assert_eq!(m.status(), None);
    assert_eq!(m.start_line(), "INVITE sip:bob@biloxi.example.com SIP/2.0");
    assert_eq!(m.vias().unwrap().len(), 2);
    assert_eq!(m.top_via().unwrap().branch(), Some("z9hG4bK776asdhds"));
    assert_eq!(m.header_values(&HeaderName::Route).len(), 3);
    assert_eq!(m.header_values(&HeaderName::Via).len(), 2);
    assert_eq!(
        m.headers()
            .filter(|(n, _)| **n == HeaderName::Route)
            .count(),
        2
    );
    assert_eq!(
        m.header(&HeaderName::Other("x-custom".into())),
        Some("kept   exactly\r\n \tcontinued")
    );
    assert_eq!(
        m.routes().unwrap()[2].uri.to_string(),
        "sip:p3.example.net;lr"
    );
    assert_eq!(m.body(), b"v=0\n");
    assert_eq!(m.as_bytes(), INVITE.as_bytes());
    assert_eq!(m.max_forwards(), Some(70));
    assert_eq!(m.cseq_method(), &Method::Invite);
    // Borrowed shortcuts agree with the typed views.
    assert_eq!(m.branch(), m.top_via().unwrap().branch());
    assert_eq!(m.from_tag(), Some("1928301774"));
    assert_eq!(m.from_tag(), m.from().tag());
    assert_eq!(m.to_tag(), None);
}

#[test]
fn request_validation() {
    let with = |from: &str, to: &str| INVITE.replacen(from, to, 1);
    let err = |s: String| Message::parse(Bytes::from(s)).unwrap_err();
    assert_eq!(
        err(with("CSeq: 314159 INVITE", "CSeq: 2147483648 INVITE")),
        ParseError::ValueOutOfRange { name: "CSeq" }
    );
    assert_eq!(
        err(with("Call-ID: a84", "Call-ID: x\r\nCall-ID: a84")),
        ParseError::RepeatedHeader { name: "Call-ID" }
    );
    assert_eq!(
        err(with("Max-Forwards: 70", "Max-Forwards: -1")),
        ParseError::BadHeaderValue {
            name: "Max-Forwards"
        }
    );
    assert_eq!(
        err(with("Content-Length: 4", "Content-Length: 5")),
        ParseError::BodyTooShort {
            declared: 5,
            available: 4
        }
    );
    assert_eq!(
        err(with(" SIP/2.0\r\n", " SIP/2.1\r\n")),
        ParseError::VersionNotSupported { major: 2, minor: 1 }
    );
    assert_eq!(
        err(with("Max-Forwards: 70\r\n", "Max-Forwards: 70\n")),
        ParseError::BareLineBreak
    );
    assert_eq!(
        err(with("Max-Forwards: 70", "Max-Forwards 70")),
        ParseError::BadHeaderLine { line: 3 }
    );
    assert_eq!(
        err(with("Contact: <sip:alice@", "Contact: <sip:alice@@")),
        ParseError::BadHeaderValue { name: "Contact" }
    );
    assert_eq!(err(INVITE[..100].to_owned()), ParseError::Unterminated);
    assert_eq!(err("\r\n\r\n".to_owned()), ParseError::Empty);
    let m = msg(&with("Max-Forwards: 70", "Max-Forwards: 256"));
    assert_eq!(m.max_forwards(), None);
    // Leading CRLFs are skipped; trailing junk after the body is ignored.
    let m = msg(&format!("\r\n\r\n{INVITE}junk"));
    assert_eq!(m.as_bytes(), INVITE.as_bytes());
    // Without Content-Length the body runs to the end of the datagram.
    let m = msg(&with("Content-Length: 4\r\n", ""));
    assert_eq!(m.body(), b"v=0\n");
}

#[test]
fn error_statuses() {
    assert_eq!(
        ParseError::VersionNotSupported { major: 3, minor: 0 }.status(),
        Some((505, "Version Not Supported"))
    );
    assert_eq!(
        ParseError::BadVia.status(),
        Some((400, "Bad Request (Malformed Via)"))
    );
    assert_eq!(
        ParseError::MissingHeader { name: "Call-ID" }.status(),
        Some((400, "Bad Request (Missing Call-ID)"))
    );
    assert_eq!(ParseError::Empty.status(), None);
}

/// The round trip a proxy does: prepend Via, drop the top Route (sharing a
/// line with the next one), retarget, decrement Max-Forwards, prepend
/// Record-Route.
#[test]
fn proxy_edit_round_trip() {
    let m = msg(INVITE);
    let target: Uri = "sip:bob@192.0.2.99:5080;transport=tcp".parse().unwrap();
    let out = m
        .edit()
        .prepend_header(
            HeaderName::Via,
            "SIP/2.0/UDP proxy.example.net;branch=z9hG4bKp1",
        )
        .remove_first_value(&HeaderName::Route)
        .set_request_uri(&target)
        .set_max_forwards(m.max_forwards().unwrap() - 1)
        .prepend_header(HeaderName::RecordRoute, "<sip:proxy.example.net;lr>")
        .finish();
    let f = Message::parse(out.clone()).unwrap();
    assert!(f.request_uri().unwrap().equivalent(&target));
    let vias = f.vias().unwrap();
    assert_eq!(vias.len(), 3);
    assert_eq!(vias[0].branch(), Some("z9hG4bKp1"));
    assert_eq!(vias[1].branch(), Some("z9hG4bK776asdhds"));
    let routes: Vec<String> = f
        .routes()
        .unwrap()
        .iter()
        .map(|r| r.uri.to_string())
        .collect();
    assert_eq!(routes, ["sip:p2.example.net;lr", "sip:p3.example.net;lr"]);
    assert_eq!(
        f.record_routes().unwrap()[0].uri.to_string(),
        "sip:proxy.example.net;lr"
    );
    assert_eq!(f.max_forwards(), Some(69));
    assert_eq!(f.body(), m.body());
    assert_eq!(f.call_id(), m.call_id());
    // Untouched fields are byte-identical.
    let text = std::str::from_utf8(&out).unwrap();
    for line in [
        "Via: SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bK776asdhds, SIP/2.0/TCP 192.0.2.7:5070;branch=z9hG4bKaa;received=192.0.2.8\r\n",
        "received=192.0.2.8\r\nRecord-Route: <sip:proxy.example.net;lr>\r\nMax-Forwards: 69\r\n",
        "Route: <sip:p2.example.net;lr>\r\n",
        "Route: <sip:p3.example.net;lr>\r\n",
        "X-Custom:  kept   exactly\r\n \tcontinued\r\n",
        "From: Alice <sip:alice@atlanta.example.com>;tag=1928301774\r\n",
        "Content-Length: 4\r\n\r\nv=0\n",
    ] {
        assert!(text.contains(line), "{line:?} missing from {text}");
    }
    assert!(text.starts_with("INVITE sip:bob@192.0.2.99:5080;transport=tcp SIP/2.0\r\nVia: SIP/2.0/UDP proxy.example.net;branch=z9hG4bKp1\r\nVia: SIP/2.0/UDP pc33"));
    // Removing the top Via of a combined line keeps the rest of that line.
    let g = Message::parse(
        f.edit()
            .remove_first_value(&HeaderName::Via)
            .remove_first_value(&HeaderName::Via)
            .finish(),
    )
    .unwrap();
    assert_eq!(g.vias().unwrap().len(), 1);
    assert_eq!(g.top_via().unwrap().branch(), Some("z9hG4bKaa"));
    assert!(
        std::str::from_utf8(g.as_bytes())
            .unwrap()
            .contains("Via: SIP/2.0/TCP 192.0.2.7:5070;branch=z9hG4bKaa;received=192.0.2.8\r\n")
    );
}

#[test]
fn editor_value_surgery() {
    let m = msg(INVITE);
    // Strict routing: the last Route value goes, wherever it is.
    let f = Message::parse(
        m.edit()
            .remove_last_value(&HeaderName::Route)
            .remove_last_value(&HeaderName::Route)
            .finish(),
    )
    .unwrap();
    let routes: Vec<String> = f
        .routes()
        .unwrap()
        .iter()
        .map(|r| r.uri.to_string())
        .collect();
    assert_eq!(routes, ["sip:p1.example.net;lr"]);
    assert!(
        std::str::from_utf8(f.as_bytes())
            .unwrap()
            .contains("\r\nRoute: <sip:p1.example.net;lr>\r\n")
    );
    // received/rport on the top Via of a combined line (RFC 3581).
    let mut top = m.top_via().unwrap().clone();
    top.set_param("received", Some("198.51.100.7"));
    top.set_param("rport", Some("5071"));
    let f = Message::parse(
        m.edit()
            .set_first_value(HeaderName::Via, &top.to_string())
            .finish(),
    )
    .unwrap();
    let vias = f.vias().unwrap();
    assert_eq!(vias.len(), 2);
    assert_eq!(vias[0].received(), Some("198.51.100.7"));
    assert_eq!(vias[0].rport(), Some(Some(5071)));
    assert_eq!(vias[1], m.vias().unwrap()[1]);
    assert!(f.as_bytes().starts_with(b"INVITE sip:bob@biloxi.example.com SIP/2.0\r\nVia: SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bK776asdhds;received=198.51.100.7;rport=5071\r\nVia: SIP/2.0/TCP 192.0.2.7:5070"));
    // First and last removals compose on one line.
    let f = Message::parse(
        m.edit()
            .remove_first_value(&HeaderName::Route)
            .remove_first_value(&HeaderName::Route)
            .remove_last_value(&HeaderName::Route)
            .append_header(HeaderName::Route, "<sip:a.example;lr>, <sip:b.example;lr>")
            .remove_last_value(&HeaderName::Route)
            .finish(),
    )
    .unwrap();
    let routes: Vec<String> = f
        .routes()
        .unwrap()
        .iter()
        .map(|r| r.uri.to_string())
        .collect();
    assert_eq!(routes, ["sip:a.example;lr"]);
}

#[test]
fn editor_headers_and_body() {
    let m = msg(INVITE);
    let out = m
        .edit()
        .set_body(Some("text/plain"), Bytes::from_static(b"hello world"))
        .remove_header(&HeaderName::Route)
        .append_header(HeaderName::Other("X-Added".into()), "1")
        .set_header(HeaderName::Subject, "hi")
        .finish();
    let f = Message::parse(out).unwrap();
    assert_eq!(f.body(), b"hello world");
    assert_eq!(f.header(&HeaderName::ContentLength), Some("11"));
    assert_eq!(f.header(&HeaderName::ContentType), Some("text/plain"));
    assert!(f.routes().unwrap().is_empty());
    assert_eq!(f.header(&HeaderName::Other("x-added".into())), Some("1"));
    assert_eq!(f.header(&HeaderName::Subject), Some("hi"));
    let out = m.edit().set_body(None, Bytes::new()).finish();
    let f = Message::parse(out).unwrap();
    assert_eq!(f.header(&HeaderName::ContentLength), Some("0"));
    assert_eq!(f.header(&HeaderName::ContentType), None);
    // A message without Content-Length gets one.
    let no_cl = INVITE.replacen("Content-Length: 4\r\n", "", 1);
    let f = Message::parse(msg(&no_cl).edit().finish()).unwrap();
    assert_eq!(f.header(&HeaderName::ContentLength), Some("4"));
    // An unchanged message re-serialises byte for byte.
    assert_eq!(&m.edit().finish()[..], INVITE.as_bytes());
}

/// A datagram-sized message with thousands of fields and values: linear work
/// in the parser and the editor.
#[test]
fn thousands_of_fields() {
    let mut extra = String::new();
    for i in 0..3000 {
        extra.push_str(&format!("Route: <sip:r{i}.example.net;lr>\r\nX-N: {i}\r\n"));
    }
    let many = INVITE.replacen(
        "Max-Forwards: 70\r\n",
        &format!("Max-Forwards: 70\r\n{extra}"),
        1,
    );
    let m = msg(&many);
    assert_eq!(m.routes().unwrap().len(), 3003);
    let out = m
        .edit()
        .set_header(HeaderName::Route, "<sip:only.example.net;lr>")
        .set_header(HeaderName::Other("x-n".into()), "1")
        .remove_first_value(&HeaderName::Via)
        .finish();
    let f = Message::parse(out).unwrap();
    assert_eq!(f.routes().unwrap().len(), 1);
    assert_eq!(f.header_values(&HeaderName::Other("X-N".into())), ["1"]);
}

#[test]
fn responses_to_requests() {
    let m = msg(INVITE);
    let r = response_to(
        &m,
        486,
        "Busy Here",
        Some("x1"),
        &[(HeaderName::RetryAfter, "30")],
    );
    let r = Message::parse(r).unwrap();
    assert_eq!((r.status(), r.reason()), (Some(486), Some("Busy Here")));
    assert_eq!(r.vias().unwrap().len(), 2);
    assert_eq!(r.to().tag(), Some("x1"));
    assert_eq!(r.from().tag(), Some("1928301774"));
    assert_eq!(r.cseq(), m.cseq());
    assert_eq!(r.call_id(), m.call_id());
    assert_eq!(r.header(&HeaderName::RetryAfter), Some("30"));
    assert!(r.body().is_empty());

    let bad = INVITE.replacen("CSeq: 314159 INVITE", "CSeq: 314159 BYE", 1);
    let resp = parse_request_for_error_response(bad.as_bytes()).unwrap();
    let resp = Message::parse(resp).unwrap();
    assert_eq!(resp.status(), Some(400));
    assert_eq!(resp.reason(), Some("Bad Request (CSeq Method Mismatch)"));
    assert!(resp.to().tag().is_some());
    assert!(parse_request_for_error_response(INVITE.as_bytes()).is_none());
    // An ACK is never answered, even when malformed.
    let bad_ack =
        bad.replacen("INVITE sip:", "ACK sip:", 1)
            .replacen("314159 BYE", "314159 INVITE", 1);
    assert_eq!(
        Message::parse(Bytes::from(bad_ack.clone())).unwrap_err(),
        ParseError::CSeqMethodMismatch
    );
    assert!(parse_request_for_error_response(bad_ack.as_bytes()).is_none());
}

#[test]
fn stream_framing() {
    let mut d = StreamDecoder::new(4096);
    let mut buf = BytesMut::new();
    buf.extend_from_slice(b"\r\n\r\n");
    assert!(matches!(d.decode(&mut buf), Ok(Some(Frame::KeepAlive))));
    // Byte by byte: nothing until the whole message is there.
    let wire = INVITE.as_bytes();
    for (i, b) in wire.iter().enumerate() {
        buf.extend_from_slice(&[*b]);
        let r = d.decode(&mut buf).unwrap();
        if i + 1 < wire.len() {
            assert!(r.is_none(), "framed early at {i}");
        } else {
            let Some(Frame::Message(m)) = r else {
                panic!("no frame")
            };
            assert_eq!(m.as_bytes(), wire);
        }
    }
    assert!(buf.is_empty());
    // Two messages and a lone CRLF in one read.
    buf.extend_from_slice(wire);
    buf.extend_from_slice(b"\r\n");
    buf.extend_from_slice(wire);
    assert!(matches!(d.decode(&mut buf), Ok(Some(Frame::Message(_)))));
    assert!(matches!(d.decode(&mut buf), Ok(Some(Frame::Message(_)))));
    assert!(d.decode(&mut buf).unwrap().is_none());
    // Framed but invalid: reported, framing continues.
    let bad = INVITE.replacen("CSeq: 314159 INVITE", "CSeq: 1 BYE", 1);
    buf.extend_from_slice(bad.as_bytes());
    let Ok(Some(Frame::Invalid { error, raw })) = d.decode(&mut buf) else {
        panic!("not framed")
    };
    assert_eq!(error, ParseError::CSeqMethodMismatch);
    assert_eq!(&raw[..], bad.as_bytes());
    // Missing Content-Length, oversize, negative: unrecoverable.
    let mut buf = BytesMut::from(INVITE.replacen("Content-Length: 4\r\n", "", 1).as_bytes());
    assert_eq!(
        d.decode(&mut buf).unwrap_err(),
        ParseError::MissingContentLength
    );
    let mut buf = BytesMut::from(
        INVITE
            .replacen("Content-Length: 4", "l:\r\n -999", 1)
            .as_bytes(),
    );
    assert_eq!(
        d.decode(&mut buf).unwrap_err(),
        ParseError::BadHeaderValue {
            name: "Content-Length"
        }
    );
    let mut d = StreamDecoder::new(100);
    let mut buf = BytesMut::from(INVITE.as_bytes());
    assert!(matches!(
        d.decode(&mut buf),
        Err(ParseError::TooLarge { max: 100, .. })
    ));
    let mut buf = BytesMut::from(&b"INVITE sip:x SIP/2.0\r\nContent-Length: 99999\r\n\r\n"[..]);
    assert!(matches!(
        d.decode(&mut buf),
        Err(ParseError::TooLarge { .. })
    ));
}

#[test]
fn date_must_be_rfc1123_gmt() {
    let with_date = |d: &str| {
        INVITE.replacen(
            "Max-Forwards: 70\r\n",
            &format!("Max-Forwards: 70\r\nDate: {d}\r\n"),
            1,
        )
    };
    assert!(Message::parse(Bytes::from(with_date("Sat, 13 Nov 2010 23:29:00 GMT"))).is_ok());
    for bad in [
        "Fri, 01 Jan 2010 16:00:00 EST",
        "Sat, 13 Nov 2010 23:29:00 GMTX",
        "ééééééééééééééé",
        "Sat, 13 Nov 2010 23:29:0é GMT",
    ] {
        assert_eq!(
            Message::parse(Bytes::from(with_date(bad))).unwrap_err(),
            ParseError::BadHeaderValue { name: "Date" },
            "{bad}"
        );
    }
}

const FUZZ_NAMES: &[&str] = &[
    "Via",
    "v",
    "From",
    "To",
    "t",
    "Contact",
    "m",
    "Route",
    "Record-Route",
    "CSeq",
    "Call-ID",
    "Content-Length",
    "l",
    "Max-Forwards",
    "Expires",
    "Date",
    "X-Other",
];

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// Arbitrary (UTF-8) values in the headers the parser looks into.
    #[test]
    fn arbitrary_header_values_never_panic(
        name in proptest::sample::select(FUZZ_NAMES),
        value in "\\PC{0,40}",
        replace in any::<bool>(),
    ) {
        let line = format!("{name}: {value}\r\n");
        let text = if replace {
            // Put the value in place of the first field of that name, if any.
            let mut out = String::new();
            let mut done = false;
            for l in INVITE.split_inclusive("\r\n") {
                if !done && l.to_ascii_lowercase().starts_with(&format!("{}:", name.to_ascii_lowercase())) {
                    out.push_str(&line);
                    done = true;
                } else {
                    out.push_str(l);
                }
            }
            out
        } else {
            INVITE.replacen("Max-Forwards: 70\r\n", &format!("Max-Forwards: 70\r\n{line}"), 1)
        };
        if let Ok(m) = Message::parse(Bytes::from(text)) {
            let _ = (m.request_uri(), m.top_via(), m.from().tag(), m.to().tag());
            prop_assert!(m.vias().is_ok());
            let _ = (m.routes(), m.record_routes(), m.contacts());
            let again = Message::parse(m.edit().finish()).unwrap();
            prop_assert_eq!(again.from(), m.from());
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..600)) {
        let _ = Message::parse(Bytes::from(data.clone()));
        let _ = parse_request_for_error_response(&data);
        let mut d = StreamDecoder::new(1 << 16);
        let mut buf = BytesMut::from(&data[..]);
        while let Ok(Some(_)) = d.decode(&mut buf) {}
    }

    #[test]
    fn mutated_messages_never_panic_and_reparse(
        edits in proptest::collection::vec((0usize..INVITE.len(), any::<u8>()), 1..6),
        cut in 0usize..=INVITE.len(),
    ) {
        let mut data = INVITE.as_bytes().to_vec();
        for (pos, byte) in edits {
            data[pos] = byte;
        }
        data.truncate(cut.max(1));
        if let Ok(m) = Message::parse(Bytes::from(data.clone())) {
            // What parses re-serialises to something that parses the same.
            let again = Message::parse(m.edit().finish()).unwrap();
            prop_assert_eq!(again.call_id(), m.call_id());
            prop_assert_eq!(again.cseq(), m.cseq());
            prop_assert_eq!(again.body(), m.body());
            prop_assert_eq!(again.vias().unwrap(), m.vias().unwrap());
            prop_assert_eq!(m.branch(), m.top_via().unwrap().branch());
            prop_assert_eq!(m.from_tag(), m.from().tag());
            prop_assert_eq!(m.to_tag(), m.to().tag());
        } else {
            let _ = parse_request_for_error_response(&data);
        }
    }

    #[test]
    fn uri_display_reparses(user in "[a-z0-9%]{0,8}", host in "[a-z]{1,8}(\\.[a-z]{2,4})?", port in proptest::option::of(1u16..), lr in any::<bool>()) {
        let mut s = String::from("sip:");
        if !user.is_empty() { s.push_str(&user); s.push('@'); }
        s.push_str(&host);
        if let Some(p) = port { s.push_str(&format!(":{p}")); }
        if lr { s.push_str(";lr"); }
        if let Ok(u) = Uri::parse(&s) {
            prop_assert_eq!(u.to_string(), s.clone());
            prop_assert!(Uri::parse(&u.to_string()).unwrap().equivalent(&u));
        }
    }
}

#[test]
fn ipv4_check_matches_std_parser() {
    let mut cases: Vec<String> = [
        "",
        ".",
        "1.2.3.4",
        "0.0.0.0",
        "255.255.255.255",
        "256.1.1.1",
        "1.2.3",
        "1.2.3.4.",
        ".1.2.3.4",
        "1..2.3",
        "01.2.3.4",
        "1.02.3.4",
        "1.2.3.04",
        "1.2.3.0",
        "1.2.3.4.5",
        "1234.1.1.1",
        "001.1.1.1",
        "1.2.3.a",
        "a.b.c.d",
        "1.2.3.4a",
        "10.20.30.40",
        "1.2.3.-4",
        "1.2.3.+4",
        "0.0.0.00",
        "1.2.3.255",
        "1.2.3.2555",
        "99.999.9.9",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    // Every short string over digits and dots.
    let alphabet = ['0', '1', '2', '5', '9', '.'];
    let mut frontier = vec![String::new()];
    for _ in 0..7 {
        let mut next = Vec::new();
        for p in &frontier {
            for c in alphabet {
                next.push(format!("{p}{c}"));
            }
        }
        cases.extend(next.iter().cloned());
        frontier = next;
    }
    for c in &cases {
        assert_eq!(
            uri::is_ipv4(c.as_bytes()),
            c.parse::<std::net::Ipv4Addr>().is_ok(),
            "{c:?}"
        );
    }
}

#[test]
fn hostname_scan_agrees_with_host_validation() {
    let alphabet = ['a', 'B', '1', '0', '-', '.'];
    let mut frontier = vec![String::new()];
    for _ in 0..6 {
        let mut next = Vec::new();
        for p in &frontier {
            for c in alphabet {
                next.push(format!("{p}{c}"));
            }
        }
        for h in &next {
            let scanned = uri::scan_hostname(h, 0) == Some(h.len());
            assert_eq!(scanned, Host::is_valid(h), "{h:?}");
            // Inside a URI the same.
            assert_eq!(
                Uri::validate(&format!("sip:{h}")).is_ok(),
                Host::is_valid(h),
                "{h:?}"
            );
        }
        frontier = next;
    }
    for h in [
        "a.b.c.d.e.",
        "10.20.30.40",
        "1.2.3.4.",
        "x1.2.3.4",
        "1.2.3.x",
        "a-b.c-d",
    ] {
        assert_eq!(
            uri::scan_hostname(h, 0) == Some(h.len()),
            Host::is_valid(h),
            "{h:?}"
        );
    }
    assert!(Uri::validate("SIPS:a@b").is_ok());
    assert!(Uri::validate("sIp:a@b").is_ok());
    assert!(Uri::validate("sipx:a@b").is_ok());
    assert!(Uri::validate("sip").is_err());
}

#[test]
fn ipv4_hosts_display_like_std() {
    for a in [
        [0u8, 0, 0, 0],
        [10, 0, 0, 7],
        [255, 255, 255, 255],
        [1, 20, 100, 109],
        [192, 0, 2, 99],
    ] {
        let ip = std::net::Ipv4Addr::from(a);
        assert_eq!(Host::V4(ip).to_string(), ip.to_string());
    }
    let u: Uri = "sip:alice:pw@10.0.0.7:5060;transport=tcp;lr?subject=x&h=y"
        .parse()
        .unwrap();
    assert_eq!(
        u.to_string(),
        "sip:alice:pw@10.0.0.7:5060;transport=tcp;lr?subject=x&h=y"
    );
}

/// What the general path says of a list: every element as split.
fn addr_list_by_elements(v: &str) -> bool {
    lex::split_list(v).all(|(a, e)| value::validate_name_addr(&v[a..e]))
}

#[test]
fn angle_list_agrees_with_the_general_path() {
    for v in [
        "<sip:a.example.net;lr>",
        "<sip:a.example.net;lr>, <sip:b.example.net;lr>",
        "<sip:a.example.net;lr> ;x=\"a,b\" , <sip:u@b.example.net>;tag=x",
        "<sip:a.example.net;lr>,",
        "<sip:a.example.net;lr>, , <sip:b.example.net>",
        "<sip:a.example.net>;tag=\"q\"",
        "<sip:a.example.net>;tag=",
        "<sip:a.example.net>;;lr",
        "<sip:a.example.net>x",
        "<sip:a@b@c.example.net>",
        "<sip:a.example.net>;p=<x>",
        "<sip:a.example.net",
        "<tel:+1234>, <urn:x:y>",
        "<sip:a.example.net>;x=\"unterminated, <sip:b.example.net>",
        " <sip:a.example.net> , <sip:b.example.net> ",
    ] {
        if let Some(ok) = value::validate_angle_list(v) {
            assert_eq!(ok, addr_list_by_elements(v), "{v:?}");
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]
    #[test]
    fn angle_list_agrees_on_noise(v in "[<>a-z:@;=,\" .0-9]{0,40}") {
        if let Some(ok) = value::validate_angle_list(&v) {
            prop_assert_eq!(ok, addr_list_by_elements(&v), "{:?}", v);
        }
    }

    #[test]
    fn angle_list_agrees_on_near_lists(
        parts in proptest::collection::vec(
            "<sip:[a-z@:.;=]{1,12}>[ ;a-z=\",]{0,10}", 1..4)
    ) {
        let v = parts.join(", ");
        if let Some(ok) = value::validate_angle_list(&v) {
            prop_assert_eq!(ok, addr_list_by_elements(&v), "{:?}", v);
        }
    }
}

/// Start lines and their first line break in many spellings: the result of
/// parsing (error or not) for each, as fixed below.
#[test]
fn start_line_variants_keep_their_errors() {
    let rest = "Via: SIP/2.0/UDP h;branch=z9hG4bKx\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:c@d>\r\nCall-ID: x\r\nCSeq: 1 INVITE\r\n\r\n";
    let lines = [
        "INVITE sip:a@b SIP/2.0",
        "INVITE sip:a@b SIP/2.0 ",
        "INVITE sip:a@b  SIP/2.0",
        "INVITE  sip:a@b SIP/2.0",
        "INVITE  SIP/2.0",
        "INVITE sip:a@b\tSIP/2.0",
        "INVITE sip:a\t@b SIP/2.0",
        "INVITE sip:a@b SIP/2.1",
        "INVITE sip:a@b SIP/3.0",
        "INVITE sip:a@b sip/2.0",
        "INVITE sip:a@b SIP/2.0x",
        "INVITE sip:a@b",
        "INVITE",
        "INVITE ",
        "INV\u{e9}TE sip:a@b SIP/2.0",
        "INVITE sip:a@b SIP/2.\u{e9}",
        "INVITE sip:a@b\r SIP/2.0",
        "INVITE sip:a@b SIP/2.0\r",
        "\rINVITE sip:a@b SIP/2.0",
        "INVITE sip:a@b SIP/2.0\n",
        "INVITE sip:a@b\n SIP/2.0",
        "BYE sip:a@b SIP/2.0",
        "INVITE sip:a@b?x=y SIP/2.0",
        "INVITE <sip:a@b> SIP/2.0",
        "INVITE tel:+1 SIP/2.0",
        "INVITE sip:a@b SIP/2.0\t",
        "SIP/2.0 200 OK",
        "SIP/2.0 200 OK\r",
        "SIP/2.0 200",
        "SIP/2.1 200 OK",
        "",
    ];
    let mut got = Vec::new();
    for l in lines {
        for tail in ["\r\n", "\n", "\r", "\r\r\n", ""] {
            let mut wire = Vec::from(l.as_bytes());
            wire.extend_from_slice(tail.as_bytes());
            if !tail.is_empty() {
                wire.extend_from_slice(rest.as_bytes());
            }
            wire.extend_from_slice(b"\xff");
            for cut in [wire.len() - 1, wire.len()] {
                let r = Message::parse(Bytes::from(wire[..cut].to_vec())).map(|_| ());
                got.push(format!("{l:?}{tail:?}{cut}: {r:?}"));
            }
        }
    }
    let got = got.join("\n");
    println!("{got}");
    assert_eq!(got, EXPECTED);
}

const EXPECTED: &str = r##""INVITE sip:a@b SIP/2.0""\r\n"128: Ok(())
"INVITE sip:a@b SIP/2.0""\r\n"129: Ok(())
"INVITE sip:a@b SIP/2.0""\n"127: Err(BareLineBreak)
"INVITE sip:a@b SIP/2.0""\n"128: Err(BareLineBreak)
"INVITE sip:a@b SIP/2.0""\r"127: Err(BareLineBreak)
"INVITE sip:a@b SIP/2.0""\r"128: Err(BareLineBreak)
"INVITE sip:a@b SIP/2.0""\r\r\n"129: Err(BareLineBreak)
"INVITE sip:a@b SIP/2.0""\r\r\n"130: Err(BareLineBreak)
"INVITE sip:a@b SIP/2.0"""22: Err(Unterminated)
"INVITE sip:a@b SIP/2.0"""23: Err(Unterminated)
"INVITE sip:a@b SIP/2.0 ""\r\n"129: Err(BadVersion)
"INVITE sip:a@b SIP/2.0 ""\r\n"130: Err(BadVersion)
"INVITE sip:a@b SIP/2.0 ""\n"128: Err(BareLineBreak)
"INVITE sip:a@b SIP/2.0 ""\n"129: Err(BareLineBreak)
"INVITE sip:a@b SIP/2.0 ""\r"128: Err(BareLineBreak)
"INVITE sip:a@b SIP/2.0 ""\r"129: Err(BareLineBreak)
"INVITE sip:a@b SIP/2.0 ""\r\r\n"130: Err(BareLineBreak)
"INVITE sip:a@b SIP/2.0 ""\r\r\n"131: Err(BareLineBreak)
"INVITE sip:a@b SIP/2.0 """23: Err(Unterminated)
"INVITE sip:a@b SIP/2.0 """24: Err(Unterminated)
"INVITE sip:a@b  SIP/2.0""\r\n"129: Err(BadRequestUri)
"INVITE sip:a@b  SIP/2.0""\r\n"130: Err(BadRequestUri)
"INVITE sip:a@b  SIP/2.0""\n"128: Err(BareLineBreak)
"INVITE sip:a@b  SIP/2.0""\n"129: Err(BareLineBreak)
"INVITE sip:a@b  SIP/2.0""\r"128: Err(BareLineBreak)
"INVITE sip:a@b  SIP/2.0""\r"129: Err(BareLineBreak)
"INVITE sip:a@b  SIP/2.0""\r\r\n"130: Err(BareLineBreak)
"INVITE sip:a@b  SIP/2.0""\r\r\n"131: Err(BareLineBreak)
"INVITE sip:a@b  SIP/2.0"""23: Err(Unterminated)
"INVITE sip:a@b  SIP/2.0"""24: Err(Unterminated)
"INVITE  sip:a@b SIP/2.0""\r\n"129: Err(BadRequestUri)
"INVITE  sip:a@b SIP/2.0""\r\n"130: Err(BadRequestUri)
"INVITE  sip:a@b SIP/2.0""\n"128: Err(BareLineBreak)
"INVITE  sip:a@b SIP/2.0""\n"129: Err(BareLineBreak)
"INVITE  sip:a@b SIP/2.0""\r"128: Err(BareLineBreak)
"INVITE  sip:a@b SIP/2.0""\r"129: Err(BareLineBreak)
"INVITE  sip:a@b SIP/2.0""\r\r\n"130: Err(BareLineBreak)
"INVITE  sip:a@b SIP/2.0""\r\r\n"131: Err(BareLineBreak)
"INVITE  sip:a@b SIP/2.0"""23: Err(Unterminated)
"INVITE  sip:a@b SIP/2.0"""24: Err(Unterminated)
"INVITE  SIP/2.0""\r\n"121: Err(BadRequestUri)
"INVITE  SIP/2.0""\r\n"122: Err(BadRequestUri)
"INVITE  SIP/2.0""\n"120: Err(BareLineBreak)
"INVITE  SIP/2.0""\n"121: Err(BareLineBreak)
"INVITE  SIP/2.0""\r"120: Err(BareLineBreak)
"INVITE  SIP/2.0""\r"121: Err(BareLineBreak)
"INVITE  SIP/2.0""\r\r\n"122: Err(BareLineBreak)
"INVITE  SIP/2.0""\r\r\n"123: Err(BareLineBreak)
"INVITE  SIP/2.0"""15: Err(Unterminated)
"INVITE  SIP/2.0"""16: Err(Unterminated)
"INVITE sip:a@b\tSIP/2.0""\r\n"128: Err(BadStartLine)
"INVITE sip:a@b\tSIP/2.0""\r\n"129: Err(BadStartLine)
"INVITE sip:a@b\tSIP/2.0""\n"127: Err(BareLineBreak)
"INVITE sip:a@b\tSIP/2.0""\n"128: Err(BareLineBreak)
"INVITE sip:a@b\tSIP/2.0""\r"127: Err(BareLineBreak)
"INVITE sip:a@b\tSIP/2.0""\r"128: Err(BareLineBreak)
"INVITE sip:a@b\tSIP/2.0""\r\r\n"129: Err(BareLineBreak)
"INVITE sip:a@b\tSIP/2.0""\r\r\n"130: Err(BareLineBreak)
"INVITE sip:a@b\tSIP/2.0"""22: Err(Unterminated)
"INVITE sip:a@b\tSIP/2.0"""23: Err(Unterminated)
"INVITE sip:a\t@b SIP/2.0""\r\n"129: Err(BadRequestUri)
"INVITE sip:a\t@b SIP/2.0""\r\n"130: Err(BadRequestUri)
"INVITE sip:a\t@b SIP/2.0""\n"128: Err(BareLineBreak)
"INVITE sip:a\t@b SIP/2.0""\n"129: Err(BareLineBreak)
"INVITE sip:a\t@b SIP/2.0""\r"128: Err(BareLineBreak)
"INVITE sip:a\t@b SIP/2.0""\r"129: Err(BareLineBreak)
"INVITE sip:a\t@b SIP/2.0""\r\r\n"130: Err(BareLineBreak)
"INVITE sip:a\t@b SIP/2.0""\r\r\n"131: Err(BareLineBreak)
"INVITE sip:a\t@b SIP/2.0"""23: Err(Unterminated)
"INVITE sip:a\t@b SIP/2.0"""24: Err(Unterminated)
"INVITE sip:a@b SIP/2.1""\r\n"128: Err(VersionNotSupported { major: 2, minor: 1 })
"INVITE sip:a@b SIP/2.1""\r\n"129: Err(VersionNotSupported { major: 2, minor: 1 })
"INVITE sip:a@b SIP/2.1""\n"127: Err(BareLineBreak)
"INVITE sip:a@b SIP/2.1""\n"128: Err(BareLineBreak)
"INVITE sip:a@b SIP/2.1""\r"127: Err(BareLineBreak)
"INVITE sip:a@b SIP/2.1""\r"128: Err(BareLineBreak)
"INVITE sip:a@b SIP/2.1""\r\r\n"129: Err(BareLineBreak)
"INVITE sip:a@b SIP/2.1""\r\r\n"130: Err(BareLineBreak)
"INVITE sip:a@b SIP/2.1"""22: Err(Unterminated)
"INVITE sip:a@b SIP/2.1"""23: Err(Unterminated)
"INVITE sip:a@b SIP/3.0""\r\n"128: Err(VersionNotSupported { major: 3, minor: 0 })
"INVITE sip:a@b SIP/3.0""\r\n"129: Err(VersionNotSupported { major: 3, minor: 0 })
"INVITE sip:a@b SIP/3.0""\n"127: Err(BareLineBreak)
"INVITE sip:a@b SIP/3.0""\n"128: Err(BareLineBreak)
"INVITE sip:a@b SIP/3.0""\r"127: Err(BareLineBreak)
"INVITE sip:a@b SIP/3.0""\r"128: Err(BareLineBreak)
"INVITE sip:a@b SIP/3.0""\r\r\n"129: Err(BareLineBreak)
"INVITE sip:a@b SIP/3.0""\r\r\n"130: Err(BareLineBreak)
"INVITE sip:a@b SIP/3.0"""22: Err(Unterminated)
"INVITE sip:a@b SIP/3.0"""23: Err(Unterminated)
"INVITE sip:a@b sip/2.0""\r\n"128: Ok(())
"INVITE sip:a@b sip/2.0""\r\n"129: Ok(())
"INVITE sip:a@b sip/2.0""\n"127: Err(BareLineBreak)
"INVITE sip:a@b sip/2.0""\n"128: Err(BareLineBreak)
"INVITE sip:a@b sip/2.0""\r"127: Err(BareLineBreak)
"INVITE sip:a@b sip/2.0""\r"128: Err(BareLineBreak)
"INVITE sip:a@b sip/2.0""\r\r\n"129: Err(BareLineBreak)
"INVITE sip:a@b sip/2.0""\r\r\n"130: Err(BareLineBreak)
"INVITE sip:a@b sip/2.0"""22: Err(Unterminated)
"INVITE sip:a@b sip/2.0"""23: Err(Unterminated)
"INVITE sip:a@b SIP/2.0x""\r\n"129: Err(BadVersion)
"INVITE sip:a@b SIP/2.0x""\r\n"130: Err(BadVersion)
"INVITE sip:a@b SIP/2.0x""\n"128: Err(BareLineBreak)
"INVITE sip:a@b SIP/2.0x""\n"129: Err(BareLineBreak)
"INVITE sip:a@b SIP/2.0x""\r"128: Err(BareLineBreak)
"INVITE sip:a@b SIP/2.0x""\r"129: Err(BareLineBreak)
"INVITE sip:a@b SIP/2.0x""\r\r\n"130: Err(BareLineBreak)
"INVITE sip:a@b SIP/2.0x""\r\r\n"131: Err(BareLineBreak)
"INVITE sip:a@b SIP/2.0x"""23: Err(Unterminated)
"INVITE sip:a@b SIP/2.0x"""24: Err(Unterminated)
"INVITE sip:a@b""\r\n"120: Err(BadStartLine)
"INVITE sip:a@b""\r\n"121: Err(BadStartLine)
"INVITE sip:a@b""\n"119: Err(BareLineBreak)
"INVITE sip:a@b""\n"120: Err(BareLineBreak)
"INVITE sip:a@b""\r"119: Err(BareLineBreak)
"INVITE sip:a@b""\r"120: Err(BareLineBreak)
"INVITE sip:a@b""\r\r\n"121: Err(BareLineBreak)
"INVITE sip:a@b""\r\r\n"122: Err(BareLineBreak)
"INVITE sip:a@b"""14: Err(Unterminated)
"INVITE sip:a@b"""15: Err(Unterminated)
"INVITE""\r\n"112: Err(BadStartLine)
"INVITE""\r\n"113: Err(BadStartLine)
"INVITE""\n"111: Err(BareLineBreak)
"INVITE""\n"112: Err(BareLineBreak)
"INVITE""\r"111: Err(BareLineBreak)
"INVITE""\r"112: Err(BareLineBreak)
"INVITE""\r\r\n"113: Err(BareLineBreak)
"INVITE""\r\r\n"114: Err(BareLineBreak)
"INVITE"""6: Err(Unterminated)
"INVITE"""7: Err(Unterminated)
"INVITE ""\r\n"113: Err(BadStartLine)
"INVITE ""\r\n"114: Err(BadStartLine)
"INVITE ""\n"112: Err(BareLineBreak)
"INVITE ""\n"113: Err(BareLineBreak)
"INVITE ""\r"112: Err(BareLineBreak)
"INVITE ""\r"113: Err(BareLineBreak)
"INVITE ""\r\r\n"114: Err(BareLineBreak)
"INVITE ""\r\r\n"115: Err(BareLineBreak)
"INVITE """7: Err(Unterminated)
"INVITE """8: Err(Unterminated)
"INVéTE sip:a@b SIP/2.0""\r\n"129: Err(BadMethod)
"INVéTE sip:a@b SIP/2.0""\r\n"130: Err(BadMethod)
"INVéTE sip:a@b SIP/2.0""\n"128: Err(BareLineBreak)
"INVéTE sip:a@b SIP/2.0""\n"129: Err(BareLineBreak)
"INVéTE sip:a@b SIP/2.0""\r"128: Err(BareLineBreak)
"INVéTE sip:a@b SIP/2.0""\r"129: Err(BareLineBreak)
"INVéTE sip:a@b SIP/2.0""\r\r\n"130: Err(BareLineBreak)
"INVéTE sip:a@b SIP/2.0""\r\r\n"131: Err(BareLineBreak)
"INVéTE sip:a@b SIP/2.0"""23: Err(Unterminated)
"INVéTE sip:a@b SIP/2.0"""24: Err(Unterminated)
"INVITE sip:a@b SIP/2.é""\r\n"129: Err(BadVersion)
"INVITE sip:a@b SIP/2.é""\r\n"130: Err(BadVersion)
"INVITE sip:a@b SIP/2.é""\n"128: Err(BareLineBreak)
"INVITE sip:a@b SIP/2.é""\n"129: Err(BareLineBreak)
"INVITE sip:a@b SIP/2.é""\r"128: Err(BareLineBreak)
"INVITE sip:a@b SIP/2.é""\r"129: Err(BareLineBreak)
"INVITE sip:a@b SIP/2.é""\r\r\n"130: Err(BareLineBreak)
"INVITE sip:a@b SIP/2.é""\r\r\n"131: Err(BareLineBreak)
"INVITE sip:a@b SIP/2.é"""23: Err(Unterminated)
"INVITE sip:a@b SIP/2.é"""24: Err(Unterminated)
"INVITE sip:a@b\r SIP/2.0""\r\n"129: Err(BareLineBreak)
"INVITE sip:a@b\r SIP/2.0""\r\n"130: Err(BareLineBreak)
"INVITE sip:a@b\r SIP/2.0""\n"128: Err(BareLineBreak)
"INVITE sip:a@b\r SIP/2.0""\n"129: Err(BareLineBreak)
"INVITE sip:a@b\r SIP/2.0""\r"128: Err(BareLineBreak)
"INVITE sip:a@b\r SIP/2.0""\r"129: Err(BareLineBreak)
"INVITE sip:a@b\r SIP/2.0""\r\r\n"130: Err(BareLineBreak)
"INVITE sip:a@b\r SIP/2.0""\r\r\n"131: Err(BareLineBreak)
"INVITE sip:a@b\r SIP/2.0"""23: Err(Unterminated)
"INVITE sip:a@b\r SIP/2.0"""24: Err(Unterminated)
"INVITE sip:a@b SIP/2.0\r""\r\n"129: Err(BareLineBreak)
"INVITE sip:a@b SIP/2.0\r""\r\n"130: Err(BareLineBreak)
"INVITE sip:a@b SIP/2.0\r""\n"128: Ok(())
"INVITE sip:a@b SIP/2.0\r""\n"129: Ok(())
"INVITE sip:a@b SIP/2.0\r""\r"128: Err(BareLineBreak)
"INVITE sip:a@b SIP/2.0\r""\r"129: Err(BareLineBreak)
"INVITE sip:a@b SIP/2.0\r""\r\r\n"130: Err(BareLineBreak)
"INVITE sip:a@b SIP/2.0\r""\r\r\n"131: Err(BareLineBreak)
"INVITE sip:a@b SIP/2.0\r"""23: Err(Unterminated)
"INVITE sip:a@b SIP/2.0\r"""24: Err(Unterminated)
"\rINVITE sip:a@b SIP/2.0""\r\n"129: Err(BareLineBreak)
"\rINVITE sip:a@b SIP/2.0""\r\n"130: Err(BareLineBreak)
"\rINVITE sip:a@b SIP/2.0""\n"128: Err(BareLineBreak)
"\rINVITE sip:a@b SIP/2.0""\n"129: Err(BareLineBreak)
"\rINVITE sip:a@b SIP/2.0""\r"128: Err(BareLineBreak)
"\rINVITE sip:a@b SIP/2.0""\r"129: Err(BareLineBreak)
"\rINVITE sip:a@b SIP/2.0""\r\r\n"130: Err(BareLineBreak)
"\rINVITE sip:a@b SIP/2.0""\r\r\n"131: Err(BareLineBreak)
"\rINVITE sip:a@b SIP/2.0"""23: Err(Unterminated)
"\rINVITE sip:a@b SIP/2.0"""24: Err(Unterminated)
"INVITE sip:a@b SIP/2.0\n""\r\n"129: Err(BareLineBreak)
"INVITE sip:a@b SIP/2.0\n""\r\n"130: Err(BareLineBreak)
"INVITE sip:a@b SIP/2.0\n""\n"128: Err(BareLineBreak)
"INVITE sip:a@b SIP/2.0\n""\n"129: Err(BareLineBreak)
"INVITE sip:a@b SIP/2.0\n""\r"128: Err(BareLineBreak)
"INVITE sip:a@b SIP/2.0\n""\r"129: Err(BareLineBreak)
"INVITE sip:a@b SIP/2.0\n""\r\r\n"130: Err(BareLineBreak)
"INVITE sip:a@b SIP/2.0\n""\r\r\n"131: Err(BareLineBreak)
"INVITE sip:a@b SIP/2.0\n"""23: Err(BareLineBreak)
"INVITE sip:a@b SIP/2.0\n"""24: Err(BareLineBreak)
"INVITE sip:a@b\n SIP/2.0""\r\n"129: Err(BareLineBreak)
"INVITE sip:a@b\n SIP/2.0""\r\n"130: Err(BareLineBreak)
"INVITE sip:a@b\n SIP/2.0""\n"128: Err(BareLineBreak)
"INVITE sip:a@b\n SIP/2.0""\n"129: Err(BareLineBreak)
"INVITE sip:a@b\n SIP/2.0""\r"128: Err(BareLineBreak)
"INVITE sip:a@b\n SIP/2.0""\r"129: Err(BareLineBreak)
"INVITE sip:a@b\n SIP/2.0""\r\r\n"130: Err(BareLineBreak)
"INVITE sip:a@b\n SIP/2.0""\r\r\n"131: Err(BareLineBreak)
"INVITE sip:a@b\n SIP/2.0"""23: Err(BareLineBreak)
"INVITE sip:a@b\n SIP/2.0"""24: Err(BareLineBreak)
"BYE sip:a@b SIP/2.0""\r\n"125: Err(CSeqMethodMismatch)
"BYE sip:a@b SIP/2.0""\r\n"126: Err(CSeqMethodMismatch)
"BYE sip:a@b SIP/2.0""\n"124: Err(BareLineBreak)
"BYE sip:a@b SIP/2.0""\n"125: Err(BareLineBreak)
"BYE sip:a@b SIP/2.0""\r"124: Err(BareLineBreak)
"BYE sip:a@b SIP/2.0""\r"125: Err(BareLineBreak)
"BYE sip:a@b SIP/2.0""\r\r\n"126: Err(BareLineBreak)
"BYE sip:a@b SIP/2.0""\r\r\n"127: Err(BareLineBreak)
"BYE sip:a@b SIP/2.0"""19: Err(Unterminated)
"BYE sip:a@b SIP/2.0"""20: Err(Unterminated)
"INVITE sip:a@b?x=y SIP/2.0""\r\n"132: Err(BadRequestUri)
"INVITE sip:a@b?x=y SIP/2.0""\r\n"133: Err(BadRequestUri)
"INVITE sip:a@b?x=y SIP/2.0""\n"131: Err(BareLineBreak)
"INVITE sip:a@b?x=y SIP/2.0""\n"132: Err(BareLineBreak)
"INVITE sip:a@b?x=y SIP/2.0""\r"131: Err(BareLineBreak)
"INVITE sip:a@b?x=y SIP/2.0""\r"132: Err(BareLineBreak)
"INVITE sip:a@b?x=y SIP/2.0""\r\r\n"133: Err(BareLineBreak)
"INVITE sip:a@b?x=y SIP/2.0""\r\r\n"134: Err(BareLineBreak)
"INVITE sip:a@b?x=y SIP/2.0"""26: Err(Unterminated)
"INVITE sip:a@b?x=y SIP/2.0"""27: Err(Unterminated)
"INVITE <sip:a@b> SIP/2.0""\r\n"130: Err(BadRequestUri)
"INVITE <sip:a@b> SIP/2.0""\r\n"131: Err(BadRequestUri)
"INVITE <sip:a@b> SIP/2.0""\n"129: Err(BareLineBreak)
"INVITE <sip:a@b> SIP/2.0""\n"130: Err(BareLineBreak)
"INVITE <sip:a@b> SIP/2.0""\r"129: Err(BareLineBreak)
"INVITE <sip:a@b> SIP/2.0""\r"130: Err(BareLineBreak)
"INVITE <sip:a@b> SIP/2.0""\r\r\n"131: Err(BareLineBreak)
"INVITE <sip:a@b> SIP/2.0""\r\r\n"132: Err(BareLineBreak)
"INVITE <sip:a@b> SIP/2.0"""24: Err(Unterminated)
"INVITE <sip:a@b> SIP/2.0"""25: Err(Unterminated)
"INVITE tel:+1 SIP/2.0""\r\n"127: Ok(())
"INVITE tel:+1 SIP/2.0""\r\n"128: Ok(())
"INVITE tel:+1 SIP/2.0""\n"126: Err(BareLineBreak)
"INVITE tel:+1 SIP/2.0""\n"127: Err(BareLineBreak)
"INVITE tel:+1 SIP/2.0""\r"126: Err(BareLineBreak)
"INVITE tel:+1 SIP/2.0""\r"127: Err(BareLineBreak)
"INVITE tel:+1 SIP/2.0""\r\r\n"128: Err(BareLineBreak)
"INVITE tel:+1 SIP/2.0""\r\r\n"129: Err(BareLineBreak)
"INVITE tel:+1 SIP/2.0"""21: Err(Unterminated)
"INVITE tel:+1 SIP/2.0"""22: Err(Unterminated)
"INVITE sip:a@b SIP/2.0\t""\r\n"129: Err(BadVersion)
"INVITE sip:a@b SIP/2.0\t""\r\n"130: Err(BadVersion)
"INVITE sip:a@b SIP/2.0\t""\n"128: Err(BareLineBreak)
"INVITE sip:a@b SIP/2.0\t""\n"129: Err(BareLineBreak)
"INVITE sip:a@b SIP/2.0\t""\r"128: Err(BareLineBreak)
"INVITE sip:a@b SIP/2.0\t""\r"129: Err(BareLineBreak)
"INVITE sip:a@b SIP/2.0\t""\r\r\n"130: Err(BareLineBreak)
"INVITE sip:a@b SIP/2.0\t""\r\r\n"131: Err(BareLineBreak)
"INVITE sip:a@b SIP/2.0\t"""23: Err(Unterminated)
"INVITE sip:a@b SIP/2.0\t"""24: Err(Unterminated)
"SIP/2.0 200 OK""\r\n"120: Ok(())
"SIP/2.0 200 OK""\r\n"121: Ok(())
"SIP/2.0 200 OK""\n"119: Err(BareLineBreak)
"SIP/2.0 200 OK""\n"120: Err(BareLineBreak)
"SIP/2.0 200 OK""\r"119: Err(BareLineBreak)
"SIP/2.0 200 OK""\r"120: Err(BareLineBreak)
"SIP/2.0 200 OK""\r\r\n"121: Err(BareLineBreak)
"SIP/2.0 200 OK""\r\r\n"122: Err(BareLineBreak)
"SIP/2.0 200 OK"""14: Err(Unterminated)
"SIP/2.0 200 OK"""15: Err(Unterminated)
"SIP/2.0 200 OK\r""\r\n"121: Err(BareLineBreak)
"SIP/2.0 200 OK\r""\r\n"122: Err(BareLineBreak)
"SIP/2.0 200 OK\r""\n"120: Ok(())
"SIP/2.0 200 OK\r""\n"121: Ok(())
"SIP/2.0 200 OK\r""\r"120: Err(BareLineBreak)
"SIP/2.0 200 OK\r""\r"121: Err(BareLineBreak)
"SIP/2.0 200 OK\r""\r\r\n"122: Err(BareLineBreak)
"SIP/2.0 200 OK\r""\r\r\n"123: Err(BareLineBreak)
"SIP/2.0 200 OK\r"""15: Err(Unterminated)
"SIP/2.0 200 OK\r"""16: Err(Unterminated)
"SIP/2.0 200""\r\n"117: Ok(())
"SIP/2.0 200""\r\n"118: Ok(())
"SIP/2.0 200""\n"116: Err(BareLineBreak)
"SIP/2.0 200""\n"117: Err(BareLineBreak)
"SIP/2.0 200""\r"116: Err(BareLineBreak)
"SIP/2.0 200""\r"117: Err(BareLineBreak)
"SIP/2.0 200""\r\r\n"118: Err(BareLineBreak)
"SIP/2.0 200""\r\r\n"119: Err(BareLineBreak)
"SIP/2.0 200"""11: Err(Unterminated)
"SIP/2.0 200"""12: Err(Unterminated)
"SIP/2.1 200 OK""\r\n"120: Err(VersionNotSupported { major: 2, minor: 1 })
"SIP/2.1 200 OK""\r\n"121: Err(VersionNotSupported { major: 2, minor: 1 })
"SIP/2.1 200 OK""\n"119: Err(BareLineBreak)
"SIP/2.1 200 OK""\n"120: Err(BareLineBreak)
"SIP/2.1 200 OK""\r"119: Err(BareLineBreak)
"SIP/2.1 200 OK""\r"120: Err(BareLineBreak)
"SIP/2.1 200 OK""\r\r\n"121: Err(BareLineBreak)
"SIP/2.1 200 OK""\r\r\n"122: Err(BareLineBreak)
"SIP/2.1 200 OK"""14: Err(Unterminated)
"SIP/2.1 200 OK"""15: Err(Unterminated)
"""\r\n"106: Err(BadVersion)
"""\r\n"107: Err(BadVersion)
"""\n"105: Err(BareLineBreak)
"""\n"106: Err(BareLineBreak)
"""\r"105: Err(BareLineBreak)
"""\r"106: Err(BareLineBreak)
"""\r\r\n"107: Err(BareLineBreak)
"""\r\r\n"108: Err(BareLineBreak)
""""0: Err(Empty)
""""1: Err(Unterminated)"##;
