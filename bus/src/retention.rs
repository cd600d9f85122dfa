//! How long the bus's own tables keep their rows. An inbox row must outlive every way its
//! message can come again (a redelivery, a stream replayed to a re-created consumer, a resend
//! under the same idempotency key), which the caller's retention covers; a published outbox row
//! is only a record by then. Rows not yet published stay, however old.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, ExprTrait, Query, SimpleExpr};
use sea_orm::{ConnectionTrait, DatabaseBackend, DbErr};

/// Deletes the inbox rows of messages handled before `before`; how many went.
pub async fn purge_inbox(db: &impl ConnectionTrait, before: DateTime<Utc>) -> Result<u64, DbErr> {
    let delete = Query::delete().from_table("inbox").and_where(earlier(db, "processed_at", before)).to_owned();
    Ok(db.execute(&delete).await?.rows_affected())
}

/// Deletes the outbox rows published before `before`; how many went.
pub async fn purge_published(db: &impl ConnectionTrait, before: DateTime<Utc>) -> Result<u64, DbErr> {
    let delete = Query::delete().from_table("outbox").and_where(earlier(db, "sent_at", before)).to_owned();
    Ok(db.execute(&delete).await?.rows_affected())
}

/// `column < before`, for a column the database filled with its own `CURRENT_TIMESTAMP`: SQLite
/// writes that as `YYYY-MM-DD HH:MM:SS` text, which only text of the same shape compares with.
fn earlier(db: &impl ConnectionTrait, column: &str, before: DateTime<Utc>) -> SimpleExpr {
    match db.get_database_backend() {
        DatabaseBackend::Sqlite => Expr::col(column.to_owned()).lt(before.format("%Y-%m-%d %H:%M:%S").to_string()),
        _ => Expr::col(column.to_owned()).lt(before),
    }
}
