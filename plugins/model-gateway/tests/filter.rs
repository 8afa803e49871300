//! The bundle's glue driven in process against `proxy-wasm-test-host`: the sections run in the
//! standalone plugins' order and the first refusal stops the rest, a single section decides as
//! its standalone plugin does, the request's headers are read once for all of them, a bad
//! section is refused with the accepted configuration kept, and a request that waited for remote
//! keys goes through the rest of the chain before it resumes.
//! Native only: in a Wasm test binary the SDK's hostcalls stay imports from the host.
#![cfg(not(target_arch = "wasm32"))]
#![allow(clippy::unwrap_used)]

use model_gateway::PluginRoot;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::Action;
use proxy_wasm_test_host as host;
use serde_json::{json, Value};

const JWKS: &str = r#"{"keys":[{"kty":"EC","crv":"P-256","x":"ei4AI5RVTVCG8ni-TZfE8L2rmYS8M3KHac3viXNekfg","y":"CI_8GTrzTQBH_SJr9AgKQRru4EPKVrQDmVLU7W0vcBk","alg":"ES256","use":"sig","kid":"it-1"}]}"#;
/// iss `https://dex.example.com`, sub `alice`, aud `kserve`, expires in 2100.
const VALID: &str = "eyJhbGciOiJFUzI1NiIsImtpZCI6Iml0LTEiLCJ0eXAiOiJKV1QifQ.eyJpYXQiOjE3OTU2NTEyMDAsImV4cCI6NDEwMjQ0NDgwMCwibmJmIjoxNzk1NjUxMjAwLCJpc3MiOiJodHRwczovL2RleC5leGFtcGxlLmNvbSIsInN1YiI6ImFsaWNlIiwiYXVkIjoia3NlcnZlIiwiZ3JvdXBzIjpbIm1sLXVzZXJzIl19.gb-tvWY6BExtTd2vweWbsZUGLjXRJqq7kzG8oDW84iBBWWT34PMOU9rZJ9HIF_QO4KdDoASdSX7cp05rWoxD8Q";
const ANSWER: &[u8] =
    br#"{"predictions":[[{"label":"joy","score":0.98},{"label":"sadness","score":0.02}]]}"#;

fn auth_gate(keys: Value) -> Value {
    let mut rule = json!({"issuer": "https://dex.example.com", "audiences": ["kserve"]});
    rule.as_object_mut()
        .unwrap()
        .extend(keys.as_object().unwrap().clone());
    json!({
        "jwtRules": [rule],
        "policies": [{
            "name": "require-jwt",
            "action": "DENY",
            "rules": [{"from": [{"source": {"notRequestPrincipals": ["*"]}}]}]
        }]
    })
}

fn path_allowlist() -> Value {
    json!({"action": "ALLOW", "rules": [{"to": [{"operation": {"paths": ["/v1/models/*"]}}]}]})
}

fn local_ratelimit() -> Value {
    json!({
        "domain": "models",
        "descriptors": [{"key": "path", "rate_limit": {"unit": "minute", "requests_per_unit": 2}}],
        "rate_limits": [{"actions": [{"request_headers": {"header_name": ":path", "descriptor_key": "path"}}]}]
    })
}

fn all_four() -> Value {
    json!({
        "authGate": auth_gate(json!({"jwks": JWKS})),
        "pathAllowlist": path_allowlist(),
        "localRatelimit": local_ratelimit(),
        "emotionStats": {"paths": ["/v1/models/*"]},
    })
}

/// The root after `on_configure` with `config`, or `None` when it refused it.
fn push(root: &mut PluginRoot, config: &Value) -> bool {
    let config = config.to_string();
    host::with(|h| {
        h.plugin_configuration = config.as_bytes().to_vec();
        h.now_nanos = 1_796_256_000 * 1_000_000_000;
    });
    root.on_configure(config.len())
}

fn configured(config: &Value) -> PluginRoot {
    host::reset();
    let mut root = PluginRoot::new(1);
    assert!(push(&mut root, config));
    root
}

/// One exchange on `path`: the request, and when it is admitted the model's answer.
fn exchange(root: &PluginRoot, path: &str, token: Option<&str>) -> Action {
    host::with(|h| {
        let bearer = token.map(|token| format!("Bearer {token}"));
        let extra: Vec<(&str, &[u8])> = bearer
            .iter()
            .map(|value| ("authorization", value.as_bytes()))
            .collect();
        h.set_request("POST", path, &extra);
        h.response_headers = vec![
            (":status".into(), b"200".to_vec()),
            ("content-type".into(), b"application/json".to_vec()),
        ];
        h.response_body = ANSWER.to_vec();
    });
    let mut filter = root.filter(2);
    let action = filter.on_http_request_headers(4, true);
    if action == Action::Continue {
        filter.on_http_response_headers(2, false);
        filter.on_http_response_body(ANSWER.len(), true);
    }
    drop(filter); // The host deletes the context once the stream is over.
    action
}

fn status() -> Option<u32> {
    host::with(|h| h.local_reply.as_ref().map(|reply| reply.status))
}

fn metric(part: &str) -> i64 {
    host::with(|h| h.metrics_containing(&[part]))
}

#[test]
fn sections_run_in_order_and_the_first_refusal_stops_the_rest() {
    let root = configured(&all_four());
    // No token: auth-gate answers; nothing after it sees the request.
    assert_eq!(
        exchange(&root, "/v1/models/bert:predict", None),
        Action::Pause
    );
    assert_eq!(status(), Some(403));
    assert_eq!(metric("path_allowlist_requests"), 0);
    assert_eq!(metric("local_ratelimit"), 0);
    // Authenticated, but not an allowed path: path-allowlist answers before the rate limit.
    assert_eq!(exchange(&root, "/admin", Some(VALID)), Action::Pause);
    assert_eq!(status(), Some(403));
    assert_eq!(metric("local_ratelimit"), 0);
    // Admitted twice, then the bucket is empty; only the admitted answers are counted.
    for _ in 0..2 {
        assert_eq!(
            exchange(&root, "/v1/models/bert:predict", Some(VALID)),
            Action::Continue
        );
        assert_eq!(status(), None);
    }
    assert_eq!(
        exchange(&root, "/v1/models/bert:predict", Some(VALID)),
        Action::Pause
    );
    assert_eq!(status(), Some(429));
    assert_eq!(metric("top_label_total"), 2);
    assert_eq!(metric("auth_gate_requests_total"), 5);
}

#[test]
fn the_request_headers_are_read_once_for_all_sections() {
    let root = configured(&all_four());
    host::with(|h| {
        h.request_header_reads = 0;
        h.clock_reads = 0;
    });
    assert_eq!(
        exchange(&root, "/v1/models/bert:predict", Some(VALID)),
        Action::Continue
    );
    assert_eq!(host::with(|h| h.request_header_reads), 1);
    // The clock too: once for the request (the token's expiry, the bucket, the latency's start)
    // and once when the answer is counted.
    assert_eq!(host::with(|h| h.clock_reads), 2);
    // What auth-gate changed is what the next sections see: the token is not forwarded, the
    // claim header it wrote is.
    assert!(host::with(|h| h
        .request_headers
        .iter()
        .all(|(name, _)| name != "authorization")));
}

#[test]
fn a_single_section_decides_as_its_standalone_plugin() {
    let paths = [
        "/v1/models/bert:predict",
        "//v1//models/bert",
        "/v1/models/%2e%2e/admin",
        "/admin",
        "/v1/models/a/../../admin",
        "",
    ];
    let section = path_allowlist();
    let mut bundled = Vec::new();
    let root = configured(&json!({"pathAllowlist": section}));
    for path in paths {
        let action = exchange(&root, path, None);
        bundled.push((action, status(), host::with(|h| h.request_headers.clone())));
    }
    host::reset();
    host::with(|h| h.plugin_configuration = section.to_string().into_bytes());
    let mut standalone = path_allowlist::PluginRoot::default();
    assert!(standalone.on_configure(0));
    for (path, bundled) in paths.iter().zip(bundled) {
        host::with(|h| h.set_request("POST", path, &[]));
        let action = standalone
            .filter()
            .unwrap()
            .on_http_request_headers(3, true);
        let seen = (action, status(), host::with(|h| h.request_headers.clone()));
        assert_eq!(seen, bundled, "{path:?}");
    }
}

#[test]
fn a_bad_section_is_refused_and_the_accepted_configuration_stays() {
    let mut root = configured(&json!({"pathAllowlist": path_allowlist()}));
    let mut bad = all_four();
    bad["localRatelimit"]["descriptors"] = json!("all");
    assert!(!push(&mut root, &bad));
    let refused = host::with(|h| {
        h.logs
            .iter()
            .any(|(_, line)| line.contains("`localRatelimit.descriptors`"))
    });
    assert!(refused, "{:?}", host::with(|h| h.logs.clone()));
    // Still the path allowlist alone: no JWT asked for, no rate limit.
    for _ in 0..3 {
        assert_eq!(
            exchange(&root, "/v1/models/bert:predict", None),
            Action::Continue
        );
    }
    assert_eq!(exchange(&root, "/admin", None), Action::Pause);
    assert_eq!(status(), Some(403));
    // A section removed by a later push is off.
    assert!(push(
        &mut root,
        &json!({"emotionStats": {"paths": ["/v1/models/*"]}})
    ));
    assert_eq!(exchange(&root, "/admin", None), Action::Continue);
    assert!(!push(
        &mut root,
        &json!({"pathAllowlist": {"action": "AUDIT"}})
    ));
    assert_eq!(exchange(&root, "/admin", None), Action::Continue);
}

/// A request paused for remote keys; the keys arrive; what the rest of the chain decides.
fn after_keys_arrive(path: &str) -> (Action, usize) {
    let mut root = configured(&json!({
        "authGate": auth_gate(json!({"jwksUri": "http://dex/keys", "jwksCluster": "jwks", "timeout": "10s"})),
        "pathAllowlist": path_allowlist(),
    }));
    let bearer = format!("Bearer {VALID}");
    host::with(|h| h.set_request("POST", path, &[("authorization", bearer.as_bytes())]));
    let mut filter = root.filter(2);
    let paused = filter.on_http_request_headers(3, true);
    assert!(host::with(|h| h.local_reply.is_none()));
    root.on_tick();
    assert_eq!(host::with(|h| h.http_calls), 1);
    host::with(|h| {
        h.http_call_response_headers = vec![(":status".into(), b"200".to_vec())];
        h.http_call_response_body = JWKS.as_bytes().to_vec();
    });
    let token = host::with(|h| h.last_http_call_token);
    root.on_http_call_response(token, 1, JWKS.len(), 0);
    (paused, host::with(|h| h.resumed))
}

#[test]
fn a_request_that_waited_for_keys_goes_through_the_rest_of_the_chain() {
    assert_eq!(
        after_keys_arrive("/v1/models/bert:predict"),
        (Action::Pause, 1)
    );
    assert_eq!(status(), None);
    // Admitted by auth-gate once the keys are there, refused by path-allowlist: never resumed.
    assert_eq!(after_keys_arrive("/admin"), (Action::Pause, 0));
    assert_eq!(status(), Some(403));
}
