//! Pieces every plugin of this collection needs, free of proxy-wasm so they are unit-tested
//! natively and on wasm (`wasm32-wasip1` and `wasm32-unknown-unknown`).

pub mod config;
pub mod deny;
pub mod headers;
pub mod host;
pub mod istio;
#[cfg(not(target_arch = "wasm32"))]
pub mod layout;
pub mod metrics;
pub mod properties;
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

/// The root context of a plugin without timers or callouts: `on_configure` reads and compiles the
/// configuration ([`host::load_config`]) and hands it to the root's own `configure` (which a
/// module linking several plugins calls with its section), and each request gets the root's
/// `filter()`, `None` before a configuration was accepted.
#[macro_export]
macro_rules! root_context {
    ($root:ty, $plugin:expr, $compile:path) => {
        impl proxy_wasm::traits::Context for $root {}

        impl proxy_wasm::traits::RootContext for $root {
            fn on_configure(&mut self, _size: usize) -> bool {
                $crate::host::load_config($plugin, $compile)
                    .is_some_and(|compiled| self.configure(compiled))
            }

            fn create_http_context(
                &self,
                _context_id: u32,
            ) -> Option<Box<dyn proxy_wasm::traits::HttpContext>> {
                Some(Box::new(self.filter()?))
            }

            fn get_type(&self) -> Option<proxy_wasm::types::ContextType> {
                Some(proxy_wasm::types::ContextType::HttpContext)
            }
        }
    };
}

/// Makes a fieldless enum a [`metrics::CounterSet`]: its counters are the values of its `ALL`
/// array, which lists them in declaration order (so a counter's index is its discriminant;
/// [`metrics::check_counter_set`] checks it). The block gives `metric` (and `tags`, if any).
#[macro_export]
macro_rules! enum_counter_set {
    ($counter:ty { $($method:item)* }) => {
        impl $crate::metrics::CounterSet for $counter {
            fn all() -> Vec<Self> {
                Self::ALL.to_vec()
            }

            fn index(self) -> usize {
                self as usize
            }

            $($method)*
        }
    };
}
