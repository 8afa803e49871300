//! auth-gate in a real Envoy in front of the demo model server: the BERT emotion walkthrough's
//! header gate, the Kubeflow gateway's "require a JWT except on these paths" with inline keys,
//! and keys fetched from a JWKS server through an Envoy cluster (down at start, up later), with
//! two workers.
//!
//! The tokens are [`integration_tests::es256`]'s.

use harness_model_server::{CannedResponse, ModelServer};
use harness_runner::render::Cluster;
use harness_runner::{http, Envoy, EnvoyConfig, PathNormalization, Plugin};
use integration_tests::es256::{EXPIRED, FORGED, ISSUER, JWKS, VALID, WRONG_AUD};
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::TcpListener;
use std::thread;
use std::time::{Duration, Instant};

const PLUGIN: &str = "auth-gate";
const PREDICT: &str = "/v1/models/bert-emotion-model:predict";
const BODY: &[u8] = br#"{"input": "The sky is blue and the sun is shining"}"#;

fn start(upstream: &ModelServer, config: Value, extra_clusters: Vec<Cluster>) -> Envoy {
    Envoy::start(EnvoyConfig {
        plugins: vec![Plugin::from_dist(PLUGIN, config)],
        upstream: upstream.addr(),
        concurrency: 2,
        // The plugin normalizes on its own; the listener does nothing, as the worst case.
        path_normalization: PathNormalization::None,
        extra_clusters,
        ..Default::default()
    })
    .unwrap()
}

fn send(envoy: &Envoy, method: &str, target: &str, headers: &[(&str, &str)]) -> http::Response {
    let body = if method == "POST" { BODY } else { b"" };
    http::send(method, &envoy.url(target), headers, body).unwrap()
}

fn assert_rbac_denied(resp: &http::Response, what: &str) {
    assert_eq!(resp.status, 403, "{what}: {}", resp.text());
    assert_eq!(resp.text(), "RBAC: access denied", "{what}");
}

fn assert_jwt_refused(resp: &http::Response, body: &str, what: &str) {
    assert_eq!(resp.status, 401, "{what}: {}", resp.text());
    assert_eq!(resp.text(), body, "{what}");
    let challenge = resp.header("www-authenticate").unwrap_or_default();
    assert!(
        challenge.starts_with("Bearer realm=\"http://")
            && challenge.ends_with(", error=\"invalid_token\""),
        "{what}: {challenge}"
    );
}

/// A counter with an `outcome` tag on `/stats/prometheus` (0 when not yet reported).
fn counter(envoy: &Envoy, name: &str, outcome: &str) -> u64 {
    let stats = envoy.admin_get("/stats/prometheus").unwrap();
    let prefix = format!("{name}{{outcome=\"{outcome}\"}} ");
    stats
        .lines()
        .find_map(|line| line.strip_prefix(&prefix)?.trim().parse().ok())
        .unwrap_or(0)
}

fn walkthrough_header_rule() -> Value {
    json!({"policies": [{
        "name": "allow-with-header",
        "action": "ALLOW",
        "rules": [{
            "to": [{"operation": {"paths": [PREDICT]}}],
            "when": [{"key": "request.headers[X-Test]", "values": ["istio-is-cool"]}]
        }]
    }]})
}

#[test]
fn emotion_walkthrough_header_gate() {
    let upstream = ModelServer::start().unwrap();
    let envoy = start(&upstream, walkthrough_header_rule(), Vec::new());
    let json_type = ("content-type", "application/json");
    assert_rbac_denied(&send(&envoy, "POST", PREDICT, &[json_type]), "no header");
    let wrong = send(
        &envoy,
        "POST",
        PREDICT,
        &[json_type, ("X-Test", "istio-is-not-cool")],
    );
    assert_rbac_denied(&wrong, "wrong value");
    let joined = send(
        &envoy,
        "POST",
        PREDICT,
        &[json_type, ("X-Test", "nope,istio-is-cool")],
    );
    assert_rbac_denied(&joined, "two values in one header line");
    assert!(
        upstream.requests().is_empty(),
        "denied requests reached the upstream"
    );
    let ok = send(
        &envoy,
        "POST",
        PREDICT,
        &[json_type, ("X-Test", "istio-is-cool")],
    );
    assert_eq!(ok.status, 200, "{}", ok.text());
    assert!(ok.text().contains("predictions"), "{}", ok.text());
    let lower = send(
        &envoy,
        "POST",
        PREDICT,
        &[json_type, ("x-test", "istio-is-cool")],
    );
    assert_eq!(lower.status, 200, "header names are case-insensitive");
    // Envoy's header matcher reads each line of a repeated header: one matching line admits.
    let twice = send(
        &envoy,
        "POST",
        PREDICT,
        &[json_type, ("X-Test", "nope"), ("X-Test", "istio-is-cool")],
    );
    assert_eq!(
        twice.status, 200,
        "a repeated header with the value on one line"
    );
    assert_eq!(upstream.requests().len(), 3);
    let other_path = send(
        &envoy,
        "GET",
        "/v1/models/bert-emotion-model",
        &[("X-Test", "istio-is-cool")],
    );
    assert_rbac_denied(&other_path, "path not in the policy");
    assert_eq!(counter(&envoy, "auth_gate_requests_total", "allowed"), 3);
    assert_eq!(counter(&envoy, "auth_gate_requests_total", "denied"), 4);

    // A header value that is not UTF-8 (obs-text) is refused like any wrong value, and the
    // plugin keeps working afterwards (a trap would fail every later request).
    let authority = envoy.listener().to_string();
    let wire = [
        format!("POST {PREDICT} HTTP/1.1\r\nhost: {authority}\r\nx-test: istio-is-").as_bytes(),
        b"\xff\xfe",
        b"\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
    ]
    .concat();
    let resp = http::send_raw(&authority, &wire).unwrap();
    assert_rbac_denied(&resp, "non-UTF-8 header value");
    let ok = send(
        &envoy,
        "POST",
        PREDICT,
        &[json_type, ("X-Test", "istio-is-cool")],
    );
    assert_eq!(ok.status, 200, "the plugin still works: {}", ok.text());
}

fn kubeflow_jwt_policy(keys: Value) -> Value {
    let mut rule = json!({
        "issuer": ISSUER,
        "audiences": ["kserve"],
        "outputPayloadToHeader": "x-jwt-payload",
        "outputClaimToHeaders": [{"header": "x-user", "claim": "sub"}]
    });
    if let (Some(rule), Some(keys)) = (rule.as_object_mut(), keys.as_object()) {
        rule.extend(keys.clone());
    }
    json!({
        "jwtRules": [rule],
        "policies": [{
            "name": "istio-ingressgateway-require-jwt",
            "action": "DENY",
            "rules": [{
                "from": [{"source": {"notRequestPrincipals": ["*"]}}],
                "to": [{"operation": {"notPaths": ["/dex/*", "/dex/**", "/oauth2/*", "/v1/*", "/v2/*"]}}]
            }]
        }]
    })
}

#[test]
fn kubeflow_require_jwt_except_paths() {
    let upstream = ModelServer::start().unwrap();
    let envoy = start(
        &upstream,
        kubeflow_jwt_policy(json!({"jwks": JWKS})),
        Vec::new(),
    );
    let bearer = format!("Bearer {VALID}");

    assert_rbac_denied(&send(&envoy, "GET", "/admin", &[]), "no token on /admin");
    for trick in [
        "/v1/../admin",
        "/v1/%2e%2e/admin",
        "//admin",
        "/v2/./../admin",
    ] {
        assert_rbac_denied(&send(&envoy, "GET", trick, &[]), trick);
    }
    let encoded_slash = send(&envoy, "GET", "/v1%2F..%2Fadmin", &[]);
    assert_eq!(encoded_slash.status, 400, "{}", encoded_slash.text());
    assert!(
        upstream.requests().is_empty(),
        "denied requests reached the upstream"
    );

    let exempt = [PREDICT, "/v2/models", "/dex/auth/local", "/oauth2/callback"];
    for target in exempt {
        // The demo server answers 404 for paths it does not serve: what matters is that the
        // request got through.
        let resp = send(&envoy, "GET", target, &[("x-user", "mallory")]);
        assert!(
            ![401, 403].contains(&resp.status),
            "{target}: {} {}",
            resp.status,
            resp.text()
        );
    }
    assert_eq!(upstream.requests().len(), exempt.len());
    for seen in upstream.requests() {
        assert_eq!(
            seen.header("x-user"),
            None,
            "a client-sent x-user reached {}",
            seen.path
        );
    }
    upstream.clear_requests();

    // A client's own x-user, sent twice next to a valid token, is replaced by the claim.
    let resp = send(
        &envoy,
        "GET",
        "/admin",
        &[
            ("Authorization", &bearer),
            ("x-user", "mallory"),
            ("x-user", "eve"),
        ],
    );
    assert_eq!(resp.status, 200, "{}", resp.text());
    let seen = upstream.requests();
    assert_eq!(seen.len(), 1);
    let x_user: Vec<_> = seen[0]
        .headers
        .iter()
        .filter(|(n, _)| n == "x-user")
        .collect();
    assert_eq!(x_user.len(), 1, "{x_user:?}");
    assert_eq!(seen[0].header("x-user"), Some("alice"));
    assert_eq!(seen[0].header("x-jwt-payload"), VALID.split('.').nth(1));
    assert_eq!(
        seen[0].header("authorization"),
        None,
        "the token is removed"
    );
    let query = format!("/admin?access_token={VALID}");
    assert_eq!(
        send(&envoy, "GET", &query, &[]).status,
        200,
        "token as access_token"
    );
    upstream.clear_requests();

    // Envoy answers a token of another audience with 403, the others with 401.
    for target in ["/admin", PREDICT] {
        let resp = send(
            &envoy,
            "POST",
            target,
            &[("authorization", &format!("Bearer {WRONG_AUD}"))],
        );
        assert_eq!(resp.status, 403, "wrong audience on {target}");
        assert_eq!(resp.text(), "Audiences in Jwt are not allowed");
    }
    for (what, token) in [
        ("forged", FORGED),
        ("expired", EXPIRED),
        ("garbage", "a.b.c"),
    ] {
        for target in ["/admin", PREDICT] {
            let resp = send(
                &envoy,
                "POST",
                target,
                &[("authorization", &format!("Bearer {token}"))],
            );
            assert_jwt_refused(
                &resp,
                "Jwt verification fails",
                &format!("{what} on {target}"),
            );
        }
    }
    let forged_bearer = format!("Bearer {FORGED}");
    let resp = send(
        &envoy,
        "GET",
        "/admin",
        &[
            ("authorization", &bearer),
            ("authorization", &forged_bearer),
        ],
    );
    assert_jwt_refused(
        &resp,
        "Jwt verification fails",
        "a second, forged Authorization header",
    );
    let mixed = format!("/admin?access_token={FORGED}");
    let resp = send(&envoy, "GET", &mixed, &[("authorization", &bearer)]);
    assert_jwt_refused(
        &resp,
        "Jwt verification fails",
        "valid header with a forged query token",
    );
    assert!(
        upstream.requests().is_empty(),
        "refused requests reached the upstream"
    );
    assert_eq!(
        counter(&envoy, "auth_gate_jwt_invalid_total", "bad_signature"),
        3
    );
    assert_eq!(counter(&envoy, "auth_gate_jwt_invalid_total", "expired"), 2);
    assert_eq!(
        counter(
            &envoy,
            "auth_gate_jwt_invalid_total",
            "audience_not_allowed"
        ),
        2
    );
}

#[test]
fn remote_ip_blocks_use_the_client_address() {
    let upstream = ModelServer::start().unwrap();
    let config = json!({"policies": [
        {"name": "local-only", "action": "DENY", "rules": [{"from": [{"source": {"notRemoteIpBlocks": ["127.0.0.0/8"]}}]}]},
        {"name": "no-admin-from-here", "action": "DENY", "rules": [{
            "to": [{"operation": {"paths": ["/admin*"]}}],
            "when": [{"key": "remote.ip", "values": ["127.0.0.1"]}]
        }]}
    ]});
    let envoy = start(&upstream, config, Vec::new());
    assert_eq!(
        send(&envoy, "GET", PREDICT, &[]).status,
        200,
        "127.0.0.1 is in 127.0.0.0/8"
    );
    assert_rbac_denied(&send(&envoy, "GET", "/admin", &[]), "remote.ip 127.0.0.1");
    assert_eq!(upstream.requests().len(), 1);
}

/// A port nothing listens on (yet).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn remote_jwks_server_down_at_start_then_up() {
    let upstream = ModelServer::start().unwrap();
    let port = free_port();
    let cluster = Cluster {
        name: "outbound|5556||dex.auth.svc.cluster.local".to_string(),
        addr: ([127, 0, 0, 1], port).into(),
    };
    // Pasted from a RequestAuthentication as is: no jwksCluster, the plugin names the cluster
    // as istiod does (`outbound|<port>||<host>`), which `harness run --cluster` adds locally.
    let keys = json!({
        "jwksUri": format!("http://dex.auth.svc.cluster.local:5556/dex/keys"),
        "timeout": "1s"
    });
    let envoy = start(&upstream, kubeflow_jwt_policy(keys), vec![cluster]);
    let bearer = format!("Bearer {VALID}");

    // No keys: requests without a token are decided by the policies alone.
    assert_eq!(send(&envoy, "GET", PREDICT, &[]).status, 200);
    // A token cannot be checked: 401 as Envoy's "Jwks remote fetch is failed".
    let resp = send(&envoy, "GET", "/admin", &[("authorization", &bearer)]);
    assert_jwt_refused(&resp, "Jwks remote fetch is failed", "JWKS server down");
    assert!(counter(&envoy, "auth_gate_jwks_fetches_total", "failure") >= 1);

    let jwks_server = ModelServer::start_on(&format!("127.0.0.1:{port}")).unwrap();
    jwks_server.set_response(Some(CannedResponse {
        status: 200,
        content_type: "application/json".to_string(),
        body: JWKS.as_bytes().to_vec(),
    }));
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let resp = send(&envoy, "GET", "/admin", &[("authorization", &bearer)]);
        if resp.status == 200 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "keys never arrived: {} {}",
            resp.status,
            resp.text()
        );
        thread::sleep(Duration::from_millis(300));
    }
    let fetch = &jwks_server.requests()[0];
    assert_eq!(
        (fetch.method.as_str(), fetch.path.as_str()),
        ("GET", "/dex/keys")
    );
    // Both workers use the keys: every request of a burst passes, forged ones still fail.
    for _ in 0..10 {
        assert_eq!(
            send(&envoy, "GET", "/admin", &[("authorization", &bearer)]).status,
            200
        );
        let forged = send(
            &envoy,
            "GET",
            "/admin",
            &[("authorization", &format!("Bearer {FORGED}"))],
        );
        assert_jwt_refused(&forged, "Jwt verification fails", "forged with remote keys");
    }
    assert!(counter(&envoy, "auth_gate_jwks_fetches_total", "success") >= 1);
    assert!(
        jwks_server.requests().len() <= 3,
        "keys are shared, not fetched per request: {} fetches",
        jwks_server.requests().len()
    );
}

/// A JWKS server that takes `delay` to answer each request.
fn slow_jwks_server(delay: Duration) -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            thread::spawn(move || {
                let mut request = [0u8; 4096];
                let _ = stream.read(&mut request);
                thread::sleep(delay);
                let response = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{JWKS}",
                    JWKS.len()
                );
                let _ = stream.write_all(response.as_bytes());
            });
        }
    });
    addr
}

#[test]
fn request_arriving_before_the_keys_waits_for_them() {
    let upstream = ModelServer::start().unwrap();
    let cluster = Cluster {
        name: "jwks".to_string(),
        addr: slow_jwks_server(Duration::from_secs(2)),
    };
    let keys = json!({"jwksUri": "http://dex/keys", "jwksCluster": "jwks", "timeout": "10s"});
    let envoy = start(&upstream, kubeflow_jwt_policy(keys), vec![cluster]);
    let started = Instant::now();
    let resp = send(
        &envoy,
        "GET",
        "/admin",
        &[("authorization", &format!("Bearer {VALID}"))],
    );
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert!(
        started.elapsed() >= Duration::from_millis(500),
        "the request did not wait"
    );
    assert_eq!(upstream.requests()[0].header("x-user"), Some("alice"));
    assert!(counter(&envoy, "auth_gate_key_waits_total", "paused") >= 1);
}

#[test]
fn request_waiting_for_keys_gets_401_when_the_wait_times_out() {
    let upstream = ModelServer::start().unwrap();
    let cluster = Cluster {
        name: "jwks".to_string(),
        addr: slow_jwks_server(Duration::from_secs(30)),
    };
    let keys = json!({"jwksUri": "http://dex/keys", "jwksCluster": "jwks", "timeout": "1s"});
    let envoy = start(&upstream, kubeflow_jwt_policy(keys), vec![cluster]);
    let resp = send(
        &envoy,
        "GET",
        "/admin",
        &[("authorization", &format!("Bearer {VALID}"))],
    );
    assert_jwt_refused(&resp, "Jwks remote fetch is failed", "fetch timed out");
    assert!(upstream.requests().is_empty());
}

#[test]
fn unsupported_istio_fields_refuse_the_configuration() {
    let upstream = ModelServer::start().unwrap();
    let config = json!({"policies": [{"rules": [{"from": [{"source": {"principals": ["cluster.local/ns/a/sa/b"]}}]}]}]});
    let err = Envoy::start(EnvoyConfig {
        plugins: vec![Plugin::from_dist(PLUGIN, config)],
        upstream: upstream.addr(),
        ..Default::default()
    })
    .err()
    .expect("a policy on mTLS principals must not start");
    let line = err
        .0
        .lines()
        .find(|l| l.contains("policies[0].rules[0].from[0].source.principals"))
        .unwrap_or_else(|| panic!("no log line names the field:\n{err}"));
    assert!(line.contains("mTLS"), "the reason is given: {line}");
}
