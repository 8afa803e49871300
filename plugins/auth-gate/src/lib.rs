//! The `auth-gate` plugin: Istio's `RequestAuthentication` (JWT) and `AuthorizationPolicy`,
//! decided in the proxy.
//!
//! [`filter`] holds the proxy-wasm contexts (the only module that calls the host);
//! `config` is the `pluginConfig` as written, the other modules the logic, unit-tested natively
//! and on `wasm32-wasip1`.

mod authn;
mod cache;
#[doc(hidden)] // public for the fuzz targets in fuzz/
pub mod compiled;
#[doc(hidden)] // public for the fuzz targets in fuzz/
pub mod config;
mod filter;
mod gate;
mod ip;
#[doc(hidden)] // public for the fuzz targets in fuzz/
pub mod jwks;
mod metrics;
#[doc(hidden)] // public for the fuzz targets in fuzz/
pub mod policy;
mod remote;
#[doc(hidden)] // public for the fuzz targets in fuzz/
pub mod request;
#[cfg(test)]
mod testkeys;
#[doc(hidden)] // public for the fuzz targets in fuzz/
pub mod token;

pub use filter::{Filter, Next, PluginRoot};

plugin_kit::plugin_crate!(filter::PLUGIN, PluginRoot::new);
