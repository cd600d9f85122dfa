//! Commands sent to vehicles (INVERS Vehicle Commands), durable where INVERS and Smartcar fail a
//! command whose car is offline: accepted by the `fleet` group when the vehicle can carry them out
//! and no interlock forbids them, then either handed to the vehicle's device through the outbox
//! (JetStream, `voltbus.{tenant}.vehicles.{vehicle}.commands`) or, when the command has a time to
//! live and its vehicle has not been heard from lately, `queued` until it reports again. The
//! device answers on `….command-results`, which the `vehicle-commands` group records. A sweeper in
//! every process sends the queued commands whose vehicle reported, expires those whose time to
//! live ran out, and times out sent ones that got no answer. Every state is announced as
//! `vehicle.command_state_changed`, and every end of a sent command also as
//! `vehicle.command_completed`. Every statement names the tenant.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use bus::nats::JetStreamGroup;
use bus::outbox::{self, Destination, Outgoing};
use bus::{Context, Handler, HandlerError, Reply};
use chrono::{TimeDelta, Utc};
use schemas::vehicles::{
    CommandOutcome, DeviceCommand, DeviceCommandResult, OperationStatus, SendVehicleCommand, VehicleCommand,
    VehicleCommandCompleted, VehicleCommandStateChanged,
};
use schemas::{AnyMessage, DecodeError, Envelope, TenantId, subjects};
use sea_orm::sea_query::{Expr, ExprTrait, OnConflict, Query, UpdateStatement};
use sea_orm::{ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbErr, QueryResult, TransactionTrait};
use serde::Deserialize;
use uuid::Uuid;

use super::Vehicle;
use readside::columns::name_of;
use readside::{Outcome, Refusal};

/// The group that records devices' answers (JetStream durable consumer).
pub const RESULTS_GROUP: &str = "vehicle-commands";

const SOURCE: &str = "voltbus/vehicle-commands";
pub use readside::fleet::commands::{COLUMNS, CommandState, CommandStatus, TABLE, find, from_row, recent};

/// How commands to vehicles are timed.
#[derive(Clone, Copy, Debug)]
pub struct Timing {
    /// How long a sent command waits for its device's answer.
    pub answer: Duration,
    /// A vehicle heard from within this is online: a command with a time to live goes to it at
    /// once rather than waiting in the queue.
    pub online: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Self { answer: Duration::from_secs(30), online: Duration::from_secs(120) }
    }
}

fn delta(duration: Duration) -> TimeDelta {
    TimeDelta::from_std(duration).unwrap_or(TimeDelta::MAX)
}

/// The answers' JetStream consumer: every device's answers, each under its own tenant's subjects.
pub fn results_topology() -> JetStreamGroup {
    JetStreamGroup::new(
        RESULTS_GROUP,
        subjects::VEHICLE_COMMANDS_STREAM,
        subjects::every_vehicle_command_result(),
        crate::RETRY_DELAYS.to_vec(),
    )
    .checking_tenant_in_subject()
    .accepting_headless(plain_result)
}

/// A device's answer as an MQTT unit publishes it (MQTT 3.1.1 has no headers): the answer alone,
/// `{"command_id", "outcome", "reason"}`, on its own subject, which names the tenant and the vehicle.
fn plain_result(subject: &str, body: &[u8]) -> Result<Envelope<AnyMessage>, DecodeError> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Answer {
        command_id: Uuid,
        outcome: CommandOutcome,
        #[serde(default)]
        reason: Option<String>,
    }
    let (tenant, vehicle_id) = subjects::vehicle_of(subject, "command-results")
        .ok_or_else(|| DecodeError::Malformed(format!("{subject} is no vehicle's command-results subject")))?;
    let answer: Answer =
        serde_json::from_slice(body).map_err(|e| DecodeError::Malformed(format!("a command's answer: {e}")))?;
    let result = DeviceCommandResult {
        command_id: answer.command_id,
        vehicle_id,
        outcome: answer.outcome,
        reason: answer.reason,
    };
    Ok(Envelope::new(tenant, "voltbus/mqtt", result).map(AnyMessage::DeviceCommandResult))
}

/// Why `send` may not go to `vehicle` now, if it may not: a command it cannot carry out; any
/// command to a vehicle in maintenance from a sender not allowed to; unlocking or freeing the
/// engine of a vehicle in another customer's ride.
async fn interlock(
    tx: &DatabaseTransaction,
    tenant: &str,
    send: &SendVehicleCommand,
    vehicle: &Vehicle,
) -> Result<Option<Refusal>, DbErr> {
    let (id, command) = (vehicle.id, name_of(&send.command));
    if !vehicle.capabilities.contains(&send.command) {
        return Ok(Some(Refusal::conflict(format!("vehicle {id} cannot {command}"))));
    }
    if vehicle.status == OperationStatus::Maintenance && !send.maintenance_allowed {
        let why = format!("vehicle {id} is in maintenance: commanding it takes the permission vehicles:maintenance");
        return Ok(Some(Refusal::conflict(why)));
    }
    if matches!(send.command, VehicleCommand::UnlockCentralLock | VehicleCommand::DisableImmobilizer)
        && let Some(ride) = readside::rides::in_progress(tx, tenant, "vehicle_id", id).await?
        && let Some(ride) = readside::rides::find(tx, tenant, ride).await?
        && Some(ride.customer_id) != send.customer_id
    {
        // Naming neither the ride nor its customer: the sender may not read rides.
        let why = format!("vehicle {id} is in another customer's ride: {command} is refused until it ends");
        return Ok(Some(Refusal::conflict(why)));
    }
    Ok(None)
}

/// Accepts `send` for `vehicle`: handed to its device, or queued while the vehicle is away, or
/// refused by an interlock. The same command again answers with where it stands.
pub(super) async fn send(
    tx: &DatabaseTransaction,
    cause: &Envelope<AnyMessage>,
    send: &SendVehicleCommand,
    vehicle: &Vehicle,
    timing: Timing,
) -> Result<Outcome<CommandStatus>, DbErr> {
    let tenant = cause.tenant.as_str();
    if let Some(known) = find(tx, tenant, send.command_id).await? {
        return Ok(replayed(known, vehicle.id, send.command_id));
    }
    if let Some(refusal) = interlock(tx, tenant, send, vehicle).await? {
        return Ok(Outcome::Refused(refusal));
    }
    let now = Utc::now();
    let heard = vehicle.state.received_at.is_some_and(|at| now - at <= delta(timing.online));
    let (state, expires_at, sent_at) = match send.ttl_seconds.filter(|_| !heard) {
        Some(ttl) => (CommandState::Queued, now + TimeDelta::seconds(i64::from(ttl)), None),
        None => (CommandState::Sent, now + delta(timing.answer), Some(now)),
    };
    let insert = Query::insert()
        .into_table(TABLE)
        .columns([
            "command_id",
            "tenant",
            "vehicle_id",
            "subaccount_id",
            "command",
            "status",
            "created_at",
            "sent_at",
            "expires_at",
            "idempotency_key",
        ])
        .values_panic([
            send.command_id.into(),
            tenant.into(),
            vehicle.id.into(),
            vehicle.subaccount_id.into(),
            name_of(&send.command).into(),
            name_of(&state).into(),
            now.into(),
            sent_at.into(),
            expires_at.into(),
            send.idempotency_key.clone().into(),
        ])
        .on_conflict(OnConflict::column("command_id").do_nothing().to_owned())
        .to_owned();
    if tx.execute(&insert).await?.rows_affected() == 0 {
        // Another delivery of the same id got there first.
        let known = find(tx, tenant, send.command_id).await?;
        return Ok(known.map_or_else(|| taken(send.command_id), |known| replayed(known, vehicle.id, send.command_id)));
    }
    let status = CommandStatus {
        id: send.command_id,
        vehicle_id: vehicle.id,
        command: send.command,
        status: state,
        reason: None,
        created_at: now,
        sent_at,
        expires_at,
        completed_at: None,
        subaccount_id: Some(vehicle.subaccount_id),
    };
    let accepted = CommandStatus { status: CommandState::Accepted, ..status.clone() };
    let mut out = vec![event(&cause.tenant, &accepted, Some(cause)), event(&cause.tenant, &status, Some(cause))];
    if state == CommandState::Sent {
        out.push(device_command(&cause.tenant, &status, send.idempotency_key.clone(), Some(cause)));
    }
    outbox::enqueue_encoded(tx, &out).await?;
    Ok(Outcome::Done(status))
}

fn replayed(known: CommandStatus, vehicle: Uuid, id: Uuid) -> Outcome<CommandStatus> {
    if known.vehicle_id == vehicle { Outcome::Done(known) } else { taken(id) }
}

fn taken(id: Uuid) -> Outcome<CommandStatus> {
    Outcome::Refused(Refusal::conflict(format!("command id {id} is taken")))
}

fn out<M: schemas::Message>(
    tenant: &TenantId,
    data: M,
    to: Destination,
    cause: Option<&Envelope<AnyMessage>>,
) -> Outgoing {
    let envelope = Envelope::new(tenant.clone(), SOURCE, data);
    let envelope = match cause {
        Some(cause) => envelope.caused_by(cause),
        None => envelope,
    };
    Outgoing::new(&envelope, to)
}

/// `vehicle.command_state_changed` for `status` as it stands.
fn event(tenant: &TenantId, status: &CommandStatus, cause: Option<&Envelope<AnyMessage>>) -> Outgoing {
    let changed = VehicleCommandStateChanged {
        command_id: status.id,
        vehicle_id: status.vehicle_id,
        subaccount_id: status.subaccount_id.unwrap_or_default(),
        command: status.command,
        state: status.status,
        reason: status.reason.clone(),
    };
    let to = Destination::event(tenant, &changed);
    out(tenant, changed, to, cause)
}

/// The command for the device, on its vehicle's command subject.
fn device_command(
    tenant: &TenantId,
    status: &CommandStatus,
    idempotency_key: Option<String>,
    cause: Option<&Envelope<AnyMessage>>,
) -> Outgoing {
    let device = DeviceCommand {
        command_id: status.id,
        vehicle_id: status.vehicle_id,
        command: status.command,
        expires_at: status.expires_at,
        idempotency_key,
    };
    let to = Destination::Nats { subject: subjects::vehicle_commands(tenant, status.vehicle_id) };
    out(tenant, device, to, cause)
}

/// The announcements of an end: its state and, for a command that was sent, its completion.
fn ended(tenant: &TenantId, status: &CommandStatus, cause: Option<&Envelope<AnyMessage>>) -> Vec<Outgoing> {
    let mut announced = vec![event(tenant, status, cause)];
    let outcome = match status.status {
        CommandState::Succeeded => Some(CommandOutcome::Succeeded),
        CommandState::Failed => Some(CommandOutcome::Failed),
        CommandState::TimedOut => Some(CommandOutcome::TimedOut),
        // An expired command was never sent, so it never completed.
        _ => None,
    };
    if let Some(outcome) = outcome {
        let completed = VehicleCommandCompleted {
            command_id: status.id,
            vehicle_id: status.vehicle_id,
            command: status.command,
            outcome,
            reason: status.reason.clone(),
        };
        let to = Destination::event(tenant, &completed);
        announced.push(out(tenant, completed, to, cause));
    }
    announced
}

/// A command `tenant`'s row names.
fn row_tenant(row: &QueryResult) -> Result<TenantId, DbErr> {
    TenantId::new(row.try_get::<String>("", "tenant")?).map_err(|e| DbErr::Custom(e.to_string()))
}

/// Ends `tenant`'s sent command `id` to `vehicle` with `state`; the ended command, or `None` if
/// there is no such sent command (answered already, timed out first, or not this vehicle's).
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
        .and_where(Expr::col("status").eq(name_of(&CommandState::Sent)))
        .returning(Query::returning().columns(COLUMNS))
        .to_owned();
    tx.query_one(&update).await?.as_ref().map(from_row).transpose()
}

/// What one sweep did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Swept {
    /// Queued commands sent, their vehicle heard from again.
    pub sent: usize,
    /// Queued commands whose time to live ran out.
    pub expired: usize,
    /// Sent commands that got no answer in time.
    pub timed_out: usize,
}

/// Sends the queued commands whose vehicle reported since they were queued, expires the queued
/// ones past their time to live and times out the sent ones past theirs, announcing each; one
/// transaction, so a process that dies half way leaves nothing half done, and each row is taken
/// by one process only (the `UPDATE`s lock what they change).
pub async fn sweep(db: &DatabaseConnection, timing: Timing) -> Result<Swept, DbErr> {
    let tx = db.begin().await?;
    let now = Utc::now();
    let heard = Query::select()
        .expr(Expr::val(1))
        .from(readside::fleet::states::TABLE)
        .and_where(Expr::col((readside::fleet::states::TABLE, "vehicle_id")).equals((TABLE, "vehicle_id")))
        .and_where(Expr::col((readside::fleet::states::TABLE, "tenant")).equals((TABLE, "tenant")))
        .and_where(Expr::col((readside::fleet::states::TABLE, "received_at")).gt(Expr::col((TABLE, "created_at"))))
        .to_owned();
    let release = Query::update()
        .table(TABLE)
        .value("status", name_of(&CommandState::Sent))
        .value("sent_at", now)
        .value("expires_at", now + delta(timing.answer))
        .and_where(Expr::col("status").eq(name_of(&CommandState::Queued)))
        .and_where(Expr::col("expires_at").gte(now))
        .and_where(Expr::exists(heard))
        .to_owned();
    let mut out = Vec::new();
    let sent = returning(&tx, release).await?;
    for (tenant, status, key) in &sent {
        out.push(event(tenant, status, None));
        out.push(device_command(tenant, status, key.clone(), None));
    }
    let mut ends = [0; 2];
    let endings = [
        (
            CommandState::Queued,
            CommandState::Expired,
            "the vehicle was not heard from before the command's time to live ran out",
        ),
        (CommandState::Sent, CommandState::TimedOut, "no answer from the vehicle before the command expired"),
    ];
    for ((from, to, why), count) in endings.into_iter().zip(&mut ends) {
        let end = Query::update()
            .table(TABLE)
            .value("status", name_of(&to))
            .value("reason", why)
            .value("completed_at", now)
            .and_where(Expr::col("status").eq(name_of(&from)))
            .and_where(Expr::col("expires_at").lt(now))
            .to_owned();
        let rows = returning(&tx, end).await?;
        *count = rows.len();
        for (tenant, status, _) in &rows {
            out.extend(ended(tenant, status, None));
        }
    }
    outbox::enqueue_encoded(&tx, &out).await?;
    tx.commit().await?;
    bus::outbox::committed();
    Ok(Swept { sent: sent.len(), expired: ends[0], timed_out: ends[1] })
}

/// Runs `update` returning each changed command with its tenant and Idempotency-Key.
async fn returning(
    tx: &DatabaseTransaction,
    mut update: UpdateStatement,
) -> Result<Vec<(TenantId, CommandStatus, Option<String>)>, DbErr> {
    update.returning(Query::returning().columns(COLUMNS.into_iter().chain(["idempotency_key"])));
    let rows = tx.query_all(&update).await?;
    rows.iter().map(|row| Ok((row_tenant(row)?, from_row(row)?, row.try_get("", "idempotency_key")?))).collect()
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
        Some(status) => outbox::enqueue_encoded(tx, &ended(&message.tenant, &status, Some(message))).await,
        None => {
            tracing::info!(command_id = %result.command_id, "answer to no sent command of this vehicle; kept out");
            Ok(())
        }
    }
}
