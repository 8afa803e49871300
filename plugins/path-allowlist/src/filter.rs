//! The proxy-wasm contexts of the `path-allowlist` plugin, the only module that
//! calls the host; the logic lives in the other modules.
//!
//! Hostcalls go through `proxy_wasm::hostcalls` (not the trait helpers, which unwrap): a failed
//! hostcall must never trap the VM. A header that cannot be read is treated as missing, so a
//! missing `:path` is refused as malformed (fail closed); a counter that cannot be defined or
//! incremented is skipped.

use crate::metrics::Outcome;
use crate::policy::{Decision, Policy, Request};
use crate::{compiled, policy};
use plugin_kit::headers::text;
use plugin_kit::host::{HostMetrics, RequestHeaders};
use plugin_kit::istio::OperationMatcher;
use plugin_kit::metrics::CounterTable;
use proxy_wasm::traits::{Context, HttpContext};
use proxy_wasm::types::Action;
use std::rc::Rc;

pub(crate) const PLUGIN: &str = "path-allowlist";

/// The plugin's root context: the accepted policy and the counters its requests share.
pub struct PluginRoot {
    policy: Option<Rc<Policy>>,
    counters: Rc<CounterTable<Outcome>>,
}

impl PluginRoot {
    /// Defines the counters (a hostcall each); serves no request until a configuration is
    /// accepted.
    pub fn new() -> Self {
        PluginRoot {
            policy: None,
            counters: Rc::new(CounterTable::define(&mut HostMetrics { plugin: PLUGIN })),
        }
    }

    /// Takes a configuration [`compiled::compile`] accepted (`on_configure` reads it from the
    /// host; a module linking several plugins passes its section).
    pub fn configure(&mut self, policy: Policy) -> bool {
        self.policy = Some(Rc::new(policy));
        true
    }

    /// The HTTP context of one request, `None` before a configuration was accepted.
    pub fn filter(&self) -> Option<Filter> {
        Some(Filter {
            policy: self.policy.clone()?,
            counters: self.counters.clone(),
        })
    }
}

impl Default for PluginRoot {
    fn default() -> Self {
        Self::new()
    }
}

plugin_kit::root_context!(PluginRoot, PLUGIN, compiled::compile);

/// The HTTP context of one request: checks its path before it is routed.
pub struct Filter {
    policy: Rc<Policy>,
    counters: Rc<CounterTable<Outcome>>,
}

impl Context for Filter {}

impl HttpContext for Filter {
    fn on_http_request_headers(&mut self, _headers: usize, _end_of_stream: bool) -> Action {
        self.on_request(&mut RequestHeaders::default())
    }
}

impl Filter {
    /// Decides on the request whose headers are `headers`; refused, it is answered here.
    pub fn on_request(&mut self, headers: &mut RequestHeaders) -> Action {
        // Each header read is a hostcall and a call back into the module: only what the rules
        // look at is read before the decision.
        let uses = |looks_at: fn(&OperationMatcher) -> bool| self.policy.matchers().any(looks_at);
        let path = headers.first(":path");
        let method_bytes = if uses(OperationMatcher::uses_methods) {
            headers.first(":method")
        } else {
            None
        };
        let method = text(method_bytes.as_deref().unwrap_or_default());
        let authority_bytes = if uses(OperationMatcher::uses_hosts) {
            headers.first(":authority")
        } else {
            None
        };
        let authority = authority_bytes.as_deref().map(text);
        let port = if uses(OperationMatcher::uses_ports) {
            plugin_kit::host::destination_port()
        } else {
            None
        };
        let decision = self.policy.decide(&Request {
            method: &method,
            authority: authority.as_deref(),
            path: path.as_deref(),
            port,
        });
        self.counters
            .add(&mut HostMetrics { plugin: PLUGIN }, decision.outcome(), 1);
        // Only refusals are logged: an allowed request (the common case) skips the hostcall
        // that reads its request id.
        if !matches!(decision, Decision::Allow { .. }) {
            let request_id = headers.first("x-request-id");
            // Read now if the rules did not need it.
            let method = method_bytes
                .or_else(|| headers.first(":method"))
                .unwrap_or_default();
            if let Some(line) = policy::log_line(
                &decision,
                request_id.as_deref(),
                &text(&method),
                path.as_deref(),
            ) {
                log::info!("{line}");
            }
        }
        match decision {
            Decision::Allow {
                rewrite_path: Some(rewritten),
            }
            | Decision::DryRunRefuse {
                rewrite_path: Some(rewritten),
                ..
            } => {
                if let Err(e) = headers.set(":path", &rewritten) {
                    // Forwarding a path other than the one checked is the bypass this plugin
                    // exists to prevent: refuse instead.
                    log::warn!("{PLUGIN}: cannot rewrite :path ({e:?}); refusing the request");
                    return self.reply(&plugin_kit::deny::rbac_denied(self.policy.deny_status));
                }
                Action::Continue
            }
            Decision::Allow { rewrite_path: None }
            | Decision::DryRunRefuse {
                rewrite_path: None, ..
            } => Action::Continue,
            Decision::Refuse(refusal) => self.reply(&refusal.reply(self.policy.deny_status)),
        }
    }

    /// Refused: the request waits for the reply (and never reaches the upstream, even if the
    /// reply could not be sent).
    fn reply(&self, reply: &plugin_kit::deny::LocalReply) -> Action {
        plugin_kit::host::send_local_reply(PLUGIN, reply);
        Action::Pause
    }
}
