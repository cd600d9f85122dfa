//! The chargers' front door: OCPP-J over WebSocket at `/ocpp/{chargerId}`, versions 1.6
//! (`ocpp1.6`) and 2.0.1 (`ocpp2.0.1`) negotiated at the upgrade, security profile 1 (HTTP Basic
//! with the charger's own password; profile 2 is the same behind the TLS proxy).
//!
//! What a charger reports becomes the bus messages the NATS charger path carries
//! (`charger.status_notification` on `….chargers.{id}.status`, `charger.meter_values` on
//! `….meter`, both stored by JetStream before the charger gets its CALLRESULT), so the charger and
//! charging consumers take it unchanged. Remote commands (`charger.remote_command` on
//! `….chargers.{id}.commands`) reach whichever process holds the charger's socket: every process
//! listens on the one wildcard subject and keeps those of its own sockets.
//!
//! Layout: `rpc` (OCPP-J frames and CALLERROR codes), `connection` (one socket's loop), `v16` and
//! `v201` (each version's messages and what they become), `registry` (the sockets this process
//! holds, and the remote commands that reach them).

mod connection;
mod registry;
mod rpc;
mod v16;
mod v201;

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use bus::nats::NatsConnection;
use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use schemas::TenantId;
use sea_orm::DatabaseConnection;
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use uuid::Uuid;

use crate::edge::envelope::{self, ApiError};
use crate::edge::router::{Access, Door, Doors, Found, Handler, Returns, Route, param, schema_of};
pub(crate) use registry::Registry;

/// Where chargers connect; the charger's id follows.
pub const OCPP_BASE: &str = "/ocpp";

/// The OCPP versions spoken, as their WebSocket subprotocols name them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Version {
    /// OCPP 1.6 (JSON): `ocpp1.6`.
    #[serde(rename = "1.6")]
    V16,
    /// OCPP 2.0.1: `ocpp2.0.1`.
    #[serde(rename = "2.0.1")]
    V201,
}

impl Version {
    /// The WebSocket subprotocol.
    pub const fn subprotocol(self) -> &'static str {
        match self {
            Version::V16 => "ocpp1.6",
            Version::V201 => "ocpp2.0.1",
        }
    }

    /// The versions the upgrade agrees to, the newest first.
    pub const SPOKEN: &[Version] = &[Version::V201, Version::V16];

    /// The version a client's `Sec-WebSocket-Protocol` list asks for: the newest we speak.
    fn negotiate(offered: &str) -> Option<Version> {
        let offered: Vec<&str> = offered.split(',').map(str::trim).collect();
        Self::SPOKEN.iter().copied().find(|version| offered.contains(&version.subprotocol()))
    }
}

/// `[ocpp]`: how chargers are paced.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OcppSettings {
    /// Seconds between a charging charger's meter samples, set at its boot (the EVM seed's
    /// `CHARGING` comes every 2 to 5 s).
    pub meter_interval_seconds: u32,
    /// Seconds between heartbeats a charger is told at boot.
    pub heartbeat_interval_seconds: u32,
    /// Seconds a charger has to answer one of our CALLs.
    pub call_timeout_seconds: u64,
}

impl Default for OcppSettings {
    fn default() -> Self {
        Self { meter_interval_seconds: 3, heartbeat_interval_seconds: 60, call_timeout_seconds: 30 }
    }
}

/// The OCPP door of this process: the sockets it holds, the bus they report to.
pub struct Ocpp {
    database: DatabaseConnection,
    nats: NatsConnection,
    /// Where the door records which process holds a charger's socket.
    commands: Arc<crate::edge::commands::CommandBus>,
    settings: OcppSettings,
    registry: Registry,
    /// This process, as the console shows who holds a socket.
    node: String,
}

impl Ocpp {
    /// The door, reporting through `nats`, checking passwords in `database`, recording
    /// connections through the partner API's command bus; it starts listening for remote
    /// commands to its chargers.
    pub async fn start(
        database: DatabaseConnection,
        nats: NatsConnection,
        api: &crate::edge::partner::PartnerApi,
        settings: OcppSettings,
        node: String,
    ) -> Result<Arc<Self>, bus::BusError> {
        let commands = Arc::clone(&api.bus);
        let door = Arc::new(Self { database, nats, commands, settings, registry: Registry::default(), node });
        registry::follow_commands(Arc::clone(&door)).await?;
        Ok(door)
    }

    /// Closes every socket (`1001 Going Away`, so chargers reconnect to another process) and
    /// waits up to `grace` for them to go.
    pub async fn close(&self, grace: Duration) {
        self.registry.close(grace).await;
    }
}

/// A connected charger.
#[derive(Clone, Debug)]
pub(crate) struct Charger {
    pub id: Uuid,
    pub tenant: TenantId,
    pub version: Version,
}

/// The OCPP door's one route.
pub(crate) fn routes() -> Vec<Route> {
    vec![Route {
        door: Door::Ocpp,
        method: http::Method::GET,
        path: format!("{OCPP_BASE}/{{chargerId}}"),
        operation: "connectCharger",
        summary: "A charger's OCPP-J WebSocket: `Sec-WebSocket-Protocol` ocpp2.0.1 or ocpp1.6, HTTP Basic with the \
                  charger's id and OCPP password; answers 101 Switching Protocols.",
        access: Access::Own,
        body: None,
        status: 101,
        returns: Returns::Bare(schema_of::<serde_json::Value>),
        handler: Handler::Own(|doors, request, found| Box::pin(upgrade(doors, request, found))),
    }]
}

/// Checks the handshake and the charger's password, answers 101 and hands the socket to its loop.
async fn upgrade(doors: &Doors<'_>, mut request: Request<Incoming>, found: Found<'_>) -> Response<Full<Bytes>> {
    let refuse = |error: ApiError| envelope::error_response(error, doors.request_id);
    let Some(door) = doors.ocpp else {
        return refuse(ApiError::unavailable("chargers connect where nats.url is set"));
    };
    let Ok(charger_id) = param(&found.params, "chargerId").parse::<Uuid>() else {
        return refuse(ApiError::not_found("no such charger"));
    };
    let headers = request.headers();
    let has = |name: header::HeaderName, token: &str| {
        headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .any(|v| v.split(',').any(|part| part.trim().eq_ignore_ascii_case(token)))
    };
    let key = headers.get(header::SEC_WEBSOCKET_KEY).map(|key| derive_accept_key(key.as_bytes()));
    let (Some(accept), true, true, true) = (
        key,
        has(header::UPGRADE, "websocket"),
        has(header::CONNECTION, "upgrade"),
        has(header::SEC_WEBSOCKET_VERSION, "13"),
    ) else {
        let mut error = ApiError::malformed("connect with a WebSocket upgrade (version 13)");
        error.status = StatusCode::UPGRADE_REQUIRED;
        error.headers.push((header::UPGRADE, HeaderValue::from_static("websocket")));
        return refuse(error);
    };
    let offered = headers.get(header::SEC_WEBSOCKET_PROTOCOL).and_then(|v| v.to_str().ok()).unwrap_or_default();
    let Some(version) = Version::negotiate(offered) else {
        let error = ApiError::malformed("offer the subprotocol ocpp2.0.1 or ocpp1.6");
        return refuse(error.details(serde_json::json!({ "field": "sec-websocket-protocol" })));
    };
    let tenant = match authenticate(door, charger_id, headers.get(header::AUTHORIZATION)).await {
        Ok(tenant) => tenant,
        Err(error) => return refuse(error),
    };
    let charger = Charger { id: charger_id, tenant, version };
    let upgrading = hyper::upgrade::on(&mut request);
    let door = Arc::clone(door);
    tokio::spawn(async move {
        let upgraded = match upgrading.await {
            Ok(upgraded) => upgraded,
            Err(error) => return tracing::debug!(charger = %charger.id, %error, "the upgrade did not complete"),
        };
        let socket =
            WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, Some(socket_config())).await;
        connection::serve(door, charger, socket).await;
    });
    let mut response = Response::new(Full::new(Bytes::new()));
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let answer = response.headers_mut();
    answer.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    answer.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    answer.insert(header::SEC_WEBSOCKET_PROTOCOL, HeaderValue::from_static(version.subprotocol()));
    if let Ok(accept) = HeaderValue::from_str(&accept) {
        answer.insert(header::SEC_WEBSOCKET_ACCEPT, accept);
    }
    response
}

/// Small buffers: a process holds thousands of sockets, and OCPP messages are a few hundred bytes.
fn socket_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(4 * 1024)
        .write_buffer_size(0)
        .max_message_size(Some(64 * 1024))
        .max_frame_size(Some(64 * 1024))
}

/// The charger's organisation, when `authorization` is HTTP Basic with its id and its password.
async fn authenticate(door: &Ocpp, charger: Uuid, authorization: Option<&HeaderValue>) -> Result<TenantId, ApiError> {
    let denied = || {
        let mut error = ApiError::unauthorized("HTTP Basic with the charger's id and its OCPP password");
        error.headers.push((header::WWW_AUTHENTICATE, HeaderValue::from_static("Basic realm=\"voltbus OCPP\"")));
        error
    };
    let password = authorization
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Basic "))
        .and_then(|encoded| base64::engine::general_purpose::STANDARD.decode(encoded.trim()).ok())
        .and_then(|decoded| String::from_utf8(decoded).ok())
        .and_then(|pair| {
            let (user, password) = pair.split_once(':')?;
            (user.parse::<Uuid>().ok()? == charger).then(|| password.to_owned())
        })
        .ok_or_else(denied)?;
    let found = readside::chargers::ocpp_credentials(&door.database, charger).await.map_err(envelope::db_error)?;
    // The same work whether or not the charger exists, so timing tells nothing.
    let offered = password_hash(&password);
    let (tenant, stored) = found.unwrap_or_default();
    let matches: bool = offered.as_bytes().ct_eq(stored.as_bytes()).into();
    if !matches || stored.is_empty() {
        return Err(denied());
    }
    TenantId::new(&tenant).map_err(|_| denied())
}

/// How a charger's OCPP password is kept: SHA-256, hex. The password is 32 random bytes the
/// server made, so a slow hash adds nothing but time to every reconnect.
pub(crate) fn password_hash(password: &str) -> String {
    hex::encode(ring::digest::digest(&ring::digest::SHA256, password.as_bytes()))
}

/// A new OCPP password: 30 random bytes, base64url, which is 40 characters, OCPP's limit on a
/// charger's Basic password.
pub(crate) fn new_password(random: &dyn ring::rand::SecureRandom) -> Option<String> {
    let mut bytes = [0u8; 30];
    random.fill(&mut bytes).ok()?;
    Some(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}
