//! What a consumer group's handler is given and what it answers.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use schemas::{AnyMessage, Envelope};
use sea_orm::DatabaseTransaction;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tracing::Instrument;

use crate::outbox::Outgoing;

/// A command's answer to its requester; events answer `None`.
pub type Reply = Option<Value>;

/// Everything a handler needs for one message.
pub struct Context<'a> {
    /// The decoded message.
    pub message: &'a Envelope<AnyMessage>,
    /// 1 on first delivery, then one more per retry.
    pub attempt: u32,
    /// The transaction the handler writes in, when the group has a database. The runtime commits it
    /// together with the inbox record, and only then acks the message.
    pub transaction: Option<&'a DatabaseTransaction>,
}

impl<'a> Context<'a> {
    /// The transaction of a group that writes the database; a group run without one cannot
    /// handle anything, which is a permanent error.
    pub fn database(&self, group: &str) -> Result<&'a DatabaseTransaction, HandlerError> {
        self.transaction.ok_or_else(|| HandlerError::Permanent(format!("the {group} group needs a database")))
    }
}

/// Why a handler did not succeed; decides between retry and dead-letter.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HandlerError {
    /// Worth trying again later (a timeout, a lock, a service down).
    #[error("retryable: {0}")]
    Retryable(String),
    /// Will never succeed (a rule refused it, the data is wrong); goes to the dead-letter queue.
    #[error("permanent: {0}")]
    Permanent(String),
}

impl HandlerError {
    /// A message of a type the group does not handle. Only bound keys arrive, so it is a
    /// replayed letter of another group: it stays in the dead letters rather than being
    /// acknowledged and lost.
    pub fn unhandled(message: &Envelope<AnyMessage>) -> Self {
        HandlerError::Permanent(format!("`{}` has no handler in this version", message.type_name))
    }
}

/// Handles the messages of one consumer group.
pub trait Handler: Send + Sync + 'static {
    /// Handles one message. Called again for the same message only after a retryable error or a
    /// crash before commit; duplicates of a committed message never reach it.
    fn handle<'a>(
        &'a self,
        context: Context<'a>,
    ) -> Pin<Box<dyn Future<Output = Result<Reply, HandlerError>> + Send + 'a>>;

    /// Handles a batch of messages (each with its attempt number) in one transaction, for a
    /// group consumed in batches; none of them gets a reply. An error fails the whole batch, which
    /// the runtime then hands over one message at a time. By default, [`handle_each`].
    fn handle_batch<'a>(
        &'a self,
        transaction: &'a DatabaseTransaction,
        messages: &'a [(&'a Envelope<AnyMessage>, u32)],
    ) -> Pin<Box<dyn Future<Output = Result<(), HandlerError>> + Send + 'a>> {
        handle_each(self, transaction, messages)
    }

    /// Handles a batch like [`Handler::handle_batch`] and hands back what must happen once the
    /// transaction committed and before the batch is acknowledged ([`Handled`]). Messages to
    /// publish are for a group without inbox (`Processor::without_inbox`) whose handling is
    /// idempotent, so that a batch handled again hands back the same messages, and a crash
    /// between commit and publish loses none. By default, [`Handler::handle_batch`], handing
    /// back nothing.
    fn handle_publishing<'a>(
        &'a self,
        transaction: &'a DatabaseTransaction,
        messages: &'a [(&'a Envelope<AnyMessage>, u32)],
    ) -> Pin<Box<dyn Future<Output = Result<Handled, HandlerError>> + Send + 'a>> {
        Box::pin(async move { self.handle_batch(transaction, messages).await.map(|()| Handled::default()) })
    }
}

/// What a batch handler leaves for after its transaction committed.
#[derive(Default)]
pub struct Handled {
    /// Messages to publish (groups without inbox only).
    pub publish: Vec<Outgoing>,
    /// In-process hand-offs of what the transaction wrote, which nobody may see before it
    /// committed (the webhook fan-out hands its deliveries to this process's dispatcher). Run
    /// after the commit, never after a rollback; what they start must survive their loss (a
    /// lease in the database, say), since the process may die right after.
    pub then: Vec<Box<dyn FnOnce() + Send>>,
}

impl Handled {
    /// Messages to publish after commit.
    pub fn publishing(publish: Vec<Outgoing>) -> Self {
        Self { publish, then: Vec::new() }
    }
}

/// Handles `messages` one after the other in `transaction`: a batch without a batch handler.
pub fn handle_each<'a, H: Handler + ?Sized>(
    handler: &'a H,
    transaction: &'a DatabaseTransaction,
    messages: &'a [(&'a Envelope<AnyMessage>, u32)],
) -> Pin<Box<dyn Future<Output = Result<(), HandlerError>> + Send + 'a>> {
    Box::pin(async move {
        for (message, attempt) in messages {
            // Each message keeps its own span inside the batch's.
            let span = tracing::info_span!(
                "message",
                message_id = %message.id,
                correlation_id = %message.correlationid,
                tenant = %message.tenant,
                r#type = %message.type_name,
                attempt,
            );
            let context = Context { message, attempt: *attempt, transaction: Some(transaction) };
            handler.handle(context).instrument(span).await?;
        }
        Ok(())
    })
}

/// The body of a reply to a command, as the requester receives it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum ReplyBody {
    /// The command succeeded.
    Ok {
        /// The handler's answer.
        data: Value,
    },
    /// The command failed for good.
    Error {
        /// `permanent`, `invalid_data`, `unsupported_version`, …
        kind: String,
        /// What went wrong.
        message: String,
    },
}

/// Why a request got no successful answer.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    /// The command never reached the broker.
    #[error("command not published: {0}")]
    Publish(#[from] crate::PublishError),
    /// No answer in time; the command may still be handled.
    #[error("no reply within {0:?}")]
    Timeout(Duration),
    /// The handler refused the command for good.
    #[error("{kind}: {message}")]
    Failed {
        /// Error kind from the handler side.
        kind: String,
        /// What went wrong.
        message: String,
    },
    /// The reply channel closed while waiting.
    #[error("reply channel closed")]
    Disconnected,
}

impl ReplyBody {
    /// Parses a reply off the wire; bytes that are no reply are a `malformed_reply` failure.
    pub fn from_bytes(bytes: &[u8]) -> Self {
        serde_json::from_slice(bytes)
            .unwrap_or_else(|e| ReplyBody::Error { kind: "malformed_reply".into(), message: e.to_string() })
    }
}

/// What a requester makes of waiting up to `timeout` for a reply (`None`: the channel closed).
pub(crate) async fn await_reply(
    reply: impl Future<Output = Option<ReplyBody>>,
    timeout: Duration,
) -> Result<Value, RequestError> {
    match tokio::time::timeout(timeout, reply).await {
        Ok(Some(ReplyBody::Ok { data })) => Ok(data),
        Ok(Some(ReplyBody::Error { kind, message })) => Err(RequestError::Failed { kind, message }),
        Ok(None) => Err(RequestError::Disconnected),
        Err(_) => Err(RequestError::Timeout(timeout)),
    }
}
