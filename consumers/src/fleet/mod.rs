//! The fleet: vehicles added, changed and removed by commands (INVERS Vehicle Lifecycle and
//! Management, Levy Fleets `PATCH /vehicles/{id}`), and their telemetry taken in from NATS.
//!
//! The `fleet` group answers each vehicle command with the vehicle as stored, or a refusal, and
//! announces every change as `VehicleChanged` (plus `vehicle.status_changed` for the status).
//! The `telemetry` group is the ingest (`telemetry`).
//!
//! Layout: `vehicles` and `states` (the tables), `edits` (what a change does to a vehicle),
//! `telemetry` (the ingest), `commands` (commands to vehicles and their devices' answers).

pub mod commands;
mod edits;
pub mod states;
pub mod telemetry;
pub mod vehicles;

use crate::groups::Group;
use bus::amqp::ConsumerOptions;
use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use telemetry::{Telemetry, Thresholds};

use bus::outbox::{self, Outgoing};
use bus::{Context, Handler, HandlerError, Reply};
use chrono::{DateTime, Utc};
use schemas::Recipient;
use schemas::vehicles::{
    AddVehicle, BulkEditCustomFields, BulkOperation, CustomFieldEdit, MasterData, OperationStatus, SendVehicleCommand,
    UpdateVehicle, VehicleChangeType, VehicleChanged, VehicleStatusChanged,
};
use schemas::{AnyMessage, Envelope};
use sea_orm::{DatabaseTransaction, DbErr};
use uuid::Uuid;

pub use readside::fleet::{ALL_COMMANDS, BulkResult, Filter, LatestState, Nearby, Vehicle};
use readside::{Deleted, Outcome, Refusal};

/// The vehicle commands' group: its queues are `voltbus.fleet…`.
pub const GROUP: &str = Recipient::Fleet.name();

const SOURCE: &str = "voltbus/fleet";

/// Vehicle commands; the telemetry ingest over NATS (in batches, idempotent by the reports' own
/// times, so no inbox); devices' answers to commands.
pub fn groups(commands: commands::Timing, thresholds: Thresholds, telemetry_batch: usize) -> Vec<Group> {
    vec![
        Group::handling(Recipient::Fleet, Arc::new(Fleet::new(commands))),
        Group::stream(telemetry::topology(), Arc::new(Telemetry::new(thresholds)))
            .batched(telemetry_batch, TELEMETRY_OPTIONS)
            .without_inbox(),
        Group::stream(commands::results_topology(), Arc::new(commands::CommandResults)),
    ]
}

/// What a vehicle's telematics unit may do on NATS, and so over NATS's MQTT listener: publish its
/// own state and its answers to commands, and take its own commands; nothing of another vehicle.
pub fn unit_permissions(tenant: &schemas::TenantId, vehicle: Uuid) -> bus::nats::accounts::Permissions {
    use schemas::subjects;
    bus::nats::accounts::Permissions::Device {
        publish: vec![subjects::vehicle_state(tenant, vehicle), subjects::vehicle_command_results(tenant, vehicle)],
        subscribe: vec![subjects::vehicle_commands(tenant, vehicle)],
    }
}

/// The ingest's window: enough reports in flight for full batches on every lane.
const TELEMETRY_OPTIONS: ConsumerOptions = ConsumerOptions { prefetch: 4_000, lanes: 4 };

/// Handles the vehicle commands.
pub struct Fleet {
    /// How commands to vehicles are timed.
    commands: commands::Timing,
}

impl Fleet {
    /// The handler; commands to vehicles are timed by `commands`.
    pub fn new(commands: commands::Timing) -> Self {
        Self { commands }
    }
}

impl Handler for Fleet {
    fn handle<'a>(
        &'a self,
        context: Context<'a>,
    ) -> Pin<Box<dyn Future<Output = Result<Reply, HandlerError>> + Send + 'a>> {
        Box::pin(async move {
            let tx = context.database("fleet")?;
            let message = context.message;
            let now = Utc::now();
            let reply = match &message.data {
                AnyMessage::AddVehicle(add) => add_vehicle(tx, message, add, now).await.map(|o| o.to_reply()),
                AnyMessage::RemoveVehicle(remove) => {
                    remove_vehicle(tx, message, remove.vehicle_id).await.map(|o| o.to_reply())
                }
                AnyMessage::UpdateVehicle(update) => {
                    update_vehicle(tx, message, update, now).await.map(|o| o.to_reply())
                }
                AnyMessage::UpdateMasterData(update) => {
                    let edit = UpdateVehicle {
                        vehicle_id: update.vehicle_id,
                        master_data: update.changes.clone(),
                        ..UpdateVehicle::default()
                    };
                    update_vehicle(tx, message, &edit, now).await.map(|o| o.to_reply())
                }
                AnyMessage::ChangeCustomFields(change) => {
                    let edit = UpdateVehicle {
                        vehicle_id: change.vehicle_id,
                        set_custom_fields: change.set.clone(),
                        remove_custom_fields: change.remove.clone(),
                        ..UpdateVehicle::default()
                    };
                    update_vehicle(tx, message, &edit, now).await.map(|o| o.to_reply())
                }
                AnyMessage::SetOperationStatus(set) => {
                    let edit = UpdateVehicle {
                        vehicle_id: set.vehicle_id,
                        status: Some(set.status),
                        ..UpdateVehicle::default()
                    };
                    update_vehicle(tx, message, &edit, now).await.map(|o| o.to_reply())
                }
                AnyMessage::SendVehicleCommand(command) => {
                    send_command(tx, message, command, self.commands).await.map(|o| o.to_reply())
                }
                AnyMessage::BulkEditCustomFields(bulk) => {
                    bulk_change(tx, message, bulk, now).await.map(|o| o.to_reply())
                }
                AnyMessage::BulkChangeCustomField(one) => {
                    let edit = CustomFieldEdit {
                        operation: one.operation,
                        field: one.field.clone(),
                        value: one.value.clone(),
                    };
                    let bulk = BulkEditCustomFields {
                        bulk_id: one.bulk_id,
                        vehicle_ids: one.vehicle_ids.clone(),
                        edits: vec![edit],
                    };
                    bulk_change(tx, message, &bulk, now).await.map(|o| o.to_reply())
                }
                _ => return Err(HandlerError::unhandled(message)),
            };
            reply.map(Some).map_err(|error| HandlerError::Retryable(error.to_string()))
        })
    }
}

async fn add_vehicle(
    tx: &DatabaseTransaction,
    message: &Envelope<AnyMessage>,
    add: &AddVehicle,
    now: DateTime<Utc>,
) -> Result<Outcome<Vehicle>, DbErr> {
    let tenant = message.tenant.as_str();
    let vehicle = Vehicle {
        id: add.vehicle_id,
        subaccount_id: add.subaccount_id,
        master_data: MasterData { vin: Some(add.vin.clone()), ..add.master_data.clone() },
        custom_fields: add.custom_fields.clone(),
        capabilities: add.capabilities.clone().unwrap_or_else(|| ALL_COMMANDS.to_vec()),
        status: OperationStatus::Available,
        state: LatestState::default(),
        created_at: now,
        updated_at: now,
    };
    if !vehicles::insert(tx, tenant, &vehicle).await? {
        return Ok(Outcome::Refused(taken(tx, tenant, &vehicle).await?));
    }
    let changed = edits::properties_of(&vehicle);
    announce(tx, message, &vehicle, VehicleChangeType::Created, changed).await?;
    Ok(Outcome::Done(vehicle))
}

/// Why `vehicle` could not be stored as it is: its id, VIN or telematics unit is another's.
async fn taken(tx: &DatabaseTransaction, tenant: &str, vehicle: &Vehicle) -> Result<Refusal, DbErr> {
    let unit = vehicle.master_data.telematics_unit_id.as_deref();
    Ok(match vehicles::taken_by(tx, tenant, vehicle.id, vehicle.vin(), unit).await? {
        Some((other, "vin")) => Refusal::conflict(format!("vehicle {other} already has VIN {}", vehicle.vin())),
        Some((other, _)) => {
            Refusal::conflict(format!("vehicle {other} already has telematics unit {}", unit.unwrap_or_default()))
        }
        None => Refusal::conflict(format!("vehicle id {} is taken", vehicle.id)),
    })
}

async fn remove_vehicle(
    tx: &DatabaseTransaction,
    message: &Envelope<AnyMessage>,
    id: Uuid,
) -> Result<Outcome<Deleted>, DbErr> {
    let tenant = message.tenant.as_str();
    let Some(vehicle) = vehicles::find_locked(tx, tenant, &[id]).await?.pop() else {
        return Ok(Outcome::Refused(Refusal::not_found(format!("no vehicle {id}"))));
    };
    vehicles::delete(tx, tenant, id).await?;
    let event = VehicleChanged {
        vehicle_id: id,
        subaccount_id: vehicle.subaccount_id,
        change_type: VehicleChangeType::Deleted,
        changed_properties: Vec::new(),
        master_data: None,
        custom_fields: BTreeMap::new(),
        status: None,
    };
    outbox::enqueue_event(tx, message, SOURCE, event).await?;
    Ok(Outcome::Done(Deleted::of(id)))
}

/// Applies `update` to its vehicle and announces what changed.
async fn update_vehicle(
    tx: &DatabaseTransaction,
    message: &Envelope<AnyMessage>,
    update: &UpdateVehicle,
    now: DateTime<Utc>,
) -> Result<Outcome<Vehicle>, DbErr> {
    let id = update.vehicle_id;
    let Some(vehicle) = vehicles::find_locked(tx, message.tenant.as_str(), &[id]).await?.pop() else {
        return Ok(Outcome::Refused(Refusal::not_found(format!("no vehicle {id}"))));
    };
    let (outcome, events) = update_locked(tx, message, vehicle, update, now).await?;
    outbox::enqueue_encoded(tx, &events).await?;
    Ok(outcome)
}

/// Applies `update` to `vehicle`, which the transaction has read with [`vehicles::find_locked`],
/// and returns the events that announce what changed, for the caller to write into the outbox
/// with its own in one statement (a ride's start and end wait for every round trip): the rides
/// move the status of the vehicle they hold through here.
pub(crate) async fn update_locked(
    tx: &DatabaseTransaction,
    message: &Envelope<AnyMessage>,
    mut vehicle: Vehicle,
    update: &UpdateVehicle,
    now: DateTime<Utc>,
) -> Result<(Outcome<Vehicle>, Vec<Outgoing>), DbErr> {
    let tenant = message.tenant.as_str();
    let id = vehicle.id;
    let before = vehicle.status;
    let changed = edits::apply(&mut vehicle, update);
    if changed.is_empty() {
        return Ok((Outcome::Done(vehicle), Vec::new()));
    }
    let identity_changed = changed.iter().any(|p| p == "vin" || p == "telematics_unit_id");
    let unit = vehicle.master_data.telematics_unit_id.as_deref();
    if identity_changed && vehicles::taken_by(tx, tenant, id, vehicle.vin(), unit).await?.is_some() {
        return Ok((Outcome::Refused(taken(tx, tenant, &vehicle).await?), Vec::new()));
    }
    vehicle.updated_at = now;
    vehicles::update(tx, tenant, &vehicle).await?;
    // Room for the caller's own event (a ride's), written in the same statement.
    let mut events = Vec::with_capacity(3);
    if vehicle.status != before {
        let event = VehicleStatusChanged {
            vehicle_id: id,
            vehicle_number: vehicle.master_data.vehicle_number.clone(),
            previous_status: before,
            status: vehicle.status,
            subaccount_id: vehicle.subaccount_id,
        };
        events.push(outbox::event(message, SOURCE, event));
    }
    events.push(outbox::event(message, SOURCE, changed_event(&vehicle, VehicleChangeType::Updated, changed)));
    Ok((Outcome::Done(vehicle), events))
}

async fn send_command(
    tx: &DatabaseTransaction,
    message: &Envelope<AnyMessage>,
    command: &SendVehicleCommand,
    timing: commands::Timing,
) -> Result<Outcome<commands::CommandStatus>, DbErr> {
    let id = command.vehicle_id;
    match vehicles::find_locked(tx, message.tenant.as_str(), &[id]).await?.first() {
        Some(vehicle) => commands::send(tx, message, command, vehicle, timing).await,
        None => Ok(Outcome::Refused(Refusal::not_found(format!("no vehicle {id}")))),
    }
}

async fn bulk_change(
    tx: &DatabaseTransaction,
    message: &Envelope<AnyMessage>,
    bulk: &BulkEditCustomFields,
    now: DateTime<Utc>,
) -> Result<Outcome<BulkResult>, DbErr> {
    let tenant = message.tenant.as_str();
    let mut ids = bulk.vehicle_ids.clone();
    ids.sort_unstable();
    ids.dedup();
    let mut found = vehicles::find_locked(tx, tenant, &ids).await?;
    if found.len() < ids.len() {
        let missing: Vec<String> =
            ids.iter().filter(|id| !found.iter().any(|v| v.id == **id)).map(Uuid::to_string).collect();
        let why = format!("no vehicle {}; nothing was changed", missing.join(", "));
        return Ok(Outcome::Refused(Refusal::not_found(why)));
    }
    let mut changed = Vec::new();
    for vehicle in &mut found {
        // Each edit where it applies: `add` where the field is missing, `change` and `remove`
        // where it is there.
        let mut edit = UpdateVehicle { vehicle_id: vehicle.id, ..UpdateVehicle::default() };
        for one in &bulk.edits {
            match (one.operation, vehicle.custom_fields.contains_key(&one.field)) {
                (BulkOperation::Add, false) | (BulkOperation::Change, true) => {
                    edit.set_custom_fields.insert(one.field.clone(), one.value.clone());
                }
                (BulkOperation::Remove, true) => edit.remove_custom_fields.push(one.field.clone()),
                _ => {}
            }
        }
        let properties = edits::apply(vehicle, &edit);
        if properties.is_empty() {
            continue;
        }
        vehicle.updated_at = now;
        vehicles::update(tx, tenant, vehicle).await?;
        announce(tx, message, vehicle, VehicleChangeType::Updated, properties).await?;
        changed.push(vehicle.id);
    }
    let unchanged = ids.len() - changed.len();
    Ok(Outcome::Done(BulkResult { bulk_id: bulk.bulk_id, changed, unchanged }))
}

/// Announces `vehicle` as it is now (`VehicleChanged`).
async fn announce(
    tx: &DatabaseTransaction,
    cause: &Envelope<AnyMessage>,
    vehicle: &Vehicle,
    change_type: VehicleChangeType,
    changed_properties: Vec<String>,
) -> Result<(), DbErr> {
    outbox::enqueue_event(tx, cause, SOURCE, changed_event(vehicle, change_type, changed_properties)).await
}

/// The `VehicleChanged` event of `vehicle` as it is now.
fn changed_event(vehicle: &Vehicle, change_type: VehicleChangeType, changed_properties: Vec<String>) -> VehicleChanged {
    VehicleChanged {
        vehicle_id: vehicle.id,
        subaccount_id: vehicle.subaccount_id,
        change_type,
        changed_properties,
        master_data: Some(vehicle.master_data.clone()),
        custom_fields: vehicle.custom_fields.clone(),
        status: Some(vehicle.status),
    }
}
