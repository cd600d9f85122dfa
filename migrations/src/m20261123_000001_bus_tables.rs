//! The tables the bus needs before any domain exists: tenants, the transactional outbox and the
//! inbox of processed messages.

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
                    .table("tenants")
                    .if_not_exists()
                    // The tenant id is also a routing-key word and a subject token; see schemas::TenantId.
                    .col(string_len("id", 63).primary_key())
                    .col(string("name"))
                    .col(boolean("active").default(true))
                    .col(timestamp_with_time_zone("created_at").default(Expr::current_timestamp()))
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table("outbox")
                    .if_not_exists()
                    // A sequence, not the message id, orders the relay: per-aggregate order is commit order.
                    .col(big_pk_auto("seq"))
                    .col(uuid_uniq("message_id"))
                    .col(string_len("tenant", 63))
                    .col(string_null("aggregate"))
                    .col(string("type_name"))
                    // Where the relay publishes: `amqp` (exchange + routing key) or `nats` (subject).
                    .col(string_len("transport", 16))
                    .col(string("destination"))
                    .col(string_null("routing_key"))
                    // The encoded envelope, exactly as it will be published.
                    .col(text("payload"))
                    .col(timestamp_with_time_zone("created_at").default(Expr::current_timestamp()))
                    .col(timestamp_with_time_zone_null("sent_at"))
                    .col(integer("attempts").default(0))
                    .col(text_null("last_error"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .if_not_exists()
                    .name("outbox_unsent")
                    .table("outbox")
                    .col("sent_at")
                    .col("seq")
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table("inbox")
                    .if_not_exists()
                    // One row per (consumer group, message): a redelivered message finds its row and
                    // has no second effect; commands get the stored reply again.
                    .col(string("consumer_group"))
                    .col(uuid("message_id"))
                    .col(string_len("tenant", 63))
                    .col(string("type_name"))
                    .col(text_null("reply"))
                    .col(timestamp_with_time_zone("processed_at").default(Expr::current_timestamp()))
                    .primary_key(Index::create().col("consumer_group").col("message_id"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .if_not_exists()
                    .name("inbox_processed_at")
                    .table("inbox")
                    .col("processed_at")
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in ["inbox", "outbox", "tenants"] {
            manager.drop_table(Table::drop().table(table).if_exists().to_owned()).await?;
        }
        Ok(())
    }
}
