//! path-allowlist in a real Envoy in front of the demo model server, on a listener that does no
//! path normalization (the plugin must be safe on its own): the Kubeflow gateway's allowlist lets
//! its paths through and refuses everything else, path tricks never reach the upstream,
//! normalized paths are forwarded as checked, and dry-run, DENY, several policies and bad
//! configurations behave as documented.

use harness_model_server::ModelServer;
use harness_runner::{config_field, http, Envoy, EnvoyConfig, PathNormalization, Plugin};
use serde_json::{json, Value};
use std::thread;
use std::time::{Duration, Instant};

const PLUGIN: &str = "path-allowlist";

fn kubeflow_allowlist() -> Value {
    json!({
        "action": "ALLOW",
        "rules": [{"to": [{"operation": {"paths": [
            "/metrics", "/healthz", "/ready", "/wait-for-drain", "/v1/models/*", "/v2/models/*"
        ]}}]}]
    })
}

fn start(upstream: &ModelServer, config: Value) -> Envoy {
    Envoy::start(EnvoyConfig {
        plugins: vec![Plugin::from_dist(PLUGIN, config)],
        upstream: upstream.addr(),
        path_normalization: PathNormalization::None,
        ..Default::default()
    })
    .unwrap()
}

fn get(envoy: &Envoy, target: &str) -> http::Response {
    http::send("GET", &envoy.url(target), &[], b"").unwrap()
}

fn assert_rbac_denied(resp: &http::Response, what: &str) {
    assert_eq!(resp.status, 403, "{what}: {}", resp.text());
    assert_eq!(resp.text(), "RBAC: access denied", "{what}");
    assert_eq!(resp.header("content-type"), Some("text/plain"), "{what}");
}

/// The value of an un-labeled counter on `/stats/prometheus`.
fn counter(envoy: &Envoy, name: &str) -> u64 {
    let stats = envoy.admin_get("/stats/prometheus").unwrap();
    stats
        .lines()
        .find_map(|line| {
            // Envoy prints a counter without tags as `name{} value`.
            let value = line.strip_prefix(name)?.strip_prefix("{}")?;
            value.trim().parse().ok()
        })
        .unwrap_or_else(|| panic!("no counter {name} in:\n{stats}"))
}

/// Waits for a line of Envoy's log that satisfies `wanted`: Envoy flushes its log file only every
/// few seconds.
fn wait_for_log_line(envoy: &Envoy, wanted: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let log = envoy.log();
        if let Some(line) = log.lines().find(|l| wanted(l)) {
            return line.to_string();
        }
        assert!(Instant::now() < deadline, "no such line in the log:\n{log}");
        thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn kubeflow_paths_reach_the_upstream_as_sent() {
    let upstream = ModelServer::start().unwrap();
    let envoy = start(&upstream, kubeflow_allowlist());
    for target in [
        "/metrics",
        "/healthz",
        "/ready",
        "/wait-for-drain",
        "/v1/models/bert-emotion-model",
        "/v2/models/iris/ready?verbose=1",
    ] {
        upstream.clear_requests();
        let resp = get(&envoy, target);
        assert_ne!(resp.status, 403, "{target}");
        let seen = upstream.requests();
        assert_eq!(seen.len(), 1, "{target}");
        assert_eq!(seen[0].path, target);
    }
    upstream.clear_requests();
    let body = br#"{"instances":["Istio is the best service mesh"]}"#;
    let resp = http::send(
        "POST",
        &envoy.url("/v1/models/bert-emotion-model:predict"),
        &[("content-type", "application/json")],
        body,
    )
    .unwrap();
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert!(resp.text().contains("predictions"), "{}", resp.text());
    let seen = upstream.requests();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].method, "POST");
    assert_eq!(seen[0].path, "/v1/models/bert-emotion-model:predict");
    assert_eq!(seen[0].body, body);
    assert_eq!(counter(&envoy, "path_allowlist_allowed_total"), 7);
}

#[test]
fn other_paths_and_path_tricks_get_403_and_never_reach_the_upstream() {
    let upstream = ModelServer::start().unwrap();
    let envoy = start(&upstream, kubeflow_allowlist());
    let denied = [
        "/",
        "/admin",
        "/v1/models",
        "/v3/models/x",
        "/metricsx",
        "/V1/models/x",
        "/v1/models/../../admin",
        "/v1/models/%2e%2e/%2E%2E/admin",
        "/v1/models/.%2e/.%2e/admin",
        "/admin?x=/v1/models/a",
        "/admin/?/v1/models/a",
        "//admin",
        "/./admin",
    ];
    for target in denied {
        assert_rbac_denied(&get(&envoy, target), target);
    }
    assert!(upstream.requests().is_empty(), "{:?}", upstream.requests());
    assert_eq!(
        counter(&envoy, "path_allowlist_denied_total"),
        denied.len() as u64
    );
}

#[test]
fn paths_that_cannot_be_normalized_get_400() {
    let upstream = ModelServer::start().unwrap();
    let envoy = start(&upstream, kubeflow_allowlist());
    let malformed = [
        "/v1/models/..%2F..%2Fadmin",
        "/v1/models/..%2f..%2fadmin",
        "/v1/models/..%5C..%5Cadmin",
        "/v1/models/%252e%252e/admin",
        "/v1/models/%c0%ae%c0%ae/admin",
        "/v1/models/x%00y",
        "/v1/models/x%zz",
        "/v1/models/..;/..;/admin",
    ];
    for target in malformed {
        let resp = get(&envoy, target);
        assert_eq!(resp.status, 400, "{target}: {}", resp.text());
        assert_eq!(resp.text(), "Bad Request: malformed path", "{target}");
    }
    assert_eq!(
        counter(&envoy, "path_allowlist_malformed_total"),
        malformed.len() as u64
    );
    // A raw backslash: whoever answers (Envoy's codec or the plugin), it is a 400.
    let resp = get(&envoy, "/v1/models/..\\..\\admin");
    assert_eq!(resp.status, 400, "{}", resp.text());
    assert!(upstream.requests().is_empty(), "{:?}", upstream.requests());
}

#[test]
fn a_normalized_path_is_forwarded_as_checked_with_its_query() {
    let upstream = ModelServer::start().unwrap();
    let envoy = start(&upstream, kubeflow_allowlist());
    for (target, forwarded) in [
        ("//v1//models/./bert?x=../y", "/v1/models/bert?x=../y"),
        ("/admin/../v1/models/bert", "/v1/models/bert"),
        ("/v1/%6Dodels/a%3ab%3f", "/v1/models/a:b%3F"),
    ] {
        upstream.clear_requests();
        let resp = get(&envoy, target);
        assert_ne!(resp.status, 403, "{target}");
        let seen = upstream.requests();
        assert_eq!(seen.len(), 1, "{target}");
        assert_eq!(seen[0].path, forwarded, "{target}");
    }
}

#[test]
fn dry_run_forwards_and_counts_what_it_would_deny() {
    let upstream = ModelServer::start().unwrap();
    let mut config = kubeflow_allowlist();
    config["dryRun"] = json!(true);
    let envoy = start(&upstream, config);
    let resp = http::send(
        "GET",
        &envoy.url("/admin"),
        &[("x-request-id", "dry-run-probe-1")],
        b"",
    )
    .unwrap();
    assert_eq!(resp.status, 200, "{}", resp.text());
    let resp = get(&envoy, "/v1/models/..%2Fadmin");
    assert_ne!(resp.status, 400);
    let seen: Vec<String> = upstream.requests().into_iter().map(|r| r.path).collect();
    assert_eq!(seen, ["/admin", "/v1/models/..%2Fadmin"]);
    assert_eq!(counter(&envoy, "path_allowlist_dry_run_denied_total"), 2);
    assert_eq!(counter(&envoy, "path_allowlist_denied_total"), 0);
    wait_for_log_line(&envoy, |l| {
        l.contains("path-allowlist: dry-run, would deny")
            && l.contains("request_id=\"dry-run-probe-1\"")
            && l.contains("method=\"GET\" path=\"/admin\"")
            && l.contains("no rule matched")
    });
}

#[test]
fn deny_policy_refuses_its_paths_however_they_are_spelled() {
    let upstream = ModelServer::start().unwrap();
    let envoy = start(
        &upstream,
        json!({
            "action": "DENY",
            "rules": [{"to": [{"operation": {"paths": ["/admin*"]}}]}],
            "denyStatus": 404
        }),
    );
    for target in [
        "/admin",
        "//admin",
        "/%61dmin",
        "/v1/../admin/x",
        "/./admin",
    ] {
        let resp = get(&envoy, target);
        assert_eq!(resp.status, 404, "{target}");
        assert_eq!(resp.text(), "RBAC: access denied", "{target}");
    }
    assert!(upstream.requests().is_empty());
    let resp = get(&envoy, "/healthz");
    assert_eq!(resp.status, 200);
    assert_eq!(upstream.requests().len(), 1);
    wait_for_log_line(&envoy, |l| {
        l.contains("path-allowlist: denied") && l.contains("path=\"//admin\": rule 0 denies")
    });
}

/// Several AuthorizationPolicies in one plugin combine as in Istio: either ALLOW policy lets a
/// request through, and the DENY policy refuses what an ALLOW policy allows.
#[test]
fn two_allow_policies_allow_either_and_a_deny_policy_wins() {
    let upstream = ModelServer::start().unwrap();
    let envoy = start(
        &upstream,
        json!({"policies": [
            {"name": "models", "action": "ALLOW",
             "rules": [{"to": [{"operation": {"paths": ["/v1/models/*"]}}]}]},
            {"name": "probes", "action": "ALLOW",
             "rules": [{"to": [{"operation": {"methods": ["GET"], "paths": ["/healthz", "/ready"]}}]}]},
            {"name": "internal", "action": "DENY",
             "rules": [{"to": [{"operation": {"paths": [
                 "/v1/models/{*}/internal", "/v1/models/{*}/internal/{**}"
             ]}}]}]}
        ]}),
    );
    for (target, forwarded) in [
        (
            "/v1/models/bert-emotion-model",
            "/v1/models/bert-emotion-model",
        ),
        ("/healthz", "/healthz"),
        ("/ready", "/ready"),
        (
            "//v1//models/bert-emotion-model",
            "/v1/models/bert-emotion-model",
        ),
    ] {
        upstream.clear_requests();
        let resp = get(&envoy, target);
        assert_ne!(resp.status, 403, "{target}");
        let seen: Vec<String> = upstream.requests().into_iter().map(|r| r.path).collect();
        assert_eq!(seen, [forwarded], "{target}");
    }
    upstream.clear_requests();
    let denied = [
        "/admin",
        "/metrics",
        "/v1/models/bert/internal",
        "/v1/models/bert/internal/keys",
        "/v1/models/x/../bert/%69nternal",
    ];
    for target in denied {
        assert_rbac_denied(&get(&envoy, target), target);
    }
    let post = http::send("POST", &envoy.url("/healthz"), &[], b"").unwrap();
    assert_rbac_denied(&post, "POST /healthz");
    assert!(upstream.requests().is_empty(), "{:?}", upstream.requests());
    assert_eq!(counter(&envoy, "path_allowlist_allowed_total"), 4);
    assert_eq!(
        counter(&envoy, "path_allowlist_denied_total"),
        denied.len() as u64 + 1
    );
    wait_for_log_line(&envoy, |l| {
        l.contains("path-allowlist: denied")
            && l.contains(
                r#"path="/v1/models/bert/internal/keys": rule 0 of policy "internal" denies"#,
            )
    });
    wait_for_log_line(&envoy, |l| {
        l.contains(r#"path-allowlist: denied request_id="#)
            && l.contains(r#"path="/admin": no rule matched"#)
    });
}

#[test]
fn methods_and_hosts_of_an_operation() {
    let upstream = ModelServer::start().unwrap();
    let envoy = start(
        &upstream,
        json!({"rules": [{"to": [{"operation": {
            "methods": ["POST"],
            "hosts": ["*.example.com"],
            "paths": ["/v1/models/{*}"]
        }}]}]}),
    );
    let send = |method: &str, host: &str, target: &str| {
        http::send(method, &envoy.url(target), &[("host", host)], b"{}").unwrap()
    };
    let ok = send(
        "POST",
        "Bert-Model.Default.EXAMPLE.com",
        "/v1/models/bert:predict",
    );
    assert_ne!(ok.status, 403, "{}", ok.text());
    assert_eq!(upstream.requests().len(), 1);
    upstream.clear_requests();
    // istiod matches `hosts` on the whole `:authority`: a port needs its own `host:*` pattern.
    assert_rbac_denied(
        &send("POST", "bert.example.com:8080", "/v1/models/bert"),
        "host with a port",
    );
    assert_rbac_denied(&send("GET", "a.example.com", "/v1/models/bert"), "GET");
    assert_rbac_denied(
        &send("POST", "example.org", "/v1/models/bert"),
        "other host",
    );
    assert_rbac_denied(
        &send("POST", "a.example.com", "/v1/models/a/b"),
        "two segments",
    );
    assert!(upstream.requests().is_empty());
}

#[test]
fn bad_configurations_are_refused_naming_the_field() {
    let upstream = ModelServer::start().unwrap();
    for (config, field, reason) in [
        (
            json!({"rules": [{"from": [{"source": {"namespaces": ["x"]}}]}]}),
            "rules[0].from",
            "auth-gate",
        ),
        (json!({"action": "CUSTOM"}), "action", "auth-gate"),
        (
            json!({"rules": [{"to": [{"operation": {"paths": ["/ok", "/a/{**}/{*}"]}}]}]}),
            "rules[0].to[0].operation.paths[1]",
            "last operator",
        ),
        (
            json!({"pathNormalization": "NONE"}),
            "pathNormalization",
            "unknown variant",
        ),
        (
            json!({"policies": [
                {"rules": [{"to": [{"operation": {"paths": ["/ok"]}}]}]},
                {"rules": [{"to": [{"operation": {"paths": ["/ok", "/a/{**}/{*}"]}}]}]}
            ]}),
            "policies[1].rules[0].to[0].operation.paths[1]",
            "last operator",
        ),
        (
            json!({"action": "ALLOW", "policies": []}),
            "action",
            "use either `policies` or `action`/`rules`",
        ),
    ] {
        let err = Envoy::start(EnvoyConfig {
            plugins: vec![Plugin::from_dist(PLUGIN, config.clone())],
            upstream: upstream.addr(),
            ..Default::default()
        })
        .err()
        .unwrap_or_else(|| panic!("accepted {config}"));
        let line = err
            .0
            .lines()
            .find(|l| l.contains(&format!("`{}`", config_field(PLUGIN, field))))
            .unwrap_or_else(|| panic!("no line names {field}:\n{err}"));
        assert!(line.contains(reason), "{line}");
        assert!(line.contains("refuses to start"), "{line}");
    }
    assert!(upstream.requests().is_empty());
}

/// The gateway manifest carries the Kubeflow gateway's allowlist, and the plugin accepts it and
/// applies it.
#[test]
fn the_gateway_manifest_config_is_the_kubeflow_allowlist_and_works() {
    let dir = harness_runner::repo_root().join("wasmplugin-manifests/gateway");
    let resources = harness_runner::manifests::load_dir(&dir).unwrap();
    let manifest = resources
        .iter()
        .find(|r| r.name == PLUGIN)
        .unwrap_or_else(|| panic!("no {PLUGIN} manifest in {}", dir.display()));
    let config: Value = serde_json::from_str(&manifest.plugin.configuration)
        .unwrap_or_else(|e| panic!("pluginConfig of the {PLUGIN} manifest: {e}"));
    assert_eq!(config, kubeflow_allowlist());
    let upstream = ModelServer::start().unwrap();
    let envoy = start(&upstream, config);
    assert_ne!(get(&envoy, "/v1/models/bert-emotion-model").status, 403);
    assert_rbac_denied(&get(&envoy, "/admin"), "/admin");
    let seen: Vec<String> = upstream.requests().into_iter().map(|r| r.path).collect();
    assert_eq!(seen, ["/v1/models/bert-emotion-model"]);
}
