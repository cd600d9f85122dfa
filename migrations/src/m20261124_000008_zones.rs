//! Zones: a subaccount's parking, no-parking, no-ride, slow and operating areas, each a ring of
//! points with the box around it, which the database narrows searches by before the exact test.

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
                    .table("zones")
                    .if_not_exists()
                    .col(uuid("zone_id").primary_key())
                    .col(string("tenant"))
                    .col(uuid("subaccount_id"))
                    .col(string("name"))
                    .col(string("zone_type"))
                    // `[[longitude, latitude], …]`, read and written whole.
                    .col(text("polygon"))
                    .col(integer_null("speed_limit_kmh"))
                    .col(double("south"))
                    .col(double("north"))
                    // Both null: every longitude (the zone holds a pole); west > east: the zone
                    // crosses the antimeridian.
                    .col(double_null("west"))
                    .col(double_null("east"))
                    .col(timestamp_with_time_zone("created_at"))
                    .col(timestamp_with_time_zone("updated_at"))
                    .to_owned(),
            )
            .await?;
        manager
            .get_connection()
            .execute_unprepared("CREATE INDEX IF NOT EXISTS zones_by_type ON zones (tenant, zone_type, created_at)")
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table("zones").if_exists().to_owned()).await
    }
}
