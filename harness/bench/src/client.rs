//! GET requests on one keep-alive connection, for the first answer and the correctness check.
//! (`harness_runner::http` closes each connection, and Envoy then holds its side open for
//! `delayed_close_timeout`, 1 s, before the client sees the end: that would be the start time.)

use harness_runner::{Error, Result};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub status: u16,
    pub body: Vec<u8>,
}

pub struct Client {
    addr: SocketAddr,
    stream: Option<TcpStream>,
}

impl Client {
    pub fn new(addr: SocketAddr) -> Self {
        Self { addr, stream: None }
    }

    /// One GET; reconnects when the previous answer closed the connection.
    pub fn get(&mut self, path: &str, headers: &[(String, String)]) -> Result<Answer> {
        let mut stream = match self.stream.take() {
            Some(stream) => stream,
            None => {
                let stream = TcpStream::connect(self.addr)
                    .map_err(|e| Error(format!("cannot connect to {}: {e}", self.addr)))?;
                stream.set_read_timeout(Some(Duration::from_secs(10)))?;
                stream
            }
        };
        let mut request = format!("GET {path} HTTP/1.1\r\nhost: {}\r\n", self.addr);
        for (name, value) in headers {
            request.push_str(&format!("{name}: {value}\r\n"));
        }
        request.push_str("\r\n");
        stream.write_all(request.as_bytes())?;
        let mut raw = Vec::new();
        let mut chunk = [0u8; 16 * 1024];
        loop {
            if let Some(head) = parse_head(&raw)? {
                if raw.len() >= head.length + head.body_len {
                    if !head.close {
                        self.stream = Some(stream);
                    }
                    return Ok(Answer {
                        status: head.status,
                        body: raw[head.length..head.length + head.body_len].to_vec(),
                    });
                }
            }
            let n = stream.read(&mut chunk)?;
            if n == 0 {
                return Err(Error(format!(
                    "connection closed mid-answer: {:?}",
                    String::from_utf8_lossy(&raw)
                )));
            }
            raw.extend_from_slice(&chunk[..n]);
        }
    }
}

/// What the head of an answer says about reading it.
#[derive(Debug, PartialEq, Eq)]
pub struct Head {
    pub status: u16,
    /// Bytes of the head, blank line included.
    pub length: usize,
    pub body_len: usize,
    /// The server closes the connection after this answer.
    pub close: bool,
}

/// The head of an answer once it is complete in `raw` (`None` before). Bodies must have a
/// `content-length`: every answer the bench gets (direct responses, local replies) has one.
pub fn parse_head(raw: &[u8]) -> Result<Option<Head>> {
    let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") else {
        return Ok(None);
    };
    let text = String::from_utf8_lossy(&raw[..end]);
    let mut lines = text.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = harness_runner::http::status_of(status_line)?;
    let mut body_len = None;
    let mut close = false;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let (name, value) = (name.trim(), value.trim());
        if name.eq_ignore_ascii_case("content-length") {
            body_len = value.parse().ok();
        } else if name.eq_ignore_ascii_case("connection") {
            close = value.eq_ignore_ascii_case("close");
        }
    }
    let body_len =
        body_len.ok_or_else(|| Error(format!("answer without content-length: {text}")))?;
    Ok(Some(Head {
        status,
        length: end + 4,
        body_len,
        close,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    #[test]
    fn heads_give_status_length_and_close() {
        assert_eq!(parse_head(b"HTTP/1.1 200 OK\r\ncontent-le").unwrap(), None);
        let raw = b"HTTP/1.1 429 Too Many Requests\r\nContent-Length: 18\r\nConnection: close\r\n\r\nlocal_rate_limited";
        assert_eq!(
            parse_head(raw).unwrap(),
            Some(Head {
                status: 429,
                length: raw.len() - 18,
                body_len: 18,
                close: true
            })
        );
        assert!(parse_head(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n").is_err());
        assert!(parse_head(b"nonsense\r\n\r\n").is_err());
    }

    #[test]
    fn answers_on_one_connection_then_reconnects_after_close() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = std::thread::spawn(move || {
            let mut connections = 0;
            for stream in listener.incoming().take(2) {
                let mut stream = stream.unwrap();
                connections += 1;
                let answers: &[&[u8]] = if connections == 1 {
                    &[
                        b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok",
                        b"HTTP/1.1 429 Too Many\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                    ]
                } else {
                    &[b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nagain"]
                };
                for answer in answers {
                    let mut request = [0u8; 1024];
                    let _ = stream.read(&mut request).unwrap();
                    stream.write_all(answer).unwrap();
                }
            }
            connections
        });
        let mut client = Client::new(addr);
        let headers = vec![("x-test".to_string(), "1".to_string())];
        assert_eq!(
            client.get("/a", &headers).unwrap(),
            Answer {
                status: 200,
                body: b"ok".to_vec()
            }
        );
        assert_eq!(client.get("/a", &headers).unwrap().status, 429);
        assert_eq!(client.get("/a", &headers).unwrap().body, b"again");
        assert_eq!(server.join().unwrap(), 2);
    }
}
