//! Operator tools for the embedded transport's dead-letter queues.

use sea_orm::sea_query::{Expr, ExprTrait, Order, Query};
use sea_orm::{ConnectionTrait, DbErr};

use super::consumer::describe;
use super::{EmbeddedBus, now_ms};
use crate::{BusError, DeadLetter, QueueDepth};

fn failed(queue: &str, e: DbErr) -> BusError {
    BusError::Consume { source_name: queue.to_owned(), reason: e.to_string() }
}

/// How many messages `queue` holds (consumers are tasks of this process: not counted).
pub async fn queue_depth(bus: &EmbeddedBus, queue: &str) -> Result<QueueDepth, BusError> {
    let count = Query::select()
        .expr_as(Expr::col("seq").count(), "n")
        .from("bus_queue")
        .and_where(Expr::col("queue").eq(queue))
        .to_owned();
    let row = bus.database().query_one(&count).await.map_err(|e| failed(queue, e))?;
    let messages: i64 = match row {
        Some(row) => row.try_get("", "n").map_err(|e| failed(queue, e))?,
        None => 0,
    };
    Ok(QueueDepth { messages: u64::try_from(messages).unwrap_or(0), consumers: None })
}

/// Lists up to `limit` messages of a dead-letter queue.
pub async fn list_dead_letters(bus: &EmbeddedBus, queue: &str, limit: usize) -> Result<Vec<DeadLetter>, BusError> {
    let select = Query::select()
        .columns(["message_id", "payload", "reason", "error_kind", "source_queue", "attempt", "failed_at_ms"])
        .from("bus_queue")
        .and_where(Expr::col("queue").eq(queue))
        .order_by("seq", Order::Asc)
        .limit(u64::try_from(limit).unwrap_or(u64::MAX))
        .to_owned();
    let rows = bus.database().query_all(&select).await.map_err(|e| failed(queue, e))?;
    rows.iter()
        .map(|r| {
            let payload: String = r.try_get("", "payload")?;
            let message_id: uuid::Uuid = r.try_get("", "message_id")?;
            let (type_name, tenant) = describe(&payload);
            let failed_at: Option<i64> = r.try_get("", "failed_at_ms")?;
            Ok(DeadLetter {
                // Undecodable bytes have no envelope id; the row's id is then a random one.
                message_id: type_name.as_ref().map(|_| message_id.to_string()),
                type_name,
                tenant,
                error_kind: r.try_get("", "error_kind")?,
                reason: r.try_get("", "reason")?,
                source_queue: r.try_get("", "source_queue")?,
                attempts: Some(i64::from(r.try_get::<i32>("", "attempt")?)),
                failed_at: failed_at.and_then(chrono::DateTime::from_timestamp_millis).map(|t| t.to_rfc3339()),
                body_preview: payload.chars().take(200).collect(),
            })
        })
        .collect::<Result<_, DbErr>>()
        .map_err(|e| failed(queue, e))
}

/// Moves dead letters back to their queue (one by message id, or all), with fresh attempts.
/// Returns how many.
pub async fn replay_dead_letters(bus: &EmbeddedBus, queue: &str, message_id: Option<&str>) -> Result<usize, BusError> {
    let mut update = Query::update()
        .table("bus_queue")
        .value("queue", Expr::col("source_queue"))
        .value("attempt", 1)
        .value("available_at_ms", now_ms())
        .value("locked_until_ms", 0)
        .value("reason", Option::<String>::None)
        .value("error_kind", Option::<String>::None)
        .value("failed_at_ms", Option::<i64>::None)
        .and_where(Expr::col("queue").eq(queue))
        .and_where(Expr::col("source_queue").is_not_null())
        .to_owned();
    if let Some(id) = message_id {
        let id = uuid::Uuid::parse_str(id)
            .map_err(|e| BusError::Consume { source_name: queue.to_owned(), reason: e.to_string() })?;
        update.and_where(Expr::col("message_id").eq(id));
    }
    let moved = bus.database().execute(&update).await.map_err(|e| failed(queue, e))?.rows_affected();
    bus.wake();
    Ok(usize::try_from(moved).unwrap_or(usize::MAX))
}
