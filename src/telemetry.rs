//! `tracing` set-up (human lines by default, JSON on request), OpenTelemetry traces exported over
//! OTLP when `otel.endpoint` is set, and the Prometheus recorder behind `GET /metrics`.

use std::sync::OnceLock;
use std::time::Duration;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use tracing_subscriber::EnvFilter;

use anyhow::Context as _;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig as _;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider};

use crate::settings::{LogFormat, LogSettings, OtelSettings};

/// Installs the global subscriber. `RUST_LOG`, when set, overrides `log.filter`.
pub fn init(settings: &LogSettings) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(&settings.filter));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    // A second init (tests starting several apps) keeps the first subscriber.
    let _ = match settings.format {
        LogFormat::Human => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).with_current_span(true).try_init(),
    };
}

/// Starts exporting spans when `otel.endpoint` is set: a batch processor on its own thread sends
/// them over OTLP/HTTP; the returned provider flushes what is left when shut down.
pub fn traces(settings: &OtelSettings) -> anyhow::Result<Option<SdkTracerProvider>> {
    let Some(endpoint) = &settings.endpoint else { return Ok(None) };
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_endpoint(format!("{}/v1/traces", endpoint.trim_end_matches('/')))
        .with_timeout(Duration::from_secs(10))
        .build()
        .with_context(|| format!("otel.endpoint {}", endpoint.redacted()))?;
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(settings.sample_ratio))))
        .with_resource(Resource::builder().with_service_name(settings.service_name.clone()).build())
        .build();
    bus::traces::enable(provider.tracer("voltbus"));
    tracing::info!(endpoint = %endpoint.redacted(), "exporting traces over OTLP");
    Ok(Some(provider))
}

/// How often histograms are folded and idle series looked after, scraped or not.
const UPKEEP_EVERY: Duration = Duration::from_secs(5);

/// The process's Prometheus recorder, installed on first use (one per process: tests that start
/// several platforms share it); `None` if another recorder was installed first.
pub fn metrics() -> Option<&'static PrometheusHandle> {
    static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let installed = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), bus::metrics::SECONDS_BUCKETS)
                .and_then(PrometheusBuilder::install_recorder);
            match installed {
                Ok(handle) => {
                    bus::metrics::describe();
                    // Without upkeep, histogram samples pile up between scrapes.
                    let upkeep = handle.clone();
                    let spawned = std::thread::Builder::new().name("metrics-upkeep".into()).spawn(move || {
                        loop {
                            std::thread::sleep(UPKEEP_EVERY);
                            upkeep.run_upkeep();
                        }
                    });
                    if let Err(error) = spawned {
                        tracing::warn!(%error, "no metrics upkeep thread; histograms are folded at scrape only");
                    }
                    Some(handle)
                }
                Err(error) => {
                    tracing::warn!(%error, "no Prometheus recorder; GET /metrics answers 404");
                    None
                }
            }
        })
        .as_ref()
}
