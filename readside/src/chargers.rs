//! The `chargers` table (EVM seed): chargers an admin registered, with the state their OCPP
//! status notifications left, read as `Offline` when not heard from lately.

use std::time::Duration;

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use schemas::Currency;
use schemas::charging::{ChargerState, ConnectorStatus};
use sea_orm::sea_query::{Expr, ExprTrait, Order, Query, SelectStatement};
use sea_orm::{ConnectionTrait, DbErr, FromQueryResult, QueryResult};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::columns::Named;

/// The columns a [`Charger`] is read from.
pub const COLUMNS: [&str; 17] = [
    "charger_id",
    "device_number",
    "longitude",
    "latitude",
    "price",
    "waiting_price",
    "currency",
    "state",
    "connector_status",
    "error_code",
    "status_at",
    "last_seen_at",
    "ocpp_version",
    "ocpp_node",
    "connected_at",
    "created_at",
    "updated_at",
];

/// A charger as admins see it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Charger {
    /// Charger id.
    pub id: Uuid,
    /// Public number.
    pub device_number: String,
    /// `[longitude, latitude]`.
    pub location: [f64; 2],
    /// Price per kWh, minor units.
    pub price: i64,
    /// Price per minute connected without charging, minor units.
    pub waiting_price: i64,
    /// Currency of both prices.
    pub currency: Currency,
    /// The seed's state, `Offline` when not heard from lately.
    pub state: ChargerState,
    /// The last OCPP connector status reported.
    pub connector_status: Option<ConnectorStatus>,
    /// The last OCPP error code reported.
    pub error_code: Option<String>,
    /// The charger's time of its last status notification.
    pub status_at: Option<DateTime<Utc>>,
    /// When it was last heard from.
    pub last_seen_at: Option<DateTime<Utc>>,
    /// Its OCPP connection, once it has connected.
    pub ocpp: Option<OcppConnection>,
    /// The charging session in progress on it, if any (partner API reads only).
    #[serde(default)]
    pub session: Option<crate::charging::CurrentSession>,
    /// Registered.
    pub created_at: DateTime<Utc>,
    /// Master data or state last changed.
    pub updated_at: DateTime<Utc>,
}

/// A charger's OCPP connection.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct OcppConnection {
    /// The OCPP version it speaks (`1.6`, `2.0.1`).
    pub version: String,
    /// The voltbus process holding its socket; none while it is disconnected.
    pub node: Option<String>,
    /// When it connected, or disconnected when `node` is none.
    pub since: DateTime<Utc>,
}

/// A row of [`COLUMNS`].
#[derive(FromQueryResult)]
struct Row {
    charger_id: Uuid,
    device_number: String,
    longitude: f64,
    latitude: f64,
    price: i64,
    waiting_price: i64,
    currency: Named<Currency>,
    state: String,
    connector_status: Option<String>,
    error_code: Option<String>,
    status_at: Option<DateTime<Utc>>,
    last_seen_at: Option<DateTime<Utc>>,
    ocpp_version: Option<String>,
    ocpp_node: Option<String>,
    connected_at: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

fn enum_of<T: serde::de::DeserializeOwned>(text: &str) -> Option<T> {
    serde_json::from_value(serde_json::Value::String(text.to_owned())).ok()
}

/// A charger from a row of [`COLUMNS`], as it reads at `now` (`Offline` when not heard from for
/// `offline_after`).
pub fn from_row(row: &QueryResult, now: DateTime<Utc>, offline_after: Duration) -> Result<Charger, DbErr> {
    let row = Row::from_query_result(row, "")?;
    let window = chrono::Duration::from_std(offline_after).unwrap_or(chrono::Duration::MAX);
    let heard = row.last_seen_at.is_some_and(|at| now - at <= window);
    Ok(Charger {
        id: row.charger_id,
        device_number: row.device_number,
        location: [row.longitude, row.latitude],
        price: row.price,
        waiting_price: row.waiting_price,
        currency: row.currency.0,
        state: if heard { enum_of(&row.state).unwrap_or(ChargerState::Error) } else { ChargerState::Offline },
        connector_status: row.connector_status.as_deref().and_then(enum_of),
        error_code: row.error_code,
        status_at: row.status_at,
        last_seen_at: row.last_seen_at,
        ocpp: row.ocpp_version.zip(row.connected_at).map(|(version, since)| OcppConnection {
            version,
            node: row.ocpp_node,
            since,
        }),
        session: None,
        created_at: row.created_at,
        updated_at: row.updated_at,
    })
}

/// `tenant`'s chargers.
pub fn select(tenant: &str) -> SelectStatement {
    Query::select().columns(COLUMNS).from("chargers").and_where(Expr::col("tenant").eq(tenant)).to_owned()
}

/// Charger `id` of `tenant`.
pub async fn find(
    db: &impl ConnectionTrait,
    tenant: &str,
    id: Uuid,
    offline_after: Duration,
) -> Result<Option<Charger>, DbErr> {
    let query = select(tenant).and_where(Expr::col("charger_id").eq(id)).to_owned();
    db.query_one(&query).await?.map(|row| from_row(&row, Utc::now(), offline_after)).transpose()
}

/// One page of `tenant`'s chargers by number, and how many there are.
pub async fn list(
    db: &impl ConnectionTrait,
    tenant: &str,
    offline_after: Duration,
    offset: u64,
    limit: u64,
) -> Result<(Vec<Charger>, u64), DbErr> {
    let query = select(tenant).order_by("device_number", Order::Asc).to_owned();
    let (rows, total) = crate::pages::page_of(db, &query, offset, limit).await?;
    let now = Utc::now();
    Ok((rows.iter().map(|row| from_row(row, now, offline_after)).collect::<Result<_, _>>()?, total))
}

/// `tenant`'s chargers inside the box `[west, south, east, north]` (west > east: the box crosses
/// the antimeridian), at most `limit`, by number.
pub async fn in_box(
    db: &impl ConnectionTrait,
    tenant: &str,
    [west, south, east, north]: [f64; 4],
    offline_after: Duration,
    limit: u64,
) -> Result<Vec<Charger>, DbErr> {
    let longitude = if west <= east {
        Expr::col("longitude").between(west, east)
    } else {
        Expr::col("longitude").gte(west).or(Expr::col("longitude").lte(east))
    };
    let query = select(tenant)
        .and_where(Expr::col("latitude").between(south, north))
        .and_where(longitude)
        .order_by("device_number", Order::Asc)
        .limit(limit)
        .to_owned();
    let now = Utc::now();
    db.query_all(&query).await?.iter().map(|row| from_row(row, now, offline_after)).collect()
}

/// The organisation of charger `id` and the hash of its OCPP password (empty when none is set),
/// for the OCPP door's check at the upgrade; `None` when no such charger exists.
pub async fn ocpp_credentials(db: &impl ConnectionTrait, id: Uuid) -> Result<Option<(String, String)>, DbErr> {
    let query = Query::select()
        .columns(["tenant", "ocpp_password_hash"])
        .from("chargers")
        .and_where(Expr::col("charger_id").eq(id))
        .to_owned();
    let Some(row) = db.query_one(&query).await? else { return Ok(None) };
    let hash: Option<String> = row.try_get("", "ocpp_password_hash")?;
    Ok(Some((row.try_get("", "tenant")?, hash.unwrap_or_default())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_names_read_back_and_unknown_ones_read_as_none() {
        assert_eq!(enum_of::<ConnectorStatus>("SuspendedEV"), Some(ConnectorStatus::SuspendedEV));
        assert_eq!(enum_of::<ConnectorStatus>("Exploded"), None);
    }
}
