//! Envoy's side of proxy-wasm, in process: the `proxy_*` functions the SDK imports, defined here
//! over a fake host (one per test thread), so that a plugin's glue (`filter.rs`: `PluginRoot`,
//! `Filter`) runs natively in a unit test, with its real hostcalls. A test sets what Envoy would
//! hold (the plugin configuration, the request headers, properties, the clock, shared data),
//! calls the contexts' callbacks, and reads back what the plugin did (local reply, header
//! changes, counters, logs).
//!
//! Link it into a native test binary only (a dev-dependency; in a Wasm binary the SDK's
//! hostcalls stay imports from the host): its `#[no_mangle]` functions are the symbols a Wasm
//! module imports from Envoy. Values are handed to the SDK as it expects from
//! Envoy: allocated buffers whose ownership passes to the caller.
#![allow(clippy::missing_safety_doc)]

use proxy_wasm::types::{BufferType, LogLevel, MapType, MetricType, Status, StreamType};
use std::cell::RefCell;
use std::collections::HashMap;

/// A local reply the plugin sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalReply {
    pub status: u32,
    pub details: String,
    pub body: Vec<u8>,
    pub headers: Vec<(String, String)>,
}

/// What Envoy holds for the plugin, and what the plugin did.
#[derive(Debug, Default)]
pub struct Host {
    pub plugin_configuration: Vec<u8>,
    pub request_headers: Vec<(String, Vec<u8>)>,
    pub response_headers: Vec<(String, Vec<u8>)>,
    /// The response body chunk the current `on_http_response_body` call sees.
    pub response_body: Vec<u8>,
    /// Properties by their path joined with `.` (`destination.port`).
    pub properties: HashMap<String, Vec<u8>>,
    pub now_nanos: u64,
    /// Reads of the clock (`get_current_time_nanoseconds`).
    pub clock_reads: usize,
    pub shared_data: HashMap<String, (Vec<u8>, u32)>,
    pub local_reply: Option<LocalReply>,
    /// Counters, gauges and histograms by name: their sum (or last value for gauges).
    pub metrics: Vec<(String, MetricType, i64)>,
    pub logs: Vec<(LogLevel, String)>,
    /// `continue_stream` calls (requests resumed after a pause).
    pub resumed: usize,
    pub tick_period_ms: u32,
    /// Reads of the request's headers (`get_header_map_pairs` and `get_header_map_value`).
    pub request_header_reads: usize,
    /// `http_call`s dispatched, and the token of the last one (unique in the test binary: the
    /// SDK keeps its callouts per thread, across tests). The answer `on_http_call_response`
    /// reads is in the two fields after them.
    pub http_calls: usize,
    pub last_http_call_token: u32,
    pub http_call_response_headers: Vec<(String, Vec<u8>)>,
    pub http_call_response_body: Vec<u8>,
}

impl Host {
    /// The value of the metric `name` (0 when not defined).
    pub fn metric(&self, name: &str) -> i64 {
        self.metrics
            .iter()
            .find(|(n, _, _)| n == name)
            .map_or(0, |(_, _, value)| *value)
    }

    /// The sum of the metrics whose names contain every one of `parts`.
    pub fn metrics_containing(&self, parts: &[&str]) -> i64 {
        self.metrics
            .iter()
            .filter(|(name, _, _)| parts.iter().all(|part| name.contains(part)))
            .map(|(_, _, value)| *value)
            .sum()
    }

    /// Sets the request's headers: `:method`, `:path`, `:authority`, then `extra`; and forgets
    /// the last local reply.
    pub fn set_request(&mut self, method: &str, path: &str, extra: &[(&str, &[u8])]) {
        self.local_reply = None;
        self.request_headers = vec![
            (":method".into(), method.as_bytes().to_vec()),
            (":path".into(), path.as_bytes().to_vec()),
            (":authority".into(), b"models.example.com".to_vec()),
        ];
        self.request_headers.extend(
            extra
                .iter()
                .map(|(name, value)| (name.to_string(), value.to_vec())),
        );
    }

    fn headers(&mut self, map: MapType) -> Option<&mut Vec<(String, Vec<u8>)>> {
        match map {
            MapType::HttpRequestHeaders => Some(&mut self.request_headers),
            MapType::HttpResponseHeaders => Some(&mut self.response_headers),
            MapType::HttpCallResponseHeaders => Some(&mut self.http_call_response_headers),
            _ => None,
        }
    }
}

thread_local! {
    static HOST: RefCell<Host> = RefCell::new(Host::default());
}

/// Starts a test with an empty host. The first call also does what a module's entry point does
/// first, once for the whole test binary: the SDK's logger, so that log lines reach the host.
/// (The SDK installs it without a lock: two tests calling `proxy_wasm::set_log_level` at once
/// would race. Its panic hook, which sends panics to the host's log, is replaced by the default
/// one so that a failing assertion shows.)
pub fn reset() {
    static LOGGER: std::sync::Once = std::sync::Once::new();
    LOGGER.call_once(|| {
        let default_hook = std::panic::take_hook();
        proxy_wasm::set_log_level(LogLevel::Info);
        std::panic::set_hook(default_hook);
    });
    HOST.with(|host| *host.borrow_mut() = Host::default());
}

/// Reads or changes the host of this thread.
pub fn with<R>(f: impl FnOnce(&mut Host) -> R) -> R {
    HOST.with(|host| f(&mut host.borrow_mut()))
}

fn count_read(map: MapType) {
    if map == MapType::HttpRequestHeaders {
        with(|host| host.request_header_reads += 1);
    }
}

unsafe fn bytes<'a>(data: *const u8, size: usize) -> &'a [u8] {
    if data.is_null() || size == 0 {
        &[]
    } else {
        std::slice::from_raw_parts(data, size)
    }
}

unsafe fn text(data: *const u8, size: usize) -> String {
    String::from_utf8_lossy(bytes(data, size)).into_owned()
}

/// Hands `value` to the SDK, which takes ownership (`Vec::from_raw_parts(ptr, len, len)`).
unsafe fn hand_over(value: Vec<u8>, return_data: *mut *mut u8, return_size: *mut usize) {
    let value = value.into_boxed_slice();
    *return_size = value.len();
    *return_data = Box::into_raw(value).cast::<u8>();
}

fn serialize_map(map: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut out = (map.len() as u32).to_le_bytes().to_vec();
    for (name, value) in map {
        out.extend_from_slice(&(name.len() as u32).to_le_bytes());
        out.extend_from_slice(&(value.len() as u32).to_le_bytes());
    }
    for (name, value) in map {
        out.extend_from_slice(name.as_bytes());
        out.push(0);
        out.extend_from_slice(value);
        out.push(0);
    }
    out
}

fn deserialize_map(bytes: &[u8]) -> Vec<(String, String)> {
    let word = |at: usize| {
        bytes
            .get(at..at + 4)
            .and_then(|b| <[u8; 4]>::try_from(b).ok())
            .map_or(0, |b| u32::from_le_bytes(b) as usize)
    };
    let count = word(0);
    let mut at = 4 + count * 8;
    let mut map = Vec::new();
    for n in 0..count {
        let (name_len, value_len) = (word(4 + n * 8), word(8 + n * 8));
        let name = bytes.get(at..at + name_len).unwrap_or_default();
        at += name_len + 1;
        let value = bytes.get(at..at + value_len).unwrap_or_default();
        at += value_len + 1;
        map.push((
            String::from_utf8_lossy(name).into_owned(),
            String::from_utf8_lossy(value).into_owned(),
        ));
    }
    map
}

#[no_mangle]
pub unsafe extern "C" fn proxy_log(level: LogLevel, data: *const u8, size: usize) -> Status {
    let message = text(data, size);
    with(|host| host.logs.push((level, message)));
    Status::Ok
}

#[no_mangle]
pub unsafe extern "C" fn proxy_get_log_level(return_level: *mut LogLevel) -> Status {
    *return_level = LogLevel::Trace;
    Status::Ok
}

#[no_mangle]
pub unsafe extern "C" fn proxy_get_current_time_nanoseconds(return_time: *mut u64) -> Status {
    *return_time = with(|host| {
        host.clock_reads += 1;
        host.now_nanos
    });
    Status::Ok
}

#[no_mangle]
pub extern "C" fn proxy_set_tick_period_milliseconds(period: u32) -> Status {
    with(|host| host.tick_period_ms = period);
    Status::Ok
}

#[no_mangle]
pub unsafe extern "C" fn proxy_get_buffer_bytes(
    buffer_type: BufferType,
    start: usize,
    max_size: usize,
    return_data: *mut *mut u8,
    return_size: *mut usize,
) -> Status {
    let buffer = with(|host| match buffer_type {
        BufferType::PluginConfiguration => Some(host.plugin_configuration.clone()),
        BufferType::HttpResponseBody => Some(host.response_body.clone()),
        BufferType::HttpCallResponseBody => Some(host.http_call_response_body.clone()),
        _ => None,
    });
    match buffer {
        Some(buffer) => {
            let end = start.saturating_add(max_size).min(buffer.len());
            let part = buffer.get(start.min(end)..end).unwrap_or_default().to_vec();
            hand_over(part, return_data, return_size);
            Status::Ok
        }
        None => Status::NotFound,
    }
}

#[no_mangle]
pub extern "C" fn proxy_set_buffer_bytes(
    _buffer_type: BufferType,
    _start: usize,
    _size: usize,
    _data: *const u8,
    _data_size: usize,
) -> Status {
    Status::InternalFailure
}

#[no_mangle]
pub unsafe extern "C" fn proxy_get_header_map_pairs(
    map: MapType,
    return_data: *mut *mut u8,
    return_size: *mut usize,
) -> Status {
    count_read(map);
    match with(|host| host.headers(map).map(|headers| serialize_map(headers))) {
        Some(serialized) => {
            hand_over(serialized, return_data, return_size);
            Status::Ok
        }
        None => Status::NotFound,
    }
}

#[no_mangle]
pub unsafe extern "C" fn proxy_set_header_map_pairs(
    map: MapType,
    data: *const u8,
    size: usize,
) -> Status {
    let pairs = deserialize_map(bytes(data, size));
    with(|host| match host.headers(map) {
        Some(headers) => {
            *headers = pairs
                .into_iter()
                .map(|(name, value)| (name, value.into_bytes()))
                .collect();
            Status::Ok
        }
        None => Status::NotFound,
    })
}

#[no_mangle]
pub unsafe extern "C" fn proxy_get_header_map_value(
    map: MapType,
    key_data: *const u8,
    key_size: usize,
    return_data: *mut *mut u8,
    return_size: *mut usize,
) -> Status {
    let key = text(key_data, key_size);
    count_read(map);
    let value = with(|host| {
        host.headers(map)?
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(&key))
            .map(|(_, value)| value.clone())
    });
    match value {
        Some(value) => {
            hand_over(value, return_data, return_size);
            Status::Ok
        }
        None => Status::NotFound,
    }
}

#[no_mangle]
pub unsafe extern "C" fn proxy_remove_header_map_value(
    map: MapType,
    key_data: *const u8,
    key_size: usize,
) -> Status {
    let key = text(key_data, key_size);
    with(|host| {
        if let Some(headers) = host.headers(map) {
            headers.retain(|(name, _)| !name.eq_ignore_ascii_case(&key));
        }
    });
    Status::Ok
}

/// Sets a header: added beside the others, or in place of every value with that name.
unsafe fn set_header(
    map: MapType,
    key: (*const u8, usize),
    value: (*const u8, usize),
    replace: bool,
) -> Status {
    let key = text(key.0, key.1);
    let value = bytes(value.0, value.1).to_vec();
    with(|host| {
        if let Some(headers) = host.headers(map) {
            if replace {
                headers.retain(|(name, _)| !name.eq_ignore_ascii_case(&key));
            }
            headers.push((key, value));
        }
    });
    Status::Ok
}

#[no_mangle]
pub unsafe extern "C" fn proxy_replace_header_map_value(
    map: MapType,
    key_data: *const u8,
    key_size: usize,
    value_data: *const u8,
    value_size: usize,
) -> Status {
    set_header(map, (key_data, key_size), (value_data, value_size), true)
}

#[no_mangle]
pub unsafe extern "C" fn proxy_add_header_map_value(
    map: MapType,
    key_data: *const u8,
    key_size: usize,
    value_data: *const u8,
    value_size: usize,
) -> Status {
    set_header(map, (key_data, key_size), (value_data, value_size), false)
}

#[no_mangle]
pub unsafe extern "C" fn proxy_get_property(
    path_data: *const u8,
    path_size: usize,
    return_data: *mut *mut u8,
    return_size: *mut usize,
) -> Status {
    let path = text(path_data, path_size).replace('\0', ".");
    match with(|host| host.properties.get(&path).cloned()) {
        Some(value) => {
            hand_over(value, return_data, return_size);
            Status::Ok
        }
        None => Status::NotFound,
    }
}

#[no_mangle]
pub extern "C" fn proxy_set_property(
    _path_data: *const u8,
    _path_size: usize,
    _value_data: *const u8,
    _value_size: usize,
) -> Status {
    Status::Ok
}

#[no_mangle]
pub unsafe extern "C" fn proxy_get_shared_data(
    key_data: *const u8,
    key_size: usize,
    return_data: *mut *mut u8,
    return_size: *mut usize,
    return_cas: *mut u32,
) -> Status {
    let key = text(key_data, key_size);
    match with(|host| host.shared_data.get(&key).cloned()) {
        Some((value, cas)) => {
            hand_over(value, return_data, return_size);
            *return_cas = cas;
            Status::Ok
        }
        None => Status::NotFound,
    }
}

#[no_mangle]
pub unsafe extern "C" fn proxy_set_shared_data(
    key_data: *const u8,
    key_size: usize,
    value_data: *const u8,
    value_size: usize,
    cas: u32,
) -> Status {
    let key = text(key_data, key_size);
    let value = bytes(value_data, value_size).to_vec();
    with(|host| {
        let version = host.shared_data.get(&key).map_or(0, |(_, v)| *v);
        if cas != 0 && cas != version {
            return Status::CasMismatch;
        }
        host.shared_data.insert(key, (value, version + 1));
        Status::Ok
    })
}

#[no_mangle]
pub extern "C" fn proxy_register_shared_queue(
    _name_data: *const u8,
    _name_size: usize,
    _return_id: *mut u32,
) -> Status {
    Status::InternalFailure
}

#[no_mangle]
pub extern "C" fn proxy_resolve_shared_queue(
    _vm_id_data: *const u8,
    _vm_id_size: usize,
    _name_data: *const u8,
    _name_size: usize,
    _return_id: *mut u32,
) -> Status {
    Status::NotFound
}

#[no_mangle]
pub extern "C" fn proxy_dequeue_shared_queue(
    _queue_id: u32,
    _return_data: *mut *mut u8,
    _return_size: *mut usize,
) -> Status {
    Status::Empty
}

#[no_mangle]
pub extern "C" fn proxy_enqueue_shared_queue(
    _queue_id: u32,
    _value_data: *const u8,
    _value_size: usize,
) -> Status {
    Status::NotFound
}

#[no_mangle]
pub extern "C" fn proxy_continue_stream(_stream_type: StreamType) -> Status {
    with(|host| host.resumed += 1);
    Status::Ok
}

#[no_mangle]
pub extern "C" fn proxy_close_stream(_stream_type: StreamType) -> Status {
    Status::Ok
}

#[no_mangle]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn proxy_send_local_response(
    status: u32,
    details_data: *const u8,
    details_size: usize,
    body_data: *const u8,
    body_size: usize,
    headers_data: *const u8,
    headers_size: usize,
    _grpc_status: i32,
) -> Status {
    let reply = LocalReply {
        status,
        details: text(details_data, details_size),
        body: bytes(body_data, body_size).to_vec(),
        headers: deserialize_map(bytes(headers_data, headers_size)),
    };
    with(|host| host.local_reply = Some(reply));
    Status::Ok
}

#[no_mangle]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn proxy_http_call(
    _upstream_data: *const u8,
    _upstream_size: usize,
    _headers_data: *const u8,
    _headers_size: usize,
    _body_data: *const u8,
    _body_size: usize,
    _trailers_data: *const u8,
    _trailers_size: usize,
    _timeout: u32,
    return_token: *mut u32,
) -> Status {
    static TOKENS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(1);
    let token = TOKENS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    with(|host| {
        host.http_calls += 1;
        host.last_http_call_token = token;
    });
    *return_token = token;
    Status::Ok
}

#[no_mangle]
#[allow(clippy::too_many_arguments)]
pub extern "C" fn proxy_grpc_call(
    _upstream_data: *const u8,
    _upstream_size: usize,
    _service_name_data: *const u8,
    _service_name_size: usize,
    _method_name_data: *const u8,
    _method_name_size: usize,
    _initial_metadata_data: *const u8,
    _initial_metadata_size: usize,
    _message_data: *const u8,
    _message_size: usize,
    _timeout: u32,
    _return_callout_id: *mut u32,
) -> Status {
    Status::InternalFailure
}

#[no_mangle]
#[allow(clippy::too_many_arguments)]
pub extern "C" fn proxy_grpc_stream(
    _upstream_data: *const u8,
    _upstream_size: usize,
    _service_name_data: *const u8,
    _service_name_size: usize,
    _method_name_data: *const u8,
    _method_name_size: usize,
    _initial_metadata_data: *const u8,
    _initial_metadata_size: usize,
    _return_stream_id: *mut u32,
) -> Status {
    Status::InternalFailure
}

#[no_mangle]
pub extern "C" fn proxy_grpc_send(
    _token: u32,
    _message_ptr: *const u8,
    _message_len: usize,
    _end_stream: bool,
) -> Status {
    Status::InternalFailure
}

#[no_mangle]
pub extern "C" fn proxy_grpc_cancel(_token_id: u32) -> Status {
    Status::InternalFailure
}

#[no_mangle]
pub extern "C" fn proxy_grpc_close(_token_id: u32) -> Status {
    Status::InternalFailure
}

#[no_mangle]
pub extern "C" fn proxy_get_status(
    _return_code: *mut u32,
    _return_message_data: *mut *mut u8,
    _return_message_size: *mut usize,
) -> Status {
    Status::NotFound
}

#[no_mangle]
pub extern "C" fn proxy_set_effective_context(_context_id: u32) -> Status {
    Status::Ok
}

#[no_mangle]
pub extern "C" fn proxy_call_foreign_function(
    _function_name_data: *const u8,
    _function_name_size: usize,
    _arguments_data: *const u8,
    _arguments_size: usize,
    _results_data: *mut *mut u8,
    _results_size: *mut usize,
) -> Status {
    Status::NotFound
}

#[no_mangle]
pub extern "C" fn proxy_done() -> Status {
    Status::Ok
}

#[no_mangle]
pub unsafe extern "C" fn proxy_define_metric(
    metric_type: MetricType,
    name_data: *const u8,
    name_size: usize,
    return_id: *mut u32,
) -> Status {
    let name = text(name_data, name_size);
    let id = with(
        |host| match host.metrics.iter().position(|(n, _, _)| *n == name) {
            Some(at) => at,
            None => {
                host.metrics.push((name, metric_type, 0));
                host.metrics.len() - 1
            }
        },
    );
    *return_id = id as u32;
    Status::Ok
}

#[no_mangle]
pub unsafe extern "C" fn proxy_get_metric(metric_id: u32, return_value: *mut u64) -> Status {
    match with(|host| host.metrics.get(metric_id as usize).map(|m| m.2)) {
        Some(value) => {
            *return_value = value as u64;
            Status::Ok
        }
        None => Status::NotFound,
    }
}

#[no_mangle]
pub extern "C" fn proxy_record_metric(metric_id: u32, value: u64) -> Status {
    with(|host| match host.metrics.get_mut(metric_id as usize) {
        Some((_, MetricType::Gauge, current)) => {
            *current = value as i64;
            Status::Ok
        }
        // A histogram keeps the sum of its samples here.
        Some((_, _, current)) => {
            *current += value as i64;
            Status::Ok
        }
        None => Status::NotFound,
    })
}

#[no_mangle]
pub extern "C" fn proxy_increment_metric(metric_id: u32, offset: i64) -> Status {
    with(|host| match host.metrics.get_mut(metric_id as usize) {
        Some((_, _, current)) => {
            *current += offset;
            Status::Ok
        }
        None => Status::NotFound,
    })
}
