//! Wire types shared by arkor's backend, SDK and Studio.
//!
//! Data plus serde only: no IO, no business logic. Every change here is an API change.
//! This crate grows with the backend; today it holds the error vocabulary used by HTTP
//! responses and SSE `error` frames, and the names of the job events.

pub mod error;
pub mod event;
