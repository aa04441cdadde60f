//! One integration-test binary (links once): a module per feature.

mod helpers;

mod api_keys;
mod audit_page;
mod bad_input;
mod browser;
mod cli;
mod client_details;
mod clients_list;
mod connections;
mod lifecycle;
mod login;
mod metrics;
mod oauth;
mod operations;
mod pages;
mod providers;
mod proxy;
mod refresh_schedule;
mod service_limits;
mod service_tokens;
mod shutdown;
mod usage_page;
mod usage_volume;
mod users;
