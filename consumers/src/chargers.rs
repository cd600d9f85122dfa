//! Chargers (EVM seed, OCPP vocabulary): registered by admins (`charger.register`, group
//! `chargers`), kept current from their own OCPP status notifications on NATS (JetStream group
//! `charger-status`, on `voltbus.{tenant}.chargers.{charger}.status`, the tenant checked against
//! the subject), and found by the mobile app in a box.
//!
//! A connector status maps onto the seed's four states: Available → `Idle`; Preparing,
//! Charging, SuspendedEV, SuspendedEVSE, Finishing, Reserved → `Busy`; Unavailable → `Repair`;
//! Faulted → `Error`. A charger not heard from (status or meter values) within `offline_after` is
//! `Offline` when read. The charger's own timestamp orders notifications: one older than the
//! state already kept changes nothing, so a late or repeated notification never rolls the state
//! back. A change of state is announced as `charger.state_changed`. Chargers are single-outlet
//! devices in the seed: every connector's notification speaks for the charger.

use crate::groups::Group;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bus::nats::JetStreamGroup;
use bus::outbox;
use bus::{Context, Handler, HandlerError, Reply};
use chrono::{DateTime, SubsecRound, Utc};
use schemas::Recipient;
use schemas::charging::{
    ChargerResetRequested, ChargerState, ChargerStateChanged, ChargerStatusNotification, ConnectorStatus,
    RecordChargerConnection, RegisterCharger, ResetCharger, SetChargerPassword,
};
use schemas::{AnyMessage, Envelope, subjects};
use sea_orm::sea_query::{Expr, ExprTrait, OnConflict, Query};
use sea_orm::{ConnectionTrait, DatabaseTransaction, DbErr};
use serde::Serialize;

pub(crate) use readside::chargers::{Charger, find};
use readside::{Outcome, Refusal};

/// The registration commands' group.
pub const GROUP: &str = Recipient::Chargers.name();
/// The group that takes chargers' status notifications from JetStream.
pub const STATUS_GROUP: &str = "charger-status";

const SOURCE: &str = "voltbus/chargers";

/// The registration commands' group, and chargers' status notifications over NATS.
pub fn groups(offline_after: Duration) -> Vec<Group> {
    let handler = Arc::new(Chargers::new(offline_after));
    vec![Group::handling(Recipient::Chargers, handler.clone()), Group::stream(status_topology(), handler)]
}

/// Every tenant's chargers' status notifications.
pub fn status_topology() -> JetStreamGroup {
    JetStreamGroup::new(
        STATUS_GROUP,
        subjects::TELEMETRY_STREAM,
        subjects::every_charger_status(),
        crate::RETRY_DELAYS.to_vec(),
    )
    .checking_tenant_in_subject()
}

/// The seed's state of a connector status.
pub fn state_of(status: ConnectorStatus) -> ChargerState {
    match status {
        ConnectorStatus::Available => ChargerState::Idle,
        ConnectorStatus::Preparing
        | ConnectorStatus::Charging
        | ConnectorStatus::SuspendedEV
        | ConnectorStatus::SuspendedEVSE
        | ConnectorStatus::Finishing
        | ConnectorStatus::Reserved => ChargerState::Busy,
        ConnectorStatus::Unavailable => ChargerState::Repair,
        ConnectorStatus::Faulted => ChargerState::Error,
    }
}

fn enum_text<T: Serialize>(value: &T) -> String {
    serde_json::to_value(value).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default()
}

/// Registers a charger or replaces its master data; its state stays its own.
async fn register(
    tx: &DatabaseTransaction,
    tenant: &str,
    command: &RegisterCharger,
    offline_after: Duration,
    now: DateTime<Utc>,
) -> Result<Outcome<Charger>, DbErr> {
    let taken = Query::select()
        .column("charger_id")
        .from("chargers")
        .and_where(Expr::col("tenant").eq(tenant))
        .and_where(Expr::col("device_number").eq(command.device_number.as_str()))
        .and_where(Expr::col("charger_id").ne(command.charger_id))
        .to_owned();
    if tx.query_one(&taken).await?.is_some() {
        let number = &command.device_number;
        return Ok(Outcome::Refused(Refusal::conflict(format!("device number {number} is another charger's"))));
    }
    let [longitude, latitude] = command.location;
    let insert = Query::insert()
        .into_table("chargers")
        .columns([
            "charger_id",
            "tenant",
            "device_number",
            "longitude",
            "latitude",
            "price",
            "waiting_price",
            "currency",
            "state",
            "created_at",
            "updated_at",
        ])
        .values_panic([
            command.charger_id.into(),
            tenant.into(),
            command.device_number.as_str().into(),
            longitude.into(),
            latitude.into(),
            command.price.into(),
            command.waiting_price.into(),
            command.currency.as_str().into(),
            enum_text(&ChargerState::Idle).into(),
            now.into(),
            now.into(),
        ])
        .on_conflict(
            OnConflict::column("charger_id")
                .update_columns([
                    "device_number",
                    "longitude",
                    "latitude",
                    "price",
                    "waiting_price",
                    "currency",
                    "updated_at",
                ])
                .action_and_where(Expr::col(("chargers", "tenant")).eq(tenant))
                .to_owned(),
        )
        .to_owned();
    if tx.execute(&insert).await?.rows_affected() == 0 {
        // The id is another organisation's charger.
        return Ok(Outcome::Refused(Refusal::conflict(format!("charger id {} is taken", command.charger_id))));
    }
    if let Some(hash) = &command.ocpp_password_hash {
        set_password(tx, tenant, command.charger_id, hash, now).await?;
    }
    match find(tx, tenant, command.charger_id, offline_after).await? {
        Some(charger) => Ok(Outcome::Done(charger)),
        None => Err(DbErr::RecordNotFound(format!("charger {} after registering it", command.charger_id))),
    }
}

/// Keeps `hash` as the charger's OCPP password; false when `tenant` has no such charger.
async fn set_password(
    tx: &DatabaseTransaction,
    tenant: &str,
    charger: uuid::Uuid,
    hash: &str,
    now: DateTime<Utc>,
) -> Result<bool, DbErr> {
    let update = Query::update()
        .table("chargers")
        .value("ocpp_password_hash", hash)
        .value("updated_at", now)
        .and_where(Expr::col("tenant").eq(tenant))
        .and_where(Expr::col("charger_id").eq(charger))
        .to_owned();
    Ok(tx.execute(&update).await?.rows_affected() > 0)
}

/// Keeps which process holds a charger's socket. A close only clears the process that had it (the
/// charger may have reconnected to another already), and nothing older than what is kept counts.
async fn record_connection(
    tx: &DatabaseTransaction,
    tenant: &str,
    connection: &RecordChargerConnection,
) -> Result<(), DbErr> {
    let newer = Expr::col("connected_at").is_null().or(Expr::col("connected_at").lte(connection.at));
    let mut update = Query::update()
        .table("chargers")
        .value("ocpp_version", connection.ocpp_version.as_str())
        .value("connected_at", connection.at)
        .and_where(Expr::col("tenant").eq(tenant))
        .and_where(Expr::col("charger_id").eq(connection.charger_id))
        .and_where(newer)
        .to_owned();
    if connection.connected {
        update.value("ocpp_node", connection.node.as_str());
    } else {
        update
            .value("ocpp_node", Option::<String>::None)
            .and_where(Expr::col("ocpp_node").eq(connection.node.as_str()));
    }
    tx.execute(&update).await.map(|_| ())
}

/// Sends a reset to the charger's socket, wherever it is held; the charger as it reads now.
async fn reset(
    tx: &DatabaseTransaction,
    cause: &Envelope<AnyMessage>,
    command: &ResetCharger,
    offline_after: Duration,
) -> Result<Outcome<Charger>, DbErr> {
    let Some(charger) = find(tx, cause.tenant.as_str(), command.charger_id, offline_after).await? else {
        return Ok(Outcome::Refused(Refusal::not_found(format!("no charger {}", command.charger_id))));
    };
    let requested = ChargerResetRequested { charger_id: command.charger_id, kind: command.kind };
    let envelope = Envelope::new(cause.tenant.clone(), SOURCE, requested).caused_by(cause);
    let to = outbox::Destination::Nats { subject: subjects::charger_commands(&cause.tenant, command.charger_id) };
    outbox::enqueue(tx, &envelope, &to).await?;
    Ok(Outcome::Done(charger))
}

/// Sets a charger's OCPP password; the charger as it reads now.
async fn rotate(
    tx: &DatabaseTransaction,
    tenant: &str,
    command: &SetChargerPassword,
    offline_after: Duration,
    now: DateTime<Utc>,
) -> Result<Outcome<Charger>, DbErr> {
    if !set_password(tx, tenant, command.charger_id, &command.ocpp_password_hash, now).await? {
        return Ok(Outcome::Refused(Refusal::not_found(format!("no charger {}", command.charger_id))));
    }
    match find(tx, tenant, command.charger_id, offline_after).await? {
        Some(charger) => Ok(Outcome::Done(charger)),
        None => Err(DbErr::RecordNotFound(format!("charger {} after its new password", command.charger_id))),
    }
}

/// Keeps a status notification unless the charger already reported a newer one; announces a
/// change of state.
async fn record_status(
    tx: &DatabaseTransaction,
    message: &Envelope<AnyMessage>,
    status: &ChargerStatusNotification,
    now: DateTime<Utc>,
) -> Result<(), HandlerError> {
    let tenant = message.tenant.as_str();
    let retryable = |e: DbErr| HandlerError::Retryable(format!("database: {e}"));
    let mut current = Query::select()
        .columns(["device_number", "state", "status_at"])
        .from("chargers")
        .and_where(Expr::col("tenant").eq(tenant))
        .and_where(Expr::col("charger_id").eq(status.charger_id))
        .to_owned();
    readside::columns::for_update(tx, &mut current);
    let Some(row) = tx.query_one(&current).await.map_err(retryable)? else {
        return Err(HandlerError::Permanent(format!("charger {} is not registered in {tenant}", status.charger_id)));
    };
    let (number, previous): (String, String) =
        (row.try_get("", "device_number").map_err(retryable)?, row.try_get("", "state").map_err(retryable)?);
    let status_at: Option<DateTime<Utc>> = row.try_get("", "status_at").map_err(retryable)?;
    let mut update = Query::update()
        .table("chargers")
        .value("last_seen_at", now)
        .and_where(Expr::col("tenant").eq(tenant))
        .and_where(Expr::col("charger_id").eq(status.charger_id))
        .to_owned();
    // At the database's precision (microseconds), so a notification sent twice compares equal;
    // a clock running ahead of ours is not believed past a minute (a report from the future
    // would freeze the state for good).
    let ahead = now + chrono::Duration::seconds(crate::charging::MAX_CLOCK_AHEAD_SECONDS);
    let reported_at = Ord::min(status.timestamp, ahead).trunc_subsecs(6);
    let newer = status_at.is_none_or(|at| reported_at > at);
    let state = state_of(status.status);
    if newer {
        update
            .value("state", enum_text(&state))
            .value("connector_status", enum_text(&status.status))
            .value("error_code", status.error_code.as_str())
            .value("status_at", reported_at)
            .value("updated_at", now);
    }
    tx.execute(&update).await.map_err(retryable)?;
    let previous_state: ChargerState =
        serde_json::from_value(serde_json::Value::String(previous.clone())).unwrap_or(ChargerState::Idle);
    let changed = previous_state != state;
    if newer && changed {
        let changed =
            ChargerStateChanged { charger_id: status.charger_id, device_number: number, previous_state, state };
        outbox::enqueue_event(tx, message, SOURCE, changed).await.map_err(retryable)?;
    }
    if newer {
        crate::charging::stopped_by_charger(tx, message, status.charger_id, (state, changed), reported_at, now)
            .await
            .map_err(retryable)?;
    }
    Ok(())
}

/// Handles registrations and status notifications.
pub struct Chargers {
    offline_after: Duration,
}

impl Chargers {
    /// Chargers not heard from within `offline_after` read as `Offline`.
    pub fn new(offline_after: Duration) -> Self {
        Self { offline_after }
    }
}

impl Handler for Chargers {
    fn handle<'a>(
        &'a self,
        context: Context<'a>,
    ) -> Pin<Box<dyn Future<Output = Result<Reply, HandlerError>> + Send + 'a>> {
        Box::pin(async move {
            let tx = context.database(GROUP)?;
            let message = context.message;
            let now = Utc::now();
            match &message.data {
                AnyMessage::RegisterCharger(command) => {
                    let outcome = register(tx, message.tenant.as_str(), command, self.offline_after, now).await;
                    outcome.map(|o| Some(o.to_reply())).map_err(|e| HandlerError::Retryable(e.to_string()))
                }
                AnyMessage::RecordChargerConnection(connection) => {
                    let recorded = record_connection(tx, message.tenant.as_str(), connection).await;
                    recorded.map(|()| None).map_err(|e| HandlerError::Retryable(e.to_string()))
                }
                AnyMessage::ResetCharger(command) => {
                    let outcome = reset(tx, message, command, self.offline_after).await;
                    outcome.map(|o| Some(o.to_reply())).map_err(|e| HandlerError::Retryable(e.to_string()))
                }
                AnyMessage::SetChargerPassword(command) => {
                    let outcome = rotate(tx, message.tenant.as_str(), command, self.offline_after, now).await;
                    outcome.map(|o| Some(o.to_reply())).map_err(|e| HandlerError::Retryable(e.to_string()))
                }
                AnyMessage::ChargerStatusNotification(status) => {
                    record_status(tx, message, status, now).await.map(|()| None)
                }
                _ => Err(HandlerError::unhandled(message)),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connector_statuses_map_onto_the_seeds_states() {
        assert_eq!(state_of(ConnectorStatus::Available), ChargerState::Idle);
        for busy in [
            ConnectorStatus::Preparing,
            ConnectorStatus::Charging,
            ConnectorStatus::SuspendedEV,
            ConnectorStatus::SuspendedEVSE,
            ConnectorStatus::Finishing,
        ] {
            assert_eq!(state_of(busy), ChargerState::Busy);
        }
        assert_eq!(state_of(ConnectorStatus::Unavailable), ChargerState::Repair);
        assert_eq!(state_of(ConnectorStatus::Faulted), ChargerState::Error);
        assert_eq!(enum_text(&ChargerState::Idle), "Idle");
    }
}
