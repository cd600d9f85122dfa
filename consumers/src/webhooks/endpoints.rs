//! The `webhook_endpoints` table's writes: endpoints created, changed, rotated, deleted, and
//! their health. Reading them is `readside::webhooks::endpoints`'.

use chrono::{DateTime, Utc};
use schemas::webhooks::{CreateWebhookEndpoint, RotateWebhookSecret, UpdateWebhookEndpoint};
use sea_orm::sea_query::{Expr, ExprTrait, Query};
use sea_orm::{ConnectionTrait, DbErr};
use uuid::Uuid;

use readside::columns::to_json;
pub use readside::webhooks::endpoints::{
    COLUMNS, Endpoint, SealedSecret, StoredEndpoint, TABLE, find, find_locked, list, returned, subscribed,
};

fn rate(value: Option<u32>) -> Option<i32> {
    value.filter(|r| *r > 0).map(|r| i32::try_from(r).unwrap_or(i32::MAX))
}

/// Stores a new endpoint.
pub async fn insert(
    db: &impl ConnectionTrait,
    tenant: &str,
    command: &CreateWebhookEndpoint,
    now: DateTime<Utc>,
) -> Result<StoredEndpoint, DbErr> {
    let secrets = vec![SealedSecret { ciphertext: command.secret_ciphertext.expose().to_owned(), expires_at: None }];
    let insert = Query::insert()
        .into_table("webhook_endpoints")
        .columns(COLUMNS)
        .values_panic([
            command.endpoint_id.into(),
            command.integration_id.into(),
            tenant.into(),
            command.url.as_str().into(),
            to_json(&command.events).into(),
            to_json(&command.headers).into(),
            command.description.clone().into(),
            command.active.into(),
            command.ordered.into(),
            rate(command.rate_limit_per_second).into(),
            to_json(&secrets).into(),
            Option::<DateTime<Utc>>::None.into(),
            Option::<String>::None.into(),
            now.into(),
            now.into(),
            command.key_id.into(),
            command.audience.as_ref().map(to_json).into(),
        ])
        .returning(Query::returning().columns(COLUMNS))
        .to_owned();
    returned(db, &insert).await?.ok_or(DbErr::RecordNotInserted)
}

/// Applies `command`; `None` when there is no such endpoint.
pub async fn update(
    db: &impl ConnectionTrait,
    tenant: &str,
    command: &UpdateWebhookEndpoint,
    now: DateTime<Utc>,
) -> Result<Option<StoredEndpoint>, DbErr> {
    let mut update = Query::update();
    update.table("webhook_endpoints").value("updated_at", now);
    if let Some(url) = &command.url {
        update.value("url", url.as_str());
    }
    if let Some(events) = &command.events {
        update.value("events", to_json(events));
    }
    if let Some(headers) = &command.headers {
        update.value("headers", to_json(headers));
    }
    if let Some(description) = &command.description {
        update.value("description", description.as_str());
    }
    if let Some(active) = command.active {
        update.value("active", active);
        if active {
            // Re-enabled by its owner: judged afresh.
            update
                .value("disabled_reason", Option::<String>::None)
                .value("failing_since", Option::<DateTime<Utc>>::None);
        }
    }
    if let Some(ordered) = command.ordered {
        update.value("ordered", ordered);
    }
    if let Some(limit) = command.rate_limit_per_second {
        update.value("rate_limit_per_second", rate(Some(limit)));
    }
    if let Some(audience) = &command.audience {
        update.value("audience", to_json(audience));
    }
    update
        .and_where(Expr::col("tenant").eq(tenant))
        .and_where(Expr::col("id").eq(command.endpoint_id))
        .returning(Query::returning().columns(COLUMNS));
    returned(db, &update).await
}

/// Puts a new secret first; the others stop signing `grace_seconds` from now (or sooner, if
/// they were already due to).
pub async fn rotate(
    db: &impl ConnectionTrait,
    tenant: &str,
    command: &RotateWebhookSecret,
    now: DateTime<Utc>,
) -> Result<Option<StoredEndpoint>, DbErr> {
    let Some(current) = find(db, tenant, command.endpoint_id).await? else { return Ok(None) };
    let until = now + chrono::Duration::seconds(i64::from(command.grace_seconds));
    let mut secrets =
        vec![SealedSecret { ciphertext: command.secret_ciphertext.expose().to_owned(), expires_at: None }];
    secrets.extend(current.live_secrets(now).map(|old| SealedSecret {
        ciphertext: old.ciphertext.clone(),
        expires_at: Some(old.expires_at.map_or(until, |end| std::cmp::min(end, until))),
    }));
    let update = Query::update()
        .table("webhook_endpoints")
        .value("secrets", to_json(&secrets))
        .value("updated_at", now)
        .and_where(Expr::col("tenant").eq(tenant))
        .and_where(Expr::col("id").eq(command.endpoint_id))
        .returning(Query::returning().columns(COLUMNS))
        .to_owned();
    returned(db, &update).await
}

/// Deletes endpoint `id`; false when there was none. Its deliveries and log stay until purged.
pub async fn delete(db: &impl ConnectionTrait, tenant: &str, id: Uuid) -> Result<bool, DbErr> {
    let delete = Query::delete()
        .from_table("webhook_endpoints")
        .and_where(Expr::col("tenant").eq(tenant))
        .and_where(Expr::col("id").eq(id))
        .to_owned();
    Ok(db.execute(&delete).await?.rows_affected() == 1)
}

/// How an attempt changes the endpoint's health.
#[derive(Debug, PartialEq)]
pub enum Health {
    /// Nothing to tell.
    Unchanged,
    /// The first success after failures.
    Recovered,
    /// Failing for longer than allowed: now disabled.
    Disabled,
}

/// Records an attempt's result in the endpoint's health, disabling it when it has failed
/// without a single success for longer than `disable_after`.
pub async fn record_health(
    db: &impl ConnectionTrait,
    endpoint: &StoredEndpoint,
    succeeded: bool,
    now: DateTime<Utc>,
    disable_after: chrono::Duration,
) -> Result<Health, DbErr> {
    let (tenant, id) = (endpoint.tenant.as_str(), endpoint.endpoint.id);
    let mut update = Query::update();
    update.table("webhook_endpoints").and_where(Expr::col("tenant").eq(tenant)).and_where(Expr::col("id").eq(id));
    let health = match (succeeded, endpoint.endpoint.failing_since) {
        (true, _) => {
            // The row decides, not the snapshot: the dispatcher's copy may predate a failure.
            update
                .value("failing_since", Option::<DateTime<Utc>>::None)
                .and_where(Expr::col("failing_since").is_not_null());
            Health::Recovered
        }
        (false, None) => {
            // Only the first failure sets it: a concurrent attempt must not move it forward.
            update.value("failing_since", now).and_where(Expr::col("failing_since").is_null());
            Health::Unchanged
        }
        (false, Some(since)) if now - since > disable_after => {
            let reason = format!("failing without a success since {}", since.to_rfc3339());
            update.value("active", false).value("disabled_reason", reason).value("updated_at", now);
            update.and_where(Expr::col("active").eq(true));
            Health::Disabled
        }
        (false, Some(_)) => return Ok(Health::Unchanged),
    };
    let changed = db.execute(&update).await?.rows_affected() == 1;
    Ok(if changed { health } else { Health::Unchanged })
}
