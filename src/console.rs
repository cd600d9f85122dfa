//! What the operator console reads and does on the transports this process runs on: each
//! consumer group's queue and dead letters, replay, and the outbox backlog.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bus::{DeadLetter, QueueDepth};
use publishers::{BusOperations, GroupStats};
use schemas::routing;

use crate::Engines;
use crate::dead_letters::{Transport, Transports};

/// Longest the console waits for the transports' figures.
const READ_LIMIT: Duration = Duration::from_secs(3);

/// One consumer group and where its queue is.
#[derive(Clone, Debug)]
pub struct Group {
    /// Its name.
    pub name: String,
    /// Its transport.
    pub transport: Transport,
    /// Its JetStream stream, when it consumes one.
    pub stream: Option<String>,
}

/// The console's view of the bus, over the engines' own connections.
pub struct BusDesk {
    engines: Arc<Engines>,
    groups: Vec<Group>,
}

impl BusDesk {
    /// A desk over `engines`, knowing the consumer groups this process runs.
    pub fn new(engines: Arc<Engines>, groups: Vec<Group>) -> Self {
        Self { engines, groups }
    }

    fn transports(&self) -> Transports<'_> {
        Transports {
            amqp: self.engines.amqp.as_deref(),
            nats: self.engines.nats.as_ref(),
            embedded: Some(&self.engines.embedded),
        }
    }

    fn group(&self, name: &str) -> Result<&Group, String> {
        self.groups.iter().find(|g| g.name == name).ok_or_else(|| format!("no consumer group {name}"))
    }

    async fn figures(&self) -> Vec<GroupStats> {
        // RabbitMQ: every work queue and dead-letter queue in one channel.
        let on_rabbit: Vec<&Group> = self.groups.iter().filter(|g| g.transport == Transport::Amqp).collect();
        let mut rabbit = Vec::new();
        if let Some(amqp) = self.engines.amqp.as_deref() {
            let queues: Vec<String> = on_rabbit
                .iter()
                .flat_map(|g| [routing::work_queue(&g.name), routing::dead_letter_queue(&g.name)])
                .collect();
            match bus::amqp::queue_depths(amqp, &queues).await {
                Ok(depths) => rabbit = depths,
                Err(error) => tracing::warn!(%error, "cannot read RabbitMQ queue depths"),
            }
        }
        let mut stats = Vec::with_capacity(self.groups.len());
        for group in &self.groups {
            let (transport, queue, dead_letters) = match group.transport {
                Transport::Amqp => {
                    let at = on_rabbit.iter().position(|g| g.name == group.name).unwrap_or(usize::MAX);
                    let depth = |i: usize| rabbit.get(i).copied().flatten();
                    ("rabbitmq", depth(at.saturating_mul(2)), depth(at.saturating_mul(2) + 1).map(|d| d.messages))
                }
                Transport::Embedded => {
                    let embedded = &self.engines.embedded;
                    let work = bus::embedded::queue_depth(embedded, &routing::work_queue(&group.name)).await.ok();
                    let dead =
                        bus::embedded::queue_depth(embedded, &routing::dead_letter_queue(&group.name)).await.ok();
                    ("embedded", work, dead.map(|d| d.messages))
                }
                Transport::Nats => match (&self.engines.nats, &group.stream) {
                    (Some(nats), Some(stream)) => {
                        let work = bus::nats::group_depth(nats, stream, &group.name).await.ok();
                        let dead = bus::nats::dead_letter_count(nats, &group.name).await.ok();
                        ("jetstream", work, dead)
                    }
                    _ => ("jetstream", None::<QueueDepth>, None),
                },
            };
            stats.push(GroupStats { group: group.name.clone(), transport, queue, dead_letters });
        }
        stats
    }
}

impl BusOperations for BusDesk {
    fn group_names(&self) -> Vec<String> {
        self.groups.iter().map(|g| g.name.clone()).collect()
    }

    fn groups(&self) -> Pin<Box<dyn Future<Output = Vec<GroupStats>> + Send + '_>> {
        Box::pin(async move {
            match tokio::time::timeout(READ_LIMIT, self.figures()).await {
                Ok(stats) => stats,
                // Names without figures: the page still lists every group.
                Err(_) => self
                    .groups
                    .iter()
                    .map(|g| GroupStats {
                        group: g.name.clone(),
                        transport: "unknown",
                        queue: None,
                        dead_letters: None,
                    })
                    .collect(),
            }
        })
    }

    fn dead_letters<'a>(
        &'a self,
        group: &'a str,
        limit: usize,
    ) -> Pin<Box<dyn Future<Output = Result<Vec<DeadLetter>, String>> + Send + 'a>> {
        Box::pin(async move {
            let transport = self.group(group)?.transport;
            self.transports().list(transport, group, limit).await.map_err(|e| format!("{e:#}"))
        })
    }

    fn replay<'a>(
        &'a self,
        group: &'a str,
        message_id: Option<&'a str>,
    ) -> Pin<Box<dyn Future<Output = Result<usize, String>> + Send + 'a>> {
        Box::pin(async move {
            let transport = self.group(group)?.transport;
            self.transports().replay(transport, group, message_id).await.map_err(|e| format!("{e:#}"))
        })
    }

    fn outbox_backlog(&self) -> Pin<Box<dyn Future<Output = Option<u64>> + Send + '_>> {
        Box::pin(async move {
            let read = tokio::time::timeout(READ_LIMIT, bus::outbox::backlog(self.engines.database.connection()));
            read.await.ok().and_then(Result::ok)
        })
    }
}
