//! Operators of the console (`/admin`): their accounts (password as an Argon2id PHC string,
//! failed attempts and lock) and their sessions (token hashes only); and the index the console's
//! vehicle page reads a vehicle's recent commands by.

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
                    .table("operators")
                    .if_not_exists()
                    .col(uuid("operator_id").primary_key())
                    // Lower-cased; one account per address.
                    .col(string("email").unique_key())
                    .col(text("password_hash"))
                    // `platform` (every organisation) or `organisation` (its own only).
                    .col(string("role"))
                    .col(string_null("tenant"))
                    .col(integer("failed_attempts").default(0))
                    .col(timestamp_with_time_zone_null("locked_until"))
                    .col(timestamp_with_time_zone_null("last_sign_in_at"))
                    .col(timestamp_with_time_zone("created_at"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("operator_sessions")
                    .if_not_exists()
                    .col(string("session_hash").primary_key())
                    .col(uuid("operator_id"))
                    .col(timestamp_with_time_zone("created_at"))
                    .col(timestamp_with_time_zone("expires_at"))
                    .to_owned(),
            )
            .await?;
        // The console's vehicle page lists a vehicle's recent commands.
        manager
            .get_connection()
            .execute_unprepared(
                "CREATE INDEX IF NOT EXISTS vehicle_commands_by_vehicle ON vehicle_commands (vehicle_id, created_at)",
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.get_connection().execute_unprepared("DROP INDEX IF EXISTS vehicle_commands_by_vehicle").await?;
        for table in ["operator_sessions", "operators"] {
            manager.drop_table(Table::drop().table(table).if_exists().to_owned()).await?;
        }
        Ok(())
    }
}
