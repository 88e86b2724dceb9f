//! Stream framing on arbitrary bytes, fed in two chunks: no panic, and
//! every framed message is consumed from the buffer.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use peering_proto::msg::{Frame, StreamDecoder};

fuzz_target!(|data: &[u8]| {
    let split = data.first().map_or(0, |b| usize::from(*b)).min(data.len());
    let mut decoder = StreamDecoder::new(64 * 1024);
    let mut buf = BytesMut::new();
    for chunk in [&data[..split], &data[split..]] {
        buf.extend_from_slice(chunk);
        loop {
            let before = buf.len();
            match decoder.decode(&mut buf) {
                Ok(Some(Frame::Message(m))) => assert!(m.as_bytes().len() <= before),
                Ok(Some(_)) => assert!(buf.len() < before),
                Ok(None) => break,
                Err(_) => return,
            }
        }
    }
});
