//! Starting and stopping the platform.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use migrations::{Migrator, MigratorTrait};
use publishers::Edge;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::Settings;
use crate::engines::{Engines, connect_database};

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
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

impl Running {
    /// Stops taking requests, lets those in flight finish, then closes brokers and database.
    pub async fn stop(self) -> anyhow::Result<()> {
        // The task may already be gone if the edge failed; joining reports that.
        let _ = self.stop.send(());
        self.task.await.context("voltbus task panicked")
    }
}

/// Connects the engines, migrates, and starts the HTTP edge.
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
    let (stop, stopped) = oneshot::channel::<()>();
    let grace = Duration::from_secs(settings.http.shutdown_grace_seconds);
    let task = tokio::spawn(async move {
        edge.run(
            async {
                let _ = stopped.await;
            },
            grace,
        )
        .await;
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
