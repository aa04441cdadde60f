//! connecthub's domain (accounts, clients, OAuth, providers, operations, proxy, usage,
//! audit, API keys) and infrastructure (database, vault, configuration, provider HTTP
//! client, metrics). Nothing here knows of pages or the JSON API: the `connecthub` crate
//! above maps these types to HTTP.

pub mod api_keys;
pub mod audit;
pub mod auth;
pub mod backup;
pub mod budgets;
pub mod cache_generation;
pub mod clients;
pub mod config;
pub mod connect;
pub mod db;
pub mod duration;
pub mod env;
pub mod input;
pub mod invalidation;
pub mod ip_ranges;
pub mod jobs;
pub mod local_path;
pub mod metrics;
pub mod oauth;
pub mod operations;
pub mod provider_admin;
pub mod provider_clients;
pub mod provider_health;
pub mod provider_http;
pub mod provider_webhooks;
pub mod providers;
pub mod proxy;
pub mod rate_limit;
pub mod state;
pub mod syncs;
pub mod telemetry;
pub mod ttl_cache;
pub mod usage;
pub mod vault;
pub mod webhook_settings;
pub mod webhooks;
