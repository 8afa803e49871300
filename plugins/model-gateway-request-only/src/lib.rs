//! The `model-gateway-request-only` plugin: model-gateway's request-side sections (auth-gate,
//! path-allowlist, local-ratelimit) in a module that exports no response callback, so Envoy
//! enters its VM once per request, as it enters path-allowlist's or auth-gate's own module.
//! model-gateway itself must export the response callbacks that emotion-stats and
//! local-ratelimit's `x-ratelimit-*` headers need, and Envoy enters a module for every callback
//! it exports, whatever its configuration.
//!
//! `config` is the `pluginConfig` as written; `compiled` refuses what needs a response callback
//! and hands the rest to model-gateway's `compile`, whose contexts run the sections.

mod compiled;
mod config;

/// The name in log lines and refusals.
pub const PLUGIN: &str = "model-gateway-request-only";

/// The root context: model-gateway's, reading this module's `pluginConfig`.
pub fn root(context_id: u32) -> model_gateway::PluginRoot {
    model_gateway::PluginRoot::of_module(context_id, PLUGIN, |plugin| {
        plugin_kit::host::load_config(plugin, compiled::compile)
    })
}

plugin_kit::plugin_crate!(PLUGIN, root);
