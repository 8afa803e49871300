//! emotion-stats' reading of a model response: headers, the body in chunks of fuzzed sizes, the
//! end of the stream, the verdict, and what the verdict adds to the metrics. Input: lines
//! `<:status>`, `<content-type>`, `<content-encoding>`, `<chunk sizes, comma-separated, cycled>`,
//! `<end: eos | trailers | headers-eos | reset>`, then the body (the rest, newlines included).
//!
//! Invariants: every response lands in exactly one outcome (one `responses_total` counter, +1);
//! predictions exist exactly for `counted`, and the top-label counters add up to them; the
//! verdict does not depend on the chunk boundaries; a complete 2xx JSON body within the limit
//! gets the verdict its parsed content gives.
#![no_main]

use emotion_stats::compiled::{compile, Compiled};
use emotion_stats::config::Config;
use emotion_stats::metrics::{
    EmotionMetrics, MetricHost, MetricKind, RESPONSES_TOTAL, TOP_LABEL_TOTAL,
};
use emotion_stats::prediction::{read_top_predictions, ReadError};
use emotion_stats::response::{Outcome, ResponseHead, ResponseTracker, Verdict};
use emotion_stats::usage::SseUsage;
use libfuzzer_sys::fuzz_target;

const MAX_BODY_BYTES: usize = 512;

#[derive(Default)]
struct Host {
    names: Vec<String>,
    increments: Vec<(u32, u64)>,
}

impl MetricHost for Host {
    fn define(&mut self, _kind: MetricKind, name: &str) -> Option<u32> {
        self.names.push(name.to_string());
        u32::try_from(self.names.len() - 1).ok()
    }
    fn increment(&mut self, id: u32, by: u64) {
        self.increments.push((id, by));
    }
    fn record(&mut self, _id: u32, _value: u64) {}
}

impl Host {
    fn incremented(&self, metric: &str) -> Vec<u64> {
        self.increments
            .iter()
            .filter(|(id, _)| self.names[*id as usize].ends_with(metric))
            .map(|(_, by)| *by)
            .collect()
    }
}

#[derive(Clone, Copy, PartialEq)]
enum End {
    EndOfStream,
    Trailers,
    WithHeaders,
    Reset,
}

struct Response<'a> {
    head: ResponseHead<'a>,
    chunk_sizes: Vec<usize>,
    end: End,
    body: &'a [u8],
}

fn parse(data: &[u8]) -> Option<Response<'_>> {
    let mut parts = data.splitn(6, |b| *b == b'\n');
    let mut line = || std::str::from_utf8(parts.next()?).ok();
    let (status, content_type, content_encoding, sizes, end) =
        (line()?, line()?, line()?, line()?, line()?);
    let end = match end {
        "eos" => End::EndOfStream,
        "trailers" => End::Trailers,
        "headers-eos" => End::WithHeaders,
        "reset" => End::Reset,
        _ => return None,
    };
    let chunk_sizes = sizes
        .split(',')
        .filter_map(|size| size.trim().parse::<usize>().ok())
        .filter(|size| *size > 0)
        .collect();
    let body = parts.next().unwrap_or_default();
    Some(Response {
        head: ResponseHead {
            status: Some(status).filter(|s| !s.is_empty()),
            content_type: Some(content_type).filter(|s| !s.is_empty()),
            content_encoding: Some(content_encoding).filter(|s| !s.is_empty()),
        },
        chunk_sizes,
        end,
        body,
    })
}

/// Plays the response through a tracker as the plugin's callbacks do.
fn play(response: &Response<'_>, chunk_sizes: &[usize]) -> Verdict {
    let mut tracker = ResponseTracker::new(MAX_BODY_BYTES);
    tracker.on_headers(&response.head, response.end == End::WithHeaders);
    if response.end != End::WithHeaders {
        let mut rest = response.body;
        let mut sizes = chunk_sizes.iter().cycle();
        loop {
            let size = sizes.next().copied().unwrap_or(rest.len()).min(rest.len());
            let (chunk, after) = rest.split_at(size);
            rest = after;
            let last = rest.is_empty();
            if tracker.wants_chunk(chunk.len()) {
                tracker.on_body_chunk(Some(chunk));
            }
            if last {
                if response.end == End::EndOfStream {
                    tracker.on_end_of_stream();
                }
                break;
            }
        }
        if response.end == End::Trailers {
            tracker.on_end_of_stream();
        }
    }
    tracker
        .finish(None)
        .expect("a response whose headers were seen gets a verdict")
}

thread_local! {
    static CONFIG: Compiled = plugin_kit::config::parse::<Config>(
        format!(r#"{{"maxBodyBytes":{MAX_BODY_BYTES},"labels":["joy","sadness","anger"]}}"#).as_bytes(),
    )
    .and_then(compile)
    .expect("the fixed configuration compiles");
}

fuzz_target!(|data: &[u8]| {
    let Some(response) = parse(data) else {
        return;
    };
    let verdict = play(&response, &response.chunk_sizes);
    assert_eq!(
        verdict.outcome == Outcome::Counted,
        !verdict.predictions.is_empty(),
        "{verdict:?}"
    );
    assert_eq!(
        play(&response, &[]),
        verdict,
        "one chunk and fuzzed chunks disagree"
    );

    // Past the headers (2xx JSON), a complete body within the limit is judged by its content.
    let body_read = !matches!(
        verdict.outcome,
        Outcome::NotJson | Outcome::ClientError | Outcome::ServerError | Outcome::OtherStatus
    );
    if body_read
        && matches!(response.end, End::EndOfStream | End::Trailers)
        && response.body.len() <= MAX_BODY_BYTES
    {
        let expected = match read_top_predictions(response.body, None) {
            Ok(predictions) => (Outcome::Counted, predictions),
            Err(ReadError::Malformed) => (Outcome::ParseError, Vec::new()),
            Err(ReadError::NoPrediction) => (Outcome::NoPrediction, Vec::new()),
            Err(ReadError::ShapeMismatch) => (Outcome::ShapeMismatch, Vec::new()),
        };
        assert_eq!((verdict.outcome, verdict.predictions.clone()), expected);
    }

    // The same bytes as an OpenAI-style event stream: chunk boundaries change nothing.
    let mut whole = SseUsage::new(MAX_BODY_BYTES);
    whole.feed(response.body);
    let mut pieces = SseUsage::new(MAX_BODY_BYTES);
    let mut rest = response.body;
    for size in response
        .chunk_sizes
        .iter()
        .chain(std::iter::once(&usize::MAX))
    {
        let (chunk, after) = rest.split_at((*size).min(rest.len()));
        pieces.feed(chunk);
        rest = after;
    }
    assert_eq!(whole.facts(), pieces.facts());
    assert_eq!(
        (whole.done, whole.malformed, whole.too_large),
        (pieces.done, pieces.malformed, pieces.too_large)
    );

    // Numbers read as class indices and score vectors: any outcome, never a panic.
    let classes: Vec<String> = ["joy", "sadness", "anger"]
        .iter()
        .map(|c| c.to_string())
        .collect();
    if let Ok(predictions) = read_top_predictions(response.body, Some(&classes)) {
        assert!(!predictions.is_empty());
    }

    CONFIG.with(|config| {
        let mut host = Host::default();
        let mut metrics = EmotionMetrics::define(config, &mut host);
        metrics.count(&verdict, "bert", Some(1), &config.labels, &mut host);
        assert_eq!(host.incremented(RESPONSES_TOTAL), [1], "{verdict:?}");
        let counted: u64 = host.incremented(TOP_LABEL_TOTAL).iter().sum();
        assert_eq!(counted, verdict.predictions.len() as u64, "{verdict:?}");
    });
});
