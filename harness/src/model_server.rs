//! The demo model server: a KServe-shaped HTTP API (v1 and v2/Open Inference Protocol) over the
//! lexicon classifier. It records every request it receives, so tests can assert what reached
//! the upstream, and can be told to answer with a canned response (malformed or huge bodies).

use crate::lexicon;
use crate::{Error, Result};
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;

/// A request as the upstream saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedRequest {
    pub method: String,
    /// The request target exactly as received (path and query).
    pub path: String,
    /// Header names lower-cased.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl RecordedRequest {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// What to answer instead of the model's own response, for every request until cleared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CannedResponse {
    pub status: u16,
    pub content_type: String,
    pub body: Vec<u8>,
}

#[derive(Default)]
struct State {
    requests: Vec<RecordedRequest>,
    canned: Option<CannedResponse>,
}

/// A running model server; stopped when dropped.
pub struct ModelServer {
    server: Arc<tiny_http::Server>,
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    workers: Vec<JoinHandle<()>>,
}

const WORKERS: usize = 4;

impl ModelServer {
    /// Starts on 127.0.0.1 with a port the kernel picks.
    pub fn start() -> Result<Self> {
        Self::start_on("127.0.0.1:0")
    }

    pub fn start_on(listen: &str) -> Result<Self> {
        let server = tiny_http::Server::http(listen)
            .map_err(|e| Error(format!("model server cannot listen on {listen}: {e}")))?;
        let addr = server
            .server_addr()
            .to_ip()
            .ok_or_else(|| Error("model server has no IP address".into()))?;
        let server = Arc::new(server);
        let state = Arc::new(Mutex::new(State::default()));
        let workers = (0..WORKERS)
            .map(|_| {
                let server = Arc::clone(&server);
                let state = Arc::clone(&state);
                std::thread::spawn(move || {
                    while let Ok(request) = server.recv() {
                        handle(request, &state);
                    }
                })
            })
            .collect();
        Ok(Self {
            server,
            addr,
            state,
            workers,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Requests received so far, oldest first.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        lock(&self.state).requests.clone()
    }

    pub fn clear_requests(&self) {
        lock(&self.state).requests.clear();
    }

    /// Answer every following request with `canned` (`None`: the model answers again).
    pub fn set_response(&self, canned: Option<CannedResponse>) {
        lock(&self.state).canned = canned;
    }
}

impl Drop for ModelServer {
    fn drop(&mut self) {
        for _ in &self.workers {
            self.server.unblock();
        }
        for worker in self.workers.drain(..) {
            let _ = worker.join();
        }
    }
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    // A test thread that panicked while holding the lock leaves valid data behind.
    state
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn handle(mut request: tiny_http::Request, state: &Mutex<State>) {
    let mut body = Vec::new();
    let read = request.as_reader().read_to_end(&mut body);
    let recorded = RecordedRequest {
        method: request.method().as_str().to_string(),
        path: request.url().to_string(),
        headers: request
            .headers()
            .iter()
            .map(|h| {
                (
                    h.field.as_str().as_str().to_ascii_lowercase(),
                    h.value.as_str().to_string(),
                )
            })
            .collect(),
        body,
    };
    let (status, content_type, payload) = {
        let mut state = lock(state);
        state.requests.push(recorded.clone());
        match (&state.canned, read) {
            (_, Err(e)) => (
                400,
                "text/plain".to_string(),
                format!("cannot read body: {e}").into_bytes(),
            ),
            (Some(canned), _) => (
                canned.status,
                canned.content_type.clone(),
                canned.body.clone(),
            ),
            (None, Ok(_)) => {
                let (status, value) = route(&recorded.method, &recorded.path, &recorded.body);
                (
                    status,
                    "application/json".to_string(),
                    value.to_string().into_bytes(),
                )
            }
        }
    };
    let mut response = tiny_http::Response::from_data(payload).with_status_code(status);
    if let Ok(header) = tiny_http::Header::from_bytes("content-type", content_type.as_bytes()) {
        response = response.with_header(header);
    }
    let _ = request.respond(response);
}

/// The model API: returns status and JSON body.
fn route(method: &str, target: &str, body: &[u8]) -> (u16, Value) {
    let path = target.split('?').next().unwrap_or_default();
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match (method, segments.as_slice()) {
        ("GET", ["healthz"]) | ("GET", ["ready"]) => (200, json!({"status": "ok"})),
        ("GET", ["metrics"]) => (200, json!({"requests": "see the harness"})),
        ("GET", ["admin", ..]) => (
            200,
            json!({"admin": "internal console: must never be reachable from outside"}),
        ),
        ("GET", ["v1", "models", model]) => (200, json!({"name": model, "ready": "True"})),
        ("GET", ["v2", "models", model]) => (200, json!({"name": model, "ready": true})),
        ("POST", ["v1", "models", model_verb]) => match model_verb.split_once(':') {
            Some((_, "predict")) => predict_v1(body),
            _ => not_found(path),
        },
        ("POST", ["v2", "models", model, "infer"]) => infer_v2(model, body),
        _ => not_found(path),
    }
}

fn not_found(path: &str) -> (u16, Value) {
    (404, json!({"error": format!("no route for {path}")}))
}

fn bad_request(reason: &str) -> (u16, Value) {
    (400, json!({"error": reason}))
}

/// KServe v1: `{"input": "text"}` (seed 003) or `{"instances": ["text", {"text": "..."}]}`.
fn predict_v1(body: &[u8]) -> (u16, Value) {
    let Ok(request) = serde_json::from_slice::<Value>(body) else {
        return bad_request("body is not JSON");
    };
    let texts: Vec<String> = if let Some(input) = request.get("input").and_then(Value::as_str) {
        vec![input.to_string()]
    } else if let Some(instances) = request.get("instances").and_then(Value::as_array) {
        let texts: Option<Vec<String>> = instances.iter().map(instance_text).collect();
        match texts {
            Some(texts) => texts,
            None => return bad_request("each instance must be a string or {\"text\": string}"),
        }
    } else {
        return bad_request("expected \"input\" or \"instances\"");
    };
    let predictions: Vec<Value> = texts
        .iter()
        .map(|text| {
            let scores: Vec<Value> = lexicon::classify(text)
                .into_iter()
                .map(|(label, score)| json!({"label": label, "score": score}))
                .collect();
            Value::Array(scores)
        })
        .collect();
    (200, json!({"predictions": predictions}))
}

fn instance_text(instance: &Value) -> Option<String> {
    instance
        .as_str()
        .or_else(|| instance.get("text").and_then(Value::as_str))
        .map(str::to_string)
}

/// KServe v2 / Open Inference Protocol: one BYTES input; answers the top label and its score
/// per instance as two outputs, `label` and `score`.
fn infer_v2(model: &str, body: &[u8]) -> (u16, Value) {
    let Ok(request) = serde_json::from_slice::<Value>(body) else {
        return bad_request("body is not JSON");
    };
    let data = request
        .get("inputs")
        .and_then(|inputs| inputs.get(0))
        .and_then(|input| input.get("data"))
        .and_then(Value::as_array);
    let Some(texts) = data.and_then(|d| d.iter().map(|v| v.as_str()).collect::<Option<Vec<_>>>())
    else {
        return bad_request("expected inputs[0].data to be a list of strings");
    };
    let tops: Vec<(&str, f64)> = texts
        .iter()
        .filter_map(|text| lexicon::classify(text).into_iter().next())
        .collect();
    let n = tops.len();
    (
        200,
        json!({
            "model_name": model,
            "outputs": [
                {"name": "label", "shape": [n], "datatype": "BYTES", "data": tops.iter().map(|t| t.0).collect::<Vec<_>>()},
                {"name": "score", "shape": [n], "datatype": "FP32", "data": tops.iter().map(|t| t.1).collect::<Vec<_>>()},
            ]
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v1_predict_answers_seed_shape() {
        let (status, body) = route(
            "POST",
            "/v1/models/bert-emotion-model:predict",
            br#"{"input":"Istio is lovely"}"#,
        );
        assert_eq!(status, 200);
        let first = &body["predictions"][0];
        assert_eq!(first.as_array().unwrap().len(), 6);
        assert_eq!(first[0]["label"], "love");
        let (status, body) = route(
            "POST",
            "/v1/models/m:predict",
            br#"{"instances":["I am sad",{"text":"so scary"}]}"#,
        );
        assert_eq!(status, 200);
        assert_eq!(body["predictions"][0][0]["label"], "sadness");
        assert_eq!(body["predictions"][1][0]["label"], "fear");
    }

    #[test]
    fn v2_infer_answers_label_and_score_outputs() {
        let (status, body) = route(
            "POST",
            "/v2/models/m/infer",
            br#"{"inputs":[{"name":"text","shape":[2],"datatype":"BYTES","data":["so happy","I am angry"]}]}"#,
        );
        assert_eq!(status, 200);
        assert_eq!(body["model_name"], "m");
        assert_eq!(body["outputs"][0]["data"], json!(["joy", "anger"]));
        assert_eq!(body["outputs"][1]["data"].as_array().unwrap().len(), 2);
    }

    #[test]
    fn model_metadata_health_and_errors() {
        assert_eq!(
            route("GET", "/v1/models/bert", b"").1,
            json!({"name": "bert", "ready": "True"})
        );
        assert_eq!(route("GET", "/healthz", b"").0, 200);
        assert_eq!(route("GET", "/admin", b"").0, 200);
        assert_eq!(route("POST", "/v1/models/m:predict", b"{").0, 400);
        assert_eq!(
            route("POST", "/v1/models/m:predict", br#"{"instances":[1]}"#).0,
            400
        );
        assert_eq!(route("POST", "/v1/models/m:explain", b"{}").0, 404);
        assert_eq!(
            route("POST", "/v2/models/m/infer", br#"{"inputs":[]}"#).0,
            400
        );
        assert_eq!(route("GET", "/nothing", b"").0, 404);
    }

    #[test]
    fn records_requests_and_serves_canned_responses() {
        let server = ModelServer::start().unwrap();
        let url = format!("http://{}/v1/models/m:predict?x=1", server.addr());
        let resp =
            crate::http::send("POST", &url, &[("x-api-key", "k")], br#"{"input":"sad"}"#).unwrap();
        assert_eq!(resp.status, 200);
        let seen = server.requests();
        assert_eq!(seen.len(), 1);
        assert_eq!(seen[0].path, "/v1/models/m:predict?x=1");
        assert_eq!(seen[0].header("X-API-KEY"), Some("k"));
        server.set_response(Some(CannedResponse {
            status: 502,
            content_type: "text/plain".into(),
            body: b"boom".to_vec(),
        }));
        let resp = crate::http::send(
            "GET",
            &format!("http://{}/healthz", server.addr()),
            &[],
            b"",
        )
        .unwrap();
        assert_eq!((resp.status, resp.text().as_str()), (502, "boom"));
    }
}
