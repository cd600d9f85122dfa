//! Webhook endpoints: their event filters, the signing secret shown once, "send test event",
//! the delivery log with every attempt (status, latency, the start of the answer), and replay
//! of one delivery or of every failed one since a time.

use http::Method;
use serde_json::{Value, json};

use super::html::{self, Row, esc, time, value};
use super::{View, Visit};
use crate::edge::envelope::ApiError;

/// `GET /admin/orgs/{org}/webhooks`.
pub(super) async fn endpoints(visit: &Visit<'_>) -> Result<View, ApiError> {
    let org = visit.param("org");
    list(visit, org, &visit.caller(org)?).await
}

/// `POST /admin/orgs/{org}/webhooks`: a new endpoint, its signing secret shown once.
pub(super) async fn create(visit: &Visit<'_>) -> Result<View, ApiError> {
    let org = visit.param("org");
    let events: Vec<&str> =
        visit.field("events").unwrap_or("*").split(',').map(str::trim).filter(|e| !e.is_empty()).collect();
    let mut body = json!({ "url": visit.field("url").unwrap_or_default(), "events": events });
    if let Some(description) = visit.field("description") {
        body["description"] = json!(description);
    }
    let created = visit.call(&visit.caller(org)?, Method::POST, "/webhooks", None, body).await?;
    let data = &created["data"];
    let id = data["id"].as_str().unwrap_or_default();
    Ok(View::Page {
        title: "Webhook endpoint created".into(),
        organisation: Some(org.into()),
        body: format!(
            "{}<p>Deliveries to <code>{}</code> are signed with it (Standard Webhooks).</p>\
             <p><a href=\"/admin/orgs/{}/webhooks/{}\" id=\"done\">I have stored it: open the endpoint</a></p>",
            html::secret("Signing secret", data["secret"].as_str().unwrap_or_default()),
            value(&data["url"]),
            esc(org),
            esc(id)
        ),
    })
}

/// `GET /admin/orgs/{org}/webhooks/{id}`.
pub(super) async fn show(visit: &Visit<'_>) -> Result<View, ApiError> {
    let org = visit.param("org");
    endpoint(visit, org, &visit.caller(org)?, visit.param("id")).await
}

/// `POST /admin/orgs/{org}/webhooks/{id}/test`.
pub(super) async fn test(visit: &Visit<'_>) -> Result<View, ApiError> {
    let (org, id) = (visit.param("org"), visit.param("id"));
    visit.call(&visit.caller(org)?, Method::POST, &format!("/webhooks/{id}/test"), None, Value::Null).await?;
    Ok(back(org, id, "test-sent"))
}

/// `POST /admin/orgs/{org}/webhooks/{id}/replay`: every failed delivery since a time.
pub(super) async fn replay(visit: &Visit<'_>) -> Result<View, ApiError> {
    let (org, id) = (visit.param("org"), visit.param("id"));
    let since = visit.field("since").unwrap_or_default();
    // A `datetime-local` field has no zone and may lack seconds: read it as UTC.
    let since = match since.len() {
        16 => format!("{since}:00Z"),
        19 => format!("{since}Z"),
        _ => since.to_owned(),
    };
    let body = json!({ "since": since });
    visit.call(&visit.caller(org)?, Method::POST, &format!("/webhooks/{id}/replay"), None, body).await?;
    Ok(back(org, id, "replayed"))
}

/// `POST /admin/orgs/{org}/webhooks/{id}/deliveries/{delivery}/replay`.
pub(super) async fn replay_delivery(visit: &Visit<'_>) -> Result<View, ApiError> {
    let (org, id, delivery) = (visit.param("org"), visit.param("id"), visit.param("delivery"));
    let path = format!("/webhooks/{id}/deliveries/{delivery}/replay");
    visit.call(&visit.caller(org)?, Method::POST, &path, None, Value::Null).await?;
    Ok(back(org, id, "replayed"))
}

/// Back to endpoint `id` of `org`, with a notice.
fn back(org: &str, id: &str, notice: &str) -> View {
    View::Redirect(format!("/admin/orgs/{org}/webhooks/{id}?notice={notice}"))
}

async fn list(visit: &Visit<'_>, org: &str, caller: &crate::edge::partner::auth::Caller) -> Result<View, ApiError> {
    let listed = visit.get(caller, "/webhooks", Some("limit=100".into())).await?;
    let rows: Vec<Row> = listed
        .as_array()
        .into_iter()
        .flatten()
        .map(|endpoint| {
            let id = endpoint["id"].as_str().unwrap_or_default();
            let state = match (endpoint["active"].as_bool(), endpoint["failing_since"].is_null()) {
                (Some(false), _) => "disabled",
                (_, false) => "failing",
                _ => "active",
            };
            vec![
                format!("<a href=\"/admin/orgs/{}/webhooks/{}\">{}</a>", esc(org), esc(id), value(&endpoint["url"])),
                value(&endpoint["events"]),
                format!("<span class=\"status {state}\">{state}</span>"),
                value(&endpoint["description"]),
                time(&endpoint["created_at"]),
            ]
        })
        .collect();
    let create = html::form(
        &format!("/admin/orgs/{org}/webhooks"),
        &visit.csrf(),
        &format!(
            "{}{}{}",
            html::input(
                "url",
                "URL",
                "url",
                "",
                "required maxlength=\"2000\" placeholder=\"https://partner.example/hooks\""
            ),
            html::input("events", "Events (comma-separated, * for all)", "text", "*", "required"),
            html::input("description", "Description", "text", "", "maxlength=\"500\""),
        ),
        "Create endpoint",
        "stack create",
    );
    let table =
        html::table("endpoints", &["URL", "Events", "State", "Description", "Created"], &rows, "No endpoint yet.");
    Ok(View::Page {
        title: "Webhooks".into(),
        organisation: Some(org.into()),
        body: format!("<section><h2>New endpoint</h2>{create}</section><section><h2>Endpoints</h2>{table}</section>"),
    })
}

async fn endpoint(
    visit: &Visit<'_>,
    org: &str,
    caller: &crate::edge::partner::auth::Caller,
    id: &str,
) -> Result<View, ApiError> {
    let csrf = visit.csrf();
    let endpoint = visit.get(caller, &format!("/webhooks/{id}"), None).await?;
    let deliveries = visit.get(caller, &format!("/webhooks/{id}/deliveries"), Some("limit=50".into())).await?;
    let attempts = visit.get(caller, &format!("/webhooks/{id}/attempts"), Some("limit=100".into())).await?;
    let base = format!("/admin/orgs/{org}/webhooks/{id}");
    let facts: Vec<Row> = [
        ("URL", "url"),
        ("Events", "events"),
        ("Active", "active"),
        ("Ordered", "ordered"),
        ("Failing since", "failing_since"),
        ("Disabled because", "disabled_reason"),
        ("Description", "description"),
    ]
    .iter()
    .map(|(name, key)| vec![esc(name), value(&endpoint[key])])
    .collect();
    let delivery_rows: Vec<Row> = deliveries
        .as_array()
        .into_iter()
        .flatten()
        .map(|d| {
            let delivery = d["id"].as_str().unwrap_or_default();
            let status = d["status"].as_str().unwrap_or_default();
            vec![
                value(&d["event"]),
                format!("<code>{}</code>", value(&d["event_id"])),
                format!("<span class=\"status {0}\">{0}</span>", esc(status)),
                value(&d["attempts"]),
                value(&d["last_status_code"]),
                time(&d["created_at"]),
                html::button(&format!("{base}/deliveries/{delivery}/replay"), &csrf, "Replay"),
            ]
        })
        .collect();
    let attempt_rows: Vec<Row> = attempts
        .as_array()
        .into_iter()
        .flatten()
        .map(|a| {
            let snippet: String = a["response"].as_str().unwrap_or_default().chars().take(200).collect();
            vec![
                format!("<code>{}</code>", value(&a["event_id"])),
                value(&a["attempt"]),
                value(&a["outcome"]),
                value(&a["status_code"]),
                format!("{} ms", value(&a["latency_ms"])),
                format!("<code class=\"snippet\">{}</code>", esc(&snippet)),
                value(&a["error"]),
                time(&a["attempted_at"]),
            ]
        })
        .collect();
    let actions = format!(
        "<div class=\"actions\">{}{}</div>",
        html::form(&format!("{base}/test"), &csrf, "", "Send test event", "inline"),
        html::form(
            &format!("{base}/replay"),
            &csrf,
            &html::input("since", "Failed since (UTC)", "datetime-local", "", "required step=\"1\""),
            "Replay failed",
            "inline replay-since"
        ),
    );
    Ok(View::Page {
        title: format!("Webhook endpoint {}", endpoint["url"].as_str().unwrap_or_default()),
        organisation: Some(org.into()),
        body: format!(
            "{}{actions}<div id=\"delivery-log\" data-refresh><section><h2>Deliveries</h2>{}</section>\
             <section><h2>Attempts</h2>{}</section></div>",
            html::table("endpoint", &["", ""], &facts, ""),
            html::table(
                "deliveries",
                &["Event", "Event id", "Status", "Attempts", "Last status", "Created", ""],
                &delivery_rows,
                "No delivery yet."
            ),
            html::table(
                "attempts",
                &["Event id", "#", "Outcome", "Status", "Latency", "Response", "Error", "At"],
                &attempt_rows,
                "No attempt yet."
            ),
        ),
    })
}
