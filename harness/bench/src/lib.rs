//! The `harness bench` run (cases, measurement, report and targets): the CLI's `bench` command
//! is its only user; `./build.sh bench` runs it.
//!
//! `harness bench`: every case in a fresh Envoy, interleaved in rounds, each compared with the
//! router-only floor of the same round (the method of docs/performance.md, "How it measures").
//!
//! Per case and round: start to first answer, a correctness check (19 of 20 requests must get
//! the expected status), RSS 1 s after start, a saturation run (16 connections; Envoy's on-CPU
//! time from schedstat over the requests its admin counters completed), a fixed-rate run on one
//! connection (p50/p99 from h2load's per-request log), RSS after the load. After the rounds,
//! each judged single-section bundle case against its plugin's own module, in alternating
//! bursts on two Envoys (`paired`).

mod cases;
mod client;
mod h2load;
mod memory;
mod native;
mod paired;
mod procfs;
mod report;
mod rows;
mod stats;
mod targets;
mod tokens;
mod wasm_floor;
mod workers;

use cases::Case;
use client::{Answer, Client};
use harness_runner::{Envoy, Error, Result};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub const USAGE: &str =
    "harness bench [--quick | --smoke] [--rounds N] [--only CASE,CASE...|memory|workers|model-gateway] [--perf] [--out DIR]
    (default: all cases, 3 rounds, about 10 minutes; --quick: 1 short round; --smoke: each case
    only answers 20 requests, no timing; --only: these cases and the floor, `memory` for the
    distinct-value memory runs, `workers` for the two-worker run, `model-gateway` for the
    bundle's cases and the cases they are judged against; --perf: `perf record` of the one
    --only case under load)";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    Full,
    Quick,
    Smoke,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Options {
    pub mode: Mode,
    pub rounds: usize,
    pub only: Vec<String>,
    pub out_dir: PathBuf,
    /// Profile the one `--only` case under saturation with `perf record`.
    pub perf: bool,
}

pub fn parse_args(args: &[String]) -> std::result::Result<Options, String> {
    let mut mode = Mode::Full;
    let mut rounds = None;
    let mut only = Vec::new();
    let mut out_dir = harness_runner::repo_root().join("target/bench");
    let mut perf = false;
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().cloned().ok_or(format!("{name} needs a value"));
        match arg.as_str() {
            "--quick" => mode = Mode::Quick,
            "--smoke" => mode = Mode::Smoke,
            "--rounds" => {
                let v = value(arg)?;
                rounds = Some(
                    v.parse::<usize>()
                        .ok()
                        .filter(|n| (1..=20).contains(n))
                        .ok_or(format!("--rounds {v}: expected 1 to 20"))?,
                );
            }
            "--only" => only.extend(value(arg)?.split(',').map(str::to_string)),
            "--out" => out_dir = PathBuf::from(value(arg)?),
            "--perf" => perf = true,
            other => return Err(format!("unknown argument {other}")),
        }
    }
    let rounds = rounds.unwrap_or(if mode == Mode::Full { 3 } else { 1 });
    if perf && (mode == Mode::Smoke || only.len() != 1 || only[0] == "floor") {
        return Err(
            "--perf profiles one case: --only CASE (not the floor), not with --smoke".into(),
        );
    }
    Ok(Options {
        mode,
        rounds,
        only,
        out_dir,
        perf,
    })
}

/// How long each phase of one case's round lasts.
#[derive(Debug, Clone, Copy)]
struct Timing {
    warm_up: Duration,
    saturation: Duration,
    fixed_rate: Duration,
}

impl Mode {
    /// Also the name of the report files.
    pub fn name(self) -> &'static str {
        match self {
            Mode::Full => "full",
            Mode::Quick => "quick",
            Mode::Smoke => "smoke",
        }
    }

    /// The distinct-value memory runs (after the rounds); none in smoke mode.
    fn memory_sizes(self) -> Option<memory::Sizes> {
        match self {
            Mode::Full => Some(memory::Sizes {
                ratelimit_keys: 1_000_000,
                tokens: 10_000,
            }),
            Mode::Quick => Some(memory::Sizes {
                ratelimit_keys: 50_000,
                tokens: 1_000,
            }),
            Mode::Smoke => None,
        }
    }

    /// New tokens in the two-worker run (one Envoy, after the memory runs).
    fn worker_tokens(self) -> u64 {
        match self {
            Mode::Full => 200,
            Mode::Quick => 50,
            Mode::Smoke => 5,
        }
    }

    fn timing(self) -> Option<Timing> {
        match self {
            // Each fresh Envoy has already answered the check's 20 requests: v8 has compiled.
            Mode::Full => Some(Timing {
                warm_up: Duration::from_millis(500),
                saturation: Duration::from_secs(2),
                fixed_rate: Duration::from_millis(1500),
            }),
            Mode::Quick => Some(Timing {
                warm_up: Duration::from_millis(500),
                saturation: Duration::from_millis(1500),
                fixed_rate: Duration::from_secs(1),
            }),
            Mode::Smoke => None,
        }
    }
}

const SATURATION_CONNECTIONS: u32 = 16;
/// One connection at this rate: each request alone, no queueing behind a burst.
const FIXED_RATE: u32 = 1000;
const CHECK_REQUESTS: usize = 20;
const CHECK_REQUIRED: usize = 19;
/// RSS "idle" is read this long after the start.
const IDLE_AFTER: Duration = Duration::from_secs(1);
const FIRST_ANSWER_TIMEOUT: Duration = Duration::from_secs(10);

/// One case's numbers in one round.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Sample {
    pub round: usize,
    pub start_ms: f64,
    pub rss_idle_kib: u64,
    pub rss_after_kib: u64,
    pub cpu_us_per_req: f64,
    /// Envoy's CPU seconds per wall second under saturation: near 1 when Envoy is the limit.
    pub envoy_util: f64,
    pub req_per_s: f64,
    /// Share of the saturation run's answers with the expected status class.
    pub expected_share: f64,
    pub p50_us: f64,
    pub p99_us: f64,
}

/// What happened to one case over the whole run.
#[derive(Debug, Clone, Serialize)]
pub struct CaseRecord {
    pub name: String,
    pub what: String,
    pub twin: Option<String>,
    /// The plugin case a bundle case is compared with round by round.
    pub standalone: Option<String>,
    pub plugins: Vec<String>,
    pub wasm_bytes: Option<u64>,
    pub samples: Vec<Sample>,
    /// Why the case was not measured (a plugin refused its configuration or answered wrong).
    pub skipped: Option<String>,
    /// Rounds in which the case answered as expected.
    pub answered: usize,
}

/// How a round of one case ended, short of an error of the benchmark itself.
enum RoundOutcome {
    Measured(Sample),
    Answered,
    Skipped(String),
}

/// Runs the benchmark and writes `<out>/<mode>.md` and `<out>/<mode>.json`. Ok(false): smoke
/// mode and a case did not answer as expected.
pub fn run(options: &Options) -> Result<bool> {
    let timing = options.mode.timing();
    if timing.is_some() {
        check_h2load()?;
    }
    let cpus = procfs::online_cpus();
    // Envoy inherits the CPU of the thread that starts it; h2load is pinned to the other one.
    let load_cpu = if cpus >= 2 {
        procfs::pin_current_to_cpu(0).map_err(|e| Error(format!("cannot pin to CPU 0: {e}")))?;
        println!("Envoy on CPU 0, h2load on CPU 1 ({cpus} CPUs online)");
        Some(1)
    } else {
        println!("one CPU online: Envoy and h2load share it (numbers are less telling)");
        None
    };
    if let Err(e) = procfs::raise_session_priority() {
        println!("note: {e}; other sessions' jobs will take CPU from the measurement");
    }
    std::fs::create_dir_all(&options.out_dir)?;
    let scratch = options.out_dir.join("scratch");
    std::fs::create_dir_all(&scratch)?;
    let envoy = harness_runner::envoy::envoy_binary();
    println!("envoy: {}", envoy.display());
    if std::fs::read(&envoy).is_ok_and(|bytes| bytes.starts_with(b"#!")) {
        println!(
            "note: that is a launcher script: its start-up counts in every start time \
             (./build.sh bench sets ENVOY_BIN to the real binary)"
        );
    }
    println!("generating keys, tokens and the Wasm floor modules");
    // Lives for the whole run, on the load generator's CPU: the upstream's work is not Envoy's.
    let upstream = Envoy::start(cases::upstream_config())?;
    if let Some(cpu) = load_cpu {
        procfs::pin_process_to_cpu(upstream.pid(), cpu)?;
    }
    let fixtures = cases::Fixtures {
        tokens: tokens::generate()?,
        floor: wasm_floor::write_modules(&scratch)?,
        gateway_manifests: harness_runner::repo_root().join("wasmplugin-manifests/gateway"),
        upstream: upstream.listener(),
    };
    let all = cases::all(&fixtures)?;
    let unknown: Vec<&String> = options
        .only
        .iter()
        .filter(|o| {
            !["memory", "workers", cases::BUNDLE_GROUP].contains(&o.as_str())
                && !all.iter().any(|c| c.name == o.as_str())
        })
        .collect();
    if !unknown.is_empty() {
        let names: Vec<&str> = all.iter().map(|c| c.name).collect();
        return Err(Error(format!(
            "no case named {unknown:?}; the cases: {}, memory, workers and {}",
            names.join(", "),
            cases::BUNDLE_GROUP
        )));
    }
    let chosen = cases::selection(&all, &options.only);
    let selected: Vec<Case> = all
        .into_iter()
        .filter(|c| options.only.is_empty() || chosen.contains(&c.name))
        .collect();
    let with_memory = options.only.is_empty() || options.only.iter().any(|o| o == "memory");
    let with_workers = options.only.is_empty() || options.only.iter().any(|o| o == "workers");
    let started = Instant::now();
    let records = run_rounds(&selected, options, timing, load_cpu, &scratch)?;
    let paired_runs = match timing {
        Some(_) => paired::run_all(&selected, &records, load_cpu, &scratch)?,
        None => Vec::new(),
    };
    let memory_runs = match options.mode.memory_sizes().filter(|_| with_memory) {
        Some(sizes) => run_memory(sizes, &fixtures.tokens, &scratch, load_cpu)?,
        None => Vec::new(),
    };
    let worker_runs = if with_workers {
        println!("\nnew tokens on two workers, one Envoy");
        let run =
            workers::new_tokens_on_two_workers(options.mode.worker_tokens(), &fixtures.tokens)?;
        println!(
            "  {:<24} {} tokens: {:?} signature checks, {:?} shared hits",
            run.case, run.tokens, run.signature_checks, run.shared_hits
        );
        vec![run]
    } else {
        Vec::new()
    };
    let report = report::Report::new(
        options.mode,
        options.rounds,
        started.elapsed(),
        records,
        paired_runs,
        memory_runs,
        worker_runs,
    );
    let markdown = report.markdown();
    println!("\n{markdown}");
    let base = options.out_dir.join(options.mode.name());
    std::fs::write(base.with_extension("md"), &markdown)?;
    let json = serde_json::to_string_pretty(&report).map_err(|e| Error(e.to_string()))?;
    std::fs::write(base.with_extension("json"), json)?;
    println!(
        "written: {} and {}",
        base.with_extension("md").display(),
        base.with_extension("json").display()
    );
    Ok(options.mode != Mode::Smoke || report.all_answered())
}

/// Every selected case once per round, in an order rotated by one each round (no case always
/// runs right after the same neighbour). A case skipped once is not tried again.
fn run_rounds(
    selected: &[Case],
    options: &Options,
    timing: Option<Timing>,
    load_cpu: Option<usize>,
    scratch: &Path,
) -> Result<Vec<CaseRecord>> {
    let mut records: Vec<CaseRecord> = selected
        .iter()
        .map(|c| CaseRecord {
            name: c.name.to_string(),
            what: c.what.clone(),
            twin: c.twin.map(str::to_string),
            standalone: c.standalone.map(str::to_string),
            plugins: c.plugins.iter().map(|p| p.to_string()).collect(),
            wasm_bytes: c.wasm_bytes(),
            samples: Vec::new(),
            skipped: None,
            answered: 0,
        })
        .collect();
    for round in 0..options.rounds {
        println!("\nround {}/{}", round + 1, options.rounds);
        for offset in 0..selected.len() {
            let index = (offset + round) % selected.len();
            let (case, record) = (&selected[index], &mut records[index]);
            if record.skipped.is_some() {
                continue;
            }
            let profile = (options.perf && case.name != "floor").then(|| {
                options
                    .out_dir
                    .join(format!("{}-round{}.perf.data", case.name, round + 1))
            });
            match run_case(case, round, timing, load_cpu, scratch, profile.as_deref())? {
                RoundOutcome::Measured(sample) => {
                    println!("  {}", progress_line(case.name, &sample));
                    record.answered += 1;
                    record.samples.push(sample);
                }
                RoundOutcome::Answered => {
                    let refusals = match case.probes.len() {
                        0 => String::new(),
                        n => format!(", and {n} other requests as expected"),
                    };
                    println!(
                        "  {:<24} answered {} as expected{refusals}",
                        case.name, case.expect_status
                    );
                    record.answered += 1;
                }
                RoundOutcome::Skipped(reason) => {
                    println!("  {:<24} skipped: {reason}", case.name);
                    record.skipped = Some(reason);
                }
            }
        }
    }
    Ok(records)
}

fn run_memory(
    sizes: memory::Sizes,
    tokens: &tokens::Tokens,
    scratch: &Path,
    load_cpu: Option<usize>,
) -> Result<Vec<memory::MemoryRun>> {
    println!("\nmemory: distinct values, one Envoy each");
    let runs = [
        memory::ratelimit_keys(sizes.ratelimit_keys, scratch, load_cpu)?,
        memory::distinct_tokens(sizes.tokens, tokens, scratch, load_cpu)?,
    ];
    for run in &runs {
        match (&run.rss, &run.skipped) {
            (Some(rss), _) => println!(
                "  {:<24} RSS {:.1} -> {:.1} (after a tenth) -> {:.1} MiB, {:.1} % 2xx",
                run.case,
                rss.idle_kib as f64 / 1024.0,
                rss.tenth_kib as f64 / 1024.0,
                rss.after_kib as f64 / 1024.0,
                rss.expected_share * 100.0
            ),
            (None, reason) => println!(
                "  {:<24} skipped: {}",
                run.case,
                reason.as_deref().unwrap_or_default()
            ),
        }
    }
    Ok(runs.into())
}

fn check_h2load() -> Result<()> {
    match std::process::Command::new("h2load")
        .arg("--version")
        .output()
    {
        Ok(out) if out.status.success() => Ok(()),
        _ => Err(Error(
            "h2load not found: install Debian's nghttp2-client (./build.sh bench does it)".into(),
        )),
    }
}

fn progress_line(name: &str, s: &Sample) -> String {
    format!(
        "{name:<24} {:>7.1} µs/req  {:>8.0} req/s  util {:.2}  p50 {:.3} ms  p99 {:.3} ms  RSS {:.1}/{:.1} MiB  start {:.0} ms",
        s.cpu_us_per_req,
        s.req_per_s,
        s.envoy_util,
        s.p50_us / 1000.0,
        s.p99_us / 1000.0,
        s.rss_idle_kib as f64 / 1024.0,
        s.rss_after_kib as f64 / 1024.0,
        s.start_ms
    )
}

/// One case in one round, in its own Envoy. A plugin case whose Envoy refuses to start or whose
/// answers are wrong is skipped; the same in a case without plugins is the bench's own error.
fn run_case(
    case: &Case,
    round: usize,
    timing: Option<Timing>,
    load_cpu: Option<usize>,
    scratch: &Path,
    profile: Option<&Path>,
) -> Result<RoundOutcome> {
    let checked = match start_checked(case)? {
        Ok(checked) => checked,
        // A case without plugins (the floors, the native filters) must run.
        Err(reason) if case.plugins.is_empty() => {
            return Err(Error(format!("{}: {reason}", case.name)))
        }
        Err(reason) => return Ok(RoundOutcome::Skipped(reason)),
    };
    let Some(timing) = timing else {
        return Ok(RoundOutcome::Answered);
    };
    if let Some(rest) = IDLE_AFTER.checked_sub(checked.started.elapsed()) {
        std::thread::sleep(rest);
    }
    let envoy = &checked.envoy;
    let pid = envoy.pid();
    let rss_idle_kib = procfs::rss_kib(pid)?;
    let saturation = saturate(
        envoy,
        case,
        (timing.warm_up, timing.saturation),
        load_cpu,
        scratch,
        profile,
    )?;

    let log_file = scratch.join("latency.log");
    let fixed_rate = h2load::Load {
        rate: Some(FIXED_RATE),
        log_file: Some(log_file.clone()),
        ..h2load::Load::timed(&envoy.url(&case.path), &case.headers, timing.fixed_rate)
    };
    fixed_rate.run(load_cpu, scratch)?;
    let latencies = h2load::parse_latencies_us(&std::fs::read_to_string(&log_file)?);
    let percentile = |p| stats::percentile(&latencies, p).unwrap_or(f64::NAN);
    Ok(RoundOutcome::Measured(Sample {
        round,
        start_ms: checked.start_ms,
        rss_idle_kib,
        rss_after_kib: procfs::rss_kib(pid)?,
        cpu_us_per_req: saturation.cpu_us_per_req,
        envoy_util: saturation.envoy_util,
        req_per_s: saturation.req_per_s,
        expected_share: saturation.expected_share,
        p50_us: percentile(50.0),
        p99_us: percentile(99.0),
    }))
}

/// A case's Envoy, started and answering as the case expects.
struct Checked {
    envoy: Envoy,
    started: Instant,
    /// Start to first answer.
    start_ms: f64,
}

/// Starts the case's Envoy and checks its answers: 19 of 20 requests with the case's status,
/// each probe with its own. `Ok(Err(reason))`: Envoy refused the configuration (the plugin's
/// own log line) or answered wrong.
fn start_checked(case: &Case) -> Result<std::result::Result<Checked, String>> {
    let started = Instant::now();
    let envoy = match start_or_skip(case.config.clone()) {
        Ok(envoy) => envoy,
        Err(reason) => return Ok(Err(reason)),
    };
    let mut client = Client::new(envoy.listener());
    let first = first_answer(&mut client, &case.path, &case.headers)?;
    let start_ms = started.elapsed().as_secs_f64() * 1000.0;
    let mut answers = vec![first];
    for _ in 1..CHECK_REQUESTS {
        answers.push(client.get(&case.path, &case.headers)?);
    }
    let expected = answers
        .iter()
        .filter(|a| a.status == case.expect_status)
        .count();
    if expected < CHECK_REQUIRED {
        let wrong = answers.iter().find(|a| a.status != case.expect_status);
        let (status, body) = wrong.map_or((0, String::new()), |a| {
            (a.status, String::from_utf8_lossy(&a.body).into_owned())
        });
        return Ok(Err(format!(
            "{expected} of {CHECK_REQUESTS} requests got {}, others {status} ({})",
            case.expect_status,
            body.trim().chars().take(120).collect::<String>()
        )));
    }
    for probe in &case.probes {
        let answer = client.get(&probe.path, &probe.headers)?;
        if answer.status != probe.expect_status {
            return Ok(Err(format!(
                "{}: got {}, expected {} ({})",
                probe.what,
                answer.status,
                probe.expect_status,
                String::from_utf8_lossy(&answer.body)
                    .trim()
                    .chars()
                    .take(120)
                    .collect::<String>()
            )));
        }
    }
    Ok(Ok(Checked {
        envoy,
        started,
        start_ms,
    }))
}

/// Envoy's numbers under saturation.
struct Saturation {
    cpu_us_per_req: f64,
    envoy_util: f64,
    req_per_s: f64,
    expected_share: f64,
}

/// Saturates `envoy` with the case's request for `(warm_up, duration)`: Envoy's CPU over the
/// requests its admin counters completed, the warm-up's included (`profile`: `perf` records
/// Envoy meanwhile).
fn saturate(
    envoy: &Envoy,
    case: &Case,
    (warm_up, duration): (Duration, Duration),
    load_cpu: Option<usize>,
    scratch: &Path,
    profile: Option<&Path>,
) -> Result<Saturation> {
    let pid = envoy.pid();
    let load = h2load::Load {
        connections: SATURATION_CONNECTIONS,
        warm_up,
        ..h2load::Load::timed(&envoy.url(&case.path), &case.headers, duration)
    };
    let cpu_before = procfs::process_cpu_ns(pid)?;
    let completed_before = completed_requests(envoy)?;
    let wall = Instant::now();
    let perf = match profile {
        Some(out) => Some(Perf::record(pid, warm_up + duration, out)?),
        None => None,
    };
    let summary = load.run(load_cpu, scratch)?;
    let wall_ns = wall.elapsed().as_nanos() as f64;
    if let Some(perf) = perf {
        perf.wait()?;
    }
    let cpu_ns = procfs::process_cpu_ns(pid)?.saturating_sub(cpu_before) as f64;
    let completed = completed_requests(envoy)?.saturating_sub(completed_before);
    if completed == 0 {
        return Err(Error(format!(
            "{}: Envoy completed no request under load",
            case.name
        )));
    }
    Ok(Saturation {
        cpu_us_per_req: cpu_ns / 1000.0 / completed as f64,
        envoy_util: cpu_ns / wall_ns,
        req_per_s: summary.req_per_s,
        expected_share: summary.share_of_class(case.expect_status),
    })
}

/// `perf record` of Envoy while the saturation run lasts. Its own cost lands on Envoy's CPU:
/// a profiled round's numbers are for finding hot spots, not for the table.
struct Perf {
    child: std::process::Child,
    out: PathBuf,
    deadline: Instant,
}

impl Perf {
    fn record(pid: u32, duration: Duration, out: &Path) -> Result<Self> {
        let mut command = std::process::Command::new("perf");
        command
            .args(["record", "-g", "-p", &pid.to_string(), "-o"])
            .arg(out)
            .args(["--", "sleep", &format!("{:.1}", duration.as_secs_f64())])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        harness_runner::die_with_parent(&mut command);
        let child = command.spawn().map_err(|e| {
            Error(format!(
                "cannot start perf: {e} (Debian package linux-perf)"
            ))
        })?;
        Ok(Self {
            child,
            out: out.to_path_buf(),
            deadline: Instant::now() + duration + Duration::from_secs(30),
        })
    }

    fn wait(mut self) -> Result<()> {
        loop {
            if let Some(status) = self.child.try_wait()? {
                if !status.success() {
                    return Err(Error(format!("perf record failed ({status})")));
                }
                println!("  profile: perf report -i {}", self.out.display());
                return Ok(());
            }
            if Instant::now() > self.deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                return Err(Error("perf record did not finish".into()));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// Sends the request until Envoy answers (any status): the end of "start to first answer".
fn first_answer(client: &mut Client, path: &str, headers: &[(String, String)]) -> Result<Answer> {
    let deadline = Instant::now() + FIRST_ANSWER_TIMEOUT;
    loop {
        match client.get(path, headers) {
            Ok(answer) => return Ok(answer),
            Err(e) if Instant::now() > deadline => {
                return Err(Error(format!("no answer from Envoy: {e}")))
            }
            Err(_) => std::thread::sleep(Duration::from_millis(5)),
        }
    }
}

const COMPLETED_COUNTER: &str = "http.gateway.downstream_rq_completed";

fn completed_requests(envoy: &Envoy) -> Result<u64> {
    let stats = envoy.admin_get("/stats?filter=downstream_rq_completed")?;
    parse_counter(&stats, COMPLETED_COUNTER)
        .ok_or_else(|| Error(format!("no {COMPLETED_COUNTER} in admin /stats:\n{stats}")))
}

/// A counter's value from admin `/stats` text (`name: value` lines).
fn parse_counter(stats: &str, name: &str) -> Option<u64> {
    stats.lines().find_map(|line| {
        let (key, value) = line.split_once(": ")?;
        (key == name).then(|| value.trim().parse().ok())?
    })
}

/// A fresh Envoy for a run that is skipped, not failed, when a plugin refuses its
/// configuration: `Err(reason)` says why (see [`skip_reason`]).
fn start_or_skip(config: harness_runner::EnvoyConfig) -> std::result::Result<Envoy, String> {
    Envoy::start(config).map_err(|e| skip_reason(&e.0))
}

/// Why Envoy refused to start, from the error text carrying its log: the plugin's own
/// `wasm log` line when there is one (it names the field and the reason), else the last two
/// error or critical lines; without their `[time][thread][level][logger] [file:line]` prefix.
fn skip_reason(error: &str) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn options_default_to_three_full_rounds() {
        let options = parse_args(&[]).unwrap();
        assert_eq!((options.mode, options.rounds), (Mode::Full, 3));
        assert!(options.out_dir.ends_with("target/bench"));
        let quick = parse_args(&args(&["--quick", "--only", "floor,wasm-noop"])).unwrap();
        assert_eq!((quick.mode, quick.rounds), (Mode::Quick, 1));
        assert_eq!(quick.only, ["floor", "wasm-noop"]);
        let smoke = parse_args(&args(&["--smoke", "--rounds", "2"])).unwrap();
        assert_eq!((smoke.mode, smoke.rounds), (Mode::Smoke, 2));
        assert!(parse_args(&args(&["--rounds", "0"])).is_err());
        assert!(parse_args(&args(&["--rounds"])).is_err());
        assert!(parse_args(&args(&["--fast"])).is_err());
        let profiled =
            parse_args(&args(&["--quick", "--perf", "--only", "emotion-stats"])).unwrap();
        assert!(profiled.perf);
        assert!(parse_args(&args(&["--perf"])).is_err());
        assert!(parse_args(&args(&["--perf", "--only", "floor"])).is_err());
        assert!(parse_args(&args(&["--perf", "--smoke", "--only", "emotion-stats"])).is_err());
    }

    #[test]
    fn admin_counter_is_read_by_exact_name() {
        let stats = "http.admin.downstream_rq_completed: 3\n\
                     http.gateway.downstream_rq_completed: 12345\n\
                     listener.127.0.0.1_4000.http.gateway.downstream_rq_completed: 12345\n";
        assert_eq!(parse_counter(stats, COMPLETED_COUNTER), Some(12_345));
        assert_eq!(parse_counter("", COMPLETED_COUNTER), None);
    }

    #[test]
    fn smoke_mode_has_no_timing() {
        assert!(Mode::Smoke.timing().is_none());
        let full = Mode::Full.timing().unwrap();
        let quick = Mode::Quick.timing().unwrap();
        assert!(quick.saturation < full.saturation);
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
}
