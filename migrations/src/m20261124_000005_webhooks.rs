//! Outbound webhooks: the endpoints partners register, each event's payload as it is sent, one
//! delivery per (event, endpoint) carrying its schedule, and the log of every attempt.

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
                    .table("webhook_endpoints")
                    .if_not_exists()
                    .col(uuid("id"))
                    .col(string("tenant"))
                    .col(text("url"))
                    // JSON: read and written whole, filtered in the dispatcher.
                    .col(text("events"))
                    .col(text("headers"))
                    .col(text_null("description"))
                    .col(boolean("active").default(true))
                    .col(boolean("ordered").default(false))
                    .col(integer_null("rate_limit_per_second"))
                    // JSON list of `{ciphertext, expires_at}`, newest first: a rotated-out secret
                    // keeps signing until its grace period ends. Only ciphertext is stored.
                    .col(text("secrets"))
                    // Set by the first failure after a success, cleared by the next success: the
                    // health check judges how long an endpoint has been failing, not how often.
                    .col(timestamp_with_time_zone_null("failing_since"))
                    .col(text_null("disabled_reason"))
                    .col(timestamp_with_time_zone("created_at"))
                    .col(timestamp_with_time_zone("updated_at"))
                    .primary_key(Index::create().col("tenant").col("id"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("webhook_messages")
                    .if_not_exists()
                    .col(string("tenant"))
                    .col(string("event_id"))
                    .col(string("event"))
                    // The exact body sent: every attempt and every endpoint signs the same bytes.
                    .col(text("payload"))
                    .col(timestamp_with_time_zone("created_at"))
                    .primary_key(Index::create().col("tenant").col("event_id"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("webhook_deliveries")
                    .if_not_exists()
                    .col(uuid("id").primary_key())
                    .col(string("tenant"))
                    .col(uuid("endpoint_id"))
                    .col(string("event_id"))
                    .col(string("event"))
                    // pending, succeeded, failed.
                    .col(string("status"))
                    .col(integer("attempts").default(0))
                    // When the scheduler queues the next attempt; null while an ordered endpoint's
                    // earlier delivery is unfinished.
                    .col(timestamp_with_time_zone_null("next_attempt_at"))
                    .col(small_integer_null("last_status_code"))
                    .col(timestamp_with_time_zone("created_at"))
                    .col(timestamp_with_time_zone("updated_at"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .if_not_exists()
                    .name("webhook_deliveries_by_endpoint")
                    .table("webhook_deliveries")
                    .col("tenant")
                    .col("endpoint_id")
                    .col("created_at")
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .if_not_exists()
                    .name("webhook_deliveries_by_event")
                    .table("webhook_deliveries")
                    .col("tenant")
                    .col("event_id")
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .if_not_exists()
                    .name("webhook_deliveries_due")
                    .table("webhook_deliveries")
                    .col("status")
                    .col("next_attempt_at")
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("webhook_attempts")
                    .if_not_exists()
                    .col(big_pk_auto("seq"))
                    .col(string("tenant"))
                    .col(uuid("delivery_id"))
                    .col(uuid("endpoint_id"))
                    .col(string("event_id"))
                    .col(integer("attempt"))
                    // succeeded, failed, gave_up.
                    .col(string("outcome"))
                    .col(small_integer_null("status_code"))
                    .col(integer("latency_ms"))
                    .col(text_null("error"))
                    // The first KiB of the response body.
                    .col(text_null("response"))
                    .col(timestamp_with_time_zone("attempted_at"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .if_not_exists()
                    .name("webhook_attempts_by_endpoint")
                    .table("webhook_attempts")
                    .col("tenant")
                    .col("endpoint_id")
                    .col("seq")
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .if_not_exists()
                    .name("webhook_attempts_by_delivery")
                    .table("webhook_attempts")
                    .col("delivery_id")
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in ["webhook_attempts", "webhook_deliveries", "webhook_messages", "webhook_endpoints"] {
            manager.drop_table(Table::drop().table(table).if_exists().to_owned()).await?;
        }
        Ok(())
    }
}
