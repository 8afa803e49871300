//! A deliberately raw HTTP/1.1 client: the request target is sent byte for byte, so tests can
//! send the path tricks (`/a/../b`, `%2F`, `\`) that URL libraries would normalize away.

use crate::{Error, Result};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// A complete response.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    /// First value of a header, by case-insensitive name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Sends one request on a fresh connection (`Connection: close`). `url` is
/// `http://host:port<target>`; `<target>` goes on the wire unchanged. A `host` header in
/// `headers` replaces the default one.
pub fn send(method: &str, url: &str, headers: &[(&str, &str)], body: &[u8]) -> Result<Response> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| Error(format!("only http:// URLs are supported: {url}")))?;
    let (authority, target) = match rest.find('/') {
        Some(at) => rest.split_at(at),
        None => (rest, "/"),
    };
    let mut request = format!("{method} {target} HTTP/1.1\r\n");
    if !headers.iter().any(|(n, _)| n.eq_ignore_ascii_case("host")) {
        request.push_str(&format!("host: {authority}\r\n"));
    }
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    if !body.is_empty() || matches!(method, "POST" | "PUT" | "PATCH") {
        request.push_str(&format!("content-length: {}\r\n", body.len()));
    }
    request.push_str("connection: close\r\n\r\n");
    let mut wire = request.into_bytes();
    wire.extend_from_slice(body);
    send_raw(authority, &wire)
}

/// Writes `wire` as is and reads one response. The response ends where its framing says
/// (content-length, last chunk), not when the server closes: Envoy delays the close of a
/// `connection: close` exchange by up to a second.
pub fn send_raw(authority: &str, wire: &[u8]) -> Result<Response> {
    let mut stream = TcpStream::connect(authority)
        .map_err(|e| Error(format!("cannot connect to {authority}: {e}")))?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    stream.write_all(wire)?;
    let mut raw = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    // The answer to HEAD has no body, whatever its content-length says.
    let head = wire.starts_with(b"HEAD ");
    loop {
        if response_complete(&raw, head) {
            break;
        }
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => raw.extend_from_slice(&buf[..n]),
            Err(e) if raw.is_empty() => {
                return Err(Error(format!("reading the response from {authority}: {e}")))
            }
            Err(e) => return Err(Error(format!("response from {authority} cut short: {e}"))),
        }
    }
    parse_response(&raw)
}

/// Whether `raw` holds a whole response according to its framing (`to_head`: it answers HEAD).
fn response_complete(raw: &[u8], to_head: bool) -> bool {
    let Some(head_end) = find(raw, b"\r\n\r\n") else {
        return false;
    };
    if to_head {
        return true;
    }
    let head = String::from_utf8_lossy(&raw[..head_end]).to_ascii_lowercase();
    let body = &raw[head_end + 4..];
    let status = head.split_whitespace().nth(1).unwrap_or_default();
    if status == "204" || status == "304" || status.starts_with('1') {
        return true;
    }
    for line in head.split("\r\n").skip(1) {
        if let Some((name, value)) = line.split_once(':') {
            match (name.trim(), value.trim()) {
                ("content-length", length) => {
                    return length.parse::<usize>().is_ok_and(|l| body.len() >= l)
                }
                ("transfer-encoding", "chunked") => return dechunk(body).is_ok(),
                _ => {}
            }
        }
    }
    false
}

/// The status code of an HTTP/1.1 status line (`HTTP/1.1 200 OK`).
pub fn status_of(status_line: &str) -> Result<u16> {
    status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| Error(format!("bad status line: {status_line}")))
}

fn parse_response(raw: &[u8]) -> Result<Response> {
    let head_end = find(raw, b"\r\n\r\n").ok_or_else(|| {
        Error(format!(
            "incomplete response: {:?}",
            String::from_utf8_lossy(raw)
        ))
    })?;
    let head = String::from_utf8_lossy(&raw[..head_end]);
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_of(status_line)?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let rest = &raw[head_end + 4..];
    let chunked = headers
        .iter()
        .any(|(n, v)| n == "transfer-encoding" && v.eq_ignore_ascii_case("chunked"));
    let body = if chunked {
        dechunk(rest)?
    } else {
        rest.to_vec()
    };
    Ok(Response {
        status,
        headers,
        body,
    })
}

fn dechunk(mut data: &[u8]) -> Result<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let line_end = find(data, b"\r\n").ok_or_else(|| Error("truncated chunk size".into()))?;
        let size_text = String::from_utf8_lossy(&data[..line_end]);
        let size_hex = size_text.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_hex, 16)
            .map_err(|_| Error(format!("bad chunk size {size_hex:?}")))?;
        data = &data[line_end + 2..];
        if size == 0 {
            return Ok(body);
        }
        let chunk = data
            .get(..size)
            .ok_or_else(|| Error("truncated chunk".into()))?;
        body.extend_from_slice(chunk);
        data = data.get(size + 2..).unwrap_or_default();
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_content_length_and_chunked_bodies() {
        let plain = parse_response(
            b"HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain\r\n\r\nRBAC: access denied",
        )
        .unwrap();
        assert_eq!(plain.status, 403);
        assert_eq!(plain.header("content-type"), Some("text/plain"));
        assert_eq!(plain.text(), "RBAC: access denied");
        let chunked = parse_response(
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n2;x=y\r\nde\r\n0\r\n\r\n",
        )
        .unwrap();
        assert_eq!(chunked.text(), "abcde");
    }

    #[test]
    fn a_response_is_complete_when_its_framing_says_so() {
        assert!(!response_complete(
            b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nabc",
            false
        ));
        assert!(response_complete(
            b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nabcde",
            false
        ));
        assert!(!response_complete(
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n",
            false
        ));
        assert!(response_complete(
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
            false
        ));
        assert!(response_complete(b"HTTP/1.1 204 No Content\r\n\r\n", false));
        // No framing: only the close ends it.
        assert!(!response_complete(b"HTTP/1.1 200 OK\r\n\r\nabc", false));
        // The answer to HEAD ends with its head.
        assert!(response_complete(
            b"HTTP/1.1 403 Forbidden\r\ncontent-length: 19\r\n\r\n",
            true
        ));
    }

    #[test]
    fn broken_responses_are_errors() {
        assert!(parse_response(b"HTTP/1.1 200 OK\r\n").is_err());
        assert!(parse_response(b"garbage\r\n\r\n").is_err());
        assert!(
            parse_response(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n").is_err()
        );
    }
}
