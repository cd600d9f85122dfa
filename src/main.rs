//! `voltbus`: the command line. Everything it runs lives in the library (`src/lib.rs`).

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use voltbus::{Settings, telemetry};

/// Integration platform for electric-vehicle and shared-mobility fleets, built as a message bus.
#[derive(Parser)]
#[command(name = "voltbus", version, about)]
struct Cli {
    /// TOML configuration file (layered over the defaults, under `VOLTBUS__…` variables).
    #[arg(long, global = true, env = "VOLTBUS_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the platform: migrations, transports, HTTP edge. Embedded engines unless URLs are configured.
    Serve,
    /// Apply pending database migrations and exit.
    Migrate,
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let settings = match Settings::load(cli.config.as_deref()) {
        Ok(settings) => settings,
        Err(error) => {
            eprintln!("voltbus: {error}");
            return std::process::ExitCode::from(2);
        }
    };
    telemetry::init(&settings.log);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("voltbus: cannot start the async runtime: {error}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli.command, settings)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!("{error:#}");
            eprintln!("voltbus: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(command: Command, settings: Settings) -> anyhow::Result<()> {
    match command {
        Command::Migrate => voltbus::migrate(&settings).await,
        Command::Serve => {
            let running = voltbus::start(settings).await?;
            tracing::info!(addr = %running.addr, "voltbus is serving; GET /health to see its engines");
            shutdown_signal()
                .await
                .context("waiting for a shutdown signal")?;
            tracing::info!("shutting down: finishing work in flight");
            running.stop().await
        }
    }
}

/// Ctrl-C, or SIGTERM from a process manager.
async fn shutdown_signal() -> std::io::Result<()> {
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        result = tokio::signal::ctrl_c() => result,
        _ = terminate.recv() => Ok(()),
    }
}
