//! The request log is written at the rate partners call, so every index on it is paid per request:
//! `request_id` loses its uniqueness (a batch is recorded once by the integrations group's inbox,
//! and the edge retries a batch under its first message id), and the index by integration keeps
//! only integrations' requests (a partner key's have none). SQLite keeps the column's unique
//! constraint: it cannot drop one without rebuilding the table, and the embedded default is not
//! where the request log's speed matters.

use sea_orm_migration::async_trait::async_trait;
use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DatabaseBackend;

#[derive(DeriveMigrationName)]
pub struct Migration;

const BY_INTEGRATION: &str = "api_requests_by_integration";

#[async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let connection = manager.get_connection();
        if manager.get_database_backend() == DatabaseBackend::Postgres {
            connection
                .execute_unprepared("ALTER TABLE api_requests DROP CONSTRAINT IF EXISTS api_requests_request_id_key")
                .await?;
        }
        connection.execute_unprepared(&format!("DROP INDEX IF EXISTS {BY_INTEGRATION}")).await?;
        connection
            .execute_unprepared(&format!(
                "CREATE INDEX {BY_INTEGRATION} ON api_requests (integration_id, received_at) WHERE integration_id IS NOT NULL"
            ))
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let connection = manager.get_connection();
        connection.execute_unprepared(&format!("DROP INDEX IF EXISTS {BY_INTEGRATION}")).await?;
        connection
            .execute_unprepared(&format!("CREATE INDEX {BY_INTEGRATION} ON api_requests (integration_id, received_at)"))
            .await?;
        if manager.get_database_backend() == DatabaseBackend::Postgres {
            connection
                .execute_unprepared(
                    "ALTER TABLE api_requests ADD CONSTRAINT api_requests_request_id_key UNIQUE (request_id)",
                )
                .await?;
        }
        Ok(())
    }
}
