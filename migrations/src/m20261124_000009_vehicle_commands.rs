//! Commands sent to vehicles: pending until the device answers or the command expires.

use sea_orm_migration::async_trait::async_trait;
use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table("vehicle_commands")
                    .if_not_exists()
                    .col(uuid("command_id").primary_key())
                    .col(string("tenant"))
                    .col(uuid("vehicle_id"))
                    .col(string("command"))
                    // pending, succeeded, failed, timed_out.
                    .col(string("status"))
                    .col(text_null("reason"))
                    .col(timestamp_with_time_zone("created_at"))
                    .col(timestamp_with_time_zone("expires_at"))
                    .col(timestamp_with_time_zone_null("completed_at"))
                    .to_owned(),
            )
            .await?;
        // The sweeper looks for pending commands past their time.
        manager
            .get_connection()
            .execute_unprepared(
                "CREATE INDEX IF NOT EXISTS vehicle_commands_pending ON vehicle_commands (expires_at) \
                 WHERE status = 'pending'",
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table("vehicle_commands").if_exists().to_owned()).await
    }
}
