//! Test harness: a PostgreSQL database for tests.
//!
//! [`test_postgres`] returns `PEERING_TEST_DATABASE_URL` when it is set;
//! otherwise it starts an ephemeral cluster (`initdb` + `pg_ctl`, from
//! `PATH` or `/usr/lib/postgresql/*/bin`) in a temporary directory on a free
//! loopback port, as the `postgres` user when running as root (initdb
//! refuses root), and stops it when the returned value is dropped.

use std::net::TcpListener;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::{Error, Result};

/// Environment variable naming an existing test database.
pub const ENV_TEST_DATABASE_URL: &str = "PEERING_TEST_DATABASE_URL";

/// A test database: an external URL or an ephemeral cluster, stopped on
/// drop.
#[derive(Debug)]
pub struct TestPostgres {
    url: String,
    cluster: Option<Cluster>,
}

#[derive(Debug)]
struct Cluster {
    bin: PathBuf,
    dir: tempfile::TempDir,
    as_postgres: bool,
    port: u16,
}

impl TestPostgres {
    /// The database URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Creates a fresh, empty database `name` on the same server and
    /// returns its URL, so tests do not share state.
    pub async fn fresh_database(&self, name: &str) -> Result<String> {
        let (client, connection) =
            tokio_postgres::connect(&self.url, tokio_postgres::NoTls).await?;
        let driver = tokio::spawn(connection);
        client
            .batch_execute(&format!("DROP DATABASE IF EXISTS \"{name}\""))
            .await?;
        client
            .batch_execute(&format!("CREATE DATABASE \"{name}\""))
            .await?;
        drop(client);
        let _ = driver.await;
        let mut config: tokio_postgres::Config = self.url.parse()?;
        config.dbname(name);
        Ok(to_url(&config, name))
    }

    /// True when this value started (and will stop) its own cluster.
    pub fn is_ephemeral(&self) -> bool {
        self.cluster.is_some()
    }

    /// Stops the ephemeral cluster (fast shutdown: connections are cut), to
    /// test behaviour while the database is down. No-op for an external URL.
    pub fn stop(&self) -> Result<()> {
        let Some(c) = &self.cluster else {
            return Ok(());
        };
        let mut stop = c.command("pg_ctl");
        stop.arg("-D")
            .arg(c.dir.path().join("data"))
            .args(["-m", "fast", "-w", "stop"]);
        run("pg_ctl stop", stop)
    }

    /// Starts the ephemeral cluster again on the same port, after
    /// [`Self::stop`]. No-op for an external URL.
    pub fn start(&self) -> Result<()> {
        match &self.cluster {
            Some(c) => c.start(c.port),
            None => Ok(()),
        }
    }
}

fn to_url(config: &tokio_postgres::Config, db: &str) -> String {
    let host = config
        .get_hosts()
        .first()
        .map(|h| match h {
            tokio_postgres::config::Host::Tcp(s) => s.clone(),
            tokio_postgres::config::Host::Unix(p) => p.display().to_string(),
        })
        .unwrap_or_else(|| "127.0.0.1".to_owned());
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let user = config.get_user().unwrap_or("postgres");
    match config.get_password() {
        Some(pw) => format!(
            "postgres://{user}:{}@{host}:{port}/{db}",
            String::from_utf8_lossy(pw)
        ),
        None => format!("postgres://{user}@{host}:{port}/{db}"),
    }
}

impl Drop for TestPostgres {
    fn drop(&mut self) {
        if let Some(c) = &self.cluster {
            let data = c.dir.path().join("data");
            let _ = c
                .command("pg_ctl")
                .arg("-D")
                .arg(&data)
                .args(["-m", "immediate", "-w", "stop"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}

impl Cluster {
    fn start(&self, port: u16) -> Result<()> {
        let mut start = self.command("pg_ctl");
        start
            .arg("-D")
            .arg(self.dir.path().join("data"))
            .arg("-l")
            .arg(self.dir.path().join("log"))
            .arg("-o")
            .arg(server_options(self.dir.path(), port))
            .args(["-w", "-t", "30", "start"]);
        run("pg_ctl start", start)
    }

    fn command(&self, tool: &str) -> Command {
        let exe = self.bin.join(tool);
        if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(exe);
            c
        } else {
            Command::new(exe)
        }
    }
}

fn find_bin() -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .find(|p| p.join("initdb").is_file() && p.join("pg_ctl").is_file())
    });
    on_path.or_else(|| {
        let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
            .ok()?
            .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
            .filter(|p| p.join("initdb").is_file())
            .collect();
        versions.sort();
        versions.pop()
    })
}

fn run(step: &'static str, mut cmd: Command) -> Result<()> {
    let status = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map_err(|source| Error::HarnessIo { step, source })?;
    if status.success() {
        Ok(())
    } else {
        Err(Error::HarnessFailed {
            step,
            code: status.code(),
        })
    }
}

fn free_port() -> Result<u16> {
    let l = TcpListener::bind("127.0.0.1:0").map_err(|source| Error::HarnessIo {
        step: "find a free port",
        source,
    })?;
    l.local_addr()
        .map(|a| a.port())
        .map_err(|source| Error::HarnessIo {
            step: "find a free port",
            source,
        })
}

fn is_root() -> bool {
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

fn io(step: &'static str) -> impl FnOnce(std::io::Error) -> Error {
    move |source| Error::HarnessIo { step, source }
}

/// Returns a database for tests: `PEERING_TEST_DATABASE_URL` if set, else a
/// new ephemeral cluster (a few seconds to start). Blocking.
pub fn test_postgres() -> Result<TestPostgres> {
    if let Ok(url) = std::env::var(ENV_TEST_DATABASE_URL)
        && !url.is_empty()
    {
        return Ok(TestPostgres { url, cluster: None });
    }
    let bin = find_bin().ok_or_else(|| Error::HarnessIo {
        step: "find initdb",
        source: std::io::Error::from(std::io::ErrorKind::NotFound),
    })?;
    let dir = tempfile::Builder::new()
        .prefix("peering-pg-")
        .tempdir()
        .map_err(io("create a temporary directory"))?;
    let as_postgres = is_root();
    if as_postgres {
        let mut chown = Command::new("chown");
        chown.arg("postgres:").arg(dir.path());
        run("chown the cluster directory to postgres", chown)?;
    }
    let mut cluster = Cluster {
        bin,
        dir,
        as_postgres,
        port: 0,
    };
    let data = cluster.dir.path().join("data");
    let mut initdb = cluster.command("initdb");
    initdb
        .arg("-D")
        .arg(&data)
        .args(["-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-sync"]);
    run("initdb", initdb)?;
    // A free port can be taken between the probe and the start; retry.
    let mut last = Error::HarnessFailed {
        step: "pg_ctl start",
        code: None,
    };
    for _ in 0..3 {
        let port = free_port()?;
        match cluster.start(port) {
            Ok(()) => {
                cluster.port = port;
                return Ok(TestPostgres {
                    url: format!("postgres://postgres@127.0.0.1:{port}/postgres"),
                    cluster: Some(cluster),
                });
            }
            Err(e) => last = e,
        }
    }
    Err(last)
}

fn server_options(dir: &Path, port: u16) -> String {
    format!(
        "-p {port} -c listen_addresses=127.0.0.1 -k {} -c fsync=off -c synchronous_commit=off -c full_page_writes=off",
        dir.display()
    )
}
