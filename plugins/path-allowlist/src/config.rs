//! The `pluginConfig` this plugin accepts: the `spec` of an Istio `AuthorizationPolicy` limited
//! to `action` ALLOW/DENY and `rules[].to[].operation`, plus three fields of its own.

use crate::policy::{Action, Policy};
use plugin_common::config::ConfigError;
use plugin_common::istio::{OperationMatcher, PathNormalization, To};
use serde::de::{Deserializer, Error as _};
use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[cfg_attr(not(target_arch = "wasm32"), derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Config {
    /// `ALLOW` (default): only requests matching a rule pass. `DENY`: requests matching a rule
    /// are refused. `CUSTOM` and `AUDIT` belong to auth-gate.
    #[serde(default)]
    pub action: Action,
    /// Istio's rules; only `to` is supported. ALLOW without rules allows nothing, DENY without
    /// rules denies nothing, as in Istio.
    #[serde(default)]
    pub rules: Vec<Rule>,
    /// How paths are normalized before matching (Istio's mesh-wide setting, here per plugin).
    #[serde(default)]
    pub path_normalization: PathNormalization,
    /// Status of the denial (body `RBAC: access denied`), 400-599; default 403.
    #[serde(default = "default_deny_status")]
    #[cfg_attr(not(target_arch = "wasm32"), schemars(range(min = 400, max = 599)))]
    pub deny_status: u16,
    /// Log and count what would be refused, but let every request through unchanged.
    #[serde(default)]
    pub dry_run: bool,
    /// Refuse (400) paths with a raw `;` (path parameters), which Tomcat and Spring strip before
    /// routing: `/admin;x` and `/;x/admin` then cannot slip past a DENY rule on `/admin`.
    #[serde(default)]
    pub strict_paths: bool,
    // The Istio fields below exist only to be refused with a useful message: deserializing
    // their types always fails, so they are `None` in every accepted configuration.
    #[serde(default, rename = "selector")]
    #[cfg_attr(not(target_arch = "wasm32"), schemars(skip))]
    pub _selector: Option<WorkloadSelection>,
    #[serde(default, rename = "targetRef")]
    #[cfg_attr(not(target_arch = "wasm32"), schemars(skip))]
    pub _target_ref: Option<WorkloadSelection>,
    #[serde(default, rename = "targetRefs")]
    #[cfg_attr(not(target_arch = "wasm32"), schemars(skip))]
    pub _target_refs: Option<WorkloadSelection>,
    #[serde(default, rename = "provider")]
    #[cfg_attr(not(target_arch = "wasm32"), schemars(skip))]
    pub _provider: Option<AuthGateOnly>,
}

/// One Istio rule: only `to` is supported.
#[derive(Debug, Deserialize)]
#[cfg_attr(not(target_arch = "wasm32"), derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Rule {
    /// Operations, ORed; a rule without `to` matches every request.
    #[serde(default)]
    pub to: Vec<To>,
    // Refused with a pointer to auth-gate (see `AuthGateOnly`).
    #[serde(default, rename = "from")]
    #[cfg_attr(not(target_arch = "wasm32"), schemars(skip))]
    pub _from: Option<AuthGateOnly>,
    #[serde(default, rename = "when")]
    #[cfg_attr(not(target_arch = "wasm32"), schemars(skip))]
    pub _when: Option<AuthGateOnly>,
}

fn default_deny_status() -> u16 {
    403
}

/// An `AuthorizationPolicy` field about who sends the request; any value is refused.
#[derive(Debug)]
pub struct AuthGateOnly;

impl<'de> Deserialize<'de> for AuthGateOnly {
    fn deserialize<D: Deserializer<'de>>(_: D) -> Result<Self, D::Error> {
        Err(D::Error::custom(
            "not supported by path-allowlist, which matches `to.operation` only; the auth-gate plugin handles it",
        ))
    }
}

/// `selector` / `targetRef(s)` of a policy; any value is refused.
#[derive(Debug)]
pub struct WorkloadSelection;

impl<'de> Deserialize<'de> for WorkloadSelection {
    fn deserialize<D: Deserializer<'de>>(_: D) -> Result<Self, D::Error> {
        Err(D::Error::custom(
            "not supported in pluginConfig: select workloads with the WasmPlugin's own `selector` or `targetRefs` (auth-gate handles the rest of AuthorizationPolicy)",
        ))
    }
}

pub fn compile(config: Config) -> Result<Policy, ConfigError> {
    if !(400..=599).contains(&config.deny_status) {
        return Err(ConfigError::new(
            "denyStatus",
            format!(
                "{} is not an HTTP error status (400-599)",
                config.deny_status
            ),
        ));
    }
    let matcher = OperationMatcher::compile(
        config.rules.iter().map(|r| r.to.as_slice()),
        "rules",
        config.path_normalization,
    )?;
    if config.action == Action::Allow && config.rules.is_empty() {
        log::warn!("path-allowlist: ALLOW policy without rules: every request is denied");
    }
    Ok(Policy {
        action: config.action,
        matcher,
        normalization: config.path_normalization,
        deny_status: u32::from(config.deny_status),
        dry_run: config.dry_run,
        strict_paths: config.strict_paths,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use plugin_common::config::parse;

    fn load(json: &str) -> Result<Policy, ConfigError> {
        parse::<Config>(json.as_bytes()).and_then(compile)
    }

    #[test]
    fn defaults() {
        let policy = load("").unwrap();
        assert_eq!(policy.action, Action::Allow);
        assert_eq!(policy.deny_status, 403);
        assert!(!policy.dry_run);
        assert!(!policy.strict_paths);
        assert_eq!(policy.normalization, PathNormalization::MergeSlashes);
    }

    #[test]
    fn full_configuration() {
        let policy = load(
            r#"{"action":"DENY","rules":[{"to":[{"operation":{"paths":["/admin*"],"methods":["POST"]}}]}],
                "pathNormalization":"DECODE_AND_MERGE_SLASHES","denyStatus":404,"dryRun":true}"#,
        )
        .unwrap();
        assert_eq!(policy.action, Action::Deny);
        assert_eq!(policy.deny_status, 404);
        assert!(policy.dry_run);
        assert_eq!(
            policy.normalization,
            PathNormalization::DecodeAndMergeSlashes
        );
    }

    #[test]
    fn unsupported_istio_fields_name_the_field_and_auth_gate() {
        for (json, field) in [
            (
                r#"{"rules":[{"from":[{"source":{"namespaces":["x"]}}]}]}"#,
                "rules[0].from",
            ),
            (
                r#"{"rules":[{"to":[{"operation":{"paths":["/a"]}}],"when":[{"key":"request.headers[x]","values":["y"]}]}]}"#,
                "rules[0].when",
            ),
            (
                r#"{"action":"CUSTOM","provider":{"name":"oauth2-proxy"}}"#,
                "action",
            ),
            (r#"{"provider":{"name":"oauth2-proxy"}}"#, "provider"),
            (r#"{"action":"AUDIT"}"#, "action"),
            (r#"{"selector":{"matchLabels":{"app":"x"}}}"#, "selector"),
            (
                r#"{"targetRefs":[{"kind":"Gateway","name":"x"}]}"#,
                "targetRefs",
            ),
        ] {
            let err = load(json).unwrap_err();
            assert_eq!(err.field, field, "{json}");
            assert!(err.reason.contains("auth-gate"), "{json}: {}", err.reason);
        }
    }

    #[test]
    fn invalid_values_name_the_field() {
        for (json, field) in [
            (r#"{"action":"allow"}"#, "action"),
            (r#"{"denyStatus":200}"#, "denyStatus"),
            (r#"{"denyStatus":70000}"#, "denyStatus"),
            (r#"{"pathNormalization":"NONE"}"#, "pathNormalization"),
            (
                r#"{"rules":[{"to":[{"operation":{"paths":["/a","/b/{**}/{*}"]}}]}]}"#,
                "rules[0].to[0].operation.paths[1]",
            ),
            (
                r#"{"rules":[{"to":[{"operation":{"ports":["x"]}}]}]}"#,
                "rules[0].to[0].operation.ports[0]",
            ),
            (
                r#"{"rules":[{"to":[{"operation":{"pathz":["/a"]}}]}]}"#,
                "rules[0].to[0].operation.pathz",
            ),
            (r#"{"rules":[{"to":[{}]}]}"#, "rules[0].to[0]"),
            (
                r#"{"rules":[{"to":[{"operation":{"paths":["/a","/b","/a/../b"]}}]}]}"#,
                "rules[0].to[0].operation.paths[2]",
            ),
            (
                r#"{"rules":[{"to":[{"operation":{"notPaths":["/a//b"]}}]}]}"#,
                "rules[0].to[0].operation.notPaths[0]",
            ),
            (
                r#"{"rules":[{"to":[{"operation":{"paths":["/a/%2Fb"]}}]}],"pathNormalization":"DECODE_AND_MERGE_SLASHES"}"#,
                "rules[0].to[0].operation.paths[0]",
            ),
            (
                r#"{"rules":[{"to":[{"operation":{"paths":["*%3Aexplain"]}}]}]}"#,
                "rules[0].to[0].operation.paths[0]",
            ),
            (r#"{"strictPaths":"yes"}"#, "strictPaths"),
            (r#"{"dryrun":true}"#, "dryrun"),
        ] {
            let err = load(json).unwrap_err();
            assert_eq!(err.field, field, "{json}: {err}");
        }
    }

    #[cfg(not(target_arch = "wasm32"))]
    #[test]
    fn schema_file_is_current() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config.schema.json");
        plugin_common::schema::check_schema_file::<Config>(&path).unwrap();
    }

    /// Every `pluginConfig` example of the README is a valid configuration.
    #[cfg(not(target_arch = "wasm32"))]
    #[test]
    fn readme_examples_are_valid() {
        let examples = plugin_common::config::json_examples(include_str!("../README.md"));
        assert!(examples.len() >= 2, "README has no JSON examples");
        for example in examples {
            if let Err(err) = load(example) {
                panic!("README example is invalid: {err}\n{example}");
            }
        }
    }
}
