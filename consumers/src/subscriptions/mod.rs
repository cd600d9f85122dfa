//! Subscriptions (INVERS Messaging API): an integration's own durable AMQP queue, bound to the
//! events of its tenant it asked for (and may read), with a broker user that may read that queue
//! and nothing else: not another queue, not another tenant's events, and never publish.
//!
//! The `subscriptions` group records each subscription and sets the broker up through its
//! management API (`broker`). A failed set-up rolls the record back and is retried; every step
//! is idempotent.
//!
//! Layout: this file (the group and the table), `broker` (RabbitMQ's management API).

pub mod broker;

use std::future::Future;
use std::pin::Pin;

use bus::amqp::GroupTopology;
use bus::{Context, Handler, HandlerError, Reply};
use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use schemas::integrations::{CreateSubscription, DeleteSubscription};
use schemas::{AnyMessage, Envelope, TenantId, routing};
use sea_orm::sea_query::{Expr, ExprTrait, OnConflict, Order, Query};
use sea_orm::{ConnectionTrait, DatabaseTransaction, DbErr, QueryResult};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::columns::{json_column, to_json};
use crate::outcome::{Deleted, Outcome, Refusal};
pub use broker::{BrokerAdmin, BrokerError};

/// The group's name: its queues are `voltbus.subscriptions…`.
pub const GROUP: &str = "subscriptions";

const TABLE: &str = "subscriptions";
const COLUMNS: [&str; 7] = ["subscription_id", "tenant", "name", "queue", "username", "events", "created_at"];

/// The subscription commands' queues.
pub fn topology() -> GroupTopology {
    let keys = vec![routing::command_key_of::<CreateSubscription>(), routing::command_key_of::<DeleteSubscription>()];
    GroupTopology::commands(GROUP, keys, crate::RETRY_DELAYS.to_vec())
}

/// A subscription as its owner sees it (never with its password).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Subscription {
    /// Subscription id.
    pub id: Uuid,
    /// Its name.
    pub name: String,
    /// The queue to consume.
    pub queue: String,
    /// The broker user that may read it.
    pub username: String,
    /// Event types delivered to it.
    pub events: Vec<String>,
    /// Created.
    pub created_at: DateTime<Utc>,
}

fn from_row(row: &QueryResult) -> Result<Subscription, DbErr> {
    Ok(Subscription {
        id: row.try_get("", "subscription_id")?,
        name: row.try_get("", "name")?,
        queue: row.try_get("", "queue")?,
        username: row.try_get("", "username")?,
        events: json_column(row, TABLE, "events")?,
        created_at: row.try_get("", "created_at")?,
    })
}

/// `tenant`'s subscriptions, oldest first.
pub async fn list(db: &impl ConnectionTrait, tenant: &str) -> Result<Vec<Subscription>, DbErr> {
    let query = Query::select()
        .columns(COLUMNS)
        .from(TABLE)
        .and_where(Expr::col("tenant").eq(tenant))
        .order_by("created_at", Order::Asc)
        .to_owned();
    db.query_all(&query).await?.iter().map(from_row).collect()
}

/// Subscription `id` of `tenant`.
pub async fn find(db: &impl ConnectionTrait, tenant: &str, id: Uuid) -> Result<Option<Subscription>, DbErr> {
    let query = Query::select()
        .columns(COLUMNS)
        .from(TABLE)
        .and_where(Expr::col("tenant").eq(tenant))
        .and_where(Expr::col("subscription_id").eq(id))
        .to_owned();
    db.query_one(&query).await?.as_ref().map(from_row).transpose()
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

/// Why a command failed: the database or the broker (both passing, so retried).
#[derive(Debug, thiserror::Error)]
enum Failure {
    #[error(transparent)]
    Database(#[from] DbErr),
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
                let refusal =
                    Refusal::conflict("subscriptions need RabbitMQ (amqp.url); this platform runs without it");
                return Ok(Some(Outcome::<()>::Refused(refusal).to_reply()));
            };
            let reply = match &message.data {
                AnyMessage::CreateSubscription(create) => {
                    create_one(tx, broker, message, create).await.map(|o| o.to_reply())
                }
                AnyMessage::DeleteSubscription(DeleteSubscription { subscription_id }) => {
                    delete_one(tx, broker, message.tenant.as_str(), *subscription_id).await.map(|o| o.to_reply())
                }
                _ => return Err(HandlerError::unhandled(message)),
            };
            reply.map(Some).map_err(|error| HandlerError::Retryable(error.to_string()))
        })
    }
}

async fn create_one(
    tx: &DatabaseTransaction,
    broker: &BrokerAdmin,
    message: &Envelope<AnyMessage>,
    create: &CreateSubscription,
) -> Result<Outcome<Subscription>, Failure> {
    let tenant: &TenantId = &message.tenant;
    let mut keys = Vec::with_capacity(create.events.len());
    for event in &create.events {
        let Some(descriptor) = schemas::descriptor_of(event) else {
            return Ok(Outcome::Refused(Refusal::conflict(format!("`{event}` is not an event type"))));
        };
        keys.push(routing::event_key(tenant, descriptor));
    }
    let queue = routing::subscriber_queue(tenant, &create.name);
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
    broker.provision(&queue, &keys, &create.username, &create.password_hash).await?;
    let stored = find(tx, tenant.as_str(), create.subscription_id)
        .await?
        .ok_or_else(|| DbErr::Custom(format!("subscription {} neither written nor found", create.subscription_id)))?;
    Ok(Outcome::Done(stored))
}

async fn delete_one(
    tx: &DatabaseTransaction,
    broker: &BrokerAdmin,
    tenant: &str,
    id: Uuid,
) -> Result<Outcome<Deleted>, Failure> {
    let Some(subscription) = find(tx, tenant, id).await? else {
        return Ok(Outcome::Refused(Refusal::not_found(format!("no subscription {id}"))));
    };
    let delete = Query::delete()
        .from_table(TABLE)
        .and_where(Expr::col("tenant").eq(tenant))
        .and_where(Expr::col("subscription_id").eq(id))
        .to_owned();
    tx.execute(&delete).await?;
    broker.remove(&subscription.queue, &subscription.username).await?;
    Ok(Outcome::Done(Deleted::of(id)))
}
