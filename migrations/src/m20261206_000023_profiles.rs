//! An organisation's compatibility profile, for partners coming from another platform with their
//! code unchanged: the webhook signature header's name and the prefix of its new API keys (null:
//! voltbus's). Kept on the organisation's row.

use sea_orm_migration::async_trait::async_trait;
use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // One column a statement: SQLite alters one thing at a time.
        for column in [text_null("signature_header"), text_null("key_prefix")] {
            manager.alter_table(Table::alter().table("tenants").add_column(column).to_owned()).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for column in ["signature_header", "key_prefix"] {
            manager.alter_table(Table::alter().table("tenants").drop_column(column).to_owned()).await?;
        }
        Ok(())
    }
}
