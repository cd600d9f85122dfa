//! Starting and stopping the platform.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use bus::outbox::Relay;
use migrations::{Migrator, MigratorTrait};
use publishers::Edge;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::Settings;
use crate::engines::{Engines, connect_database};

/// Outbox rows published per relay pass.
const RELAY_BATCH: usize = 500;
/// How often an idle relay looks for new outbox rows.
const RELAY_IDLE: Duration = Duration::from_millis(50);

/// Applies pending migrations and exits (`voltbus migrate`).
pub async fn migrate(settings: &Settings) -> anyhow::Result<()> {
    let database = connect_database(settings).await?;
    Migrator::up(database.connection(), None).await.context("applying database migrations")?;
    tracing::info!(kind = database.report().await.kind, "migrations applied");
    database.close().await;
    Ok(())
}

/// A running platform.
pub struct Running {
    /// Where the HTTP edge listens.
    pub addr: SocketAddr,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl Running {
    /// Stops taking requests, lets those in flight finish, then closes brokers and database.
    pub async fn stop(self) -> anyhow::Result<()> {
        // The task may already be gone if the edge failed; joining reports that.
        let _ = self.stop.send(true);
        self.task.await.context("voltbus task panicked")
    }
}

/// Connects the engines, migrates, and starts the outbox relay and the HTTP edge.
pub async fn start(settings: Settings) -> anyhow::Result<Running> {
    let engines = Arc::new(Engines::connect(&settings, "voltbus").await?);
    let edge = Edge::bind(settings.http.bind, engines.clone())
        .await
        .with_context(|| format!("binding http.bind {}", settings.http.bind))?;
    let addr = edge.local_addr()?;
    let reports = publishers::HealthCheck::check(engines.as_ref()).await;
    for report in &reports {
        tracing::info!(engine = report.engine, kind = report.kind, state = ?report.state, detail = %report.detail, "engine");
    }
    let (stop, stopped) = watch::channel(false);
    let until_stopped = move || {
        let mut stopped = stopped.clone();
        async move {
            // An error means the sender is gone, which is a stop too.
            let _ = stopped.wait_for(|stop| *stop).await;
        }
    };
    // The outbox relay publishes what handlers committed, to the brokers or the embedded transport.
    let relay = Relay::new(
        engines.database.connection().clone(),
        engines.amqp.clone(),
        engines.nats.clone(),
        Some(engines.embedded.clone()),
        RELAY_BATCH,
    );
    let relay = tokio::spawn(relay.run(RELAY_IDLE, until_stopped()));
    let grace = Duration::from_secs(settings.http.shutdown_grace_seconds);
    let task = tokio::spawn(async move {
        edge.run(until_stopped(), grace).await;
        // The relay finishes its pass (publishes confirmed and marked) before the engines close.
        if relay.await.is_err() {
            tracing::warn!("outbox relay task ended abnormally");
        }
        // The edge held the other reference; once it is done, the engines are ours to close.
        match Arc::try_unwrap(engines) {
            Ok(engines) => engines.close().await,
            Err(_) => {
                tracing::warn!("engines still referenced at shutdown; leaving connections to drop")
            }
        }
        tracing::info!("voltbus stopped");
    });
    Ok(Running { addr, stop, task })
}
