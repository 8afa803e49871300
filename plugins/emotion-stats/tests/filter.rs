//! The glue (`PluginRoot`, `Filter`) driven in process against `proxy-wasm-test-host`: a model
//! answer read from the response body and counted at the end of the stream. In a real Envoy:
//! `tests/tests/emotion_stats.rs`.
//! Native only: in a Wasm test binary the SDK's hostcalls stay imports from the host.
#![cfg(not(target_arch = "wasm32"))]
#![allow(clippy::unwrap_used)]

use emotion_stats::PluginRoot;
use proxy_wasm::traits::{HttpContext, RootContext};
use proxy_wasm::types::Action;
use proxy_wasm_test_host as host;

const CONFIG: &str = r#"{"paths": ["/v1/models/*"]}"#;
const ANSWER: &[u8] =
    br#"{"predictions":[[{"label":"joy","score":0.98},{"label":"sadness","score":0.02}]]}"#;

fn exchange(root: &PluginRoot, path: &str, status: &str, body: &[u8]) {
    host::with(|h| {
        h.request_headers = vec![(":path".into(), path.as_bytes().to_vec())];
        h.response_headers = vec![
            (":status".into(), status.as_bytes().to_vec()),
            ("content-type".into(), b"application/json".to_vec()),
        ];
        h.response_body = body.to_vec();
    });
    let mut filter = root.filter().unwrap();
    assert_eq!(filter.on_http_request_headers(1, true), Action::Continue);
    assert_eq!(filter.on_http_response_headers(2, false), Action::Continue);
    assert_eq!(
        filter.on_http_response_body(body.len(), true),
        Action::Continue
    );
    // The host deletes the context once the stream is over: the answer is counted then.
    drop(filter);
}

fn metric(parts: &[&str]) -> i64 {
    host::with(|h| h.metrics_containing(parts))
}

#[test]
fn the_top_label_of_an_answer_is_counted_for_its_model() {
    host::reset();
    host::with(|h| h.plugin_configuration = CONFIG.as_bytes().to_vec());
    let mut root = PluginRoot::default();
    // A module linking several plugins builds the root itself: no request before a configuration.
    assert!(root.filter().is_none());
    assert!(root.on_configure(CONFIG.len()));
    exchange(&root, "/v1/models/bert:predict", "200", ANSWER);
    exchange(&root, "/v1/models/bert:predict", "200", ANSWER);
    assert_eq!(metric(&["joy", "bert", "top_label_total"]), 2);
    assert_eq!(metric(&["sadness", "top_label_total"]), 0);
    // Not a model path: not read, not counted.
    exchange(&root, "/healthz", "200", ANSWER);
    assert_eq!(metric(&["joy", "top_label_total"]), 2);
}
