//! `WasmPlugin` resources → the ordered plugin list istiod would give a gateway's Envoy:
//! `pluginConfig` as JSON text, filters ordered by `phase` (AUTHN, AUTHZ, STATS, then
//! UNSPECIFIED) and inside a phase by `priority`, higher first, an unset priority last (istiod
//! sorts it as MinInt32), ties by namespace then name; `failStrategy` → Envoy's failure policy.
//!
//! Modules: a [`ModuleSource`] may fetch a `url` (harness-oci's resolver pulls `oci://` images
//! as istio-agent does); if that fails, the plugin becomes Istio's RBAC stand-in by its
//! `failStrategy`. Every url no source fetches maps to `dist/<name>.wasm`, so local development
//! and the integration tests need no registry ([`DistOnly`]).

use crate::render::{FailStrategy, Plugin};
use crate::{Error, Result};
use serde::Deserialize;
use serde_json::Value;
use std::path::{Path, PathBuf};

/// Where the modules of `WasmPlugin` urls come from, besides `dist/`.
pub trait ModuleSource {
    /// The module for `url`, or why it could not be fetched; `None`: not a url this source
    /// fetches, so it maps to `dist/`.
    fn fetch(
        &self,
        url: &str,
        sha256: Option<&str>,
        pull_policy: Option<&str>,
    ) -> Option<std::result::Result<PathBuf, String>>;
}

/// Every module from `dist/`, by the url's last path component.
pub struct DistOnly;

impl ModuleSource for DistOnly {
    fn fetch(
        &self,
        _url: &str,
        _sha256: Option<&str>,
        _pull_policy: Option<&str>,
    ) -> Option<std::result::Result<PathBuf, String>> {
        None
    }
}

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
    image_pull_policy: Option<String>,
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

/// Reads every `WasmPlugin` in the `.yaml`/`.yml` files of `dir` (other kinds are skipped), with
/// every module from `dist/`.
pub fn load_dir(dir: &Path) -> Result<Vec<WasmPlugin>> {
    load_dir_with(dir, &DistOnly)
}

/// [`load_dir`] with modules fetched by `resolver` first.
pub fn load_dir_with(dir: &Path, resolver: &dyn ModuleSource) -> Result<Vec<WasmPlugin>> {
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
        plugins.extend(
            parse_with(&text, resolver).map_err(|e| Error(format!("{}: {e}", file.display())))?,
        );
    }
    Ok(plugins)
}

/// Parses the `WasmPlugin` documents of one (multi-document) YAML text, with every module from
/// `dist/`.
pub fn parse(text: &str) -> Result<Vec<WasmPlugin>> {
    parse_with(text, &DistOnly)
}

/// [`parse`] with modules fetched by `resolver` first. Every `WasmPlugin` is checked against
/// Istio's CRD schema ([`crate::crd`]) before any module is fetched, as `kubectl apply` checks a
/// file.
pub fn parse_with(text: &str, resolver: &dyn ModuleSource) -> Result<Vec<WasmPlugin>> {
    let mut resources = Vec::new();
    for document in serde_yaml::Deserializer::from_str(text) {
        let value = serde_yaml::Value::deserialize(document)
            .map_err(|e| Error(format!("invalid YAML: {e}")))?;
        if value.is_null() {
            continue;
        }
        let json: Value =
            serde_json::to_value(&value).map_err(|e| Error(format!("invalid resource: {e}")))?;
        let resource: Resource =
            serde_yaml::from_value(value).map_err(|e| Error(format!("invalid resource: {e}")))?;
        if resource.kind != "WasmPlugin"
            || !resource.api_version.starts_with("extensions.istio.io/")
        {
            continue;
        }
        crate::crd::check(&json)?;
        resources.push(resource);
    }
    resources
        .into_iter()
        .map(|resource| from_resource(resource, resolver))
        .collect()
}

fn from_resource(resource: Resource, resolver: &dyn ModuleSource) -> Result<WasmPlugin> {
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
    // A mapping: the CRD check made sure of it.
    let configuration = match spec.plugin_config {
        None => String::new(),
        Some(config) => serde_json::to_value(&config)
            .map_err(|e| Error(format!("{what}: pluginConfig: {e}")))?
            .to_string(),
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
    let (module, fetch_failure) = match resolver.fetch(
        &spec.url,
        spec.sha256.as_deref(),
        spec.image_pull_policy.as_deref(),
    ) {
        Some(Ok(module)) => (module, None),
        Some(Err(why)) => {
            let consequence = match fail_strategy.stand_in() {
                crate::StandIn::DenyAll => "every request is denied (403 RBAC: access denied)",
                crate::StandIn::AllowAll => "the plugin is skipped",
            };
            eprintln!(
                "harness: {what}: cannot fetch {}: {why}; failStrategy {}: {consequence}",
                spec.url,
                spec.fail_strategy.as_deref().unwrap_or("FAIL_CLOSE")
            );
            (PathBuf::new(), Some(why))
        }
        None => {
            let module = local_module(&spec.url).ok_or_else(|| {
                Error(format!(
                    "{what}: cannot resolve url {:?} to a local module",
                    spec.url
                ))
            })?;
            // A missing plugin of this repository is a build away (Envoy::start says so); any
            // other name only maps to dist/ if someone put a module there.
            let ours = module
                .file_stem()
                .is_some_and(|stem| crate::PLUGINS.iter().any(|p| stem == *p));
            if !ours && !module.is_file() {
                return Err(Error(format!(
                    "{what}: url {:?}: no module for it ({} does not exist). Only this \
                     repository's plugins ({}) map to dist/<name>.wasm by the url's last path \
                     component, e.g. oci://ghcr.io/org/auth-gate:0.1.0; for another module, put \
                     its path in the url: file:///path/to/module.wasm",
                    spec.url,
                    module.display(),
                    crate::PLUGINS.join(", ")
                )));
            }
            (module, None)
        }
    };
    Ok(WasmPlugin {
        plugin: Plugin {
            name: format!("{namespace}.{name}"),
            module,
            configuration,
            root_id: spec.plugin_name.unwrap_or_default(),
            fail_strategy,
            env,
            host_env_keys,
            fetch_failure,
        },
        namespace,
        name,
        url: spec.url,
        sha256: spec.sha256,
        phase,
        priority: spec.priority,
    })
}

/// For local runs, a module that is not pulled comes from `dist/`: `file:///…/x.wasm` is used as
/// is when the file exists here, otherwise (and for `oci://…/x:tag`, `https://…/x.wasm`) by its
/// name `x` as `dist/x.wasm`.
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
        let err = parse(bad_config).unwrap_err().0;
        assert!(
            err.contains("WasmPlugin default/x: spec.pluginConfig: expected object, got string"),
            "{err}"
        );
        let no_url = "apiVersion: extensions.istio.io/v1alpha1\nkind: WasmPlugin\nmetadata: {name: x}\nspec: {phase: AUTHN}\n";
        assert!(parse(no_url).unwrap_err().0.contains("url"));
        let bad_strategy = "apiVersion: extensions.istio.io/v1alpha1\nkind: WasmPlugin\nmetadata: {name: x}\nspec: {url: x, failStrategy: MAYBE}\n";
        assert!(parse(bad_strategy).unwrap_err().0.contains("MAYBE"));
        let bad_policy = "apiVersion: extensions.istio.io/v1alpha1\nkind: WasmPlugin\nmetadata: {name: x}\nspec: {url: x, imagePullPolicy: Sometimes}\n";
        assert!(parse(bad_policy).unwrap_err().0.contains("Sometimes"));
    }

    #[test]
    fn a_url_naming_no_plugin_of_this_repository_says_how_to_point_at_a_module() {
        for url in [
            "oci://ghcr.io/acme/my-filter:1.0",
            "file:///nowhere/my-filter.wasm",
        ] {
            let err = parse(&wasm_plugin(url, "")).unwrap_err().0;
            assert!(
                err.starts_with(&format!(
                    "WasmPlugin ns/p: url \"{url}\": no module for it ("
                )),
                "{err}"
            );
            assert!(err.contains("dist/my-filter.wasm does not exist"), "{err}");
            assert!(
                err.contains(&format!("({})", crate::PLUGINS.join(", "))),
                "{err}"
            );
            assert!(err.contains("file:///path/to/module.wasm"), "{err}");
        }
        let dir = std::env::temp_dir().join(format!("manifests-own-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let own = dir.join("my-filter.wasm");
        std::fs::write(&own, b"\0asm").unwrap();
        let plugins = parse(&wasm_plugin(&format!("file://{}", own.display()), "")).unwrap();
        assert_eq!(plugins[0].plugin.module, own);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    fn wasm_plugin(url: &str, extra: &str) -> String {
        format!("apiVersion: extensions.istio.io/v1alpha1\nkind: WasmPlugin\nmetadata: {{name: p, namespace: ns}}\nspec:\n  url: {url}\n{extra}")
    }
}
