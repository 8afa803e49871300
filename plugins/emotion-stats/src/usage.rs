//! The token usage of OpenAI-style answers (KServe's OpenAI-compatible endpoints, vLLM, …):
//! `usage.prompt_tokens` and `usage.completion_tokens`, and the answering `model`, from a whole
//! JSON body or from a server-sent event stream read as it passes.
//!
//! A stream (`stream: true` with `stream_options.include_usage`) ends with an event whose `usage`
//! is set, then `data: [DONE]`. [`SseUsage`] keeps only the current line and event, never the
//! stream, so a long answer costs no memory and is never held back.

use serde::Deserialize;

/// The tokens one answer used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenUsage {
    pub prompt: u64,
    pub completion: u64,
}

/// What an answer says about itself.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AnswerFacts {
    /// The `model` the server says answered (the first one a stream names).
    pub model: Option<String>,
    /// The last `usage` seen.
    pub usage: Option<TokenUsage>,
}

/// The fields read out of one answer or stream event; everything else is skipped unparsed.
#[derive(Deserialize)]
struct Answer {
    #[serde(default)]
    model: Option<serde_json::Value>,
    #[serde(default)]
    usage: Option<Usage>,
}

#[derive(Deserialize)]
struct Usage {
    prompt_tokens: u64,
    #[serde(default)]
    completion_tokens: u64,
}

/// Reads one JSON answer (or one event's data) into `facts`; `false` if it is not a JSON object
/// with the usual fields (a `usage` without `prompt_tokens` or with negative counts included).
fn read_answer(json: &[u8], facts: &mut AnswerFacts) -> bool {
    let Ok(answer) = serde_json::from_slice::<Answer>(json) else {
        return false;
    };
    if facts.model.is_none() {
        facts.model = answer
            .model
            .and_then(|m| m.as_str().map(str::to_string))
            .filter(|m| !m.is_empty());
    }
    if let Some(usage) = answer.usage {
        facts.usage = Some(TokenUsage {
            prompt: usage.prompt_tokens,
            completion: usage.completion_tokens,
        });
    }
    true
}

/// A whole (non-streamed) answer: `None` if it is not JSON.
pub fn read_usage(body: &[u8]) -> Option<AnswerFacts> {
    let mut facts = AnswerFacts::default();
    read_answer(body, &mut facts).then_some(facts)
}

/// A server-sent event stream, read chunk by chunk (WHATWG event-stream: lines end with `\n`,
/// `\r\n` or `\r`; `data:` lines of one event are joined with `\n`; a blank line ends the event).
#[derive(Debug)]
pub struct SseUsage {
    /// Longest line or event kept; past it the stream is [`Self::too_large`].
    limit: usize,
    line: Vec<u8>,
    data: Vec<u8>,
    /// The previous byte was `\r`: a following `\n` is the same line end.
    after_cr: bool,
    facts: AnswerFacts,
    /// `data: [DONE]` was seen.
    pub done: bool,
    /// An event's data was not the JSON of an answer.
    pub malformed: bool,
    /// A line or an event passed the limit; the rest is not read.
    pub too_large: bool,
}

impl SseUsage {
    pub fn new(limit: usize) -> Self {
        Self {
            limit,
            line: Vec::new(),
            data: Vec::new(),
            after_cr: false,
            facts: AnswerFacts::default(),
            done: false,
            malformed: false,
            too_large: false,
        }
    }

    pub fn feed(&mut self, chunk: &[u8]) {
        for &byte in chunk {
            if self.too_large || self.done {
                return;
            }
            match byte {
                b'\n' if self.after_cr => self.after_cr = false,
                b'\n' | b'\r' => {
                    self.after_cr = byte == b'\r';
                    self.end_line();
                }
                _ => {
                    self.after_cr = false;
                    if self.line.len() >= self.limit {
                        self.too_large = true;
                    } else {
                        self.line.push(byte);
                    }
                }
            }
        }
    }

    fn end_line(&mut self) {
        let line = std::mem::take(&mut self.line);
        if line.is_empty() {
            self.dispatch();
            return;
        }
        // Comments (`:`), and `event:`, `id:`, `retry:` lines carry no usage.
        let Some(value) = line.strip_prefix(b"data:") else {
            return;
        };
        let value = value.strip_prefix(b" ").unwrap_or(value);
        if !self.data.is_empty() {
            self.data.push(b'\n');
        }
        if self.data.len() + value.len() > self.limit {
            self.too_large = true;
            return;
        }
        self.data.extend_from_slice(value);
    }

    fn dispatch(&mut self) {
        let data = std::mem::take(&mut self.data);
        if data.is_empty() {
            return;
        }
        if data == b"[DONE]" {
            self.done = true;
        } else if !read_answer(&data, &mut self.facts) {
            self.malformed = true;
        }
    }

    /// What the stream said, once it is over.
    pub fn facts(&self) -> &AnswerFacts {
        &self.facts
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(all(target_arch = "wasm32", target_os = "unknown"))]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    const CHAT: &str = r#"{"id":"c1","object":"chat.completion","model":"llama-3-8b","choices":[{"index":0,"message":{"role":"assistant","content":"Hi"}}],"usage":{"prompt_tokens":12,"completion_tokens":3,"total_tokens":15}}"#;

    /// A vLLM-style stream with `include_usage`: content chunks, the usage chunk, `[DONE]`.
    const STREAM: &str = concat!(
        "data: {\"id\":\"c2\",\"object\":\"chat.completion.chunk\",\"model\":\"llama-3-8b\",\"choices\":[{\"delta\":{\"content\":\"Hel\"}}],\"usage\":null}\n\n",
        ": keep-alive\n\n",
        "data: {\"id\":\"c2\",\"object\":\"chat.completion.chunk\",\"model\":\"llama-3-8b\",\"choices\":[{\"delta\":{\"content\":\"lo\"}}],\"usage\":null}\n\n",
        "data: {\"id\":\"c2\",\"object\":\"chat.completion.chunk\",\"model\":\"llama-3-8b\",\"choices\":[],\"usage\":{\"prompt_tokens\":9,\"completion_tokens\":2,\"total_tokens\":11}}\n\n",
        "data: [DONE]\n\n",
    );

    fn usage(prompt: u64, completion: u64) -> Option<TokenUsage> {
        Some(TokenUsage { prompt, completion })
    }

    #[test]
    fn whole_answer_gives_model_and_usage() {
        let facts = read_usage(CHAT.as_bytes()).unwrap();
        assert_eq!(facts.model.as_deref(), Some("llama-3-8b"));
        assert_eq!(facts.usage, usage(12, 3));
        let no_usage = read_usage(br#"{"model":"m","choices":[]}"#).unwrap();
        assert_eq!(no_usage.usage, None);
        assert_eq!(read_usage(b"not json"), None);
        assert_eq!(read_usage(br#"{"usage":{"prompt_tokens":-1}}"#), None);
        assert_eq!(read_usage(br#"[1,2]"#), None);
    }

    #[test]
    fn stream_split_at_every_byte_gives_the_same_usage() {
        for split in 0..=STREAM.len() {
            let mut sse = SseUsage::new(4096);
            sse.feed(&STREAM.as_bytes()[..split]);
            sse.feed(&STREAM.as_bytes()[split..]);
            assert!(
                sse.done && !sse.malformed && !sse.too_large,
                "split at {split}"
            );
            assert_eq!(sse.facts().usage, usage(9, 2), "split at {split}");
            assert_eq!(sse.facts().model.as_deref(), Some("llama-3-8b"));
        }
        // CRLF and CR line ends, and `data:` without its space, are the same stream.
        let crlf = STREAM.replace('\n', "\r\n").replace("data: ", "data:");
        let mut sse = SseUsage::new(4096);
        sse.feed(crlf.as_bytes());
        assert_eq!(sse.facts().usage, usage(9, 2));
        let cr = STREAM.replace('\n', "\r");
        let mut sse = SseUsage::new(4096);
        sse.feed(cr.as_bytes());
        assert_eq!(sse.facts().usage, usage(9, 2));
    }

    #[test]
    fn cut_malformed_and_oversized_streams_are_told_apart() {
        let cut_at = STREAM.find("\"usage\":{").unwrap();
        let mut sse = SseUsage::new(4096);
        sse.feed(&STREAM.as_bytes()[..cut_at]);
        assert!(!sse.done && sse.facts().usage.is_none());

        let mut sse = SseUsage::new(4096);
        sse.feed(b"data: {broken\n\ndata: [DONE]\n\n");
        assert!(sse.malformed && sse.done);

        let mut sse = SseUsage::new(64);
        sse.feed(format!("data: {}\n\n", "x".repeat(100)).as_bytes());
        assert!(sse.too_large);
        // A long event of many short lines is bounded too.
        let mut sse = SseUsage::new(64);
        sse.feed("data: 1234567890\n".repeat(10).as_bytes());
        assert!(sse.too_large);
    }
}
