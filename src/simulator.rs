//! A device simulator: stands in for the vehicles' telematics units, answering the commands sent
//! to them, so that tests and the demo run without hardware (`voltbus simulate-devices`).
//!
//! On NATS it is a JetStream durable consumer (`device-simulator`) of every vehicle's commands; on
//! the embedded default it runs in voltbus's process. It answers each command on the vehicle's
//! `command-results` subject, as a device would. Like a real device
//! it ignores a command past its expiry. Chosen vehicles can be made to refuse, or to stay
//! silent (so the command times out).

use std::collections::HashSet;
use std::time::Duration;

use async_nats::jetstream::consumer::{AckPolicy, pull};
use bus::devices::DeviceLink;
use futures_util::StreamExt;
use schemas::vehicles::{CommandOutcome, DeviceCommandResult};
use schemas::{AnyMessage, Envelope, subjects};
use uuid::Uuid;

/// The simulator's durable consumer.
const CONSUMER: &str = "device-simulator";

/// What the simulated devices do.
#[derive(Clone, Debug, Default)]
pub struct Devices {
    /// Vehicles that refuse every command (`failed`).
    pub refusing: HashSet<Uuid>,
    /// Vehicles that never answer (their commands time out).
    pub silent: HashSet<Uuid>,
    /// How long a device takes to carry a command out.
    pub delay: Duration,
}

/// Why the simulator stopped.
#[derive(Debug, thiserror::Error)]
pub enum SimulatorError {
    /// The commands stream or its consumer could not be used.
    #[error("device simulator: {0}")]
    JetStream(String),
}

/// Answers commands until `shutdown` resolves: on NATS as a JetStream durable consumer of the
/// commands stream (so a command sent while it was away is answered when it is back); on the
/// embedded transport, in process, as each command is sent.
pub async fn run(
    link: impl Into<DeviceLink>,
    devices: Devices,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), SimulatorError> {
    let failed = |e: &dyn std::fmt::Display| SimulatorError::JetStream(e.to_string());
    let link = link.into();
    let nats = match &link {
        DeviceLink::Nats(nats) => nats.clone(),
        DeviceLink::Embedded(_) => {
            let sent = link.subscribe(subjects::every_vehicle_commands()).await.map_err(|e| failed(&e))?;
            return answer_each(&link, &devices, sent, shutdown).await;
        }
    };
    let stream = nats.jetstream().get_stream(subjects::VEHICLE_COMMANDS_STREAM).await.map_err(|e| failed(&e))?;
    let config = pull::Config {
        durable_name: Some(CONSUMER.into()),
        filter_subject: subjects::every_vehicle_commands(),
        ack_policy: AckPolicy::Explicit,
        ..Default::default()
    };
    let consumer = stream.get_or_create_consumer(CONSUMER, config).await.map_err(|e| failed(&e))?;
    let mut messages = consumer.messages().await.map_err(|e| failed(&e))?;
    tokio::pin!(shutdown);
    loop {
        let message = tokio::select! {
            next = messages.next() => match next {
                Some(Ok(message)) => message,
                Some(Err(error)) => {
                    tracing::debug!(%error, "command stream item");
                    continue;
                }
                None => return Err(SimulatorError::JetStream("the command stream ended".into())),
            },
            () = &mut shutdown => return Ok(()),
        };
        if let Some((subject, answer)) = answer(&devices, bus::nats::decode(&message)).await
            && let Err(error) = link.publish(subject, &answer).await
        {
            // Not acked: the command comes again and is answered then.
            tracing::warn!(%error, "simulated device could not answer");
            continue;
        }
        if let Err(error) = message.ack().await {
            tracing::warn!(%error, "simulated device could not ack a command");
        }
    }
}

/// Answers each command of `sent` until `shutdown` (each on its own task, as devices are many).
async fn answer_each(
    link: &DeviceLink,
    devices: &Devices,
    mut sent: futures_util::stream::BoxStream<'static, bus::devices::Sent>,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), SimulatorError> {
    tokio::pin!(shutdown);
    loop {
        let command = tokio::select! {
            next = sent.next() => match next {
                Some(command) => command,
                None => return Ok(()),
            },
            () = &mut shutdown => return Ok(()),
        };
        let (link, devices) = (link.clone(), devices.clone());
        tokio::spawn(async move {
            if let Some((subject, answer)) = answer(&devices, command).await
                && let Err(error) = link.publish(subject, &answer).await
            {
                tracing::warn!(%error, "simulated device could not answer");
            }
        });
    }
}

/// A simulated device's answer to a command, if it gives one.
async fn answer(
    devices: &Devices,
    command: Result<Envelope<AnyMessage>, schemas::DecodeError>,
) -> Option<(String, Envelope<DeviceCommandResult>)> {
    let envelope = command.inspect_err(|error| tracing::warn!(%error, "not a command")).ok()?;
    let AnyMessage::DeviceCommand(command) = &envelope.data else { return None };
    if command.expires_at < chrono::Utc::now() || devices.silent.contains(&command.vehicle_id) {
        return None;
    }
    tokio::time::sleep(devices.delay).await;
    let (outcome, reason) = if devices.refusing.contains(&command.vehicle_id) {
        (CommandOutcome::Failed, Some("the vehicle refused the command (simulated)".to_owned()))
    } else {
        (CommandOutcome::Succeeded, None)
    };
    let result =
        DeviceCommandResult { command_id: command.command_id, vehicle_id: command.vehicle_id, outcome, reason };
    let subject = subjects::vehicle_command_results(&envelope.tenant, command.vehicle_id);
    Some((subject, Envelope::new(envelope.tenant.clone(), "voltbus/device-simulator", result).caused_by(&envelope)))
}
