//! The table's rows: each case's medians over rounds, every number relative to the floor of
//! the same round (and to the native twin's, where the case has one).

use super::stats::{self, Spread};
use super::{CaseRecord, Sample};
use serde::Serialize;

pub const FLOOR: &str = "floor";

/// One row of the table: a case's medians over rounds.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Row {
    pub case: String,
    pub what: String,
    pub twin: Option<String>,
    /// The plugin case a bundle case is compared with.
    pub standalone: Option<String>,
    pub plugins: Vec<String>,
    pub skipped: Option<String>,
    pub rounds_measured: usize,
    pub cpu_us_per_req: Option<f64>,
    /// CPU µs per request above the floor of the same round.
    pub plus_cpu_us: Option<Spread>,
    pub cpu_x_floor: Option<f64>,
    /// Total CPU per request over the native twin's, same round.
    pub cpu_x_twin: Option<f64>,
    /// CPU µs per request above the standalone case's, same round (the floor cancels out).
    pub plus_cpu_vs_standalone_us: Option<f64>,
    /// +CPU over the standalone case's +CPU, each against the floor of the same round.
    pub plus_cpu_x_standalone: Option<f64>,
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

/// Rows for every case; floor-relative numbers only from rounds where both were measured.
pub fn rows(cases: &[CaseRecord]) -> Vec<Row> {
    let floor = cases
        .iter()
        .find(|c| c.name == FLOOR)
        .map(|c| c.samples.as_slice())
        .unwrap_or_default();
    let samples_of = |name: &Option<String>| {
        name.as_ref()
            .and_then(|n| cases.iter().find(|c| &c.name == n))
            .map(|c| c.samples.as_slice())
            .unwrap_or_default()
    };
    cases
        .iter()
        .map(|case| {
            let mut row = row(case, floor, samples_of(&case.twin));
            let standalone = samples_of(&case.standalone);
            row.plus_cpu_vs_standalone_us =
                stats::median(&paired(&case.samples, standalone, |s, other| {
                    s.cpu_us_per_req - other.cpu_us_per_req
                }));
            let plus = |s: &Sample| {
                floor
                    .iter()
                    .find(|f| f.round == s.round)
                    .map(|f| s.cpu_us_per_req - f.cpu_us_per_req)
            };
            row.plus_cpu_x_standalone =
                stats::median(&paired(&case.samples, standalone, |s, other| {
                    match (plus(s), plus(other)) {
                        (Some(own), Some(theirs)) => own / theirs,
                        _ => f64::NAN,
                    }
                }));
            row
        })
        .collect()
}

/// `f` of each of `samples` with the sample of `other` from the same round.
fn paired(samples: &[Sample], other: &[Sample], f: impl Fn(&Sample, &Sample) -> f64) -> Vec<f64> {
    samples
        .iter()
        .filter_map(|s| other.iter().find(|o| o.round == s.round).map(|o| f(s, o)))
        .collect()
}

fn row(case: &CaseRecord, floor: &[Sample], twin: &[Sample]) -> Row {
    let own = |f: fn(&Sample) -> f64| -> Option<f64> {
        stats::median(&case.samples.iter().map(f).collect::<Vec<_>>())
    };
    let vs = |other: &[Sample], f: fn(&Sample, &Sample) -> f64| paired(&case.samples, other, f);
    let median_vs = |other: &[Sample], f: fn(&Sample, &Sample) -> f64| stats::median(&vs(other, f));
    Row {
        case: case.name.clone(),
        what: case.what.clone(),
        twin: case.twin.clone(),
        standalone: case.standalone.clone(),
        plugins: case.plugins.clone(),
        skipped: case.skipped.clone(),
        rounds_measured: case.samples.len(),
        cpu_us_per_req: own(|s| s.cpu_us_per_req),
        plus_cpu_us: stats::spread(&vs(floor, |s, f| s.cpu_us_per_req - f.cpu_us_per_req)),
        cpu_x_floor: median_vs(floor, |s, f| s.cpu_us_per_req / f.cpu_us_per_req),
        cpu_x_twin: median_vs(twin, |s, t| s.cpu_us_per_req / t.cpu_us_per_req),
        // Set by `rows`, which knows the standalone case.
        plus_cpu_vs_standalone_us: None,
        plus_cpu_x_standalone: None,
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
            standalone: None,
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
    fn bundle_cases_are_paired_with_their_standalone_case_round_by_round() {
        // The standalone case is 20 above the floor in each round, the bundle 21, 22, 23:
        // differences 1, 2, 3 (median 2) whatever the floor does; ratios 1.05, 1.10, 1.15.
        let mut bundle = record("bundle-plugin", None, &[121.0, 172.0, 143.0]);
        bundle.standalone = Some("plugin".into());
        let cases = vec![
            record("floor", None, &[100.0, 150.0, 120.0]),
            record("plugin", None, &[120.0, 170.0, 140.0]),
            bundle,
        ];
        let rows = rows(&cases);
        let bundle = &rows[2];
        assert_eq!(bundle.standalone.as_deref(), Some("plugin"));
        assert!((bundle.plus_cpu_vs_standalone_us.unwrap() - 2.0).abs() < 1e-9);
        assert!((bundle.plus_cpu_x_standalone.unwrap() - 1.10).abs() < 1e-9);
        assert_eq!(rows[1].plus_cpu_vs_standalone_us, None);
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
}
