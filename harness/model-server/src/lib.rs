//! The upstream the plugins sit in front of, in-process: `harness run`, `harness demo` and
//! `harness model-server` serve it, and the integration tests start one per test to see what
//! reached the upstream.
//!
//! The demo model server: a KServe-shaped HTTP API (v1 and v2/Open Inference Protocol) over the
//! lexicon classifier. It records every request it receives, so tests can assert what reached
//! the upstream, and can be told to answer with a canned response (malformed or huge bodies).

mod lexicon;

use harness_runner::{Error, Result};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

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
    /// One JSON line per request received, written before it is answered: the record of what
    /// reached the upstream survives a SIGKILL of the server.
    request_log: Option<std::fs::File>,
}

/// A running model server; stopped when dropped (listener closed, open connections shut down).
pub struct ModelServer {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    stopping: Arc<AtomicBool>,
    /// Open connections by id, to shut them down when the server stops.
    connections: Arc<Mutex<HashMap<u64, TcpStream>>>,
    acceptor: Option<JoinHandle<()>>,
}

/// Requests larger than this are refused (the demo never needs more; a test flood cannot eat
/// the machine's memory).
const MAX_REQUEST_BYTES: usize = 64 << 20;
const MAX_HEAD_BYTES: usize = 64 << 10;
/// A keep-alive connection idle this long is closed.
const IDLE_TIMEOUT: Duration = Duration::from_secs(120);

impl ModelServer {
    /// Starts on 127.0.0.1 with a port the kernel picks.
    pub fn start() -> Result<Self> {
        Self::start_on("127.0.0.1:0")
    }

    pub fn start_on(listen: &str) -> Result<Self> {
        Self::start_with(listen, State::default())
    }

    /// Starts on `listen` and appends one JSON line per received request to `request_log`
    /// (`{"method", "path", "headers": [[name, value], …]}`), before answering it.
    pub fn start_logging(listen: &str, request_log: &std::path::Path) -> Result<Self> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(request_log)
            .map_err(|e| Error(format!("cannot open {}: {e}", request_log.display())))?;
        Self::start_with(
            listen,
            State {
                request_log: Some(file),
                ..State::default()
            },
        )
    }

    fn start_with(listen: &str, state: State) -> Result<Self> {
        let listener = TcpListener::bind(listen)
            .map_err(|e| Error(format!("model server cannot listen on {listen}: {e}")))?;
        let addr = listener.local_addr()?;
        let state = Arc::new(Mutex::new(state));
        let stopping = Arc::new(AtomicBool::new(false));
        let connections = Arc::new(Mutex::new(HashMap::new()));
        let acceptor = {
            let (state, stopping, connections) = (
                Arc::clone(&state),
                Arc::clone(&stopping),
                Arc::clone(&connections),
            );
            std::thread::spawn(move || {
                for (id, stream) in (0u64..).zip(listener.incoming()) {
                    if stopping.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(stream) = stream else { continue };
                    let Ok(clone) = stream.try_clone() else {
                        continue;
                    };
                    lock(&connections).insert(id, clone);
                    let (state, connections) = (Arc::clone(&state), Arc::clone(&connections));
                    std::thread::spawn(move || {
                        serve_connection(stream, &state);
                        if let Some(done) = lock(&connections).remove(&id) {
                            let _ = done.shutdown(Shutdown::Both);
                        }
                    });
                }
            })
        };
        Ok(Self {
            addr,
            state,
            stopping,
            connections,
            acceptor: Some(acceptor),
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
        self.stopping.store(true, Ordering::SeqCst);
        // Wakes the blocking accept so the acceptor sees the flag.
        let _ = TcpStream::connect(self.addr);
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
        for (_, connection) in lock(&self.connections).drain() {
            let _ = connection.shutdown(Shutdown::Both);
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A test thread that panicked while holding the lock leaves valid data behind.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// HTTP/1.1 with keep-alive, one request at a time per connection (as Envoy's pool uses it).
fn serve_connection(stream: TcpStream, state: &Mutex<State>) {
    let _ = stream.set_read_timeout(Some(IDLE_TIMEOUT));
    let Ok(mut writer) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(stream);
    loop {
        let request = match read_request(&mut reader) {
            Ok(Some(request)) => request,
            Ok(None) => return,
            Err(reason) => {
                let _ = write_response(&mut writer, 400, "text/plain", reason.as_bytes(), true);
                return;
            }
        };
        let close = request
            .header("connection")
            .is_some_and(|v| v.eq_ignore_ascii_case("close"));
        let stream = openai_stream(&request.method, &request.path, &request.body);
        let (status, content_type, body) = {
            let mut state = lock(state);
            if let Some(log) = &mut state.request_log {
                let line = json!({
                    "method": request.method,
                    "path": request.path,
                    "headers": request.headers,
                });
                // One write per line: a kill never leaves half a line before a whole one.
                let _ = log.write_all(format!("{line}\n").as_bytes());
            }
            state.requests.push(request.clone());
            match &state.canned {
                _ if stream.is_some() => (200, String::new(), Vec::new()),
                Some(canned) => (
                    canned.status,
                    canned.content_type.clone(),
                    canned.body.clone(),
                ),
                None => {
                    let (status, value) = route(&request.method, &request.path, &request.body);
                    (
                        status,
                        "application/json".to_string(),
                        value.to_string().into_bytes(),
                    )
                }
            }
        };
        let written = match &stream {
            Some(events) => write_event_stream(&mut writer, events, close),
            None => write_response(&mut writer, status, &content_type, &body, close),
        };
        if written.is_err() || close {
            return;
        }
    }
}

/// One request, or `None` when the client closed the connection between requests.
fn read_request(reader: &mut impl BufRead) -> std::result::Result<Option<RecordedRequest>, String> {
    let mut head = Vec::new();
    loop {
        let before = head.len();
        let read = reader
            .take((MAX_HEAD_BYTES - before) as u64 + 1)
            .read_until(b'\n', &mut head);
        match read {
            Ok(0) if head.is_empty() => return Ok(None),
            Ok(0) => return Err("connection closed in the request head".into()),
            Ok(_) => {}
            Err(_) if head.is_empty() => return Ok(None),
            Err(e) => return Err(format!("reading the request head: {e}")),
        }
        if head.len() > MAX_HEAD_BYTES {
            return Err("request head too large".into());
        }
        if head.ends_with(b"\r\n\r\n") || head == b"\r\n" {
            break;
        }
    }
    let text = String::from_utf8_lossy(&head);
    let mut lines = text.split("\r\n");
    let mut request_line = lines.next().unwrap_or_default().split(' ');
    let (Some(method), Some(path)) = (request_line.next(), request_line.next()) else {
        return Err("bad request line".into());
    };
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_string()))
        .collect();
    let mut request = RecordedRequest {
        method: method.to_string(),
        path: path.to_string(),
        headers,
        body: Vec::new(),
    };
    if request
        .header("transfer-encoding")
        .is_some_and(|v| v.eq_ignore_ascii_case("chunked"))
    {
        request.body = read_chunked(reader)?;
    } else if let Some(length) = request.header("content-length") {
        let length: usize = length
            .parse()
            .map_err(|_| "bad content-length".to_string())?;
        if length > MAX_REQUEST_BYTES {
            return Err("request body too large".into());
        }
        request.body = vec![0; length];
        reader
            .read_exact(&mut request.body)
            .map_err(|e| format!("reading the body: {e}"))?;
    }
    Ok(Some(request))
}

fn read_chunked(reader: &mut impl BufRead) -> std::result::Result<Vec<u8>, String> {
    let mut body = Vec::new();
    loop {
        let mut size_line = String::new();
        reader
            .read_line(&mut size_line)
            .map_err(|e| format!("reading a chunk size: {e}"))?;
        let size_hex = size_line.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_hex, 16)
            .map_err(|_| format!("bad chunk size {size_hex:?}"))?;
        if body.len() + size > MAX_REQUEST_BYTES {
            return Err("request body too large".into());
        }
        if size == 0 {
            // Trailers, then the empty line.
            loop {
                let mut line = String::new();
                let n = reader
                    .read_line(&mut line)
                    .map_err(|e| format!("reading trailers: {e}"))?;
                if n == 0 || line == "\r\n" {
                    return Ok(body);
                }
            }
        }
        let start = body.len();
        body.resize(start + size, 0);
        reader
            .read_exact(&mut body[start..])
            .map_err(|e| format!("reading a chunk: {e}"))?;
        let mut crlf = [0u8; 2];
        reader
            .read_exact(&mut crlf)
            .map_err(|e| format!("reading a chunk end: {e}"))?;
    }
}

fn write_response(
    writer: &mut impl Write,
    status: u16,
    content_type: &str,
    body: &[u8],
    close: bool,
) -> std::io::Result<()> {
    let connection = if close { "connection: close\r\n" } else { "" };
    let head = format!(
        "HTTP/1.1 {status} {}\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\n{connection}\r\n",
        reason(status),
        body.len()
    );
    let mut wire = head.into_bytes();
    wire.extend_from_slice(body);
    writer.write_all(&wire)?;
    writer.flush()
}

/// Pause between two events of a streamed answer, so a test can tell a stream delivered as it
/// is produced from one held back and delivered at once.
pub const STREAM_EVENT_GAP: Duration = Duration::from_millis(80);

/// A streamed answer: `text/event-stream`, chunked, one chunk per event, [`STREAM_EVENT_GAP`]
/// apart.
fn write_event_stream(
    writer: &mut impl Write,
    events: &[String],
    close: bool,
) -> std::io::Result<()> {
    let connection = if close { "connection: close\r\n" } else { "" };
    let head = format!(
        "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\ntransfer-encoding: chunked\r\n{connection}\r\n"
    );
    writer.write_all(head.as_bytes())?;
    writer.flush()?;
    for (i, event) in events.iter().enumerate() {
        if i > 0 {
            std::thread::sleep(STREAM_EVENT_GAP);
        }
        writer.write_all(format!("{:x}\r\n{event}\r\n", event.len()).as_bytes())?;
        writer.flush()?;
    }
    writer.write_all(b"0\r\n\r\n")?;
    writer.flush()
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        _ => "Status",
    }
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
        ("POST", ["openai", "v1", "chat", "completions"] | ["v1", "chat", "completions"]) => {
            match openai_answer(body) {
                Ok(answer) => (200, answer.completion()),
                Err(reason) => bad_request(reason),
            }
        }
        _ => not_found(path),
    }
}

fn not_found(path: &str) -> (u16, Value) {
    (404, json!({"error": format!("no route for {path}")}))
}

fn bad_request(reason: &str) -> (u16, Value) {
    (400, json!({"error": reason}))
}

/// KServe v1: `{"input": "text"}` (the BERT emotion walkthrough's requests) or
/// `{"instances": ["text", {"text": "..."}]}`.
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

/// An OpenAI-style chat completion: the reply names the emotion the lexicon finds in the last
/// message; tokens are counted as words.
struct ChatAnswer {
    model: String,
    reply: Vec<String>,
    prompt_tokens: usize,
    stream: bool,
    include_usage: bool,
}

fn openai_answer(body: &[u8]) -> std::result::Result<ChatAnswer, &'static str> {
    let request: Value = serde_json::from_slice(body).map_err(|_| "body is not JSON")?;
    let messages = request
        .get("messages")
        .and_then(Value::as_array)
        .ok_or("expected \"messages\"")?;
    let texts: Vec<&str> = messages
        .iter()
        .filter_map(|m| m.get("content").and_then(Value::as_str))
        .collect();
    let last = texts.last().copied().unwrap_or_default();
    let emotion = lexicon::classify(last)
        .first()
        .map_or("nothing", |(label, _)| *label);
    Ok(ChatAnswer {
        model: request
            .get("model")
            .and_then(Value::as_str)
            .unwrap_or("demo-llm")
            .to_string(),
        reply: format!("I sense {emotion} in your words")
            .split(' ')
            .map(str::to_string)
            .collect(),
        prompt_tokens: texts.iter().map(|t| t.split_whitespace().count()).sum(),
        stream: request.get("stream").and_then(Value::as_bool) == Some(true),
        include_usage: request
            .pointer("/stream_options/include_usage")
            .and_then(Value::as_bool)
            == Some(true),
    })
}

impl ChatAnswer {
    fn usage(&self) -> Value {
        let completion = self.reply.len();
        json!({"prompt_tokens": self.prompt_tokens, "completion_tokens": completion,
               "total_tokens": self.prompt_tokens + completion})
    }

    fn completion(&self) -> Value {
        json!({
            "id": "chatcmpl-demo", "object": "chat.completion", "model": self.model,
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": self.reply.join(" ")}}],
            "usage": self.usage(),
        })
    }

    /// The server-sent events of the streamed answer: one per word, the usage (when asked
    /// for), `[DONE]`.
    fn events(&self) -> Vec<String> {
        let chunk = |choices: Value, usage: Value| {
            let data = json!({"id": "chatcmpl-demo", "object": "chat.completion.chunk",
                              "model": self.model, "choices": choices, "usage": usage});
            format!("data: {data}\n\n")
        };
        let mut events: Vec<String> = self
            .reply
            .iter()
            .enumerate()
            .map(|(i, word)| {
                let content = if i == 0 {
                    word.clone()
                } else {
                    format!(" {word}")
                };
                chunk(
                    json!([{"index": 0, "delta": {"content": content}}]),
                    Value::Null,
                )
            })
            .collect();
        if self.include_usage {
            events.push(chunk(json!([]), self.usage()));
        }
        events.push("data: [DONE]\n\n".to_string());
        events
    }
}

/// The events to stream for a `stream: true` chat completion, `None` for any other request.
fn openai_stream(method: &str, target: &str, body: &[u8]) -> Option<Vec<String>> {
    let path = target.split('?').next().unwrap_or_default();
    let chat = matches!(path, "/openai/v1/chat/completions" | "/v1/chat/completions");
    if method != "POST" || !chat {
        return None;
    }
    let answer = openai_answer(body).ok()?;
    answer.stream.then(|| answer.events())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v1_predict_answers_the_walkthrough_shape() {
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
    fn openai_chat_completions_whole_and_streamed() {
        let request = br#"{"model":"llama-demo","messages":[{"role":"user","content":"I am so happy today"}]}"#;
        let (status, body) = route("POST", "/openai/v1/chat/completions", request);
        assert_eq!(status, 200);
        assert_eq!(body["model"], "llama-demo");
        assert_eq!(
            body["choices"][0]["message"]["content"],
            "I sense joy in your words"
        );
        assert_eq!(body["usage"]["prompt_tokens"], 5);
        assert_eq!(body["usage"]["completion_tokens"], 6);
        assert!(openai_stream("POST", "/openai/v1/chat/completions", request).is_none());

        let streamed =
            br#"{"model":"llama-demo","stream":true,"stream_options":{"include_usage":true},
            "messages":[{"role":"user","content":"I am so happy today"}]}"#;
        let events = openai_stream("POST", "/v1/chat/completions", streamed).unwrap();
        assert_eq!(events.len(), 6 + 2, "a word each, the usage, [DONE]");
        assert!(
            events[6].contains(r#""completion_tokens":6"#),
            "{}",
            events[6]
        );
        assert_eq!(events[7], "data: [DONE]\n\n");
        let without_usage = br#"{"stream":true,"messages":[{"role":"user","content":"hi"}]}"#;
        let events = openai_stream("POST", "/v1/chat/completions", without_usage).unwrap();
        assert!(events.iter().all(|e| !e.contains("prompt_tokens")));

        // Through the socket: chunked, every event delivered.
        let server = ModelServer::start().unwrap();
        let url = format!("http://{}/v1/chat/completions", server.addr());
        let response = harness_runner::http::send("POST", &url, &[], streamed).unwrap();
        assert_eq!(response.header("content-type"), Some("text/event-stream"));
        assert!(
            response.text().ends_with("data: [DONE]\n\n"),
            "{}",
            response.text()
        );
        assert_eq!(response.text().matches("data: ").count(), 8);
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
    fn logs_each_request_as_a_json_line() {
        let log = std::env::temp_dir().join(format!("model-server-log-{}", std::process::id()));
        let _ = std::fs::remove_file(&log);
        let server = ModelServer::start_logging("127.0.0.1:0", &log).unwrap();
        for id in ["1", "2"] {
            let url = format!("http://{}/healthz?n={id}", server.addr());
            let resp = harness_runner::http::send("GET", &url, &[("x-chaos-id", id)], b"").unwrap();
            assert_eq!(resp.status, 200);
        }
        let text = std::fs::read_to_string(&log).unwrap();
        let lines: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[1]["method"], "GET");
        assert_eq!(lines[1]["path"], "/healthz?n=2");
        assert!(lines[1]["headers"]
            .as_array()
            .unwrap()
            .contains(&json!(["x-chaos-id", "2"])));
        std::fs::remove_file(&log).unwrap();
    }

    #[test]
    fn records_requests_and_serves_canned_responses() {
        let server = ModelServer::start().unwrap();
        let url = format!("http://{}/v1/models/m:predict?x=1", server.addr());
        let resp =
            harness_runner::http::send("POST", &url, &[("x-api-key", "k")], br#"{"input":"sad"}"#)
                .unwrap();
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
        let resp = harness_runner::http::send(
            "GET",
            &format!("http://{}/healthz", server.addr()),
            &[],
            b"",
        )
        .unwrap();
        assert_eq!((resp.status, resp.text().as_str()), (502, "boom"));
    }
}
