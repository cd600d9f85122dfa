//! OCPP 1.6J: the charger's BootNotification, Heartbeat, StatusNotification, Authorize,
//! StartTransaction, MeterValues and StopTransaction, and our RemoteStartTransaction,
//! RemoteStopTransaction, ChangeConfiguration and Reset. Payloads follow the 1.6 JSON schemas:
//! no field the schema does not name, strings within their `maxLength`, enumerations closed.

use chrono::{DateTime, TimeZone, Utc};
use schemas::charging::{ChargerMeterValues, ChargerStatusNotification, ConnectorStatus, MeterValue, RemoteAction};
use serde::Deserialize;
use serde_json::{Value, json};

use super::connection::{Link, id_tag, sampled, verdict};
use super::registry::Order;
use super::rpc::{self, Code, Refusal, Text, closed};

closed!(ErrorCode: "ConnectorLockFailure", "EVCommunicationError", "GroundFailure", "HighTemperature",
    "InternalError", "LocalListConflict", "NoError", "OtherError", "OverCurrentFailure", "PowerMeterFailure",
    "PowerSwitchFailure", "ReaderFailure", "ResetFailure", "UnderVoltage", "OverVoltage", "WeakSignal");
closed!(Context: "Interruption.Begin", "Interruption.End", "Sample.Clock", "Sample.Periodic",
    "Transaction.Begin", "Transaction.End", "Trigger", "Other");
closed!(Format: "Raw", "SignedData");
closed!(Measurand: "Energy.Active.Export.Register", "Energy.Active.Import.Register",
    "Energy.Reactive.Export.Register", "Energy.Reactive.Import.Register", "Energy.Active.Export.Interval",
    "Energy.Active.Import.Interval", "Energy.Reactive.Export.Interval", "Energy.Reactive.Import.Interval",
    "Power.Active.Export", "Power.Active.Import", "Power.Offered", "Power.Reactive.Export",
    "Power.Reactive.Import", "Power.Factor", "Current.Import", "Current.Export", "Current.Offered", "Voltage",
    "Frequency", "Temperature", "SoC", "RPM");
closed!(Phase: "L1", "L2", "L3", "N", "L1-N", "L2-N", "L3-N", "L1-L2", "L2-L3", "L3-L1");
closed!(Location: "Cable", "EV", "Inlet", "Outlet", "Body");
closed!(Unit: "Wh", "kWh", "varh", "kvarh", "W", "kW", "VA", "kVA", "var", "kvar", "A", "V", "K", "Celcius",
    "Celsius", "Fahrenheit", "Percent");
closed!(Reason: "EmergencyStop", "EVDisconnected", "HardReset", "Local", "Other", "PowerLoss", "Reboot",
    "Remote", "SoftReset", "UnlockCommand", "DeAuthorized");

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[allow(dead_code)] // Read for the schema's sake; the charger's identity is its URL's.
struct BootNotification {
    charge_point_vendor: Text<20>,
    charge_point_model: Text<20>,
    charge_point_serial_number: Option<Text<25>>,
    charge_box_serial_number: Option<Text<25>>,
    firmware_version: Option<Text<50>>,
    iccid: Option<Text<20>>,
    imsi: Option<Text<20>>,
    meter_type: Option<Text<25>>,
    meter_serial_number: Option<Text<25>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Heartbeat {}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[allow(dead_code)]
struct StatusNotification {
    connector_id: u32,
    error_code: ErrorCode,
    info: Option<Text<50>>,
    status: ConnectorStatus,
    timestamp: Option<DateTime<Utc>>,
    vendor_id: Option<Text<255>>,
    vendor_error_code: Option<Text<50>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Authorize {
    id_tag: Text<20>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[allow(dead_code)]
struct StartTransaction {
    connector_id: u32,
    id_tag: Text<20>,
    meter_start: i64,
    reservation_id: Option<i64>,
    timestamp: DateTime<Utc>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[allow(dead_code)]
struct Sampled {
    value: String,
    context: Option<Context>,
    format: Option<Format>,
    measurand: Option<Measurand>,
    phase: Option<Phase>,
    location: Option<Location>,
    unit: Option<Unit>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Sample {
    timestamp: DateTime<Utc>,
    sampled_value: Vec<Sampled>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct MeterValues {
    connector_id: u32,
    transaction_id: Option<i64>,
    meter_value: Vec<Sample>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[allow(dead_code)]
struct StopTransaction {
    id_tag: Option<Text<20>>,
    meter_stop: i64,
    timestamp: DateTime<Utc>,
    transaction_id: i64,
    reason: Option<Reason>,
    transaction_data: Option<Vec<Sample>>,
}

/// Answers one of the charger's CALLs.
pub(crate) async fn answer(link: &mut Link<'_>, action: &str, payload: Value) -> Result<Value, Refusal> {
    match action {
        "BootNotification" => {
            let _: BootNotification = rpc::payload(payload)?;
            let interval = link.door.settings.meter_interval_seconds.to_string();
            Ok(link.booted(("ChangeConfiguration", json!({ "key": "MeterValueSampleInterval", "value": interval }))))
        }
        "Heartbeat" => {
            let Heartbeat {} = rpc::payload(payload)?;
            link.heartbeat().await
        }
        "StatusNotification" => {
            let status: StatusNotification = rpc::payload(payload)?;
            link.status(ChargerStatusNotification {
                charger_id: link.charger.id,
                connector_id: status.connector_id,
                status: status.status,
                error_code: status.error_code.0,
                // The charger consumer does not believe a clock far ahead of ours.
                timestamp: status.timestamp.unwrap_or_else(Utc::now),
            })
            .await?;
            Ok(json!({}))
        }
        "Authorize" => {
            let Authorize { id_tag } = rpc::payload(payload)?;
            Ok(json!({ "idTagInfo": { "status": verdict(link.session_tag(&id_tag.0).await?) } }))
        }
        "StartTransaction" => {
            let start: StartTransaction = rpc::payload(payload)?;
            let accepted = link.session_tag(&start.id_tag.0).await?;
            let transaction_id = transaction_id(start.timestamp);
            if accepted {
                let reading = register(start.meter_start, start.timestamp);
                link.meter(values(link, start.connector_id, Some(transaction_id), vec![reading])).await?;
                link.state.transaction = Some(transaction_id.to_string());
            }
            Ok(json!({ "idTagInfo": { "status": verdict(accepted) }, "transactionId": transaction_id }))
        }
        "MeterValues" => {
            let meter: MeterValues = rpc::payload(payload)?;
            if let Some(id) = meter.transaction_id {
                link.state.transaction = Some(id.to_string());
            }
            let samples = meter.meter_value.into_iter().map(sample).collect();
            link.meter(values(link, meter.connector_id, meter.transaction_id, samples)).await?;
            Ok(json!({}))
        }
        "StopTransaction" => {
            let stop: StopTransaction = rpc::payload(payload)?;
            let mut samples: Vec<MeterValue> =
                stop.transaction_data.unwrap_or_default().into_iter().map(sample).collect();
            samples.push(register(stop.meter_stop, stop.timestamp));
            link.meter(values(link, 1, Some(stop.transaction_id), samples)).await?;
            if link.state.transaction.as_deref() == Some(stop.transaction_id.to_string().as_str()) {
                link.state.transaction = None;
            }
            Ok(json!({ "idTagInfo": { "status": "Accepted" } }))
        }
        other => Err(Refusal::new(Code::NotImplemented, format!("{other} is not handled"))),
    }
}

/// The CALL an order becomes, if the charger can take it now.
pub(crate) fn order(link: &Link<'_>, order: Order) -> Option<(&'static str, Value)> {
    match order {
        Order::Remote(command) => match command.action {
            RemoteAction::RemoteStartTransaction => {
                Some(("RemoteStartTransaction", json!({ "connectorId": 1, "idTag": id_tag(command.session_id) })))
            }
            RemoteAction::RemoteStopTransaction => {
                let Some(transaction) = link.state.transaction.as_deref().and_then(|id| id.parse::<i64>().ok()) else {
                    tracing::warn!(session = %command.session_id, "no transaction known on this socket to stop");
                    return None;
                };
                Some(("RemoteStopTransaction", json!({ "transactionId": transaction })))
            }
        },
        Order::Reset(kind) => Some(("Reset", json!({ "type": kind }))),
    }
}

/// A transaction's id: the seconds from 2020 to its start, as the charger timed it. The same
/// StartTransaction sent again after a reconnect gets the same id; one charger starts no two
/// transactions in one second.
fn transaction_id(started: DateTime<Utc>) -> i64 {
    let epoch = Utc.with_ymd_and_hms(2020, 1, 1, 0, 0, 0).single().unwrap_or_default();
    (started - epoch).num_seconds().clamp(1, i64::from(i32::MAX))
}

/// The energy register reading `wh` at `at`.
fn register(wh: i64, at: DateTime<Utc>) -> MeterValue {
    MeterValue { timestamp: at, sampled_value: vec![sampled(wh.to_string(), None, None)] }
}

/// A sample as the bus carries it.
fn sample(sample: Sample) -> MeterValue {
    let values =
        sample.sampled_value.into_iter().map(|s| sampled(s.value, s.measurand.map(|m| m.0), s.unit.map(|u| u.0)));
    MeterValue { timestamp: sample.timestamp, sampled_value: values.collect() }
}

fn values(
    link: &Link<'_>,
    connector_id: u32,
    transaction_id: Option<i64>,
    meter_value: Vec<MeterValue>,
) -> ChargerMeterValues {
    ChargerMeterValues { charger_id: link.charger.id, connector_id, transaction_id, meter_value }
}
