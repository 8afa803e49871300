//! The configuration validated once, by [`compile`], into what the request path uses: the
//! path sets, the label sets, the bounds.

use crate::config::{
    Config, MAX_BODY_BYTES_LIMIT, MAX_CLASSES, MAX_LABELS, MAX_LABEL_LEN, MAX_MODELS_LIMIT,
    MAX_MODEL_OVERRIDES,
};
use plugin_kit::config::ConfigError;
use plugin_kit::istio::{PathNormalization, PathSet};

/// How request paths are normalized before `paths` is matched (and checked against).
pub const PATH_NORMALIZATION: PathNormalization = PathNormalization::MergeSlashes;

/// The label every prediction outside the configured set (and every model past `maxModels`)
/// is counted under.
pub const OTHER: &str = "other";

/// The configuration once validated, ready for the request path.
#[derive(Debug)]
pub struct Compiled {
    pub paths: PathSet,
    pub openai_paths: PathSet,
    pub labels: LabelSet,
    pub max_body_bytes: usize,
    pub max_models: usize,
    pub legacy_label_counters: bool,
    labels_by_index: Option<Vec<String>>,
    model_labels_by_index: hashbrown::HashMap<String, Vec<String>>,
}

impl Compiled {
    /// The class names for the numeric answers of `model` (from the request path): its own
    /// `models` entry, else the top-level `labelsByIndex`.
    pub fn labels_by_index(&self, model: Option<&str>) -> Option<&[String]> {
        model
            .and_then(|name| self.model_labels_by_index.get(name))
            .or(self.labels_by_index.as_ref())
            .map(Vec::as_slice)
    }
}

/// The configured labels plus `other`, each known by its index.
#[derive(Debug)]
pub struct LabelSet {
    /// Configured labels, then `other` last.
    names: Vec<String>,
}

impl LabelSet {
    /// Every label a prediction can be counted under, `other` last.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// Index in [`Self::names`] of a predicted label: the configured label equal to it ignoring
    /// ASCII case, else `other`.
    pub fn index_of(&self, predicted: &str) -> usize {
        let configured = self.names.len().saturating_sub(1);
        self.names
            .iter()
            .take(configured)
            .position(|name| name.eq_ignore_ascii_case(predicted))
            .unwrap_or(configured)
    }

    /// The configured labels, without `other`.
    pub fn configured(&self) -> &[String] {
        self.names
            .get(..self.names.len().saturating_sub(1))
            .unwrap_or_default()
    }
}

pub fn compile(config: Config) -> Result<Compiled, ConfigError> {
    if config.paths.is_empty() {
        return Err(ConfigError::new(
            "paths",
            "must list at least one path pattern",
        ));
    }
    let paths = PathSet::compile(&config.paths, "paths", PATH_NORMALIZATION)?;
    let openai_paths = PathSet::compile(&config.openai_paths, "openaiPaths", PATH_NORMALIZATION)?;
    let labels = compile_labels(config.labels)?;
    if !(1..=MAX_BODY_BYTES_LIMIT).contains(&config.max_body_bytes) {
        return Err(ConfigError::new(
            "maxBodyBytes",
            format!("must be between 1 and {MAX_BODY_BYTES_LIMIT}"),
        ));
    }
    let max_body_bytes = usize::try_from(config.max_body_bytes)
        .map_err(|_| ConfigError::new("maxBodyBytes", "too large for this platform"))?;
    if config.max_models > MAX_MODELS_LIMIT {
        return Err(ConfigError::new(
            "maxModels",
            format!("must be at most {MAX_MODELS_LIMIT}"),
        ));
    }
    let max_models = usize::try_from(config.max_models)
        .map_err(|_| ConfigError::new("maxModels", "too large for this platform"))?;
    let labels_by_index = config
        .labels_by_index
        .map(|classes| compile_classes("labelsByIndex", classes))
        .transpose()?;
    if config.models.len() > MAX_MODEL_OVERRIDES {
        return Err(ConfigError::new(
            "models",
            format!("must list at most {MAX_MODEL_OVERRIDES} models"),
        ));
    }
    let mut model_labels_by_index = hashbrown::HashMap::new();
    for (name, model) in config.models {
        if name.is_empty() {
            return Err(ConfigError::new("models", "a model name must not be empty"));
        }
        let classes = compile_classes(
            &format!("models.{name}.labelsByIndex"),
            model.labels_by_index,
        )?;
        model_labels_by_index.insert(name, classes);
    }
    Ok(Compiled {
        paths,
        openai_paths,
        labels,
        max_body_bytes,
        max_models,
        legacy_label_counters: config.legacy_label_counters,
        labels_by_index,
        model_labels_by_index,
    })
}

/// A `labelsByIndex` list: 1 to [`MAX_CLASSES`] non-empty names. Names may repeat (two classes
/// can be counted under one label); each is counted under the configured label it equals
/// ignoring case, else `other`, like any predicted label.
fn compile_classes(field: &str, classes: Vec<String>) -> Result<Vec<String>, ConfigError> {
    if classes.is_empty() || classes.len() > MAX_CLASSES {
        return Err(ConfigError::new(
            field,
            format!("must list between 1 and {MAX_CLASSES} class names"),
        ));
    }
    if let Some(at) = classes.iter().position(String::is_empty) {
        return Err(ConfigError::new(
            format!("{field}[{at}]"),
            "a class name must not be empty",
        ));
    }
    Ok(classes)
}

fn compile_labels(labels: Vec<String>) -> Result<LabelSet, ConfigError> {
    if labels.is_empty() || labels.len() > MAX_LABELS {
        return Err(ConfigError::new(
            "labels",
            format!("must list between 1 and {MAX_LABELS} labels"),
        ));
    }
    for (at, label) in labels.iter().enumerate() {
        let field = format!("labels[{at}]");
        let valid_chars = label
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        if label.is_empty() || label.len() > MAX_LABEL_LEN || !valid_chars {
            return Err(ConfigError::new(
                field,
                format!(
                    "`{label}`: a label is 1 to {MAX_LABEL_LEN} letters, digits, `_` or `-` \
                     (it becomes a metric tag value and, with legacyLabelCounters, a metric name)"
                ),
            ));
        }
        if label.eq_ignore_ascii_case(OTHER) {
            return Err(ConfigError::new(
                field,
                "`other` is where unlisted labels are counted; it cannot be configured",
            ));
        }
        let earlier = labels.get(..at).unwrap_or_default();
        if earlier.iter().any(|seen| seen.eq_ignore_ascii_case(label)) {
            return Err(ConfigError::new(
                field,
                format!("`{label}` is listed twice (labels compare ignoring case)"),
            ));
        }
    }
    let mut names = labels;
    names.push(OTHER.to_string());
    Ok(LabelSet { names })
}

#[cfg(test)]
mod tests {
    use super::*;
    use plugin_kit::config::parse;
    #[cfg(all(target_arch = "wasm32", target_os = "unknown"))]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    fn compile_json(json: &str) -> Result<Compiled, ConfigError> {
        parse::<Config>(json.as_bytes()).and_then(compile)
    }

    #[test]
    fn empty_configuration_gets_the_defaults() {
        let compiled = compile_json("").unwrap();
        assert!(compiled.paths.matches("/v1/models/bert:predict"));
        assert!(compiled.paths.matches("/v2/models/bert/infer"));
        assert!(!compiled.paths.matches("/v1/model"));
        assert_eq!(
            compiled.labels.names(),
            ["joy", "love", "anger", "sadness", "fear", "surprise", "other"]
        );
        assert_eq!(compiled.max_body_bytes, 1048576);
        assert_eq!(compiled.max_models, 20);
        assert!(!compiled.legacy_label_counters);
    }

    #[test]
    fn documented_example_is_accepted() {
        let compiled = compile_json(
            r#"{"paths":["/v1/models/*","/v2/models/*"],"labels":["joy","love","anger","sadness","fear","surprise"],
                "maxBodyBytes":1048576,"legacyLabelCounters":true,"maxModels":5}"#,
        )
        .unwrap();
        assert!(compiled.legacy_label_counters);
        assert_eq!(compiled.max_models, 5);
    }

    #[test]
    fn labels_map_ignoring_case_and_unknown_to_other() {
        let compiled = compile_json(r#"{"labels":["joy","LABEL_1"]}"#).unwrap();
        let labels = &compiled.labels;
        assert_eq!(labels.index_of("joy"), 0);
        assert_eq!(labels.index_of("JOY"), 0);
        assert_eq!(labels.index_of("label_1"), 1);
        assert_eq!(labels.index_of("boredom"), 2);
        assert_eq!(labels.index_of("other"), 2);
        assert_eq!(labels.index_of(""), 2);
        assert_eq!(labels.configured(), ["joy", "LABEL_1"]);
    }

    #[test]
    fn bad_values_name_their_field() {
        let cases = [
            (r#"{"paths":[]}"#, "paths"),
            (r#"{"paths":["/v1/{model}"]}"#, "paths[0]"),
            (r#"{"labels":[]}"#, "labels"),
            (r#"{"labels":["joy","a.b"]}"#, "labels[1]"),
            (r#"{"labels":[""]}"#, "labels[0]"),
            (r#"{"labels":["joy","Joy"]}"#, "labels[1]"),
            (r#"{"labels":["Other"]}"#, "labels[0]"),
            (r#"{"maxBodyBytes":0}"#, "maxBodyBytes"),
            (r#"{"maxBodyBytes":16777217}"#, "maxBodyBytes"),
            (r#"{"maxBodyBytes":-1}"#, "maxBodyBytes"),
            (r#"{"maxModels":1001}"#, "maxModels"),
            (r#"{"legacyLabelCounters":"yes"}"#, "legacyLabelCounters"),
            (r#"{"lables":["joy"]}"#, "lables"),
        ];
        for (json, field) in cases {
            let err = compile_json(json).unwrap_err();
            assert_eq!(err.field, field, "{json}: {err}");
        }
        let too_long = format!(r#"{{"labels":["{}"]}}"#, "x".repeat(65));
        assert_eq!(compile_json(&too_long).unwrap_err().field, "labels[0]");
        let too_many: Vec<String> = (0..65).map(|i| format!("l{i}")).collect();
        let json = serde_json::json!({ "labels": too_many }).to_string();
        assert_eq!(compile_json(&json).unwrap_err().field, "labels");
    }

    /// The `pluginConfig` of every `WasmPlugin` example in the README is accepted, and only uses
    /// fields the schema lists.
    #[cfg(not(target_arch = "wasm32"))]
    #[test]
    fn readme_examples_are_valid_configurations() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let readme = std::fs::read_to_string(dir.join("README.md")).unwrap();
        let schema: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("config.schema.json")).unwrap())
                .unwrap();
        let examples: Vec<&str> = readme
            .split("```yaml")
            .skip(1)
            .filter_map(|block| block.split("```").next())
            .filter(|block| block.contains("kind: WasmPlugin"))
            .collect();
        assert!(!examples.is_empty());
        for example in examples {
            let manifest: serde_json::Value = serde_yaml::from_str(example).unwrap();
            let plugin_config = &manifest["spec"]["pluginConfig"];
            for field in plugin_config.as_object().unwrap().keys() {
                assert!(
                    schema["properties"].get(field).is_some(),
                    "{field} not in schema"
                );
            }
            compile_json(&plugin_config.to_string()).unwrap();
        }
    }

    #[test]
    fn labels_by_index_per_model_overrides_the_top_level_list() {
        let compiled = compile_json(
            r#"{"labelsByIndex": ["sadness", "joy"],
                "models": {"resnet": {"labelsByIndex": ["cat", "dog", "cat"]}}}"#,
        )
        .unwrap();
        let names = |model| compiled.labels_by_index(model).map(<[String]>::to_vec);
        assert_eq!(
            names(Some("bert")),
            Some(vec!["sadness".into(), "joy".into()])
        );
        assert_eq!(names(None), Some(vec!["sadness".into(), "joy".into()]));
        assert_eq!(
            names(Some("resnet")),
            Some(vec!["cat".into(), "dog".into(), "cat".into()])
        );
        assert_eq!(
            compile_json("{}").unwrap().labels_by_index(Some("bert")),
            None
        );
        let field = |json: &str| compile_json(json).unwrap_err().field;
        assert_eq!(field(r#"{"labelsByIndex": []}"#), "labelsByIndex");
        assert_eq!(field(r#"{"labelsByIndex": ["a", ""]}"#), "labelsByIndex[1]");
        assert_eq!(
            field(r#"{"models": {"m": {"labelsByIndex": []}}}"#),
            "models.m.labelsByIndex"
        );
        assert_eq!(
            field(r#"{"models": {"m": {"labels": ["a"]}}}"#),
            "models.m.labels"
        );
        assert_eq!(
            field(r#"{"models": {"": {"labelsByIndex": ["a"]}}}"#),
            "models"
        );
    }

    /// The annotations users copy are the bucket list and the tags the harness renders.
    #[test]
    fn readme_annotations_are_the_bucket_list_and_every_tag() {
        let readme = include_str!("../README.md");
        let annotation = plugin_kit::metrics::histogram_buckets_annotation();
        assert!(readme.contains(&annotation), "README lacks {annotation}");
        let tags: Vec<&str> = plugin_kit::metrics::ALL_TAGS
            .iter()
            .map(|t| t.name())
            .collect();
        let annotation = format!("extraStatTags: \"{}\"", tags.join(","));
        assert!(readme.contains(&annotation), "README lacks {annotation}");
        let mesh_wide = format!("extraStatTags: [{}]", tags.join(", "));
        assert!(readme.contains(&mesh_wide), "README lacks {mesh_wide}");
    }

    #[cfg(not(target_arch = "wasm32"))]
    #[test]
    fn schema_file_is_current() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config.schema.json");
        plugin_kit::schema::check_schema_file::<Config>(&path).unwrap();
    }
}
