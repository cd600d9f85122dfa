//! The inbox: one row per (consumer group, message id), written in the handler's transaction, so a
//! redelivered message has no second effect and a command gets the reply it got the first time.

use schemas::{AnyMessage, Envelope};
use sea_orm::sea_query::{ArrayType, Expr, ExprTrait, InsertStatement, OnConflict, Query};
use sea_orm::{ConnectionTrait, DatabaseBackend, DatabaseTransaction, DbErr, Statement};
use serde_json::Value;
use std::collections::HashSet;
use uuid::Uuid;

use crate::handler::Reply;

/// Whether a message is new to a consumer group.
#[derive(Debug, PartialEq)]
pub enum Claim {
    /// First time: handle it.
    New,
    /// Already handled and committed: skip it, answer with the stored reply.
    Duplicate(Reply),
}

/// Records the message in the inbox, or finds it there. On PostgreSQL a concurrent duplicate waits
/// on the primary key until the first one commits or rolls back, so exactly one of them wins.
pub async fn claim(tx: &DatabaseTransaction, group: &str, envelope: &Envelope<AnyMessage>) -> Result<Claim, DbErr> {
    let insert = Query::insert()
        .into_table("inbox")
        .columns(["consumer_group", "message_id", "tenant", "type_name"])
        .values_panic([
            group.into(),
            envelope.id.into(),
            envelope.tenant.as_str().into(),
            envelope.type_name.as_str().into(),
        ])
        .on_conflict(OnConflict::columns(["consumer_group", "message_id"]).do_nothing().to_owned())
        .to_owned();
    let inserted = tx.execute(&insert).await?.rows_affected();
    if inserted == 1 {
        return Ok(Claim::New);
    }
    let select = Query::select()
        .column("reply")
        .from("inbox")
        .and_where(Expr::col("consumer_group").eq(group))
        .and_where(Expr::col("message_id").eq(envelope.id))
        .to_owned();
    let row = tx.query_one(&select).await?;
    let reply: Option<String> = match row {
        Some(row) => row.try_get("", "reply")?,
        None => None,
    };
    Ok(Claim::Duplicate(reply.and_then(|text| serde_json::from_str::<Value>(&text).ok())))
}

/// Records every message of a batch in the inbox in one statement; returns the ids that were new
/// (the others were handled before and are skipped).
pub async fn claim_all(
    tx: &DatabaseTransaction,
    group: &str,
    envelopes: &[&Envelope<AnyMessage>],
) -> Result<HashSet<Uuid>, DbErr> {
    if envelopes.is_empty() {
        return Ok(HashSet::new());
    }
    // A message twice in one batch is claimed once (one statement may not insert a key twice).
    let mut seen = HashSet::new();
    let distinct: Vec<&Envelope<AnyMessage>> = envelopes.iter().copied().filter(|e| seen.insert(e.id)).collect();
    let rows = match tx.get_database_backend() {
        DatabaseBackend::Postgres => tx.query_all_raw(claim_from_arrays(group, &distinct)).await?,
        _ => tx.query_all(&claim_from_values(group, &distinct)).await?,
    };
    rows.iter().map(|row| row.try_get::<Uuid>("", "message_id")).collect()
}

/// On PostgreSQL a batch's claims go in as one array per column: one statement text whatever the
/// batch's size (a `VALUES` list was a new text for each size, parsed again, and it pushed other
/// statements out of the connection's cache).
fn claim_from_arrays(group: &str, envelopes: &[&Envelope<AnyMessage>]) -> Statement {
    use sea_orm::Value;
    const SQL: &str = "INSERT INTO inbox (consumer_group, message_id, tenant, type_name) \
         SELECT $1, message_id, tenant, type_name FROM UNNEST($2::uuid[], $3::text[], $4::text[]) \
         AS r(message_id, tenant, type_name) \
         ON CONFLICT (consumer_group, message_id) DO NOTHING RETURNING message_id";
    let column = |kind: ArrayType, value: fn(&Envelope<AnyMessage>) -> Value| -> Value {
        Value::Array(kind, Some(Box::new(envelopes.iter().map(|e| value(e)).collect())))
    };
    let values = [
        group.into(),
        column(ArrayType::Uuid, |e| e.id.into()),
        column(ArrayType::String, |e| e.tenant.as_str().into()),
        column(ArrayType::String, |e| e.type_name.as_str().into()),
    ];
    Statement::from_sql_and_values(DatabaseBackend::Postgres, SQL, values)
}

/// Elsewhere (SQLite) one multi-row insert.
fn claim_from_values(group: &str, envelopes: &[&Envelope<AnyMessage>]) -> InsertStatement {
    let mut insert = Query::insert()
        .into_table("inbox")
        .columns(["consumer_group", "message_id", "tenant", "type_name"])
        .on_conflict(OnConflict::columns(["consumer_group", "message_id"]).do_nothing().to_owned())
        .returning_col("message_id")
        .to_owned();
    for envelope in envelopes {
        insert.values_panic([
            group.into(),
            envelope.id.into(),
            envelope.tenant.as_str().into(),
            envelope.type_name.as_str().into(),
        ]);
    }
    insert
}

/// Stores a command's reply next to its inbox row, in the same transaction.
pub async fn record_reply(
    tx: &DatabaseTransaction,
    group: &str,
    envelope: &Envelope<AnyMessage>,
    reply: &Value,
) -> Result<(), DbErr> {
    let update = Query::update()
        .table("inbox")
        .value("reply", reply.to_string())
        .and_where(Expr::col("consumer_group").eq(group))
        .and_where(Expr::col("message_id").eq(envelope.id))
        .to_owned();
    tx.execute(&update).await?;
    Ok(())
}
