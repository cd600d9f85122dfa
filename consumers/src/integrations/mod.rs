//! The integrations consumer group: partner API keys (create, update, regenerate, enable/disable,
//! delete) and the partner request log. Every key change also emits `api_key.changed` through the
//! outbox, so edges drop what they cached about the key.
//!
//! Layout: `keys` (the `api_keys` table), `requests` (request log and usage counters).

pub mod keys;
pub mod requests;

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use bus::amqp::GroupTopology;
use bus::outbox::{self, Destination};
use bus::{Context, Handler, HandlerError, Reply};
use chrono::Utc;
use schemas::integrations::{ApiKeyChange, ApiKeyChanged, UpdateApiKey};
use schemas::{AnyMessage, Domain, Envelope, TenantId};
use sea_orm::{ConnectionTrait, DatabaseTransaction, DbErr};
use uuid::Uuid;

use crate::outcome::{Outcome, Refusal};

pub use keys::{ApiKey, StoredKey};
pub use requests::LoggedRequest;

/// The group's name: its queues are `voltbus.integrations…`.
pub const GROUP: &str = "integrations";

/// Delays before the retries of a failed command.
const RETRY_DELAYS: [Duration; 3] = [Duration::from_millis(200), Duration::from_secs(2), Duration::from_secs(10)];

/// The group's queues: every integrations command.
pub fn topology() -> GroupTopology {
    GroupTopology::commands_of(GROUP, Domain::Integrations, RETRY_DELAYS.to_vec())
}

/// Handles the integrations commands.
pub struct Integrations;

impl Handler for Integrations {
    fn handle<'a>(
        &'a self,
        context: Context<'a>,
    ) -> Pin<Box<dyn Future<Output = Result<Reply, HandlerError>> + Send + 'a>> {
        Box::pin(async move {
            let Some(tx) = context.transaction else {
                return Err(HandlerError::Permanent("the integrations group needs a database".into()));
            };
            if !handled_here(&context.message.data) {
                // Integration commands of later issues: kept in the dead-letter queue, replayable
                // once a handler exists, instead of acknowledged and lost.
                let type_name = context.message.type_name.as_str();
                return Err(HandlerError::Permanent(format!("`{type_name}` has no handler in this version")));
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
    let (key_id, change) = match &message.data {
        AnyMessage::CreateApiKey(create) => {
            keys::insert(tx, tenant, create, now).await?;
            (create.key_id, ApiKeyChange::Created)
        }
        AnyMessage::UpdateApiKey(update) => {
            if !keys::update(tx, tenant, update, now).await? {
                return Ok(Some(not_found(update.key_id)));
            }
            (update.key_id, ApiKeyChange::Updated)
        }
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
            if !keys::update(tx, tenant, &update, now).await? {
                return Ok(Some(not_found(set.key_id)));
            }
            (set.key_id, if set.active { ApiKeyChange::Enabled } else { ApiKeyChange::Disabled })
        }
        AnyMessage::RegenerateApiKey(regenerate) => {
            let replaced = keys::replace_secret(
                tx,
                tenant,
                regenerate.key_id,
                &regenerate.display_prefix,
                &regenerate.key_hash,
                now,
            )
            .await?;
            if !replaced {
                return Ok(Some(not_found(regenerate.key_id)));
            }
            (regenerate.key_id, ApiKeyChange::Regenerated)
        }
        AnyMessage::DeleteApiKey(delete) => {
            if !keys::delete(tx, tenant, delete.key_id).await? {
                return Ok(Some(not_found(delete.key_id)));
            }
            announce(tx, message, delete.key_id, ApiKeyChange::Deleted).await?;
            return Ok(Some(Outcome::Done(serde_json::json!({ "id": delete.key_id, "deleted": true })).to_reply()));
        }
        AnyMessage::RecordApiRequests(batch) => {
            requests::record(tx, tenant, &batch.requests).await?;
            return Ok(None);
        }
        _ => return Ok(None),
    };
    announce(tx, message, key_id, change).await?;
    match keys::find(tx, tenant, key_id).await? {
        Some(stored) => Ok(Some(Outcome::Done(stored.key).to_reply())),
        None => Ok(Some(not_found(key_id))),
    }
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
    let event =
        Envelope::new(cause.tenant.clone(), "voltbus/integrations", ApiKeyChanged { key_id, change }).caused_by(cause);
    outbox::enqueue(tx, &event, &Destination::event::<ApiKeyChanged>(&cause.tenant)).await
}

/// Creates a key outside the bus, for the operator's bootstrap command: the same rows, in one
/// transaction, as the handler would write. Registers the tenant if it is new.
pub async fn bootstrap_key(
    db: &sea_orm::DatabaseConnection,
    tenant: &TenantId,
    create: schemas::integrations::CreateApiKey,
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
    let now = Utc::now();
    keys::insert(&tx, tenant.as_str(), &create, now).await?;
    let envelope = Envelope::new(
        tenant.clone(),
        "voltbus/cli",
        ApiKeyChanged { key_id: create.key_id, change: ApiKeyChange::Created },
    );
    outbox::enqueue(&tx, &envelope, &Destination::event::<ApiKeyChanged>(tenant)).await?;
    let stored = keys::find(&tx, tenant.as_str(), create.key_id).await?;
    tx.commit().await?;
    stored.map(|s| s.key).ok_or_else(|| DbErr::RecordNotFound(format!("api key {}", create.key_id)))
}
