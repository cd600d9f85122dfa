//! JSON held in text columns: lists, maps and scopes that are read and written whole, never
//! queried inside, so PostgreSQL and SQLite store them alike; and enums stored as their names.

use sea_orm::{ColIdx, DbErr, QueryResult, TryGetError, TryGetable};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Reads `table.column` of `row` as JSON.
pub fn json_column<T: DeserializeOwned>(row: &QueryResult, table: &str, column: &str) -> Result<T, DbErr> {
    let text: String = row.try_get("", column)?;
    serde_json::from_str(&text).map_err(|e| DbErr::Type(format!("{table}.{column}: {e}")))
}

/// The audience recorded in `table.audience`; none (a receiver made before audiences were
/// recorded): everything of the organisation, as it had then.
pub fn audience_column(row: &QueryResult, table: &str) -> Result<schemas::integrations::Audience, DbErr> {
    let text: Option<String> = row.try_get("", "audience")?;
    match text {
        Some(text) => serde_json::from_str(&text).map_err(|e| DbErr::Type(format!("{table}.audience: {e}"))),
        None => Ok(schemas::integrations::Audience::everything()),
    }
}

/// `value` as JSON text; our column values are plain enums, lists, maps and ids, whose
/// serialisation cannot fail.
pub fn to_json(value: &impl Serialize) -> String {
    serde_json::to_string(value).unwrap_or_default()
}

/// A unit enum as the name it has in JSON (`in_use`, `LOCKED`), for a text column.
pub fn name_of(value: &impl Serialize) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(name)) => name,
        _ => String::new(),
    }
}

/// Makes `query` lock the rows it reads until the transaction ends (`FOR UPDATE`) on PostgreSQL.
/// SQLite has no row locks and needs none: it runs one writing transaction at a time.
pub fn for_update(db: &impl sea_orm::ConnectionTrait, query: &mut sea_orm::sea_query::SelectStatement) {
    if db.get_database_backend() == sea_orm::DatabaseBackend::Postgres {
        query.lock(sea_orm::sea_query::LockType::Update);
    }
}

/// A value kept as JSON in a text column, for rows read by [`sea_orm::FromQueryResult`].
#[derive(Clone, Debug, PartialEq)]
pub struct Json<T>(pub T);

impl<T: DeserializeOwned> TryGetable for Json<T> {
    fn try_get_by<I: ColIdx>(row: &QueryResult, index: I) -> Result<Self, TryGetError> {
        let text = String::try_get_by(row, index)?;
        serde_json::from_str(&text).map(Json).map_err(|e| TryGetError::DbErr(DbErr::Type(format!("JSON column: {e}"))))
    }
}

/// A unit enum kept as its name (see [`name_of`]), for rows read by [`sea_orm::FromQueryResult`].
#[derive(Clone, Debug, PartialEq)]
pub struct Named<T>(pub T);

impl<T: DeserializeOwned> TryGetable for Named<T> {
    fn try_get_by<I: ColIdx>(row: &QueryResult, index: I) -> Result<Self, TryGetError> {
        let name = String::try_get_by(row, index)?;
        serde_json::from_value(serde_json::Value::String(name.clone()))
            .map(Named)
            .map_err(|e| TryGetError::DbErr(DbErr::Type(format!("`{name}`: {e}"))))
    }
}
