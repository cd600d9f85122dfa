//! The `webhook_endpoints` table: where a tenant's events go, which ones, and the sealed secrets
//! they are signed with. Every statement names the tenant, so no tenant reaches another's rows.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use schemas::webhooks::{CreateWebhookEndpoint, RotateWebhookSecret, UpdateWebhookEndpoint};
use sea_orm::sea_query::{Expr, ExprTrait, Order, Query, SelectStatement};
use sea_orm::{ConnectionTrait, DbErr, QueryResult};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::columns::{json_column, to_json};

const TABLE: &str = "webhook_endpoints";

const COLUMNS: [&str; 15] = [
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

    /// Whether the endpoint takes `event`.
    pub fn wants(&self, event: &str) -> bool {
        self.endpoint.events.iter().any(|e| e == event || e == "*")
    }
}

fn rate(value: Option<u32>) -> Option<i32> {
    value.filter(|r| *r > 0).map(|r| i32::try_from(r).unwrap_or(i32::MAX))
}

fn from_row(row: &QueryResult) -> Result<StoredEndpoint, DbErr> {
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
        created_at: row.try_get("", "created_at")?,
        updated_at: row.try_get("", "updated_at")?,
    };
    Ok(StoredEndpoint {
        tenant: row.try_get("", "tenant")?,
        integration_id: row.try_get("", "integration_id")?,
        endpoint,
        secrets: json_column(row, TABLE, "secrets")?,
    })
}

fn select(tenant: &str) -> SelectStatement {
    Query::select().columns(COLUMNS).from("webhook_endpoints").and_where(Expr::col("tenant").eq(tenant)).to_owned()
}

async fn returned(
    db: &impl ConnectionTrait,
    statement: &impl sea_orm::StatementBuilder,
) -> Result<Option<StoredEndpoint>, DbErr> {
    db.query_one(statement).await?.as_ref().map(from_row).transpose()
}

/// Endpoint `id` of `tenant`.
pub async fn find(db: &impl ConnectionTrait, tenant: &str, id: Uuid) -> Result<Option<StoredEndpoint>, DbErr> {
    returned(db, &select(tenant).and_where(Expr::col("id").eq(id)).to_owned()).await
}

/// Endpoint `id` of `tenant`, its row locked until the transaction ends (PostgreSQL): ordered
/// deliveries to one endpoint are decided one transaction at a time.
pub async fn find_locked(db: &impl ConnectionTrait, tenant: &str, id: Uuid) -> Result<Option<StoredEndpoint>, DbErr> {
    let mut query = select(tenant).and_where(Expr::col("id").eq(id)).to_owned();
    crate::database::for_update(db, &mut query);
    returned(db, &query).await
}

/// One page of `tenant`'s endpoints, oldest first, and how many there are.
pub async fn list(
    db: &impl ConnectionTrait,
    tenant: &str,
    offset: u64,
    limit: u64,
) -> Result<(Vec<Endpoint>, u64), DbErr> {
    let query = select(tenant).order_by("created_at", Order::Asc).order_by("id", Order::Asc).to_owned();
    let (rows, total) = crate::pages::page_of(db, &query, offset, limit).await?;
    let endpoints = rows.iter().map(|row| from_row(row).map(|e| e.endpoint)).collect::<Result<_, _>>()?;
    Ok((endpoints, total))
}

/// `tenant`'s active endpoints that take `event`.
pub async fn subscribed(db: &impl ConnectionTrait, tenant: &str, event: &str) -> Result<Vec<StoredEndpoint>, DbErr> {
    let query = select(tenant).and_where(Expr::col("active").eq(true)).to_owned();
    let rows = db.query_all(&query).await?;
    let mut endpoints = Vec::new();
    for row in &rows {
        let endpoint = from_row(row)?;
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
