//! The `local-ratelimit` plugin: the rate limit service's configuration, enforced in the proxy
//! with token buckets in shared data.
//!
//! [`filter`] holds the proxy-wasm contexts (the only module that calls the host);
//! `config` is the `pluginConfig` as written, the other modules the logic, unit-tested natively
//! and on `wasm32-wasip1`.

#[doc(hidden)] // public for the fuzz targets in fuzz/
pub mod actions;
#[doc(hidden)] // public for the fuzz targets in fuzz/
pub mod bucket;
#[doc(hidden)] // public for the fuzz targets in fuzz/
pub mod compiled;
#[doc(hidden)] // public for the fuzz targets in fuzz/
pub mod config;
mod filter;
mod limiter;
#[doc(hidden)] // public for the fuzz targets in fuzz/
pub mod matcher;
mod metrics;
#[doc(hidden)] // public for the fuzz targets in fuzz/
pub mod store;

pub use filter::{Filter, PluginRoot};

plugin_kit::plugin_crate!(filter::PLUGIN, |_| PluginRoot::default());
