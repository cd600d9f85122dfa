//! The `webhook_endpoints` table as read: where a tenant's events go, which ones, and the sealed
//! secrets they are signed with. Every statement names the tenant, so no tenant reaches another's rows.
//!
//! An endpoint also records the key that made it and what that caller could read (its
//! [`Audience`]); it receives only events about what that audience reads. Read with [`find`],
//! [`list`] or [`subscribed`], the audience is narrowed to what the key reads now, if the key
//! still exists: a key's subaccounts or permissions taken away are taken from its endpoints.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use schemas::integrations::Audience;
use schemas::webhooks::EVENT_TYPES;
use schemas::{Kind, Reach};
use sea_orm::sea_query::{Expr, ExprTrait, Order, Query, SelectStatement};
use sea_orm::{ConnectionTrait, DbErr, FromQueryResult, QueryResult};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::columns::{Json, audience_column};
use crate::integrations::keys::{narrowed_audience, with_maker};

/// The table.
pub const TABLE: &str = "webhook_endpoints";

/// The columns a [`StoredEndpoint`] is read from (besides its maker's, [`with_maker`]).
pub const COLUMNS: [&str; 17] = [
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
    /// The header its organisation's compatibility profile names for the seed's signature
    /// (`None`: `X-Voltbus-Signature`).
    pub signature_header: Option<String>,
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
        EVENT_TYPES.iter().copied().filter(|event| self.wants(event) && self.audience.reads(event))
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

/// A row of [`COLUMNS`] (the audience is read apart, with or without its maker's).
#[derive(FromQueryResult)]
struct Row {
    id: Uuid,
    integration_id: Option<Uuid>,
    tenant: String,
    url: String,
    events: Json<Vec<String>>,
    headers: Json<BTreeMap<String, String>>,
    description: Option<String>,
    active: bool,
    ordered: bool,
    rate_limit_per_second: Option<i32>,
    secrets: Json<Vec<SealedSecret>>,
    failing_since: Option<DateTime<Utc>>,
    disabled_reason: Option<String>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    key_id: Option<Uuid>,
}

/// An endpoint from a row; `with_maker` when the row carries its maker's key as it is now.
fn from_row(row: &QueryResult, with_maker: bool) -> Result<StoredEndpoint, DbErr> {
    let audience = if with_maker { narrowed_audience(row, TABLE)? } else { audience_column(row, TABLE)? };
    // Read with the maker's columns; a row a change returned has no such column.
    let signature_header = if with_maker { row.try_get("", "signature_header")? } else { None };
    let row = Row::from_query_result(row, "")?;
    let endpoint = Endpoint {
        id: row.id,
        url: row.url,
        events: row.events.0,
        headers: row.headers.0,
        description: row.description,
        active: row.active,
        ordered: row.ordered,
        rate_limit_per_second: row.rate_limit_per_second.and_then(|r| u32::try_from(r).ok()),
        failing_since: row.failing_since,
        disabled_reason: row.disabled_reason,
        subaccount_ids: audience.subaccount_ids.clone(),
        created_at: row.created_at,
        updated_at: row.updated_at,
    };
    Ok(StoredEndpoint {
        tenant: row.tenant,
        integration_id: row.integration_id,
        key_id: row.key_id,
        audience,
        endpoint,
        secrets: row.secrets.0,
        signature_header,
    })
}

/// `tenant`'s endpoints, each with what its maker's key reads now.
fn select(tenant: &str) -> SelectStatement {
    let mut query = Query::select().columns(COLUMNS).from(TABLE).and_where(Expr::col("tenant").eq(tenant)).to_owned();
    with_maker(&mut query, TABLE);
    let header = format!("(SELECT t.signature_header FROM tenants t WHERE t.id = {TABLE}.tenant)");
    query.expr_as(Expr::cust(header), "signature_header");
    query
}

async fn selected(db: &impl ConnectionTrait, query: &SelectStatement) -> Result<Option<StoredEndpoint>, DbErr> {
    db.query_one(query).await?.as_ref().map(|row| from_row(row, true)).transpose()
}

/// The endpoint a change wrote (`RETURNING` [`COLUMNS`]), as recorded (its maker's key unread).
pub async fn returned(
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
    crate::columns::for_update(db, &mut query);
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
