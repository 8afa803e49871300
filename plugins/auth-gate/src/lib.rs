//! The `auth-gate` plugin: Istio's `RequestAuthentication` (JWT) and `AuthorizationPolicy`,
//! decided in the proxy.
//!
//! [`filter`] holds the proxy-wasm contexts (the only module that calls the host);
//! `config` is the `pluginConfig` as written, the other modules the logic, unit-tested natively
//! and on wasm (`wasm32-wasip1` and `wasm32-unknown-unknown`). The public modules are what
//! model-gateway (`config`, `compiled`) and the fuzz targets in fuzz/ use.

mod authn;
mod cache;
pub mod compiled;
pub mod config;
mod constant_time;
mod filter;
mod gate;
mod ip;
pub mod jwks;
mod metrics;
pub mod policy;
mod remote;
pub mod request;
#[cfg(test)]
mod testkeys;
pub mod token;

pub use filter::{Filter, Next, PluginRoot};

plugin_kit::plugin_crate!(filter::PLUGIN, PluginRoot::new);
