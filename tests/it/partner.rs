//! The partner REST edge end to end: real HTTP into `voltbus::start` on PostgreSQL and RabbitMQ
//! (a virtual host per test), key commands through the integrations consumers.

use std::net::SocketAddr;
use std::time::Duration;

use sea_orm::{ConnectionTrait, Database, Statement};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::private_postgres::PrivatePostgres;
use crate::support::{drop_vhost, embedded_settings, fresh_postgres_database, fresh_vhost, request, unique};

const BASE: &str = "/api/partner/v1";

/// A running platform on its own database and virtual host, with one admin key per organisation.
pub(crate) struct Platform {
    running: voltbus::Running,
    pub(crate) settings: voltbus::Settings,
    database_url: String,
}

impl Platform {
    pub(crate) async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    pub(crate) async fn start_with(adjust: impl FnOnce(&mut voltbus::Settings)) -> Self {
        Self::start_as(voltbus::Role::All, adjust).await
    }

    /// A platform of one process in `role`.
    pub(crate) async fn start_as(role: voltbus::Role, adjust: impl FnOnce(&mut voltbus::Settings)) -> Self {
        let database_url = fresh_postgres_database().await;
        let mut settings = embedded_settings();
        settings.database.url = Some(database_url.clone().into());
        settings.amqp.url = Some(fresh_vhost().into());
        adjust(&mut settings);
        let running = voltbus::start_as(settings.clone(), role).await.unwrap();
        Self { running, settings, database_url }
    }

    pub(crate) fn addr(&self) -> SocketAddr {
        self.running.addr
    }

    /// A new organisation and its admin key (as the operator's command line makes it).
    pub(crate) async fn organisation(&self) -> (String, String) {
        let tenant = unique("org");
        let (key, _) = voltbus::create_admin_key(&self.settings, &tenant, "admin").await.unwrap();
        (tenant, key)
    }

    pub(crate) async fn call(
        &self,
        key: &str,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value, http::HeaderMap) {
        let body = body.map(|b| b.to_string());
        request(self.addr(), method, &format!("{BASE}{path}"), &[("x-partner-api-key", key)], body.as_deref()).await
    }

    /// A call acting on `subaccount` (`X-Subaccount-Id`).
    pub(crate) async fn call_in(
        &self,
        key: &str,
        subaccount: Uuid,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value, http::HeaderMap) {
        let body = body.map(|b| b.to_string());
        let headers = [("x-partner-api-key", key), ("x-subaccount-id", &subaccount.to_string())];
        request(self.addr(), method, &format!("{BASE}{path}"), &headers, body.as_deref()).await
    }

    pub(crate) async fn create_key(&self, admin: &str, body: Value) -> (String, String) {
        let (status, created, _) = self.call(admin, "POST", "/api-keys", Some(body)).await;
        assert_eq!(status, 201, "{created}");
        (created["data"]["id"].as_str().unwrap().to_owned(), created["data"]["key"].as_str().unwrap().to_owned())
    }

    pub(crate) async fn sql(&self, query: &str) -> Vec<sea_orm::QueryResult> {
        let db = Database::connect(&self.database_url).await.unwrap();
        let rows = db.query_all_raw(Statement::from_string(db.get_database_backend(), query.to_owned())).await.unwrap();
        db.close().await.unwrap();
        rows
    }

    /// Stops voltbus and starts it again on the same database and broker.
    pub(crate) async fn restart(self) -> Self {
        self.running.stop().await.unwrap();
        let running = voltbus::start(self.settings.clone()).await.unwrap();
        Self { running, settings: self.settings, database_url: self.database_url }
    }

    /// A second voltbus process on the same database, broker and NATS (stopped when dropped).
    pub(crate) async fn sibling(&self) -> Self {
        self.sibling_as(voltbus::Role::All).await
    }

    /// A second voltbus process, in `role`, on the same database, broker and NATS.
    pub(crate) async fn sibling_as(&self, role: voltbus::Role) -> Self {
        let running = voltbus::start_as(self.settings.clone(), role).await.unwrap();
        Self { running, settings: self.settings.clone(), database_url: self.database_url.clone() }
    }

    /// Stops this process alone, leaving the broker to its siblings.
    pub(crate) async fn stop_process(self) {
        self.running.stop().await.unwrap();
    }

    pub(crate) async fn stop(self) {
        let vhost = self.settings.amqp.url.clone().unwrap();
        self.running.stop().await.unwrap();
        drop_vhost(&vhost);
    }
}

pub(crate) fn error_code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or_else(|| panic!("no error envelope: {body}"))
}

#[tokio::test]
async fn a_key_lives_through_create_disable_regenerate_and_delete() {
    let platform = Platform::start().await;
    let (_, admin) = platform.organisation().await;

    // No key, a malformed one, an unknown one: 401 with the envelope and a request id.
    let (status, body, headers) = request(platform.addr(), "GET", &format!("{BASE}/me"), &[], None).await;
    assert_eq!((status, error_code(&body)), (401, "UNAUTHORIZED"));
    assert_eq!(headers["x-request-id"].to_str().unwrap(), body["meta"]["request_id"]);
    assert_eq!(platform.call("nonsense", "GET", "/me", None).await.0, 401);
    assert_eq!(platform.call("vb_pk_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "GET", "/me", None).await.0, 401);

    let (id, key) = platform.create_key(&admin, json!({ "name": "reader" })).await;
    assert!(key.starts_with("vb_pk_") && key.len() == 38, "{key}");
    let (status, me, headers) = platform.call(&key, "GET", "/me", None).await;
    assert_eq!(status, 200, "{me}");
    assert_eq!(
        me["data"]["key"]["permissions"],
        json!(["vehicles:read", "rides:read", "customers:read", "zones:read", "pricing:read"])
    );
    assert_eq!(me["data"]["key"]["rate_limits"], json!({ "per_minute": 60, "per_hour": 1000, "per_day": 10000 }));
    assert!(me["data"]["key"].get("key").is_none(), "the secret is shown at creation only");
    assert_eq!(headers["x-ratelimit-limit"], "60");
    assert_eq!(headers["x-ratelimit-remaining"], "59");

    // Read-only keys cannot manage keys.
    let (status, body, _) = platform.call(&key, "GET", "/api-keys", None).await;
    assert_eq!((status, error_code(&body)), (403, "FORBIDDEN"));
    // And an admin cannot grant what it does not hold (here: a reader tries through PATCH of itself
    // is refused before that, as it is not an admin).
    let (status, _, _) = platform.call(&key, "POST", "/api-keys", Some(json!({ "name": "x" }))).await;
    assert_eq!(status, 403);

    // Disabled: 401 at once; enabled again: back.
    let (status, body, _) =
        platform.call(&admin, "PATCH", &format!("/api-keys/{id}"), Some(json!({ "active": false }))).await;
    assert_eq!((status, body["data"]["active"].clone()), (200, json!(false)), "{body}");
    let (status, body, _) = platform.call(&key, "GET", "/me", None).await;
    assert_eq!((status, error_code(&body)), (401, "UNAUTHORIZED"));
    platform.call(&admin, "PATCH", &format!("/api-keys/{id}"), Some(json!({ "active": true }))).await;
    assert_eq!(platform.call(&key, "GET", "/me", None).await.0, 200);

    // Regenerated: the old key is dead at once, the new one works.
    let (status, regenerated, _) = platform.call(&admin, "POST", &format!("/api-keys/{id}/regenerate"), None).await;
    assert_eq!(status, 200, "{regenerated}");
    let new_key = regenerated["data"]["key"].as_str().unwrap().to_owned();
    assert_ne!(new_key, key);
    assert_eq!(platform.call(&key, "GET", "/me", None).await.0, 401);
    assert_eq!(platform.call(&new_key, "GET", "/me", None).await.0, 200);

    // Expired keys are refused.
    let past_soon = (chrono::Utc::now() + chrono::Duration::seconds(2)).to_rfc3339();
    let (status, body, _) =
        platform.call(&admin, "PATCH", &format!("/api-keys/{id}"), Some(json!({ "expires_at": past_soon }))).await;
    assert_eq!(status, 200, "{body}");
    tokio::time::sleep(Duration::from_millis(2_100)).await;
    assert_eq!(platform.call(&new_key, "GET", "/me", None).await.0, 401);
    platform.call(&admin, "PATCH", &format!("/api-keys/{id}"), Some(json!({ "expires_at": null }))).await;
    assert_eq!(platform.call(&new_key, "GET", "/me", None).await.0, 200);

    // Only the prefix and the SHA-256 are stored; no secret anywhere in the database.
    let rows = platform.sql(&format!("SELECT display_prefix, key_hash FROM api_keys WHERE id = '{id}'")).await;
    let prefix: String = rows[0].try_get("", "display_prefix").unwrap();
    let hash: String = rows[0].try_get("", "key_hash").unwrap();
    assert_eq!(prefix, &new_key[..12]);
    assert_eq!(hash, publishers::api_keys::KeyHash::of(&new_key).to_hex());
    for secret in [&key, &new_key, &admin] {
        for table in ["api_keys", "api_requests", "idempotency_keys", "inbox", "outbox"] {
            let found = platform.sql(&format!("SELECT 1 FROM {table} t WHERE t::text LIKE '%{}%'", &secret[6..])).await;
            assert!(found.is_empty(), "a secret is stored in {table}");
        }
    }

    // No key changes itself, not even an admin key.
    let (_, me, _) = platform.call(&admin, "GET", "/me", None).await;
    let admin_id = me["data"]["key"]["id"].as_str().unwrap().to_owned();
    for (method, path, body) in [
        ("PATCH", format!("/api-keys/{admin_id}"), Some(json!({ "rate_limits": { "per_minute": 100000 } }))),
        ("POST", format!("/api-keys/{admin_id}/regenerate"), None),
        ("DELETE", format!("/api-keys/{admin_id}"), None),
    ] {
        let (status, answer, _) = platform.call(&admin, method, &path, body).await;
        assert_eq!((status, error_code(&answer)), (403, "FORBIDDEN"), "{method} {path}");
    }

    // Deleted: 401, and gone from the API.
    let (status, body, _) = platform.call(&admin, "DELETE", &format!("/api-keys/{id}"), None).await;
    assert_eq!((status, body["data"]["deleted"].clone()), (200, json!(true)), "{body}");
    assert_eq!(platform.call(&new_key, "GET", "/me", None).await.0, 401);
    let (status, body, _) = platform.call(&admin, "GET", &format!("/api-keys/{id}"), None).await;
    assert_eq!((status, error_code(&body)), (404, "NOT_FOUND"));
    platform.stop().await;
}

/// Every operation the OpenAPI document lists, with the access it says it needs: a key without it
/// gets 403 `FORBIDDEN`, a key with just it does not. As routes guarded by the seed's permissions
/// arrive, they are covered here without a new line.
#[tokio::test]
async fn every_route_refuses_a_key_without_its_permission_and_admits_one_with_it() {
    let platform = Platform::start().await;
    let (_, admin) = platform.organisation().await;
    let (_, document, _) = request(platform.addr(), "GET", &format!("{BASE}/openapi.json"), &[], None).await;
    let all = publishers::permissions::ALL.map(|p| serde_json::to_value(p).unwrap());
    let (_, not_admin) = platform.create_key(&admin, json!({ "name": "all but admin", "bundle": "ALL_ACCESS" })).await;
    let mut checked = 0;
    for (path, operations) in document["paths"].as_object().unwrap() {
        for (method, operation) in operations.as_object().unwrap() {
            let path = path.replace("{id}", &Uuid::now_v7().to_string());
            let method = method.to_uppercase();
            let body = operation.get("requestBody").map(|_| json!({ "name": "probe" }));
            let (without, with) = match &operation["x-required-access"] {
                access if access == "public" || access == "key" => continue,
                // An integration's capability: no key has one (the integrations tests cover them).
                access if access.is_string() && !all.contains(access) && access != "admin" => continue,
                access if access == "admin" => (not_admin.clone(), admin.clone()),
                permission => {
                    let others: Vec<_> = all.iter().filter(|p| *p != permission).collect();
                    let (_, without) =
                        platform.create_key(&admin, json!({ "name": "without", "permissions": others })).await;
                    let (_, with) =
                        platform.create_key(&admin, json!({ "name": "with", "permissions": [permission] })).await;
                    (without, with)
                }
            };
            let (status, refused, _) = platform.call(&without, &method, &path, body.clone()).await;
            assert_eq!((status, error_code(&refused)), (403, "FORBIDDEN"), "{method} {path} without its access");
            let (status, admitted, _) = platform.call(&with, &method, &path, body).await;
            assert!(status != 403 && status != 401, "{method} {path} with its access: {status} {admitted}");
            checked += 1;
        }
    }
    assert!(checked >= 7, "only {checked} guarded operations in the document");
    platform.stop().await;
}

/// Two edges on one database and broker: a key disabled through one is refused by the other at
/// once (its `api_key.changed` event evicts it), long before the other's cache would expire.
#[tokio::test]
async fn a_key_disabled_through_one_edge_is_refused_by_another_at_once() {
    let first = Platform::start().await;
    let mut settings = first.settings.clone();
    settings.partner.key_cache_ttl = Duration::from_secs(600);
    settings.data_dir = crate::support::scratch_dir();
    let second = voltbus::start(settings).await.unwrap();
    let (_, admin) = first.organisation().await;
    let (id, key) = first.create_key(&admin, json!({ "name": "roaming" })).await;
    let me = |addr| {
        let key = key.clone();
        async move { request(addr, "GET", &format!("{BASE}/me"), &[("x-partner-api-key", &key)], None).await.0 }
    };
    assert_eq!(me(second.addr).await, 200, "the second edge has the key cached now");
    let (status, _, _) =
        first.call(&admin, "PATCH", &format!("/api-keys/{id}"), Some(json!({ "active": false }))).await;
    assert_eq!(status, 200);
    let mut refused = false;
    for _ in 0..50 {
        if me(second.addr).await == 401 {
            refused = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(refused, "the second edge still accepts a disabled key 2.5 s later");
    second.stop().await.unwrap();
    first.stop().await;
}

#[tokio::test]
async fn every_request_is_logged_through_the_bus_and_counted_per_key() {
    let platform = Platform::start().await;
    let (tenant, admin) = platform.organisation().await;
    let (id, key) = platform.create_key(&admin, json!({ "name": "logged" })).await;
    let mut request_ids = Vec::new();
    for path in ["/me", "/me", "/api-keys"] {
        let (_, body, _) = platform.call(&key, "GET", path, None).await;
        request_ids.push(body["meta"]["request_id"].as_str().unwrap().to_owned());
    }
    // The log is written by the integrations consumers after the edge's next flush.
    let mut logged = Value::Null;
    for _ in 0..100 {
        logged = platform.call(&admin, "GET", &format!("/api-keys/{id}/requests"), None).await.1;
        // Page and total are two queries: wait until both see the three rows.
        if logged["pagination"]["total"] == 3 && logged["data"].as_array().is_some_and(|d| d.len() == 3) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(logged["pagination"]["total"], 3, "{logged}");
    let entries = logged["data"].as_array().unwrap();
    let statuses: Vec<_> = entries.iter().map(|e| e["status"].as_u64().unwrap()).collect();
    assert_eq!(statuses, [403, 200, 200], "newest first");
    assert_eq!(entries[0]["route"], "/api/partner/v1/api-keys");
    assert_eq!(entries[1]["route"], "/api/partner/v1/me");
    assert_eq!(entries[0]["key_prefix"], &key[..12]);
    let mut logged_ids: Vec<String> = entries.iter().map(|e| e["request_id"].as_str().unwrap().to_owned()).collect();
    logged_ids.reverse();
    assert_eq!(logged_ids, request_ids);
    let (_, with_usage, _) = platform.call(&admin, "GET", &format!("/api-keys/{id}"), None).await;
    assert_eq!(with_usage["data"]["usage"]["requests_today"], 3, "{with_usage}");
    assert!(with_usage["data"]["last_used_at"].is_string());

    // A batch delivered twice (the edge retries a publish under its first message id) is
    // recorded and counted once: the request log has no unique request id, the inbox is the guard.
    let batch = schemas::Envelope::new(
        schemas::TenantId::new(tenant).unwrap(),
        "voltbus/test",
        schemas::integrations::RecordApiRequests {
            requests: vec![schemas::integrations::ApiRequestRecord {
                request_id: "req_redelivered".into(),
                key_id: Some(id.parse().unwrap()),
                integration_id: None,
                key_prefix: Some(key[..12].to_owned()),
                method: "GET".into(),
                route: "/api/partner/v1/me".into(),
                subaccount_id: None,
                status: 200,
                latency_us: 100,
                received_at: chrono::Utc::now(),
            }],
        },
    );
    // Nothing else in the integrations queue from here: the edge's last flush is handled when
    // the count of handled deliveries stood still for a second (the edge flushes every 200 ms,
    // and only SQL is read from now on, which the edge does not log).
    let queue = schemas::routing::work_queue(schemas::Recipient::RequestLog.name());
    let mut handled = bus::metrics::consumed_so_far(&queue);
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let now = bus::metrics::consumed_so_far(&queue);
        if now == handled {
            break;
        }
        handled = now;
    }
    let amqp = bus::amqp::AmqpConnection::connect(platform.settings.amqp.url.as_deref().unwrap(), "redeliverer")
        .await
        .unwrap();
    let routing_key = schemas::routing::command_key_of::<schemas::integrations::RecordApiRequests>();
    for _ in 0..2 {
        amqp.publish(schemas::routing::COMMANDS_EXCHANGE, &routing_key, &batch).await.unwrap();
    }
    amqp.close().await;
    for _ in 0..100 {
        if bus::metrics::consumed_so_far(&queue) >= handled + 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(bus::metrics::consumed_so_far(&queue), handled + 2, "both deliveries handled, nothing else");
    let count = |rows: Vec<sea_orm::QueryResult>| rows[0].try_get_by_index::<i64>(0).unwrap();
    let redelivered = platform.sql("SELECT COUNT(*) FROM api_requests WHERE request_id = 'req_redelivered'").await;
    assert_eq!(count(redelivered), 1);
    let usage = platform.sql(&format!("SELECT SUM(requests)::int8 FROM api_key_usage WHERE key_id = '{id}'")).await;
    assert_eq!(count(usage), 4, "the three calls and the redelivered one, once");
    platform.stop().await;
}

#[tokio::test]
async fn each_window_refuses_with_429_and_says_when_to_retry() {
    let platform = Platform::start().await;
    let (_, admin) = platform.organisation().await;
    for (window, limits) in [
        ("minute", json!({ "per_minute": 3 })),
        ("hour", json!({ "per_minute": 60, "per_hour": 3 })),
        ("day", json!({ "per_minute": 60, "per_hour": 1000, "per_day": 3 })),
    ] {
        let (_, key) = platform.create_key(&admin, json!({ "name": window, "rate_limits": limits })).await;
        for remaining in (0..3).rev() {
            let (status, _, headers) = platform.call(&key, "GET", "/me", None).await;
            assert_eq!(status, 200);
            assert_eq!(headers["x-ratelimit-remaining"], remaining.to_string().as_str(), "{window}");
            assert_eq!(headers["x-ratelimit-limit"], "3", "{window}");
            assert!(headers["ratelimit"].to_str().unwrap().starts_with(&format!("\"{window}\";r={remaining};t=")));
            assert!(headers.contains_key("ratelimit-policy") && headers.contains_key("x-ratelimit-reset"));
        }
        let (status, body, headers) = platform.call(&key, "GET", "/me", None).await;
        assert_eq!((status, error_code(&body)), (429, "RATE_LIMIT_EXCEEDED"), "{window}");
        assert_eq!(body["error"]["details"]["window"], window);
        assert_eq!(body["error"]["details"]["limit"], 3);
        let retry_after = body["error"]["details"]["retry_after"].as_u64().unwrap();
        assert!(retry_after >= 1);
        assert_eq!(headers["retry-after"], retry_after.to_string().as_str());
        assert_eq!(headers["x-ratelimit-remaining"], "0");
    }
    platform.stop().await;
}

/// An address that keeps presenting unknown keys gets 429 without a database lookup; keys the
/// edge already knows keep working from the same address.
#[tokio::test]
async fn guessing_keys_is_refused_but_known_keys_keep_working() {
    let platform = Platform::start_with(|settings| settings.partner.failed_authentications_per_minute = 5).await;
    let (_, admin) = platform.organisation().await;
    assert_eq!(platform.call(&admin, "GET", "/me", None).await.0, 200);
    let mut statuses = Vec::new();
    for _ in 0..8 {
        let guess = format!("vb_pk_{}", Uuid::now_v7().simple());
        statuses.push(platform.call(&guess[..38], "GET", "/me", None).await.0);
    }
    // Five failures allowed; the sixth uses the allowance up; from then on, no lookups.
    assert_eq!(statuses, [401, 401, 401, 401, 401, 401, 429, 429]);
    let (_, refused, headers) = platform.call("vb_pk_zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz", "GET", "/me", None).await;
    assert_eq!(error_code(&refused), "RATE_LIMIT_EXCEEDED");
    assert!(headers.contains_key("retry-after"));
    assert_eq!(platform.call(&admin, "GET", "/me", None).await.0, 200, "a known key is still served");
    platform.stop().await;
}

#[tokio::test]
async fn an_idempotent_post_replays_its_first_answer_and_refuses_another_body() {
    let platform = Platform::start().await;
    let (tenant, admin) = platform.organisation().await;
    let headers =
        |idempotency_key: &'static str| [("x-partner-api-key", admin.as_str()), ("idempotency-key", idempotency_key)];
    let body = json!({ "name": "once", "permissions": ["rides:read"] }).to_string();
    let path = format!("{BASE}/api-keys");
    let (status, first, _) = request(platform.addr(), "POST", &path, &headers("create-1"), Some(&body)).await;
    assert_eq!(status, 201, "{first}");
    let (status, again, replay_headers) =
        request(platform.addr(), "POST", &path, &headers("create-1"), Some(&body)).await;
    assert_eq!(status, 201);
    assert_eq!(replay_headers["idempotent-replayed"], "true");
    assert_eq!(again["data"]["id"], first["data"]["id"]);
    assert_eq!(again["meta"], first["meta"], "the first answer, as it was");
    assert!(first["data"]["key"].is_string() && again["data"]["key"].is_null(), "a secret is shown once, not replayed");

    let other = json!({ "name": "twice" }).to_string();
    let (status, refused, _) = request(platform.addr(), "POST", &path, &headers("create-1"), Some(&other)).await;
    assert_eq!((status, error_code(&refused)), (422, "IDEMPOTENCY_KEY_REUSED"));

    // One key was made, and the bus saw one command for it.
    let (_, listed, _) = platform.call(&admin, "GET", "/api-keys", None).await;
    assert_eq!(listed["pagination"]["total"], 2, "the admin key and one more: {listed}");
    let commands =
        platform.sql(&format!("SELECT 1 FROM inbox WHERE tenant = '{tenant}' AND type_name = 'api_key.create'")).await;
    assert_eq!(commands.len(), 1);

    // PATCH and DELETE take keys too.
    let id = first["data"]["id"].as_str().unwrap();
    let rename = json!({ "name": "renamed" }).to_string();
    let key_path = format!("{BASE}/api-keys/{id}");
    let (s1, b1, _) = request(platform.addr(), "PATCH", &key_path, &headers("rename-1"), Some(&rename)).await;
    let (s2, b2, h2) = request(platform.addr(), "PATCH", &key_path, &headers("rename-1"), Some(&rename)).await;
    assert_eq!((s1, s2), (200, 200));
    assert_eq!(b1, b2);
    assert_eq!(h2["idempotent-replayed"], "true");
    let (s1, _, _) = request(platform.addr(), "DELETE", &key_path, &headers("delete-1"), None).await;
    let (s2, b2, _) = request(platform.addr(), "DELETE", &key_path, &headers("delete-1"), None).await;
    assert_eq!((s1, s2), (200, 200), "the replay answers as the first time, not 404: {b2}");
    platform.stop().await;
}

#[tokio::test]
async fn no_organisation_reaches_another_ones_keys() {
    let platform = Platform::start().await;
    let (_, admin_a) = platform.organisation().await;
    let (_, admin_b) = platform.organisation().await;
    let (id_a, key_a) = platform.create_key(&admin_a, json!({ "name": "a's" })).await;

    for (method, path, body) in [
        ("GET", format!("/api-keys/{id_a}"), None),
        ("GET", format!("/api-keys/{id_a}/requests"), None),
        ("PATCH", format!("/api-keys/{id_a}"), Some(json!({ "active": false }))),
        ("POST", format!("/api-keys/{id_a}/regenerate"), None),
        ("DELETE", format!("/api-keys/{id_a}"), None),
    ] {
        let (status, answer, _) = platform.call(&admin_b, method, &path, body).await;
        assert_eq!((status, error_code(&answer)), (404, "NOT_FOUND"), "{method} {path}");
    }
    let (_, listed, _) = platform.call(&admin_b, "GET", "/api-keys", None).await;
    assert_eq!(listed["pagination"]["total"], 1, "b sees its own admin key only: {listed}");
    assert!(!listed.to_string().contains(&id_a));
    // A's key is untouched.
    let (status, me, _) = platform.call(&key_a, "GET", "/me", None).await;
    assert_eq!((status, me["data"]["key"]["active"].clone()), (200, json!(true)));

    // Subaccounts: a global key acts on the subaccounts it lists, a subaccount key on its own.
    let (allowed, other) = (Uuid::now_v7(), Uuid::now_v7());
    let (_, global) = platform
        .create_key(&admin_a, json!({ "name": "g", "scope": "global", "allowed_subaccount_ids": [allowed] }))
        .await;
    let (_, single) = platform.create_key(&admin_a, json!({ "name": "s", "subaccount_id": allowed })).await;
    let me_on = |key: String, subaccount: String| {
        let addr = platform.addr();
        async move {
            let headers = [("x-partner-api-key", key.as_str()), ("x-subaccount-id", subaccount.as_str())];
            request(addr, "GET", &format!("{BASE}/me"), &headers, None).await
        }
    };
    let (status, me, _) = me_on(global.clone(), allowed.to_string()).await;
    assert_eq!((status, me["data"]["subaccount_id"].clone()), (200, json!(allowed)));
    let (status, refused, _) = me_on(global.clone(), other.to_string()).await;
    assert_eq!((status, error_code(&refused)), (403, "FORBIDDEN"));
    assert_eq!(me_on(single.clone(), other.to_string()).await.0, 403);
    // The organisation's admin lists none: every subaccount is its own.
    let (status, me, _) = me_on(admin_a.clone(), other.to_string()).await;
    assert_eq!((status, me["data"]["subaccount_id"].clone()), (200, json!(other)));
    let (status, me, _) = platform.call(&single, "GET", "/me", None).await;
    assert_eq!((status, me["data"]["subaccount_id"].clone()), (200, json!(allowed)));
    let (status, refused, _) = me_on(global, "not-a-uuid".into()).await;
    assert_eq!((status, refused["error"]["details"]["field"].clone()), (422, json!("x-subaccount-id")));
    platform.stop().await;
}

#[tokio::test]
async fn bad_input_gets_a_typed_error_naming_the_field_never_a_500() {
    let platform = Platform::start().await;
    let (_, admin) = platform.organisation().await;
    let addr = platform.addr();
    let auth = [("x-partner-api-key", admin.as_str())];
    let post =
        |body: &'static str| async move { request(addr, "POST", &format!("{BASE}/api-keys"), &auth, Some(body)).await };
    let cases: Vec<(&str, u16, Option<&str>)> = vec![
        ("{\"name\":", 400, None),
        ("[1, 2]", 422, None),
        ("{\"name\": \"x\", \"colour\": \"red\"}", 422, Some("colour")),
        ("{\"name\": 7}", 422, Some("name")),
        ("{}", 422, None),
        ("{\"name\": \"\"}", 422, Some("name")),
        ("{\"name\": \"x\", \"rate_limits\": {\"per_minute\": 0}}", 422, Some("rate_limits.per_minute")),
        ("{\"name\": \"x\", \"rate_limits\": {\"per_minute\": -1}}", 422, Some("rate_limits.per_minute")),
        ("{\"name\": \"x\", \"permissions\": [\"vehicles:delete\"]}", 422, Some("permissions[0]")),
        ("{\"name\": \"x\", \"expires_at\": \"2001-01-01T00:00:00Z\"}", 422, Some("expires_at")),
        ("{\"name\": \"x\", \"scope\": \"subaccount\"}", 422, Some("subaccount_id")),
        ("{\"name\": \"x\", \"permissions\": [], \"bundle\": \"ALL_ACCESS\"}", 422, Some("bundle")),
    ];
    for (body, expected, field) in cases {
        let (status, answer, _) = post(body).await;
        assert_eq!(status, expected, "{body}: {answer}");
        assert_eq!(error_code(&answer), "VALIDATION_ERROR", "{body}");
        if let Some(field) = field {
            assert_eq!(answer["error"]["details"]["field"], field, "{body}: {answer}");
        }
    }
    let huge = format!("{{\"name\": \"{}\"}}", "x".repeat(100_000));
    let (status, answer, _) = request(addr, "POST", &format!("{BASE}/api-keys"), &auth, Some(&huge)).await;
    assert_eq!((status, error_code(&answer)), (413, "PAYLOAD_TOO_LARGE"));
    let text = [auth[0], ("content-type", "text/plain")];
    let (status, answer, _) =
        request(addr, "POST", &format!("{BASE}/api-keys"), &text, Some("{\"name\": \"x\"}")).await;
    assert_eq!((status, answer["error"]["details"]["field"].clone()), (415, json!("content-type")));
    for (method, path, expected) in [
        ("GET", "/nowhere", 404),
        ("PUT", "/api-keys", 405),
        ("GET", "/api-keys?limit=1000", 422),
        ("GET", "/api-keys?colour=red", 422),
        ("GET", "/api-keys/not-a-uuid", 404),
        ("GET", "/me?x=1", 422),
    ] {
        let (status, answer, _) = request(addr, method, &format!("{BASE}{path}"), &auth, None).await;
        assert_eq!(status, expected, "{method} {path}: {answer}");
        assert!(answer["error"]["code"].is_string() && answer["meta"]["request_id"].is_string());
    }
    platform.stop().await;
}

/// schemathesis (pinned, from PyPI: `scripts/schemathesis.sh`) against the running edge: every
/// documented operation of every front door, valid and invalid requests, no 5xx, and every answer
/// as documented. The partner API with its credentials (an integration's token for the capability
/// routes, an admin key for the rest), the app's routes with a phone's session, and the routes
/// that check their own credential (callbacks, token endpoints, operations) with none.
#[tokio::test]
async fn schemathesis_finds_no_server_error_and_no_answer_off_the_schema() {
    // Paystack (the test's own) is configured, so billing answers from it rather than 503.
    let paystack = crate::replenish::paystack(std::sync::Arc::default()).await;
    let platform = Platform::start_with(move |s| {
        s.paystack.base_url = Some(format!("http://{paystack}"));
        s.paystack.secret_key = "sk_test_secret".into();
        s.mobile.dev_code = Some("0000".into());
    })
    .await;
    let (tenant, admin) = platform.organisation().await;
    let limits = json!({ "per_minute": 100_000, "per_hour": 1_000_000, "per_day": 10_000_000 });
    let (_, key) = platform
        .create_key(
            &admin,
            json!({ "name": "schemathesis", "admin": true, "bundle": "ALL_ACCESS", "rate_limits": limits }),
        )
        .await;
    let workdir = crate::support::scratch_dir();
    // Each run in a folder of its own whose schemathesis.toml it reads: its cache and any
    // schemathesis.toml of the checkout stay out of it; where credentials are given, an operation
    // that answers only 401/403 fails the run.
    let config = |name: &str, fail_on_missing_auth: bool| {
        let warnings = if fail_on_missing_auth { "[warnings]\nfail-on = [\"missing_auth\"]\n" } else { "" };
        let folder = workdir.join(name);
        std::fs::create_dir_all(&folder).unwrap();
        std::fs::write(folder.join("schemathesis.toml"), format!("[cache]\nenabled = false\n\n{warnings}")).unwrap();
        folder
    };
    let (guarded, open) = (config("guarded", true), config("open", false));
    let edge = format!("http://{}", platform.addr());
    let (_, document, _) = request(platform.addr(), "GET", "/openapi.json", &[], None).await;
    // Every operation of the edge's document, by who may call it.
    let mut mobile = Vec::new();
    let mut own = Vec::new();
    for (path, operations) in document["paths"].as_object().unwrap() {
        for operation in operations.as_object().unwrap().values() {
            let id = operation["operationId"].as_str().unwrap().to_owned();
            match operation["x-required-access"].as_str() {
                _ if path.starts_with(BASE) => {}
                Some("session") => mobile.push(id),
                // A WebSocket's upgrade is the OCPP suites' to test.
                _ if path.starts_with("/ocpp/") => {}
                _ => own.push(id),
            }
        }
    }
    let run = async |document: &str, base: &str, folder: &std::path::Path, headers: &[String], filter: &[String]| {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/schemathesis.sh");
        let output = tokio::process::Command::new("bash")
            .arg(script)
            .args(["run", document, "--url", base])
            .args(headers.iter().flat_map(|header| ["-H", header.as_str()]))
            .args(["--max-examples", "25", "--seed", "1", "--generation-database", "none", "--workers", "1"])
            .args(filter)
            .args([
                "--checks",
                "not_a_server_error,response_schema_conformance,status_code_conformance,content_type_conformance",
            ])
            .args(["--phases", "examples,coverage,fuzzing", "--no-color"])
            .current_dir(folder)
            .output()
            .await
            .expect("bash runs scripts/schemathesis.sh");
        let report =
            format!("{}\n{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
        assert!(output.status.success(), "schemathesis failed:\n{report}");
        println!("{report}");
    };
    let only = |flag: &str, ids: &[String]| ids.iter().flat_map(|id| [flag.to_owned(), id.clone()]).collect::<Vec<_>>();

    // The app's routes, with a phone's session.
    let app = crate::charging::App::sign_in(&platform, &tenant, "+97688110022").await;
    let session = vec![format!("Authorization: Bearer {}", app.token()), format!("X-Tenant: {tenant}")];
    run(&format!("{edge}/openapi.json"), &edge, &guarded, &session, &only("--include-operation-id", &mobile)).await;

    let base = format!("http://{}{BASE}", platform.addr());
    let partner = format!("{base}/openapi.json");
    // Only an integration's machine token reaches these (tests/it/integrations.rs).
    let capability_routes: Vec<String> = [
        "exchangeExternalIdentity",
        "listSelectableWorkshops",
        "openMaintenanceTicket",
        "listMaintenanceTickets",
        "openDriverTicket",
        "listDriverTickets",
    ]
    .map(str::to_owned)
    .to_vec();
    // Those with an ALL_ACCESS integration's token; then every other operation with the admin
    // key (after them: its run may well revoke or regenerate whatever keys it finds).
    let (_, client_id, secret) = crate::integrations::create(&platform, &admin, "ALL_ACCESS", json!([])).await;
    let token = crate::integrations::token(&platform, &client_id, &secret).await.unwrap();
    let bearer = [format!("Authorization: Bearer {token}")];
    run(&partner, &base, &guarded, &bearer, &only("--include-operation-id", &capability_routes)).await;
    let admin_key = [format!("X-Partner-Api-Key: {key}")];
    run(&partner, &base, &guarded, &admin_key, &only("--exclude-operation-id", &capability_routes)).await;
    // The routes that check their own credential, or need none: last, as their wrong guesses use up
    // the address's failed authentications, after which a key not in the cache is refused (429).
    run(
        &format!("{edge}/openapi.json"),
        &edge,
        &open,
        &[format!("X-Tenant: {tenant}")],
        &only("--include-operation-id", &own),
    )
    .await;
    println!(
        "schemathesis ran {} operations of the app, {} of other doors and the partner API's whole document",
        mobile.len(),
        own.len()
    );
    platform.stop().await;
}

/// A tool of the suite's (`scripts/NAME ARGS`): its report, and whether it passed.
async fn tool(script: &str, args: &[&std::ffi::OsStr]) -> (bool, String) {
    let output = tokio::process::Command::new("bash")
        .arg(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts").join(script))
        .args(args)
        .output()
        .await
        .expect("bash runs the script");
    let report = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    (output.status.success(), report)
}

/// One table routes every front door and generates the edge's OpenAPI document: every door's
/// operations are in it, tagged with their door, and the OpenAPI Initiative's validator accepts it
/// (and the partner API's own document, served where partners have always read it, and the copy
/// in `docs/openapi.yaml`); every example in them passes its schema (the `jsonschema` package).
#[tokio::test]
async fn every_front_door_is_in_one_openapi_document_the_standard_validator_accepts() {
    let platform = Platform::start().await;
    let workdir = crate::support::scratch_dir();
    // The edge's document in the repository, and the portal's where the EVCare seed names it.
    for written in ["docs/openapi.yaml", "functions/src/config/integrations.openapi.yaml"] {
        let yaml = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(written);
        let (valid, report) = tool("schemathesis.sh", &["--validate".as_ref(), yaml.as_os_str()]).await;
        assert!(valid, "{written} is not a valid OpenAPI document:\n{report}");
        println!("{written}: {report}");
    }
    for (name, path) in [("edge", "/openapi.json".to_owned()), ("partner", format!("{BASE}/openapi.json"))] {
        let (status, document, _) = request(platform.addr(), "GET", &path, &[], None).await;
        assert_eq!(status, 200, "{path}");
        let file = workdir.join(format!("{name}.json"));
        std::fs::write(&file, document.to_string()).unwrap();
        let (valid, report) = tool("schemathesis.sh", &["--validate".as_ref(), file.as_os_str()]).await;
        assert!(valid, "{path} is not a valid OpenAPI document:\n{report}");
        println!("{path}: {report}");
        let (valid, report) = tool("peers.sh", &["openapi_examples.py".as_ref(), file.as_os_str()]).await;
        assert!(valid, "{path}: examples off their schemas:\n{report}");
        println!("{path}: {report}");
        for operations in document["paths"].as_object().unwrap().values() {
            for (method, operation) in operations.as_object().unwrap() {
                assert!(operation["security"].is_array(), "{method} {path}: no security requirement");
            }
        }
        let schemes = &document["components"]["securitySchemes"];
        assert_eq!(schemes["oauth2"]["flows"]["clientCredentials"]["tokenUrl"], "/oauth/token");
        for error in ["Unauthorized", "Forbidden", "NotFound", "Conflict", "ValidationError", "TooManyRequests"] {
            assert!(document["components"]["responses"][error]["content"].is_object(), "{error}");
        }
        assert!(document["components"]["responses"]["TooManyRequests"]["headers"]["X-RateLimit-Remaining"].is_object());
        if name == "edge" {
            let mut doors: Vec<&str> = document["paths"]
                .as_object()
                .unwrap()
                .values()
                .flat_map(|operations| operations.as_object().unwrap().values())
                .map(|operation| operation["tags"][0].as_str().unwrap())
                .collect();
            doors.sort_unstable();
            doors.dedup();
            assert_eq!(doors, ["marketplace", "mobile", "ocpp", "operations", "partner", "portal", "providers"]);
            for (path, method) in [
                ("/api/v1/devices/{id}/start", "post"),
                ("/v1/integrations/auth/client-token", "post"),
                ("/api/partner/v1/rides", "post"),
                ("/api/v1/payments/qpay/callback", "get"),
            ] {
                assert!(document["paths"][path][method]["operationId"].is_string(), "{method} {path} is missing");
            }
        }
    }
    platform.stop().await;
}

/// A partner's client generated from the served document by `openapi-python-client` (PyPI,
/// `tests/peers/generated_client.py`) runs a customer, a wallet credit and a ride end to end: the
/// document is complete and exact enough for a generator, not only for a validator.
#[tokio::test]
async fn a_python_client_generated_from_the_document_runs_a_customer_a_credit_and_a_ride() {
    let platform = Platform::start().await;
    let (_, admin) = platform.organisation().await;
    let limits = json!({ "per_minute": 10_000, "per_hour": 100_000, "per_day": 1_000_000 });
    let (_, key) = platform
        .create_key(
            &admin,
            json!({ "name": "generated client", "admin": true, "bundle": "ALL_ACCESS", "rate_limits": limits }),
        )
        .await;
    let (status, document, _) = request(platform.addr(), "GET", &format!("{BASE}/openapi.json"), &[], None).await;
    assert_eq!(status, 200);
    let workdir = crate::support::scratch_dir();
    let file = workdir.join("partner.json");
    std::fs::write(&file, document.to_string()).unwrap();
    let base = format!("http://{}{BASE}", platform.addr());
    let fleet = Uuid::now_v7().to_string();
    let edge = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/openapi.yaml");
    let args: [&std::ffi::OsStr; 7] = [
        "generated_client.py".as_ref(),
        file.as_os_str(),
        workdir.as_os_str(),
        base.as_ref(),
        key.as_ref(),
        fleet.as_ref(),
        edge.as_os_str(),
    ];
    let (ran, report) = tool("peers.sh", &args).await;
    assert!(ran, "the generated client failed:\n{report}");
    println!("{report}");
    let summary: Value = serde_json::from_str(report.lines().rev().find(|l| l.starts_with('{')).unwrap()).unwrap();
    assert_eq!((&summary["ride_status"], &summary["payment_status"]), (&json!("ended"), &json!("paid")), "{summary}");
    let total = summary["total_cents"].as_i64().unwrap();
    assert!(total >= 125, "an unlock and a started minute: {summary}");
    assert_eq!(summary["balance_cents"].as_i64().unwrap(), 2_000 - total, "{summary}");
    // What the client did is what the API shows.
    let ride = summary["ride_id"].as_str().unwrap();
    let (status, read, _) = platform.call(&key, "GET", &format!("/rides/{ride}"), None).await;
    assert_eq!((status, &read["data"]["status"]), (200, &json!("ended")), "{read}");
    platform.stop().await;
}

/// The AsyncAPI 3.0 document, served beside the OpenAPI one and kept in `docs/asyncapi.yaml`,
/// passes the AsyncAPI Initiative's parser (`@asyncapi/parser` from npm, pinned in
/// `tests/asyncapi/package-lock.json`), every example passing its schema; it names every transport.
#[tokio::test]
async fn the_asyncapi_document_of_every_message_passes_the_asyncapi_parser() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let checker = root.join("tests/asyncapi");
    if !checker.join("node_modules/@asyncapi/parser").is_dir() {
        // scripts/test.sh installs it first; a bare `cargo nextest` run installs it here.
        let installed = tokio::process::Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
            .current_dir(&checker)
            .status()
            .await
            .expect("npm runs");
        assert!(installed.success(), "npm ci in tests/asyncapi failed");
    }
    let platform = Platform::start().await;
    let (status, document, _) = request(platform.addr(), "GET", "/asyncapi.json", &[], None).await;
    assert_eq!(status, 200);
    assert_eq!(document["asyncapi"], "3.0.0");
    let servers: Vec<&str> =
        document["servers"].as_object().unwrap().values().map(|s| s["protocol"].as_str().unwrap()).collect();
    assert_eq!(servers.len(), 3);
    for protocol in ["amqp", "nats", "https"] {
        assert!(servers.contains(&protocol), "{protocol} in {servers:?}");
    }
    let file = crate::support::scratch_dir().join("asyncapi.json");
    std::fs::write(&file, document.to_string()).unwrap();
    for checked in [file, root.join("docs/asyncapi.yaml")] {
        let output = tokio::process::Command::new("node")
            .arg(checker.join("validate.mjs"))
            .arg(&checked)
            .current_dir(&checker)
            .output()
            .await
            .expect("node runs");
        let report = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
        assert!(output.status.success(), "{} is not a valid AsyncAPI document:\n{report}", checked.display());
        println!("{}: {report}", checked.display());
    }
    platform.stop().await;
}

/// The partner pipeline's own cost of an authenticated GET, with its key cached: no database
/// statement (pg_stat_statements on a PostgreSQL of the test's own shows no read of the keys) and
/// no broker round trip per request (the request log leaves in batches: a few commands for two
/// hundred requests, and a few inserts).
#[tokio::test]
async fn an_authenticated_get_with_its_key_cached_makes_no_round_trip_of_its_own() {
    let postgres =
        PrivatePostgres::start_with(&["shared_preload_libraries=pg_stat_statements", "pg_stat_statements.track=all"]);
    let platform = Platform::start_with(|s| {
        s.database.url = Some(postgres.url().into());
        s.http.metrics_token = Some("hot-get".into());
    })
    .await;
    let db = Database::connect(postgres.url()).await.unwrap();
    let run = async |sql: &str| {
        db.query_all_raw(Statement::from_string(db.get_database_backend(), sql.to_owned())).await.unwrap()
    };
    run("CREATE EXTENSION IF NOT EXISTS pg_stat_statements").await;
    let (_, admin) = platform.organisation().await;
    let published = async || {
        let (_, body, _) = crate::support::request_bytes(
            platform.addr(),
            "GET",
            "/metrics",
            &[("authorization", "Bearer hot-get")],
            None,
        )
        .await;
        String::from_utf8(body.to_vec())
            .unwrap()
            .lines()
            .filter(|l| l.starts_with("voltbus_messages_published_total") && l.contains("voltbus.commands"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>()
    };
    let count = async |like: &str| -> i64 {
        let rows = run(&format!(
            "SELECT coalesce(sum(calls), 0)::bigint AS n FROM pg_stat_statements WHERE query ILIKE '{like}'"
        ))
        .await;
        rows[0].try_get("", "n").unwrap()
    };
    let key_reads = async || count("%FROM \"api_keys\"%").await + count("%FROM api_keys%").await;
    // The key read once, into the cache (the count sees that read), and the request log quiet again.
    run("SELECT pg_stat_statements_reset()").await;
    assert_eq!(platform.call(&admin, "GET", "/me", None).await.0, 200);
    assert!(key_reads().await >= 1, "the first call reads the key");
    tokio::time::sleep(Duration::from_millis(600)).await;
    let before = published().await;
    run("SELECT pg_stat_statements_reset()").await;
    for _ in 0..200 {
        assert_eq!(platform.call(&admin, "GET", "/me", None).await.0, 200);
    }
    // The request log flushes every 200 ms.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let commands = published().await - before;
    let key_reads = key_reads().await;
    let log_writes = count("%INSERT INTO \"api_requests\"%").await;
    println!("200 GETs: {key_reads} key reads, {commands} commands published, {log_writes} request-log inserts");
    assert_eq!(key_reads, 0, "a cached key is not read again");
    assert!(commands <= 10.0, "the request log went out {commands} times for 200 requests");
    assert!(log_writes <= 10, "{log_writes} request-log inserts for 200 requests");
    db.close().await.unwrap();
    platform.stop().await;
}
