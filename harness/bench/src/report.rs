//! From samples to the table: every number relative to the floor of the same round, then the
//! median over rounds; the targets judged on those medians; markdown and JSON.

use super::memory::MemoryRun;
use super::paired::{PairedRun, PAIRS};
use super::rows::{rows, Row, FLOOR};
use super::stats;
use super::targets::{self, Check, Reported};
use super::workers::WorkersRun;
use super::{CaseRecord, Mode};
use serde::Serialize;
use std::fmt::Write as _;
use std::time::Duration;

/// Below this share of expected answers under load, the row says so.
const EXPECTED_SHARE: f64 = 0.99;

/// The machine the numbers come from.
#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    pub cpu: String,
    pub cpus_online: usize,
    pub kernel: String,
    pub envoy: String,
}

impl Machine {
    pub fn describe() -> Self {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu = cpuinfo
            .lines()
            .find_map(|l| l.strip_prefix("model name"))
            .map(|rest| rest.trim_start_matches([' ', '\t', ':']).to_string())
            .unwrap_or_else(|| "unknown CPU".to_string());
        let envoy = std::process::Command::new(harness_runner::envoy::envoy_binary())
            .arg("--version")
            .output()
            .map(|out| String::from_utf8_lossy(&out.stdout).into_owned())
            .unwrap_or_default();
        Self {
            cpu,
            cpus_online: super::procfs::online_cpus(),
            kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .unwrap_or_default()
                .trim()
                .to_string(),
            envoy: envoy_version(&envoy).unwrap_or("unknown").to_string(),
        }
    }
}

/// `1.40.0` from `envoy  version: <sha>/1.40.0/Clean/RELEASE/BoringSSL`.
pub fn envoy_version(output: &str) -> Option<&str> {
    let version = output
        .split("version: ")
        .nth(1)?
        .split_whitespace()
        .next()?;
    version.split('/').nth(1).or(Some(version))
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub mode: Mode,
    pub rounds: usize,
    /// UTC time the report was written, `YYYY-MM-DDTHH:MM:SSZ`.
    pub finished_at: String,
    pub duration_s: f64,
    pub machine: Machine,
    pub rows: Vec<Row>,
    pub checks: Vec<Check>,
    /// Numbers given without a target (the bundle against the plugins it links).
    pub reported: Vec<Reported>,
    pub cases: Vec<CaseRecord>,
    /// The judged single sections against their plugins' modules, in alternating bursts.
    pub paired: Vec<PairedRun>,
    pub memory: Vec<MemoryRun>,
    pub workers: Vec<WorkersRun>,
}

impl Report {
    pub fn new(
        mode: Mode,
        rounds: usize,
        elapsed: Duration,
        cases: Vec<CaseRecord>,
        paired: Vec<PairedRun>,
        memory: Vec<MemoryRun>,
        workers: Vec<WorkersRun>,
    ) -> Self {
        let rows = rows(&cases);
        let (checks, reported) = if mode == Mode::Smoke {
            (Vec::new(), Vec::new())
        } else {
            let mut checks = targets::evaluate(&rows, &paired);
            checks.extend(targets::memory_checks(&memory, &rows));
            checks.extend(targets::worker_checks(&workers));
            (checks, targets::reported(&rows))
        };
        Self {
            mode,
            rounds,
            finished_at: utc_timestamp(std::time::SystemTime::now()),
            duration_s: elapsed.as_secs_f64(),
            machine: Machine::describe(),
            rows,
            checks,
            reported,
            cases,
            paired,
            memory,
            workers,
        }
    }

    /// Every case answered as expected in every round, and the two-worker run checked each
    /// new token's signature at most once (what `--smoke` checks).
    pub fn all_answered(&self) -> bool {
        self.cases
            .iter()
            .all(|c| c.skipped.is_none() && c.answered == self.rounds)
            && self.workers.iter().all(|run| {
                run.skipped.is_none() && run.signature_checks.is_some_and(|c| c <= run.tokens)
            })
    }

    pub fn markdown(&self) -> String {
        let mut out = String::new();
        let m = &self.machine;
        let _ = writeln!(
            out,
            "## Benchmark: {} run, {} round(s), {:.0} s, finished {}\n\n\
             Machine: {}, {} CPUs online, Linux {}, Envoy {} (one worker).\n",
            self.mode.name(),
            self.rounds,
            self.duration_s,
            self.finished_at,
            m.cpu,
            m.cpus_online,
            m.kernel,
            m.envoy
        );
        if self.mode == Mode::Smoke {
            out.push_str("| case | what | answered |\n|---|---|---|\n");
            for c in &self.cases {
                let answered = match &c.skipped {
                    Some(reason) => format!("skipped: {reason}"),
                    None => format!("{} of {} rounds", c.answered, self.rounds),
                };
                let _ = writeln!(out, "| {} | {} | {} |", c.name, c.what, answered);
            }
            for run in &self.workers {
                let _ = writeln!(
                    out,
                    "| {} | {} | {:?} signature checks for {} tokens |",
                    run.case, run.what, run.signature_checks, run.tokens
                );
            }
            return out;
        }
        out.push_str(
            "`+CPU` = Envoy CPU µs per request above the router-only floor of the same round, at \
             saturation: median [min, max] over rounds. `x twin`: total CPU per request over the \
             native twin's. p50/p99 at 1,000 req/s on one connection.\n\n",
        );
        out.push_str(
            "| case | what | +CPU µs/req | CPU x floor | CPU x twin | req/s x floor | p50 ms (+µs) | p99 ms (+µs) | Envoy util | RSS MiB idle / after | start ms (+) | .wasm KiB |\n\
             |---|---|---|---|---|---|---|---|---|---|---|---|\n",
        );
        for row in &self.rows {
            let _ = writeln!(out, "{}", table_line(row));
        }
        if !self.memory.is_empty() {
            out.push_str(
                "\n### Memory: distinct values, one Envoy each\n\n| run | what | RSS MiB idle | after a tenth | after all | growth | 2xx |\n|---|---|---|---|---|---|---|\n",
            );
            for run in &self.memory {
                let _ = writeln!(out, "{}", memory_line(run));
            }
        }
        if !self.workers.is_empty() {
            out.push_str(
                "\n### New tokens on two workers, one Envoy\n\n| run | what | tokens | signature checks | shared hits |\n|---|---|---|---|---|\n",
            );
            for run in &self.workers {
                let number = |n: Option<u64>| n.map_or("-".to_string(), |n| n.to_string());
                let _ = writeln!(
                    out,
                    "| {} | {} | {} | {} | {} |",
                    run.case,
                    run.skipped
                        .as_ref()
                        .map_or(run.what.clone(), |why| format!("skipped: {why}")),
                    run.tokens,
                    number(run.signature_checks),
                    number(run.shared_hits)
                );
            }
        }
        if !self.paired.is_empty() {
            let _ = write!(
                out,
                "\n### Single sections against their plugins' modules, in alternating bursts\n\n\
                 Two Envoys side by side, {PAIRS} pairs of 1 s bursts, the order alternating: \
                 CPU µs per request of the bundle's case minus the plugin's own, median [min, max] \
                 of the pairs; beside it the same difference from the rounds (median).\n\n\
                 | case | against | pairs: difference µs/req | rounds: difference µs/req |\n\
                 |---|---|---|---|\n"
            );
            for run in &self.paired {
                let _ = writeln!(out, "{}", paired_line(run, &self.rows));
            }
        }
        if !self.checks.is_empty() {
            out.push_str(
                "\n### Targets (medians of this run)\n\n| plugin | case | target | value | limit | verdict | what remains (profiled) |\n|---|---|---|---|---|---|---|\n",
            );
            for check in &self.checks {
                let cause = match check.outcome() {
                    targets::Outcome::Fail => targets::known_cause(check).unwrap_or("-"),
                    _ => "",
                };
                let _ = writeln!(
                    out,
                    "| {} | {} | {} | {} | {} | {} | {cause} |",
                    check.plugin,
                    check.case,
                    check.rule,
                    number(check.value, check.decimals()),
                    number(check.limit, check.decimals()),
                    check.outcome().label()
                );
            }
            out.push('\n');
            for line in targets::verdicts(&self.checks, &self.rows) {
                let _ = writeln!(out, "- {line}");
            }
            if self.rounds < 3 {
                out.push_str(
                    "\nFewer than 3 rounds: the verdicts are indicative only (targets are judged on the median of at least 3).\n",
                );
            }
        }
        if !self.reported.is_empty() {
            out.push_str(
                "\n### The bundle against the plugins it links (no target)\n\n| case | what | value |\n|---|---|---|\n",
            );
            for item in &self.reported {
                let decimals = if item.unit == "x" { 2 } else { 1 };
                let _ = writeln!(
                    out,
                    "| {} | {} | {} {} |",
                    item.case,
                    item.what,
                    number(item.value, decimals),
                    item.unit
                );
            }
        }
        out
    }
}

fn table_line(row: &Row) -> String {
    let size = row
        .wasm_bytes
        .map_or("-".to_string(), |b| format!("{:.1}", b as f64 / 1024.0));
    if let Some(reason) = &row.skipped {
        return format!(
            "| {} | {} | skipped: {} | | | | | | | | | {size} |",
            row.case,
            row.what,
            reason.replace('|', "/")
        );
    }
    let plus = match (row.case.as_str(), row.plus_cpu_us, row.cpu_us_per_req) {
        (FLOOR, _, Some(cpu)) => format!("0 (floor = {cpu:.1})"),
        (_, Some(s), _) => format!("{:.1} [{:.1}, {:.1}]", s.median, s.min, s.max),
        _ => "-".to_string(),
    };
    let with_delta = |value: Option<f64>, delta: Option<f64>| match (value, delta) {
        (Some(v), Some(d)) => format!("{v:.3} ({d:+.0})"),
        (Some(v), None) => format!("{v:.3}"),
        _ => "-".to_string(),
    };
    let rps = match (row.case.as_str(), row.req_per_s, row.req_per_s_x_floor) {
        (FLOOR, Some(rps), _) => format!("1.00 ({rps:.0}/s)"),
        (_, _, ratio) => number(ratio, 2),
    };
    let start = match (row.start_ms, row.start_plus_ms) {
        (Some(s), Some(d)) if row.case != FLOOR => format!("{s:.0} ({d:+.0})"),
        (Some(s), _) => format!("{s:.0}"),
        _ => "-".to_string(),
    };
    // Under load a plugin may start answering otherwise than in the check (errors, timeouts).
    let what = match row.expected_share {
        Some(share) if share < EXPECTED_SHARE => format!(
            "{} (under load only {:.1} % answered as expected)",
            row.what,
            share * 100.0
        ),
        _ => row.what.clone(),
    };
    format!(
        "| {} | {what} | {plus} | {} | {} | {rps} | {} | {} | {} | {} / {} | {start} | {size} |",
        row.case,
        number(row.cpu_x_floor, 2),
        number(row.cpu_x_twin, 2),
        with_delta(row.p50_ms, row.p50_plus_us),
        with_delta(row.p99_ms, row.p99_plus_us),
        number(row.envoy_util, 2),
        number(row.rss_idle_mib, 1),
        number(row.rss_after_mib, 1),
    )
}

fn memory_line(run: &MemoryRun) -> String {
    let mib = |kib: u64| format!("{:.1}", kib as f64 / 1024.0);
    match (&run.rss, &run.skipped) {
        (Some(rss), _) => format!(
            "| {} | {} | {} | {} | {} | {:+.1} | {:.1} % |",
            run.case,
            run.what,
            mib(rss.idle_kib),
            mib(rss.tenth_kib),
            mib(rss.after_kib),
            (rss.after_kib as f64 - rss.idle_kib as f64) / 1024.0,
            rss.expected_share * 100.0
        ),
        (None, reason) => format!(
            "| {} | {} | skipped: {} | | | | |",
            run.case,
            run.what,
            reason.as_deref().unwrap_or_default().replace('|', "/")
        ),
    }
}

fn paired_line(run: &PairedRun, rows: &[Row]) -> String {
    let rounds = rows
        .iter()
        .find(|r| r.case == run.case)
        .and_then(|r| r.plus_cpu_vs_standalone_us);
    let pairs = match (&run.skipped, stats::spread(&run.differences_us)) {
        (Some(reason), _) => format!("skipped: {}", reason.replace('|', "/")),
        (None, Some(d)) => format!("{:+.1} [{:+.1}, {:+.1}]", d.median, d.min, d.max),
        (None, None) => "-".to_string(),
    };
    format!(
        "| {} | {} | {pairs} | {} |",
        run.case,
        run.standalone,
        rounds.map_or("-".to_string(), |d| format!("{d:+.1}"))
    )
}

fn number(value: Option<f64>, decimals: usize) -> String {
    value.map_or("-".to_string(), |v| format!("{v:.decimals$}"))
}

/// `YYYY-MM-DDTHH:MM:SSZ` for a time after the epoch.
pub fn utc_timestamp(time: std::time::SystemTime) -> String {
    let secs = time
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (days, rest) = (secs / 86_400, secs % 86_400);
    // Days to civil date (Howard Hinnant's algorithm), for days since 1970-01-01.
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

#[cfg(test)]
mod tests {
    use super::super::rows::tests::record;
    use super::*;

    #[test]
    fn timestamps_are_utc_civil_time() {
        let at = |secs| utc_timestamp(std::time::UNIX_EPOCH + Duration::from_secs(secs));
        assert_eq!(at(0), "1970-01-01T00:00:00Z");
        assert_eq!(at(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(at(1_795_700_000), "2026-11-26T13:33:20Z");
    }

    #[test]
    fn envoy_version_is_read_from_its_banner() {
        assert_eq!(
            envoy_version("envoy  version: 8a3e3d0c/1.40.0/Clean/RELEASE/BoringSSL\n"),
            Some("1.40.0")
        );
        assert_eq!(envoy_version("nothing"), None);
    }

    #[test]
    fn markdown_has_a_row_per_case_and_marks_skips() {
        let mut skipped = record("path-allowlist", Some("rbac-paths"), &[]);
        skipped.skipped = Some("rules: unknown field".into());
        skipped.answered = 0;
        let mut erring = record("lua-body", None, &[120.0, 120.0, 120.0]);
        erring.samples[1].expected_share = 0.5;
        let cases = vec![
            record("floor", None, &[100.0, 101.0, 99.0]),
            record("rbac-paths", None, &[110.0, 111.0, 109.0]),
            skipped,
            erring,
        ];
        let report = Report {
            mode: Mode::Full,
            rounds: 3,
            finished_at: "2026-11-26T10:00:00Z".into(),
            duration_s: 60.0,
            machine: Machine {
                cpu: "test CPU".into(),
                cpus_online: 2,
                kernel: "6.1".into(),
                envoy: "1.40.0".into(),
            },
            rows: rows(&cases),
            checks: Vec::new(),
            reported: vec![Reported {
                case: "bundle".into(),
                what: "+CPU / chained +CPU (median of the rounds' ratios)".into(),
                value: Some(0.5),
                unit: "x".into(),
            }],
            cases,
            paired: vec![
                PairedRun {
                    case: "rbac-paths".into(),
                    standalone: "floor".into(),
                    differences_us: vec![0.5, -0.25, 1.0, 0.75],
                    skipped: None,
                },
                PairedRun {
                    case: "lua-body".into(),
                    standalone: "floor".into(),
                    differences_us: Vec::new(),
                    skipped: Some("lua-body: 3 of 20 requests got 200".into()),
                },
            ],
            memory: vec![MemoryRun {
                case: "ratelimit-keys".into(),
                what: "1000000 keys".into(),
                distinct: 1_000_000,
                rss: Some(super::super::memory::Rss {
                    idle_kib: 90 * 1024,
                    tenth_kib: 92 * 1024,
                    after_kib: 92 * 1024 + 512,
                    expected_share: 1.0,
                }),
                skipped: None,
            }],
            workers: vec![WorkersRun {
                case: "auth-gate-2-workers".into(),
                what: "2 workers".into(),
                tokens: 6,
                signature_checks: Some(6),
                shared_hits: Some(6),
                skipped: None,
            }],
        };
        let text = report.markdown();
        assert!(
            text.contains("| auth-gate-2-workers | 2 workers | 6 | 6 | 6 |"),
            "{text}"
        );
        assert!(
            text.contains("| floor | floor case | 0 (floor = 100.0) |"),
            "{text}"
        );
        assert!(
            text.contains("| rbac-paths | rbac-paths case | 10.0 [10.0, 10.0] | 1.10 |"),
            "{text}"
        );
        assert!(
            text.contains(
                "| path-allowlist | path-allowlist case | skipped: rules: unknown field |"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "| lua-body | lua-body case (under load only 50.0 % answered as expected) |"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "| ratelimit-keys | 1000000 keys | 90.0 | 92.0 | 92.5 | +2.5 | 100.0 % |"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "| bundle | +CPU / chained +CPU (median of the rounds' ratios) | 0.50 x |"
            ),
            "{text}"
        );
        // The pairs' median, and the rounds' (rbac-paths has no standalone case: none).
        assert!(
            text.contains("| rbac-paths | floor | +0.6 [-0.2, +1.0] | - |"),
            "{text}"
        );
        assert!(
            text.contains("| lua-body | floor | skipped: lua-body: 3 of 20 requests got 200 | - |"),
            "{text}"
        );
        assert!(!report.all_answered());
    }
}
