//! Each judged single-section case against its plugin's own module, in alternating bursts on
//! two Envoys started side by side. Why: in the rounds the two run several seconds apart, each
//! in a fresh Envoy, and on a shared VM the host's load moves between them by more than the
//! 10 % of a plugin's cost the target allows. Here the two bursts of a pair start 1.3 s apart and
//! the order alternates (standalone first, then the bundle first), so a drift over a pair
//! cancels from one pair to the next; the target takes the median of the pairs' differences.

use super::cases::{Case, BUNDLE_SINGLES};
use super::{saturate, start_checked, CaseRecord, Checked};
use harness_runner::Result;
use serde::Serialize;
use std::path::Path;
use std::time::Duration;

/// Pairs of bursts per comparison.
pub const PAIRS: usize = 12;
const WARM_UP: Duration = Duration::from_millis(300);
const BURST: Duration = Duration::from_secs(1);

/// One comparison: `case` (a bundle with one section) against `standalone`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PairedRun {
    pub case: String,
    pub standalone: String,
    /// Per pair: CPU µs per request of `case` minus that of `standalone`.
    pub differences_us: Vec<f64>,
    /// Why there are no numbers (an Envoy refused its configuration or answered wrong).
    pub skipped: Option<String>,
}

/// The judged single-section cases whose case and standalone case were both selected and
/// measured in the rounds.
pub fn run_all(
    selected: &[Case],
    records: &[CaseRecord],
    load_cpu: Option<usize>,
    scratch: &Path,
) -> Result<Vec<PairedRun>> {
    let measured = |name: &str| {
        let record = records.iter().find(|r| r.name == name);
        let case = selected.iter().find(|c| c.name == name);
        case.filter(|_| record.is_some_and(|r| r.skipped.is_none()))
    };
    let mut runs = Vec::new();
    for single in BUNDLE_SINGLES.iter().filter(|single| single.judged) {
        let (Some(case), Some(standalone)) = (measured(single.case), measured(single.standalone))
        else {
            continue;
        };
        if runs.is_empty() {
            println!("\nsingle sections against their plugins' modules: {PAIRS} pairs of bursts");
        }
        let (differences_us, skipped) = match compare(case, standalone, load_cpu, scratch)? {
            Ok(differences_us) => (differences_us, None),
            Err(reason) => (Vec::new(), Some(reason)),
        };
        match (&skipped, super::stats::spread(&differences_us)) {
            (Some(reason), _) => println!("  {:<28} skipped: {reason}", case.name),
            (None, Some(d)) => println!(
                "  {:<28} {:+.1} µs/req against {} (pairs: {:+.1} to {:+.1})",
                case.name, d.median, standalone.name, d.min, d.max
            ),
            (None, None) => {}
        }
        runs.push(PairedRun {
            case: case.name.to_string(),
            standalone: standalone.name.to_string(),
            differences_us,
            skipped,
        });
    }
    Ok(runs)
}

/// The pairs' differences, or why one of the two Envoys did not run as its case expects.
fn compare(
    case: &Case,
    standalone: &Case,
    load_cpu: Option<usize>,
    scratch: &Path,
) -> Result<std::result::Result<Vec<f64>, String>> {
    let own = match start_checked(standalone)? {
        Ok(checked) => checked,
        Err(reason) => return Ok(Err(format!("{}: {reason}", standalone.name))),
    };
    let bundled = match start_checked(case)? {
        Ok(checked) => checked,
        Err(reason) => return Ok(Err(format!("{}: {reason}", case.name))),
    };
    let burst = |checked: &Checked, of: &Case| {
        saturate(
            &checked.envoy,
            of,
            (WARM_UP, BURST),
            load_cpu,
            scratch,
            None,
        )
        .map(|s| s.cpu_us_per_req)
    };
    let mut differences_us = Vec::with_capacity(PAIRS);
    for pair in 0..PAIRS {
        let (own_cpu, bundled_cpu) = if pair % 2 == 0 {
            let own_cpu = burst(&own, standalone)?;
            (own_cpu, burst(&bundled, case)?)
        } else {
            let bundled_cpu = burst(&bundled, case)?;
            (burst(&own, standalone)?, bundled_cpu)
        };
        differences_us.push(bundled_cpu - own_cpu);
    }
    Ok(Ok(differences_us))
}
