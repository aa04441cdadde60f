//! Who is asking: accounts, passwords, users, roles, sessions and the sign-in rate limit.
//! The request extractors and CSRF guard that use them live in `web`.

pub mod accounts;
pub mod login_limiter;
pub mod password;
pub mod session_store;
pub mod users;
