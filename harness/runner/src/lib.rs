//! The local stand-in for an Istio gateway: a real Envoy with the plugins wired as istiod wires
//! `WasmPlugin` resources, in front of an upstream (usually the demo model server). This is what
//! a test needs to start a gateway: the Envoy runner and its bootstrap, the CRD checks of Istio
//! resources, `WasmPlugin` manifests read into the filter chain istiod would render, a small HTTP client, a reproducible random generator, and the error type every
//! harness crate returns; the integration tests, the `harness` CLI and the other harness crates
//! build on it.

pub mod crd;
pub mod envoy;
pub mod http;
pub mod manifests;
pub mod render;
pub mod rng;

pub use envoy::{Envoy, PushOutcome};
pub use render::{EnvoyConfig, FailStrategy, PathNormalization, Plugin, StandIn};

use std::fmt;
use std::path::PathBuf;

/// Everything the harness can fail with; the text says what to do about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error(pub String);

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Error(e.to_string())
    }
}

pub type Result<T> = std::result::Result<T, Error>;

/// The plugins of this repository, as `./build.sh build` puts them in `dist/<plugin>.wasm`: the
/// workspace's crates with a `module` feature (a unit test checks the two agree).
pub const PLUGINS: [&str; 6] = [
    "path-allowlist",
    "auth-gate",
    "local-ratelimit",
    "emotion-stats",
    "model-gateway",
    "model-gateway-request-only",
];

/// The module that links the other plugins, one `pluginConfig` section each.
pub const BUNDLE: &str = "model-gateway";

/// [`BUNDLE`]'s request-side sections in a module without response callbacks.
pub const REQUEST_ONLY_BUNDLE: &str = "model-gateway-request-only";

/// Whether `plugin` is one of the modules that run other plugins as sections.
pub fn is_bundle(plugin: &str) -> bool {
    [BUNDLE, REQUEST_ONLY_BUNDLE].contains(&plugin)
}

/// The section of [`BUNDLE`]'s `pluginConfig` that configures `plugin` (`pathAllowlist` for
/// `path-allowlist`); `None` for the bundles themselves and for a name that is not a plugin.
pub fn bundle_section(plugin: &str) -> Option<String> {
    if is_bundle(plugin) || !PLUGINS.contains(&plugin) {
        return None;
    }
    let mut words = plugin.split('-');
    let mut section = words.next().unwrap_or_default().to_string();
    for word in words {
        let mut chars = word.chars();
        section.extend(chars.next().map(|c| c.to_ascii_uppercase()));
        section.push_str(chars.as_str());
    }
    Some(section)
}

/// The bundle the plugins' tests run on, `None` unless `PLUGINS_IN_BUNDLE` is set: then
/// [`Plugin::from_dist`] runs each plugin as a section of [`REQUEST_ONLY_BUNDLE`] when the
/// variable names it, else of [`BUNDLE`].
pub fn tests_bundle() -> Option<&'static str> {
    let bundle = std::env::var_os("PLUGINS_IN_BUNDLE")?;
    Some(if bundle == REQUEST_ONLY_BUNDLE {
        REQUEST_ONLY_BUNDLE
    } else {
        BUNDLE
    })
}

/// Field `field` of `plugin`'s configuration as the module that runs it names it in a refusal:
/// under the plugin's section when the tests run on the bundle (see [`Plugin::from_dist`]).
pub fn config_field(plugin: &str, field: &str) -> String {
    match bundle_section(plugin) {
        Some(section) if tests_bundle().is_some() => {
            if field.starts_with('[') {
                format!("{section}{field}")
            } else {
                format!("{section}.{field}")
            }
        }
        _ => field.to_string(),
    }
}

/// The repository root (where `dist/` and `.venv/` live): this crate is `harness/runner/`.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .map(PathBuf::from)
        .unwrap_or_default()
}

/// `dist/<plugin-name>.wasm`, the path `./build.sh build` writes (overridable with `PLUGINS_DIST`).
pub fn dist_module(plugin: &str) -> PathBuf {
    let dist = std::env::var_os("PLUGINS_DIST")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("dist"));
    dist.join(format!("{plugin}.wasm"))
}

/// Makes a child process die with the harness: the kernel sends it SIGKILL when the harness
/// exits, even when the harness itself is killed, so no Envoy, registry, load generator or
/// model server outlives a test run. The child also gets the default signal mask, even if the
/// harness blocks SIGINT (as `harness run` does), so it can still be stopped by hand.
pub fn die_with_parent(command: &mut std::process::Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: prctl, sigemptyset and sigprocmask are async-signal-safe, as pre_exec requires.
    unsafe {
        command.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            let mut empty: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut empty);
            libc::sigprocmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut());
            Ok(())
        });
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn plugins_are_the_workspace_crates_that_build_a_module() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let output = std::process::Command::new(cargo)
            .args(["metadata", "--no-deps", "--format-version", "1"])
            .current_dir(super::repo_root())
            .output()
            .unwrap();
        assert!(output.status.success());
        let meta: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
        let packages = meta["packages"].as_array().unwrap();
        let with_module: Vec<&str> = meta["workspace_members"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|id| packages.iter().find(|p| p["id"] == *id))
            .filter(|p| p["features"].get("module").is_some())
            .filter_map(|p| p["name"].as_str())
            .collect();
        assert_eq!(with_module, super::PLUGINS);
    }

    #[test]
    fn bundle_sections_are_the_plugins_names_in_camel_case() {
        let sections: Vec<Option<String>> = super::PLUGINS
            .iter()
            .map(|p| super::bundle_section(p))
            .collect();
        assert_eq!(
            sections,
            [
                Some("pathAllowlist".into()),
                Some("authGate".into()),
                Some("localRatelimit".into()),
                Some("emotionStats".into()),
                None,
                None,
            ]
        );
        assert_eq!(super::bundle_section("no-such-plugin"), None);
    }

    #[test]
    fn in_the_bundle_a_plugin_is_its_section_of_model_gateway() {
        let config = serde_json::json!({"paths": ["/v1/*"]});
        let alone = super::Plugin::from_dist_in("emotion-stats", config.clone(), None);
        let bundled =
            super::Plugin::from_dist_in("emotion-stats", config.clone(), Some(super::BUNDLE));
        assert_eq!(alone.module, super::dist_module("emotion-stats"));
        assert_eq!(bundled.module, super::dist_module("model-gateway"));
        assert_eq!(alone.configuration, config.to_string());
        assert_eq!(
            bundled.configuration,
            serde_json::json!({"emotionStats": config}).to_string()
        );
        assert_eq!(bundled.name, alone.name);
        let gateway =
            super::Plugin::from_dist_in("model-gateway", config.clone(), Some(super::BUNDLE));
        assert_eq!(gateway.configuration, config.to_string());
        let request_only = super::Plugin::from_dist_in(
            "path-allowlist",
            config.clone(),
            Some(super::REQUEST_ONLY_BUNDLE),
        );
        assert_eq!(
            request_only.module,
            super::dist_module("model-gateway-request-only")
        );
        assert_eq!(
            request_only.configuration,
            serde_json::json!({"pathAllowlist": config}).to_string()
        );
    }

    /// The harness crates keep the plugins' rule: no module reaches itself through the modules
    /// it uses (each can be read, tested and moved on its own).
    #[test]
    fn no_harness_crate_has_modules_that_use_each_other() {
        let harness = super::repo_root().join("harness");
        let mut checked = 0;
        for entry in std::fs::read_dir(&harness).unwrap() {
            let src = entry.unwrap().path().join("src");
            if src.is_dir() {
                plugin_kit::layout::check_module_imports(&src)
                    .unwrap_or_else(|e| panic!("{}: {e}", src.display()));
                checked += 1;
            }
        }
        assert!(checked >= 7, "{checked} harness crates");
    }
}
