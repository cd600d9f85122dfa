//! Commands to vehicles get a permission of their own, `vehicles:commands`, apart from
//! `vehicles:write`, which used to allow them: every key that held `vehicles:write` gets it, so no
//! key loses what it could do. Keys keep their permissions as a JSON array of names.

use sea_orm_migration::async_trait::async_trait;
use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .get_connection()
            .execute_unprepared(
                "UPDATE api_keys SET permissions = \
                 replace(permissions, '\"vehicles:write\"', '\"vehicles:write\",\"vehicles:commands\"') \
                 WHERE permissions LIKE '%\"vehicles:write\"%' AND permissions NOT LIKE '%\"vehicles:commands\"%'",
            )
            .await
            .map(|_| ())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .get_connection()
            .execute_unprepared("UPDATE api_keys SET permissions = replace(permissions, ',\"vehicles:commands\"', '')")
            .await
            .map(|_| ())
    }
}
