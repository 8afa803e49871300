//! The `path-allowlist` plugin: a request's path checked against Istio `AuthorizationPolicy`
//! operation rules before it is routed.
//!
//! [`filter`] holds the proxy-wasm contexts (the only module that calls the host);
//! `config` is the `pluginConfig` as written, the other modules the logic, unit-tested natively
//! and on wasm (`wasm32-wasip1` and `wasm32-unknown-unknown`). The public modules are what
//! model-gateway (`config`, `compiled`) and the fuzz targets in fuzz/ use.

pub mod compiled;
pub mod config;
mod filter;
mod metrics;
pub mod policy;

pub use filter::{Filter, PluginRoot};

plugin_kit::plugin_crate!(filter::PLUGIN, |_| PluginRoot::default());
