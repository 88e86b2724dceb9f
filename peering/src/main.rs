//! The `peering` binary: parses the command line, sets up logging and runs
//! the library.

use std::future::Future;
use std::process::ExitCode;

use clap::Parser;
use peering::cli::{Cli, Command, EXIT_CONFIG, EXIT_RUNTIME, load_config};
use peering::config::Config;
use peering::env::ProcessEnv;
use tracing_subscriber::EnvFilter;

// A proxy allocates and frees small buffers for every message from several
// threads; glibc's per-thread arenas grow and shrink their heaps with an
// mprotect system call each time (about four per relayed call), and its
// malloc/free were a sixth of the node's instructions. mimalloc does
// neither (its version 2: see the workspace Cargo.toml).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn init_tracing(config: &Config) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&config.log.level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if config.log.format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
}

/// Runs `work` on a multi-threaded runtime and turns its outcome into an
/// exit code, printing the error chain once.
fn run(work: impl Future<Output = anyhow::Result<()>>) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("peering: cannot start the runtime: {e}");
            return ExitCode::from(EXIT_RUNTIME);
        }
    };
    match runtime.block_on(work) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("peering: {e:#}");
            ExitCode::from(EXIT_RUNTIME)
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let env = ProcessEnv;
    match cli.command {
        Command::CheckConfig { file } => match Config::load(&file) {
            Ok(_) => {
                println!("{}: ok", file.display());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("peering: {e}");
                ExitCode::from(EXIT_CONFIG)
            }
        },
        Command::Node(arg) => {
            let config = match load_config(arg.config, &env) {
                Ok(c) => c,
                Err(code) => return code,
            };
            init_tracing(&config);
            run(peering::node::run(config))
        }
        Command::Migrate(arg) => {
            let config = match load_config(arg.config, &env) {
                Ok(c) => c,
                Err(code) => return code,
            };
            init_tracing(&config);
            run(async move { peering::commands::migrate(&config, &env).await })
        }
        Command::Federation { config, action } => {
            let config = match load_config(config.config, &env) {
                Ok(c) => c,
                Err(code) => return code,
            };
            init_tracing(&config);
            run(async move { peering::commands::federation_command(&config, &env, action).await })
        }
        Command::Enum { config, action } => {
            let config = match load_config(config.config, &env) {
                Ok(c) => c,
                Err(code) => return code,
            };
            init_tracing(&config);
            run(async move { peering::commands::enum_command(&config, &env, action).await })
        }
    }
}
