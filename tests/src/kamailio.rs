//! Kamailio (Debian's package) as an SSP edge proxy in front of and behind
//! the node: it record-routes, relays statefully with `tm`, and follows
//! loose routes for in-dialog requests, as a member's edge proxy would.

use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::pki::Leaf;
use crate::tools::require;

/// TLS material for a Kamailio with a TLS listener / TLS client profile.
#[derive(Debug, Clone)]
pub struct KamailioTls {
    /// Kamailio's own certificate and key (presented as server and client).
    pub leaf: Leaf,
    /// The CA file used to verify the other side.
    pub ca: PathBuf,
}

/// How to start one edge proxy.
#[derive(Debug, Clone)]
pub struct EdgeProxy {
    /// UDP and TCP port on 127.0.0.1.
    pub port: u16,
    /// Optional TLS port and material.
    pub tls: Option<(u16, KamailioTls)>,
    /// Where initial requests go: a SIP URI for `$du`, e.g.
    /// `sip:127.0.0.1:5062;transport=tls`.
    pub next_hop: String,
}

/// A running Kamailio; killed on drop.
pub struct Kamailio {
    child: Child,
    _dir: tempfile::TempDir,
    /// Its UDP/TCP address.
    pub addr: SocketAddr,
    log: PathBuf,
}

fn module_dir() -> Option<&'static str> {
    [
        "/usr/lib/x86_64-linux-gnu/kamailio/modules",
        "/usr/lib/aarch64-linux-gnu/kamailio/modules",
        "/usr/lib/kamailio/modules",
    ]
    .into_iter()
    .find(|d| Path::new(d).join("tm.so").is_file())
}

impl EdgeProxy {
    /// The configuration text.
    pub fn config(&self, tls_cfg: Option<&Path>) -> String {
        let mut cfg = String::from("#!KAMAILIO\n");
        cfg.push_str(
            "debug=2\nlog_stderror=yes\nchildren=2\ntcp_children=2\nauto_aliases=no\ndns=no\nrev_dns=no\n",
        );
        cfg.push_str(&format!(
            "listen=udp:127.0.0.1:{p}\nlisten=tcp:127.0.0.1:{p}\n",
            p = self.port
        ));
        if let Some(dir) = module_dir() {
            cfg.push_str(&format!("mpath=\"{dir}\"\n"));
        }
        if let (Some((tls_port, _)), Some(_)) = (&self.tls, tls_cfg) {
            cfg.push_str(&format!(
                "enable_tls=yes\nlisten=tls:127.0.0.1:{tls_port}\n"
            ));
        }
        for module in [
            "tm", "sl", "rr", "maxfwd", "textops", "siputils", "xlog", "pv",
        ] {
            cfg.push_str(&format!("loadmodule \"{module}.so\"\n"));
        }
        if let Some(path) = tls_cfg {
            cfg.push_str("loadmodule \"tls.so\"\n");
            cfg.push_str(&format!(
                "modparam(\"tls\", \"config\", \"{}\")\n",
                path.display()
            ));
        }
        cfg.push_str("modparam(\"rr\", \"enable_double_rr\", 1)\n");
        cfg.push_str(&format!(
            r#"
request_route {{
    xlog("L_INFO", "REQ $rm $ru from $si:$sp/$pr\n");
    if (!mf_process_maxfwd_header("10")) {{
        sl_send_reply("483", "Too Many Hops");
        exit;
    }}
    if (has_totag()) {{
        if (loose_route()) {{
            t_relay();
            exit;
        }}
        if (is_method("ACK")) {{
            if (t_check_trans()) {{
                t_relay();
            }}
            exit;
        }}
        sl_send_reply("404", "Not Here");
        exit;
    }}
    if (is_method("CANCEL")) {{
        if (t_check_trans()) {{
            t_relay();
        }}
        exit;
    }}
    t_check_trans();
    record_route();
    $du = "{next}";
    if (!t_relay()) {{
        sl_reply_error();
    }}
    exit;
}}
onreply_route {{
    xlog("L_INFO", "REPLY $rs $rr from $si:$sp/$pr\n");
}}
"#,
            next = self.next_hop
        ));
        cfg
    }

    /// Starts Kamailio and waits until it listens.
    pub fn start(&self) -> Kamailio {
        let binary = require("kamailio", "kamailio kamailio-tls-modules");
        let dir = tempfile::tempdir().expect("tempdir");
        let tls_cfg = self.tls.as_ref().map(|(_, tls)| {
            let path = dir.path().join("tls.cfg");
            let text = format!(
                "[server:default]\nmethod = TLSv1.2+\nverify_certificate = no\nrequire_certificate = no\nprivate_key = {key}\ncertificate = {cert}\nca_list = {ca}\n\n\
                 [client:default]\nmethod = TLSv1.2+\nverify_certificate = yes\nrequire_certificate = yes\nprivate_key = {key}\ncertificate = {cert}\nca_list = {ca}\n",
                key = tls.leaf.key.display(),
                cert = tls.leaf.cert.display(),
                ca = tls.ca.display()
            );
            std::fs::write(&path, text).expect("write tls.cfg");
            path
        });
        let cfg_path = dir.path().join("kamailio.cfg");
        std::fs::write(&cfg_path, self.config(tls_cfg.as_deref())).expect("write kamailio.cfg");
        let log = dir.path().join("kamailio.log");
        let log_file = std::fs::File::create(&log).expect("log file");
        let child = Command::new(binary)
            .arg("-f")
            .arg(&cfg_path)
            .args(["-DD", "-E", "-m", "64", "-M", "8"])
            .process_group(0)
            .arg("-P")
            .arg(dir.path().join("kamailio.pid"))
            .arg("-Y")
            .arg(dir.path())
            .arg("-w")
            .arg(dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log_file)
            .spawn()
            .expect("start kamailio");
        let mut kamailio = Kamailio {
            child,
            _dir: dir,
            addr: crate::local(self.port),
            log,
        };
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if std::net::TcpStream::connect(kamailio.addr).is_ok() {
                break;
            }
            if let Ok(Some(status)) = kamailio.child.try_wait() {
                panic!("kamailio exited with {status}:\n{}", kamailio.log());
            }
            assert!(
                Instant::now() < deadline,
                "kamailio did not start listening:\n{}",
                kamailio.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        // Let all children bind before traffic arrives.
        std::thread::sleep(Duration::from_millis(300));
        kamailio
    }
}

impl Kamailio {
    /// What Kamailio logged so far (for assertion messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Kamailio {
    fn drop(&mut self) {
        // The whole process group: killing only the main process would
        // orphan its worker processes.
        crate::stop_process_group(&mut self.child);
    }
}
