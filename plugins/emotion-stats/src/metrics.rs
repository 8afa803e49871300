//! The plugin's metrics: their names, their definition, and what one verdict adds to them. The
//! host is reached through [`MetricHost`] so all of it is unit-tested.

use crate::compiled::{Compiled, LabelSet};
use crate::response::{Outcome, Verdict};
use hashbrown::HashMap;
use plugin_kit::metrics::{tagged_name, CounterTable, Tag, KIND, LABEL, MODEL, OUTCOME};
pub use plugin_kit::metrics::{MetricHost, MetricKind};

/// Counter `{model, label}`: one per prediction, by top label.
pub const TOP_LABEL_TOTAL: &str = "emotion_stats_top_label_total";
/// Histogram `{model, label}` of the winning score in percent (Envoy histograms hold integers).
pub const TOP_SCORE_PERCENT: &str = "emotion_stats_top_score_percent";
/// Counter `{model, outcome}`: one per response on a configured path.
pub const RESPONSES_TOTAL: &str = "emotion_stats_responses_total";
/// Histogram `{model}`: milliseconds from the request headers to the end of the response.
pub const REQUEST_DURATION_MS: &str = "emotion_stats_request_duration_milliseconds";
/// Counter `{model, kind}`: the tokens OpenAI-style answers report, `prompt` and `completion`.
pub const TOKENS_TOTAL: &str = "emotion_stats_tokens_total";

/// The series of one model, defined together when the model is first seen so that they all
/// start at zero.
#[derive(Debug)]
struct ModelSeries {
    responses: CounterTable<Outcome>,
    /// Per label of the [`LabelSet`].
    top_label: Vec<Option<u32>>,
    top_score: Vec<Option<u32>>,
    duration: Option<u32>,
    prompt_tokens: Option<u32>,
    completion_tokens: Option<u32>,
}

impl ModelSeries {
    fn define(model: &str, labels: &LabelSet, host: &mut impl MetricHost) -> Self {
        let mut by_label = |metric: &str, kind: MetricKind| -> Vec<Option<u32>> {
            labels
                .names()
                .iter()
                .map(|label| {
                    host.define(
                        kind,
                        &tagged_name(metric, &[(MODEL, model), (LABEL, label)]),
                    )
                })
                .collect()
        };
        let top_label = by_label(TOP_LABEL_TOTAL, MetricKind::Counter);
        let top_score = by_label(TOP_SCORE_PERCENT, MetricKind::Histogram);
        let responses = CounterTable::define_tagged(host, &[(MODEL, model)]);
        let duration = host.define(
            MetricKind::Histogram,
            &tagged_name(REQUEST_DURATION_MS, &[(MODEL, model)]),
        );
        let mut tokens = |kind: &str| {
            host.define(
                MetricKind::Counter,
                &tagged_name(TOKENS_TOTAL, &[(MODEL, model), (KIND, kind)]),
            )
        };
        let prompt_tokens = tokens("prompt");
        let completion_tokens = tokens("completion");
        Self {
            responses,
            top_label,
            top_score,
            duration,
            prompt_tokens,
            completion_tokens,
        }
    }
}

/// Metric ids of one VM: the legacy label counters up front, the rest per model. Models are
/// bounded by [`crate::models::ModelNames`], so the map is too.
#[derive(Debug)]
pub struct EmotionMetrics {
    legacy_by_label: Vec<Option<u32>>,
    models: HashMap<String, ModelSeries>,
}

impl EmotionMetrics {
    pub fn define(config: &Compiled, host: &mut impl MetricHost) -> Self {
        // The BERT emotion walkthrough's plugin named its counters after the labels themselves.
        let legacy_by_label = if config.legacy_label_counters {
            config
                .labels
                .configured()
                .iter()
                .map(|label| host.define(MetricKind::Counter, label))
                .collect()
        } else {
            Vec::new()
        };
        Self {
            legacy_by_label,
            models: HashMap::new(),
        }
    }

    /// Adds one response of `model` (its bounded `model` tag value): its outcome, how long it
    /// took (`None` when the host gave no time), and its predictions.
    pub fn count(
        &mut self,
        verdict: &Verdict,
        model: &str,
        duration_ms: Option<u64>,
        labels: &LabelSet,
        host: &mut impl MetricHost,
    ) {
        if !self.models.contains_key(model) {
            let series = ModelSeries::define(model, labels, host);
            self.models.insert(model.to_string(), series);
        }
        let Some(series) = self.models.get(model) else {
            return;
        };
        series.responses.add(host, verdict.outcome, 1);
        if let (Some(ms), Some(id)) = (duration_ms, series.duration) {
            host.record(id, ms);
        }
        if let Some(usage) = verdict.usage {
            for (tokens, id) in [
                (usage.prompt, series.prompt_tokens),
                (usage.completion, series.completion_tokens),
            ] {
                if let Some(id) = id {
                    host.increment(id, tokens);
                }
            }
        }
        let mut per_label = vec![0u64; labels.names().len()];
        for prediction in &verdict.predictions {
            let at = labels.index_of(&prediction.label);
            if let Some(count) = per_label.get_mut(at) {
                *count += 1;
            }
            let percent = prediction.score.and_then(score_percent);
            let histogram = series.top_score.get(at).copied().flatten();
            if let (Some(percent), Some(id)) = (percent, histogram) {
                host.record(id, percent);
            }
        }
        for (at, count) in per_label.iter().enumerate().filter(|(_, c)| **c > 0) {
            if let Some(id) = series.top_label.get(at).copied().flatten() {
                host.increment(id, *count);
            }
            if let Some(id) = self.legacy_by_label.get(at).copied().flatten() {
                host.increment(id, *count);
            }
        }
    }
}

// `emotion_stats_responses_total{model, outcome}`: the series of one model are defined together
// (with the model's tag first), when the model is first seen.
plugin_kit::enum_counter_set!(Outcome {
    fn metric(self) -> &'static str {
        RESPONSES_TOTAL
    }

    fn tags(self) -> Vec<(Tag, &'static str)> {
        vec![(OUTCOME, self.as_str())]
    }
});

/// A probability in percent, rounded; scores outside [0, 1] (logits) are not probabilities and
/// are left out of the histogram.
fn score_percent(score: f64) -> Option<u64> {
    (0.0..=1.0)
        .contains(&score)
        .then(|| (score * 100.0).round() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(all(target_arch = "wasm32", target_os = "unknown"))]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    #[test]
    fn outcome_counters_are_indexed_by_position() {
        plugin_kit::metrics::check_counter_set::<Outcome>().unwrap();
    }
    use crate::compiled::compile;
    use crate::config::Config;
    use crate::prediction::TopPrediction;

    /// Metrics as Envoy keeps them: by name, shared by every definer of the name.
    #[derive(Default)]
    struct FakeHost {
        names: Vec<(MetricKind, String)>,
        counters: HashMap<u32, u64>,
        samples: HashMap<u32, Vec<u64>>,
        refuse: bool,
    }

    impl FakeHost {
        fn id_of(&self, name: &str) -> Option<u32> {
            self.names
                .iter()
                .position(|(_, n)| n == name)
                .and_then(|at| u32::try_from(at).ok())
        }

        fn counter(&self, name: &str) -> u64 {
            let id = self
                .id_of(name)
                .unwrap_or_else(|| panic!("{name} not defined"));
            self.counters.get(&id).copied().unwrap_or(0)
        }

        fn samples(&self, name: &str) -> Vec<u64> {
            let id = self
                .id_of(name)
                .unwrap_or_else(|| panic!("{name} not defined"));
            self.samples.get(&id).cloned().unwrap_or_default()
        }
    }

    impl MetricHost for FakeHost {
        fn define(&mut self, kind: MetricKind, name: &str) -> Option<u32> {
            if self.refuse {
                return None;
            }
            if let Some(id) = self.id_of(name) {
                return Some(id);
            }
            self.names.push((kind, name.to_string()));
            u32::try_from(self.names.len() - 1).ok()
        }

        fn increment(&mut self, id: u32, by: u64) {
            *self.counters.entry(id).or_default() += by;
        }

        fn record(&mut self, id: u32, value: u64) {
            self.samples.entry(id).or_default().push(value);
        }
    }

    fn config(json: &str) -> Compiled {
        compile(plugin_kit::config::parse::<Config>(json.as_bytes()).unwrap()).unwrap()
    }

    fn counted(predictions: &[(&str, Option<f64>)]) -> Verdict {
        Verdict {
            predictions: predictions
                .iter()
                .map(|(label, score)| TopPrediction {
                    label: label.to_string(),
                    score: *score,
                })
                .collect(),
            ..Verdict::of(Outcome::Counted)
        }
    }

    fn top_label(model: &str, label: &str) -> String {
        format!("model=.={model};.;label=.={label};.;{TOP_LABEL_TOTAL}")
    }

    fn top_score(model: &str, label: &str) -> String {
        format!("model=.={model};.;label=.={label};.;{TOP_SCORE_PERCENT}")
    }

    fn outcome(model: &str, name: &str) -> String {
        format!("model=.={model};.;outcome=.={name};.;{RESPONSES_TOTAL}")
    }

    fn duration(model: &str) -> String {
        format!("model=.={model};.;{REQUEST_DURATION_MS}")
    }

    #[test]
    fn a_models_series_are_defined_together_at_zero() {
        let compiled = config("{}");
        let mut host = FakeHost::default();
        let mut metrics = EmotionMetrics::define(&compiled, &mut host);
        assert!(host.names.is_empty(), "nothing before a model is seen");
        let verdict = Verdict::of(Outcome::ClientError);
        metrics.count(&verdict, "bert", Some(12), &compiled.labels, &mut host);
        for o in Outcome::ALL {
            let want = u64::from(o == Outcome::ClientError);
            assert_eq!(host.counter(&outcome("bert", o.as_str())), want);
        }
        for label in compiled.labels.names() {
            assert_eq!(host.counter(&top_label("bert", label)), 0);
            assert!(host
                .names
                .contains(&(MetricKind::Histogram, top_score("bert", label))));
        }
        assert_eq!(host.samples(&duration("bert")), vec![12]);
        assert_eq!(host.names.len(), Outcome::ALL.len() + 7 + 7 + 1 + 2);
    }

    /// Three predictions and one 500 on one model: four latencies, one `5xx`.
    #[test]
    fn every_response_has_its_latency_and_outcome_under_its_model() {
        let compiled = config("{}");
        let mut host = FakeHost::default();
        let mut metrics = EmotionMetrics::define(&compiled, &mut host);
        for ms in [40, 55, 61] {
            metrics.count(
                &counted(&[("joy", Some(0.9))]),
                "bert",
                Some(ms),
                &compiled.labels,
                &mut host,
            );
        }
        let failed = Verdict::of(Outcome::ServerError);
        metrics.count(&failed, "bert", Some(3), &compiled.labels, &mut host);
        metrics.count(&failed, "gpt", None, &compiled.labels, &mut host);
        assert_eq!(host.samples(&duration("bert")), vec![40, 55, 61, 3]);
        assert_eq!(host.counter(&outcome("bert", "5xx")), 1);
        assert_eq!(host.counter(&outcome("bert", "counted")), 3);
        assert_eq!(host.counter(&outcome("gpt", "5xx")), 1);
        assert!(
            host.samples(&duration("gpt")).is_empty(),
            "no time, no sample"
        );
    }

    #[test]
    fn batch_counts_each_prediction_by_model_and_label() {
        let compiled = config("{}");
        let mut host = FakeHost::default();
        let mut metrics = EmotionMetrics::define(&compiled, &mut host);
        let verdict = counted(&[
            ("joy", Some(0.98)),
            ("JOY", Some(0.5)),
            ("sadness", Some(0.7)),
            ("boredom", Some(0.9)),
        ]);
        metrics.count(&verdict, "bert", None, &compiled.labels, &mut host);
        metrics.count(
            &counted(&[("joy", None)]),
            "bert",
            None,
            &compiled.labels,
            &mut host,
        );
        assert_eq!(host.counter(&top_label("bert", "joy")), 3);
        assert_eq!(host.counter(&top_label("bert", "sadness")), 1);
        assert_eq!(host.counter(&top_label("bert", "other")), 1);
        // Every label of a counted model exists, at zero when never predicted.
        assert_eq!(host.counter(&top_label("bert", "fear")), 0);
        assert_eq!(host.counter(&outcome("bert", "counted")), 2);
        assert_eq!(host.samples(&top_score("bert", "joy")), vec![98, 50]);
        assert_eq!(host.samples(&top_score("bert", "other")), vec![90]);
    }

    #[test]
    fn scores_outside_zero_to_one_are_counted_but_not_sampled() {
        let compiled = config("{}");
        let mut host = FakeHost::default();
        let mut metrics = EmotionMetrics::define(&compiled, &mut host);
        let verdict = counted(&[
            ("fear", Some(-0.5)),
            ("fear", Some(7.0)),
            ("fear", Some(1.0)),
            ("fear", Some(0.0)),
        ]);
        metrics.count(&verdict, "m", None, &compiled.labels, &mut host);
        assert_eq!(host.counter(&top_label("m", "fear")), 4);
        assert_eq!(host.samples(&top_score("m", "fear")), vec![100, 0]);
    }

    #[test]
    fn other_outcomes_count_only_the_outcome() {
        let compiled = config("{}");
        let mut host = FakeHost::default();
        let mut metrics = EmotionMetrics::define(&compiled, &mut host);
        for o in Outcome::ALL.into_iter().filter(|o| *o != Outcome::Counted) {
            let verdict = Verdict::of(o);
            metrics.count(&verdict, "bert", None, &compiled.labels, &mut host);
            assert_eq!(host.counter(&outcome("bert", o.as_str())), 1);
        }
        assert!(host.counters.len() == Outcome::ALL.len() - 1);
        assert!(host.samples.is_empty());
    }

    #[test]
    fn legacy_counters_carry_the_label_names() {
        let compiled = config(r#"{"legacyLabelCounters":true}"#);
        let mut host = FakeHost::default();
        let mut metrics = EmotionMetrics::define(&compiled, &mut host);
        let verdict = counted(&[
            ("sadness", Some(0.9)),
            ("sadness", Some(0.8)),
            ("boredom", None),
        ]);
        metrics.count(&verdict, "bert", None, &compiled.labels, &mut host);
        assert_eq!(host.counter("sadness"), 2);
        assert_eq!(host.counter("joy"), 0);
        assert!(host.id_of("other").is_none(), "no bare `other` counter");
    }

    #[test]
    fn metric_names_are_bounded_under_a_label_flood() {
        let compiled = config("{}");
        let mut host = FakeHost::default();
        let mut metrics = EmotionMetrics::define(&compiled, &mut host);
        let labels: Vec<String> = (0..5000).map(|i| format!("label-{i}")).collect();
        let predictions: Vec<(&str, Option<f64>)> =
            labels.iter().map(|l| (l.as_str(), Some(0.5))).collect();
        metrics.count(
            &counted(&predictions),
            "bert",
            None,
            &compiled.labels,
            &mut host,
        );
        assert_eq!(host.counter(&top_label("bert", "other")), 5000);
        assert_eq!(host.names.len(), Outcome::ALL.len() + 7 + 7 + 1 + 2);
    }

    #[test]
    fn refused_definitions_are_skipped() {
        let compiled = config(r#"{"legacyLabelCounters":true}"#);
        let mut host = FakeHost {
            refuse: true,
            ..FakeHost::default()
        };
        let mut metrics = EmotionMetrics::define(&compiled, &mut host);
        metrics.count(
            &counted(&[("joy", Some(0.9))]),
            "bert",
            Some(5),
            &compiled.labels,
            &mut host,
        );
        assert!(host.counters.is_empty() && host.samples.is_empty());
    }

    #[test]
    fn token_usage_counts_under_its_model_once_per_answer() {
        let compiled = config("{}");
        let mut host = FakeHost::default();
        let mut metrics = EmotionMetrics::define(&compiled, &mut host);
        let answer = |prompt, completion| Verdict {
            usage: Some(crate::usage::TokenUsage { prompt, completion }),
            ..Verdict::of(Outcome::Counted)
        };
        metrics.count(
            &answer(12, 30),
            "llama",
            Some(900),
            &compiled.labels,
            &mut host,
        );
        metrics.count(
            &answer(3, 3000),
            "llama",
            Some(20),
            &compiled.labels,
            &mut host,
        );
        let tokens =
            |kind: &str| host.counter(&format!("model=.=llama;.;kind=.={kind};.;{TOKENS_TOTAL}"));
        assert_eq!((tokens("prompt"), tokens("completion")), (15, 3030));
        assert_eq!(host.counter(&outcome("llama", "counted")), 2);
        assert_eq!(host.counter(&top_label("llama", "other")), 0);
    }
}
