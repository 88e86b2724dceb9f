//! RFC 4475 and RFC 5118 torture messages, replayed byte for byte, with the
//! outcome each manifest gives.

use std::fs;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use peering_proto::msg::{
    HeaderName, Host, Message, Method, Uri, Via, parse_request_for_error_response,
};

fn testdata() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata")
}

fn load(dir: &str, name: &str) -> Bytes {
    Bytes::from(fs::read(testdata().join(dir).join(format!("{name}.sip"))).unwrap())
}

fn parse(dir: &str, name: &str) -> Message {
    match Message::parse(load(dir, name)) {
        Ok(m) => m,
        Err(e) => panic!("{dir}/{name}: {e:?}"),
    }
}

/// `(file stem, class)` rows of a manifest table.
fn manifest(dir: &str) -> Vec<(String, String, String)> {
    let text = fs::read_to_string(testdata().join(dir).join("MANIFEST.md")).unwrap();
    text.lines()
        .filter(|l| l.starts_with("| corpora/"))
        .map(|l| {
            let cols: Vec<&str> = l.split('|').map(str::trim).collect();
            let stem = cols[1].rsplit('/').next().unwrap().trim_end_matches(".sip");
            (stem.to_owned(), cols[3].to_owned(), cols[4].to_owned())
        })
        .collect()
}

#[derive(Debug, PartialEq)]
enum Outcome {
    Accept,
    /// A request answered with this status.
    Reject(u16),
    /// A response dropped silently.
    Drop,
}

/// The outcome the manifest asks of a proxy's parser.
fn expected(class: &str, result: &str) -> Outcome {
    if class.starts_with("valid") {
        return Outcome::Accept;
    }
    if class.starts_with("semantic") {
        // Semantic cases parse, except those the manifest says to answer
        // with 400 because a required header is missing or repeated.
        let wants_400 = [
            "respond 400",
            "ideally 400",
            "error (400)",
            "respond with an error (400)",
        ]
        .iter()
        .any(|k| result.contains(k));
        return if wants_400 {
            Outcome::Reject(400)
        } else {
            Outcome::Accept
        };
    }
    if class == "not described" {
        // test.dat: no SIP-Version and no Via, so no response can be
        // addressed; rejecting it silently is the only option.
        return Outcome::Drop;
    }
    if result.contains("505") {
        Outcome::Reject(505)
    } else if result.contains("response silently") {
        Outcome::Drop
    } else {
        Outcome::Reject(400)
    }
}

fn outcome(buf: Bytes) -> Outcome {
    match Message::parse(buf.clone()) {
        Ok(_) => Outcome::Accept,
        Err(e) => match parse_request_for_error_response(&buf) {
            Some(resp) => {
                // The copied headers may be the faulty ones, so read the
                // status line only.
                assert!(resp.starts_with(b"SIP/2.0 "), "{resp:?}");
                let status: u16 = std::str::from_utf8(&resp[8..11]).unwrap().parse().unwrap();
                assert_eq!(Some(status), e.status().map(|s| s.0));
                Outcome::Reject(status)
            }
            None => Outcome::Drop,
        },
    }
}

fn run_manifest(dir: &str, count: usize) {
    let rows = manifest(dir);
    assert_eq!(rows.len(), count, "{dir} manifest rows");
    let mut failures = Vec::new();
    for (stem, class, result) in rows {
        let want = expected(&class, &result);
        let got = outcome(load(dir, &stem));
        if got != want {
            failures.push(format!("{stem} ({class}): want {want:?}, got {got:?}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn rfc4475_every_file_has_the_manifest_outcome() {
    run_manifest("rfc4475", 50);
}

#[test]
fn rfc5118_every_file_has_the_manifest_outcome() {
    run_manifest("rfc5118", 12);
}

fn sip(uri: &Uri) -> &peering_proto::msg::SipUri {
    uri.as_sip().expect("a sip: URI")
}

#[test]
fn wsinv_meaning_survives_the_whitespace() {
    let m = parse("rfc4475", "wsinv");
    assert_eq!(m.method(), Some(&Method::Invite));
    let ruri = sip(m.request_uri().unwrap());
    assert_eq!(ruri.user.as_deref(), Some("vivekg"));
    assert_eq!(ruri.host, Host::Domain("chair-dnrc.example.com".into()));
    assert_eq!(ruri.param("unknownparam"), Some(None));
    assert_eq!(m.to().tag(), Some("1918181833n"));
    assert_eq!(m.from().tag(), Some("98asjd8"));
    assert_eq!(m.from().display.as_deref(), Some(r#"J Rosenberg \\\""#));
    assert_eq!(m.max_forwards(), Some(68));
    assert_eq!(m.cseq().seq, 9);
    assert_eq!(m.cseq().method, Method::Invite);
    assert_eq!(m.call_id(), "wsinv.ndaksdj@192.0.2.1");
    let vias = m.vias().unwrap();
    let summary: Vec<(&str, String, Option<&str>)> = vias
        .iter()
        .map(|v| (v.transport.as_str(), v.host.to_string(), v.branch()))
        .collect();
    assert_eq!(
        summary,
        [
            ("UDP", "192.0.2.2".to_owned(), Some("390skdjuw")),
            (
                "TCP",
                "spindle.example.com".to_owned(),
                Some("z9hG4bK9ikj8")
            ),
            ("UDP", "192.168.255.111".to_owned(), Some("z9hG4bK30239")),
        ]
    );
    assert_eq!(m.header(&HeaderName::Subject), Some(""));
    assert_eq!(
        m.header(&HeaderName::Other("newfangledheader".into())),
        Some("newfangled value\r\n continued newfangled value")
    );
    assert_eq!(
        m.header(&HeaderName::Other("UnknownHeaderWithUnusualValue".into())),
        Some(";;,,;;,;")
    );
    let contacts = m.contacts().unwrap();
    assert_eq!(contacts.len(), 1);
    assert_eq!(
        contacts[0].display.as_deref(),
        Some(r#"Quoted string \"\""#)
    );
    assert_eq!(contacts[0].param("newparam"), Some(Some("newvalue")));
    assert_eq!(contacts[0].param("secondparam"), Some(None));
    assert_eq!(contacts[0].param("q"), Some(Some("0.33")));
    let routes = m.routes().unwrap();
    assert!(sip(&routes[0].uri).is_lr());
    assert_eq!(m.body().len(), 150);
}

#[test]
fn esc01_user_parts_unescape_and_compare_equal() {
    let m = parse("rfc4475", "esc01");
    let ruri = sip(m.request_uri().unwrap());
    assert_eq!(ruri.user.as_deref(), Some("sips%3Auser%40example.com"));
    assert_eq!(ruri.user_unescaped().unwrap(), b"sips:user@example.com");
    let plain: Uri = "sip:user@example.com".parse().unwrap();
    assert!(m.to().uri.equivalent(&plain));
    assert_eq!(
        sip(&m.from().uri).user_unescaped().unwrap(),
        b"I have spaces"
    );
    let contact = &m.contacts().unwrap()[0];
    assert_eq!(sip(&contact.uri).user_unescaped().unwrap(), b"caller");
    let expected: Uri = "sip:caller@host5.example.net;lr;name=value%41"
        .parse()
        .unwrap();
    assert!(contact.uri.equivalent(&expected));
}

#[test]
fn escnull_contacts_keep_the_nul_and_stay_distinct() {
    let m = parse("rfc4475", "escnull");
    let c = m.contacts().unwrap();
    assert_eq!(sip(&c[0].uri).user_unescaped().unwrap(), b"\0");
    assert_eq!(sip(&c[1].uri).user_unescaped().unwrap(), b"\0\0");
    assert!(!c[0].uri.equivalent(&c[1].uri));
}

#[test]
fn semiuri_user_part_holds_the_semicolon() {
    let m = parse("rfc4475", "semiuri");
    let ruri = sip(m.request_uri().unwrap());
    assert_eq!(ruri.user.as_deref(), Some("user;par=u%40example.net"));
    assert_eq!(ruri.user_unescaped().unwrap(), b"user;par=u@example.net");
    assert_eq!(ruri.host, Host::Domain("example.com".into()));
    assert!(ruri.params.is_empty());
    assert_eq!(m.header_values(&HeaderName::Accept).len(), 6);
}

#[test]
fn transports_vias_in_order() {
    let m = parse("rfc4475", "transports");
    let t: Vec<String> = m.vias().unwrap().into_iter().map(|v| v.transport).collect();
    assert_eq!(t, ["UDP", "SCTP", "TLS", "UNKNOWN", "TCP"]);
}

#[test]
fn mpart01_body_framed_with_nuls() {
    let m = parse("rfc4475", "mpart01");
    let cl: usize = m
        .header(&HeaderName::ContentLength)
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(m.body().len(), cl);
    assert!(m.body().contains(&0));
    assert!(
        m.header(&HeaderName::ContentType)
            .unwrap()
            .starts_with("multipart/")
    );
    assert_eq!(m.as_bytes().len(), load("rfc4475", "mpart01").len());
}

#[test]
fn dblreq_trailing_request_is_ignored() {
    let wire = load("rfc4475", "dblreq");
    let m = Message::parse(wire.clone()).unwrap();
    assert_eq!(m.method(), Some(&Method::Register));
    assert!(m.body().is_empty());
    assert!(m.as_bytes().len() < wire.len());
    assert!(m.as_bytes().ends_with(b"Content-Length: 0\r\n\r\n"));
    assert_eq!(m.call_id(), "dblreq.0ha0isndaksdj99sdfafnl3lk233412");
}

#[test]
fn inv2543_body_runs_to_the_datagram_end() {
    let wire = load("rfc4475", "inv2543");
    let m = Message::parse(wire.clone()).unwrap();
    assert_eq!(m.branch(), None);
    assert!(!m.top_via().unwrap().is_rfc3261_branch());
    assert_eq!(m.from().tag(), None);
    assert_eq!(m.max_forwards(), None);
    assert!(m.body().starts_with(b"v=0"));
    assert!(wire.ends_with(m.body()));
}

#[test]
fn odd_methods_and_reasons() {
    let m = parse("rfc4475", "esc02");
    assert_eq!(m.method(), Some(&Method::Extension("RE%47IST%45R".into())));
    assert_eq!(m.contacts().unwrap().len(), 2, "C%6Fntact is not Contact");
    let m = parse("rfc4475", "intmeth");
    assert_eq!(
        m.method().unwrap().as_str(),
        "!interesting-Method0123456789_*+`.%indeed'~"
    );
    assert_eq!(m.from().tag(), Some("_token~1'+`*%!-."));
    let m = parse("rfc4475", "unreason");
    assert_eq!(m.status(), Some(200));
    assert!(m.reason().unwrap().contains('\u{43e}'));
    let m = parse("rfc4475", "noreason");
    assert_eq!((m.status(), m.reason()), (Some(100), Some("")));
    let m = parse("rfc4475", "unkscm");
    assert!(matches!(m.request_uri(), Some(Uri::Other { .. })));
    let m = parse("rfc4475", "zeromf");
    assert_eq!(m.max_forwards(), Some(0));
    let m = parse("rfc4475", "bcast");
    assert_eq!(
        m.vias().unwrap()[1].host,
        Host::V4([255, 255, 255, 255].into())
    );
    let m = parse("rfc4475", "longreq");
    assert_eq!(m.vias().unwrap().len(), 34);
}

#[test]
fn contact_params_versus_uri_params() {
    let c = &parse("rfc4475", "cparam01").contacts().unwrap()[0];
    assert_eq!(c.param("unknownparam"), Some(None));
    assert_eq!(sip(&c.uri).param("unknownparam"), None);
    let c = &parse("rfc4475", "cparam02").contacts().unwrap()[0];
    assert_eq!(c.param("unknownparam"), None);
    assert_eq!(sip(&c.uri).param("unknownparam"), Some(None));
    let c = &parse("rfc4475", "regescrt").contacts().unwrap()[0];
    assert_eq!(sip(&c.uri).headers[0].0, "Route");
}

#[test]
fn rejections_name_the_fault() {
    use peering_proto::error::ParseError;
    let err = |name| Message::parse(load("rfc4475", name)).unwrap_err();
    assert_eq!(
        err("badvers"),
        ParseError::VersionNotSupported { major: 7, minor: 0 }
    );
    assert_eq!(err("mismatch01"), ParseError::CSeqMethodMismatch);
    assert_eq!(
        err("scalar02"),
        ParseError::ValueOutOfRange { name: "CSeq" }
    );
    assert_eq!(
        err("ncl"),
        ParseError::BadHeaderValue {
            name: "Content-Length"
        }
    );
    assert_eq!(
        err("mcl01"),
        ParseError::RepeatedHeader {
            name: "Content-Length"
        }
    );
    assert!(matches!(err("clerr"), ParseError::BodyTooShort { .. }));
    assert_eq!(err("ltgtruri"), ParseError::BadRequestUri);
    assert_eq!(err("escruri"), ParseError::BadRequestUri);
    assert_eq!(err("quotbal"), ParseError::BadHeaderValue { name: "To" });
    assert_eq!(err("badinv01"), ParseError::BadVia);
    assert_eq!(err("bigcode"), ParseError::BadStatus);
    let resp = parse_request_for_error_response(&load("rfc4475", "badvers")).unwrap();
    assert!(resp.starts_with(b"SIP/2.0 505 "));
    assert!(parse_request_for_error_response(&load("rfc4475", "scalarlg")).is_none());
}

#[test]
fn rfc5118_hosts_and_ports() {
    let m = parse("rfc5118", "port-ambiguous");
    let ruri = sip(m.request_uri().unwrap());
    assert_eq!(ruri.host, Host::V6("2001:db8::10:5070".parse().unwrap()));
    assert_eq!(ruri.port, None);
    let m = parse("rfc5118", "port-unambiguous");
    let ruri = sip(m.request_uri().unwrap());
    assert_eq!(ruri.host, Host::V6("2001:db8::10".parse().unwrap()));
    assert_eq!(ruri.port, Some(5070));
    assert_eq!(ruri.to_string(), "sip:[2001:db8::10]:5070");
    let m = parse("rfc5118", "via-received-param-no-delim");
    assert_eq!(m.top_via().unwrap().received(), Some("2001:db8::9:255"));
    let m = parse("rfc5118", "via-received-param-with-delim");
    assert_eq!(m.top_via().unwrap().received(), Some("[2001:db8::9:255]"));
    let m = parse("rfc5118", "mult-ip-in-header");
    let hosts: Vec<String> = m
        .vias()
        .unwrap()
        .iter()
        .map(|v| v.host.to_string())
        .collect();
    assert_eq!(hosts, ["[2001:db8::9:1]", "192.0.2.1", "[2001:db8::9:255]"]);
    assert_eq!(m.top_via().unwrap().port, Some(6050));
    let m = parse("rfc5118", "ipv4-mapped-ipv6");
    assert_eq!(m.top_via().unwrap().host.to_string(), "[::ffff:192.0.2.10]");
    assert_eq!(m.top_via().unwrap().port, Some(19823));
}

/// The header fields of a wire message as raw text (folding kept), with
/// their lower-cased names.
fn raw_fields(wire: &[u8]) -> Vec<(String, String)> {
    let head_end = wire.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 2;
    let head = std::str::from_utf8(&wire[..head_end]).unwrap();
    let mut fields: Vec<String> = Vec::new();
    for line in head.split_inclusive("\r\n").skip(1) {
        if line.starts_with([' ', '\t']) {
            fields.last_mut().unwrap().push_str(line);
        } else {
            fields.push(line.to_owned());
        }
    }
    fields
        .into_iter()
        .map(|f| {
            let name = f[..f.find(':').unwrap()].trim().to_ascii_lowercase();
            (name, f)
        })
        .collect()
}

/// Every valid torture message survives a proxy's edit: the meaning is
/// unchanged and every header field it did not touch is copied byte for byte.
#[test]
fn proxy_edit_keeps_untouched_fields_byte_for_byte() {
    let (mut checked, mut accepted) = (0, 0);
    for dir in ["rfc4475", "rfc5118"] {
        for (stem, class, result) in manifest(dir) {
            accepted += usize::from(expected(&class, &result) == Outcome::Accept);
            let wire = load(dir, &stem);
            let Ok(m) = Message::parse(wire) else {
                continue;
            };
            let mut e = m.edit();
            e.prepend_header(
                HeaderName::Via,
                "SIP/2.0/UDP node.example.org;branch=z9hG4bKnode1",
            )
            .prepend_header(HeaderName::RecordRoute, "<sip:node.example.org;lr>")
            .remove_first_value(&HeaderName::Route);
            if m.is_request() {
                e.set_max_forwards(m.max_forwards().unwrap_or(70).saturating_sub(1));
            }
            let out = e.finish();
            let f = Message::parse(out.clone()).unwrap_or_else(|err| panic!("{stem}: {err:?}"));
            assert_eq!(f.call_id(), m.call_id(), "{stem}");
            assert_eq!(m.from_tag(), m.from().tag(), "{stem}");
            assert_eq!(m.to_tag(), m.to().tag(), "{stem}");
            assert_eq!(m.branch(), m.top_via().unwrap().branch(), "{stem}");
            // The sent-by and the Via values read from the wire name what
            // the typed views hold.
            let (host, port) = m.top_via_sent_by();
            let top = m.top_via().unwrap();
            assert_eq!(
                host.parse::<Host>().ok().as_ref(),
                Some(&top.host),
                "{stem}"
            );
            assert_eq!(port, top.port, "{stem}");
            assert_eq!(m.top_via_rport(), top.rport().is_some(), "{stem}");
            let wire_vias: Vec<Via> = m.via_values().map(|v| v.parse().unwrap()).collect();
            assert_eq!(wire_vias, m.vias().unwrap(), "{stem}");
            assert_eq!(f.cseq(), m.cseq(), "{stem}");
            assert_eq!(f.from(), m.from(), "{stem}");
            assert_eq!(f.to(), m.to(), "{stem}");
            assert_eq!(
                f.body(),
                m.body(),
                "{stem}: body must pass through byte for byte"
            );
            assert_eq!(f.vias().unwrap()[1..], m.vias().unwrap()[..], "{stem}");
            let routes = m.routes().unwrap();
            assert_eq!(
                f.routes().unwrap()[..],
                routes[routes.len().min(1)..],
                "{stem}"
            );
            let text = String::from_utf8_lossy(&out);
            let touched = ["route", "max-forwards", "content-length", "l"];
            let mut first_route = true;
            for (name, field) in raw_fields(m.as_bytes()) {
                if name == "route" && first_route {
                    first_route = false;
                    continue;
                }
                if touched.contains(&name.as_str()) && name != "route" {
                    continue;
                }
                assert!(text.contains(&field), "{stem}: {field:?} not copied");
            }
            checked += 1;
        }
    }
    assert_eq!(checked, accepted);
}

/// The torture messages over a stream (TCP/TLS framing): clerr waits for
/// the missing body, ncl and mcl01 make the framing unrecoverable, the rest
/// are framed exactly as over UDP.
#[test]
fn stream_framing_of_the_torture_messages() {
    use bytes::BytesMut;
    use peering_proto::error::ParseError;
    use peering_proto::msg::{Frame, StreamDecoder};

    let decode = |name: &str| {
        let mut d = StreamDecoder::new(64 * 1024);
        let mut buf = BytesMut::from(&load("rfc4475", name)[..]);
        d.decode(&mut buf).map(|f| (f, buf.len()))
    };
    assert!(
        matches!(decode("clerr"), Ok((None, _))),
        "clerr waits for more bytes"
    );
    assert_eq!(
        decode("ncl").unwrap_err(),
        ParseError::BadHeaderValue {
            name: "Content-Length"
        }
    );
    assert_eq!(
        decode("mcl01").unwrap_err(),
        ParseError::RepeatedHeader {
            name: "Content-Length"
        }
    );
    assert_eq!(
        decode("inv2543").unwrap_err(),
        ParseError::MissingContentLength
    );
    // dblreq: the REGISTER, then the trailing INVITE as the next frame.
    let mut d = StreamDecoder::new(64 * 1024);
    let mut buf = BytesMut::from(&load("rfc4475", "dblreq")[..]);
    let Ok(Some(Frame::Message(first))) = d.decode(&mut buf) else {
        panic!("REGISTER not framed")
    };
    assert_eq!(first.method(), Some(&Method::Register));
    assert!(buf.starts_with(b"\r\nINVITE"));
    for stem in [
        "wsinv", "mpart01", "esc01", "longreq", "unreason", "badvers",
    ] {
        let wire = load("rfc4475", stem);
        let (frame, left) = decode(stem).unwrap();
        match (frame, Message::parse(wire.clone())) {
            (Some(Frame::Message(m)), Ok(u)) => assert_eq!(m.as_bytes(), u.as_bytes(), "{stem}"),
            (Some(Frame::Invalid { error, raw }), Err(e)) => {
                assert_eq!(error, e, "{stem}");
                assert_eq!(raw.len() + left, wire.len(), "{stem}");
            }
            (f, u) => panic!("{stem}: stream {f:?} vs datagram {u:?}"),
        }
    }
}
