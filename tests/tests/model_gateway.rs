//! model-gateway against the four plugins it links, in the same run: the gateway manifests'
//! four WasmPlugins chained as istiod chains them, and one model-gateway whose sections are those
//! four configurations; model-gateway-request-only likewise against the three request-side
//! plugins. The same requests (tokens valid, forged and absent; header rules; path tricks; the
//! rate limit running out; model answers) must get the same statuses, reach the upstream the
//! same way (path and forwarded claim header), and add up to the same counters.

use harness_model_server::ModelServer;
use harness_runner::{http, Envoy, EnvoyConfig, Plugin};
use integration_tests::es256::{FORGED, JWKS, VALID};
use serde_json::{json, Value};

/// The gateway manifests' configurations by plugin, with auth-gate's keys replaced by the keys of
/// the test tokens.
fn gateway_configs() -> Vec<(String, Value)> {
    let dir = harness_runner::repo_root().join("wasmplugin-manifests/gateway");
    let resources = harness_runner::manifests::load_dir(&dir).unwrap();
    harness_runner::manifests::to_plugins(resources)
        .into_iter()
        .map(|plugin| {
            let name = plugin.short_name().to_string();
            let mut config: Value = serde_json::from_str(&plugin.configuration).unwrap();
            if name == "auth-gate" {
                for rule in config["jwtRules"].as_array_mut().unwrap() {
                    rule["jwks"] = json!(JWKS);
                }
            }
            (name, config)
        })
        .collect()
}

/// What one Envoy did with the requests: statuses, what reached the upstream, the counters.
#[derive(Debug, PartialEq)]
struct Outcome {
    statuses: Vec<(String, u16)>,
    forwarded: Vec<(String, Option<String>)>,
    counters: Vec<String>,
}

fn run(plugins: Vec<Plugin>, requests: &[(String, Vec<(&str, String)>)]) -> Outcome {
    let upstream = ModelServer::start().unwrap();
    let envoy = Envoy::start(EnvoyConfig {
        plugins,
        upstream: upstream.addr(),
        ..Default::default()
    })
    .unwrap();
    let statuses = requests
        .iter()
        .map(|(path, headers)| {
            let headers: Vec<(&str, &str)> =
                headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
            let body = br#"{"instances": ["I am so happy today"]}"#;
            let response = http::send("POST", &envoy.url(path), &headers, body).unwrap();
            (path.clone(), response.status)
        })
        .collect();
    let forwarded = upstream
        .requests()
        .into_iter()
        .map(|r| (r.path.clone(), r.header("x-user").map(str::to_string)))
        .collect();
    // The plugins' own counters (not Envoy's per-filter ones, whose names carry the filter).
    let prometheus = envoy.admin_get("/stats/prometheus").unwrap();
    let mut counters: Vec<String> = prometheus
        .lines()
        .filter(|line| !line.starts_with('#') && !line.starts_with("envoy_"))
        .filter(|line| {
            [
                "auth_gate_",
                "path_allowlist_",
                "local_ratelimit_",
                "emotion_stats_",
            ]
            .iter()
            .any(|prefix| line.contains(prefix))
        })
        .filter(|line| !line.contains("_bucket") && !line.contains("_sum"))
        .map(str::to_string)
        .collect();
    counters.sort();
    Outcome {
        statuses,
        forwarded,
        counters,
    }
}

/// Requests of every kind the gateway answers: 200, 401, 403 and 429.
fn mixed_requests() -> Vec<(String, Vec<(&'static str, String)>)> {
    let bearer = |token: &str| ("authorization", format!("Bearer {token}"));
    let x_test = || ("x-test", "istio-is-cool".to_string());
    let predict = "/v1/models/bert-emotion-model:predict".to_string();
    let mut requests: Vec<(String, Vec<(&str, String)>)> = vec![
        ("/v1/models/bert-emotion-model".into(), vec![]),
        (predict.clone(), vec![]),
        (predict.clone(), vec![bearer(FORGED), x_test()]),
        ("/admin".into(), vec![]),
        ("/admin".into(), vec![bearer(VALID)]),
        ("/v1/models/../admin".into(), vec![bearer(VALID)]),
        ("/v1/models/%2e%2e/admin".into(), vec![bearer(VALID)]),
        (
            "//v1//models/bert-emotion-model".into(),
            vec![bearer(VALID)],
        ),
        ("/dex/keys".into(), vec![]),
        ("/healthz".into(), vec![]),
    ];
    // The predict rule's two a minute, then 429s; another API key has its own five.
    for key in ["team-a", "team-a", "team-a", "team-b"] {
        requests.push((
            predict.clone(),
            vec![x_test(), bearer(VALID), ("x-api-key", key.to_string())],
        ));
    }
    requests
}

/// `configs` as the plugins chained, and as the sections of one `bundle`.
fn chained_and_bundled(configs: &[(String, Value)], bundle: &str) -> (Vec<Plugin>, Plugin) {
    let chained = configs
        .iter()
        .map(|(name, config)| Plugin::from_dist_in(name, config.clone(), None))
        .collect();
    let sections: serde_json::Map<String, Value> = configs
        .iter()
        .map(|(name, config)| {
            (
                harness_runner::bundle_section(name).unwrap(),
                config.clone(),
            )
        })
        .collect();
    assert_eq!(sections.len(), configs.len());
    (
        chained,
        Plugin::from_dist_in(bundle, Value::Object(sections), None),
    )
}

/// Not a vacuous agreement: every kind of answer is there, and a claim reached the upstream.
fn assert_every_kind_of_answer(outcome: &Outcome) {
    let statuses: Vec<u16> = outcome.statuses.iter().map(|(_, s)| *s).collect();
    for status in [200, 401, 403, 429] {
        assert!(
            statuses.contains(&status),
            "{status} in {:?}",
            outcome.statuses
        );
    }
    assert!(outcome
        .forwarded
        .iter()
        .any(|(_, user)| user.as_deref() == Some("alice")));
}

#[test]
fn the_bundle_decides_forwards_and_counts_as_the_four_plugins_chained() {
    let requests = mixed_requests();
    let configs = gateway_configs();
    assert_eq!(configs.len(), 4);
    let (chained, bundle) = chained_and_bundled(&configs, harness_runner::BUNDLE);
    let four = run(chained, &requests);
    let one = run(vec![bundle], &requests);
    assert_eq!(one, four);
    assert_every_kind_of_answer(&four);
    assert!(
        four.counters.iter().any(|c| c.contains("emotion_stats_")),
        "{:?}",
        four.counters
    );
}

#[test]
fn the_request_only_bundle_decides_forwards_and_counts_as_the_three_request_plugins_chained() {
    let requests = mixed_requests();
    // The gateway's request-side plugins; the rate limit without x-ratelimit-* headers, which
    // model-gateway-request-only refuses.
    let mut configs: Vec<(String, Value)> = gateway_configs()
        .into_iter()
        .filter(|(name, _)| name != "emotion-stats")
        .collect();
    assert_eq!(configs.len(), 3);
    for (name, config) in &mut configs {
        if name == "local-ratelimit" {
            config["enable_x_ratelimit_headers"] = json!("OFF");
        }
    }
    let (chained, bundle) = chained_and_bundled(&configs, harness_runner::REQUEST_ONLY_BUNDLE);
    let three = run(chained, &requests);
    let one = run(vec![bundle], &requests);
    assert_eq!(one, three);
    assert_every_kind_of_answer(&three);
    assert!(
        three
            .counters
            .iter()
            .any(|c| c.contains("local_ratelimit_")),
        "{:?}",
        three.counters
    );
}

#[test]
fn the_request_only_bundle_refuses_what_needs_a_response_callback_naming_the_field() {
    let upstream = ModelServer::start().unwrap();
    let refusals = [
        (json!({"emotionStats": {}}), "emotionStats"),
        (
            json!({"localRatelimit": {"domain": "models"}}),
            "localRatelimit.enable_x_ratelimit_headers",
        ),
    ];
    for (config, field) in refusals {
        let plugin = Plugin::from_dist_in(harness_runner::REQUEST_ONLY_BUNDLE, config, None);
        let err = Envoy::start(EnvoyConfig {
            plugins: vec![plugin],
            upstream: upstream.addr(),
            ..Default::default()
        })
        .err()
        .unwrap_or_else(|| panic!("{field}: accepted"));
        let line = format!("model-gateway-request-only: invalid configuration at `{field}`");
        assert!(err.0.contains(&line), "{field}: {err}");
        assert!(err.0.contains("refuses to start"), "{field}: {err}");
    }
    assert!(upstream.requests().is_empty());
}
