//! Marketplace partners (Etvas): which of their users and purchases are which of ours, and the
//! per-tenant counters that number them (`u-000001`, `p-000001`).

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
                    .table("sequences")
                    .if_not_exists()
                    .col(string("tenant"))
                    .col(string("name"))
                    // The last number handed out; one row per tenant and counter, so numbers of
                    // one tenant say nothing about another's volume.
                    .col(big_integer("value"))
                    .primary_key(Index::create().col("tenant").col("name"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("marketplace_users")
                    .if_not_exists()
                    .col(string("tenant"))
                    .col(string("marketplace"))
                    .col(uuid("user_id"))
                    .col(big_integer("number"))
                    .col(uuid("customer_id"))
                    // JSON, read and written whole: the profile as the marketplace last sent it.
                    .col(text("profile"))
                    .col(text_null("web_identity"))
                    .col(timestamp_with_time_zone("created_at"))
                    .col(timestamp_with_time_zone("updated_at"))
                    .primary_key(Index::create().col("tenant").col("marketplace").col("user_id"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("marketplace_purchases")
                    .if_not_exists()
                    .col(string("tenant"))
                    .col(string("marketplace"))
                    .col(uuid("user_id"))
                    // The marketplace's product: the same for every user who buys it.
                    .col(uuid("product_id"))
                    .col(big_integer("number"))
                    .col(text_null("name"))
                    .col(big_integer_null("price"))
                    .col(string_null("currency"))
                    .col(string_null("price_type"))
                    .col(string_null("price_interval"))
                    // active, suspended, canceled.
                    .col(string("status"))
                    .col(timestamp_with_time_zone("created_at"))
                    .col(timestamp_with_time_zone("updated_at"))
                    .primary_key(Index::create().col("tenant").col("marketplace").col("user_id").col("product_id"))
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in ["marketplace_purchases", "marketplace_users", "sequences"] {
            manager.drop_table(Table::drop().table(table).if_exists().to_owned()).await?;
        }
        Ok(())
    }
}
