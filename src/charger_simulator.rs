//! A charger simulator: speaks for chargers in OCPP's vocabulary on NATS (or, on the embedded
//! default, in process), as their status notifications would reach voltbus, so that tests and the
//! demo run without hardware.
//!
//! A simulated charger publishes `StatusNotification`s (connector status, error code, its own
//! timestamp) to `voltbus.{tenant}.chargers.{charger}.status` and `MeterValues` (its energy
//! register) to `….meter` on JetStream, as a charger of its organisation would.
//!
//! [`run`] (`voltbus simulate-chargers`) makes chargers behave on their own: each reports
//! `Available` (and again every minute, so it never reads offline), answers
//! `RemoteStartTransaction` by charging (status `Charging`, then its register every `every`,
//! `power` watts), and `RemoteStopTransaction` by `Finishing`, then `Available`.

use std::collections::HashMap;
use std::future::Future;
use std::time::Duration;

use bus::PublishError;
use bus::devices::DeviceLink;
use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use schemas::AnyMessage;
use schemas::charging::{
    ChargerMeterValues, ChargerStatusNotification, ConnectorStatus, MeterValue, RemoteAction, SampledValue,
};
use schemas::{Envelope, TenantId, subjects};
use uuid::Uuid;

/// One simulated charger (a single connector, as the EVM seed's chargers have).
#[derive(Clone)]
pub struct SimulatedCharger {
    link: DeviceLink,
    tenant: TenantId,
    charger_id: Uuid,
}

impl SimulatedCharger {
    /// Charger `charger_id` of `tenant`, publishing through `link`.
    pub fn new(link: impl Into<DeviceLink>, tenant: TenantId, charger_id: Uuid) -> Self {
        Self { link: link.into(), tenant, charger_id }
    }

    /// Reports `status` (with OCPP's `NoError`) as of now.
    pub async fn report(&self, status: ConnectorStatus) -> Result<(), PublishError> {
        self.report_at(status, "NoError", Utc::now()).await
    }

    /// Reports `status` with `error_code` as the charger saw it at `at` (late reports included).
    pub async fn report_at(
        &self,
        status: ConnectorStatus,
        error_code: &str,
        at: DateTime<Utc>,
    ) -> Result<(), PublishError> {
        let notification = ChargerStatusNotification {
            charger_id: self.charger_id,
            connector_id: 1,
            status,
            error_code: error_code.to_owned(),
            timestamp: at,
        };
        let envelope = Envelope::new(self.tenant.clone(), "voltbus/charger-simulator", notification);
        self.link.publish(subjects::charger_status(&self.tenant, self.charger_id), &envelope).await
    }

    /// Reports the energy register (`Energy.Active.Import.Register`) reading `value` in `unit`
    /// (`Wh` or `kWh`), as sampled at `at`.
    pub async fn meter(&self, value: f64, unit: &str, at: DateTime<Utc>) -> Result<(), PublishError> {
        let values = ChargerMeterValues {
            charger_id: self.charger_id,
            connector_id: 1,
            transaction_id: None,
            meter_value: vec![MeterValue {
                timestamp: at,
                sampled_value: vec![SampledValue {
                    value: value.to_string(),
                    measurand: "Energy.Active.Import.Register".into(),
                    unit: unit.into(),
                }],
            }],
        };
        let envelope = Envelope::new(self.tenant.clone(), "voltbus/charger-simulator", values);
        self.link.publish(subjects::charger_meter(&self.tenant, self.charger_id), &envelope).await
    }
}

/// How simulated chargers behave.
#[derive(Clone, Copy, Debug)]
pub struct Behaviour {
    /// How often a charging charger reports its register.
    pub every: Duration,
    /// Watts a charging charger delivers.
    pub power: f64,
}

impl Default for Behaviour {
    fn default() -> Self {
        Self { every: Duration::from_secs(3), power: 22_000.0 }
    }
}

/// A charger's register and whether it is charging.
struct Meter {
    charger: SimulatedCharger,
    wh: f64,
    charging: bool,
}

/// Runs `chargers` of `tenant` until `stop`: they report, take remote commands, and charge.
pub async fn run(
    link: impl Into<DeviceLink>,
    tenant: TenantId,
    chargers: Vec<Uuid>,
    behaviour: Behaviour,
    stop: impl Future<Output = ()>,
) -> Result<(), bus::BusError> {
    let link = link.into();
    let mut meters: HashMap<Uuid, Meter> = chargers
        .into_iter()
        .map(|id| {
            (id, Meter { charger: SimulatedCharger::new(link.clone(), tenant.clone(), id), wh: 0.0, charging: false })
        })
        .collect();
    let mut commands = link.subscribe(format!("{}.{tenant}.chargers.*.commands", subjects::ROOT)).await?;
    let mut tick = tokio::time::interval(behaviour.every);
    let mut heartbeat = tokio::time::interval(Duration::from_secs(60));
    tokio::pin!(stop);
    loop {
        tokio::select! {
            () = &mut stop => return Ok(()),
            _ = heartbeat.tick() => {
                for meter in meters.values() {
                    let status = if meter.charging { ConnectorStatus::Charging } else { ConnectorStatus::Available };
                    report(meter.charger.report(status).await);
                }
            }
            _ = tick.tick() => {
                let step = behaviour.power * behaviour.every.as_secs_f64() / 3600.0;
                for meter in meters.values_mut().filter(|m| m.charging) {
                    meter.wh += step;
                    report(meter.charger.meter(meter.wh.round(), "Wh", Utc::now()).await);
                }
            }
            Some(sent) = commands.next() => {
                let Ok(envelope) = sent else { continue };
                let AnyMessage::ChargerRemoteCommand(command) = envelope.data else { continue };
                let Some(meter) = meters.get_mut(&command.charger_id) else { continue };
                tracing::info!(charger = %command.charger_id, action = ?command.action, "remote command");
                match command.action {
                    RemoteAction::RemoteStartTransaction => {
                        meter.charging = true;
                        report(meter.charger.report(ConnectorStatus::Charging).await);
                        report(meter.charger.meter(meter.wh.round(), "Wh", Utc::now()).await);
                    }
                    RemoteAction::RemoteStopTransaction => {
                        meter.charging = false;
                        report(meter.charger.report(ConnectorStatus::Finishing).await);
                        report(meter.charger.report(ConnectorStatus::Available).await);
                    }
                }
            }
        }
    }
}

fn report(outcome: Result<(), PublishError>) {
    if let Err(error) = outcome {
        tracing::warn!(%error, "a simulated charger could not report");
    }
}
