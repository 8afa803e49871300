//! The local stand-in for an Istio gateway: a real Envoy with the plugins wired as istiod wires
//! `WasmPlugin` resources, in front of an upstream (usually the demo model server). This is what
//! a test needs to start a gateway: the Envoy runner and its bootstrap, the CRD checks of Istio
//! resources, a small HTTP client, a reproducible random generator, and the error type every
//! harness crate returns; the integration tests, the `harness` CLI and the other harness crates
//! build on it.

pub mod crd;
pub mod envoy;
pub mod http;
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
pub const PLUGINS: [&str; 5] = [
    "path-allowlist",
    "auth-gate",
    "local-ratelimit",
    "emotion-stats",
    "model-gateway",
];

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

    /// The harness crates keep the plugins' rule: no module reaches itself through the modules
    /// it uses (each can be read, tested and moved on its own).
    #[test]
    fn no_harness_crate_has_modules_that_use_each_other() {
        let harness = super::repo_root().join("harness");
        let mut checked = 0;
        for entry in std::fs::read_dir(&harness).unwrap() {
            let src = entry.unwrap().path().join("src");
            if src.is_dir() {
                plugin_common::layout::check_module_imports(&src)
                    .unwrap_or_else(|e| panic!("{}: {e}", src.display()));
                checked += 1;
            }
        }
        assert!(checked >= 7, "{checked} harness crates");
    }
}
