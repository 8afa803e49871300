//! The proxy-wasm contexts of `model-gateway`: one root context holding the root contexts of the
//! configured plugins, one HTTP context holding their HTTP contexts. A request passes them in
//! the order the standalone plugins run: auth-gate, path-allowlist, local-ratelimit, then
//! emotion-stats (which only watches); the first refusal answers it and stops the rest. The
//! request's headers are read once for all of them ([`RequestHeaders`]).

use crate::compiled;
use plugin_kit::host::RequestHeaders;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType};
use std::cell::RefCell;
use std::rc::Rc;

pub(crate) const PLUGIN: &str = "model-gateway";

/// Requests paused by auth-gate until remote keys load, with the filters that run after it:
/// auth-gate's root context runs them when it admits the request.
type Paused = Rc<RefCell<Vec<(u32, Rc<RefCell<AfterAuth>>)>>>;

/// The root context: the plugins' root contexts, each made when its section first appears
/// (its counters are defined then, never for a plugin that is off).
pub struct PluginRoot {
    context_id: u32,
    /// The module's name in log lines, and how it reads and compiles its `pluginConfig`.
    plugin: &'static str,
    load: Load,
    auth_gate: Option<auth_gate::PluginRoot>,
    path_allowlist: Option<path_allowlist::PluginRoot>,
    local_ratelimit: Option<local_ratelimit::PluginRoot>,
    emotion_stats: Option<emotion_stats::PluginRoot>,
    /// Which sections the accepted configuration has. A plugin whose section is removed keeps
    /// its root context (auth-gate's may still answer requests paused under the old one) but
    /// sees no new request.
    on: Sections,
    paused: Paused,
}

#[derive(Debug, Default, Clone, Copy)]
struct Sections {
    auth_gate: bool,
    path_allowlist: bool,
    local_ratelimit: bool,
    emotion_stats: bool,
}

/// Reads the `pluginConfig` and compiles it, logging a refusal under the module's name.
pub type Load = fn(plugin: &'static str) -> Option<compiled::Compiled>;

impl PluginRoot {
    /// `context_id`: the host's id of this root context (auth-gate's root context restores it
    /// after waking paused requests).
    pub fn new(context_id: u32) -> Self {
        Self::of_module(context_id, PLUGIN, |plugin| {
            plugin_kit::host::load_config(plugin, compiled::compile)
        })
    }

    /// The root context of another module built on this one's contexts: its name, and its
    /// own `pluginConfig` compiled into this one's sections.
    pub fn of_module(context_id: u32, plugin: &'static str, load: Load) -> Self {
        PluginRoot {
            context_id,
            plugin,
            load,
            auth_gate: None,
            path_allowlist: None,
            local_ratelimit: None,
            emotion_stats: None,
            on: Sections::default(),
            paused: Rc::default(),
        }
    }

    /// Takes an accepted configuration: each configured plugin gets its section. `false` when a
    /// plugin cannot start on the host (the rate limit's shared data, auth-gate's tick); the
    /// plugins configured before it in this call keep their new section.
    pub fn configure(&mut self, compiled: compiled::Compiled) -> bool {
        if compiled.is_empty() {
            let plugin = self.plugin;
            log::warn!("{plugin}: no section is configured; every request passes untouched");
        }
        let on = Sections {
            auth_gate: compiled.auth_gate.is_some(),
            path_allowlist: compiled.path_allowlist.is_some(),
            local_ratelimit: compiled.local_ratelimit.is_some(),
            emotion_stats: compiled.emotion_stats.is_some(),
        };
        // The two that can fail on the host first.
        if let Some(section) = compiled.local_ratelimit {
            let root = self.local_ratelimit.get_or_insert_with(Default::default);
            if !root.configure(section) {
                return false;
            }
        }
        if let Some(section) = compiled.auth_gate {
            let context_id = self.context_id;
            let root = self.auth_gate.get_or_insert_with(|| {
                let mut root = auth_gate::PluginRoot::new(context_id);
                root.set_next(resume_after_auth(self.paused.clone()));
                root
            });
            if !root.configure(section) {
                return false;
            }
        }
        if let Some(section) = compiled.path_allowlist {
            self.path_allowlist
                .get_or_insert_with(Default::default)
                .configure(section);
        }
        if let Some(section) = compiled.emotion_stats {
            self.emotion_stats
                .get_or_insert_with(Default::default)
                .configure(section);
        }
        self.on = on;
        true
    }

    /// The HTTP context of request `context_id`: the configured plugins' contexts, none for a
    /// plugin that is off.
    pub fn filter(&self, context_id: u32) -> Filter {
        let on = self.on;
        let auth_gate = self.auth_gate.as_ref().filter(|_| on.auth_gate);
        let path_allowlist = self.path_allowlist.as_ref().filter(|_| on.path_allowlist);
        let local_ratelimit = self.local_ratelimit.as_ref().filter(|_| on.local_ratelimit);
        let emotion_stats = self.emotion_stats.as_ref().filter(|_| on.emotion_stats);
        Filter {
            context_id,
            plugin: self.plugin,
            auth_gate: auth_gate.and_then(|root| root.filter(context_id)),
            after_auth: Rc::new(RefCell::new(AfterAuth {
                path_allowlist: path_allowlist.and_then(path_allowlist::PluginRoot::filter),
                local_ratelimit: local_ratelimit.and_then(local_ratelimit::PluginRoot::filter),
                emotion_stats: emotion_stats.and_then(emotion_stats::PluginRoot::filter),
            })),
            paused: self.paused.clone(),
        }
    }
}

/// What auth-gate's root context runs on a request it admitted after the request waited for
/// keys: the filters after auth-gate, with the headers auth-gate just read.
fn resume_after_auth(paused: Paused) -> auth_gate::Next {
    Rc::new(move |context_id, headers| {
        let after_auth = {
            let mut paused = paused.borrow_mut();
            let position = paused.iter().position(|(id, _)| *id == context_id);
            position.map(|position| paused.swap_remove(position).1)
        };
        match after_auth {
            Some(after_auth) => match after_auth.try_borrow_mut() {
                Ok(mut after_auth) => after_auth.on_request(headers),
                Err(_) => Action::Pause, // Never expected; never forwarded unchecked.
            },
            None => Action::Continue,
        }
    })
}

impl Context for PluginRoot {
    fn on_http_call_response(&mut self, token: u32, headers: usize, body: usize, trailers: usize) {
        // Only auth-gate dispatches calls (its JWKS fetches).
        if let Some(root) = &mut self.auth_gate {
            root.on_http_call_response(token, headers, body, trailers);
        }
    }
}

impl RootContext for PluginRoot {
    fn on_configure(&mut self, _size: usize) -> bool {
        (self.load)(self.plugin).is_some_and(|compiled| self.configure(compiled))
    }

    fn on_tick(&mut self) {
        // Only auth-gate sets a tick (remote keys, paused requests).
        if let Some(root) = &mut self.auth_gate {
            root.on_tick();
        }
    }

    fn create_http_context(&self, context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(self.filter(context_id)))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

/// The HTTP context of one request: the configured plugins' HTTP contexts.
pub struct Filter {
    context_id: u32,
    /// The module's name in log lines.
    plugin: &'static str,
    auth_gate: Option<auth_gate::Filter>,
    /// Shared with the root context while auth-gate keeps the request paused for keys.
    after_auth: Rc<RefCell<AfterAuth>>,
    paused: Paused,
}

/// The filters after auth-gate.
struct AfterAuth {
    path_allowlist: Option<path_allowlist::Filter>,
    local_ratelimit: Option<local_ratelimit::Filter>,
    emotion_stats: Option<emotion_stats::Filter>,
}

impl Filter {
    /// emotion-stats' context, for the response callbacks only it has.
    fn emotion_stats(&self) -> Option<std::cell::RefMut<'_, emotion_stats::Filter>> {
        let after_auth = self.after_auth.try_borrow_mut().ok()?;
        std::cell::RefMut::filter_map(after_auth, |after_auth| after_auth.emotion_stats.as_mut())
            .ok()
    }
}

impl AfterAuth {
    fn on_request(&mut self, headers: &mut RequestHeaders) -> Action {
        if let Some(filter) = &mut self.path_allowlist {
            if filter.on_request(headers) != Action::Continue {
                return Action::Pause;
            }
        }
        if let Some(filter) = &mut self.local_ratelimit {
            if filter.on_request(headers) != Action::Continue {
                return Action::Pause;
            }
        }
        if let Some(filter) = &mut self.emotion_stats {
            filter.on_request(headers);
        }
        Action::Continue
    }
}

impl Context for Filter {}

/// The host deletes the context when the stream ends (the module exports no `proxy_on_done`):
/// the plugins' contexts do their end-of-stream work as they drop, emotion-stats' once the
/// paused list no longer holds it.
impl Drop for Filter {
    fn drop(&mut self) {
        let (context_id, plugin) = (self.context_id, self.plugin);
        match self.paused.try_borrow_mut() {
            Ok(mut paused) => paused.retain(|(id, _)| *id != context_id),
            // Never expected (nothing else holds the list while a context drops).
            Err(_) => log::warn!("{plugin}: request {context_id} left in the paused list"),
        }
    }
}

impl HttpContext for Filter {
    fn on_http_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        let mut headers = RequestHeaders::default();
        if let Some(filter) = &mut self.auth_gate {
            if filter.on_request(&mut headers) != Action::Continue {
                if filter.waits_for_keys() {
                    self.paused
                        .borrow_mut()
                        .push((self.context_id, self.after_auth.clone()));
                }
                return Action::Pause;
            }
        }
        match self.after_auth.try_borrow_mut() {
            Ok(mut after_auth) => after_auth.on_request(&mut headers),
            // Never expected (the request is not paused); never forwarded unchecked.
            Err(_) => Action::Pause,
        }
    }

    fn on_http_response_headers(&mut self, num_headers: usize, end_of_stream: bool) -> Action {
        let Ok(mut after_auth) = self.after_auth.try_borrow_mut() else {
            return Action::Continue;
        };
        if let Some(filter) = &mut after_auth.local_ratelimit {
            filter.on_http_response_headers(num_headers, end_of_stream);
        }
        if let Some(filter) = &mut after_auth.emotion_stats {
            filter.on_http_response_headers(num_headers, end_of_stream);
        }
        Action::Continue
    }

    fn on_http_response_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        if let Some(mut filter) = self.emotion_stats() {
            filter.on_http_response_body(body_size, end_of_stream);
        }
        Action::Continue
    }

    fn on_http_response_trailers(&mut self, num_trailers: usize) -> Action {
        if let Some(mut filter) = self.emotion_stats() {
            filter.on_http_response_trailers(num_trailers);
        }
        Action::Continue
    }
}
