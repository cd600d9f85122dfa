//! The maintenance consumer group: workshops, which of them each integration may choose
//! (maintenance service selection), and the tickets opened through integrations — a fleet
//! manager's maintenance job at an allowed workshop, or a problem a driver reports.

use std::future::Future;
use std::pin::Pin;

use bus::amqp::GroupTopology;
use bus::outbox;
use bus::{Context, Handler, HandlerError, Reply};
use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use schemas::maintenance::{AddWorkshop, OpenTicket, SetMaintenanceSelection, TicketKind, TicketOpened};
use schemas::{AnyMessage, routing};
use sea_orm::sea_query::{Expr, ExprTrait, Order, Query};
use sea_orm::{ConnectionTrait, DbErr, QueryResult};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::columns::{from_name, json_column, name_of, to_json};
use crate::outcome::{Outcome, Refusal, codes};

/// The group's name: its queues are `voltbus.maintenance…`.
pub const GROUP: &str = "maintenance";

/// The maintenance commands' queues.
pub fn topology() -> GroupTopology {
    let keys = vec![
        routing::command_key_of::<AddWorkshop>(),
        routing::command_key_of::<SetMaintenanceSelection>(),
        routing::command_key_of::<OpenTicket>(),
    ];
    GroupTopology::commands(GROUP, keys, crate::RETRY_DELAYS.to_vec())
}

/// A workshop.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Workshop {
    /// Workshop id.
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

fn workshop_of(row: &QueryResult) -> Result<Workshop, DbErr> {
    Ok(Workshop {
        id: row.try_get("", "workshop_id")?,
        name: row.try_get("", "name")?,
        independent: row.try_get("", "independent")?,
        created_at: row.try_get("", "created_at")?,
    })
}

const TICKET_COLUMNS: [&str; 11] = [
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

fn ticket_of(row: &QueryResult) -> Result<Ticket, DbErr> {
    let kind: String = row.try_get("", "kind")?;
    Ok(Ticket {
        id: row.try_get("", "ticket_id")?,
        kind: from_name(&kind, "tickets", "kind")?,
        integration_id: row.try_get("", "integration_id")?,
        vehicle_id: row.try_get("", "vehicle_id")?,
        workshop_id: row.try_get("", "workshop_id")?,
        title: row.try_get("", "title")?,
        description: row.try_get("", "description")?,
        reported_by: row.try_get("", "reported_by")?,
        status: row.try_get("", "status")?,
        created_at: row.try_get("", "created_at")?,
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
    let Some(row) = db.query_one(&query).await? else { return Ok(None) };
    Ok(Some(Selection {
        allowed_workshop_ids: json_column(&row, "integrations", "maintenance_workshops")?,
        independent_workshops: row.try_get("", "independent_workshops")?,
    }))
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

async fn add_workshop(
    db: &impl ConnectionTrait,
    tenant: &str,
    add: &AddWorkshop,
    now: DateTime<Utc>,
) -> Result<Workshop, DbErr> {
    let insert = Query::insert()
        .into_table("workshops")
        .columns(["workshop_id", "tenant", "name", "independent", "created_at"])
        .values_panic([
            add.workshop_id.into(),
            tenant.into(),
            add.name.clone().into(),
            add.independent.into(),
            now.into(),
        ])
        .returning(Query::returning().columns(["workshop_id", "name", "independent", "created_at"]))
        .to_owned();
    workshop_of(&db.query_one(&insert).await?.ok_or(DbErr::RecordNotInserted)?)
}

async fn set_selection(
    db: &impl ConnectionTrait,
    tenant: &str,
    set: &SetMaintenanceSelection,
) -> Result<Outcome<Selection>, DbErr> {
    let known: Vec<Uuid> = workshops(db, tenant).await?.into_iter().map(|w| w.id).collect();
    if let Some(unknown) = set.allowed_workshop_ids.iter().find(|id| !known.contains(id)) {
        return Ok(Outcome::Refused(Refusal::not_found(format!("no workshop {unknown}"))));
    }
    let update = Query::update()
        .table("integrations")
        .value("maintenance_workshops", to_json(&set.allowed_workshop_ids))
        .value("independent_workshops", set.independent_workshops)
        .and_where(Expr::col("tenant").eq(tenant))
        .and_where(Expr::col("integration_id").eq(set.integration_id))
        .to_owned();
    if db.execute(&update).await?.rows_affected() == 0 {
        return Ok(Outcome::Refused(Refusal::not_found(format!("no integration {}", set.integration_id))));
    }
    Ok(Outcome::Done(Selection {
        allowed_workshop_ids: set.allowed_workshop_ids.clone(),
        independent_workshops: set.independent_workshops,
    }))
}

/// Opens a ticket: a maintenance ticket names a vehicle of the organisation and a workshop the
/// integration may choose; a driver ticket may name a vehicle.
async fn open(
    db: &impl ConnectionTrait,
    tenant: &str,
    open: &OpenTicket,
    now: DateTime<Utc>,
) -> Result<Outcome<Ticket>, DbErr> {
    if let Some(vehicle) = open.vehicle_id {
        let query = Query::select()
            .column("vehicle_id")
            .from("vehicles")
            .and_where(Expr::col("tenant").eq(tenant))
            .and_where(Expr::col("vehicle_id").eq(vehicle))
            .to_owned();
        if db.query_one(&query).await?.is_none() {
            return Ok(Outcome::Refused(Refusal::not_found(format!("no vehicle {vehicle}"))));
        }
    }
    if open.kind == TicketKind::Maintenance {
        let Some(workshop_id) = open.workshop_id else {
            return Ok(Outcome::Refused(Refusal::invalid("a maintenance ticket names its workshop")));
        };
        let Some(workshop) = workshops(db, tenant).await?.into_iter().find(|w| w.id == workshop_id) else {
            return Ok(Outcome::Refused(Refusal::not_found(format!("no workshop {workshop_id}"))));
        };
        let selection = selection(db, tenant, open.integration_id).await?.unwrap_or_default();
        if !selection.allows(&workshop) {
            let message = format!("the integration may not send vehicles to workshop {workshop_id}");
            return Ok(Outcome::Refused(Refusal::coded(codes::WORKSHOP_NOT_ALLOWED, message)));
        }
    }
    let insert = Query::insert()
        .into_table("tickets")
        .columns(TICKET_COLUMNS)
        .values_panic([
            open.ticket_id.into(),
            name_of(&open.kind).into(),
            open.integration_id.into(),
            open.vehicle_id.into(),
            open.workshop_id.into(),
            open.title.clone().into(),
            open.description.clone().into(),
            open.reported_by.clone().into(),
            "open".into(),
            now.into(),
            tenant.into(),
        ])
        .returning(Query::returning().columns(TICKET_COLUMNS))
        .to_owned();
    let row = db.query_one(&insert).await?.ok_or(DbErr::RecordNotInserted)?;
    Ok(Outcome::Done(ticket_of(&row)?))
}

/// Handles the maintenance commands.
pub struct Maintenance;

impl Handler for Maintenance {
    fn handle<'a>(
        &'a self,
        context: Context<'a>,
    ) -> Pin<Box<dyn Future<Output = Result<Reply, HandlerError>> + Send + 'a>> {
        Box::pin(async move {
            let tx = context.database(GROUP)?;
            let message = context.message;
            let tenant = message.tenant.as_str();
            let now = Utc::now();
            let retryable = |e: DbErr| HandlerError::Retryable(e.to_string());
            let reply = match &message.data {
                AnyMessage::AddWorkshop(add) => {
                    Outcome::Done(add_workshop(tx, tenant, add, now).await.map_err(retryable)?).to_reply()
                }
                AnyMessage::SetMaintenanceSelection(set) => {
                    set_selection(tx, tenant, set).await.map_err(retryable)?.to_reply()
                }
                AnyMessage::OpenTicket(command) => {
                    let outcome = open(tx, tenant, command, now).await.map_err(retryable)?;
                    if let Outcome::Done(ticket) = &outcome {
                        let opened = TicketOpened {
                            ticket_id: ticket.id,
                            kind: ticket.kind,
                            vehicle_id: ticket.vehicle_id,
                            workshop_id: ticket.workshop_id,
                        };
                        outbox::enqueue_event(tx, message, "voltbus/maintenance", opened).await.map_err(retryable)?;
                    }
                    outcome.to_reply()
                }
                _ => return Err(HandlerError::unhandled(message)),
            };
            Ok(Some(reply))
        })
    }
}
