//! The console's HTML: escaping, the page around every view, and the few pieces views repeat
//! (tables, one-button forms, values read from the partner API's JSON). Everything a view
//! writes from data goes through [`esc`].

use std::fmt::Write;

use serde_json::Value;

/// `text` safe inside HTML text and quoted attributes.
pub(super) fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

/// A JSON value as escaped text: strings bare, `null` as a dash, the rest as JSON.
pub(super) fn value(v: &Value) -> String {
    match v {
        Value::Null => "–".into(),
        Value::String(s) => esc(s),
        Value::Array(items) if items.iter().all(Value::is_string) => {
            esc(&items.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(", "))
        }
        other => esc(&other.to_string()),
    }
}

/// A timestamp as `2026-11-29 22:15:04` (UTC), or a dash; as HTML.
pub(super) fn time(v: &Value) -> String {
    esc(&time_text(v))
}

/// A timestamp as `2026-11-29 22:15:04` (UTC), or a dash; as text.
pub(super) fn time_text(v: &Value) -> String {
    match v.as_str() {
        Some(t) => t.get(..19).unwrap_or(t).replace('T', " "),
        None => "–".into(),
    }
}

/// One row of a table: cells already HTML.
pub(super) type Row = Vec<String>;

/// A table with `headers`, or `empty` when there are no rows; scrolls sideways on a phone.
pub(super) fn table(id: &str, headers: &[&str], rows: &[Row], empty: &str) -> String {
    if rows.is_empty() {
        return format!("<p class=\"empty\" id=\"{id}\">{}</p>", esc(empty));
    }
    let mut out = format!("<div class=\"scroll\"><table id=\"{id}\"><thead><tr>");
    for header in headers {
        let _ = write!(out, "<th>{}</th>", esc(header));
    }
    out.push_str("</tr></thead><tbody>");
    for row in rows {
        out.push_str("<tr>");
        for (cell, header) in row.iter().zip(headers) {
            let _ = write!(out, "<td data-label=\"{}\">{cell}</td>", esc(header));
        }
        out.push_str("</tr>");
    }
    out.push_str("</tbody></table></div>");
    out
}

/// A form that POSTs to `action` with the CSRF token and `fields` (HTML).
pub(super) fn form(action: &str, csrf: &str, fields: &str, button: &str, class: &str) -> String {
    format!(
        "<form method=\"post\" action=\"{}\" class=\"{class}\"><input type=\"hidden\" name=\"csrf\" value=\"{}\">{fields}<button type=\"submit\">{}</button></form>",
        esc(action),
        esc(csrf),
        esc(button)
    )
}

/// A form that is only a button (an action on one row).
pub(super) fn button(action: &str, csrf: &str, label: &str) -> String {
    form(action, csrf, "", label, "inline")
}

/// A labelled text input.
pub(super) fn input(name: &str, label: &str, kind: &str, value: &str, extra: &str) -> String {
    format!("<label>{}<input name=\"{name}\" type=\"{kind}\" value=\"{}\" {extra}></label>", esc(label), esc(value))
}

/// A labelled select of `options` (value, text), `selected` chosen.
pub(super) fn select(name: &str, label: &str, options: &[(&str, &str)], selected: &str) -> String {
    let mut out = format!("<label>{}<select name=\"{name}\">", esc(label));
    for (value, text) in options {
        let chosen = if *value == selected { " selected" } else { "" };
        let _ = write!(out, "<option value=\"{}\"{chosen}>{}</option>", esc(value), esc(text));
    }
    out.push_str("</select></label>");
    out
}

/// A secret shown this once, with a copy button and the warning.
pub(super) fn secret(label: &str, secret: &str) -> String {
    format!(
        "<section class=\"secret\" id=\"secret\"><h2>{}</h2><p class=\"warning\">Copy it now: it is shown this once and \
         stored only as a hash. Whoever holds it acts as this credential.</p><div class=\"copy\"><code id=\"secret-value\">{}</code>\
         <button type=\"button\" data-copy=\"secret-value\">Copy</button></div></section>",
        esc(label),
        esc(secret)
    )
}

/// Where the navigation leads, and what the page is about.
pub(super) struct Frame<'a> {
    /// Page title.
    pub title: &'a str,
    /// The signed-in operator's address.
    pub operator: &'a str,
    /// The organisation the page belongs to, if any.
    pub organisation: Option<&'a str>,
    /// Whether the operator sees every organisation (and the bus).
    pub platform: bool,
    /// CSRF token of the session.
    pub csrf: &'a str,
    /// A one-line notice (fixed texts only, never request data).
    pub notice: Option<&'a str>,
}

/// A whole page: head, navigation, notice and `body`.
pub(super) fn page(frame: &Frame<'_>, body: &str) -> String {
    let mut nav = String::new();
    if let Some(org) = frame.organisation {
        let org = esc(org);
        for (path, label) in [
            ("integrations", "Integrations"),
            ("keys", "API keys"),
            ("webhooks", "Webhooks"),
            ("vehicles", "Fleet"),
            ("chargers", "Chargers"),
            ("profile", "Compatibility"),
        ] {
            let _ = write!(nav, "<a href=\"/admin/orgs/{org}/{path}\">{label}</a>");
        }
    }
    if frame.platform {
        nav.push_str("<a href=\"/admin/orgs\">Organisations</a>");
    }
    nav.push_str("<a href=\"/admin/bus\">Bus</a>");
    let organisation = frame.organisation.map(|o| format!("<span class=\"org\">{}</span>", esc(o))).unwrap_or_default();
    let notice =
        frame.notice.map(|n| format!("<p class=\"notice\" role=\"status\">{}</p>", esc(n))).unwrap_or_default();
    let sign_out = form("/admin/sign-out", frame.csrf, "", "Sign out", "inline sign-out");
    document(
        frame.title,
        &format!(
            "<header><a class=\"brand\" href=\"/admin\">voltbus</a>{organisation}<nav>{nav}</nav>\
             <span class=\"who\">{}</span>{sign_out}</header><main><h1>{}</h1>{notice}{body}</main>",
            esc(frame.operator),
            esc(frame.title)
        ),
    )
}

/// The HTML document around `body`: no script or style but the console's own files.
pub(super) fn document(title: &str, body: &str) -> String {
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{} · voltbus console</title><link rel=\"stylesheet\" href=\"/admin/assets/console.css\">\
         <script src=\"/admin/assets/console.js\" defer></script></head><body>{body}</body></html>",
        esc(title)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_covers_text_and_attributes() {
        assert_eq!(esc("<a href=\"x\">'&'</a>"), "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;");
        assert_eq!(value(&serde_json::json!(["a<b", "c"])), "a&lt;b, c");
        assert_eq!(time(&serde_json::json!("2026-11-29T22:15:04.123Z")), "2026-11-29 22:15:04");
    }
}
