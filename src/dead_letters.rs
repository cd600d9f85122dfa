//! `voltbus dead-letters`: an operator's view of a consumer group's dead letters on whichever
//! transport holds them, and replay back to where they came from.

use anyhow::Context;
use bus::DeadLetter;
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

/// Up to `limit` dead letters of `group`.
pub async fn list(
    settings: &Settings,
    transport: Transport,
    group: &str,
    limit: usize,
) -> anyhow::Result<Vec<DeadLetter>> {
    Ok(match transport {
        Transport::Amqp => {
            let amqp = amqp(settings).await?;
            let letters = bus::amqp::list_dead_letters(&amqp, &routing::dead_letter_queue(group), limit).await;
            amqp.close().await;
            letters?
        }
        Transport::Nats => bus::nats::list_dead_letters(&nats(settings).await?, group, limit).await?,
        Transport::Embedded => {
            bus::embedded::list_dead_letters(&embedded(settings).await?, &routing::dead_letter_queue(group), limit)
                .await?
        }
    })
}

/// Replays `group`'s dead letters (one by message id, or all); returns how many.
pub async fn replay(
    settings: &Settings,
    transport: Transport,
    group: &str,
    message_id: Option<&str>,
) -> anyhow::Result<usize> {
    Ok(match transport {
        Transport::Amqp => {
            let amqp = amqp(settings).await?;
            let replayed = bus::amqp::replay_dead_letters(&amqp, &routing::dead_letter_queue(group), message_id).await;
            amqp.close().await;
            replayed?
        }
        Transport::Nats => bus::nats::replay_dead_letters(&nats(settings).await?, group, message_id).await?,
        Transport::Embedded => {
            bus::embedded::replay_dead_letters(
                &embedded(settings).await?,
                &routing::dead_letter_queue(group),
                message_id,
            )
            .await?
        }
    })
}

async fn amqp(settings: &Settings) -> anyhow::Result<bus::amqp::AmqpConnection> {
    let url = settings.amqp.url.as_deref().context("RabbitMQ dead letters need amqp.url (VOLTBUS__AMQP__URL)")?;
    Ok(bus::amqp::AmqpConnection::connect(url, "voltbus-cli").await?)
}

async fn nats(settings: &Settings) -> anyhow::Result<bus::nats::NatsConnection> {
    let url = settings.nats.url.as_deref().context("JetStream dead letters need nats.url (VOLTBUS__NATS__URL)")?;
    crate::engines::connect_nats(settings, url, "voltbus-cli").await
}

async fn embedded(settings: &Settings) -> anyhow::Result<bus::embedded::EmbeddedBus> {
    use migrations::MigratorTrait;
    let database = crate::engines::connect_database(settings).await?;
    // The queue table may not exist yet on a data directory `serve` never ran on.
    migrations::Migrator::up(database.connection(), None).await.context("applying database migrations")?;
    Ok(bus::embedded::EmbeddedBus::new(database.connection().clone()))
}
