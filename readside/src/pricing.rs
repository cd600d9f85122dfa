//! The `pricing_plans` table (Levy Fleets `GET /pricing`): one plan per subaccount.

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use schemas::pricing::PricingPlan;
use sea_orm::sea_query::{Expr, ExprTrait, Query};
use sea_orm::{ConnectionTrait, DbErr, FromQueryResult, QueryResult};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::columns::Json;

/// The table.
pub const TABLE: &str = "pricing_plans";

/// A row of a plan.
#[derive(FromQueryResult)]
struct Row {
    subaccount_id: Uuid,
    plan: Json<PricingPlan>,
    updated_at: DateTime<Utc>,
}

/// A plan from a row of `subaccount_id`, `plan`, `updated_at`.
pub fn from_row(row: &QueryResult) -> Result<StoredPlan, DbErr> {
    let row = Row::from_query_result(row, "")?;
    Ok(StoredPlan { subaccount_id: row.subaccount_id, plan: row.plan.0, updated_at: row.updated_at })
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
