//! The fleet as partners read it: vehicles with their latest state (`vehicles`, `states`) and
//! the commands sent to them (`commands`).

pub mod commands;
pub mod states;
pub mod vehicles;

use schemars::JsonSchema;
use schemas::vehicles::VehicleCommand;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

pub use states::LatestState;
pub use vehicles::{Filter, Nearby, Vehicle};

/// Every command a vehicle carries out; a vehicle added without a list has them all.
pub const ALL_COMMANDS: [VehicleCommand; 5] = [
    VehicleCommand::UnlockCentralLock,
    VehicleCommand::LockCentralLock,
    VehicleCommand::DisableImmobilizer,
    VehicleCommand::EnableImmobilizer,
    VehicleCommand::HonkAndFlash,
];

/// What a bulk custom-field edit did.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct BulkResult {
    /// The bulk operation's id.
    pub bulk_id: Uuid,
    /// The vehicles it changed.
    pub changed: Vec<Uuid>,
    /// How many of the named vehicles it left as they were (the field was already so, or, for
    /// `add`, already there; for `change`, not there).
    pub unchanged: usize,
}
