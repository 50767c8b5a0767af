//! Test fixtures shared by arkor's crates: tiny random models in Hugging Face layout,
//! small chat datasets, and float comparisons with explicit tolerances.
//!
//! Nothing here touches the network; every fixture is generated into a temp directory.

pub mod check;
pub mod fixtures;
