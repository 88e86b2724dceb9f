//! Parse -> serialise -> parse: whatever parses must survive a pass through
//! the editor (untouched and proxy-edited) with the same meaning, and
//! nothing may panic on any input.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use peering_proto::msg::{HeaderName, Message, parse_request_for_error_response};

fuzz_target!(|data: &[u8]| {
    let m = match Message::parse(Bytes::copy_from_slice(data)) {
        Ok(m) => m,
        Err(_) => {
            let _ = parse_request_for_error_response(data);
            return;
        }
    };
    // Every typed view of a parsed message is available.
    let _ = (m.request_uri(), m.top_via(), m.from().tag(), m.to().tag());
    let vias = m.vias().expect("validated Vias parse");
    let _ = (m.routes(), m.record_routes(), m.contacts());
    for (name, value) in m.headers() {
        let _ = (name.as_str(), value.len());
    }

    // Untouched: same meaning.
    let again = Message::parse(m.edit().finish()).expect("re-serialised message parses");
    assert_eq!(again.call_id(), m.call_id());
    assert_eq!(again.cseq(), m.cseq());
    assert_eq!(again.body(), m.body());
    assert_eq!(again.vias().expect("Vias"), vias);
    assert_eq!(again.from(), m.from());
    assert_eq!(again.to(), m.to());

    // Proxy-style edit: new top Via, first Route dropped, Max-Forwards down.
    let mut e = m.edit();
    e.prepend_header(
        HeaderName::Via,
        "SIP/2.0/UDP fuzz.example.net;branch=z9hG4bKfuzz",
    )
    .remove_first_value(&HeaderName::Route)
    .set_max_forwards(m.max_forwards().unwrap_or(70).saturating_sub(1));
    if let Some(uri) = m.request_uri() {
        e.set_request_uri(uri);
    }
    let fwd = Message::parse(e.finish()).expect("proxied message parses");
    assert_eq!(fwd.top_via().and_then(|v| v.branch()), Some("z9hG4bKfuzz"));
    assert_eq!(fwd.vias().expect("Vias").len(), vias.len() + 1);
    assert_eq!(fwd.body(), m.body());
});
