//! Commands sent to vehicles (`vehicle_commands`) as partners read them.

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use schemas::vehicles::VehicleCommand;
use sea_orm::sea_query::{Expr, ExprTrait, Query};
use sea_orm::{ConnectionTrait, DbErr, FromQueryResult, QueryResult};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::columns::Named;

/// The table.
pub const TABLE: &str = "vehicle_commands";
/// The columns a [`CommandStatus`] is read from.
pub const COLUMNS: [&str; 11] = [
    "command_id",
    "tenant",
    "vehicle_id",
    "subaccount_id",
    "command",
    "status",
    "reason",
    "created_at",
    "sent_at",
    "expires_at",
    "completed_at",
];

pub use schemas::vehicles::CommandState;

/// A command as partners see it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CommandStatus {
    /// Command id.
    pub id: Uuid,
    /// Vehicle.
    pub vehicle_id: Uuid,
    /// What was asked.
    pub command: VehicleCommand,
    /// Where it stands.
    pub status: CommandState,
    /// Why it failed, when it did.
    pub reason: Option<String>,
    /// Accepted.
    pub created_at: DateTime<Utc>,
    /// Handed to the device.
    pub sent_at: Option<DateTime<Utc>>,
    /// Queued: not sent after this (it expires); sent: not carried out after this (it times out).
    pub expires_at: DateTime<Utc>,
    /// Ended.
    pub completed_at: Option<DateTime<Utc>>,
    /// Subaccount (fleet) of the vehicle, for its events.
    #[serde(skip)]
    #[schemars(skip)]
    pub subaccount_id: Option<Uuid>,
}

/// A row of [`COLUMNS`].
#[derive(FromQueryResult)]
struct Row {
    command_id: Uuid,
    vehicle_id: Uuid,
    command: Named<VehicleCommand>,
    status: Named<CommandState>,
    reason: Option<String>,
    created_at: DateTime<Utc>,
    sent_at: Option<DateTime<Utc>>,
    expires_at: DateTime<Utc>,
    completed_at: Option<DateTime<Utc>>,
    subaccount_id: Option<Uuid>,
}

/// A command from a row of [`COLUMNS`].
pub fn from_row(row: &QueryResult) -> Result<CommandStatus, DbErr> {
    let row = Row::from_query_result(row, "")?;
    Ok(CommandStatus {
        id: row.command_id,
        vehicle_id: row.vehicle_id,
        command: row.command.0,
        status: row.status.0,
        reason: row.reason,
        created_at: row.created_at,
        sent_at: row.sent_at,
        expires_at: row.expires_at,
        completed_at: row.completed_at,
        subaccount_id: row.subaccount_id,
    })
}

/// Command `id` of `tenant`.
pub async fn find(db: &impl ConnectionTrait, tenant: &str, id: Uuid) -> Result<Option<CommandStatus>, DbErr> {
    let query = Query::select()
        .columns(COLUMNS)
        .from(TABLE)
        .and_where(Expr::col("tenant").eq(tenant))
        .and_where(Expr::col("command_id").eq(id))
        .to_owned();
    db.query_one(&query).await?.as_ref().map(from_row).transpose()
}

/// The last `limit` commands sent to `vehicle` in `tenant`, newest first.
pub async fn recent(
    db: &impl ConnectionTrait,
    tenant: &str,
    vehicle: Uuid,
    limit: u64,
) -> Result<Vec<CommandStatus>, DbErr> {
    let query = Query::select()
        .columns(COLUMNS)
        .from(TABLE)
        .and_where(Expr::col("vehicle_id").eq(vehicle))
        .and_where(Expr::col("tenant").eq(tenant))
        .order_by("created_at", sea_orm::Order::Desc)
        .limit(limit)
        .to_owned();
    db.query_all(&query).await?.iter().map(from_row).collect()
}
