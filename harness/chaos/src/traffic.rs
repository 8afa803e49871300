//! The load: client threads sending a mix of allowed and denied requests, each tagged with a
//! unique `x-chaos-id` (so the upstream's log can be matched to what was sent) and recorded
//! with its answer and timing.

use harness_demo::{DEMO_TOKEN, FORGED_TOKEN};
use harness_runner::http;
use harness_runner::rng::Rng;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

pub const PREDICT_V1: &str = "/v1/models/bert-emotion-model:predict";
const INFER_V2: &str = "/v2/models/bert-emotion-model/infer";
const HOST: &str = "bert-model.default.example.com";
/// Distinct values of the query strings and `x-api-key`s: each is its own rate-limit key.
const PATH_KEYS: usize = 40;
const API_KEYS: usize = 50;

const SENTENCES: [&str; 6] = [
    "The sky is blue and the sun is shining",
    "Istio is lovely",
    "The mood was somber",
    "Istio is scary",
    "I am angry about the outage",
    "The group was surprised by how much they can do",
];

/// What a client sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// GET /v1/models/bert-emotion-model?c=N: allowed without a token (/v1/* is exempt).
    ModelMetadata,
    /// POST the v1 predict path with `X-Test: istio-is-cool` and an `x-api-key`.
    PredictV1,
    /// POST /v2/models/bert-emotion-model/infer?c=N.
    InferV2,
    /// GET /healthz?c=N with the demo's valid JWT.
    HealthzWithToken,
    HealthzForgedToken,
    HealthzNoToken,
    /// GET /admin with a valid JWT: not on the allowlist.
    AdminWithToken,
    /// GET /v1/models/../../admin with a valid JWT: normalized to /admin.
    AdminByTraversal,
    /// POST the v1 predict path without `X-Test`.
    PredictWithoutXTest,
}

impl Kind {
    /// With their weights in the mix.
    const MIX: [(Kind, usize); 9] = [
        (Kind::ModelMetadata, 3),
        (Kind::PredictV1, 2),
        (Kind::InferV2, 4),
        (Kind::HealthzWithToken, 2),
        (Kind::HealthzForgedToken, 1),
        (Kind::HealthzNoToken, 1),
        (Kind::AdminWithToken, 1),
        (Kind::AdminByTraversal, 1),
        (Kind::PredictWithoutXTest, 1),
    ];

    /// Whether the gateway's policy must keep it from the upstream.
    pub fn denied(self) -> bool {
        matches!(
            self,
            Kind::HealthzForgedToken
                | Kind::HealthzNoToken
                | Kind::AdminWithToken
                | Kind::AdminByTraversal
                | Kind::PredictWithoutXTest
        )
    }

    /// Whether it carries the demo's valid JWT.
    pub fn carries_valid_token(self) -> bool {
        matches!(
            self,
            Kind::HealthzWithToken | Kind::AdminWithToken | Kind::AdminByTraversal
        )
    }

    pub fn is_prediction(self) -> bool {
        matches!(self, Kind::PredictV1 | Kind::InferV2)
    }

    fn random(rng: &mut Rng) -> Kind {
        let total: usize = Kind::MIX.iter().map(|(_, w)| w).sum();
        let mut at = rng.below(total);
        for (kind, weight) in Kind::MIX {
            if at < weight {
                return kind;
            }
            at -= weight;
        }
        Kind::ModelMetadata
    }
}

/// One request as sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sent {
    pub method: &'static str,
    /// The request target, byte for byte.
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Sent {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

pub fn build(kind: Kind, id: u64, rng: &mut Rng) -> Sent {
    let mut headers = vec![
        ("host".to_string(), HOST.to_string()),
        ("x-chaos-id".to_string(), id.to_string()),
    ];
    let mut add = |name: &str, value: String| headers.push((name.to_string(), value));
    let bearer = |token: &str| format!("Bearer {token}");
    let sentence = rng.pick(&SENTENCES).copied().unwrap_or("Istio is lovely");
    let key = rng.below(PATH_KEYS);
    let (method, path, body) = match kind {
        Kind::ModelMetadata => (
            "GET",
            format!("/v1/models/bert-emotion-model?c={key}"),
            "".to_string(),
        ),
        Kind::PredictV1 | Kind::PredictWithoutXTest => {
            add("content-type", "application/json".into());
            if kind == Kind::PredictV1 {
                add("x-test", "istio-is-cool".into());
            }
            add("x-api-key", format!("key-{}", rng.below(API_KEYS)));
            (
                "POST",
                PREDICT_V1.to_string(),
                json!({"input": sentence}).to_string(),
            )
        }
        Kind::InferV2 => {
            add("content-type", "application/json".into());
            let body = json!({"inputs": [{"name": "text", "shape": [1], "datatype": "BYTES", "data": [sentence]}]});
            ("POST", format!("{INFER_V2}?c={key}"), body.to_string())
        }
        Kind::HealthzWithToken => {
            add("authorization", bearer(DEMO_TOKEN));
            ("GET", format!("/healthz?c={}", key % 10), String::new())
        }
        Kind::HealthzForgedToken => {
            add("authorization", bearer(FORGED_TOKEN));
            ("GET", "/healthz".to_string(), String::new())
        }
        Kind::HealthzNoToken => ("GET", "/healthz".to_string(), String::new()),
        Kind::AdminWithToken => {
            add("authorization", bearer(DEMO_TOKEN));
            ("GET", "/admin".to_string(), String::new())
        }
        Kind::AdminByTraversal => {
            add("authorization", bearer(DEMO_TOKEN));
            ("GET", "/v1/models/../../admin".to_string(), String::new())
        }
    };
    Sent {
        method,
        path,
        headers,
        body,
    }
}

/// How a request ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Answered {
        status: u16,
        /// Response headers of interest (`x-envoy-ratelimited`, `x-ratelimit-*`, `server`).
        headers: Vec<(String, String)>,
        /// A 200 whose body holds a model prediction.
        prediction: bool,
    },
    /// No (complete) answer: refused, reset or timed out connection.
    Failed(String),
}

/// One request and its answer.
#[derive(Debug, Clone)]
pub struct Record {
    pub id: u64,
    pub kind: Kind,
    pub sent: Sent,
    /// Since the start of the run.
    pub started: Duration,
    pub elapsed: Duration,
    pub outcome: Outcome,
    /// The emotion-stats epoch a prediction was sent in (see [`PredictionGate`]).
    pub epoch: Option<u64>,
}

impl Record {
    pub fn status(&self) -> Option<u16> {
        match self.outcome {
            Outcome::Answered { status, .. } => Some(status),
            Outcome::Failed(_) => None,
        }
    }

    pub fn successful_prediction(&self) -> bool {
        matches!(
            self.outcome,
            Outcome::Answered {
                prediction: true,
                ..
            }
        )
    }

    pub fn to_json(&self) -> Value {
        let outcome = match &self.outcome {
            Outcome::Answered {
                status,
                headers,
                prediction,
            } => json!({"status": status, "headers": headers, "prediction": prediction}),
            Outcome::Failed(why) => json!({"error": why}),
        };
        json!({
            "id": self.id,
            "kind": format!("{:?}", self.kind),
            "method": self.sent.method,
            "path": self.sent.path,
            "headers": self.sent.headers,
            "started_ms": self.started.as_millis() as u64,
            "elapsed_ms": self.elapsed.as_millis() as u64,
            "epoch": self.epoch,
            "answer": outcome,
        })
    }
}

/// Predictions run under the read side; the scheduler takes the write side around an
/// emotion-stats module swap, so no prediction is in flight while the module changes and each
/// prediction belongs to exactly one epoch (the value inside), counted or not.
#[derive(Default)]
pub struct PredictionGate {
    epoch: RwLock<u64>,
}

impl PredictionGate {
    /// Waits for the predictions in flight, blocks new ones, and runs `change` (which gets the
    /// epoch, to start a new one).
    pub fn quiesced<T>(&self, change: impl FnOnce(&mut u64) -> T) -> T {
        let mut epoch = self
            .epoch
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        change(&mut epoch)
    }

    fn during<T>(&self, prediction: impl FnOnce(u64) -> T) -> T {
        let epoch = self
            .epoch
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        prediction(*epoch)
    }
}

/// What a client thread needs.
pub struct Client {
    pub gateway: String,
    pub start: Instant,
    pub deadline: Instant,
    pub ids: Arc<AtomicU64>,
    pub gate: Arc<PredictionGate>,
    pub seed: u64,
}

const SHOWN_RESPONSE_HEADERS: [&str; 6] = [
    "x-envoy-ratelimited",
    "x-ratelimit-limit",
    "x-ratelimit-remaining",
    "retry-after",
    "www-authenticate",
    "server",
];

impl Client {
    /// Sends until the deadline, a short random pause between requests.
    pub fn run(self) -> Vec<Record> {
        let mut rng = Rng::new(self.seed);
        let mut records = Vec::new();
        while Instant::now() < self.deadline {
            let kind = Kind::random(&mut rng);
            let id = self.ids.fetch_add(1, Ordering::SeqCst);
            let sent = build(kind, id, &mut rng);
            let record = if kind.is_prediction() {
                self.gate
                    .during(|epoch| self.send(id, kind, sent, Some(epoch)))
            } else {
                self.send(id, kind, sent, None)
            };
            records.push(record);
            std::thread::sleep(rng.millis(10, 40));
        }
        records
    }

    fn send(&self, id: u64, kind: Kind, sent: Sent, epoch: Option<u64>) -> Record {
        let started = self.start.elapsed();
        let at = Instant::now();
        let headers: Vec<(&str, &str)> = sent
            .headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        let answer = http::send(
            sent.method,
            &format!("{}{}", self.gateway, sent.path),
            &headers,
            sent.body.as_bytes(),
        );
        let elapsed = at.elapsed();
        let outcome = match answer {
            Ok(response) => Outcome::Answered {
                status: response.status,
                headers: SHOWN_RESPONSE_HEADERS
                    .iter()
                    .filter_map(|name| response.header(name).map(|v| (name.to_string(), v.into())))
                    .collect(),
                prediction: response.status == 200 && holds_prediction(&response.body),
            },
            Err(e) => Outcome::Failed(e.0),
        };
        Record {
            id,
            kind,
            sent,
            started,
            elapsed,
            outcome,
            epoch,
        }
    }
}

/// A v1 `predictions` list or a v2 `outputs` list with data.
fn holds_prediction(body: &[u8]) -> bool {
    let Ok(value) = serde_json::from_slice::<Value>(body) else {
        return false;
    };
    let v1 = value["predictions"]
        .as_array()
        .is_some_and(|p| !p.is_empty());
    let v2 = value["outputs"][0]["data"]
        .as_array()
        .is_some_and(|d| !d.is_empty());
    v1 || v2
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_carry_their_id_and_the_credentials_of_their_kind() {
        let mut rng = Rng::new(1);
        let predict = build(Kind::PredictV1, 42, &mut rng);
        assert_eq!(predict.header("x-chaos-id"), Some("42"));
        assert_eq!(predict.header("x-test"), Some("istio-is-cool"));
        assert!(predict.header("x-api-key").unwrap().starts_with("key-"));
        assert_eq!(predict.path, PREDICT_V1);
        let no_header = build(Kind::PredictWithoutXTest, 1, &mut rng);
        assert_eq!(no_header.header("x-test"), None);
        let forged = build(Kind::HealthzForgedToken, 2, &mut rng);
        assert_eq!(
            forged.header("authorization"),
            Some(format!("Bearer {FORGED_TOKEN}").as_str())
        );
        assert_eq!(
            build(Kind::HealthzNoToken, 3, &mut rng).header("authorization"),
            None
        );
        assert!(build(Kind::InferV2, 4, &mut rng).path.starts_with(INFER_V2));
        assert_eq!(
            build(Kind::AdminByTraversal, 5, &mut rng).path,
            "/v1/models/../../admin"
        );
        let denied: Vec<Kind> = Kind::MIX
            .iter()
            .map(|(k, _)| *k)
            .filter(|k| k.denied())
            .collect();
        assert_eq!(denied.len(), 5);
        assert!(!Kind::InferV2.denied() && Kind::InferV2.is_prediction());
    }

    #[test]
    fn predictions_are_recognized_in_v1_and_v2_bodies() {
        assert!(holds_prediction(
            br#"{"predictions":[[{"label":"joy","score":0.9}]]}"#
        ));
        assert!(holds_prediction(
            br#"{"outputs":[{"name":"label","data":["joy"]}]}"#
        ));
        assert!(!holds_prediction(br#"{"predictions":[]}"#));
        assert!(!holds_prediction(b"no json"));
        assert!(!holds_prediction(br#"{"name":"m","ready":"True"}"#));
    }

    #[test]
    fn the_gate_waits_for_predictions_in_flight() {
        let gate = Arc::new(PredictionGate::default());
        let inside = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (g, i) = (Arc::clone(&gate), Arc::clone(&inside));
        let prediction = std::thread::spawn(move || {
            g.during(|epoch| {
                i.store(true, Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(200));
                i.store(false, Ordering::SeqCst);
                epoch
            })
        });
        while !inside.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(1));
        }
        let seen_inside = gate.quiesced(|epoch| {
            *epoch += 1;
            inside.load(Ordering::SeqCst)
        });
        assert!(!seen_inside);
        assert_eq!(prediction.join().unwrap(), 0);
        assert_eq!(gate.during(|epoch| epoch), 1);
    }
}
