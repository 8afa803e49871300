//! Counters with the upstream service's statistics (`total_hits`, `over_limit`…), one series per
//! rule: `local_ratelimit_<stat>{domain, rule}`, where `rule` is the upstream stats key of the
//! limit (`ratelimit.service.rate_limit.<domain>.<key>.<stat>` upstream), tag-encoded so that a
//! dashboard sums over rules; plus a few plugin-level ones, `local_ratelimit_<stat>{domain}`.
//!
//! As Envoy's stats and the upstream service (which creates a rule's stats when it loads its
//! config), the counters a configuration fixes are defined once, when it is accepted, and start
//! at zero: the plugin-level ones, and the five of every rule whose name takes no request value.
//! The request path finds them by position. Only per-value names (`detailed_metric`,
//! `value_to_metric` on a value the request gives) are defined on first use, at most
//! [`MAX_DETAILED_NAMES`] per worker, each value cut and sanitized.

use crate::matcher::{Limit, NamePart};
use hashbrown::HashMap;
use plugin_kit::metrics::{
    tagged_name, CounterSet, CounterTable, MetricHost, MetricKind, DOMAIN, RULE,
};

/// Per-rule statistics, as upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stat {
    TotalHits,
    OverLimit,
    NearLimit,
    WithinLimit,
    ShadowMode,
}

impl Stat {
    const ALL: [Stat; 5] = [
        Stat::TotalHits,
        Stat::OverLimit,
        Stat::NearLimit,
        Stat::WithinLimit,
        Stat::ShadowMode,
    ];
}

plugin_kit::enum_counter_set!(Stat {
    fn metric(self) -> &'static str {
        match self {
            Stat::TotalHits => "local_ratelimit_total_hits",
            Stat::OverLimit => "local_ratelimit_over_limit",
            Stat::NearLimit => "local_ratelimit_near_limit",
            Stat::WithinLimit => "local_ratelimit_within_limit",
            Stat::ShadowMode => "local_ratelimit_shadow_mode",
        }
    }
});

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
    const ALL: [PluginStat; 4] = [
        PluginStat::TableOverflow,
        PluginStat::Contention,
        PluginStat::StoreError,
        PluginStat::InvalidHitsAddend,
    ];
}

plugin_kit::enum_counter_set!(PluginStat {
    fn metric(self) -> &'static str {
        match self {
            PluginStat::TableOverflow => "local_ratelimit_table_overflow",
            PluginStat::Contention => "local_ratelimit_cas_exhausted",
            PluginStat::StoreError => "local_ratelimit_store_error",
            PluginStat::InvalidHitsAddend => "local_ratelimit_invalid_hits_addend",
        }
    }
});

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

/// Whether the limit's counter names take a value from the request.
fn per_value(limit: &Limit) -> bool {
    limit.detailed_metric
        || limit
            .name_parts
            .iter()
            .any(|part| matches!(part, NamePart::RequestValue(_)))
}

/// The rule's label: its stats key, or its `value_to_metric` name with the request's `values`
/// where the name takes them (and after it the last value, with `detailed_metric`).
fn rule_label(limit: &Limit, values: &[String]) -> String {
    let value_at = |i: usize| sanitize(values.get(i).map_or("", String::as_str));
    let mut name = String::new();
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
                name.push_str(key);
                name.push('_');
                name.push_str(&value_at(i));
            }
        }
    }
    if limit.detailed_metric {
        name.push('_');
        name.push_str(&value_at(values.len().saturating_sub(1)));
    }
    name
}

/// The metric name of a rule's statistic.
fn rule_metric(domain: &str, rule: &str, stat: Stat) -> String {
    tagged_name(stat.metric(), &[(DOMAIN, domain), (RULE, rule)])
}

/// The configuration's counters: the fixed ones defined when it was accepted, the per-value ones
/// on first use.
pub struct Registry<H: MetricHost> {
    host: H,
    domain: String,
    plugin: CounterTable<PluginStat>,
    /// Per limit (by [`Limit::id`]), the five counters of a rule whose name takes no request
    /// value; `None` for a per-value rule.
    fixed: Vec<Option<CounterTable<Stat>>>,
    /// Per-value names to host ids.
    ids: HashMap<String, u32>,
    detailed_values: usize,
}

impl<H: MetricHost> Registry<H> {
    /// Defines the plugin counters of `domain` and the counters of every rule of `limits` (a
    /// configuration's, in [`Limit::id`] order) whose name takes no request value.
    pub fn define(mut host: H, domain: &str, limits: &[Limit]) -> Self {
        let plugin = CounterTable::define_tagged(&mut host, &[(DOMAIN, domain)]);
        let fixed = limits
            .iter()
            .map(|limit| {
                (!per_value(limit)).then(|| {
                    let rule = rule_label(limit, &[]);
                    CounterTable::define_tagged(&mut host, &[(DOMAIN, domain), (RULE, &rule)])
                })
            })
            .collect();
        Registry {
            host,
            domain: domain.to_string(),
            plugin,
            fixed,
            ids: HashMap::new(),
            detailed_values: 0,
        }
    }

    /// Counts under a per-value name, defined on first use. While the per-value budget lasts a
    /// new value gets its own name; after it, the rule's stats key.
    fn count_per_value(&mut self, limit: &Limit, values: &[String], stat: Stat) {
        let label = rule_label(limit, values);
        let seen = self
            .ids
            .contains_key(&rule_metric(&self.domain, &label, Stat::TotalHits));
        let label = if seen || self.detailed_values < MAX_DETAILED_NAMES {
            if !seen {
                self.detailed_values += 1;
            }
            label
        } else {
            limit.full_key.clone()
        };
        let name = rule_metric(&self.domain, &label, stat);
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
        match self.fixed.get(limit.id) {
            // Defined when the configuration was accepted: no name built, no lookup by name.
            Some(Some(table)) => table.add(&mut self.host, stat, 1),
            // A per-value rule: named from the request, within the budget.
            _ => self.count_per_value(limit, values, stat),
        }
    }

    fn plugin(&mut self, stat: PluginStat) {
        self.plugin.add(&mut self.host, stat, 1);
    }
}

#[cfg(test)]
pub mod fake {
    use super::*;
    use std::collections::BTreeMap;

    /// Counts by name; `values` holds the counters incremented at least once.
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

        /// Every name passed to `define`, in order (one entry per call).
        pub fn defined(&self) -> &[String] {
            &self.names
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
    #[cfg(all(target_arch = "wasm32", target_os = "unknown"))]
    use wasm_bindgen_test::wasm_bindgen_test as test;

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

    fn compiled(config: &str) -> crate::compiled::Compiled {
        crate::compiled::compile(
            plugin_kit::config::parse::<crate::config::Config>(config.as_bytes()).unwrap(),
        )
        .unwrap()
    }

    /// A fixed rule, a shared wildcard renamed by `value_to_metric` (fixed too), a
    /// `detailed_metric` rule and a rule below a `value_to_metric` value-less key (per value).
    const MIXED: &str = r#"{"domain":"m","descriptors":[
        {"key":"path","value":"/a","rate_limit":{"unit":"minute","requests_per_unit":1}},
        {"key":"route","value":"api/*","share_threshold":true,"value_to_metric":true,
         "descriptors":[{"key":"method","rate_limit":{"unit":"minute","requests_per_unit":1}}]},
        {"key":"user","detailed_metric":true,"rate_limit":{"unit":"minute","requests_per_unit":1}},
        {"key":"tenant","value_to_metric":true,
         "descriptors":[{"key":"op","rate_limit":{"unit":"minute","requests_per_unit":1}}]}]}"#;

    #[test]
    fn stats_are_indexed_by_position() {
        plugin_kit::metrics::check_counter_set::<Stat>().unwrap();
        plugin_kit::metrics::check_counter_set::<PluginStat>().unwrap();
    }

    #[test]
    fn configuration_defines_its_fixed_counters_at_zero() {
        let compiled = compiled(MIXED);
        let r = Registry::define(FakeHost::default(), "m", compiled.tree.limits());
        let mut expected: Vec<String> = [
            "table_overflow",
            "cas_exhausted",
            "store_error",
            "invalid_hits_addend",
        ]
        .iter()
        .map(|stat| plugin_name("m", stat))
        .collect();
        for rule in ["path_/a", "route_api.method"] {
            for stat in [
                "total_hits",
                "over_limit",
                "near_limit",
                "within_limit",
                "shadow_mode",
            ] {
                expected.push(rule_name("m", rule, stat));
            }
        }
        // Per-value rules have no name until a request gives their value.
        assert_eq!(r.host().defined(), expected);
        assert!(r.host().values.is_empty(), "{:?}", r.host().values);
    }

    #[test]
    fn counting_a_fixed_rule_defines_nothing_and_builds_no_name() {
        let compiled = compiled(MIXED);
        let limits = compiled.tree.limits();
        let mut r = Registry::define(FakeHost::default(), "m", limits);
        let defined = r.host().defined().len();
        for _ in 0..3 {
            for stat in Stat::ALL {
                r.rule(&limits[0], &values(&["/a"]), stat);
                r.rule(&limits[1], &values(&["api/*", "GET"]), stat);
            }
            r.plugin(PluginStat::StoreError);
        }
        assert_eq!(r.host().defined().len(), defined);
        // The per-value path (name built, looked up by name) was never taken.
        assert!(r.ids.is_empty());
        assert_eq!(r.host().get(&rule_name("m", "path_/a", "near_limit")), 3);
        assert_eq!(
            r.host()
                .get(&rule_name("m", "route_api.method", "total_hits")),
            3
        );
        assert_eq!(r.host().get(&plugin_name("m", "store_error")), 3);
        // A per-value rule is named on first use only.
        r.rule(&limits[2], &values(&["alice"]), Stat::TotalHits);
        r.rule(&limits[2], &values(&["alice"]), Stat::TotalHits);
        r.rule(&limits[3], &values(&["t1", "read"]), Stat::TotalHits);
        assert_eq!(
            r.host().defined()[defined..],
            [
                rule_name("m", "user_alice", "total_hits"),
                rule_name("m", "tenant_t1.op", "total_hits")
            ]
        );
        assert_eq!(r.host().get(&rule_name("m", "user_alice", "total_hits")), 2);
    }

    #[test]
    fn rule_names_follow_upstream_keys() {
        let mut r = Registry::define(FakeHost::default(), "ratelimit", &[limit(false)]);
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
        let mut r = Registry::define(FakeHost::default(), "d", &[limit(true)]);
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
        let mut r = Registry::define(FakeHost::default(), "d", &[limit(true)]);
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
            let mut r = Registry::define(
                FakeHost::default(),
                &compiled.domain,
                compiled.tree.limits(),
            );
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
