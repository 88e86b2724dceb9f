//! The command line: `peering node`, `peering check-config`, `--version`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::Config;
use crate::env::{ENV_CONFIG, Strings};

/// Exit code for a runtime failure.
pub const EXIT_RUNTIME: u8 = 1;
/// Exit code for bad usage (sysexits EX_USAGE).
pub const EXIT_USAGE: u8 = 64;
/// Exit code for a bad configuration (sysexits EX_CONFIG).
pub const EXIT_CONFIG: u8 = 78;

/// The interconnect node for SIP peering federations.
#[derive(Debug, Parser)]
#[command(name = "peering", version, about, long_about = None)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run an interconnect node. With no configuration it serves SIP on
    /// 127.0.0.1:5060 (UDP and TCP) and the admin API on 127.0.0.1:8060.
    Node {
        /// TOML configuration file (also PEERING_CONFIG).
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    /// Check a configuration file and exit: 0 when valid, 78 when not.
    CheckConfig {
        /// The TOML file.
        file: PathBuf,
    },
}

/// Loads the configuration a `node` command names, or the defaults.
pub fn load_config(path: Option<PathBuf>, env: &dyn Strings) -> Result<Config, ExitCode> {
    let path = path.or_else(|| env.get(ENV_CONFIG).map(PathBuf::from));
    match path {
        None => Ok(Config::default()),
        Some(path) => Config::load(&path).map_err(|e| {
            eprintln!("peering: configuration error: {e}");
            ExitCode::from(EXIT_CONFIG)
        }),
    }
}
