//! Maintenance service selection (EVCare seed): admins register workshops (the organisation's own
//! or independent ones) and choose which an integration may send vehicles to, plus whether any
//! independent workshop is selectable; integrations of the fleet manager bundle open maintenance
//! tickets at those workshops, and client and fleet manager bundles open driver tickets.

use http::StatusCode;
use readside::maintenance::{self, Selection, Ticket, Workshop};
use schemars::JsonSchema;
use schemas::maintenance::{AddWorkshop, OpenTicket, SetMaintenanceSelection, TicketKind};
use serde::Deserialize;
use uuid::Uuid;

use crate::edge::body::{bounded_text as text, parse_body};
use crate::edge::commands::command;
use crate::edge::envelope::db_error;
use crate::edge::envelope::{Answer, ApiError};
use crate::edge::partner::PartnerApi;
use crate::edge::partner::routes::Call;

/// Longest name or title.
const MAX_TITLE: usize = 200;
/// Longest description.
const MAX_DESCRIPTION: usize = 4_000;

/// `POST /workshops`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewWorkshop {
    /// Display name, 1 to 200 characters.
    #[schemars(length(min = 1, max = 200))]
    name: String,
    /// An independent workshop (not the organisation's own).
    #[serde(default)]
    independent: bool,
}

/// `PUT /integrations/{id}/maintenance-selection`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct SelectionInput {
    /// Workshops the integration may choose.
    allowed_workshop_ids: Vec<Uuid>,
    /// Whether any independent workshop is selectable too.
    #[serde(default)]
    independent_workshops: bool,
}

/// `POST /maintenance/tickets` and `POST /driver-tickets`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct NewTicket {
    /// The vehicle concerned (required for maintenance).
    vehicle_id: Option<Uuid>,
    /// The workshop chosen (maintenance tickets only).
    workshop_id: Option<Uuid>,
    /// Summary, 1 to 200 characters.
    #[schemars(length(min = 1, max = 200))]
    title: String,
    /// Details, up to 4,000 characters.
    #[serde(default)]
    #[schemars(length(max = 4000))]
    description: String,
    /// Who reports it, as the partner names them (driver tickets).
    #[schemars(length(max = 200))]
    reported_by: Option<String>,
}

/// `POST /workshops`.
pub(crate) async fn add_workshop(api: &PartnerApi, call: Call) -> Result<Answer, ApiError> {
    let request: NewWorkshop = parse_body(&call.body)?;
    let add = AddWorkshop {
        workshop_id: Uuid::now_v7(),
        name: text("name", &request.name, MAX_TITLE, true)?,
        independent: request.independent,
    };
    let workshop: Workshop = api.bus.request(&command(&call, add), api.settings.command_timeout).await?;
    Ok(Answer::with_status(StatusCode::CREATED, workshop))
}

/// `GET /workshops`.
pub(crate) async fn list_workshops(api: &PartnerApi, call: Call) -> Result<Answer, ApiError> {
    Ok(Answer::ok(maintenance::workshops(&api.database, call.caller.tenant.as_str()).await.map_err(db_error)?))
}

/// `PUT /integrations/{id}/maintenance-selection`.
pub(crate) async fn set_selection(api: &PartnerApi, call: Call) -> Result<Answer, ApiError> {
    let request: SelectionInput = parse_body(&call.body)?;
    let mut allowed = request.allowed_workshop_ids;
    allowed.sort();
    allowed.dedup();
    let set = SetMaintenanceSelection {
        integration_id: call.id("id")?,
        allowed_workshop_ids: allowed,
        independent_workshops: request.independent_workshops,
    };
    let selection: Selection = api.bus.request(&command(&call, set), api.settings.command_timeout).await?;
    Ok(Answer::ok(selection))
}

/// The calling integration's id (the routes below are capability routes: only tokens reach them).
fn integration(call: &Call) -> Result<Uuid, ApiError> {
    call.caller
        .integration()
        .map(|claims| claims.integration_id)
        .ok_or_else(|| ApiError::forbidden("this route needs an integration's machine token"))
}

/// `GET /maintenance/workshops`: the workshops this integration may choose.
pub(crate) async fn selectable(api: &PartnerApi, call: Call) -> Result<Answer, ApiError> {
    let tenant = call.caller.tenant.as_str();
    let selection =
        maintenance::selection(&api.database, tenant, integration(&call)?).await.map_err(db_error)?.unwrap_or_default();
    let all = maintenance::workshops(&api.database, tenant).await.map_err(db_error)?;
    Ok(Answer::ok(all.into_iter().filter(|w| selection.allows(w)).collect::<Vec<_>>()))
}

async fn open(api: &PartnerApi, call: Call, kind: TicketKind) -> Result<Answer, ApiError> {
    let request: NewTicket = parse_body(&call.body)?;
    if kind == TicketKind::Maintenance && (request.vehicle_id.is_none() || request.workshop_id.is_none()) {
        let field = if request.vehicle_id.is_none() { "vehicleId" } else { "workshopId" };
        return Err(ApiError::invalid(field, format!("a maintenance ticket names its {field}")));
    }
    if kind == TicketKind::Driver && request.workshop_id.is_some() {
        return Err(ApiError::invalid("workshopId", "a driver ticket names no workshop"));
    }
    let open = OpenTicket {
        ticket_id: Uuid::now_v7(),
        kind,
        integration_id: integration(&call)?,
        vehicle_id: request.vehicle_id,
        workshop_id: request.workshop_id,
        title: text("title", &request.title, MAX_TITLE, true)?,
        description: text("description", &request.description, MAX_DESCRIPTION, false)?,
        reported_by: request.reported_by.as_deref().map(|r| text("reportedBy", r, MAX_TITLE, true)).transpose()?,
    };
    let ticket: Ticket = api.bus.request(&command(&call, open), api.settings.command_timeout).await?;
    Ok(Answer::with_status(StatusCode::CREATED, ticket))
}

async fn list(api: &PartnerApi, call: Call, kind: TicketKind) -> Result<Answer, ApiError> {
    let tickets = maintenance::tickets(&api.database, call.caller.tenant.as_str(), integration(&call)?, kind)
        .await
        .map_err(db_error)?;
    Ok(Answer::ok(tickets))
}

/// `POST /maintenance/tickets`.
pub(crate) async fn open_maintenance(api: &PartnerApi, call: Call) -> Result<Answer, ApiError> {
    open(api, call, TicketKind::Maintenance).await
}

/// `GET /maintenance/tickets`.
pub(crate) async fn list_maintenance(api: &PartnerApi, call: Call) -> Result<Answer, ApiError> {
    list(api, call, TicketKind::Maintenance).await
}

/// `POST /driver-tickets`.
pub(crate) async fn open_driver(api: &PartnerApi, call: Call) -> Result<Answer, ApiError> {
    open(api, call, TicketKind::Driver).await
}

/// `GET /driver-tickets`.
pub(crate) async fn list_driver(api: &PartnerApi, call: Call) -> Result<Answer, ApiError> {
    list(api, call, TicketKind::Driver).await
}
