//! Wire types shared by arkor's backend, SDK and Studio.
//!
//! Data plus serde only: no IO, no business logic. Every change here is an API change.
//! Keys are camelCase on arkor's own `/v1` routes (as in the reference system) and
//! snake_case on the OpenAI-compatible ones.

pub mod auth;
pub mod endpoint;
pub mod error;
pub mod event;
pub mod inference;
pub mod job;
pub mod tasks;

/// The header every request must carry: `arkor/<version>`.
pub const CLIENT_HEADER: &str = "x-arkor-client";
/// This crate's version, which clients send in [`CLIENT_HEADER`].
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// Versions of the client the backend accepts.
pub const SUPPORTED_CLIENT_RANGE: &str = ">=0.0.0";
