//! Workshops, each integration's maintenance service selection, and the tickets opened through
//! integrations (EVCare seed).

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use schemas::maintenance::TicketKind;
use sea_orm::sea_query::{Expr, ExprTrait, Order, Query};
use sea_orm::{ConnectionTrait, DbErr, FromQueryResult, QueryResult};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::columns::{Json, Named, name_of};

/// A workshop.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema, FromQueryResult)]
#[serde(rename_all = "camelCase")]
pub struct Workshop {
    /// Workshop id.
    #[sea_orm(from_alias = "workshop_id")]
    pub id: Uuid,
    /// Display name.
    pub name: String,
    /// Independent (not the organisation's own).
    pub independent: bool,
    /// Registered.
    pub created_at: DateTime<Utc>,
}

/// Which workshops an integration may choose.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Selection {
    /// Workshops it may choose.
    pub allowed_workshop_ids: Vec<Uuid>,
    /// Whether any independent workshop is selectable too.
    pub independent_workshops: bool,
}

impl Selection {
    /// Whether `workshop` may be chosen.
    pub fn allows(&self, workshop: &Workshop) -> bool {
        self.allowed_workshop_ids.contains(&workshop.id) || (self.independent_workshops && workshop.independent)
    }
}

/// A ticket.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Ticket {
    /// Ticket id.
    pub id: Uuid,
    /// Maintenance or driver.
    pub kind: TicketKind,
    /// The integration it came through.
    pub integration_id: Uuid,
    /// The vehicle concerned.
    pub vehicle_id: Option<Uuid>,
    /// The workshop chosen.
    pub workshop_id: Option<Uuid>,
    /// Summary.
    pub title: String,
    /// Details.
    pub description: String,
    /// Who reported it.
    pub reported_by: Option<String>,
    /// `open`.
    pub status: String,
    /// Opened.
    pub created_at: DateTime<Utc>,
}

/// A workshop from a row of `workshop_id`, `name`, `independent`, `created_at`.
pub fn workshop_of(row: &QueryResult) -> Result<Workshop, DbErr> {
    Workshop::from_query_result(row, "")
}

/// The columns a [`Ticket`] is read from.
pub const TICKET_COLUMNS: [&str; 11] = [
    "ticket_id",
    "kind",
    "integration_id",
    "vehicle_id",
    "workshop_id",
    "title",
    "description",
    "reported_by",
    "status",
    "created_at",
    "tenant",
];

/// A row of [`TICKET_COLUMNS`].
#[derive(FromQueryResult)]
struct TicketRow {
    ticket_id: Uuid,
    kind: Named<TicketKind>,
    integration_id: Uuid,
    vehicle_id: Option<Uuid>,
    workshop_id: Option<Uuid>,
    title: String,
    description: String,
    reported_by: Option<String>,
    status: String,
    created_at: DateTime<Utc>,
}

/// A ticket from a row of [`TICKET_COLUMNS`].
pub fn ticket_of(row: &QueryResult) -> Result<Ticket, DbErr> {
    let row = TicketRow::from_query_result(row, "")?;
    Ok(Ticket {
        id: row.ticket_id,
        kind: row.kind.0,
        integration_id: row.integration_id,
        vehicle_id: row.vehicle_id,
        workshop_id: row.workshop_id,
        title: row.title,
        description: row.description,
        reported_by: row.reported_by,
        status: row.status,
        created_at: row.created_at,
    })
}

/// `tenant`'s workshops, by name.
pub async fn workshops(db: &impl ConnectionTrait, tenant: &str) -> Result<Vec<Workshop>, DbErr> {
    let query = Query::select()
        .columns(["workshop_id", "name", "independent", "created_at"])
        .from("workshops")
        .and_where(Expr::col("tenant").eq(tenant))
        .order_by("name", Order::Asc)
        .to_owned();
    db.query_all(&query).await?.iter().map(workshop_of).collect()
}

/// Integration `id`'s selection, if it is `tenant`'s.
pub async fn selection(db: &impl ConnectionTrait, tenant: &str, id: Uuid) -> Result<Option<Selection>, DbErr> {
    let query = Query::select()
        .columns(["maintenance_workshops", "independent_workshops"])
        .from("integrations")
        .and_where(Expr::col("tenant").eq(tenant))
        .and_where(Expr::col("integration_id").eq(id))
        .to_owned();
    let row = db.query_one(&query).await?.map(|row| SelectionRow::from_query_result(&row, "")).transpose()?;
    Ok(row.map(|row| Selection {
        allowed_workshop_ids: row.maintenance_workshops.0,
        independent_workshops: row.independent_workshops,
    }))
}

/// An integration's row, as far as its selection goes.
#[derive(FromQueryResult)]
struct SelectionRow {
    maintenance_workshops: Json<Vec<Uuid>>,
    independent_workshops: bool,
}

/// The tickets of `kind` an integration opened, newest first.
pub async fn tickets(
    db: &impl ConnectionTrait,
    tenant: &str,
    integration_id: Uuid,
    kind: TicketKind,
) -> Result<Vec<Ticket>, DbErr> {
    let query = Query::select()
        .columns(TICKET_COLUMNS)
        .from("tickets")
        .and_where(Expr::col("tenant").eq(tenant))
        .and_where(Expr::col("integration_id").eq(integration_id))
        .and_where(Expr::col("kind").eq(name_of(&kind)))
        .order_by("created_at", Order::Desc)
        .to_owned();
    db.query_all(&query).await?.iter().map(ticket_of).collect()
}
