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
    /// Inspect or replay a consumer group's dead-letter queue (needs `amqp.url`).
    DeadLetters {
        #[command(subcommand)]
        action: DeadLetterAction,
    },
}

#[derive(Subcommand)]
enum DeadLetterAction {
    /// Print the messages waiting in the group's dead-letter queue, with why they failed (JSON).
    List {
        /// Consumer group (its dead-letter queue is `voltbus.<group>.dlq`).
        #[arg(long)]
        group: String,
        /// At most this many messages.
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
    /// Send dead letters back to the queue they came from: one by message id, or all.
    Replay {
        /// Consumer group.
        #[arg(long)]
        group: String,
        /// Only the message with this id.
        #[arg(long)]
        id: Option<String>,
    },
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
        Command::DeadLetters { action } => dead_letters(action, &settings).await,
        Command::Serve => {
            let running = voltbus::start(settings).await?;
            tracing::info!(addr = %running.addr, "voltbus is serving; GET /health to see its engines");
            shutdown_signal().await.context("waiting for a shutdown signal")?;
            tracing::info!("shutting down: finishing work in flight");
            running.stop().await
        }
    }
}

async fn dead_letters(action: DeadLetterAction, settings: &Settings) -> anyhow::Result<()> {
    let url = settings
        .amqp
        .url
        .as_deref()
        .context("dead-letter queues live in RabbitMQ: set amqp.url (VOLTBUS__AMQP__URL)")?;
    let amqp = bus::amqp::AmqpConnection::connect(url, "voltbus-cli").await?;
    match action {
        DeadLetterAction::List { group, limit } => {
            let letters =
                bus::amqp::list_dead_letters(&amqp, &schemas::routing::dead_letter_queue(&group), limit).await?;
            println!("{}", serde_json::to_string_pretty(&letters)?);
        }
        DeadLetterAction::Replay { group, id } => {
            let replayed =
                bus::amqp::replay_dead_letters(&amqp, &schemas::routing::dead_letter_queue(&group), id.as_deref())
                    .await?;
            println!("replayed {replayed} message(s) from {}", schemas::routing::dead_letter_queue(&group));
        }
    }
    amqp.close().await;
    Ok(())
}

/// Ctrl-C, or SIGTERM from a process manager.
async fn shutdown_signal() -> std::io::Result<()> {
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        result = tokio::signal::ctrl_c() => result,
        _ = terminate.recv() => Ok(()),
    }
}
