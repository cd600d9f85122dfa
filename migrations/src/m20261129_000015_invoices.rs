//! Invoices of external payment providers (QPay): a balance top-up the app pays on the
//! provider's page, settled once the provider confirms it.

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
                    .table("invoices")
                    .if_not_exists()
                    .col(uuid("invoice_id").primary_key())
                    .col(string("tenant"))
                    .col(uuid("customer_id"))
                    // `replenishment` (a balance top-up) or `purchase` (paying `purchase_id`).
                    .col(string("purpose"))
                    .col(uuid_null("purchase_id"))
                    .col(big_integer("amount"))
                    .col(string("currency"))
                    // `QPAY`.
                    .col(string("provider"))
                    .col(string("provider_reference"))
                    .col(text("url"))
                    // The seed's `pending`, `success`, `error`, `canceled`.
                    .col(string("status"))
                    .col(timestamp_with_time_zone("created_at"))
                    .col(timestamp_with_time_zone_null("settled_at"))
                    .to_owned(),
            )
            .await?;
        manager
            .get_connection()
            .execute_unprepared(
                "CREATE INDEX IF NOT EXISTS invoices_by_customer ON invoices (tenant, customer_id, created_at)",
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table("invoices").if_exists().to_owned()).await
    }
}
