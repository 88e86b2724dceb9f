//! Differential test against `rsip` on well-formed messages, where rsip is
//! known to be correct (no folding, no compact forms, no IPv6, no `tel:`).

use bytes::Bytes;
use peering_proto::msg::Message;
use rsip::prelude::*;

const MESSAGES: &[&str] = &[
    "INVITE sip:bob@biloxi.example.com SIP/2.0\r\n\
     Via: SIP/2.0/TCP client.atlanta.example.com:5060;branch=z9hG4bK74bf9\r\n\
     Max-Forwards: 70\r\n\
     From: Alice <sip:alice@atlanta.example.com>;tag=9fxced76sl\r\n\
     To: Bob <sip:bob@biloxi.example.com>\r\n\
     Call-ID: 3848276298220188511@atlanta.example.com\r\n\
     CSeq: 1 INVITE\r\n\
     Contact: <sip:alice@client.atlanta.example.com;transport=tcp>\r\n\
     Content-Type: application/sdp\r\n\
     Content-Length: 0\r\n\r\n",
    "REGISTER sip:registrar.biloxi.example.com SIP/2.0\r\n\
     Via: SIP/2.0/UDP bobspc.biloxi.example.com:5060;branch=z9hG4bKnashds7\r\n\
     Max-Forwards: 70\r\n\
     To: Bob <sip:bob@biloxi.example.com>\r\n\
     From: Bob <sip:bob@biloxi.example.com>;tag=456248\r\n\
     Call-ID: 843817637684230@998sdasdh09\r\n\
     CSeq: 1826 REGISTER\r\n\
     Contact: <sip:bob@192.0.2.4>\r\n\
     Expires: 7200\r\n\
     Content-Length: 0\r\n\r\n",
    "BYE sip:alice@client.atlanta.example.com SIP/2.0\r\n\
     Via: SIP/2.0/TCP client.biloxi.example.com:5060;branch=z9hG4bKnashds7\r\n\
     Max-Forwards: 70\r\n\
     From: Bob <sip:bob@biloxi.example.com>;tag=8321234356\r\n\
     To: Alice <sip:alice@atlanta.example.com>;tag=9fxced76sl\r\n\
     Call-ID: 3848276298220188511@atlanta.example.com\r\n\
     CSeq: 1 BYE\r\n\
     Content-Length: 0\r\n\r\n",
    "OPTIONS sip:carol@chicago.example.com;transport=udp SIP/2.0\r\n\
     Via: SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bKhjhs8ass877\r\n\
     Max-Forwards: 70\r\n\
     To: <sip:carol@chicago.example.com>\r\n\
     From: Alice <sip:alice@atlanta.example.com>;tag=1928301774\r\n\
     Call-ID: a84b4c76e66710\r\n\
     CSeq: 63104 OPTIONS\r\n\
     Accept: application/sdp\r\n\
     Content-Length: 0\r\n\r\n",
    "SIP/2.0 180 Ringing\r\n\
     Via: SIP/2.0/UDP server10.biloxi.example.com;branch=z9hG4bK4b43c2ff8.1\r\n\
     Via: SIP/2.0/UDP bigbox3.site3.atlanta.example.com;branch=z9hG4bK77ef4c2312983.1\r\n\
     To: Bob <sip:bob@biloxi.example.com>;tag=a6c85cf\r\n\
     From: Alice <sip:alice@atlanta.example.com>;tag=1928301774\r\n\
     Call-ID: a84b4c76e66710@pc33.atlanta.example.com\r\n\
     Contact: <sip:bob@192.0.2.4>\r\n\
     CSeq: 314159 INVITE\r\n\
     Content-Length: 0\r\n\r\n",
];

#[test]
fn method_uri_call_id_and_cseq_agree_with_rsip() {
    for wire in MESSAGES {
        let ours = Message::parse(Bytes::from_static(wire.as_bytes())).unwrap();
        let theirs = rsip::SipMessage::try_from(*wire).unwrap();
        let (call_id, cseq) = match &theirs {
            rsip::SipMessage::Request(req) => {
                assert_eq!(ours.method().unwrap().as_str(), req.method.to_string());
                // rsip re-renders the URI (upper-cases transport values):
                // compare by RFC 3261 §19.1.4 equivalence.
                let their_uri: peering_proto::msg::Uri = req.uri.to_string().parse().unwrap();
                assert!(
                    ours.request_uri().unwrap().equivalent(&their_uri),
                    "{their_uri}"
                );
                (
                    req.call_id_header().unwrap().value().to_owned(),
                    req.cseq_header().unwrap().typed().unwrap(),
                )
            }
            rsip::SipMessage::Response(resp) => {
                assert_eq!(ours.status(), Some(u16::from(resp.status_code.clone())));
                (
                    resp.call_id_header().unwrap().value().to_owned(),
                    resp.cseq_header().unwrap().typed().unwrap(),
                )
            }
        };
        assert_eq!(ours.call_id(), call_id);
        assert_eq!(ours.cseq().seq, cseq.seq);
        assert_eq!(ours.cseq().method.as_str(), cseq.method.to_string());
        let our_tag = ours.from().tag().map(str::to_owned);
        let their_tag = theirs
            .from_header()
            .unwrap()
            .tag()
            .unwrap()
            .map(|t| t.value().to_owned());
        assert_eq!(our_tag, their_tag);
    }
}
