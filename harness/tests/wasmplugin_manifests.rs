//! The manifests in `wasmplugin-manifests/` are what a cluster user applies, so they are checked
//! as the API server and the plugins would check them: every Istio resource's `spec` against
//! Istio's CRD schema (`tests/istio-crds/`, from Istio 1.31.0-rc.0), every `pluginConfig`
//! against its plugin's `config.schema.json`, every folder's `kustomization.yaml` lists all its
//! manifests, the rate limits of the upstream ratelimit service and of the local-ratelimit
//! plugin are one source, and the sections of the bundle (`gateway-bundle/`) are the four
//! configurations of `gateway/`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use serde::Deserialize;
use serde_json::Value;
use std::path::{Path, PathBuf};

const FOLDERS: [&str; 4] = ["gateway", "gateway-bundle", "sidecar", "ratelimit"];

/// The folders a gateway or sidecar Envoy runs as they are (ratelimit/ is the global service).
const PLUGIN_FOLDERS: [&str; 3] = ["gateway", "gateway-bundle", "sidecar"];

fn manifests_dir() -> PathBuf {
    harness_runner::repo_root().join("wasmplugin-manifests")
}

fn crd_schemas_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/istio-crds")
}

/// Every YAML document of `file`, as JSON values.
fn documents(file: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(file).unwrap();
    serde_yaml::Deserializer::from_str(&text)
        .map(|doc| serde_yaml::Value::deserialize(doc).unwrap())
        .filter(|doc| !doc.is_null())
        .map(|doc| serde_json::to_value(doc).unwrap())
        .collect()
}

/// `(file, document)` for every manifest of a folder (not its kustomization.yaml).
fn manifests(folder: &str) -> Vec<(PathBuf, Value)> {
    manifest_files(folder)
        .into_iter()
        .flat_map(|file| {
            documents(&file)
                .into_iter()
                .map(move |doc| (file.clone(), doc))
        })
        .collect()
}

fn manifest_files(folder: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(manifests_dir().join(folder))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .filter(|p| !p.ends_with("kustomization.yaml"))
        .collect();
    files.sort();
    files
}

fn validator(schema_file: &Path) -> jsonschema::Validator {
    let schema: Value = serde_json::from_slice(&std::fs::read(schema_file).unwrap())
        .unwrap_or_else(|e| panic!("{}: {e}", schema_file.display()));
    jsonschema::validator_for(&schema).unwrap_or_else(|e| panic!("{}: {e}", schema_file.display()))
}

fn crd_validator(kind: &str) -> Option<jsonschema::Validator> {
    let file = match kind {
        "WasmPlugin" => "wasmplugin.schema.json",
        "EnvoyFilter" => "envoyfilter.schema.json",
        "AuthorizationPolicy" => "authorizationpolicy.schema.json",
        "RequestAuthentication" => "requestauthentication.schema.json",
        _ => return None,
    };
    Some(validator(&crd_schemas_dir().join(file)))
}

fn errors(validator: &jsonschema::Validator, instance: &Value) -> Vec<String> {
    validator
        .iter_errors(instance)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect()
}

#[test]
fn every_istio_resource_validates_against_its_crd_schema() {
    let mut checked = Vec::new();
    for folder in FOLDERS {
        for (file, doc) in manifests(folder) {
            let kind = doc["kind"].as_str().unwrap_or_default();
            let name = doc["metadata"]["name"].as_str().unwrap_or_default();
            assert!(
                !name.is_empty() && doc["apiVersion"].is_string(),
                "{}: a document without apiVersion or metadata.name",
                file.display()
            );
            if let Some(validator) = crd_validator(kind) {
                let problems = errors(&validator, &doc["spec"]);
                assert!(
                    problems.is_empty(),
                    "{} {kind} {name}: {problems:?}",
                    file.display()
                );
                // The harness's own check (`harness run`) accepts what the API server accepts.
                if let Err(e) = harness_runner::crd::check(&doc) {
                    panic!("{}: {e}", file.display());
                }
                checked.push(format!("{folder}/{kind}/{name}"));
            }
        }
    }
    for kind in ["WasmPlugin", "EnvoyFilter"] {
        assert!(
            checked.iter().any(|c| c.contains(&format!("/{kind}/"))),
            "no {kind} checked: {checked:?}"
        );
    }
}

#[test]
fn the_crd_schemas_reject_istios_invalid_examples() {
    // The validation above can fail: the reference's invalid manifests are refused.
    let invalid = crd_schemas_dir().join("examples/invalid");
    let mut rejected = 0;
    for entry in std::fs::read_dir(&invalid).unwrap() {
        let file = entry.unwrap().path();
        for doc in documents(&file) {
            let validator = crd_validator(doc["kind"].as_str().unwrap()).unwrap();
            assert!(
                !errors(&validator, &doc["spec"]).is_empty(),
                "{} was accepted",
                file.display()
            );
            assert!(
                harness_runner::crd::check(&doc).is_err(),
                "{} was accepted by harness_runner::crd",
                file.display()
            );
            rejected += 1;
        }
    }
    assert!(rejected > 0);
}

/// The policy files of `harness diff`'s tests are what users pass to `--istio`.
#[test]
fn the_istio_policy_files_validate_against_their_crd_schemas() {
    let dir = harness_runner::repo_root().join("tests/istio-policies");
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let file = entry.unwrap().path();
        for doc in documents(&file) {
            let kind = doc["kind"].as_str().unwrap_or_default();
            let problems = errors(&crd_validator(kind).unwrap(), &doc["spec"]);
            assert!(problems.is_empty(), "{}: {problems:?}", file.display());
            if let Err(e) = harness_runner::crd::check(&doc) {
                panic!("{}: {e}", file.display());
            }
            checked += 1;
        }
    }
    assert!(checked >= 4, "only {checked} resources checked");
}

/// The plugin an `oci://…/<plugin>:<tag>` url names.
fn plugin_of(url: &str) -> String {
    let last = url.rsplit('/').next().unwrap();
    last.split(['@', ':']).next().unwrap().to_string()
}

#[test]
fn every_plugin_config_validates_against_its_plugin_schema() {
    let mut checked = 0;
    for folder in FOLDERS {
        for (file, doc) in manifests(folder) {
            if doc["kind"] != "WasmPlugin" || doc["spec"].get("pluginConfig").is_none() {
                continue;
            }
            let plugin = plugin_of(doc["spec"]["url"].as_str().unwrap());
            let schema = harness_runner::repo_root()
                .join("plugins")
                .join(&plugin)
                .join("config.schema.json");
            let problems = errors(&validator(&schema), &doc["spec"]["pluginConfig"]);
            assert!(
                problems.is_empty(),
                "{}: pluginConfig of {plugin}: {problems:?}",
                file.display()
            );
            checked += 1;
        }
    }
    // The sidecar folder configures all four plugins.
    assert!(checked >= 4, "only {checked} pluginConfig checked");
}

#[test]
fn every_kustomization_lists_all_manifests_of_its_folder() {
    for folder in FOLDERS {
        let kustomization = manifests_dir().join(folder).join("kustomization.yaml");
        let doc = &documents(&kustomization)[0];
        assert_eq!(doc["kind"], "Kustomization", "{}", kustomization.display());
        let mut listed: Vec<String> = doc["resources"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r.as_str().unwrap().to_string())
            .collect();
        listed.sort();
        let mut present: Vec<String> = manifest_files(folder)
            .iter()
            .map(|f| f.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        present.sort();
        assert_eq!(listed, present, "{}", kustomization.display());
    }
}

#[test]
fn the_harness_reads_the_gateway_sidecar_and_bundle_plugins() {
    for folder in PLUGIN_FOLDERS {
        let plugins = harness_runner::manifests::load_dir(&manifests_dir().join(folder)).unwrap();
        let mut names: Vec<&str> = plugins.iter().map(|p| p.name.as_str()).collect();
        names.sort();
        let expected: &[&str] = match folder {
            "gateway-bundle" => &["model-gateway"],
            _ => &[
                "auth-gate",
                "emotion-stats",
                "local-ratelimit",
                "path-allowlist",
            ],
        };
        assert_eq!(names, expected, "{folder}");
        for plugin in &plugins {
            // The module the harness runs is the plugin the manifest is named after.
            assert_eq!(
                plugin.plugin.module.file_stem().and_then(|s| s.to_str()),
                Some(plugin.name.as_str()),
                "{folder}"
            );
        }
    }
}

/// The section of `model-gateway`'s `pluginConfig` that configures `plugin` (`localRatelimit`
/// for `local-ratelimit`).
fn section_of(plugin: &str) -> String {
    let mut words = plugin.split('-');
    let first = words.next().unwrap_or_default().to_string();
    words.fold(first, |mut name, word| {
        let mut chars = word.chars();
        if let Some(c) = chars.next() {
            name.extend(c.to_uppercase());
            name.push_str(chars.as_str());
        }
        name
    })
}

#[test]
fn the_bundles_sections_are_the_gateway_plugins_configs() {
    let bundle = manifests("gateway-bundle");
    assert_eq!(bundle.len(), 1, "one WasmPlugin in gateway-bundle/");
    let (file, bundle) = &bundle[0];
    let what = file.display();
    assert_eq!(
        plugin_of(bundle["spec"]["url"].as_str().unwrap()),
        "model-gateway"
    );
    let sections = bundle["spec"]["pluginConfig"].as_object().unwrap();
    let mut compared = Vec::new();
    for (gateway_file, doc) in manifests("gateway") {
        if doc["kind"] != "WasmPlugin" {
            continue;
        }
        let url = doc["spec"]["url"].as_str().unwrap();
        let plugin = plugin_of(url);
        let section = section_of(&plugin);
        assert_eq!(
            sections.get(&section),
            Some(&doc["spec"]["pluginConfig"]),
            "{what}: section {section} differs from the pluginConfig of {}",
            gateway_file.display()
        );
        // The same gateway pods, namespace and registry: only the plugin differs.
        assert_eq!(
            bundle["spec"]["selector"], doc["spec"]["selector"],
            "{what}"
        );
        assert_eq!(
            bundle["metadata"]["namespace"], doc["metadata"]["namespace"],
            "{what}"
        );
        assert_eq!(
            bundle["spec"]["url"].as_str().unwrap(),
            url.replace(&format!("/{plugin}:"), "/model-gateway:"),
            "{what}"
        );
        compared.push(section);
    }
    compared.sort();
    let mut present: Vec<String> = sections.keys().cloned().collect();
    present.sort();
    assert_eq!(
        present, compared,
        "{what}: a section without a plugin in gateway/, or the reverse"
    );
    assert_eq!(compared.len(), 4, "{compared:?}");
    // One failure domain, before every other filter of the chain.
    assert_eq!(bundle["spec"]["phase"], "AUTHN", "{what}");
    assert_eq!(bundle["spec"]["failStrategy"], "FAIL_CLOSE", "{what}");
}

#[test]
fn section_names_are_the_plugin_names_in_camel_case() {
    assert_eq!(section_of("local-ratelimit"), "localRatelimit");
    assert_eq!(section_of("auth-gate"), "authGate");
    assert_eq!(section_of("emotion-stats"), "emotionStats");
}

#[test]
fn local_and_global_rate_limits_are_one_source() {
    let config_map = manifests("ratelimit")
        .into_iter()
        .map(|(_, doc)| doc)
        .find(|doc| doc["kind"] == "ConfigMap" && doc["metadata"]["name"] == "ratelimit-config")
        .unwrap();
    let service_config: serde_yaml::Value =
        serde_yaml::from_str(config_map["data"]["config.yaml"].as_str().unwrap()).unwrap();
    let service_config = serde_json::to_value(service_config).unwrap();
    let actions_filter = manifests("ratelimit")
        .into_iter()
        .map(|(_, doc)| doc)
        .find(|doc| {
            doc["kind"] == "EnvoyFilter" && doc["metadata"]["name"] == "filter-ratelimit-svc"
        })
        .unwrap();
    let rate_limits = &actions_filter["spec"]["configPatches"][0]["patch"]["value"]["rate_limits"];
    let global_filter = manifests("ratelimit")
        .into_iter()
        .map(|(_, doc)| doc)
        .find(|doc| doc["kind"] == "EnvoyFilter" && doc["metadata"]["name"] == "filter-ratelimit")
        .unwrap();
    assert_eq!(
        global_filter["spec"]["configPatches"][0]["patch"]["value"]["typed_config"]["domain"],
        service_config["domain"]
    );

    let mut compared = Vec::new();
    for folder in PLUGIN_FOLDERS {
        for (file, doc) in manifests(folder) {
            if doc["kind"] != "WasmPlugin" {
                continue;
            }
            let config = match plugin_of(doc["spec"]["url"].as_str().unwrap()).as_str() {
                "local-ratelimit" => &doc["spec"]["pluginConfig"],
                "model-gateway" => &doc["spec"]["pluginConfig"]["localRatelimit"],
                _ => continue,
            };
            if config.is_null() {
                continue;
            }
            let what = file.display();
            assert_eq!(config["domain"], service_config["domain"], "{what}");
            assert_eq!(
                config["descriptors"], service_config["descriptors"],
                "{what}: descriptors differ from ratelimit/ratelimit-config.yaml"
            );
            assert_eq!(
                &config["rate_limits"], rate_limits,
                "{what}: rate_limits differ from ratelimit/envoyfilter-ratelimit-svc.yaml"
            );
            compared.push(folder);
        }
    }
    assert_eq!(compared, PLUGIN_FOLDERS, "compared: {compared:?}");
}

#[test]
fn envoy_accepts_the_gateway_sidecar_and_bundle_plugins_as_rendered() {
    // `envoy --mode validate` loads every module and runs its on_configure, so a pluginConfig
    // a plugin refuses fails here as it would make istio-proxy refuse the extension.
    let dir = std::env::temp_dir().join(format!("manifests-validate-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut refused = Vec::new();
    for folder in PLUGIN_FOLDERS {
        let plugins = harness_runner::manifests::to_plugins(
            harness_runner::manifests::load_dir(&manifests_dir().join(folder)).unwrap(),
        );
        let config = harness_runner::EnvoyConfig {
            plugins,
            upstream: "127.0.0.1:8080".parse().unwrap(),
            ..Default::default()
        };
        let bootstrap = dir.join(format!("{folder}.json"));
        std::fs::write(
            &bootstrap,
            serde_json::to_string(&harness_runner::render::bootstrap(&config)).unwrap(),
        )
        .unwrap();
        let output = std::process::Command::new(harness_runner::envoy::envoy_binary())
            .args(["--mode", "validate", "-c"])
            .arg(&bootstrap)
            .output()
            .unwrap();
        if !output.status.success() {
            let log = String::from_utf8_lossy(&output.stderr).into_owned();
            let why: Vec<&str> = log
                .lines()
                .filter(|l| l.contains("[error]") || l.contains("[critical]"))
                .collect();
            refused.push(format!("{folder}:\n{}", why.join("\n")));
        }
    }
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(
        refused.is_empty(),
        "envoy --mode validate refused the plugins of\n{}",
        refused.join("\n")
    );
}

/// The `WasmPlugin` examples in the plugins' READMEs are manifests too: users paste them.
#[test]
fn every_readme_wasmplugin_example_validates() {
    let wasmplugin = crd_validator("WasmPlugin").unwrap();
    let mut checked = Vec::new();
    for plugin in harness_runner::PLUGINS {
        let dir = harness_runner::repo_root().join("plugins").join(plugin);
        let readme = std::fs::read_to_string(dir.join("README.md")).unwrap();
        let plugin_schema = validator(&dir.join("config.schema.json"));
        for block in readme
            .split("```yaml")
            .skip(1)
            .filter_map(|b| b.split("```").next())
        {
            for document in serde_yaml::Deserializer::from_str(block) {
                let doc: Value =
                    serde_json::to_value(serde_yaml::Value::deserialize(document).unwrap())
                        .unwrap();
                if doc["kind"] != "WasmPlugin" {
                    continue;
                }
                let problems = errors(&wasmplugin, &doc["spec"]);
                assert!(
                    problems.is_empty(),
                    "{plugin} README: WasmPlugin spec: {problems:?}"
                );
                if let Some(config) = doc["spec"].get("pluginConfig") {
                    let problems = errors(&plugin_schema, config);
                    assert!(
                        problems.is_empty(),
                        "{plugin} README: pluginConfig: {problems:?}"
                    );
                }
                checked.push(plugin);
            }
        }
    }
    for plugin in [
        "emotion-stats",
        "local-ratelimit",
        "model-gateway",
        "model-gateway-request-only",
    ] {
        assert!(checked.contains(&plugin), "no example in {plugin}'s README");
    }
}
