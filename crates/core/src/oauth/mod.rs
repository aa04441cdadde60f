//! OAuth 2.0 client side: the flow, the token endpoint and profiles.

pub mod callback;
pub mod disconnect;
pub mod flow;
pub mod holder;
pub mod interrupted;
pub mod lifecycle;
pub mod pkce;
pub mod profile;
pub mod refresh_history;
pub mod refresher;
pub mod schedule;
pub mod states;
pub mod token_cache;
pub mod token_client;
