//! The engines a running voltbus uses: the consumers' database, and for each broker role either
//! the real broker or the embedded in-process transport.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use anyhow::Context;
use bus::EngineReport;
use bus::amqp::AmqpConnection;
use bus::embedded::EmbeddedBus;
use bus::nats::NatsConnection;
use consumers::Database;
use migrations::{Migrator, MigratorTrait};
use publishers::HealthCheck;

use crate::Settings;

/// Database and transports, connected and with their schema and topology in place.
pub struct Engines {
    /// The consumers' database, migrated.
    pub database: Database,
    /// RabbitMQ, when `amqp.url` is set.
    pub amqp: Option<Arc<AmqpConnection>>,
    /// NATS, when `nats.url` is set.
    pub nats: Option<NatsConnection>,
    /// The embedded transport (queues in the database) standing in for any broker not configured.
    pub embedded: EmbeddedBus,
}

impl Engines {
    /// Publishes to the configured brokers, and to the embedded transport in place of the others.
    pub fn publisher(&self) -> bus::outbox::Publisher {
        bus::outbox::Publisher {
            amqp: self.amqp.clone(),
            nats: self.nats.clone(),
            embedded: Some(self.embedded.clone()),
        }
    }

    /// Connects every configured engine, applies migrations, declares exchanges and streams.
    pub async fn connect(settings: &Settings, service: &str) -> anyhow::Result<Self> {
        let database = connect_database(settings).await?;
        Migrator::up(database.connection(), None).await.context("applying database migrations")?;

        let amqp = match &settings.amqp.url {
            Some(url) => {
                let amqp = AmqpConnection::connect(url, service).await?;
                amqp.declare_exchanges().await?;
                Some(Arc::new(amqp))
            }
            None => None,
        };
        let nats = match &settings.nats.url {
            Some(url) => {
                let nats = connect_nats(settings, url, service).await?;
                nats.ensure_replicated_streams(settings.nats.retention(), Some(settings.nats.replicas)).await?;
                Some(nats)
            }
            None => None,
        };
        let embedded = EmbeddedBus::new(database.connection().clone());
        Ok(Self { database, amqp, nats, embedded })
    }

    /// Closes brokers first (their in-flight confirms resolve), then the database.
    pub async fn close(self) {
        if let Some(amqp) = &self.amqp {
            amqp.close().await;
        }
        if let Some(nats) = &self.nats {
            nats.close().await;
        }
        self.database.close().await;
    }
}

impl HealthCheck for Engines {
    fn check(&self) -> Pin<Box<dyn Future<Output = Vec<EngineReport>> + Send + '_>> {
        Box::pin(async move {
            let amqp = match &self.amqp {
                Some(amqp) => amqp.report(),
                None => self.embedded.report("amqp").await,
            };
            let nats = match &self.nats {
                Some(nats) => nats.report(),
                None => self.embedded.report("nats").await,
            };
            vec![self.database.report().await, amqp, nats]
        })
    }

    fn metrics(&self) -> Pin<Box<dyn Future<Output = Option<String>> + Send + '_>> {
        Box::pin(async move {
            let handle = crate::telemetry::metrics()?;
            // A scrape must not hang on a database that is down: unknown is NaN, not the last value.
            let read = tokio::time::timeout(BACKLOG_READ_LIMIT, bus::outbox::backlog(self.database.connection()));
            match read.await {
                Ok(Ok(rows)) => bus::metrics::outbox_backlog(rows as f64),
                Ok(Err(error)) => {
                    tracing::warn!(%error, "cannot read the outbox backlog for /metrics");
                    bus::metrics::outbox_backlog(f64::NAN);
                }
                Err(_) => bus::metrics::outbox_backlog(f64::NAN),
            }
            Some(handle.render())
        })
    }
}

/// Longest a scrape waits for the outbox backlog.
const BACKLOG_READ_LIMIT: std::time::Duration = std::time::Duration::from_secs(2);

/// Connects the database, creating the data directory the embedded file lives in.
pub(crate) async fn connect_database(settings: &Settings) -> anyhow::Result<Database> {
    if settings.database.url.is_none() {
        std::fs::create_dir_all(&settings.data_dir)
            .with_context(|| format!("creating data directory {}", settings.data_dir.display()))?;
    }
    Ok(Database::connect(&settings.database_url()).await?)
}

/// Connects to NATS at `url` as `service`: on a server in operator mode (`nats.operator_seed`
/// and `nats.account_seed` set), as a user of voltbus's account, which voltbus signs itself.
pub async fn connect_nats(settings: &Settings, url: &str, service: &str) -> anyhow::Result<NatsConnection> {
    let credentials = match settings.nats.accounts()? {
        Some(accounts) => {
            let user = accounts.user(service, &bus::nats::accounts::Permissions::All, None)?;
            Some(user.creds_file())
        }
        None => None,
    };
    Ok(NatsConnection::connect_with(url, service, credentials).await?)
}
