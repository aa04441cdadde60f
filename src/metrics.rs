//! Prometheus metrics: refreshes by provider and outcome, refresh latency, OAuth flows,
//! and clients by status (counted from the database at scrape time).

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry, TextEncoder,
};

pub struct Metrics {
    registry: Registry,
    pub refreshes: IntCounterVec,
    pub refresh_seconds: HistogramVec,
    pub oauth_flows: IntCounterVec,
    pub tokens_served: IntCounterVec,
    /// Service API requests refused for their key, by reason (`invalid_key`, `rate_limited`).
    pub service_key_rejections: IntCounterVec,
    clients: IntGaugeVec,
}

impl Metrics {
    pub fn new() -> Self {
        let refreshes = IntCounterVec::new(
            Opts::new(
                "connecthub_token_refreshes_total",
                "Token refreshes by provider and outcome",
            ),
            &["provider", "outcome"],
        )
        .expect("valid metric");
        let refresh_seconds = HistogramVec::new(
            HistogramOpts::new(
                "connecthub_token_refresh_duration_seconds",
                "Time to refresh a token at the provider",
            )
            .buckets(vec![0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0]),
            &["provider"],
        )
        .expect("valid metric");
        let oauth_flows = IntCounterVec::new(
            Opts::new(
                "connecthub_oauth_flows_total",
                "OAuth flows by provider and stage",
            ),
            &["provider", "stage"],
        )
        .expect("valid metric");
        let tokens_served = IntCounterVec::new(
            Opts::new(
                "connecthub_tokens_served_total",
                "Tokens handed to services by provider",
            ),
            &["provider"],
        )
        .expect("valid metric");
        let clients = IntGaugeVec::new(
            Opts::new("connecthub_clients", "Clients by provider and status"),
            &["provider", "status"],
        )
        .expect("valid metric");
        let service_key_rejections = IntCounterVec::new(
            Opts::new(
                "connecthub_service_key_rejections_total",
                "Service API requests refused for their API key, by reason",
            ),
            &["reason"],
        )
        .expect("valid metric");
        let registry = Registry::new();
        for metric in [
            Box::new(refreshes.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(refresh_seconds.clone()),
            Box::new(oauth_flows.clone()),
            Box::new(tokens_served.clone()),
            Box::new(clients.clone()),
            Box::new(service_key_rejections.clone()),
        ] {
            registry.register(metric).expect("metric names are unique");
        }
        Self {
            registry,
            refreshes,
            refresh_seconds,
            oauth_flows,
            tokens_served,
            service_key_rejections,
            clients,
        }
    }

    pub fn flow(&self, provider: &str, stage: &str) {
        self.oauth_flows.with_label_values(&[provider, stage]).inc();
    }

    /// The text exposition, with the client gauges set from `counts` (provider, status, n).
    pub fn render(&self, counts: &[(String, String, i64)]) -> String {
        self.clients.reset();
        for (provider, status, n) in counts {
            self.clients
                .with_label_values(&[provider.as_str(), status.as_str()])
                .set(*n);
        }
        let mut out = Vec::new();
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        String::from_utf8(out).unwrap_or_default()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
