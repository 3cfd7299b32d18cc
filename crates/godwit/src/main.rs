//! The `godwit` binary: `godwit --config proxy.toml` runs the proxy and its admin API;
//! `godwit migrations …` is the operator's CLI over a running proxy's admin API ([`cli`]).
//!
//! Exit codes of the proxy: 0 after a clean shutdown (SIGINT/SIGTERM), 64 for a bad
//! configuration, 1 when starting fails (a port taken, ...). The CLI's are in [`cli`].

mod cli;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use godwit_app::{Config, Godwit};

/// Zero-downtime Redis migrations: a Redis proxy with a migration control plane.
#[derive(Debug, Parser)]
#[command(name = "godwit", version, about)]
struct Cli {
    /// Configuration file.
    #[arg(short, long, default_value = "proxy.toml", env = "GODWIT_CONFIG")]
    config: PathBuf,
    /// Log JSON lines instead of text.
    #[arg(long)]
    log_json: bool,
    /// Check the configuration and exit.
    #[arg(long)]
    check: bool,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Manage migrations through a running godwit's admin API (--admin, --token).
    Migrations(cli::MigrationsCmd),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(Command::Migrations(cmd)) = cli.command {
        return cli::run(cmd);
    }
    godwit_telemetry::init_logging(cli.log_json);
    let config = match Config::load(&cli.config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("godwit: {}: {e}", cli.config.display());
            return ExitCode::from(64);
        }
    };
    if cli.check {
        println!("{}: ok", cli.config.display());
        return ExitCode::SUCCESS;
    }
    let runtime = match config.runtime.worker_threads {
        1 => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build(),
        0 => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build(),
        n => tokio::runtime::Builder::new_multi_thread()
            .worker_threads(n)
            .enable_all()
            .build(),
    };
    let runtime = match runtime {
        Ok(r) => r,
        Err(e) => {
            eprintln!("godwit: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        let godwit = match Godwit::start(config).await {
            Ok(g) => g,
            Err(e) => {
                eprintln!("godwit: {e:#}");
                return ExitCode::FAILURE;
            }
        };
        wait_for_signal().await;
        tracing::info!("shutting down");
        godwit.shutdown().await;
        ExitCode::SUCCESS
    })
}

async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
