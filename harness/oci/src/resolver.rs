//! How `WasmPlugin` urls become modules in a local run: an `oci://` image on a loopback
//! registry (or any image, with [`ModuleResolver::pull_every_image`], or from another registry
//! with [`ModuleResolver::registry_override`]) is pulled as istio-agent pulls it (see [`crate`]);
//! every other url maps to `dist/<name>.wasm` (harness-runner's `manifests`, which reads the
//! resources and orders them, falls back to it).

use crate::{ImageRef, ModuleCache, PullPolicy};
use harness_runner::manifests::ModuleSource;
use std::path::PathBuf;

/// How `url`s become modules in a local run.
pub struct ModuleResolver {
    /// Pull every `oci://` image, not only those on a loopback registry.
    pub pull_every_image: bool,
    /// Pull every `oci://` image from this registry (`host[:port][/prefix]`) instead of the one
    /// in its url, by the url's last path component and tag or digest: rehearses manifests
    /// against images pushed to a local registry without editing their urls.
    pub registry_override: Option<String>,
    pub cache: ModuleCache,
    pub registry: Box<dyn crate::Registry>,
}

impl Default for ModuleResolver {
    /// Loopback images pulled with skopeo into [`ModuleCache::default_dir`].
    fn default() -> Self {
        Self {
            pull_every_image: false,
            registry_override: None,
            cache: ModuleCache::new(ModuleCache::default_dir()),
            registry: Box::new(crate::Skopeo),
        }
    }
}

impl ModuleSource for ModuleResolver {
    /// The module of an `oci://` image this resolver pulls, or why it could not be fetched.
    fn fetch(
        &self,
        url: &str,
        sha256: Option<&str>,
        pull_policy: Option<&str>,
    ) -> Option<std::result::Result<PathBuf, String>> {
        // No scheme means oci://, as in the CRD.
        if url.contains("://") && !url.starts_with("oci://") {
            return None;
        }
        let pull_all = self.pull_every_image || self.registry_override.is_some();
        let parsed = ImageRef::parse(url).and_then(|image| match &self.registry_override {
            Some(registry) => image.moved_to(registry),
            None => Ok(image),
        });
        let image = match parsed {
            Ok(image) if pull_all || image.is_loopback() => image,
            Ok(_) => return None,
            Err(e) if pull_all => return Some(Err(e.0)),
            Err(_) => return None,
        };
        Some(
            PullPolicy::resolve(pull_policy, &image)
                .and_then(|policy| self.cache.fetch(&*self.registry, &image, sha256, policy))
                .map(|fetched| fetched.module)
                .map_err(|e| e.0),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use harness_runner::manifests::{load_dir_with, parse_with};

    #[test]
    fn manifests_are_checked_against_the_crd_before_any_image_is_pulled() {
        use crate::test_registry::Unreachable;
        let dir = std::env::temp_dir().join(format!("manifests-typo-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        // The first document would be pulled (and fail): the second one's typo comes first.
        let pulled = wasm_plugin("oci://127.0.0.1:5000/wasm/auth-gate:0.1.0", "");
        let typo = wasm_plugin("x", "  pluginconfig: {a: 1}\n  priority: high\n")
            .replace("name: p,", "name: q,");
        std::fs::write(dir.join("plugins.yaml"), format!("{pulled}---\n{typo}")).unwrap();
        let down = resolver("crd", Box::new(Unreachable), false);
        let err = load_dir_with(&dir, &down).unwrap_err().0;
        assert_eq!(
            err,
            format!(
                "{}: WasmPlugin ns/q: spec.pluginconfig: unknown field (did you mean \
                 pluginConfig?); spec.priority: expected integer, got string \"high\"",
                dir.join("plugins.yaml").display()
            )
        );
        assert!(!down.cache.dir().exists(), "an image was pulled");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    fn wasm_plugin(url: &str, extra: &str) -> String {
        format!("apiVersion: extensions.istio.io/v1alpha1\nkind: WasmPlugin\nmetadata: {{name: p, namespace: ns}}\nspec:\n  url: {url}\n{extra}")
    }

    fn resolver(name: &str, registry: Box<dyn crate::Registry>, every: bool) -> ModuleResolver {
        let cache = std::env::temp_dir().join(format!("manifests-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&cache);
        ModuleResolver {
            pull_every_image: every,
            registry_override: None,
            cache: ModuleCache::new(cache),
            registry,
        }
    }

    #[test]
    fn loopback_images_are_pulled_and_others_map_to_dist() {
        use crate::test_registry::{module, FakeRegistry};
        let code = module(b"pulled");
        let image = crate::build_image(&code, crate::Variant::Compat).unwrap();
        let digest = image.digest();
        let registry = || {
            Box::new(FakeRegistry {
                image: image.clone(),
                pulls: Default::default(),
            })
        };
        let local = resolver("loopback", registry(), false);
        let pinned = format!("  sha256: {}\n", digest.trim_start_matches("sha256:"));
        let pulled = parse_with(
            &wasm_plugin("oci://127.0.0.1:5000/wasm/path-allowlist:0.1.0", &pinned),
            &local,
        )
        .unwrap();
        assert_eq!(pulled[0].plugin.fetch_failure, None);
        assert_eq!(std::fs::read(&pulled[0].plugin.module).unwrap(), code);
        let remote = parse_with(
            &wasm_plugin("oci://ghcr.io/x/path-allowlist:0.1.0", ""),
            &local,
        )
        .unwrap();
        assert!(remote[0]
            .plugin
            .module
            .ends_with("dist/path-allowlist.wasm"));

        let every = resolver("every", registry(), true);
        let pulled = parse_with(
            &wasm_plugin("oci://ghcr.io/x/path-allowlist:0.1.0", ""),
            &every,
        )
        .unwrap();
        assert_eq!(std::fs::read(&pulled[0].plugin.module).unwrap(), code);

        let elsewhere = ModuleResolver {
            registry_override: Some("127.0.0.1:5000/mirror".to_string()),
            ..resolver("override", registry(), false)
        };
        let pulled = parse_with(
            &wasm_plugin("oci://ghcr.io/x/path-allowlist:0.1.0", &pinned),
            &elsewhere,
        )
        .unwrap();
        assert_eq!(std::fs::read(&pulled[0].plugin.module).unwrap(), code);
        for resolver in [local, every, elsewhere] {
            std::fs::remove_dir_all(resolver.cache.dir()).unwrap();
        }
    }

    #[test]
    fn a_failed_fetch_keeps_the_plugin_as_its_fail_strategy_stand_in() {
        use crate::test_registry::Unreachable;
        let down = resolver("down", Box::new(Unreachable), false);
        let url = "oci://127.0.0.1:5000/wasm/auth-gate:0.1.0";
        for (strategy, stand_in) in [
            ("FAIL_CLOSE", harness_runner::StandIn::DenyAll),
            ("FAIL_OPEN", harness_runner::StandIn::AllowAll),
            ("FAIL_RELOAD", harness_runner::StandIn::DenyAll),
        ] {
            let plugins = parse_with(
                &wasm_plugin(url, &format!("  failStrategy: {strategy}\n")),
                &down,
            )
            .unwrap();
            let plugin = &plugins[0].plugin;
            let why = plugin.fetch_failure.as_deref().unwrap();
            assert!(why.contains("connection refused"), "{why}");
            assert_eq!(plugin.fail_strategy.stand_in(), stand_in);
        }
        let _ = std::fs::remove_dir_all(down.cache.dir());
    }
}
