//! A tiny deterministic emotion classifier standing in for the BERT emotion model: counts words
//! from a fixed lexicon and turns the counts into scores. The plugins never depend on it; it
//! only has to answer in the model's response shape, the same way every time.

/// The six labels of the BERT emotion model, in the order used to break ties.
pub const LABELS: [&str; 6] = ["joy", "love", "anger", "sadness", "fear", "surprise"];

const LEXICON: [(&str, &[&str]); 6] = [
    (
        "joy",
        &[
            "best",
            "great",
            "happy",
            "joy",
            "exciting",
            "excited",
            "shining",
            "sun",
            "good",
            "cool",
            "wonderful",
            "fun",
            "glad",
        ],
    ),
    (
        "love",
        &[
            "love", "lovely", "loved", "adore", "dear", "sweet", "caring",
        ],
    ),
    (
        "anger",
        &[
            "angry", "anger", "furious", "hate", "annoyed", "mad", "rage",
        ],
    ),
    (
        "sadness",
        &[
            "sad",
            "somber",
            "gloomy",
            "sorrow",
            "unhappy",
            "depressed",
            "cry",
            "lonely",
        ],
    ),
    (
        "fear",
        &[
            "scary",
            "scared",
            "afraid",
            "fear",
            "terrified",
            "frightening",
            "nervous",
        ],
    ),
    (
        "surprise",
        &[
            "surprised",
            "surprise",
            "amazed",
            "astonished",
            "unexpected",
            "shocked",
        ],
    ),
];

/// A slight prior towards joy, as the BERT emotion model leans positive on neutral text.
const PRIOR: [f64; 6] = [1.0, 0.2, 0.1, 0.05, 0.0, -0.1];

/// What one lexicon word adds to its label's logit. With this weight no one-word sentence
/// scores a whole percent that is a bound of the plugins' histogram buckets
/// (`plugin_kit::metrics::HISTOGRAM_BUCKETS`), where Envoy's and Prometheus' bucket counts
/// would disagree; the Prometheus test of emotion-stats relies on it.
const WORD_WEIGHT: f64 = 3.85;

/// Scores of all six labels for `text`, highest first (softmax over word counts).
pub fn classify(text: &str) -> Vec<(&'static str, f64)> {
    let mut logits = PRIOR;
    for word in text
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
    {
        let word = word.to_lowercase();
        for (i, (_, words)) in LEXICON.iter().enumerate() {
            if words.contains(&word.as_str()) {
                logits[i] += WORD_WEIGHT;
            }
        }
    }
    let total: f64 = logits.iter().map(|l| l.exp()).sum();
    let mut scores: Vec<(&'static str, f64)> = LABELS
        .iter()
        .zip(logits.iter())
        .map(|(label, logit)| (*label, logit.exp() / total))
        .collect();
    scores.sort_by(|a, b| b.1.total_cmp(&a.1));
    scores
}

#[cfg(test)]
mod tests {
    use super::*;

    fn top(text: &str) -> &'static str {
        classify(text)[0].0
    }

    #[test]
    fn walkthrough_sentences_get_the_expected_top_label() {
        assert_eq!(top("The mood was somber"), "sadness");
        assert_eq!(top("Istio is scary"), "fear");
        assert_eq!(top("The atmosphere was exciting"), "joy");
        assert_eq!(
            top("The group was surprised by how much the can do with Istio"),
            "surprise"
        );
        assert_eq!(top("Istio is lovely"), "love");
        assert_eq!(top("Istio is the best service mesh"), "joy");
        assert_eq!(top("The sky is blue and the sun is shining"), "joy");
        assert_eq!(top("I hate waiting"), "anger");
    }

    #[test]
    fn one_word_scores_avoid_histogram_bucket_bounds() {
        for (label, words) in LEXICON {
            let (top, score) = classify(words[0])[0];
            assert_eq!(top, label);
            let percent = (score * 100.0).round();
            assert!(
                !plugin_kit::metrics::HISTOGRAM_BUCKETS.contains(&percent),
                "{label}: {percent}"
            );
        }
    }

    #[test]
    fn scores_are_sorted_probabilities_and_deterministic() {
        let scores = classify("anything at all");
        assert_eq!(scores.len(), 6);
        let sum: f64 = scores.iter().map(|s| s.1).sum();
        assert!((sum - 1.0).abs() < 1e-9);
        assert!(scores.windows(2).all(|w| w[0].1 >= w[1].1));
        assert_eq!(scores, classify("anything at all"));
    }
}
