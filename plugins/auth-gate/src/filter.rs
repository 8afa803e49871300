//! The proxy-wasm contexts of the `auth-gate` plugin, the only module that
//! calls the host; the logic lives in the other modules.
//!
//! Hostcalls go through `proxy_wasm::hostcalls` (the trait helpers unwrap): a failed hostcall
//! must never trap the VM. Headers that cannot be read are treated as absent, which fails
//! closed (no `:path` is a 400); a header change that fails refuses the request.
//!
//! Remote JWKS: the root context of each worker ticks while rules use `jwksUri`; on a tick it
//! picks up keys other workers stored, fetches when due (see [`crate::remote`]), and re-decides
//! the requests paused while waiting for keys (answering 401 once their wait times out).

use crate::authn::{KeySource, RemoteKeyStore, RemoteKeys};
use crate::cache::TokenCache;
use crate::gate::Decision;
use crate::metrics::{Counter, KeyWait, RequestOutcome};
use crate::remote::{FetchResult, RemoteRule};
use crate::request::RequestView;
use crate::{compiled, gate};
use plugin_kit::host::HostMetrics;
use plugin_kit::host::{HostSharedData, RequestHeaders};
use plugin_kit::metrics::CounterTable;
use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, BufferType, ContextType, MapType};
use std::cell::RefCell;
use std::rc::Rc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub(crate) const PLUGIN: &str = "auth-gate";
/// How often paused requests are re-examined and remote keys checked.
const TICK: Duration = Duration::from_millis(200);

fn now_ms() -> u64 {
    millis_since_epoch(plugin_kit::host::now())
}

fn millis_since_epoch(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        // Seconds and milliseconds apart: `as_millis` divides a u128, a library call in Wasm.
        .map(|d| {
            d.as_secs()
                .saturating_mul(1000)
                .saturating_add(u64::from(d.subsec_millis()))
        })
        .unwrap_or_default()
}

/// The plugin's counters, defined when a configuration is accepted.
struct Counters(CounterTable<Counter>);

impl Counters {
    fn define() -> Self {
        Self(CounterTable::define(&mut HostMetrics { plugin: PLUGIN }))
    }

    fn add(&self, counter: Counter, count: u64) {
        // Adding 0 (no cached token used) costs no hostcall.
        self.0
            .add(&mut HostMetrics { plugin: PLUGIN }, counter, count);
    }
}

/// What one worker's root context and its requests share, for one configuration.
struct Worker {
    config: compiled::Compiled,
    cache: RefCell<TokenCache>,
    /// By rule index; `Some` for rules with `jwksUri`.
    remote: Vec<Option<RefCell<RemoteRule>>>,
    /// Requests paused for remote keys: context id and the time their wait ends.
    waiting: RefCell<Vec<(u32, u64)>>,
    /// The longest `timeout` of the remote rules: how long a request waits for keys.
    wait_ms: u64,
    counters: Counters,
}

impl RemoteKeyStore for Worker {
    fn keys(&self, rule: usize) -> RemoteKeys {
        match self.remote.get(rule) {
            Some(Some(remote)) => remote.borrow().status(&HostSharedData, now_ms()),
            _ => RemoteKeys::Failed,
        }
    }

    fn request_refresh(&self, rule: usize) {
        if let Some(Some(remote)) = self.remote.get(rule) {
            remote.borrow_mut().request_refresh();
        }
    }
}

impl Worker {
    fn new(config: compiled::Compiled) -> Self {
        let remote: Vec<Option<RefCell<RemoteRule>>> = config
            .authenticator
            .rules
            .iter()
            .map(|rule| match &rule.keys {
                KeySource::Remote(jwks) => Some(RefCell::new(RemoteRule::new(jwks.clone()))),
                KeySource::Inline(_) => None,
            })
            .collect();
        let wait_ms = remote
            .iter()
            .flatten()
            .map(|r| r.borrow().jwks.timeout_ms)
            .max()
            .unwrap_or_default();
        Self {
            cache: RefCell::new(TokenCache::new(
                config.token_cache_entries,
                Some(Box::new(HostSharedData)),
            )),
            config,
            remote,
            waiting: RefCell::new(Vec::new()),
            wait_ms,
            counters: Counters::define(),
        }
    }

    fn has_remote_rules(&self) -> bool {
        self.remote.iter().any(Option::is_some)
    }

    /// Takes up keys other workers stored; a change empties the verified-token cache.
    fn sync_remote(&self) {
        let mut changed = false;
        for remote in self.remote.iter().flatten() {
            changed |= remote.borrow_mut().sync(&HostSharedData);
        }
        if changed {
            self.cache.borrow_mut().clear();
        }
    }

    /// Decides for the HTTP context that is current on the host and acts on it. `deadline`
    /// is set when the request already waits for keys.
    fn process(
        &self,
        context_id: u32,
        deadline: Option<u64>,
        headers: &mut RequestHeaders,
    ) -> Action {
        let now = millis_since_epoch(headers.now());
        // As bytes: the SDK's `get_map` panics on a value that is not UTF-8 (obs-text a client
        // may send), which would trap the VM.
        let request = RequestView::from_host(headers.all());
        let policies = &self.config.policies;
        let connection = gate::Connection {
            port: policies
                .uses_ports()
                .then(plugin_kit::host::destination_port)
                .flatten(),
            remote_ip: policies
                .uses_remote_ip()
                .then(plugin_kit::host::source_ip)
                .flatten(),
        };
        if self.has_remote_rules() {
            self.sync_remote();
        }
        let decision = {
            let mut cache = self.cache.borrow_mut();
            let before = cache.stats;
            let decision = gate::decide(
                &self.config,
                &request,
                connection,
                self,
                &mut cache,
                now / 1000,
            );
            let after = cache.stats;
            for (counter, added) in [
                (Counter::CacheHits, after.hits - before.hits),
                (
                    Counter::SharedCacheHits,
                    after.shared_hits - before.shared_hits,
                ),
                (
                    Counter::SignatureChecks,
                    after.signature_checks - before.signature_checks,
                ),
            ] {
                if added > 0 {
                    self.counters.add(counter, added);
                }
            }
            decision
        };
        let decision = match decision {
            Decision::WaitForKeys => {
                let deadline = deadline.unwrap_or(now.saturating_add(self.wait_ms));
                if now < deadline {
                    if !self.is_waiting(context_id) {
                        self.waiting.borrow_mut().push((context_id, deadline));
                    }
                    return Action::Pause;
                }
                log::warn!(
                    "{PLUGIN}: no JWKS after waiting {} ms; answering 401",
                    self.wait_ms
                );
                self.counters.add(Counter::KeyWait(KeyWait::TimedOut), 1);
                gate::keys_unavailable(&request)
            }
            decision => decision,
        };
        self.act(decision, headers)
    }

    fn is_waiting(&self, context_id: u32) -> bool {
        self.waiting
            .borrow()
            .iter()
            .any(|(id, _)| *id == context_id)
    }

    /// Runs as a request's context drops: never a panic there (a trap would fail every request
    /// of the VM).
    fn forget(&self, context_id: u32) {
        match self.waiting.try_borrow_mut() {
            Ok(mut waiting) => waiting.retain(|(id, _)| *id != context_id),
            Err(_) => log::warn!("{PLUGIN}: request {context_id} left in the waiting list"),
        }
    }

    fn act(&self, decision: Decision, headers: &mut RequestHeaders) -> Action {
        // Only a refusal reads the request again, for its log line (from the copy `headers`
        // holds: no hostcall).
        let mut refusal_line = |verdict: &str, reason: &dyn std::fmt::Display| {
            refusal_line(&RequestView::from_host(headers.all()), verdict, reason)
        };
        match &decision {
            Decision::Forward(forward) => {
                // Written before the forwarded headers replace the ones checked.
                let dry_run_line = forward
                    .dry_run_denied
                    .as_ref()
                    .map(|policy| refusal_line("dry-run, would deny", policy));
                if let Err(what) = apply(forward, headers) {
                    // Forwarding with a spoofable header or an unchecked path is what this
                    // plugin exists to prevent: refuse instead.
                    log::warn!("{PLUGIN}: cannot {what}; refusing the request");
                    self.counters
                        .add(Counter::Request(RequestOutcome::Denied), 1);
                    return self.reply(&Decision::Denied { policy: None });
                }
                self.counters
                    .add(Counter::Request(RequestOutcome::Allowed), 1);
                if let Some(line) = dry_run_line {
                    log::info!("{line}");
                    self.counters
                        .add(Counter::Request(RequestOutcome::DryRunDenied), 1);
                }
                Action::Continue
            }
            Decision::Unauthenticated { failure, .. } => {
                log::info!(
                    "{}",
                    refusal_line("denied", &format!("JWT {}", failure.as_str()))
                );
                self.counters
                    .add(Counter::Request(RequestOutcome::Unauthenticated), 1);
                self.counters.add(Counter::JwtInvalid(*failure), 1);
                self.reply(&decision)
            }
            Decision::Denied { policy } => {
                let reason = match policy {
                    Some(policy) => format!("DENY policy {policy:?} matched"),
                    None => gate::NO_ALLOW_MATCHED.to_string(),
                };
                log::info!("{}", refusal_line("denied", &reason));
                self.counters
                    .add(Counter::Request(RequestOutcome::Denied), 1);
                self.reply(&decision)
            }
            Decision::BadPath(why) => {
                log::info!(
                    "{}",
                    refusal_line("denied", &format!("malformed path ({why})"))
                );
                self.counters
                    .add(Counter::Request(RequestOutcome::BadPath), 1);
                self.reply(&decision)
            }
            // Handled by `process`; never acted on.
            Decision::WaitForKeys => Action::Pause,
        }
    }

    fn reply(&self, decision: &Decision) -> Action {
        if let Some(reply) = decision.local_reply() {
            plugin_kit::host::send_local_reply(PLUGIN, &reply);
        }
        Action::Pause
    }

    /// Re-decides every paused request (from the root context, which must be restored after);
    /// an admitted one goes through `next` (the filters after this one in the module) before it
    /// resumes.
    fn wake_waiting(&self, next: Option<&Next>) {
        let waiting: Vec<(u32, u64)> = self.waiting.borrow_mut().drain(..).collect();
        for (context_id, deadline) in waiting {
            if hostcalls::set_effective_context(context_id).is_err() {
                continue; // The request is gone.
            }
            let mut headers = RequestHeaders::default();
            let mut action = self.process(context_id, Some(deadline), &mut headers);
            if let (Action::Continue, Some(next)) = (action, next) {
                action = next(context_id, &mut headers);
            }
            if action == Action::Continue {
                if let Err(e) = hostcalls::resume_http_request() {
                    log::warn!("{PLUGIN}: cannot resume a request: {e:?}");
                }
            }
        }
    }
}

/// The path without its query, which may hold a token (`access_token`) that must not be logged.
/// The info line for a refused request: which check, never the token (the query, which may
/// hold one, is left out of the path).
fn refusal_line(request: &RequestView, verdict: &str, reason: &dyn std::fmt::Display) -> String {
    let path = request.path().split('?').next().unwrap_or_default();
    plugin_kit::deny::refusal_log_line(
        PLUGIN,
        verdict,
        request.first("x-request-id").map(str::as_bytes),
        request.method().as_bytes(),
        Some(path.as_bytes()),
        reason,
    )
}

/// Applies the header changes; on failure says which.
fn apply(forward: &gate::Forward, headers: &mut RequestHeaders) -> Result<(), String> {
    for name in &forward.remove_headers {
        headers
            .remove(name)
            .map_err(|e| format!("remove {name} ({e:?})"))?;
    }
    for (name, value) in &forward.set_headers {
        headers
            .set(name, value)
            .map_err(|e| format!("set {name} ({e:?})"))?;
    }
    if let Some(path) = &forward.path {
        headers
            .set(":path", path)
            .map_err(|e| format!("rewrite :path ({e:?})"))?;
    }
    Ok(())
}

/// What a module linking several plugins runs on a request this plugin admitted after it waited
/// for keys: the filters after this one, on the request `context_id` with its headers; the
/// request resumes only on `Continue`.
pub type Next = Rc<dyn Fn(u32, &mut RequestHeaders) -> Action>;

/// The plugin's root context: the worker of the accepted configuration, the workers of earlier
/// ones still answering paused requests, and the JWKS fetches in flight.
pub struct PluginRoot {
    context_id: u32,
    worker: Option<Rc<Worker>>,
    /// Workers of earlier configurations that still have paused requests: woken on each tick
    /// until their requests are answered (at the latest when their wait times out).
    retired: Vec<Rc<Worker>>,
    /// JWKS fetches in flight: call token, rule index, and the worker that asked.
    fetches: Vec<(u32, usize, Rc<Worker>)>,
    next: Option<Next>,
}

impl PluginRoot {
    /// `context_id`: the host's id of this root context, made current again after waking paused
    /// requests.
    pub fn new(context_id: u32) -> Self {
        PluginRoot {
            context_id,
            worker: None,
            retired: Vec::new(),
            fetches: Vec::new(),
            next: None,
        }
    }

    /// Sets what runs on a request admitted after waiting for keys, before it resumes.
    pub fn set_next(&mut self, next: Next) {
        self.next = Some(next);
    }

    /// The HTTP context of request `context_id`, `None` before a configuration was accepted.
    pub fn filter(&self, context_id: u32) -> Option<Filter> {
        Some(Filter {
            worker: self.worker.clone()?,
            context_id,
        })
    }

    fn start_due_fetches(&mut self, worker: &Rc<Worker>) {
        let now = now_ms();
        let refresh_ms = worker.config.jwks_refresh_seconds.saturating_mul(1000);
        for (index, remote) in worker.remote.iter().enumerate() {
            let Some(remote) = remote else { continue };
            let mut remote = remote.borrow_mut();
            if !remote.try_begin_fetch(&HostSharedData, now, refresh_ms) {
                continue;
            }
            let jwks = &remote.jwks;
            let headers = vec![
                (":method", "GET"),
                (":path", jwks.path.as_str()),
                (":authority", jwks.authority.as_str()),
                ("accept", "application/json"),
            ];
            let timeout = Duration::from_millis(jwks.timeout_ms);
            match hostcalls::dispatch_http_call(&jwks.cluster, headers, None, vec![], timeout) {
                Ok(token) => self.fetches.push((token, index, worker.clone())),
                Err(e) => {
                    let reason =
                        format!("cannot dispatch through cluster {} ({e:?})", jwks.cluster);
                    log::warn!("{PLUGIN}: JWKS fetch of {} failed: {reason}", jwks.uri);
                    remote.record_failure(&HostSharedData, now);
                    worker.counters.add(Counter::JwksFetch(false), 1);
                }
            }
        }
    }

    fn wake(&self, worker: &Worker) {
        worker.wake_waiting(self.next.as_ref());
        if let Err(e) = hostcalls::set_effective_context(self.context_id) {
            log::warn!("{PLUGIN}: cannot restore the root context: {e:?}");
        }
    }
}

/// The configuration is going away (a new one replaces it; Envoy deletes the old root context
/// right after `proxy_on_done`, which the module does not export): the fetches in flight will
/// never be answered here, so their leases are released for the next configuration's root.
impl Drop for PluginRoot {
    fn drop(&mut self) {
        for (_, index, worker) in self.fetches.drain(..) {
            if let Some(Some(remote)) = worker.remote.get(index) {
                remote.borrow_mut().abandon_fetch(&HostSharedData);
            }
        }
    }
}

impl Context for PluginRoot {
    fn on_http_call_response(&mut self, token: u32, headers: usize, body_size: usize, _: usize) {
        let Some(position) = self.fetches.iter().position(|(t, _, _)| *t == token) else {
            return;
        };
        let (_, index, worker) = self.fetches.swap_remove(position);
        let Some(Some(remote)) = worker.remote.get(index) else {
            return;
        };
        let body = hostcalls::get_buffer(BufferType::HttpCallResponseBody, 0, body_size)
            .ok()
            .flatten()
            .unwrap_or_default();
        // Envoy reports a timeout or a connection failure as a response without headers.
        let result = if headers == 0 {
            FetchResult::NoResponse
        } else {
            let status = plugin_kit::host::header(MapType::HttpCallResponseHeaders, ":status")
                .and_then(|s| std::str::from_utf8(&s).ok()?.parse().ok());
            FetchResult::Response {
                status,
                body: &body,
            }
        };
        let outcome = remote
            .borrow_mut()
            .complete_fetch(&HostSharedData, now_ms(), result);
        let uri = remote.borrow().jwks.uri.clone();
        match outcome {
            Ok(()) => {
                log::info!("{PLUGIN}: fetched the JWKS of {uri}");
                worker.counters.add(Counter::JwksFetch(true), 1);
                worker.cache.borrow_mut().clear();
            }
            Err(reason) => {
                log::warn!("{PLUGIN}: JWKS fetch of {uri} failed: {reason}");
                worker.counters.add(Counter::JwksFetch(false), 1);
            }
        }
        self.wake(&worker);
    }
}

impl RootContext for PluginRoot {
    fn on_configure(&mut self, _size: usize) -> bool {
        plugin_kit::host::load_config(PLUGIN, compiled::compile)
            .is_some_and(|compiled| self.configure(compiled))
    }

    fn on_tick(&mut self) {
        for retired in &self.retired {
            retired.sync_remote();
            self.wake(retired);
        }
        self.retired
            .retain(|retired| !retired.waiting.borrow().is_empty());
        let Some(worker) = self.worker.clone() else {
            return;
        };
        worker.sync_remote();
        self.start_due_fetches(&worker);
        self.wake(&worker);
    }

    fn create_http_context(&self, context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(self.filter(context_id)?))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

impl PluginRoot {
    /// Takes a configuration [`compiled::compile`] accepted (`on_configure` reads it from the
    /// host; a module linking several plugins passes its section). `false` when the tick remote
    /// keys need cannot be set.
    pub fn configure(&mut self, compiled: compiled::Compiled) -> bool {
        let worker = Rc::new(Worker::new(compiled));
        let previous_waits = self
            .worker
            .as_ref()
            .is_some_and(|previous| !previous.waiting.borrow().is_empty());
        let tick = if worker.has_remote_rules() || previous_waits || !self.retired.is_empty() {
            TICK
        } else {
            Duration::ZERO
        };
        if let Err(e) = hostcalls::set_tick_period(tick) {
            log::error!(
                "{PLUGIN}: cannot set the tick period ({e:?}); remote JWKS would never load"
            );
            return false;
        }
        if let Some(previous) = self.worker.replace(worker) {
            if previous_waits {
                self.retired.push(previous);
            }
        }
        true
    }
}

/// The HTTP context of one request: authenticates and authorizes it, pausing it while remote
/// keys load.
pub struct Filter {
    worker: Rc<Worker>,
    context_id: u32,
}

impl Context for Filter {}

/// A request that ends while paused for keys is no longer waited for.
impl Drop for Filter {
    fn drop(&mut self) {
        self.worker.forget(self.context_id);
    }
}

impl HttpContext for Filter {
    fn on_http_request_headers(&mut self, _headers: usize, _end_of_stream: bool) -> Action {
        self.on_request(&mut RequestHeaders::default())
    }
}

impl Filter {
    /// Decides on the request whose headers are `headers`: refused, it is answered here;
    /// `Pause` without an answer while it waits for remote keys ([`Filter::waits_for_keys`]).
    pub fn on_request(&mut self, headers: &mut RequestHeaders) -> Action {
        let action = self.worker.process(self.context_id, None, headers);
        if action == Action::Pause && self.worker.is_waiting(self.context_id) {
            log::info!("{PLUGIN}: request paused until the JWKS is fetched");
            self.worker
                .counters
                .add(Counter::KeyWait(KeyWait::Paused), 1);
        }
        action
    }

    /// Whether the request is paused until remote keys load (then the root context re-decides
    /// it, and resumes it when admitted).
    pub fn waits_for_keys(&self) -> bool {
        self.worker.is_waiting(self.context_id)
    }
}
