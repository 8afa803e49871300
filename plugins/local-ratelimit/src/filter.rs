//! The proxy-wasm contexts of the `local-ratelimit` plugin, the only module that
//! calls the host; the logic lives in the other modules.

use crate::{actions, compiled, limiter, matcher, metrics, store};
use plugin_kit::host::{HostMetrics, HostSharedData, RequestHeaders};
use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext};
use proxy_wasm::types::{Action, MapType};
use std::cell::RefCell;
use std::net::IpAddr;
use std::rc::Rc;
use std::time::UNIX_EPOCH;

pub(crate) const PLUGIN: &str = "local-ratelimit";

/// The accepted configuration and the counters named after it.
struct Active {
    config: compiled::Compiled,
    metrics: RefCell<metrics::Registry<HostMetrics>>,
}

/// The plugin's root context: the accepted configuration, shared by its requests.
#[derive(Default)]
pub struct PluginRoot {
    active: Option<Rc<Active>>,
}

impl PluginRoot {
    /// The HTTP context of one request, `None` before a configuration was accepted.
    pub fn filter(&self) -> Option<Filter> {
        Some(Filter {
            active: self.active.clone()?,
            response_headers: Vec::new(),
        })
    }
}

plugin_kit::root_context!(PluginRoot, PLUGIN, compiled::compile);

impl PluginRoot {
    /// Takes a configuration [`compiled::compile`] accepted (`on_configure` reads it from the
    /// host; a module linking several plugins passes its section). `false` when the shared
    /// data its buckets need cannot be created.
    pub fn configure(&mut self, compiled: compiled::Compiled) -> bool {
        // Accepted, but parts of it can never limit: said once, where the operator looks.
        for warning in &compiled.warnings {
            log::warn!("{PLUGIN}: {warning}");
        }
        // Every shared key is created now, so no request ever creates one (see store.rs).
        if let Err(err) = store::ensure_keys(&HostSharedData, limiter::shared_keys(&compiled)) {
            log::error!("{PLUGIN}: shared data unavailable ({err:?}); the plugin refuses to start");
            return false;
        }
        // Every counter the configuration fixes is defined now (at zero), as upstream does.
        let metrics = metrics::Registry::define(
            HostMetrics { plugin: PLUGIN },
            &compiled.domain,
            compiled.tree.limits(),
        );
        self.active = Some(Rc::new(Active {
            config: compiled,
            metrics: RefCell::new(metrics),
        }));
        true
    }
}

/// The HTTP context of one request: admits or rejects it, and adds the rate limit headers to
/// its response.
pub struct Filter {
    active: Rc<Active>,
    response_headers: Vec<(&'static str, String)>,
}

impl Context for Filter {}

impl HttpContext for Filter {
    fn on_http_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        self.on_request(&mut RequestHeaders::default())
    }

    /// Adds the rate limit headers of an admitted request to its response.
    fn on_http_response_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        for (name, value) in std::mem::take(&mut self.response_headers) {
            // A header that cannot be set is lost, never the response.
            let _ = hostcalls::set_map_value(MapType::HttpResponseHeaders, name, Some(&value));
        }
        Action::Continue
    }
}

impl Filter {
    /// Admits or rejects the request whose headers are `headers`; rejected, it is answered here.
    pub fn on_request(&mut self, headers: &mut RequestHeaders) -> Action {
        let now_ns = headers
            .now()
            .duration_since(UNIX_EPOCH)
            .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
            .unwrap_or_default();
        let mut registry = self.active.metrics.try_borrow_mut();
        let counters: &mut dyn metrics::Counters = match registry.as_deref_mut() {
            Ok(registry) => registry,
            // Never expected (no request re-enters another); limiting goes on uncounted.
            Err(_) => &mut Uncounted,
        };
        let request = HostRequest::read(headers);
        let verdict = limiter::check(
            &self.active.config,
            &HostSharedData,
            counters,
            &request,
            now_ns,
        );
        drop(registry);
        match verdict {
            limiter::Verdict::Admit { response_headers } => {
                self.response_headers = response_headers;
                Action::Continue
            }
            limiter::Verdict::Reject(reply) => {
                if !plugin_kit::host::send_local_reply(PLUGIN, &reply) {
                    // Without a local reply the request would hang: let it through instead.
                    return Action::Continue;
                }
                Action::Pause
            }
        }
    }
}

/// The request's headers, read in one hostcall (every value of a repeated header), and its
/// client address.
struct HostRequest<'a> {
    headers: actions::HeaderPairs<'a>,
}

impl<'a> HostRequest<'a> {
    fn read(headers: &'a mut RequestHeaders) -> Self {
        // Values as bytes: the String form traps the VM on a value that is not UTF-8.
        HostRequest {
            headers: actions::HeaderPairs::new(headers.all()),
        }
    }
}

impl actions::RequestView for HostRequest<'_> {
    fn header_values(&self, name: &str) -> Vec<&str> {
        self.headers.values(name)
    }

    fn first_header_value(&self, name: &str) -> Option<&str> {
        self.headers.first(name)
    }

    fn remote_ip(&self) -> Option<IpAddr> {
        plugin_kit::host::source_ip()
    }
}

/// Counts nothing: stands in for a busy registry so that limiting is never skipped.
struct Uncounted;

impl metrics::Counters for Uncounted {
    fn rule(&mut self, _limit: &matcher::Limit, _values: &[String], _stat: metrics::Stat) {}
    fn plugin(&mut self, _stat: metrics::PluginStat) {}
}
