//! connecthub: a self-hosted OAuth connection hub.

pub mod audit;
pub mod auth;
pub mod cli;
pub mod config;
pub mod db;
pub mod error;
pub mod sandbox;
pub mod startup;
pub mod telemetry;
pub mod web;
