//! Integrations (EVCare: clientId and clientSecret, access bundles, rotation, revocation) and
//! partner API keys (Levy: prefix, permissions, usage, regenerate, disable, delete). Secrets are
//! shown once, on the page that answers the action that made them, and never again.

use http::Method;
use serde_json::{Value, json};

use super::html::{self, Row, esc, time, value};
use super::{View, Visit};
use crate::edge::envelope::ApiError;

const BUNDLES: [(&str, &str); 4] = [
    ("FLEET_MANAGER_ACCESS", "Fleet manager"),
    ("CLIENT_ACCESS", "Client"),
    ("ORGANIZATION_ACCESS", "Organisation"),
    ("ALL_ACCESS", "All access"),
];

/// `GET /admin/orgs/{org}/integrations`.
pub(super) async fn list(visit: &Visit<'_>) -> Result<View, ApiError> {
    let org = visit.param("org");
    list_integrations(visit, org, &visit.caller(org)?).await
}

/// `POST /admin/orgs/{org}/integrations`: a new integration, its secret shown once.
pub(super) async fn create(visit: &Visit<'_>) -> Result<View, ApiError> {
    let org = visit.param("org");
    let body = json!({
        "name": visit.field("name").unwrap_or_default(),
        "bundle": visit.field("bundle").unwrap_or_default(),
    });
    let created = visit.call(&visit.caller(org)?, Method::POST, "/integrations", None, body).await?;
    Ok(shown_once(org, "Integration created", &created["data"], "clientSecret", "Client secret"))
}

/// `POST /admin/orgs/{org}/integrations/{id}/rotate`: a new secret, shown once.
pub(super) async fn rotate(visit: &Visit<'_>) -> Result<View, ApiError> {
    let (org, id) = (visit.param("org"), visit.param("id"));
    let path = format!("/integrations/{id}/rotate-secret");
    let rotated = visit.call(&visit.caller(org)?, Method::POST, &path, None, json!({})).await?;
    Ok(shown_once(org, "Client secret rotated", &rotated["data"], "clientSecret", "New client secret"))
}

/// `POST /admin/orgs/{org}/integrations/{id}/disable` or `…/enable`.
pub(super) async fn set_active(visit: &Visit<'_>, active: bool) -> Result<View, ApiError> {
    let (org, id) = (visit.param("org"), visit.param("id"));
    let action = if active { "enable" } else { "disable" };
    visit.call(&visit.caller(org)?, Method::POST, &format!("/integrations/{id}/{action}"), None, Value::Null).await?;
    Ok(notice(org, "integrations", if active { "enabled" } else { "disabled" }))
}

/// `POST /admin/orgs/{org}/integrations/{id}/revoke`.
pub(super) async fn revoke(visit: &Visit<'_>) -> Result<View, ApiError> {
    let (org, id) = (visit.param("org"), visit.param("id"));
    let reason = format!("revoked in the console by {}", visit.session.operator.email);
    let reason: String = reason.chars().take(200).collect();
    let body = json!({ "reason": reason });
    visit.call(&visit.caller(org)?, Method::POST, &format!("/integrations/{id}/revoke"), None, body).await?;
    Ok(notice(org, "integrations", "revoked"))
}

/// Back to the list of `section` of `org`, with a notice.
fn notice(org: &str, section: &str, notice: &str) -> View {
    View::Redirect(format!("/admin/orgs/{org}/{section}?notice={notice}"))
}

async fn list_integrations(
    visit: &Visit<'_>,
    org: &str,
    caller: &crate::edge::partner::auth::Caller,
) -> Result<View, ApiError> {
    let csrf = visit.csrf();
    let listed = visit.get(caller, "/integrations", Some("limit=100".into())).await?;
    let moments = periods(chrono::Utc::now());
    let database = &visit.console.api.database;
    let mut rows: Vec<Row> = Vec::new();
    for integration in listed.as_array().into_iter().flatten() {
        let id = integration["id"].as_str().unwrap_or_default();
        // No route says how much an integration is used: the request log does (indexed by it).
        let used = match uuid::Uuid::parse_str(id) {
            Ok(id) => readside::integrations::requests::integration_use(database, caller.tenant.as_str(), id, &moments)
                .await
                .map_err(crate::edge::envelope::db_error)?,
            Err(_) => Default::default(),
        };
        let count = |i: usize| used.since.get(i).copied().unwrap_or(0).to_string();
        let base = format!("/admin/orgs/{org}/integrations/{id}");
        let revoked = !integration["revokedAt"].is_null();
        let active = integration["active"].as_bool().unwrap_or(false);
        let status = if revoked {
            "revoked"
        } else if active {
            "active"
        } else {
            "disabled"
        };
        let actions = if revoked {
            String::new()
        } else {
            let toggle = if active { ("disable", "Disable") } else { ("enable", "Enable") };
            [
                html::button(&format!("{base}/rotate"), &csrf, "Rotate secret"),
                html::button(&format!("{base}/{}", toggle.0), &csrf, toggle.1),
                html::button(&format!("{base}/revoke"), &csrf, "Revoke"),
            ]
            .concat()
        };
        rows.push(vec![
            value(&integration["name"]),
            format!("<code>{}</code>", value(&integration["clientId"])),
            value(&integration["bundle"]),
            format!("<span class=\"status {status}\">{status}</span>"),
            time(&serde_json::to_value(used.last_used_at).unwrap_or_default()),
            count(0),
            count(1),
            count(2),
            time(&integration["previousSecretValidUntil"]),
            time(&integration["createdAt"]),
            actions,
        ]);
    }
    let bundles: Vec<(&str, &str)> = BUNDLES.to_vec();
    let create = html::form(
        &format!("/admin/orgs/{org}/integrations"),
        &csrf,
        &format!(
            "{}{}",
            html::input("name", "Name", "text", "", "required maxlength=\"200\""),
            html::select("bundle", "Access bundle", &bundles, "FLEET_MANAGER_ACCESS")
        ),
        "Create integration",
        "stack create",
    );
    let table = html::table(
        "integrations",
        &[
            "Name",
            "Client id",
            "Bundle",
            "Status",
            "Last used",
            "Today",
            "This week",
            "This month",
            "Old secret until",
            "Created",
            "",
        ],
        &rows,
        "No integration yet.",
    );
    Ok(View::Page {
        title: "Integrations".into(),
        organisation: Some(org.into()),
        body: format!(
            "<section><h2>New integration</h2>{create}</section><section><h2>All integrations</h2>{table}</section>"
        ),
    })
}

/// The starts (UTC) of today, this week (from Monday) and this month, as the key usage counts them.
fn periods(now: chrono::DateTime<chrono::Utc>) -> [chrono::DateTime<chrono::Utc>; 3] {
    use chrono::Datelike;
    let today = now.date_naive();
    let week = today - chrono::Days::new(u64::from(today.weekday().num_days_from_monday()));
    let month = today.with_day(1).unwrap_or(today);
    [today, week, month].map(|day| day.and_time(chrono::NaiveTime::MIN).and_utc())
}

/// The page that shows a secret this once, with what it belongs to.
fn shown_once(org: &str, title: &str, data: &Value, field: &str, label: &str) -> View {
    let secret = data[field].as_str().unwrap_or_default();
    let facts: Vec<Row> = [("Name", "name"), ("Id", "id"), ("Client id", "clientId"), ("Prefix", "prefix")]
        .iter()
        .filter(|(_, key)| !data[key].is_null())
        .map(|(name, key)| vec![esc(name), value(&data[key])])
        .collect();
    let back = if field == "key" { "keys" } else { "integrations" };
    View::Page {
        title: title.into(),
        organisation: Some(org.into()),
        body: format!(
            "{}{}<p><a href=\"/admin/orgs/{}/{back}\" id=\"done\">I have stored it</a></p>",
            html::secret(label, secret),
            html::table("facts", &["", ""], &facts, ""),
            esc(org)
        ),
    }
}

/// `GET /admin/orgs/{org}/keys`.
pub(super) async fn keys(visit: &Visit<'_>) -> Result<View, ApiError> {
    let org = visit.param("org");
    list_keys(visit, org, &visit.caller(org)?).await
}

/// `POST /admin/orgs/{org}/keys`: a new key, shown once.
pub(super) async fn create_key(visit: &Visit<'_>) -> Result<View, ApiError> {
    let org = visit.param("org");
    let mut body =
        json!({ "name": visit.field("name").unwrap_or_default(), "admin": visit.field("admin") == Some("on") });
    // Neither: the API's default permissions.
    let permissions = visit.all("permissions");
    match visit.field("bundle") {
        Some(bundle) if permissions.is_empty() => body["bundle"] = json!(bundle),
        _ if !permissions.is_empty() => body["permissions"] = json!(permissions),
        _ => {}
    }
    let created = visit.call(&visit.caller(org)?, Method::POST, "/api-keys", None, body).await?;
    Ok(shown_once(org, "API key created", &created["data"], "key", "API key"))
}

/// `POST /admin/orgs/{org}/keys/{id}/regenerate`: its new secret, shown once.
pub(super) async fn regenerate_key(visit: &Visit<'_>) -> Result<View, ApiError> {
    let (org, id) = (visit.param("org"), visit.param("id"));
    let path = format!("/api-keys/{id}/regenerate");
    let made = visit.call(&visit.caller(org)?, Method::POST, &path, None, Value::Null).await?;
    Ok(shown_once(org, "API key regenerated", &made["data"], "key", "New API key"))
}

/// `POST /admin/orgs/{org}/keys/{id}/disable` or `…/enable`.
pub(super) async fn set_key_active(visit: &Visit<'_>, active: bool) -> Result<View, ApiError> {
    let (org, id) = (visit.param("org"), visit.param("id"));
    let body = json!({ "active": active });
    visit.call(&visit.caller(org)?, Method::PATCH, &format!("/api-keys/{id}"), None, body).await?;
    Ok(notice(org, "keys", if active { "enabled" } else { "disabled" }))
}

/// `POST /admin/orgs/{org}/keys/{id}/delete`.
pub(super) async fn delete_key(visit: &Visit<'_>) -> Result<View, ApiError> {
    let (org, id) = (visit.param("org"), visit.param("id"));
    visit.call(&visit.caller(org)?, Method::DELETE, &format!("/api-keys/{id}"), None, Value::Null).await?;
    Ok(notice(org, "keys", "deleted"))
}

async fn list_keys(
    visit: &Visit<'_>,
    org: &str,
    caller: &crate::edge::partner::auth::Caller,
) -> Result<View, ApiError> {
    let csrf = visit.csrf();
    let listed = visit.get(caller, "/api-keys", Some("limit=100".into())).await?;
    let mut rows: Vec<Row> = Vec::new();
    for key in listed.as_array().into_iter().flatten() {
        let id = key["id"].as_str().unwrap_or_default();
        // The list has no usage; each key's own answer does (a page of keys, a query each).
        let key = visit.get(caller, &format!("/api-keys/{id}"), None).await?;
        let base = format!("/admin/orgs/{org}/keys/{id}");
        let active = key["active"].as_bool().unwrap_or(false);
        let toggle = if active { ("disable", "Disable") } else { ("enable", "Enable") };
        let permissions = if key["admin"] == true { "admin".to_owned() } else { value(&key["permissions"]) };
        rows.push(vec![
            value(&key["name"]),
            format!("<code>{}…</code>", value(&key["prefix"])),
            permissions,
            if active { "active".into() } else { "disabled".into() },
            time(&key["last_used_at"]),
            value(&key["usage"]["requests_today"]),
            value(&key["usage"]["requests_this_week"]),
            value(&key["usage"]["requests_this_month"]),
            [
                html::button(&format!("{base}/regenerate"), &csrf, "Regenerate"),
                html::button(&format!("{base}/{}", toggle.0), &csrf, toggle.1),
                html::button(&format!("{base}/delete"), &csrf, "Delete"),
            ]
            .concat(),
        ]);
    }
    let checkboxes: String = crate::permissions::ALL
        .iter()
        .filter_map(|p| serde_json::to_value(p).ok()?.as_str().map(str::to_owned))
        .map(|name| {
            format!(
                "<label class=\"check\"><input type=\"checkbox\" name=\"permissions\" value=\"{0}\">{0}</label>",
                esc(&name)
            )
        })
        .collect();
    let mut bundles = vec![("", "— or permissions below —")];
    bundles.extend(BUNDLES);
    let create = html::form(
        &format!("/admin/orgs/{org}/keys"),
        &csrf,
        &format!(
            "{}{}<fieldset><legend>Permissions</legend>{checkboxes}</fieldset><label class=\"check\"><input type=\"checkbox\" name=\"admin\">Organisation admin (manages keys)</label>",
            html::input("name", "Name", "text", "", "required maxlength=\"100\""),
            html::select("bundle", "Access bundle", &bundles, ""),
        ),
        "Create key",
        "stack create",
    );
    let table = html::table(
        "keys",
        &["Name", "Prefix", "Permissions", "Status", "Last used", "Today", "This week", "This month", ""],
        &rows,
        "No key yet.",
    );
    Ok(View::Page {
        title: "API keys".into(),
        organisation: Some(org.into()),
        body: format!("<section><h2>New key</h2>{create}</section><section><h2>All keys</h2>{table}</section>"),
    })
}
