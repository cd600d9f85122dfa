//! Subscriptions (INVERS Messaging API): an integration's own durable AMQP queue, bound to the
//! events of its tenant it asked for (and may read), with a broker user that may read that queue
//! and nothing else: not another queue, not another tenant's events, and never publish.
//!
//! The `subscriptions` group records each subscription and sets the broker up through its
//! management API (`broker`). A failed set-up rolls the record back and is retried; every step
//! is idempotent.
//!
//! What a queue may hold is what the key that made it reads through the API: the record keeps
//! that key and its audience (subaccounts, permissions), and the queue is bound to exactly the
//! routing keys of those subaccounts (`routing::audience_bindings`), so the broker itself never
//! puts another subaccount's event in it. When that key is narrowed (its `api_key.changed`), and
//! at every start (bindings of an older shape), each queue's bindings are made to match again.
//!
//! Layout: this file (the group and the table), `broker` (RabbitMQ's management API).

pub mod broker;

use crate::groups::Group;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use bus::amqp::GroupTopology;
use bus::{Context, Handler, HandlerError, Reply};
use chrono::Utc;
use schemas::Recipient;
use schemas::integrations::{ApiKeyChanged, Audience, CreateSubscription, DeleteSubscription};
use schemas::{AnyMessage, Envelope, TenantId, routing};
use sea_orm::sea_query::{Expr, ExprTrait, OnConflict, Query};
use sea_orm::{ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbErr, TransactionTrait};
use uuid::Uuid;

pub use broker::{BrokerAdmin, BrokerError};
use readside::columns::to_json;
use readside::subscriptions::{COLUMNS, TABLE};
pub use readside::subscriptions::{StoredSubscription, Subscription, find, list};
use readside::{Deleted, Outcome, Refusal};

/// The group's name: its queues are `voltbus.subscriptions…`.
pub const GROUP: &str = Recipient::Subscriptions.name();

/// The subscription commands' queues, and the key changes that narrow subscriptions.
pub fn topology() -> GroupTopology {
    let mut topology = GroupTopology::handling(Recipient::Subscriptions, crate::RETRY_DELAYS.to_vec());
    topology.bindings.push((routing::EVENTS_EXCHANGE, routing::every_tenant_event_binding_of::<ApiKeyChanged>()));
    topology
}

/// The group: its commands and the key changes that narrow subscriptions.
pub fn groups(broker: Option<BrokerAdmin>) -> Vec<Group> {
    vec![Group::queue(topology(), Arc::new(Subscriptions::new(broker)))]
}

/// The routing keys `stored`'s queue is bound to: the events it asked for that its audience
/// reads, for the subaccounts it may hear of.
pub fn bindings(stored: &StoredSubscription) -> Result<Vec<String>, DbErr> {
    let tenant = TenantId::new(stored.tenant.as_str()).map_err(|e| DbErr::Custom(e.to_string()))?;
    let audience = &stored.audience;
    let mut keys = Vec::new();
    for event in stored.subscription.events.iter().filter(|event| audience.reads(event)) {
        if let Some(descriptor) = schemas::descriptor_of(event) {
            keys.extend(routing::audience_bindings(&tenant, audience.subaccount_ids.as_deref(), descriptor));
        }
    }
    Ok(keys)
}

/// Binds the queue of subscription `id` to what it may receive, its maker's key locked
/// meanwhile: a change to the key waits until the queue is bound, and its `api_key.changed`
/// then finds the binding to narrow (a change read before it would be missed otherwise).
async fn bind(tx: &DatabaseTransaction, broker: &BrokerAdmin, tenant: &str, id: Uuid) -> Result<(), SetUpError> {
    let Some(stored) = find(tx, tenant, id).await? else { return Ok(()) };
    if let Some(key) = stored.key_id {
        crate::integrations::keys::lock(tx, tenant, key).await?;
    }
    // Read again under the lock: the key as it is now.
    let Some(stored) = find(tx, tenant, id).await? else { return Ok(()) };
    broker.bind_exactly(&stored.subscription.queue, &bindings(&stored)?).await?;
    // Types no longer offered to partners (device-side events, once offered by their domain)
    // are not bound: the record says so too.
    let offered: Vec<&String> = stored
        .subscription
        .events
        .iter()
        .filter(|e| schemas::descriptor_of(e).is_some_and(|d| d.read.is_some()))
        .collect();
    if offered.len() < stored.subscription.events.len() {
        let update = Query::update()
            .table(TABLE)
            .value("events", to_json(&offered))
            .and_where(Expr::col("tenant").eq(tenant))
            .and_where(Expr::col("subscription_id").eq(id))
            .to_owned();
        tx.execute(&update).await?;
    }
    Ok(())
}

/// What a start found of the subscriber queues.
#[derive(Debug, Default)]
pub struct Reconciled {
    /// Queues bound as they must be.
    pub bound: usize,
    /// Queues that could not be (logged); the next start tries again.
    pub failed: usize,
}

/// Makes every subscription's queue bindings match what it may receive: at start-up, so queues
/// bound before routing keys named the subaccount (or while a key change was being handled
/// elsewhere) are bound as they must be. One queue's failure does not stop the others.
pub async fn reconcile_all(db: &DatabaseConnection, broker: &BrokerAdmin) -> Result<Reconciled, DbErr> {
    let query = Query::select().columns(["tenant", "subscription_id"]).from(TABLE).to_owned();
    let mut reconciled = Reconciled::default();
    for row in &db.query_all(&query).await? {
        let (tenant, id): (String, Uuid) = (row.try_get("", "tenant")?, row.try_get("", "subscription_id")?);
        let tx = db.begin().await?;
        match bind(&tx, broker, &tenant, id).await {
            Ok(()) => {
                tx.commit().await?;
                bus::outbox::committed();
                reconciled.bound += 1;
            }
            Err(error) => {
                tracing::warn!(%error, %tenant, subscription = %id, "could not bind a subscriber queue");
                reconciled.failed += 1;
            }
        }
    }
    Ok(reconciled)
}

/// Handles the subscription commands; without a broker to set up (the embedded default), it
/// refuses them.
pub struct Subscriptions {
    broker: Option<BrokerAdmin>,
}

impl Subscriptions {
    /// The handler, setting subscriptions up on `broker`.
    pub fn new(broker: Option<BrokerAdmin>) -> Self {
        Self { broker }
    }
}

/// Why setting a queue up failed: the database or the broker (both passing, so retried).
#[derive(Debug, thiserror::Error)]
pub enum SetUpError {
    /// The database failed.
    #[error(transparent)]
    Database(#[from] DbErr),
    /// The broker's management API failed.
    #[error(transparent)]
    Broker(#[from] BrokerError),
}

impl Handler for Subscriptions {
    fn handle<'a>(
        &'a self,
        context: Context<'a>,
    ) -> Pin<Box<dyn Future<Output = Result<Reply, HandlerError>> + Send + 'a>> {
        Box::pin(async move {
            let tx = context.database(GROUP)?;
            let message = context.message;
            let Some(broker) = &self.broker else {
                if matches!(message.data, AnyMessage::ApiKeyChanged(_)) {
                    return Ok(None);
                }
                let refusal =
                    Refusal::conflict("subscriptions need RabbitMQ (amqp.url); this platform runs without it");
                return Ok(Some(Outcome::<()>::Refused(refusal).to_reply()));
            };
            let reply = match &message.data {
                AnyMessage::ApiKeyChanged(changed) => {
                    narrow(tx, broker, message.tenant.as_str(), changed.key_id).await.map(|()| None)
                }
                AnyMessage::CreateSubscription(create) => {
                    create_one(tx, broker, message, create).await.map(|o| Some(o.to_reply()))
                }
                AnyMessage::DeleteSubscription(DeleteSubscription { subscription_id }) => {
                    let tenant = message.tenant.as_str();
                    delete_one(tx, broker, tenant, *subscription_id).await.map(|o| Some(o.to_reply()))
                }
                _ => return Err(HandlerError::unhandled(message)),
            };
            reply.map_err(|error| HandlerError::Retryable(error.to_string()))
        })
    }
}

async fn create_one(
    tx: &DatabaseTransaction,
    broker: &BrokerAdmin,
    message: &Envelope<AnyMessage>,
    create: &CreateSubscription,
) -> Result<Outcome<Subscription>, SetUpError> {
    let tenant: &TenantId = &message.tenant;
    if let Some(event) =
        create.events.iter().find(|event| schemas::descriptor_of(event).is_none_or(|d| d.read.is_none()))
    {
        return Ok(Outcome::Refused(Refusal::conflict(format!("`{event}` is not an event partners receive"))));
    }
    let queue = routing::subscriber_queue(tenant, &create.name);
    // Commands from edges older than audiences made the whole organisation's queues.
    let audience = create.audience.clone().unwrap_or_else(Audience::everything);
    let insert = Query::insert()
        .into_table(TABLE)
        .columns(COLUMNS)
        .values_panic([
            create.subscription_id.into(),
            tenant.as_str().into(),
            create.name.as_str().into(),
            queue.as_str().into(),
            create.username.as_str().into(),
            to_json(&create.events).into(),
            Utc::now().into(),
            create.key_id.into(),
            to_json(&audience).into(),
        ])
        .on_conflict(OnConflict::new().do_nothing().to_owned())
        .to_owned();
    if tx.execute(&insert).await?.rows_affected() == 0 {
        // Its own id again (a retry after the set-up failed) is set up again; a name in use is not.
        match find(tx, tenant.as_str(), create.subscription_id).await? {
            Some(_) => {}
            None => {
                let why = format!("a subscription named `{}` exists", create.name);
                return Ok(Outcome::Refused(Refusal::conflict(why)));
            }
        }
    }
    broker.provision(&queue, &create.username, &create.password_hash).await?;
    bind(tx, broker, tenant.as_str(), create.subscription_id).await?;
    let stored = find(tx, tenant.as_str(), create.subscription_id)
        .await?
        .ok_or_else(|| DbErr::Custom(format!("subscription {} neither written nor found", create.subscription_id)))?;
    Ok(Outcome::Done(stored.subscription))
}

async fn delete_one(
    tx: &DatabaseTransaction,
    broker: &BrokerAdmin,
    tenant: &str,
    id: Uuid,
) -> Result<Outcome<Deleted>, SetUpError> {
    let Some(subscription) = find(tx, tenant, id).await? else {
        return Ok(Outcome::Refused(Refusal::not_found(format!("no subscription {id}"))));
    };
    let delete = Query::delete()
        .from_table(TABLE)
        .and_where(Expr::col("tenant").eq(tenant))
        .and_where(Expr::col("subscription_id").eq(id))
        .to_owned();
    tx.execute(&delete).await?;
    broker.remove(&subscription.subscription.queue, &subscription.subscription.username).await?;
    Ok(Outcome::Done(Deleted::of(id)))
}

/// Binds the queues `key` made to what the key still reads, after it changed (a deleted key
/// leaves them as recorded).
async fn narrow(tx: &DatabaseTransaction, broker: &BrokerAdmin, tenant: &str, key: Uuid) -> Result<(), SetUpError> {
    let query = Query::select()
        .column("subscription_id")
        .from(TABLE)
        .and_where(Expr::col("tenant").eq(tenant))
        .and_where(Expr::col("key_id").eq(key))
        .to_owned();
    for row in &tx.query_all(&query).await? {
        bind(tx, broker, tenant, row.try_get("", "subscription_id")?).await?;
    }
    Ok(())
}
