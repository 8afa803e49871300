//! proxy-wasm glue of the `auth-gate` plugin; the logic lives in the other modules.

mod config;

use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{ContextType, LogLevel};
use std::rc::Rc;

const PLUGIN: &str = "auth-gate";

proxy_wasm::main! {{
    plugin_common::host::install_panic_hook(PLUGIN);
    proxy_wasm::set_log_level(LogLevel::Info);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(Root { config: None }) });
}}

struct Root {
    config: Option<Rc<config::Compiled>>,
}

impl Context for Root {}

impl RootContext for Root {
    fn on_configure(&mut self, _size: usize) -> bool {
        let loaded = plugin_common::host::load_config(
            PLUGIN,
            self.get_plugin_configuration(),
            config::compile,
        );
        match loaded {
            Some(compiled) => {
                self.config = Some(Rc::new(compiled));
                true
            }
            None => false,
        }
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        let config = self.config.clone()?;
        Some(Box::new(Request { _config: config }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

struct Request {
    _config: Rc<config::Compiled>,
}

impl Context for Request {}
impl HttpContext for Request {}
