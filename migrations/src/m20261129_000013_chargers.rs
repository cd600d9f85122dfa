//! Chargers (EVM seed): master data set by admins, and the state their own OCPP status
//! notifications keep current.

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
                    .table("chargers")
                    .if_not_exists()
                    .col(uuid("charger_id").primary_key())
                    .col(string("tenant"))
                    .col(string("device_number"))
                    .col(double("longitude"))
                    .col(double("latitude"))
                    .col(big_integer("price"))
                    .col(big_integer("waiting_price"))
                    .col(string("currency"))
                    // The EVM state, from the last status notification (`Idle` until one comes).
                    .col(string("state"))
                    .col(string_null("connector_status"))
                    .col(string_null("error_code"))
                    // The charger's own time of that notification: an older one never wins.
                    .col(timestamp_with_time_zone_null("status_at"))
                    // When anything was last heard from it (offline after a while without).
                    .col(timestamp_with_time_zone_null("last_seen_at"))
                    .col(timestamp_with_time_zone("created_at"))
                    .col(timestamp_with_time_zone("updated_at"))
                    .to_owned(),
            )
            .await?;
        let connection = manager.get_connection();
        for sql in [
            "CREATE UNIQUE INDEX IF NOT EXISTS chargers_by_number ON chargers (tenant, device_number)",
            "CREATE INDEX IF NOT EXISTS chargers_by_place ON chargers (tenant, latitude, longitude)",
        ] {
            connection.execute_unprepared(sql).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table("chargers").if_exists().to_owned()).await
    }
}
