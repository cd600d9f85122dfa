//! Zones (Levy Fleets): parking, no-ride and slow areas of a subaccount.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::Reach;
use crate::message::message;

/// Kind of zone (`GET /zones?type=parking`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ZoneType {
    /// Where rides may end.
    Parking,
    /// Where rides may not start or end.
    NoRide,
    /// Where rides may pass but not end.
    NoParking,
    /// Where speed is limited.
    Slow,
    /// The service area.
    Operating,
}

/// A zone's definition.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Zone {
    /// Display name.
    pub name: String,
    /// Kind.
    #[serde(rename = "type")]
    pub zone_type: ZoneType,
    /// Closed ring of `[longitude, latitude]` points.
    pub polygon: Vec<[f64; 2]>,
    /// Speed limit inside, km/h (slow zones).
    pub speed_limit_kmh: Option<u16>,
}

/// Create or replace a zone.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct UpsertZone {
    /// Zone.
    pub zone_id: Uuid,
    /// Subaccount.
    pub subaccount_id: Uuid,
    /// Definition.
    pub zone: Zone,
}
message!(UpsertZone, "zone.upsert", (1, 0), Command(Zones), Zones, |m| Some(m.zone_id.to_string()));

/// Delete a zone.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct DeleteZone {
    /// Zone.
    pub zone_id: Uuid,
}
message!(DeleteZone, "zone.delete", (1, 0), Command(Zones), Zones, |m| Some(m.zone_id.to_string()));

/// A zone was created, replaced or deleted.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ZoneChanged {
    /// Zone.
    pub zone_id: Uuid,
    /// Subaccount.
    pub subaccount_id: Uuid,
    /// Definition now; absent when deleted.
    pub zone: Option<Zone>,
}
message!(
    ZoneChanged,
    "zone.changed",
    (1, 0),
    Event,
    Zones,
    |m| Some(m.zone_id.to_string()),
    offered(ZonesRead, |m| Reach::Subaccount(m.subaccount_id))
);
