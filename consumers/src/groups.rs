//! Every domain's consumer groups, for the composition root to run. Each domain says which groups
//! it has (its module's `groups()`): where their messages come from, their handler, and how they
//! take them; the root only connects each to a transport (RabbitMQ, NATS or the embedded one).

use std::sync::Arc;
use std::time::Duration;

use bus::Handler;
use bus::amqp::{ConsumerOptions, GroupTopology};
use bus::nats::JetStreamGroup;
use schemas::Recipient;

use crate::fleet::telemetry::Thresholds;
use crate::sign_in::SignInPolicy;
use crate::subscriptions::BrokerAdmin;
use crate::webhooks::{DeliveryPolicy, Dispatcher};

/// Where a group's messages come from.
pub enum Source {
    /// A queue group of commands or events: on RabbitMQ, or the embedded transport without it.
    Queue(GroupTopology),
    /// A JetStream consumer of devices' subjects: only where NATS is (devices talk NATS).
    Stream(JetStreamGroup),
}

/// One consumer group.
pub struct Group {
    /// Where its messages come from.
    pub source: Source,
    /// What handles them.
    pub handler: Arc<dyn Handler>,
    /// Whether each message is handled in a transaction of the platform's database; else the
    /// handler keeps its own (webhook attempts, which must not hold one over the network).
    pub transactional: bool,
    /// Most messages handled in one transaction (1: one at a time).
    pub batch: usize,
    /// Its window, when not the transport's default.
    pub options: Option<ConsumerOptions>,
    /// Idempotent on its own, so no inbox: what it publishes goes out right after its commit.
    pub without_inbox: bool,
}

impl Group {
    /// The group carrying out the commands the catalogue routes to `recipient`, retried on the
    /// usual delays, one message a transaction.
    pub fn handling(recipient: Recipient, handler: Arc<dyn Handler>) -> Self {
        Self::queue(GroupTopology::handling(recipient, crate::RETRY_DELAYS.to_vec()), handler)
    }

    /// A group of `topology`, one message a transaction.
    pub fn queue(topology: GroupTopology, handler: Arc<dyn Handler>) -> Self {
        Self::of(Source::Queue(topology), handler)
    }

    /// A JetStream group, one message a transaction.
    pub fn stream(group: JetStreamGroup, handler: Arc<dyn Handler>) -> Self {
        Self::of(Source::Stream(group), handler)
    }

    fn of(source: Source, handler: Arc<dyn Handler>) -> Self {
        Self { source, handler, transactional: true, batch: 1, options: None, without_inbox: false }
    }

    /// Up to `batch` messages a transaction, with window `options`.
    pub fn batched(self, batch: usize, options: ConsumerOptions) -> Self {
        Self { batch, options: Some(options), ..self }
    }

    /// Handled outside the platform's transactions.
    pub fn outside_transactions(self) -> Self {
        Self { transactional: false, ..self }
    }

    /// Idempotent on its own: no inbox.
    pub fn without_inbox(self) -> Self {
        Self { without_inbox: true, ..self }
    }

    /// The group's name, which names its queues or durable consumer.
    pub fn name(&self) -> &str {
        match &self.source {
            Source::Queue(topology) => &topology.group,
            Source::Stream(group) => &group.group,
        }
    }
}

/// How the domains' groups behave, as configured.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Mobile sign-in codes and sessions.
    pub sign_in: SignInPolicy,
    /// How commands to vehicles are timed.
    pub vehicle_commands: crate::fleet::commands::Timing,
    /// When telemetry becomes an event.
    pub thresholds: Thresholds,
    /// Most telemetry reports in one transaction.
    pub telemetry_batch: usize,
    /// A charger not heard from this long reads as offline.
    pub charger_offline_after: Duration,
    /// Webhook deliveries.
    pub webhooks: DeliveryPolicy,
}

/// What the groups share with the rest of the platform, made by the root because it outlives
/// them: the webhook dispatcher (its attempts finish after the groups stop) and the broker's
/// management API (subscriber queues are bound through it at start too).
pub struct Shared {
    /// Makes webhook attempts.
    pub dispatcher: Arc<Dispatcher>,
    /// RabbitMQ's management API, with RabbitMQ.
    pub broker: Option<BrokerAdmin>,
}

/// Every group of every domain.
pub fn all(settings: &Settings, shared: &Shared) -> Vec<Group> {
    [
        crate::integrations::groups(),
        crate::webhooks::groups(&settings.webhooks, &shared.dispatcher),
        crate::marketplace::groups(),
        crate::fleet::groups(settings.vehicle_commands, settings.thresholds, settings.telemetry_batch),
        crate::zones::groups(),
        crate::customers::groups(settings.sign_in),
        crate::wallets::groups(),
        crate::pricing::groups(),
        crate::rides::groups(),
        crate::subscriptions::groups(shared.broker.clone()),
        crate::chargers::groups(settings.charger_offline_after),
        crate::charging::groups(settings.charger_offline_after),
        crate::payments::groups(),
        crate::maintenance::groups(),
        crate::billing::groups(),
    ]
    .into_iter()
    .flatten()
    .collect()
}

#[cfg(test)]
mod tests {
    use schemas::{Kind, Recipient};

    use super::*;

    // The dispatcher starts its ledger's task: a runtime must be there.
    #[tokio::test]
    async fn every_command_the_catalogue_routes_to_a_group_reaches_exactly_one() {
        let policy = DeliveryPolicy::default();
        // No attempt is made: the dispatcher only needs to exist.
        let database = sea_orm::DatabaseConnection::default();
        let client =
            crate::webhooks::http::Client::new(outbound::ssrf::UrlPolicy::default(), policy.timeout).expect("a client");
        let vault = signatures::Vault::new(&signatures::Vault::generate_key().expect("a key")).expect("a vault");
        let dispatcher = Arc::new(Dispatcher::new(database, client, vault, policy.clone()));
        let settings = Settings {
            sign_in: SignInPolicy::default(),
            vehicle_commands: crate::fleet::commands::Timing::default(),
            thresholds: Thresholds::default(),
            telemetry_batch: 500,
            charger_offline_after: Duration::from_secs(300),
            webhooks: policy,
        };
        let groups = all(&settings, &Shared { dispatcher, broker: None });
        for descriptor in schemas::descriptors().iter().filter(|d| d.kind == Kind::Command) {
            let key = schemas::routing::command_key(descriptor);
            let reached: Vec<&str> = groups
                .iter()
                .filter(|group| match &group.source {
                    Source::Queue(topology) => topology.bindings.iter().any(|(_, binding)| *binding == key),
                    Source::Stream(_) => false,
                })
                .map(Group::name)
                .collect();
            match descriptor.recipient {
                Some(Recipient::Device) => assert!(reached.is_empty(), "{key} goes to a device, not {reached:?}"),
                Some(recipient) => assert_eq!(reached, [recipient.name()], "{key}"),
                None => panic!("{key} names no recipient"),
            }
        }
        let mut names: Vec<&str> = groups.iter().map(Group::name).collect();
        let count = names.len();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), count, "two groups share a name: their queues would be one");
    }
}
