//! The configuration validated once, by [`compile`], so the request path only looks things up:
//! the descriptor tree, the route's actions, the settings.

use crate::actions::{self, RateLimitPolicy};
use crate::bucket::Rate;
use crate::config::{Config, XRateLimitHeaders, MAX_TABLE_SLOTS};
use crate::matcher::{DescriptorTree, Limit, LimitKind};
use crate::store::{self, Fingerprint};
use plugin_kit::config::ConfigError;

/// The configuration once validated, ready for the request path.
#[derive(Debug)]
pub struct Compiled {
    pub domain: String,
    pub tree: DescriptorTree,
    /// Per limit of `tree`, its buckets' identities (see [`limit_buckets`]).
    pub buckets: Vec<Option<LimitBucket>>,
    pub policies: Vec<RateLimitPolicy>,
    pub settings: Settings,
    /// Accepted, but something can never limit: one log line each (see [`check_reachability`]).
    pub warnings: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub shadow_mode: bool,
    pub failure_mode_deny: bool,
    pub max_keys: u32,
    pub x_ratelimit_headers: bool,
    pub status: u32,
    pub body: String,
}

pub fn compile(config: Config) -> Result<Compiled, ConfigError> {
    if config.domain.is_empty() {
        return Err(ConfigError::new("domain", "must not be empty"));
    }
    if config.max_keys == 0 || config.max_keys > MAX_TABLE_SLOTS {
        return Err(ConfigError::new(
            "max_keys",
            format!("must be between 1 and {MAX_TABLE_SLOTS}"),
        ));
    }
    if !(400..=599).contains(&config.rate_limited_status) {
        return Err(ConfigError::new(
            "rate_limited_status",
            "must be an HTTP error status (400-599)",
        ));
    }
    let tree = DescriptorTree::build(&config.descriptors)?;
    let policies = config
        .rate_limits
        .iter()
        .enumerate()
        .map(|(i, entry)| actions::compile_policy(&format!("rate_limits[{i}]"), entry))
        .collect::<Result<Vec<_>, _>>()?;
    let warnings = check_reachability(&tree, config.descriptors.is_empty(), &policies)?;
    Ok(Compiled {
        buckets: limit_buckets(&config.domain, &tree),
        domain: config.domain,
        tree,
        policies,
        settings: Settings {
            shadow_mode: config.shadow_mode,
            failure_mode_deny: config.failure_mode_deny,
            max_keys: config.max_keys,
            x_ratelimit_headers: config.enable_x_ratelimit_headers
                == XRateLimitHeaders::DraftVersion03,
            status: u32::from(config.rate_limited_status),
            body: config.rate_limited_body,
        },
        warnings,
    })
}

/// Refuses what can never limit anything, which would otherwise admit every request without a
/// word: `rate_limits` with no `descriptors`, and a `rate_limits` entry whose descriptor reaches
/// no limit of the tree, whatever the request. Warns (the upstream service's own `config.yaml`
/// has no `rate_limits`, so a tree alone must load) when `rate_limits` is empty, and for each
/// limit no entry reaches. Static: a value taken from the request may be any value.
fn check_reachability(
    tree: &DescriptorTree,
    no_descriptors: bool,
    policies: &[RateLimitPolicy],
) -> Result<Vec<String>, ConfigError> {
    let mut warnings = Vec::new();
    let limits = tree.limits();
    if policies.is_empty() {
        if !limits.is_empty() {
            warnings.push(
                "rate_limits is empty: no request gets a descriptor, so no limit of descriptors \
                 ever applies"
                    .to_string(),
            );
        }
        return Ok(warnings);
    }
    if limits.is_empty() {
        let reason = if no_descriptors {
            "is empty"
        } else {
            "has no rate_limit"
        };
        return Err(ConfigError::new(
            "descriptors",
            format!("{reason}: no descriptor of rate_limits can ever be limited"),
        ));
    }
    let mut reached = vec![false; limits.len()];
    // An entry with too many skippable actions to list is assumed to reach every limit.
    let mut reached_all = false;
    for (i, policy) in policies.iter().enumerate() {
        let Some(shapes) = policy.descriptor_shapes() else {
            reached_all = true;
            continue;
        };
        let mut any = false;
        for shape in &shapes {
            for id in tree.reachable_limits(shape) {
                any = true;
                if let Some(flag) = reached.get_mut(id) {
                    *flag = true;
                }
            }
        }
        if !any {
            let shorter = if shapes.len() > 1 {
                ", nor does any form without its skip_if_absent entries"
            } else {
                ""
            };
            let described = shapes.first().map(|s| describe(s)).unwrap_or_default();
            return Err(ConfigError::new(
                format!("rate_limits[{i}]"),
                format!("its descriptor ({described}) matches no limit of descriptors{shorter}"),
            ));
        }
    }
    if !reached_all {
        for (limit, _) in limits.iter().zip(&reached).filter(|(_, r)| !**r) {
            warnings.push(format!(
                "descriptors limit `{}` is reached by no rate_limits entry",
                limit.full_key
            ));
        }
    }
    Ok(warnings)
}

/// `path, generic_key="all"`: the keys in order, with the values the configuration fixes.
fn describe(shape: &[(&str, Option<&str>)]) -> String {
    shape
        .iter()
        .map(|(key, value)| match value {
            Some(value) => format!("{key}={value:?}"),
            None => key.to_string(),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// What a limit's buckets need on the request path, computed when the configuration is accepted
/// (each identity is a SHA-256).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitBucket {
    pub(crate) rate: Rate,
    pub(crate) rule: Fingerprint,
    /// The one bucket of a limit without per-value buckets.
    pub(crate) fixed: Option<Fingerprint>,
}

/// One entry per limit of `tree`, in its order; `None` for a limit without a rate
/// (`unlimited`).
pub fn limit_buckets(domain: &str, tree: &DescriptorTree) -> Vec<Option<LimitBucket>> {
    tree.limits()
        .iter()
        .map(|limit| {
            let rate = rate_of(limit)?;
            let rule = rule_identity(domain, limit, rate);
            let fixed = limit
                .static_values
                .as_ref()
                .map(|values| store::bucket_identity(&rule, values));
            Some(LimitBucket { rate, rule, fixed })
        })
        .collect()
}

fn rule_identity(domain: &str, limit: &Limit, rate: Rate) -> Fingerprint {
    store::fingerprint(&[
        domain.as_bytes(),
        limit.full_key.as_bytes(),
        &rate.capacity.to_le_bytes(),
        &rate.period_ns.to_le_bytes(),
    ])
}

fn rate_of(limit: &Limit) -> Option<Rate> {
    match limit.kind {
        LimitKind::Bucket {
            requests_per_unit,
            unit,
        } => Some(Rate::new(requests_per_unit, unit.seconds())),
        LimitKind::Unlimited => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use plugin_kit::config::parse;
    #[cfg(all(target_arch = "wasm32", target_os = "unknown"))]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    fn load(text: &str) -> Result<Compiled, ConfigError> {
        parse::<Config>(text.as_bytes()).and_then(compile)
    }

    /// The BERT emotion walkthrough's `config.yaml` and EnvoyFilter `rate_limits`, pasted as
    /// `pluginConfig`.
    pub const WALKTHROUGH_PLUGIN_CONFIG: &str = r#"{
        "domain": "ratelimit",
        "descriptors": [
            {"key": "path", "value": "/v1/models/bert-emotion-model:predict",
             "rate_limit": {"unit": "minute", "requests_per_unit": 2},
             "descriptors": [{"key": "x-api-key", "rate_limit": {"unit": "minute", "requests_per_unit": 5}}]},
            {"key": "path", "rate_limit": {"unit": "minute", "requests_per_unit": 10}}
        ],
        "rate_limits": [
            {"actions": [{"request_headers": {"header_name": ":path", "descriptor_key": "path"}},
                         {"request_headers": {"header_name": "x-api-key", "descriptor_key": "x-api-key"}}]},
            {"actions": [{"request_headers": {"header_name": ":path", "descriptor_key": "path"}}]}
        ]
    }"#;

    #[test]
    fn walkthrough_config_loads_with_defaults() {
        let compiled = load(WALKTHROUGH_PLUGIN_CONFIG).unwrap();
        assert_eq!(compiled.domain, "ratelimit");
        assert_eq!(compiled.tree.limits().len(), 3);
        assert_eq!(compiled.policies.len(), 2);
        assert!(compiled.warnings.is_empty(), "{:?}", compiled.warnings);
        assert_eq!(
            compiled.settings,
            Settings {
                shadow_mode: false,
                failure_mode_deny: false,
                max_keys: 10_000,
                x_ratelimit_headers: true,
                status: 429,
                body: String::new(),
            }
        );
    }

    #[test]
    fn settings_are_validated() {
        assert!(load("{}")
            .unwrap_err()
            .reason
            .contains("missing field `domain`"));
        assert_eq!(load(r#"{"domain":""}"#).unwrap_err().field, "domain");
        assert_eq!(
            load(r#"{"domain":"d","max_keys":0}"#).unwrap_err().field,
            "max_keys"
        );
        assert_eq!(
            load(r#"{"domain":"d","max_keys":2000000}"#)
                .unwrap_err()
                .field,
            "max_keys"
        );
        assert_eq!(
            load(r#"{"domain":"d","rate_limited_status":200}"#)
                .unwrap_err()
                .field,
            "rate_limited_status"
        );
        let err = load(r#"{"domain":"d","enable_x_ratelimit_headers":"ON"}"#).unwrap_err();
        assert_eq!(err.field, "enable_x_ratelimit_headers");
        let err = load(r#"{"domain":"d","descriptors":[{"key":"a","quota":true}]}"#).unwrap_err();
        assert_eq!(err.field, "descriptors[0].quota");
        assert!(
            load(r#"{"domain":"d","descriptors":[{"key":"a","metadata":{"any":["thing"]}}]}"#)
                .is_ok()
        );
        let compiled = load(
            r#"{"domain":"d","enable_x_ratelimit_headers":"OFF","shadow_mode":true,"failure_mode_deny":true,"max_keys":5}"#,
        )
        .unwrap();
        assert!(!compiled.settings.x_ratelimit_headers);
        assert!(compiled.settings.shadow_mode && compiled.settings.failure_mode_deny);
        assert_eq!(compiled.settings.max_keys, 5);
    }

    #[test]
    fn broken_configurations_are_refused() {
        assert!(load("not json").is_err());
        assert!(load(r#"{"domain":"d","descriptors":{}}"#).is_err());
        assert!(load(r#"{"domain":"d","descriptors":[{"key":"a","rate_limit":{"unit":"minute","requests_per_unit":-1}}]}"#).is_err());
        assert!(load(r#"{"domain":"d","descriptors":[{"key":"a","rate_limit":{"unit":"minute","requests_per_unit":4294967296}}]}"#).is_err());
        // Deep nesting is refused by the JSON parser's recursion limit, not a stack overflow.
        let deep = format!(
            r#"{{"domain":"d","descriptors":{}[]{}}}"#,
            r#"[{"key":"a","descriptors":"#.repeat(200),
            "}]".repeat(200)
        );
        assert!(load(&deep).is_err());
    }

    /// The upstream service's own `config.yaml` files (its tests and README examples), as
    /// they are: every file it accepts loads, every file it refuses is refused.
    #[cfg(not(target_arch = "wasm32"))]
    #[test]
    fn upstream_config_files_load_as_upstream_loads_them() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/upstream-configs");
        let load_yaml = |path: &std::path::Path| -> Result<Compiled, String> {
            let text = std::fs::read_to_string(path).unwrap();
            let value: serde_json::Value =
                serde_yaml::from_str(&text).map_err(|e| format!("yaml: {e}"))?;
            load(&value.to_string()).map_err(|e| e.to_string())
        };
        let mut seen = 0;
        for (verdict, accepted) in [("accepted", true), ("refused", false)] {
            for entry in std::fs::read_dir(dir.join(verdict)).unwrap() {
                let path = entry.unwrap().path();
                let outcome = load_yaml(&path);
                // No file has `rate_limits`: each one with a limit is accepted with a warning.
                if let Ok(compiled) = &outcome {
                    let warned = usize::from(!compiled.tree.limits().is_empty());
                    assert_eq!(compiled.warnings.len(), warned, "{}", path.display());
                }
                assert_eq!(
                    outcome.is_ok(),
                    accepted,
                    "{}: {:?}",
                    path.display(),
                    outcome.err()
                );
                seen += 1;
            }
        }
        assert!(seen >= 40, "only {seen} upstream files");
    }

    /// `value: 200` in a YAML `pluginConfig` arrives as a number; upstream reads it as text.
    #[test]
    fn scalar_values_are_read_as_their_text() {
        let compiled = load(
            r#"{"domain":"d","descriptors":[
                {"key":"status","value":200,"rate_limit":{"unit":"minute","requests_per_unit":1}},
                {"key":"beta","value":true,"rate_limit":{"unit":"minute","requests_per_unit":1,"name":7}},
                {"key":"ratio","value":1.5,"rate_limit":{"unit":"minute","requests_per_unit":1}},
                {"key":404,"value":null,"rate_limit":{"unit":"minute","requests_per_unit":1}}],
              "rate_limits":[{"actions":[{"generic_key":{"descriptor_key":"status","descriptor_value":"200"}}]},
                             {"actions":[{"generic_key":{"descriptor_key":"beta","descriptor_value":"true"}}]},
                             {"actions":[{"generic_key":{"descriptor_key":"ratio","descriptor_value":"1.5"}}]},
                             {"actions":[{"request_headers":{"header_name":"x","descriptor_key":"404"}}]}]}"#,
        )
        .unwrap();
        let keys: Vec<&str> = compiled
            .tree
            .limits()
            .iter()
            .map(|l| l.full_key.as_str())
            .collect();
        assert_eq!(keys, ["status_200", "beta_true", "ratio_1.5", "404"]);
        assert_eq!(compiled.tree.limits()[1].name.as_deref(), Some("7"));
        assert!(load(r#"{"domain":"d","descriptors":[{"key":["a"]}]}"#).is_err());
    }

    #[test]
    fn value_to_metric_and_quota_mode_are_upstream_keys() {
        let compiled = load(
            r#"{"domain":"d","descriptors":[{"key":"route","value_to_metric":true,"quota_mode":true,
                "descriptors":[{"key":"user","rate_limit":{"unit":"minute","requests_per_unit":1}}]}]}"#,
        )
        .unwrap();
        assert_eq!(compiled.tree.limits().len(), 1);
    }

    /// A configuration with `descriptors` and `rate_limits` given as JSON arrays.
    fn with(descriptors: &str, rate_limits: &str) -> Result<Compiled, ConfigError> {
        load(&format!(
            r#"{{"domain":"d","descriptors":{descriptors},"rate_limits":{rate_limits}}}"#
        ))
    }

    const LIMIT: &str = r#""rate_limit":{"unit":"minute","requests_per_unit":1}"#;

    fn header(name: &str, skip_if_absent: bool) -> String {
        format!(
            r#"{{"request_headers":{{"header_name":"x-{name}","descriptor_key":"{name}","skip_if_absent":{skip_if_absent}}}}}"#
        )
    }

    fn generic(key: &str, value: &str) -> String {
        format!(r#"{{"generic_key":{{"descriptor_key":"{key}","descriptor_value":"{value}"}}}}"#)
    }

    /// The walkthrough's descriptors with other `rate_limits`.
    fn walkthrough_with(rate_limits: &str) -> Result<Compiled, ConfigError> {
        let walkthrough: serde_json::Value =
            serde_json::from_str(WALKTHROUGH_PLUGIN_CONFIG).unwrap();
        with(&walkthrough["descriptors"].to_string(), rate_limits)
    }

    #[test]
    fn rate_limits_without_any_limit_are_refused() {
        let rate_limits = format!(r#"[{{"actions":[{}]}}]"#, header("a", false));
        let err = load(&format!(r#"{{"domain":"d","rate_limits":{rate_limits}}}"#)).unwrap_err();
        assert_eq!(err.field, "descriptors");
        assert!(
            err.reason
                .contains("is empty: no descriptor of rate_limits can ever be limited"),
            "{}",
            err.reason
        );
        // A tree whose nodes have no `rate_limit` is no better.
        let err = with(r#"[{"key":"a","descriptors":[{"key":"b"}]}]"#, &rate_limits).unwrap_err();
        assert_eq!(err.field, "descriptors");
        assert!(err.reason.contains("has no rate_limit"), "{}", err.reason);
    }

    #[test]
    fn an_entry_reaching_no_limit_is_refused_naming_its_keys() {
        let path = header("path", false);
        let key = header("x-api-key", false);
        let err = walkthrough_with(&format!(
            r#"[{{"actions":[{path}]}},{{"actions":[{key}]}}]"#
        ))
        .unwrap_err();
        assert_eq!(err.field, "rate_limits[1]");
        assert_eq!(
            err.reason,
            "its descriptor (x-api-key) matches no limit of descriptors"
        );
        // Deeper than the tree: the last entry must land on a node with a limit.
        let err = walkthrough_with(&format!(
            r#"[{{"actions":[{path},{key},{}]}}]"#,
            header("extra", false)
        ))
        .unwrap_err();
        assert_eq!(err.field, "rate_limits[0]");
        assert!(
            err.reason.contains("(path, x-api-key, extra)"),
            "{}",
            err.reason
        );
        // A node reached without a `rate_limit` of its own limits nothing.
        let err = with(
            &format!(r#"[{{"key":"a","descriptors":[{{"key":"b",{LIMIT}}}]}}]"#),
            &format!(r#"[{{"actions":[{}]}}]"#, header("a", false)),
        )
        .unwrap_err();
        assert_eq!(err.field, "rate_limits[0]");
    }

    #[test]
    fn a_request_value_may_take_any_node_of_its_key_and_a_fixed_value_only_the_one_lookup_takes() {
        // The request's `path` may be the predict path, whose node has an `x-api-key` child.
        let key = header("x-api-key", false);
        assert!(walkthrough_with(&format!(
            r#"[{{"actions":[{},{key}]}}]"#,
            header("path", false)
        ))
        .is_ok());
        // A fixed path reaches the child only if it is the predict path: any other value takes
        // the value-less `path` node, which has no children.
        let predict = generic("path", "/v1/models/bert-emotion-model:predict");
        assert!(walkthrough_with(&format!(r#"[{{"actions":[{predict},{key}]}}]"#)).is_ok());
        let err = walkthrough_with(&format!(
            r#"[{{"actions":[{},{key}]}}]"#,
            generic("path", "/other")
        ))
        .unwrap_err();
        assert_eq!(err.field, "rate_limits[0]");
        assert!(
            err.reason.contains(r#"(path="/other", x-api-key)"#),
            "{}",
            err.reason
        );
    }

    #[test]
    fn a_fixed_value_matching_only_a_wildcard_reaches_it() {
        let tree = format!(r#"[{{"key":"generic_key","value":"tenant-*",{LIMIT}}}]"#);
        let entry = |value: &str| {
            format!(r#"[{{"actions":[{{"generic_key":{{"descriptor_value":"{value}"}}}}]}}]"#)
        };
        assert!(with(&tree, &entry("tenant-gold")).is_ok());
        let err = with(&tree, &entry("other")).unwrap_err();
        assert_eq!(err.field, "rate_limits[0]");
        assert!(
            err.reason.contains(r#"(generic_key="other")"#),
            "{}",
            err.reason
        );
        // An exact node wins over the wildcard, as in `lookup`: without a limit, nothing.
        let tree = format!(
            r#"[{{"key":"generic_key","value":"tenant-gold","descriptors":[{{"key":"x",{LIMIT}}}]}},
                {{"key":"generic_key","value":"tenant-*",{LIMIT}}}]"#
        );
        assert_eq!(
            with(&tree, &entry("tenant-gold")).unwrap_err().field,
            "rate_limits[0]"
        );
        assert!(with(&tree, &entry("tenant-silver")).is_ok());
    }

    #[test]
    fn skip_if_absent_entries_may_be_left_out() {
        let tree = format!(r#"[{{"key":"b",{LIMIT}}}]"#);
        // Only `(b)`, without the skippable `a`, reaches the limit: accepted.
        let skippable = format!(
            r#"[{{"actions":[{},{}]}}]"#,
            header("a", true),
            header("b", false)
        );
        let compiled = with(&tree, &skippable).unwrap();
        assert!(compiled.warnings.is_empty(), "{:?}", compiled.warnings);
        let err = with(
            &tree,
            &format!(
                r#"[{{"actions":[{},{}]}}]"#,
                header("a", false),
                header("b", false)
            ),
        )
        .unwrap_err();
        assert_eq!(err.field, "rate_limits[0]");
        assert_eq!(
            err.reason,
            "its descriptor (a, b) matches no limit of descriptors"
        );
        let err = with(
            &tree,
            &format!(
                r#"[{{"actions":[{},{}]}}]"#,
                header("a", false),
                header("c", true)
            ),
        )
        .unwrap_err();
        assert!(
            err.reason
                .contains("(a, c) matches no limit of descriptors, nor does any form without"),
            "{}",
            err.reason
        );
        // Too many skippable actions to list every form: assumed to reach, and then no limit
        // is said to be unreached either.
        let many = (0..11)
            .map(|i| header(&format!("h{i}"), true))
            .collect::<Vec<_>>()
            .join(",");
        let compiled = with(&tree, &format!(r#"[{{"actions":[{many}]}}]"#)).unwrap();
        assert!(compiled.warnings.is_empty(), "{:?}", compiled.warnings);
        let ten = (0..10)
            .map(|i| header(&format!("h{i}"), true))
            .collect::<Vec<_>>()
            .join(",");
        assert!(with(&tree, &format!(r#"[{{"actions":[{ten}]}}]"#)).is_err());
    }

    #[test]
    fn unlimited_limits_count_as_reached() {
        let compiled = with(
            r#"[{"key":"a","rate_limit":{"unlimited":true}}]"#,
            &format!(r#"[{{"actions":[{}]}}]"#, header("a", false)),
        )
        .unwrap();
        assert!(compiled.warnings.is_empty(), "{:?}", compiled.warnings);
    }

    #[test]
    fn what_can_never_limit_but_is_accepted_is_warned_about() {
        // The upstream service's own files: a tree and no rate_limits.
        let compiled = with(&format!(r#"[{{"key":"a",{LIMIT}}}]"#), "[]").unwrap();
        assert_eq!(
            compiled.warnings,
            [
                "rate_limits is empty: no request gets a descriptor, so no limit of descriptors \
              ever applies"
            ]
        );
        // Nothing configured: nothing to warn about.
        assert!(load(r#"{"domain":"d"}"#).unwrap().warnings.is_empty());
        // Only the `[path]` entry of the walkthrough: the per-key limit is never used.
        let compiled =
            walkthrough_with(&format!(r#"[{{"actions":[{}]}}]"#, header("path", false))).unwrap();
        assert_eq!(
            compiled.warnings,
            [
                "descriptors limit `path_/v1/models/bert-emotion-model:predict.x-api-key` is \
              reached by no rate_limits entry"
            ]
        );
        // A fixed path reaches one limit of the two at its level.
        let compiled = walkthrough_with(&format!(
            r#"[{{"actions":[{}]}}]"#,
            generic("path", "/v1/models/other")
        ))
        .unwrap();
        assert_eq!(compiled.warnings.len(), 2, "{:?}", compiled.warnings);
        assert!(compiled
            .warnings
            .iter()
            .all(|w| w.contains("path_/v1/models/bert-emotion-model:predict")));
    }

    #[cfg(not(target_arch = "wasm32"))]
    #[test]
    fn schema_file_is_current() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config.schema.json");
        plugin_kit::schema::check_schema_file::<Config>(&path).unwrap();
    }
}
