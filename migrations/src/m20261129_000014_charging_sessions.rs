//! Charging sessions (EVM seed) and the purchases they end in: one session at a time per charger
//! and per customer, the meter readings that price it, and its purchase to pay.

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
                    .table("charging_sessions")
                    .if_not_exists()
                    .col(uuid("session_id").primary_key())
                    .col(string("tenant"))
                    .col(uuid("charger_id"))
                    .col(uuid("customer_id"))
                    // `active` or `finished`.
                    .col(string("status"))
                    // The charger's prices when the session started.
                    .col(big_integer("price"))
                    .col(big_integer("waiting_price"))
                    .col(string("currency"))
                    // Energy register (Wh): the first reading, and the latest.
                    .col(double_null("meter_start_wh"))
                    .col(double_null("meter_last_wh"))
                    // The charger's time of the latest reading: an older one changes nothing.
                    .col(timestamp_with_time_zone_null("meter_at"))
                    // Time between readings in which no energy flowed.
                    .col(integer("waiting_seconds"))
                    .col(big_integer("amount"))
                    .col(timestamp_with_time_zone("started_at"))
                    .col(timestamp_with_time_zone_null("finished_at"))
                    .col(uuid_null("purchase_id"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("purchases")
                    .if_not_exists()
                    .col(uuid("purchase_id").primary_key())
                    .col(string("tenant"))
                    .col(uuid("customer_id"))
                    .col(uuid("session_id"))
                    .col(uuid("charger_id"))
                    .col(double("energy_kwh"))
                    .col(big_integer("amount"))
                    .col(string("currency"))
                    // The seed's `pending`, `success`, `error`, `canceled`.
                    .col(string("status"))
                    // How it was paid (`EVM`, `QPAY`), and when.
                    .col(string_null("payment_option"))
                    .col(timestamp_with_time_zone_null("paid_at"))
                    // The app's feedback: a score of 1 to 5 and a text.
                    .col(small_integer_null("feedback_score"))
                    .col(text_null("feedback_description"))
                    .col(timestamp_with_time_zone("created_at"))
                    .col(timestamp_with_time_zone("updated_at"))
                    .to_owned(),
            )
            .await?;
        let connection = manager.get_connection();
        for sql in [
            "CREATE UNIQUE INDEX IF NOT EXISTS charging_one_per_charger ON charging_sessions (charger_id) \
             WHERE status = 'active'",
            "CREATE UNIQUE INDEX IF NOT EXISTS charging_one_per_customer ON charging_sessions (tenant, customer_id) \
             WHERE status = 'active'",
            "CREATE INDEX IF NOT EXISTS purchases_by_customer ON purchases (tenant, customer_id, created_at)",
        ] {
            connection.execute_unprepared(sql).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in ["purchases", "charging_sessions"] {
            manager.drop_table(Table::drop().table(table).if_exists().to_owned()).await?;
        }
        Ok(())
    }
}
