//! Caller identity and peer authentication through a running node:
//! STIR/SHAKEN interop with `secsipidx` (Debian's package) in both
//! directions, the RFC 8224 failure codes, P-Asserted-Identity trust, the
//! shipped `examples/identity.toml`, and mutual TLS with a real Kamailio
//! TLS client.
//!
//! ```text
//! UAC ──UDP (Identity by secsipidx)──► node ──UDP──► callee
//! caller ──UDP──► Kamailio ──TLS (member certificate)──► node ──UDP──► callee
//! ```

use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use bytes::Bytes;
use peering::config::Config;
use peering::node::NodeHandle;
use peering_proto::msg::{HeaderName, Message};
use peering_proto::proxy::Transport;
use peering_tests::free_port;
use peering_tests::kamailio::{EdgeProxy, Kamailio, KamailioTls};
use peering_tests::pki::Leaf;
use peering_tests::tools::require;
use peering_tests::ua::{Answer, Call, Callee, token};
use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, CertifiedIssuer, DnType,
    ExtendedKeyUsagePurpose, IsCa, KeyIdMethod, KeyPair, KeyUsagePurpose, RevokedCertParams,
    SanType, SerialNumber,
};
use tokio::net::UdpSocket;

const WAIT: Duration = Duration::from_secs(5);
const ORIG: &str = "12155550100";
const DEST: &str = "12155550101";
const X5U: &str = "https://sti.example.net/certs/sp.pem";
/// The serial number the federation CA's CRL revokes in the TLS tests.
const REVOKED_SERIAL: u64 = 4242;

/// A throw-away CA for STI and TLS certificates.
struct Ca {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

impl Ca {
    fn new(cn: &str) -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
        params.distinguished_name.push(DnType::CommonName, cn);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("key");
        Self {
            issuer: CertifiedIssuer::self_signed(params, key).expect("CA"),
        }
    }

    fn pem(&self) -> String {
        self.issuer.pem()
    }

    /// A CRL revoking `serial`.
    fn crl_pem(&self, serial: u64) -> String {
        let then = rcgen::date_time_ymd(2024, 1, 1);
        CertificateRevocationListParams {
            this_update: then,
            next_update: rcgen::date_time_ymd(4000, 1, 1),
            crl_number: SerialNumber::from(1u64),
            issuing_distribution_point: None,
            revoked_certs: vec![RevokedCertParams {
                serial_number: SerialNumber::from(serial),
                revocation_time: then,
                reason_code: None,
                invalidity_date: None,
            }],
            key_identifier_method: KeyIdMethod::Sha256,
        }
        .signed_by(&self.issuer)
        .expect("CRL")
        .pem()
        .expect("CRL PEM")
    }

    /// A P-256 leaf with DNS/IP/`sip:` SANs for client and server use;
    /// returns the certificate PEM and the key.
    fn leaf(
        &self,
        cn: &str,
        sans: &[&str],
        edit: impl FnOnce(&mut CertificateParams),
    ) -> (String, KeyPair) {
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
        params.distinguished_name.push(DnType::CommonName, cn);
        for san in sans {
            params.subject_alt_names.push(if let Ok(ip) = san.parse() {
                SanType::IpAddress(ip)
            } else if san.starts_with("sip:") {
                SanType::URI((*san).try_into().expect("uri"))
            } else {
                SanType::DnsName((*san).try_into().expect("dns"))
            });
        }
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        edit(&mut params);
        let cert = params.signed_by(&key, &self.issuer).expect("leaf");
        (cert.pem(), key)
    }

    /// A leaf certifying an existing key (RSA or EC), as PEM.
    fn leaf_for_key(
        &self,
        cn: &str,
        key: &KeyPair,
        san: SanType,
        edit: impl FnOnce(&mut CertificateParams),
    ) -> String {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
        params.distinguished_name.push(DnType::CommonName, cn);
        params.subject_alt_names.push(san);
        edit(&mut params);
        params.signed_by(key, &self.issuer).expect("leaf").pem()
    }

    /// A leaf written as `dir/<stem>.crt` and `dir/<stem>.key`.
    fn leaf_files(
        &self,
        dir: &Path,
        stem: &str,
        sans: &[&str],
        edit: impl FnOnce(&mut CertificateParams),
    ) -> Leaf {
        let (pem, key) = self.leaf(stem, sans, edit);
        let leaf = Leaf {
            cert: dir.join(format!("{stem}.crt")),
            key: dir.join(format!("{stem}.key")),
        };
        std::fs::write(&leaf.cert, pem).expect("write cert");
        std::fs::write(&leaf.key, key.serialize_pem()).expect("write key");
        leaf
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs()
}

/// An STI PKI on disk: `sti-ca/` with the trusted CA, `sti-repo/` with the
/// signing certificate (`sp.pem`), a certificate of another key from the
/// same CA (`other-key.pem`), one from an untrusted CA (`rogue.pem`), and
/// the signing key and its public key for `secsipidx`.
struct Sti {
    dir: tempfile::TempDir,
}

impl Sti {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let ca = Ca::new("STI-CA e2e");
        let rogue = Ca::new("rogue STI-CA");
        let (ca_dir, repo) = (dir.path().join("sti-ca"), dir.path().join("sti-repo"));
        std::fs::create_dir_all(&ca_dir).expect("mkdir");
        std::fs::create_dir_all(&repo).expect("mkdir");
        std::fs::write(ca_dir.join("ca.pem"), ca.pem()).expect("ca");
        let (sp, key) = ca.leaf("SHAKEN SP e2e", &[], |_| {});
        std::fs::write(repo.join("sp.pem"), sp).expect("sp");
        std::fs::write(dir.path().join("sp.key"), key.serialize_pem()).expect("key");
        std::fs::write(dir.path().join("sp.pub"), key.public_key_pem()).expect("pub");
        let (other, _) = ca.leaf("other key", &[], |_| {});
        std::fs::write(repo.join("other-key.pem"), other).expect("other");
        // The rogue certificate certifies the right key, but nobody trusts
        // its CA.
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
        params
            .distinguished_name
            .push(DnType::CommonName, "rogue SP");
        let rogue_cert = params.signed_by(&key, &rogue.issuer).expect("rogue");
        std::fs::write(repo.join("rogue.pem"), rogue_cert.pem()).expect("rogue");
        Self { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// `[identity]` lines pointing at this PKI.
    fn identity_toml(&self) -> String {
        format!(
            "sti_ca = \"{}\"\nrepository = \"{}\"\n",
            self.path("sti-ca").display(),
            self.path("sti-repo").display()
        )
    }
}

/// An Identity header value signed by `secsipidx` with `key`.
fn secsipidx_sign(key: &Path, x5u: &str, extra: &[&str]) -> String {
    let out = Command::new(require("secsipidx", "secsipidx"))
        .arg("-sign-full")
        .arg("-k")
        .arg(key)
        .args(["-o", ORIG, "-d", DEST, "-a", "A", "-x5u", x5u])
        .args(["-orig-id", "2b8f2f5e-47c6-4b7e-9b3f-6d5f0c1a8e21"])
        .args(extra)
        .output()
        .expect("run secsipidx");
    assert!(
        out.status.success(),
        "secsipidx -sign-full failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .expect("utf-8")
        .trim()
        .to_owned()
}

/// A bare PASSporT signed by `secsipidx -sign` with a given `iat`
/// (`-sign-full` always signs with the current time).
fn secsipidx_passport(key: &Path, iat: &str) -> String {
    let out = Command::new(require("secsipidx", "secsipidx"))
        .arg("-sign")
        .arg("-k")
        .arg(key)
        .args(["-o", ORIG, "-d", DEST, "-a", "A", "-x5u", X5U, "-iat", iat])
        .args(["-orig-id", "9a4c1f0e-3b2d-4c5e-8f7a-1b2c3d4e5f60"])
        .output()
        .expect("run secsipidx");
    assert!(out.status.success(), "secsipidx -sign failed");
    String::from_utf8(out.stdout)
        .expect("utf-8")
        .trim()
        .to_owned()
}

/// Whether `secsipidx` verifies `identity` with the public key `public`.
fn secsipidx_check(dir: &Path, identity: &str, public: &Path) -> (bool, String) {
    let file = dir.join("received-identity.txt");
    std::fs::write(&file, identity).expect("write identity");
    let out = Command::new(require("secsipidx", "secsipidx"))
        .arg("-check")
        .arg("-fidentity")
        .arg(&file)
        .arg("-p")
        .arg(public)
        .args(["-expire", "60"])
        .output()
        .expect("run secsipidx");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// A scripted caller on a chosen loopback address, with free-form headers.
struct Uac {
    socket: UdpSocket,
    addr: SocketAddr,
}

struct Outcome {
    status: Option<u16>,
    response: Option<Message>,
}

impl Uac {
    async fn bind(ip: [u8; 4]) -> Self {
        let socket = UdpSocket::bind(SocketAddr::from((ip, 0)))
            .await
            .expect("bind UAC");
        let addr = socket.local_addr().expect("addr");
        Self { socket, addr }
    }

    /// Sends an INVITE from `+ORIG` to `+DEST` with `extra` header lines
    /// and waits for the final response (ACKing a non-2xx one).
    async fn invite(&self, node: SocketAddr, extra: &[(&str, &str)]) -> Outcome {
        let (branch, tag, call_id) = (format!("z9hG4bK{}", token()), token(), token());
        let uri = format!("sip:+{DEST}@{node}");
        let me = self.addr;
        let mut text = format!(
            "INVITE {uri} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch={branch};rport\r\n\
             Max-Forwards: 70\r\nFrom: <sip:+{ORIG}@{ip};user=phone>;tag={tag}\r\n\
             To: <sip:+{DEST}@{nip};user=phone>\r\nCall-ID: {call_id}@e2e\r\nCSeq: 1 INVITE\r\n\
             Contact: <sip:caller@{me}>\r\n",
            ip = me.ip(),
            nip = node.ip()
        );
        for (name, value) in extra {
            text.push_str(&format!("{name}: {value}\r\n"));
        }
        text.push_str("Content-Length: 0\r\n\r\n");
        let deadline = tokio::time::Instant::now() + WAIT;
        let mut buf = vec![0u8; 65_535];
        self.socket
            .send_to(text.as_bytes(), node)
            .await
            .expect("send");
        loop {
            let got = tokio::time::timeout_at(deadline, self.socket.recv_from(&mut buf)).await;
            let Ok(Ok((len, _))) = got else {
                return Outcome {
                    status: None,
                    response: None,
                };
            };
            let Ok(msg) = Message::parse(Bytes::copy_from_slice(&buf[..len])) else {
                continue;
            };
            let Some(status) = msg.status() else {
                continue;
            };
            if status < 200 {
                continue;
            }
            if status >= 300 {
                let to = msg.header(&HeaderName::To).unwrap_or_default().trim();
                let ack = format!(
                    "ACK {uri} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch={branch};rport\r\n\
                     Max-Forwards: 70\r\nFrom: <sip:+{ORIG}@{ip};user=phone>;tag={tag}\r\n\
                     To: {to}\r\nCall-ID: {call_id}@e2e\r\nCSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n",
                    ip = me.ip()
                );
                self.socket
                    .send_to(ack.as_bytes(), node)
                    .await
                    .expect("ack");
            }
            return Outcome {
                status: Some(status),
                response: Some(msg),
            };
        }
    }
}

/// A node on UDP relaying `+` to `callee` with the given `[identity]` body.
async fn node_with(identity: &str, callee: SocketAddr) -> (NodeHandle, tempfile::TempDir) {
    let toml = format!(
        r#"
[node]
grace_period_secs = 0
[[sip.listen]]
transport = "udp"
address = "127.0.0.1:0"
[admin]
listen = "127.0.0.1:0"
[[route]]
prefix = "+"
targets = ["sip:{callee}"]
[identity]
{identity}
"#
    );
    let mut config = Config::from_toml(&toml).expect("node config");
    let data = tempfile::tempdir().expect("tempdir");
    config.node.data_dir = Some(data.path().join("data"));
    let node = peering::node::start(config).await.expect("node starts");
    (node, data)
}

fn udp(node: &NodeHandle) -> SocketAddr {
    node.addr(Transport::Udp).expect("udp listener")
}

fn invites(callee: &Callee) -> usize {
    callee.log().invite_uris.len()
}

/// The Identity header value of a SIP message text.
fn identity_of(text: &str) -> Option<String> {
    let msg = Message::parse(Bytes::copy_from_slice(text.as_bytes())).ok()?;
    msg.header(&HeaderName::Identity)
        .map(|v| v.trim().to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secsipidx_signed_calls_pass_and_forgeries_get_rfc8224_codes() {
    let sti = Sti::new();
    let callee = Callee::start(0, Answer::RingThenAnswer).await;
    let (node, _data) = node_with(
        &format!("require = true\n{}", sti.identity_toml()),
        callee.addr,
    )
    .await;
    let uac = Uac::bind([127, 0, 0, 1]).await;
    let key = sti.path("sp.key");

    // A header signed by secsipidx verifies and the call is relayed with it.
    let good = secsipidx_sign(&key, X5U, &[]);
    let out = uac.invite(udp(&node), &[("Identity", &good)]).await;
    assert_eq!(out.status, Some(200), "signed call relayed");
    assert_eq!(invites(&callee), 1);
    let relayed = callee.log().first_invite.expect("callee saw the INVITE");
    assert_eq!(identity_of(&relayed).as_deref(), Some(good.as_str()));

    // The same PASSporT again (another call) is a replay.
    let out = uac.invite(udp(&node), &[("Identity", &good)]).await;
    assert_eq!(out.status, Some(403), "replay refused");
    let reason = out
        .response
        .as_ref()
        .and_then(|r| r.reason().map(str::to_owned));
    assert_eq!(reason.as_deref(), Some("Replayed Identity"));

    // Tampered claims: the attestation raised after signing, the signature
    // kept.
    let fresh = secsipidx_sign(&key, X5U, &[]);
    let (jws, params) = fresh.split_once(';').expect("params");
    let mut parts = jws.split('.');
    let (h, p, s) = (
        parts.next().expect("h"),
        parts.next().expect("p"),
        parts.next().expect("s"),
    );
    let claims = String::from_utf8(B64.decode(p).expect("b64")).expect("json");
    let forged = claims.replace("\"attest\":\"A\"", "\"attest\":\"B\"");
    assert_ne!(forged, claims, "claims changed: {claims}");
    let tampered = format!("{h}.{}.{s};{params}", B64.encode(forged));
    let out = uac.invite(udp(&node), &[("Identity", &tampered)]).await;
    assert_eq!(out.status, Some(438), "tampered claims");

    // A stale iat (10 minutes old).
    let old = (now() - 600).to_string();
    let stale = secsipidx_passport(&key, &old);
    let stale = format!("{stale};info=<{X5U}>;alg=ES256;ppt=shaken");
    let out = uac.invite(udp(&node), &[("Identity", &stale)]).await;
    assert_eq!(out.status, Some(403), "stale iat");
    let reason = out
        .response
        .as_ref()
        .and_then(|r| r.reason().map(str::to_owned));
    assert_eq!(reason.as_deref(), Some("Stale Date"));

    // Wrong certificates: another key from the trusted CA (the signature
    // does not verify), the right key certified by an untrusted CA, and a
    // certificate the repository does not have.
    let other = secsipidx_sign(&key, "https://sti.example.net/certs/other-key.pem", &[]);
    let out = uac.invite(udp(&node), &[("Identity", &other)]).await;
    assert_eq!(out.status, Some(438), "certificate of another key");
    let rogue = secsipidx_sign(&key, "https://sti.example.net/certs/rogue.pem", &[]);
    let out = uac.invite(udp(&node), &[("Identity", &rogue)]).await;
    assert_eq!(out.status, Some(437), "untrusted CA");
    let missing = secsipidx_sign(&key, "https://elsewhere.example/none.pem", &[]);
    let out = uac.invite(udp(&node), &[("Identity", &missing)]).await;
    assert_eq!(out.status, Some(436), "certificate not in the repository");

    // No Identity at all.
    let out = uac.invite(udp(&node), &[]).await;
    assert_eq!(out.status, Some(428), "missing Identity");
    let warning = out
        .response
        .as_ref()
        .and_then(|r| r.header(&HeaderName::Warning));
    assert!(warning.is_none(), "428 needs no Warning: {warning:?}");

    assert_eq!(
        invites(&callee),
        1,
        "only the valid call reached the callee"
    );
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_signs_and_secsipidx_verifies_what_the_callee_received() {
    let sti = Sti::new();
    let callee = Callee::start(0, Answer::RingThenAnswer).await;
    let (node, _data) = node_with(
        &format!(
            "sign_key = \"{}\"\nsign_x5u = \"{X5U}\"\nsign_attestation = \"B\"\nsign_sources = [\"127.0.0.1/32\"]\n{}",
            sti.path("sp.key").display(),
            sti.identity_toml()
        ),
        callee.addr,
    )
    .await;
    let uac = Uac::bind([127, 0, 0, 1]).await;
    let out = uac.invite(udp(&node), &[]).await;
    assert_eq!(out.status, Some(200));
    let relayed = callee.log().first_invite.expect("callee saw the INVITE");
    let identity = identity_of(&relayed).expect("the node added an Identity header");
    assert!(identity.contains(";info=<https://sti.example.net/certs/sp.pem>"));
    assert!(identity.contains(";ppt=shaken"), "{identity}");
    let (ok, text) = secsipidx_check(sti.dir.path(), &identity, &sti.path("sp.pub"));
    assert!(
        ok,
        "secsipidx rejects the node's header: {text}\n{identity}"
    );
    let payload = identity.split('.').nth(1).expect("payload");
    let claims = String::from_utf8(B64.decode(payload).expect("b64")).expect("json");
    assert!(claims.contains("\"attest\":\"B\""), "{claims}");
    assert!(
        claims.contains(&format!("\"orig\":{{\"tn\":\"{ORIG}\"}}")),
        "{claims}"
    );

    // A second node that requires Identity accepts the first node's header.
    let callee2 = Callee::start(0, Answer::RingThenAnswer).await;
    let (verifier, _data2) = node_with(
        &format!("require = true\n{}", sti.identity_toml()),
        callee2.addr,
    )
    .await;
    let (chain, _data3) = node_with(
        &format!(
            "sign_key = \"{}\"\nsign_x5u = \"{X5U}\"\nsign_sources = [\"127.0.0.1/32\"]\n",
            sti.path("sp.key").display()
        ),
        udp(&verifier),
    )
    .await;
    let out = uac.invite(udp(&chain), &[]).await;
    assert_eq!(
        out.status,
        Some(200),
        "signed by one node, verified by the next"
    );
    assert_eq!(invites(&callee2), 1);

    // A caller outside sign_sources is not signed for.
    let callee3 = Callee::start(0, Answer::RingThenAnswer).await;
    let (picky, _data4) = node_with(
        &format!(
            "sign_key = \"{}\"\nsign_x5u = \"{X5U}\"\nsign_sources = [\"127.0.0.9/32\"]\n",
            sti.path("sp.key").display()
        ),
        callee3.addr,
    )
    .await;
    let out = uac.invite(udp(&picky), &[]).await;
    assert_eq!(out.status, Some(200));
    let relayed = callee3.log().first_invite.expect("callee saw the INVITE");
    assert_eq!(identity_of(&relayed), None, "not signed for 127.0.0.1");
    // Without `sti_ca` the node does not verify: any Identity travels on.
    let opaque = "e30.e30.c2ln;info=<https://sti.example.net/certs/x.pem>";
    let out = uac.invite(udp(&picky), &[("Identity", opaque)]).await;
    assert_eq!(out.status, Some(200), "not verified, passed on");
    assert_eq!(invites(&callee3), 2);

    for n in [node, verifier, chain, picky] {
        n.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pai_kept_from_the_trust_domain_and_removed_otherwise() {
    let pai = "<sip:+12155550100@a.example;user=phone>";
    // 127.0.0.2 is loopback on Linux: the trusted peer; 127.0.0.1 is not.
    for (ip, kept) in [([127, 0, 0, 1], false), ([127, 0, 0, 2], true)] {
        let callee = Callee::start(0, Answer::RingThenAnswer).await;
        let (node, _data) =
            node_with("trusted_pai_sources = [\"127.0.0.2/32\"]\n", callee.addr).await;
        let uac = Uac::bind(ip).await;
        let out = uac
            .invite(udp(&node), &[("P-Asserted-Identity", pai)])
            .await;
        assert_eq!(out.status, Some(200));
        let invite = callee.log().first_invite.expect("callee saw the INVITE");
        let msg = Message::parse(Bytes::copy_from_slice(invite.as_bytes())).expect("parse");
        let got = msg.header(&HeaderName::PAssertedIdentity).map(str::trim);
        if kept {
            assert_eq!(got, Some(pai), "PAI from the trust domain kept:\n{invite}");
        } else {
            assert_eq!(got, None, "PAI from outside removed:\n{invite}");
        }
        node.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn example_identity_toml_verifies_the_demo_key() {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let example = manifest.join("../examples/identity.toml");
    let mut config = Config::load(&example).expect("examples/identity.toml loads");
    let identity = config.identity.clone().expect("[identity]");
    assert!(identity.require, "the example requires Identity");
    assert!(
        identity
            .sti_ca
            .as_deref()
            .is_some_and(|p| p.ends_with("examples/sti-ca") && p.is_dir()),
        "sti_ca resolves against the file's folder: {:?}",
        identity.sti_ca
    );
    // Same node, but on free ports and towards a callee of this test.
    let callee = Callee::start(0, Answer::RingThenAnswer).await;
    for listen in &mut config.sip.listen {
        listen.address = SocketAddr::from(([127, 0, 0, 1], 0));
    }
    config.admin.listen = None;
    assert_eq!(config.routes.len(), 1);
    assert_eq!(config.routes[0].targets, vec!["sip:127.0.0.1:5090"]);
    config.routes[0].targets = vec![format!("sip:{}", callee.addr)];
    let data = tempfile::tempdir().expect("tempdir");
    config.node.data_dir = Some(data.path().join("data"));
    let node = peering::node::start(config).await.expect("node starts");

    let key = manifest.join("../examples/sti-repo/DEMO-ONLY-sp-sample.key");
    let header = secsipidx_sign(&key, "https://sti.example.net/certs/sp-sample.pem", &[]);
    let uac = Uac::bind([127, 0, 0, 1]).await;
    let out = uac.invite(udp(&node), &[("Identity", &header)]).await;
    assert_eq!(out.status, Some(200), "demo-signed call relayed");
    let out = uac.invite(udp(&node), &[]).await;
    assert_eq!(out.status, Some(428), "unsigned call refused");
    assert_eq!(invites(&callee), 1);
    node.shutdown().await;
}

/// Mutual TLS with Kamailio as the member's edge proxy.
struct TlsSetup {
    dir: tempfile::TempDir,
    ca: Ca,
    ca_file: PathBuf,
    node: NodeHandle,
    callee: Callee,
}

async fn tls_node() -> TlsSetup {
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = Ca::new("federation CA e2e");
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, ca.pem()).expect("ca");
    let crl_file = dir.path().join("ca.crl");
    std::fs::write(&crl_file, ca.crl_pem(REVOKED_SERIAL)).expect("crl");
    let node_leaf = ca.leaf_files(dir.path(), "node", &["node.test", "127.0.0.1"], |_| {});
    let sti = Sti::new();
    let callee = Callee::start(0, Answer::RingThenAnswer).await;
    let toml = format!(
        r#"
[node]
grace_period_secs = 0
[[sip.listen]]
transport = "udp"
address = "127.0.0.1:0"
[[sip.listen]]
transport = "tls"
address = "127.0.0.1:0"
[tls]
certificate = "{cert}"
private_key = "{key}"
ca = ["{ca}"]
crl = ["{crl}"]
[admin]
listen = "127.0.0.1:0"
[[route]]
prefix = "+"
targets = ["sip:{callee}"]
[identity]
sign_key = "{sign_key}"
sign_x5u = "{X5U}"
sign_members = ["member-a"]
[identity.tls_members]
"member-a.test" = "member-a"
"#,
        cert = node_leaf.cert.display(),
        key = node_leaf.key.display(),
        ca = ca_file.display(),
        crl = crl_file.display(),
        callee = callee.addr,
        sign_key = sti.path("sp.key").display(),
    );
    let mut config = Config::from_toml(&toml).expect("config");
    config.node.data_dir = Some(dir.path().join("data"));
    let node = peering::node::start(config).await.expect("node starts");
    // The signing key is read at start; the STI folder may go now.
    drop(sti);
    TlsSetup {
        dir,
        ca,
        ca_file,
        node,
        callee,
    }
}

impl TlsSetup {
    /// A Kamailio edge proxy whose TLS client presents `leaf` to the node.
    fn edge(&self, leaf: Leaf) -> Kamailio {
        let tls_addr = self.node.addr(Transport::Tls).expect("tls listener");
        EdgeProxy {
            port: free_port(),
            tls: Some((
                free_port(),
                KamailioTls {
                    leaf,
                    ca: self.ca_file.clone(),
                },
            )),
            next_hop: format!("sip:{tls_addr};transport=tls"),
        }
        .start()
    }

    /// A call through a Kamailio whose TLS client presents `leaf`.
    async fn call_through(&self, leaf: Leaf) -> (Option<u16>, String) {
        let kam = self.edge(leaf);
        let mut call = Call::invite(kam.addr, &format!("sip:+4721345678@{}", kam.addr)).await;
        let status = call.wait_final(Duration::from_secs(10)).await;
        let warning = call
            .final_response
            .as_ref()
            .and_then(|r| r.header(&HeaderName::Warning))
            .unwrap_or_default()
            .to_owned();
        (
            status,
            format!("{warning}\n--- kamailio ---\n{}", kam.log()),
        )
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kamailio_member_certificate_is_bound_and_signed_for() {
    let setup = tls_node().await;
    let leaf = setup.ca.leaf_files(
        setup.dir.path(),
        "member-a",
        &["sip:member-a.test", "127.0.0.1"],
        |_| {},
    );
    let (status, log) = setup.call_through(leaf).await;
    assert_eq!(status, Some(200), "{log}");
    // The connection was bound to member-a, which asked the node to sign.
    let invite = setup
        .callee
        .log()
        .first_invite
        .expect("callee saw the INVITE");
    assert!(
        identity_of(&invite).is_some_and(|v| v.contains("ppt=shaken")),
        "signed for member-a:\n{invite}"
    );

    let stranger = setup.ca.leaf_files(
        setup.dir.path(),
        "stranger",
        &["stranger.test", "127.0.0.1"],
        |_| {},
    );
    let (status, log) = setup.call_through(stranger).await;
    assert_eq!(status, Some(403), "wrong SAN: {log}");
    assert!(log.contains("no federation member"), "Warning: {log}");

    // A wildcard is never an RFC 5922 identity, even over the member's domain.
    let wildcard = setup.ca.leaf_files(
        setup.dir.path(),
        "wildcard",
        &["*.member-a.test", "member-a.test.invalid"],
        |_| {},
    );
    let (status, log) = setup.call_through(wildcard).await;
    assert_eq!(status, Some(403), "wildcard: {log}");
    assert_eq!(setup.callee.log().invite_uris.len(), 1);
    setup.node.shutdown().await;
}

/// Calls through Kamailio with each certificate; each TLS handshake must
/// fail (counted by the node) and nothing may reach the callee.
async fn handshakes_fail(setup: &TlsSetup, leaves: Vec<(&str, Leaf)>) {
    let failures = || {
        setup
            .node
            .metrics
            .tls_handshake_failures
            .load(Ordering::Relaxed)
    };
    for (name, leaf) in leaves {
        let before = failures();
        let kam = setup.edge(leaf);
        let mut call = Call::invite(kam.addr, &format!("sip:+4721345678@{}", kam.addr)).await;
        // Kamailio keeps retrying the connection; the node's count of
        // failed handshakes is the signal, not the caller's final answer.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while failures() == before && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(
            failures() > before,
            "{name}: handshake failure counted\n{}",
            kam.log()
        );
        let status = call.wait_final(Duration::from_millis(500)).await;
        assert_ne!(status, Some(200), "{name}: {}", kam.log());
    }
    assert!(
        setup.callee.log().invite_uris.is_empty(),
        "nothing reached the callee"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kamailio_untrusted_or_expired_certificate_fails_the_handshake() {
    let setup = tls_node().await;
    let rogue_ca = Ca::new("rogue CA");
    let sans = ["sip:member-a.test", "127.0.0.1"];
    let rogue = rogue_ca.leaf_files(setup.dir.path(), "rogue", &sans, |_| {});
    let expired = setup
        .ca
        .leaf_files(setup.dir.path(), "expired", &sans, |p| {
            p.not_before = rcgen::date_time_ymd(2020, 1, 1);
            p.not_after = rcgen::date_time_ymd(2021, 1, 1);
        });
    handshakes_fail(&setup, vec![("untrusted", rogue), ("expired", expired)]).await;
    setup.node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kamailio_revoked_or_not_yet_valid_certificate_fails_the_handshake() {
    let setup = tls_node().await;
    let sans = ["sip:member-a.test", "127.0.0.1"];
    let revoked = setup
        .ca
        .leaf_files(setup.dir.path(), "revoked", &sans, |p| {
            p.serial_number = Some(SerialNumber::from(REVOKED_SERIAL));
        });
    let future = setup.ca.leaf_files(setup.dir.path(), "future", &sans, |p| {
        p.not_before = rcgen::date_time_ymd(3000, 1, 1);
        p.not_after = rcgen::date_time_ymd(3001, 1, 1);
    });
    handshakes_fail(
        &setup,
        vec![("revoked", revoked), ("not yet valid", future)],
    )
    .await;
    setup.node.shutdown().await;
}

/// A node that relays `+` over TLS to `target` (a `sip:` URI).
async fn tls_relay(dir: &Path, ca: &Ca, ca_file: &Path, target: &str) -> NodeHandle {
    let stem = format!("node-{}", token());
    let leaf = ca.leaf_files(dir, &stem, &["sip:node.test", "127.0.0.1"], |_| {});
    let toml = format!(
        r#"
[node]
grace_period_secs = 0
[[sip.listen]]
transport = "udp"
address = "127.0.0.1:0"
[[sip.listen]]
transport = "tls"
address = "127.0.0.1:0"
[tls]
certificate = "{cert}"
private_key = "{key}"
ca = ["{ca}"]
[admin]
listen = "127.0.0.1:0"
[[route]]
prefix = "+"
targets = ["{target}"]
"#,
        cert = leaf.cert.display(),
        key = leaf.key.display(),
        ca = ca_file.display(),
    );
    let mut config = Config::from_toml(&toml).expect("config");
    config.node.data_dir = Some(dir.join(format!("data-{stem}")));
    peering::node::start(config).await.expect("node starts")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outbound_tls_verifies_the_terminating_member_by_rfc5922() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = Ca::new("federation CA e2e");
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, ca.pem()).expect("ca");
    let callee = Callee::start(0, Answer::RingThenAnswer).await;
    // Two Kamailio edge proxies of "member-b.test": one with a certificate
    // for that domain, one with a certificate of the same CA for another.
    let edge = |stem: &str, san: &str| {
        let leaf = ca.leaf_files(dir.path(), stem, &[san], |_| {});
        let tls_port = free_port();
        let kam = EdgeProxy {
            port: free_port(),
            tls: Some((
                tls_port,
                KamailioTls {
                    leaf,
                    ca: ca_file.clone(),
                },
            )),
            next_hop: format!("sip:{}", callee.addr),
        }
        .start();
        (kam, tls_port)
    };
    let (right, right_port) = edge("member-b", "sip:member-b.test");
    let (wrong, wrong_port) = edge("impostor", "sip:impostor.test");
    // The target names the member's domain; maddr gives its address.
    let uri = |port: u16| format!("sip:member-b.test:{port};transport=tls;maddr=127.0.0.1");
    let good = tls_relay(dir.path(), &ca, &ca_file, &uri(right_port)).await;
    let bad = tls_relay(dir.path(), &ca, &ca_file, &uri(wrong_port)).await;

    let uac = Uac::bind([127, 0, 0, 1]).await;
    let out = uac.invite(udp(&good), &[]).await;
    assert_eq!(
        out.status,
        Some(200),
        "member-b's certificate accepted\n{}",
        right.log()
    );
    assert_eq!(invites(&callee), 1);

    let out = uac.invite(udp(&bad), &[]).await;
    assert!(
        out.status.is_some_and(|s| s >= 500),
        "a certificate for another domain is refused: {:?}\n{}",
        out.status,
        wrong.log()
    );
    assert!(
        bad.metrics.tls_handshake_failures.load(Ordering::Relaxed) > 0,
        "the outbound handshake failed"
    );
    assert_eq!(invites(&callee), 1, "the impostor got nothing through");
    good.shutdown().await;
    bad.shutdown().await;
}

/// A 2048-bit RSA key made by `openssl` (ring cannot generate RSA keys),
/// written as PKCS#8 PEM to `path`.
fn rsa_key(path: &Path) -> KeyPair {
    let out = Command::new(require("openssl", "openssl"))
        .args([
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
        ])
        .arg("-out")
        .arg(path)
        .output()
        .expect("run openssl");
    assert!(out.status.success(), "openssl genpkey failed");
    KeyPair::from_pem(&std::fs::read_to_string(path).expect("key")).expect("RSA key")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc4474_signed_by_one_node_verified_by_the_next() {
    let dir = tempfile::tempdir().expect("tempdir");
    let key_path = dir.path().join("rsa.key");
    let key = rsa_key(&key_path);
    let ca = Ca::new("RFC 4474 CA e2e");
    let (ca_dir, repo) = (dir.path().join("ca"), dir.path().join("repo"));
    std::fs::create_dir_all(&ca_dir).expect("mkdir");
    std::fs::create_dir_all(&repo).expect("mkdir");
    std::fs::write(ca_dir.join("ca.pem"), ca.pem()).expect("ca");
    // RFC 4474 section 6: the certificate must identify the From domain
    // (the caller's From host is 127.0.0.1).
    std::fs::write(
        repo.join("id.pem"),
        ca.leaf_for_key(
            "127.0.0.1",
            &key,
            SanType::URI("sip:127.0.0.1".try_into().expect("uri")),
            |_| {},
        ),
    )
    .expect("cert");

    let callee = Callee::start(0, Answer::RingThenAnswer).await;
    let (verifier, _d1) = node_with(
        &format!(
            "require = true\nrfc4474 = true\nsti_ca = \"{}\"\nrepository = \"{}\"\n",
            ca_dir.display(),
            repo.display()
        ),
        callee.addr,
    )
    .await;
    let (signer, _d2) = node_with(
        &format!(
            "sign_standard = \"rfc4474\"\nsign_key = \"{}\"\nsign_x5u = \"https://127.0.0.1/certs/id.pem\"\nsign_sources = [\"127.0.0.1/32\"]\n",
            key_path.display()
        ),
        udp(&verifier),
    )
    .await;
    let uac = Uac::bind([127, 0, 0, 1]).await;
    let out = uac.invite(udp(&signer), &[]).await;
    assert_eq!(out.status, Some(200), "RFC 4474 signed and verified");
    let invite = callee.log().first_invite.expect("callee saw the INVITE");
    let msg = Message::parse(Bytes::copy_from_slice(invite.as_bytes())).expect("parse");
    let identity = msg
        .header(&HeaderName::Identity)
        .expect("Identity")
        .trim()
        .to_owned();
    let info = msg
        .header(&HeaderName::IdentityInfo)
        .expect("Identity-Info")
        .trim()
        .to_owned();
    let date = msg
        .header(&HeaderName::Date)
        .expect("Date added")
        .trim()
        .to_owned();
    assert!(identity.starts_with('"'), "{identity}");
    assert_eq!(info, "<https://127.0.0.1/certs/id.pem>;alg=rsa-sha256");

    // The same signature on another call (other Call-ID) does not verify.
    let out = uac
        .invite(
            udp(&verifier),
            &[
                ("Identity", &identity),
                ("Identity-Info", &info),
                ("Date", &date),
            ],
        )
        .await;
    assert_eq!(out.status, Some(438), "signature over another request");
    // rsa-sha1 is off by default.
    let sha1 = info.replace("rsa-sha256", "rsa-sha1");
    let out = uac
        .invite(
            udp(&verifier),
            &[
                ("Identity", &identity),
                ("Identity-Info", &sha1),
                ("Date", &date),
            ],
        )
        .await;
    assert_eq!(out.status, Some(437), "rsa-sha1 refused");
    assert_eq!(invites(&callee), 1);
    signer.shutdown().await;
    verifier.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn udp_peers_bound_by_source_network_and_attestation_policy() {
    let sti = Sti::new();
    let callee = Callee::start(0, Answer::RingThenAnswer).await;
    let (node, _data) = node_with(
        &format!(
            "attestation = [\"A\"]\n{}\n[[identity.member]]\nname = \"member-c\"\nnetworks = [\"127.0.0.2/32\"]\n",
            sti.identity_toml()
        ),
        callee.addr,
    )
    .await;
    // 127.0.0.1 is no member's network: 403 before any routing work.
    let stranger = Uac::bind([127, 0, 0, 1]).await;
    let out = stranger.invite(udp(&node), &[]).await;
    assert_eq!(out.status, Some(403));
    let warning = out
        .response
        .as_ref()
        .and_then(|r| r.header(&HeaderName::Warning))
        .unwrap_or_default()
        .to_owned();
    assert!(warning.contains("no federation member"), "{warning}");

    // The member's address passes; its A-attested call is relayed, a
    // C-attested one is refused by the attestation policy.
    let member = Uac::bind([127, 0, 0, 2]).await;
    let key = sti.path("sp.key");
    let a = secsipidx_sign(&key, X5U, &[]);
    let out = member.invite(udp(&node), &[("Identity", &a)]).await;
    assert_eq!(out.status, Some(200), "member, attestation A");
    let c = secsipidx_sign(&key, X5U, &["-a", "C"]);
    let out = member.invite(udp(&node), &[("Identity", &c)]).await;
    assert_eq!(out.status, Some(403), "attestation C not accepted");
    let reason = out
        .response
        .as_ref()
        .and_then(|r| r.reason().map(str::to_owned));
    assert_eq!(reason.as_deref(), Some("Attestation Not Accepted"));
    assert_eq!(invites(&callee), 1);
    node.shutdown().await;
}

/// A TLS client with a chosen version and cipher suite: connects to the
/// node, sends OPTIONS and returns the first line of the answer, or the
/// error.
async fn tls_options(
    node: SocketAddr,
    ca_pem: &str,
    leaf: &Leaf,
    version: &'static rustls::SupportedProtocolVersion,
    suite: &str,
) -> Result<String, String> {
    use rustls::pki_types::pem::PemObject as _;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut provider = rustls::crypto::ring::default_provider();
    provider
        .cipher_suites
        .retain(|s| s.suite().as_str() == Some(suite));
    assert_eq!(provider.cipher_suites.len(), 1, "known suite {suite}");
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(cert.expect("ca")).expect("root");
    }
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&leaf.cert)
        .expect("cert")
        .map(|c| c.expect("cert"))
        .collect();
    let key = PrivateKeyDer::from_pem_file(&leaf.key).expect("key");
    let config = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(provider))
        .with_protocol_versions(&[version])
        .expect("versions")
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)
        .expect("client config");
    let tcp = tokio::net::TcpStream::connect(node)
        .await
        .map_err(|e| e.to_string())?;
    let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config));
    let name = ServerName::IpAddress(node.ip().into());
    let mut tls = connector
        .connect(name, tcp)
        .await
        .map_err(|e| e.to_string())?;
    let me = tls.get_ref().0.local_addr().expect("addr");
    let options = format!(
        "OPTIONS sip:{node};transport=tls SIP/2.0\r\nVia: SIP/2.0/TLS {me};branch=z9hG4bK{b}\r\n\
         Max-Forwards: 70\r\nFrom: <sip:probe@{me}>;tag={t}\r\nTo: <sip:{node}>\r\n\
         Call-ID: {b}@e2e\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n",
        b = token(),
        t = token()
    );
    tls.write_all(options.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(WAIT, tls.read(&mut buf))
        .await
        .map_err(|_| "no answer".to_owned())?
        .map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&buf[..n]).into_owned();
    Ok(text.lines().next().unwrap_or_default().to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_version_floor_and_cipher_policy() {
    use rustls::version::{TLS12, TLS13};
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = Ca::new("federation CA e2e");
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, ca.pem()).expect("ca");
    let node_leaf = ca.leaf_files(dir.path(), "node", &["node.test", "127.0.0.1"], |_| {});
    let client = ca.leaf_files(dir.path(), "client", &["sip:member-a.test"], |_| {});
    let start = |tls_extra: &str| {
        let toml = format!(
            r#"
[node]
grace_period_secs = 0
[sip]
domains = ["node.test"]
[[sip.listen]]
transport = "tls"
address = "127.0.0.1:0"
[tls]
certificate = "{cert}"
private_key = "{key}"
ca = ["{ca}"]
{tls_extra}
[admin]
listen = "127.0.0.1:0"
"#,
            cert = node_leaf.cert.display(),
            key = node_leaf.key.display(),
            ca = ca_file.display(),
        );
        let mut config = Config::from_toml(&toml).expect("config");
        config.node.data_dir = Some(dir.path().join(format!("data-{}", token())));
        peering::node::start(config)
    };
    const AES128_12: &str = "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256";
    const AES256_12: &str = "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384";
    const AES256_13: &str = "TLS13_AES_256_GCM_SHA384";
    let ca_pem = ca.pem();

    // Default: TLS 1.2 and 1.3 both work.
    let node = start("").await.expect("node");
    let addr = node.addr(Transport::Tls).expect("tls");
    let answer = tls_options(addr, &ca_pem, &client, &TLS12, AES128_12).await;
    assert!(
        answer.as_deref().is_ok_and(|l| l.starts_with("SIP/2.0 ")),
        "{answer:?}"
    );
    let answer = tls_options(addr, &ca_pem, &client, &TLS13, AES256_13).await;
    assert!(
        answer.as_deref().is_ok_and(|l| l.starts_with("SIP/2.0 ")),
        "{answer:?}"
    );
    node.shutdown().await;

    // min_version = "1.3": a TLS 1.2 client fails the handshake.
    let node = start("min_version = \"1.3\"").await.expect("node");
    let addr = node.addr(Transport::Tls).expect("tls");
    let answer = tls_options(addr, &ca_pem, &client, &TLS12, AES256_12).await;
    assert!(answer.is_err(), "TLS 1.2 refused: {answer:?}");
    let answer = tls_options(addr, &ca_pem, &client, &TLS13, AES256_13).await;
    assert!(answer.is_ok(), "TLS 1.3 accepted: {answer:?}");
    node.shutdown().await;

    // A cipher policy: only the AES-256 suites.
    let node = start(&format!(
        "cipher_suites = [\"{AES256_13}\", \"{AES256_12}\"]"
    ))
    .await
    .expect("node");
    let addr = node.addr(Transport::Tls).expect("tls");
    let answer = tls_options(addr, &ca_pem, &client, &TLS12, AES128_12).await;
    assert!(answer.is_err(), "AES-128 refused: {answer:?}");
    let answer = tls_options(addr, &ca_pem, &client, &TLS12, AES256_12).await;
    assert!(answer.is_ok(), "AES-256 accepted: {answer:?}");
    node.shutdown().await;

    // An unknown suite name stops the node at start.
    let err = start("cipher_suites = [\"TLS_RSA_WITH_RC4_128_MD5\"]")
        .await
        .expect_err("unknown suite refused");
    assert!(format!("{err:#}").contains("cipher suite"), "{err:#}");
}

/// Kamailio's `auth_identity` module as the RFC 4474 authentication
/// service of the calling domain, signing INVITEs on their way to a node.
struct AuthIdentityKamailio {
    child: std::process::Child,
    addr: SocketAddr,
    log: PathBuf,
}

impl AuthIdentityKamailio {
    fn start(dir: &Path, rsa_traditional: &Path, cert: &Path) -> Self {
        let modules = [
            "/usr/lib/x86_64-linux-gnu/kamailio/modules",
            "/usr/lib/aarch64-linux-gnu/kamailio/modules",
            "/usr/lib/kamailio/modules",
        ]
        .into_iter()
        .find(|d| Path::new(d).join("auth_identity.so").is_file())
        .expect("Kamailio's auth_identity module: apt-get install kamailio-extra-modules");
        let port = free_port();
        let cfg = format!(
            r#"#!KAMAILIO
debug=2
log_stderror=yes
children=1
auto_aliases=no
dns=no
rev_dns=no
listen=udp:127.0.0.1:{port}
mpath="{modules}"
loadmodule "sl.so"
loadmodule "auth_identity.so"
modparam("auth_identity", "privatekey_path", "{key}")
modparam("auth_identity", "certificate_path", "{cert}")
modparam("auth_identity", "certificate_url", "https://atlanta.example.com/certs/kam-id.pem")
request_route {{
    if (method == "INVITE") {{
        if (!auth_date_proc()) {{ sl_send_reply("403", "Date"); exit; }}
        if (!auth_add_identity()) {{ sl_send_reply("500", "Identity"); exit; }}
    }}
    forward();
    exit;
}}
"#,
            key = rsa_traditional.display(),
            cert = cert.display(),
        );
        let cfg_path = dir.join("kamailio-auth-identity.cfg");
        std::fs::write(&cfg_path, cfg).expect("cfg");
        let log = dir.join("kamailio-auth-identity.log");
        let child = Command::new(require("kamailio", "kamailio kamailio-extra-modules"))
            .arg("-f")
            .arg(&cfg_path)
            .args(["-DD", "-E", "-m", "32", "-M", "8", "-Y"])
            .process_group(0)
            .arg(dir)
            .arg("-P")
            .arg(dir.join("kamailio-auth-identity.pid"))
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log"))
            .spawn()
            .expect("start kamailio");
        Self {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            log,
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for AuthIdentityKamailio {
    fn drop(&mut self) {
        peering_tests::stop_process_group(&mut self.child);
    }
}

/// Sends an INVITE for `uri` from alice@atlanta.example.com through
/// `proxy` (resending while nothing answers, as Kamailio may still be
/// starting) and returns the final status. No Contact: Kamailio's signer
/// leaves the Contact out of its digest string even when one is present
/// (its verifier and RFC 4474 put it in), so only a request without
/// Contact gives both sides the same string.
async fn invite_as_alice(proxy: SocketAddr, uri: &str) -> Option<u16> {
    let socket = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    let me = socket.local_addr().expect("addr");
    let (branch, tag, call_id) = (token(), token(), token());
    let text = format!(
        "INVITE {uri} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bK{branch};rport\r\n\
         Max-Forwards: 70\r\nFrom: Alice <sip:alice@atlanta.example.com>;tag={tag}\r\n\
         To: <{uri}>\r\nCall-ID: {call_id}@atlanta.example.com\r\nCSeq: 1 INVITE\r\n\
         Content-Length: 0\r\n\r\n"
    );
    let mut buf = vec![0u8; 65_535];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let mut answered = false;
    while tokio::time::Instant::now() < deadline {
        if !answered {
            socket.send_to(text.as_bytes(), proxy).await.expect("send");
        }
        let step = tokio::time::Instant::now() + Duration::from_millis(300);
        let Ok(Ok((len, _))) = tokio::time::timeout_at(step, socket.recv_from(&mut buf)).await
        else {
            continue;
        };
        let Ok(msg) = Message::parse(Bytes::copy_from_slice(&buf[..len])) else {
            continue;
        };
        match msg.status() {
            Some(s) if s >= 200 => return Some(s),
            Some(_) => answered = true,
            None => {}
        }
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc4474_signed_by_kamailio_auth_identity_verified_by_the_node() {
    let dir = tempfile::tempdir().expect("tempdir");
    let key = rsa_key(&dir.path().join("rsa.key"));
    // auth_identity reads a traditional RSA key.
    let traditional = dir.path().join("rsa-traditional.key");
    let out = Command::new(require("openssl", "openssl"))
        .args(["rsa", "-traditional", "-in"])
        .arg(dir.path().join("rsa.key"))
        .arg("-out")
        .arg(&traditional)
        .output()
        .expect("openssl rsa");
    assert!(out.status.success(), "openssl rsa -traditional failed");
    let ca = Ca::new("atlanta CA e2e");
    let (ca_dir, repo) = (dir.path().join("ca"), dir.path().join("repo"));
    std::fs::create_dir_all(&ca_dir).expect("mkdir");
    std::fs::create_dir_all(&repo).expect("mkdir");
    std::fs::write(ca_dir.join("ca.pem"), ca.pem()).expect("ca");
    let cert = ca.leaf_for_key(
        "atlanta.example.com",
        &key,
        SanType::DnsName("atlanta.example.com".try_into().expect("dns")),
        |p| {
            // auth_identity reads notAfter as UTCTime only (before 2050).
            p.not_before = rcgen::date_time_ymd(2020, 1, 1);
            p.not_after = rcgen::date_time_ymd(2045, 1, 1);
        },
    );
    std::fs::write(repo.join("kam-id.pem"), &cert).expect("repo cert");
    let cert_path = dir.path().join("kam-id.pem");
    std::fs::write(&cert_path, &cert).expect("cert");

    let identity = |sha1: bool| {
        format!(
            "require = true\nrfc4474 = true\nrsa_sha1 = {sha1}\nsti_ca = \"{}\"\nrepository = \"{}\"\n",
            ca_dir.display(),
            repo.display()
        )
    };
    let callee = Callee::start(0, Answer::RingThenAnswer).await;
    // auth_identity signs with rsa-sha1, the algorithm of RFC 4474 itself.
    let (lenient, _d1) = node_with(&identity(true), callee.addr).await;
    let (strict, _d2) = node_with(&identity(false), callee.addr).await;
    let kam = AuthIdentityKamailio::start(dir.path(), &traditional, &cert_path);

    let uri = |node: &NodeHandle| format!("sip:+4721345678@{}", udp(node));
    let status = invite_as_alice(kam.addr, &uri(&lenient)).await;
    assert_eq!(
        status,
        Some(200),
        "Kamailio-signed INVITE verified\n{}",
        kam.log()
    );
    let invite = callee.log().first_invite.expect("callee saw the INVITE");
    assert!(invite.contains("alg=rsa-sha1"), "{invite}");

    let status = invite_as_alice(kam.addr, &uri(&strict)).await;
    assert_eq!(status, Some(437), "rsa-sha1 off: 437\n{}", kam.log());
    assert_eq!(invites(&callee), 1);
    lenient.shutdown().await;
    strict.shutdown().await;
}

/// A one-file HTTPS server on loopback that counts its requests.
async fn https_cert_server(
    ca: &Ca,
    body: String,
) -> (SocketAddr, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use rustls::pki_types::pem::PemObject as _;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let (pem, key) = ca.leaf("cr.sti.test", &["127.0.0.1"], |_| {});
    let chain = vec![CertificateDer::from_pem_slice(pem.as_bytes()).expect("cert")];
    let key = PrivateKeyDer::from_pem_slice(key.serialize_pem().as_bytes()).expect("key");
    let config = rustls::ServerConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_no_client_auth()
    .with_single_cert(chain, key)
    .expect("server config");
    let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let hits = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = hits.clone();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let Ok(mut tls) = acceptor.accept(tcp).await else {
                continue;
            };
            counter.fetch_add(1, Ordering::Relaxed);
            let mut request = Vec::new();
            let mut buf = [0u8; 1024];
            while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                match tls.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => request.extend_from_slice(&buf[..n]),
                }
            }
            let response = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/x-pem-file\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = tls.write_all(response.as_bytes()).await;
            let _ = tls.shutdown().await;
        }
    });
    (addr, hits)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificate_fetched_over_https_from_an_allowed_host_and_cached() {
    let sti = Sti::new();
    let web_ca = Ca::new("web CA e2e");
    let web_ca_file = sti.path("web-ca.pem");
    std::fs::write(&web_ca_file, web_ca.pem()).expect("web ca");
    let cert = std::fs::read_to_string(sti.path("sti-repo/sp.pem")).expect("sp cert");
    let (server, hits) = https_cert_server(&web_ca, cert).await;
    let callee = Callee::start(0, Answer::RingThenAnswer).await;
    // No repository: the certificate must come from the allowed host.
    let (node, _data) = node_with(
        &format!(
            "require = true\nsti_ca = \"{}\"\nallowed_hosts = [\"{server}\"]\nhttps_ca = [\"{}\"]\n",
            sti.path("sti-ca").display(),
            web_ca_file.display()
        ),
        callee.addr,
    )
    .await;
    let uac = Uac::bind([127, 0, 0, 1]).await;
    let key = sti.path("sp.key");
    let url = format!("https://{server}/certs/sp.pem");
    for n in 1..=2 {
        let signed = secsipidx_sign(&key, &url, &[]);
        let out = uac.invite(udp(&node), &[("Identity", &signed)]).await;
        assert_eq!(out.status, Some(200), "call {n} verified");
    }
    assert_eq!(hits.load(Ordering::Relaxed), 1, "fetched once, then cached");

    // The same server on another port is not on the allowlist: 436.
    let other = format!("https://127.0.0.1:{}/certs/sp.pem", free_port());
    let signed = secsipidx_sign(&key, &other, &[]);
    let out = uac.invite(udp(&node), &[("Identity", &signed)]).await;
    assert_eq!(out.status, Some(436), "host not allowed");
    assert_eq!(hits.load(Ordering::Relaxed), 1);
    assert_eq!(invites(&callee), 2);
    node.shutdown().await;
}
