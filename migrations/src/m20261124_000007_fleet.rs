//! The fleet: vehicles with their master data, custom fields and operation status; the latest
//! state each vehicle reported (one row per vehicle, every property with its own time); and the
//! history of every state received.

use sea_orm_migration::async_trait::async_trait;
use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

/// Indexes written the same way on PostgreSQL and SQLite.
const INDEXES: [&str; 4] = [
    // A VIN, and a telematics unit, belong to one vehicle of an organisation.
    "CREATE UNIQUE INDEX IF NOT EXISTS vehicles_vin ON vehicles (tenant, vin)",
    "CREATE UNIQUE INDEX IF NOT EXISTS vehicles_unit ON vehicles (tenant, telematics_unit_id) \
     WHERE telematics_unit_id IS NOT NULL",
    "CREATE INDEX IF NOT EXISTS vehicles_listing ON vehicles (tenant, created_at, vehicle_id)",
    "CREATE INDEX IF NOT EXISTS vehicle_state_history_by_vehicle ON vehicle_state_history (vehicle_id, received_at)",
];

#[async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table("vehicles")
                    .if_not_exists()
                    .col(uuid("vehicle_id").primary_key())
                    .col(string("tenant"))
                    .col(uuid("subaccount_id"))
                    .col(string("vin"))
                    .col(string_null("vehicle_number"))
                    .col(string_null("license_plate"))
                    .col(string_null("vehicle_type"))
                    .col(string_null("brand"))
                    .col(string_null("model"))
                    .col(string_null("transmission"))
                    .col(string_null("telematics_unit_id"))
                    // JSON objects and lists read and written whole.
                    .col(text("custom_fields"))
                    .col(text("capabilities"))
                    .col(string("status"))
                    .col(timestamp_with_time_zone("created_at"))
                    .col(timestamp_with_time_zone("updated_at"))
                    .to_owned(),
            )
            .await?;
        // The hottest table: rewritten at every report, so it holds no index but its key
        // (PostgreSQL can then update in place) and nothing the partner edits.
        manager
            .create_table(
                Table::create()
                    .table("vehicle_states")
                    .if_not_exists()
                    .col(uuid("vehicle_id").primary_key())
                    .col(string("tenant"))
                    .col(small_integer_null("charge_level"))
                    .col(timestamp_with_time_zone_null("charge_level_at"))
                    .col(double_null("latitude"))
                    .col(double_null("longitude"))
                    .col(timestamp_with_time_zone_null("position_at"))
                    .col(big_integer_null("odometer"))
                    .col(timestamp_with_time_zone_null("odometer_at"))
                    .col(big_integer_null("remaining_range"))
                    .col(timestamp_with_time_zone_null("remaining_range_at"))
                    .col(double_null("speed"))
                    .col(timestamp_with_time_zone_null("speed_at"))
                    .col(string_null("central_lock"))
                    .col(timestamp_with_time_zone_null("central_lock_at"))
                    .col(string_null("ignition"))
                    .col(timestamp_with_time_zone_null("ignition_at"))
                    // Where the last `vehicle.location_updated` placed it: the next one is due
                    // when the vehicle is far enough from here, however slowly it got there.
                    .col(double_null("announced_latitude"))
                    .col(double_null("announced_longitude"))
                    .col(timestamp_with_time_zone_null("received_at"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("vehicle_state_history")
                    .if_not_exists()
                    // The report's message id: a redelivered report is not recorded twice.
                    .col(uuid("message_id").primary_key())
                    .col(string("tenant"))
                    .col(uuid("vehicle_id"))
                    .col(timestamp_with_time_zone("received_at"))
                    .col(text("state"))
                    .to_owned(),
            )
            .await?;
        let connection = manager.get_connection();
        for statement in INDEXES {
            connection.execute_unprepared(statement).await?;
        }
        if manager.get_database_backend() == sea_orm_migration::sea_orm::DatabaseBackend::Postgres {
            // Room on each page for the new version of a row, so a state update stays on its page.
            connection.execute_unprepared("ALTER TABLE vehicle_states SET (fillfactor = 70)").await?;
            // History is purged by age: a block-range index costs next to nothing to keep.
            connection
                .execute_unprepared(
                    "CREATE INDEX IF NOT EXISTS vehicle_state_history_age ON vehicle_state_history \
                     USING brin (received_at)",
                )
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in ["vehicle_state_history", "vehicle_states", "vehicles"] {
            manager.drop_table(Table::drop().table(table).if_exists().to_owned()).await?;
        }
        Ok(())
    }
}
