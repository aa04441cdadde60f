//! One integration-test binary (links once): a module per feature.

mod helpers;

mod account_page;
mod api_keys;
mod audit_access;
mod audit_export;
mod audit_page;
mod bad_input;
pub mod browser;
mod cli;
mod client_details;
mod clients_list;
mod connections;
mod klaviyo_operations;
mod kustomer_operations;
mod lifecycle;
mod login;
mod metrics;
mod oauth;
mod oauth_failures;
mod operations;
mod pages;
mod provider_webhooks;
mod providers;
mod proxy;
mod refresh_schedule;
mod service_limits;
mod service_tokens;
mod shutdown;
mod token_sealing;
mod usage_page;
mod usage_volume;
mod user_actions;
mod users;
mod webhook_delivery;
mod webhook_pages;
mod webhooks;
