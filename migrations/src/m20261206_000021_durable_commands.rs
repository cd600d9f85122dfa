//! Durable vehicle commands: a command may wait (`queued`) for its offline vehicle until its time
//! to live runs out, so `expires_at` is, while queued, when it expires unsent and, once sent, when
//! the device may no longer carry it out. `sent_at` is when it was handed to the device; the
//! vehicle's subaccount is kept for the command's events, which outlive the vehicle; the caller's
//! Idempotency-Key travels on to the device. What was `pending` is `sent`.

use sea_orm_migration::async_trait::async_trait;
use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // One column a statement: SQLite alters one thing at a time.
        for column in
            [timestamp_with_time_zone_null("sent_at"), uuid_null("subaccount_id"), text_null("idempotency_key")]
        {
            manager.alter_table(Table::alter().table("vehicle_commands").add_column(column).to_owned()).await?;
        }
        let db = manager.get_connection();
        for statement in [
            "UPDATE vehicle_commands SET status = 'sent', sent_at = created_at WHERE status = 'pending'",
            "UPDATE vehicle_commands SET subaccount_id = \
             (SELECT subaccount_id FROM vehicles WHERE vehicles.vehicle_id = vehicle_commands.vehicle_id)",
            "DROP INDEX IF EXISTS vehicle_commands_pending",
            // The sweeper times out sent commands past their time, and sends queued ones whose
            // vehicle was heard from or expires them: both look at few rows of a large table.
            "CREATE INDEX IF NOT EXISTS vehicle_commands_sent ON vehicle_commands (expires_at) WHERE status = 'sent'",
            "CREATE INDEX IF NOT EXISTS vehicle_commands_queued ON vehicle_commands (vehicle_id) \
             WHERE status = 'queued'",
        ] {
            db.execute_unprepared(statement).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        for statement in [
            "DROP INDEX IF EXISTS vehicle_commands_sent",
            "DROP INDEX IF EXISTS vehicle_commands_queued",
            "UPDATE vehicle_commands SET status = 'pending' WHERE status IN ('sent', 'queued')",
            "UPDATE vehicle_commands SET status = 'timed_out' WHERE status = 'expired'",
            "CREATE INDEX IF NOT EXISTS vehicle_commands_pending ON vehicle_commands (expires_at) \
             WHERE status = 'pending'",
        ] {
            db.execute_unprepared(statement).await?;
        }
        for column in ["sent_at", "subaccount_id", "idempotency_key"] {
            manager.alter_table(Table::alter().table("vehicle_commands").drop_column(column).to_owned()).await?;
        }
        Ok(())
    }
}
