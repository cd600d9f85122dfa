//! Pricing plans (Levy Fleets `GET /pricing`): one per subaccount, set by `pricing.set` and
//! announced as `pricing.changed`. A ride keeps the plan it started under (`rides`), so a change
//! prices later rides only. The price itself is one pure function (`price`).

pub mod price;

use crate::groups::Group;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use bus::outbox;
use bus::{Context, Handler, HandlerError, Reply};
use chrono::Utc;
use schemas::AnyMessage;
use schemas::Recipient;
use schemas::pricing::{PricingChanged, PricingPlan};
use sea_orm::sea_query::{OnConflict, Query};
use sea_orm::{ConnectionTrait, DbErr};

pub use price::{Usage, price};
use readside::columns::to_json;
pub(crate) use readside::pricing::{StoredPlan, TABLE, find};
use readside::{Outcome, Refusal};

/// The group's name: its queues are `voltbus.pricing…`.
pub const GROUP: &str = Recipient::Pricing.name();

const SOURCE: &str = "voltbus/pricing";

/// The group: its commands, one a transaction.
pub fn groups() -> Vec<Group> {
    vec![Group::handling(Recipient::Pricing, Arc::new(Pricing))]
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
            if let Some((_, why)) = PricingPlan::problem(&set.plan) {
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
