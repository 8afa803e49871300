//! The `emotion-stats` plugin: Prometheus series of what a model endpoint answered (top labels,
//! scores, tokens, outcomes).
//!
//! [`filter`] holds the proxy-wasm contexts (the only module that calls the host);
//! `config` is the `pluginConfig` as written, the other modules the logic, unit-tested natively
//! and on wasm (`wasm32-wasip1` and `wasm32-unknown-unknown`). The public modules are what
//! model-gateway (`config`, `compiled`) and the fuzz targets in fuzz/ use.

pub mod compiled;
pub mod config;
mod filter;
pub mod metrics;
mod models;
pub mod prediction;
pub mod response;
pub mod usage;

pub use filter::{Filter, PluginRoot};

plugin_kit::plugin_crate!(filter::PLUGIN, |_| PluginRoot::default());
