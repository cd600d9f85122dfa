//! The database schema's history, applied by `voltbus migrate` and by `voltbus serve` at start-up,
//! on PostgreSQL and on the embedded SQLite file alike.
//!
//! Layout: one file per migration, named `mYYYYMMDD_NNNNNN_what`; [`Migrator`] lists them in order.

use sea_orm_migration::prelude::*;

mod m20261123_000001_bus_tables;
mod m20261123_000002_embedded_queue;
mod m20261123_000003_partner_keys;
mod m20261123_000004_outbox_pending;
mod m20261124_000005_webhooks;
mod m20261124_000006_marketplace;
mod m20261124_000007_fleet;
mod m20261124_000008_zones;
mod m20261124_000009_vehicle_commands;
mod m20261124_000010_subscriptions;
mod m20261124_000011_rides;
mod m20261129_000012_mobile_sign_in;
mod m20261129_000013_chargers;
mod m20261129_000014_charging_sessions;
mod m20261129_000015_invoices;
mod m20261129_000016_integrations;
mod m20261129_000017_maintenance;
mod m20261129_000018_operators;
mod m20261206_000019_audiences;
mod m20261206_000020_ocpp;
mod m20261206_000021_durable_commands;
mod m20261206_000022_vehicle_commands_permission;
mod m20261206_000023_profiles;
mod m20261206_000024_payment_collectors;
mod m20261207_000025_request_log_writes;
mod m20261207_000026_outbox_pending;

pub use sea_orm_migration::MigratorTrait;

/// Applies the migrations in order; each runs once per database.
pub struct Migrator;

impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261123_000001_bus_tables::Migration),
            Box::new(m20261123_000002_embedded_queue::Migration),
            Box::new(m20261123_000003_partner_keys::Migration),
            Box::new(m20261123_000004_outbox_pending::Migration),
            Box::new(m20261124_000005_webhooks::Migration),
            Box::new(m20261124_000006_marketplace::Migration),
            Box::new(m20261124_000007_fleet::Migration),
            Box::new(m20261124_000008_zones::Migration),
            Box::new(m20261124_000009_vehicle_commands::Migration),
            Box::new(m20261124_000010_subscriptions::Migration),
            Box::new(m20261124_000011_rides::Migration),
            Box::new(m20261129_000012_mobile_sign_in::Migration),
            Box::new(m20261129_000013_chargers::Migration),
            Box::new(m20261129_000014_charging_sessions::Migration),
            Box::new(m20261129_000015_invoices::Migration),
            Box::new(m20261129_000016_integrations::Migration),
            Box::new(m20261129_000017_maintenance::Migration),
            Box::new(m20261129_000018_operators::Migration),
            Box::new(m20261206_000019_audiences::Migration),
            Box::new(m20261206_000020_ocpp::Migration),
            Box::new(m20261206_000021_durable_commands::Migration),
            Box::new(m20261206_000022_vehicle_commands_permission::Migration),
            Box::new(m20261206_000023_profiles::Migration),
            Box::new(m20261206_000024_payment_collectors::Migration),
            Box::new(m20261207_000025_request_log_writes::Migration),
            Box::new(m20261207_000026_outbox_pending::Migration),
        ]
    }
}
