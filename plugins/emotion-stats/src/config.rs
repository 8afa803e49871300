//! The `pluginConfig` this plugin accepts, as written ([`crate::compiled`] validates it).

use serde::Deserialize;

/// Which responses are read and how their predictions are counted.
#[derive(Debug, Deserialize)]
#[cfg_attr(not(target_arch = "wasm32"), derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Config {
    /// Istio path patterns (exact, `prefix*`, `*suffix`, `*`, `{*}` / `{**}` templates), matched
    /// against the normalized request path; only responses to matching requests are read.
    #[serde(default = "default_paths")]
    #[cfg_attr(not(target_arch = "wasm32"), schemars(length(min = 1)))]
    pub paths: Vec<String>,
    /// Istio path patterns of OpenAI-style endpoints (`/openai/v1/chat/completions`…): their
    /// answers, streamed or not, are read for token usage instead of predictions. Checked
    /// before `paths`.
    #[serde(default)]
    pub openai_paths: Vec<String>,
    /// The labels counted under their own name; any other predicted label counts as `other`.
    /// Letters, digits, `_` and `-`, at most 64 characters each, at most 64 labels.
    #[serde(default = "default_labels")]
    #[cfg_attr(
        not(target_arch = "wasm32"),
        schemars(length(min = 1, max = MAX_LABELS), inner(regex(pattern = r"^[A-Za-z0-9_-]{1,64}$")))
    )]
    pub labels: Vec<String>,
    /// Larger response bodies are not parsed, only counted with outcome `too_large`
    /// (at most 16 MiB).
    #[serde(default = "default_max_body_bytes")]
    #[cfg_attr(not(target_arch = "wasm32"), schemars(range(min = 1, max = MAX_BODY_BYTES_LIMIT)))]
    pub max_body_bytes: u64,
    /// How many distinct model names get their own series (per proxy); later ones count as
    /// `other`.
    #[serde(default = "default_max_models")]
    #[cfg_attr(not(target_arch = "wasm32"), schemars(range(max = MAX_MODELS_LIMIT)))]
    pub max_models: u32,
    /// Also increment one counter named after each configured label, as the BERT emotion
    /// walkthrough's stats plugin did (`sadness{} 6` on `/stats/prometheus`).
    #[serde(default)]
    pub legacy_label_counters: bool,
    /// The class names of models that answer with numbers (class indices, score vectors), in
    /// index order: entry `i` is the label of class `i`.
    #[serde(default)]
    pub labels_by_index: Option<Vec<String>>,
    /// Per model name (as in the request path): settings that replace the top-level ones.
    #[serde(default)]
    pub models: std::collections::BTreeMap<String, ModelConfig>,
}

/// What one model overrides.
#[derive(Debug, Deserialize)]
#[cfg_attr(not(target_arch = "wasm32"), derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ModelConfig {
    /// This model's class names in index order, instead of the top-level `labelsByIndex`.
    pub labels_by_index: Vec<String>,
}

fn default_paths() -> Vec<String> {
    vec!["/v1/models/*".to_string(), "/v2/models/*".to_string()]
}

fn default_labels() -> Vec<String> {
    ["joy", "love", "anger", "sadness", "fear", "surprise"]
        .iter()
        .map(|label| label.to_string())
        .collect()
}

fn default_max_body_bytes() -> u64 {
    1024 * 1024
}

fn default_max_models() -> u32 {
    20
}

/// Upper bound of `maxBodyBytes`: each in-flight response may hold that much in the VM's memory.
pub const MAX_BODY_BYTES_LIMIT: u64 = 16 * 1024 * 1024;
pub const MAX_MODELS_LIMIT: u32 = 1000;
pub const MAX_LABELS: usize = 64;
pub const MAX_LABEL_LEN: usize = 64;
/// Longest `labelsByIndex` (ImageNet has 1,000 classes, some detectors a few thousand).
pub const MAX_CLASSES: usize = 10_000;
/// Most `models` entries.
pub const MAX_MODEL_OVERRIDES: usize = 1_000;
