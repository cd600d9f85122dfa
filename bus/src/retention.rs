//! How long the bus's own tables keep their rows. An inbox row must outlive every way its
//! message can come again (a redelivery, a stream replayed to a re-created consumer, a resend
//! under the same idempotency key), which the caller's retention covers; a published outbox row
//! is only a record by then. Rows not yet published stay, however old.
//!
//! Rows go in chunks, each its own statement: the first purge of a long-running deployment
//! holds no lock for long, and on SQLite leaves the one connection to the embedded transport
//! between chunks. Consumers purge their own tables by age the same way (`purge_before`).

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DatabaseBackend, DbErr, Statement};

/// Rows deleted by one statement.
const CHUNK: u64 = 5_000;

/// The moment `kept` ago, before which rows go; none when `kept` reaches before the calendar.
pub fn cutoff(kept: std::time::Duration) -> Option<DateTime<Utc>> {
    chrono::TimeDelta::from_std(kept).ok().and_then(|kept| Utc::now().checked_sub_signed(kept))
}

/// Who wrote a timestamp column, which decides what it compares with on SQLite.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stamped {
    /// `CURRENT_TIMESTAMP`: on SQLite, `YYYY-MM-DD HH:MM:SS` text, which compares only with text
    /// of the same shape.
    ByDatabase,
    /// A `chrono` value bound by the application, compared with one bound the same way.
    ByApplication,
}

/// Deletes the inbox rows of messages handled before `before`; how many went.
pub async fn purge_inbox(db: &impl ConnectionTrait, before: DateTime<Utc>) -> Result<u64, DbErr> {
    purge_before(db, "inbox", "processed_at", Stamped::ByDatabase, before).await
}

/// Deletes the published outbox rows made before `before`; how many went. (A row is not
/// written again once published, so its age is counted from its creation; one still pending,
/// in `outbox_pending`, stays.)
pub async fn purge_published(db: &impl ConnectionTrait, before: DateTime<Utc>) -> Result<u64, DbErr> {
    let published = "created_at < {before} AND NOT EXISTS (SELECT 1 FROM outbox_pending p WHERE p.seq = outbox.seq)";
    purge_where(db, "outbox", published, Stamped::ByDatabase, before).await
}

/// Deletes, a chunk at a time, the rows of `table` whose `column` is before `before`; how many
/// went. A chunk is picked by the rows' own addresses (`ctid`, SQLite's `rowid`), whatever the
/// table's key.
pub async fn purge_before(
    db: &impl ConnectionTrait,
    table: &str,
    column: &str,
    stamped: Stamped,
    before: DateTime<Utc>,
) -> Result<u64, DbErr> {
    purge_where(db, table, &format!("{column} < {{before}}"), stamped, before).await
}

/// [`purge_before`] of the rows of `table` that `condition` picks, `{before}` in it standing for
/// the moment.
async fn purge_where(
    db: &impl ConnectionTrait,
    table: &str,
    condition: &str,
    stamped: Stamped,
    before: DateTime<Utc>,
) -> Result<u64, DbErr> {
    let backend = db.get_database_backend();
    let sql = match backend {
        DatabaseBackend::Postgres => {
            let condition = condition.replace("{before}", "$1");
            format!(
                "DELETE FROM {table} WHERE ctid = ANY(ARRAY(SELECT ctid FROM {table} WHERE {condition} LIMIT {CHUNK}))"
            )
        }
        _ => {
            let condition = condition.replace("{before}", "?");
            format!("DELETE FROM {table} WHERE rowid IN (SELECT rowid FROM {table} WHERE {condition} LIMIT {CHUNK})")
        }
    };
    let bound: sea_orm::Value = match (backend, stamped) {
        (DatabaseBackend::Sqlite, Stamped::ByDatabase) => before.format("%Y-%m-%d %H:%M:%S").to_string().into(),
        _ => before.into(),
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
