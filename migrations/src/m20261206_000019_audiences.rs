//! Who may receive what: webhook endpoints and subscriptions record the key that made them and
//! what it could read (`audience`, JSON; null: the whole organisation, as every one made before
//! this was); a delivery records the subaccount its event is about (null: the organisation's
//! own); and events still unsent in the outbox get the routing key's new subaccount word.

use sea_orm_migration::async_trait::async_trait;
use sea_orm_migration::sea_orm::DatabaseBackend;
use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in ["webhook_endpoints", "subscriptions"] {
            // One column a statement: SQLite alters one thing at a time.
            for column in [uuid_null("key_id"), text_null("audience")] {
                manager.alter_table(Table::alter().table(table).add_column(column).to_owned()).await?;
            }
        }
        manager
            .alter_table(Table::alter().table("webhook_deliveries").add_column(uuid_null("subaccount_id")).to_owned())
            .await?;
        // An unsent event's routing key was `{tenant}.{domain}.{type}`; the platform's groups now
        // bind `*.*.{domain}.{type}`. The word `unscoped` reaches them and receivers of the whole
        // organisation, and no receiver limited to subaccounts: nothing unsent is lost, nothing
        // leaks. Only keys of the old shape (the tenant's word then the domain's) are rewritten.
        let position = match manager.get_database_backend() {
            DatabaseBackend::Sqlite => "instr(routing_key, '.')",
            _ => "strpos(routing_key, '.')",
        };
        let rest = format!("substr(routing_key, {position} + 1)");
        let old_shape = [
            "integrations",
            "billing",
            "vehicles",
            "rides",
            "customers",
            "wallets",
            "zones",
            "pricing",
            "charging",
            "payments",
            "webhooks",
            "marketplace",
        ]
        .map(|domain| format!("{rest} LIKE '{domain}.%'"))
        .join(" OR ");
        let rewrite = format!(
            "UPDATE outbox SET routing_key = substr(routing_key, 1, {position}) || 'unscoped.' || {rest} \
             WHERE sent_at IS NULL AND transport = 'amqp' AND destination = 'voltbus.events' AND ({old_shape})"
        );
        manager.get_connection().execute_unprepared(&rewrite).await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.alter_table(Table::alter().table("webhook_deliveries").drop_column("subaccount_id").to_owned()).await?;
        for table in ["webhook_endpoints", "subscriptions"] {
            for column in ["key_id", "audience"] {
                manager.alter_table(Table::alter().table(table).drop_column(column).to_owned()).await?;
            }
        }
        Ok(())
    }
}
