//! `WasmPlugin` resources → the ordered plugin list istiod would give a gateway's Envoy:
//! `pluginConfig` as JSON text, filters ordered by `phase` (AUTHN, AUTHZ, STATS, then
//! UNSPECIFIED) and inside a phase by `priority`, higher first, an unset priority last (istiod
//! sorts it as MinInt32), ties by namespace then name; `failStrategy` → Envoy's failure policy.

use crate::render::{FailStrategy, Plugin};
use crate::{Error, Result};
use serde::Deserialize;
use serde_json::Value;
use std::path::{Path, PathBuf};

#[derive(Debug, Deserialize)]
struct Resource {
    #[serde(rename = "apiVersion", default)]
    api_version: String,
    #[serde(default)]
    kind: String,
    #[serde(default)]
    metadata: Metadata,
    #[serde(default)]
    spec: serde_yaml::Value,
}

#[derive(Debug, Default, Deserialize)]
struct Metadata {
    #[serde(default)]
    name: String,
    #[serde(default)]
    namespace: Option<String>,
}

/// The `spec` fields of a `WasmPlugin` that shape a local run (the others, like `selector` or
/// `imagePullSecret`, only matter inside a cluster and are accepted as they are).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Spec {
    url: String,
    #[serde(default)]
    sha256: Option<String>,
    #[serde(default)]
    plugin_name: Option<String>,
    #[serde(default)]
    phase: Option<String>,
    #[serde(default)]
    priority: Option<i32>,
    #[serde(default)]
    fail_strategy: Option<String>,
    #[serde(default)]
    plugin_config: Option<serde_yaml::Value>,
    #[serde(default)]
    vm_config: Option<VmConfig>,
    #[serde(default, rename = "type")]
    plugin_type: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct VmConfig {
    #[serde(default)]
    env: Vec<EnvVar>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct EnvVar {
    name: String,
    #[serde(default)]
    value_from: Option<String>,
    #[serde(default)]
    value: Option<String>,
}

/// One `WasmPlugin`, read from a manifest.
#[derive(Debug, Clone, PartialEq)]
pub struct WasmPlugin {
    pub namespace: String,
    pub name: String,
    pub url: String,
    pub sha256: Option<String>,
    pub phase: Phase,
    pub priority: Option<i32>,
    pub plugin: Plugin,
}

/// `WasmPlugin.phase`, in filter-chain order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Phase {
    Authn,
    Authz,
    Stats,
    Unspecified,
}

/// Reads every `WasmPlugin` in the `.yaml`/`.yml` files of `dir` (other kinds are skipped).
pub fn load_dir(dir: &Path) -> Result<Vec<WasmPlugin>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| Error(format!("cannot read manifests in {}: {e}", dir.display())))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| matches!(p.extension().and_then(|e| e.to_str()), Some("yaml" | "yml")))
        .collect();
    files.sort();
    let mut plugins = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file)
            .map_err(|e| Error(format!("cannot read {}: {e}", file.display())))?;
        plugins.extend(parse(&text).map_err(|e| Error(format!("{}: {e}", file.display())))?);
    }
    Ok(plugins)
}

/// Parses the `WasmPlugin` documents of one (multi-document) YAML text.
pub fn parse(text: &str) -> Result<Vec<WasmPlugin>> {
    let mut plugins = Vec::new();
    for document in serde_yaml::Deserializer::from_str(text) {
        let value = serde_yaml::Value::deserialize(document)
            .map_err(|e| Error(format!("invalid YAML: {e}")))?;
        if value.is_null() {
            continue;
        }
        let resource: Resource =
            serde_yaml::from_value(value).map_err(|e| Error(format!("invalid resource: {e}")))?;
        if resource.kind != "WasmPlugin"
            || !resource.api_version.starts_with("extensions.istio.io/")
        {
            continue;
        }
        plugins.push(from_resource(resource)?);
    }
    Ok(plugins)
}

fn from_resource(resource: Resource) -> Result<WasmPlugin> {
    let name = resource.metadata.name;
    let namespace = resource
        .metadata
        .namespace
        .unwrap_or_else(|| "default".to_string());
    let what = format!("WasmPlugin {namespace}/{name}");
    let spec: Spec =
        serde_yaml::from_value(resource.spec).map_err(|e| Error(format!("{what}: spec: {e}")))?;
    if let Some(kind) = spec
        .plugin_type
        .as_deref()
        .filter(|t| !matches!(*t, "HTTP" | "UNSPECIFIED_PLUGIN_TYPE"))
    {
        return Err(Error(format!(
            "{what}: type {kind} is not supported here (HTTP plugins only)"
        )));
    }
    let phase = match spec.phase.as_deref().unwrap_or("UNSPECIFIED_PHASE") {
        "AUTHN" => Phase::Authn,
        "AUTHZ" => Phase::Authz,
        "STATS" => Phase::Stats,
        "UNSPECIFIED_PHASE" => Phase::Unspecified,
        other => {
            return Err(Error(format!(
                "{what}: phase {other:?} is not one of AUTHN, AUTHZ, STATS, UNSPECIFIED_PHASE"
            )))
        }
    };
    let fail_strategy = match spec.fail_strategy.as_deref().unwrap_or("FAIL_CLOSE") {
        "FAIL_CLOSE" => FailStrategy::FailClose,
        "FAIL_OPEN" => FailStrategy::FailOpen,
        "FAIL_RELOAD" => FailStrategy::FailReload,
        other => {
            return Err(Error(format!(
                "{what}: failStrategy {other:?} is not one of FAIL_CLOSE, FAIL_OPEN, FAIL_RELOAD"
            )))
        }
    };
    let configuration = match spec.plugin_config {
        None => String::new(),
        Some(config) if config.is_mapping() => {
            let json: Value = serde_json::to_value(&config)
                .map_err(|e| Error(format!("{what}: pluginConfig: {e}")))?;
            json.to_string()
        }
        Some(_) => {
            return Err(Error(format!(
                "{what}: pluginConfig must be a mapping (the CRD's type: object)"
            )))
        }
    };
    let mut env = Vec::new();
    let mut host_env_keys = Vec::new();
    for var in spec.vm_config.unwrap_or_default().env {
        match var.value_from.as_deref().unwrap_or("INLINE") {
            "INLINE" => env.push((var.name, var.value.unwrap_or_default())),
            "HOST" => host_env_keys.push(var.name),
            other => {
                return Err(Error(format!(
                    "{what}: vmConfig.env valueFrom {other:?} is not INLINE or HOST"
                )))
            }
        }
    }
    let module = local_module(&spec.url).ok_or_else(|| {
        Error(format!(
            "{what}: cannot resolve url {:?} to a local module",
            spec.url
        ))
    })?;
    Ok(WasmPlugin {
        plugin: Plugin {
            name: format!("{namespace}.{name}"),
            module,
            configuration,
            root_id: spec.plugin_name.unwrap_or_default(),
            fail_strategy,
            env,
            host_env_keys,
        },
        namespace,
        name,
        url: spec.url,
        sha256: spec.sha256,
        phase,
        priority: spec.priority,
    })
}

/// For local runs, a module comes from `dist/`: `file:///…/x.wasm` is used as is when the file
/// exists here, otherwise (and for `oci://…/x:tag`, `https://…/x.wasm`) by its name `x` as
/// `dist/x.wasm`.
fn local_module(url: &str) -> Option<PathBuf> {
    if let Some(path) = url.strip_prefix("file://") {
        if Path::new(path).is_file() {
            return Some(PathBuf::from(path));
        }
    }
    let without_digest = url.split('@').next()?;
    let last = without_digest.rsplit('/').next()?;
    let name = last.split(':').next()?.trim_end_matches(".wasm");
    (!name.is_empty()).then(|| crate::dist_module(name))
}

/// The plugins in the order istiod puts them in the filter chain.
pub fn to_plugins(mut resources: Vec<WasmPlugin>) -> Vec<Plugin> {
    resources.sort_by(|a, b| {
        a.phase
            .cmp(&b.phase)
            .then(
                b.priority
                    .unwrap_or(i32::MIN)
                    .cmp(&a.priority.unwrap_or(i32::MIN)),
            )
            .then(a.namespace.cmp(&b.namespace))
            .then(a.name.cmp(&b.name))
    });
    resources.into_iter().map(|r| r.plugin).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const MANIFESTS: &str = r#"
apiVersion: extensions.istio.io/v1alpha1
kind: WasmPlugin
metadata: {name: stats, namespace: istio-system}
spec:
  url: oci://registry.example.com/plugins/emotion-stats:0.1.0
  phase: STATS
  failStrategy: FAIL_OPEN
  pluginConfig:
    labels: [joy, sadness]
    maxBodyBytes: 1048576
---
apiVersion: v1
kind: ConfigMap
metadata: {name: unrelated}
---
apiVersion: extensions.istio.io/v1alpha1
kind: WasmPlugin
metadata: {name: ratelimit, namespace: istio-system}
spec:
  url: file:///var/local/wasm/local-ratelimit.wasm
  phase: AUTHZ
  vmConfig:
    env:
    - {name: TRUST_DOMAIN, value: cluster.local}
    - {name: POD_NAME, valueFrom: HOST}
---
apiVersion: extensions.istio.io/v1alpha1
kind: WasmPlugin
metadata: {name: allowlist, namespace: istio-system}
spec:
  url: path-allowlist
  phase: AUTHZ
  priority: 10
  pluginName: allow
---
apiVersion: extensions.istio.io/v1alpha1
kind: WasmPlugin
metadata: {name: auth, namespace: istio-system}
spec:
  url: oci://registry.example.com/plugins/auth-gate@sha256:0000000000000000000000000000000000000000000000000000000000000000
  phase: AUTHN
"#;

    #[test]
    fn orders_by_phase_then_priority_with_unset_last() {
        let plugins = to_plugins(parse(MANIFESTS).unwrap());
        let names: Vec<&str> = plugins.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "istio-system.auth",
                "istio-system.allowlist",
                "istio-system.ratelimit",
                "istio-system.stats"
            ]
        );
    }

    #[test]
    fn plugin_config_env_fail_strategy_and_module() {
        let plugins = parse(MANIFESTS).unwrap();
        let stats = &plugins[0].plugin;
        assert_eq!(
            stats.configuration,
            r#"{"labels":["joy","sadness"],"maxBodyBytes":1048576}"#
        );
        assert_eq!(stats.fail_strategy, FailStrategy::FailOpen);
        assert!(stats.module.ends_with("dist/emotion-stats.wasm"));
        let ratelimit = &plugins[1].plugin;
        assert_eq!(ratelimit.fail_strategy, FailStrategy::FailClose);
        assert_eq!(ratelimit.configuration, "");
        assert_eq!(
            ratelimit.env,
            vec![("TRUST_DOMAIN".to_string(), "cluster.local".to_string())]
        );
        assert_eq!(ratelimit.host_env_keys, vec!["POD_NAME".to_string()]);
        assert!(ratelimit.module.ends_with("dist/local-ratelimit.wasm"));
        assert_eq!(plugins[2].plugin.root_id, "allow");
        assert!(plugins[2]
            .plugin
            .module
            .ends_with("dist/path-allowlist.wasm"));
        assert!(plugins[3].plugin.module.ends_with("dist/auth-gate.wasm"));
    }

    #[test]
    fn invalid_manifests_are_rejected_with_the_resource_named() {
        let bad_phase = "apiVersion: extensions.istio.io/v1alpha1\nkind: WasmPlugin\nmetadata: {name: x, namespace: ns}\nspec: {url: x, phase: LATE}\n";
        let err = parse(bad_phase).unwrap_err().0;
        assert!(err.contains("ns/x") && err.contains("LATE"), "{err}");
        let bad_config = "apiVersion: extensions.istio.io/v1alpha1\nkind: WasmPlugin\nmetadata: {name: x}\nspec: {url: x, pluginConfig: \"{}\"}\n";
        assert!(parse(bad_config).unwrap_err().0.contains("mapping"));
        let no_url = "apiVersion: extensions.istio.io/v1alpha1\nkind: WasmPlugin\nmetadata: {name: x}\nspec: {phase: AUTHN}\n";
        assert!(parse(no_url).unwrap_err().0.contains("url"));
        let bad_strategy = "apiVersion: extensions.istio.io/v1alpha1\nkind: WasmPlugin\nmetadata: {name: x}\nspec: {url: x, failStrategy: MAYBE}\n";
        assert!(parse(bad_strategy).unwrap_err().0.contains("MAYBE"));
    }
}
