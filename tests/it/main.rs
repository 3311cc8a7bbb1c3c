//! floodgate's end-to-end tests: one test binary, a module per area.

mod audit;
mod browser;
mod cli;
mod common;
mod crash;
mod detections;
mod engine;
mod harness;
mod intake;
mod notices;
mod policy;
mod reverts;
mod server;
mod validate;
mod vendors;
mod web;
