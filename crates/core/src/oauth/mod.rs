//! OAuth 2.0 client side: the flow, the token endpoint and profiles.

pub mod callback;
pub mod credential;
pub mod direct_connect;
pub mod disconnect;
pub mod flow;
mod held_back;
pub mod holder;
pub mod interrupted;
pub mod key_input;
pub mod lifecycle;
pub mod pkce;
pub mod profile;
pub mod refresh_history;
mod refreshed;
pub mod refresher;
pub mod refresher_settings;
pub mod schedule;
pub mod states;
mod stored;
pub mod token_answer;
pub mod token_cache;
pub mod token_client;
pub mod token_error;
