//! Mutual TLS with a real Kamailio TLS client (Debian packages `kamailio`
//! and `kamailio-tls-modules`): Kamailio relays a SIP request over TLS to
//! a rustls server built from [`TlsSettings`]; the member is bound by its
//! RFC 5922 identity, and bad certificates end the handshake.

mod support;

use std::net::UdpSocket;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use peering_identity::CertProblem;
use peering_identity::rfc5922::match_member;
use peering_identity::tls::{
    MinVersion, TlsSettings, cert_problem, certs_from_pem, key_from_pem, peer_domains,
};
use support::pki::{Ca, Leaf, dns, uri};
use support::tool;
use tokio::io::AsyncReadExt;
use tokio::net::TcpListener;

const MODULES: &str = "/usr/lib/x86_64-linux-gnu/kamailio/modules";
const NODE: &str = "node.fed.example";

struct Kamailio(Child);

impl Drop for Kamailio {
    fn drop(&mut self) {
        support::stop_process_group(&mut self.0);
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn start_kamailio(dir: &Path, member: &Leaf, ca: &Ca, udp_port: u16, node_port: u16) -> Kamailio {
    let kamailio = tool("kamailio", "kamailio");
    assert!(
        Path::new(MODULES).join("tls.so").exists(),
        "Kamailio's tls module is required: apt-get install kamailio-tls-modules"
    );
    std::fs::write(dir.join("member.pem"), &member.pem).unwrap();
    std::fs::write(dir.join("member.key"), &member.key_pem).unwrap();
    std::fs::write(dir.join("ca.pem"), ca.pem()).unwrap();
    let tls_cfg = format!(
        "[server:default]\nmethod = TLSv1.2+\ncertificate = {d}/member.pem\nprivate_key = {d}/member.key\n\n\
         [client:default]\nmethod = TLSv1.2+\nverify_certificate = yes\nrequire_certificate = yes\n\
         certificate = {d}/member.pem\nprivate_key = {d}/member.key\nca_list = {d}/ca.pem\nserver_name = {NODE}\n",
        d = dir.display()
    );
    std::fs::write(dir.join("tls.cfg"), tls_cfg).unwrap();
    let tls_port = free_port();
    let cfg = format!(
        r#"#!KAMAILIO
debug=2
log_stderror=yes
children=1
tcp_children=1
auto_aliases=no
enable_tls=yes
listen=udp:127.0.0.1:{udp_port}
listen=tls:127.0.0.1:{tls_port}
mpath="{MODULES}/"
loadmodule "tls.so"
loadmodule "sl.so"
modparam("tls", "config", "{d}/tls.cfg")
request_route {{
    forward_tls("127.0.0.1", {node_port});
    exit;
}}
"#,
        d = dir.display()
    );
    std::fs::write(dir.join("kamailio.cfg"), cfg).unwrap();
    let child = Command::new(kamailio)
        .arg("-f")
        .arg(dir.join("kamailio.cfg"))
        .args(["-DD", "-E", "-m", "32", "-M", "8", "-Y"])
        .process_group(0)
        .arg(dir)
        .arg("-P")
        .arg(dir.join("kamailio.pid"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    Kamailio(child)
}

/// Sends a request to Kamailio over UDP until the node side reports an
/// outcome: Ok(peer domains + request line) or the handshake error.
async fn relay_through_kamailio(
    node: &TlsSettings,
    member: &Leaf,
    ca: &Ca,
) -> Result<(Vec<String>, String), rustls::Error> {
    let dir = tempfile::tempdir().unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let node_port = listener.local_addr().unwrap().port();
    let udp_port = {
        let s = UdpSocket::bind("127.0.0.1:0").unwrap();
        s.local_addr().unwrap().port()
    };
    let _kam = start_kamailio(dir.path(), member, ca, udp_port, node_port);
    let acceptor = tokio_rustls::TlsAcceptor::from(node.server_config().unwrap());
    let server = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        match acceptor.accept(tcp).await {
            Ok(mut tls) => {
                let domains: Vec<String> = peer_domains(tls.get_ref().1.peer_certificates())
                    .unwrap()
                    .into_iter()
                    .collect();
                let mut buf = vec![0u8; 4096];
                let n = tls.read(&mut buf).await.unwrap_or(0);
                let text = String::from_utf8_lossy(&buf[..n]).into_owned();
                Ok((domains, text.lines().next().unwrap_or_default().to_owned()))
            }
            Err(e) => Err(e
                .get_ref()
                .and_then(|i| i.downcast_ref::<rustls::Error>())
                .cloned()
                .unwrap_or(rustls::Error::General(e.to_string()))),
        }
    });
    let client = UdpSocket::bind("127.0.0.1:0").unwrap();
    let msg = format!(
        "OPTIONS sip:{NODE} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{};branch=z9hG4bK-1\r\nMax-Forwards: 70\r\n\
         From: <sip:probe@member.example>;tag=1\r\nTo: <sip:{NODE}>\r\nCall-ID: tls-probe\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n",
        client.local_addr().unwrap().port()
    );
    for _ in 0..60 {
        client
            .send_to(msg.as_bytes(), ("127.0.0.1", udp_port))
            .unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
        if server.is_finished() {
            break;
        }
    }
    assert!(server.is_finished(), "Kamailio never connected over TLS");
    server.await.unwrap()
}

fn node_settings(ca: &Ca, node: &Leaf, crls: Vec<String>) -> TlsSettings {
    TlsSettings {
        cert_chain: vec![node.der.clone()],
        key: key_from_pem(node.key_pem.as_bytes()).unwrap(),
        trust_anchors: certs_from_pem(ca.pem().as_bytes()).unwrap(),
        crls: crls
            .iter()
            .flat_map(|c| peering_identity::tls::crls_from_pem(c.as_bytes()).unwrap())
            .collect(),
        require_crl: false,
        cipher_suites: Vec::new(),
        min_version: MinVersion::Tls12,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kamailio_member_is_bound_and_bad_certificates_fail() {
    let ca = Ca::new("Federation CA");
    let node = ca.leaf(NODE, &[uri(&format!("sip:{NODE}")), dns(NODE)], |_| {});

    // A valid member: the relayed request arrives, the member is identified.
    let member = ca.leaf("member.example", &[uri("sip:member.example")], |p| {
        p.not_before = rcgen::date_time_ymd(2020, 1, 1);
        p.not_after = rcgen::date_time_ymd(2045, 1, 1);
    });
    let (domains, line) = relay_through_kamailio(&node_settings(&ca, &node, vec![]), &member, &ca)
        .await
        .unwrap();
    assert_eq!(domains, ["member.example"]);
    assert_eq!(line, format!("OPTIONS sip:{NODE} SIP/2.0"));
    let set = domains.into_iter().collect();
    assert_eq!(
        match_member(&set, ["member.example"].iter()),
        Some("member.example")
    );

    // Revoked: the handshake fails on the node.
    let crl = ca.crl_pem(&[member.serial]);
    let err = relay_through_kamailio(&node_settings(&ca, &node, vec![crl]), &member, &ca)
        .await
        .unwrap_err();
    assert_eq!(cert_problem(&err), Some(CertProblem::Revoked), "{err:?}");

    // Expired member certificate.
    let expired = ca.leaf("member.example", &[uri("sip:member.example")], |p| {
        p.not_before = rcgen::date_time_ymd(2019, 1, 1);
        p.not_after = rcgen::date_time_ymd(2020, 1, 1);
    });
    let err = relay_through_kamailio(&node_settings(&ca, &node, vec![]), &expired, &ca)
        .await
        .unwrap_err();
    assert_eq!(cert_problem(&err), Some(CertProblem::Expired), "{err:?}");

    // A member certified by a CA outside the federation.
    let rogue = Ca::new("Rogue CA");
    let outsider = rogue.leaf("member.example", &[uri("sip:member.example")], |_| {});
    let err = relay_through_kamailio(&node_settings(&ca, &node, vec![]), &outsider, &ca)
        .await
        .unwrap_err();
    assert_eq!(cert_problem(&err), Some(CertProblem::Untrusted), "{err:?}");
}
