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

pub use filter::{Filter, PluginRoot};

// The standalone module; a module linking several plugins makes its own root contexts.
#[cfg(feature = "module")]
proxy_wasm::main! {{
    plugin_common::host::install_panic_hook(filter::PLUGIN);
    proxy_wasm::set_log_level(proxy_wasm::types::LogLevel::Info);
    proxy_wasm::set_root_context(|context_id| -> Box<dyn proxy_wasm::traits::RootContext> {
        Box::new(PluginRoot::new(context_id))
    });
}}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    #[test]
    fn config_uses_no_module_and_no_modules_use_each_other() {
        let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        plugin_common::layout::check_module_imports(&src).unwrap();
    }
}
