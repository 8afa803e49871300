//! Envoy bootstrap rendering, in one place: the listener, the upstream cluster and one Wasm
//! filter per plugin, shaped like the `PluginConfig` istiod sends for a `WasmPlugin`
//! (<https://istio.io/latest/docs/reference/config/proxy_extensions/wasm-plugin/>).

use serde_json::{json, Value};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// `WasmPlugin.failStrategy`, mapped to Envoy's `failure_policy` as Istio ≥ 1.29 does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FailStrategy {
    #[default]
    FailClose,
    FailOpen,
    FailReload,
}

impl FailStrategy {
    pub fn envoy_failure_policy(self) -> &'static str {
        match self {
            FailStrategy::FailClose => "FAIL_CLOSED",
            FailStrategy::FailOpen => "FAIL_OPEN",
            FailStrategy::FailReload => "FAIL_RELOAD",
        }
    }

    /// What istio-agent (≥ 1.25) puts in place of a plugin whose module cannot be fetched: an
    /// RBAC filter that allows everything for FAIL_OPEN, and denies everything
    /// (`403 RBAC: access denied`) otherwise — FAIL_RELOAD included.
    pub fn stand_in(self) -> StandIn {
        match self {
            FailStrategy::FailOpen => StandIn::AllowAll,
            FailStrategy::FailClose | FailStrategy::FailReload => StandIn::DenyAll,
        }
    }
}

/// The RBAC filter standing in for a plugin that could not be fetched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StandIn {
    AllowAll,
    DenyAll,
}

impl StandIn {
    fn rbac_config(self) -> Value {
        let rbac = "type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC";
        match self {
            // No rules: nothing is enforced.
            StandIn::AllowAll => json!({"@type": rbac, "rules_stat_prefix": "wasm-default-allow"}),
            // Empty rules (ALLOW with no policies): nothing matches, everything is denied.
            StandIn::DenyAll => {
                json!({"@type": rbac, "rules": {}, "rules_stat_prefix": "wasm-default-deny"})
            }
        }
    }
}

/// How the listener normalizes request paths before any filter sees them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PathNormalization {
    /// Istio's default (`meshConfig.pathNormalization: BASE`): RFC 3986 normalization.
    #[default]
    Base,
    /// `MERGE_SLASHES`: BASE, then `//` merged.
    MergeSlashes,
    /// `DECODE_AND_MERGE_SLASHES`: MERGE_SLASHES, and `%2F`/`%5C` decoded first.
    DecodeAndMergeSlashes,
    /// No normalization at all: the plugins see the raw path (what the path tests use).
    None,
}

/// One Wasm filter, already in chain order.
#[derive(Debug, Clone, PartialEq)]
pub struct Plugin {
    /// `<namespace>.<name>`, as istiod names the extension.
    pub name: String,
    pub module: PathBuf,
    /// The plugin configuration as JSON text (istiod marshals `pluginConfig` to compact JSON).
    pub configuration: String,
    /// `WasmPlugin.pluginName`.
    pub root_id: String,
    pub fail_strategy: FailStrategy,
    /// `vmConfig.env` with `valueFrom: INLINE`.
    pub env: Vec<(String, String)>,
    /// `vmConfig.env` with `valueFrom: HOST`.
    pub host_env_keys: Vec<String>,
    /// Why the module could not be fetched, if it could not: then, as istio-agent does, the
    /// filter is an RBAC stand-in of the same name instead of the Wasm filter (see
    /// [`FailStrategy::stand_in`]).
    pub fetch_failure: Option<String>,
}

impl Plugin {
    /// The module `dist/<plugin>.wasm` with `config` as its `pluginConfig`.
    ///
    /// With `PLUGINS_IN_BUNDLE` set in the environment, a plugin that model-gateway links runs
    /// as `dist/model-gateway.wasm` (or the module the variable names, see
    /// [`crate::tests_bundle`]) with `config` as its only section (the WasmPlugin keeps the
    /// plugin's name): how each plugin's integration tests run against the bundle.
    pub fn from_dist(plugin: &str, config: Value) -> Self {
        Self::from_dist_in(plugin, config, crate::tests_bundle())
    }

    /// [`Plugin::from_dist`], as a section of `bundle` when there is one.
    pub fn from_dist_in(plugin: &str, config: Value, bundle: Option<&str>) -> Self {
        let (module, config) = match (crate::bundle_section(plugin), bundle) {
            (Some(section), Some(bundle)) => (
                crate::dist_module(bundle),
                serde_json::json!({ section: config }),
            ),
            _ => (crate::dist_module(plugin), config),
        };
        Self {
            name: format!("istio-system.{plugin}"),
            module,
            configuration: config.to_string(),
            root_id: String::new(),
            fail_strategy: FailStrategy::FailClose,
            env: Vec::new(),
            host_env_keys: Vec::new(),
            fetch_failure: None,
        }
    }

    pub fn fail_strategy(mut self, strategy: FailStrategy) -> Self {
        self.fail_strategy = strategy;
        self
    }

    /// The WasmPlugin's name without its namespace (`path-allowlist` of
    /// `istio-system.path-allowlist`).
    pub fn short_name(&self) -> &str {
        self.name.rsplit('.').next().unwrap_or_default()
    }

    /// Name of the Envoy HTTP filter, as Istio 1.30+ names it.
    pub fn filter_name(&self) -> String {
        format!(
            "extensions.istio.io/trafficextension/{}~istio-translated-wasmplugin",
            self.name
        )
    }

    /// Name of the Wasm plugin inside Envoy (stats prefix `wasm.<name>.`).
    pub fn config_name(&self) -> String {
        format!("{}~istio-translated-wasmplugin", self.name)
    }
}

/// An extra static cluster (for example the JWKS server a plugin calls).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cluster {
    pub name: String,
    pub addr: SocketAddr,
}

/// A native Envoy HTTP filter (the benchmarks' twins of the plugins), placed before the Wasm
/// filters.
#[derive(Debug, Clone, PartialEq)]
pub struct NativeFilter {
    pub name: String,
    /// The filter's `typed_config`, `@type` included.
    pub typed_config: Value,
}

/// A fixed answer given by the route itself (`direct_response`) instead of the upstream: a
/// load test then measures Envoy and its filters, not the upstream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectResponse {
    pub status: u16,
    pub content_type: String,
    pub body: String,
}

/// Everything that shapes one local Envoy.
#[derive(Debug, Clone)]
pub struct EnvoyConfig {
    /// Wasm filters in chain order (see `manifests::to_plugins` for istiod's ordering).
    pub plugins: Vec<Plugin>,
    pub upstream: SocketAddr,
    /// Envoy worker threads.
    pub concurrency: u32,
    pub path_normalization: PathNormalization,
    pub extra_clusters: Vec<Cluster>,
    /// `(tag_name, regex)` pairs for `stats_config.stats_tags`; by default the tags the
    /// plugins encode in their metric names (`plugin_kit::metrics`), as Istio's
    /// `extraStatTags` would add them.
    pub stats_tags: Vec<(String, String)>,
    /// `(stat name prefix, bucket bounds)` for `stats_config.histogram_bucket_settings`.
    pub histogram_buckets: Vec<(String, Vec<f64>)>,
    /// Listener port; 0 lets the kernel choose a free one.
    pub listener_port: u16,
    /// Native filters, in chain order, before the Wasm filters.
    pub native_filters: Vec<NativeFilter>,
    /// Answer every request from the route instead of proxying to `upstream`.
    pub direct_response: Option<DirectResponse>,
    /// Deliver each Wasm filter as istiod does, by ECDS (here from one file per plugin in the
    /// Envoy's private dir), so [`crate::Envoy::push_plugin`] can change it while Envoy runs.
    pub live_plugin_config: bool,
}

impl Default for EnvoyConfig {
    fn default() -> Self {
        Self {
            plugins: Vec::new(),
            upstream: SocketAddr::from(([127, 0, 0, 1], 0)),
            concurrency: 1,
            path_normalization: PathNormalization::Base,
            extra_clusters: Vec::new(),
            stats_tags: plugin_kit::metrics::stats_tags()
                .into_iter()
                .map(|(name, regex)| (name.to_string(), regex))
                .collect(),
            histogram_buckets: plugin_kit::metrics::histogram_bucket_settings()
                .into_iter()
                .map(|(prefix, buckets)| (prefix.to_string(), buckets.to_vec()))
                .collect(),
            listener_port: 0,
            native_filters: Vec::new(),
            direct_response: None,
            live_plugin_config: false,
        }
    }
}

pub const UPSTREAM_CLUSTER: &str = "upstream";

/// The complete bootstrap (Envoy reads JSON as YAML), every Wasm filter inline.
pub fn bootstrap(config: &EnvoyConfig) -> Value {
    render_bootstrap(config, None)
}

/// The bootstrap with every Wasm filter discovered by ECDS from `ecds_file(ecds_dir, plugin)`,
/// the shape istiod sends (an ECDS `TypedExtensionConfig` per plugin) with a file instead of ADS.
pub fn bootstrap_with_discovery(config: &EnvoyConfig, ecds_dir: &Path) -> Value {
    render_bootstrap(config, Some(ecds_dir))
}

fn render_bootstrap(config: &EnvoyConfig, ecds_dir: Option<&Path>) -> Value {
    let mut http_filters: Vec<Value> = config
        .native_filters
        .iter()
        .map(|f| json!({"name": f.name, "typed_config": f.typed_config}))
        .collect();
    http_filters.extend(config.plugins.iter().map(|plugin| match ecds_dir {
        None => json!({"name": plugin.filter_name(), "typed_config": wasm_typed_config(plugin)}),
        Some(dir) => discovered_filter(plugin, &ecds_file(dir, plugin)),
    }));
    http_filters.push(json!({
        "name": "envoy.filters.http.router",
        "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}
    }));
    let mut hcm = json!({
        "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
        "stat_prefix": "gateway",
        "server_name": "istio-envoy",
        "route_config": route_config(config.direct_response.as_ref()),
        "http_filters": http_filters,
    });
    // As istiod sets the connection manager for `meshConfig.pathNormalization`.
    match config.path_normalization {
        PathNormalization::None => {}
        PathNormalization::Base => hcm["normalize_path"] = json!(true),
        PathNormalization::MergeSlashes => {
            hcm["normalize_path"] = json!(true);
            hcm["merge_slashes"] = json!(true);
        }
        PathNormalization::DecodeAndMergeSlashes => {
            hcm["normalize_path"] = json!(true);
            hcm["merge_slashes"] = json!(true);
            hcm["path_with_escaped_slashes_action"] = json!("UNESCAPE_AND_FORWARD");
        }
    }
    let mut clusters = vec![static_cluster(UPSTREAM_CLUSTER, config.upstream)];
    clusters.extend(
        config
            .extra_clusters
            .iter()
            .map(|c| static_cluster(&c.name, c.addr)),
    );
    json!({
        "node": {"id": "harness", "cluster": "harness"},
        "admin": {"address": socket_address(SocketAddr::from(([127, 0, 0, 1], 0)))},
        "stats_config": {
            "stats_tags": config.stats_tags.iter()
                .map(|(name, regex)| json!({"tag_name": name, "regex": regex}))
                .collect::<Vec<_>>(),
            "histogram_bucket_settings": config.histogram_buckets.iter()
                .map(|(prefix, buckets)| json!({"match": {"prefix": prefix}, "buckets": buckets}))
                .collect::<Vec<_>>()
        },
        "static_resources": {
            "listeners": [{
                "name": "gateway",
                "address": socket_address(SocketAddr::from(([127, 0, 0, 1], config.listener_port))),
                "filter_chains": [{"filters": [{
                    "name": "envoy.filters.network.http_connection_manager",
                    "typed_config": hcm
                }]}]
            }],
            "clusters": clusters
        }
    })
}

fn route_config(direct_response: Option<&DirectResponse>) -> Value {
    let mut route =
        json!({"match": {"prefix": "/"}, "route": {"cluster": UPSTREAM_CLUSTER, "timeout": "30s"}});
    let mut route_config = json!({"name": "gateway"});
    if let Some(direct) = direct_response {
        route = json!({
            "match": {"prefix": "/"},
            "direct_response": {"status": direct.status, "body": {"inline_string": direct.body}},
            // Envoy labels a direct body text/plain unless told otherwise.
            "response_headers_to_add": [{
                "header": {"key": "content-type", "value": direct.content_type},
                "append_action": "OVERWRITE_IF_EXISTS_OR_ADD"
            }]
        });
        // The default limit is 4 KiB.
        route_config["max_direct_response_body_size_bytes"] = json!(direct.body.len().max(4096));
    }
    route_config["virtual_hosts"] = json!([{"name": "all", "domains": ["*"], "routes": [route]}]);
    route_config
}

/// The file Envoy watches for `plugin`'s extension config.
pub fn ecds_file(ecds_dir: &Path, plugin: &Plugin) -> PathBuf {
    ecds_dir.join(format!("{}.ecds.json", plugin.name))
}

/// A filter without config of its own: Envoy subscribes to the extension config of the same
/// name. `initial_fetch_timeout: 0s` makes the listener wait for it, as istiod's does.
fn discovered_filter(plugin: &Plugin, file: &Path) -> Value {
    json!({
        "name": plugin.filter_name(),
        "config_discovery": {
            "config_source": {
                "path_config_source": {"path": file.display().to_string()},
                "resource_api_version": "V3",
                "initial_fetch_timeout": "0s"
            },
            // The RBAC type too: istio-agent may send its stand-in under the same name.
            "type_urls": [
                "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm",
                "type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC"
            ]
        }
    })
}

/// The content of `plugin`'s ECDS file: a discovery response with one `TypedExtensionConfig`
/// named like the filter, holding what the inline filter would hold.
pub fn ecds_resource(plugin: &Plugin, version: u64) -> Value {
    json!({
        "version_info": version.to_string(),
        "resources": [{
            "@type": "type.googleapis.com/envoy.config.core.v3.TypedExtensionConfig",
            "name": plugin.filter_name(),
            "typed_config": wasm_typed_config(plugin)
        }]
    })
}

fn wasm_typed_config(plugin: &Plugin) -> Value {
    if plugin.fetch_failure.is_some() {
        return plugin.fail_strategy.stand_in().rbac_config();
    }
    let env: serde_json::Map<String, Value> = plugin
        .env
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect();
    json!({
        "@type": "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm",
        "config": {
            "name": plugin.config_name(),
            "root_id": plugin.root_id,
            "vm_config": {
                "runtime": "envoy.wasm.runtime.v8",
                "code": {"local": {"filename": plugin.module.display().to_string()}},
                "environment_variables": {"key_values": env, "host_env_keys": plugin.host_env_keys}
            },
            // A StringValue, as istiod sends it: a Struct would reach the module as protobuf bytes.
            "configuration": {
                "@type": "type.googleapis.com/google.protobuf.StringValue",
                "value": plugin.configuration
            },
            "failure_policy": plugin.fail_strategy.envoy_failure_policy()
        }
    })
}

fn static_cluster(name: &str, addr: SocketAddr) -> Value {
    json!({
        "name": name,
        "type": "STATIC",
        "connect_timeout": "1s",
        "load_assignment": {
            "cluster_name": name,
            "endpoints": [{"lb_endpoints": [{"endpoint": {"address": socket_address(addr)}}]}]
        }
    })
}

fn socket_address(addr: SocketAddr) -> Value {
    json!({"socket_address": {"address": addr.ip().to_string(), "port_value": addr.port()}})
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filters(v: &Value) -> &Vec<Value> {
        v["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
            ["http_filters"]
            .as_array()
            .unwrap()
    }

    #[test]
    fn plugins_become_wasm_filters_in_order_before_the_router() {
        let config = EnvoyConfig {
            plugins: vec![
                Plugin::from_dist("auth-gate", json!({"a": 1})),
                Plugin::from_dist("emotion-stats", json!({})).fail_strategy(FailStrategy::FailOpen),
            ],
            upstream: "127.0.0.1:8000".parse().unwrap(),
            ..Default::default()
        };
        let rendered = bootstrap(&config);
        let filters = filters(&rendered);
        assert_eq!(filters.len(), 3);
        assert_eq!(
            filters[0]["name"],
            "extensions.istio.io/trafficextension/istio-system.auth-gate~istio-translated-wasmplugin"
        );
        let wasm = &filters[0]["typed_config"]["config"];
        assert_eq!(wasm["configuration"]["value"], r#"{"a":1}"#);
        assert_eq!(
            wasm["configuration"]["@type"],
            "type.googleapis.com/google.protobuf.StringValue"
        );
        assert_eq!(wasm["failure_policy"], "FAIL_CLOSED");
        assert_eq!(wasm["vm_config"]["runtime"], "envoy.wasm.runtime.v8");
        assert!(wasm["vm_config"]["code"]["local"]["filename"]
            .as_str()
            .unwrap()
            .ends_with("dist/auth-gate.wasm"));
        assert_eq!(
            filters[1]["typed_config"]["config"]["failure_policy"],
            "FAIL_OPEN"
        );
        assert_eq!(filters[2]["name"], "envoy.filters.http.router");
    }

    #[test]
    fn live_plugin_config_renders_ecds_subscriptions_and_files_holding_the_inline_config() {
        let plugins = vec![
            Plugin::from_dist("auth-gate", json!({"a": 1})),
            Plugin {
                fetch_failure: Some("pull failed".into()),
                ..Plugin::from_dist("emotion-stats", json!({}))
                    .fail_strategy(FailStrategy::FailOpen)
            },
        ];
        let config = EnvoyConfig {
            plugins: plugins.clone(),
            live_plugin_config: true,
            ..Default::default()
        };
        let dir = Path::new("/run/envoy-x");
        let inline = bootstrap(&config);
        let rendered = bootstrap_with_discovery(&config, dir);
        let discovered = filters(&rendered);
        assert_eq!(discovered.len(), 3);
        for (i, plugin) in plugins.iter().enumerate() {
            assert_eq!(discovered[i]["name"], plugin.filter_name());
            assert!(discovered[i].get("typed_config").is_none());
            let discovery = &discovered[i]["config_discovery"];
            assert_eq!(
                discovery["config_source"]["path_config_source"]["path"],
                ecds_file(dir, plugin).display().to_string()
            );
            assert_eq!(discovery["config_source"]["initial_fetch_timeout"], "0s");
            assert_eq!(discovery["config_source"]["resource_api_version"], "V3");
            assert_eq!(
                discovery["type_urls"][0],
                "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm"
            );
            let resource = ecds_resource(plugin, 7);
            assert_eq!(resource["version_info"], "7");
            let extension = &resource["resources"][0];
            assert_eq!(
                extension["@type"],
                "type.googleapis.com/envoy.config.core.v3.TypedExtensionConfig"
            );
            assert_eq!(extension["name"], plugin.filter_name());
            // What ECDS delivers is exactly what the inline filter holds.
            assert_eq!(
                extension["typed_config"],
                filters(&inline)[i]["typed_config"]
            );
        }
        assert_eq!(
            ecds_file(dir, &plugins[0]),
            Path::new("/run/envoy-x/istio-system.auth-gate.ecds.json")
        );
        assert_eq!(
            ecds_resource(&plugins[1], 1)["resources"][0]["typed_config"]["rules_stat_prefix"],
            "wasm-default-allow"
        );
        assert_eq!(discovered[2]["name"], "envoy.filters.http.router");
    }

    #[test]
    fn an_unfetched_module_becomes_istios_rbac_stand_in() {
        let failed = |strategy| Plugin {
            fetch_failure: Some("pull failed".into()),
            ..Plugin::from_dist("auth-gate", json!({})).fail_strategy(strategy)
        };
        let config = EnvoyConfig {
            plugins: vec![
                failed(FailStrategy::FailClose),
                failed(FailStrategy::FailOpen),
                failed(FailStrategy::FailReload),
            ],
            ..Default::default()
        };
        let rendered = bootstrap(&config);
        let filters = filters(&rendered);
        let rbac = "type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC";
        assert_eq!(
            filters[0]["name"],
            "extensions.istio.io/trafficextension/istio-system.auth-gate~istio-translated-wasmplugin"
        );
        assert_eq!(
            filters[0]["typed_config"],
            json!({"@type": rbac, "rules": {}, "rules_stat_prefix": "wasm-default-deny"})
        );
        assert_eq!(
            filters[1]["typed_config"],
            json!({"@type": rbac, "rules_stat_prefix": "wasm-default-allow"})
        );
        assert_eq!(
            filters[2]["typed_config"]["rules_stat_prefix"],
            "wasm-default-deny"
        );
    }

    #[test]
    fn native_filters_come_first_and_a_direct_response_replaces_the_upstream() {
        let config = EnvoyConfig {
            plugins: vec![Plugin::from_dist("emotion-stats", json!({}))],
            native_filters: vec![NativeFilter {
                name: "lua".into(),
                typed_config: json!({"@type": "type.googleapis.com/envoy.extensions.filters.http.lua.v3.Lua"}),
            }],
            direct_response: Some(DirectResponse {
                status: 200,
                content_type: "application/json".into(),
                body: "x".repeat(65_536),
            }),
            ..Default::default()
        };
        let rendered = bootstrap(&config);
        let names: Vec<&str> = filters(&rendered)
            .iter()
            .map(|f| f["name"].as_str().unwrap())
            .collect();
        assert_eq!(names[0], "lua");
        assert!(names[1].contains("emotion-stats"));
        assert_eq!(names[2], "envoy.filters.http.router");
        let route_config = &rendered["static_resources"]["listeners"][0]["filter_chains"][0]
            ["filters"][0]["typed_config"]["route_config"];
        assert_eq!(route_config["max_direct_response_body_size_bytes"], 65_536);
        let route = &route_config["virtual_hosts"][0]["routes"][0];
        assert!(route.get("route").is_none());
        assert_eq!(route["direct_response"]["status"], 200);
        assert_eq!(
            route["direct_response"]["body"]["inline_string"]
                .as_str()
                .unwrap()
                .len(),
            65_536
        );
        assert_eq!(
            route["response_headers_to_add"][0]["header"],
            json!({"key": "content-type", "value": "application/json"})
        );
        let proxied = bootstrap(&EnvoyConfig::default());
        let route = &proxied["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]
            ["typed_config"]["route_config"]["virtual_hosts"][0]["routes"][0];
        assert_eq!(route["route"]["cluster"], UPSTREAM_CLUSTER);
    }

    #[test]
    fn upstream_normalization_tags_and_extra_clusters() {
        let config = EnvoyConfig {
            upstream: "127.0.0.1:8000".parse().unwrap(),
            path_normalization: PathNormalization::None,
            stats_tags: vec![("label".into(), r"\.label\.(\w+)".into())],
            extra_clusters: vec![Cluster {
                name: "jwks".into(),
                addr: "127.0.0.1:9000".parse().unwrap(),
            }],
            ..Default::default()
        };
        let rendered = bootstrap(&config);
        let hcm = &rendered["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]
            ["typed_config"];
        assert!(hcm.get("normalize_path").is_none());
        let clusters = rendered["static_resources"]["clusters"].as_array().unwrap();
        assert_eq!(clusters[0]["name"], "upstream");
        assert_eq!(
            clusters[0]["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]
                ["address"]["socket_address"]["port_value"],
            8000
        );
        assert_eq!(clusters[1]["name"], "jwks");
        assert_eq!(
            rendered["stats_config"]["stats_tags"][0]["tag_name"],
            "label"
        );
        let base = bootstrap(&EnvoyConfig::default());
        let default_tags = base["stats_config"]["stats_tags"].as_array().unwrap();
        assert!(
            default_tags.iter().any(|t| t["tag_name"] == "model"),
            "{default_tags:?}"
        );
        let buckets = &base["stats_config"]["histogram_bucket_settings"][0];
        assert_eq!(buckets["match"]["prefix"], "wasmcustom");
        assert_eq!(
            buckets["buckets"].as_array().unwrap().last().unwrap(),
            60_000.0
        );
        assert_eq!(
            base["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]
                ["typed_config"]["normalize_path"],
            true
        );
    }
}
