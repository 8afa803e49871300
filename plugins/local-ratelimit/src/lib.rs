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

// The standalone module; a module linking several plugins makes its own root contexts.
#[cfg(feature = "module")]
proxy_wasm::main! {{
    plugin_common::host::install_panic_hook(filter::PLUGIN);
    proxy_wasm::set_log_level(proxy_wasm::types::LogLevel::Info);
    proxy_wasm::set_root_context(|_| -> Box<dyn proxy_wasm::traits::RootContext> {
        Box::new(PluginRoot::default())
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
