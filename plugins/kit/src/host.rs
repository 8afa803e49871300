//! The little proxy-wasm glue every plugin repeats: configuration loading with one clear log
//! line, and a panic hook that makes a trap visible. The only module of this crate that touches
//! the host; the logic modules never do.

use crate::config::{self, ConfigError};
use crate::deny::LocalReply;
use crate::headers::{HeaderMap, MalformedMap};
use crate::metrics::{MetricHost, MetricKind};
use crate::shared::{SetError, SharedData, StoreError};
use serde::de::DeserializeOwned;

/// Logs any panic at critical level before the VM traps, so a surprise in production shows in
/// the proxy log instead of only as 503s.
pub fn install_panic_hook(plugin: &'static str) {
    std::panic::set_hook(Box::new(move |info| {
        let _ = proxy_wasm::hostcalls::log(
            proxy_wasm::types::LogLevel::Critical,
            &format!("{plugin}: panic, the Wasm VM will trap: {info}"),
        );
    }));
}

/// Reads the plugin configuration from the host, parses and validates it. On error, logs one
/// line naming the field and the reason and returns `None`; the caller then returns `false` from
/// `on_configure`, so Envoy refuses the new configuration and keeps the last good one. An
/// absent configuration is empty (each plugin's defaults decide what that means).
pub fn load_config<T: DeserializeOwned, C>(
    plugin: &str,
    compile: impl FnOnce(T) -> Result<C, ConfigError>,
) -> Option<C> {
    let read = proxy_wasm::hostcalls::get_buffer(
        proxy_wasm::types::BufferType::PluginConfiguration,
        0,
        usize::MAX,
    );
    let bytes = match read {
        Ok(bytes) => bytes.unwrap_or_default(),
        Err(status) => {
            log::error!(
                "{plugin}: cannot read the configuration ({status:?}); the plugin refuses to start"
            );
            return None;
        }
    };
    match config::parse::<T>(&bytes).and_then(compile) {
        Ok(compiled) => {
            log::info!("{plugin}: configuration accepted");
            Some(compiled)
        }
        Err(err) => {
            log::error!("{plugin}: {err}; the plugin refuses to start");
            None
        }
    }
}

/// Answers the current request with `reply` instead of the upstream. `false` (logged) when the
/// host refused; the caller decides whether the request then waits or goes on.
pub fn send_local_reply(plugin: &str, reply: &LocalReply) -> bool {
    let headers: Vec<(&str, &str)> = reply
        .headers
        .iter()
        .map(|(name, value)| (*name, value.as_str()))
        .collect();
    match proxy_wasm::hostcalls::send_http_response(reply.status, headers, Some(&reply.body)) {
        Ok(()) => true,
        Err(status) => {
            log::warn!("{plugin}: cannot send the local reply: {status:?}");
            false
        }
    }
}

/// Envoy's stats through the proxy-wasm metric hostcalls; failures are logged (a definition at
/// warn, an update at debug: it would repeat on every request) and cost only the metric.
#[derive(Debug, Clone, Copy)]
pub struct HostMetrics {
    pub plugin: &'static str,
}

impl MetricHost for HostMetrics {
    fn define(&mut self, kind: MetricKind, name: &str) -> Option<u32> {
        let metric_type = match kind {
            MetricKind::Counter => proxy_wasm::types::MetricType::Counter,
            MetricKind::Histogram => proxy_wasm::types::MetricType::Histogram,
        };
        proxy_wasm::hostcalls::define_metric(metric_type, name)
            .map_err(|status| log::warn!("{}: cannot define {name}: {status:?}", self.plugin))
            .ok()
    }

    fn increment(&mut self, id: u32, by: u64) {
        let by = i64::try_from(by).unwrap_or(i64::MAX);
        if let Err(status) = proxy_wasm::hostcalls::increment_metric(id, by) {
            log::debug!("{}: cannot increment metric {id}: {status:?}", self.plugin);
        }
    }

    fn record(&mut self, id: u32, value: u64) {
        if let Err(status) = proxy_wasm::hostcalls::record_metric(id, value) {
            log::debug!("{}: cannot record metric {id}: {status:?}", self.plugin);
        }
    }
}

/// proxy-wasm shared data: one store for all workers of the VM id.
#[derive(Debug, Clone, Copy)]
pub struct HostSharedData;

impl SharedData for HostSharedData {
    fn get(&self, key: &str) -> Result<Option<(Vec<u8>, u32)>, StoreError> {
        match proxy_wasm::hostcalls::get_shared_data(key) {
            // A key with an empty value comes back without bytes but with a version.
            Ok((bytes, Some(cas))) => Ok(Some((bytes.unwrap_or_default(), cas))),
            Ok((_, None)) => Ok(None),
            Err(_) => Err(StoreError),
        }
    }

    fn set(&self, key: &str, value: &[u8], cas: Option<u32>) -> Result<(), SetError> {
        match proxy_wasm::hostcalls::set_shared_data(key, Some(value), cas) {
            Ok(()) => Ok(()),
            Err(proxy_wasm::types::Status::CasMismatch) => Err(SetError::CasMismatch),
            Err(_) => Err(SetError::Failed),
        }
    }
}

/// The host's clock (Envoy's time source); WASI's if the host refuses, so never the epoch, which
/// would make an expired token valid and a bucket look idle for decades.
pub fn now() -> std::time::SystemTime {
    proxy_wasm::hostcalls::get_current_time().unwrap_or_else(|_| std::time::SystemTime::now())
}

/// A property of the stream (`["response", "code_details"]`), `None` when absent or refused.
pub fn property(path: &[&str]) -> Option<Vec<u8>> {
    proxy_wasm::hostcalls::get_property(path.to_vec())
        .ok()
        .flatten()
}

/// The port the request came in on (`destination.port`).
pub fn destination_port() -> Option<u16> {
    property(&["destination", "port"]).and_then(|bytes| crate::properties::parse_port(&bytes))
}

/// The IP of the peer (`source.address`).
pub fn source_ip() -> Option<std::net::IpAddr> {
    let bytes = property(&["source", "address"])?;
    crate::properties::parse_address(std::str::from_utf8(&bytes).ok()?)
}

/// One header of `map` (the request's, the response's, a dispatched call's answer), as bytes:
/// the SDK's `String` getters trap the VM on a value that is not UTF-8. `None` when absent, or
/// when the host refused (then as if absent).
pub fn header(map: proxy_wasm::types::MapType, name: &str) -> Option<Vec<u8>> {
    proxy_wasm::hostcalls::get_map_value_bytes(map, name)
        .ok()
        .flatten()
}

/// Every header of `map` in one hostcall, each value of a repeated header as its own pair, in
/// the order received; empty when the host refused (the SDK's reader would trap the VM) or sent
/// a map whose sizes do not fit it.
pub fn headers(map: proxy_wasm::types::MapType) -> HeaderMap {
    let serialized = match serialized_map(map) {
        Ok(serialized) => serialized,
        Err(status) => {
            log::debug!("cannot read header map {map:?}: {status:?}");
            return HeaderMap::default();
        }
    };
    HeaderMap::parse(serialized).unwrap_or_else(|MalformedMap| {
        log::warn!("the host sent header map {map:?} malformed; read as empty");
        HeaderMap::default()
    })
}

#[link(wasm_import_module = "env")]
extern "C" {
    fn proxy_get_header_map_pairs(
        map_type: proxy_wasm::types::MapType,
        return_map_data: *mut *mut u8,
        return_map_size: *mut usize,
    ) -> proxy_wasm::types::Status;
}

/// The host's serialization of `map`, as the SDK's `get_map_bytes` reads it, without parsing it
/// into a `String` and a `Vec` per header.
fn serialized_map(map: proxy_wasm::types::MapType) -> Result<Vec<u8>, proxy_wasm::types::Status> {
    let mut data: *mut u8 = std::ptr::null_mut();
    let mut size: usize = 0;
    // SAFETY: the host writes a pointer and a size for a buffer it got from the module's
    // `proxy_on_memory_allocate` (the SDK's, a boxed slice of exactly `size` bytes), or leaves
    // the pointer null; ownership of that buffer passes to the module, as in the SDK's reader.
    unsafe {
        match proxy_get_header_map_pairs(map, &mut data, &mut size) {
            proxy_wasm::types::Status::Ok if !data.is_null() => {
                Ok(Vec::from_raw_parts(data, size, size))
            }
            proxy_wasm::types::Status::Ok => Ok(Vec::new()),
            status => Err(status),
        }
    }
}

/// The request's headers as the filters of one module see them in one pass: what one filter read
/// is there for the next (a module linking several plugins reads each header once), and what one
/// filter changes the next one sees, as filters chained in Envoy do. Nothing is read before a
/// filter asks: a single `first` is one `get_map_value` hostcall, and once a filter asked for
/// `all`, every later lookup is served from that copy. It also holds the one clock reading the
/// filters share ([`RequestHeaders::now`]).
#[derive(Debug, Default)]
pub struct RequestHeaders {
    all: Option<HeaderMap>,
    /// The host's clock, read when a filter first asked.
    now: Option<std::time::SystemTime>,
    /// Single headers read before `all` was: name and value (`None`: absent).
    read: Vec<(String, Option<Vec<u8>>)>,
}

const REQUEST_HEADERS: proxy_wasm::types::MapType = proxy_wasm::types::MapType::HttpRequestHeaders;

impl RequestHeaders {
    /// The host's clock ([`now`]) when a filter first asked in this pass over the request: the
    /// filters of one module that look at the time (a token's expiry, a bucket's refill, a
    /// latency's start) read it once between them. A request woken after a pause is a new pass
    /// and reads it again.
    pub fn now(&mut self) -> std::time::SystemTime {
        *self.now.get_or_insert_with(now)
    }

    /// Every header, each value of a repeated one as its own pair, in the order received.
    pub fn all(&mut self) -> &HeaderMap {
        self.all.get_or_insert_with(|| headers(REQUEST_HEADERS))
    }

    /// The first value of header `name` (lowercase), as the host's `get_map_value` gives it.
    pub fn first(&mut self, name: &str) -> Option<Vec<u8>> {
        if let Some(all) = &self.all {
            return all.first(name).map(<[u8]>::to_vec);
        }
        if let Some((_, value)) = self.read.iter().find(|(key, _)| key == name) {
            return value.clone();
        }
        let value = header(REQUEST_HEADERS, name);
        self.read.push((name.to_string(), value.clone()));
        value
    }

    /// Sets header `name` to `value` on the host (every earlier value replaced) and in this view.
    pub fn set(&mut self, name: &str, value: &str) -> Result<(), proxy_wasm::types::Status> {
        proxy_wasm::hostcalls::set_map_value(REQUEST_HEADERS, name, Some(value))?;
        match &mut self.all {
            Some(all) => all.set(name, value.as_bytes()),
            None => {
                self.read.retain(|(key, _)| key != name);
                self.read
                    .push((name.to_string(), Some(value.as_bytes().to_vec())));
            }
        }
        Ok(())
    }

    /// Removes every value of header `name` on the host and in this view.
    pub fn remove(&mut self, name: &str) -> Result<(), proxy_wasm::types::Status> {
        proxy_wasm::hostcalls::remove_map_value(REQUEST_HEADERS, name)?;
        self.forget(name);
        if self.all.is_none() {
            self.read.push((name.to_string(), None));
        }
        Ok(())
    }

    fn forget(&mut self, name: &str) {
        if let Some(all) = &mut self.all {
            all.remove(name);
        }
        self.read.retain(|(key, _)| key != name);
    }
}
