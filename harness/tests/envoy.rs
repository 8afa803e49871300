//! The harness against a real Envoy: ports, readiness, a request through, failure and teardown.

use harness_model_server::ModelServer;
use harness_runner::{http, Envoy, EnvoyConfig, Plugin};
use std::path::Path;

#[test]
fn starts_on_free_ports_and_proxies_to_the_upstream() {
    let upstream = ModelServer::start().unwrap();
    let first = Envoy::start(EnvoyConfig {
        upstream: upstream.addr(),
        ..Default::default()
    })
    .unwrap();
    // Two Envoys side by side get distinct kernel-chosen ports.
    let second = Envoy::start(EnvoyConfig {
        upstream: upstream.addr(),
        concurrency: 2,
        ..Default::default()
    })
    .unwrap();
    assert_ne!(first.listener(), second.listener());
    assert_ne!(first.admin(), second.admin());
    assert_ne!(first.listener().port(), 0);

    // Ready means serving: the very first request goes through.
    let response =
        http::send("GET", &first.url("/v1/models/bert-emotion-model"), &[], b"").unwrap();
    assert_eq!(response.status, 200);
    assert_eq!(
        response.text(),
        r#"{"name":"bert-emotion-model","ready":"True"}"#
    );
    assert_eq!(response.header("server"), Some("istio-envoy"));
    let seen = upstream.requests();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].path, "/v1/models/bert-emotion-model");
    assert!(first
        .admin_get("/stats/prometheus")
        .unwrap()
        .contains("envoy_"));
}

#[test]
fn a_module_envoy_refuses_is_an_error_carrying_the_log() {
    let upstream = ModelServer::start().unwrap();
    let dir = std::env::temp_dir().join(format!("harness-bad-module-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let module = dir.join("not-wasm.wasm");
    std::fs::write(&module, b"this is not a wasm module").unwrap();
    let mut plugin = Plugin::from_dist("not-wasm", serde_json::json!({}));
    plugin.module = module;
    let err = Envoy::start(EnvoyConfig {
        plugins: vec![plugin],
        upstream: upstream.addr(),
        ..Default::default()
    })
    .err()
    .expect("Envoy must refuse a module that is not Wasm");
    assert!(err.0.contains("exited"), "{err}");
    assert!(
        err.0.to_lowercase().contains("wasm"),
        "the log should name the Wasm failure: {err}"
    );
    std::fs::remove_dir_all(&dir).unwrap();

    let missing = Plugin::from_dist("no-such-plugin", serde_json::json!({}));
    let err = Envoy::start(EnvoyConfig {
        plugins: vec![missing],
        upstream: upstream.addr(),
        ..Default::default()
    })
    .err()
    .unwrap();
    assert!(err.0.contains("./build.sh build"), "{err}");
}

#[test]
fn dropping_the_handle_stops_envoy() {
    let upstream = ModelServer::start().unwrap();
    let envoy = Envoy::start(EnvoyConfig {
        upstream: upstream.addr(),
        ..Default::default()
    })
    .unwrap();
    let pid = envoy.pid();
    let dir = envoy.dir().to_path_buf();
    let listener = envoy.listener();
    assert!(Path::new(&format!("/proc/{pid}")).exists());
    drop(envoy);
    assert!(
        !Path::new(&format!("/proc/{pid}")).exists(),
        "envoy {pid} still running"
    );
    assert!(!dir.exists(), "temp dir left behind");
    assert!(
        std::net::TcpStream::connect(listener).is_err(),
        "listener still open"
    );
}
