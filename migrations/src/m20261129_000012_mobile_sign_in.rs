//! Mobile sign-in (EVM seed): codes sent by SMS (only their keyed hashes), the phone each mobile
//! customer signed in with, and sessions (only the tokens' hashes).

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
                    .table("sign_in_codes")
                    .if_not_exists()
                    .col(uuid("code_id").primary_key())
                    .col(string("tenant"))
                    .col(string("phone"))
                    .col(string("code_hash"))
                    .col(integer("attempts"))
                    .col(timestamp_with_time_zone("expires_at"))
                    .col(timestamp_with_time_zone_null("used_at"))
                    .col(timestamp_with_time_zone("created_at"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("mobile_accounts")
                    .if_not_exists()
                    .col(string("tenant"))
                    .col(string("phone"))
                    .col(uuid("customer_id"))
                    .col(string_null("notification_token"))
                    .col(timestamp_with_time_zone("created_at"))
                    .col(timestamp_with_time_zone("updated_at"))
                    .primary_key(Index::create().col("tenant").col("phone"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("mobile_sessions")
                    .if_not_exists()
                    .col(string("session_hash").primary_key())
                    .col(string("tenant"))
                    .col(uuid("customer_id"))
                    .col(timestamp_with_time_zone("expires_at"))
                    .col(timestamp_with_time_zone("created_at"))
                    .to_owned(),
            )
            .await?;
        let connection = manager.get_connection();
        for sql in [
            // The latest code of a phone, and the codes of the last hour (the rate limit).
            "CREATE INDEX IF NOT EXISTS sign_in_codes_by_phone ON sign_in_codes (tenant, phone, created_at)",
            "CREATE UNIQUE INDEX IF NOT EXISTS mobile_accounts_by_customer ON mobile_accounts (tenant, customer_id)",
            "CREATE INDEX IF NOT EXISTS mobile_sessions_by_expiry ON mobile_sessions (expires_at)",
        ] {
            connection.execute_unprepared(sql).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in ["mobile_sessions", "mobile_accounts", "sign_in_codes"] {
            manager.drop_table(Table::drop().table(table).if_exists().to_owned()).await?;
        }
        Ok(())
    }
}
