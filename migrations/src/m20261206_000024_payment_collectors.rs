//! Who collects a customer's payments: null, this platform through the wallet; a marketplace's
//! name (`etvas`) for the users it brought, whom the marketplace bills itself. Customers a
//! marketplace created before the column existed are marked from their `external_ref`.

use sea_orm_migration::async_trait::async_trait;
use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let column = text_null("payments_collected_by");
        manager.alter_table(Table::alter().table("customers").add_column(column).to_owned()).await?;
        let mark = Query::update()
            .table("customers")
            .value("payments_collected_by", "etvas")
            .and_where(Expr::col("external_ref").like("etvas:%"))
            .to_owned();
        manager.exec_stmt(mark).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let drop = Table::alter().table("customers").drop_column("payments_collected_by").to_owned();
        manager.alter_table(drop).await
    }
}
