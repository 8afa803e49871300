//! The glue (`PluginRoot`, `Filter`) driven in process against `proxy-wasm-test-host`: the
//! bucket shared through the host's shared data (two roots: two workers), the 429 reply with
//! Envoy's headers, the x-ratelimit headers written on the response. In a real Envoy:
//! `tests/tests/local_ratelimit.rs` and `local_ratelimit_parity.rs`.
//! Native only: in a Wasm test binary the SDK's hostcalls stay imports from the host.
#![cfg(not(target_arch = "wasm32"))]
#![allow(clippy::unwrap_used)]

use local_ratelimit::PluginRoot;
use proxy_wasm::traits::{HttpContext, RootContext};
use proxy_wasm::types::Action;
use proxy_wasm_test_host as host;

const TWO_PER_MINUTE: &str = r#"{
    "domain": "models",
    "descriptors": [{"key": "path", "rate_limit": {"unit": "minute", "requests_per_unit": 2}}],
    "rate_limits": [{"actions": [{"request_headers": {"header_name": ":path", "descriptor_key": "path"}}]}]
}"#;

fn worker() -> PluginRoot {
    host::with(|h| {
        h.plugin_configuration = TWO_PER_MINUTE.as_bytes().to_vec();
        h.now_nanos = 1_796_256_000 * 1_000_000_000;
    });
    let mut root = PluginRoot::default();
    // A module linking several plugins builds the root itself: no request before a configuration.
    assert!(root.filter().is_none());
    assert!(root.on_configure(TWO_PER_MINUTE.len()));
    root
}

/// One request on `path`; the response's headers when it was admitted.
fn request(root: &PluginRoot, path: &str) -> (Action, Vec<(String, Vec<u8>)>) {
    host::with(|h| {
        h.local_reply = None;
        h.request_headers = vec![
            (":method".into(), b"GET".to_vec()),
            (":path".into(), path.as_bytes().to_vec()),
        ];
        h.response_headers = vec![(":status".into(), b"200".to_vec())];
    });
    let mut filter = root.filter().unwrap();
    let action = filter.on_http_request_headers(2, true);
    if action == Action::Continue {
        filter.on_http_response_headers(1, false);
    }
    (action, host::with(|h| h.response_headers.clone()))
}

#[test]
fn workers_share_one_bucket_and_the_third_request_gets_a_429() {
    host::reset();
    let (first, second) = (worker(), worker());
    let (action, headers) = request(&first, "/v1/models/a:predict");
    assert_eq!(action, Action::Continue);
    assert!(headers
        .iter()
        .any(|(n, v)| n == "x-ratelimit-remaining" && v == b"1"));
    assert_eq!(request(&second, "/v1/models/a:predict").0, Action::Continue);
    assert_eq!(request(&first, "/v1/models/a:predict").0, Action::Pause);
    let reply = host::with(|h| h.local_reply.clone()).unwrap();
    assert_eq!(reply.status, 429);
    assert!(reply
        .headers
        .iter()
        .any(|(n, v)| n == "x-envoy-ratelimited" && v == "true"));
    // Another path is another bucket.
    assert_eq!(request(&second, "/v1/models/b:predict").0, Action::Continue);
}

/// The glue defines the configuration's counters when it is accepted, at zero (as upstream's
/// service creates a rule's stats when it loads its config), and no request defines another.
#[test]
fn counters_exist_from_configure_and_requests_define_none() {
    host::reset();
    let root = worker();
    let names = |h: &host::Host| {
        h.metrics
            .iter()
            .map(|(n, _, _)| n.clone())
            .collect::<Vec<_>>()
    };
    let defined = host::with(|h| names(h));
    // The rule's five statistics and the four plugin-level counters.
    assert_eq!(defined.len(), 9, "{defined:?}");
    let over = "domain=.=models;.;rule=.=path;.;local_ratelimit_over_limit";
    assert!(defined.iter().any(|n| n == over), "{defined:?}");
    assert!(host::with(|h| h
        .metrics
        .iter()
        .all(|(_, _, value)| *value == 0)));
    for _ in 0..3 {
        request(&root, "/v1/models/a:predict");
    }
    assert_eq!(host::with(|h| names(h)), defined);
    assert_eq!(host::with(|h| h.metric(over)), 1);
}

#[test]
fn a_bad_configuration_is_refused_naming_the_field() {
    host::reset();
    let config = r#"{"domain": "d", "descriptors": [{"key": "path", "rate_limit": {"unit": "fortnight", "requests_per_unit": 1}}]}"#;
    host::with(|h| h.plugin_configuration = config.as_bytes().to_vec());
    let mut root = PluginRoot::default();
    assert!(!root.on_configure(config.len()));
    assert!(root.filter().is_none());
    assert!(host::with(|h| h
        .logs
        .iter()
        .any(|(_, line)| line.contains("unit"))));
}
