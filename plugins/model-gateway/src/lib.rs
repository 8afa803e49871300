//! The `model-gateway` plugin: auth-gate, path-allowlist, local-ratelimit and emotion-stats in one
//! module and one filter, so a gateway runs one Wasm VM and enters it once per stream event
//! instead of once per plugin.
//!
//! `config` is the `pluginConfig` as written (one optional section per plugin, each exactly
//! that plugin's configuration); `compiled` checks every section before any is taken; [`filter`]
//! holds the contexts, which delegate to the plugins' own contexts in the order the standalone
//! plugins run (authentication, then the path allowlist, then the rate limit; the statistics on
//! the response).

#[doc(hidden)] // public for the fuzz targets in fuzz/
pub mod compiled;
#[doc(hidden)] // public for the fuzz targets in fuzz/
pub mod config;
mod filter;

pub use filter::{Filter, Load, PluginRoot};

plugin_kit::plugin_crate!(filter::PLUGIN, PluginRoot::new);
