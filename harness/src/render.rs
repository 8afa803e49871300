//! Envoy bootstrap rendering, in one place: the listener, the upstream cluster and one Wasm
//! filter per plugin, shaped like the `PluginConfig` istiod sends for a `WasmPlugin`
//! (see ../shared/ref/istio-wasmplugin.md §3–§5).

use serde_json::{json, Value};
use std::net::SocketAddr;
use std::path::PathBuf;

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
}

/// How the listener normalizes request paths before any filter sees them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PathNormalization {
    /// Istio's default (`meshConfig.pathNormalization: BASE`): RFC 3986 normalization.
    #[default]
    Base,
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
}

impl Plugin {
    /// The module `dist/<plugin>.wasm` with `config` as its `pluginConfig`.
    pub fn from_dist(plugin: &str, config: Value) -> Self {
        Self {
            name: format!("istio-system.{plugin}"),
            module: crate::dist_module(plugin),
            configuration: config.to_string(),
            root_id: String::new(),
            fail_strategy: FailStrategy::FailClose,
            env: Vec::new(),
            host_env_keys: Vec::new(),
        }
    }

    pub fn fail_strategy(mut self, strategy: FailStrategy) -> Self {
        self.fail_strategy = strategy;
        self
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
    /// `(tag_name, regex)` pairs for `stats_config.stats_tags`.
    pub stats_tags: Vec<(String, String)>,
    /// Listener port; 0 lets the kernel choose a free one.
    pub listener_port: u16,
}

impl Default for EnvoyConfig {
    fn default() -> Self {
        Self {
            plugins: Vec::new(),
            upstream: SocketAddr::from(([127, 0, 0, 1], 0)),
            concurrency: 1,
            path_normalization: PathNormalization::Base,
            extra_clusters: Vec::new(),
            stats_tags: Vec::new(),
            listener_port: 0,
        }
    }
}

pub const UPSTREAM_CLUSTER: &str = "upstream";

/// The complete bootstrap (Envoy reads JSON as YAML).
pub fn bootstrap(config: &EnvoyConfig) -> Value {
    let mut http_filters: Vec<Value> = config.plugins.iter().map(wasm_filter).collect();
    http_filters.push(json!({
        "name": "envoy.filters.http.router",
        "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}
    }));
    let mut hcm = json!({
        "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
        "stat_prefix": "gateway",
        "server_name": "istio-envoy",
        "route_config": {
            "name": "gateway",
            "virtual_hosts": [{
                "name": "all",
                "domains": ["*"],
                "routes": [{"match": {"prefix": "/"}, "route": {"cluster": UPSTREAM_CLUSTER, "timeout": "30s"}}]
            }]
        },
        "http_filters": http_filters,
    });
    if config.path_normalization == PathNormalization::Base {
        hcm["normalize_path"] = json!(true);
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

fn wasm_filter(plugin: &Plugin) -> Value {
    let env: serde_json::Map<String, Value> = plugin
        .env
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect();
    json!({
        "name": plugin.filter_name(),
        "typed_config": {
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
        assert_eq!(
            base["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]
                ["typed_config"]["normalize_path"],
            true
        );
    }
}
