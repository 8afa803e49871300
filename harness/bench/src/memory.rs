//! Memory under many distinct values: local-ratelimit fed distinct `:path` values (one bucket
//! each, in a table of `max_keys` slots: memory must stop growing once the table is full) and
//! auth-gate fed distinct tokens (its verified-token cache is bounded). One Envoy each; RSS idle,
//! after the first tenth of the values, and after all of them.

use super::cases::{self, PREDICT_PATH};
use super::h2load::{self, Stop};
use super::procfs;
use super::tokens::Tokens;
use harness_runner::{EnvoyConfig, Plugin, Result};
use serde::Serialize;
use serde_json::json;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How many distinct values each run sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sizes {
    pub ratelimit_keys: u64,
    pub tokens: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MemoryRun {
    pub case: String,
    pub what: String,
    pub distinct: u64,
    pub rss: Option<Rss>,
    /// Why there are no numbers (the plugin refused its configuration).
    pub skipped: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Rss {
    pub idle_kib: u64,
    pub tenth_kib: u64,
    pub after_kib: u64,
    /// Lowest share of 2xx answers over both batches.
    pub expected_share: f64,
}

/// Connections, each its own h2load with its own share of the values (one h2load's
/// connections would all start at the first URL of the same list).
const CONNECTIONS: usize = 4;
/// Slowest rate allowed before a batch is killed, in requests per second.
const MIN_RATE: u64 = 500;

pub fn ratelimit_keys(count: u64, scratch: &Path, load_cpu: Option<usize>) -> Result<MemoryRun> {
    let config = json!({
        "domain": "bench",
        "descriptors": [{"key": "path", "rate_limit": {"unit": "second", "requests_per_unit": 1_000_000_000}}],
        "rate_limits": [{"actions": [{"request_headers": {"header_name": ":path", "descriptor_key": "path"}}]}]
    });
    let plugin = Plugin::from_dist("local-ratelimit", config);
    let targets = (0..count).map(|i| Ok(format!("/v1/models/model-{i}:predict")));
    run(
        "ratelimit-keys",
        format!("local-ratelimit, {count} distinct `:path` values (max_keys default)"),
        plugin,
        targets,
        count,
        scratch,
        load_cpu,
    )
}

pub fn distinct_tokens(
    count: u64,
    tokens: &Tokens,
    scratch: &Path,
    load_cpu: Option<usize>,
) -> Result<MemoryRun> {
    let config =
        cases::auth_gate_jwt_config(&tokens.issuer, true, vec![cases::require_jwt_policy()]);
    let plugin = Plugin::from_dist("auth-gate", config);
    let targets = (0..count).map(|i| {
        tokens
            .sign_es256(&format!("user-{i}"))
            .map(|token| format!("{PREDICT_PATH}?access_token={token}"))
    });
    run(
        "auth-gate-tokens",
        format!("auth-gate, {count} distinct ES256 tokens (token cache default)"),
        plugin,
        targets,
        count,
        scratch,
        load_cpu,
    )
}

fn run(
    case: &str,
    what: String,
    plugin: Plugin,
    targets: impl Iterator<Item = Result<String>>,
    count: u64,
    scratch: &Path,
    load_cpu: Option<usize>,
) -> Result<MemoryRun> {
    let config = EnvoyConfig {
        plugins: vec![plugin],
        ..cases::upstream_config()
    };
    let mut record = MemoryRun {
        case: case.to_string(),
        what,
        distinct: count,
        rss: None,
        skipped: None,
    };
    let envoy = match super::start_or_skip(config) {
        Ok(envoy) => envoy,
        Err(reason) => {
            record.skipped = Some(reason);
            return Ok(record);
        }
    };
    let base = format!("http://{}", envoy.listener());
    let tenth = (count / 10).max(1);
    let files = |batch: &str| -> Vec<PathBuf> {
        (0..CONNECTIONS)
            .map(|i| scratch.join(format!("{case}-{batch}-{i}.urls")))
            .collect()
    };
    let (first, rest) = (files("first"), files("rest"));
    write_batches(&base, targets, tenth, &first, &rest)?;
    std::thread::sleep(Duration::from_secs(1));
    let pid = envoy.pid();
    let rss_idle_kib = procfs::rss_kib(pid)?;
    let first_share = batch(&base, &first, scratch, load_cpu)?;
    let rss_tenth_kib = procfs::rss_kib(pid)?;
    let rest_share = if count > tenth {
        batch(&base, &rest, scratch, load_cpu)?
    } else {
        first_share
    };
    record.rss = Some(Rss {
        idle_kib: rss_idle_kib,
        tenth_kib: rss_tenth_kib,
        after_kib: procfs::rss_kib(pid)?,
        expected_share: first_share.min(rest_share),
    });
    // A million URLs take some 50 MB.
    for file in first.iter().chain(&rest) {
        let _ = std::fs::remove_file(file);
    }
    Ok(record)
}

/// The first `first_count` URLs dealt round-robin into the `first` files, the others into
/// the `rest` files.
fn write_batches(
    base: &str,
    targets: impl Iterator<Item = Result<String>>,
    first_count: u64,
    first: &[PathBuf],
    rest: &[PathBuf],
) -> Result<()> {
    let open = |paths: &[PathBuf]| -> Result<Vec<std::io::BufWriter<std::fs::File>>> {
        paths
            .iter()
            .map(|p| Ok(std::io::BufWriter::new(std::fs::File::create(p)?)))
            .collect()
    };
    let (mut first_files, mut rest_files) = (open(first)?, open(rest)?);
    for (i, target) in targets.enumerate() {
        let files = if (i as u64) < first_count {
            &mut first_files
        } else {
            &mut rest_files
        };
        let count = files.len();
        if let Some(file) = files.get_mut(i % count.max(1)) {
            writeln!(file, "{base}{}", target?)?;
        }
    }
    for file in first_files.iter_mut().chain(rest_files.iter_mut()) {
        file.flush()?;
    }
    Ok(())
}

/// Sends every URL of every file once, one h2load per file, all at once; the lowest share of
/// 2xx answers among them.
fn batch(base: &str, files: &[PathBuf], scratch: &Path, load_cpu: Option<usize>) -> Result<f64> {
    let mut running = Vec::new();
    for (i, file) in files.iter().enumerate() {
        let count = std::fs::read_to_string(file)?.lines().count() as u64;
        if count == 0 {
            continue;
        }
        let load = h2load::Load {
            uri_file: Some(file.clone()),
            stop: Stop::Requests {
                count,
                time_limit: Duration::from_secs(count / MIN_RATE + 10),
            },
            ..h2load::Load::timed(base, &[], Duration::ZERO)
        };
        running.push(load.spawn(load_cpu, scratch, &format!("h2load-{i}"))?);
    }
    let mut lowest: f64 = 1.0;
    for run in running {
        lowest = lowest.min(run.wait()?.share_of_class(200));
    }
    Ok(lowest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_split_into_a_first_tenth_and_the_rest() {
        let dir = std::env::temp_dir().join(format!("bench-memory-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let first = [dir.join("first-0"), dir.join("first-1")];
        let rest = [dir.join("rest-0"), dir.join("rest-1")];
        let targets = (0..25).map(|i| Ok(format!("/p-{i}")));
        write_batches("http://127.0.0.1:1", targets, 3, &first, &rest).unwrap();
        let read = |p: &PathBuf| std::fs::read_to_string(p).unwrap();
        let (first, rest) = (first.map(|p| read(&p)), rest.map(|p| read(&p)));
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(
            first,
            [
                "http://127.0.0.1:1/p-0\nhttp://127.0.0.1:1/p-2\n",
                "http://127.0.0.1:1/p-1\n"
            ]
        );
        // p-3 .. p-24: 22 values, every one in exactly one file.
        assert_eq!(rest[0].lines().count() + rest[1].lines().count(), 22);
        assert!(rest[0].starts_with("http://127.0.0.1:1/p-4\n"));
        assert!(rest[1].starts_with("http://127.0.0.1:1/p-3\n"));
        assert!(rest[0].ends_with("/p-24\n"));
    }
}
