//! The module's glue driven in process against `proxy-wasm-test-host`: its root context reads
//! its own `pluginConfig` under its own name, runs the request-side sections as model-gateway
//! does, and refuses what needs a response callback with the accepted configuration kept.
//! Native only: in a Wasm test binary the SDK's hostcalls stay imports from the host.
#![cfg(not(target_arch = "wasm32"))]
#![allow(clippy::unwrap_used)]

use model_gateway::PluginRoot;
use proxy_wasm::traits::{HttpContext, RootContext};
use proxy_wasm::types::Action;
use proxy_wasm_test_host as host;
use serde_json::{json, Value};

fn push(root: &mut PluginRoot, config: &Value) -> bool {
    let config = config.to_string();
    host::with(|h| {
        h.plugin_configuration = config.as_bytes().to_vec();
        h.logs.clear();
    });
    root.on_configure(config.len())
}

/// The request's answer: `None` when it goes on to the upstream, else the local reply's status.
fn request(root: &PluginRoot, path: &str) -> Option<u32> {
    host::with(|h| {
        h.local_reply = None;
        h.set_request("GET", path, &[]);
    });
    let mut filter = root.filter(2);
    let action = filter.on_http_request_headers(4, true);
    drop(filter);
    let reply = host::with(|h| h.local_reply.as_ref().map(|reply| reply.status));
    assert_eq!(action == Action::Continue, reply.is_none(), "{path}");
    reply
}

fn logged(part: &str) -> bool {
    host::with(|h| h.logs.iter().any(|(_, line)| line.contains(part)))
}

#[test]
fn the_request_side_sections_run_and_a_response_side_one_is_refused() {
    host::reset();
    let mut root = model_gateway_request_only::root(1);
    let allowlist = json!({"rules": [{"to": [{"operation": {"paths": ["/v1/models/*"]}}]}]});
    let ratelimit = json!({
        "domain": "models",
        "enable_x_ratelimit_headers": "OFF",
        "descriptors": [{"key": "path", "rate_limit": {"unit": "minute", "requests_per_unit": 1}}],
        "rate_limits": [{"actions": [{"request_headers": {"header_name": ":path", "descriptor_key": "path"}}]}]
    });
    assert!(push(
        &mut root,
        &json!({"pathAllowlist": allowlist, "localRatelimit": ratelimit})
    ));
    assert!(logged("model-gateway-request-only: configuration accepted"));
    assert_eq!(request(&root, "/admin"), Some(403));
    assert_eq!(request(&root, "/v1/models/bert"), None);
    assert_eq!(request(&root, "/v1/models/bert"), Some(429));

    // Refused under this module's name; the accepted sections keep deciding.
    assert!(!push(&mut root, &json!({"emotionStats": {}})));
    assert!(logged(
        "model-gateway-request-only: invalid configuration at `emotionStats`"
    ));
    let mut headers = json!({"pathAllowlist": allowlist, "localRatelimit": ratelimit});
    headers["localRatelimit"]["enable_x_ratelimit_headers"] = json!("DRAFT_VERSION_03");
    assert!(!push(&mut root, &headers));
    assert!(logged("`localRatelimit.enable_x_ratelimit_headers`"));
    assert_eq!(request(&root, "/admin"), Some(403));
    assert_eq!(request(&root, "/v1/models/other"), None);
}
