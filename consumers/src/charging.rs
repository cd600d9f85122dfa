//! Charging sessions (EVM seed): started and finished by the app (`charging.start`,
//! `charging.finish`, group `charging`), priced from the charger's own meter values (JetStream
//! group `charger-meter`, on `voltbus.{tenant}.chargers.{charger}.meter`), and followed by the
//! app on its `{topic}.CHARGING` channel.
//!
//! - Start: only on an `Idle` charger (one heard from lately), one active session per charger
//!   and per customer (partial unique indexes back the checks). The session keeps the
//!   charger's prices as they were, and the charger is asked to `RemoteStartTransaction`.
//! - Meter values: the energy register (`Energy.Active.Import.Register`, Wh or kWh) priced at
//!   `price` per kWh; time between two readings in which no energy flowed is waiting time,
//!   priced at `waiting_price` per minute. The charger's timestamps order readings: one not newer
//!   than the last changes nothing, so a repeated or late reading never counts twice (which is
//!   why the group needs no inbox). Each reading sends the app `{energy, waitingTime, amount}`;
//!   chargers report every few seconds, which is the seed's 2–5 s.
//! - Finish, by the app or by the charger itself (a status of `Idle`, `Repair` or `Error` newer
//!   than the session's start that changes the charger's state or follows its meter readings
//!   of the session; an idle charger repeating itself stops nothing): the session ends at its
//!   last reading, a `pending` purchase of its amount is made, the charger is asked to
//!   `RemoteStopTransaction` (when the app finished), `charging.finished` is announced, and the
//!   app's last `CHARGING` carries the `purchaseId`.
//!
//! Realtime messages leave through the outbox (or, for meter readings, right after commit), so
//! they go only once their session's change is committed.

use crate::groups::Group;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bus::nats::JetStreamGroup;
use bus::outbox::{self, Destination, Outgoing};
use bus::{Context, Handled, Handler, HandlerError, Reply};
use chrono::{DateTime, SubsecRound, Utc};
use schemas::Recipient;
use schemas::charging::{
    ChargerMeterValues, ChargerRemoteCommand, ChargerState, ChargingFinished, ChargingStarted, FinishCharging,
    RemoteAction, StartCharging,
};
use schemas::subjects::Channel;
use schemas::{AnyMessage, Envelope, TenantId, subjects};
use sea_orm::sea_query::{Expr, ExprTrait, Query};
use sea_orm::{ConnectionTrait, DatabaseTransaction, DbErr};
use serde_json::json;
use uuid::Uuid;

pub use readside::charging::{Session, active, active_of};
use readside::{Outcome, Refusal, codes};

/// The app's commands' group.
pub const GROUP: &str = Recipient::Charging.name();
/// The group that takes chargers' meter values from JetStream.
pub const METER_GROUP: &str = "charger-meter";

const SOURCE: &str = "voltbus/charging";
/// The OCPP measurand of the energy register.
const ENERGY: &str = "Energy.Active.Import.Register";
/// How far ahead of ours a charger's clock may run before its reports are not believed.
pub(crate) const MAX_CLOCK_AHEAD_SECONDS: i64 = 60;

/// Sessions the app starts and finishes; chargers' meter values over NATS, idempotent by the
/// charger's timestamps (no inbox), each reading's progress sent to the app right after its commit.
pub fn groups(offline_after: Duration) -> Vec<Group> {
    let handler = Arc::new(Charging::new(offline_after));
    vec![
        Group::handling(Recipient::Charging, handler.clone()),
        Group::stream(meter_topology(), handler).without_inbox(),
    ]
}

/// Every tenant's chargers' meter values.
pub fn meter_topology() -> JetStreamGroup {
    JetStreamGroup::new(
        METER_GROUP,
        subjects::TELEMETRY_STREAM,
        subjects::every_charger_meter(),
        crate::RETRY_DELAYS.to_vec(),
    )
    .checking_tenant_in_subject()
}

fn realtime(tenant: &TenantId, session: &Session, purchase_id: Option<Uuid>, cause: &Envelope<AnyMessage>) -> Outgoing {
    progress(tenant, session, purchase_id, Some(cause))
}

/// The app's `CHARGING` message of `session`, as a consequence of `cause` when there is one.
fn progress(
    tenant: &TenantId,
    session: &Session,
    purchase_id: Option<Uuid>,
    cause: Option<&Envelope<AnyMessage>>,
) -> Outgoing {
    let mut progress = Envelope::new(tenant.clone(), SOURCE, session.progress(purchase_id));
    if let Some(cause) = cause {
        progress = progress.caused_by(cause);
    }
    let progress = progress.with_subject(session.customer_id.to_string());
    let subject = subjects::user_channel(tenant, session.customer_id, Channel::Charging);
    Outgoing::new(&progress, Destination::Realtime { subject })
}

/// Sends each active session's app its progress again when it was last sent more than `every`
/// ago (the seed's `CHARGING` every 2 to 5 s, from the latest reading, when the charger reports
/// less often); how many were sent. Sessions are claimed in the database, so several processes
/// pacing at once send each only once.
pub async fn pace(db: &sea_orm::DatabaseConnection, every: Duration) -> Result<usize, DbErr> {
    use sea_orm::TransactionTrait;
    let now = Utc::now();
    // A little short of `every`, so a tick that comes late does not skip a session a whole period.
    let before = now - chrono::Duration::from_std(every.mul_f64(0.9)).unwrap_or_default();
    let tx = db.begin().await?;
    let due = readside::charging::due_for_progress(&tx, before, now).await?;
    let mut messages = Vec::with_capacity(due.len());
    for (tenant, session) in &due {
        match TenantId::new(tenant.as_str()) {
            Ok(tenant) => messages.push(progress(&tenant, session, None, None)),
            Err(error) => tracing::warn!(%tenant, %error, "a session under an unusable tenant name"),
        }
    }
    outbox::enqueue_encoded(&tx, &messages).await?;
    tx.commit().await?;
    bus::outbox::committed();
    Ok(messages.len())
}

async fn remote(
    tx: &DatabaseTransaction,
    cause: &Envelope<AnyMessage>,
    session: &Session,
    action: RemoteAction,
) -> Result<(), DbErr> {
    let command = ChargerRemoteCommand { charger_id: session.charger_id, session_id: session.id, action };
    let envelope = Envelope::new(cause.tenant.clone(), SOURCE, command).caused_by(cause);
    let to = Destination::Nats { subject: subjects::charger_commands(&cause.tenant, session.charger_id) };
    outbox::enqueue(tx, &envelope, &to).await
}

async fn start(
    tx: &DatabaseTransaction,
    cause: &Envelope<AnyMessage>,
    command: &StartCharging,
    offline_after: Duration,
    now: DateTime<Utc>,
) -> Result<Outcome<serde_json::Value>, DbErr> {
    let tenant = cause.tenant.as_str();
    // The charger's row is the lock two starts on it queue behind.
    let mut lock = Query::select()
        .column("charger_id")
        .from("chargers")
        .and_where(Expr::col("tenant").eq(tenant))
        .and_where(Expr::col("charger_id").eq(command.charger_id))
        .to_owned();
    readside::columns::for_update(tx, &mut lock);
    tx.query_one(&lock).await?;
    let Some(charger) = crate::chargers::find(tx, tenant, command.charger_id, offline_after).await? else {
        return Ok(Outcome::Refused(Refusal::not_found(format!("no charger {}", command.charger_id))));
    };
    if charger.state != ChargerState::Idle {
        let state = serde_json::to_value(charger.state).unwrap_or_default();
        let refusal =
            Refusal::coded(codes::CHARGER_UNAVAILABLE, format!("the charger is {}", state.as_str().unwrap_or("busy")));
        return Ok(Outcome::Refused(refusal));
    }
    if active(tx, tenant, "charger_id", command.charger_id, false).await?.is_some() {
        return Ok(Outcome::Refused(Refusal::coded(codes::CHARGER_UNAVAILABLE, "the charger is in use")));
    }
    if active(tx, tenant, "customer_id", command.user_id, false).await?.is_some() {
        return Ok(Outcome::Refused(Refusal::conflict("you are already charging")));
    }
    let unpaid = Query::select()
        .column("purchase_id")
        .from("purchases")
        .and_where(Expr::col("tenant").eq(tenant))
        .and_where(Expr::col("customer_id").eq(command.user_id))
        .and_where(Expr::col("status").eq("pending"))
        .limit(1)
        .to_owned();
    if tx.query_one(&unpaid).await?.is_some() {
        let refusal = Refusal::coded(codes::INSUFFICIENT_FUNDS, "pay your last charging before the next one");
        return Ok(Outcome::Refused(refusal));
    }
    let insert = Query::insert()
        .into_table("charging_sessions")
        .columns([
            "session_id",
            "tenant",
            "charger_id",
            "customer_id",
            "status",
            "price",
            "waiting_price",
            "currency",
            "waiting_seconds",
            "amount",
            "started_at",
        ])
        .values_panic([
            command.session_id.into(),
            tenant.into(),
            command.charger_id.into(),
            command.user_id.into(),
            "active".into(),
            charger.price.into(),
            charger.waiting_price.into(),
            charger.currency.as_str().into(),
            0i32.into(),
            0i64.into(),
            now.into(),
        ])
        // A start of the same customer on another charger at the same instant (the charger
        // rows lock apart) meets the one-per-customer index here: a refusal, not an error.
        .on_conflict(sea_orm::sea_query::OnConflict::new().do_nothing().to_owned())
        .to_owned();
    if tx.execute(&insert).await?.rows_affected() == 0 {
        return Ok(Outcome::Refused(Refusal::conflict("you are already charging")));
    }
    let session = Session {
        id: command.session_id,
        charger_id: command.charger_id,
        customer_id: command.user_id,
        price: charger.price,
        waiting_price: charger.waiting_price,
        currency: charger.currency,
        meter_start_wh: None,
        meter_last_wh: None,
        meter_at: None,
        waiting_seconds: 0,
        started_at: now,
    };
    remote(tx, cause, &session, RemoteAction::RemoteStartTransaction).await?;
    let started = ChargingStarted {
        session_id: session.id,
        charger_id: session.charger_id,
        user_id: session.customer_id,
        started_at: now,
    };
    outbox::enqueue_event(tx, cause, SOURCE, started).await?;
    Ok(Outcome::Done(json!({ "session_id": session.id })))
}

/// Ends `session` at its last reading: its purchase, `charging.finished`, and the app's last
/// `CHARGING` with the purchase id. Returns the purchase id.
pub(crate) async fn end(
    tx: &DatabaseTransaction,
    cause: &Envelope<AnyMessage>,
    session: &Session,
    now: DateTime<Utc>,
) -> Result<Uuid, DbErr> {
    let tenant = cause.tenant.as_str();
    let purchase_id = Uuid::now_v7();
    let amount = session.amount();
    let energy_kwh = session.energy_wh() / 1000.0;
    let insert = Query::insert()
        .into_table("purchases")
        .columns([
            "purchase_id",
            "tenant",
            "customer_id",
            "session_id",
            "charger_id",
            "energy_kwh",
            "amount",
            "currency",
            "status",
            "created_at",
            "updated_at",
        ])
        .values_panic([
            purchase_id.into(),
            tenant.into(),
            session.customer_id.into(),
            session.id.into(),
            session.charger_id.into(),
            energy_kwh.into(),
            amount.into(),
            session.currency.as_str().into(),
            "pending".into(),
            now.into(),
            now.into(),
        ])
        .to_owned();
    tx.execute(&insert).await?;
    let update = Query::update()
        .table("charging_sessions")
        .value("status", "finished")
        .value("finished_at", now)
        .value("purchase_id", purchase_id)
        .value("amount", amount)
        .and_where(Expr::col("tenant").eq(tenant))
        .and_where(Expr::col("session_id").eq(session.id))
        .to_owned();
    tx.execute(&update).await?;
    let finished = ChargingFinished {
        session_id: session.id,
        purchase_id,
        charger_id: session.charger_id,
        user_id: session.customer_id,
        energy: energy_kwh,
        amount,
        currency: session.currency,
        finished_at: now,
    };
    outbox::enqueue_event(tx, cause, SOURCE, finished).await?;
    outbox::enqueue_encoded(tx, &[realtime(&cause.tenant, session, Some(purchase_id), cause)]).await?;
    Ok(purchase_id)
}

async fn finish(
    tx: &DatabaseTransaction,
    cause: &Envelope<AnyMessage>,
    command: &FinishCharging,
    now: DateTime<Utc>,
) -> Result<Outcome<serde_json::Value>, DbErr> {
    let tenant = cause.tenant.as_str();
    let session = active(tx, tenant, "customer_id", command.user_id, true).await?;
    // The session named: a late finish of an ended session never ends the next one.
    let Some(session) = session.filter(|s| s.charger_id == command.charger_id && s.id == command.session_id) else {
        return Ok(Outcome::Refused(Refusal::not_found("you are not charging at this charger")));
    };
    remote(tx, cause, &session, RemoteAction::RemoteStopTransaction).await?;
    let purchase_id = end(tx, cause, &session, now).await?;
    Ok(Outcome::Done(json!({ "id": purchase_id })))
}

/// Ends the session on `charger_id` when the charger itself stopped: a status of `state` newer
/// than the session's start, which is a change (`changed`) or comes after the charger metered the
/// session. A charger repeats its status (the simulator its `Available` every minute); an idle
/// charger saying so again between a session's start and its taking `RemoteStartTransaction`
/// has stopped nothing, and ending the session there left the charger charging with none.
pub(crate) async fn stopped_by_charger(
    tx: &DatabaseTransaction,
    cause: &Envelope<AnyMessage>,
    charger_id: Uuid,
    (state, changed): (ChargerState, bool),
    at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    if !matches!(state, ChargerState::Idle | ChargerState::Repair | ChargerState::Error) {
        return Ok(());
    }
    let Some(session) = active(tx, cause.tenant.as_str(), "charger_id", charger_id, true).await? else { return Ok(()) };
    if at <= session.started_at || !(changed || session.meter_at.is_some()) {
        return Ok(());
    }
    end(tx, cause, &session, now).await.map(|_| ())
}

/// The energy register of a meter value, in Wh.
fn energy_wh(meter: &schemas::charging::MeterValue) -> Option<f64> {
    meter.sampled_value.iter().find(|s| s.measurand == ENERGY).and_then(|s| {
        let value = s.value.trim().parse::<f64>().ok().filter(|v| v.is_finite() && *v >= 0.0)?;
        match s.unit.as_str() {
            "Wh" => Some(value),
            "kWh" => Some(value * 1000.0),
            _ => None,
        }
    })
}

/// Takes meter readings into the charger's active session; returns the app's progress message.
async fn record_meter(
    tx: &DatabaseTransaction,
    cause: &Envelope<AnyMessage>,
    values: &ChargerMeterValues,
    now: DateTime<Utc>,
) -> Result<Vec<Outgoing>, HandlerError> {
    let retryable = |e: DbErr| HandlerError::Retryable(format!("database: {e}"));
    let tenant = cause.tenant.as_str();
    let seen = Query::update()
        .table("chargers")
        .value("last_seen_at", now)
        .and_where(Expr::col("tenant").eq(tenant))
        .and_where(Expr::col("charger_id").eq(values.charger_id))
        .to_owned();
    if tx.execute(&seen).await.map_err(retryable)?.rows_affected() == 0 {
        return Err(HandlerError::Permanent(format!("charger {} is not registered in {tenant}", values.charger_id)));
    }
    let Some(mut session) = active(tx, tenant, "charger_id", values.charger_id, true).await.map_err(retryable)? else {
        return Ok(Vec::new());
    };
    // At the database's precision (microseconds), so a reading sent twice compares equal.
    let mut readings: Vec<(DateTime<Utc>, f64)> =
        values.meter_value.iter().filter_map(|m| energy_wh(m).map(|wh| (m.timestamp.trunc_subsecs(6), wh))).collect();
    readings.sort_by_key(|(at, _)| *at);
    let mut changed = false;
    for (at, wh) in readings {
        // A charger's clock is trusted to order its own readings, not to run ahead of ours: a
        // reading from the future would stop every later one from counting.
        if at > now + chrono::Duration::seconds(MAX_CLOCK_AHEAD_SECONDS) {
            tracing::warn!(charger = %values.charger_id, %at, "a meter reading from the future; ignored");
            continue;
        }
        if session.meter_at.is_some_and(|last| at <= last) {
            continue;
        }
        match (session.meter_start_wh, session.meter_last_wh, session.meter_at) {
            (None, _, _) => session.meter_start_wh = Some(wh),
            (Some(start), Some(last), Some(last_at)) => {
                if wh < last {
                    // The register went back (the charger restarted, or a bad sample): what
                    // was delivered so far stays delivered, counted on from the new value.
                    tracing::warn!(charger = %values.charger_id, last, wh, "the energy register went back");
                    session.meter_start_wh = Some(wh - (last - start));
                } else if wh == last {
                    session.waiting_seconds += Ord::max((at - last_at).num_seconds(), 0);
                }
            }
            _ => {}
        }
        session.meter_last_wh = Some(wh);
        session.meter_at = Some(at);
        changed = true;
    }
    if !changed {
        return Ok(Vec::new());
    }
    let update = Query::update()
        .table("charging_sessions")
        .value("meter_start_wh", session.meter_start_wh)
        .value("meter_last_wh", session.meter_last_wh)
        .value("meter_at", session.meter_at)
        .value("waiting_seconds", i32::try_from(session.waiting_seconds).unwrap_or(i32::MAX))
        .value("amount", session.amount())
        .value("progress_at", now)
        .and_where(Expr::col("tenant").eq(tenant))
        .and_where(Expr::col("session_id").eq(session.id))
        .to_owned();
    tx.execute(&update).await.map_err(retryable)?;
    Ok(vec![realtime(&cause.tenant, &session, None, cause)])
}

/// Handles the app's commands and the chargers' meter values.
pub struct Charging {
    offline_after: Duration,
}

impl Charging {
    /// Sessions start only on chargers heard from within `offline_after`.
    pub fn new(offline_after: Duration) -> Self {
        Self { offline_after }
    }
}

impl Handler for Charging {
    fn handle<'a>(
        &'a self,
        context: Context<'a>,
    ) -> Pin<Box<dyn Future<Output = Result<Reply, HandlerError>> + Send + 'a>> {
        Box::pin(async move {
            let tx = context.database(GROUP)?;
            let message = context.message;
            let now = Utc::now();
            let outcome = match &message.data {
                AnyMessage::StartCharging(command) => start(tx, message, command, self.offline_after, now).await,
                AnyMessage::FinishCharging(command) => finish(tx, message, command, now).await,
                _ => return Err(HandlerError::unhandled(message)),
            };
            outcome.map(|o| Some(o.to_reply())).map_err(|e| HandlerError::Retryable(e.to_string()))
        })
    }

    fn handle_publishing<'a>(
        &'a self,
        transaction: &'a DatabaseTransaction,
        messages: &'a [(&'a Envelope<AnyMessage>, u32)],
    ) -> Pin<Box<dyn Future<Output = Result<Handled, HandlerError>> + Send + 'a>> {
        Box::pin(async move {
            let mut publish = Vec::new();
            for (message, _) in messages {
                let AnyMessage::ChargerMeterValues(values) = &message.data else {
                    return Err(HandlerError::unhandled(message));
                };
                publish.extend(record_meter(transaction, message, values, Utc::now()).await?);
            }
            Ok(Handled::publishing(publish))
        })
    }
}

#[cfg(test)]
mod tests {
    use schemas::Currency;

    use super::*;

    fn session(start: f64, last: f64, waiting_seconds: i64) -> Session {
        Session {
            id: Uuid::nil(),
            charger_id: Uuid::nil(),
            customer_id: Uuid::nil(),
            price: 450,
            waiting_price: 50,
            currency: Currency::MNT,
            meter_start_wh: Some(start),
            meter_last_wh: Some(last),
            meter_at: None,
            waiting_seconds,
            started_at: Utc::now(),
        }
    }

    #[test]
    fn a_session_is_priced_per_kwh_and_per_started_waiting_minute() {
        // 2.5 kWh at 450 = 1125; 61 s waiting = 2 started minutes at 50 = 100.
        let priced = session(10_000.0, 12_500.0, 61);
        assert_eq!(priced.amount(), 1225);
        let progress = priced.progress(None);
        assert_eq!((progress.energy, progress.waiting_time, progress.amount), (2.5, 61, 1225));
        assert_eq!(session(0.0, 0.0, 0).amount(), 0);
    }

    #[test]
    fn the_register_is_read_in_wh_or_kwh() {
        let sample = |value: &str, unit: &str| schemas::charging::MeterValue {
            timestamp: Utc::now(),
            sampled_value: vec![schemas::charging::SampledValue {
                value: value.into(),
                measurand: ENERGY.into(),
                unit: unit.into(),
            }],
        };
        assert_eq!(energy_wh(&sample("1234.5", "Wh")), Some(1234.5));
        assert_eq!(energy_wh(&sample("1.5", "kWh")), Some(1500.0));
        assert_eq!(energy_wh(&sample("-1", "Wh")), None);
        assert_eq!(energy_wh(&sample("12", "varh")), None);
    }
}
