//! Dead letters of a consumer group on whichever transport holds them: listing with reasons, and
//! replay back to where they came from. `voltbus dead-letters` connects for one call
//! ([`list`], [`replay`]); the console reads through the connections the process already has
//! ([`Transports`]).

use anyhow::Context;
use bus::DeadLetter;
use bus::amqp::AmqpConnection;
use bus::embedded::EmbeddedBus;
use bus::nats::NatsConnection;
use schemas::routing;

use crate::Settings;

/// Which transport's dead letters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    /// RabbitMQ (`voltbus.<group>.dlq`); needs `amqp.url`.
    Amqp,
    /// JetStream (`voltbus-dlq.<group>` in `VOLTBUS_DLQ`); needs `nats.url`.
    Nats,
    /// The embedded transport's queue table in the database.
    Embedded,
}

impl Transport {
    /// RabbitMQ when it is configured, the embedded transport otherwise.
    pub fn default_for(settings: &Settings) -> Self {
        if settings.amqp.url.is_some() { Transport::Amqp } else { Transport::Embedded }
    }
}

/// The connections dead letters are read through; a transport without one cannot be read.
#[derive(Clone, Copy, Default)]
pub struct Transports<'a> {
    /// RabbitMQ.
    pub amqp: Option<&'a AmqpConnection>,
    /// NATS.
    pub nats: Option<&'a NatsConnection>,
    /// The embedded transport.
    pub embedded: Option<&'a EmbeddedBus>,
}

impl Transports<'_> {
    /// Up to `limit` dead letters of `group` on `transport`, left in place.
    pub async fn list(&self, transport: Transport, group: &str, limit: usize) -> anyhow::Result<Vec<DeadLetter>> {
        Ok(match transport {
            Transport::Amqp => {
                bus::amqp::list_dead_letters(
                    self.amqp.context("no RabbitMQ connection")?,
                    &routing::dead_letter_queue(group),
                    limit,
                )
                .await?
            }
            Transport::Nats => {
                bus::nats::list_dead_letters(self.nats.context("no NATS connection")?, group, limit).await?
            }
            Transport::Embedded => {
                let embedded = self.embedded.context("no embedded transport")?;
                bus::embedded::list_dead_letters(embedded, &routing::dead_letter_queue(group), limit).await?
            }
        })
    }

    /// Replays `group`'s dead letters on `transport` (one by message id, or all); how many.
    pub async fn replay(&self, transport: Transport, group: &str, message_id: Option<&str>) -> anyhow::Result<usize> {
        Ok(match transport {
            Transport::Amqp => {
                let amqp = self.amqp.context("no RabbitMQ connection")?;
                bus::amqp::replay_dead_letters(amqp, &routing::dead_letter_queue(group), message_id).await?
            }
            Transport::Nats => {
                bus::nats::replay_dead_letters(self.nats.context("no NATS connection")?, group, message_id).await?
            }
            Transport::Embedded => {
                let embedded = self.embedded.context("no embedded transport")?;
                bus::embedded::replay_dead_letters(embedded, &routing::dead_letter_queue(group), message_id).await?
            }
        })
    }
}

/// Up to `limit` dead letters of `group`.
pub async fn list(
    settings: &Settings,
    transport: Transport,
    group: &str,
    limit: usize,
) -> anyhow::Result<Vec<DeadLetter>> {
    let connected = Connected::to(settings, transport).await?;
    let letters = connected.transports().list(transport, group, limit).await;
    connected.close().await;
    letters
}

/// Replays `group`'s dead letters (one by message id, or all); returns how many.
pub async fn replay(
    settings: &Settings,
    transport: Transport,
    group: &str,
    message_id: Option<&str>,
) -> anyhow::Result<usize> {
    let connected = Connected::to(settings, transport).await?;
    let replayed = connected.transports().replay(transport, group, message_id).await;
    connected.close().await;
    replayed
}

/// The one connection a command-line call opens, to the transport it is about.
#[derive(Default)]
struct Connected {
    amqp: Option<AmqpConnection>,
    nats: Option<NatsConnection>,
    embedded: Option<EmbeddedBus>,
}

impl Connected {
    async fn to(settings: &Settings, transport: Transport) -> anyhow::Result<Self> {
        Ok(match transport {
            Transport::Amqp => Self { amqp: Some(amqp(settings).await?), ..Self::default() },
            Transport::Nats => Self { nats: Some(nats(settings).await?), ..Self::default() },
            Transport::Embedded => Self { embedded: Some(embedded(settings).await?), ..Self::default() },
        })
    }

    fn transports(&self) -> Transports<'_> {
        Transports { amqp: self.amqp.as_ref(), nats: self.nats.as_ref(), embedded: self.embedded.as_ref() }
    }

    /// Closes RabbitMQ politely (its channel close puts listed messages back at once).
    async fn close(self) {
        if let Some(amqp) = self.amqp {
            amqp.close().await;
        }
    }
}

async fn amqp(settings: &Settings) -> anyhow::Result<AmqpConnection> {
    let url = settings.amqp.url.as_deref().context("RabbitMQ dead letters need amqp.url (VOLTBUS__AMQP__URL)")?;
    Ok(AmqpConnection::connect(url, "voltbus-cli").await?)
}

async fn nats(settings: &Settings) -> anyhow::Result<NatsConnection> {
    let url = settings.nats.url.as_deref().context("JetStream dead letters need nats.url (VOLTBUS__NATS__URL)")?;
    crate::engines::connect_nats(settings, url, "voltbus-cli").await
}

async fn embedded(settings: &Settings) -> anyhow::Result<EmbeddedBus> {
    use migrations::MigratorTrait;
    let database = crate::engines::connect_database(settings).await?;
    // The queue table may not exist yet on a data directory `serve` never ran on.
    migrations::Migrator::up(database.connection(), None).await.context("applying database migrations")?;
    Ok(EmbeddedBus::new(database.connection().clone()))
}
