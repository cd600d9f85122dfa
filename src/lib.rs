//! The `voltbus` binary's library: configuration, logging, and the start and stop of the whole
//! platform (database, transports, HTTP edge), kept here so tests start it in-process.
//!
//! Layout:
//! - `settings`: layered configuration ([`Settings`]).
//! - `telemetry`: `tracing` subscriber set-up.
//! - `engines`: the database and transports chosen by configuration, and their `/health`.
//! - `app`: `migrate`, `start` and graceful stop ([`Running`]).
//! - `dead_letters`: listing and replaying a consumer group's dead letters on any transport.
//! - `console`: what the operator console (`/admin`) reads and does on the transports.
//! - `simulator`: simulated vehicle devices that answer commands; `charger_simulator`: simulated
//!   chargers reporting their status.
//! - `simulation`: a whole simulated fleet driving a running voltbus (`voltbus simulate`).

mod app;
pub mod charger_simulator;
pub mod console;
pub mod dead_letters;
mod engines;
pub mod settings;
pub mod simulation;
pub mod simulator;
pub mod telemetry;

pub use app::{Role, Running, create_admin_key, create_operator, migrate, set_profile, start, start_as};
pub use engines::{Engines, connect_nats};
pub use settings::Settings;

/// Drives the voltbus that `settings` describe (its edge at `http.bind`, its NATS) with a
/// simulated fleet of `tenant`; makes the organisation's admin key when none is given. `local`
/// is that voltbus when it runs in this process: without NATS its devices then talk to it over its
/// embedded transport.
pub async fn simulate(
    settings: &Settings,
    tenant: &str,
    admin_key: Option<String>,
    local: Option<&Running>,
    plan: simulation::Plan,
    stop: impl Future<Output = ()>,
) -> anyhow::Result<simulation::Summary> {
    let admin_key = match admin_key {
        Some(key) => key,
        None => create_admin_key(settings, tenant, "voltbus simulate").await?.0,
    };
    let devices = match (&settings.nats.url, local) {
        (Some(url), _) => {
            let nats = connect_nats(settings, url, "voltbus-simulator").await?;
            nats.ensure_replicated_streams(settings.nats.retention(), Some(settings.nats.replicas)).await?;
            Some(nats.into())
        }
        (None, Some(running)) => Some(running.devices.clone()),
        (None, None) => None,
    };
    let tenant = schemas::TenantId::new(tenant).map_err(|e| anyhow::anyhow!("--tenant: {e}"))?;
    let edge = match settings.http.bind.ip() {
        ip if ip.is_unspecified() => std::net::SocketAddr::from(([127, 0, 0, 1], settings.http.bind.port())),
        _ => settings.http.bind,
    };
    let sign_in_code = settings.mobile.dev_code.as_ref().map(|code| code.expose().to_owned());
    let target = simulation::Target { edge, admin_key, tenant, devices, sign_in_code };
    Ok(simulation::run(target, plan, stop).await?)
}
