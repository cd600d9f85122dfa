//! The partner edge's tables: API keys (hashes only), their daily usage, the request log, and the
//! idempotency records that let a retried POST/PATCH/DELETE replay its first answer.

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
                    .table("api_keys")
                    .if_not_exists()
                    .col(uuid("id"))
                    .col(string("tenant"))
                    .col(string("name"))
                    .col(string("display_prefix"))
                    // SHA-256 of the whole key, hex; the key itself is never stored.
                    .col(string_uniq("key_hash"))
                    .col(boolean("admin").default(false))
                    // JSON arrays and objects: read and written whole, never queried inside.
                    .col(text("permissions"))
                    .col(text("scope"))
                    .col(integer("per_minute"))
                    .col(integer("per_hour"))
                    .col(integer("per_day"))
                    .col(timestamp_with_time_zone_null("expires_at"))
                    .col(boolean("active").default(true))
                    .col(timestamp_with_time_zone("created_at"))
                    .col(timestamp_with_time_zone("updated_at"))
                    .col(timestamp_with_time_zone_null("last_used_at"))
                    // Tenant first: every lookup names both, so the planner never prefers a
                    // scan of the tenant's keys to the one row.
                    .primary_key(Index::create().col("tenant").col("id"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .if_not_exists()
                    .name("api_keys_listing")
                    .table("api_keys")
                    .col("tenant")
                    .col("created_at")
                    .col("id")
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("api_key_usage")
                    .if_not_exists()
                    .col(uuid("key_id"))
                    .col(date("day"))
                    .col(big_integer("requests").default(0))
                    .primary_key(Index::create().col("key_id").col("day"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("api_requests")
                    .if_not_exists()
                    .col(big_pk_auto("seq"))
                    // Unique: a batch redelivered after a crash records its requests once.
                    .col(string_uniq("request_id"))
                    .col(string("tenant"))
                    .col(uuid_null("key_id"))
                    .col(string_null("key_prefix"))
                    .col(string("method"))
                    .col(string("route"))
                    .col(uuid_null("subaccount_id"))
                    .col(small_integer("status"))
                    .col(big_integer("latency_us"))
                    .col(timestamp_with_time_zone("received_at"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .if_not_exists()
                    .name("api_requests_by_key")
                    .table("api_requests")
                    .col("tenant")
                    .col("key_id")
                    .col("seq")
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("idempotency_keys")
                    .if_not_exists()
                    .col(string("tenant"))
                    .col(string("idempotency_key"))
                    // SHA-256 of method, route, subaccount and body: the same key with another
                    // request is refused.
                    .col(string("request_hash"))
                    // Null while the first request is still being answered.
                    .col(small_integer_null("status"))
                    .col(text_null("body"))
                    .col(timestamp_with_time_zone("created_at"))
                    .primary_key(Index::create().col("tenant").col("idempotency_key"))
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in ["idempotency_keys", "api_requests", "api_key_usage", "api_keys"] {
            manager.drop_table(Table::drop().table(table).if_exists().to_owned()).await?;
        }
        Ok(())
    }
}
