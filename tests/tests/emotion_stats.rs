//! emotion-stats in a real Envoy in front of the demo model server: predictions become labeled
//! series on admin `/stats/prometheus`, every response on a model path lands in one outcome, and
//! no response is ever changed.

use harness_model_server::{CannedResponse, ModelServer};
use harness_runner::{http, Envoy, EnvoyConfig, Plugin};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

const V1_PREDICT: &str = "/v1/models/bert-emotion-model:predict";
const JSON: (&str, &str) = ("content-type", "application/json");

/// The BERT emotion walkthrough: its five sentences and the top label each gets.
const WALKTHROUGH_SENTENCES: [(&str, &str); 5] = [
    ("The mood was somber", "sadness"),
    ("Istio is scary", "fear"),
    ("The atmosphere was exciting", "joy"),
    (
        "The group was surprised by how much the can do with Istio",
        "surprise",
    ),
    ("Istio is lovely", "love"),
];

fn start_envoy(upstream: SocketAddr, config: Value, concurrency: u32) -> Envoy {
    let stats_tags = plugin_kit::metrics::stats_tags()
        .into_iter()
        .map(|(name, regex)| (name.to_string(), regex))
        .collect();
    Envoy::start(EnvoyConfig {
        plugins: vec![Plugin::from_dist("emotion-stats", config)],
        upstream,
        concurrency,
        stats_tags,
        ..Default::default()
    })
    .unwrap()
}

/// One sample of the Prometheus text format.
#[derive(Debug, Clone, PartialEq)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

fn parse_prometheus(text: &str) -> Vec<Sample> {
    text.lines()
        .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
        .filter_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let value: f64 = value.parse().ok()?;
            let (name, labels) = match series.split_once('{') {
                Some((name, rest)) => (name, rest.trim_end_matches('}')),
                None => (series, ""),
            };
            let labels = labels
                .split(',')
                .filter_map(|pair| {
                    let (key, quoted) = pair.split_once('=')?;
                    Some((key.to_string(), quoted.trim_matches('"').to_string()))
                })
                .collect();
            Some(Sample {
                name: name.to_string(),
                labels,
                value,
            })
        })
        .collect()
}

fn samples(envoy: &Envoy) -> Vec<Sample> {
    parse_prometheus(&envoy.admin_get("/stats/prometheus").unwrap())
}

/// The value of the series `name{labels}` (labels compared as a set), or `None` if absent.
fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let wanted: BTreeMap<String, String> = labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    samples
        .iter()
        .find(|s| s.name == name && s.labels == wanted)
        .map(|s| s.value)
}

/// The sum of the series of `name` whose labels include `labels` (`None` if there is none).
fn sum_of(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let matching: Vec<f64> = samples
        .iter()
        .filter(|s| {
            s.name == name
                && labels
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|s| s.value)
        .collect();
    (!matching.is_empty()).then(|| matching.iter().sum())
}

const OUTCOMES: [&str; 13] = [
    "counted",
    "not_json",
    "parse_error",
    "too_large",
    "no_prediction",
    "shape_mismatch",
    "no_usage",
    "stream_cut",
    "4xx",
    "5xx",
    "timeout",
    "reset",
    "other_status",
];

/// Responses with `outcome`, over every model.
fn outcome(samples: &[Sample], outcome: &str) -> f64 {
    sum_of(
        samples,
        "emotion_stats_responses_total",
        &[("outcome", outcome)],
    )
    .unwrap_or_else(|| panic!("no emotion_stats_responses_total{{outcome=\"{outcome}\"}}"))
}

fn outcomes(samples: &[Sample]) -> BTreeMap<String, f64> {
    OUTCOMES
        .iter()
        .map(|o| (o.to_string(), outcome(samples, o)))
        .collect()
}

fn only_outcome(name: &str, count: f64) -> BTreeMap<String, f64> {
    let mut expected: BTreeMap<String, f64> =
        OUTCOMES.iter().map(|o| (o.to_string(), 0.0)).collect();
    expected.insert(name.to_string(), count);
    expected
}

fn predict(envoy: &Envoy, sentence: &str) -> http::Response {
    let body = json!({ "input": sentence }).to_string();
    http::send("POST", &envoy.url(V1_PREDICT), &[JSON], body.as_bytes()).unwrap()
}

/// The samples once `label`'s score histogram holds `count` predictions (see [`wait_for_value`]).
fn wait_for_histogram_count(envoy: &Envoy, label: &str, count: f64) -> Vec<Sample> {
    wait_for_value(
        envoy,
        "emotion_stats_top_score_percent_count",
        &[("label", label)],
        count,
    )
}

/// The series of `name` (with `labels`) once it reaches `count`, or the last samples after 15 s:
/// histograms reach the admin output at Envoy's stats flush (every 5 s by default).
fn wait_for_value(envoy: &Envoy, name: &str, labels: &[(&str, &str)], count: f64) -> Vec<Sample> {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let current = samples(envoy);
        if sum_of(&current, name, labels) == Some(count) || Instant::now() > deadline {
            return current;
        }
        thread::sleep(Duration::from_millis(250));
    }
}

/// What an operator looks at first: three predictions and one 500 on one model give four
/// latencies and one `5xx`, all under the model's name.
#[test]
fn every_response_has_its_latency_and_outcome_under_its_model() {
    let upstream = ModelServer::start().unwrap();
    let envoy = start_envoy(upstream.addr(), json!({}), 1);
    let model = "bert-emotion-model";
    for sentence in ["Istio is lovely", "The mood was somber", "I hate waiting"] {
        assert_eq!(predict(&envoy, sentence).status, 200);
    }
    upstream.set_response(Some(CannedResponse {
        status: 500,
        content_type: "application/json".into(),
        body: br#"{"error":"out of memory"}"#.to_vec(),
    }));
    assert_eq!(predict(&envoy, "Istio is lovely").status, 500);

    let duration = "emotion_stats_request_duration_milliseconds_count";
    let stats = wait_for_value(&envoy, duration, &[("model", model)], 4.0);
    assert_eq!(value(&stats, duration, &[("model", model)]), Some(4.0));
    let total_ms = value(
        &stats,
        "emotion_stats_request_duration_milliseconds_sum",
        &[("model", model)],
    )
    .unwrap();
    assert!(total_ms < 4.0 * 60_000.0, "{total_ms} ms");
    let response = |outcome: &str| {
        value(
            &stats,
            "emotion_stats_responses_total",
            &[("model", model), ("outcome", outcome)],
        )
    };
    assert_eq!(response("5xx"), Some(1.0));
    assert_eq!(response("counted"), Some(3.0));
    assert_eq!(response("timeout"), Some(0.0));
    let text = envoy.admin_get("/stats/prometheus").unwrap();
    assert!(
        text.contains(&format!(
            "emotion_stats_request_duration_milliseconds_bucket{{model=\"{model}\",le=\"60000\"}} 4"
        )),
        "buckets up to a minute:\n{text}"
    );
}

/// Classifiers that answer with numbers: a KServe v1 class index and a v2 FP32 probability
/// tensor, named by `labelsByIndex` (top level, and a model's own list), and a vector that does
/// not fit the list.
#[test]
fn class_indices_and_score_tensors_count_their_labels_by_index() {
    let upstream = ModelServer::start().unwrap();
    let config = json!({
        "labelsByIndex": ["anger", "fear", "joy", "love", "sadness", "surprise"],
        "models": {"sentiment": {"labelsByIndex": ["sadness", "joy"]}}
    });
    let envoy = start_envoy(upstream.addr(), config, 1);
    let answer = |body: &str, path: &str| {
        upstream.set_response(Some(CannedResponse {
            status: 200,
            content_type: "application/json".into(),
            body: body.as_bytes().to_vec(),
        }));
        let response = http::send("POST", &envoy.url(path), &[JSON], b"{}").unwrap();
        assert_eq!(response.status, 200);
        assert_eq!(
            response.body,
            body.as_bytes(),
            "the answer passes unchanged"
        );
    };
    answer(r#"{"predictions": [4, 2]}"#, "/v1/models/emotions:predict");
    answer(
        r#"{"model_name": "emotions", "outputs": [{"name": "probs", "datatype": "FP32",
           "shape": [1, 6], "data": [0.05, 0.05, 0.1, 0.7, 0.05, 0.05]}]}"#,
        "/v2/models/emotions/infer",
    );
    answer(
        r#"{"predictions": [[0.9, 0.1]]}"#,
        "/v1/models/sentiment:predict",
    );
    answer(
        r#"{"predictions": [[0.2, 0.3, 0.5]]}"#,
        "/v1/models/sentiment:predict",
    );

    let stats = samples(&envoy);
    let top = |model: &str, label: &str| {
        value(
            &stats,
            "emotion_stats_top_label_total",
            &[("model", model), ("label", label)],
        )
    };
    assert_eq!(top("emotions", "sadness"), Some(1.0));
    assert_eq!(top("emotions", "joy"), Some(1.0));
    assert_eq!(top("emotions", "love"), Some(1.0));
    assert_eq!(top("emotions", "anger"), Some(0.0));
    assert_eq!(top("sentiment", "sadness"), Some(1.0));
    assert_eq!(top("sentiment", "joy"), Some(0.0));
    let responses = |model: &str, outcome: &str| {
        value(
            &stats,
            "emotion_stats_responses_total",
            &[("model", model), ("outcome", outcome)],
        )
    };
    assert_eq!(responses("emotions", "counted"), Some(2.0));
    assert_eq!(responses("sentiment", "counted"), Some(1.0));
    assert_eq!(responses("sentiment", "shape_mismatch"), Some(1.0));
}

/// Sends `body` to `target` on `addr` and reads the answer as it arrives: the bytes after the
/// head, when the first server-sent event arrived, and when the whole answer had.
fn timed_exchange(addr: &str, target: &str, body: &str) -> (Vec<u8>, Duration, Duration) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let request = format!(
        "POST {target} HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\n\
         content-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let started = Instant::now();
    stream.write_all(request.as_bytes()).unwrap();
    let mut raw = Vec::new();
    let mut first_event = None;
    let mut buf = [0u8; 4096];
    while !raw.ends_with(b"0\r\n\r\n") {
        let n = stream.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        raw.extend_from_slice(&buf[..n]);
        if first_event.is_none() && raw.windows(6).any(|w| w == b"data: ") {
            first_event = Some(started.elapsed());
        }
    }
    let done = started.elapsed();
    let head_end = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    (dechunk(&raw[head_end..]), first_event.unwrap_or(done), done)
}

/// The payload of a chunked body.
fn dechunk(mut chunked: &[u8]) -> Vec<u8> {
    let mut payload = Vec::new();
    loop {
        let line_end = chunked.windows(2).position(|w| w == b"\r\n").unwrap();
        let size_text = std::str::from_utf8(&chunked[..line_end]).unwrap();
        let size = usize::from_str_radix(size_text.split(';').next().unwrap().trim(), 16).unwrap();
        if size == 0 {
            return payload;
        }
        let start = line_end + 2;
        payload.extend_from_slice(&chunked[start..start + size]);
        chunked = &chunked[start + size + 2..];
    }
}

/// OpenAI-style answers on `openaiPaths`: a whole one and a streamed one (with
/// `include_usage`) add their tokens once each under the model they name; the stream passes
/// byte for byte and event by event, never held back; a stream without usage is `no_usage`.
#[test]
fn openai_answers_whole_and_streamed_add_their_tokens_once() {
    let upstream = ModelServer::start().unwrap();
    let config = json!({"openaiPaths": ["/openai/v1/chat/completions"]});
    let envoy = start_envoy(upstream.addr(), config, 1);
    let chat = "/openai/v1/chat/completions";
    let messages = json!([{"role": "user", "content": "I am so happy today"}]);

    let whole = json!({"model": "llama-demo", "messages": messages}).to_string();
    let response = http::send("POST", &envoy.url(chat), &[JSON], whole.as_bytes()).unwrap();
    assert_eq!(response.status, 200);
    let answer: Value = serde_json::from_slice(&response.body).unwrap();
    assert_eq!(answer["usage"]["completion_tokens"], 6);

    let streamed = json!({"model": "llama-demo", "messages": messages, "stream": true,
                          "stream_options": {"include_usage": true}})
    .to_string();
    let envoy_addr = envoy
        .url("")
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_string();
    let (through_envoy, first_event, done) = timed_exchange(&envoy_addr, chat, &streamed);
    let (direct, _, _) = timed_exchange(&upstream.addr().to_string(), chat, &streamed);
    assert_eq!(
        String::from_utf8_lossy(&through_envoy),
        String::from_utf8_lossy(&direct),
        "the stream's bytes pass unchanged"
    );
    assert!(through_envoy.ends_with(b"data: [DONE]\n\n"));
    // 8 events 80 ms apart: the first reaches the client while the server is still writing.
    let gap = harness_model_server::STREAM_EVENT_GAP;
    assert!(
        first_event + gap * 4 <= done,
        "first event after {first_event:?}, end after {done:?}: the stream was held back"
    );

    let no_usage = json!({"model": "llama-demo", "messages": messages, "stream": true}).to_string();
    let (_, _, _) = timed_exchange(&envoy_addr, chat, &no_usage);

    let tokens = "emotion_stats_tokens_total";
    let stats = wait_for_value(&envoy, tokens, &[("kind", "completion")], 12.0);
    let model = "llama-demo";
    assert_eq!(
        value(&stats, tokens, &[("model", model), ("kind", "prompt")]),
        Some(10.0)
    );
    assert_eq!(
        value(&stats, tokens, &[("model", model), ("kind", "completion")]),
        Some(12.0)
    );
    let responses = |outcome: &str| {
        value(
            &stats,
            "emotion_stats_responses_total",
            &[("model", model), ("outcome", outcome)],
        )
    };
    assert_eq!(responses("counted"), Some(2.0));
    assert_eq!(responses("no_usage"), Some(1.0));
    assert_eq!(
        value(
            &stats,
            "emotion_stats_top_label_total",
            &[("model", model), ("label", "joy")]
        ),
        Some(0.0),
        "an LLM answer is not a prediction"
    );
}

#[test]
fn walkthrough_sentences_become_labeled_counters_and_legacy_counters() {
    let upstream = ModelServer::start().unwrap();
    let envoy = start_envoy(upstream.addr(), json!({"legacyLabelCounters": true}), 1);
    let direct = format!("http://{}{V1_PREDICT}", upstream.addr());
    for (sentence, label) in WALKTHROUGH_SENTENCES {
        let through_envoy = predict(&envoy, sentence);
        assert_eq!(through_envoy.status, 200, "{}", envoy.log());
        let body = json!({ "input": sentence }).to_string();
        let straight = http::send("POST", &direct, &[JSON], body.as_bytes()).unwrap();
        assert_eq!(
            through_envoy.body, straight.body,
            "response changed for {sentence:?}"
        );
        let answer: Value = serde_json::from_slice(&through_envoy.body).unwrap();
        assert_eq!(answer["predictions"][0][0]["label"], label);
    }
    // The walkthrough sends each sentence once; send "somber" again to see a 2.
    predict(&envoy, "The mood was somber");

    let stats = samples(&envoy);
    let model = "bert-emotion-model";
    let expected = [
        ("sadness", 2.0),
        ("fear", 1.0),
        ("joy", 1.0),
        ("surprise", 1.0),
        ("love", 1.0),
        ("anger", 0.0),
        ("other", 0.0),
    ];
    for (label, count) in expected {
        assert_eq!(
            value(
                &stats,
                "emotion_stats_top_label_total",
                &[("model", model), ("label", label)]
            ),
            Some(count),
            "emotion_stats_top_label_total{{model=\"{model}\",label=\"{label}\"}}"
        );
        if label != "other" {
            // The walkthrough's own query: `curl .../stats/prometheus | grep sad` → `sadness{} 2`.
            assert_eq!(
                value(&stats, label, &[]),
                Some(count),
                "legacy counter {label}"
            );
        }
    }
    assert_eq!(outcomes(&stats), only_outcome("counted", 6.0));
    let text = envoy.admin_get("/stats/prometheus").unwrap();
    assert!(
        text.contains("# TYPE emotion_stats_top_label_total counter"),
        "{text}"
    );
    assert!(text.lines().any(|l| l == "sadness{} 2"), "{text}");

    let stats = wait_for_histogram_count(&envoy, "sadness", 2.0);
    assert_eq!(
        value(
            &stats,
            "emotion_stats_top_score_percent_count",
            &[("model", model), ("label", "sadness")]
        ),
        Some(2.0)
    );
    let sum = value(
        &stats,
        "emotion_stats_top_score_percent_sum",
        &[("model", model), ("label", "sadness")],
    )
    .unwrap_or_default();
    assert!(
        sum > 100.0 && sum <= 200.0,
        "two winning scores in percent: {sum}"
    );
}

#[test]
fn open_inference_batches_count_every_instance() {
    let upstream = ModelServer::start().unwrap();
    let envoy = start_envoy(upstream.addr(), json!({}), 1);
    let request = json!({"inputs": [{"name": "text", "shape": [3], "datatype": "BYTES",
        "data": ["so happy", "Istio is scary", "The mood was somber"]}]});
    let response = http::send(
        "POST",
        &envoy.url("/v2/models/emotion-v2/infer"),
        &[JSON],
        request.to_string().as_bytes(),
    )
    .unwrap();
    assert_eq!(response.status, 200);
    let stats = samples(&envoy);
    for label in ["joy", "fear", "sadness"] {
        assert_eq!(
            value(
                &stats,
                "emotion_stats_top_label_total",
                &[("model", "emotion-v2"), ("label", label)]
            ),
            Some(1.0),
            "{label}"
        );
    }
    assert_eq!(outcomes(&stats), only_outcome("counted", 1.0));
}

/// Each canned upstream answer: its outcome, and the client gets it byte for byte.
#[test]
fn every_response_lands_in_one_outcome_unchanged() {
    let upstream = ModelServer::start().unwrap();
    let envoy = start_envoy(upstream.addr(), json!({}), 1);
    let cases: [(u16, &str, &[u8], &str); 7] = [
        (200, "text/html", b"<html>joy</html>", "not_json"),
        (
            200,
            "application/json",
            b"{\"predictions\":[[{\"label\":",
            "parse_error",
        ),
        (
            200,
            "application/json",
            b"{\"error\":\"warming up\"}",
            "no_prediction",
        ),
        (500, "application/json", b"{\"error\":\"boom\"}", "5xx"),
        (503, "text/plain", b"unavailable", "5xx"),
        (
            404,
            "application/json",
            b"{\"error\":\"no such model\"}",
            "4xx",
        ),
        (
            200,
            "application/json; charset=utf-8",
            br#"{"predictions":[[{"label":"joy","score":NaN}]]}"#,
            "parse_error",
        ),
    ];
    let mut expected = only_outcome("counted", 0.0);
    for (status, content_type, body, outcome_name) in cases {
        upstream.set_response(Some(CannedResponse {
            status,
            content_type: content_type.to_string(),
            body: body.to_vec(),
        }));
        let response = predict(&envoy, "Istio is lovely");
        assert_eq!(response.status, status);
        assert_eq!(response.body, body, "{outcome_name}");
        assert_eq!(response.header("content-type"), Some(content_type));
        *expected.entry(outcome_name.to_string()).or_default() += 1.0;
        assert_eq!(outcomes(&samples(&envoy)), expected, "after {outcome_name}");
    }
    // Paths outside `paths` are not read at all.
    upstream.set_response(None);
    let health = http::send("GET", &envoy.url("/healthz"), &[], b"").unwrap();
    assert_eq!(health.status, 200);
    assert_eq!(outcomes(&samples(&envoy)), expected);
}

#[test]
fn five_mib_response_passes_byte_identical_as_too_large() {
    let upstream = ModelServer::start().unwrap();
    let envoy = start_envoy(upstream.addr(), json!({}), 1);
    let one = r#"[{"label":"joy","score":0.9},{"label":"fear","score":0.1}]"#;
    let count = 5 * 1024 * 1024 / one.len() + 1;
    let body = format!(r#"{{"predictions":[{}]}}"#, vec![one; count].join(","));
    assert!(body.len() > 5 * 1024 * 1024);
    upstream.set_response(Some(CannedResponse {
        status: 200,
        content_type: "application/json".into(),
        body: body.clone().into_bytes(),
    }));
    let response = predict(&envoy, "Istio is lovely");
    assert_eq!(response.status, 200, "{}", envoy.log());
    assert!(response.body == body.as_bytes(), "the 5 MiB body changed");
    let stats = samples(&envoy);
    assert_eq!(outcomes(&stats), only_outcome("too_large", 1.0));
    assert_eq!(
        value(
            &stats,
            "emotion_stats_top_label_total",
            &[("model", "bert-emotion-model"), ("label", "joy")]
        ),
        Some(0.0),
        "nothing counted from an unread body (the model's series exist, at 0)"
    );
}

/// A hand-written upstream: answers every request with `head` and then each of `pieces` in its
/// own write, a little apart, so Envoy sees the body in several chunks; then closes.
fn raw_upstream(head: String, pieces: Vec<Vec<u8>>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            read_request(&mut stream);
            let _ = stream.write_all(head.as_bytes());
            for piece in &pieces {
                let _ = stream.flush();
                thread::sleep(Duration::from_millis(20));
                let _ = stream.write_all(piece);
            }
            let _ = stream.flush();
        }
    });
    addr
}

/// Reads one request (headers and a content-length body) so the answer does not race it.
fn read_request(stream: &mut TcpStream) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let mut data = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let Ok(n) = stream.read(&mut buf) else { return };
        if n == 0 {
            return;
        }
        data.extend_from_slice(&buf[..n]);
        if let Some(end) = data.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&data[..end]).to_ascii_lowercase();
            let length: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            if data.len() >= end + 4 + length {
                return;
            }
        }
    }
}

fn chunk(bytes: &[u8]) -> Vec<u8> {
    let mut framed = format!("{:x}\r\n", bytes.len()).into_bytes();
    framed.extend_from_slice(bytes);
    framed.extend_from_slice(b"\r\n");
    framed
}

#[test]
fn chunked_response_split_inside_tokens_is_counted_and_unchanged() {
    let body: &[u8] = br#"{"predictions":[[{"label":"surprise","score":0.91},{"label":"joy","score":0.09}],[{"label":"anger","score":0.6},{"label":"fear","score":0.4}]]}"#;
    // Cuts inside a key, inside a label, inside a number.
    let cuts = [7, 30, 44, 45, 90, body.len()];
    let mut pieces = Vec::new();
    let mut start = 0;
    for cut in cuts {
        pieces.push(chunk(&body[start..cut]));
        start = cut;
    }
    pieces.push(b"0\r\n\r\n".to_vec());
    let head = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n";
    let upstream = raw_upstream(head.to_string(), pieces);
    let envoy = start_envoy(upstream, json!({}), 1);
    let response = predict(&envoy, "anything");
    assert_eq!(response.status, 200, "{}", envoy.log());
    assert_eq!(response.body, body);
    let stats = samples(&envoy);
    assert_eq!(outcomes(&stats), only_outcome("counted", 1.0));
    for label in ["surprise", "anger"] {
        assert_eq!(
            value(
                &stats,
                "emotion_stats_top_label_total",
                &[("model", "bert-emotion-model"), ("label", label)]
            ),
            Some(1.0),
            "{label}"
        );
    }
}

#[test]
fn response_cut_off_by_the_upstream_is_a_reset() {
    let head = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 1000\r\nconnection: close\r\n\r\n";
    let upstream = raw_upstream(
        head.to_string(),
        vec![br#"{"predictions":[[{"label":"joy","score":0.9}]]}"#.to_vec()],
    );
    let envoy = start_envoy(upstream, json!({}), 1);
    // The client sees a truncated response or a reset; either way nothing is counted as a prediction.
    let _ = predict(&envoy, "anything");
    let deadline = Instant::now() + Duration::from_secs(5);
    while outcome(&samples(&envoy), "reset") < 1.0 && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(outcomes(&samples(&envoy)), only_outcome("reset", 1.0));
}

#[test]
fn two_workers_add_up_and_share_the_model_bound() {
    let upstream = ModelServer::start().unwrap();
    let envoy = start_envoy(upstream.addr(), json!({"maxModels": 2}), 2);
    let threads = 4;
    let per_thread = 15;
    let models = ["m0", "m1", "m2", "m3", "m4", "m5"];
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let url_base = envoy.url("");
            thread::spawn(move || {
                for i in 0..per_thread {
                    let model = models[(t * per_thread + i) % models.len()];
                    let url = format!("{url_base}/v1/models/{model}:predict");
                    let response =
                        http::send("POST", &url, &[JSON], br#"{"input":"Istio is scary"}"#)
                            .unwrap();
                    assert_eq!(response.status, 200);
                }
            })
        })
        .collect();
    for handle in handles {
        handle.join().unwrap();
    }
    let total = (threads * per_thread) as f64;
    // Both workers served connections, so both VMs counted and defined metrics.
    let per_worker: Vec<f64> = envoy
        .admin_get("/stats?filter=worker_.*downstream_cx_total")
        .unwrap()
        .lines()
        .filter_map(|line| line.rsplit_once(": ")?.1.parse().ok())
        .collect();
    assert_eq!(per_worker.len(), 2, "{per_worker:?}");
    assert!(per_worker.iter().all(|n| *n > 0.0), "{per_worker:?}");
    let stats = samples(&envoy);
    assert_eq!(outcomes(&stats), only_outcome("counted", total));
    let fear: Vec<&Sample> = stats
        .iter()
        .filter(|s| s.name == "emotion_stats_top_label_total")
        .filter(|s| s.labels.get("label").map(String::as_str) == Some("fear"))
        .collect();
    let sum: f64 = fear.iter().map(|s| s.value).sum();
    assert_eq!(sum, total, "{fear:?}");
    let named: Vec<&str> = fear
        .iter()
        .filter_map(|s| s.labels.get("model").map(String::as_str))
        .filter(|m| *m != "other")
        .collect();
    assert_eq!(named.len(), 2, "maxModels holds across workers: {named:?}");
}

#[test]
fn hostile_model_names_stay_bounded_and_sanitized() {
    let upstream = ModelServer::start().unwrap();
    let envoy = start_envoy(upstream.addr(), json!({"maxModels": 3}), 1);
    for i in 0..50 {
        let path = format!("/v1/models/evil.{i};.;label=.=x{}:predict", "a".repeat(200));
        let response = http::send(
            "POST",
            &envoy.url(&path),
            &[JSON],
            br#"{"input":"Istio is lovely"}"#,
        )
        .unwrap();
        assert_eq!(response.status, 200);
    }
    let stats = samples(&envoy);
    let models: Vec<String> = stats
        .iter()
        .filter(|s| s.name == "emotion_stats_top_label_total")
        .filter_map(|s| s.labels.get("model").cloned())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    assert_eq!(models.len(), 4, "3 models + other: {models:?}");
    for model in &models {
        assert!(model.len() <= 64, "{model}");
        assert!(
            model
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-'),
            "{model}"
        );
    }
    let love: f64 = stats
        .iter()
        .filter(|s| s.name == "emotion_stats_top_label_total")
        .filter(|s| s.labels.get("label").map(String::as_str) == Some("love"))
        .map(|s| s.value)
        .sum();
    assert_eq!(love, 50.0);
}

#[test]
fn invalid_configuration_is_refused_naming_the_field() {
    let upstream = ModelServer::start().unwrap();
    let err = Envoy::start(EnvoyConfig {
        plugins: vec![Plugin::from_dist(
            "emotion-stats",
            json!({"labels": ["joy", "sad.ness"]}),
        )],
        upstream: upstream.addr(),
        ..Default::default()
    })
    .err()
    .expect("Envoy must refuse the configuration");
    assert!(err.0.contains("labels[1]"), "{}", err.0);
}

/// A real Prometheus scraping the Envoy admin `/stats/prometheus` every second, in a private
/// directory; killed when dropped.
struct Prometheus {
    child: std::process::Child,
    dir: std::path::PathBuf,
    base: String,
}

impl Prometheus {
    fn start(envoy_admin: SocketAddr) -> Prometheus {
        let dir = std::env::temp_dir().join(format!(
            "emotion-stats-prometheus-{}-{}",
            std::process::id(),
            envoy_admin.port()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let config = format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n- job_name: gateway\n  metrics_path: /stats/prometheus\n  static_configs:\n  - targets: ['{envoy_admin}']\n"
        );
        std::fs::write(dir.join("prometheus.yml"), config).unwrap();
        // Prometheus cannot report a kernel-chosen port, so take a free one and hand it over.
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let binary = std::env::var("PROMETHEUS_BIN").unwrap_or_else(|_| "prometheus".into());
        let child = std::process::Command::new(&binary)
            .arg(format!(
                "--config.file={}",
                dir.join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--log.level=warn")
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(dir.join("prometheus.log")).unwrap())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start {binary}: {e} (Debian package `prometheus`: ./build.sh setup)")
            });
        let prometheus = Prometheus {
            child,
            dir,
            base: format!("http://127.0.0.1:{port}"),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let ready = http::send("GET", &format!("{}/-/ready", prometheus.base), &[], b"");
            if matches!(ready, Ok(ref r) if r.status == 200) {
                return prometheus;
            }
            assert!(
                Instant::now() < deadline,
                "prometheus not ready: {}",
                std::fs::read_to_string(prometheus.dir.join("prometheus.log")).unwrap_or_default()
            );
            thread::sleep(Duration::from_millis(100));
        }
    }

    /// An instant query at `time_ms` (Unix milliseconds), or now; the `data.result` vector.
    fn query(&self, expr: &str, time_ms: Option<u64>) -> Vec<Value> {
        let mut target = format!("{}/api/v1/query?query={}", self.base, url_encode(expr));
        if let Some(ms) = time_ms {
            target.push_str(&format!("&time={}.{:03}", ms / 1000, ms % 1000));
        }
        let response = http::send("GET", &target, &[], b"").unwrap();
        let body: Value = serde_json::from_slice(&response.body).unwrap();
        assert_eq!(body["status"], "success", "{expr}: {body}");
        body["data"]["result"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// The Unix-millisecond timestamp of the latest scrape of the gateway, and the value of
    /// each of `exprs` (single-series selectors) in exactly that scrape.
    fn latest_scrape(&self, exprs: &[&str]) -> (u64, Vec<f64>) {
        let stamp = self.query(r#"timestamp(up{job="gateway"})"#, None);
        let seconds = stamp
            .first()
            .and_then(|s| s["value"][1].as_str())
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or_default();
        let ms = (seconds * 1000.0).round() as u64;
        let values = exprs
            .iter()
            .map(|expr| {
                let result = self.query(expr, Some(ms));
                result
                    .first()
                    .and_then(|s| s["value"][1].as_str())
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(f64::NAN)
            })
            .collect();
        (ms, values)
    }

    /// Waits for a scrape where every expression has its wanted value; its timestamp.
    fn wait_for_scrape(&self, wanted: &[(&str, f64)]) -> u64 {
        let exprs: Vec<&str> = wanted.iter().map(|(e, _)| *e).collect();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let (ms, values) = self.latest_scrape(&exprs);
            if ms > 0 && values.iter().zip(wanted).all(|(v, (_, w))| v == w) {
                return ms;
            }
            assert!(
                Instant::now() < deadline,
                "no scrape with {wanted:?}; last {values:?}"
            );
            thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn url_encode(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// Prometheus' `histogram_quantile` over cumulative `(le, count)` buckets (`+Inf` last).
fn bucket_quantile(q: f64, buckets: &[(f64, f64)]) -> f64 {
    let Some(&(_, observations)) = buckets.last() else {
        return f64::NAN;
    };
    if buckets.len() < 2 || observations == 0.0 {
        return f64::NAN;
    }
    let rank = q * observations;
    let at = buckets[..buckets.len() - 1]
        .iter()
        .position(|(_, count)| *count >= rank)
        .unwrap_or(buckets.len() - 1);
    if at == buckets.len() - 1 {
        return buckets[buckets.len() - 2].0;
    }
    let (end, count) = buckets[at];
    if at == 0 {
        return if end <= 0.0 { end } else { end * rank / count };
    }
    let (start, before) = buckets[at - 1];
    start + (end - start) * (rank - before) / (count - before)
}

/// The four plugins in one Envoy, in istiod's order, as the gateway runs them: auth-gate wants
/// `x-test: istio-is-cool`, path-allowlist allows the model and OpenAI paths and `/healthz`,
/// local-ratelimit allows 2 requests per hour per `x-api-key`, emotion-stats reads both kinds of
/// answers.
fn start_gateway(upstream: SocketAddr) -> Envoy {
    let stats_tags = plugin_kit::metrics::stats_tags()
        .into_iter()
        .map(|(name, regex)| (name.to_string(), regex))
        .collect();
    let chat = "/openai/v1/chat/completions";
    Envoy::start(EnvoyConfig {
        plugins: vec![
            Plugin::from_dist(
                "auth-gate",
                json!({"policies": [{"name": "need-header", "action": "ALLOW", "rules": [{
                    "when": [{"key": "request.headers[X-Test]", "values": ["istio-is-cool"]}]}]}]}),
            ),
            Plugin::from_dist(
                "path-allowlist",
                json!({"action": "ALLOW", "rules": [{"to": [{"operation": {
                    "paths": ["/v1/models/*", chat, "/healthz"]}}]}]}),
            ),
            Plugin::from_dist(
                "local-ratelimit",
                json!({"domain": "gateway",
                       "descriptors": [{"key": "x-api-key",
                                        "rate_limit": {"unit": "hour", "requests_per_unit": 2}}],
                       "rate_limits": [{"actions": [{"request_headers": {
                           "header_name": "x-api-key", "descriptor_key": "x-api-key"}}]}]}),
            ),
            Plugin::from_dist("emotion-stats", json!({"openaiPaths": [chat]})),
        ],
        upstream,
        stats_tags,
        ..Default::default()
    })
    .unwrap()
}

/// Every PromQL expression of the shipped Grafana dashboard, evaluated by a real Prometheus
/// over a window holding exactly the known traffic through the whole gateway (it starts and
/// ends on scrapes, so `rate` and `increase` need no extrapolation and the expected values are
/// exact).
#[test]
fn grafana_dashboard_queries_give_what_the_traffic_implies() {
    let upstream = ModelServer::start().unwrap();
    let envoy = start_gateway(upstream.addr());
    let prometheus = Prometheus::start(envoy.admin());
    let model = "bert-emotion-model";
    let llm = "llama-demo";
    const PASS: (&str, &str) = ("x-test", "istio-is-cool");
    let send = |method: &str, target: &str, headers: &[(&str, &str)], body: &str| {
        http::send(method, &envoy.url(target), headers, body.as_bytes())
            .unwrap()
            .status
    };
    let sentence_body = |sentence: &str| json!({ "input": sentence }).to_string();
    let chat = |stream: bool| {
        let body = json!({"model": llm, "stream": stream, "stream_options": {"include_usage": true},
                          "messages": [{"role": "user", "content": "I am so happy today"}]});
        send(
            "POST",
            "/openai/v1/chat/completions",
            &[JSON, PASS],
            &body.to_string(),
        )
    };
    // What the window's traffic adds to each decision of the gateway.
    let traffic_of_every_kind = |key: &str| {
        assert_eq!(
            send("GET", "/healthz", &[], ""),
            403,
            "no header: auth-gate"
        );
        assert_eq!(send("GET", "/admin", &[PASS], ""), 403, "path-allowlist");
        for expected in [200, 200, 429] {
            assert_eq!(
                send("GET", "/healthz", &[PASS, ("x-api-key", key)], ""),
                expected
            );
        }
        assert_eq!(chat(false), 200);
        assert_eq!(chat(true), 200);
    };

    // Before the window: one of everything defines every series (at its value) first.
    assert_eq!(
        send(
            "POST",
            V1_PREDICT,
            &[JSON, PASS],
            &sentence_body("Istio is lovely")
        ),
        200
    );
    traffic_of_every_kind("warm-up");
    let start_ms = prometheus.wait_for_scrape(&[
        (
            r#"sum(emotion_stats_responses_total{outcome="counted"})"#,
            3.0,
        ),
        (
            r#"sum(emotion_stats_top_score_percent_count{label="love"})"#,
            1.0,
        ),
        (
            r#"sum(emotion_stats_tokens_total{kind="completion"})"#,
            12.0,
        ),
        (r#"sum(local_ratelimit_over_limit)"#, 1.0),
        (r#"sum(path_allowlist_denied_total)"#, 1.0),
        (r#"sum(auth_gate_requests_total{outcome="denied"})"#, 1.0),
    ]);

    let mut scores: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    let sentences = WALKTHROUGH_SENTENCES
        .iter()
        .map(|(s, _)| *s)
        .chain(["The mood was somber", "The mood was somber"]);
    for sentence in sentences {
        let response = http::send(
            "POST",
            &envoy.url(V1_PREDICT),
            &[JSON, PASS],
            sentence_body(sentence).as_bytes(),
        )
        .unwrap();
        let answer: Value = serde_json::from_slice(&response.body).unwrap();
        let top = &answer["predictions"][0][0];
        let percent = (top["score"].as_f64().unwrap() * 100.0).round();
        let label = top["label"].as_str().unwrap().to_string();
        scores.entry(label).or_default().push(percent);
    }
    for (status, content_type) in [(200, "text/html"), (500, "application/json")] {
        upstream.set_response(Some(CannedResponse {
            status,
            content_type: content_type.into(),
            body: b"x".to_vec(),
        }));
        send(
            "POST",
            V1_PREDICT,
            &[JSON, PASS],
            &sentence_body("Istio is lovely"),
        );
    }
    upstream.set_response(None);
    traffic_of_every_kind("in-window");
    let predictions: usize = scores.values().map(Vec::len).sum();
    // Through auth-gate with the header: the predictions, the two canned answers, and the
    // traffic of every kind but its first request.
    let allowed = predictions + 2 + 6;
    let end_ms = prometheus.wait_for_scrape(&[
        (
            r#"sum(emotion_stats_responses_total{outcome="counted"})"#,
            3.0 + predictions as f64 + 2.0,
        ),
        (
            r#"sum(emotion_stats_responses_total{outcome="not_json"})"#,
            1.0,
        ),
        (r#"sum(emotion_stats_responses_total{outcome="5xx"})"#, 1.0),
        (
            "sum(emotion_stats_top_score_percent_count)",
            1.0 + predictions as f64,
        ),
        (
            r#"sum(emotion_stats_tokens_total{kind="completion"})"#,
            24.0,
        ),
        (r#"sum(local_ratelimit_over_limit)"#, 2.0),
        (r#"sum(path_allowlist_denied_total)"#, 2.0),
        (r#"sum(auth_gate_requests_total{outcome="denied"})"#, 2.0),
        (
            r#"sum(auth_gate_requests_total{outcome="allowed"})"#,
            (1 + 6 + allowed) as f64,
        ),
    ]);
    let window_ms = end_ms - start_ms;
    let seconds = window_ms as f64 / 1000.0;

    let labels = [
        "joy", "love", "anger", "sadness", "fear", "surprise", "other",
    ];
    let count = |label: &str| scores.get(label).map_or(0.0, |s| s.len() as f64);
    let mut bounds: Vec<f64> = prometheus
        .query(
            r#"emotion_stats_top_score_percent_bucket{label="joy"}"#,
            Some(end_ms),
        )
        .iter()
        .filter_map(|s| s["metric"]["le"].as_str()?.parse().ok())
        .filter(|le: &f64| le.is_finite())
        .collect();
    bounds.sort_by(f64::total_cmp);
    bounds.dedup();
    assert!(!bounds.is_empty());
    for percent in scores.values().flatten() {
        assert!(
            !bounds.contains(percent),
            "score {percent} sits on a bucket bound"
        );
    }
    let quantile = |q: f64, label: &str| {
        let observed = scores.get(label).cloned().unwrap_or_default();
        let mut buckets: Vec<(f64, f64)> = bounds
            .iter()
            .map(|le| (*le, observed.iter().filter(|p| *p <= le).count() as f64))
            .collect();
        buckets.push((f64::INFINITY, observed.len() as f64));
        bucket_quantile(q, &buckets)
    };

    let dashboard: Value = serde_json::from_str(
        &std::fs::read_to_string(harness_runner::repo_root().join("docs/grafana-dashboard.json"))
            .unwrap(),
    )
    .unwrap();
    let per_second = |pairs: &[(&str, f64)]| -> BTreeMap<String, f64> {
        pairs
            .iter()
            .map(|(k, n)| (k.to_string(), n / seconds))
            .collect()
    };
    let mut checked = 0;
    for panel in dashboard["panels"].as_array().unwrap() {
        let title = panel["title"].as_str().unwrap();
        for target in panel["targets"].as_array().unwrap() {
            let ref_id = target["refId"].as_str().unwrap_or_default();
            let expr = target["expr"]
                .as_str()
                .unwrap()
                .replace("$__rate_interval", &format!("{window_ms}ms"))
                .replace("$__range", &format!("{window_ms}ms"))
                .replace("$model", ".*");
            let result = prometheus.query(&expr, Some(end_ms));
            // A series' key: its label values, in label-name order, joined with `/`.
            let mut got: BTreeMap<String, f64> = result
                .iter()
                .map(|s| {
                    let labels = s["metric"].as_object().unwrap();
                    let mut names: Vec<&String> = labels.keys().collect();
                    names.sort();
                    let key = names
                        .iter()
                        .filter_map(|n| labels[*n].as_str())
                        .collect::<Vec<_>>()
                        .join("/");
                    let value = s["value"][1].as_str().unwrap().parse().unwrap();
                    (key, value)
                })
                .collect();
            let mut expected: BTreeMap<String, f64> = match (title, ref_id) {
                ("Predictions per second by label", _) => labels
                    .iter()
                    .map(|l| (l.to_string(), count(l) / seconds))
                    .collect(),
                ("Share of each label", _) => labels
                    .iter()
                    .map(|l| (l.to_string(), count(l) / predictions as f64))
                    .collect(),
                ("Winning score quantiles by label (percent)", ref_id) => {
                    let q = if ref_id == "A" { 0.5 } else { 0.1 };
                    labels
                        .iter()
                        .map(|l| (l.to_string(), quantile(q, l)))
                        .collect()
                }
                ("Responses by outcome", _) => OUTCOMES
                    .iter()
                    .map(|o| {
                        let n = match *o {
                            "counted" => predictions as f64 + 2.0,
                            "not_json" | "5xx" => 1.0,
                            _ => 0.0,
                        };
                        (o.to_string(), n / seconds)
                    })
                    .collect(),
                ("Predictions per second by model", _) => {
                    per_second(&[(model, predictions as f64), (llm, 0.0)])
                }
                ("Latency quantiles by model (ms)", _) => {
                    // Timing is the host's: one finite latency per model, within the buckets.
                    for have in got.values() {
                        assert!(
                            have.is_finite() && *have > 0.0 && *have <= 60_000.0,
                            "{title}: {got:?} ({expr})"
                        );
                    }
                    [model, llm]
                        .iter()
                        .map(|m| (m.to_string(), got.get(*m).copied().unwrap_or(f64::NAN)))
                        .collect()
                }
                ("Gateway decisions per second", "A") => {
                    per_second(&[("allowed", allowed as f64), ("denied", 1.0)])
                }
                ("Gateway decisions per second", "B") => per_second(&[("", 1.0)]),
                ("Gateway decisions per second", "C") => per_second(&[("x-api-key", 1.0)]),
                ("Tokens per second by model", _) => per_second(&[
                    ("completion/llama-demo", 12.0),
                    ("prompt/llama-demo", 10.0),
                    ("completion/bert-emotion-model", 0.0),
                    ("prompt/bert-emotion-model", 0.0),
                ]),
                _ => panic!("no expectation for panel {title:?} {ref_id}: add one"),
            };
            // Series the expectation does not name must be at zero (auth-gate's other
            // outcomes, for example).
            for (key, have) in &got {
                if !expected.contains_key(key) {
                    assert_eq!(*have, 0.0, "{title} [{key}] ({expr})");
                    expected.insert(key.clone(), 0.0);
                }
            }
            got.retain(|key, _| expected.contains_key(key));
            assert_eq!(
                got.keys().collect::<Vec<_>>(),
                expected.keys().collect::<Vec<_>>(),
                "{title}: {expr}"
            );
            for (key, want) in &expected {
                let have = got[key];
                let same = (want.is_nan() && have.is_nan())
                    || (have - want).abs() <= 1e-6 * want.abs().max(1.0);
                assert!(same, "{title} [{key}]: got {have}, want {want} ({expr})");
            }
            checked += 1;
        }
    }
    assert_eq!(checked, 12, "every dashboard query was evaluated");
}
