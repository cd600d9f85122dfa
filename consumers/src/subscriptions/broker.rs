//! The broker's side of a subscription, through RabbitMQ's management API: the queue and its
//! bindings, and a user that may read that queue and nothing else (no configure, no write).
//! Every call is idempotent (PUT, or DELETE where a missing thing is fine), so a retried command
//! provisions the same things again.

use bytes::Bytes;
use outbound::Method;
use outbound::StatusCode;
use serde_json::{Value, json};
use url::Url;

/// Port of the management API when its URL is derived from the AMQP one.
pub const MANAGEMENT_PORT: u16 = 15672;

/// Longest wait for one answer of the management API.
const CALL_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Why the broker could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    /// The URLs cannot be used.
    #[error("broker management: {0}")]
    Config(String),
    /// The management API could not be reached.
    #[error("broker management unreachable: {0}")]
    Unreachable(String),
    /// It answered with an error.
    #[error("broker management answered {status} to {what}: {body}")]
    Refused {
        /// Its status.
        status: u16,
        /// What was asked.
        what: String,
        /// The start of its answer.
        body: String,
    },
}

/// RabbitMQ's management API, for one virtual host.
#[derive(Clone, Debug)]
pub struct BrokerAdmin {
    base: Url,
    authorization: String,
    vhost: String,
    client: outbound::Client,
    /// Members of each queue this makes (`amqp.quorum_size`); `None`: the broker's default.
    quorum_size: Option<u16>,
}

impl BrokerAdmin {
    /// The management API of the broker at `amqp_url` (its virtual host and credentials), at
    /// `management_url` or else the same host on port 15672 over HTTP, called with `client`.
    pub fn new(amqp_url: &str, management_url: Option<&str>, client: outbound::Client) -> Result<Self, BrokerError> {
        use base64::Engine as _;
        let amqp = Url::parse(amqp_url).map_err(|e| BrokerError::Config(format!("amqp url: {e}")))?;
        let vhost = match amqp.path().trim_start_matches('/') {
            "" => "/".to_owned(),
            path => percent_decoded(path)?,
        };
        let base = match management_url {
            Some(url) => Url::parse(url).map_err(|e| BrokerError::Config(format!("management url: {e}")))?,
            None => {
                let host = amqp.host_str().ok_or_else(|| BrokerError::Config("amqp url has no host".into()))?;
                Url::parse(&format!("http://{host}:{MANAGEMENT_PORT}/"))
                    .map_err(|e| BrokerError::Config(format!("management url: {e}")))?
            }
        };
        let (user, password) = match (base.username(), &amqp) {
            ("", amqp) => (percent_decoded(amqp.username())?, percent_decoded(amqp.password().unwrap_or_default())?),
            (user, _) => (percent_decoded(user)?, percent_decoded(base.password().unwrap_or_default())?),
        };
        let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        let mut base = base;
        // The credentials travel in the Authorization header, not in every URL.
        let _ = (base.set_username(""), base.set_password(None));
        Ok(Self { base, authorization: format!("Basic {token}"), vhost, client, quorum_size: None })
    }

    /// The same, its new queues made with `size` members.
    pub fn with_quorum_size(self, size: Option<u16>) -> Self {
        Self { quorum_size: size, ..self }
    }

    async fn call(&self, method: Method, segments: &[&str], body: Option<Value>) -> Result<StatusCode, BrokerError> {
        self.exchange(method, segments, body).await.map(|(status, _)| status)
    }

    /// One request; its status and, for a success, its body. A broker that does not answer within
    /// [`CALL_TIMEOUT`] is unreachable: the command is retried rather than holding its lane.
    async fn exchange(
        &self,
        method: Method,
        segments: &[&str],
        body: Option<Value>,
    ) -> Result<(StatusCode, Bytes), BrokerError> {
        let mut url = self.base.clone();
        url.path_segments_mut()
            .map_err(|()| BrokerError::Config("management url cannot take a path".into()))?
            .pop_if_empty()
            .push("api")
            .extend(segments);
        let what = format!("{method} {}", url.path());
        let unreachable = |e: outbound::Error| BrokerError::Unreachable(e.to_string());
        let response = self
            .client
            .request(method, url)
            .timeout(CALL_TIMEOUT)
            .header(outbound::header::AUTHORIZATION, &self.authorization)
            .header(outbound::header::CONTENT_TYPE, "application/json")
            .body(body.map(|b| b.to_string()).unwrap_or_default())
            .send()
            .await
            .map_err(unreachable)?;
        let status = response.status();
        let body = response.bytes().await.map_err(unreachable)?;
        if status.is_success() || status == StatusCode::NOT_FOUND {
            return Ok((status, body));
        }
        let body = String::from_utf8_lossy(&body[..body.len().min(300)]).into_owned();
        Err(BrokerError::Refused { status: status.as_u16(), what, body })
    }

    async fn must(&self, method: Method, segments: &[&str], body: Value) -> Result<(), BrokerError> {
        match self.call(method.clone(), segments, Some(body)).await? {
            StatusCode::NOT_FOUND => Err(BrokerError::Refused {
                status: 404,
                what: format!("{method} /api/{}", segments.join("/")),
                body: "not found".into(),
            }),
            _ => Ok(()),
        }
    }

    /// Declares `queue` (durable, quorum), and a user `username` (with that password hash) who
    /// may read `queue` and do nothing else; [`BrokerAdmin::bind_exactly`] binds it.
    pub async fn provision(&self, queue: &str, username: &str, password_hash: &str) -> Result<(), BrokerError> {
        let vhost = self.vhost.as_str();
        self.declare(queue).await?;
        let user = json!({
            "password_hash": password_hash,
            "hashing_algorithm": "rabbit_password_hashing_sha256",
            "tags": "",
        });
        self.must(Method::PUT, &["users", username], user).await?;
        let read = format!("^{}$", queue.replace('.', "\\."));
        let permissions = json!({ "configure": "^$", "write": "^$", "read": read });
        self.must(Method::PUT, &["permissions", vhost, username], permissions).await
    }

    /// Declares `queue` (durable, quorum) unless the broker has it: one that exists keeps the
    /// arguments and members it was made with (declaring other arguments would be refused).
    async fn declare(&self, queue: &str) -> Result<(), BrokerError> {
        let path = ["queues", self.vhost.as_str(), queue];
        if self.call(Method::GET, &path, None).await? != StatusCode::NOT_FOUND {
            return Ok(());
        }
        let mut arguments = json!({ "x-queue-type": "quorum" });
        if let Some(size) = self.quorum_size {
            arguments["x-quorum-initial-group-size"] = size.into();
        }
        let declare = json!({ "durable": true, "auto_delete": false, "arguments": arguments });
        self.must(Method::PUT, &path, declare).await
    }

    /// Binds `queue` to the events exchange under exactly `keys`: the missing ones added first,
    /// then the others removed, so the queue never misses an event it may hold while it changes.
    /// A queue deleted behind voltbus's back is declared again first.
    pub async fn bind_exactly(&self, queue: &str, keys: &[String]) -> Result<(), BrokerError> {
        let vhost = self.vhost.as_str();
        self.declare(queue).await?;
        let exchange = schemas::routing::EVENTS_EXCHANGE;
        let (status, body) = self.exchange(Method::GET, &["queues", vhost, queue, "bindings"], None).await?;
        if status == StatusCode::NOT_FOUND {
            return Err(BrokerError::Refused {
                status: 404,
                what: format!("bindings of {queue}"),
                body: String::new(),
            });
        }
        let current: Vec<Binding> = serde_json::from_slice(&body).map_err(|e| BrokerError::Refused {
            status: status.as_u16(),
            what: format!("bindings of {queue}"),
            body: e.to_string(),
        })?;
        let current: Vec<&Binding> = current.iter().filter(|b| b.source == exchange).collect();
        for key in keys.iter().filter(|key| !current.iter().any(|b| &b.routing_key == *key)) {
            self.must(Method::POST, &["bindings", vhost, "e", exchange, "q", queue], json!({ "routing_key": key }))
                .await?;
        }
        for stale in current.iter().filter(|b| !keys.contains(&b.routing_key)) {
            let segments = ["bindings", vhost, "e", exchange, "q", queue, stale.properties_key.as_str()];
            self.call(Method::DELETE, &segments, None).await?;
        }
        Ok(())
    }

    /// Removes the user (its connections can no longer open) and the queue with its bindings.
    pub async fn remove(&self, queue: &str, username: &str) -> Result<(), BrokerError> {
        self.call(Method::DELETE, &["users", username], None).await?;
        self.call(Method::DELETE, &["queues", &self.vhost, queue], None).await.map(|_| ())
    }
}

/// A binding as the management API lists it.
#[derive(Debug, serde::Deserialize)]
struct Binding {
    source: String,
    routing_key: String,
    properties_key: String,
}

fn percent_decoded(text: &str) -> Result<String, BrokerError> {
    url::form_urlencoded::parse(format!("x={}", text.replace('+', "%2B")).as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .ok_or_else(|| BrokerError::Config(format!("cannot decode `{text}`")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_management_api_is_found_from_the_amqp_url() {
        let http = outbound::trusted("voltbus-test", CALL_TIMEOUT).unwrap();
        let admin = BrokerAdmin::new("amqp://guest:guest@127.0.0.1:5672/%2f", None, http.clone()).unwrap();
        assert_eq!((admin.base.as_str(), admin.vhost.as_str()), ("http://127.0.0.1:15672/", "/"));
        let admin =
            BrokerAdmin::new("amqp://u:p%40ss@rabbit:5672/vb_x", Some("https://admin:s@mgmt:443"), http).unwrap();
        assert_eq!(admin.vhost, "vb_x");
        assert_eq!(admin.authorization, "Basic YWRtaW46cw==");
    }
}
