//! The integrations consumer group: partner API keys (create, update, regenerate, enable/disable,
//! delete), EVCare integrations (create, rotate, revoke, enable/disable, federated sign-in) and
//! the partner request log; and the console operators' sessions and failed sign-ins
//! (`crate::operators`). Every key change also emits `api_key.changed` through the outbox, so
//! edges drop what they cached about the key; revoking or disabling an integration emits its
//! event, so every edge refuses the integration's open machine tokens.
//!
//! Layout: `keys` (the `api_keys` table), `clients` (the `integrations` table), `identities`
//! (external users, session codes, portal sessions), `requests` (request log and usage counters).

pub mod clients;
pub mod identities;
pub mod keys;
pub mod requests;

use crate::groups::Group;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use bus::outbox;
use bus::{Context, Handler, HandlerError, Reply};
use chrono::Utc;
use schemas::Recipient;
use schemas::integrations::{
    ApiKeyChange, ApiKeyChanged, CompatibilityProfile, CreateApiKey, ExternalIdentityLinked, IntegrationActiveChanged,
    IntegrationCreated, IntegrationRevoked, IntegrationSecretRotated, SetCompatibilityProfile, UpdateApiKey,
};
use schemas::{AnyMessage, Envelope, TenantId};
use sea_orm::{ConnectionTrait, DatabaseTransaction, DbErr};
use uuid::Uuid;

use readside::{Outcome, Refusal};

pub use keys::{ApiKey, StoredKey};
pub use requests::LoggedRequest;

/// The key group's name: its queues are `voltbus.integrations…`.
pub const GROUP: &str = Recipient::Integrations.name();
/// The request log's group: a queue of its own, so a burst of logged requests never delays a
/// partner's key command behind it.
pub const REQUEST_LOG_GROUP: &str = Recipient::RequestLog.name();

/// The key commands' group and the request log's, one handler for both.
pub fn groups() -> Vec<Group> {
    let handler = Arc::new(Integrations);
    vec![Group::handling(Recipient::Integrations, handler.clone()), Group::handling(Recipient::RequestLog, handler)]
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

/// Whether the catalogue routes `message` to these groups.
fn handled_here(message: &AnyMessage) -> bool {
    matches!(message.descriptor().recipient, Some(Recipient::Integrations | Recipient::RequestLog))
}

async fn handle(tx: &DatabaseTransaction, message: &Envelope<AnyMessage>) -> Result<Reply, DbErr> {
    if let Some(reply) = handle_integration(tx, message).await? {
        return Ok(Some(reply));
    }
    if let Some(reply) = crate::operators::handle(tx, message).await? {
        return Ok(Some(reply));
    }
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
        AnyMessage::SetCompatibilityProfile(set) => {
            return Ok(Some(match set.profile.check() {
                Ok(()) => Outcome::Done(set_profile(tx, tenant, &set.profile).await?).to_reply(),
                Err(why) => Outcome::<()>::Refused(Refusal::invalid(why)).to_reply(),
            }));
        }
        _ => return Ok(None),
    };
    let Some(stored) = stored else {
        return Ok(Some(not_found(message.data.aggregate().and_then(|id| id.parse().ok()).unwrap_or_default())));
    };
    announce(tx, message, stored.key.id, change).await?;
    Ok(Some(Outcome::Done(stored.key).to_reply()))
}

/// Sets `tenant`'s compatibility profile, registering the organisation if it is new.
async fn set_profile(
    tx: &DatabaseTransaction,
    tenant: &str,
    profile: &CompatibilityProfile,
) -> Result<CompatibilityProfile, DbErr> {
    use sea_orm::sea_query::{OnConflict, Query};
    let upsert = Query::insert()
        .into_table("tenants")
        .columns(["id", "name", "signature_header", "key_prefix"])
        .values_panic([
            tenant.into(),
            tenant.into(),
            profile.signature_header.clone().into(),
            profile.key_prefix.clone().into(),
        ])
        .on_conflict(OnConflict::column("id").update_columns(["signature_header", "key_prefix"]).to_owned())
        .to_owned();
    tx.execute(&upsert).await?;
    Ok(profile.clone())
}

/// Sets `tenant`'s compatibility profile outside the API (the operator's command line), as the
/// `integrations` group would.
pub async fn bootstrap_profile(
    db: &sea_orm::DatabaseConnection,
    tenant: &TenantId,
    profile: CompatibilityProfile,
) -> Result<CompatibilityProfile, DbErr> {
    use sea_orm::TransactionTrait;
    let tx = db.begin().await?;
    let command = Envelope::new(tenant.clone(), "voltbus/cli", SetCompatibilityProfile { profile })
        .map(AnyMessage::SetCompatibilityProfile);
    let reply = handle(&tx, &command).await?;
    tx.commit().await?;
    bus::outbox::committed();
    match reply.map(serde_json::from_value::<Outcome<CompatibilityProfile>>) {
        Some(Ok(Outcome::Done(profile))) => Ok(profile),
        Some(Ok(Outcome::Refused(refusal))) => Err(DbErr::Custom(refusal.message)),
        other => Err(DbErr::Custom(format!("the profile was not set: {other:?}"))),
    }
}

/// The integration commands; `None` for any other message.
async fn handle_integration(
    tx: &DatabaseTransaction,
    message: &Envelope<AnyMessage>,
) -> Result<Option<serde_json::Value>, DbErr> {
    const SOURCE: &str = "voltbus/integrations";
    let tenant = message.tenant.as_str();
    let now = Utc::now();
    let missing = |id: Uuid| Outcome::<()>::Refused(Refusal::not_found(format!("no integration {id}"))).to_reply();
    let stored = match &message.data {
        AnyMessage::CreateIntegration(create) => {
            let stored = clients::insert(tx, tenant, create, now).await?;
            let created = IntegrationCreated {
                integration_id: create.integration_id,
                name: create.name.clone(),
                client_id: create.client_id.clone(),
                bundle: create.bundle,
            };
            outbox::enqueue_event(tx, message, SOURCE, created).await?;
            stored
        }
        AnyMessage::RotateIntegrationSecret(rotate) => {
            let id = rotate.integration_id;
            let until = now + chrono::Duration::seconds(i64::from(rotate.grace_seconds));
            let Some(stored) = clients::rotate(tx, tenant, id, &rotate.new_secret_hash, until, now).await? else {
                if clients::find(tx, tenant, id).await?.is_some() {
                    let refusal = Refusal::conflict(format!("integration {id} is revoked"));
                    return Ok(Some(Outcome::<()>::Refused(refusal).to_reply()));
                }
                return Ok(Some(missing(id)));
            };
            let rotated = IntegrationSecretRotated { integration_id: id, previous_secret_valid_until: until };
            outbox::enqueue_event(tx, message, SOURCE, rotated).await?;
            stored
        }
        AnyMessage::RevokeIntegration(revoke) => {
            let Some(stored) = clients::revoke(tx, tenant, revoke.integration_id, now).await? else {
                return Ok(Some(missing(revoke.integration_id)));
            };
            let revoked_at = stored.integration.revoked_at.unwrap_or(now);
            tracing::info!(integration = %revoke.integration_id, reason = %revoke.reason, "integration revoked");
            outbox::enqueue_event(
                tx,
                message,
                SOURCE,
                IntegrationRevoked { integration_id: revoke.integration_id, revoked_at },
            )
            .await?;
            stored
        }
        AnyMessage::SetIntegrationActive(set) => {
            let Some(stored) = clients::set_active(tx, tenant, set.integration_id, set.active, now).await? else {
                return Ok(Some(missing(set.integration_id)));
            };
            let changed = IntegrationActiveChanged { integration_id: set.integration_id, active: set.active };
            outbox::enqueue_event(tx, message, SOURCE, changed).await?;
            stored
        }
        AnyMessage::ExchangeExternalIdentity(exchange) => {
            match clients::find(tx, tenant, exchange.integration_id).await? {
                Some(integration) if integration.usable() => {}
                _ => return Ok(Some(missing(exchange.integration_id))),
            }
            let linked = identities::exchange(tx, tenant, exchange, now).await?;
            let event = ExternalIdentityLinked {
                integration_id: exchange.integration_id,
                external_subject: exchange.external_subject.clone(),
                user_id: linked.user_id,
                created: linked.created,
            };
            outbox::enqueue_event(tx, message, SOURCE, event).await?;
            return Ok(Some(Outcome::Done(linked).to_reply()));
        }
        AnyMessage::RedeemSessionCode(redeem) => {
            return Ok(Some(identities::redeem(tx, tenant, redeem, now).await?.to_reply()));
        }
        _ => return Ok(None),
    };
    Ok(Some(Outcome::Done(stored.integration).to_reply()))
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
    bus::outbox::committed();
    match reply.map(serde_json::from_value::<Outcome<ApiKey>>) {
        Some(Ok(Outcome::Done(key))) => Ok(key),
        other => Err(DbErr::Custom(format!("the key was not created: {other:?}"))),
    }
}
