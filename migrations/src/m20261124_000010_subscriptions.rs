//! Subscriptions of integrations to their tenant's events: an AMQP queue and a broker user each.

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
                    .table("subscriptions")
                    .if_not_exists()
                    .col(uuid("subscription_id").primary_key())
                    .col(string("tenant"))
                    .col(string("name"))
                    .col(string("queue"))
                    .col(string("username"))
                    // JSON list of event types, read and written whole.
                    .col(text("events"))
                    .col(timestamp_with_time_zone("created_at"))
                    .to_owned(),
            )
            .await?;
        manager
            .get_connection()
            .execute_unprepared("CREATE UNIQUE INDEX IF NOT EXISTS subscriptions_name ON subscriptions (tenant, name)")
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table("subscriptions").if_exists().to_owned()).await
    }
}
