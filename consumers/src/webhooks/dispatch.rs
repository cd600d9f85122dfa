//! The dispatcher: makes delivery attempts. For each `webhook.deliver` command it checks the
//! endpoint's limits, claims the attempt in the database, and hands the HTTP call to a task of
//! its own, so the message is acknowledged at once and a slow receiver holds no consumer lane:
//! one dead endpoint never delays another. The claim's lease covers a crash in the middle.
//! No HTTP call runs inside a database transaction: the claim and the result are two short ones.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use chrono::Utc;
use ring::rand::{SecureRandom, SystemRandom};
use schemas::webhooks::DeliverWebhook;
use schemas::{AnyMessage, Envelope};
use sea_orm::{DatabaseConnection, DbErr, TransactionTrait};
use signatures::Secret;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use uuid::Uuid;

use bus::{Context, Handler, HandlerError, Reply};

use super::deliveries::{self, Settled};
use super::endpoints::{self, Health, StoredEndpoint};
use super::http::{Attempted, Client};
use super::operational;
use super::{DeliveryPolicy, Vault};

/// Makes delivery attempts.
pub struct Dispatcher {
    db: DatabaseConnection,
    client: Client,
    vault: Vault,
    policy: DeliveryPolicy,
    gates: Mutex<HashMap<Uuid, Gate>>,
    /// Bounds the attempts in flight in this process; all permits back means none is running.
    in_flight: Arc<Semaphore>,
    random: SystemRandom,
}

/// One endpoint's limits in this process.
struct Gate {
    permits: Arc<Semaphore>,
    /// Earliest time the next attempt may start, when the endpoint has a rate limit.
    next_slot: Instant,
}

/// Attempts in flight per process, across endpoints.
const MAX_IN_FLIGHT: u32 = 1024;

impl Dispatcher {
    /// A dispatcher writing `db`, sending with `client`, opening secrets with `vault`.
    pub fn new(db: DatabaseConnection, client: Client, vault: Vault, policy: DeliveryPolicy) -> Self {
        Self {
            db,
            client,
            vault,
            policy,
            gates: Mutex::default(),
            in_flight: Arc::new(Semaphore::new(MAX_IN_FLIGHT as usize)),
            random: SystemRandom::new(),
        }
    }

    /// Waits (up to `limit`) for the attempts in flight to finish; for shutdown.
    pub async fn finish(&self, limit: Duration) {
        let all = self.in_flight.acquire_many(MAX_IN_FLIGHT);
        if tokio::time::timeout(limit, all).await.is_err() {
            tracing::warn!("webhook attempts still running at shutdown; their leases will bring them back");
        }
    }

    /// A permit for one more attempt to `endpoint` now, or the time to try again.
    fn admit(&self, endpoint: &StoredEndpoint) -> Result<(OwnedSemaphorePermit, OwnedSemaphorePermit), Duration> {
        let busy = Duration::from_millis(250);
        let global = Arc::clone(&self.in_flight).try_acquire_owned().map_err(|_| busy)?;
        let mut gates = self.gates.lock().map_err(|_| busy)?;
        let gate = gates.entry(endpoint.endpoint.id).or_insert_with(|| Gate {
            permits: Arc::new(Semaphore::new(self.policy.concurrency_per_endpoint)),
            next_slot: Instant::now(),
        });
        let now = Instant::now();
        if endpoint.endpoint.rate_limit_per_second.is_some_and(|r| r > 0) && gate.next_slot > now {
            // Waiting for its slot uses up no attempt.
            return Err(gate.next_slot - now);
        }
        let permit = Arc::clone(&gate.permits).try_acquire_owned().map_err(|_| busy)?;
        if let Some(rate) = endpoint.endpoint.rate_limit_per_second.filter(|r| *r > 0) {
            gate.next_slot = gate.next_slot.max(now) + Duration::from_secs(1) / rate;
        }
        Ok((global, permit))
    }

    async fn dispatch(
        self: &Arc<Self>,
        envelope: &Envelope<AnyMessage>,
        command: &DeliverWebhook,
    ) -> Result<(), DbErr> {
        let tenant = envelope.tenant.as_str();
        let now = Utc::now();
        let lease_until = now + self.policy.lease();
        let endpoint = endpoints::find(&self.db, tenant, command.endpoint_id).await?;
        let endpoint = match endpoint {
            Some(endpoint) if endpoint.endpoint.active => endpoint,
            other => {
                // Kept in the log as a failure, so the owner can replay it once the endpoint is back.
                if deliveries::claim(&self.db, tenant, command.delivery_id, command.attempt, lease_until).await? {
                    let why = if other.is_some() { "the endpoint is disabled" } else { "the endpoint was deleted" };
                    let attempted = Attempted { error: Some(why.into()), ..Attempted::default() };
                    self.settle(tenant, command, other.as_ref(), &attempted, true).await?;
                }
                return Ok(());
            }
        };
        let permits = match self.admit(&endpoint) {
            Ok(permits) => permits,
            Err(wait) => {
                let until = now + chrono::Duration::from_std(wait).unwrap_or_default();
                return deliveries::defer(&self.db, tenant, command.delivery_id, command.attempt, until).await;
            }
        };
        if !deliveries::claim(&self.db, tenant, command.delivery_id, command.attempt, lease_until).await? {
            tracing::debug!("attempt already taken; skipping the duplicate");
            return Ok(());
        }
        let this = Arc::clone(self);
        let (tenant, command) = (tenant.to_owned(), command.clone());
        let span = tracing::Span::current();
        tokio::spawn(tracing::Instrument::instrument(
            async move {
                let _permits = permits;
                let attempted = this.attempt(&tenant, &command, &endpoint).await;
                if let Err(error) = this.settle(&tenant, &command, Some(&endpoint), &attempted, false).await {
                    // The lease brings the delivery back: the attempt is made again, not lost.
                    tracing::warn!(%error, "could not record a webhook attempt");
                }
            },
            span,
        ));
        Ok(())
    }

    /// Signs and sends the payload.
    async fn attempt(&self, tenant: &str, command: &DeliverWebhook, endpoint: &StoredEndpoint) -> Attempted {
        let body = match deliveries::payload(&self.db, tenant, &command.event_id).await {
            Ok(Some(body)) => body,
            Ok(None) => return Attempted { error: Some("the payload was purged".into()), ..Attempted::default() },
            Err(error) => return Attempted { error: Some(format!("database: {error}")), ..Attempted::default() },
        };
        let now = Utc::now();
        let mut secrets = Vec::new();
        for sealed in endpoint.live_secrets(now) {
            match self.vault.open(&sealed.ciphertext).map(|text| Secret::parse(&text)) {
                Ok(Ok(secret)) => secrets.push(secret),
                _ => tracing::error!(endpoint = %endpoint.endpoint.id, "a signing secret cannot be opened"),
            }
        }
        if secrets.is_empty() {
            return Attempted { error: Some("no signing secret can be opened".into()), ..Attempted::default() };
        }
        let secrets: Vec<&Secret> = secrets.iter().collect();
        let signed = signatures::sign(&secrets, &command.event_id, now.timestamp(), body.as_bytes());
        let mut headers: Vec<(String, String)> =
            endpoint.endpoint.headers.iter().map(|(name, value)| (name.clone(), value.clone())).collect();
        headers.extend(signed.headers().iter().map(|(name, value)| ((*name).to_owned(), (*value).to_owned())));
        self.client.post(&endpoint.endpoint.url, &headers, Bytes::from(body)).await
    }

    /// Logs the attempt and decides the delivery's next step, in one transaction.
    async fn settle(
        &self,
        tenant: &str,
        command: &DeliverWebhook,
        endpoint: Option<&StoredEndpoint>,
        attempted: &Attempted,
        final_now: bool,
    ) -> Result<(), DbErr> {
        let now = Utc::now();
        let succeeded = attempted.succeeded();
        let last = final_now || command.attempt >= self.policy.max_attempts();
        let (outcome, next) = match (succeeded, last) {
            (true, _) => ("succeeded", None),
            (false, true) => ("gave_up", None),
            (false, false) => ("failed", Some(now + self.next_delay(command.attempt, attempted.retry_after))),
        };
        let latency_ms = u32::try_from(attempted.latency.as_millis()).unwrap_or(u32::MAX);
        let settled = Settled {
            tenant,
            delivery_id: command.delivery_id,
            endpoint_id: command.endpoint_id,
            event_id: &command.event_id,
            attempt: command.attempt,
            outcome,
            status_code: attempted.status,
            latency_ms,
            error: attempted.error.as_deref(),
            response: attempted.response.as_deref(),
            next_attempt_at: next,
        };
        tracing::info!(delivery = %command.delivery_id, attempt = command.attempt, outcome, status = ?attempted.status, latency_ms, "webhook attempt");
        let tx = self.db.begin().await?;
        deliveries::settle(&tx, &settled, now).await?;
        if let Some(endpoint) = endpoint {
            let lease = self.policy.lease();
            if endpoint.endpoint.ordered && next.is_none() {
                deliveries::release_next(&tx, tenant, endpoint.endpoint.id, lease).await?;
            }
            let disable_after = chrono::Duration::from_std(self.policy.disable_after).unwrap_or(chrono::Duration::MAX);
            let health = endpoints::record_health(&tx, endpoint, succeeded, now, disable_after).await?;
            // Operational events are not themselves reported on, or a failing endpoint subscribed
            // to them would feed itself.
            if !operational::is_operational(&command.event) {
                let notice = match (health, outcome) {
                    (Health::Disabled, _) => Some(operational::Notice::EndpointDisabled),
                    (_, "gave_up") => Some(operational::Notice::AttemptExhausted),
                    (Health::Recovered, _) => Some(operational::Notice::AttemptRecovered),
                    _ => None,
                };
                if let Some(notice) = notice {
                    operational::announce(&tx, tenant, notice, endpoint, command, lease).await?;
                }
            }
        }
        tx.commit().await
    }

    /// The wait before the attempt after `attempt`: the schedule's, with up to 20 % jitter so
    /// retries to one receiver do not arrive in step, and never sooner than the receiver's
    /// `Retry-After` (clamped to the configured maximum).
    fn next_delay(&self, attempt: u32, retry_after: Option<Duration>) -> chrono::Duration {
        let index = usize::try_from(attempt.saturating_sub(1)).unwrap_or(usize::MAX);
        let base = self.policy.retry_delays.get(index).or(self.policy.retry_delays.last()).copied().unwrap_or_default();
        let mut byte = [0u8; 1];
        let _ = self.random.fill(&mut byte);
        let jittered = base + base.mul_f64(f64::from(byte[0]) / 255.0 * 0.2);
        let wait = retry_after.map_or(jittered, |asked| jittered.max(asked.min(self.policy.retry_after_max)));
        chrono::Duration::from_std(wait).unwrap_or_default()
    }
}

/// The dispatcher as a consumer group's handler.
pub struct DispatchHandler(pub Arc<Dispatcher>);

impl Handler for DispatchHandler {
    fn handle<'a>(
        &'a self,
        context: Context<'a>,
    ) -> Pin<Box<dyn Future<Output = Result<Reply, HandlerError>> + Send + 'a>> {
        Box::pin(async move {
            let AnyMessage::DeliverWebhook(command) = &context.message.data else {
                let type_name = context.message.type_name.as_str();
                return Err(HandlerError::Permanent(format!("`{type_name}` has no handler in the dispatcher")));
            };
            self.0.dispatch(context.message, command).await.map_err(|e| HandlerError::Retryable(e.to_string()))?;
            Ok(None)
        })
    }
}
