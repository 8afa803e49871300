//! The upstream ratelimit service's descriptor tree (`config_impl.go`): which limit a request
//! descriptor gets. Per level, `key`+`value` beats a wildcard value of that key (first in config
//! order), which beats the value-less `key` (any value, one bucket per value). The limit used is
//! the one of the node the **last** entry reaches: depths must be equal.

use crate::config::{DescriptorConfig, RateLimitSpec};
use hashbrown::HashMap;
use plugin_kit::config::ConfigError;
use std::borrow::Cow;

pub type LimitId = usize;

/// Upstream units; month is 30 days and year 365 days, as upstream's `UnitToDivider`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Second,
    Minute,
    Hour,
    Day,
    Week,
    Month,
    Year,
}

impl Unit {
    /// Case-insensitive, as upstream.
    pub fn parse(text: &str) -> Option<Unit> {
        Some(match text.to_ascii_lowercase().as_str() {
            "second" => Unit::Second,
            "minute" => Unit::Minute,
            "hour" => Unit::Hour,
            "day" => Unit::Day,
            "week" => Unit::Week,
            "month" => Unit::Month,
            "year" => Unit::Year,
            _ => return None,
        })
    }

    pub fn seconds(self) -> u64 {
        match self {
            Unit::Second => 1,
            Unit::Minute => 60,
            Unit::Hour => 3_600,
            Unit::Day => 86_400,
            Unit::Week => 7 * 86_400,
            Unit::Month => 30 * 86_400,
            Unit::Year => 365 * 86_400,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitKind {
    /// Always admitted, no bucket.
    Unlimited,
    /// `requests_per_unit` 0 refuses everything (upstream's block-list idiom).
    Bucket { requests_per_unit: u32, unit: Unit },
}

/// One configured `rate_limit`.
#[derive(Debug)]
pub struct Limit {
    /// Its position in [`DescriptorTree::limits`].
    pub id: LimitId,
    /// Upstream's stats key below the domain: `path_/v1/x.x-api-key`.
    pub full_key: String,
    pub kind: LimitKind,
    pub shadow_mode: bool,
    /// Upstream `quota_mode`: counted, but over its limit the request is still admitted.
    pub quota_mode: bool,
    pub detailed_metric: bool,
    /// Upstream `value_to_metric` along the path: how each level appears in the metric name.
    /// Empty when no level takes the request's value (the name is `full_key`).
    pub name_parts: Vec<NamePart>,
    pub name: Option<String>,
    pub replaces: Vec<String>,
    /// The values identifying the rule's only bucket when no level of its path takes any value
    /// (exact values and `share_threshold` patterns); `None` for one bucket per client value.
    pub static_values: Option<Vec<String>>,
}

/// One level of a limit's metric name under `value_to_metric`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NamePart {
    /// `key` or `key_value`, known when the configuration is accepted.
    Fixed(String),
    /// `key_<the request's value at this level>`.
    RequestValue(String),
}

/// A request descriptor: Envoy's ordered `(key, value)` entries. Keys come from the
/// configuration; a value is borrowed from the configuration or the request where it can be.
pub type Descriptor<'a> = Vec<(&'a str, Cow<'a, str>)>;

/// The limit a descriptor got, and what identifies its bucket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Matched {
    pub limit: LimitId,
    /// Per level: the request's value, or the pattern of a `share_threshold` wildcard.
    pub bucket_values: Vec<String>,
    /// Whether some level matched any value (value-less key or unshared wildcard): such buckets
    /// are one per client value and live in the bounded table.
    pub per_value: bool,
}

#[derive(Debug, Default)]
struct Level {
    keys: HashMap<String, KeyNodes>,
}

#[derive(Debug, Default)]
struct KeyNodes {
    exact: HashMap<String, usize>,
    wildcards: Vec<(String, usize)>,
    any: Option<usize>,
}

#[derive(Debug)]
struct Node {
    limit: Option<LimitId>,
    children: Level,
    /// `share_threshold` pattern: all matching values share one bucket.
    shared_pattern: Option<String>,
}

/// What a level passes down to its children while loading.
struct Parent {
    /// Stats key so far, ending with `.` (empty at the top).
    key: String,
    /// Bucket values so far; `None` once a level takes any value.
    values: Option<Vec<String>>,
    name_parts: Vec<NamePart>,
}

#[derive(Debug, Default)]
pub struct DescriptorTree {
    root: Level,
    nodes: Vec<Node>,
    limits: Vec<Limit>,
}

impl DescriptorTree {
    /// Loads and validates `descriptors` as the upstream loader does.
    pub fn build(descriptors: &[DescriptorConfig]) -> Result<Self, ConfigError> {
        let mut tree = DescriptorTree::default();
        let mut root = Level::default();
        let parent = Parent {
            key: String::new(),
            values: Some(Vec::new()),
            name_parts: Vec::new(),
        };
        tree.load_level(&mut root, "descriptors", &parent, descriptors)?;
        tree.root = root;
        Ok(tree)
    }

    pub fn limits(&self) -> &[Limit] {
        &self.limits
    }

    pub fn limit(&self, id: LimitId) -> Option<&Limit> {
        self.limits.get(id)
    }

    fn load_level(
        &mut self,
        level: &mut Level,
        path: &str,
        parent: &Parent,
        descriptors: &[DescriptorConfig],
    ) -> Result<(), ConfigError> {
        for (i, config) in descriptors.iter().enumerate() {
            let path = format!("{path}[{i}]");
            if config.key.is_empty() {
                return Err(ConfigError::new(
                    format!("{path}.key"),
                    "descriptor has empty key",
                ));
            }
            let value = config.value.as_deref().filter(|v| !v.is_empty());
            let final_key = match value {
                Some(value) => format!("{}_{value}", config.key),
                None => config.key.clone(),
            };
            let full_key = format!("{}{final_key}", parent.key);
            let is_wildcard = value.is_some_and(|v| v.contains('*'));
            if config.share_threshold && !is_wildcard {
                return Err(ConfigError::new(
                    format!("{path}.share_threshold"),
                    "share_threshold needs a value with a '*' wildcard",
                ));
            }
            let takes_any_value = value.is_none() || (is_wildcard && !config.share_threshold);
            let bucket_value = match value {
                Some(v) if !is_wildcard || config.share_threshold => Some(v.to_string()),
                _ => None,
            };
            let static_values = parent.values.clone().and_then(|mut values| {
                values.push(bucket_value?);
                Some(values)
            });
            let mut name_parts = parent.name_parts.clone();
            name_parts.push(match value {
                // Upstream names a shared wildcard by the pattern's text before the `*`.
                Some(pattern) if config.value_to_metric && config.share_threshold => {
                    let prefix = pattern.split('*').next().unwrap_or_default();
                    let prefix = prefix.trim_end_matches(|c: char| !c.is_ascii_alphanumeric());
                    NamePart::Fixed(format!("{}_{prefix}", config.key))
                }
                _ if config.value_to_metric && !config.detailed_metric && takes_any_value => {
                    NamePart::RequestValue(config.key.clone())
                }
                _ => NamePart::Fixed(final_key.clone()),
            });
            let fixed_name = name_parts
                .iter()
                .map(|part| match part {
                    NamePart::Fixed(text) => Some(text.as_str()),
                    NamePart::RequestValue(_) => None,
                })
                .collect::<Option<Vec<_>>>()
                .map(|parts| parts.join("."));
            let renamed = fixed_name.as_deref() != Some(full_key.as_str());
            let limit = match &config.rate_limit {
                Some(spec) => {
                    let kind = compile_limit(&path, spec)?;
                    self.limits.push(Limit {
                        id: self.limits.len(),
                        full_key: full_key.clone(),
                        kind,
                        shadow_mode: config.shadow_mode,
                        quota_mode: config.quota_mode,
                        detailed_metric: config.detailed_metric,
                        name_parts: if renamed {
                            name_parts.clone()
                        } else {
                            Vec::new()
                        },
                        name: spec.name.clone().filter(|n| !n.is_empty()),
                        replaces: spec.replaces.iter().map(|r| r.name.clone()).collect(),
                        static_values: static_values.clone(),
                    });
                    Some(self.limits.len() - 1)
                }
                None => None,
            };
            let mut children = Level::default();
            let child_parent = Parent {
                key: format!("{full_key}."),
                values: static_values,
                name_parts,
            };
            self.load_level(
                &mut children,
                &format!("{path}.descriptors"),
                &child_parent,
                &config.descriptors,
            )?;
            self.nodes.push(Node {
                limit,
                children,
                shared_pattern: if config.share_threshold {
                    value.map(str::to_string)
                } else {
                    None
                },
            });
            let id = self.nodes.len() - 1;
            let slot = level.keys.entry(config.key.clone()).or_default();
            let duplicate = match value {
                None => slot.any.replace(id).is_some(),
                Some(pattern) if is_wildcard => {
                    let seen = slot.wildcards.iter().any(|(p, _)| p == pattern);
                    slot.wildcards.push((pattern.to_string(), id));
                    seen
                }
                Some(exact) => slot.exact.insert(exact.to_string(), id).is_some(),
            };
            if duplicate {
                return Err(ConfigError::new(
                    path,
                    format!("duplicate descriptor composite key '{full_key}'"),
                ));
            }
        }
        Ok(())
    }

    /// The limit for one request descriptor, or `None` (not limited).
    pub fn lookup(&self, descriptor: &[(&str, Cow<'_, str>)]) -> Option<Matched> {
        let mut level = &self.root;
        let mut bucket_values = Vec::with_capacity(descriptor.len());
        let last = descriptor.len().checked_sub(1)?;
        for (i, (key, value)) in descriptor.iter().enumerate() {
            let nodes = level.keys.get(*key)?;
            let value: &str = value;
            let id = match nodes.exact.get(value) {
                Some(&id) => id,
                None => match nodes.wildcards.iter().find(|(p, _)| glob_match(p, value)) {
                    Some(&(_, id)) => id,
                    None => nodes.any?,
                },
            };
            let node = self.nodes.get(id)?;
            match &node.shared_pattern {
                Some(pattern) => bucket_values.push(pattern.clone()),
                None => bucket_values.push(value.to_string()),
            }
            if i == last {
                let limit = node.limit?;
                return Some(Matched {
                    limit,
                    bucket_values,
                    per_value: self.limits.get(limit)?.static_values.is_none(),
                });
            }
            level = &node.children;
        }
        None
    }

    /// The limits a descriptor of this shape can get, for the configuration checks (never on the
    /// request path). Per entry: its key, and its value when the configuration fixes it. A fixed
    /// value takes only the node `lookup` would pick for it; a value from the request may take
    /// any node of its key (exact, wildcard or value-less), so every one is explored. Each node
    /// has one path, so no limit is listed twice; the walk is iterative and visits each node at
    /// most once.
    pub fn reachable_limits(&self, shape: &[(&str, Option<&str>)]) -> Vec<LimitId> {
        let mut found = Vec::new();
        let mut pending = vec![(&self.root, 0usize)];
        while let Some((level, depth)) = pending.pop() {
            let Some(((key, value), rest)) = shape.get(depth..).and_then(<[_]>::split_first) else {
                continue;
            };
            let Some(nodes) = level.keys.get(*key) else {
                continue;
            };
            let candidates: Vec<usize> = match value {
                // The same order as `lookup`: exact, first matching wildcard, value-less.
                Some(value) => nodes
                    .exact
                    .get(*value)
                    .copied()
                    .or_else(|| {
                        nodes
                            .wildcards
                            .iter()
                            .find(|(p, _)| glob_match(p, value))
                            .map(|&(_, id)| id)
                    })
                    .or(nodes.any)
                    .into_iter()
                    .collect(),
                None => nodes
                    .exact
                    .values()
                    .copied()
                    .chain(nodes.wildcards.iter().map(|&(_, id)| id))
                    .chain(nodes.any)
                    .collect(),
            };
            for node in candidates.into_iter().filter_map(|id| self.nodes.get(id)) {
                if rest.is_empty() {
                    // Depths must be equal: only the node of the last entry gives its limit.
                    found.extend(node.limit);
                } else {
                    pending.push((&node.children, depth + 1));
                }
            }
        }
        found
    }
}

/// Validates one `rate_limit` as the upstream loader does. `path` is the JSON path of the node.
fn compile_limit(path: &str, spec: &RateLimitSpec) -> Result<LimitKind, ConfigError> {
    let unit_field = || format!("{path}.rate_limit.unit");
    let unit = match spec.unit.as_deref().filter(|u| !u.is_empty()) {
        Some(text) => Some(Unit::parse(text).ok_or_else(|| {
            ConfigError::new(
                unit_field(),
                format!("invalid rate limit unit '{text}' (second, minute, hour, day, week, month or year)"),
            )
        })?),
        None => None,
    };
    for (i, replaced) in spec.replaces.iter().enumerate() {
        let field = format!("{path}.rate_limit.replaces[{i}].name");
        if replaced.name.is_empty() {
            return Err(ConfigError::new(
                field,
                "should not have an empty replaces entry",
            ));
        }
        if spec.name.as_deref() == Some(replaced.name.as_str()) {
            return Err(ConfigError::new(
                field,
                "replaces should not contain name of same descriptor",
            ));
        }
    }
    match (spec.unlimited, unit) {
        (true, Some(_)) => Err(ConfigError::new(
            unit_field(),
            "should not specify rate limit unit when unlimited",
        )),
        (true, None) => Ok(LimitKind::Unlimited),
        (false, Some(unit)) => Ok(LimitKind::Bucket {
            requests_per_unit: spec.requests_per_unit,
            unit,
        }),
        (false, None) => Err(ConfigError::new(
            unit_field(),
            "a rate limit needs a unit (or unlimited: true)",
        )),
    }
}

/// `*` matches any run of characters (several allowed); everything else is literal.
/// Greedy with one backtrack point: linear in practice, never recursive.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let (p, t) = (pattern.as_bytes(), text.as_bytes());
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        match p.get(pi) {
            Some(b'*') => {
                star = Some((pi, ti));
                pi += 1;
            }
            Some(&c) if t.get(ti) == Some(&c) => {
                pi += 1;
                ti += 1;
            }
            _ => match star {
                Some((star_p, star_t)) => {
                    pi = star_p + 1;
                    ti = star_t + 1;
                    star = Some((star_p, star_t + 1));
                }
                None => return false,
            },
        }
    }
    p.get(pi..)
        .is_some_and(|rest| rest.iter().all(|&c| c == b'*'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use plugin_kit::config::parse;
    #[cfg(all(target_arch = "wasm32", target_os = "unknown"))]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    fn tree(json: &str) -> DescriptorTree {
        let config: crate::config::Config = parse(json.as_bytes()).unwrap();
        DescriptorTree::build(&config.descriptors).unwrap()
    }

    fn build_err(json: &str) -> ConfigError {
        let config: crate::config::Config = parse(json.as_bytes()).unwrap();
        DescriptorTree::build(&config.descriptors).unwrap_err()
    }

    fn d<'a>(entries: &[(&'a str, &'a str)]) -> Descriptor<'a> {
        entries
            .iter()
            .map(|(k, v)| (*k, Cow::Borrowed(*v)))
            .collect()
    }

    /// The limit's (requests_per_unit, full key) a descriptor gets.
    fn limit_of(tree: &DescriptorTree, entries: &[(&str, &str)]) -> Option<(u32, String)> {
        let matched = tree.lookup(&d(entries))?;
        let limit = tree.limit(matched.limit).unwrap();
        let rpu = match limit.kind {
            LimitKind::Bucket {
                requests_per_unit, ..
            } => requests_per_unit,
            LimitKind::Unlimited => u32::MAX,
        };
        Some((rpu, limit.full_key.clone()))
    }

    const WALKTHROUGH: &str = r#"{"domain":"ratelimit","descriptors":[
        {"key":"path","value":"/v1/models/bert-emotion-model:predict",
         "rate_limit":{"unit":"minute","requests_per_unit":2},
         "descriptors":[{"key":"x-api-key","rate_limit":{"unit":"minute","requests_per_unit":5}}]},
        {"key":"path","rate_limit":{"unit":"minute","requests_per_unit":10}}]}"#;
    const PREDICT: &str = "/v1/models/bert-emotion-model:predict";

    #[test]
    fn walkthrough_config_key_value_beats_key_only_at_the_same_level() {
        let t = tree(WALKTHROUGH);
        assert_eq!(
            limit_of(&t, &[("path", PREDICT)]),
            Some((2, format!("path_{PREDICT}")))
        );
        assert_eq!(
            limit_of(&t, &[("path", "/v1/models/bert-emotion-model")]),
            Some((10, "path".to_string()))
        );
    }

    #[test]
    fn nested_key_matches_only_at_its_depth() {
        let t = tree(WALKTHROUGH);
        assert_eq!(
            limit_of(&t, &[("path", PREDICT), ("x-api-key", "k1")]),
            Some((5, format!("path_{PREDICT}.x-api-key")))
        );
        // The default `path` node has no children: a two-entry descriptor on another path
        // reaches no node at depth 2 and is not limited.
        assert_eq!(
            limit_of(&t, &[("path", "/other"), ("x-api-key", "k1")]),
            None
        );
        // More entries than the tree is deep: not limited, not the parent's limit.
        assert_eq!(
            limit_of(
                &t,
                &[("path", PREDICT), ("x-api-key", "k1"), ("extra", "x")]
            ),
            None
        );
    }

    #[test]
    fn value_less_key_gives_a_bucket_per_value_and_exact_values_share_one() {
        let t = tree(WALKTHROUGH);
        let a = t.lookup(&d(&[("path", "/a")])).unwrap();
        let b = t.lookup(&d(&[("path", "/b")])).unwrap();
        assert_eq!(a.limit, b.limit);
        assert!(a.per_value && b.per_value);
        assert_ne!(a.bucket_values, b.bucket_values);
        let p = t.lookup(&d(&[("path", PREDICT)])).unwrap();
        assert!(!p.per_value);
        assert_eq!(
            t.limit(p.limit).unwrap().static_values,
            Some(p.bucket_values.clone())
        );
        assert_eq!(t.limit(a.limit).unwrap().static_values, None);
        let k = t
            .lookup(&d(&[("path", PREDICT), ("x-api-key", "k")]))
            .unwrap();
        assert!(k.per_value);
        assert_eq!(k.bucket_values, vec![PREDICT.to_string(), "k".to_string()]);
    }

    #[test]
    fn unknown_key_empty_descriptor_and_node_without_limit_are_not_limited() {
        let t = tree(
            r#"{"domain":"d","descriptors":[{"key":"a","descriptors":[
                {"key":"b","rate_limit":{"unit":"second","requests_per_unit":1}}]}]}"#,
        );
        assert_eq!(limit_of(&t, &[("zzz", "1")]), None);
        assert_eq!(limit_of(&t, &[]), None);
        // `a` has no rate_limit of its own (upstream: "whitelisted").
        assert_eq!(limit_of(&t, &[("a", "x")]), None);
        assert_eq!(
            limit_of(&t, &[("a", "x"), ("b", "y")]),
            Some((1, "a.b".to_string()))
        );
    }

    #[test]
    fn exact_node_without_children_does_not_fall_back_to_the_default_node() {
        // Upstream descends into `key_value` when it exists, even if the deeper entry then
        // matches nothing there; it never retries the value-less node.
        let t = tree(
            r#"{"domain":"d","descriptors":[
                {"key":"a","value":"1","rate_limit":{"unit":"second","requests_per_unit":1}},
                {"key":"a","descriptors":[{"key":"b","rate_limit":{"unit":"second","requests_per_unit":7}}]}]}"#,
        );
        assert_eq!(limit_of(&t, &[("a", "1"), ("b", "x")]), None);
        assert_eq!(
            limit_of(&t, &[("a", "2"), ("b", "x")]),
            Some((7, "a.b".to_string()))
        );
    }

    #[test]
    fn wildcards_come_after_exact_and_before_the_default_in_config_order() {
        let t = tree(
            r#"{"domain":"d","descriptors":[
                {"key":"p","value":"/api/v1","rate_limit":{"unit":"second","requests_per_unit":1}},
                {"key":"p","value":"/api/*","rate_limit":{"unit":"second","requests_per_unit":2}},
                {"key":"p","value":"/api/v*","rate_limit":{"unit":"second","requests_per_unit":3}},
                {"key":"p","value":"*/x/*/y","rate_limit":{"unit":"second","requests_per_unit":4}},
                {"key":"p","rate_limit":{"unit":"second","requests_per_unit":5}}]}"#,
        );
        assert_eq!(limit_of(&t, &[("p", "/api/v1")]).unwrap().0, 1);
        assert_eq!(limit_of(&t, &[("p", "/api/v2")]).unwrap().0, 2);
        assert_eq!(limit_of(&t, &[("p", "/api/")]).unwrap().0, 2);
        assert_eq!(limit_of(&t, &[("p", "/a/x/1/2/y")]).unwrap().0, 4);
        assert_eq!(limit_of(&t, &[("p", "/a/x/1/2/yz")]).unwrap().0, 5);
        assert_eq!(limit_of(&t, &[("p", "/other")]).unwrap().0, 5);
        let shared = t.lookup(&d(&[("p", "/api/v9")])).unwrap();
        assert!(
            shared.per_value,
            "an unshared wildcard keeps one bucket per value"
        );
    }

    #[test]
    fn share_threshold_wildcard_shares_one_bucket() {
        let t = tree(
            r#"{"domain":"d","descriptors":[{"key":"p","value":"/api/*","share_threshold":true,
                "rate_limit":{"unit":"second","requests_per_unit":2}}]}"#,
        );
        let a = t.lookup(&d(&[("p", "/api/a")])).unwrap();
        let b = t.lookup(&d(&[("p", "/api/b")])).unwrap();
        assert_eq!(a, b);
        assert!(!a.per_value);
        assert_eq!(a.bucket_values, vec!["/api/*".to_string()]);
    }

    #[test]
    fn unlimited_units_and_zero_limit_load() {
        let t = tree(
            r#"{"domain":"d","descriptors":[
                {"key":"u","rate_limit":{"unlimited":true}},
                {"key":"z","rate_limit":{"unit":"HOUR","requests_per_unit":0}},
                {"key":"y","rate_limit":{"unit":"Year","requests_per_unit":1}}]}"#,
        );
        assert_eq!(t.limits()[0].kind, LimitKind::Unlimited);
        assert_eq!(
            t.limits()[1].kind,
            LimitKind::Bucket {
                requests_per_unit: 0,
                unit: Unit::Hour
            }
        );
        assert_eq!(Unit::Year.seconds(), 365 * 86_400);
        assert_eq!(Unit::Month.seconds(), 30 * 86_400);
        assert_eq!(Unit::parse("SeCoNd"), Some(Unit::Second));
    }

    #[test]
    fn loader_errors_name_the_field() {
        let err = build_err(
            r#"{"domain":"d","descriptors":[{"key":"a","rate_limit":{"unit":"fortnight","requests_per_unit":1}}]}"#,
        );
        assert_eq!(err.field, "descriptors[0].rate_limit.unit");
        assert!(err.reason.contains("fortnight"), "{}", err.reason);
        let err = build_err(
            r#"{"domain":"d","descriptors":[{"key":"a","descriptors":[{"key":"","rate_limit":{"unit":"second"}}]}]}"#,
        );
        assert_eq!(err.field, "descriptors[0].descriptors[0].key");
        let err = build_err(
            r#"{"domain":"d","descriptors":[{"key":"a","rate_limit":{"unit":"second","unlimited":true}}]}"#,
        );
        assert!(err.reason.contains("unlimited"), "{}", err.reason);
        let err = build_err(
            r#"{"domain":"d","descriptors":[{"key":"a","rate_limit":{"requests_per_unit":3}}]}"#,
        );
        assert_eq!(err.field, "descriptors[0].rate_limit.unit");
        let err = build_err(
            r#"{"domain":"d","descriptors":[{"key":"a","value":"1"},{"key":"a","value":"1"}]}"#,
        );
        assert_eq!(err.field, "descriptors[1]");
        assert!(
            err.reason
                .contains("duplicate descriptor composite key 'a_1'"),
            "{}",
            err.reason
        );
        let err = build_err(r#"{"domain":"d","descriptors":[{"key":"a"},{"key":"a"}]}"#);
        assert!(err.reason.contains("duplicate"), "{}", err.reason);
        let err = build_err(
            r#"{"domain":"d","descriptors":[{"key":"a","value":"x","share_threshold":true}]}"#,
        );
        assert_eq!(err.field, "descriptors[0].share_threshold");
        let err = build_err(
            r#"{"domain":"d","descriptors":[{"key":"a","rate_limit":{"unit":"second","name":"n","replaces":[{"name":"n"}]}}]}"#,
        );
        assert_eq!(err.field, "descriptors[0].rate_limit.replaces[0].name");
        let err = build_err(
            r#"{"domain":"d","descriptors":[{"key":"a","rate_limit":{"unit":"second","replaces":[{"name":""}]}}]}"#,
        );
        assert!(err.reason.contains("empty replaces"), "{}", err.reason);
    }

    #[test]
    fn reachable_limits_take_lookup_s_node_for_a_fixed_value_and_every_node_otherwise() {
        let t = tree(
            r#"{"domain":"d","descriptors":[
                {"key":"p","value":"/api/v1","descriptors":[{"key":"k","rate_limit":{"unit":"second","requests_per_unit":1}}]},
                {"key":"p","value":"/api/*","rate_limit":{"unit":"second","requests_per_unit":2}},
                {"key":"p","rate_limit":{"unit":"second","requests_per_unit":3},
                 "descriptors":[{"key":"k","rate_limit":{"unlimited":true}}]}]}"#,
        );
        let full_keys = |shape: &[(&str, Option<&str>)]| {
            let mut keys: Vec<_> = t
                .reachable_limits(shape)
                .into_iter()
                .map(|id| t.limit(id).unwrap().full_key.clone())
                .collect();
            keys.sort();
            keys
        };
        // A fixed value gets exactly what `lookup` gives it.
        for value in ["/api/v1", "/api/v2", "/other", ""] {
            for shape in [vec![("p", value)], vec![("p", value), ("k", "x")]] {
                let fixed: Vec<_> = shape.iter().map(|&(k, v)| (k, Some(v))).collect();
                let by_lookup = limit_of(&t, &shape).map(|(_, key)| key);
                assert_eq!(full_keys(&fixed), Vec::from_iter(by_lookup), "{shape:?}");
            }
        }
        // A request's value may take any node of the key.
        assert_eq!(full_keys(&[("p", None)]), ["p", "p_/api/*"]);
        assert_eq!(
            full_keys(&[("p", None), ("k", None)]),
            ["p.k", "p_/api/v1.k"]
        );
        assert!(full_keys(&[("p", None), ("k", None), ("z", None)]).is_empty());
        assert!(full_keys(&[("q", None)]).is_empty());
        assert!(full_keys(&[]).is_empty());
    }

    #[test]
    fn glob_matching() {
        assert!(glob_match("*", ""));
        assert!(glob_match("a*", "a"));
        assert!(glob_match("a*c", "abbbc"));
        assert!(glob_match("*b*", "abc"));
        assert!(!glob_match("a*c", "abd"));
        assert!(!glob_match("abc", "ab"));
        assert!(glob_match("a**", "a"));
        // A hostile long value against a pattern with several stars stays fast.
        let long = "a".repeat(60_000);
        assert!(!glob_match("*a*a*a*b", &long));
    }
}
