//! How long the bus's own tables keep their rows. An inbox row must outlive every way its
//! message can come again (a redelivery, a stream replayed to a re-created consumer, a resend
//! under the same idempotency key), which the caller's retention covers; a published outbox row
//! is only a record by then. Rows not yet published stay, however old.
//!
//! Rows go in chunks, each its own statement: the first purge of a long-running deployment
//! holds no lock for long, and on SQLite leaves the one connection to the embedded transport
//! between chunks.

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DatabaseBackend, DbErr, Statement};

/// Rows deleted by one statement.
const CHUNK: u64 = 5_000;

/// The moment `kept` ago, before which rows go; none when `kept` reaches before the calendar.
pub fn cutoff(kept: std::time::Duration) -> Option<DateTime<Utc>> {
    chrono::TimeDelta::from_std(kept).ok().and_then(|kept| Utc::now().checked_sub_signed(kept))
}

/// Deletes the inbox rows of messages handled before `before`; how many went.
pub async fn purge_inbox(db: &impl ConnectionTrait, before: DateTime<Utc>) -> Result<u64, DbErr> {
    // The inbox's key is two columns: the row's own address picks a chunk.
    let row = match db.get_database_backend() {
        DatabaseBackend::Postgres => "ctid",
        _ => "rowid",
    };
    purge(db, "inbox", row, "processed_at", before).await
}

/// Deletes the outbox rows published before `before`; how many went.
pub async fn purge_published(db: &impl ConnectionTrait, before: DateTime<Utc>) -> Result<u64, DbErr> {
    purge(db, "outbox", "seq", "sent_at", before).await
}

/// Deletes, a chunk at a time, the rows of `table` whose `column` is before `before`.
async fn purge(
    db: &impl ConnectionTrait,
    table: &str,
    row: &str,
    column: &str,
    before: DateTime<Utc>,
) -> Result<u64, DbErr> {
    let backend = db.get_database_backend();
    let (sql, bound): (String, sea_orm::Value) = match backend {
        DatabaseBackend::Postgres => (
            format!(
                "DELETE FROM {table} WHERE {row} = ANY(ARRAY(SELECT {row} FROM {table} WHERE {column} < $1 LIMIT {CHUNK}))"
            ),
            before.into(),
        ),
        // SQLite's `CURRENT_TIMESTAMP` is `YYYY-MM-DD HH:MM:SS` text, which compares only with
        // text of the same shape.
        _ => (
            format!("DELETE FROM {table} WHERE {row} IN (SELECT {row} FROM {table} WHERE {column} < ? LIMIT {CHUNK})"),
            before.format("%Y-%m-%d %H:%M:%S").to_string().into(),
        ),
    };
    let mut total = 0;
    loop {
        let statement = Statement::from_sql_and_values(backend, &sql, [bound.clone()]);
        let deleted = db.execute_raw(statement).await?.rows_affected();
        total += deleted;
        if deleted < CHUNK {
            return Ok(total);
        }
    }
}
