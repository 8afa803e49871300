//! Following one response on a configured path, from its headers to its end, and deciding its
//! outcome. The body is never held back: the plugin copies each chunk as it passes (up to the
//! limit) and reads the copy once the stream is over.

use crate::prediction::{read_top_predictions, ReadError, TopPrediction};
use crate::usage::{read_usage, SseUsage, TokenUsage};

/// Where a response on a configured path is counted; every such response gets exactly one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Its predictions were counted.
    Counted,
    /// 2xx, but the content type is not JSON (or the body is compressed).
    NotJson,
    /// 2xx JSON that does not parse (broken, truncated, too deeply nested).
    ParseError,
    /// 2xx JSON larger than `maxBodyBytes`: passed through, not parsed.
    TooLarge,
    /// 2xx JSON without a recognizable prediction.
    NoPrediction,
    /// 2xx class indices or score vectors that do not fit the `labelsByIndex` list.
    ShapeMismatch,
    /// 2xx answer of an OpenAI-style endpoint without `usage`.
    NoUsage,
    /// A streamed OpenAI-style answer that ended before its usage and `[DONE]`.
    StreamCut,
    /// A 4xx status.
    ClientError,
    /// A 5xx status (Envoy's own 503 when it found no healthy upstream included).
    ServerError,
    /// Envoy gave up waiting for the upstream (its 504 for a route or per-try timeout).
    Timeout,
    /// The upstream reset the stream, or the stream ended before the response did.
    Reset,
    /// Any other status (1xx, 3xx, missing or not a number).
    OtherStatus,
}

impl Outcome {
    pub const ALL: [Outcome; 13] = [
        Outcome::Counted,
        Outcome::NotJson,
        Outcome::ParseError,
        Outcome::TooLarge,
        Outcome::NoPrediction,
        Outcome::ShapeMismatch,
        Outcome::NoUsage,
        Outcome::StreamCut,
        Outcome::ClientError,
        Outcome::ServerError,
        Outcome::Timeout,
        Outcome::Reset,
        Outcome::OtherStatus,
    ];

    /// The value of the `outcome` tag.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Counted => "counted",
            Outcome::NotJson => "not_json",
            Outcome::ParseError => "parse_error",
            Outcome::TooLarge => "too_large",
            Outcome::NoPrediction => "no_prediction",
            Outcome::ShapeMismatch => "shape_mismatch",
            Outcome::NoUsage => "no_usage",
            Outcome::StreamCut => "stream_cut",
            Outcome::ClientError => "4xx",
            Outcome::ServerError => "5xx",
            Outcome::Timeout => "timeout",
            Outcome::Reset => "reset",
            Outcome::OtherStatus => "other_status",
        }
    }

    /// The model answered 2xx (whatever its body): the model name is a real one.
    pub fn is_2xx(self) -> bool {
        matches!(
            self,
            Outcome::Counted
                | Outcome::NotJson
                | Outcome::ParseError
                | Outcome::TooLarge
                | Outcome::NoPrediction
                | Outcome::ShapeMismatch
                | Outcome::NoUsage
                | Outcome::StreamCut
        )
    }

    /// Whether Envoy's response code details can tell more (see [`Self::with_code_details`]).
    pub fn wants_code_details(self) -> bool {
        matches!(self, Outcome::ServerError | Outcome::Reset)
    }

    /// A 5xx or a cut stream, refined with Envoy's `response.code_details`: its local 504 after
    /// a timeout (`upstream_response_timeout`, `upstream_per_try_timeout`) is a timeout, its
    /// 503 after a reset (`upstream_reset_before_response_started{…}`) is a reset.
    pub fn with_code_details(self, details: &str) -> Outcome {
        if !self.wants_code_details() {
            self
        } else if details.contains("timeout") {
            Outcome::Timeout
        } else if details.contains("upstream_reset") {
            Outcome::Reset
        } else {
            self
        }
    }
}

/// What a finished response amounts to.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    pub outcome: Outcome,
    /// The predictions of a classifier's answer: non-empty exactly when it was counted.
    pub predictions: Vec<TopPrediction>,
    /// The tokens of an OpenAI-style answer: set exactly when it was counted.
    pub usage: Option<TokenUsage>,
    /// The model an OpenAI-style answer names.
    pub answer_model: Option<String>,
}

impl Verdict {
    /// A verdict with nothing to count but its outcome.
    pub fn of(outcome: Outcome) -> Self {
        Self {
            outcome,
            predictions: Vec::new(),
            usage: None,
            answer_model: None,
        }
    }
}

#[derive(Debug)]
enum Body {
    /// No response headers yet.
    AwaitingHeaders,
    /// Decided from the headers; the body is not copied.
    Skipped(Outcome),
    Copying(Vec<u8>),
    /// An OpenAI-style event stream, read as it passes.
    Streaming(SseUsage),
    /// Past the limit; the copy was dropped.
    TooLarge,
    /// A chunk could not be read from the host, so the copy has a hole.
    Unreadable,
}

/// The response headers that decide whether a body is read.
#[derive(Debug, Clone, Copy)]
pub struct ResponseHead<'a> {
    pub status: Option<&'a str>,
    pub content_type: Option<&'a str>,
    pub content_encoding: Option<&'a str>,
}

/// What a response is read for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reading {
    /// A classifier's predictions (`paths`).
    Predictions,
    /// An OpenAI-style answer's token usage (`openaiPaths`), streamed or not.
    Usage,
}

/// The state of one response.
#[derive(Debug)]
pub struct ResponseTracker {
    reading: Reading,
    max_body_bytes: usize,
    body: Body,
    /// The end of the response was seen (end of stream on headers or body, or trailers).
    complete: bool,
}

impl ResponseTracker {
    /// A classifier's response.
    pub fn new(max_body_bytes: usize) -> Self {
        Self::reading(Reading::Predictions, max_body_bytes)
    }

    /// An OpenAI-style answer: `maxBodyBytes` bounds a whole JSON answer, and one line or event
    /// of a stream (never the stream).
    pub fn for_usage(max_body_bytes: usize) -> Self {
        Self::reading(Reading::Usage, max_body_bytes)
    }

    fn reading(reading: Reading, max_body_bytes: usize) -> Self {
        Self {
            reading,
            max_body_bytes,
            body: Body::AwaitingHeaders,
            complete: false,
        }
    }

    /// Response headers, and whether the response ends with them.
    pub fn on_headers(&mut self, head: &ResponseHead<'_>, end_of_stream: bool) {
        let status = head.status.and_then(|s| s.trim().parse::<u16>().ok());
        // A compressed body is not JSON text until decoded, which this plugin does not do.
        let encoded = head
            .content_encoding
            .is_some_and(|e| !e.trim().is_empty() && !e.trim().eq_ignore_ascii_case("identity"));
        let event_stream = head.content_type.is_some_and(is_event_stream);
        self.body = match status {
            Some(200..=299) if !encoded && event_stream && self.reading == Reading::Usage => {
                Body::Streaming(SseUsage::new(self.max_body_bytes))
            }
            Some(200..=299) if encoded || !head.content_type.is_some_and(is_json) => {
                Body::Skipped(Outcome::NotJson)
            }
            Some(200..=299) => Body::Copying(Vec::new()),
            Some(400..=499) => Body::Skipped(Outcome::ClientError),
            Some(500..=599) => Body::Skipped(Outcome::ServerError),
            _ => Body::Skipped(Outcome::OtherStatus),
        };
        self.complete = end_of_stream;
    }
    /// Whether a body chunk of `len` bytes should be read from the host and given to
    /// [`Self::on_body_chunk`]. A chunk that would pass the limit is not read at all: the copy so
    /// far is dropped and the outcome becomes `too_large`.
    pub fn wants_chunk(&mut self, len: usize) -> bool {
        if let Body::Streaming(sse) = &self.body {
            return len > 0 && !sse.done && !sse.too_large;
        }
        let Body::Copying(copy) = &self.body else {
            return false;
        };
        if copy.len().saturating_add(len) > self.max_body_bytes {
            self.body = Body::TooLarge;
            return false;
        }
        len > 0
    }

    /// A chunk read after [`Self::wants_chunk`] said yes; `None` if the host failed to give it.
    pub fn on_body_chunk(&mut self, chunk: Option<&[u8]>) {
        if let Body::Streaming(sse) = &mut self.body {
            match chunk {
                Some(bytes) => sse.feed(bytes),
                None => self.body = Body::Unreadable,
            }
            return;
        }
        if let Body::Copying(copy) = &mut self.body {
            match chunk {
                Some(bytes) if copy.len().saturating_add(bytes.len()) <= self.max_body_bytes => {
                    copy.extend_from_slice(bytes)
                }
                Some(_) => self.body = Body::TooLarge,
                None => self.body = Body::Unreadable,
            }
        }
    }

    /// The end of the response was seen (body end of stream, or trailers).
    pub fn on_end_of_stream(&mut self) {
        self.complete = true;
    }

    /// The verdict once the stream is over; `None` if no response headers were ever seen (there
    /// was no response to count). `by_index` is the model's `labelsByIndex`, if any.
    pub fn finish(self, by_index: Option<&[String]>) -> Option<Verdict> {
        let outcome = match self.body {
            Body::AwaitingHeaders => return None,
            Body::Skipped(outcome) => outcome,
            Body::Streaming(sse) => return Some(stream_verdict(&sse, self.complete)),
            _ if !self.complete => Outcome::Reset,
            Body::TooLarge => Outcome::TooLarge,
            Body::Unreadable => Outcome::ParseError,
            Body::Copying(copy) if self.reading == Reading::Usage => {
                return Some(match read_usage(&copy) {
                    Some(facts) => Verdict {
                        outcome: match facts.usage {
                            Some(_) => Outcome::Counted,
                            None => Outcome::NoUsage,
                        },
                        predictions: Vec::new(),
                        usage: facts.usage,
                        answer_model: facts.model,
                    },
                    None => Verdict::of(Outcome::ParseError),
                });
            }
            Body::Copying(copy) => {
                return Some(match read_top_predictions(&copy, by_index) {
                    Ok(predictions) => Verdict {
                        predictions,
                        ..Verdict::of(Outcome::Counted)
                    },
                    Err(ReadError::Malformed) => Verdict::of(Outcome::ParseError),
                    Err(ReadError::NoPrediction) => Verdict::of(Outcome::NoPrediction),
                    Err(ReadError::ShapeMismatch) => Verdict::of(Outcome::ShapeMismatch),
                })
            }
        };
        Some(Verdict::of(outcome))
    }
}

/// A usage reported counts, even if the stream was cut after it; otherwise what went wrong.
fn stream_verdict(sse: &SseUsage, complete: bool) -> Verdict {
    let facts = sse.facts();
    let outcome = if facts.usage.is_some() {
        Outcome::Counted
    } else if sse.too_large {
        Outcome::TooLarge
    } else if sse.malformed {
        Outcome::ParseError
    } else if !complete && !sse.done {
        Outcome::StreamCut
    } else {
        Outcome::NoUsage
    };
    Verdict {
        usage: facts.usage,
        answer_model: facts.model.clone(),
        ..Verdict::of(outcome)
    }
}

/// `text/event-stream`, parameters and case ignored.
fn is_event_stream(content_type: &str) -> bool {
    let media_type = content_type.split(';').next().unwrap_or_default().trim();
    media_type.eq_ignore_ascii_case("text/event-stream")
}

/// `application/json`, or any `+json` media type, parameters and case ignored.
fn is_json(content_type: &str) -> bool {
    let media_type = content_type.split(';').next().unwrap_or_default().trim();
    media_type.eq_ignore_ascii_case("application/json")
        || media_type
            .len()
            .checked_sub(5)
            .and_then(|at| media_type.get(at..))
            .is_some_and(|suffix| suffix.eq_ignore_ascii_case("+json"))
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(all(target_arch = "wasm32", target_os = "unknown"))]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    const WALKTHROUGH_BODY: &[u8] =
        br#"{"predictions":[[{"label":"sadness","score":0.97},{"label":"joy","score":0.01}]]}"#;

    fn json_200() -> ResponseHead<'static> {
        ResponseHead {
            status: Some("200"),
            content_type: Some("application/json"),
            content_encoding: None,
        }
    }

    fn tracker_2xx_json(limit: usize) -> ResponseTracker {
        let mut tracker = ResponseTracker::new(limit);
        tracker.on_headers(&json_200(), false);
        tracker
    }

    /// Feeds `chunks` the way the glue does and finishes with end of stream.
    fn run(mut tracker: ResponseTracker, chunks: &[&[u8]]) -> Verdict {
        for chunk in chunks {
            if tracker.wants_chunk(chunk.len()) {
                tracker.on_body_chunk(Some(chunk));
            }
        }
        tracker.on_end_of_stream();
        tracker.finish(None).unwrap()
    }

    #[test]
    fn whole_body_is_counted() {
        let verdict = run(tracker_2xx_json(1024), &[WALKTHROUGH_BODY]);
        assert_eq!(verdict.outcome, Outcome::Counted);
        assert_eq!(verdict.predictions.len(), 1);
        assert_eq!(verdict.predictions[0].label, "sadness");
    }

    #[test]
    fn body_split_at_every_byte_boundary_reads_the_same() {
        let whole = run(tracker_2xx_json(1024), &[WALKTHROUGH_BODY]);
        for cut in 0..=WALKTHROUGH_BODY.len() {
            let (a, b) = WALKTHROUGH_BODY.split_at(cut);
            assert_eq!(run(tracker_2xx_json(1024), &[a, b]), whole, "cut at {cut}");
        }
        for cut_a in 0..=WALKTHROUGH_BODY.len() {
            for cut_b in cut_a..=WALKTHROUGH_BODY.len() {
                let chunks = [
                    &WALKTHROUGH_BODY[..cut_a],
                    &WALKTHROUGH_BODY[cut_a..cut_b],
                    &WALKTHROUGH_BODY[cut_b..],
                ];
                assert_eq!(
                    run(tracker_2xx_json(1024), &chunks),
                    whole,
                    "cuts {cut_a} {cut_b}"
                );
            }
        }
        let bytes: Vec<&[u8]> = WALKTHROUGH_BODY.chunks(1).collect();
        assert_eq!(run(tracker_2xx_json(1024), &bytes), whole);
    }

    #[test]
    fn limit_is_inclusive_and_larger_bodies_are_too_large() {
        let exact = run(
            tracker_2xx_json(WALKTHROUGH_BODY.len()),
            &[WALKTHROUGH_BODY],
        );
        assert_eq!(exact.outcome, Outcome::Counted);
        let over = run(
            tracker_2xx_json(WALKTHROUGH_BODY.len() - 1),
            &[WALKTHROUGH_BODY],
        );
        assert_eq!(over, Verdict::of(Outcome::TooLarge));
        // Split: the chunk that crosses the limit is not even read.
        let mut tracker = tracker_2xx_json(10);
        assert!(tracker.wants_chunk(6));
        tracker.on_body_chunk(Some(b"123456"));
        assert!(!tracker.wants_chunk(5));
        assert!(!tracker.wants_chunk(1));
        tracker.on_end_of_stream();
        assert_eq!(tracker.finish(None), Some(Verdict::of(Outcome::TooLarge)));
    }

    #[test]
    fn huge_body_in_many_chunks_keeps_no_copy() {
        let mut tracker = tracker_2xx_json(1024);
        let chunk = [b' '; 4096];
        for _ in 0..1280 {
            assert!(!tracker.wants_chunk(chunk.len()));
        }
        assert!(matches!(tracker.body, Body::TooLarge));
        tracker.on_end_of_stream();
        assert_eq!(tracker.finish(None), Some(Verdict::of(Outcome::TooLarge)));
    }

    #[test]
    fn chunk_larger_than_announced_is_not_copied_past_the_limit() {
        let mut tracker = tracker_2xx_json(4);
        assert!(tracker.wants_chunk(2));
        tracker.on_body_chunk(Some(b"12345"));
        tracker.on_end_of_stream();
        assert_eq!(tracker.finish(None), Some(Verdict::of(Outcome::TooLarge)));
    }

    #[test]
    fn status_and_content_type_decide_before_the_body() {
        let cases: [(Option<&str>, Option<&str>, Outcome); 9] = [
            (Some("500"), Some("application/json"), Outcome::ServerError),
            (Some("404"), Some("application/json"), Outcome::ClientError),
            (Some("302"), None, Outcome::OtherStatus),
            (None, Some("application/json"), Outcome::OtherStatus),
            (Some("2x0"), Some("application/json"), Outcome::OtherStatus),
            (Some("200"), Some("text/html"), Outcome::NotJson),
            (Some("200"), None, Outcome::NotJson),
            (Some("204"), Some("application/jsonx"), Outcome::NotJson),
            (Some("200"), Some("json"), Outcome::NotJson),
        ];
        for (status, content_type, outcome) in cases {
            let mut tracker = ResponseTracker::new(1024);
            let head = ResponseHead {
                status,
                content_type,
                content_encoding: None,
            };
            tracker.on_headers(&head, false);
            assert!(!tracker.wants_chunk(WALKTHROUGH_BODY.len()));
            tracker.on_end_of_stream();
            assert_eq!(
                tracker.finish(None),
                Some(Verdict::of(outcome)),
                "{status:?} {content_type:?}"
            );
        }
    }

    #[test]
    fn compressed_json_is_not_read() {
        for (encoding, outcome) in [
            (Some("gzip"), Outcome::NotJson),
            (Some("br"), Outcome::NotJson),
            (Some("identity"), Outcome::Counted),
            (Some(""), Outcome::Counted),
            (None, Outcome::Counted),
        ] {
            let mut tracker = ResponseTracker::new(1024);
            let head = ResponseHead {
                content_encoding: encoding,
                ..json_200()
            };
            tracker.on_headers(&head, false);
            if tracker.wants_chunk(WALKTHROUGH_BODY.len()) {
                tracker.on_body_chunk(Some(WALKTHROUGH_BODY));
            }
            tracker.on_end_of_stream();
            assert_eq!(
                tracker.finish(None).map(|v| v.outcome),
                Some(outcome),
                "{encoding:?}"
            );
        }
    }

    #[test]
    fn json_media_types() {
        assert!(is_json("application/json"));
        assert!(is_json("Application/JSON; charset=utf-8"));
        assert!(is_json("application/problem+json"));
        assert!(is_json(" application/json "));
        assert!(!is_json("text/plain"));
        assert!(!is_json("json"));
        assert!(!is_json(""));
        assert!(!is_json("é+jso"));
    }

    #[test]
    fn parse_failures_and_empty_bodies() {
        assert_eq!(
            run(tracker_2xx_json(1024), &[b"{\"predictions\":[["]),
            Verdict::of(Outcome::ParseError)
        );
        assert_eq!(
            run(tracker_2xx_json(1024), &[b"{}"]),
            Verdict::of(Outcome::NoPrediction)
        );
        // Headers-only 200 JSON response: an empty body does not parse.
        let mut tracker = ResponseTracker::new(1024);
        tracker.on_headers(&json_200(), true);
        assert_eq!(tracker.finish(None), Some(Verdict::of(Outcome::ParseError)));
    }

    #[test]
    fn unreadable_chunk_is_a_parse_error() {
        let mut tracker = tracker_2xx_json(1024);
        assert!(tracker.wants_chunk(3));
        tracker.on_body_chunk(None);
        assert!(!tracker.wants_chunk(3));
        tracker.on_end_of_stream();
        assert_eq!(tracker.finish(None), Some(Verdict::of(Outcome::ParseError)));
    }

    #[test]
    fn stream_cut_before_its_end_is_a_reset() {
        let mut tracker = tracker_2xx_json(1024);
        assert!(tracker.wants_chunk(WALKTHROUGH_BODY.len()));
        tracker.on_body_chunk(Some(WALKTHROUGH_BODY));
        assert_eq!(tracker.finish(None), Some(Verdict::of(Outcome::Reset)));
    }

    #[test]
    fn envoys_code_details_tell_timeouts_and_resets_from_other_5xx() {
        let cases = [
            (
                Outcome::ServerError,
                "upstream_response_timeout",
                Outcome::Timeout,
            ),
            (
                Outcome::ServerError,
                "upstream_per_try_timeout",
                Outcome::Timeout,
            ),
            (
                Outcome::ServerError,
                "upstream_reset_before_response_started{connection_termination}",
                Outcome::Reset,
            ),
            (Outcome::ServerError, "via_upstream", Outcome::ServerError),
            (
                Outcome::Reset,
                "upstream_response_timeout",
                Outcome::Timeout,
            ),
            (
                Outcome::Reset,
                "downstream_remote_disconnect",
                Outcome::Reset,
            ),
            (
                Outcome::ClientError,
                "upstream_response_timeout",
                Outcome::ClientError,
            ),
            (
                Outcome::Counted,
                "upstream_reset_after_response_started",
                Outcome::Counted,
            ),
        ];
        for (outcome, details, refined) in cases {
            assert_eq!(outcome.with_code_details(details), refined, "{details}");
        }
    }

    #[test]
    fn numbers_that_do_not_fit_labels_by_index_are_their_own_outcome() {
        let names: Vec<String> = ["a", "b"].iter().map(|n| n.to_string()).collect();
        let finish = |body: &[u8]| {
            let mut tracker = tracker_2xx_json(1024);
            assert!(tracker.wants_chunk(body.len()));
            tracker.on_body_chunk(Some(body));
            tracker.on_end_of_stream();
            tracker.finish(Some(&names)).unwrap()
        };
        assert_eq!(finish(br#"{"predictions":[1]}"#).outcome, Outcome::Counted);
        assert_eq!(
            finish(br#"{"predictions":[[0.2,0.3,0.5]]}"#),
            Verdict::of(Outcome::ShapeMismatch)
        );
    }

    fn usage_tracker(content_type: &'static str) -> ResponseTracker {
        let mut tracker = ResponseTracker::for_usage(256);
        tracker.on_headers(
            &ResponseHead {
                status: Some("200"),
                content_type: Some(content_type),
                content_encoding: None,
            },
            false,
        );
        tracker
    }

    fn feed(tracker: &mut ResponseTracker, chunks: &[&[u8]]) {
        for chunk in chunks {
            if tracker.wants_chunk(chunk.len()) {
                tracker.on_body_chunk(Some(chunk));
            }
        }
    }

    const EVENTS: [&[u8]; 3] = [
        b"data: {\"model\":\"llm\",\"choices\":[{\"delta\":{\"content\":\"Hi\"}}]}\n\n",
        b"data: {\"model\":\"llm\",\"choices\":[],\"usage\":{\"prompt_tokens\":7,\"completion_tokens\":1}}\n\n",
        b"data: [DONE]\n\n",
    ];

    /// A stream is read event by event, far past `maxBodyBytes` in total (each event fits).
    #[test]
    fn streamed_usage_is_read_as_it_passes() {
        let mut tracker = usage_tracker("text/event-stream; charset=utf-8");
        let filler: &[u8] = b"data: {\"choices\":[{\"delta\":{\"content\":\"word\"}}]}\n\n";
        for _ in 0..100 {
            feed(&mut tracker, &[filler]);
        }
        feed(&mut tracker, &EVENTS);
        tracker.on_end_of_stream();
        let verdict = tracker.finish(None).unwrap();
        assert_eq!(verdict.outcome, Outcome::Counted);
        assert_eq!(
            verdict.usage,
            Some(TokenUsage {
                prompt: 7,
                completion: 1
            })
        );
        assert_eq!(verdict.answer_model.as_deref(), Some("llm"));
    }

    #[test]
    fn a_stream_cut_before_its_usage_is_its_own_outcome() {
        let mut tracker = usage_tracker("text/event-stream");
        feed(&mut tracker, &EVENTS[..1]);
        assert_eq!(tracker.finish(None).unwrap().outcome, Outcome::StreamCut);

        let mut ended_without_usage = usage_tracker("text/event-stream");
        feed(&mut ended_without_usage, &[EVENTS[0], EVENTS[2]]);
        ended_without_usage.on_end_of_stream();
        let verdict = ended_without_usage.finish(None).unwrap();
        assert_eq!((verdict.outcome, verdict.usage), (Outcome::NoUsage, None));
    }

    #[test]
    fn whole_openai_answers_and_failures() {
        let answer: &[u8] =
            br#"{"model":"llm","choices":[],"usage":{"prompt_tokens":5,"completion_tokens":9}}"#;
        let mut tracker = usage_tracker("application/json");
        feed(&mut tracker, &[answer]);
        tracker.on_end_of_stream();
        let verdict = tracker.finish(None).unwrap();
        assert_eq!(verdict.outcome, Outcome::Counted);
        assert_eq!(verdict.usage.map(|u| u.completion), Some(9));

        let mut tracker = usage_tracker("application/json");
        feed(&mut tracker, &[br#"{"model":"llm","choices":[]}"#]);
        tracker.on_end_of_stream();
        assert_eq!(tracker.finish(None).unwrap().outcome, Outcome::NoUsage);

        // An event stream on a classifier path is not JSON; a 500 on an OpenAI path is a 5xx.
        let mut classifier = ResponseTracker::new(256);
        classifier.on_headers(
            &ResponseHead {
                status: Some("200"),
                content_type: Some("text/event-stream"),
                content_encoding: None,
            },
            false,
        );
        assert_eq!(classifier.finish(None).unwrap().outcome, Outcome::NotJson);
        let mut failed = ResponseTracker::for_usage(256);
        failed.on_headers(
            &ResponseHead {
                status: Some("500"),
                content_type: Some("text/event-stream"),
                content_encoding: None,
            },
            true,
        );
        assert_eq!(failed.finish(None).unwrap().outcome, Outcome::ServerError);
    }

    #[test]
    fn no_response_headers_no_verdict() {
        assert_eq!(ResponseTracker::new(10).finish(None), None);
    }

    #[test]
    fn outcome_names_are_distinct_tag_values() {
        let names: Vec<&str> = Outcome::ALL.iter().map(|o| o.as_str()).collect();
        assert_eq!(
            names,
            [
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
                "other_status"
            ]
        );
        for name in names {
            assert_eq!(plugin_kit::metrics::sanitize_tag_value(name), name);
        }
    }
}
