//! The integrations consumer group: partner API keys (create, update, regenerate, enable/disable,
//! delete) and the partner request log. Every key change also emits `api_key.changed` through the
//! outbox, so edges drop what they cached about the key.
//!
//! Layout: `keys` (the `api_keys` table), `requests` (request log and usage counters).

pub mod keys;
pub mod requests;

use std::future::Future;
use std::pin::Pin;

use bus::amqp::GroupTopology;
use bus::outbox;
use bus::{Context, Handler, HandlerError, Reply};
use chrono::Utc;
use schemas::integrations::{
    ApiKeyChange, ApiKeyChanged, CreateApiKey, DeleteApiKey, RecordApiRequests, RegenerateApiKey, SetApiKeyActive,
    UpdateApiKey,
};
use schemas::{AnyMessage, Envelope, TenantId, routing};
use sea_orm::{ConnectionTrait, DatabaseTransaction, DbErr};
use uuid::Uuid;

use crate::outcome::{Outcome, Refusal};

pub use keys::{ApiKey, StoredKey};
pub use requests::LoggedRequest;

/// The key group's name: its queues are `voltbus.integrations…`.
pub const GROUP: &str = "integrations";
/// The request log's group: a queue of its own, so a burst of logged requests never delays a
/// partner's key command behind it.
pub const REQUEST_LOG_GROUP: &str = "integrations-request-log";

/// The key commands' queues.
pub fn topology() -> GroupTopology {
    let keys = vec![
        routing::command_key_of::<CreateApiKey>(),
        routing::command_key_of::<UpdateApiKey>(),
        routing::command_key_of::<SetApiKeyActive>(),
        routing::command_key_of::<RegenerateApiKey>(),
        routing::command_key_of::<DeleteApiKey>(),
    ];
    GroupTopology::commands(GROUP, keys, crate::RETRY_DELAYS.to_vec())
}

/// The request log's queues.
pub fn request_log_topology() -> GroupTopology {
    GroupTopology::commands(
        REQUEST_LOG_GROUP,
        vec![routing::command_key_of::<RecordApiRequests>()],
        crate::RETRY_DELAYS.to_vec(),
    )
}

/// Handles the integrations commands.
pub struct Integrations;

impl Handler for Integrations {
    fn handle<'a>(
        &'a self,
        context: Context<'a>,
    ) -> Pin<Box<dyn Future<Output = Result<Reply, HandlerError>> + Send + 'a>> {
        Box::pin(async move {
            let tx = context.database("integrations")?;
            if !handled_here(&context.message.data) {
                return Err(HandlerError::unhandled(context.message));
            }
            handle(tx, context.message).await.map_err(|error| HandlerError::Retryable(error.to_string()))
        })
    }
}

fn handled_here(message: &AnyMessage) -> bool {
    matches!(
        message,
        AnyMessage::CreateApiKey(_)
            | AnyMessage::UpdateApiKey(_)
            | AnyMessage::SetApiKeyActive(_)
            | AnyMessage::RegenerateApiKey(_)
            | AnyMessage::DeleteApiKey(_)
            | AnyMessage::RecordApiRequests(_)
    )
}

async fn handle(tx: &DatabaseTransaction, message: &Envelope<AnyMessage>) -> Result<Reply, DbErr> {
    let tenant = message.tenant.as_str();
    let now = Utc::now();
    let (stored, change) = match &message.data {
        AnyMessage::CreateApiKey(create) => (Some(keys::insert(tx, tenant, create, now).await?), ApiKeyChange::Created),
        AnyMessage::UpdateApiKey(update) => (keys::update(tx, tenant, update, now).await?, ApiKeyChange::Updated),
        AnyMessage::SetApiKeyActive(set) => {
            let update = UpdateApiKey {
                key_id: set.key_id,
                name: None,
                permissions: None,
                scope: None,
                rate_limits: None,
                expires_at: None,
                clear_expiry: false,
                active: Some(set.active),
            };
            let change = if set.active { ApiKeyChange::Enabled } else { ApiKeyChange::Disabled };
            (keys::update(tx, tenant, &update, now).await?, change)
        }
        AnyMessage::RegenerateApiKey(regenerate) => {
            let (id, prefix, hash) = (regenerate.key_id, &regenerate.display_prefix, &regenerate.key_hash);
            (keys::replace_secret(tx, tenant, id, prefix, hash, now).await?, ApiKeyChange::Regenerated)
        }
        AnyMessage::DeleteApiKey(delete) => {
            if !keys::delete(tx, tenant, delete.key_id).await? {
                return Ok(Some(not_found(delete.key_id)));
            }
            announce(tx, message, delete.key_id, ApiKeyChange::Deleted).await?;
            return Ok(Some(Outcome::Done(crate::Deleted::of(delete.key_id)).to_reply()));
        }
        AnyMessage::RecordApiRequests(batch) => {
            requests::record(tx, tenant, &batch.requests).await?;
            return Ok(None);
        }
        _ => return Ok(None),
    };
    let Some(stored) = stored else {
        return Ok(Some(not_found(message.data.aggregate().and_then(|id| id.parse().ok()).unwrap_or_default())));
    };
    announce(tx, message, stored.key.id, change).await?;
    Ok(Some(Outcome::Done(stored.key).to_reply()))
}

fn not_found(key_id: Uuid) -> serde_json::Value {
    Outcome::<()>::Refused(Refusal::not_found(format!("no API key {key_id}"))).to_reply()
}

/// Emits `api_key.changed` in the handler's transaction.
async fn announce(
    tx: &impl ConnectionTrait,
    cause: &Envelope<AnyMessage>,
    key_id: Uuid,
    change: ApiKeyChange,
) -> Result<(), DbErr> {
    outbox::enqueue_event(tx, cause, "voltbus/integrations", ApiKeyChanged { key_id, change }).await
}

/// Creates a key outside the bus, for the operator's bootstrap command: the command goes through
/// the handler's own code in one transaction, so the rows and the event are the ones the bus would
/// make. Registers the tenant if it is new.
pub async fn bootstrap_key(
    db: &sea_orm::DatabaseConnection,
    tenant: &TenantId,
    create: CreateApiKey,
) -> Result<ApiKey, DbErr> {
    use sea_orm::TransactionTrait;
    use sea_orm::sea_query::{OnConflict, Query};
    let tx = db.begin().await?;
    let register = Query::insert()
        .into_table("tenants")
        .columns(["id", "name"])
        .values_panic([tenant.as_str().into(), tenant.as_str().into()])
        .on_conflict(OnConflict::column("id").do_nothing().to_owned())
        .to_owned();
    tx.execute(&register).await?;
    let command = Envelope::new(tenant.clone(), "voltbus/cli", create).map(AnyMessage::CreateApiKey);
    let reply = handle(&tx, &command).await?;
    tx.commit().await?;
    match reply.map(serde_json::from_value::<Outcome<ApiKey>>) {
        Some(Ok(Outcome::Done(key))) => Ok(key),
        other => Err(DbErr::Custom(format!("the key was not created: {other:?}"))),
    }
}
