//! Customers, their wallets' ledgers, pricing plans and rides (Levy Fleets).

use sea_orm_migration::async_trait::async_trait;
use sea_orm_migration::sea_orm::DatabaseBackend;
use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

/// Statements both engines understand alike: indexes, partial ones included.
const INDEXES: [&str; 7] = [
    "CREATE UNIQUE INDEX IF NOT EXISTS customers_number ON customers (tenant, number)",
    "CREATE INDEX IF NOT EXISTS customers_email ON customers (tenant, email_search)",
    // The ledger is a chain: one entry per position, so two writers can never both extend it
    // from the same balance, whatever locks they took.
    "CREATE UNIQUE INDEX IF NOT EXISTS wallet_entries_chain ON wallet_entries (tenant, customer_id, seq)",
    "CREATE UNIQUE INDEX IF NOT EXISTS wallet_entries_key ON wallet_entries (tenant, customer_id, idempotency_key)",
    // NULLs are distinct in a unique index: only refunds are constrained, each entry refunded once.
    "CREATE UNIQUE INDEX IF NOT EXISTS wallet_entries_refund ON wallet_entries (tenant, reverses_entry_id)",
    // At most one ride in progress per vehicle and per customer, whatever races.
    "CREATE UNIQUE INDEX IF NOT EXISTS rides_vehicle_busy ON rides (vehicle_id) WHERE status <> 'ended'",
    "CREATE UNIQUE INDEX IF NOT EXISTS rides_customer_busy ON rides (tenant, customer_id) WHERE status <> 'ended'",
];

#[async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table("customers")
                    .if_not_exists()
                    .col(uuid("customer_id").primary_key())
                    .col(string("tenant"))
                    .col(uuid_null("subaccount_id"))
                    .col(big_integer("number"))
                    .col(string_null("email"))
                    // The e-mail lower-cased: what a search by e-mail compares.
                    .col(string_null("email_search"))
                    .col(string_null("name"))
                    .col(string_null("phone"))
                    .col(string_null("external_ref"))
                    .col(boolean("blocked"))
                    .col(text_null("block_reason"))
                    .col(timestamp_with_time_zone("created_at"))
                    .col(timestamp_with_time_zone("updated_at"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("wallets")
                    .if_not_exists()
                    .col(string("tenant"))
                    .col(uuid("customer_id"))
                    .col(string("currency"))
                    .col(big_integer("overdraft_limit_cents"))
                    .col(timestamp_with_time_zone("created_at"))
                    .primary_key(Index::create().col("tenant").col("customer_id"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("wallet_entries")
                    .if_not_exists()
                    .col(uuid("entry_id").primary_key())
                    .col(string("tenant"))
                    .col(uuid("customer_id"))
                    .col(big_integer("seq"))
                    .col(string("action"))
                    .col(big_integer("amount_cents"))
                    // The balance after this entry: the sum of the chain up to here, so the
                    // balance is read off the last entry instead of summing the whole ledger.
                    .col(big_integer("balance_cents"))
                    .col(string("currency"))
                    .col(text("description"))
                    .col(string("source"))
                    .col(string("idempotency_key"))
                    .col(uuid_null("reverses_entry_id"))
                    .col(timestamp_with_time_zone("created_at"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("pricing_plans")
                    .if_not_exists()
                    .col(string("tenant"))
                    .col(uuid("subaccount_id"))
                    // JSON, read and written whole.
                    .col(text("plan"))
                    .col(timestamp_with_time_zone("updated_at"))
                    .primary_key(Index::create().col("tenant").col("subaccount_id"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("rides")
                    .if_not_exists()
                    .col(uuid("ride_id").primary_key())
                    .col(string("tenant"))
                    .col(uuid("subaccount_id"))
                    .col(uuid("customer_id"))
                    .col(uuid("vehicle_id"))
                    // active, paused, ended.
                    .col(string("status"))
                    // The plan as it was at the start: a later change prices later rides only.
                    .col(text("plan"))
                    .col(timestamp_with_time_zone("started_at"))
                    .col(timestamp_with_time_zone_null("paused_at"))
                    .col(big_integer("paused_ms"))
                    .col(timestamp_with_time_zone_null("ended_at"))
                    .col(double_null("start_latitude"))
                    .col(double_null("start_longitude"))
                    .col(double_null("end_latitude"))
                    .col(double_null("end_longitude"))
                    .col(big_integer_null("start_odometer"))
                    .col(big_integer_null("distance_m"))
                    // JSON price breakdown, once ended.
                    .col(text_null("pricing"))
                    .col(string_null("payment_status"))
                    .col(uuid_null("charge_entry_id"))
                    .col(timestamp_with_time_zone("updated_at"))
                    .to_owned(),
            )
            .await?;
        let connection = manager.get_connection();
        for statement in INDEXES {
            connection.execute_unprepared(statement).await?;
        }
        connection
            .execute_unprepared("CREATE INDEX IF NOT EXISTS rides_by_start ON rides (tenant, started_at)")
            .await?;
        // Append-only is the database's rule, not only the code's: an entry is never changed or
        // removed; a mistake is corrected by a reversing entry.
        let guard = match manager.get_database_backend() {
            DatabaseBackend::Postgres => vec![
                "CREATE OR REPLACE FUNCTION wallet_entries_append_only() RETURNS trigger LANGUAGE plpgsql AS \
                 $$ BEGIN RAISE EXCEPTION 'wallet_entries is append-only'; END $$",
                "CREATE OR REPLACE TRIGGER wallet_entries_append_only BEFORE UPDATE OR DELETE ON wallet_entries \
                 FOR EACH ROW EXECUTE FUNCTION wallet_entries_append_only()",
            ],
            _ => vec![
                "CREATE TRIGGER IF NOT EXISTS wallet_entries_no_update BEFORE UPDATE ON wallet_entries \
                 BEGIN SELECT RAISE(ABORT, 'wallet_entries is append-only'); END",
                "CREATE TRIGGER IF NOT EXISTS wallet_entries_no_delete BEFORE DELETE ON wallet_entries \
                 BEGIN SELECT RAISE(ABORT, 'wallet_entries is append-only'); END",
            ],
        };
        for statement in guard {
            connection.execute_unprepared(statement).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in ["rides", "pricing_plans", "wallet_entries", "wallets", "customers"] {
            manager.drop_table(Table::drop().table(table).if_exists().to_owned()).await?;
        }
        if manager.get_database_backend() == DatabaseBackend::Postgres {
            manager.get_connection().execute_unprepared("DROP FUNCTION IF EXISTS wallet_entries_append_only()").await?;
        }
        Ok(())
    }
}
