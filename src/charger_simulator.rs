//! A charger simulator: speaks for chargers in OCPP's vocabulary on NATS, as their status
//! notifications would reach voltbus, so that tests and the demo run without hardware.
//!
//! A simulated charger publishes `StatusNotification`s (connector status, error code, its own
//! timestamp) to `voltbus.{tenant}.chargers.{charger}.status` and `MeterValues` (its energy
//! register) to `….meter` on JetStream, as a charger of its organisation would.

use bus::PublishError;
use bus::nats::NatsConnection;
use chrono::{DateTime, Utc};
use schemas::charging::{ChargerMeterValues, ChargerStatusNotification, ConnectorStatus, MeterValue, SampledValue};
use schemas::{Envelope, TenantId, subjects};
use uuid::Uuid;

/// One simulated charger (a single connector, as the EVM seed's chargers have).
#[derive(Clone)]
pub struct SimulatedCharger {
    nats: NatsConnection,
    tenant: TenantId,
    charger_id: Uuid,
}

impl SimulatedCharger {
    /// Charger `charger_id` of `tenant`, publishing through `nats`.
    pub fn new(nats: NatsConnection, tenant: TenantId, charger_id: Uuid) -> Self {
        Self { nats, tenant, charger_id }
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
        self.nats.publish_durable(subjects::charger_status(&self.tenant, self.charger_id), &envelope).await
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
        self.nats.publish_durable(subjects::charger_meter(&self.tenant, self.charger_id), &envelope).await
    }
}
