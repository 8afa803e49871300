//! The configuration validated once, by [`compile`], into the [`Policy`] the request path
//! evaluates.

use crate::config::{Action, Config, PolicySpec, Rule};
use crate::policy::{AuthorizationPolicy, Policy};
use plugin_kit::config::ConfigError;
use plugin_kit::istio::{OperationMatcher, PathNormalization};
use std::rc::Rc;

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
    let mode = config.path_normalization;
    let policies = match (config.policies, config.action, config.rules) {
        (Some(_), Some(_), _) => return Err(both_forms("action")),
        (Some(_), None, Some(_)) => return Err(both_forms("rules")),
        (Some(specs), None, None) => compile_policies(&specs, mode)?,
        (None, action, rules) => {
            let action = action.unwrap_or_default();
            let rules = rules.unwrap_or_default();
            warn_if_nothing_is_allowed([(action, rules.as_slice())]);
            // The top-level `dryRun` covers the whole plugin, this policy included.
            vec![AuthorizationPolicy {
                name: None,
                action,
                matcher: compile_rules(&rules, "rules", mode)?,
                dry_run: false,
            }]
        }
    };
    Ok(Policy {
        policies,
        normalization: mode,
        deny_status: u32::from(config.deny_status),
        dry_run: config.dry_run,
        strict_paths: config.strict_paths,
    })
}

fn both_forms(field: &str) -> ConfigError {
    ConfigError::new(
        field,
        "set together with `policies`: use either `policies` or `action`/`rules`",
    )
}

fn compile_rules(
    rules: &[Rule],
    field: &str,
    mode: PathNormalization,
) -> Result<OperationMatcher, ConfigError> {
    OperationMatcher::compile(rules.iter().map(|r| r.to.as_slice()), field, mode)
}

fn compile_policies(
    specs: &[PolicySpec],
    mode: PathNormalization,
) -> Result<Vec<AuthorizationPolicy>, ConfigError> {
    if specs.is_empty() {
        log::warn!("path-allowlist: `policies` is empty: every well-formed request is allowed");
    }
    warn_if_nothing_is_allowed(
        specs
            .iter()
            .filter(|spec| !spec.dry_run)
            .map(|spec| (spec.action, spec.rules.as_slice())),
    );
    let mut compiled: Vec<AuthorizationPolicy> = Vec::with_capacity(specs.len());
    for (i, spec) in specs.iter().enumerate() {
        let field = format!("policies[{i}]");
        let name = match &spec.name {
            Some(name) if name.is_empty() => {
                return Err(ConfigError::new(
                    format!("{field}.name"),
                    "must not be empty",
                ))
            }
            Some(name) => name.clone(),
            None => field.clone(),
        };
        // Log lines name the policy that refused: two policies of one name would be ambiguous.
        if let Some(other) = compiled
            .iter()
            .position(|p| p.name.as_deref() == Some(name.as_str()))
        {
            return Err(ConfigError::new(
                format!("{field}.name"),
                format!("`{name}` already names policies[{other}]"),
            ));
        }
        compiled.push(AuthorizationPolicy {
            name: Some(Rc::from(name)),
            action: spec.action,
            matcher: compile_rules(&spec.rules, &format!("{field}.rules"), mode)?,
            dry_run: spec.dry_run,
        });
    }
    Ok(compiled)
}

/// Enforced ALLOW policies none of which has a rule deny every request (Istio's "allow
/// nothing"): legitimate next to other policies, rarely meant as a whole configuration.
fn warn_if_nothing_is_allowed<'a>(enforced: impl IntoIterator<Item = (Action, &'a [Rule])>) {
    let mut allow_rules = enforced
        .into_iter()
        .filter(|(action, _)| *action == Action::Allow)
        .map(|(_, rules)| rules)
        .peekable();
    if allow_rules.peek().is_some() && allow_rules.all(<[Rule]>::is_empty) {
        log::warn!("path-allowlist: no ALLOW policy has a rule: every request is denied");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use plugin_kit::config::parse;
    #[cfg(all(target_arch = "wasm32", target_os = "unknown"))]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    fn load(json: &str) -> Result<Policy, ConfigError> {
        parse::<Config>(json.as_bytes()).and_then(compile)
    }

    #[test]
    fn defaults() {
        let policy = load("").unwrap();
        let [only] = policy.policies.as_slice() else {
            panic!("{:?}", policy.policies)
        };
        assert_eq!(
            (only.action, &only.name, only.dry_run),
            (Action::Allow, &None, false)
        );
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
        assert_eq!(policy.policies[0].action, Action::Deny);
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
        ] {
            let err = load(json).unwrap_err();
            assert_eq!(err.field, field, "{json}");
            assert!(err.reason.contains("auth-gate"), "{json}: {}", err.reason);
        }
    }

    /// Neither plugin selects workloads: the WasmPlugin does, at the top level and in `policies`.
    #[test]
    fn workload_selection_names_the_field_and_the_wasmplugin() {
        for (json, field) in [
            (r#"{"selector":{"matchLabels":{"app":"x"}}}"#, "selector"),
            (
                r#"{"targetRefs":[{"kind":"Gateway","name":"x"}]}"#,
                "targetRefs",
            ),
            (
                r#"{"policies":[{"name":"p","targetRef":{"kind":"Gateway","name":"x"}}]}"#,
                "policies[0].targetRef",
            ),
        ] {
            let err = load(json).unwrap_err();
            assert_eq!(err.field, field, "{json}");
            assert!(
                err.reason.contains("WasmPlugin's own"),
                "{json}: {}",
                err.reason
            );
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

    #[test]
    fn policies_form() {
        let policy = load(
            r#"{"policies":[
                {"name":"models","rules":[{"to":[{"operation":{"paths":["/v1/models/*"]}}]}]},
                {"action":"DENY","dryRun":true,"rules":[{"to":[{"operation":{"paths":["/admin*"]}}]}]}],
                "pathNormalization":"BASE","denyStatus":404,"strictPaths":true}"#,
        )
        .unwrap();
        let summary: Vec<(Option<&str>, Action, bool)> = policy
            .policies
            .iter()
            .map(|p| (p.name.as_deref(), p.action, p.dry_run))
            .collect();
        assert_eq!(
            summary,
            [
                (Some("models"), Action::Allow, false),
                (Some("policies[1]"), Action::Deny, true)
            ]
        );
        assert_eq!(policy.normalization, PathNormalization::Base);
        assert_eq!(policy.deny_status, 404);
        assert!(policy.strict_paths && !policy.dry_run);
        assert!(load(r#"{"policies":[],"dryRun":true}"#).unwrap().dry_run);
    }

    #[test]
    fn both_forms_together_are_refused() {
        for (json, field) in [
            (r#"{"action":"ALLOW","policies":[]}"#, "action"),
            (r#"{"rules":[],"policies":[{"name":"a"}]}"#, "rules"),
            (
                r#"{"action":"DENY","rules":[{"to":[{"operation":{"paths":["/a"]}}]}],"policies":[]}"#,
                "action",
            ),
        ] {
            let err = load(json).unwrap_err();
            assert_eq!(err.field, field, "{json}");
            assert!(
                err.reason
                    .contains("use either `policies` or `action`/`rules`"),
                "{json}: {}",
                err.reason
            );
        }
    }

    #[test]
    fn policy_errors_name_the_policy() {
        for (json, field, reason) in [
            (
                r#"{"policies":[{"name":"a"},{"rules":[{"to":[{"operation":{"paths":["/a","/b","/a/../b"]}}]}]}]}"#,
                "policies[1].rules[0].to[0].operation.paths[2]",
                "can never match",
            ),
            (
                r#"{"policies":[{"action":"CUSTOM"}]}"#,
                "policies[0].action",
                "auth-gate",
            ),
            (
                r#"{"policies":[{"rules":[{"from":[{"source":{"principals":["x"]}}]}]}]}"#,
                "policies[0].rules[0].from",
                "auth-gate",
            ),
            (
                r#"{"policies":[{"selector":{"matchLabels":{"app":"x"}}}]}"#,
                "policies[0].selector",
                "WasmPlugin",
            ),
            (
                r#"{"policies":[{"provider":{"name":"x"}}]}"#,
                "policies[0].provider",
                "auth-gate",
            ),
            (
                r#"{"policies":[{"dryrun":true}]}"#,
                "policies[0].dryrun",
                "unknown field",
            ),
            (
                r#"{"policies":[{"name":""}]}"#,
                "policies[0].name",
                "must not be empty",
            ),
            (
                r#"{"policies":[{"name":"a"},{"name":"b"},{"name":"a"}]}"#,
                "policies[2].name",
                "`a` already names policies[0]",
            ),
            (
                r#"{"policies":{"name":"a"}}"#,
                "policies",
                "expected a sequence",
            ),
        ] {
            let err = load(json).unwrap_err();
            assert_eq!(err.field, field, "{json}: {err}");
            assert!(err.reason.contains(reason), "{json}: {err}");
        }
    }

    #[cfg(not(target_arch = "wasm32"))]
    #[test]
    fn schema_file_is_current() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config.schema.json");
        plugin_kit::schema::check_schema_file::<Config>(&path).unwrap();
    }

    /// Every `pluginConfig` example of the README is a valid configuration.
    #[cfg(not(target_arch = "wasm32"))]
    #[test]
    fn readme_examples_are_valid() {
        let examples = plugin_kit::config::json_examples(include_str!("../README.md"));
        assert!(examples.len() >= 2, "README has no JSON examples");
        for example in examples {
            if let Err(err) = load(example) {
                panic!("README example is invalid: {err}\n{example}");
            }
        }
    }
}
