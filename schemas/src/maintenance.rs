//! Maintenance (EVCare seed): workshops that service the fleet (the organisation's own, or
//! independent ones), which of them an integration may send vehicles to, and the tickets fleet
//! managers (maintenance) and drivers (problems they report) open through integrations.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::message::message;

/// Register a workshop.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AddWorkshop {
    /// New workshop's id.
    pub workshop_id: Uuid,
    /// Display name.
    pub name: String,
    /// An independent workshop (not the organisation's own).
    pub independent: bool,
}
message!(AddWorkshop, "workshop.add", (1, 0), Command(Maintenance), Vehicles, |m| Some(m.workshop_id.to_string()));

/// Which workshops an integration may send maintenance tickets to.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SetMaintenanceSelection {
    /// Integration.
    pub integration_id: Uuid,
    /// Workshops it may choose.
    pub allowed_workshop_ids: Vec<Uuid>,
    /// Whether it may also choose any independent workshop.
    pub independent_workshops: bool,
}
message!(
    SetMaintenanceSelection,
    "integration.set_maintenance_selection",
    (1, 0),
    Command(Maintenance),
    Integrations,
    |m| Some(m.integration_id.to_string())
);

/// What a ticket is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum TicketKind {
    /// A fleet manager's maintenance job for a vehicle, at a workshop.
    Maintenance,
    /// A problem a driver reports.
    Driver,
}

/// Open a ticket through an integration.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OpenTicket {
    /// New ticket's id.
    pub ticket_id: Uuid,
    /// Maintenance or driver.
    pub kind: TicketKind,
    /// The integration it came through.
    pub integration_id: Uuid,
    /// The vehicle concerned.
    pub vehicle_id: Option<Uuid>,
    /// The workshop chosen (maintenance tickets).
    pub workshop_id: Option<Uuid>,
    /// Short summary.
    pub title: String,
    /// Details.
    pub description: String,
    /// Who reported it, as the partner names them (drivers).
    pub reported_by: Option<String>,
}
message!(OpenTicket, "ticket.open", (1, 0), Command(Maintenance), Vehicles, |m| Some(m.ticket_id.to_string()));

/// A ticket was opened.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TicketOpened {
    /// Ticket.
    pub ticket_id: Uuid,
    /// Maintenance or driver.
    pub kind: TicketKind,
    /// The vehicle concerned.
    pub vehicle_id: Option<Uuid>,
    /// The workshop chosen.
    pub workshop_id: Option<Uuid>,
}
message!(TicketOpened, "ticket.opened", (1, 0), Event, Vehicles, |m| Some(m.ticket_id.to_string()));
