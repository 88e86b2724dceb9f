//! The command line: `peering node`, `check-config`, `migrate`, `enum`,
//! `--version`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

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

/// The configuration file option shared by subcommands.
#[derive(Debug, Clone, Args)]
pub struct ConfigArg {
    /// TOML configuration file (also PEERING_CONFIG); without one the
    /// defaults apply. Accepted before or after a subcommand.
    #[arg(long, short, global = true)]
    pub config: Option<PathBuf>,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run an interconnect node. With no configuration it serves SIP on
    /// 127.0.0.1:5060 (UDP and TCP) and the admin API on 127.0.0.1:8060,
    /// with the embedded store in ./peering-data.
    Node(ConfigArg),
    /// Check a configuration file and exit: 0 when valid, 78 when not.
    CheckConfig {
        /// The TOML file.
        file: PathBuf,
    },
    /// Apply the schema migrations in migrations/ to the configured store.
    Migrate(ConfigArg),
    /// Manage the federation registry from a declarative file.
    Federation {
        /// The configuration (for the store).
        #[command(flatten)]
        config: ConfigArg,
        /// What to do.
        #[command(subcommand)]
        action: FederationAction,
    },
    /// Provision the federation's ENUM zone in the store.
    Enum {
        /// The configuration (for the store and `[enum_zone]`).
        #[command(flatten)]
        config: ConfigArg,
        /// What to do.
        #[command(subcommand)]
        action: EnumAction,
    },
}

/// `peering federation ...`.
#[derive(Debug, Subcommand)]
pub enum FederationAction {
    /// Reconcile the store with a federation file: create, update and
    /// remove members, domains, networks, ranges, agreements and limits so
    /// that the store says what the file says, in one transaction.
    Apply {
        /// Print the changes without writing them.
        #[arg(long)]
        dry_run: bool,
        /// The federation file (TOML).
        file: PathBuf,
    },
    /// Print what the store holds, as changes from an empty federation.
    Show,
}

/// `peering enum ...`.
#[derive(Debug, Subcommand)]
pub enum EnumAction {
    /// List the provisioned NAPTR records.
    List,
    /// Add one NAPTR record for a number or a number range.
    Add {
        /// The number (`+4721345678`) or, with `--range`, the prefix.
        #[arg(long)]
        number: String,
        /// Every number that starts with `--number`.
        #[arg(long)]
        range: bool,
        /// The member that owns the number.
        #[arg(long)]
        member: String,
        /// Shorthand for a terminal `E2U+sip` record that maps the number to
        /// this SIP URI (`!^.*$!URI!`).
        #[arg(long, conflicts_with = "regexp")]
        uri: Option<String>,
        /// NAPTR ORDER.
        #[arg(long, default_value_t = 10)]
        order: u16,
        /// NAPTR PREFERENCE.
        #[arg(long, default_value_t = 10)]
        preference: u16,
        /// NAPTR FLAGS.
        #[arg(long, default_value = "u")]
        flags: String,
        /// NAPTR SERVICES.
        #[arg(long, default_value = "E2U+sip")]
        services: String,
        /// NAPTR REGEXP (when `--uri` is not given).
        #[arg(long)]
        regexp: Option<String>,
        /// NAPTR REPLACEMENT.
        #[arg(long, default_value = ".")]
        replacement: String,
        /// TTL in seconds.
        #[arg(long, default_value_t = 300)]
        ttl: u32,
    },
    /// Remove a record by the id `list` shows.
    Remove {
        /// The record id.
        id: i64,
    },
    /// Print the zone as a standard master file.
    Export,
}

/// Loads the configuration a command names, or the defaults.
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
