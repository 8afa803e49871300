//! The registry round trip, as a cluster would do it: the plugins' images are built from
//! `dist/`, pushed with skopeo to a real registry (Debian's `docker-registry`) on 127.0.0.1,
//! pulled back by the harness from `oci://127.0.0.1:PORT/…` WasmPlugin urls as istio-agent
//! pulls them, and served by a real Envoy — also the `sidecar/` manifests as a user applies them,
//! each plugin doing its job. A wrong `sha256` or an unreachable registry gives Istio's
//! fail-strategy behaviour: 403 `RBAC: access denied` when failing closed, the plugin skipped
//! when failing open.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use harness_model_server::ModelServer;
use harness_oci::ModuleResolver;
use harness_oci::{LocalRegistry, ModuleCache};
use harness_runner::manifests;
use harness_runner::{http, Envoy, EnvoyConfig, Plugin, PLUGINS};
use std::path::{Path, PathBuf};

const VERSION: &str = "0.1.0";

/// A private temp dir, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A WasmPlugin of `plugin` with `spec_extra` (indented spec lines) and its `pluginConfig`.
fn wasm_plugin(plugin: &str, url: &str, spec_extra: &str) -> String {
    let config = match plugin {
        "path-allowlist" => {
            "  pluginConfig:\n    action: ALLOW\n    rules:\n    - to:\n      - operation:\n          paths: [/healthz, /v1/models/*]\n"
        }
        "local-ratelimit" => "  pluginConfig:\n    domain: ratelimit\n",
        _ => "  pluginConfig: {}\n",
    };
    format!(
        "apiVersion: extensions.istio.io/v1alpha1\nkind: WasmPlugin\nmetadata:\n  name: {plugin}\n  namespace: istio-system\nspec:\n  url: {url}\n{spec_extra}{config}---\n"
    )
}

fn load(manifests: &str, dir: &Path, cache: &Path) -> Vec<Plugin> {
    let manifest_dir = dir.join("manifests");
    let _ = std::fs::remove_dir_all(&manifest_dir);
    std::fs::create_dir_all(&manifest_dir).unwrap();
    std::fs::write(manifest_dir.join("plugins.yaml"), manifests).unwrap();
    let resolver = ModuleResolver {
        cache: ModuleCache::new(cache),
        ..Default::default()
    };
    manifests::to_plugins(manifests::load_dir_with(&manifest_dir, &resolver).unwrap())
}

/// A registry holding every plugin's images, built and pushed as `./build.sh images` and
/// `./build.sh push` do; `None` (with the reason printed) where docker-registry or skopeo is
/// missing.
fn registry_with_images(
    temp: &TempDir,
) -> Option<(LocalRegistry, String, Vec<harness_oci::Pushed>)> {
    if !harness_oci::local_registry_available() {
        eprintln!(
            "SKIPPED oci_registry: docker-registry or skopeo is not installed and ./build.sh setup could not install them (Debian packages docker-registry, skopeo)"
        );
        return None;
    }
    let served = harness_oci::serve_dist_images(&temp.0, &PLUGINS, VERSION).unwrap();
    assert_eq!(
        served.2.len(),
        PLUGINS.len() * harness_oci::Variant::ALL.len()
    );
    Some(served)
}

fn start(upstream: &ModelServer, plugins: Vec<Plugin>) -> Envoy {
    Envoy::start(EnvoyConfig {
        plugins,
        upstream: upstream.addr(),
        ..Default::default()
    })
    .unwrap()
}

fn get(envoy: &Envoy, path: &str) -> http::Response {
    http::send("GET", &envoy.url(path), &[], b"").unwrap()
}

#[test]
fn plugins_pulled_from_a_local_registry_serve_and_fetch_failures_follow_fail_strategy() {
    let temp = TempDir::new("oci-registry-test");
    let cache = temp.0.join("cache");
    // Pushed, every layout in every variant; push_images checks the registry serves the digests
    // the layouts hold.
    let Some((registry, repo, pushed)) = registry_with_images(&temp) else {
        return;
    };
    let digest_of = |reference: &str| {
        pushed
            .iter()
            .find(|p| p.reference == reference)
            .unwrap_or_else(|| panic!("{reference} not pushed: {pushed:?}"))
            .digest
            .clone()
    };
    let allowlist_digest = digest_of(&format!("{repo}/path-allowlist:{VERSION}"));

    // Each plugin from its image: the compat variant (allowlist pinned by sha256), the two-layer
    // Wasm artifact for auth-gate.
    let manifests = [
        wasm_plugin(
            "path-allowlist",
            &format!("oci://{repo}/path-allowlist:{VERSION}"),
            &format!(
                "  phase: AUTHZ\n  priority: 100\n  sha256: {}\n",
                allowlist_digest.trim_start_matches("sha256:")
            ),
        ),
        wasm_plugin(
            "auth-gate",
            &format!("oci://{repo}/auth-gate:{VERSION}-wasm"),
            "  phase: AUTHN\n",
        ),
        wasm_plugin(
            "local-ratelimit",
            &format!("oci://{repo}/local-ratelimit:{VERSION}"),
            "  phase: AUTHZ\n  priority: 10\n",
        ),
        wasm_plugin(
            "emotion-stats",
            &format!("oci://{repo}/emotion-stats:{VERSION}"),
            "  phase: STATS\n  failStrategy: FAIL_OPEN\n",
        ),
    ]
    .concat();
    let plugins = load(&manifests, &temp.0, &cache);
    assert_eq!(plugins.len(), 4);
    for plugin in &plugins {
        assert_eq!(plugin.fetch_failure, None, "{}", plugin.name);
        assert!(
            plugin.module.starts_with(&cache),
            "{} not pulled: {}",
            plugin.name,
            plugin.module.display()
        );
        let name = plugin.name.trim_start_matches("istio-system.");
        assert_eq!(
            std::fs::read(&plugin.module).unwrap(),
            std::fs::read(harness_runner::dist_module(name)).unwrap(),
            "{name}: the pulled module differs from dist/"
        );
    }
    let upstream = ModelServer::start().unwrap();
    {
        let envoy = start(&upstream, plugins);
        let ok = get(&envoy, "/v1/models/bert-emotion-model");
        assert_eq!(ok.status, 200, "{}\n{}", ok.text(), envoy.log());
        let denied = get(&envoy, "/admin");
        assert_eq!(denied.status, 403, "{}", denied.text());
        assert_eq!(denied.text(), "RBAC: access denied");
    }

    // A wrong sha256: the fetch fails; FAIL_CLOSE denies everything, FAIL_OPEN skips the plugin.
    let wrong = "0".repeat(64);
    let closed = load(
        &wasm_plugin(
            "path-allowlist",
            &format!("oci://{repo}/path-allowlist:{VERSION}"),
            &format!("  sha256: {wrong}\n  failStrategy: FAIL_CLOSE\n"),
        ),
        &temp.0,
        &cache,
    );
    let why = closed[0].fetch_failure.as_deref().unwrap();
    assert!(
        why.contains("does not match the expected") && why.contains(&wrong),
        "{why}"
    );
    {
        let envoy = start(&upstream, closed);
        let resp = get(&envoy, "/v1/models/bert-emotion-model");
        assert_eq!(resp.status, 403, "{}", resp.text());
        assert_eq!(resp.text(), "RBAC: access denied");
    }
    let open = load(
        &wasm_plugin(
            "path-allowlist",
            &format!("oci://{repo}/path-allowlist:{VERSION}"),
            &format!("  sha256: {wrong}\n  failStrategy: FAIL_OPEN\n"),
        ),
        &temp.0,
        &cache,
    );
    assert!(open[0].fetch_failure.is_some());
    {
        let envoy = start(&upstream, open);
        // The allowlist is skipped: even /admin reaches the model server.
        upstream.clear_requests();
        assert_ne!(get(&envoy, "/admin").status, 403);
        assert!(
            upstream.requests().iter().any(|r| r.path == "/admin"),
            "/admin did not reach the model server"
        );
    }

    // With the registry gone, IfNotPresent is served from the cache; Always must pull and fails.
    drop(registry);
    let cached = load(
        &wasm_plugin(
            "path-allowlist",
            &format!("oci://{repo}/path-allowlist:{VERSION}"),
            "  imagePullPolicy: IfNotPresent\n",
        ),
        &temp.0,
        &cache,
    );
    assert_eq!(cached[0].fetch_failure, None);
    let always = load(
        &wasm_plugin(
            "path-allowlist",
            &format!("oci://{repo}/path-allowlist:{VERSION}"),
            "  imagePullPolicy: Always\n",
        ),
        &temp.0,
        &cache,
    );
    assert!(always[0].fetch_failure.is_some());
    let envoy = start(&upstream, always);
    assert_eq!(get(&envoy, "/v1/models/bert-emotion-model").status, 403);
}

#[test]
fn the_sidecar_manifests_run_from_registry_images_with_each_plugins_behaviour() {
    let temp = TempDir::new("oci-registry-sidecar-test");
    let Some((_registry, repo, _)) = registry_with_images(&temp) else {
        return;
    };
    // The manifests as a cluster user applies them; their ghcr.io urls pulled from the local
    // registry instead (`harness run --registry`).
    let resolver = ModuleResolver {
        registry_override: Some(repo),
        cache: ModuleCache::new(temp.0.join("cache")),
        ..Default::default()
    };
    let sidecar = harness_runner::repo_root().join("wasmplugin-manifests/sidecar");
    let plugins = manifests::to_plugins(manifests::load_dir_with(&sidecar, &resolver).unwrap());
    assert_eq!(plugins.len(), 4);
    for plugin in &plugins {
        assert_eq!(plugin.fetch_failure, None, "{}", plugin.name);
        assert!(
            plugin.module.starts_with(&temp.0),
            "{} not pulled",
            plugin.name
        );
    }
    let upstream = ModelServer::start().unwrap();
    let envoy = start(&upstream, plugins);
    let predict = "/v1/models/bert-emotion-model:predict";
    let post = |headers: &[(&str, &str)]| {
        let mut all = vec![("content-type", "application/json")];
        all.extend_from_slice(headers);
        http::send(
            "POST",
            &envoy.url(predict),
            &all,
            br#"{"input": "Istio is lovely"}"#,
        )
        .unwrap()
    };
    // path-allowlist: only the Kubeflow gateway's paths.
    let admin = get(&envoy, "/admin");
    assert_eq!(
        (admin.status, admin.text().as_str()),
        (403, "RBAC: access denied")
    );
    // auth-gate: predict needs the BERT emotion walkthrough's header; a denied request costs no
    // rate-limit token.
    assert_eq!(post(&[]).status, 403);
    let with_header = [("x-test", "istio-is-cool")];
    for n in 1..=2 {
        let ok = post(&with_header);
        assert_eq!(
            ok.status,
            200,
            "prediction {n}: {}\n{}",
            ok.text(),
            envoy.log()
        );
    }
    // local-ratelimit: 2 predictions per minute on the predict path.
    let limited = post(&with_header);
    assert_eq!(limited.status, 429, "{}", limited.text());
    // emotion-stats: the two admitted predictions were read and counted.
    let stats = envoy.admin_get("/stats/prometheus").unwrap();
    assert!(
        stats
            .lines()
            .any(|l| l.starts_with("emotion_stats_responses_total{")
                && l.contains(r#"model="bert-emotion-model""#)
                && l.ends_with(r#"outcome="counted"} 2"#)),
        "emotion-stats did not count 2 predictions:\n{stats}"
    );
}
