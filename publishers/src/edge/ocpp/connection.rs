//! One charger's socket: its CALLs answered in order, ours sent one at a time (OCPP-J allows one
//! outstanding CALL each way), orders from the bus turned into CALLs, and the socket closed when
//! the charger goes quiet, reconnects elsewhere, or the process stops.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use bus::PublishError;
use futures_util::{SinkExt, StreamExt};
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use schemas::charging::{ChargerMeterValues, ChargerStatusNotification, RecordChargerConnection, SampledValue};
use schemas::{Envelope, subjects};
use serde_json::Value;
use tokio::time::Instant;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tracing::Instrument;
use uuid::Uuid;

use super::rpc::{self, Code, Frame, Refusal};
use super::{Charger, Ocpp, Version, v16, v201};

type Socket = WebSocketStream<TokioIo<Upgraded>>;

const SOURCE: &str = "voltbus/ocpp";

/// What a connection remembers between messages.
#[derive(Default)]
pub(crate) struct State {
    /// The charger's last status notification, repeated on each heartbeat so the charger reads
    /// as heard from (its own timestamp: it changes no state).
    pub last_status: Option<ChargerStatusNotification>,
    /// The transaction under way, as the charger's version names it.
    pub transaction: Option<String>,
    /// CALLs of ours waiting for the one outstanding to be answered.
    pub calls: VecDeque<(&'static str, Value)>,
}

/// What a version's handlers reach: the charger, the door, the connection's memory.
pub(crate) struct Link<'a> {
    pub door: &'a Ocpp,
    pub charger: &'a Charger,
    pub state: &'a mut State,
}

impl Link<'_> {
    /// Publishes a status notification and waits until JetStream stored it. Its id is derived
    /// from the notification, so one sent again after a reconnect is stored once.
    pub(crate) async fn status(&mut self, status: ChargerStatusNotification) -> Result<(), Refusal> {
        let name = format!("status/{}/{}/{:?}", status.connector_id, status.timestamp.to_rfc3339(), status.status);
        let subject = subjects::charger_status(&self.charger.tenant, self.charger.id);
        self.publish(subject, Some(name), status.clone()).await?;
        self.state.last_status = Some(status);
        Ok(())
    }

    /// Publishes meter values and waits until JetStream stored them, once per sampling time.
    pub(crate) async fn meter(&mut self, values: ChargerMeterValues) -> Result<(), Refusal> {
        if values.meter_value.is_empty() {
            return Ok(());
        }
        let times: Vec<String> = values.meter_value.iter().map(|v| v.timestamp.to_rfc3339()).collect();
        let name = format!("meter/{}/{}", values.connector_id, times.join(","));
        let subject = subjects::charger_meter(&self.charger.tenant, self.charger.id);
        self.publish(subject, Some(name), values).await
    }

    /// A heartbeat: the last status again, under a new id, so the charger reads as heard from;
    /// the answer both versions give.
    pub(crate) async fn heartbeat(&mut self) -> Result<Value, Refusal> {
        if let Some(status) = self.state.last_status.clone() {
            let subject = subjects::charger_status(&self.charger.tenant, self.charger.id);
            self.publish(subject, None, status).await?;
        }
        Ok(serde_json::json!({ "currentTime": chrono::Utc::now() }))
    }

    /// A boot accepted, `configure` (the meter's pacing, in the version's words) queued to send
    /// next; the answer both versions give.
    pub(crate) fn booted(&mut self, configure: (&'static str, Value)) -> Value {
        self.state.calls.push_back(configure);
        let interval = self.door.settings.heartbeat_interval_seconds;
        serde_json::json!({ "status": "Accepted", "currentTime": chrono::Utc::now(), "interval": interval })
    }

    async fn publish<T>(&self, subject: String, name: Option<String>, data: T) -> Result<(), Refusal>
    where
        T: schemas::Message + serde::Serialize,
    {
        let mut envelope = Envelope::new(self.charger.tenant.clone(), SOURCE, data);
        if let Some(name) = name {
            envelope.id = readside::ids::derived_id(&format!("{}/{name}", self.charger.id));
        }
        self.door.nats.publish_durable(subject, &envelope).await.map_err(|error: PublishError| {
            tracing::warn!(charger = %self.charger.id, %error, "not stored; the charger will send it again");
            Refusal::new(Code::Internal, "not stored; send it again")
        })
    }

    /// Whether `tag` is the one we gave the charger for the session active on it (1.6's short
    /// tag, or 2.0.1's whole session id).
    pub(crate) async fn session_tag(&self, tag: &str) -> Result<bool, Refusal> {
        let session = readside::charging::active(
            &self.door.database,
            self.charger.tenant.as_str(),
            "charger_id",
            self.charger.id,
            false,
        )
        .await
        .map_err(|error| {
            tracing::warn!(charger = %self.charger.id, %error, "could not read the charger's session");
            Refusal::new(Code::Internal, "try again")
        })?;
        Ok(session.is_some_and(|session| id_tag(session.id) == tag || session.id.to_string() == tag))
    }
}

/// One sampled value as the bus carries it, with OCPP's defaults (the energy register, in Wh)
/// where the charger left them out.
pub(crate) fn sampled(value: String, measurand: Option<String>, unit: Option<String>) -> SampledValue {
    SampledValue {
        value,
        measurand: measurand.unwrap_or_else(|| "Energy.Active.Import.Register".into()),
        unit: unit.unwrap_or_else(|| "Wh".into()),
    }
}

/// An id tag's status: ours for the session on the charger, or not.
pub(crate) fn verdict(accepted: bool) -> &'static str {
    if accepted { "Accepted" } else { "Invalid" }
}

/// The id tag a session is started under: OCPP 1.6's `idTag` holds 20 characters, so the first 20
/// hex digits of the session's id (its time and the start of its random part).
pub(crate) fn id_tag(session: Uuid) -> String {
    session.simple().to_string()[..20].to_owned()
}

/// Serves `charger` on `socket` until either side ends it.
pub(crate) async fn serve(door: Arc<Ocpp>, charger: Charger, socket: Socket) {
    let span = tracing::info_span!("ocpp", charger = %charger.id, tenant = %charger.tenant, version = charger.version.subprotocol());
    async move {
        let hold = door.registry.hold(charger.id, charger.tenant.clone());
        let generation = hold.generation;
        tracing::info!(node = %door.node, "charger connected");
        record(&door, &charger, true).await;
        run(&door, &charger, socket, hold).await;
        door.registry.release(charger.id, generation);
        record(&door, &charger, false).await;
        tracing::info!("charger disconnected");
    }
    .instrument(span)
    .await
}

/// Tells the bus this process holds (or no longer holds) the charger's socket; the console and
/// the partner API show it. A lost record is only stale until the next connection.
async fn record(door: &Ocpp, charger: &Charger, connected: bool) {
    let connection = RecordChargerConnection {
        charger_id: charger.id,
        ocpp_version: serde_json::to_value(charger.version)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default(),
        node: door.node.clone(),
        connected,
        at: chrono::Utc::now(),
    };
    let envelope = Envelope::new(charger.tenant.clone(), SOURCE, connection);
    if let Err(error) = door.commands.publish(&envelope).await {
        tracing::warn!(%error, connected, "could not record the charger's connection");
    }
}

async fn run(door: &Ocpp, charger: &Charger, mut socket: Socket, hold: super::registry::Hold) {
    let super::registry::Hold { mut orders, mut closing, .. } = hold;
    let mut state = State::default();
    // A charger quiet for three heartbeats is gone (a dead TCP peer says nothing).
    let quiet = Duration::from_secs(u64::from(door.settings.heartbeat_interval_seconds) * 3 + 30);
    let call_timeout = Duration::from_secs(door.settings.call_timeout_seconds);
    let mut outstanding: Option<(String, &'static str, Instant)> = None;
    let mut quiet_until = Instant::now() + quiet;
    loop {
        if outstanding.is_none()
            && let Some((action, payload)) = state.calls.pop_front()
        {
            let id = Uuid::now_v7().to_string();
            if socket.send(Message::text(rpc::call(&id, action, &payload))).await.is_err() {
                return;
            }
            tracing::debug!(action, %id, "CALL sent");
            outstanding = Some((id, action, Instant::now() + call_timeout));
        }
        let deadline = outstanding.as_ref().map_or(quiet_until, |(_, _, at)| *at.min(&quiet_until));
        tokio::select! {
            frame = socket.next() => {
                let text = match frame {
                    Some(Ok(Message::Text(text))) => text,
                    Some(Ok(Message::Binary(_))) => {
                        let refusal = Refusal::new(Code::Format, "OCPP-J frames are text");
                        if socket.send(Message::text(rpc::error("", &refusal, charger.version))).await.is_err() {
                            return;
                        }
                        continue;
                    }
                    Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                    // Pings are answered by the socket itself.
                    Some(Ok(_)) => continue,
                };
                quiet_until = Instant::now() + quiet;
                let mut link = Link { door, charger, state: &mut state };
                let Some(reply) = received(&mut link, text.as_str(), &mut outstanding).await else { continue };
                if socket.send(Message::text(reply)).await.is_err() {
                    return;
                }
            }
            order = orders.recv() => match order {
                Some(order) => {
                    let link = Link { door, charger, state: &mut state };
                    let call = match charger.version {
                        Version::V16 => v16::order(&link, order),
                        Version::V201 => v201::order(&link, order),
                    };
                    state.calls.extend(call);
                }
                // The charger connected again (here or elsewhere): this socket is stale.
                None => return close(&mut socket, CloseCode::Policy, "connected again").await,
            },
            () = tokio::time::sleep_until(deadline) => {
                if Instant::now() >= quiet_until {
                    return close(&mut socket, CloseCode::Away, "no message within three heartbeats").await;
                }
                if let Some((id, action, _)) = outstanding.take() {
                    tracing::warn!(action, %id, "the charger did not answer our CALL in time");
                }
            }
            // The guard `wait_for` returns is not Send: dropped inside.
            () = async { let _ = closing.wait_for(|closing| *closing).await; } => {
                return close(&mut socket, CloseCode::Away, "the server is restarting").await;
            }
        }
    }
}

async fn close(socket: &mut Socket, code: CloseCode, reason: &'static str) {
    let frame = CloseFrame { code, reason: reason.into() };
    let _ = tokio::time::timeout(Duration::from_secs(5), socket.close(Some(frame))).await;
}

/// Handles one frame; the text to send back, if any.
async fn received(
    link: &mut Link<'_>,
    text: &str,
    outstanding: &mut Option<(String, &'static str, Instant)>,
) -> Option<String> {
    let version = link.charger.version;
    match rpc::parse(text) {
        Err(unreadable) => Some(rpc::error(&unreadable.id, &unreadable.refusal, version)),
        Ok(Frame::Call { id, action, payload }) => {
            let answered = match version {
                Version::V16 => v16::answer(link, &action, payload).await,
                Version::V201 => v201::answer(link, &action, payload).await,
            };
            Some(match answered {
                Ok(result) => rpc::result(&id, result),
                Err(refusal) => {
                    tracing::info!(%action, code = refusal.code.name(version), description = %refusal.description, "CALLERROR");
                    rpc::error(&id, &refusal, version)
                }
            })
        }
        Ok(Frame::Result { id, payload }) => {
            match outstanding.take_if(|(sent, _, _)| *sent == id) {
                Some((_, action, _)) => tracing::info!(action, result = %payload, "the charger answered"),
                None => tracing::debug!(%id, "a CALLRESULT to no CALL of ours"),
            }
            None
        }
        Ok(Frame::Error { id, code, description }) => {
            if let Some((_, action, _)) = outstanding.take_if(|(sent, _, _)| *sent == id) {
                tracing::warn!(action, %code, %description, "the charger refused our CALL");
            }
            None
        }
    }
}
