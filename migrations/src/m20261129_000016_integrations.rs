//! EVCare integrations: their credentials (only hashes of secrets), the external users mapped to
//! voltbus users, one-time session codes, the portal's browser sessions, and their billing
//! (usage per month and metric, invoices, Paystack payments).

use sea_orm_migration::async_trait::async_trait;
use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

const INDEXES: [&str; 7] = [
    "CREATE INDEX IF NOT EXISTS integration_payments_reference ON integration_payments (reference)",
    "CREATE UNIQUE INDEX IF NOT EXISTS integration_invoices_period ON integration_invoices (integration_id, period)",
    "CREATE UNIQUE INDEX IF NOT EXISTS integration_payments_key ON integration_payments (integration_id, idempotency_key)",
    "CREATE INDEX IF NOT EXISTS api_requests_by_integration ON api_requests (integration_id, received_at)",
    "CREATE UNIQUE INDEX IF NOT EXISTS integrations_client ON integrations (client_id)",
    "CREATE INDEX IF NOT EXISTS integrations_by_tenant ON integrations (tenant, created_at)",
    "CREATE UNIQUE INDEX IF NOT EXISTS integration_users_subject ON integration_users (integration_id, external_subject)",
];

#[async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table("integrations")
                    .if_not_exists()
                    .col(uuid("integration_id").primary_key())
                    .col(string("tenant"))
                    .col(string("name"))
                    .col(string("client_id"))
                    .col(string("secret_hash"))
                    // The secret before the last rotation, accepted until `previous_valid_until`.
                    .col(string_null("previous_secret_hash"))
                    .col(timestamp_with_time_zone_null("previous_valid_until"))
                    .col(string("bundle"))
                    // JSON array of operation ids narrowing the bundle; empty: the whole bundle.
                    .col(text("allowed_endpoints"))
                    .col(boolean("active"))
                    .col(timestamp_with_time_zone_null("revoked_at"))
                    // Machine tokens issued before this are dead (revoked or disabled since).
                    .col(timestamp_with_time_zone_null("tokens_not_before"))
                    .col(timestamp_with_time_zone("created_at"))
                    .col(timestamp_with_time_zone("updated_at"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("integration_users")
                    .if_not_exists()
                    .col(uuid("user_id").primary_key())
                    .col(string("tenant"))
                    .col(uuid("integration_id"))
                    .col(string("external_subject"))
                    .col(string("email"))
                    // `CLIENT`, `FLEET_MANAGER` or `ORGANIZATION_ADMIN`.
                    .col(string("role"))
                    .col(timestamp_with_time_zone("created_at"))
                    .col(timestamp_with_time_zone("updated_at"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("integration_session_codes")
                    .if_not_exists()
                    .col(string("code_hash").primary_key())
                    .col(string("tenant"))
                    .col(uuid("integration_id"))
                    .col(uuid("user_id"))
                    .col(timestamp_with_time_zone("expires_at"))
                    .col(timestamp_with_time_zone_null("used_at"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("portal_sessions")
                    .if_not_exists()
                    .col(string("session_hash").primary_key())
                    .col(string("tenant"))
                    .col(uuid("integration_id"))
                    .col(uuid("user_id"))
                    .col(timestamp_with_time_zone("created_at"))
                    .col(timestamp_with_time_zone("expires_at"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("integration_usage")
                    .if_not_exists()
                    .col(uuid("integration_id"))
                    // `2026-11`.
                    .col(string("period"))
                    // `api_call`, `event_delivery`.
                    .col(string("metric"))
                    .col(string("tenant"))
                    .col(big_integer("quantity"))
                    .primary_key(Index::create().col("integration_id").col("period").col("metric"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("integration_invoices")
                    .if_not_exists()
                    .col(uuid("invoice_id").primary_key())
                    .col(string("tenant"))
                    .col(uuid("integration_id"))
                    .col(string("period"))
                    .col(string("currency"))
                    // JSON: the invoice's lines, as computed from usage and the plan.
                    .col(text("lines"))
                    .col(big_integer("total"))
                    // `open` or `paid`.
                    .col(string("status"))
                    .col(uuid_null("payment_id"))
                    .col(timestamp_with_time_zone("issued_at"))
                    .col(timestamp_with_time_zone_null("paid_at"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("integration_payments")
                    .if_not_exists()
                    .col(uuid("payment_id").primary_key())
                    .col(string("tenant"))
                    .col(uuid("integration_id"))
                    .col(uuid_null("invoice_id"))
                    .col(string("email"))
                    .col(big_integer("amount"))
                    .col(string("currency"))
                    .col(string("idempotency_key"))
                    .col(string("reference"))
                    .col(text("authorization_url"))
                    // `pending` or `success`.
                    .col(string("status"))
                    .col(big_integer_null("paid_amount"))
                    .col(timestamp_with_time_zone("created_at"))
                    .col(timestamp_with_time_zone_null("paid_at"))
                    .to_owned(),
            )
            .await?;
        // Requests made with an integration's machine token: its usage, metered from the log.
        if !manager.has_column("api_requests", "integration_id").await? {
            manager
                .alter_table(Table::alter().table("api_requests").add_column(uuid_null("integration_id")).to_owned())
                .await?;
        }
        let db = manager.get_connection();
        for index in INDEXES {
            db.execute_unprepared(index).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            "integration_payments",
            "integration_invoices",
            "integration_usage",
            "portal_sessions",
            "integration_session_codes",
            "integration_users",
            "integrations",
        ] {
            manager.drop_table(Table::drop().table(table).if_exists().to_owned()).await?;
        }
        Ok(())
    }
}
