//! The bus: each consumer group's queue (depth, consumers, rate) and dead letters, and the outbox
//! backlog, updated live; a group's dead letters with their reasons, and replay to the queue they
//! came from. A platform operator sees the whole bus; an organisation's operator sees only the
//! dead letters of their own organisation (queue figures are everyone's, so they are not shown).

use std::collections::HashMap;
use std::fmt::Write;
use std::future::Future;
use std::pin::Pin;
use std::time::Instant;

use bus::{DeadLetter, QueueDepth};
use serde::Serialize;
use serde_json::{Map, Value, json};

use super::html::{self, Row, esc};
use super::{View, Visit};
use crate::edge::envelope::ApiError;

/// One consumer group as the bus page shows it.
#[derive(Clone, Debug, Serialize)]
pub struct GroupStats {
    /// The group (`rides`, `fleet-telemetry`, …).
    pub group: String,
    /// Where its queue is: `rabbitmq`, `jetstream` or `embedded`.
    pub transport: &'static str,
    /// Its work queue, when it could be read.
    pub queue: Option<QueueDepth>,
    /// Messages in its dead letters, when they could be counted.
    pub dead_letters: Option<u64>,
}

/// What the console reads and does on the transports; the binary implements it over the engines
/// it runs on.
pub trait BusOperations: Send + Sync + 'static {
    /// The consumer groups' names.
    fn group_names(&self) -> Vec<String>;

    /// Every consumer group, with its queue and dead-letter figures read now.
    fn groups(&self) -> Pin<Box<dyn Future<Output = Vec<GroupStats>> + Send + '_>>;

    /// Up to `limit` dead letters of `group`, left where they are.
    fn dead_letters<'a>(
        &'a self,
        group: &'a str,
        limit: usize,
    ) -> Pin<Box<dyn Future<Output = Result<Vec<DeadLetter>, String>> + Send + 'a>>;

    /// Replays `group`'s dead letter `message_id` (or all of them) to its queue; how many.
    fn replay<'a>(
        &'a self,
        group: &'a str,
        message_id: Option<&'a str>,
    ) -> Pin<Box<dyn Future<Output = Result<usize, String>> + Send + 'a>>;

    /// Outbox rows not yet published; `None` when it cannot be read.
    fn outbox_backlog(&self) -> Pin<Box<dyn Future<Output = Option<u64>> + Send + '_>>;
}

/// Consumed totals at one moment, for rates.
pub(super) struct Sample {
    at: Instant,
    consumed: HashMap<String, u64>,
}

/// Most dead letters a page lists.
const LISTED: usize = 200;

/// `GET /admin/bus/live`: the numbers of the bus page.
pub(super) async fn live_numbers(visit: &Visit<'_>) -> Result<View, ApiError> {
    let groups = visit.console.transports.groups().await;
    Ok(View::Json(live(visit, &groups).await))
}

/// `GET /admin/bus/dead-letters/{group}`.
pub(super) async fn letters(visit: &Visit<'_>) -> Result<View, ApiError> {
    dead_letters(visit, &known(visit, visit.param("group"))?).await
}

/// `POST /admin/bus/dead-letters/{group}/replay`.
pub(super) async fn replay_letters(visit: &Visit<'_>) -> Result<View, ApiError> {
    replay(visit, &known(visit, visit.param("group"))?).await
}

/// `group`, if it is one of the consumer groups (no other queue is ever read or replayed).
fn known(visit: &Visit<'_>, group: &str) -> Result<String, ApiError> {
    visit
        .console
        .transports
        .group_names()
        .into_iter()
        .find(|name| name == group)
        .ok_or_else(|| ApiError::not_found("no such consumer group"))
}

/// The letters an operator may see: all for the platform, their organisation's otherwise.
fn visible(visit: &Visit<'_>, letters: Vec<DeadLetter>) -> Vec<DeadLetter> {
    if visit.platform() {
        return letters;
    }
    let own = visit.session.operator.tenant.as_deref();
    letters.into_iter().filter(|l| l.tenant.is_some() && l.tenant.as_deref() == own).collect()
}

/// The live figures of `groups`, as `data-key` → text; a reading of the rates.
async fn live(visit: &Visit<'_>, groups: &[GroupStats]) -> Value {
    let mut figures = Map::new();
    if !visit.platform() {
        return Value::Object(figures);
    }
    let now = Instant::now();
    let consumed: HashMap<String, u64> = groups
        .iter()
        .map(|g| (g.group.clone(), bus::metrics::consumed_so_far(&schemas::routing::work_queue(&g.group))))
        .collect();
    let previous = {
        let mut last = visit.console.last_sample.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        last.replace(Sample { at: now, consumed: consumed.clone() })
    };
    for group in groups {
        let name = &group.group;
        let rate = previous.as_ref().filter(|p| now > p.at).map(|p| {
            let before = p.consumed.get(name).copied().unwrap_or(0);
            let after = consumed.get(name).copied().unwrap_or(0);
            after.saturating_sub(before) as f64 / (now - p.at).as_secs_f64()
        });
        let number = |n: Option<u64>| n.map_or("–".to_owned(), |n| n.to_string());
        figures.insert(format!("{name}.depth"), json!(number(group.queue.map(|q| q.messages))));
        figures.insert(format!("{name}.consumers"), json!(number(group.queue.and_then(|q| q.consumers))));
        figures.insert(format!("{name}.dead"), json!(number(group.dead_letters)));
        figures.insert(format!("{name}.rate"), json!(rate.map_or("–".to_owned(), |r| format!("{r:.1}/s"))));
    }
    let backlog = visit.console.transports.outbox_backlog().await;
    figures.insert("outbox".into(), json!(backlog.map_or("–".to_owned(), |n| n.to_string())));
    figures.insert("updated".into(), json!(chrono::Utc::now().format("%H:%M:%S").to_string()));
    Value::Object(figures)
}

pub(super) async fn overview(visit: &Visit<'_>) -> Result<View, ApiError> {
    let groups = visit.console.transports.groups().await;
    let body = if visit.platform() {
        let figures = live(visit, &groups).await;
        let cell = |key: String| {
            let text = figures[&key].as_str().unwrap_or("–").to_owned();
            format!("<span data-key=\"{}\">{}</span>", esc(&key), esc(&text))
        };
        let rows: Vec<Row> = groups
            .iter()
            .map(|g| {
                let name = &g.group;
                vec![
                    format!("<a href=\"/admin/bus/dead-letters/{0}\">{0}</a>", esc(name)),
                    esc(g.transport),
                    cell(format!("{name}.depth")),
                    cell(format!("{name}.consumers")),
                    cell(format!("{name}.rate")),
                    cell(format!("{name}.dead")),
                ]
            })
            .collect();
        format!(
            "<section class=\"live\" data-live=\"/admin/bus/live\"><p class=\"figures\">Outbox backlog: <strong id=\"outbox\">{}</strong> \
             · updated {}</p>{}</section>",
            cell("outbox".into()),
            cell("updated".into()),
            html::table(
                "queues",
                &["Consumer group", "Transport", "Queued", "Consumers", "Consumed (rate)", "Dead letters"],
                &rows,
                "No consumer group."
            ),
        )
    } else {
        // An organisation's operator: where their own messages wait in dead letters.
        let mut rows: Vec<Row> = Vec::new();
        for group in groups.iter().filter(|g| g.dead_letters.unwrap_or(1) > 0) {
            let letters = visit.console.transports.dead_letters(&group.group, LISTED).await.unwrap_or_default();
            let own = visible(visit, letters).len();
            if own > 0 {
                rows.push(vec![
                    format!("<a href=\"/admin/bus/dead-letters/{0}\">{0}</a>", esc(&group.group)),
                    own.to_string(),
                ]);
            }
        }
        html::table(
            "own-dead-letters",
            &["Consumer group", "Your dead letters"],
            &rows,
            "None of your messages is in a dead-letter queue.",
        )
    };
    Ok(View::Page { title: "Bus".into(), organisation: visit.session.operator.tenant.clone(), body })
}

async fn dead_letters(visit: &Visit<'_>, group: &str) -> Result<View, ApiError> {
    let csrf = visit.csrf();
    let letters = visit.console.transports.dead_letters(group, LISTED).await.map_err(unavailable)?;
    let letters = visible(visit, letters);
    let action = format!("/admin/bus/dead-letters/{group}/replay");
    let rows: Vec<Row> = letters
        .iter()
        .map(|l| {
            let text = |v: &Option<String>| esc(v.as_deref().unwrap_or("–"));
            let replay = match &l.message_id {
                Some(id) => html::form(
                    &action,
                    &csrf,
                    &format!("<input type=\"hidden\" name=\"message_id\" value=\"{}\">", esc(id)),
                    "Replay",
                    "inline",
                ),
                None => "<span class=\"hint\">no id: replay all</span>".into(),
            };
            vec![
                format!("<code>{}</code>", text(&l.message_id)),
                text(&l.type_name),
                text(&l.tenant),
                format!("<span class=\"status failed\">{}</span>", text(&l.error_kind)),
                text(&l.reason),
                l.attempts.map_or("–".into(), |a| a.to_string()),
                text(&l.failed_at),
                format!("<code class=\"snippet\">{}</code>", esc(&l.body_preview)),
                replay,
            ]
        })
        .collect();
    let mut body = String::new();
    if visit.platform() && !letters.is_empty() {
        let _ = write!(body, "<div class=\"actions\">{}</div>", html::form(&action, &csrf, "", "Replay all", "inline"));
    }
    body.push_str(&html::table(
        "dead-letters",
        &["Message id", "Type", "Tenant", "Kind", "Reason", "Attempts", "Failed at", "Body", ""],
        &rows,
        "No dead letter.",
    ));
    Ok(View::Page {
        title: format!("Dead letters of {group}"),
        organisation: visit.session.operator.tenant.clone(),
        body,
    })
}

async fn replay(visit: &Visit<'_>, group: &str) -> Result<View, ApiError> {
    let message_id = visit.field("message_id");
    let transports = &visit.console.transports;
    match message_id {
        None if !visit.platform() => return Err(ApiError::forbidden("only a platform operator replays a whole queue")),
        Some(id) if !visit.platform() => {
            // An organisation's operator replays only a letter they can see.
            let letters = visible(visit, transports.dead_letters(group, 10_000).await.map_err(unavailable)?);
            if !letters.iter().any(|l| l.message_id.as_deref() == Some(id)) {
                return Err(ApiError::not_found("no such dead letter"));
            }
        }
        _ => {}
    }
    let replayed = transports.replay(group, message_id).await.map_err(unavailable)?;
    tracing::info!(operator = %visit.session.operator.operator_id, group, ?message_id, replayed, "dead letters replayed from the console");
    let notice = if replayed > 0 { "dead-letters-replayed" } else { "nothing-replayed" };
    Ok(View::Redirect(format!("/admin/bus/dead-letters/{group}?notice={notice}")))
}

fn unavailable(error: String) -> ApiError {
    tracing::warn!(%error, "the console could not read the transports");
    ApiError::unavailable("the transport could not be read right now")
}
