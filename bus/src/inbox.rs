//! The inbox: one row per (consumer group, message id), written in the handler's transaction, so a
//! redelivered message has no second effect and a command gets the reply it got the first time.

use schemas::{AnyMessage, Envelope};
use sea_orm::sea_query::{Expr, ExprTrait, OnConflict, Query};
use sea_orm::{ConnectionTrait, DatabaseTransaction, DbErr};
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
    let mut insert = Query::insert()
        .into_table("inbox")
        .columns(["consumer_group", "message_id", "tenant", "type_name"])
        .on_conflict(OnConflict::columns(["consumer_group", "message_id"]).do_nothing().to_owned())
        .returning_col("message_id")
        .to_owned();
    let mut seen = HashSet::new();
    for envelope in envelopes.iter().filter(|e| seen.insert(e.id)) {
        insert.values_panic([
            group.into(),
            envelope.id.into(),
            envelope.tenant.as_str().into(),
            envelope.type_name.as_str().into(),
        ]);
    }
    let rows = tx.query_all(&insert).await?;
    rows.iter().map(|row| row.try_get::<Uuid>("", "message_id")).collect()
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
