//! Test fixtures shared by arkor's crates: tiny random models in Hugging Face layout,
//! small chat datasets, and float comparisons with explicit tolerances.
//!
//! Nothing here touches the network; every fixture is generated into a temp directory,
//! except the real model and llama.cpp of [`real`], which CI fetches beforehand,
//! and the PostgreSQL server of [`pg`] and the bucket of [`s3`], which CI starts.

pub mod check;
pub mod fixtures;
pub mod pg;
pub mod real;
pub mod s3;
