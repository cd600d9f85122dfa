//! Organisations' compatibility profiles (`tenants.signature_header`, `tenants.key_prefix`).

use schemas::integrations::CompatibilityProfile;
use sea_orm::sea_query::{Expr, ExprTrait, Query};
use sea_orm::{ConnectionTrait, DbErr};

/// `tenant`'s profile; voltbus's (all absent) for an organisation without one.
pub async fn find(db: &impl ConnectionTrait, tenant: &str) -> Result<CompatibilityProfile, DbErr> {
    let query = Query::select()
        .columns(["signature_header", "key_prefix"])
        .from("tenants")
        .and_where(Expr::col("id").eq(tenant))
        .to_owned();
    let Some(row) = db.query_one(&query).await? else { return Ok(CompatibilityProfile::default()) };
    Ok(CompatibilityProfile {
        signature_header: row.try_get("", "signature_header")?,
        key_prefix: row.try_get("", "key_prefix")?,
    })
}
