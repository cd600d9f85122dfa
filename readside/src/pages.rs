//! Paging for the tables the edge lists: one page of rows and how many match in all.

use sea_orm::sea_query::{Expr, SelectStatement};
use sea_orm::{ConnectionTrait, DbErr, QueryResult};

/// One page of `query`'s rows, and how many rows it matches in all (the same filter, counted).
pub async fn page_of(
    db: &impl ConnectionTrait,
    query: &SelectStatement,
    offset: u64,
    limit: u64,
) -> Result<(Vec<QueryResult>, u64), DbErr> {
    let rows = db.query_all(&query.clone().offset(offset).limit(limit).to_owned()).await?;
    let count = query.clone().clear_selects().clear_order_by().expr_as(Expr::cust("COUNT(*)"), "total").to_owned();
    let total: i64 = match db.query_one(&count).await? {
        Some(row) => row.try_get("", "total")?,
        None => 0,
    };
    Ok((rows, u64::try_from(total).unwrap_or(0)))
}
