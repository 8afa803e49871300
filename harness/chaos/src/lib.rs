//! The `harness chaos` run: the CLI runs it, and the harness's own tests run a short one and use
//! its module that traps for the live config checks.
//!
//! Reliability under chaos (docs/reliability.md): a real Envoy with the four gateway plugins
//! (`wasmplugin-manifests/gateway/`, delivered by ECDS as istiod does, `--concurrency 2`) under
//! steady load from several clients, while a scheduler injects faults at random times: the
//! model server SIGKILLed and restarted, valid and invalid `pluginConfig` pushes, emotion-stats
//! replaced by a module that traps (FAIL_OPEN), path-allowlist replaced by it (FAIL_CLOSE), the
//! JWKS server auth-gate fetches its keys from SIGKILLed and restarted. With `--bundle`, the
//! same gateway as one module (`wasmplugin-manifests/gateway-bundle/`): pushes change one
//! section, an invalid one breaks one section, and the trapping module replaces the whole
//! bundle (FAIL_CLOSE). Every request is recorded; the invariants are then checked against the
//! model server's own log of what reached it (see `invariants`).

mod faults;
mod invariants;
mod traffic;
mod trapping_module;
mod upstream;

pub use trapping_module::{trapping_module, write_trapping_module};

use faults::{Fault, FaultKind, Window};
use harness_runner::manifests;
use harness_runner::render::{Cluster, EnvoyConfig, FailStrategy, Plugin};
use harness_runner::{Envoy, Error, PushOutcome, Result};
use invariants::{Check, Epoch};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::{Duration, Instant};
use traffic::{Client, PredictionGate, Record};
use upstream::UpstreamProcess;

pub const USAGE: &str =
    "harness chaos [--duration 60s|10m|SECONDS] [--clients N] [--seed N] [--out DIR] [--bundle]";

/// After the load, Envoy's resident memory must be back within this of its value before it.
const MEMORY_BOUND_KIB: u64 = 64 * 1024;
/// Time for a finished stream's last callbacks (emotion-stats counts when the stream ends,
/// a moment after the client has its answer) before the counter is read.
const SETTLE: Duration = Duration::from_millis(300);
/// How long the trapping module stays after its window while the replaced module's series
/// are still on /stats/prometheus.
const OLD_SERIES_TIMEOUT: Duration = Duration::from_secs(10);
/// Time for a module pushed by ECDS to reach every worker after Envoy counts the reload.
const PUSH_PROPAGATION: Duration = Duration::from_millis(250);

/// Where auth-gate fetches its keys in the chaos run (the gateway manifest inlines them).
const JWKS_CLUSTER: &str = "outbound|5556||dex.chaos.local";
const JWKS_URI: &str = "http://dex.chaos.local:5556/keys";
/// Keys are fetched again every second, so the plugin sees every outage of the JWKS server.
const JWKS_REFRESH_SECONDS: u64 = 1;
/// After the JWKS server is back, the keys must be fetched again within this.
const JWKS_BACK_TIMEOUT: Duration = Duration::from_secs(5);
/// How long the plugin may make no fetch at all: auth-gate's fetch lease is held for the
/// fetch's timeout (5 s by default, as in the chaos config) + 1 s, and a root context replaced
/// by a push while its fetch is in flight leaves its lease to expire ("a lease left behind
/// only delays the next fetch"); then the refresh period and a tick. The JWKS server stays down
/// until a failed fetch is counted, at most this long after its random downtime.
const JWKS_LEASE_BOUND: Duration = Duration::from_millis(5_000 + 1_000 + 1_000 + 500);
const JWKS_FETCHES: &str = "auth_gate_jwks_fetches_total";

#[derive(Debug, Clone)]
pub struct Options {
    pub duration: Duration,
    pub clients: usize,
    pub seed: u64,
    /// Where the request records and the upstream's log are kept.
    pub out: PathBuf,
    /// The gateway as one module (`wasmplugin-manifests/gateway-bundle/`) instead of the four
    /// plugins of `wasmplugin-manifests/gateway/`.
    pub bundle: bool,
}

pub fn parse_args(args: &[String]) -> std::result::Result<Options, String> {
    let mut options = Options {
        duration: Duration::from_secs(60),
        clients: 6,
        seed: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1),
        out: harness_runner::repo_root().join("target/chaos"),
        bundle: false,
    };
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        if arg == "--bundle" {
            options.bundle = true;
            continue;
        }
        let value = args.next().ok_or(format!("{arg} needs a value"))?;
        match arg.as_str() {
            "--duration" => options.duration = parse_duration(value)?,
            "--clients" => {
                options.clients = value
                    .parse()
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or(format!("--clients {value}: expected a positive number"))?
            }
            "--seed" => {
                options.seed = value
                    .parse()
                    .map_err(|_| format!("--seed {value}: expected a number"))?
            }
            "--out" => options.out = PathBuf::from(value),
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(options)
}

/// `90`, `90s`, `10m`.
fn parse_duration(text: &str) -> std::result::Result<Duration, String> {
    let (number, scale) = match text.strip_suffix('m') {
        Some(minutes) => (minutes, 60),
        None => (text.strip_suffix('s').unwrap_or(text), 1),
    };
    number
        .parse::<u64>()
        .ok()
        .map(|n| n.saturating_mul(scale))
        .filter(|seconds| *seconds >= 10)
        .map(Duration::from_secs)
        .ok_or(format!(
            "--duration {text}: expected e.g. 60s or 10m (at least 10 s)"
        ))
}

/// The outcome of a run: the report's text and how many violations it found.
pub struct Report {
    pub text: String,
    pub violations: usize,
}

/// Runs the load and the faults, then checks the invariants.
pub fn run(options: &Options) -> Result<Report> {
    std::fs::create_dir_all(&options.out)?;
    let upstream_log = options.out.join("upstream-requests.jsonl");
    let _ = std::fs::remove_file(&upstream_log);
    let exe = std::env::current_exe()?;
    let mut upstream = UpstreamProcess::start(&exe, &upstream_log)?;
    let (plugins, jwks_document) = with_remote_jwks(gateway_plugins(options.bundle)?)?;
    let jwks_file = options.out.join("jwks.json");
    std::fs::write(&jwks_file, jwks_document)?;
    let mut jwks_server = UpstreamProcess::start_serving_json(
        &exe,
        &options.out.join("jwks-requests.jsonl"),
        &jwks_file,
    )?;
    let trapping = write_trapping_module(&options.out)?;
    let mut envoy = Envoy::start(EnvoyConfig {
        plugins: plugins.clone(),
        upstream: upstream.addr(),
        concurrency: 2,
        live_plugin_config: true,
        extra_clusters: vec![Cluster {
            name: JWKS_CLUSTER.to_string(),
            addr: jwks_server.addr(),
        }],
        ..Default::default()
    })?;
    let rss_start = rss_kib(envoy.pid())?;
    // Read before any client starts: a prediction counted before this read would be missing
    // from the first epoch's growth.
    let counter_at_start = emotion_counter(&envoy)?;

    let start = Instant::now();
    let deadline = start + options.duration;
    let gate = Arc::new(PredictionGate::default());
    let ids = Arc::new(AtomicU64::new(1));
    let clients: Vec<_> = (0..options.clients)
        .map(|i| {
            let client = Client {
                gateway: format!("http://{}", envoy.listener()),
                start,
                deadline,
                ids: Arc::clone(&ids),
                gate: Arc::clone(&gate),
                seed: options.seed.wrapping_add(i as u64 + 1),
            };
            std::thread::spawn(move || client.run())
        })
        .collect();

    let mut scheduler = Scheduler {
        envoy: &envoy,
        upstream: &mut upstream,
        jwks_server: &mut jwks_server,
        gate: &gate,
        current: plugins,
        kinds: FaultKind::of_run(options.bundle),
        trapping,
        rng: harness_runner::rng::Rng::new(options.seed),
        start,
        pushes: 0,
        epochs: Vec::new(),
        open_epoch: Epoch {
            id: 0,
            counting: true,
            counter_at_start,
            counter_at_end: 0,
        },
    };
    let faults = scheduler.inject_until(deadline);
    let mut records: Vec<Record> = Vec::new();
    let mut lost_clients = 0;
    for client in clients {
        match client.join() {
            Ok(sent) => records.extend(sent),
            Err(_) => lost_clients += 1,
        }
    }
    // The clients are done: no prediction is in flight.
    std::thread::sleep(SETTLE);
    let counter_at_end = emotion_counter(&envoy);
    let epochs = scheduler.close(*counter_at_end.as_ref().unwrap_or(&0));
    records.sort_by_key(|r| r.id);

    // Idle, then memory: what the run allocated and did not give back.
    std::thread::sleep(Duration::from_secs(2));
    let crashed = envoy.exit_status();
    let rss_end = rss_kib(envoy.pid()).unwrap_or(0);
    let received = upstream::read_log(&upstream_log)?;
    write_records(&options.out.join("requests.jsonl"), &records)?;
    write_faults(&options.out.join("faults.jsonl"), &faults)?;

    let fail_close = FaultKind::fails_closed;
    let trapped = if options.bundle {
        faults::BUNDLE
    } else {
        "path-allowlist"
    };
    let mut checks = vec![
        invariants::only_admissible_requests_reached_the_upstream(&records, &received),
        invariants::fail_closed_held(
            &records,
            &received,
            &Fault::active_windows(&faults, fail_close),
            trapped,
        ),
        invariants::valid_tokens_accepted(
            &records,
            &Fault::active_windows(&faults, |k| k == FaultKind::JwksServerDown),
        ),
        invariants::rate_limits_held(&records, &received, &Fault::spans(&faults, fail_close)),
        invariants::predictions_counted_once(&records, &epochs),
        invariants::nothing_hung(&records),
        envoy_survived(crashed, rss_start, rss_end),
        faults_behaved(&faults),
    ];
    let mut run_problems = Vec::new();
    if records.is_empty() {
        run_problems.push("the clients sent nothing".to_string());
    }
    if lost_clients > 0 {
        run_problems.push(format!(
            "{lost_clients} client threads died, their records lost"
        ));
    }
    if let Err(e) = counter_at_end {
        run_problems.push(format!(
            "the emotion-stats counter could not be read at the end: {e}"
        ));
    }
    checks.push(Check {
        name: "the run itself",
        summary: format!("{} client threads, all records kept", options.clients),
        violations: run_problems,
    });
    let violations = checks.iter().map(|c| c.violations.len()).sum();
    let text = render_report(
        options,
        &records,
        received.len(),
        &faults,
        &checks,
        violations,
    );
    drop(envoy);
    Ok(Report { text, violations })
}

/// The four plugins as `wasmplugin-manifests/gateway/` wires them, or (`bundle`) the one
/// plugin of `wasmplugin-manifests/gateway-bundle/`; modules from `dist/`.
fn gateway_plugins(bundle: bool) -> Result<Vec<Plugin>> {
    let (folder, expected): (&str, &[&str]) = if bundle {
        ("gateway-bundle", &[faults::BUNDLE])
    } else {
        (
            "gateway",
            &[
                "auth-gate",
                "path-allowlist",
                "local-ratelimit",
                "emotion-stats",
            ],
        )
    };
    let dir = harness_runner::repo_root()
        .join("wasmplugin-manifests")
        .join(folder);
    let plugins = manifests::to_plugins(manifests::load_dir(&dir)?);
    let names: Vec<&str> = plugins.iter().map(Plugin::short_name).collect();
    if names != expected || plugins.iter().any(|p| p.fetch_failure.is_some()) {
        return Err(Error(format!(
            "expected the plugins {expected:?} from {}, got {names:?}",
            dir.display(),
        )));
    }
    Ok(plugins)
}

/// The plugin holding auth-gate's configuration, and where in its configuration that is:
/// auth-gate's own (all of it) or the bundle's (its `authGate` section).
fn auth_gate_of(plugins: &mut [Plugin]) -> Option<(&mut Plugin, &'static str)> {
    plugins.iter_mut().find_map(|plugin| {
        let pointer = match plugin.short_name() {
            "auth-gate" => "",
            faults::BUNDLE => "/authGate",
            _ => return None,
        };
        Some((plugin, pointer))
    })
}

/// auth-gate's inline `jwks` moved behind `jwksUri`, served by the run's JWKS server through
/// [`JWKS_CLUSTER`] and fetched again every [`JWKS_REFRESH_SECONDS`]; returns the plugins and
/// the JWKS document to serve.
fn with_remote_jwks(mut plugins: Vec<Plugin>) -> Result<(Vec<Plugin>, String)> {
    let (auth_gate, pointer) = auth_gate_of(&mut plugins)
        .ok_or_else(|| Error("no auth-gate among the gateway plugins".into()))?;
    let mut whole: Value = serde_json::from_str(&auth_gate.configuration)
        .map_err(|e| Error(format!("auth-gate's configuration: {e}")))?;
    let config = whole
        .pointer_mut(pointer)
        .filter(|config| config.is_object())
        .ok_or_else(|| Error(format!("no auth-gate configuration at {pointer:?}")))?;
    let mut document = None;
    for rule in config["jwtRules"].as_array_mut().into_iter().flatten() {
        let Some(rule) = rule.as_object_mut() else {
            continue;
        };
        if let Some(Value::String(jwks)) = rule.remove("jwks") {
            if document.as_ref().is_some_and(|d| *d != jwks) {
                return Err(Error(
                    "auth-gate's rules inline different JWKS: one server cannot serve both".into(),
                ));
            }
            document = Some(jwks);
            rule.insert("jwksUri".into(), json!(JWKS_URI));
            rule.insert("jwksCluster".into(), json!(JWKS_CLUSTER));
        }
    }
    let document =
        document.ok_or_else(|| Error("auth-gate's gateway config inlines no JWKS".into()))?;
    config["jwksRefreshSeconds"] = json!(JWKS_REFRESH_SECONDS);
    auth_gate.configuration = whole.to_string();
    Ok((plugins, document))
}

/// What one injection did.
struct Injected {
    detail: String,
    /// Why it did not behave, if it did not: a violation.
    problem: Option<String>,
    active: Option<Window>,
    span: Option<Window>,
}

impl Injected {
    fn new(detail: String, problem: Option<String>) -> Self {
        Self {
            detail,
            problem,
            active: None,
            span: None,
        }
    }
}

struct Scheduler<'a> {
    envoy: &'a Envoy,
    upstream: &'a mut UpstreamProcess,
    jwks_server: &'a mut UpstreamProcess,
    gate: &'a PredictionGate,
    /// The config each plugin runs now (the last accepted push).
    current: Vec<Plugin>,
    /// The faults this run injects.
    kinds: &'static [FaultKind],
    trapping: PathBuf,
    rng: harness_runner::rng::Rng,
    start: Instant,
    pushes: u64,
    epochs: Vec<Epoch>,
    open_epoch: Epoch,
}

impl Scheduler<'_> {
    /// Faults at random times (every kind in turn, in a shuffled order) until shortly before
    /// `deadline`; every fault is undone before the next (the upstream is back, the real
    /// emotion-stats is back).
    fn inject_until(&mut self, deadline: Instant) -> Vec<Fault> {
        let mut faults = Vec::new();
        let mut queue: Vec<FaultKind> = Vec::new();
        let last_start = deadline
            .checked_sub(Duration::from_secs(5))
            .unwrap_or(deadline);
        loop {
            std::thread::sleep(self.rng.millis(500, 2500));
            if Instant::now() > last_start {
                return faults;
            }
            if queue.is_empty() {
                queue = self.rng.shuffled(self.kinds);
            }
            let Some(kind) = queue.pop() else { continue };
            let at = self.start.elapsed();
            let injected = self
                .inject(kind)
                .unwrap_or_else(|e| Injected::new(String::new(), Some(e.0)));
            faults.push(Fault {
                kind,
                at,
                detail: injected.detail,
                problem: injected.problem,
                active: injected.active,
                span: injected.span,
            });
        }
    }

    /// Injects one fault; returns what was done and, if it did not behave, why.
    fn inject(&mut self, kind: FaultKind) -> Result<Injected> {
        match kind {
            FaultKind::UpstreamKilled => {
                self.upstream.kill()?;
                let down = self.rng.millis(200, 1500);
                std::thread::sleep(down);
                self.upstream.restart()?;
                Ok(Injected::new(format!("down {} ms", down.as_millis()), None))
            }
            FaultKind::JwksServerDown => self.jwks_server_down(),
            FaultKind::TrappingAllowlistFailClose => self.trapping_allowlist(),
            FaultKind::TrappingBundleFailClose => self.trapping_bundle(),
            FaultKind::ValidPush => {
                let index = self.rng.below(self.current.len());
                let original = self.current.get(index).cloned();
                self.pushes += 1;
                let Some((pushed, part)) = original
                    .as_ref()
                    .and_then(|p| faults::valid_variant(p, self.pushes))
                else {
                    return Err(Error(format!("no valid variant for plugin #{index}")));
                };
                let outcome = self.envoy.push_plugin(&pushed)?;
                let name = part.describe(&pushed);
                if outcome != PushOutcome::Reloaded {
                    let problem = format!("a valid config was {outcome:?}");
                    return Ok(Injected::new(name, Some(problem)));
                }
                if let Some(slot) = self.current.get_mut(index) {
                    *slot = pushed;
                }
                Ok(Injected::new(name, None))
            }
            FaultKind::InvalidPush => {
                let Some(plugin) = self.rng.pick(&self.current).cloned() else {
                    return Err(Error("no plugin".into()));
                };
                self.pushes += 1;
                let (invalid, part, field) = faults::invalid_variant(&plugin, self.pushes);
                // The refusal's line: `<plugin>: invalid configuration at `<field>`: …`, the
                // field named from the top of the pluginConfig.
                let refusal = format!(
                    "{}: invalid configuration at `{field}`",
                    plugin.short_name()
                );
                let named = |log: &str| log.lines().filter(|l| l.contains(&refusal)).count();
                let before = named(&self.envoy.log());
                let outcome = self.envoy.push_plugin(&invalid)?;
                // Envoy flushes its log every 100 ms.
                std::thread::sleep(Duration::from_millis(250));
                let problem = if outcome != PushOutcome::Rejected {
                    Some(format!("an invalid config was {outcome:?}"))
                } else if named(&self.envoy.log()) <= before {
                    Some(format!("no log line says {refusal:?}"))
                } else {
                    None
                };
                Ok(Injected::new(
                    format!("{}: {field}", part.describe(&plugin)),
                    problem,
                ))
            }
            FaultKind::TrappingEmotionStats => {
                let Some(real) = self
                    .current
                    .iter()
                    .find(|p| p.short_name() == "emotion-stats")
                    .cloned()
                else {
                    return Err(Error("no emotion-stats plugin".into()));
                };
                let trapping = Plugin {
                    module: self.trapping.clone(),
                    ..real.clone().fail_strategy(FailStrategy::FailOpen)
                };
                let trapped = self.swap_emotion_stats(&trapping, false)?;
                let window = self.rng.millis(1000, 3000);
                std::thread::sleep(window);
                let dropped = self.wait_for_old_series_to_go()?;
                let restored = self.swap_emotion_stats(&real, true)?;
                let problem = [("trapping module", trapped), ("restore", restored)]
                    .iter()
                    .find(|(_, o)| *o != PushOutcome::Reloaded)
                    .map(|(what, o)| format!("{what} push was {o:?}"));
                let detail = format!(
                    "trapping for {} ms, the replaced module's series {}",
                    window.as_millis(),
                    if dropped { "dropped" } else { "still there" }
                );
                Ok(Injected::new(detail, problem))
            }
        }
    }

    /// The bundle replaced by the trapping module with FAIL_CLOSE: Envoy must refuse every
    /// request (503) while it is there, and nothing may reach the model. The bundle's
    /// emotion-stats goes with it: the swaps close and open epochs as emotion-stats' own do,
    /// and the restored bundle counts from 0 in a VM of its own.
    fn trapping_bundle(&mut self) -> Result<Injected> {
        let Some(real) = self
            .current
            .iter()
            .find(|p| p.short_name() == faults::BUNDLE)
            .cloned()
        else {
            return Err(Error("no model-gateway plugin".into()));
        };
        let trapping = Plugin {
            module: self.trapping.clone(),
            ..real.clone().fail_strategy(FailStrategy::FailClose)
        };
        let pushed_at = self.start.elapsed();
        let trapped = self.swap_emotion_stats(&trapping, false)?;
        let in_force_at = self.start.elapsed() + PUSH_PROPAGATION;
        let window = self.rng.millis(1000, 3000);
        std::thread::sleep(PUSH_PROPAGATION + window);
        let dropped = self.wait_for_old_series_to_go()?;
        let restoring_at = self.start.elapsed();
        let restored = self.swap_emotion_stats(&real, true)?;
        let problem = [("trapping module", trapped), ("restore", restored)]
            .iter()
            .find(|(_, o)| *o != PushOutcome::Reloaded)
            .map(|(what, o)| format!("{what} push was {o:?}"));
        Ok(Injected {
            detail: format!(
                "trapping for {} ms, the replaced module's series {}",
                window.as_millis(),
                if dropped { "dropped" } else { "still there" }
            ),
            problem,
            active: Some((in_force_at, restoring_at)),
            span: Some((pushed_at, self.start.elapsed() + PUSH_PROPAGATION)),
        })
    }

    /// path-allowlist replaced by the trapping module with FAIL_CLOSE: Envoy must refuse every
    /// request (503) while it is there, and nothing may reach the model.
    fn trapping_allowlist(&mut self) -> Result<Injected> {
        let Some(real) = self
            .current
            .iter()
            .find(|p| p.short_name() == "path-allowlist")
            .cloned()
        else {
            return Err(Error("no path-allowlist plugin".into()));
        };
        let trapping = Plugin {
            module: self.trapping.clone(),
            ..real.clone().fail_strategy(FailStrategy::FailClose)
        };
        let pushed_at = self.start.elapsed();
        let trapped = self.envoy.push_plugin(&trapping)?;
        let in_force_at = self.start.elapsed() + PUSH_PROPAGATION;
        let window = self.rng.millis(1000, 3000);
        std::thread::sleep(PUSH_PROPAGATION + window);
        let restoring_at = self.start.elapsed();
        let restored = self.envoy.push_plugin(&real)?;
        let problem = [("trapping module", trapped), ("restore", restored)]
            .iter()
            .find(|(_, o)| *o != PushOutcome::Reloaded)
            .map(|(what, o)| format!("{what} push was {o:?}"));
        Ok(Injected {
            detail: format!("trapping for {} ms", window.as_millis()),
            problem,
            active: Some((in_force_at, restoring_at)),
            span: Some((pushed_at, self.start.elapsed() + PUSH_PROPAGATION)),
        })
    }

    /// The JWKS server SIGKILLed: the plugin must count failed refreshes, keep the keys it has
    /// (valid tokens keep passing, see `invariants::valid_tokens_accepted`) and fetch them
    /// again once the server is back.
    fn jwks_server_down(&mut self) -> Result<Injected> {
        let envoy = self.envoy;
        let fetches = |outcome: &str| counter_sum(envoy, JWKS_FETCHES, outcome);
        let failed_before = fetches("failure")?;
        self.jwks_server.kill()?;
        let down_at = self.start.elapsed();
        let down = self.rng.millis(1500, 3000);
        std::thread::sleep(down);
        let mut failed = fetches("failure")?.saturating_sub(failed_before);
        // No fetch yet: a lease left by a replaced root context may hold them off; stay down
        // until one fails or the lease must have expired.
        let held_since = Instant::now();
        while failed == 0 && held_since.elapsed() < JWKS_LEASE_BOUND {
            std::thread::sleep(Duration::from_millis(100));
            failed = fetches("failure")?.saturating_sub(failed_before);
        }
        let held = if failed > 0 && held_since.elapsed() > Duration::from_millis(100) {
            format!(
                ", kept down {} ms more for the first failed fetch",
                held_since.elapsed().as_millis()
            )
        } else {
            String::new()
        };
        let fetched_before = fetches("success")?;
        self.jwks_server.restart()?;
        let up_at = self.start.elapsed();
        let deadline = Instant::now() + JWKS_BACK_TIMEOUT;
        let back = loop {
            if fetches("success")? > fetched_before {
                break true;
            }
            if Instant::now() > deadline {
                break false;
            }
            std::thread::sleep(Duration::from_millis(100));
        };
        let problem = if failed == 0 {
            Some(format!(
                "no failed fetch counted in {} ms down (keys refreshed every \
                 {JWKS_REFRESH_SECONDS} s, a fetch lease held at most {} ms)",
                (down + JWKS_LEASE_BOUND).as_millis(),
                JWKS_LEASE_BOUND.as_millis()
            ))
        } else if !back {
            Some(format!(
                "keys not fetched again within {} s of the server's return",
                JWKS_BACK_TIMEOUT.as_secs()
            ))
        } else {
            None
        };
        Ok(Injected {
            detail: format!(
                "down {} ms, {failed} failed fetches{held}",
                down.as_millis()
            ),
            problem,
            active: Some((down_at, up_at)),
            span: Some((down_at, self.start.elapsed())),
        })
    }

    /// The replaced module's metrics leave /stats/prometheus when Envoy drops its VM, usually
    /// at once, sometimes later; waiting for that before the real module comes back keeps the
    /// reset out of the epoch that counts. Whether they went within the bound.
    fn wait_for_old_series_to_go(&self) -> Result<bool> {
        let deadline = Instant::now() + OLD_SERIES_TIMEOUT;
        loop {
            if emotion_counter(self.envoy)? == 0 {
                return Ok(true);
            }
            if Instant::now() > deadline {
                return Ok(false);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Pushes a module holding emotion-stats (its own, or the bundle) while no prediction is in
    /// flight, closing the epoch that ends and opening the next (`counting` when the real
    /// module serves it).
    fn swap_emotion_stats(&mut self, plugin: &Plugin, counting: bool) -> Result<PushOutcome> {
        let envoy = self.envoy;
        let (closed, opened, outcome) = self.gate.quiesced(|epoch| {
            std::thread::sleep(SETTLE);
            let at_end = emotion_counter(envoy)?;
            let outcome = envoy.push_plugin(plugin)?;
            let at_start = emotion_counter(envoy)?;
            *epoch += 1;
            Ok::<_, Error>((at_end, (*epoch, at_start), outcome))
        })?;
        let ended = std::mem::replace(
            &mut self.open_epoch,
            Epoch {
                id: opened.0,
                counting,
                counter_at_start: opened.1,
                counter_at_end: 0,
            },
        );
        self.epochs.push(Epoch {
            counter_at_end: closed,
            ..ended
        });
        Ok(outcome)
    }

    fn close(self, counter_at_end: u64) -> Vec<Epoch> {
        let mut epochs = self.epochs;
        epochs.push(Epoch {
            counter_at_end,
            ..self.open_epoch
        });
        epochs
    }
}

/// `emotion_stats_top_label_total` summed over every model and label.
fn emotion_counter(envoy: &Envoy) -> Result<u64> {
    counter_sum(envoy, "emotion_stats_top_label_total", "")
}

/// A counter of `/stats/prometheus` summed over its series whose `outcome` is `outcome`
/// (every series when empty).
fn counter_sum(envoy: &Envoy, metric: &str, outcome: &str) -> Result<u64> {
    let text = envoy.admin_get("/stats/prometheus")?;
    Ok(sum_series(&text, metric, outcome))
}

fn sum_series(text: &str, metric: &str, outcome: &str) -> u64 {
    let prefix = format!("{metric}{{");
    let label = format!("outcome=\"{outcome}\"");
    text.lines()
        .filter(|l| l.starts_with(&prefix) && (outcome.is_empty() || l.contains(&label)))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

fn rss_kib(pid: u32) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kib| kib.parse().ok())
        .ok_or_else(|| Error(format!("no VmRSS for pid {pid}")))
}

fn envoy_survived(
    crashed: Option<std::process::ExitStatus>,
    rss_start: u64,
    rss_end: u64,
) -> Check {
    let mut violations = Vec::new();
    if let Some(status) = crashed {
        violations.push(format!("envoy exited during the run: {status}"));
    }
    if rss_end > rss_start + MEMORY_BOUND_KIB {
        violations.push(format!(
            "resident memory {} MiB after the run, {} MiB before: more than {} MiB growth",
            rss_end / 1024,
            rss_start / 1024,
            MEMORY_BOUND_KIB / 1024
        ));
    }
    Check {
        name: "envoy never crashed, memory back within bound",
        summary: format!(
            "same process throughout; RSS {:.1} MiB before the load, {:.1} MiB 2 s after it \
             (bound: +{} MiB)",
            rss_start as f64 / 1024.0,
            rss_end as f64 / 1024.0,
            MEMORY_BOUND_KIB / 1024
        ),
        violations,
    }
}

fn faults_behaved(faults: &[Fault]) -> Check {
    let violations = faults
        .iter()
        .filter_map(|f| {
            f.problem.as_ref().map(|p| {
                format!(
                    "{:?} at {:.1} s ({}): {p}",
                    f.kind,
                    f.at.as_secs_f64(),
                    f.detail
                )
            })
        })
        .collect();
    Check {
        name: "pushes answered as expected",
        summary: "every valid push reloaded, every invalid push refused (config_fail +1) with a \
                  log line naming the field, every module swap reloaded"
            .into(),
        violations,
    }
}

fn write_records(path: &Path, records: &[Record]) -> Result<()> {
    let mut file = std::io::BufWriter::new(std::fs::File::create(path)?);
    for record in records {
        writeln!(file, "{}", record.to_json())?;
    }
    file.flush()?;
    Ok(())
}

fn write_faults(path: &Path, faults: &[Fault]) -> Result<()> {
    let mut file = std::io::BufWriter::new(std::fs::File::create(path)?);
    for fault in faults {
        let line = serde_json::json!({
            "kind": format!("{:?}", fault.kind),
            "at_ms": fault.at.as_millis() as u64,
            "detail": fault.detail,
            "problem": fault.problem,
            "active_ms": fault.active.map(window_ms),
            "span_ms": fault.span.map(window_ms),
        });
        writeln!(file, "{line}")?;
    }
    file.flush()?;
    Ok(())
}

fn window_ms((from, to): Window) -> [u64; 2] {
    [from.as_millis() as u64, to.as_millis() as u64]
}

fn render_report(
    options: &Options,
    records: &[Record],
    received: usize,
    faults: &[Fault],
    checks: &[Check],
    violations: usize,
) -> String {
    let (kinds, answers) = invariants::tally(records);
    let mut by_kind: BTreeMap<FaultKind, usize> = BTreeMap::new();
    for fault in faults {
        *by_kind.entry(fault.kind).or_default() += 1;
    }
    let chain = if options.bundle {
        "model-gateway (the four gateway plugins in one module)"
    } else {
        "the four gateway plugins"
    };
    let mut text = format!(
        "chaos report: {} s, seed {}, {} client threads, Envoy --concurrency 2, {chain} by ECDS\n",
        options.duration.as_secs(),
        options.seed,
        options.clients
    );
    text.push_str(&format!(
        "requests: {} sent, {received} reached the upstream\n  answers:",
        records.len()
    ));
    for (answer, n) in &answers {
        text.push_str(&format!(" {answer}: {n};"));
    }
    text.push_str("\n  kinds:");
    for (kind, n) in &kinds {
        text.push_str(&format!(" {kind:?} {n};"));
    }
    text.push_str(&format!("\nfaults injected: {}\n", faults.len()));
    for (kind, n) in &by_kind {
        text.push_str(&format!("  {n:>4}  {}\n", kind.describe(options.bundle)));
    }
    for (kind, module) in [
        (FaultKind::TrappingEmotionStats, "emotion-stats"),
        (FaultKind::TrappingBundleFailClose, faults::BUNDLE),
    ] {
        let dropped = faults
            .iter()
            .filter(|f| f.kind == kind && f.detail.ends_with(" dropped"))
            .count();
        if let Some(swaps) = by_kind.get(&kind) {
            text.push_str(&format!(
                "        (the replaced {module} module's series left /stats/prometheus before \
                 the restore in {dropped} of {swaps})\n"
            ));
        }
    }
    text.push_str(&format!(
        "  (auth-gate fetches its keys from the JWKS server through {JWKS_CLUSTER}, every \
         {JWKS_REFRESH_SECONDS} s)\n"
    ));
    text.push_str("invariants:\n");
    for check in checks {
        text.push_str(&check.render());
        text.push('\n');
    }
    text.push_str(&format!(
        "violations: {violations}\nrecords: {out}/requests.jsonl, {out}/upstream-requests.jsonl, \
         {out}/faults.jsonl\n",
        out = options.out.display()
    ));
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_options_parse() {
        assert_eq!(parse_duration("60s"), Ok(Duration::from_secs(60)));
        assert_eq!(parse_duration("10m"), Ok(Duration::from_secs(600)));
        assert_eq!(parse_duration("90"), Ok(Duration::from_secs(90)));
        assert!(parse_duration("5s").is_err());
        assert!(parse_duration("soon").is_err());
        let args: Vec<String> = ["--duration", "2m", "--clients", "3", "--seed", "9"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let options = parse_args(&args).unwrap();
        assert_eq!(
            (
                options.duration,
                options.clients,
                options.seed,
                options.bundle
            ),
            (Duration::from_secs(120), 3, 9, false)
        );
        let bundle = parse_args(&["--bundle".into(), "--seed".into(), "4".into()]).unwrap();
        assert!(bundle.bundle && bundle.seed == 4);
        assert!(parse_args(&["--clients".into(), "0".into()]).is_err());
        assert!(parse_args(&["--bogus".into(), "1".into()]).is_err());
    }

    #[test]
    fn a_fault_that_misbehaved_is_a_violation() {
        let fault = |problem: Option<&str>| Fault {
            kind: FaultKind::InvalidPush,
            at: Duration::from_secs(3),
            detail: "istio-system.auth-gate".into(),
            problem: problem.map(str::to_string),
            active: None,
            span: None,
        };
        assert!(faults_behaved(&[fault(None)]).violations.is_empty());
        let check = faults_behaved(&[fault(None), fault(Some("an invalid config was Reloaded"))]);
        assert_eq!(check.violations.len(), 1);
        assert!(check.violations[0].contains("auth-gate"));
    }

    #[test]
    fn the_gateway_auth_gate_fetches_its_keys_from_the_jwks_server() {
        let (plugins, document) = with_remote_jwks(gateway_plugins(false).unwrap()).unwrap();
        let keys: Value = serde_json::from_str(&document).unwrap();
        assert!(keys["keys"].as_array().is_some_and(|k| !k.is_empty()));
        let auth_gate = plugins
            .iter()
            .find(|p| p.short_name() == "auth-gate")
            .unwrap();
        let config: Value = serde_json::from_str(&auth_gate.configuration).unwrap();
        let rule = &config["jwtRules"][0];
        assert_eq!(rule.get("jwks"), None);
        assert_eq!(rule["jwksUri"], JWKS_URI);
        assert_eq!(rule["jwksCluster"], JWKS_CLUSTER);
        assert_eq!(config["jwksRefreshSeconds"], JWKS_REFRESH_SECONDS);
        // The rest of the manifest's config is kept.
        assert!(config["policies"].as_array().is_some_and(|p| !p.is_empty()));
        let without = vec![Plugin::from_dist("auth-gate", json!({"jwtRules": []}))];
        assert!(with_remote_jwks(without).is_err());
    }

    #[test]
    fn the_bundles_auth_gate_section_fetches_its_keys_from_the_jwks_server() {
        let bundle = gateway_plugins(true).unwrap();
        let before: Value = serde_json::from_str(&bundle[0].configuration).unwrap();
        let (plugins, document) = with_remote_jwks(bundle).unwrap();
        assert_eq!(plugins.len(), 1);
        let config: Value = serde_json::from_str(&plugins[0].configuration).unwrap();
        let section = &config["authGate"];
        assert_eq!(section["jwtRules"][0]["jwksUri"], JWKS_URI);
        assert_eq!(section["jwksRefreshSeconds"], JWKS_REFRESH_SECONDS);
        assert_eq!(
            before["authGate"]["jwtRules"][0]["jwks"].as_str(),
            Some(document.as_str())
        );
        // The other sections are the manifest's.
        for (section, _) in faults::SECTIONS.iter().skip(1) {
            assert_eq!(config[section], before[section], "{section}");
        }
        let without = vec![Plugin::from_dist(
            faults::BUNDLE,
            json!({"pathAllowlist": {}}),
        )];
        assert!(with_remote_jwks(without).is_err());
    }

    #[test]
    fn counters_sum_their_series_by_outcome() {
        let text = "auth_gate_jwks_fetches_total{outcome=\"failure\"} 3\n\
                    auth_gate_jwks_fetches_total{outcome=\"success\"} 7\n\
                    auth_gate_jwks_fetches_total_other{outcome=\"failure\"} 100\n\
                    emotion_stats_top_label_total{model=\"m\",label=\"joy\"} 2\n\
                    emotion_stats_top_label_total{model=\"m\",label=\"fear\"} 5\n";
        assert_eq!(sum_series(text, JWKS_FETCHES, "failure"), 3);
        assert_eq!(sum_series(text, JWKS_FETCHES, "success"), 7);
        assert_eq!(sum_series(text, "emotion_stats_top_label_total", ""), 7);
    }

    #[test]
    fn envoy_check_flags_growth_beyond_the_bound() {
        assert!(envoy_survived(None, 100_000, 100_000 + MEMORY_BOUND_KIB)
            .violations
            .is_empty());
        assert_eq!(
            envoy_survived(None, 100_000, 100_001 + MEMORY_BOUND_KIB)
                .violations
                .len(),
            1
        );
    }
}
