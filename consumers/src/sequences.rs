//! Per-tenant counters: the next number of a named sequence, handed out inside the caller's
//! transaction, so a rolled-back command gives its number back and no two commits share one.

use sea_orm::sea_query::{Expr, ExprTrait, OnConflict, Query};
use sea_orm::{ConnectionTrait, DbErr};

/// The next number of `tenant`'s sequence `name`, starting at 1.
pub(crate) async fn next(db: &impl ConnectionTrait, tenant: &str, name: &str) -> Result<i64, DbErr> {
    // One statement: the row lock it takes orders concurrent callers, which a read-then-write
    // would not.
    let insert = Query::insert()
        .into_table("sequences")
        .columns(["tenant", "name", "value"])
        .values_panic([tenant.into(), name.into(), 1i64.into()])
        .on_conflict(
            OnConflict::columns(["tenant", "name"]).value("value", Expr::col(("sequences", "value")).add(1)).to_owned(),
        )
        .returning_col("value")
        .to_owned();
    let row = db.query_one(&insert).await?.ok_or_else(|| DbErr::Custom(format!("sequence {name} returned nothing")))?;
    row.try_get("", "value")
}
