//! The glue (`PluginRoot`, `Filter`) driven in process against `proxy-wasm-test-host`: the
//! configuration read from the host, the token read from the request, the 401 reply, the output
//! headers, the counters, and the verified-token slots two workers share in the VM's shared data
//! (here two roots on one fake host). The same behaviour in a real Envoy: `tests/tests/auth_gate.rs`
//! and the bench's two-worker run.
//! Native only: in a Wasm test binary the SDK's hostcalls stay imports from the host.
#![cfg(not(target_arch = "wasm32"))]
#![allow(clippy::unwrap_used)]

use auth_gate::PluginRoot;
use proxy_wasm::traits::{HttpContext, RootContext};
use proxy_wasm::types::Action;
use proxy_wasm_test_host as host;

const JWKS: &str = r#"{"keys":[{"kty":"EC","crv":"P-256","x":"ei4AI5RVTVCG8ni-TZfE8L2rmYS8M3KHac3viXNekfg","y":"CI_8GTrzTQBH_SJr9AgKQRru4EPKVrQDmVLU7W0vcBk","alg":"ES256","use":"sig","kid":"it-1"}]}"#;
/// iss `https://dex.example.com`, sub `alice`, aud `kserve`, expires in 2100.
const VALID: &str = "eyJhbGciOiJFUzI1NiIsImtpZCI6Iml0LTEiLCJ0eXAiOiJKV1QifQ.eyJpYXQiOjE3OTU2NTEyMDAsImV4cCI6NDEwMjQ0NDgwMCwibmJmIjoxNzk1NjUxMjAwLCJpc3MiOiJodHRwczovL2RleC5leGFtcGxlLmNvbSIsInN1YiI6ImFsaWNlIiwiYXVkIjoia3NlcnZlIiwiZ3JvdXBzIjpbIm1sLXVzZXJzIl19.gb-tvWY6BExtTd2vweWbsZUGLjXRJqq7kzG8oDW84iBBWWT34PMOU9rZJ9HIF_QO4KdDoASdSX7cp05rWoxD8Q";
/// The same claims signed by another key.
const FORGED: &str = "eyJhbGciOiJFUzI1NiIsImtpZCI6Iml0LTEiLCJ0eXAiOiJKV1QifQ.eyJpYXQiOjE3OTU2NTEyMDAsImV4cCI6NDEwMjQ0NDgwMCwibmJmIjoxNzk1NjUxMjAwLCJpc3MiOiJodHRwczovL2RleC5leGFtcGxlLmNvbSIsInN1YiI6ImFsaWNlIiwiYXVkIjoia3NlcnZlIiwiZ3JvdXBzIjpbIm1sLXVzZXJzIl19.CzRidnWp2lX16FGrSvXSkpQDSqg0kuop2eLeJVRd4NnsPQB-KfgDiqC17F6oUvPWEJ0QquZxeGk3GzGjMKlN2A";

/// The JWT rule with `policies`.
fn config_with(policies: serde_json::Value) -> String {
    serde_json::json!({
        "jwtRules": [{
            "issuer": "https://dex.example.com",
            "audiences": ["kserve"],
            "jwks": JWKS,
            "outputClaimToHeaders": [{"header": "x-user", "claim": "sub"}]
        }],
        "policies": policies
    })
    .to_string()
}

fn config() -> String {
    config_with(serde_json::json!([{
        "name": "require-jwt",
        "action": "DENY",
        "rules": [{"from": [{"source": {"notRequestPrincipals": ["*"]}}]}]
    }]))
}

/// A worker's root, configured from the host (the host is not reset: workers share it).
fn worker(context_id: u32) -> PluginRoot {
    configured(context_id, &config())
}

/// A root configured with `config` from the host.
fn configured(context_id: u32, config: &str) -> PluginRoot {
    host::with(|h| {
        h.plugin_configuration = config.as_bytes().to_vec();
        // 2026-12-03, nanoseconds: the tokens are valid.
        h.now_nanos = 1_796_256_000 * 1_000_000_000;
    });
    let mut root = PluginRoot::new(context_id);
    // A module linking several plugins builds the root itself: no request before a configuration.
    assert!(root.filter(context_id + 1).is_none());
    assert!(root.on_configure(config.len()));
    root
}

fn request(root: &PluginRoot, context_id: u32, token: Option<&str>) -> Action {
    host::with(|h| {
        h.local_reply = None;
        h.request_headers = vec![
            (":method".into(), b"POST".to_vec()),
            (":path".into(), b"/v1/models/bert:predict".to_vec()),
            (":authority".into(), b"models.example.com".to_vec()),
            // A client cannot set what the plugin writes.
            ("x-user".into(), b"mallory".to_vec()),
        ];
        if let Some(token) = token {
            h.request_headers.push((
                "authorization".into(),
                format!("Bearer {token}").into_bytes(),
            ));
        }
    });
    let mut filter = root.filter(context_id).unwrap();
    filter.on_http_request_headers(4, true)
}

fn header(name: &str) -> Option<String> {
    host::with(|h| {
        h.request_headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
    })
}

fn counter(part: &str) -> i64 {
    host::with(|h| h.metrics_containing(&[part]))
}

#[test]
fn a_valid_token_is_forwarded_with_its_claims_and_without_itself() {
    host::reset();
    let root = worker(1);
    assert_eq!(request(&root, 2, Some(VALID)), Action::Continue);
    assert_eq!(header("x-user").as_deref(), Some("alice"));
    assert_eq!(header("authorization"), None);
}

#[test]
fn no_token_and_a_forged_token_get_envoys_replies() {
    host::reset();
    let root = worker(1);
    assert_eq!(request(&root, 2, None), Action::Pause);
    let reply = host::with(|h| h.local_reply.clone()).unwrap();
    assert_eq!(
        (reply.status, reply.body.as_slice()),
        (403, &b"RBAC: access denied"[..])
    );

    assert_eq!(request(&root, 3, Some(FORGED)), Action::Pause);
    let reply = host::with(|h| h.local_reply.clone()).unwrap();
    assert_eq!(
        (reply.status, reply.body.as_slice()),
        (401, &b"Jwt verification fails"[..])
    );
    assert!(reply
        .headers
        .iter()
        .any(|(name, value)| name == "www-authenticate" && value.contains("invalid_token")));
    assert_eq!(counter("bad_signature"), 1);
}

#[test]
fn two_workers_check_a_new_token_once() {
    host::reset();
    let (first, second) = (worker(1), worker(100));
    assert_eq!(request(&first, 2, Some(VALID)), Action::Continue);
    assert_eq!(request(&second, 101, Some(VALID)), Action::Continue);
    assert_eq!(header("x-user").as_deref(), Some("alice"));
    assert_eq!(counter("auth_gate_signature_checks_total"), 1);
    assert_eq!(counter("auth_gate_token_cache_shared_hits_total"), 1);
    // A forged token is checked, and refused, by each worker: it never enters the slots.
    assert_eq!(request(&first, 3, Some(FORGED)), Action::Pause);
    assert_eq!(request(&second, 102, Some(FORGED)), Action::Pause);
    assert_eq!(counter("auth_gate_signature_checks_total"), 3);
}

/// A root context whose configuration is replaced while its JWKS fetch is in flight: the next
/// configuration's root fetches at once, not after the old fetch's lease expires.
#[test]
fn a_replaced_configuration_frees_its_fetch_for_the_next_one() {
    host::reset();
    let config = serde_json::json!({
        "jwtRules": [{
            "issuer": "https://dex.example.com",
            "jwksUri": "http://dex/keys",
            "jwksCluster": "jwks",
            "timeout": "10s"
        }]
    })
    .to_string();
    let configured = |context_id| {
        host::with(|h| h.plugin_configuration = config.as_bytes().to_vec());
        let mut root = PluginRoot::new(context_id);
        assert!(root.on_configure(config.len()));
        root
    };
    let mut old = configured(1);
    old.on_tick();
    assert_eq!(host::with(|h| h.http_calls), 1);
    let mut new = configured(2);
    new.on_tick();
    assert_eq!(
        host::with(|h| h.http_calls),
        1,
        "the old fetch's lease holds"
    );
    drop(old); // The host deletes the old root context.
    new.on_tick();
    assert_eq!(host::with(|h| h.http_calls), 2);
}

#[test]
fn a_dry_run_deny_is_logged_with_the_path_checked_and_the_request_goes_on() {
    host::reset();
    let root = configured(
        1,
        &config_with(serde_json::json!([{
            "name": "shadow-deny",
            "action": "DENY",
            "dryRun": true,
            "rules": [{"to": [{"operation": {"paths": ["/v1/*"]}}]}]
        }])),
    );
    assert_eq!(request(&root, 2, Some(VALID)), Action::Continue);
    assert_eq!(header("x-user").as_deref(), Some("alice"));
    let lines: Vec<String> = host::with(|h| {
        h.logs
            .iter()
            .map(|(_, line)| line.clone())
            .filter(|line| line.contains("dry-run, would deny"))
            .collect()
    });
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(lines[0].contains("/v1/models/bert:predict"), "{}", lines[0]);
    assert!(lines[0].contains("shadow-deny"), "{}", lines[0]);
    assert_eq!(counter("dry_run_denied"), 1);
    assert_eq!(counter("allowed"), 1);
}
