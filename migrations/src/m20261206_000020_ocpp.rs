//! Chargers connect over OCPP: each has its own password, kept as its SHA-256 (null: none set yet,
//! the charger cannot connect).

use sea_orm_migration::async_trait::async_trait;
use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let column = text_null("ocpp_password_hash");
        manager.alter_table(Table::alter().table("chargers").add_column(column).to_owned()).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.alter_table(Table::alter().table("chargers").drop_column("ocpp_password_hash").to_owned()).await
    }
}
