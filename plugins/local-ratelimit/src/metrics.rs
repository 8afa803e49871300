//! Counters with the upstream service's statistics (`total_hits`, `over_limit`…), one series per
//! rule: `local_ratelimit_<stat>{domain, rule}`, where `rule` is the upstream stats key of the
//! limit (`ratelimit.service.rate_limit.<domain>.<key>.<stat>` upstream), tag-encoded so that a
//! dashboard sums over rules; plus a few plugin-level ones, `local_ratelimit_<stat>{domain}`.
//! The number of names is bounded: per-value rules exist only with `detailed_metric` or
//! `value_to_metric`, at most [`MAX_DETAILED_NAMES`] per worker, each value cut and sanitized.

use crate::matcher::{Limit, LimitId, NamePart};
use hashbrown::HashMap;
use plugin_kit::metrics::{tagged_name, MetricHost, MetricKind, DOMAIN, RULE};

/// Per-rule statistics, as upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stat {
    TotalHits,
    OverLimit,
    NearLimit,
    WithinLimit,
    ShadowMode,
}

impl Stat {
    fn name(self) -> &'static str {
        match self {
            Stat::TotalHits => "local_ratelimit_total_hits",
            Stat::OverLimit => "local_ratelimit_over_limit",
            Stat::NearLimit => "local_ratelimit_near_limit",
            Stat::WithinLimit => "local_ratelimit_within_limit",
            Stat::ShadowMode => "local_ratelimit_shadow_mode",
        }
    }
}

/// Plugin-level events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PluginStat {
    /// A per-value bucket's slot was busy: the rule's overflow bucket answered.
    TableOverflow,
    /// Compare-and-swap retries were exhausted.
    Contention,
    /// The host refused a shared-data read or write.
    StoreError,
    /// A request's `hits_addend` header was missing or not a weight; it counted as 1.
    InvalidHitsAddend,
}

impl PluginStat {
    fn name(self) -> &'static str {
        match self {
            PluginStat::TableOverflow => "local_ratelimit_table_overflow",
            PluginStat::Contention => "local_ratelimit_cas_exhausted",
            PluginStat::StoreError => "local_ratelimit_store_error",
            PluginStat::InvalidHitsAddend => "local_ratelimit_invalid_hits_addend",
        }
    }
}

/// What the decision logic reports.
pub trait Counters {
    /// `values`: the request's value per level of the limit's path.
    fn rule(&mut self, limit: &Limit, values: &[String], stat: Stat);
    fn plugin(&mut self, stat: PluginStat);
}

/// Per-value names kept per worker; later values count under the rule's name.
pub const MAX_DETAILED_NAMES: usize = 100;
/// Longest value put in a name.
pub const MAX_VALUE_IN_NAME: usize = 64;

/// Names to host metric ids, defined on first use.
pub struct Registry<H: MetricHost> {
    host: H,
    domain: String,
    ids: HashMap<String, u32>,
    /// The ids of rules whose name takes no request value, by rule and statistic: found
    /// without building the name again.
    fixed: HashMap<(LimitId, Stat), u32>,
    detailed_values: usize,
}

impl<H: MetricHost> Registry<H> {
    pub fn new(host: H, domain: &str) -> Self {
        Registry {
            host,
            domain: domain.to_string(),
            ids: HashMap::new(),
            fixed: HashMap::new(),
            detailed_values: 0,
        }
    }

    fn count(&mut self, name: String) -> Option<u32> {
        let id = match self.ids.get(&name) {
            Some(&id) => Some(id),
            None => {
                let id = self.host.define(MetricKind::Counter, &name);
                if let Some(id) = id {
                    self.ids.insert(name, id);
                }
                id
            }
        };
        if let Some(id) = id {
            self.host.increment(id, 1);
        }
        id
    }

    fn rule_metric(&self, rule: &str, stat: Stat) -> String {
        tagged_name(stat.name(), &[(DOMAIN, &self.domain), (RULE, rule)])
    }

    /// The rule's label: its stats key, with the request's values where `value_to_metric` or
    /// `detailed_metric` ask for them while the per-value budget lasts.
    fn rule_label(&mut self, limit: &Limit, values: &[String]) -> String {
        let value_at = |i: usize| sanitize(values.get(i).map_or("", String::as_str));
        let mut name = String::new();
        let mut takes_value = false;
        if limit.name_parts.is_empty() {
            name.push_str(&limit.full_key);
        }
        for (i, part) in limit.name_parts.iter().enumerate() {
            if i > 0 {
                name.push('.');
            }
            match part {
                NamePart::Fixed(text) => name.push_str(text),
                NamePart::RequestValue(key) => {
                    takes_value = true;
                    name.push_str(&format!("{key}_{}", value_at(i)));
                }
            }
        }
        if limit.detailed_metric {
            takes_value = true;
            name.push('_');
            name.push_str(&value_at(values.len().saturating_sub(1)));
        }
        if !takes_value
            || self
                .ids
                .contains_key(&self.rule_metric(&name, Stat::TotalHits))
        {
            return name;
        }
        if self.detailed_values < MAX_DETAILED_NAMES {
            self.detailed_values += 1;
            return name;
        }
        limit.full_key.clone()
    }

    #[cfg(test)]
    pub fn host(&self) -> &H {
        &self.host
    }
}

/// Characters Envoy's stat names and Prometheus take safely; the rest become `_`.
fn sanitize(value: &str) -> String {
    value
        .chars()
        .take(MAX_VALUE_IN_NAME)
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_/:".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

impl<H: MetricHost> Counters for Registry<H> {
    fn rule(&mut self, limit: &Limit, values: &[String], stat: Stat) {
        let per_value = limit.detailed_metric
            || limit
                .name_parts
                .iter()
                .any(|part| matches!(part, NamePart::RequestValue(_)));
        if !per_value {
            if let Some(&id) = self.fixed.get(&(limit.id, stat)) {
                self.host.increment(id, 1);
                return;
            }
        }
        let rule = self.rule_label(limit, values);
        let id = self.count(self.rule_metric(&rule, stat));
        if let (false, Some(id)) = (per_value, id) {
            self.fixed.insert((limit.id, stat), id);
        }
    }

    fn plugin(&mut self, stat: PluginStat) {
        self.count(tagged_name(stat.name(), &[(DOMAIN, &self.domain)]));
    }
}

#[cfg(test)]
pub mod fake {
    use super::*;
    use std::collections::BTreeMap;

    /// Counts by name.
    #[derive(Default)]
    pub struct FakeHost {
        names: Vec<String>,
        pub values: BTreeMap<String, u64>,
    }

    impl MetricHost for FakeHost {
        fn define(&mut self, _kind: MetricKind, name: &str) -> Option<u32> {
            self.names.push(name.to_string());
            u32::try_from(self.names.len() - 1).ok()
        }
        fn increment(&mut self, id: u32, by: u64) {
            let name = self.names[id as usize].clone();
            *self.values.entry(name).or_default() += by;
        }
        fn record(&mut self, _id: u32, _value: u64) {}
    }

    impl FakeHost {
        pub fn get(&self, name: &str) -> u64 {
            self.values.get(name).copied().unwrap_or(0)
        }
    }

    /// The encoded name of a rule's counter.
    pub fn rule_name(domain: &str, rule: &str, stat: &str) -> String {
        tagged_name(
            &format!("local_ratelimit_{stat}"),
            &[(DOMAIN, domain), (RULE, rule)],
        )
    }

    /// The encoded name of a plugin-level counter.
    pub fn plugin_name(domain: &str, stat: &str) -> String {
        tagged_name(&format!("local_ratelimit_{stat}"), &[(DOMAIN, domain)])
    }
}

#[cfg(test)]
mod tests {
    use super::fake::{plugin_name, rule_name, FakeHost};
    use super::*;
    use crate::matcher::LimitKind;

    fn limit(detailed: bool) -> Limit {
        Limit {
            id: 0,
            full_key: "path".to_string(),
            kind: LimitKind::Unlimited,
            shadow_mode: false,
            quota_mode: false,
            detailed_metric: detailed,
            name_parts: vec![],
            name: None,
            replaces: vec![],
            static_values: None,
        }
    }

    fn values(texts: &[&str]) -> Vec<String> {
        texts.iter().map(|t| t.to_string()).collect()
    }

    #[test]
    fn rule_names_follow_upstream_keys() {
        let mut r = Registry::new(FakeHost::default(), "ratelimit");
        r.rule(&limit(false), &values(&["/a"]), Stat::TotalHits);
        r.rule(&limit(false), &values(&["/b"]), Stat::TotalHits);
        r.plugin(PluginStat::TableOverflow);
        assert_eq!(
            r.host().get(&rule_name("ratelimit", "path", "total_hits")),
            2
        );
        assert_eq!(r.host().get(&plugin_name("ratelimit", "table_overflow")), 1);
        assert_eq!(r.host().values.len(), 2);
    }

    #[test]
    fn detailed_names_are_bounded_sanitized_and_cut() {
        let mut r = Registry::new(FakeHost::default(), "d");
        for i in 0..1_000 {
            r.rule(&limit(true), &[format!("v{i}")], Stat::TotalHits);
        }
        // A value seen before keeps its name once the cap is reached.
        r.rule(&limit(true), &values(&["v0"]), Stat::TotalHits);
        assert_eq!(r.host().values.len(), MAX_DETAILED_NAMES + 1);
        assert_eq!(r.host().get(&rule_name("d", "path_v0", "total_hits")), 2);
        assert_eq!(
            r.host().get(&rule_name("d", "path", "total_hits")),
            1_000 - MAX_DETAILED_NAMES as u64
        );
        let mut r = Registry::new(FakeHost::default(), "d");
        r.rule(
            &limit(true),
            &[format!("a.b{{}}\n{}", "x".repeat(10_000))],
            Stat::OverLimit,
        );
        let name = r.host().values.keys().next().unwrap().clone();
        assert!(
            name.starts_with("domain=.=d;.;rule=.=path_a_b___"),
            "{name}"
        );
        assert!(name.len() < 150, "{name}");
    }

    /// Upstream's README examples of `value_to_metric`, with and without a wildcard, shared or
    /// not, and `detailed_metric` taking precedence on its own level.
    #[test]
    fn value_to_metric_names_follow_upstream_examples() {
        use crate::compiled::compile;
        use crate::config::Config;
        let names = |config: &str, descriptor: &[&str]| {
            let compiled =
                compile(plugin_kit::config::parse::<Config>(config.as_bytes()).unwrap()).unwrap();
            let mut r = Registry::new(FakeHost::default(), &compiled.domain);
            let limit = &compiled.tree.limits()[0];
            r.rule(limit, &values(descriptor), Stat::TotalHits);
            r.host().values.keys().cloned().collect::<Vec<_>>()
        };
        let example10 = r#"{"domain":"example10","descriptors":[{"key":"route","value_to_metric":true,
            "descriptors":[{"key":"http_method","value_to_metric":true,
            "descriptors":[{"key":"subject_id","rate_limit":{"unit":"minute","requests_per_unit":60}}]}]}]}"#;
        assert_eq!(
            names(example10, &["api", "GET", "123"]),
            [rule_name(
                "example10",
                "route_api.http_method_GET.subject_id",
                "total_hits"
            )]
        );
        let wildcard = r#"{"domain":"w","descriptors":[{"key":"user","value_to_metric":true,
            "descriptors":[{"key":"action","value":"read*","value_to_metric":true,
            "descriptors":[{"key":"resource","rate_limit":{"unit":"minute","requests_per_unit":100}}]}]}]}"#;
        assert_eq!(
            names(wildcard, &["alice", "readfile", "documents"]),
            [rule_name(
                "w",
                "user_alice.action_readfile.resource",
                "total_hits"
            )]
        );
        let shared = r#"{"domain":"s","descriptors":[{"key":"route","value":"api/*","share_threshold":true,
            "value_to_metric":true,"descriptors":[{"key":"method","rate_limit":{"unit":"minute","requests_per_unit":60}}]}]}"#;
        assert_eq!(
            names(shared, &["api/*", "GET"]),
            [rule_name("s", "route_api.method", "total_hits")]
        );
        let detailed = r#"{"domain":"d","descriptors":[{"key":"k","value_to_metric":true,"detailed_metric":true,
            "rate_limit":{"unit":"minute","requests_per_unit":60}}]}"#;
        assert_eq!(
            names(detailed, &["v"]),
            [rule_name("d", "k_v", "total_hits")]
        );
        let plain = r#"{"domain":"p","descriptors":[{"key":"k","value":"v","value_to_metric":true,
            "rate_limit":{"unit":"minute","requests_per_unit":60}}]}"#;
        assert_eq!(names(plain, &["v"]), [rule_name("p", "k_v", "total_hits")]);
    }
}
