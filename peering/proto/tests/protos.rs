//! The 4527 PROTOS c07-sip INVITE cases (testdata/protos): the parser never
//! panics, accepts the valid case 0, and rejects the groups whose fault is
//! in the SIP grammar itself.

use std::io::BufReader;
use std::path::Path;

use bytes::Bytes;
use peering_proto::msg::{Message, Method, parse_request_for_error_response};

/// Reads `(case number, file bytes)` from the ustar archive.
fn cases() -> Vec<(usize, Vec<u8>)> {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/protos/c07-sip-r2-cases.tar.xz");
    let mut input = BufReader::new(std::fs::File::open(path).unwrap());
    let mut tar = Vec::with_capacity(40 << 20);
    lzma_rs::xz_decompress(&mut input, &mut tar).unwrap();
    let mut out = Vec::new();
    let mut pos = 0;
    while pos + 512 <= tar.len() {
        let header = &tar[pos..pos + 512];
        if header.iter().all(|b| *b == 0) {
            break;
        }
        let name = std::str::from_utf8(&header[..100])
            .unwrap()
            .trim_end_matches('\0');
        let size_field = std::str::from_utf8(&header[124..136]).unwrap();
        let size =
            usize::from_str_radix(size_field.trim_matches(|c| c == '\0' || c == ' '), 8).unwrap();
        let data = &tar[pos + 512..pos + 512 + size];
        pos += 512 + size.div_ceil(512) * 512;
        if header[156] == b'0' || header[156] == 0 {
            let num: usize = name.rsplit('/').next().unwrap().parse().unwrap();
            out.push((num, data.to_vec()));
        }
    }
    out.sort_by_key(|c| c.0);
    out
}

/// The first PDU (the INVITE template) of a case file: `<n> <n octets>...`.
fn invite_template(raw: &[u8]) -> &[u8] {
    let sp = raw.iter().position(|b| *b == b' ').unwrap();
    let n: usize = std::str::from_utf8(&raw[..sp]).unwrap().parse().unwrap();
    &raw[sp + 1..sp + 1 + n]
}

/// Substitutes the run-time placeholders the way `render_protos.py` does,
/// in one pass.
fn render(tpl: &[u8], num: usize) -> Vec<u8> {
    let reps: [(&[u8], Vec<u8>); 9] = [
        (b"<To>", b"bob@127.0.0.1:5060".to_vec()),
        (b"<From>", b"protos@127.0.0.1".to_vec()),
        (b"<From-Address>", b"127.0.0.1".to_vec()),
        (b"<From-IP>", b"127.0.0.1".to_vec()),
        (b"<Local-Port>", b"5062".to_vec()),
        (b"<Branch-ID>", format!("{num:07}").into_bytes()),
        (b"<Call-ID>", format!("protos-{num:07}").into_bytes()),
        (b"<CSeq>", b"1".to_vec()),
        (b"<Teardown-Method>", b"CANCEL".to_vec()),
    ];
    let mut out = Vec::with_capacity(tpl.len() + 64);
    let mut content_length_at = None;
    let mut rest = tpl;
    while let Some(i) = memchr::memchr(b'<', rest) {
        out.extend_from_slice(&rest[..i]);
        rest = &rest[i..];
        if let Some((from, to)) = reps.iter().find(|(from, _)| rest.starts_with(from)) {
            out.extend_from_slice(to);
            rest = &rest[from.len()..];
        } else if rest.starts_with(b"<Content-Length>") {
            content_length_at = Some(out.len());
            rest = &rest[b"<Content-Length>".len()..];
        } else {
            out.push(b'<');
            rest = &rest[1..];
        }
    }
    out.extend_from_slice(rest);
    if let Some(at) = content_length_at {
        // Octets after the first CRLFCRLF, as the jar computes them.
        let body = memchr::memmem::find(&out, b"\r\n\r\n").map_or(0, |i| out.len() - (i + 4));
        let body = body.to_string();
        out.splice(at..at, body.bytes());
    }
    out
}

#[test]
fn protos_c07_sip_never_panics_and_accepts_case_0() {
    let cases = cases();
    assert_eq!(cases.len(), 4527);
    let mut accepted = 0;
    let mut verdicts = vec![false; cases.len()];
    for (num, raw) in &cases {
        let wire = Bytes::from(render(invite_template(raw), *num));
        let parsed = Message::parse(wire.clone());
        if std::env::var_os("PROTOS_DUMP").is_some() {
            eprintln!(
                "CASE {num} {}",
                match &parsed {
                    Ok(_) => "ok".to_owned(),
                    Err(e) => format!("{e:?}"),
                }
            );
        }
        verdicts[*num] = parsed.is_ok();
        if parsed.is_ok() {
            accepted += 1;
        } else {
            // Building the error response must not panic either.
            let _ = parse_request_for_error_response(&wire);
        }
        if *num == 0 {
            let m = parsed.unwrap();
            assert_eq!(m.method(), Some(&Method::Invite));
            assert_eq!(m.call_id(), "protos-0000000@127.0.0.1");
            assert!(!m.body().is_empty());
        }
    }
    assert!(accepted > 0 && accepted < cases.len(), "{accepted}");
    // Groups (first case, count) whose fault breaks the SIP grammar itself
    // (MANIFEST.md, after rtckit/php-sip's CASE_MAP): every case rejected.
    let must_fail = [
        ("sip-method", 1, 193),
        ("sip-version", 255, 75),
        ("sip-via-version", 498, 75),
        ("sip-via-tag", 573, 57),
        ("sip-from-colon", 880, 16),
        ("sip-contact-left-paranthesis", 1211, 16),
        ("sip-contact-right-paranthesis", 1227, 16),
        ("sip-to-left-paranthesis", 1436, 16),
        ("sip-to-right-paranthesis", 1452, 16),
        ("sip-cseq-string", 1921, 193),
        ("sip-request-crlf", 2407, 10),
        ("crlf-request", 2417, 10),
    ];
    for (group, first, count) in must_fail {
        let passed: Vec<usize> = (first..first + count).filter(|n| verdicts[*n]).collect();
        assert!(passed.is_empty(), "{group}: accepted {passed:?}");
    }
    // The SDP groups (2427 onwards) only damage the body: all accepted.
    let rejected: Vec<usize> = (2427..cases.len()).filter(|n| !verdicts[*n]).collect();
    assert!(rejected.is_empty(), "SDP cases rejected: {rejected:?}");
}
