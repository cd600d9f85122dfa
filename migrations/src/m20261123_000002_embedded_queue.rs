//! The queue table of the embedded transport: what RabbitMQ holds when a broker runs, kept in the
//! embedded database when none does, so a restart loses nothing that was confirmed.

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
                    .table("bus_queue")
                    .if_not_exists()
                    // Delivery order within a queue is `seq` order.
                    .col(big_pk_auto("seq"))
                    .col(string("queue"))
                    .col(uuid("message_id"))
                    .col(string_null("aggregate"))
                    // The structured-mode envelope, exactly as published.
                    .col(text("payload"))
                    .col(integer("attempt").default(1))
                    // Milliseconds since the epoch: the same on SQLite and PostgreSQL, no clock functions.
                    .col(big_integer("available_at_ms"))
                    // A claimed row is leased; a consumer that dies lets the lease run out.
                    .col(big_integer("locked_until_ms").default(0))
                    .col(text_null("reason"))
                    .col(string_null("error_kind"))
                    .col(string_null("source_queue"))
                    .col(big_integer_null("failed_at_ms"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .if_not_exists()
                    .name("bus_queue_ready")
                    .table("bus_queue")
                    .col("queue")
                    .col("available_at_ms")
                    .col("seq")
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table("bus_queue").if_exists().to_owned()).await
    }
}
