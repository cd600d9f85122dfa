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
message!(SetPricing, "pricing.set", (1, 0), Command(Pricing), Pricing, |m| { Some(m.subaccount_id.to_string()) });

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

/// Largest amount a plan names (a million major units), so no price can overflow.
pub const MAX_AMOUNT_CENTS: i64 = 100_000_000;
/// Most discounts one plan applies.
pub const MAX_DISCOUNTS: usize = 10;

impl PricingPlan {
    /// What is wrong with the plan, as the field and a sentence; `None` if nothing.
    pub fn problem(&self) -> Option<(&'static str, String)> {
        let plan = self;
        let amounts = [
            ("unlock_cents", Some(plan.unlock_cents)),
            ("per_minute_cents", Some(plan.per_minute_cents)),
            ("paused_per_minute_cents", Some(plan.paused_per_minute_cents)),
            ("per_km_cents", Some(plan.per_km_cents)),
            ("minimum_fare_cents", Some(plan.minimum_fare_cents)),
            ("cap_cents", plan.cap_cents),
            ("minimum_balance_cents", Some(plan.minimum_balance_cents)),
        ];
        for (field, amount) in amounts {
            if amount.is_some_and(|a| !(0..=MAX_AMOUNT_CENTS).contains(&a)) {
                return Some((field, format!("{field} must be 0 to {MAX_AMOUNT_CENTS} minor units")));
            }
        }
        if plan.cap_cents.is_some_and(|cap| cap < plan.minimum_fare_cents) {
            return Some(("cap_cents", "cap_cents must not be below minimum_fare_cents".into()));
        }
        if plan.discounts.len() > MAX_DISCOUNTS {
            return Some(("discounts", format!("at most {MAX_DISCOUNTS} discounts")));
        }
        for discount in &plan.discounts {
            let (fine, label) = match discount {
                Discount::Percentage { basis_points, label } => (*basis_points <= 10_000, label),
                Discount::Fixed { amount_cents, label } => ((0..=MAX_AMOUNT_CENTS).contains(amount_cents), label),
            };
            if !fine {
                return Some((
                    "discounts",
                    "a percentage is 0 to 10,000 basis points, a fixed amount 0 or more".into(),
                ));
            }
            if label.trim().is_empty() || label.chars().count() > 100 {
                return Some(("discounts", "every discount has a label of 1 to 100 characters".into()));
            }
        }
        None
    }
}
