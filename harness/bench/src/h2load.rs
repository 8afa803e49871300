//! The load generator: `h2load` (Debian `nghttp2-client`) over HTTP/1.1, its command line and
//! what it prints.

use harness_runner::{Error, Result};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// When a run ends.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Stop {
    /// After this long (after the warm-up).
    After(Duration),
    /// After this many requests; killed if that takes longer than `time_limit`.
    Requests { count: u64, time_limit: Duration },
}

/// One h2load run.
#[derive(Debug, Clone, PartialEq)]
pub struct Load {
    /// The URL requested; with `uri_file`, the file's URLs instead.
    pub url: String,
    /// One URL per line, requested in order (each connection starts at the first).
    pub uri_file: Option<PathBuf>,
    pub headers: Vec<(String, String)>,
    /// Concurrent connections, one request in flight on each.
    pub connections: u32,
    pub warm_up: Duration,
    pub stop: Stop,
    /// A fixed request rate per connection instead of as fast as possible.
    pub rate: Option<u32>,
    /// Per-request log (start time, status, duration), for latency percentiles.
    pub log_file: Option<PathBuf>,
}

impl Load {
    /// A run of `duration` on `url`, nothing else set.
    pub fn timed(url: &str, headers: &[(String, String)], duration: Duration) -> Self {
        Self {
            url: url.to_string(),
            uri_file: None,
            headers: headers.to_vec(),
            connections: 1,
            warm_up: Duration::ZERO,
            stop: Stop::After(duration),
            rate: None,
            log_file: None,
        }
    }

    pub fn args(&self) -> Vec<String> {
        let mut args = vec![
            "--h1".to_string(),
            "-c".to_string(),
            self.connections.to_string(),
            "-t".to_string(),
            "1".to_string(),
        ];
        match self.stop {
            Stop::After(duration) => {
                args.push("-D".to_string());
                args.push(format!("{}ms", duration.as_millis()));
            }
            Stop::Requests { count, .. } => {
                args.push("-n".to_string());
                args.push(count.to_string());
            }
        }
        if !self.warm_up.is_zero() {
            args.push(format!("--warm-up-time={}ms", self.warm_up.as_millis()));
        }
        if let Some(rate) = self.rate {
            args.push(format!("--rps={rate}"));
        }
        if let Some(log) = &self.log_file {
            args.push(format!("--log-file={}", log.display()));
        }
        for (name, value) in &self.headers {
            args.push("-H".to_string());
            args.push(format!("{name}: {value}"));
        }
        match &self.uri_file {
            Some(file) => args.push(format!("--input-file={}", file.display())),
            None => args.push(self.url.clone()),
        }
        args
    }

    /// How long the run may take before it is killed.
    fn time_limit(&self) -> Duration {
        let planned = match self.stop {
            Stop::After(duration) => duration,
            Stop::Requests { time_limit, .. } => time_limit,
        };
        self.warm_up + planned + Duration::from_secs(30)
    }

    /// Runs h2load to completion (pinned to `cpu` when given) and parses its summary. Bounded:
    /// killed if it overruns its planned time by 30 s.
    pub fn run(&self, cpu: Option<usize>, scratch: &Path) -> Result<Summary> {
        self.spawn(cpu, scratch, "h2load")?.wait()
    }

    /// Starts h2load; its output goes to `<scratch>/<name>.out` and `.err`.
    pub fn spawn(&self, cpu: Option<usize>, scratch: &Path, name: &str) -> Result<Running> {
        if let Some(log) = &self.log_file {
            // h2load appends to an existing log file.
            let _ = std::fs::remove_file(log);
        }
        let stdout_path = scratch.join(format!("{name}.out"));
        let stderr_path = scratch.join(format!("{name}.err"));
        let mut command = Command::new("h2load");
        command
            .args(self.args())
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&stdout_path)?)
            .stderr(std::fs::File::create(&stderr_path)?);
        harness_runner::die_with_parent(&mut command);
        // SAFETY: sched_setaffinity is async-signal-safe.
        unsafe {
            command.pre_exec(move || match cpu {
                Some(cpu) => super::procfs::pin_current_to_cpu(cpu),
                None => Ok(()),
            });
        }
        let child = command.spawn().map_err(|e| {
            Error(format!(
                "cannot start h2load: {e} (./build.sh bench installs nghttp2-client)"
            ))
        })?;
        Ok(Running {
            child,
            deadline: Instant::now() + self.time_limit(),
            stdout_path,
            stderr_path,
        })
    }
}

/// A started h2load.
pub struct Running {
    child: std::process::Child,
    deadline: Instant,
    stdout_path: PathBuf,
    stderr_path: PathBuf,
}

impl Running {
    /// Waits for the end (killing h2load past its deadline) and parses its summary.
    pub fn wait(mut self) -> Result<Summary> {
        let status = loop {
            if let Some(status) = self.child.try_wait()? {
                break status;
            }
            if Instant::now() > self.deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                return Err(Error(format!(
                    "h2load did not finish in time; see {}",
                    self.stdout_path.display()
                )));
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let output = std::fs::read_to_string(&self.stdout_path)?;
        if !status.success() {
            let stderr = std::fs::read_to_string(&self.stderr_path).unwrap_or_default();
            return Err(Error(format!("h2load failed ({status}): {stderr}{output}")));
        }
        parse_summary(&output)
    }
}

/// The totals h2load prints at the end of a run.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    /// Requests completed in the measurement period (after the warm-up).
    pub done: u64,
    pub req_per_s: f64,
    /// Responses by status class: 2xx, 3xx, 4xx, 5xx.
    pub status_classes: [u64; 4],
    /// Requests that failed without a response (connection errors, timeouts).
    pub errored: u64,
}

impl Summary {
    /// Share of responses whose status is in the class of `status` (2 for 200, 4 for 429).
    pub fn share_of_class(&self, status: u16) -> f64 {
        let total: u64 = self.status_classes.iter().sum::<u64>() + self.errored;
        let index = usize::from(status / 100).saturating_sub(2);
        match (total, self.status_classes.get(index)) {
            (0, _) | (_, None) => 0.0,
            (total, Some(&n)) => n as f64 / total as f64,
        }
    }
}

/// Reads h2load's closing lines:
/// `finished in 3.00s, 6658.00 req/s, 2.1MB/s`,
/// `requests: 19974 total, 19990 started, 19974 done, 19974 succeeded, 0 failed, 0 errored, 0 timeout`,
/// `status codes: 19974 2xx, 0 3xx, 0 4xx, 0 5xx`.
pub fn parse_summary(output: &str) -> Result<Summary> {
    let missing = |what: &str| Error(format!("no {what} in h2load's output:\n{output}"));
    let line = |prefix: &str| output.lines().find_map(|l| l.trim().strip_prefix(prefix));
    let finished = line("finished in ").ok_or_else(|| missing("`finished in` line"))?;
    let req_per_s = finished
        .split(", ")
        .find_map(|part| part.strip_suffix(" req/s"))
        .and_then(|n| n.trim().parse().ok())
        .ok_or_else(|| missing("req/s"))?;
    let requests = line("requests: ").ok_or_else(|| missing("`requests:` line"))?;
    let count = |text: &str, label: &str| -> Result<u64> {
        text.split(", ")
            .find_map(|part| part.strip_suffix(label))
            .and_then(|n| n.trim().parse().ok())
            .ok_or_else(|| missing(label.trim()))
    };
    let codes = line("status codes: ").ok_or_else(|| missing("`status codes:` line"))?;
    Ok(Summary {
        done: count(requests, " done")?,
        req_per_s,
        status_classes: [
            count(codes, " 2xx")?,
            count(codes, " 3xx")?,
            count(codes, " 4xx")?,
            count(codes, " 5xx")?,
        ],
        errored: count(requests, " errored")? + count(requests, " timeout")?,
    })
}

/// Latencies in µs from a `--log-file`: one `start-µs<TAB>status<TAB>duration-µs` line per
/// request; malformed lines are skipped.
pub fn parse_latencies_us(log: &str) -> Vec<f64> {
    log.lines()
        .filter_map(|line| {
            let mut fields = line.split('\t');
            let _start = fields.next()?;
            let _status: u16 = fields.next()?.trim().parse().ok()?;
            fields.next()?.trim().parse::<f64>().ok()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const OUTPUT: &str = "starting benchmark...
spawning thread #0: 16 total client(s). Timing-based test with 1s warm-up time and 3s main duration
Warm-up started for thread #0.

finished in 3.00s, 6658.33 req/s, 2.62MB/s
requests: 19975 total, 19991 started, 19975 done, 19970 succeeded, 5 failed, 2 errored, 1 timeout
status codes: 19960 2xx, 0 3xx, 10 4xx, 3 5xx
traffic: 7.87MB (8252650) total, 1.20MB (1258425) headers (space savings 0.00%), 5.21MB (5213475) data
";

    #[test]
    fn summary_lines_are_parsed() {
        let summary = parse_summary(OUTPUT).unwrap();
        assert_eq!(summary.done, 19_975);
        assert!((summary.req_per_s - 6658.33).abs() < 1e-9);
        assert_eq!(summary.status_classes, [19_960, 0, 10, 3]);
        assert_eq!(summary.errored, 3);
        assert!((summary.share_of_class(200) - 19_960.0 / 19_976.0).abs() < 1e-12);
        assert!((summary.share_of_class(429) - 10.0 / 19_976.0).abs() < 1e-12);
    }

    #[test]
    fn truncated_output_names_what_is_missing() {
        let err = parse_summary("finished in 1.00s, 10.00 req/s, 1KB/s\n").unwrap_err();
        assert!(err.0.contains("`requests:` line"), "{err}");
        let err = parse_summary("").unwrap_err();
        assert!(err.0.contains("`finished in` line"), "{err}");
    }

    #[test]
    fn latency_log_lines_give_microseconds() {
        let log = "1764143000000000\t200\t334\n1764143000001000\t429\t157\ngarbage\n\n";
        assert_eq!(parse_latencies_us(log), vec![334.0, 157.0]);
    }

    #[test]
    fn command_line_for_a_fixed_rate_run() {
        let load = Load {
            rate: Some(1000),
            log_file: Some(PathBuf::from("/tmp/log")),
            ..Load::timed(
                "http://127.0.0.1:1234/v1/models/m:predict",
                &[("x-test".into(), "istio-is-cool".into())],
                Duration::from_secs(2),
            )
        };
        assert_eq!(
            load.args(),
            [
                "--h1",
                "-c",
                "1",
                "-t",
                "1",
                "-D",
                "2000ms",
                "--rps=1000",
                "--log-file=/tmp/log",
                "-H",
                "x-test: istio-is-cool",
                "http://127.0.0.1:1234/v1/models/m:predict"
            ]
        );
    }

    #[test]
    fn command_line_for_a_list_of_urls() {
        let load = Load {
            uri_file: Some(PathBuf::from("/tmp/uris")),
            stop: Stop::Requests {
                count: 1000,
                time_limit: Duration::from_secs(60),
            },
            ..Load::timed("http://127.0.0.1:1234/", &[], Duration::ZERO)
        };
        assert_eq!(
            load.args(),
            [
                "--h1",
                "-c",
                "1",
                "-t",
                "1",
                "-n",
                "1000",
                "--input-file=/tmp/uris"
            ]
        );
        assert_eq!(load.time_limit(), Duration::from_secs(90));
    }
}
