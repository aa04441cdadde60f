//! Prometheus metrics: refreshes by provider and outcome, refresh latency, OAuth flows,
//! tokens served, HTTP requests by route, clients by status (counted from the database at
//! scrape time), the build and the process (CPU, memory, open files).
//!
//! Every family shows from the first scrape: label sets known in advance start at zero,
//! so dashboards and alerts (`rate(…)`, `absent(…)`) work before anything has happened.
//! To add a metric: a field, one `register(…)` line in `Metrics::new`, and its zeros in
//! `preset` when its labels are known in advance.

use prometheus::core::Collector;
use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry, TextEncoder,
};

/// Why a service API request was refused for its key.
const KEY_REJECTIONS: [&str; 2] = ["invalid_key", "rate_limited"];
/// What `lifecycle` records as a refresh's outcome.
const REFRESH_OUTCOMES: [&str; 4] = ["success", "invalid_grant", "transient", "rejected"];
/// The stages `flow` records.
const FLOW_STAGES: [&str; 3] = ["started", "completed", "failed"];
const CLIENT_STATUSES: [&str; 4] = ["active", "needs_reauth", "error", "disconnected"];
/// The `route` label of requests that matched no route (or that a middleware, such as the
/// CSRF check, refused before routing): raw paths never become labels, so a scanner
/// cannot create a series per URL it tries.
pub const UNMATCHED_ROUTE: &str = "unmatched";
/// HTTP methods kept as labels; any other becomes "OTHER" (clients may send any token).
const HTTP_METHODS: [&str; 7] = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];
/// Routes monitoring hits from the start, so the HTTP families are never empty.
const PROBED_ROUTES: [&str; 2] = ["/healthz", "/metrics"];

pub struct Metrics {
    registry: Registry,
    providers: Vec<String>,
    pub refreshes: IntCounterVec,
    pub refresh_seconds: HistogramVec,
    pub oauth_flows: IntCounterVec,
    pub tokens_served: IntCounterVec,
    http_requests: IntCounterVec,
    http_seconds: HistogramVec,
    /// Service API requests refused for their key, by reason (`invalid_key`, `rate_limited`).
    pub service_key_rejections: IntCounterVec,
    clients: IntGaugeVec,
    /// Sync runs by provider, model and outcome (`succeeded`, `failed`).
    pub sync_runs: IntCounterVec,
    /// Records added, changed or marked deleted by syncs.
    pub sync_records_written: IntCounterVec,
    pub sync_run_seconds: HistogramVec,
    /// Provider calls held back to stay under a rate budget, and refused because the
    /// wait would have been too long (`budgets`).
    pub budget_delays: IntCounterVec,
    pub budget_refusals: IntCounterVec,
    /// Each provider's refresh breaker: 0 closed, 1 half-open, 2 open (set at scrape time).
    breaker_state: IntGaugeVec,
    /// How often a provider's breaker opened (after failures in a row or a failed probe).
    pub breaker_opened: IntCounterVec,
    /// Refreshes not attempted because the provider's breaker was open.
    pub refreshes_held_back: IntCounterVec,
}

impl Metrics {
    /// Metrics with zeros for the label sets that name no provider.
    pub fn new() -> Self {
        Self::for_providers([])
    }

    /// Metrics with zeros for each of these providers' label sets too.
    pub fn for_providers<'a>(providers: impl IntoIterator<Item = &'a str>) -> Self {
        let registry = Registry::new();
        let counter = |name, help, labels| {
            register(&registry, IntCounterVec::new(Opts::new(name, help), labels))
        };
        let histogram = |name, help, buckets: &[f64], labels| {
            let opts = HistogramOpts::new(name, help).buckets(buckets.to_vec());
            register(&registry, HistogramVec::new(opts, labels))
        };
        let metrics = Self {
            providers: providers.into_iter().map(str::to_string).collect(),
            refreshes: counter(
                "connecthub_token_refreshes_total",
                "Token refreshes by provider and outcome",
                &["provider", "outcome"],
            ),
            refresh_seconds: histogram(
                "connecthub_token_refresh_duration_seconds",
                "Time to refresh a token at the provider",
                &[0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0],
                &["provider"],
            ),
            oauth_flows: counter(
                "connecthub_oauth_flows_total",
                "OAuth flows by provider and stage",
                &["provider", "stage"],
            ),
            tokens_served: counter(
                "connecthub_tokens_served_total",
                "Tokens handed to services by provider",
                &["provider"],
            ),
            http_requests: counter(
                "connecthub_http_requests_total",
                "HTTP requests by method, route pattern and status",
                &["method", "route", "status"],
            ),
            http_seconds: histogram(
                "connecthub_http_request_duration_seconds",
                "Time to answer an HTTP request, by method and route pattern",
                &[
                    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
                ],
                &["method", "route"],
            ),
            service_key_rejections: counter(
                "connecthub_service_key_rejections_total",
                "Service API requests refused for their API key, by reason",
                &["reason"],
            ),
            clients: register(
                &registry,
                IntGaugeVec::new(
                    Opts::new("connecthub_clients", "Clients by provider and status"),
                    &["provider", "status"],
                ),
            ),
            sync_runs: counter(
                "connecthub_sync_runs_total",
                "Sync runs by provider, model and outcome",
                &["provider", "model", "outcome"],
            ),
            sync_records_written: counter(
                "connecthub_sync_records_written_total",
                "Records added, changed or marked deleted by syncs",
                &["provider", "model"],
            ),
            sync_run_seconds: histogram(
                "connecthub_sync_run_duration_seconds",
                "Time from a sync run's start to its end",
                &[0.1, 0.5, 1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 3600.0],
                &["provider", "model"],
            ),
            budget_delays: counter(
                "connecthub_provider_budget_delays_total",
                "Provider calls delayed to stay under the provider's rate budget",
                &["provider"],
            ),
            budget_refusals: counter(
                "connecthub_provider_budget_refusals_total",
                "Provider calls refused (429) because their rate budget had no room in time",
                &["provider"],
            ),
            breaker_state: register(
                &registry,
                IntGaugeVec::new(
                    Opts::new(
                        "connecthub_provider_breaker_state",
                        "Refresh circuit breaker per provider: 0 closed, 1 half-open, 2 open",
                    ),
                    &["provider"],
                ),
            ),
            breaker_opened: counter(
                "connecthub_provider_breaker_opened_total",
                "Times a provider's refresh breaker opened",
                &["provider"],
            ),
            refreshes_held_back: counter(
                "connecthub_token_refreshes_held_back_total",
                "Refreshes not attempted because the provider's breaker was open",
                &["provider"],
            ),
            registry,
        };
        register_build_and_process(&metrics.registry);
        metrics.preset();
        metrics
    }

    /// Zero for every label set known in advance (counters and histograms only appear in
    /// the exposition once a label set exists).
    fn preset(&self) {
        for provider in self.providers.iter().map(String::as_str) {
            for outcome in REFRESH_OUTCOMES {
                self.refreshes.with_label_values(&[provider, outcome]);
            }
            for stage in FLOW_STAGES {
                self.oauth_flows.with_label_values(&[provider, stage]);
            }
            self.refresh_seconds.with_label_values(&[provider]);
            self.tokens_served.with_label_values(&[provider]);
            self.budget_delays.with_label_values(&[provider]);
            self.budget_refusals.with_label_values(&[provider]);
            self.breaker_state.with_label_values(&[provider]).set(0);
            self.breaker_opened.with_label_values(&[provider]);
            self.refreshes_held_back.with_label_values(&[provider]);
            for model in crate::providers::syncs::builtin_models(provider) {
                for outcome in ["succeeded", "failed"] {
                    self.sync_runs
                        .with_label_values(&[provider, model, outcome]);
                }
                self.sync_records_written
                    .with_label_values(&[provider, model]);
                self.sync_run_seconds.with_label_values(&[provider, model]);
            }
        }
        for route in PROBED_ROUTES {
            self.http_requests.with_label_values(&["GET", route, "200"]);
            self.http_seconds.with_label_values(&["GET", route]);
        }
        for reason in KEY_REJECTIONS {
            self.service_key_rejections.with_label_values(&[reason]);
        }
    }

    pub fn flow(&self, provider: &str, stage: &str) {
        self.oauth_flows.with_label_values(&[provider, stage]).inc();
    }

    /// One answered request. `route` is the matched pattern (`/api/v1/clients/{id}/token`),
    /// never the raw path; None when no route matched.
    pub fn http_request(&self, method: &str, route: Option<&str>, status: u16, seconds: f64) {
        let method = HTTP_METHODS
            .into_iter()
            .find(|known| *known == method)
            .unwrap_or("OTHER");
        let route = route.unwrap_or(UNMATCHED_ROUTE);
        self.http_requests
            .with_label_values(&[method, route, &status.to_string()])
            .inc();
        self.http_seconds
            .with_label_values(&[method, route])
            .observe(seconds);
    }

    /// Sets the breaker gauges: the providers listed are not closed, every other is.
    pub fn set_breakers(&self, not_closed: &[(String, crate::provider_health::BreakerState)]) {
        self.breaker_state.reset();
        for provider in &self.providers {
            self.breaker_state
                .with_label_values(&[provider.as_str()])
                .set(0);
        }
        for (provider, state) in not_closed {
            self.breaker_state
                .with_label_values(&[provider.as_str()])
                .set(state.gauge());
        }
    }

    /// The text exposition, with the client gauges set from `counts` (provider, status, n).
    pub fn render(&self, counts: &[(String, String, i64)]) -> String {
        self.clients.reset();
        for provider in &self.providers {
            for status in CLIENT_STATUSES {
                self.clients
                    .with_label_values(&[provider.as_str(), status])
                    .set(0);
            }
        }
        for (provider, status, n) in counts {
            self.clients
                .with_label_values(&[provider.as_str(), status.as_str()])
                .set(*n);
        }
        let mut out = Vec::new();
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        let mut text = String::from_utf8(out).unwrap_or_default();
        // Counted by the database layer itself (not a registry metric: it is global).
        text.push_str(&format!(
            "# HELP connecthub_db_statements_total Statements sent to the database by this process\n\
             # TYPE connecthub_db_statements_total counter\n\
             connecthub_db_statements_total {}\n",
            crate::db::statements_sent()
        ));
        text
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// Adds a metric to the registry and hands it back for recording.
fn register<M: Collector + Clone + 'static>(
    registry: &Registry,
    metric: prometheus::Result<M>,
) -> M {
    let metric = metric.expect("valid metric");
    registry
        .register(Box::new(metric.clone()))
        .expect("metric names are unique");
    metric
}

/// `connecthub_build_info{version="…"} 1`, and on Linux the standard `process_*` families
/// (CPU seconds, resident memory, open and maximum file descriptors, threads, start time).
fn register_build_and_process(registry: &Registry) {
    let build = register(
        registry,
        IntGaugeVec::new(
            Opts::new(
                "connecthub_build_info",
                "The running connecthub version (always 1)",
            ),
            &["version"],
        ),
    );
    build.with_label_values(&[env!("CARGO_PKG_VERSION")]).set(1);
    #[cfg(target_os = "linux")]
    registry
        .register(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        ))
        .expect("process metric names are unique");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fresh_registry_shows_every_family_with_zeros_for_known_providers() {
        let text = Metrics::for_providers(["klaviyo"]).render(&[]);
        for line in [
            r#"connecthub_token_refreshes_total{outcome="invalid_grant",provider="klaviyo"} 0"#,
            r#"connecthub_oauth_flows_total{provider="klaviyo",stage="started"} 0"#,
            r#"connecthub_tokens_served_total{provider="klaviyo"} 0"#,
            r#"connecthub_token_refresh_duration_seconds_count{provider="klaviyo"} 0"#,
            r#"connecthub_clients{provider="klaviyo",status="needs_reauth"} 0"#,
            r#"connecthub_http_requests_total{method="GET",route="/metrics",status="200"} 0"#,
            r#"connecthub_build_info{version=""#,
        ] {
            assert!(text.contains(line), "{line} missing from\n{text}");
        }
    }

    #[test]
    fn unknown_methods_and_unmatched_paths_get_fixed_labels() {
        let metrics = Metrics::new();
        metrics.http_request("BREW", None, 404, 0.001);
        let text = metrics.render(&[]);
        assert!(text.contains(
            r#"connecthub_http_requests_total{method="OTHER",route="unmatched",status="404"} 1"#
        ));
    }
}
