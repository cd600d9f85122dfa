//! The `webhook_endpoints` table: where a tenant's events go, which ones, and the sealed secrets
//! they are signed with. Every statement names the tenant, so no tenant reaches another's rows.
//!
//! An endpoint also records the key that made it and what that caller could read (its
//! [`Audience`]); it receives only events about what that audience reads. Read with [`find`],
//! [`list`] or [`subscribed`], the audience is narrowed to what the key reads now, if the key
//! still exists: a key's subaccounts or permissions taken away are taken from its endpoints.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use schemas::integrations::Audience;
use schemas::webhooks::{CreateWebhookEndpoint, RotateWebhookSecret, UpdateWebhookEndpoint};
use schemas::{Kind, Reach};
use sea_orm::sea_query::{Expr, ExprTrait, Order, Query, SelectStatement};
use sea_orm::{ConnectionTrait, DbErr, QueryResult};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::columns::{audience_column, json_column, to_json};
use crate::integrations::keys::{narrowed_audience, with_maker};

const TABLE: &str = "webhook_endpoints";

const COLUMNS: [&str; 17] = [
    "id",
    "integration_id",
    "tenant",
    "url",
    "events",
    "headers",
    "description",
    "active",
    "ordered",
    "rate_limit_per_second",
    "secrets",
    "failing_since",
    "disabled_reason",
    "created_at",
    "updated_at",
    "key_id",
    "audience",
];

/// An endpoint as its owner sees it (never with its secrets).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Endpoint {
    /// Endpoint id.
    pub id: Uuid,
    /// Where deliveries are POSTed.
    pub url: String,
    /// Subscribed event types.
    pub events: Vec<String>,
    /// Extra headers sent with every delivery.
    pub headers: BTreeMap<String, String>,
    /// Free text.
    pub description: Option<String>,
    /// Whether deliveries are made.
    pub active: bool,
    /// Each event only after the previous one succeeded or finally failed.
    pub ordered: bool,
    /// Most deliveries per second, if limited.
    pub rate_limit_per_second: Option<u32>,
    /// Failing without a success since.
    pub failing_since: Option<DateTime<Utc>>,
    /// Why voltbus disabled it, when it did.
    pub disabled_reason: Option<String>,
    /// The subaccounts whose events it receives (besides the organisation's own); `null`: all.
    pub subaccount_ids: Option<Vec<Uuid>>,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Last changed.
    pub updated_at: DateTime<Utc>,
}

/// One signing secret, sealed by the vault.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SealedSecret {
    /// `Vault::seal` of the secret.
    pub ciphertext: String,
    /// When a rotated-out secret stops signing; none for the current one.
    pub expires_at: Option<DateTime<Utc>>,
}

/// An endpoint with what the dispatcher needs and nobody is shown.
#[derive(Clone, Debug)]
pub struct StoredEndpoint {
    /// Owner.
    pub tenant: String,
    /// The integration that created it, whose usage its deliveries are.
    pub integration_id: Option<Uuid>,
    /// The key that created it.
    pub key_id: Option<Uuid>,
    /// What it may receive.
    pub audience: Audience,
    /// Settings.
    pub endpoint: Endpoint,
    /// Newest first.
    pub secrets: Vec<SealedSecret>,
}

impl StoredEndpoint {
    /// The secrets that still sign at `now`, newest first.
    pub fn live_secrets(&self, now: DateTime<Utc>) -> impl Iterator<Item = &SealedSecret> {
        self.secrets.iter().filter(move |s| s.expires_at.is_none_or(|end| now < end))
    }

    /// Whether the endpoint subscribed to `event`.
    pub fn wants(&self, event: &str) -> bool {
        self.endpoint.events.iter().any(|e| e == event || e == "*")
    }

    /// The seed's event types it may receive: those it subscribed to that its audience reads.
    pub fn receivable(&self) -> impl Iterator<Item = &'static str> + '_ {
        super::EVENT_TYPES.iter().copied().filter(|event| self.wants(event) && self.audience.reads(event))
    }

    /// Whether the endpoint takes `event` about `reach`: it subscribed, and may receive it.
    pub fn takes(&self, event: &str, reach: Reach) -> bool {
        self.wants(event) && self.may_receive(event, reach)
    }

    /// Whether its audience reads `event` about `reach`. voltbus's own events (a test, an
    /// operational notice) are about the endpoint itself.
    pub fn may_receive(&self, event: &str, reach: Reach) -> bool {
        let readable = match schemas::descriptor_of(event) {
            Some(descriptor) if descriptor.kind == Kind::Event => self.audience.reads(event),
            _ => true,
        };
        readable && self.audience.admits(reach)
    }
}

fn rate(value: Option<u32>) -> Option<i32> {
    value.filter(|r| *r > 0).map(|r| i32::try_from(r).unwrap_or(i32::MAX))
}

/// An endpoint from a row; `with_maker` when the row carries its maker's key as it is now.
fn from_row(row: &QueryResult, with_maker: bool) -> Result<StoredEndpoint, DbErr> {
    let audience = if with_maker { narrowed_audience(row, TABLE)? } else { audience_column(row, TABLE)? };
    let rate: Option<i32> = row.try_get("", "rate_limit_per_second")?;
    let endpoint = Endpoint {
        id: row.try_get("", "id")?,
        url: row.try_get("", "url")?,
        events: json_column(row, TABLE, "events")?,
        headers: json_column(row, TABLE, "headers")?,
        description: row.try_get("", "description")?,
        active: row.try_get("", "active")?,
        ordered: row.try_get("", "ordered")?,
        rate_limit_per_second: rate.and_then(|r| u32::try_from(r).ok()),
        failing_since: row.try_get("", "failing_since")?,
        disabled_reason: row.try_get("", "disabled_reason")?,
        subaccount_ids: audience.subaccount_ids.clone(),
        created_at: row.try_get("", "created_at")?,
        updated_at: row.try_get("", "updated_at")?,
    };
    Ok(StoredEndpoint {
        tenant: row.try_get("", "tenant")?,
        integration_id: row.try_get("", "integration_id")?,
        key_id: row.try_get("", "key_id")?,
        audience,
        endpoint,
        secrets: json_column(row, TABLE, "secrets")?,
    })
}

/// `tenant`'s endpoints, each with what its maker's key reads now.
fn select(tenant: &str) -> SelectStatement {
    let mut query = Query::select().columns(COLUMNS).from(TABLE).and_where(Expr::col("tenant").eq(tenant)).to_owned();
    with_maker(&mut query, TABLE);
    query
}

async fn selected(db: &impl ConnectionTrait, query: &SelectStatement) -> Result<Option<StoredEndpoint>, DbErr> {
    db.query_one(query).await?.as_ref().map(|row| from_row(row, true)).transpose()
}

/// The endpoint a change wrote, as recorded (its maker's key unread).
async fn returned(
    db: &impl ConnectionTrait,
    statement: &impl sea_orm::StatementBuilder,
) -> Result<Option<StoredEndpoint>, DbErr> {
    db.query_one(statement).await?.as_ref().map(|row| from_row(row, false)).transpose()
}

/// Endpoint `id` of `tenant`.
pub async fn find(db: &impl ConnectionTrait, tenant: &str, id: Uuid) -> Result<Option<StoredEndpoint>, DbErr> {
    selected(db, &select(tenant).and_where(Expr::col("id").eq(id)).to_owned()).await
}

/// Endpoint `id` of `tenant`, its row locked until the transaction ends (PostgreSQL): ordered
/// deliveries to one endpoint are decided one transaction at a time.
pub async fn find_locked(db: &impl ConnectionTrait, tenant: &str, id: Uuid) -> Result<Option<StoredEndpoint>, DbErr> {
    let mut query = select(tenant).and_where(Expr::col("id").eq(id)).to_owned();
    crate::database::for_update(db, &mut query);
    selected(db, &query).await
}

/// `tenant`'s endpoints, oldest first (who may see which is the caller's to decide).
pub async fn list(db: &impl ConnectionTrait, tenant: &str) -> Result<Vec<StoredEndpoint>, DbErr> {
    let query = select(tenant).order_by("created_at", Order::Asc).order_by("id", Order::Asc).to_owned();
    db.query_all(&query).await?.iter().map(|row| from_row(row, true)).collect()
}

/// `tenant`'s active endpoints that take `event`.
pub async fn subscribed(db: &impl ConnectionTrait, tenant: &str, event: &str) -> Result<Vec<StoredEndpoint>, DbErr> {
    let query = select(tenant).and_where(Expr::col("active").eq(true)).to_owned();
    let rows = db.query_all(&query).await?;
    let mut endpoints = Vec::new();
    for row in &rows {
        let endpoint = from_row(row, true)?;
        if endpoint.wants(event) {
            endpoints.push(endpoint);
        }
    }
    Ok(endpoints)
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
