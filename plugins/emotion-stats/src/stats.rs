//! The plugin's metrics: their names, their definition, and what one verdict adds to them. The
//! host is reached through [`MetricsHost`] so all of it is unit-tested.

use crate::config::{Compiled, LabelSet};
use crate::response::{Outcome, Verdict};
use hashbrown::HashMap;
use plugin_common::metrics::{tagged_name, LABEL, MODEL, OUTCOME};

/// Counter `{model, label}`: one per prediction, by top label.
pub const TOP_LABEL_TOTAL: &str = "emotion_stats_top_label_total";
/// Histogram `{label}` of the winning score in percent (Envoy histograms hold integers).
pub const TOP_SCORE_PERCENT: &str = "emotion_stats_top_score_percent";
/// Counter `{outcome}`: one per response on a configured path.
pub const RESPONSES_TOTAL: &str = "emotion_stats_responses_total";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricKind {
    Counter,
    Histogram,
}

/// The host's metric calls. A failed definition gives `None` (the metric is then skipped); the
/// implementation reports host failures itself.
pub trait MetricsHost {
    fn define(&mut self, kind: MetricKind, name: &str) -> Option<u32>;
    fn increment(&mut self, id: u32, by: u64);
    fn record(&mut self, id: u32, value: u64);
}

/// Metric ids of one VM. Everything that does not depend on the model is defined up front; the
/// `{model, label}` counters are defined for all labels at once when a model is first counted,
/// so its series start at zero. Models are bounded by [`crate::models::ModelNames`], so this map
/// is too.
#[derive(Debug)]
pub struct EmotionMetrics {
    responses: Vec<Option<u32>>,
    top_score_by_label: Vec<Option<u32>>,
    legacy_by_label: Vec<Option<u32>>,
    top_label_by_model: HashMap<String, Vec<Option<u32>>>,
}

impl EmotionMetrics {
    pub fn define(config: &Compiled, host: &mut impl MetricsHost) -> Self {
        let responses = Outcome::ALL
            .iter()
            .map(|outcome| {
                let name = tagged_name(RESPONSES_TOTAL, &[(OUTCOME, outcome.as_str())]);
                host.define(MetricKind::Counter, &name)
            })
            .collect();
        let top_score_by_label = config
            .labels
            .names()
            .iter()
            .map(|label| {
                let name = tagged_name(TOP_SCORE_PERCENT, &[(LABEL, label)]);
                host.define(MetricKind::Histogram, &name)
            })
            .collect();
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
            responses,
            top_score_by_label,
            legacy_by_label,
            top_label_by_model: HashMap::new(),
        }
    }

    /// Adds one response's verdict. `model` gives the bounded `model` tag value; it is asked only
    /// when there are predictions, so uncounted responses never take a model slot.
    pub fn count(
        &mut self,
        verdict: &Verdict,
        model: impl FnOnce() -> String,
        labels: &LabelSet,
        host: &mut impl MetricsHost,
    ) {
        let outcome_at = Outcome::ALL
            .iter()
            .position(|outcome| *outcome == verdict.outcome);
        if let Some(id) = outcome_at.and_then(|at| self.responses.get(at).copied().flatten()) {
            host.increment(id, 1);
        }
        if verdict.predictions.is_empty() {
            return;
        }
        let mut per_label = vec![0u64; labels.names().len()];
        for prediction in &verdict.predictions {
            let at = labels.index_of(&prediction.label);
            if let Some(count) = per_label.get_mut(at) {
                *count += 1;
            }
            let percent = prediction.score.and_then(score_percent);
            let histogram = self.top_score_by_label.get(at).copied().flatten();
            if let (Some(percent), Some(id)) = (percent, histogram) {
                host.record(id, percent);
            }
        }
        let model = model();
        if !self.top_label_by_model.contains_key(&model) {
            let ids = Self::define_top_label(&model, labels, host);
            self.top_label_by_model.insert(model.clone(), ids);
        }
        let by_label = self
            .top_label_by_model
            .get(&model)
            .map(Vec::as_slice)
            .unwrap_or_default();
        for (at, count) in per_label.iter().enumerate().filter(|(_, c)| **c > 0) {
            if let Some(id) = by_label.get(at).copied().flatten() {
                host.increment(id, *count);
            }
            if let Some(id) = self.legacy_by_label.get(at).copied().flatten() {
                host.increment(id, *count);
            }
        }
    }

    fn define_top_label(
        model: &str,
        labels: &LabelSet,
        host: &mut impl MetricsHost,
    ) -> Vec<Option<u32>> {
        labels
            .names()
            .iter()
            .map(|label| {
                let name = tagged_name(TOP_LABEL_TOTAL, &[(MODEL, model), (LABEL, label)]);
                host.define(MetricKind::Counter, &name)
            })
            .collect()
    }
}

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
    use crate::config::{compile, Config};
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

    impl MetricsHost for FakeHost {
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
        compile(plugin_common::config::parse::<Config>(json.as_bytes()).unwrap()).unwrap()
    }

    fn counted(predictions: &[(&str, Option<f64>)]) -> Verdict {
        Verdict {
            outcome: Outcome::Counted,
            predictions: predictions
                .iter()
                .map(|(label, score)| TopPrediction {
                    label: label.to_string(),
                    score: *score,
                })
                .collect(),
        }
    }

    fn top_label(model: &str, label: &str) -> String {
        format!("model=.={model};.;label=.={label};.;{TOP_LABEL_TOTAL}")
    }

    fn outcome(name: &str) -> String {
        format!("outcome=.={name};.;{RESPONSES_TOTAL}")
    }

    #[test]
    fn outcome_counters_and_histograms_are_defined_up_front() {
        let compiled = config("{}");
        let mut host = FakeHost::default();
        EmotionMetrics::define(&compiled, &mut host);
        for o in Outcome::ALL {
            assert_eq!(host.counter(&outcome(o.as_str())), 0);
        }
        for label in compiled.labels.names() {
            let name = format!("label=.={label};.;{TOP_SCORE_PERCENT}");
            assert!(host.names.contains(&(MetricKind::Histogram, name)));
        }
        assert_eq!(host.names.len(), 6 + 7);
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
        metrics.count(&verdict, || "bert".into(), &compiled.labels, &mut host);
        metrics.count(
            &counted(&[("joy", None)]),
            || "bert".into(),
            &compiled.labels,
            &mut host,
        );
        assert_eq!(host.counter(&top_label("bert", "joy")), 3);
        assert_eq!(host.counter(&top_label("bert", "sadness")), 1);
        assert_eq!(host.counter(&top_label("bert", "other")), 1);
        // Every label of a counted model exists, at zero when never predicted.
        assert_eq!(host.counter(&top_label("bert", "fear")), 0);
        assert_eq!(host.counter(&outcome("counted")), 2);
        assert_eq!(
            host.samples(&format!("label=.=joy;.;{TOP_SCORE_PERCENT}")),
            vec![98, 50]
        );
        assert_eq!(
            host.samples(&format!("label=.=other;.;{TOP_SCORE_PERCENT}")),
            vec![90]
        );
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
        metrics.count(&verdict, || "m".into(), &compiled.labels, &mut host);
        assert_eq!(host.counter(&top_label("m", "fear")), 4);
        assert_eq!(
            host.samples(&format!("label=.=fear;.;{TOP_SCORE_PERCENT}")),
            vec![100, 0]
        );
    }

    #[test]
    fn other_outcomes_count_only_the_outcome() {
        let compiled = config("{}");
        let mut host = FakeHost::default();
        let mut metrics = EmotionMetrics::define(&compiled, &mut host);
        let defined = host.names.len();
        for o in Outcome::ALL.into_iter().filter(|o| *o != Outcome::Counted) {
            let verdict = Verdict {
                outcome: o,
                predictions: Vec::new(),
            };
            let model = || panic!("an uncounted response must not take a model slot");
            metrics.count(&verdict, model, &compiled.labels, &mut host);
            assert_eq!(host.counter(&outcome(o.as_str())), 1);
        }
        assert_eq!(
            host.names.len(),
            defined,
            "no model series for uncounted responses"
        );
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
        metrics.count(&verdict, || "bert".into(), &compiled.labels, &mut host);
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
            || "bert".into(),
            &compiled.labels,
            &mut host,
        );
        assert_eq!(host.counter(&top_label("bert", "other")), 5000);
        assert_eq!(host.names.len(), 6 + 7 + 7);
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
            || "bert".into(),
            &compiled.labels,
            &mut host,
        );
        assert!(host.counters.is_empty() && host.samples.is_empty());
    }
}
