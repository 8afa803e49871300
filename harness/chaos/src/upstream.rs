//! The demo model server as a separate process (`harness model-server`), so a fault can be a
//! real SIGKILL; it logs every request it receives, which makes its log the ground truth of
//! what reached the upstream.

use harness_runner::{Error, Result};
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a restart may wait for the port to be free again.
const REBIND_TIMEOUT: Duration = Duration::from_secs(10);

pub struct UpstreamProcess {
    child: Child,
    addr: SocketAddr,
    exe: PathBuf,
    log: PathBuf,
    /// The JSON file it answers every request with (`--json`), if not the model API.
    json: Option<PathBuf>,
}

impl UpstreamProcess {
    /// Starts `exe model-server` on a port the kernel picks, logging to `log`.
    pub fn start(exe: &Path, log: &Path) -> Result<Self> {
        Self::start_with(exe, log, None)
    }

    /// The same, answering every request with the JSON in `json` (a JWKS server).
    pub fn start_serving_json(exe: &Path, log: &Path, json: &Path) -> Result<Self> {
        Self::start_with(exe, log, Some(json.to_path_buf()))
    }

    fn start_with(exe: &Path, log: &Path, json: Option<PathBuf>) -> Result<Self> {
        let (child, addr) = spawn(exe, "127.0.0.1:0", log, json.as_deref())?;
        Ok(Self {
            child,
            addr,
            exe: exe.to_path_buf(),
            log: log.to_path_buf(),
            json,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// SIGKILL, as the kernel's OOM killer or a node failure would end it.
    pub fn kill(&mut self) -> Result<()> {
        self.child.kill()?;
        self.child.wait()?;
        Ok(())
    }

    /// A new process on the same address (the one Envoy's cluster points at).
    pub fn restart(&mut self) -> Result<()> {
        let deadline = Instant::now() + REBIND_TIMEOUT;
        loop {
            match spawn(
                &self.exe,
                &self.addr.to_string(),
                &self.log,
                self.json.as_deref(),
            ) {
                Ok((child, _)) => {
                    self.child = child;
                    return Ok(());
                }
                Err(e) if Instant::now() > deadline => return Err(e),
                Err(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        }
    }
}

impl Drop for UpstreamProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts the process and reads the `listening on ADDR` line it prints once it serves.
fn spawn(exe: &Path, listen: &str, log: &Path, json: Option<&Path>) -> Result<(Child, SocketAddr)> {
    let mut command = Command::new(exe);
    command
        .args(["model-server", "--listen", listen, "--log"])
        .arg(log);
    if let Some(json) = json {
        command.arg("--json").arg(json);
    }
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    harness_runner::die_with_parent(&mut command);
    let mut child = command
        .spawn()
        .map_err(|e| Error(format!("cannot start {} model-server: {e}", exe.display())))?;
    let mut line = String::new();
    if let Some(stdout) = child.stdout.take() {
        let _ = BufReader::new(stdout).read_line(&mut line);
    }
    let addr = line
        .trim()
        .strip_prefix("listening on ")
        .and_then(|a| a.parse().ok());
    match addr {
        Some(addr) => Ok((child, addr)),
        None => {
            let _ = child.kill();
            let _ = child.wait();
            Err(Error(format!("model-server did not start on {listen}")))
        }
    }
}

/// A request in the upstream's log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Every whole line of the log (a line cut by a SIGKILL mid-write is not a request received).
pub fn read_log(log: &Path) -> Result<Vec<Received>> {
    let text = std::fs::read_to_string(log)
        .map_err(|e| Error(format!("cannot read {}: {e}", log.display())))?;
    Ok(text.lines().filter_map(parse_line).collect())
}

fn parse_line(line: &str) -> Option<Received> {
    let value: Value = serde_json::from_str(line).ok()?;
    let headers = value["headers"]
        .as_array()?
        .iter()
        .filter_map(|pair| Some((pair[0].as_str()?.to_string(), pair[1].as_str()?.to_string())))
        .collect();
    Some(Received {
        method: value["method"].as_str()?.to_string(),
        path: value["path"].as_str()?.to_string(),
        headers,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_lines_parse_and_a_cut_line_is_skipped() {
        let parsed =
            parse_line(r#"{"method":"GET","path":"/healthz","headers":[["x-chaos-id","7"]]}"#)
                .unwrap();
        assert_eq!(parsed.path, "/healthz");
        assert_eq!(parsed.header("X-Chaos-Id"), Some("7"));
        assert_eq!(parse_line(r#"{"method":"GET","pa"#), None);
    }
}
