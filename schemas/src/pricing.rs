//! Pricing plans (Levy Fleets `GET /pricing`), all amounts in minor units.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::Currency;
use crate::Reach;
use crate::message::message;

/// A discount applied to a ride's price.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Discount {
    /// Percentage in basis points (1,000 = 10 %), so no fraction is ever a float.
    Percentage {
        /// Basis points, 0–10,000.
        basis_points: u16,
        /// Promotion name.
        label: String,
    },
    /// A fixed amount off.
    Fixed {
        /// Minor units.
        amount_cents: i64,
        /// Promotion name.
        label: String,
    },
}

/// A subaccount's pricing plan.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct PricingPlan {
    /// ISO-4217 currency of every amount.
    pub currency: Currency,
    /// Fee to unlock.
    pub unlock_cents: i64,
    /// Per riding minute.
    pub per_minute_cents: i64,
    /// Per paused minute.
    pub paused_per_minute_cents: i64,
    /// Per km.
    pub per_km_cents: i64,
    /// Floor of a ride's price.
    pub minimum_fare_cents: i64,
    /// Ceiling of a ride's price, if any.
    pub cap_cents: Option<i64>,
    /// Balance a wallet needs to start a ride, beyond the unlock fee.
    pub minimum_balance_cents: i64,
    /// Active discounts, applied in order.
    pub discounts: Vec<Discount>,
}

/// Set a subaccount's pricing plan.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SetPricing {
    /// Subaccount.
    pub subaccount_id: Uuid,
    /// The plan.
    pub plan: PricingPlan,
}
message!(SetPricing, "pricing.set", (1, 0), Command, Pricing, |m| { Some(m.subaccount_id.to_string()) });

/// A subaccount's pricing plan changed; rides started after it use it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct PricingChanged {
    /// Subaccount.
    pub subaccount_id: Uuid,
    /// The plan now.
    pub plan: PricingPlan,
}
message!(
    PricingChanged,
    "pricing.changed",
    (1, 0),
    Event,
    Pricing,
    |m| Some(m.subaccount_id.to_string()),
    offered(PricingRead, |m| Reach::Subaccount(m.subaccount_id))
);
