//! The glue (`PluginRoot`, `Filter`) driven in process against `proxy-wasm-test-host`: the
//! configuration read from the host, headers read and rewritten, the local reply and the counters,
//! as Envoy would see them (the same cases run in a real Envoy in `tests/tests/path_allowlist.rs`).
//! Native only: in a Wasm test binary the SDK's hostcalls stay imports from the host.
#![cfg(not(target_arch = "wasm32"))]
#![allow(clippy::unwrap_used)]

use path_allowlist::PluginRoot;
use proxy_wasm::traits::{HttpContext, RootContext};
use proxy_wasm::types::Action;
use proxy_wasm_test_host as host;

const ALLOWLIST: &str = r#"{"action": "ALLOW", "rules": [
    {"to": [{"operation": {"paths": ["/healthz", "/v1/models/*"]}}]}
], "pathNormalization": "MERGE_SLASHES"}"#;

fn configured(config: &str) -> Option<PluginRoot> {
    host::reset();
    host::with(|h| h.plugin_configuration = config.as_bytes().to_vec());
    let mut root = PluginRoot::default();
    root.on_configure(config.len()).then_some(root)
}

fn request(root: &PluginRoot, method: &str, path: &str) -> Action {
    host::with(|h| {
        h.local_reply = None;
        h.request_headers = vec![
            (":method".into(), method.as_bytes().to_vec()),
            (":path".into(), path.as_bytes().to_vec()),
            (":authority".into(), b"models.example.com".to_vec()),
        ];
    });
    let mut filter = root.filter().unwrap();
    filter.on_http_request_headers(3, true)
}

#[test]
fn allowed_paths_continue_and_others_get_the_rbac_reply() {
    let root = configured(ALLOWLIST).unwrap();
    assert_eq!(request(&root, "GET", "/healthz"), Action::Continue);
    assert!(host::with(|h| h.local_reply.is_none()));

    assert_eq!(request(&root, "GET", "/admin"), Action::Pause);
    let reply = host::with(|h| h.local_reply.clone()).unwrap();
    assert_eq!(
        (reply.status, reply.body.as_slice()),
        (403, &b"RBAC: access denied"[..])
    );
    assert!(host::with(|h| h
        .logs
        .iter()
        .any(|(_, line)| line.contains("/admin"))));
}

#[test]
fn the_normalized_path_is_what_the_upstream_gets() {
    let root = configured(ALLOWLIST).unwrap();
    assert_eq!(request(&root, "GET", "//v1//models/bert"), Action::Continue);
    let path = host::with(|h| {
        h.request_headers
            .iter()
            .find(|(name, _)| name == ":path")
            .map(|(_, value)| value.clone())
    });
    assert_eq!(path.as_deref(), Some(&b"/v1/models/bert"[..]));
}

#[test]
fn decisions_are_counted_once_each() {
    let root = configured(ALLOWLIST).unwrap();
    request(&root, "GET", "/healthz");
    request(&root, "GET", "/admin");
    request(&root, "GET", "/other");
    let allowed = host::with(|h| {
        h.metrics
            .iter()
            .filter(|(name, _, _)| name.contains("allowed"))
            .map(|(_, _, value)| *value)
            .sum::<i64>()
    });
    let denied = host::with(|h| {
        h.metrics
            .iter()
            .filter(|(name, _, _)| name.contains("denied") && !name.contains("dry_run"))
            .map(|(_, _, value)| *value)
            .sum::<i64>()
    });
    assert_eq!((allowed, denied), (1, 2));
}

#[test]
fn a_bad_configuration_is_refused_naming_the_field_and_serves_nothing() {
    assert!(configured(r#"{"action": "ALLOW", "rules": [], "bogus": 1}"#).is_none());
    assert!(host::with(|h| h
        .logs
        .iter()
        .any(|(_, line)| line.contains("bogus"))));
    let root = PluginRoot::default();
    assert!(root.filter().is_none());
}
