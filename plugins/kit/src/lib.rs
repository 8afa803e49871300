//! Pieces every plugin of this collection needs, free of proxy-wasm so they are unit-tested
//! natively and on `wasm32-wasip1`.

pub mod config;
pub mod deny;
pub mod host;
pub mod istio;
#[cfg(not(target_arch = "wasm32"))]
pub mod layout;
pub mod metrics;
#[cfg(not(target_arch = "wasm32"))]
pub mod schema;
pub mod shared;
mod tree;

/// The two things every plugin crate's `lib.rs` ends with: the standalone module's entry point
/// (`proxy_wasm::main!`, behind the crate's feature `module`, off by default, so that a module linking
/// several plugins can make its own root contexts), and the unit test that checks the crate's
/// module layout ([`layout::check_module_imports`]).
///
/// `plugin` names the plugin in logs (its panic hook); `root` makes the root context from its
/// context id.
#[macro_export]
macro_rules! plugin_crate {
    ($plugin:expr, $root:expr) => {
        #[cfg(feature = "module")]
        proxy_wasm::main! {{
            $crate::host::install_panic_hook($plugin);
            proxy_wasm::set_log_level(proxy_wasm::types::LogLevel::Info);
            proxy_wasm::set_root_context(|context_id| -> Box<dyn proxy_wasm::traits::RootContext> {
                Box::new($root(context_id))
            });
        }}

        #[cfg(all(test, not(target_arch = "wasm32")))]
        #[test]
        fn config_uses_no_module_and_no_modules_use_each_other() {
            let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
            $crate::layout::check_module_imports(&src).unwrap();
        }
    };
}
