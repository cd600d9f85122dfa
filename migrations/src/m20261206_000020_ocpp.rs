//! Chargers connect over OCPP: each has its own password, kept as its SHA-256 (null: none set yet,
//! the charger cannot connect). A charging session records when the app was last sent its
//! progress, so the pacer sends it on the seed's cadence when the charger reports less often. A
//! charger's OCPP connection: its version, the process holding its socket (null: none), since when.

use sea_orm_migration::async_trait::async_trait;
use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let column = text_null("ocpp_password_hash");
        manager.alter_table(Table::alter().table("chargers").add_column(column).to_owned()).await?;
        let column = timestamp_with_time_zone_null("progress_at");
        manager.alter_table(Table::alter().table("charging_sessions").add_column(column).to_owned()).await?;
        // One column a statement: SQLite alters one thing at a time.
        for column in [text_null("ocpp_version"), text_null("ocpp_node"), timestamp_with_time_zone_null("connected_at")]
        {
            manager.alter_table(Table::alter().table("chargers").add_column(column).to_owned()).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for column in ["ocpp_version", "ocpp_node", "connected_at"] {
            manager.alter_table(Table::alter().table("chargers").drop_column(column).to_owned()).await?;
        }
        manager.alter_table(Table::alter().table("charging_sessions").drop_column("progress_at").to_owned()).await?;
        manager.alter_table(Table::alter().table("chargers").drop_column("ocpp_password_hash").to_owned()).await
    }
}
