//! floodgate: incident-response orchestration for Databricks lakehouses.
//!
//! The library holds everything; `main.rs` only parses the command line and calls in here.

pub mod alert;
pub mod api;
pub mod bench;
pub mod cli;
pub mod clock;
pub mod config;
pub mod connectors;
pub mod duration;
pub mod engine;
pub mod failpoint;
pub mod ingest;
pub mod metrics;
pub mod notify;
pub mod playbook;
pub mod server;
pub mod simulate;
pub mod store;
pub mod text;
pub mod web;
