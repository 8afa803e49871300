//! Counters named like the upstream service's (`ratelimit.service.rate_limit.<domain>.<key>.*`),
//! under `local_ratelimit.<domain>.<key>.<stat>`, plus a few plugin-level ones. The number of
//! names is bounded: per-value names exist only with `detailed_metric`, at most
//! [`MAX_DETAILED_NAMES`] per worker, each value cut and sanitized.

use crate::matcher::Limit;
use hashbrown::HashMap;

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
    fn name(self) -> &'static str {
        match self {
            Stat::TotalHits => "total_hits",
            Stat::OverLimit => "over_limit",
            Stat::NearLimit => "near_limit",
            Stat::WithinLimit => "within_limit",
            Stat::ShadowMode => "shadow_mode",
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
}

impl PluginStat {
    fn name(self) -> &'static str {
        match self {
            PluginStat::TableOverflow => "table_overflow",
            PluginStat::Contention => "cas_exhausted",
            PluginStat::StoreError => "store_error",
        }
    }
}

/// What the decision logic reports.
pub trait Counters {
    fn rule(&mut self, limit: &Limit, value: &str, stat: Stat);
    fn plugin(&mut self, stat: PluginStat);
}

/// The host's metric calls.
pub trait MetricHost {
    fn define_counter(&mut self, name: &str) -> Option<u32>;
    fn increment(&mut self, id: u32);
}

/// Per-value names kept per worker; later values count under the rule's name.
pub const MAX_DETAILED_NAMES: usize = 100;
/// Longest value put in a name.
pub const MAX_VALUE_IN_NAME: usize = 64;

/// Names to host metric ids, defined on first use.
pub struct Registry<H: MetricHost> {
    host: H,
    prefix: String,
    ids: HashMap<String, u32>,
    detailed_values: usize,
}

impl<H: MetricHost> Registry<H> {
    pub fn new(host: H, domain: &str) -> Self {
        Registry {
            host,
            prefix: format!("local_ratelimit.{domain}."),
            ids: HashMap::new(),
            detailed_values: 0,
        }
    }

    fn count(&mut self, name: String) {
        let id = match self.ids.get(&name) {
            Some(&id) => Some(id),
            None => {
                let id = self.host.define_counter(&name);
                if let Some(id) = id {
                    self.ids.insert(name, id);
                }
                id
            }
        };
        if let Some(id) = id {
            self.host.increment(id);
        }
    }

    fn rule_scope(&mut self, limit: &Limit, value: &str) -> String {
        if limit.detailed_metric {
            let scope = format!("{}{}_{}", self.prefix, limit.full_key, sanitize(value));
            if self
                .ids
                .contains_key(&format!("{scope}.{}", Stat::TotalHits.name()))
            {
                return scope;
            }
            if self.detailed_values < MAX_DETAILED_NAMES {
                self.detailed_values += 1;
                return scope;
            }
        }
        format!("{}{}", self.prefix, limit.full_key)
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
    fn rule(&mut self, limit: &Limit, value: &str, stat: Stat) {
        let scope = self.rule_scope(limit, value);
        self.count(format!("{scope}.{}", stat.name()));
    }

    fn plugin(&mut self, stat: PluginStat) {
        self.count(format!("{}{}", self.prefix, stat.name()));
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
        fn define_counter(&mut self, name: &str) -> Option<u32> {
            self.names.push(name.to_string());
            u32::try_from(self.names.len() - 1).ok()
        }
        fn increment(&mut self, id: u32) {
            let name = self.names[id as usize].clone();
            *self.values.entry(name).or_default() += 1;
        }
    }

    impl FakeHost {
        pub fn get(&self, name: &str) -> u64 {
            self.values.get(name).copied().unwrap_or(0)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::fake::FakeHost;
    use super::*;
    use crate::matcher::LimitKind;

    fn limit(detailed: bool) -> Limit {
        Limit {
            full_key: "path".to_string(),
            kind: LimitKind::Unlimited,
            shadow_mode: false,
            detailed_metric: detailed,
            name: None,
            replaces: vec![],
            static_values: None,
        }
    }

    #[test]
    fn rule_names_follow_upstream_keys() {
        let mut r = Registry::new(FakeHost::default(), "ratelimit");
        r.rule(&limit(false), "/a", Stat::TotalHits);
        r.rule(&limit(false), "/b", Stat::TotalHits);
        r.plugin(PluginStat::TableOverflow);
        assert_eq!(r.host().get("local_ratelimit.ratelimit.path.total_hits"), 2);
        assert_eq!(r.host().get("local_ratelimit.ratelimit.table_overflow"), 1);
        assert_eq!(r.host().values.len(), 2);
    }

    #[test]
    fn detailed_names_are_bounded_sanitized_and_cut() {
        let mut r = Registry::new(FakeHost::default(), "d");
        for i in 0..1_000 {
            r.rule(&limit(true), &format!("v{i}"), Stat::TotalHits);
        }
        // A value seen before keeps its name once the cap is reached.
        r.rule(&limit(true), "v0", Stat::TotalHits);
        assert_eq!(r.host().values.len(), MAX_DETAILED_NAMES + 1);
        assert_eq!(r.host().get("local_ratelimit.d.path_v0.total_hits"), 2);
        assert_eq!(
            r.host().get("local_ratelimit.d.path.total_hits"),
            1_000 - MAX_DETAILED_NAMES as u64
        );
        let mut r = Registry::new(FakeHost::default(), "d");
        r.rule(
            &limit(true),
            &format!("a.b{{}}\n{}", "x".repeat(10_000)),
            Stat::OverLimit,
        );
        let name = r.host().values.keys().next().unwrap().clone();
        assert!(name.starts_with("local_ratelimit.d.path_a_b___"), "{name}");
        assert!(name.len() < 120, "{name}");
    }
}
