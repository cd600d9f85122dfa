//! The `charging_sessions` table: a customer's charging sessions (EVM seed), priced as they go.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use schemas::Currency;
use schemas::charging::ChargingProgress;
use sea_orm::sea_query::{Expr, ExprTrait, Query};
use sea_orm::{ConnectionTrait, DbErr, FromQueryResult};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::columns::Named;

/// A session as the database keeps it.
#[derive(Clone, Debug, PartialEq)]
pub struct Session {
    /// Session id.
    pub id: Uuid,
    /// Charger.
    pub charger_id: Uuid,
    /// The app user (customer).
    pub customer_id: Uuid,
    /// Price per kWh, minor units.
    pub price: i64,
    /// Price per started minute connected without charging, minor units.
    pub waiting_price: i64,
    /// Currency of both.
    pub currency: Currency,
    /// The meter at the start, Wh.
    pub meter_start_wh: Option<f64>,
    /// The last meter reading, Wh.
    pub meter_last_wh: Option<f64>,
    /// The charger's time of that reading.
    pub meter_at: Option<DateTime<Utc>>,
    /// Seconds connected without charging.
    pub waiting_seconds: i64,
    /// Started.
    pub started_at: DateTime<Utc>,
}

/// A session's row.
#[derive(FromQueryResult)]
struct Row {
    session_id: Uuid,
    charger_id: Uuid,
    customer_id: Uuid,
    price: i64,
    waiting_price: i64,
    currency: Named<Currency>,
    meter_start_wh: Option<f64>,
    meter_last_wh: Option<f64>,
    meter_at: Option<DateTime<Utc>>,
    waiting_seconds: i32,
    started_at: DateTime<Utc>,
}

impl From<Row> for Session {
    fn from(row: Row) -> Self {
        Session {
            id: row.session_id,
            charger_id: row.charger_id,
            customer_id: row.customer_id,
            price: row.price,
            waiting_price: row.waiting_price,
            currency: row.currency.0,
            meter_start_wh: row.meter_start_wh,
            meter_last_wh: row.meter_last_wh,
            meter_at: row.meter_at,
            waiting_seconds: i64::from(row.waiting_seconds),
            started_at: row.started_at,
        }
    }
}

impl Session {
    /// Energy delivered so far, Wh.
    pub fn energy_wh(&self) -> f64 {
        match (self.meter_start_wh, self.meter_last_wh) {
            (Some(start), Some(last)) => (last - start).max(0.0),
            _ => 0.0,
        }
    }

    /// The price so far, minor units: energy at `price` per kWh, waiting at `waiting_price` per
    /// started minute, each rounded half up.
    pub fn amount(&self) -> i64 {
        #[allow(clippy::cast_possible_truncation)]
        let energy = (self.energy_wh() * self.price as f64 / 1000.0).round() as i64;
        let minutes = (self.waiting_seconds + 59) / 60;
        energy.saturating_add(minutes.saturating_mul(self.waiting_price))
    }

    /// The app's `{energy, waitingTime, amount}`, and the purchase on the last one.
    pub fn progress(&self, purchase_id: Option<Uuid>) -> ChargingProgress {
        ChargingProgress {
            energy: (self.energy_wh() / 10.0).round() / 100.0,
            waiting_time: u32::try_from(self.waiting_seconds).unwrap_or(u32::MAX),
            amount: self.amount(),
            currency: self.currency,
            purchase_id,
        }
    }
}

/// The columns a [`Session`] is read from.
const COLUMNS: [&str; 11] = [
    "session_id",
    "charger_id",
    "customer_id",
    "price",
    "waiting_price",
    "currency",
    "meter_start_wh",
    "meter_last_wh",
    "meter_at",
    "waiting_seconds",
    "started_at",
];

/// Active sessions with a reading whose app was last sent its progress before `before` (or
/// never), with their tenants, marked as sent at `now`: each is claimed by one process, whichever
/// marks it first.
pub async fn due_for_progress(
    db: &impl ConnectionTrait,
    before: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<Vec<(String, Session)>, DbErr> {
    let update = Query::update()
        .table("charging_sessions")
        .value("progress_at", now)
        .and_where(Expr::col("status").eq("active"))
        .and_where(Expr::col("meter_at").is_not_null())
        .and_where(Expr::col("progress_at").is_null().or(Expr::col("progress_at").lt(before)))
        .returning(Query::returning().columns(COLUMNS.into_iter().chain(["tenant"])))
        .to_owned();
    let rows = db.query_all(&update).await?;
    rows.iter().map(|row| Ok((row.try_get("", "tenant")?, Row::from_query_result(row, "")?.into()))).collect()
}

/// The active session of `tenant` where `column` is `id`, locked when `lock`.
pub async fn active(
    db: &impl ConnectionTrait,
    tenant: &str,
    column: &'static str,
    id: Uuid,
    lock: bool,
) -> Result<Option<Session>, DbErr> {
    let mut query = Query::select()
        .columns(COLUMNS)
        .from("charging_sessions")
        .and_where(Expr::col("tenant").eq(tenant))
        .and_where(Expr::col(column).eq(id))
        .and_where(Expr::col("status").eq("active"))
        .to_owned();
    if lock {
        crate::columns::for_update(db, &mut query);
    }
    Ok(db.query_one(&query).await?.map(|row| Row::from_query_result(&row, "")).transpose()?.map(Session::from))
}

/// The customer's active session, if any (the app's `device`).
pub async fn active_of(db: &impl ConnectionTrait, tenant: &str, customer_id: Uuid) -> Result<Option<Session>, DbErr> {
    active(db, tenant, "customer_id", customer_id, false).await
}

/// A charger's session in progress as its operator sees it: the charge, not who is charging.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CurrentSession {
    /// Session id.
    pub id: Uuid,
    /// Started.
    pub started_at: DateTime<Utc>,
    /// Energy delivered so far, Wh.
    pub energy_wh: f64,
    /// The charger's last meter reading (its energy register), Wh.
    pub meter_wh: Option<f64>,
    /// The charger's time of that reading.
    pub meter_at: Option<DateTime<Utc>>,
}

/// The sessions in progress on `chargers` of `tenant`, by charger.
pub async fn in_progress_on(
    db: &impl ConnectionTrait,
    tenant: &str,
    chargers: &[Uuid],
) -> Result<HashMap<Uuid, CurrentSession>, DbErr> {
    if chargers.is_empty() {
        return Ok(HashMap::new());
    }
    let query = Query::select()
        .columns(COLUMNS)
        .from("charging_sessions")
        .and_where(Expr::col("tenant").eq(tenant))
        .and_where(Expr::col("charger_id").is_in(chargers.iter().copied()))
        .and_where(Expr::col("status").eq("active"))
        .to_owned();
    let rows = db.query_all(&query).await?;
    rows.iter()
        .map(|row| {
            let session = Session::from(Row::from_query_result(row, "")?);
            let current = CurrentSession {
                id: session.id,
                started_at: session.started_at,
                energy_wh: session.energy_wh(),
                meter_wh: session.meter_last_wh,
                meter_at: session.meter_at,
            };
            Ok((session.charger_id, current))
        })
        .collect()
}
