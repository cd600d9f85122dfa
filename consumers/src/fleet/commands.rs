//! Commands sent to vehicles (INVERS Vehicle Commands): accepted by the `fleet` group when the
//! vehicle can carry them out, recorded as pending, and handed to the vehicle's device through
//! the outbox (JetStream, `voltbus.{tenant}.vehicles.{vehicle}.commands`). The device answers on
//! `….command-results`, which the `vehicle-commands` group records; a command still pending when
//! it expires is marked `timed_out` by the sweeper. Each end is announced as
//! `vehicle.command_completed`. Every statement names the tenant.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use bus::nats::JetStreamGroup;
use bus::outbox::{self, Destination};
use bus::{Context, Handler, HandlerError, Reply};
use chrono::Utc;
use schemas::vehicles::{
    CommandOutcome, DeviceCommand, DeviceCommandResult, SendVehicleCommand, VehicleCommandCompleted,
};
use schemas::{AnyMessage, Envelope, TenantId, subjects};
use sea_orm::sea_query::{Expr, ExprTrait, OnConflict, Query};
use sea_orm::{ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbErr, TransactionTrait};
use uuid::Uuid;

use super::Vehicle;
use readside::columns::name_of;
use readside::{Outcome, Refusal};

/// The group that records devices' answers (JetStream durable consumer).
pub const RESULTS_GROUP: &str = "vehicle-commands";

const SOURCE: &str = "voltbus/vehicle-commands";
pub use readside::fleet::commands::{COLUMNS, CommandState, CommandStatus, TABLE, find, from_row, recent};

/// The answers' JetStream consumer: every device's answers, each under its own tenant's subjects.
pub fn results_topology() -> JetStreamGroup {
    JetStreamGroup::new(
        RESULTS_GROUP,
        subjects::VEHICLE_COMMANDS_STREAM,
        subjects::every_vehicle_command_result(),
        crate::RETRY_DELAYS.to_vec(),
    )
    .checking_tenant_in_subject()
}

/// Accepts `send` for `vehicle`: recorded as pending and handed to its device, or refused when
/// the vehicle cannot carry it out. The same command again answers with where it stands.
pub(super) async fn send(
    tx: &DatabaseTransaction,
    cause: &Envelope<AnyMessage>,
    send: &SendVehicleCommand,
    vehicle: &Vehicle,
    timeout: Duration,
) -> Result<Outcome<CommandStatus>, DbErr> {
    let tenant = cause.tenant.as_str();
    if !vehicle.capabilities.contains(&send.command) {
        let command = name_of(&send.command);
        return Ok(Outcome::Refused(Refusal::conflict(format!("vehicle {} cannot {command}", vehicle.id))));
    }
    let now = Utc::now();
    let expires_at = now + chrono::TimeDelta::from_std(timeout).unwrap_or(chrono::TimeDelta::seconds(30));
    let insert = Query::insert()
        .into_table(TABLE)
        .columns(["command_id", "tenant", "vehicle_id", "command", "status", "created_at", "expires_at"])
        .values_panic([
            send.command_id.into(),
            tenant.into(),
            vehicle.id.into(),
            name_of(&send.command).into(),
            name_of(&CommandState::Pending).into(),
            now.into(),
            expires_at.into(),
        ])
        .on_conflict(OnConflict::column("command_id").do_nothing().to_owned())
        .to_owned();
    if tx.execute(&insert).await?.rows_affected() == 1 {
        let device =
            DeviceCommand { command_id: send.command_id, vehicle_id: vehicle.id, command: send.command, expires_at };
        let envelope = Envelope::new(cause.tenant.clone(), SOURCE, device).caused_by(cause);
        let to = Destination::Nats { subject: subjects::vehicle_commands(&cause.tenant, vehicle.id) };
        outbox::enqueue(tx, &envelope, &to).await?;
    }
    let status = find(tx, tenant, send.command_id).await?;
    Ok(match status {
        Some(status) if status.vehicle_id == vehicle.id => Outcome::Done(status),
        _ => Outcome::Refused(Refusal::conflict(format!("command id {} is taken", send.command_id))),
    })
}

/// Ends pending command `id` of `tenant`'s `vehicle` with `state`; the ended command, or `None`
/// if there is no such pending command (answered already, timed out first, or not this
/// vehicle's).
async fn end(
    tx: &DatabaseTransaction,
    tenant: &str,
    (id, vehicle): (Uuid, Uuid),
    state: CommandState,
    reason: Option<&str>,
) -> Result<Option<CommandStatus>, DbErr> {
    let update = Query::update()
        .table(TABLE)
        .value("status", name_of(&state))
        .value("reason", reason)
        .value("completed_at", Utc::now())
        .and_where(Expr::col("tenant").eq(tenant))
        .and_where(Expr::col("command_id").eq(id))
        .and_where(Expr::col("vehicle_id").eq(vehicle))
        .and_where(Expr::col("status").eq(name_of(&CommandState::Pending)))
        .returning(Query::returning().columns(COLUMNS))
        .to_owned();
    tx.query_one(&update).await?.as_ref().map(from_row).transpose()
}

fn completed(status: &CommandStatus) -> VehicleCommandCompleted {
    let outcome = match status.status {
        CommandState::Succeeded => CommandOutcome::Succeeded,
        CommandState::Failed => CommandOutcome::Failed,
        CommandState::Pending | CommandState::TimedOut => CommandOutcome::TimedOut,
    };
    VehicleCommandCompleted {
        command_id: status.id,
        vehicle_id: status.vehicle_id,
        command: status.command,
        outcome,
        reason: status.reason.clone(),
    }
}

/// Marks the pending commands past their expiry `timed_out` and announces each; how many.
pub async fn expire(db: &DatabaseConnection) -> Result<u64, DbErr> {
    let tx = db.begin().await?;
    let update = Query::update()
        .table(TABLE)
        .value("status", name_of(&CommandState::TimedOut))
        .value("reason", "no answer from the vehicle before the command expired")
        .value("completed_at", Utc::now())
        .and_where(Expr::col("status").eq(name_of(&CommandState::Pending)))
        .and_where(Expr::col("expires_at").lt(Utc::now()))
        .returning(Query::returning().columns(COLUMNS))
        .to_owned();
    let rows = tx.query_all(&update).await?;
    for row in &rows {
        let status = from_row(row)?;
        let tenant = TenantId::new(row.try_get::<String>("", "tenant")?).map_err(|e| DbErr::Custom(e.to_string()))?;
        let event = Envelope::new(tenant.clone(), SOURCE, completed(&status));
        outbox::enqueue(&tx, &event, &Destination::event(&tenant, &event.data)).await?;
    }
    tx.commit().await?;
    Ok(rows.len() as u64)
}

/// Records devices' answers.
pub struct CommandResults;

impl Handler for CommandResults {
    fn handle<'a>(
        &'a self,
        context: Context<'a>,
    ) -> Pin<Box<dyn Future<Output = Result<Reply, HandlerError>> + Send + 'a>> {
        Box::pin(async move {
            let tx = context.database(RESULTS_GROUP)?;
            let message = context.message;
            let AnyMessage::DeviceCommandResult(result) = &message.data else {
                return Err(HandlerError::unhandled(message));
            };
            record(tx, message, result).await.map(|()| None).map_err(|e| HandlerError::Retryable(e.to_string()))
        })
    }
}

async fn record(
    tx: &DatabaseTransaction,
    message: &Envelope<AnyMessage>,
    result: &DeviceCommandResult,
) -> Result<(), DbErr> {
    let state = match result.outcome {
        CommandOutcome::Succeeded => CommandState::Succeeded,
        CommandOutcome::Failed => CommandState::Failed,
        // A device does not decide that it timed out; an answer is an answer.
        CommandOutcome::TimedOut => CommandState::Failed,
    };
    let tenant = message.tenant.as_str();
    match end(tx, tenant, (result.command_id, result.vehicle_id), state, result.reason.as_deref()).await? {
        Some(status) => outbox::enqueue_event(tx, message, SOURCE, completed(&status)).await,
        None => {
            tracing::info!(command_id = %result.command_id, "answer to no pending command of this vehicle; kept out");
            Ok(())
        }
    }
}
