//! Reading the top prediction of each instance out of a model server's JSON response.
//!
//! Shapes understood:
//! - KServe v1 `{"predictions": [instance, ...]}` and a bare list `[instance, ...]` (Hugging Face
//!   pipelines), where an instance is a list of `{label, score}` candidates, one `{label, score}`
//!   object, a `{labels: [...], scores: [...]}` object (zero-shot pipelines) or a plain label string;
//! - a single `{label, score}` object;
//! - KServe v2 / Open Inference Protocol `{"outputs": [...]}`: the first output whose data are all
//!   strings holds the labels, a numeric output of the same length (if any) their scores.
//!
//! With a `labelsByIndex` list, numbers are read as well: a v1 instance that is a class index
//! (`{"predictions": [3]}`) or a score vector (`{"predictions": [[0.1, 0.7, ...]]}`, argmax), and
//! a v2 numeric output without a string one (`{"datatype": "FP32", "shape": [N, K], "data": ...}`:
//! N score vectors; an integer datatype with shape `[N]` or `[N, 1]`: N class indices). An index
//! outside the list or a vector whose length is not the list's is [`ReadError::ShapeMismatch`],
//! never a guess.
//!
//! The top candidate is the one with the highest finite score; a candidate with a score beats one
//! without; on a tie the first one listed wins, so the result never depends on anything but the body.

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};
use std::borrow::Cow;
use std::fmt;

/// The winning label of one instance and its score, if the response gave one.
#[derive(Debug, Clone, PartialEq)]
pub struct TopPrediction {
    pub label: String,
    pub score: Option<f64>,
}

/// Why a body gave no prediction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadError {
    /// Not valid JSON (broken, truncated, nested deeper than serde_json's recursion limit).
    Malformed,
    /// Valid JSON without any recognizable prediction.
    NoPrediction,
    /// Class indices or score vectors that do not fit the `labelsByIndex` list.
    ShapeMismatch,
}

/// Deepest array nesting flattened in an Open Inference Protocol `data` field; deeper is ignored.
const MAX_DATA_DEPTH: usize = 4;

/// The top prediction of every instance in `body`, in order. `by_index` names the classes of
/// numeric outputs (`labelsByIndex`); without it numbers are not predictions.
pub fn read_top_predictions(
    body: &[u8],
    by_index: Option<&[String]>,
) -> Result<Vec<TopPrediction>, ReadError> {
    let predictions = match serde_json::from_slice::<KserveV1>(body) {
        Ok(KserveV1(predictions)) => predictions,
        // Any other shape, and anything malformed, gets the general reading.
        Err(_) => read_any_shape(body, by_index)?,
    };
    if predictions.is_empty() {
        Err(ReadError::NoPrediction)
    } else {
        Ok(predictions)
    }
}

/// Every shape of the module documentation, through a `serde_json::Value`. That tree costs an
/// allocation per object, key and string, which is why [`KserveV1`] comes first.
fn read_any_shape(
    body: &[u8],
    by_index: Option<&[String]>,
) -> Result<Vec<TopPrediction>, ReadError> {
    let value: Value = serde_json::from_slice(body).map_err(|_| ReadError::Malformed)?;
    match &value {
        Value::Object(map) => from_object(map, by_index),
        Value::Array(_) => instances(&value, by_index),
        _ => Ok(Vec::new()),
    }
}

/// The fast path, for the answer of a KServe v1 classifier and nothing else:
/// `{"predictions": [[{"label": "...", "score": 0.9}, ...], ...]}` with exactly these keys, each
/// once, a string label and a numeric score. Read as it streams, keeping only each instance's
/// best candidate (under Envoy, building the `Value` tree of a 64 KiB batch was most of the
/// plugin's CPU). Anything else is an error that sends the body to [`read_any_shape`], so both
/// paths give the same result by construction: on this shape the general reading does the same
/// (`instances` of the list, `top_of` each candidate list, `candidate_object`). A body that
/// leaves the shape late is parsed twice, which `maxBodyBytes` bounds.
struct KserveV1(Vec<TopPrediction>);

/// Refuses what the fast path does not read; the message is never shown (the body is then read
/// by [`read_any_shape`]).
fn not_fast_path<E: de::Error>() -> E {
    E::custom("not the KServe v1 classifier shape")
}

/// The fast path's visitors read through `deserialize_any` and refuse the JSON types they do not
/// take themselves: serde_json's typed entry points (`deserialize_map`, `deserialize_f64`, ...)
/// word an "invalid type" message, and its float formatting is most of the module's size for a
/// message never shown.
macro_rules! refuse {
    ($($method:ident($($arg:ty)?)),* $(,)?) => {
        $(fn $method<E: de::Error>(self $(, _: $arg)?) -> Result<Self::Value, E> {
            Err(not_fast_path())
        })*
    };
}

/// Every JSON type but arrays and objects.
macro_rules! refuse_scalars {
    () => {
        refuse!(
            visit_unit(),
            visit_bool(bool),
            visit_i64(i64),
            visit_u64(u64),
            visit_f64(f64),
            visit_str(&str)
        );
    };
}

macro_rules! refuse_seq {
    () => {
        fn visit_seq<A: SeqAccess<'de>>(self, _: A) -> Result<Self::Value, A::Error> {
            Err(not_fast_path())
        }
    };
}

macro_rules! refuse_map {
    () => {
        fn visit_map<A: MapAccess<'de>>(self, _: A) -> Result<Self::Value, A::Error> {
            Err(not_fast_path())
        }
    };
}

impl<'de> Deserialize<'de> for KserveV1 {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Top;
        impl<'de> Visitor<'de> for Top {
            type Value = KserveV1;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(r#"{"predictions": [...]}"#)
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<KserveV1, A::Error> {
                let mut predictions = None;
                while let Some(Key(key)) = map.next_key()? {
                    if key != "predictions" || predictions.is_some() {
                        return Err(not_fast_path());
                    }
                    predictions = Some(map.next_value::<Instances>()?.0);
                }
                predictions.map(KserveV1).ok_or_else(not_fast_path)
            }
            refuse_scalars!();
            refuse_seq!();
        }
        deserializer.deserialize_any(Top)
    }
}

/// The `predictions` list: each instance's best candidate, instances without one left out.
struct Instances(Vec<TopPrediction>);

impl<'de> Deserialize<'de> for Instances {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct List;
        impl<'de> Visitor<'de> for List {
            type Value = Instances;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a list of instances")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Instances, A::Error> {
                let mut tops = Vec::new();
                while let Some(Candidates(best)) = seq.next_element()? {
                    if let Some((label, score)) = best {
                        tops.push(TopPrediction {
                            label: label.into_owned(),
                            score: Some(score),
                        });
                    }
                }
                Ok(Instances(tops))
            }
            refuse_scalars!();
            refuse_map!();
        }
        deserializer.deserialize_any(List)
    }
}

/// One instance, a list of candidates: the best one so far (label borrowed from the body when it
/// has no escapes, so losing candidates cost no allocation).
struct Candidates<'de>(Option<(Cow<'de, str>, f64)>);

impl<'de> Deserialize<'de> for Candidates<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct List;
        impl<'de> Visitor<'de> for List {
            type Value = Candidates<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a list of candidates")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Candidates<'de>, A::Error> {
                let mut best: Option<(Cow<'de, str>, f64)> = None;
                while let Some(Candidate(label, score)) = seq.next_element()? {
                    // `beats` for two scored candidates: strictly higher, so the first of
                    // equals stays on top.
                    if best.as_ref().is_none_or(|(_, top)| score > *top) {
                        best = Some((label, score));
                    }
                }
                Ok(Candidates(best))
            }
            refuse_scalars!();
            refuse_map!();
        }
        deserializer.deserialize_any(List)
    }
}

/// `{"label": "...", "score": <number>}`, both keys exactly once and no other.
struct Candidate<'de>(Cow<'de, str>, f64);

impl<'de> Deserialize<'de> for Candidate<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Object;
        impl<'de> Visitor<'de> for Object {
            type Value = Candidate<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a {label, score} object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Candidate<'de>, A::Error> {
                let (mut label, mut score) = (None, None);
                while let Some(Key(key)) = map.next_key()? {
                    match &*key {
                        "label" if label.is_none() => label = Some(map.next_value::<Key>()?.0),
                        // A JSON number (integers too, as `Value::as_f64` reads them); finite
                        // as `finite_score` wants, which serde_json guarantees.
                        "score" if score.is_none() => {
                            let Score(value) = map.next_value()?;
                            if !value.is_finite() {
                                return Err(not_fast_path());
                            }
                            score = Some(value);
                        }
                        _ => return Err(not_fast_path()),
                    }
                }
                match (label, score) {
                    (Some(label), Some(score)) => Ok(Candidate(label, score)),
                    _ => Err(not_fast_path()),
                }
            }
            refuse_scalars!();
            refuse_seq!();
        }
        deserializer.deserialize_any(Object)
    }
}

/// A JSON string (an object key or a label), borrowed from the body when it has no escapes.
struct Key<'de>(Cow<'de, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Text;
        impl<'de> Visitor<'de> for Text {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, text: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(text)))
            }
            fn visit_str<E: de::Error>(self, text: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(text.to_string())))
            }
            refuse!(
                visit_unit(),
                visit_bool(bool),
                visit_i64(i64),
                visit_u64(u64)
            );
            refuse!(visit_f64(f64));
            refuse_seq!();
            refuse_map!();
        }
        deserializer.deserialize_any(Text)
    }
}

/// A JSON number as `f64` (integers too, as `Value::as_f64` reads them).
struct Score(f64);

impl<'de> Deserialize<'de> for Score {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Number;
        impl<'de> Visitor<'de> for Number {
            type Value = Score;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a number")
            }
            fn visit_u64<E: de::Error>(self, value: u64) -> Result<Score, E> {
                Ok(Score(value as f64))
            }
            fn visit_i64<E: de::Error>(self, value: i64) -> Result<Score, E> {
                Ok(Score(value as f64))
            }
            fn visit_f64<E: de::Error>(self, value: f64) -> Result<Score, E> {
                Ok(Score(value))
            }
            refuse!(visit_unit(), visit_bool(bool), visit_str(&str));
            refuse_seq!();
            refuse_map!();
        }
        deserializer.deserialize_any(Number)
    }
}

fn from_object(
    map: &Map<String, Value>,
    by_index: Option<&[String]>,
) -> Result<Vec<TopPrediction>, ReadError> {
    if let Some(predictions) = map.get("predictions") {
        instances(predictions, by_index)
    } else if let Some(outputs) = map.get("outputs") {
        open_inference_outputs(outputs, by_index)
    } else {
        Ok(instance(map).into_iter().collect())
    }
}

/// A list of instances (or one instance given without its list).
fn instances(value: &Value, by_index: Option<&[String]>) -> Result<Vec<TopPrediction>, ReadError> {
    let mut predictions = Vec::new();
    match value {
        Value::Array(items) => {
            for item in items {
                predictions.extend(instance_value(item, by_index)?);
            }
        }
        other => predictions.extend(instance_value(other, by_index)?),
    }
    Ok(predictions)
}

fn instance_value(
    value: &Value,
    by_index: Option<&[String]>,
) -> Result<Option<TopPrediction>, ReadError> {
    Ok(match (value, by_index) {
        (Value::String(label), _) => Some(TopPrediction {
            label: label.clone(),
            score: None,
        }),
        (Value::Object(map), _) => instance(map),
        (Value::Number(_), Some(names)) => Some(by_class_index(value, names)?),
        (Value::Array(items), Some(names))
            if !items.is_empty() && items.iter().all(Value::is_number) =>
        {
            Some(argmax(&items.iter().collect::<Vec<_>>(), names)?)
        }
        (Value::Array(candidates), _) => top_of(candidates.iter().filter_map(candidate)),
        _ => None,
    })
}

/// A class index: a non-negative whole number inside the list.
fn by_class_index(value: &Value, names: &[String]) -> Result<TopPrediction, ReadError> {
    let index = value
        .as_u64()
        .or_else(|| {
            let float = value.as_f64()?;
            (float >= 0.0 && float.fract() == 0.0 && float < 1e15).then_some(float as u64)
        })
        .ok_or(ReadError::ShapeMismatch)?;
    let label = usize::try_from(index)
        .ok()
        .and_then(|at| names.get(at))
        .ok_or(ReadError::ShapeMismatch)?;
    Ok(TopPrediction {
        label: label.clone(),
        score: None,
    })
}

/// The class of the highest finite score (the first on a tie) of a vector as long as the list.
fn argmax(scores: &[&Value], names: &[String]) -> Result<TopPrediction, ReadError> {
    if scores.len() != names.len() {
        return Err(ReadError::ShapeMismatch);
    }
    let candidates = names.iter().zip(scores).map(|(name, score)| TopPrediction {
        label: name.clone(),
        score: finite_score(score),
    });
    top_of(candidates).ok_or(ReadError::ShapeMismatch)
}

fn instance(map: &Map<String, Value>) -> Option<TopPrediction> {
    if let (Some(Value::Array(labels)), Some(Value::Array(scores))) =
        (map.get("labels"), map.get("scores"))
    {
        let pairs = labels.iter().zip(scores).filter_map(|(label, score)| {
            Some(TopPrediction {
                label: label.as_str()?.to_string(),
                score: finite_score(score),
            })
        });
        return top_of(pairs);
    }
    candidate_object(map)
}

fn candidate(value: &Value) -> Option<TopPrediction> {
    match value {
        Value::String(label) => Some(TopPrediction {
            label: label.clone(),
            score: None,
        }),
        Value::Object(map) => candidate_object(map),
        _ => None,
    }
}

fn candidate_object(map: &Map<String, Value>) -> Option<TopPrediction> {
    let label = map.get("label")?.as_str()?;
    Some(TopPrediction {
        label: label.to_string(),
        score: map.get("score").and_then(finite_score),
    })
}

/// A score is a JSON number; strings, booleans or nulls count as no score.
fn finite_score(value: &Value) -> Option<f64> {
    value.as_f64().filter(|score| score.is_finite())
}

fn top_of(candidates: impl Iterator<Item = TopPrediction>) -> Option<TopPrediction> {
    candidates.fold(None, |best, next| match &best {
        None => Some(next),
        Some(current) if beats(&next, current) => Some(next),
        Some(_) => best,
    })
}

/// Strictly better only, so the first of equals stays on top.
fn beats(challenger: &TopPrediction, current: &TopPrediction) -> bool {
    match (challenger.score, current.score) {
        (Some(a), Some(b)) => a > b,
        (Some(_), None) => true,
        (None, _) => false,
    }
}

fn open_inference_outputs(
    outputs: &Value,
    by_index: Option<&[String]>,
) -> Result<Vec<TopPrediction>, ReadError> {
    let Some(outputs) = outputs.as_array() else {
        return Ok(Vec::new());
    };
    let flattened: Vec<Vec<&Value>> = outputs.iter().map(flat_data).collect();
    let Some(labels_at) = flattened
        .iter()
        .position(|data| !data.is_empty() && data.iter().all(|v| v.is_string()))
    else {
        return match by_index {
            Some(names) => numeric_output(outputs, &flattened, names),
            None => Ok(Vec::new()),
        };
    };
    let labels = flattened
        .get(labels_at)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let scores = flattened.iter().enumerate().find_map(|(at, data)| {
        (at != labels_at && data.len() == labels.len() && data.iter().all(|v| v.is_number()))
            .then_some(data)
    });
    Ok(labels
        .iter()
        .enumerate()
        .filter_map(|(at, label)| {
            Some(TopPrediction {
                label: label.as_str()?.to_string(),
                score: scores.and_then(|s| s.get(at)).and_then(|v| finite_score(v)),
            })
        })
        .collect())
}

/// The first all-numeric output of a v2 answer, read with `labelsByIndex`: `shape [N, K]` with K
/// the list's length is N score vectors; an integer datatype with `shape [N]` or `[N, 1]` is N
/// class indices. Anything else does not fit the list.
fn numeric_output(
    outputs: &[Value],
    flattened: &[Vec<&Value>],
    names: &[String],
) -> Result<Vec<TopPrediction>, ReadError> {
    let Some((output, data)) = outputs
        .iter()
        .zip(flattened)
        .find(|(_, data)| !data.is_empty() && data.iter().all(|v| v.is_number()))
    else {
        return Ok(Vec::new());
    };
    let shape: Vec<u64> = output
        .get("shape")
        .and_then(Value::as_array)
        .map(|dims| dims.iter().filter_map(Value::as_u64).collect())
        .unwrap_or_default();
    let integers = output
        .get("datatype")
        .and_then(Value::as_str)
        .is_some_and(|t| t.starts_with("INT") || t.starts_with("UINT"));
    let count = u64::try_from(data.len()).unwrap_or(u64::MAX);
    let classes = u64::try_from(names.len()).unwrap_or(u64::MAX);
    match shape.as_slice() {
        [n] | [n, 1] if integers && *n == count => data
            .iter()
            .map(|value| by_class_index(value, names))
            .collect(),
        [.., k] if *k == classes && shape.iter().product::<u64>() == count => data
            .chunks(names.len().max(1))
            .map(|row| argmax(row, names))
            .collect(),
        _ => Err(ReadError::ShapeMismatch),
    }
}

/// The `data` of one output, nested arrays flattened in row-major order.
fn flat_data(output: &Value) -> Vec<&Value> {
    let mut leaves = Vec::new();
    if let Some(data) = output.get("data") {
        collect_leaves(data, 0, &mut leaves);
    }
    leaves
}

fn collect_leaves<'a>(value: &'a Value, depth: usize, leaves: &mut Vec<&'a Value>) {
    match value {
        Value::Array(items) if depth < MAX_DATA_DEPTH => {
            for item in items {
                collect_leaves(item, depth + 1, leaves);
            }
        }
        Value::Array(_) => {}
        leaf => leaves.push(leaf),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(all(target_arch = "wasm32", target_os = "unknown"))]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    fn top(label: &str, score: Option<f64>) -> TopPrediction {
        TopPrediction {
            label: label.to_string(),
            score,
        }
    }

    fn read(body: &str) -> Result<Vec<TopPrediction>, ReadError> {
        read_top_predictions(body.as_bytes(), None)
    }

    /// The body the BERT emotion walkthrough shows for "Istio is lovely"-style requests (KServe
    /// v1, one instance).
    const WALKTHROUGH_BODY: &str = r#"{"predictions":[[{"label":"joy","score":0.9889927506446838},{"label":"love","score":0.004175746813416481},{"label":"anger","score":0.003846140578389168},{"label":"sadness","score":0.0012988817179575562},{"label":"fear","score":0.0009755274513736367},{"label":"surprise","score":0.0007109164143912494}]]}"#;

    #[test]
    fn kserve_v1_walkthrough_body() {
        assert_eq!(
            read(WALKTHROUGH_BODY),
            Ok(vec![top("joy", Some(0.9889927506446838))])
        );
    }

    #[test]
    fn kserve_v1_batch_counts_every_instance() {
        let body = r#"{"predictions":[
            [{"label":"joy","score":0.9},{"label":"fear","score":0.1}],
            [{"label":"fear","score":0.2},{"label":"sadness","score":0.7}],
            [{"label":"love","score":0.5}]]}"#;
        assert_eq!(
            read(body),
            Ok(vec![
                top("joy", Some(0.9)),
                top("sadness", Some(0.7)),
                top("love", Some(0.5))
            ])
        );
    }

    #[test]
    fn kserve_v1_object_and_string_instances() {
        let body = r#"{"predictions":[{"label":"anger","score":0.8},"joy",{"labels":["a","b"],"scores":[0.1,0.9]}]}"#;
        assert_eq!(
            read(body),
            Ok(vec![
                top("anger", Some(0.8)),
                top("joy", None),
                top("b", Some(0.9))
            ])
        );
    }

    #[test]
    fn hugging_face_pipeline_lists() {
        assert_eq!(
            read(r#"[{"label":"joy","score":0.7},{"label":"fear","score":0.9}]"#),
            Ok(vec![top("joy", Some(0.7)), top("fear", Some(0.9))])
        );
        assert_eq!(
            read(r#"[[{"label":"joy","score":0.2},{"label":"fear","score":0.6}]]"#),
            Ok(vec![top("fear", Some(0.6))])
        );
        assert_eq!(
            read(r#"{"label":"love","score":1}"#),
            Ok(vec![top("love", Some(1.0))])
        );
    }

    #[test]
    fn open_inference_protocol_outputs() {
        let body = r#"{"model_name":"m","outputs":[
            {"name":"label","shape":[2],"datatype":"BYTES","data":["joy","fear"]},
            {"name":"score","shape":[2],"datatype":"FP32","data":[0.98,0.61]}]}"#;
        assert_eq!(
            read(body),
            Ok(vec![top("joy", Some(0.98)), top("fear", Some(0.61))])
        );
        // Scores first, nested data, no score output of matching length.
        let body = r#"{"outputs":[{"name":"p","data":[0.1,0.2,0.3]},{"name":"l","data":[["joy"],["love"]]}]}"#;
        assert_eq!(read(body), Ok(vec![top("joy", None), top("love", None)]));
        // Only numbers: no labels.
        assert_eq!(
            read(r#"{"outputs":[{"name":"score","data":[0.5]}]}"#),
            Err(ReadError::NoPrediction)
        );
        assert_eq!(read(r#"{"outputs":"x"}"#), Err(ReadError::NoPrediction));
    }

    #[test]
    fn ties_keep_the_first_listed() {
        let body =
            r#"{"predictions":[[{"label":"love","score":0.5},{"label":"joy","score":0.5}]]}"#;
        assert_eq!(read(body), Ok(vec![top("love", Some(0.5))]));
        let body = r#"{"predictions":[["fear","joy"]]}"#;
        assert_eq!(read(body), Ok(vec![top("fear", None)]));
    }

    #[test]
    fn non_numeric_scores_never_win_over_numbers() {
        let body = r#"{"predictions":[[{"label":"joy","score":"NaN"},{"label":"fear","score":null},{"label":"love","score":0.01},{"label":"anger","score":true}]]}"#;
        assert_eq!(read(body), Ok(vec![top("love", Some(0.01))]));
        // No usable score at all: the first candidate, without a score.
        let body = r#"{"predictions":[[{"label":"joy","score":"0.9"},{"label":"fear"}]]}"#;
        assert_eq!(read(body), Ok(vec![top("joy", None)]));
    }

    #[test]
    fn nan_and_infinity_literals_are_not_json() {
        assert_eq!(
            read(r#"{"predictions":[[{"label":"joy","score":NaN}]]}"#),
            Err(ReadError::Malformed)
        );
        assert_eq!(
            read(r#"{"predictions":[[{"label":"joy","score":Infinity}]]}"#),
            Err(ReadError::Malformed)
        );
    }

    #[test]
    fn out_of_range_numbers_are_no_score() {
        // serde_json reads 1e400 as infinity or rejects it; either way it never becomes a score.
        match read(
            r#"{"predictions":[[{"label":"joy","score":1e400},{"label":"fear","score":0.1}]]}"#,
        ) {
            Ok(predictions) => assert_eq!(predictions, vec![top("fear", Some(0.1))]),
            Err(err) => assert_eq!(err, ReadError::Malformed),
        }
    }

    #[test]
    fn negative_scores_and_logits_still_rank() {
        let body = r#"{"predictions":[[{"label":"joy","score":-3.5},{"label":"fear","score":-0.5},{"label":"love","score":-9}]]}"#;
        assert_eq!(read(body), Ok(vec![top("fear", Some(-0.5))]));
    }

    #[test]
    fn other_shapes_have_no_prediction() {
        for body in [
            "{}",
            "[]",
            "null",
            "42",
            r#""joy""#,
            r#"{"predictions":[]}"#,
            r#"{"predictions":[[]]}"#,
            r#"{"predictions":[[1,2,3]]}"#,
            r#"{"predictions":[[[{"label":"joy","score":1}]]]}"#,
            r#"{"predictions":[{"label":7,"score":1}]}"#,
            r#"{"error":"model not ready"}"#,
        ] {
            assert_eq!(read(body), Err(ReadError::NoPrediction), "{body}");
        }
    }

    #[test]
    fn broken_and_truncated_json_is_malformed() {
        assert_eq!(read(""), Err(ReadError::Malformed));
        assert_eq!(read("<html>"), Err(ReadError::Malformed));
        assert_eq!(
            read_top_predictions(&[0xff, 0xfe, 0x00], None),
            Err(ReadError::Malformed)
        );
        for cut in 0..WALKTHROUGH_BODY.len() {
            let truncated = WALKTHROUGH_BODY.get(..cut).unwrap_or_default();
            assert_eq!(read(truncated), Err(ReadError::Malformed), "cut at {cut}");
        }
        assert_eq!(
            read(&format!("{WALKTHROUGH_BODY} {{}}")),
            Err(ReadError::Malformed)
        );
    }

    /// The fast path reads KServe v1 classifier batches (the BERT emotion walkthrough's, the
    /// bench's), and every body gets the result the general reading gives (the fast path refuses
    /// anything else).
    #[test]
    fn fast_path_agrees_with_the_general_reading() {
        let general = |body: &str| match read_any_shape(body.as_bytes(), None) {
            Ok(predictions) if predictions.is_empty() => Err(ReadError::NoPrediction),
            other => other,
        };
        let instance = r#"[{"label":"joy","score":0.9813},{"label":"love","score":0.0052},{"label":"sadness","score":0.0041},{"label":"anger","score":0.0038},{"label":"surprise","score":0.0031},{"label":"fear","score":0.0025}]"#;
        let batch = format!(
            r#"{{"predictions":[{}]}}{}"#,
            [instance; 300].join(","),
            " ".repeat(40)
        );
        for body in [WALKTHROUGH_BODY, &batch] {
            assert!(serde_json::from_str::<KserveV1>(body).is_ok(), "{body}");
            assert_eq!(read(body), general(body));
        }
        assert_eq!(read(&batch).map(|p| p.len()), Ok(300));
        let bodies = [
            r#"{"predictions":[]}"#,
            r#"{"predictions":[[]]}"#,
            r#"{"predictions":[[],[{"label":"a","score":1}]]}"#,
            r#"{"predictions":[[{"label":"a","score":0.5},{"label":"b","score":0.5}]]}"#,
            r#"{"predictions":[[{"label":"a","score":-1},{"label":"b","score":2},{"label":"c","score":-0.0}]]}"#,
            r#"{"predictions":[[{"score":0.5,"label":"a"},{"label":"b","score":0.7}]]}"#,
            r#"{"predictions":[[{"label":"j\u006fy","score":0.5},{"label":"\"q\"","score":0.6}]]}"#,
            r#"{"predictions":[[{"label":"a","score":0.5,"x":1}]]}"#,
            r#"{"predictions":[[{"label":"a","label":"b","score":0.5}]]}"#,
            r#"{"predictions":[[{"label":"a","score":0.5,"score":0.1}]]}"#,
            r#"{"predictions":[[{"label":"a","score":1}]],"predictions":[["z"]]}"#,
            r#"{"predictions":[[{"label":"a","score":"0.9"},{"label":"b","score":0.1}]]}"#,
            r#"{"predictions":[[{"label":"a","score":null},{"label":"b","score":0.1}]]}"#,
            r#"{"predictions":[[{"label":"a"},{"label":"b","score":0.1}]]}"#,
            r#"{"predictions":[["a",{"label":"b","score":0.1}]]}"#,
            r#"{"predictions":[[{"label":1,"score":1},{"label":"b","score":0.1}]]}"#,
            r#"{"predictions":[{"label":"a","score":0.1}]}"#,
            r#"{"predictions":["a","b"]}"#,
            r#"{"predictions":[{"labels":["a","b"],"scores":[0.1,0.9]}]}"#,
            r#"{"outputs":[],"predictions":[[{"label":"a","score":1}]]}"#,
            r#"{"predictions":{"label":"a","score":1}}"#,
            r#"{"predictions":null}"#,
            r#"{"label":"a","score":1}"#,
            r#"{}"#,
            r#"[]"#,
            r#"[[{"label":"a","score":1}]]"#,
            r#"{"predictions":[[{"label":"a","score":1}]]} x"#,
            r#"  {"predictions" : [ [ {"label" : "a" , "score" : 1e-3 } ] ] }  "#,
            r#"{"predictions":[[{"label":"a","score":18446744073709551616},{"label":"b","score":1e308}]]}"#,
            r#"{"predictions":[[{"label":"a","score":1e400},{"label":"b","score":0.1}]]}"#,
            r#"{"predictions":[[{"label":"\ud800","score":1}]]}"#,
        ];
        for body in bodies {
            assert_eq!(read(body), general(body), "{body}");
        }
        for cut in 0..WALKTHROUGH_BODY.len() {
            let truncated = WALKTHROUGH_BODY.get(..cut).unwrap_or_default();
            assert_eq!(read(truncated), general(truncated), "cut at {cut}");
        }
        let broken_utf8 = br#"{"predictions":[[{"label":"X","score":1}]]}"#
            .iter()
            .map(|b| if *b == b'X' { 0xff } else { *b })
            .collect::<Vec<u8>>();
        assert_eq!(
            read_top_predictions(&broken_utf8, None),
            read_any_shape(&broken_utf8, None)
        );
    }

    #[test]
    fn deep_nesting_is_refused_without_exhausting_the_stack() {
        let depth = 100_000;
        let body = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
        assert_eq!(read(&body), Err(ReadError::Malformed));
        let body = format!(
            r#"{{"predictions":{}"joy"{}}}"#,
            "[".repeat(depth),
            "]".repeat(depth)
        );
        assert_eq!(read(&body), Err(ReadError::Malformed));
        // Nesting serde_json accepts but the shapes do not: no prediction, no deep recursion.
        let body = format!(
            r#"{{"outputs":[{{"data":{}"joy"{}}}]}}"#,
            "[".repeat(100),
            "]".repeat(100)
        );
        assert_eq!(read(&body), Err(ReadError::NoPrediction));
    }

    fn classes(names: &[&str]) -> Vec<String> {
        names.iter().map(|n| n.to_string()).collect()
    }

    /// KServe v1 class indices and probability vectors, read with `labelsByIndex`.
    #[test]
    fn v1_indices_and_score_vectors_with_labels_by_index() {
        let names = classes(&["sadness", "joy", "love"]);
        let read = |body: &str| read_top_predictions(body.as_bytes(), Some(&names));
        assert_eq!(
            read(r#"{"predictions": [1, 0, 2.0]}"#),
            Ok(vec![
                top("joy", None),
                top("sadness", None),
                top("love", None)
            ])
        );
        assert_eq!(
            read(r#"{"predictions": [[0.1, 0.7, 0.2], [0.5, 0.2, 0.5]]}"#),
            Ok(vec![top("joy", Some(0.7)), top("sadness", Some(0.5))])
        );
        // Never guessed: outside the list, negative, fractional, or a vector of another length.
        for body in [
            r#"{"predictions": [3]}"#,
            r#"{"predictions": [-1]}"#,
            r#"{"predictions": [1.5]}"#,
            r#"{"predictions": [[0.1, 0.9]]}"#,
            r#"{"predictions": [1, [0.1, 0.2, 0.3, 0.4]]}"#,
        ] {
            assert_eq!(read(body), Err(ReadError::ShapeMismatch), "{body}");
        }
        // Labels in the body still win over numbers; without the list numbers are no prediction.
        assert_eq!(
            read(r#"{"predictions": [[{"label": "fear", "score": 0.9}]]}"#),
            Ok(vec![top("fear", Some(0.9))])
        );
        assert_eq!(
            read_top_predictions(br#"{"predictions": [1, 2]}"#, None),
            Err(ReadError::NoPrediction)
        );
    }

    /// KServe v2 numeric tensors: `[N, K]` score rows, integer `[N]` indices.
    #[test]
    fn v2_numeric_tensors_with_labels_by_index() {
        let names = classes(&["anger", "fear", "joy", "love", "sadness", "surprise"]);
        let read = |body: &str| read_top_predictions(body.as_bytes(), Some(&names));
        let fp32 = r#"{"model_name": "m", "outputs": [{"name": "probs", "datatype": "FP32",
            "shape": [2, 6], "data": [0.1, 0.1, 0.5, 0.1, 0.1, 0.1, 0, 0, 0, 0, 0.9, 0.1]}]}"#;
        assert_eq!(
            read(fp32),
            Ok(vec![top("joy", Some(0.5)), top("sadness", Some(0.9))])
        );
        let nested = r#"{"outputs": [{"name": "p", "datatype": "FP32", "shape": [1, 6],
            "data": [[0.0, 0.0, 0.0, 0.0, 0.0, 1.0]]}]}"#;
        assert_eq!(read(nested), Ok(vec![top("surprise", Some(1.0))]));
        let indices = r#"{"outputs": [{"name": "class", "datatype": "INT64", "shape": [3],
            "data": [4, 2, 2]}]}"#;
        assert_eq!(
            read(indices),
            Ok(vec![
                top("sadness", None),
                top("joy", None),
                top("joy", None)
            ])
        );
        for body in [
            // Six scores announced as five classes, a shape that does not hold the data,
            // an index past the list, floats without a class dimension.
            r#"{"outputs": [{"datatype": "FP32", "shape": [1, 5], "data": [0, 0, 0, 0, 1, 0]}]}"#,
            r#"{"outputs": [{"datatype": "FP32", "shape": [2, 6], "data": [0, 0, 0, 0, 1, 0]}]}"#,
            r#"{"outputs": [{"datatype": "INT32", "shape": [1], "data": [6]}]}"#,
            r#"{"outputs": [{"datatype": "FP32", "shape": [3], "data": [0.1, 0.2, 0.7]}]}"#,
        ] {
            assert_eq!(read(body), Err(ReadError::ShapeMismatch), "{body}");
        }
        // A string output is still the labels, whatever the list says.
        let labelled = r#"{"outputs": [{"name": "label", "datatype": "BYTES", "shape": [1],
            "data": ["fear"]}, {"name": "score", "datatype": "FP32", "shape": [1], "data": [0.8]}]}"#;
        assert_eq!(read(labelled), Ok(vec![top("fear", Some(0.8))]));
    }
}
