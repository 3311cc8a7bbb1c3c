//! The connector contract.
//!
//! Everything a connector needs to plug into floodgate, and nothing about any vendor:
//! action descriptions (input schema, risk class, revertibility, idempotency), the call a
//! connector receives, what it returns, errors that say whether they are retryable, secret
//! wrappers that never print, a durable key/value store for vendor references, and one HTTP
//! layer that retries the way every vendor expects (429/5xx honouring `Retry-After`, never
//! other 4xx).
//!
//! This crate must never depend on the engine: the engine depends on it. It changes rarely.

mod action;
mod approval;
mod error;
pub mod http;
mod refs;
mod risk;
mod secret;
pub mod text;

#[cfg(feature = "conformance")]
pub mod conformance;
#[cfg(feature = "sim")]
pub mod sim;

pub use action::{
    ActionCall, ActionOutput, ActionSpec, CallContext, Connector, ConnectorKind, EndRun, Plan, PlannedRequest,
    input_schema,
};
pub use approval::ApprovalRequest;
pub use error::{ActionError, BuildError};
pub use refs::{MemoryRefStore, RefStore};
pub use risk::RiskClass;
pub use secret::{Secret, SecretError, SecretRef};

/// Re-exported so every connector uses the same `async_trait` expansion as the trait itself.
pub use async_trait::async_trait;
/// Re-exported so connectors derive input schemas with the same version the engine reads.
pub use schemars;
