//! Pricing plans (Levy Fleets `GET /pricing`): one per subaccount, set by `pricing.set` and
//! announced as `pricing.changed`. A ride keeps the plan it started under (`rides`), so a change
//! prices later rides only. The price itself is one pure function (`price`).

pub mod price;

use std::future::Future;
use std::pin::Pin;

use bus::amqp::GroupTopology;
use bus::outbox;
use bus::{Context, Handler, HandlerError, Reply};
use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use schemas::pricing::{Discount, PricingChanged, PricingPlan, SetPricing};
use schemas::{AnyMessage, routing};
use sea_orm::sea_query::{Expr, ExprTrait, OnConflict, Query};
use sea_orm::{ConnectionTrait, DbErr, QueryResult};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::columns::{json_column, to_json};
use crate::outcome::{Outcome, Refusal};
pub use price::{Usage, price};

/// The group's name: its queues are `voltbus.pricing…`.
pub const GROUP: &str = "pricing";

const SOURCE: &str = "voltbus/pricing";
const TABLE: &str = "pricing_plans";

/// Largest amount a plan names (a million major units), so no price can overflow.
pub const MAX_AMOUNT_CENTS: i64 = 100_000_000;
/// Most discounts one plan applies.
pub const MAX_DISCOUNTS: usize = 10;

/// The pricing commands' queues.
pub fn topology() -> GroupTopology {
    GroupTopology::commands(GROUP, vec![routing::command_key_of::<SetPricing>()], crate::RETRY_DELAYS.to_vec())
}

/// A subaccount's plan as partners see it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct StoredPlan {
    /// The subaccount it prices.
    pub subaccount_id: Uuid,
    /// The plan.
    #[serde(flatten)]
    pub plan: PricingPlan,
    /// Last set.
    pub updated_at: DateTime<Utc>,
}

/// What is wrong with `plan`, as the field and a sentence; `None` if nothing.
pub fn problem(plan: &PricingPlan) -> Option<(&'static str, String)> {
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
            return Some(("discounts", "a percentage is 0 to 10,000 basis points, a fixed amount 0 or more".into()));
        }
        if label.trim().is_empty() || label.chars().count() > 100 {
            return Some(("discounts", "every discount has a label of 1 to 100 characters".into()));
        }
    }
    None
}

fn from_row(row: &QueryResult) -> Result<StoredPlan, DbErr> {
    Ok(StoredPlan {
        subaccount_id: row.try_get("", "subaccount_id")?,
        plan: json_column(row, TABLE, "plan")?,
        updated_at: row.try_get("", "updated_at")?,
    })
}

/// The plan of `tenant`'s subaccount `subaccount_id`, if one was set.
pub async fn find(db: &impl ConnectionTrait, tenant: &str, subaccount_id: Uuid) -> Result<Option<StoredPlan>, DbErr> {
    let query = Query::select()
        .columns(["subaccount_id", "plan", "updated_at"])
        .from(TABLE)
        .and_where(Expr::col("tenant").eq(tenant))
        .and_where(Expr::col("subaccount_id").eq(subaccount_id))
        .to_owned();
    db.query_one(&query).await?.as_ref().map(from_row).transpose()
}

/// Handles `pricing.set`.
pub struct Pricing;

impl Handler for Pricing {
    fn handle<'a>(
        &'a self,
        context: Context<'a>,
    ) -> Pin<Box<dyn Future<Output = Result<Reply, HandlerError>> + Send + 'a>> {
        Box::pin(async move {
            let tx = context.database(GROUP)?;
            let message = context.message;
            let AnyMessage::SetPricing(set) = &message.data else {
                return Err(HandlerError::unhandled(message));
            };
            if let Some((_, why)) = problem(&set.plan) {
                return Ok(Some(Outcome::<StoredPlan>::Refused(Refusal::invalid(why)).to_reply()));
            }
            let now = Utc::now();
            let upsert = Query::insert()
                .into_table(TABLE)
                .columns(["tenant", "subaccount_id", "plan", "updated_at"])
                .values_panic([
                    message.tenant.as_str().into(),
                    set.subaccount_id.into(),
                    to_json(&set.plan).into(),
                    now.into(),
                ])
                .on_conflict(
                    OnConflict::columns(["tenant", "subaccount_id"]).update_columns(["plan", "updated_at"]).to_owned(),
                )
                .to_owned();
            let stored = async {
                tx.execute(&upsert).await?;
                let changed = PricingChanged { subaccount_id: set.subaccount_id, plan: set.plan.clone() };
                outbox::enqueue_event(tx, message, SOURCE, changed).await?;
                Ok::<_, DbErr>(StoredPlan { subaccount_id: set.subaccount_id, plan: set.plan.clone(), updated_at: now })
            };
            let stored = stored.await.map_err(|error| HandlerError::Retryable(error.to_string()))?;
            Ok(Some(Outcome::Done(stored).to_reply()))
        })
    }
}
