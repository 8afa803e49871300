//! The `path-allowlist` plugin: a request's path checked against Istio `AuthorizationPolicy`
//! operation rules before it is routed.
//!
//! [`filter`] holds the proxy-wasm contexts (the only module that calls the host);
//! `config` is the `pluginConfig` as written, the other modules the logic, unit-tested natively
//! and on `wasm32-wasip1`.

#[doc(hidden)] // public for the fuzz targets in fuzz/
pub mod compiled;
#[doc(hidden)] // public for the fuzz targets in fuzz/
pub mod config;
mod filter;
mod metrics;
#[doc(hidden)] // public for the fuzz targets in fuzz/
pub mod policy;

pub use filter::{Filter, PluginRoot};

plugin_kit::plugin_crate!(filter::PLUGIN, |_| PluginRoot::default());
