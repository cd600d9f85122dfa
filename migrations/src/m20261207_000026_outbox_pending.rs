//! The outbox's unsent rows move to a table of their own, `outbox_pending (seq, aggregate,
//! attempts, last_error)`, filled by a trigger on every insert into `outbox` and emptied by the
//! relay as it publishes. An `outbox` row is then written once and never updated: marking a row
//! sent was a non-HOT update (`sent_at` sat in three indexes) that wrote the whole row, payload
//! included, to the WAL a second time with three new index entries, as much WAL as the insert.
//! Published rows are purged by their creation time (`outbox_created`).
//!
//! Not for a rolling upgrade: a process of an earlier build reads `sent_at`, which is gone, and
//! fails rather than publishing everything again.

use sea_orm_migration::async_trait::async_trait;
use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DatabaseBackend;

#[derive(DeriveMigrationName)]
pub struct Migration;

/// The old unsent-row indexes. `outbox_pending` was one of them: it makes way for the table of
/// that name first (on PostgreSQL renamed, so it still finds the unsent rows to copy instead of a
/// scan of every row ever sent; SQLite cannot rename an index, and the embedded default's outbox
/// is small).
const OLD_INDEXES: [&str; 3] = ["outbox_unsent_seq", "outbox_pending_by_aggregate", "outbox_unsent"];

const CREATE: &str = "CREATE TABLE outbox_pending (\
     seq BIGINT NOT NULL PRIMARY KEY, \
     aggregate VARCHAR NULL, \
     attempts INTEGER NOT NULL DEFAULT 0, \
     last_error TEXT NULL)";

// A statement-level trigger reads every row the statement inserted at once (a transition
// table): a multi-row insert adds its pending rows in one more insert, not one per row. Rows an
// `ON CONFLICT DO NOTHING` skipped are not in it.
const POSTGRES_TRIGGER: [&str; 2] = [
    "CREATE FUNCTION outbox_pending_added() RETURNS trigger LANGUAGE plpgsql AS $$ \
     BEGIN INSERT INTO outbox_pending (seq, aggregate) SELECT seq, aggregate FROM added; RETURN NULL; END $$",
    "CREATE TRIGGER outbox_pending_added AFTER INSERT ON outbox REFERENCING NEW TABLE AS added \
     FOR EACH STATEMENT EXECUTE FUNCTION outbox_pending_added()",
];

const SQLITE_TRIGGER: &str = "CREATE TRIGGER outbox_pending_added AFTER INSERT ON outbox \
     BEGIN INSERT INTO outbox_pending (seq, aggregate) VALUES (NEW.seq, NEW.aggregate); END";

#[async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let connection = manager.get_connection();
        let postgres = manager.get_database_backend() == DatabaseBackend::Postgres;
        if postgres {
            connection.execute_unprepared("ALTER INDEX IF EXISTS outbox_pending RENAME TO outbox_unsent_seq").await?;
        } else {
            connection.execute_unprepared("DROP INDEX IF EXISTS outbox_pending").await?;
        }
        connection.execute_unprepared(CREATE).await?;
        connection
            .execute_unprepared(
                "INSERT INTO outbox_pending (seq, aggregate, attempts, last_error) \
                 SELECT seq, aggregate, attempts, last_error FROM outbox WHERE sent_at IS NULL",
            )
            .await?;
        for index in OLD_INDEXES {
            connection.execute_unprepared(&format!("DROP INDEX IF EXISTS {index}")).await?;
        }
        for column in ["sent_at", "attempts", "last_error"] {
            connection.execute_unprepared(&format!("ALTER TABLE outbox DROP COLUMN {column}")).await?;
        }
        connection.execute_unprepared("CREATE INDEX outbox_created ON outbox (created_at)").await?;
        if postgres {
            for statement in POSTGRES_TRIGGER {
                connection.execute_unprepared(statement).await?;
            }
        } else {
            connection.execute_unprepared(SQLITE_TRIGGER).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let connection = manager.get_connection();
        if manager.get_database_backend() == DatabaseBackend::Postgres {
            connection.execute_unprepared("DROP TRIGGER IF EXISTS outbox_pending_added ON outbox").await?;
            connection.execute_unprepared("DROP FUNCTION IF EXISTS outbox_pending_added()").await?;
        } else {
            connection.execute_unprepared("DROP TRIGGER IF EXISTS outbox_pending_added").await?;
        }
        connection.execute_unprepared("DROP INDEX IF EXISTS outbox_created").await?;
        for column in ["sent_at TIMESTAMPTZ NULL", "attempts INTEGER NOT NULL DEFAULT 0", "last_error TEXT NULL"] {
            connection.execute_unprepared(&format!("ALTER TABLE outbox ADD COLUMN {column}")).await?;
        }
        // What was published is what is no longer pending; when, is not known any more.
        connection
            .execute_unprepared(
                "UPDATE outbox SET sent_at = created_at WHERE seq NOT IN (SELECT seq FROM outbox_pending)",
            )
            .await?;
        connection.execute_unprepared("DROP TABLE outbox_pending").await?;
        for index in [
            "outbox_unsent ON outbox (sent_at, seq)",
            "outbox_pending ON outbox (seq) WHERE sent_at IS NULL",
            "outbox_pending_by_aggregate ON outbox (aggregate, seq) WHERE sent_at IS NULL",
        ] {
            connection.execute_unprepared(&format!("CREATE INDEX {index}")).await?;
        }
        Ok(())
    }
}
