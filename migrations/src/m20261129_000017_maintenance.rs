//! Maintenance: workshops, the tickets opened through integrations, and which workshops each
//! integration may choose; and the integration that created a webhook endpoint (its deliveries
//! are that integration's usage).

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
                    .table("workshops")
                    .if_not_exists()
                    .col(uuid("workshop_id").primary_key())
                    .col(string("tenant"))
                    .col(string("name"))
                    .col(boolean("independent"))
                    .col(timestamp_with_time_zone("created_at"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("tickets")
                    .if_not_exists()
                    .col(uuid("ticket_id").primary_key())
                    .col(string("tenant"))
                    // `maintenance` or `driver`.
                    .col(string("kind"))
                    .col(uuid("integration_id"))
                    .col(uuid_null("vehicle_id"))
                    .col(uuid_null("workshop_id"))
                    .col(string("title"))
                    .col(text("description"))
                    .col(string_null("reported_by"))
                    // `open` (others as tickets are worked).
                    .col(string("status"))
                    .col(timestamp_with_time_zone("created_at"))
                    .to_owned(),
            )
            .await?;
        for (column, definition) in [
            // JSON array of workshop ids the integration may send vehicles to.
            ("maintenance_workshops", text("maintenance_workshops").default("[]").to_owned()),
            ("independent_workshops", boolean("independent_workshops").default(false).to_owned()),
        ] {
            if !manager.has_column("integrations", column).await? {
                manager.alter_table(Table::alter().table("integrations").add_column(definition).to_owned()).await?;
            }
        }
        // Endpoints an integration created: their deliveries are its metered usage.
        if !manager.has_column("webhook_endpoints", "integration_id").await? {
            manager
                .alter_table(
                    Table::alter().table("webhook_endpoints").add_column(uuid_null("integration_id")).to_owned(),
                )
                .await?;
        }
        let db = manager.get_connection();
        db.execute_unprepared("CREATE INDEX IF NOT EXISTS workshops_by_tenant ON workshops (tenant, name)").await?;
        db.execute_unprepared(
            "CREATE INDEX IF NOT EXISTS tickets_by_integration ON tickets (tenant, integration_id, kind, created_at)",
        )
        .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in ["tickets", "workshops"] {
            manager.drop_table(Table::drop().table(table).if_exists().to_owned()).await?;
        }
        Ok(())
    }
}
