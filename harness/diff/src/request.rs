//! One request of a differential run: what goes on the wire, byte for byte, and its one-line
//! form (a JSON object per line), which is both the report's reproduction and the `--corpus`
//! format.

use harness_runner::{Error, Result};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Request {
    pub method: String,
    /// The request target, sent unchanged (no normalization, no escaping).
    pub path: String,
    /// `Host`; the gateway's own address when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// Header lines in order; a name given twice is sent as two lines.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<(String, String)>,
    /// Why the generator made this request (`repeated header`, `token: expired`...): the
    /// report groups differences by it.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub kind: String,
}

impl Request {
    pub fn new(method: &str, path: &str, kind: &str) -> Self {
        Request {
            method: method.to_string(),
            path: path.to_string(),
            host: None,
            headers: Vec::new(),
            kind: kind.to_string(),
        }
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    pub fn host(mut self, host: &str) -> Self {
        self.host = Some(host.to_string());
        self
    }

    /// The HTTP/1.1 bytes sent to a gateway listening on `authority`.
    pub fn wire(&self, authority: &str) -> Vec<u8> {
        let mut wire = format!("{} {} HTTP/1.1\r\n", self.method, self.path);
        wire.push_str(&format!(
            "host: {}\r\n",
            self.host.as_deref().unwrap_or(authority)
        ));
        for (name, value) in &self.headers {
            wire.push_str(&format!("{name}: {value}\r\n"));
        }
        wire.push_str("connection: close\r\n\r\n");
        wire.into_bytes()
    }

    pub fn to_line(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Reads a corpus: one request per line, blank lines and `#` comments skipped.
    pub fn parse_corpus(text: &str) -> Result<Vec<Request>> {
        text.lines()
            .enumerate()
            .filter(|(_, line)| !line.trim().is_empty() && !line.trim_start().starts_with('#'))
            .map(|(n, line)| {
                let request: Request = serde_json::from_str(line)
                    .map_err(|e| Error(format!("corpus line {}: {e}", n + 1)))?;
                request
                    .check()
                    .map_err(|e| Error(format!("corpus line {}: {e}", n + 1)))?;
                Ok(request)
            })
            .collect()
    }

    /// Refuses what would break the HTTP/1.1 framing rather than test the gateway.
    fn check(&self) -> std::result::Result<(), String> {
        let bad = |s: &str| s.bytes().any(|b| b == b'\r' || b == b'\n');
        if self.method.is_empty() || self.method.bytes().any(|b| !b.is_ascii_graphic()) {
            return Err(format!("method {:?}: expected a token", self.method));
        }
        if self.path.is_empty() || self.path.bytes().any(|b| b == b' ') || bad(&self.path) {
            return Err(format!(
                "path {:?}: must be non-empty, without spaces or line breaks",
                self.path
            ));
        }
        for (name, value) in &self.headers {
            if name.is_empty() || name.contains(':') || bad(name) || bad(value) {
                return Err(format!(
                    "header {name:?}: a name and a value without line breaks"
                ));
            }
        }
        if self.host.as_deref().is_some_and(bad) {
            return Err("host: no line breaks".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_headers_go_on_the_wire_as_separate_lines() {
        let request = Request::new("GET", "/a/../b?x=%2F", "t")
            .header("x-role", "admin")
            .header("x-role", "user");
        let wire = String::from_utf8(request.wire("127.0.0.1:1")).unwrap();
        assert_eq!(
            wire,
            "GET /a/../b?x=%2F HTTP/1.1\r\nhost: 127.0.0.1:1\r\nx-role: admin\r\nx-role: user\r\nconnection: close\r\n\r\n"
        );
    }

    #[test]
    fn corpus_lines_round_trip_and_bad_lines_are_named() {
        let request = Request::new("POST", "/v1/models/m:predict", "")
            .host("api.example.com:443")
            .header("authorization", "Bearer x");
        let corpus = format!("# mine\n\n{}\n", request.to_line());
        assert_eq!(Request::parse_corpus(&corpus).unwrap(), vec![request]);
        let err =
            Request::parse_corpus("{\"method\":\"GET\",\"path\":\"/a\\r\\nx: y\"}").unwrap_err();
        assert!(err.0.starts_with("corpus line 1: path"), "{err}");
        let err = Request::parse_corpus("{\"method\":\"GET\"}").unwrap_err();
        assert!(err.0.contains("missing field `path`"), "{err}");
    }
}
