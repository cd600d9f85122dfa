//! OCPP 2.0.1: the charger's BootNotification, Heartbeat, StatusNotification, Authorize,
//! TransactionEvent (Started, Updated, Ended) and MeterValues, and our RequestStartTransaction,
//! RequestStopTransaction and SetVariables. Payloads follow the 2.0.1 JSON schemas: `customData`
//! anywhere, no other field the schema does not name, strings within their `maxLength`,
//! enumerations closed.

use chrono::{DateTime, Utc};
use schemas::charging::{
    ChargerMeterValues, ChargerStatusNotification, ConnectorStatus, MeterValue, RemoteAction, ResetKind,
};
use serde::Deserialize;
use serde_json::{Value, json};

use super::connection::{Link, sampled, verdict};
use super::registry::Order;
use super::rpc::{self, Code, Refusal, Text, closed};

closed!(BootReason: "ApplicationReset", "FirmwareUpdate", "LocalReset", "PowerUp", "RemoteReset",
    "ScheduledReset", "Triggered", "Unknown", "Watchdog");
closed!(ConnectorStatus201: "Available", "Occupied", "Reserved", "Unavailable", "Faulted");
closed!(IdTokenKind: "Central", "eMAID", "ISO14443", "ISO15693", "KeyCode", "Local", "MacAddress", "NoAuthorization");
closed!(EventType: "Ended", "Started", "Updated");
closed!(TriggerReason: "Authorized", "CablePluggedIn", "ChargingRateChanged", "ChargingStateChanged",
    "Deauthorized", "EnergyLimitReached", "EVCommunicationLost", "EVConnectTimeout", "MeterValueClock",
    "MeterValuePeriodic", "TimeLimitReached", "Trigger", "UnlockCommand", "StopAuthorized", "EVDeparted",
    "EVDetected", "RemoteStop", "RemoteStart", "AbnormalCondition", "SignedDataReceived", "ResetCommand");
closed!(ChargingState: "Charging", "EVConnected", "SuspendedEV", "SuspendedEVSE", "Idle");
closed!(StoppedReason: "DeAuthorized", "EmergencyStop", "EnergyLimitReached", "EVDisconnected", "GroundFault",
    "ImmediateReset", "Local", "LocalOutOfCredit", "MasterPass", "Other", "OvercurrentFault", "PowerLoss",
    "PowerQuality", "Reboot", "Remote", "SOCLimitReached", "StoppedByEV", "TimeLimitReached", "Timeout");
closed!(Measurand: "Current.Export", "Current.Import", "Current.Offered", "Energy.Active.Export.Register",
    "Energy.Active.Import.Register", "Energy.Reactive.Export.Register", "Energy.Reactive.Import.Register",
    "Energy.Active.Export.Interval", "Energy.Active.Import.Interval", "Energy.Active.Net",
    "Energy.Reactive.Export.Interval", "Energy.Reactive.Import.Interval", "Energy.Reactive.Net",
    "Energy.Apparent.Net", "Energy.Apparent.Import", "Energy.Apparent.Export", "Frequency", "Power.Active.Export",
    "Power.Active.Import", "Power.Factor", "Power.Offered", "Power.Reactive.Export", "Power.Reactive.Import", "SoC",
    "Voltage");
closed!(Context: "Interruption.Begin", "Interruption.End", "Other", "Sample.Clock", "Sample.Periodic",
    "Transaction.Begin", "Transaction.End", "Trigger");
closed!(Phase: "L1", "L2", "L3", "N", "L1-N", "L2-N", "L3-N", "L1-L2", "L2-L3", "L3-L1");
closed!(Location: "Body", "Cable", "EV", "Inlet", "Outlet");

/// 2.0.1's `customData`: a vendor's own fields beside its id.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
#[allow(dead_code)]
struct CustomData {
    vendor_id: Text<255>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[allow(dead_code)]
struct Modem {
    custom_data: Option<CustomData>,
    iccid: Option<Text<20>>,
    imsi: Option<Text<20>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[allow(dead_code)]
struct Station {
    custom_data: Option<CustomData>,
    serial_number: Option<Text<25>>,
    model: Text<20>,
    modem: Option<Modem>,
    vendor_name: Text<50>,
    firmware_version: Option<Text<50>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[allow(dead_code)]
struct BootNotification {
    custom_data: Option<CustomData>,
    charging_station: Station,
    reason: BootReason,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[allow(dead_code)]
struct Heartbeat {
    custom_data: Option<CustomData>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[allow(dead_code)]
struct StatusNotification {
    custom_data: Option<CustomData>,
    timestamp: DateTime<Utc>,
    connector_status: ConnectorStatus201,
    evse_id: u32,
    connector_id: u32,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[allow(dead_code)]
struct AdditionalInfo {
    custom_data: Option<CustomData>,
    additional_id_token: Text<36>,
    #[serde(rename = "type")]
    kind: Text<50>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[allow(dead_code)]
struct IdToken {
    custom_data: Option<CustomData>,
    additional_info: Option<Vec<AdditionalInfo>>,
    id_token: Text<36>,
    #[serde(rename = "type")]
    kind: IdTokenKind,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[allow(dead_code)]
struct Authorize {
    custom_data: Option<CustomData>,
    id_token: IdToken,
    certificate: Option<Text<5500>>,
    iso15118_certificate_hash_data: Option<Vec<Value>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[allow(dead_code)]
struct UnitOfMeasure {
    custom_data: Option<CustomData>,
    unit: Option<Text<20>>,
    multiplier: Option<i32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[allow(dead_code)]
struct SignedMeterValue {
    custom_data: Option<CustomData>,
    signed_meter_data: Text<2500>,
    signing_method: Text<50>,
    encoding_method: Text<50>,
    public_key: Text<2500>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[allow(dead_code)]
struct Sampled {
    custom_data: Option<CustomData>,
    value: f64,
    context: Option<Context>,
    measurand: Option<Measurand>,
    phase: Option<Phase>,
    location: Option<Location>,
    signed_meter_value: Option<SignedMeterValue>,
    unit_of_measure: Option<UnitOfMeasure>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[allow(dead_code)]
struct Sample {
    custom_data: Option<CustomData>,
    timestamp: DateTime<Utc>,
    sampled_value: Vec<Sampled>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[allow(dead_code)]
struct MeterValues {
    custom_data: Option<CustomData>,
    evse_id: u32,
    meter_value: Vec<Sample>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[allow(dead_code)]
struct Transaction {
    custom_data: Option<CustomData>,
    transaction_id: Text<36>,
    charging_state: Option<ChargingState>,
    time_spent_charging: Option<i64>,
    stopped_reason: Option<StoppedReason>,
    remote_start_id: Option<i64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[allow(dead_code)]
struct Evse {
    custom_data: Option<CustomData>,
    id: u32,
    connector_id: Option<u32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[allow(dead_code)]
struct TransactionEvent {
    custom_data: Option<CustomData>,
    event_type: EventType,
    meter_value: Option<Vec<Sample>>,
    timestamp: DateTime<Utc>,
    trigger_reason: TriggerReason,
    seq_no: u32,
    offline: Option<bool>,
    number_of_phases_used: Option<u32>,
    cable_max_current: Option<i64>,
    reservation_id: Option<i64>,
    transaction_info: Transaction,
    evse: Option<Evse>,
    id_token: Option<IdToken>,
}

/// Answers one of the charger's CALLs.
pub(crate) async fn answer(link: &mut Link<'_>, action: &str, payload: Value) -> Result<Value, Refusal> {
    match action {
        "BootNotification" => {
            let _: BootNotification = rpc::payload(payload)?;
            let variable = json!({
                "attributeValue": link.door.settings.meter_interval_seconds.to_string(),
                "component": { "name": "SampledDataCtrlr" },
                "variable": { "name": "TxUpdatedInterval" },
            });
            Ok(link.booted(("SetVariables", json!({ "setVariableData": [variable] }))))
        }
        "Heartbeat" => {
            let _: Heartbeat = rpc::payload(payload)?;
            link.heartbeat().await
        }
        "StatusNotification" => {
            let status: StatusNotification = rpc::payload(payload)?;
            let charging = link.state.transaction.is_some();
            link.status(ChargerStatusNotification {
                charger_id: link.charger.id,
                connector_id: status.connector_id,
                status: connector_status(&status.connector_status, charging),
                error_code: "NoError".into(),
                timestamp: status.timestamp,
            })
            .await?;
            Ok(json!({}))
        }
        "Authorize" => {
            let authorize: Authorize = rpc::payload(payload)?;
            let accepted = link.session_tag(&authorize.id_token.id_token.0).await?;
            Ok(json!({ "idTokenInfo": { "status": verdict(accepted) } }))
        }
        "TransactionEvent" => {
            let event: TransactionEvent = rpc::payload(payload)?;
            let accepted = match &event.id_token {
                Some(token) => Some(link.session_tag(&token.id_token.0).await?),
                None => None,
            };
            let connector = event.evse.as_ref().and_then(|evse| evse.connector_id).unwrap_or(1);
            let samples: Vec<MeterValue> = event.meter_value.unwrap_or_default().into_iter().map(sample).collect();
            if accepted != Some(false) {
                link.meter(ChargerMeterValues {
                    charger_id: link.charger.id,
                    connector_id: connector,
                    transaction_id: None,
                    meter_value: samples,
                })
                .await?;
            }
            let transaction = event.transaction_info.transaction_id.0;
            match event.event_type.0.as_str() {
                "Ended" if link.state.transaction.as_deref() == Some(transaction.as_str()) => {
                    link.state.transaction = None;
                }
                "Ended" => {}
                _ if accepted != Some(false) => link.state.transaction = Some(transaction),
                _ => {}
            }
            Ok(match accepted {
                Some(accepted) => json!({ "idTokenInfo": { "status": verdict(accepted) } }),
                None => json!({}),
            })
        }
        "MeterValues" => {
            let meter: MeterValues = rpc::payload(payload)?;
            let samples = meter.meter_value.into_iter().map(sample).collect();
            link.meter(ChargerMeterValues {
                charger_id: link.charger.id,
                connector_id: meter.evse_id,
                transaction_id: None,
                meter_value: samples,
            })
            .await?;
            Ok(json!({}))
        }
        other => Err(Refusal::new(Code::NotImplemented, format!("{other} is not handled"))),
    }
}

/// The CALL an order becomes, if the charger can take it now.
pub(crate) fn order(link: &Link<'_>, order: Order) -> Option<(&'static str, Value)> {
    match order {
        Order::Remote(command) => match command.action {
            RemoteAction::RemoteStartTransaction => {
                // OCPP's remoteStartId is an integer: the low 31 bits of the session's id.
                let remote_start_id = (command.session_id.as_u128() & 0x7fff_ffff) as i64;
                let token = json!({ "idToken": command.session_id.to_string(), "type": "Central" });
                Some((
                    "RequestStartTransaction",
                    json!({ "evseId": 1, "remoteStartId": remote_start_id, "idToken": token }),
                ))
            }
            RemoteAction::RemoteStopTransaction => {
                let Some(transaction) = link.state.transaction.clone() else {
                    tracing::warn!(session = %command.session_id, "no transaction known on this socket to stop");
                    return None;
                };
                Some(("RequestStopTransaction", json!({ "transactionId": transaction })))
            }
        },
        Order::Reset(kind) => {
            let kind = match kind {
                ResetKind::Soft => "OnIdle",
                ResetKind::Hard => "Immediate",
            };
            Some(("Reset", json!({ "type": kind })))
        }
    }
}

/// 2.0.1's connector status in 1.6's words, which the bus carries: `Occupied` is `Charging`
/// while a transaction runs, `Preparing` otherwise.
fn connector_status(status: &ConnectorStatus201, charging: bool) -> ConnectorStatus {
    match status.0.as_str() {
        "Occupied" if charging => ConnectorStatus::Charging,
        "Occupied" => ConnectorStatus::Preparing,
        "Reserved" => ConnectorStatus::Reserved,
        "Unavailable" => ConnectorStatus::Unavailable,
        "Faulted" => ConnectorStatus::Faulted,
        _ => ConnectorStatus::Available,
    }
}

/// A sample as the bus carries it: the value times its unit's multiplier.
fn sample(sample: Sample) -> MeterValue {
    let values = sample.sampled_value.into_iter().map(|s| {
        let (unit, multiplier) = s.unit_of_measure.map_or((None, None), |u| (u.unit, u.multiplier));
        let value = s.value * 10f64.powi(multiplier.unwrap_or(0));
        sampled(value.to_string(), s.measurand.map(|m| m.0), unit.map(|u| u.0))
    });
    MeterValue { timestamp: sample.timestamp, sampled_value: values.collect() }
}
