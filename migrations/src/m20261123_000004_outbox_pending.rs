//! Partial indexes over the outbox rows not yet sent. The relay asks for them in `seq` order many
//! times a second; without these, PostgreSQL walks the primary key through every row ever sent.

use sea_orm_migration::async_trait::async_trait;
use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

// Partial indexes are written the same way on PostgreSQL and SQLite.
const UP: [&str; 2] = [
    "CREATE INDEX IF NOT EXISTS outbox_pending ON outbox (seq) WHERE sent_at IS NULL",
    "CREATE INDEX IF NOT EXISTS outbox_pending_by_aggregate ON outbox (aggregate, seq) WHERE sent_at IS NULL",
];

#[async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for statement in UP {
            manager.get_connection().execute_unprepared(statement).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for index in ["outbox_pending", "outbox_pending_by_aggregate"] {
            manager.get_connection().execute_unprepared(&format!("DROP INDEX IF EXISTS {index}")).await?;
        }
        Ok(())
    }
}
