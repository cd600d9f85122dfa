//! Outbound webhooks: partners' endpoints, and every event they subscribe to delivered signed,
//! retried on a schedule, logged and replayable.
//!
//! Three consumer groups and a scheduler:
//! - `webhooks` (commands): endpoints created, changed, rotated, deleted; replays; test events.
//! - `webhook-fanout` (events): each subscribed event becomes one stored payload and one
//!   delivery per endpoint (`messages`); once committed, the first attempts go straight to this
//!   process's dispatcher (a lone event handled outside a batch queues them in the outbox).
//! - `webhook-deliveries` (`webhook.deliver` commands: retries, replays, test events, ordered
//!   endpoints' next deliveries): the dispatcher (`dispatch`) makes an attempt (`http`, with the
//!   platform's guarded client, `outbound`) and logs it (`deliveries`).
//! - the scheduler ([`run_scheduler`]) queues attempts that fall due: retries, deliveries an
//!   endpoint's limits deferred, and any attempt whose worker died (its lease ran out).
//!
//! Also `endpoints` (the table), `ledger` (attempt results written in batches), `vault` (secrets sealed at rest), `operational` (voltbus's own
//! `endpoint.disabled`, `message.attempt.exhausted`, `message.attempt.recovered`).

pub mod deliveries;
pub mod dispatch;
pub mod endpoints;
pub mod http;
mod ledger;
pub mod messages;
pub mod operational;

use crate::groups::Group;
use bus::amqp::ConsumerOptions;
use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bus::amqp::GroupTopology;
use bus::outbox;
use bus::{Context, Handled, Handler, HandlerError, Reply};
use schemas::Recipient;
use schemas::webhooks::{EndpointChange, ReplayWebhookDeliveries, SendTestWebhook, WebhookEndpointChanged};
use schemas::{AnyMessage, Envelope, Reach, routing};
use sea_orm::{ConnectionTrait, DatabaseTransaction, DbErr};
use uuid::Uuid;

use readside::{Outcome, Refusal};

pub use dispatch::{DispatchHandler, Dispatcher, EndpointCache, Handover};
pub use endpoints::Endpoint;
pub use schemas::webhooks::{EVENT_TYPES, TEST_EVENT};
pub use signatures::{Vault, VaultError};

/// The endpoint commands' group.
pub const GROUP: &str = Recipient::Webhooks.name();
/// The group that turns events into deliveries.
pub const FANOUT_GROUP: &str = "webhook-fanout";
/// The dispatcher's group.
pub const DELIVERY_GROUP: &str = Recipient::WebhookDeliveries.name();

/// How deliveries are made; one per deployment.
#[derive(Clone, Debug)]
pub struct DeliveryPolicy {
    /// An attempt without a 2xx within this long failed.
    pub timeout: Duration,
    /// Wait before attempt 2, 3, …; attempts = delays + 1.
    pub retry_delays: Vec<Duration>,
    /// Longest wait a receiver's `Retry-After` can ask for.
    pub retry_after_max: Duration,
    /// Attempts to one endpoint at once, per process.
    pub concurrency_per_endpoint: usize,
    /// An endpoint failing without a success for longer than this is disabled.
    pub disable_after: Duration,
    /// Payloads and attempt logs older than this are deleted.
    pub retention: Duration,
}

impl Default for DeliveryPolicy {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(30),
            // The Levy Fleets seed: immediately, then after 1, 2, 4 and 8 seconds.
            retry_delays: [1, 2, 4, 8].map(Duration::from_secs).to_vec(),
            retry_after_max: Duration::from_secs(3600),
            concurrency_per_endpoint: 8,
            disable_after: Duration::from_secs(5 * 24 * 3600),
            retention: Duration::from_secs(30 * 24 * 3600),
        }
    }
}

impl DeliveryPolicy {
    /// Attempts per delivery.
    pub fn max_attempts(&self) -> u32 {
        u32::try_from(self.retry_delays.len()).unwrap_or(u32::MAX).saturating_add(1)
    }

    /// How long a queued or running attempt keeps its delivery before the scheduler takes it back.
    pub fn lease(&self) -> chrono::Duration {
        chrono::Duration::from_std(self.timeout + Duration::from_secs(30)).unwrap_or(chrono::Duration::MAX)
    }
}

/// Endpoint commands; events turned into deliveries (in batches: a burst of events is a few
/// transactions, not one each); and the attempts, which run outside any transaction (the
/// dispatcher keeps its own short ones).
pub fn groups(policy: &DeliveryPolicy, dispatcher: &Arc<Dispatcher>) -> Vec<Group> {
    let webhooks = Arc::new(Webhooks::new(policy.clone(), Arc::clone(dispatcher)));
    vec![
        Group::handling(Recipient::Webhooks, webhooks.clone()),
        Group::queue(fanout_topology(), webhooks).batched(FANOUT_BATCH, FANOUT_OPTIONS),
        Group::queue(delivery_topology(), Arc::new(DispatchHandler(Arc::clone(dispatcher)))).outside_transactions(),
    ]
}

/// Most events the fan-out turns into deliveries in one transaction.
const FANOUT_BATCH: usize = 64;
/// The fan-out's window: few lanes, so a burst makes full batches (few transactions) rather
/// than sixteen small ones at a time, and enough unacked for the next batch of each lane.
const FANOUT_OPTIONS: ConsumerOptions = ConsumerOptions { prefetch: 512, lanes: 4 };

/// The fan-out's queues: every tenant's events of the webhook types.
pub fn fanout_topology() -> GroupTopology {
    let bindings = EVENT_TYPES
        .iter()
        .filter_map(|name| schemas::descriptor_of(name))
        .map(|descriptor| (routing::EVENTS_EXCHANGE, routing::every_tenant_event_binding(descriptor)))
        .collect();
    GroupTopology {
        group: FANOUT_GROUP.into(),
        bindings,
        retry_delays: crate::RETRY_DELAYS.to_vec(),
        quorum_size: None,
    }
}

/// The dispatcher's queues.
pub fn delivery_topology() -> GroupTopology {
    GroupTopology::handling(Recipient::WebhookDeliveries, crate::RETRY_DELAYS.to_vec())
}

/// Handles the endpoint commands, and the events the fan-out takes.
pub struct Webhooks {
    policy: DeliveryPolicy,
    /// This process's dispatcher: takes the fan-out's first attempts, and forgets the endpoints
    /// the commands change.
    dispatcher: Arc<Dispatcher>,
}

impl Webhooks {
    /// Handlers under `policy`, working with this process's `dispatcher`.
    pub fn new(policy: DeliveryPolicy, dispatcher: Arc<Dispatcher>) -> Self {
        Self { policy, dispatcher }
    }
}

impl Handler for Webhooks {
    fn handle<'a>(
        &'a self,
        context: Context<'a>,
    ) -> Pin<Box<dyn Future<Output = Result<Reply, HandlerError>> + Send + 'a>> {
        Box::pin(async move {
            let tx = context.database("webhooks")?;
            let message = context.message;
            let result = match &message.data {
                AnyMessage::CreateWebhookEndpoint(_)
                | AnyMessage::UpdateWebhookEndpoint(_)
                | AnyMessage::DeleteWebhookEndpoint(_)
                | AnyMessage::RotateWebhookSecret(_) => {
                    if let Some(id) = message.data.aggregate().and_then(|id| id.parse().ok()) {
                        self.dispatcher.endpoints().forget(message.tenant.as_str(), id);
                    }
                    change_endpoint(tx, message).await
                }
                AnyMessage::ReplayWebhookDeliveries(replay) => self.replay(tx, message, replay).await,
                AnyMessage::SendTestWebhook(test) => self.test(tx, message, test).await,
                _ if EVENT_TYPES.contains(&message.type_name.as_str()) => {
                    // Outside a batch there is no after-commit hand-off: the outbox queues them.
                    let one = [(message, context.attempt)];
                    self.fan_out(tx, &one, deliveries::FirstAttempt::Outbox).await.map(|_| None)
                }
                _ => return Err(HandlerError::unhandled(message)),
            };
            result.map_err(|error| HandlerError::Retryable(error.to_string()))
        })
    }

    fn handle_publishing<'a>(
        &'a self,
        transaction: &'a DatabaseTransaction,
        messages: &'a [(&'a Envelope<AnyMessage>, u32)],
    ) -> Pin<Box<dyn Future<Output = Result<Handled, HandlerError>> + Send + 'a>> {
        Box::pin(async move {
            if !messages.iter().all(|(message, _)| EVENT_TYPES.contains(&message.type_name.as_str())) {
                return bus::handle_each(self, transaction, messages).await.map(|()| Handled::default());
            }
            let handovers = self
                .fan_out(transaction, messages, deliveries::FirstAttempt::InProcess)
                .await
                .map_err(|error| HandlerError::Retryable(error.to_string()))?;
            let mut handled = Handled::default();
            if !handovers.is_empty() {
                let dispatcher = Arc::clone(&self.dispatcher);
                handled.then.push(Box::new(move || dispatcher.hand_over(handovers)));
            }
            Ok(handled)
        })
    }
}

impl Webhooks {
    /// Turns events into deliveries: each tenant's subscribers read once per event type, every
    /// table written with one statement for the lot (see `messages::enqueue_all`). Returns the
    /// first attempts to hand to the dispatcher once committed, when `first` says so.
    async fn fan_out(
        &self,
        tx: &DatabaseTransaction,
        events: &[(&Envelope<AnyMessage>, u32)],
        first: deliveries::FirstAttempt,
    ) -> Result<Vec<Handover>, DbErr> {
        // Each tenant's subscribers of a type, read once; then those that take what an event is
        // about (its subaccount), chosen once per subaccount, not per event.
        let mut subscribed: HashMap<(&str, &str), Vec<endpoints::StoredEndpoint>> = HashMap::new();
        let mut takers: HashMap<(&str, &str, Reach), Vec<endpoints::StoredEndpoint>> = HashMap::new();
        let mut prepared = Vec::with_capacity(events.len());
        // Each prepared event's trace, which its first attempts join.
        let mut traces = Vec::with_capacity(events.len());
        for (message, _) in events {
            let (tenant, event) = (message.tenant.as_str(), message.type_name.as_str());
            tracing::debug!(message_id = %message.id, correlation_id = %message.correlationid, tenant, event, "fan-out");
            let reach = message.data.reach();
            if let Entry::Vacant(new) = takers.entry((tenant, event, reach)) {
                let listeners = match subscribed.entry((tenant, event)) {
                    Entry::Occupied(known) => known.into_mut(),
                    Entry::Vacant(new) => new.insert(endpoints::subscribed(tx, tenant, event).await?),
                };
                new.insert(listeners.iter().filter(|e| e.takes(event, reach)).cloned().collect());
            }
            if takers[&(tenant, event, reach)].is_empty() {
                continue;
            }
            let data = js_json(&message.data).map_err(|e| DbErr::Custom(format!("event data: {e}")))?;
            let event_id = messages::event_id(message.id);
            let payload = messages::payload(event, &event_id, message.time, &data);
            prepared.push((message.id, tenant, event, event_id, payload, reach));
            traces.push(message.traceparent.as_deref());
        }
        let outgoing: Vec<_> = prepared
            .iter()
            .map(|(id, tenant, event, event_id, payload, reach)| {
                let message = messages::Outgoing { tenant, event, event_id, payload, reach: *reach };
                (Some(*id), message, takers[&(*tenant, *event, *reach)].as_slice())
            })
            .collect();
        // Taken before the rows' own clock, so it never outlives the lease they hold.
        let leased_until = Instant::now() + self.policy.lease().to_std().unwrap_or_default();
        let queued = messages::enqueue_all(tx, &outgoing, self.policy.lease(), first).await?;
        // Deliveries to an integration's endpoints are its usage: counted here, once per event
        // and endpoint (retries are not billed), in the fan-out's transaction.
        let mut metered: HashMap<(&str, Uuid), u64> = HashMap::new();
        for queued in &queued {
            let (_, message, endpoints) = &outgoing[queued.event];
            if let Some(integration) = endpoints[queued.endpoint].integration_id {
                *metered.entry((message.tenant, integration)).or_default() += 1;
            }
        }
        let period =
            if metered.is_empty() { String::new() } else { crate::billing::usage::period_of(chrono::Utc::now()) };
        for ((tenant, integration), deliveries) in metered {
            let metric = crate::billing::usage::EVENT_DELIVERY;
            crate::billing::usage::add(tx, tenant, integration, &period, metric, deliveries).await?;
        }
        let mut shared: HashMap<Uuid, Arc<endpoints::StoredEndpoint>> = HashMap::new();
        Ok(queued
            .into_iter()
            .map(|queued| {
                let (_, message, endpoints) = &outgoing[queued.event];
                let stored = &endpoints[queued.endpoint];
                let endpoint = Arc::clone(shared.entry(stored.endpoint.id).or_insert_with(|| Arc::new(stored.clone())));
                let command = schemas::webhooks::DeliverWebhook {
                    delivery_id: queued.delivery_id,
                    endpoint_id: endpoint.endpoint.id,
                    event_id: message.event_id.to_owned(),
                    event: message.event.to_owned(),
                    attempt: 1,
                };
                let payload = message.payload.to_owned();
                let reach = message.reach;
                let trace = traces[queued.event].map(str::to_owned);
                Handover { tenant: message.tenant.to_owned(), command, endpoint, payload, reach, leased_until, trace }
            })
            .collect())
    }

    async fn replay(
        &self,
        tx: &DatabaseTransaction,
        message: &Envelope<AnyMessage>,
        replay: &ReplayWebhookDeliveries,
    ) -> Result<Reply, DbErr> {
        let tenant = message.tenant.as_str();
        let Some(endpoint) = endpoints::find(tx, tenant, replay.endpoint_id).await? else {
            return Ok(Some(not_found(replay.endpoint_id)));
        };
        let lease = self.policy.lease();
        let ids =
            deliveries::replay(tx, Some(message.id), &endpoint, replay.delivery_id, replay.failed_since, lease).await?;
        if replay.delivery_id.is_some() && ids.is_empty() {
            let refusal =
                Refusal::not_found(format!("no delivery {} of this endpoint", replay.delivery_id.unwrap_or_default()));
            return Ok(Some(Outcome::<()>::Refused(refusal).to_reply()));
        }
        Ok(Some(Outcome::Done(serde_json::json!({ "replayed": ids.len(), "delivery_ids": ids })).to_reply()))
    }

    async fn test(
        &self,
        tx: &DatabaseTransaction,
        message: &Envelope<AnyMessage>,
        test: &SendTestWebhook,
    ) -> Result<Reply, DbErr> {
        let tenant = message.tenant.as_str();
        let Some(endpoint) = endpoints::find(tx, tenant, test.endpoint_id).await? else {
            return Ok(Some(not_found(test.endpoint_id)));
        };
        let data =
            serde_json::json!({ "endpoint_id": test.endpoint_id, "message": "This is a test event from voltbus." });
        let payload = messages::payload(TEST_EVENT, &test.event_id, message.time, &data.to_string());
        let reach = schemas::Reach::Organisation;
        let outgoing =
            messages::Outgoing { tenant, event: TEST_EVENT, event_id: &test.event_id, payload: &payload, reach };
        let ids = messages::enqueue(tx, Some(message.id), &outgoing, &[endpoint], self.policy.lease()).await?;
        Ok(Some(Outcome::Done(serde_json::json!({ "event_id": test.event_id, "delivery_id": ids.first() })).to_reply()))
    }
}

async fn change_endpoint(tx: &DatabaseTransaction, message: &Envelope<AnyMessage>) -> Result<Reply, DbErr> {
    let tenant = message.tenant.as_str();
    let now = chrono::Utc::now();
    let (stored, change, id) = match &message.data {
        AnyMessage::CreateWebhookEndpoint(create) => {
            (Some(endpoints::insert(tx, tenant, create, now).await?), EndpointChange::Created, create.endpoint_id)
        }
        AnyMessage::UpdateWebhookEndpoint(update) => {
            (endpoints::update(tx, tenant, update, now).await?, EndpointChange::Updated, update.endpoint_id)
        }
        AnyMessage::RotateWebhookSecret(rotate) => {
            (endpoints::rotate(tx, tenant, rotate, now).await?, EndpointChange::SecretRotated, rotate.endpoint_id)
        }
        AnyMessage::DeleteWebhookEndpoint(delete) => {
            if !endpoints::delete(tx, tenant, delete.endpoint_id).await? {
                return Ok(Some(not_found(delete.endpoint_id)));
            }
            announce(tx, message, delete.endpoint_id, EndpointChange::Deleted).await?;
            return Ok(Some(Outcome::Done(crate::Deleted::of(delete.endpoint_id)).to_reply()));
        }
        _ => return Ok(None),
    };
    let Some(stored) = stored else { return Ok(Some(not_found(id))) };
    announce(tx, message, id, change).await?;
    Ok(Some(Outcome::Done(stored.endpoint).to_reply()))
}

fn not_found(id: Uuid) -> serde_json::Value {
    Outcome::<()>::Refused(Refusal::not_found(format!("no webhook endpoint {id}"))).to_reply()
}

async fn announce(
    tx: &impl ConnectionTrait,
    cause: &Envelope<AnyMessage>,
    endpoint_id: Uuid,
    change: EndpointChange,
) -> Result<(), DbErr> {
    outbox::enqueue_event(tx, cause, "voltbus/webhooks", WebhookEndpointChanged { endpoint_id, change }).await
}

/// Compact JSON as JavaScript's `JSON.stringify` writes it, so a receiver that verifies the
/// signature over `JSON.stringify(JSON.parse(body))` (the seed's own example) gets our bytes:
/// a whole float is written as an integer (`80`, not `80.0`). Field order is the type's.
fn js_json(data: &impl serde::Serialize) -> Result<String, serde_json::Error> {
    let mut out = Vec::with_capacity(256);
    let mut serializer = serde_json::Serializer::with_formatter(&mut out, JsNumbers);
    data.serialize(&mut serializer)?;
    Ok(String::from_utf8(out).unwrap_or_default())
}

struct JsNumbers;

impl serde_json::ser::Formatter for JsNumbers {
    fn write_f64<W: ?Sized + std::io::Write>(&mut self, writer: &mut W, value: f64) -> std::io::Result<()> {
        if value.is_finite() && value.fract() == 0.0 && value.abs() < 1e21 {
            // Exact: |value| < 2^70 fits i128, and a whole f64 converts without rounding.
            #[allow(clippy::cast_possible_truncation)]
            return write!(writer, "{}", value as i128);
        }
        serde_json::ser::CompactFormatter.write_f64(writer, value)
    }

    fn write_f32<W: ?Sized + std::io::Write>(&mut self, writer: &mut W, value: f32) -> std::io::Result<()> {
        self.write_f64(writer, f64::from(value))
    }
}

/// Queues due attempts every `every` until `shutdown`; several processes may run it.
pub async fn run_scheduler(
    db: sea_orm::DatabaseConnection,
    policy: DeliveryPolicy,
    every: Duration,
    shutdown: impl Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    let lease = policy.lease();
    loop {
        match deliveries::queue_due(&db, lease, 500).await {
            // A full batch: more are probably due; go again at once.
            Ok(500) => continue,
            Ok(_) => {}
            Err(error) => tracing::warn!(%error, "webhook scheduler pass failed; trying again"),
        }
        tokio::select! {
            () = tokio::time::sleep(every) => {}
            () = &mut shutdown => return,
        }
    }
}

/// Deletes payloads and logs past the retention period; returns how many rows went.
pub async fn purge(db: &impl ConnectionTrait, policy: &DeliveryPolicy) -> Result<u64, DbErr> {
    let before = chrono::Utc::now() - chrono::Duration::from_std(policy.retention).unwrap_or(chrono::Duration::MAX);
    deliveries::purge(db, before).await
}

#[cfg(test)]
mod tests {
    #[test]
    fn writes_numbers_as_javascript_does() {
        let value = serde_json::json!({ "b": 80.0, "a": 5.2, "n": 12345, "neg": -3.0 });
        assert_eq!(super::js_json(&value).unwrap(), r#"{"a":5.2,"b":80,"n":12345,"neg":-3}"#);
    }
}
