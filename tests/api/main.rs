//! One integration-test binary (links once): a module per feature.

mod helpers;

mod browser;
mod cli;
mod login;
mod oauth;
mod pages;
mod providers;
