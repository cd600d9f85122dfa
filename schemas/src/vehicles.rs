//! Vehicles: lifecycle, master data, custom fields, operation status, state and commands
//! (INVERS OneAPI), and the derived fleet events partners subscribe to (Levy Fleets).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use crate::Reach;
use crate::message::message;

/// Operation status of a vehicle, set by the operator or by rides.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum OperationStatus {
    /// Ready to rent.
    Available,
    /// In a ride.
    InUse,
    /// Reserved for a customer.
    Reserved,
    /// Being serviced.
    Maintenance,
    /// Out of service (broken, missing).
    OutOfService,
}

/// Transmission type (INVERS master data).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Transmission {
    /// Manual gearbox.
    Manual,
    /// Automatic gearbox.
    Automatic,
}

/// Master data of a vehicle; every property but the VIN is optional (INVERS Vehicle Lifecycle).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct MasterData {
    /// Vehicle identification number.
    pub vin: Option<String>,
    /// Fleet-visible number (`V001`).
    pub vehicle_number: Option<String>,
    /// License plate.
    pub license_plate: Option<String>,
    /// `car`, `scooter`, `bike`, `moped`, …
    pub vehicle_type: Option<String>,
    /// Manufacturer.
    pub brand: Option<String>,
    /// Model.
    pub model: Option<String>,
    /// Gearbox.
    pub transmission: Option<Transmission>,
    /// Telematics unit (CloudConnect box, IoT module) that reports this vehicle.
    pub telematics_unit_id: Option<String>,
}

/// Add a vehicle to a fleet.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct AddVehicle {
    /// New vehicle's id.
    pub vehicle_id: Uuid,
    /// Subaccount (fleet) it belongs to.
    pub subaccount_id: Uuid,
    /// VIN, required.
    pub vin: String,
    /// The other master data.
    pub master_data: MasterData,
    /// Operator-defined fields.
    pub custom_fields: BTreeMap<String, Value>,
    /// Commands the vehicle can carry out; absent: every command.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capabilities: Option<Vec<VehicleCommand>>,
}
message!(AddVehicle, "vehicle.add", (1, 0), Command(Fleet), Vehicles, |m| { Some(m.vehicle_id.to_string()) });

/// Remove a vehicle from its fleet.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RemoveVehicle {
    /// Vehicle.
    pub vehicle_id: Uuid,
}
message!(RemoveVehicle, "vehicle.remove", (1, 0), Command(Fleet), Vehicles, |m| Some(m.vehicle_id.to_string()));

/// Change master data; `null` fields are left as they are.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct UpdateMasterData {
    /// Vehicle.
    pub vehicle_id: Uuid,
    /// Properties to change.
    pub changes: MasterData,
}
message!(UpdateMasterData, "vehicle.update_master_data", (1, 0), Command(Fleet), Vehicles, |m| Some(
    m.vehicle_id.to_string()
));

/// Set and remove custom fields of one vehicle.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ChangeCustomFields {
    /// Vehicle.
    pub vehicle_id: Uuid,
    /// Fields to add or overwrite.
    pub set: BTreeMap<String, Value>,
    /// Fields to remove.
    pub remove: Vec<String>,
}
message!(ChangeCustomFields, "vehicle.change_custom_fields", (1, 0), Command(Fleet), Vehicles, |m| Some(
    m.vehicle_id.to_string()
));

/// Change master data, custom fields and operation status of one vehicle at once, all or
/// nothing (`PATCH /vehicles/{id}`); what is absent stays as it is.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct UpdateVehicle {
    /// Vehicle.
    pub vehicle_id: Uuid,
    /// Master data to change; `null` properties are left as they are.
    #[serde(default)]
    pub master_data: MasterData,
    /// Custom fields to add or overwrite.
    #[serde(default)]
    pub set_custom_fields: BTreeMap<String, Value>,
    /// Custom fields to remove.
    #[serde(default)]
    pub remove_custom_fields: Vec<String>,
    /// New operation status.
    #[serde(default)]
    pub status: Option<OperationStatus>,
}
message!(UpdateVehicle, "vehicle.update", (1, 0), Command(Fleet), Vehicles, |m| Some(m.vehicle_id.to_string()));

/// What a bulk custom-field edit does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum BulkOperation {
    /// Add the field where it is missing.
    Add,
    /// Change the field where it exists.
    Change,
    /// Remove the field.
    Remove,
}

/// Add, change or remove one custom field over many vehicles, all or nothing (what edges before
/// [`BulkEditCustomFields`] sent; still carried out).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct BulkChangeCustomField {
    /// Id of this bulk operation, reported back with its result.
    pub bulk_id: Uuid,
    /// Vehicles.
    pub vehicle_ids: Vec<Uuid>,
    /// What to do.
    pub operation: BulkOperation,
    /// Field name.
    pub field: String,
    /// New value (`null` for remove).
    pub value: Value,
}
message!(BulkChangeCustomField, "vehicle.bulk_change_custom_field", (1, 0), Command(Fleet), Vehicles, |m| Some(
    m.bulk_id.to_string()
));

/// One custom field's edit of a bulk operation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CustomFieldEdit {
    /// What to do.
    pub operation: BulkOperation,
    /// Field name.
    pub field: String,
    /// New value (`null` for remove).
    pub value: Value,
}

/// Add, change or remove several custom fields over many vehicles, all or nothing (INVERS:
/// "add, change, or remove custom fields of multiple vehicles at once").
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct BulkEditCustomFields {
    /// Id of this bulk operation, reported back with its result.
    pub bulk_id: Uuid,
    /// Vehicles.
    pub vehicle_ids: Vec<Uuid>,
    /// The edits, each of a different field, applied together to each vehicle.
    pub edits: Vec<CustomFieldEdit>,
}
message!(BulkEditCustomFields, "vehicle.bulk_edit_custom_fields", (1, 0), Command(Fleet), Vehicles, |m| Some(
    m.bulk_id.to_string()
));

/// Set the operation status (`PATCH /vehicles/{id} {"status": "maintenance"}`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SetOperationStatus {
    /// Vehicle.
    pub vehicle_id: Uuid,
    /// New status.
    pub status: OperationStatus,
}
message!(SetOperationStatus, "vehicle.set_operation_status", (1, 0), Command(Fleet), Vehicles, |m| Some(
    m.vehicle_id.to_string()
));

/// Remote commands a vehicle understands (INVERS Vehicle Commands, kebab-case as in its paths).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum VehicleCommand {
    /// Open the central lock.
    UnlockCentralLock,
    /// Close the central lock.
    LockCentralLock,
    /// Allow the engine to start.
    DisableImmobilizer,
    /// Prevent the engine from starting.
    EnableImmobilizer,
    /// Horn and lights, to find the vehicle.
    HonkAndFlash,
}

/// Send a command to a vehicle through its telematics unit.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SendVehicleCommand {
    /// Id the result is reported under.
    pub command_id: Uuid,
    /// Vehicle.
    pub vehicle_id: Uuid,
    /// What to do.
    pub command: VehicleCommand,
    /// How long the command may wait for an offline vehicle to come back (`queued`) before it
    /// ends `expired`; absent: sent at once, whether the vehicle is heard from or not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl_seconds: Option<u32>,
    /// The customer on whose behalf it is sent: unlocking a vehicle in a ride is for that ride's
    /// customer only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer_id: Option<Uuid>,
    /// The sender may command a vehicle in `maintenance` (`vehicles:maintenance`).
    #[serde(default)]
    pub maintenance_allowed: bool,
    /// The caller's Idempotency-Key, handed on to the device with the command.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
}
message!(SendVehicleCommand, "vehicle.send_command", (1, 1), Command(Fleet), Vehicles, |m| Some(
    m.vehicle_id.to_string()
));

/// Where a command to a vehicle stands: `accepted`, then `queued` while its offline vehicle is
/// awaited or `sent` to the device at once, then one of the ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum CommandState {
    /// Taken by the platform (announced, never left standing).
    Accepted,
    /// Waiting for its vehicle to be heard from again.
    Queued,
    /// Handed to the device; no answer yet.
    #[serde(alias = "pending")]
    Sent,
    /// The vehicle carried it out.
    Succeeded,
    /// The vehicle refused or failed.
    Failed,
    /// Its vehicle was not heard from before its time to live ran out; never sent.
    Expired,
    /// Sent, but no answer before it expired.
    TimedOut,
}

impl CommandState {
    /// Whether it is an end: nothing changes it any more.
    pub fn is_final(self) -> bool {
        matches!(self, Self::Succeeded | Self::Failed | Self::Expired | Self::TimedOut)
    }
}

/// A vehicle command moved on (each state of [`CommandState`], as it is reached).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct VehicleCommandStateChanged {
    /// The command's id.
    pub command_id: Uuid,
    /// Vehicle.
    pub vehicle_id: Uuid,
    /// Subaccount (fleet) of the vehicle.
    pub subaccount_id: Uuid,
    /// The command.
    pub command: VehicleCommand,
    /// Where it stands now.
    pub state: CommandState,
    /// Why it ended so, when it did not succeed.
    pub reason: Option<String>,
}
message!(
    VehicleCommandStateChanged,
    "vehicle.command_state_changed",
    (1, 0),
    Event,
    Vehicles,
    |m| Some(m.vehicle_id.to_string()),
    offered(VehiclesRead, |m| Reach::Subaccount(m.subaccount_id))
);

/// One reported value with the time the vehicle measured it: INVERS reports each property with
/// its own timestamp, and a newer reading of one property must not be overwritten by an older one.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Reading<T> {
    /// The value.
    pub value: T,
    /// When the vehicle measured it, RFC 3339 UTC.
    pub time: DateTime<Utc>,
}

/// A position.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Position {
    /// WGS84 latitude.
    pub latitude: f64,
    /// WGS84 longitude.
    pub longitude: f64,
}

/// Central lock state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum LockState {
    /// Locked.
    Locked,
    /// Unlocked.
    Unlocked,
}

/// Ignition state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum IgnitionState {
    /// Engine/drive off.
    Off,
    /// Engine/drive on.
    On,
}

/// A vehicle state as telematics report it; any property may be absent from one report.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct VehicleState {
    /// State of charge, percent 0–100.
    pub charge_level: Option<Reading<u8>>,
    /// Position.
    pub position: Option<Reading<Position>>,
    /// Odometer, metres.
    pub odometer: Option<Reading<u64>>,
    /// Remaining range, metres.
    pub remaining_range: Option<Reading<u32>>,
    /// Speed, km/h.
    pub speed: Option<Reading<f32>>,
    /// Central lock.
    pub central_lock: Option<Reading<LockState>>,
    /// Ignition.
    pub ignition: Option<Reading<IgnitionState>>,
}

/// A telematics unit reports a state (published by vehicles on NATS).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct VehicleStateReported {
    /// Vehicle.
    pub vehicle_id: Uuid,
    /// Reporting unit.
    pub telematics_unit_id: Option<String>,
    /// Reported properties.
    pub state: VehicleState,
}
message!(VehicleStateReported, "vehicle.state_reported", (1, 0), Event, Vehicles, |m| Some(m.vehicle_id.to_string()));

/// What kind of change a `VehicleChanged` reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum VehicleChangeType {
    /// Added to the fleet.
    Created,
    /// Master data, custom fields or status changed.
    Updated,
    /// Removed from the fleet.
    Deleted,
}

/// INVERS Messaging API `VehicleChanged`: master data, custom fields or status changed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct VehicleChanged {
    /// Vehicle.
    pub vehicle_id: Uuid,
    /// Subaccount (fleet).
    pub subaccount_id: Uuid,
    /// Kind of change.
    pub change_type: VehicleChangeType,
    /// Names of the properties that changed (`license_plate`, `custom_fields.color`, `status`).
    pub changed_properties: Vec<String>,
    /// Master data after the change (absent on deletion).
    pub master_data: Option<MasterData>,
    /// Custom fields after the change.
    pub custom_fields: BTreeMap<String, Value>,
    /// Operation status after the change.
    pub status: Option<OperationStatus>,
}
message!(
    VehicleChanged,
    "VehicleChanged",
    (1, 0),
    Event,
    Vehicles,
    |m| Some(m.vehicle_id.to_string()),
    offered(VehiclesRead, |m| Reach::Subaccount(m.subaccount_id))
);

/// INVERS Messaging API `VehicleStateReceived`: a new state was received from the vehicle.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct VehicleStateReceived {
    /// Vehicle.
    pub vehicle_id: Uuid,
    /// Subaccount (fleet).
    pub subaccount_id: Uuid,
    /// The state as transmitted.
    pub state: VehicleState,
}
message!(
    VehicleStateReceived,
    "VehicleStateReceived",
    (1, 0),
    Event,
    Vehicles,
    |m| Some(m.vehicle_id.to_string()),
    offered(VehiclesRead, |m| Reach::Subaccount(m.subaccount_id))
);

/// Levy Fleets `vehicle.status_changed`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct VehicleStatusChanged {
    /// Vehicle.
    pub vehicle_id: Uuid,
    /// Fleet-visible number.
    pub vehicle_number: Option<String>,
    /// Status before.
    pub previous_status: OperationStatus,
    /// Status now.
    pub status: OperationStatus,
    /// Subaccount.
    pub subaccount_id: Uuid,
}
message!(
    VehicleStatusChanged,
    "vehicle.status_changed",
    (1, 0),
    Event,
    Vehicles,
    |m| Some(m.vehicle_id.to_string()),
    offered(VehiclesRead, |m| Reach::Subaccount(m.subaccount_id))
);

/// Levy Fleets `vehicle.battery_low`: the charge crossed the threshold downwards.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct VehicleBatteryLow {
    /// Vehicle.
    pub vehicle_id: Uuid,
    /// Fleet-visible number.
    pub vehicle_number: Option<String>,
    /// State of charge now, percent.
    pub battery_level: u8,
    /// Configured threshold, percent.
    pub threshold: u8,
    /// Subaccount.
    pub subaccount_id: Uuid,
}
message!(
    VehicleBatteryLow,
    "vehicle.battery_low",
    (1, 0),
    Event,
    Vehicles,
    |m| Some(m.vehicle_id.to_string()),
    offered(VehiclesRead, |m| Reach::Subaccount(m.subaccount_id))
);

/// Levy Fleets `vehicle.location_updated`: the vehicle moved significantly.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct VehicleLocationUpdated {
    /// Vehicle.
    pub vehicle_id: Uuid,
    /// Fleet-visible number.
    pub vehicle_number: Option<String>,
    /// New latitude.
    pub latitude: f64,
    /// New longitude.
    pub longitude: f64,
    /// Distance from the last reported location, metres.
    pub distance_m: u32,
    /// Subaccount.
    pub subaccount_id: Uuid,
}
message!(
    VehicleLocationUpdated,
    "vehicle.location_updated",
    (1, 0),
    Event,
    Vehicles,
    |m| Some(m.vehicle_id.to_string()),
    offered(VehiclesRead, |m| Reach::Subaccount(m.subaccount_id))
);

/// A command for a vehicle's device, on `voltbus.{tenant}.vehicles.{vehicle}.commands`; a device
/// that takes it after `expires_at` must not carry it out (the platform has reported it timed
/// out by then: a car unlocked an hour late is a car unlocked for nobody).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct DeviceCommand {
    /// The command's id, to answer with.
    pub command_id: Uuid,
    /// Vehicle.
    pub vehicle_id: Uuid,
    /// What to do.
    pub command: VehicleCommand,
    /// Not to be carried out after this.
    pub expires_at: DateTime<Utc>,
    /// The Idempotency-Key the command was sent with, if any: a device that keeps it can tell a
    /// command it already carried out from a new one, as `command_id` also does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
}
message!(DeviceCommand, "vehicle.device_command", (1, 1), Command(Device), Vehicles, |m| Some(
    m.vehicle_id.to_string()
));

/// A device's answer to a command, on `voltbus.{tenant}.vehicles.{vehicle}.command-results`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct DeviceCommandResult {
    /// The command answered.
    pub command_id: Uuid,
    /// Vehicle.
    pub vehicle_id: Uuid,
    /// `succeeded` or `failed` (a device never answers `timed_out`).
    pub outcome: CommandOutcome,
    /// Why it failed.
    pub reason: Option<String>,
}
message!(DeviceCommandResult, "vehicle.device_command_result", (1, 0), Event, Vehicles, |m| Some(
    m.vehicle_id.to_string()
));

/// How a vehicle command ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum CommandOutcome {
    /// The vehicle confirmed it.
    Succeeded,
    /// The vehicle refused or failed it.
    Failed,
    /// No answer in time.
    TimedOut,
}

/// A vehicle command finished.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct VehicleCommandCompleted {
    /// The command's id.
    pub command_id: Uuid,
    /// Vehicle.
    pub vehicle_id: Uuid,
    /// The command.
    pub command: VehicleCommand,
    /// Result.
    pub outcome: CommandOutcome,
    /// Why it failed, when it did.
    pub reason: Option<String>,
}
message!(VehicleCommandCompleted, "vehicle.command_completed", (1, 0), Event, Vehicles, |m| Some(
    m.vehicle_id.to_string()
));
