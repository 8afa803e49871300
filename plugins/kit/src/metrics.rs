//! Metric naming shared by the plugins and by whatever renders Envoy's bootstrap.
//!
//! proxy-wasm metrics have a name and no tags. To get labeled Prometheus series, the tags are
//! encoded in the name the way Istio's own stats did it — `model=.=bert;.;label=.=joy;.;name` —
//! and Envoy's `stats_config.stats_tags` regexes cut them back out: the part the regex's first
//! group matched is removed from the name, its second group becomes the tag value. Envoy stores
//! plugin metrics as `wasmcustom.<name>` and prints them on `/stats/prometheus` without that
//! prefix, so the series above reads `name{model="bert",label="joy"}`.
//!
//! [`stats_tags`] gives exactly what Istio renders for `proxyConfig.extraStatTags`, so a local
//! Envoy (the test harness) and an Istio gateway extract the same labels.
//!
//! A plugin lists its fixed counters as data ([`CounterSet`], usually an enum) and keeps their
//! ids in a [`CounterTable`], defined once through [`MetricHost`]; the request path only indexes.

use std::fmt;
use std::marker::PhantomData;

/// What a metric is to the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricKind {
    Counter,
    Histogram,
}

/// The host's metric calls as the plugins' logic sees them (the glue passes
/// [`crate::host::HostMetrics`], tests a fake). A failed definition gives `None`: the metric is
/// then skipped, never the request.
pub trait MetricHost {
    fn define(&mut self, kind: MetricKind, name: &str) -> Option<u32>;
    fn increment(&mut self, id: u32, by: u64);
    fn record(&mut self, id: u32, value: u64);
}

/// A plugin's fixed counters, listed as data: each value of the type is one counter, with its
/// position in [`CounterSet::all`] computed (not searched) and its name built from a metric name
/// and tags. [`CounterTable`] defines them all once and keeps their ids.
pub trait CounterSet: Copy {
    /// Every counter, in the order of [`CounterSet::index`].
    fn all() -> Vec<Self>;
    /// The counter's position in [`CounterSet::all`].
    fn index(self) -> usize;
    /// The metric's name, without tags.
    fn metric(self) -> &'static str;
    /// The counter's tags, encoded in its name by [`tagged_name`].
    fn tags(self) -> Vec<(Tag, &'static str)> {
        Vec::new()
    }
    /// The name the counter is defined under.
    fn name(self) -> String {
        tagged_name(self.metric(), &self.tags())
    }
}

/// The host's ids of every counter of `C`, defined once (when a configuration is accepted, or
/// when a series first appears): a request finds its counter's id by position, and no name is
/// built on the request path. A counter the host refused to define is skipped.
#[derive(Debug)]
pub struct CounterTable<C> {
    ids: Vec<Option<u32>>,
    counters: PhantomData<C>,
}

impl<C: CounterSet> CounterTable<C> {
    /// Defines every counter of `C` under [`CounterSet::name`].
    pub fn define(host: &mut impl MetricHost) -> Self {
        Self::define_tagged(host, &[])
    }

    /// Defines every counter of `C` with `tags` before its own (for series of one model, say).
    pub fn define_tagged(host: &mut impl MetricHost, tags: &[(Tag, &str)]) -> Self {
        let ids = C::all()
            .into_iter()
            .map(|counter| {
                let mut all_tags = tags.to_vec();
                all_tags.extend(counter.tags());
                host.define(
                    MetricKind::Counter,
                    &tagged_name(counter.metric(), &all_tags),
                )
            })
            .collect();
        Self {
            ids,
            counters: PhantomData,
        }
    }

    /// The host's id of `counter`, if it was defined.
    pub fn id(&self, counter: C) -> Option<u32> {
        self.ids.get(counter.index()).copied().flatten()
    }

    /// Adds `by` to `counter`; adding 0 costs no hostcall.
    pub fn add(&self, host: &mut impl MetricHost, counter: C, by: u64) {
        if by == 0 {
            return;
        }
        if let Some(id) = self.id(counter) {
            host.increment(id, by);
        }
    }
}

/// What a plugin's unit test asks of its [`CounterSet`]: every counter at its index, every name
/// different.
pub fn check_counter_set<C: CounterSet + fmt::Debug>() -> Result<(), String> {
    let all = C::all();
    if let Some((at, counter)) = all.iter().enumerate().find(|(at, c)| c.index() != *at) {
        return Err(format!(
            "{counter:?} is at {at} but its index is {}",
            counter.index()
        ));
    }
    let mut names: Vec<String> = all.iter().map(|c| c.name()).collect();
    names.sort();
    names.dedup();
    if names.len() != all.len() {
        return Err("two counters have the same name".to_string());
    }
    Ok(())
}

/// A tag Envoy extracts from metric names. Only the tags listed in [`ALL_TAGS`] exist, so every
/// tag a plugin encodes has its extraction regex in [`stats_tags`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tag(&'static str);

impl Tag {
    /// The Prometheus label name.
    pub fn name(self) -> &'static str {
        self.0
    }
}

/// The model a request addressed (from its path).
pub const MODEL: Tag = Tag("model");
/// A class label a model predicted.
pub const LABEL: Tag = Tag("label");
/// How a plugin classified what it saw (for example a response outcome).
pub const OUTCOME: Tag = Tag("outcome");

/// What a count is of, when a metric counts several things (`prompt` or `completion` tokens).
pub const KIND: Tag = Tag("kind");
/// A rate limit domain (the upstream service's `domain`).
pub const DOMAIN: Tag = Tag("domain");
/// A rate limit rule: the upstream service's stats key of a limit.
pub const RULE: Tag = Tag("rule");

/// Every tag of the collection. Tag extraction matches anywhere in a name, so no tag name may end
/// with another one (`top_label` would also feed `label`); a unit test checks it.
pub const ALL_TAGS: &[Tag] = &[MODEL, LABEL, OUTCOME, KIND, DOMAIN, RULE];

/// Longest tag value kept; longer values are cut, so a hostile path cannot make huge names.
pub const MAX_TAG_VALUE_LEN: usize = 64;

/// What an empty value (after sanitizing) is reported as; an empty tag would vanish the label.
pub const EMPTY_TAG_VALUE: &str = "unknown";

/// Makes `value` safe inside an encoded name: ASCII letters, digits, `_` and `-` are kept, every
/// other character (`.` and `;` would break extraction, `=` or quotes the Prometheus output)
/// becomes `_`; the result is cut to [`MAX_TAG_VALUE_LEN`] bytes and never empty.
pub fn sanitize_tag_value(value: &str) -> String {
    let sanitized: String = value
        .chars()
        .take(MAX_TAG_VALUE_LEN)
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if sanitized.is_empty() {
        EMPTY_TAG_VALUE.to_string()
    } else {
        sanitized
    }
}

/// The proxy-wasm metric name for `metric` with `tags`: each tag as `<tag>=.=<value>;.;` (value
/// sanitized with [`sanitize_tag_value`]), then the metric name. Envoy reports it as
/// `metric{tag="value",...}` once [`stats_tags`] are configured.
pub fn tagged_name(metric: &str, tags: &[(Tag, &str)]) -> String {
    let mut name = String::with_capacity(metric.len() + tags.len() * 24);
    for (tag, value) in tags {
        name.push_str(tag.name());
        name.push_str("=.=");
        name.push_str(&sanitize_tag_value(value));
        name.push_str(";.;");
    }
    name.push_str(metric);
    name
}

/// The regex that extracts `tag`, in the form Istio renders for an `extraStatTags` entry.
pub fn stats_tag_regex(tag: Tag) -> String {
    format!(r"({}=\.=(.*?);\.;)", tag.name())
}

/// The `(tag_name, regex)` pairs for Envoy's `stats_config.stats_tags`, one per tag of
/// [`ALL_TAGS`]. On Istio the same entries come from listing the tag names in
/// `proxyConfig.extraStatTags`.
pub fn stats_tags() -> Vec<(&'static str, String)> {
    ALL_TAGS
        .iter()
        .map(|tag| (tag.name(), stats_tag_regex(*tag)))
        .collect()
}

/// Bucket upper bounds for plugin histograms. They record percentages (0 to 100) and
/// milliseconds (a model call: 1 ms to a minute), in whole numbers (proxy-wasm histograms take
/// integers). Bucket settings match stat names by prefix, and every plugin histogram shares the
/// `wasmcustom` one (tags come first in encoded names), so one list serves both: fine steps up to
/// 100, then the latency range. Envoy's defaults have only 7 bounds up to 100.
pub const HISTOGRAM_BUCKETS: &[f64] = &[
    1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 40.0, 50.0, 60.0, 70.0, 80.0, 85.0, 90.0, 95.0, 98.0, 99.0,
    100.0, 150.0, 250.0, 500.0, 1_000.0, 2_500.0, 5_000.0, 10_000.0, 30_000.0, 60_000.0,
];

/// The `(stat name prefix, bucket bounds)` pairs for Envoy's
/// `stats_config.histogram_bucket_settings` (`match: {prefix}`). The prefix is Envoy's
/// namespace of every plugin metric: tags come first in encoded names, so no narrower prefix
/// exists. On Istio the same setting is the proxy annotation
/// `sidecar.istio.io/statsHistogramBuckets: '{"wasmcustom":[1,2,5,10,...]}'`.
pub fn histogram_bucket_settings() -> Vec<(&'static str, &'static [f64])> {
    vec![(PLUGIN_STATS_PREFIX, HISTOGRAM_BUCKETS)]
}

/// [`HISTOGRAM_BUCKETS`] as Istio's `sidecar.istio.io/statsHistogramBuckets` annotation value.
pub fn histogram_buckets_annotation() -> String {
    let bounds: Vec<String> = HISTOGRAM_BUCKETS.iter().map(|b| b.to_string()).collect();
    format!(r#"{{"{PLUGIN_STATS_PREFIX}":[{}]}}"#, bounds.join(","))
}

/// The namespace Envoy stores proxy-wasm metrics under (`wasmcustom.<name>`); the Prometheus
/// output drops it.
pub const PLUGIN_STATS_PREFIX: &str = "wasmcustom";

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(all(target_arch = "wasm32", target_os = "unknown"))]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    #[test]
    fn encodes_tags_before_the_name() {
        let name = tagged_name(
            "emotion_stats_top_label_total",
            &[(MODEL, "bert"), (LABEL, "joy")],
        );
        assert_eq!(
            name,
            "model=.=bert;.;label=.=joy;.;emotion_stats_top_label_total"
        );
        assert_eq!(tagged_name("plain", &[]), "plain");
    }

    #[test]
    fn sanitizing_removes_separators_and_bounds_length() {
        assert_eq!(sanitize_tag_value("bert.v2;.;x=.=y"), "bert_v2___x___y");
        assert_eq!(sanitize_tag_value("a\"b\\c\nd é"), "a_b_c_d__");
        assert_eq!(sanitize_tag_value("Model-1_b"), "Model-1_b");
        assert_eq!(sanitize_tag_value(""), EMPTY_TAG_VALUE);
        let long = "x".repeat(10_000);
        assert_eq!(sanitize_tag_value(&long).len(), MAX_TAG_VALUE_LEN);
        // Multi-byte characters count once and become one `_`.
        assert_eq!(
            sanitize_tag_value(&"é".repeat(100)),
            "_".repeat(MAX_TAG_VALUE_LEN)
        );
    }

    #[test]
    fn hostile_value_cannot_inject_another_tag() {
        let name = tagged_name("m", &[(MODEL, "x;.;label=.=evil")]);
        assert_eq!(name.matches("=.=").count(), 1);
        assert_eq!(name.matches(";.;").count(), 1);
    }

    #[test]
    fn stats_tags_match_istio_extra_stat_tags_form() {
        let tags = stats_tags();
        assert_eq!(tags.len(), ALL_TAGS.len());
        assert!(tags.contains(&("model", r"(model=\.=(.*?);\.;)".to_string())));
        assert!(tags.contains(&("label", r"(label=\.=(.*?);\.;)".to_string())));
        assert!(tags.contains(&("outcome", r"(outcome=\.=(.*?);\.;)".to_string())));
    }

    #[test]
    fn buckets_cover_percentages_and_a_minute_of_milliseconds() {
        assert!(HISTOGRAM_BUCKETS.windows(2).all(|w| w[0] < w[1]));
        assert!(HISTOGRAM_BUCKETS.contains(&100.0));
        assert_eq!(HISTOGRAM_BUCKETS.first(), Some(&1.0));
        assert_eq!(HISTOGRAM_BUCKETS.last(), Some(&60_000.0));
        assert_eq!(
            histogram_bucket_settings(),
            vec![("wasmcustom", HISTOGRAM_BUCKETS)]
        );
        assert_eq!(
            histogram_buckets_annotation(),
            r#"{"wasmcustom":[1,2,5,10,20,30,40,50,60,70,80,85,90,95,98,99,100,150,250,500,1000,2500,5000,10000,30000,60000]}"#
        );
    }

    #[test]
    fn no_tag_name_ends_with_another() {
        for a in ALL_TAGS {
            for b in ALL_TAGS {
                if a != b {
                    assert!(
                        !a.name().ends_with(b.name()),
                        "{} ends with {}",
                        a.name(),
                        b.name()
                    );
                }
            }
        }
    }

    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum Probe {
        Plain,
        Tagged(bool),
    }

    impl CounterSet for Probe {
        fn all() -> Vec<Self> {
            vec![Probe::Plain, Probe::Tagged(true), Probe::Tagged(false)]
        }
        fn index(self) -> usize {
            match self {
                Probe::Plain => 0,
                Probe::Tagged(yes) => 1 + usize::from(!yes),
            }
        }
        fn metric(self) -> &'static str {
            match self {
                Probe::Plain => "probe_plain_total",
                Probe::Tagged(_) => "probe_tagged_total",
            }
        }
        fn tags(self) -> Vec<(Tag, &'static str)> {
            match self {
                Probe::Plain => Vec::new(),
                Probe::Tagged(yes) => vec![(OUTCOME, if yes { "yes" } else { "no" })],
            }
        }
    }

    /// Gives ids from 10 up, refuses names containing `refused`, records increments.
    #[derive(Default)]
    struct Recorder {
        defined: Vec<String>,
        added: Vec<(u32, u64)>,
    }

    impl MetricHost for Recorder {
        fn define(&mut self, _kind: MetricKind, name: &str) -> Option<u32> {
            self.defined.push(name.to_string());
            (!name.contains("refused")).then(|| 10 + self.defined.len() as u32 - 1)
        }
        fn increment(&mut self, id: u32, by: u64) {
            self.added.push((id, by));
        }
        fn record(&mut self, _id: u32, _value: u64) {}
    }

    #[test]
    fn counter_table_defines_once_and_adds_by_position() {
        check_counter_set::<Probe>().unwrap();
        let mut host = Recorder::default();
        let table = CounterTable::<Probe>::define(&mut host);
        assert_eq!(
            host.defined,
            [
                "probe_plain_total",
                "outcome=.=yes;.;probe_tagged_total",
                "outcome=.=no;.;probe_tagged_total"
            ]
        );
        table.add(&mut host, Probe::Tagged(false), 3);
        table.add(&mut host, Probe::Plain, 0);
        assert_eq!(host.added, [(12, 3)]);

        let mut host = Recorder::default();
        let table = CounterTable::<Probe>::define_tagged(&mut host, &[(MODEL, "refused")]);
        assert_eq!(
            host.defined[1],
            "model=.=refused;.;outcome=.=yes;.;probe_tagged_total"
        );
        table.add(&mut host, Probe::Plain, 1);
        assert_eq!(table.id(Probe::Plain), None);
        assert!(host.added.is_empty());
    }
}
