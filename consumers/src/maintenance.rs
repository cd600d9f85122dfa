//! The maintenance consumer group: workshops, which of them each integration may choose
//! (maintenance service selection), and the tickets opened through integrations — a fleet
//! manager's maintenance job at an allowed workshop, or a problem a driver reports.

use crate::groups::Group;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use bus::outbox;
use bus::{Context, Handler, HandlerError, Reply};
use chrono::{DateTime, Utc};
use schemas::AnyMessage;
use schemas::Recipient;
use schemas::maintenance::{AddWorkshop, OpenTicket, SetMaintenanceSelection, TicketKind, TicketOpened};
use sea_orm::sea_query::{Expr, ExprTrait, Query};
use sea_orm::{ConnectionTrait, DbErr};
use uuid::Uuid;

use readside::columns::{name_of, to_json};
pub(crate) use readside::maintenance::{
    Selection, TICKET_COLUMNS, Ticket, Workshop, selection, ticket_of, workshop_of, workshops,
};
use readside::{Outcome, Refusal, codes};

/// The group's name: its queues are `voltbus.maintenance…`.
pub const GROUP: &str = Recipient::Maintenance.name();

/// The group: its commands, one a transaction.
pub fn groups() -> Vec<Group> {
    vec![Group::handling(Recipient::Maintenance, Arc::new(Maintenance))]
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
