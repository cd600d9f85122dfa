//! The pricing routes: a subaccount's plan read with `pricing:read` (Levy Fleets `GET /pricing`)
//! and set by an organisation admin, as a command answered by the `pricing` consumers. The
//! subaccount is the one the request acts on (`X-Subaccount-Id` or the key's own).

use readside::pricing::{self, StoredPlan};
use schemars::JsonSchema;
use schemas::Currency;
use schemas::pricing::{Discount, PricingPlan, SetPricing};
use serde::Deserialize;
use uuid::Uuid;

use crate::edge::body::parse_body;
use crate::edge::commands::command;
use crate::edge::envelope::db_error;
use crate::edge::envelope::{Answer, ApiError};
use crate::edge::partner::PartnerApi;
use crate::edge::partner::routes::Call;

/// `PUT /pricing`: the whole plan, in minor units.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct PlanBody {
    /// ISO-4217 currency of every amount.
    currency: Currency,
    /// Fee to unlock.
    unlock_cents: i64,
    /// Per riding minute (every started minute).
    per_minute_cents: i64,
    /// Per paused minute.
    #[serde(default)]
    paused_per_minute_cents: i64,
    /// Per km (billed per metre).
    #[serde(default)]
    per_km_cents: i64,
    /// Floor of a ride's price before discounts.
    #[serde(default)]
    minimum_fare_cents: i64,
    /// Ceiling of a ride's price before discounts.
    cap_cents: Option<i64>,
    /// What a wallet must hold beyond the unlock fee to start a ride.
    #[serde(default)]
    minimum_balance_cents: i64,
    /// Promotions, applied in order.
    #[serde(default)]
    discounts: Vec<Discount>,
}

/// The one subaccount a pricing request is about.
fn subaccount_of(call: &Call) -> Result<Uuid, ApiError> {
    match (call.caller.subaccount, call.caller.fleets()) {
        (Some(subaccount), _) => Ok(subaccount),
        (None, Some(fleets)) if fleets.len() == 1 => Ok(fleets[0]),
        _ => Err(ApiError::invalid("x-subaccount-id", "name the subaccount whose pricing this is: X-Subaccount-Id")),
    }
}

/// `GET /pricing`.
pub(crate) async fn get(api: &PartnerApi, call: Call) -> Result<Answer, ApiError> {
    let subaccount = subaccount_of(&call)?;
    let plan = pricing::find(&api.database, call.caller.tenant.as_str(), subaccount).await.map_err(db_error)?;
    let plan = plan.ok_or_else(|| {
        ApiError::not_found(format!("subaccount {subaccount} has no pricing plan"))
            .details(serde_json::json!({ "subaccount_id": subaccount }))
    })?;
    Ok(Answer::ok(plan))
}

/// `PUT /pricing`.
pub(crate) async fn set(api: &PartnerApi, call: Call) -> Result<Answer, ApiError> {
    let body: PlanBody = parse_body(&call.body)?;
    let subaccount_id = subaccount_of(&call)?;
    let plan = PricingPlan {
        currency: body.currency,
        unlock_cents: body.unlock_cents,
        per_minute_cents: body.per_minute_cents,
        paused_per_minute_cents: body.paused_per_minute_cents,
        per_km_cents: body.per_km_cents,
        minimum_fare_cents: body.minimum_fare_cents,
        cap_cents: body.cap_cents,
        minimum_balance_cents: body.minimum_balance_cents,
        discounts: body.discounts,
    };
    if let Some((field, why)) = plan.problem() {
        return Err(ApiError::invalid(field, why));
    }
    let stored: StoredPlan =
        api.bus.request(&command(&call, SetPricing { subaccount_id, plan }), api.settings.command_timeout).await?;
    Ok(Answer::ok(stored))
}
