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
pub const COLUMNS: [&str; 9] =
    ["command_id", "tenant", "vehicle_id", "command", "status", "reason", "created_at", "expires_at", "completed_at"];

/// Where a command stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum CommandState {
    /// Sent; no answer yet.
    Pending,
    /// The vehicle carried it out.
    Succeeded,
    /// The vehicle refused or failed.
    Failed,
    /// No answer before it expired.
    TimedOut,
}

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
    /// Sent.
    pub created_at: DateTime<Utc>,
    /// Not carried out after this.
    pub expires_at: DateTime<Utc>,
    /// Answered or timed out.
    pub completed_at: Option<DateTime<Utc>>,
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
    expires_at: DateTime<Utc>,
    completed_at: Option<DateTime<Utc>>,
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
        expires_at: row.expires_at,
        completed_at: row.completed_at,
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
