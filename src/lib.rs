//! connecthub: a self-hosted OAuth connection hub.

pub mod api;
pub mod api_keys;
pub mod audit;
pub mod auth;
pub mod cli;
pub mod clients;
pub mod config;
pub mod db;
pub mod error;
pub mod http_util;
pub mod input;
pub mod local_path;
pub mod metrics;
pub mod oauth;
pub mod operations;
pub mod provider_http;
pub mod providers;
pub mod proxy;
pub mod rate_limit;
pub mod seed;
pub mod startup;
pub mod state;
pub mod telemetry;
pub mod usage;
pub mod vault;
pub mod web;
