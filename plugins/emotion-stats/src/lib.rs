//! The `emotion-stats` plugin: Prometheus series of what a model endpoint answered (top labels,
//! scores, tokens, outcomes).
//!
//! [`filter`] holds the proxy-wasm contexts (the only module that calls the host);
//! `config` is the `pluginConfig` as written, the other modules the logic, unit-tested natively
//! and on `wasm32-wasip1`.

#[doc(hidden)] // public for the fuzz targets in fuzz/
pub mod compiled;
#[doc(hidden)] // public for the fuzz targets in fuzz/
pub mod config;
mod filter;
#[doc(hidden)] // public for the fuzz targets in fuzz/
pub mod metrics;
mod models;
#[doc(hidden)] // public for the fuzz targets in fuzz/
pub mod prediction;
#[doc(hidden)] // public for the fuzz targets in fuzz/
pub mod response;
#[doc(hidden)] // public for the fuzz targets in fuzz/
pub mod usage;

pub use filter::{Filter, PluginRoot};

plugin_kit::plugin_crate!(filter::PLUGIN, |_| PluginRoot::default());
