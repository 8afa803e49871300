//! The performance targets (docs/performance.md), each judged on this run's medians, relative
//! to this run's floors: a plugin may cost the Wasm floor plus what its native twin costs for
//! the same job plus a margin, a share of what a proxied request costs (`floor-proxied`).

use super::cases::{BUNDLE, BUNDLE_EMPTY, BUNDLE_HOST_FLOOR, BUNDLE_SINGLES};
use super::memory::MemoryRun;
use super::paired::{PairedRun, PAIRS};
use super::rows::{Row, FLOOR};
use super::stats;
use super::workers::WorkersRun;

const PROXIED_FLOOR: &str = "floor-proxied";
use serde::Serialize;

/// The standalone case whose start the bundle's is judged against: auth-gate with the JWT rules
/// (the keys' tables are made at start) starts slowest of the four plugins, and the bundle's
/// auth-gate section has the same rules.
pub const BUNDLE_START_REFERENCE: &str = "auth-gate-rs256-cached";

/// One target and the numbers it was judged on.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Check {
    pub plugin: String,
    pub case: String,
    pub rule: String,
    pub value: Option<f64>,
    pub limit: Option<f64>,
    pub unit: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Pass,
    Fail,
    NotMeasured,
}

impl Outcome {
    pub fn label(self) -> &'static str {
        match self {
            Outcome::Pass => "PASS",
            Outcome::Fail => "FAIL",
            Outcome::NotMeasured => "n/a",
        }
    }
}

impl Check {
    /// Decimals worth printing: ratios need two, µs/MiB/KiB one.
    pub fn decimals(&self) -> usize {
        if self.unit == "x" {
            2
        } else {
            1
        }
    }

    pub fn outcome(&self) -> Outcome {
        match (self.value, self.limit) {
            (Some(value), Some(limit)) if value <= limit => Outcome::Pass,
            (Some(_), Some(_)) => Outcome::Fail,
            _ => Outcome::NotMeasured,
        }
    }
}

const KIB: f64 = 1024.0;

/// The plugins in verdict order: the standalone ones as [`harness_runner::PLUGINS`] lists them,
/// then `chained` (all four together), then the bundle's cases.
fn verdict_order() -> impl Iterator<Item = &'static str> {
    harness_runner::PLUGINS
        .into_iter()
        .filter(|plugin| !harness_runner::is_bundle(plugin))
        .chain(["chained", BUNDLE])
}

/// A number the report gives without a target.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Reported {
    pub case: String,
    pub what: String,
    pub value: Option<f64>,
    pub unit: String,
}

pub fn evaluate(rows: &[Row], paired: &[PairedRun]) -> Vec<Check> {
    let row = |name: &str| rows.iter().find(|r| r.case == name && r.skipped.is_none());
    let plus = |name: &str| row(name).and_then(|r| r.plus_cpu_us).map(|s| s.median);
    // The margins are shares of what a proxied request costs: the targets were set against a
    // floor that proxies (perf-baseline.md), and the direct-response floor is far cheaper.
    let proxied_cpu = row(PROXIED_FLOOR).and_then(|r| r.cpu_us_per_req);
    let share = |p: f64| proxied_cpu.map(|f| f * p);
    let sum = |terms: &[Option<f64>]| terms.iter().copied().sum::<Option<f64>>();
    let mut checks = Vec::new();
    let mut cpu_check = |plugin: &str, case: &str, rule: String, limit: Option<f64>| {
        checks.push(Check {
            plugin: plugin.to_string(),
            case: case.to_string(),
            rule,
            value: plus(case),
            limit,
            unit: "µs".to_string(),
        });
        limit
    };

    // Single-plugin CPU targets: Wasm floor + native twin's own cost + 5 % of the floor.
    let floor_plus_twin = |twin: &str| sum(&[plus("wasm-noop"), plus(twin), share(0.05)]);
    let path_limit = cpu_check(
        "path-allowlist",
        "path-allowlist",
        "+CPU ≤ wasm-noop + rbac-paths + 5 % floor-proxied".into(),
        floor_plus_twin("rbac-paths"),
    );
    cpu_check(
        "path-allowlist",
        "path-allowlist-1000",
        "+CPU ≤ path-allowlist (6 patterns) + 5 % floor-proxied".into(),
        sum(&[plus("path-allowlist"), share(0.05)]),
    );
    cpu_check(
        "auth-gate",
        "auth-gate-header",
        "+CPU ≤ wasm-noop + rbac-header + 5 % floor-proxied".into(),
        floor_plus_twin("rbac-header"),
    );
    let mut jwt_cached_limit = None;
    for alg in ["rs256", "es256"] {
        let limit = cpu_check(
            "auth-gate",
            &format!("auth-gate-{alg}-cached"),
            format!("+CPU ≤ wasm-noop + jwt-{alg}-cached + 5 % floor-proxied"),
            floor_plus_twin(&format!("jwt-{alg}-cached")),
        );
        if alg == "rs256" {
            jwt_cached_limit = limit;
        }
        cpu_check(
            "auth-gate",
            &format!("auth-gate-{alg}"),
            format!("first sight: +CPU ≤ 4 x jwt-{alg} (no cache)"),
            plus(&format!("jwt-{alg}")).map(|native| 4.0 * native),
        );
    }
    cpu_check(
        "auth-gate",
        "auth-gate-many-params",
        "2,900 query parameters: +CPU ≤ 10 x jwt-many-params".into(),
        plus("jwt-many-params").map(|native| 10.0 * native),
    );
    let ratelimit_limit = cpu_check(
        "local-ratelimit",
        "local-ratelimit",
        "+CPU ≤ wasm-noop + ratelimit + 5 % floor-proxied".into(),
        floor_plus_twin("ratelimit"),
    );
    let cpu = |name: &str| row(name).and_then(|r| r.cpu_us_per_req);
    checks.push(Check {
        plugin: "local-ratelimit".into(),
        case: "local-ratelimit-429".into(),
        rule: "a 429 costs ≤ 0.6 x the CPU of floor-proxied".into(),
        value: cpu("local-ratelimit-429")
            .zip(cpu(PROXIED_FLOOR))
            .map(|(rejected, proxied)| rejected / proxied),
        limit: Some(0.6),
        unit: "x".into(),
    });
    let mut cpu_check = |plugin: &str, case: &str, rule: String, value, limit: Option<f64>| {
        checks.push(Check {
            plugin: plugin.to_string(),
            case: case.to_string(),
            rule,
            value,
            limit,
            unit: "µs".to_string(),
        });
        limit
    };
    let emotion_limit = cpu_check(
        "emotion-stats",
        "emotion-stats",
        "+CPU ≤ wasm-body + 10 % floor-proxied".into(),
        plus("emotion-stats"),
        sum(&[plus("wasm-body"), share(0.10)]),
    );
    // Linear growth: the work above the body floor at 64 KiB at most the 261 B case's work
    // above its floor times the size ratio.
    let size_ratio = (64.0 * KIB) / 261.0;
    let small_work = sum(&[plus("emotion-stats"), plus("wasm-body").map(|v| -v)]);
    cpu_check(
        "emotion-stats",
        "emotion-stats-64k",
        format!("+CPU above wasm-body-64k ≤ {size_ratio:.0} x (261 B case above wasm-body) + 10 % floor-proxied"),
        sum(&[plus("emotion-stats-64k"), plus("wasm-body-64k").map(|v| -v)]),
        sum(&[small_work.map(|w| w.max(0.0) * size_ratio), share(0.10)]),
    );
    cpu_check(
        "chained",
        "chained",
        "+CPU ≤ sum of the single targets (path-allowlist, auth-gate RS256 cached, local-ratelimit, emotion-stats)".into(),
        plus("chained"),
        sum(&[path_limit, jwt_cached_limit, ratelimit_limit, emotion_limit]),
    );

    // Memory: the first plugin's VM may add 30 MiB, each further one 5 MiB.
    let floor_rss = row(FLOOR).and_then(|r| r.rss_idle_mib);
    let rss_growth = |case: &str| {
        row(case)
            .and_then(|r| r.rss_idle_mib)
            .zip(floor_rss)
            .map(|(rss, floor)| rss - floor)
    };
    for (plugin, case) in [
        ("path-allowlist", "path-allowlist"),
        ("auth-gate", "auth-gate-header"),
        ("local-ratelimit", "local-ratelimit"),
        ("emotion-stats", "emotion-stats"),
    ] {
        checks.push(Check {
            plugin: plugin.into(),
            case: case.into(),
            rule: "idle RSS ≤ floor + 30 MiB".into(),
            value: rss_growth(case),
            limit: Some(30.0),
            unit: "MiB".into(),
        });
    }
    checks.push(Check {
        plugin: "chained".into(),
        case: "chained".into(),
        rule: "idle RSS ≤ floor + 30 MiB + 3 x 5 MiB".into(),
        value: rss_growth("chained"),
        limit: Some(45.0),
        unit: "MiB".into(),
    });

    // Size: measured on the file, so known even when the case was skipped.
    for (plugin, case, limit_kib) in [
        ("path-allowlist", "path-allowlist", 150.0),
        ("auth-gate", "auth-gate-header", 550.0),
        ("local-ratelimit", "local-ratelimit", 150.0),
        ("emotion-stats", "emotion-stats", 150.0),
    ] {
        checks.push(Check {
            plugin: plugin.into(),
            case: case.into(),
            rule: format!(".wasm ≤ {limit_kib:.0} KiB"),
            value: rows
                .iter()
                .find(|r| r.case == case)
                .and_then(|r| r.wasm_bytes)
                .map(|b| b as f64 / KIB),
            limit: Some(limit_kib),
            unit: "KiB".into(),
        });
    }
    checks.extend(bundle_checks(rows, paired));
    checks
}

/// The bundle (one module, one VM for the four plugins) against the native chain and against
/// the plugins it links, each compared in the same run (a single section in alternating bursts).
fn bundle_checks(rows: &[Row], paired: &[PairedRun]) -> Vec<Check> {
    let row = |name: &str| rows.iter().find(|r| r.case == name && r.skipped.is_none());
    let plus = |name: &str| row(name).and_then(|r| r.plus_cpu_us).map(|s| s.median);
    let start = |name: &str| row(name).and_then(|r| r.start_plus_ms);
    let check = |case: &str, rule: String, value, limit, unit: &str| Check {
        plugin: BUNDLE.to_string(),
        case: case.to_string(),
        rule,
        value,
        limit,
        unit: unit.to_string(),
    };
    let mut checks = vec![check(
        "bundle",
        "+CPU ≤ 2 x native-chained".into(),
        plus("bundle"),
        plus("native-chained").map(|native| 2.0 * native),
        "µs",
    )];
    // One section: what the module a gateway with only that policy runs adds to the plugin's
    // own module, median of the alternating bursts' pairs; cheaper passes. The allowance is a
    // tenth of the plugin's +CPU over the rounds.
    for single in BUNDLE_SINGLES.iter().filter(|single| single.judged) {
        let (case, standalone) = (single.case, single.standalone);
        let difference = paired
            .iter()
            .find(|run| run.case == case && run.standalone == standalone)
            .and_then(|run| stats::median(&run.differences_us));
        checks.push(check(
            case,
            format!(
                "+CPU above {standalone} (alternating bursts, median of {PAIRS} pairs) ≤ 10 % \
                 of {standalone} +CPU"
            ),
            difference,
            plus(standalone).map(|own| 0.10 * own),
            "µs",
        ));
    }
    let floor_rss = row(FLOOR).and_then(|r| r.rss_idle_mib);
    checks.push(check(
        "bundle",
        "idle RSS ≤ floor + 30 MiB".into(),
        row("bundle")
            .and_then(|r| r.rss_idle_mib)
            .zip(floor_rss)
            .map(|(rss, floor)| rss - floor),
        Some(30.0),
        "MiB",
    ));
    checks.push(check(
        "bundle",
        format!("start ≤ 2 x {BUNDLE_START_REFERENCE}'s (each above the floor's)"),
        start("bundle"),
        start(BUNDLE_START_REFERENCE).map(|reference| 2.0 * reference),
        "ms",
    ));
    checks.push(check(
        "bundle",
        ".wasm ≤ the four standalone modules (chained's)".into(),
        wasm_kib(rows, "bundle"),
        wasm_kib(rows, "chained"),
        "KiB",
    ));
    checks
}

/// Size of a case's modules, measured on the files: known even when the case was skipped.
fn wasm_kib(rows: &[Row], case: &str) -> Option<f64> {
    rows.iter()
        .find(|r| r.case == case)
        .and_then(|r| r.wasm_bytes)
        .map(|b| b as f64 / KIB)
}

/// What the report gives about the bundle without a target: each bundle case's +CPU over its
/// standalone case's (`bundle`: over `chained`'s), where the bundle's CPU goes (its hostcalls
/// and callbacks without its logic, its callbacks without any section, the rest: its own code),
/// and what one module saves in size.
pub fn reported(rows: &[Row]) -> Vec<Reported> {
    let mut reported: Vec<Reported> = rows
        .iter()
        .filter(|r| r.plugins.iter().any(|p| harness_runner::is_bundle(p)))
        .filter_map(|r| {
            let standalone = r.standalone.as_ref()?;
            Some(Reported {
                case: r.case.clone(),
                what: format!("+CPU / {standalone} +CPU (median of the rounds' ratios)"),
                value: r.plus_cpu_x_standalone,
                unit: "x".into(),
            })
        })
        .collect();
    let plus = |name: &str| {
        rows.iter()
            .find(|r| r.case == name && r.skipped.is_none())
            .and_then(|r| r.plus_cpu_us)
            .map(|s| s.median)
    };
    if let Some(bundle) = plus("bundle") {
        let host = plus(BUNDLE_HOST_FLOOR);
        for (what, value) in [
            (
                format!("+CPU of its hostcalls and callbacks alone ({BUNDLE_HOST_FLOOR})"),
                host,
            ),
            (
                format!("+CPU of its callbacks, no section configured ({BUNDLE_EMPTY})"),
                plus(BUNDLE_EMPTY),
            ),
            (
                format!("+CPU of its own code: bundle minus {BUNDLE_HOST_FLOOR}"),
                host.map(|host| bundle - host),
            ),
        ] {
            reported.push(Reported {
                case: "bundle".into(),
                what,
                value,
                unit: "µs".into(),
            });
        }
    }
    if let Some((bundle, four)) = wasm_kib(rows, "bundle").zip(wasm_kib(rows, "chained")) {
        reported.push(Reported {
            case: "bundle".into(),
            what: format!(
                "size saved: the four standalone modules ({four:.1} KiB) minus {BUNDLE}.wasm ({bundle:.1} KiB)"
            ),
            value: Some(four - bundle),
            unit: "KiB".into(),
        });
        reported.push(Reported {
            case: "bundle".into(),
            what: "size saved, share of the four standalone modules".into(),
            value: (four > 0.0).then(|| 100.0 * (four - bundle) / four),
            unit: "%".into(),
        });
    }
    reported
}

/// What profiling found behind a target this code misses (docs/performance-results-2026-11-26.md,
/// "Where the time goes"): the table then says what remains and why, not only that it failed.
/// `None` where nothing was profiled.
pub fn known_cause(check: &Check) -> Option<&'static str> {
    const HOSTCALLS: &str = "the module's own code is a small share (perf: 8-13 % of Envoy's \
        CPU); the rest is Envoy's side of proxy-wasm: the SDK enters the VM at every stream \
        event, and every header read, counter and shared-data access is a hostcall, header \
        reads with a call back into the module to allocate";
    Some(match (check.unit.as_str(), check.case.as_str()) {
        ("µs", "bundle") => {
            "the split above: its hostcalls and callbacks alone (wasm-hostcalls) are about \
             half; the rest is the four plugins' own code under v8, spread over allocation, \
             the JSON reader, UTF-8 checks and the policy walk (./build.sh profile --functions \
             lists where)"
        }
        ("ms", "bundle") => {
            "v8 compiles the whole module when a VM starts: the bundle's 0.9 MB against one \
             plugin's 0.2-0.5 MB"
        }
        ("KiB", "bundle") => "the four plugins' code, less what they share (kit, serde, SDK)",
        ("µs", case) if case.starts_with("bundle-") => {
            "one module exports the callbacks of all four plugins: with one section Envoy still \
             enters it for every response callback, which the trimmed standalone module may not \
             export (the bundle's code, built at opt-level 2, makes up for part of it)"
        }
        ("µs", case) if case.starts_with("request-only-") => {
            "the VM entries are the standalone module's; the rest is model-gateway's dispatch \
             to its section and a module twice the size under v8"
        }
        ("µs", "path-allowlist" | "path-allowlist-1000") => {
            "one `:path` read and one counter per request; the decision costs 0.4 µs natively \
             for 6 or 1,000 patterns (tries); the rest is the SDK under v8 (sdk-passthrough), \
             and one run of this case to the next varies by ±10 µs on a shared VM"
        }
        ("µs", "local-ratelimit") => {
            "perf under load: the module's code ([JIT]) is 10 % of Envoy's CPU, about 6 µs; \
             the rest is in Envoy and v8 (one unsymbolized binary): the calls between host and \
             VM for the SDK's stream callbacks, the clock, `:path`, a shared-data read and \
             compare-and-swap, counters and x-ratelimit headers (turned off: no measurable \
             change)"
        }
        ("x", "local-ratelimit-429") => {
            "the bucket work of an allowed request plus a local reply sent from the VM"
        }
        ("µs", "auth-gate-header") => HOSTCALLS,
        ("µs", "auth-gate-rs256-cached" | "auth-gate-es256-cached") => {
            "as the header rule (one get_map of the request headers, counters), plus the \
             token's keyed hash and a compare with the cached token"
        }
        ("µs", "auth-gate-rs256") => {
            "jws-signatures' Montgomery arithmetic: about 105 µs per RS256 verification under \
             v8 (node, TurboFan), 18 multiplications of 2048-bit numbers as 32x32-bit products, \
             the widest Wasm has without SIMD; BoringSSL's assembly in jwt_authn takes about \
             20 µs; the rest is decoding the token and the SDK"
        }
        ("µs", "auth-gate-es256") => {
            "P-256 in p256's field arithmetic (opt-level 3) with per-key tables of multiples: \
             at most 86 additions, a field and a scalar inversion per verification"
        }
        ("µs", "auth-gate-many-params") => {
            "the 55 KiB `:path` copied into the VM and its query scanned once for the first \
             `access_token` (each name percent-decoded); the token fails to decode at once"
        }
        ("µs", "emotion-stats") => {
            "the SDK's entries for the response headers and each body chunk, the JSON reading \
             of the prediction, a histogram sample and a counter per answer"
        }
        ("µs", "emotion-stats-64k") => {
            "the module's own reading of the batch (77 % of the CPU; code built for size), and \
             one histogram sample, a hostcall, per instance"
        }
        ("µs", "chained") => "four VMs: the SDK's entries and the hostcalls of all four",
        ("MiB", "bundle") => {
            "about 19 MiB for any module (v8's own pages of Envoy's binary, the VMs' heaps) and \
             35 MiB per MiB of .wasm: its bytes' copies while loading, v8's compiled code, and \
             the memory compiling it took, kept by tcmalloc; the bundle holds four plugins' \
             code, a fifth of it their configurations' deserialization"
        }
        ("MiB", _) => {
            "v8's compiled code and heap for the module: grows with the .wasm size (the chain: \
             four modules)"
        }
        ("KiB", "auth-gate-header") => {
            "the name section of an unstripped build: configuration deserialization (the Istio \
             policy types) about 75 KiB, Ed25519 38, crypto-bigint 28, serde_json 28, the \
             proxy-wasm SDK 24, P-256 28; the 12 algorithms are documented"
        }
        ("KiB", _) => {
            "twiggy: no single part left: configuration types' deserialization about 20 KiB, \
             core formatting 25, std (panic hook, io errors) 20, the proxy-wasm SDK 20, static \
             data 28, alloc/dlmalloc/hashbrown 28"
        }
        _ => return None,
    })
}

/// plugins/local-ratelimit/README.md, *Memory*: "`max_keys = 10000` is about 2 MiB, made once".
const DOCUMENTED_TABLE_MIB: f64 = 2.0;

/// The distinct-keys run may grow by the documented table size + 10 %, plus what the same
/// load grows a plugin-less Envoy by (the floor's RSS after load over idle).
pub fn memory_checks(memory: &[MemoryRun], rows: &[Row]) -> Vec<Check> {
    let load_growth = rows
        .iter()
        .find(|r| r.case == FLOOR)
        .and_then(|r| r.rss_after_mib.zip(r.rss_idle_mib))
        .map(|(after, idle)| (after - idle).max(0.0));
    memory
        .iter()
        .filter(|run| run.case == "ratelimit-keys")
        .map(|run| Check {
            plugin: "local-ratelimit".into(),
            case: run.case.clone(),
            rule: format!(
                "RSS growth over {} keys ≤ documented table ({DOCUMENTED_TABLE_MIB} MiB) + 10 % + the floor's growth under load",
                run.distinct
            ),
            value: run
                .rss
                .map(|rss| (rss.after_kib as f64 - rss.idle_kib as f64) / KIB),
            limit: load_growth.map(|g| DOCUMENTED_TABLE_MIB * 1.1 + g),
            unit: "MiB".into(),
        })
        .collect()
}

/// A new token costs one signature check however many workers meet it (the verified-token
/// cache shared between workers).
pub fn worker_checks(runs: &[WorkersRun]) -> Vec<Check> {
    runs.iter()
        .map(|run| Check {
            plugin: "auth-gate".into(),
            case: run.case.clone(),
            rule: "signature checks per new token with 2 workers ≤ 1".into(),
            value: run
                .signature_checks
                .map(|checks| checks as f64 / run.tokens.max(1) as f64),
            limit: Some(1.0),
            unit: "checks/token".into(),
        })
        .collect()
}

/// One line per plugin: PASS when every target was met, FAIL with the missed ones, else
/// INCOMPLETE with what could not be measured and why.
pub fn verdicts(checks: &[Check], rows: &[Row]) -> Vec<String> {
    verdict_order()
        .map(|plugin| {
            let own: Vec<&Check> = checks.iter().filter(|c| c.plugin == plugin).collect();
            let count = |o: Outcome| own.iter().filter(|c| c.outcome() == o).count();
            let (met, missed, open) = (
                count(Outcome::Pass),
                count(Outcome::Fail),
                count(Outcome::NotMeasured),
            );
            let verdict = match (missed, open) {
                (0, 0) => "PASS",
                (0, _) => "INCOMPLETE",
                _ => "FAIL",
            };
            let mut line =
                format!("{plugin}: {verdict} ({met} met, {missed} missed, {open} not measured)");
            for check in own.iter().filter(|c| c.outcome() == Outcome::Fail) {
                line.push_str(&format!(
                    "; {} {} {:.*} > {:.*} {}",
                    check.case,
                    check.rule.split(" ≤").next().unwrap_or_default(),
                    check.decimals(),
                    check.value.unwrap_or_default(),
                    check.decimals(),
                    check.limit.unwrap_or_default(),
                    check.unit
                ));
            }
            let mut skipped: Vec<String> = rows
                .iter()
                // The bundle's line holds the request-only module's checks too.
                .filter(|r| {
                    let bundle_line = plugin == BUNDLE;
                    let loads =
                        |p: &String| p == plugin || (bundle_line && harness_runner::is_bundle(p));
                    r.plugins.iter().any(loads) || r.case == plugin
                })
                .filter_map(|r| {
                    r.skipped
                        .as_ref()
                        .map(|why| format!("{} skipped: {why}", r.case))
                })
                .collect();
            skipped.dedup();
            if let Some(first) = skipped.first() {
                line.push_str(&format!("; {first}"));
                if skipped.len() > 1 {
                    line.push_str(&format!(" (and {} more)", skipped.len() - 1));
                }
            }
            line
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::super::cases::REQUEST_ONLY_BUNDLE;
    use super::super::rows::rows;
    use super::super::CaseRecord;
    use super::*;

    fn record(name: &str, cpus: &[f64]) -> CaseRecord {
        let mut record = super::super::rows::tests::record(name, None, cpus);
        if name == "path-allowlist" {
            record.wasm_bytes = Some(100 * 1024);
        }
        record
    }

    fn find<'a>(checks: &'a [Check], case: &str, rule_start: &str) -> &'a Check {
        checks
            .iter()
            .find(|c| c.case == case && c.rule.starts_with(rule_start))
            .unwrap_or_else(|| panic!("no check {case} {rule_start}"))
    }

    #[test]
    fn plugin_targets_add_the_wasm_floor_the_twin_and_a_share_of_the_floor() {
        let cases = vec![
            record("floor", &[100.0, 100.0, 100.0]),
            record("floor-proxied", &[150.0, 150.0, 150.0]),
            record("wasm-noop", &[120.0, 120.0, 120.0]),
            record("rbac-paths", &[110.0, 110.0, 110.0]),
            // 20 (noop) + 10 (twin) + 7.5 (5 % of floor-proxied's 150) = 37.5: +37 passes.
            record("path-allowlist", &[137.0, 137.0, 137.0]),
            // ≤ 37 + 7.5: +45 fails.
            record("path-allowlist-1000", &[145.0, 145.0, 145.0]),
            // 93 / 150 = 0.62 of floor-proxied: just over 0.6.
            record("local-ratelimit-429", &[93.0, 93.0, 93.0]),
        ];
        let rows = rows(&cases);
        let checks = evaluate(&rows, &[]);
        let allowlist = find(&checks, "path-allowlist", "+CPU");
        assert_eq!((allowlist.value, allowlist.limit), (Some(37.0), Some(37.5)));
        assert_eq!(allowlist.outcome(), Outcome::Pass);
        let thousand = find(&checks, "path-allowlist-1000", "+CPU");
        assert_eq!((thousand.value, thousand.limit), (Some(45.0), Some(44.5)));
        assert_eq!(thousand.outcome(), Outcome::Fail);
        let rejected = find(&checks, "local-ratelimit-429", "a 429");
        assert_eq!(rejected.value, Some(0.62));
        assert_eq!(rejected.outcome(), Outcome::Fail);
        let size = find(&checks, "path-allowlist", ".wasm");
        assert_eq!((size.value, size.outcome()), (Some(100.0), Outcome::Pass));
        // Nothing measured for auth-gate's header case: not a pass, not a fail.
        assert_eq!(
            find(&checks, "auth-gate-header", "+CPU").outcome(),
            Outcome::NotMeasured
        );

        let lines = verdicts(&checks, &rows);
        assert!(lines[0].starts_with("path-allowlist: FAIL"), "{}", lines[0]);
        assert!(
            lines[0].contains("path-allowlist-1000 +CPU 45.0 > 44.5 µs"),
            "{}",
            lines[0]
        );
        assert!(
            lines[1].starts_with("auth-gate: INCOMPLETE"),
            "{}",
            lines[1]
        );
        // Ratios keep two decimals, so a near miss does not read "0.6 > 0.6".
        assert!(
            lines[2].contains("local-ratelimit-429 a 429 costs 0.62 > 0.60 x"),
            "{}",
            lines[2]
        );
    }

    #[test]
    fn every_target_has_a_profiled_cause_to_show_when_missed() {
        let checks = evaluate(&rows(&[record("floor", &[100.0])]), &[]);
        assert!(checks.len() >= 20);
        for check in &checks {
            assert!(
                known_cause(check).is_some(),
                "{} {}: no cause",
                check.case,
                check.rule
            );
        }
        let rs256 = find(&checks, "auth-gate-rs256", "first sight");
        assert!(known_cause(rs256).unwrap().contains("Montgomery"));
    }

    #[test]
    fn jwt_first_sight_is_judged_against_four_times_native() {
        let cases = vec![
            record("floor", &[100.0]),
            record("jwt-rs256", &[200.0]),
            record("auth-gate-rs256", &[450.0]),
        ];
        let checks = evaluate(&rows(&cases), &[]);
        let first_sight = find(&checks, "auth-gate-rs256", "first sight");
        assert_eq!(
            (first_sight.value, first_sight.limit),
            (Some(350.0), Some(400.0))
        );
        assert_eq!(first_sight.outcome(), Outcome::Pass);
    }

    #[test]
    fn chained_limit_is_the_sum_of_the_single_limits() {
        let cases = vec![
            record("floor", &[100.0]),
            record("floor-proxied", &[100.0]),
            record("wasm-noop", &[120.0]),
            record("wasm-body", &[130.0]),
            record("rbac-paths", &[110.0]),
            record("jwt-rs256-cached", &[125.0]),
            record("ratelimit", &[105.0]),
            record("chained", &[220.0]),
        ];
        let checks = evaluate(&rows(&cases), &[]);
        let chained = find(&checks, "chained", "+CPU");
        // (20+10+5) + (20+25+5) + (20+5+5) + (30+10) = 155
        assert_eq!((chained.value, chained.limit), (Some(120.0), Some(155.0)));
        assert_eq!(chained.outcome(), Outcome::Pass);
    }

    /// A case of model-gateway-request-only, compared with `standalone`.
    fn request_only(name: &str, standalone: &str, cpus: &[f64]) -> CaseRecord {
        let mut record = bundled(name, standalone, cpus);
        record.plugins = vec![REQUEST_ONLY_BUNDLE.into()];
        record
    }

    /// A bundle case: loads model-gateway, compared with `standalone`.
    fn bundled(name: &str, standalone: &str, cpus: &[f64]) -> CaseRecord {
        let mut record = record(name, cpus);
        record.plugins = vec![BUNDLE.into()];
        record.standalone = Some(standalone.into());
        record
    }

    #[test]
    fn the_report_splits_the_bundle_into_its_hostcalls_and_its_own_code() {
        let mut empty = record(BUNDLE_EMPTY, &[108.0]);
        empty.plugins = vec![BUNDLE.into()];
        let cases = vec![
            record("floor", &[100.0]),
            record(BUNDLE_HOST_FLOOR, &[115.0]),
            empty,
            bundled("bundle", "chained", &[160.0]),
        ];
        let reported = reported(&rows(&cases));
        let value = |part: &str| {
            reported
                .iter()
                .find(|r| r.case == "bundle" && r.unit == "µs" && r.what.contains(part))
                .unwrap_or_else(|| panic!("{part}: {reported:?}"))
                .value
        };
        assert_eq!(value("hostcalls and callbacks alone"), Some(15.0));
        assert_eq!(value("no section"), Some(8.0));
        assert_eq!(value("own code"), Some(45.0));
        // Without the host floor in the run, the own code is not guessed.
        let without = reported_without(&cases, BUNDLE_HOST_FLOOR);
        assert!(without
            .iter()
            .any(|r| r.what.contains("own code") && r.value.is_none()));
    }

    fn reported_without(cases: &[CaseRecord], name: &str) -> Vec<Reported> {
        let kept: Vec<CaseRecord> = cases.iter().filter(|c| c.name != name).cloned().collect();
        reported(&rows(&kept))
    }

    #[test]
    fn bundle_may_cost_twice_the_native_chain_and_reports_its_ratio_to_chained() {
        let cases = vec![
            record("floor", &[100.0, 100.0, 100.0]),
            record("native-chained", &[130.0, 131.0, 129.0]),
            record("chained", &[220.0, 200.0, 210.0]),
            // +60, +61, +59 against 2 x 30 = 60: the median, 60, passes.
            bundled("bundle", "chained", &[160.0, 161.0, 159.0]),
        ];
        let rows = rows(&cases);
        let checks = evaluate(&rows, &[]);
        let cpu = find(&checks, "bundle", "+CPU");
        assert_eq!(cpu.plugin, BUNDLE);
        assert_eq!((cpu.value, cpu.limit), (Some(60.0), Some(60.0)));
        assert_eq!(cpu.outcome(), Outcome::Pass);
        // Ratios per round: 60/120, 61/100, 59/110: the median is 59/110, not the medians'
        // ratio 60/110.
        let reported = reported(&rows);
        let ratio = reported
            .iter()
            .find(|r| r.case == "bundle" && r.unit == "x")
            .unwrap();
        assert!((ratio.value.unwrap() - 59.0 / 110.0).abs() < 1e-9);
        assert!(ratio.what.contains("chained"), "{}", ratio.what);
        let lines = verdicts(&checks, &rows);
        let bundle = lines.iter().find(|l| l.starts_with(BUNDLE)).unwrap();
        // CPU and idle RSS met; the single sections, start and size not in this run.
        assert!(
            bundle.starts_with("model-gateway: INCOMPLETE (2 met, 0 missed, 6 not measured)"),
            "{bundle}"
        );
    }

    #[test]
    fn one_section_is_judged_on_the_bursts_paired_difference_against_ten_percent() {
        let cases = vec![
            record("floor", &[100.0, 150.0, 120.0]),
            // +20 in each round: allowed 2.0.
            record("path-allowlist", &[120.0, 170.0, 140.0]),
            // The rounds say +1, +3, +2 (median 2.0): the pairs decide.
            request_only(
                "request-only-path-allowlist",
                "path-allowlist",
                &[121.0, 173.0, 142.0],
            ),
            // In model-gateway: reported, not judged.
            bundled(
                "bundle-path-allowlist",
                "path-allowlist",
                &[130.0, 180.0, 150.0],
            ),
            record("local-ratelimit", &[140.0, 190.0, 160.0]),
            bundled(
                "bundle-local-ratelimit",
                "local-ratelimit",
                &[145.0, 195.0, 165.0],
            ),
            record("emotion-stats", &[130.0, 180.0, 150.0]),
            bundled(
                "bundle-emotion-stats",
                "emotion-stats",
                &[125.0, 175.0, 145.0],
            ),
        ];
        let pairs = |case: &str, standalone: &str, differences_us: &[f64]| PairedRun {
            case: case.into(),
            standalone: standalone.into(),
            differences_us: differences_us.to_vec(),
            skipped: None,
        };
        let paired = [
            // Median 2.0 ≤ 10 % of +20: passes, though one pair was far off.
            pairs(
                "request-only-path-allowlist",
                "path-allowlist",
                &[1.0, 2.0, 30.0, 2.0, 3.0],
            ),
            // Median 5.0 > 4.0 (10 % of +40): fails.
            pairs(
                "bundle-local-ratelimit",
                "local-ratelimit",
                &[5.0, 4.5, 6.0, 5.0],
            ),
            // Cheaper than the plugin's own module: passes.
            pairs("bundle-emotion-stats", "emotion-stats", &[-5.0, -4.0, -6.0]),
            // Pairs against another case are not this target's.
            pairs("request-only-auth-gate", "path-allowlist", &[0.0]),
        ];
        let rows = rows(&cases);
        let checks = evaluate(&rows, &paired);
        let allowlist = find(&checks, "request-only-path-allowlist", "+CPU");
        assert_eq!((allowlist.value, allowlist.limit), (Some(2.0), Some(2.0)));
        assert_eq!(allowlist.outcome(), Outcome::Pass);
        let ratelimit = find(&checks, "bundle-local-ratelimit", "+CPU");
        assert_eq!((ratelimit.value, ratelimit.limit), (Some(5.0), Some(4.0)));
        assert_eq!(ratelimit.outcome(), Outcome::Fail);
        let emotion = find(&checks, "bundle-emotion-stats", "+CPU");
        assert_eq!(emotion.value, Some(-5.0));
        assert_eq!(emotion.outcome(), Outcome::Pass);
        // auth-gate's standalone case is not in this run: not measured.
        assert_eq!(
            find(&checks, "request-only-auth-gate", "+CPU").outcome(),
            Outcome::NotMeasured
        );
        // Without pairs (a smoke-sized run), the rounds do not stand in for them.
        let unpaired = evaluate(&rows, &[]);
        assert_eq!(
            find(&unpaired, "request-only-path-allowlist", "+CPU").outcome(),
            Outcome::NotMeasured
        );
        assert!(checks
            .iter()
            .all(|c| !["bundle-path-allowlist", "bundle-auth-gate"].contains(&c.case.as_str())));
        let unjudged = reported(&rows)
            .into_iter()
            .find(|r| r.case == "bundle-path-allowlist")
            .unwrap();
        assert_eq!(unjudged.value, Some(1.5));
        let lines = verdicts(&checks, &rows);
        let bundle = lines.iter().find(|l| l.starts_with(BUNDLE)).unwrap();
        assert!(bundle.contains(": FAIL"), "{bundle}");
        assert!(
            bundle.contains(
                "bundle-local-ratelimit +CPU above local-ratelimit (alternating bursts, median \
                 of 12 pairs) 5.0 > 4.0 µs"
            ),
            "{bundle}"
        );
        let ratio = reported(&rows)
            .into_iter()
            .find(|r| r.case == "bundle-local-ratelimit")
            .unwrap();
        assert_eq!(ratio.value, Some(45.0 / 40.0));
    }

    #[test]
    fn bundle_start_memory_and_size_are_judged_against_one_plugin_and_the_four_modules() {
        // In the run with the bundle's cases (`--only model-gateway`) by being compared with one.
        assert!(BUNDLE_SINGLES
            .iter()
            .any(|single| single.standalone == BUNDLE_START_REFERENCE));
        let mut reference = record(BUNDLE_START_REFERENCE, &[140.0]);
        reference.samples[0].start_ms = 1_000.0;
        let mut chained = record("chained", &[200.0]);
        chained.wasm_bytes = Some(1_200 * 1024);
        let mut bundle = bundled("bundle", "chained", &[180.0]);
        bundle.wasm_bytes = Some(700 * 1024);
        bundle.samples[0].start_ms = 1_900.0;
        bundle.samples[0].rss_idle_kib = (65 + 31) * 1024;
        let mut floor = record("floor", &[100.0]);
        floor.samples[0].start_ms = 100.0;
        let rows = rows(&[floor, reference, chained, bundle]);
        let checks = evaluate(&rows, &[]);
        // Above the floor's start: 1,800 ≤ 2 x 900.
        let start = find(&checks, "bundle", "start");
        assert_eq!((start.value, start.limit), (Some(1_800.0), Some(1_800.0)));
        assert_eq!(start.outcome(), Outcome::Pass);
        let rss = find(&checks, "bundle", "idle RSS");
        assert_eq!((rss.value, rss.limit), (Some(31.0), Some(30.0)));
        assert_eq!(rss.outcome(), Outcome::Fail);
        let size = find(&checks, "bundle", ".wasm");
        assert_eq!((size.value, size.limit), (Some(700.0), Some(1_200.0)));
        assert_eq!(size.outcome(), Outcome::Pass);
        let reported = reported(&rows);
        let saved = |unit: &str| {
            reported
                .iter()
                .find(|r| r.case == "bundle" && r.unit == unit)
                .and_then(|r| r.value)
        };
        assert_eq!(saved("KiB"), Some(500.0));
        assert!((saved("%").unwrap() - 100.0 * 500.0 / 1_200.0).abs() < 1e-9);
    }

    #[test]
    fn distinct_keys_may_grow_by_the_documented_table_and_the_floors_own_growth() {
        // The floor grows by 1 MiB under load (66 - 65).
        let rows = rows(&[record("floor", &[100.0])]);
        let run = |after_mib: u64| MemoryRun {
            case: "ratelimit-keys".into(),
            what: String::new(),
            distinct: 1_000_000,
            rss: Some(super::super::memory::Rss {
                idle_kib: 90 * 1024,
                tenth_kib: 92 * 1024,
                after_kib: after_mib * 1024,
                expected_share: 1.0,
            }),
            skipped: None,
        };
        let checks = memory_checks(&[run(93)], &rows);
        assert_eq!(checks.len(), 1);
        assert_eq!(checks[0].value, Some(3.0));
        assert!((checks[0].limit.unwrap() - 3.2).abs() < 1e-9);
        assert_eq!(checks[0].outcome(), Outcome::Pass);
        assert_eq!(memory_checks(&[run(94)], &rows)[0].outcome(), Outcome::Fail);
    }

    #[test]
    fn skipped_cases_are_named_in_the_verdict() {
        let mut skipped = record("emotion-stats", &[]);
        skipped.plugins = vec!["emotion-stats".into()];
        skipped.skipped = Some("unknown field `paths`".into());
        let cases = vec![record("floor", &[100.0]), skipped];
        let rows = rows(&cases);
        let lines = verdicts(&evaluate(&rows, &[]), &rows);
        let emotion = lines
            .iter()
            .find(|l| l.starts_with("emotion-stats"))
            .unwrap();
        assert!(emotion.contains("INCOMPLETE"), "{emotion}");
        assert!(
            emotion.contains("emotion-stats skipped: unknown field `paths`"),
            "{emotion}"
        );
    }
}
