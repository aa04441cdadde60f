//! connecthub: a self-hosted OAuth connection hub. This crate is the HTTP layer (`web`
//! pages, `api` JSON) and the wiring (`startup`, `cli`); the domain and infrastructure
//! live in `connecthub-core` and are re-exported here under their own names.

pub use connecthub_core::{
    api_keys, audit, auth, backup, budgets, cache_generation, clients, config, connect, db,
    duration, env, input, invalidation, ip_ranges, jobs, local_path, metrics, oauth, operations,
    provider_admin, provider_http, provider_webhooks, providers, proxy, rate_limit, state, syncs,
    telemetry, usage, vault, webhook_settings, webhooks,
};

pub mod api;
pub mod cli;
pub mod error;
pub mod http_util;
pub mod route_table;
pub mod seed;
pub mod seed_connected;
pub mod startup;
pub mod web;
