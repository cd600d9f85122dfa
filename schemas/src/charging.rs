//! Chargers and charging sessions. Chargers speak OCPP's vocabulary (status notifications, meter
//! values); the mobile app sees the EVM seed's four states and its `{subject}.CHARGING` progress.

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::Currency;
use crate::message::message;

/// OCPP 1.6 connector status, as chargers report it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum ConnectorStatus {
    /// Free.
    Available,
    /// Plugged in, not yet charging.
    Preparing,
    /// Charging.
    Charging,
    /// The EV paused charging.
    SuspendedEV,
    /// The charger paused charging.
    SuspendedEVSE,
    /// Session ending.
    Finishing,
    /// Reserved.
    Reserved,
    /// Taken out of service.
    Unavailable,
    /// In fault.
    Faulted,
}

/// The EVM seed's charger states.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum ChargerState {
    /// Free.
    Idle,
    /// In use.
    Busy,
    /// Out of service.
    Repair,
    /// In fault.
    Error,
    /// Not heard from lately (no status or meter values within the configured window).
    Offline,
}

/// Register a charger, or replace its master data (organisation admins).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RegisterCharger {
    /// Charger.
    pub charger_id: Uuid,
    /// Its public number, unique in the organisation.
    pub device_number: String,
    /// `[longitude, latitude]`, as the EVM seed writes it.
    pub location: [f64; 2],
    /// Price per kWh, minor units.
    pub price: i64,
    /// Price per minute connected without charging, minor units.
    pub waiting_price: i64,
    /// ISO-4217 currency of both prices.
    pub currency: Currency,
    /// SHA-256 (hex) of the charger's new OCPP password; absent keeps the one it has.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ocpp_password_hash: Option<String>,
}
message!(RegisterCharger, "charger.register", (1, 0), Command(Chargers), Charging, |m| Some(m.charger_id.to_string()));

/// Give a charger a new OCPP password (organisation admins, operators); its sockets open with
/// the old one stay until they reconnect.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SetChargerPassword {
    /// Charger.
    pub charger_id: Uuid,
    /// SHA-256 (hex) of the new password; the password itself never travels the bus.
    pub ocpp_password_hash: String,
}
message!(SetChargerPassword, "charger.set_ocpp_password", (1, 0), Command(Chargers), Charging, |m| Some(
    m.charger_id.to_string()
));

/// A charger's OCPP socket opened or closed on a voltbus process (the OCPP door says so).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RecordChargerConnection {
    /// Charger.
    pub charger_id: Uuid,
    /// The OCPP version it speaks (`1.6`, `2.0.1`).
    pub ocpp_version: String,
    /// The process holding its socket.
    pub node: String,
    /// Whether the socket opened (or closed).
    pub connected: bool,
    /// When.
    pub at: DateTime<Utc>,
}
message!(RecordChargerConnection, "charger.record_connection", (1, 0), Command(Chargers), Charging, |m| Some(
    m.charger_id.to_string()
));

/// How a charger restarts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum ResetKind {
    /// When it is idle (2.0.1 `OnIdle`; 1.6 `Soft`, which ends a transaction first).
    Soft,
    /// At once (2.0.1 `Immediate`; 1.6 `Hard`).
    Hard,
}

/// Restart a charger (organisation admins, operators): it is sent OCPP's `Reset`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ResetCharger {
    /// Charger.
    pub charger_id: Uuid,
    /// How.
    pub kind: ResetKind,
}
message!(ResetCharger, "charger.reset", (1, 0), Command(Chargers), Charging, |m| Some(m.charger_id.to_string()));

/// A reset on its way to the charger, on `voltbus.{tenant}.chargers.{charger}.commands`: the
/// process holding its socket sends it OCPP's `Reset`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ChargerResetRequested {
    /// Charger.
    pub charger_id: Uuid,
    /// How.
    pub kind: ResetKind,
}
message!(ChargerResetRequested, "charger.reset_requested", (1, 0), Command(Device), Charging, |m| Some(
    m.charger_id.to_string()
));

/// OCPP `StatusNotification` from a charger (published by chargers on NATS).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ChargerStatusNotification {
    /// Charger.
    pub charger_id: Uuid,
    /// Connector, 1-based; 0 is the whole charger.
    pub connector_id: u32,
    /// Connector status.
    pub status: ConnectorStatus,
    /// OCPP error code (`NoError`, `GroundFailure`, …).
    pub error_code: String,
    /// When the charger observed it.
    pub timestamp: DateTime<Utc>,
}
message!(ChargerStatusNotification, "charger.status_notification", (1, 0), Event, Charging, |m| Some(
    m.charger_id.to_string()
));

/// One OCPP sampled value; OCPP sends the value as a string.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SampledValue {
    /// The value, e.g. `"1234.5"`.
    pub value: String,
    /// What is measured, e.g. `Energy.Active.Import.Register`.
    pub measurand: String,
    /// Unit, e.g. `Wh` or `kWh`.
    pub unit: String,
}

/// Sampled values taken at one time.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MeterValue {
    /// When sampled.
    pub timestamp: DateTime<Utc>,
    /// The samples.
    pub sampled_value: Vec<SampledValue>,
}

/// OCPP `MeterValues` from a charger (published by chargers on NATS).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ChargerMeterValues {
    /// Charger.
    pub charger_id: Uuid,
    /// Connector.
    pub connector_id: u32,
    /// OCPP transaction the values belong to.
    pub transaction_id: Option<i64>,
    /// Samples.
    pub meter_value: Vec<MeterValue>,
}
message!(ChargerMeterValues, "charger.meter_values", (1, 0), Event, Charging, |m| Some(m.charger_id.to_string()));

/// A charger's EVM state changed (what `GET /devices/by-location` shows).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ChargerStateChanged {
    /// Charger.
    pub charger_id: Uuid,
    /// Its public number.
    pub device_number: String,
    /// State before.
    pub previous_state: ChargerState,
    /// State now.
    pub state: ChargerState,
}
message!(ChargerStateChanged, "charger.state_changed", (1, 0), Event, Charging, |m| Some(m.charger_id.to_string()));

/// Start charging (`POST /devices/:id/start`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StartCharging {
    /// New session's id.
    pub session_id: Uuid,
    /// Charger.
    pub charger_id: Uuid,
    /// App user.
    pub user_id: Uuid,
}
message!(StartCharging, "charging.start", (1, 0), Command(Charging), Charging, |m| Some(m.charger_id.to_string()));

/// Finish charging (`POST /devices/:id/finish`); replies with the purchase id.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FinishCharging {
    /// Session.
    pub session_id: Uuid,
    /// Charger.
    pub charger_id: Uuid,
    /// App user.
    pub user_id: Uuid,
}
message!(FinishCharging, "charging.finish", (1, 0), Command(Charging), Charging, |m| Some(m.charger_id.to_string()));

/// A charging session started.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ChargingStarted {
    /// Session.
    pub session_id: Uuid,
    /// Charger.
    pub charger_id: Uuid,
    /// App user.
    pub user_id: Uuid,
    /// When.
    pub started_at: DateTime<Utc>,
}
message!(ChargingStarted, "charging.started", (1, 0), Event, Charging, |m| Some(m.session_id.to_string()));

/// The EVM seed's `{subject}.CHARGING`, sent to the user every 2–5 s while charging.
///
/// Published in binary mode so the body is the seed's object; the user is the envelope's subject.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ChargingProgress {
    /// Energy delivered so far, kWh.
    pub energy: f64,
    /// Seconds spent connected without charging (billed at `waitingPrice`).
    pub waiting_time: u32,
    /// Cost so far, minor units.
    pub amount: i64,
    /// ISO-4217 currency of `amount`.
    pub currency: Currency,
    /// Set on the session's last message: the purchase to pay (the session ended, by the app's
    /// `finish` or by the charger itself).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub purchase_id: Option<Uuid>,
}
message!(ChargingProgress, "CHARGING", (1, 0), Event, Charging, |_m| None);

/// OCPP's remote actions voltbus asks a charger for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum RemoteAction {
    /// Start charging (a session began).
    RemoteStartTransaction,
    /// Stop charging (the session was finished).
    RemoteStopTransaction,
}

/// A command to a charger, on `voltbus.{tenant}.chargers.{charger}.commands` (JetStream).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ChargerRemoteCommand {
    /// Charger.
    pub charger_id: Uuid,
    /// The charging session it is for (OCPP's `idTag`).
    pub session_id: Uuid,
    /// What to do.
    pub action: RemoteAction,
}
message!(ChargerRemoteCommand, "charger.remote_command", (1, 0), Command(Device), Charging, |m| Some(
    m.charger_id.to_string()
));

/// A charging session finished and its purchase was created.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ChargingFinished {
    /// Session.
    pub session_id: Uuid,
    /// Purchase to pay.
    pub purchase_id: Uuid,
    /// Charger.
    pub charger_id: Uuid,
    /// App user.
    pub user_id: Uuid,
    /// Energy delivered, kWh.
    pub energy: f64,
    /// Price, minor units.
    pub amount: i64,
    /// ISO-4217 currency.
    pub currency: Currency,
    /// When.
    pub finished_at: DateTime<Utc>,
}
message!(ChargingFinished, "charging.finished", (1, 0), Event, Charging, |m| Some(m.session_id.to_string()));
