//! From samples to the table: every number relative to the floor of the same round, then the
//! median over rounds; the targets judged on those medians; markdown and JSON.

use super::memory::MemoryRun;
use super::stats::{self, Spread};
use super::targets::{self, Check};
use super::workers::WorkersRun;
use super::{CaseRecord, Mode, Sample};
use serde::Serialize;
use std::fmt::Write as _;
use std::time::Duration;

pub const FLOOR: &str = "floor";

/// Below this share of expected answers under load, the row says so.
const EXPECTED_SHARE: f64 = 0.99;

/// One row of the table: a case's medians over rounds.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Row {
    pub case: String,
    pub what: String,
    pub twin: Option<String>,
    pub plugins: Vec<String>,
    pub skipped: Option<String>,
    pub rounds_measured: usize,
    pub cpu_us_per_req: Option<f64>,
    /// CPU µs per request above the floor of the same round.
    pub plus_cpu_us: Option<Spread>,
    pub cpu_x_floor: Option<f64>,
    /// Total CPU per request over the native twin's, same round.
    pub cpu_x_twin: Option<f64>,
    pub req_per_s: Option<f64>,
    pub req_per_s_x_floor: Option<f64>,
    pub p50_ms: Option<f64>,
    pub p50_plus_us: Option<f64>,
    pub p99_ms: Option<f64>,
    pub p99_plus_us: Option<f64>,
    pub envoy_util: Option<f64>,
    /// Lowest share of expected answers over the saturation runs.
    pub expected_share: Option<f64>,
    pub rss_idle_mib: Option<f64>,
    pub rss_after_mib: Option<f64>,
    pub start_ms: Option<f64>,
    pub start_plus_ms: Option<f64>,
    pub wasm_bytes: Option<u64>,
}

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
    pub cases: Vec<CaseRecord>,
    pub memory: Vec<MemoryRun>,
    pub workers: Vec<WorkersRun>,
}

impl Report {
    pub fn new(
        mode: Mode,
        rounds: usize,
        elapsed: Duration,
        cases: Vec<CaseRecord>,
        memory: Vec<MemoryRun>,
        workers: Vec<WorkersRun>,
    ) -> Self {
        let rows = rows(&cases);
        let checks = if mode == Mode::Smoke {
            Vec::new()
        } else {
            let mut checks = targets::evaluate(&rows);
            checks.extend(targets::memory_checks(&memory, &rows));
            checks.extend(targets::worker_checks(&workers));
            checks
        };
        Self {
            mode,
            rounds,
            finished_at: utc_timestamp(std::time::SystemTime::now()),
            duration_s: elapsed.as_secs_f64(),
            machine: Machine::describe(),
            rows,
            checks,
            cases,
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

fn number(value: Option<f64>, decimals: usize) -> String {
    value.map_or("-".to_string(), |v| format!("{v:.decimals$}"))
}

/// Rows for every case; floor-relative numbers only from rounds where both were measured.
pub fn rows(cases: &[CaseRecord]) -> Vec<Row> {
    let floor = cases
        .iter()
        .find(|c| c.name == FLOOR)
        .map(|c| c.samples.as_slice())
        .unwrap_or_default();
    cases
        .iter()
        .map(|case| {
            let twin = case
                .twin
                .as_ref()
                .and_then(|t| cases.iter().find(|c| &c.name == t))
                .map(|c| c.samples.as_slice())
                .unwrap_or_default();
            row(case, floor, twin)
        })
        .collect()
}

fn row(case: &CaseRecord, floor: &[Sample], twin: &[Sample]) -> Row {
    let own = |f: fn(&Sample) -> f64| -> Option<f64> {
        stats::median(&case.samples.iter().map(f).collect::<Vec<_>>())
    };
    let vs = |other: &[Sample], f: fn(&Sample, &Sample) -> f64| -> Vec<f64> {
        case.samples
            .iter()
            .filter_map(|s| other.iter().find(|o| o.round == s.round).map(|o| f(s, o)))
            .collect()
    };
    let median_vs = |other: &[Sample], f: fn(&Sample, &Sample) -> f64| stats::median(&vs(other, f));
    Row {
        case: case.name.clone(),
        what: case.what.clone(),
        twin: case.twin.clone(),
        plugins: case.plugins.clone(),
        skipped: case.skipped.clone(),
        rounds_measured: case.samples.len(),
        cpu_us_per_req: own(|s| s.cpu_us_per_req),
        plus_cpu_us: stats::spread(&vs(floor, |s, f| s.cpu_us_per_req - f.cpu_us_per_req)),
        cpu_x_floor: median_vs(floor, |s, f| s.cpu_us_per_req / f.cpu_us_per_req),
        cpu_x_twin: median_vs(twin, |s, t| s.cpu_us_per_req / t.cpu_us_per_req),
        req_per_s: own(|s| s.req_per_s),
        req_per_s_x_floor: median_vs(floor, |s, f| s.req_per_s / f.req_per_s),
        p50_ms: own(|s| s.p50_us / 1000.0),
        p50_plus_us: median_vs(floor, |s, f| s.p50_us - f.p50_us),
        p99_ms: own(|s| s.p99_us / 1000.0),
        p99_plus_us: median_vs(floor, |s, f| s.p99_us - f.p99_us),
        envoy_util: own(|s| s.envoy_util),
        expected_share: case
            .samples
            .iter()
            .map(|s| s.expected_share)
            .reduce(f64::min),
        rss_idle_mib: own(|s| s.rss_idle_kib as f64 / 1024.0),
        rss_after_mib: own(|s| s.rss_after_kib as f64 / 1024.0),
        start_ms: own(|s| s.start_ms),
        start_plus_ms: median_vs(floor, |s, f| s.start_ms - f.start_ms),
        wasm_bytes: case.wasm_bytes,
    }
}

/// Why Envoy refused to start, from the error text carrying its log: the plugin's own
/// `wasm log` line when there is one (it names the field and the reason), else the last two
/// error or critical lines; without their `[time][thread][level][logger] [file:line]` prefix.
pub fn skip_reason(error: &str) -> String {
    let messages: Vec<&str> = error
        .lines()
        .filter(|l| l.contains("][error]") || l.contains("][critical]"))
        .filter_map(|l| l.splitn(3, "] ").nth(2))
        .map(str::trim)
        .collect();
    if let Some(plugin_said) = messages.iter().find(|m| m.starts_with("wasm log")) {
        return plugin_said.to_string();
    }
    if messages.is_empty() {
        return error
            .lines()
            .next()
            .unwrap_or("Envoy refused to start")
            .to_string();
    }
    messages[messages.len().saturating_sub(2)..].join(" / ")
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
pub(super) mod tests {
    use super::*;

    pub fn sample(round: usize, cpu: f64) -> Sample {
        Sample {
            round,
            start_ms: 100.0 + cpu,
            rss_idle_kib: 65 * 1024,
            rss_after_kib: 66 * 1024,
            cpu_us_per_req: cpu,
            envoy_util: 0.95,
            req_per_s: 1e6 / cpu,
            expected_share: 1.0,
            p50_us: 300.0 + cpu,
            p99_us: 800.0 + cpu,
        }
    }

    pub fn record(name: &str, twin: Option<&str>, cpus: &[f64]) -> CaseRecord {
        CaseRecord {
            name: name.to_string(),
            what: format!("{name} case"),
            twin: twin.map(str::to_string),
            plugins: Vec::new(),
            wasm_bytes: None,
            samples: cpus
                .iter()
                .enumerate()
                .map(|(round, &cpu)| sample(round, cpu))
                .collect(),
            skipped: None,
            answered: cpus.len(),
        }
    }

    #[test]
    fn deltas_pair_each_round_with_its_own_floor() {
        // The floor drifts from round to round; the case stays 10 above it in each.
        let cases = vec![
            record("floor", None, &[100.0, 150.0, 120.0]),
            record("plugin", Some("twin"), &[110.0, 160.0, 130.0]),
            record("twin", None, &[105.0, 155.0, 125.0]),
        ];
        let rows = rows(&cases);
        let plugin = &rows[1];
        assert_eq!(
            plugin.plus_cpu_us,
            Some(Spread {
                median: 10.0,
                min: 10.0,
                max: 10.0
            })
        );
        assert!((plugin.cpu_x_floor.unwrap() - 130.0 / 120.0).abs() < 1e-9);
        assert!((plugin.cpu_x_twin.unwrap() - 130.0 / 125.0).abs() < 1e-9);
        assert!((plugin.p50_plus_us.unwrap() - 10.0).abs() < 1e-9);
        assert!((plugin.start_plus_ms.unwrap() - 10.0).abs() < 1e-9);
        assert_eq!(plugin.rss_idle_mib, Some(65.0));
        assert_eq!(rows[0].plus_cpu_us.unwrap().median, 0.0);
    }

    #[test]
    fn rounds_missing_on_either_side_are_not_compared() {
        let mut floor = record("floor", None, &[100.0, 100.0]);
        floor.samples.remove(0);
        let cases = vec![floor, record("case", None, &[500.0, 130.0])];
        let rows = rows(&cases);
        assert_eq!(rows[1].plus_cpu_us.unwrap().median, 30.0);
        assert_eq!(rows[1].cpu_us_per_req, Some(315.0));
    }

    #[test]
    fn skip_reason_is_the_plugins_own_log_line() {
        let error = "envoy exited (exit status: 1) before it was ready; its log:\n\
            [2026-11-26 08:12:03.800][24567][info][main] [source/server/server.cc:1] starting\n\
            [2026-11-26 08:12:03.855][24567][error][wasm] [source/extensions/common/wasm/context.cc:1157] wasm log: path-allowlist: invalid configuration at `rules[0].to[0].operation.pathz`: unknown field `pathz`\n\
            [2026-11-26 08:12:03.855][24567][error][wasm] [source/extensions/common/wasm/wasm.cc:104] Wasm VM failed Failed to configure base Wasm plugin\n\
            [2026-11-26 08:12:03.857][24567][critical][main] [source/server/server.cc:449] error `Unable to create Wasm plugin` initializing config   \n";
        assert_eq!(
            skip_reason(error),
            "wasm log: path-allowlist: invalid configuration at `rules[0].to[0].operation.pathz`: unknown field `pathz`"
        );
        let without_plugin_line = "envoy exited:\n\
            [2026-11-26 08:12:03.855][1][error][wasm] [wasm.cc:104] Wasm VM failed\n\
            [2026-11-26 08:12:03.856][1][critical][wasm] [wasm.cc:626] Plugin p failed to load\n\
            [2026-11-26 08:12:03.857][1][critical][main] [server.cc:449] error initializing config\n";
        assert_eq!(
            skip_reason(without_plugin_line),
            "Plugin p failed to load / error initializing config"
        );
        assert_eq!(
            skip_reason("module dist/x.wasm not found: run ./build.sh build"),
            "module dist/x.wasm not found: run ./build.sh build"
        );
    }

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
            cases,
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
        assert!(!report.all_answered());
    }
}
