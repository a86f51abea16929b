//! `GET /metrics`: keyward's metrics (see [`keyward::metrics`]) in the Prometheus text format.
//!
//! The app installs a Prometheus recorder (`metrics-exporter-prometheus`, without its HTTP
//! listener: the app's own router serves the page) before it builds its keyward handle,
//! since the handle takes its counters from the recorder installed at that moment. Durations
//! (`*_seconds`) are rendered as Prometheus histograms with [`BUCKETS`].
//!
//! `/metrics` needs no key and no session: it is for the operator's scraper, and it shows
//! counts, never keys, owners or addresses. Like every operator endpoint it belongs on a
//! network the public does not reach; put it behind the reverse proxy's access rules when
//! the app itself is public.
//!
//! A process has one global recorder. The first app started in a process installs it; later
//! apps in the same process (tests start several) share it, so their series add up.

use std::sync::OnceLock;
use std::time::Duration;

use axum::http::StatusCode;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// The content type of the Prometheus text format.
pub const CONTENT_TYPE_PROMETHEUS: &str = "text/plain; version=0.0.4";

/// Histogram buckets of every `*_seconds` metric, in seconds: from a cache-miss lookup on a
/// local SQLite file (a fraction of a millisecond) to keyward's default store deadline (1 s)
/// and a slow usage write.
pub const BUCKETS: [f64; 14] = [
    0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

/// How often histogram samples are folded in when nobody scrapes (a scrape folds them too).
const UPKEEP_INTERVAL: Duration = Duration::from_secs(5);

static RECORDER: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Installs the process's Prometheus recorder on the first call; later calls return the same
/// handle. `None` when another recorder was installed first (then `/metrics` answers 404 and
/// the metrics go to that recorder).
pub fn install() -> Option<PrometheusHandle> {
    RECORDER
        .get_or_init(|| {
            let installed = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &BUCKETS)
                .and_then(PrometheusBuilder::install_recorder);
            match installed {
                Ok(handle) => {
                    let upkeep = handle.clone();
                    // A thread, not a task: the recorder outlives any one runtime.
                    let spawned = std::thread::Builder::new()
                        .name("metrics-upkeep".into())
                        .spawn(move || {
                            loop {
                                std::thread::sleep(UPKEEP_INTERVAL);
                                upkeep.run_upkeep();
                            }
                        });
                    if let Err(err) = spawned {
                        tracing::warn!(error = %err, "no metrics upkeep thread; scrapes still fold samples in");
                    }
                    Some(handle)
                }
                Err(err) => {
                    tracing::warn!(error = %err, "the Prometheus recorder was not installed; /metrics is off");
                    None
                }
            }
        })
        .clone()
}

/// `GET /metrics`.
pub async fn render() -> Response {
    match RECORDER.get().and_then(Option::as_ref) {
        Some(handle) => {
            ([(CONTENT_TYPE, CONTENT_TYPE_PROMETHEUS)], handle.render()).into_response()
        }
        None => StatusCode::NOT_FOUND.into_response(),
    }
}
