//! Starting and stopping the platform.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use bus::amqp::{AmqpConsumer, ConsumerOptions};
use bus::embedded::EmbeddedConsumer;
use bus::outbox::Relay;
use migrations::{Migrator, MigratorTrait};
use publishers::{CommandBus, Edge, PartnerApi};
use schemas::TenantId;
use schemas::integrations::{CreateApiKey, KeyScope, RateLimits};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use uuid::Uuid;

use crate::Settings;
use crate::engines::{Engines, connect_database};

/// Outbox rows published per relay pass.
const RELAY_BATCH: usize = 500;
/// How often an idle relay looks for new outbox rows.
const RELAY_IDLE: Duration = Duration::from_millis(50);
/// How often the partner API's housekeeping runs.
const TIDY_EVERY: Duration = Duration::from_secs(300);

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

/// Connects the engines, migrates, and starts the consumer groups, the outbox relay and the HTTP
/// edge. Stopping goes in the reverse order of dependence: the edge finishes its requests (their
/// commands still answered) and flushes its request log, then consumers and relay finish theirs,
/// then the engines close.
pub async fn start(settings: Settings) -> anyhow::Result<Running> {
    let engines = Arc::new(Engines::connect(&settings, "voltbus").await?);
    let commands = match &engines.amqp {
        Some(amqp) => CommandBus::amqp(Arc::clone(amqp)).await.context("opening the command channel")?,
        None => CommandBus::Embedded(engines.embedded.clone()),
    };
    let database = engines.database.connection().clone();
    // The edge reads, and writes only its idempotency records, which need no fsync of their own.
    let edge_database = engines.database.relaxed().await.context("connecting the edge's database pool")?;
    let (api, mut api_tasks) = PartnerApi::new(settings.partner.to_edge(), edge_database, commands);
    if !api_tasks.ready(Duration::from_secs(10)).await {
        tracing::warn!("not yet following key changes; other edges' key changes show after the cache expires");
    }
    let edge = Edge::bind(settings.http.bind, engines.clone(), Arc::clone(&api))
        .await
        .with_context(|| format!("binding http.bind {}", settings.http.bind))?;
    let addr = edge.local_addr()?;
    let reports = publishers::HealthCheck::check(engines.as_ref()).await;
    for report in &reports {
        tracing::info!(engine = report.engine, kind = report.kind, state = ?report.state, detail = %report.detail, "engine");
    }
    let (stop, stopped) = watch::channel(false);
    let (drain, drained) = watch::channel(false);
    let when = |signal: &watch::Receiver<bool>| {
        let mut signal = signal.clone();
        async move {
            // An error means the sender is gone, which is a stop too.
            let _ = signal.wait_for(|stop| *stop).await;
        }
    };

    let mut background = Vec::new();
    // The integrations groups answer the edge's key commands and write its request log.
    let handler = Arc::new(consumers::integrations::Integrations);
    for topology in [consumers::integrations::topology(), consumers::integrations::request_log_topology()] {
        let handler = handler.clone();
        let database = Some(database.clone());
        background.push(match (&settings.amqp.url, &engines.amqp) {
            (Some(url), Some(amqp)) => {
                // Declared before the edge takes a request, so no command finds its queue missing.
                let channel = amqp.channel().await.context("opening a channel to declare queues")?;
                topology.declare(&channel).await.with_context(|| format!("declaring the {} queues", topology.group))?;
                let _ = channel.close(200, "declared".into()).await;
                let consumer = AmqpConsumer::new(url, topology, ConsumerOptions::default(), handler, database);
                tokio::spawn(consumer.run(when(&drained)))
            }
            _ => {
                let embedded = engines.embedded.clone();
                let consumer = EmbeddedConsumer::new(embedded, topology, ConsumerOptions::default(), handler, database);
                tokio::spawn(consumer.run(when(&drained)))
            }
        });
    }
    // The outbox relay publishes what handlers committed, to the brokers or the embedded transport.
    let relay = Relay::new(
        engines.database.connection().clone(),
        engines.amqp.clone(),
        engines.nats.clone(),
        Some(engines.embedded.clone()),
        RELAY_BATCH,
    );
    background.push(tokio::spawn(relay.run(RELAY_IDLE, when(&drained))));
    background.push(tokio::spawn(tidy(Arc::clone(&api), when(&stopped))));
    drop(api);

    let grace = Duration::from_secs(settings.http.shutdown_grace_seconds);
    let until_stopped = when(&stopped);
    let task = tokio::spawn(async move {
        edge.run(until_stopped, grace).await;
        // The edge and the purge task held the API; once both are gone its request log flushes.
        api_tasks.finish().await;
        let _ = drain.send(true);
        for task in background {
            if task.await.is_err() {
                tracing::warn!("a background task ended abnormally");
            }
        }
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

/// The partner API's housekeeping now and then, until `stop`.
async fn tidy(api: Arc<PartnerApi>, stop: impl std::future::Future<Output = ()>) {
    tokio::pin!(stop);
    loop {
        match api.tidy().await {
            Ok(0) => {}
            Ok(purged) => tracing::info!(purged, "expired idempotency records deleted"),
            Err(error) => tracing::warn!(%error, "could not purge idempotency records"),
        }
        tokio::select! {
            () = tokio::time::sleep(TIDY_EVERY) => {}
            () = &mut stop => return,
        }
    }
}

/// Creates an organisation admin key outside the API (the operator's first key) and returns it
/// with its secret, which is shown this once.
pub async fn create_admin_key(settings: &Settings, tenant: &str, name: &str) -> anyhow::Result<(String, Uuid)> {
    let tenant = TenantId::new(tenant).map_err(|e| anyhow::anyhow!("--tenant: {e}"))?;
    anyhow::ensure!(tenant.as_str() != publishers::ANONYMOUS_TENANT, "--tenant `{tenant}` is reserved");
    let database = connect_database(settings).await?;
    Migrator::up(database.connection(), None).await.context("applying database migrations")?;
    let secret = publishers::api_keys::generate(&settings.partner.key_prefix, &ring::rand::SystemRandom::new())?;
    let create = CreateApiKey {
        key_id: Uuid::now_v7(),
        name: name.to_owned(),
        display_prefix: secret.display_prefix.clone(),
        key_hash: secret.hash.to_hex(),
        permissions: publishers::permissions::ALL.to_vec(),
        scope: KeyScope::Global { allowed_subaccount_ids: Vec::new() },
        rate_limits: RateLimits { per_minute: 600, per_hour: 10_000, per_day: 100_000 },
        expires_at: None,
        admin: true,
    };
    let key_id = create.key_id;
    consumers::integrations::bootstrap_key(database.connection(), &tenant, create)
        .await
        .context("storing the admin key")?;
    database.close().await;
    Ok((secret.key.0, key_id))
}
