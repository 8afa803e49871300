//! The invariants of a chaos run, checked after it from the client records and the upstream's
//! own log. Each check says what it covered and lists every violation it found.

use super::faults::Window;
use super::traffic::{Kind, Record, PREDICT_V1};
use super::upstream::Received;
use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

/// A request not answered (nor failed) within this is hung. Envoy's route timeout is 30 s and
/// the client gives up reading after 30 s, so a stuck stream shows up as a violation here.
pub const HANG_BOUND: Duration = Duration::from_secs(10);

/// One invariant's result.
#[derive(Debug, Clone)]
pub struct Check {
    pub name: &'static str,
    /// What was covered, with numbers.
    pub summary: String,
    pub violations: Vec<String>,
}

/// At most this many violations are listed per check (the count is always complete).
const LISTED: usize = 10;

impl Check {
    fn new(name: &'static str, summary: String, violations: Vec<String>) -> Self {
        Check {
            name,
            summary,
            violations,
        }
    }

    pub fn render(&self) -> String {
        let mark = if self.violations.is_empty() {
            "ok  "
        } else {
            "FAIL"
        };
        let mut text = format!("  {mark} {}: {}", self.name, self.summary);
        for violation in self.violations.iter().take(LISTED) {
            text.push_str(&format!("\n         violation: {violation}"));
        }
        if self.violations.len() > LISTED {
            text.push_str(&format!(
                "\n         … and {} more",
                self.violations.len() - LISTED
            ));
        }
        text
    }
}

fn chaos_id(received: &Received) -> Option<u64> {
    received.header("x-chaos-id").and_then(|v| v.parse().ok())
}

/// Nothing denied by the policy (outside the allowlist, no or forged token, predict without
/// `X-Test`) and nothing answered 401/403/429 reached the upstream, by the upstream's log.
pub fn only_admissible_requests_reached_the_upstream(
    records: &[Record],
    received: &[Received],
) -> Check {
    let by_id: HashMap<u64, &Record> = records.iter().map(|r| (r.id, r)).collect();
    let mut violations = Vec::new();
    for request in received {
        let Some(record) = chaos_id(request).and_then(|id| by_id.get(&id)) else {
            violations.push(format!(
                "{} {} reached the upstream without a known x-chaos-id",
                request.method, request.path
            ));
            continue;
        };
        if record.kind.denied() {
            violations.push(format!(
                "#{} {:?} {} {} reached the upstream as {}",
                record.id, record.kind, record.sent.method, record.sent.path, request.path
            ));
        }
        if let Some(status @ (401 | 403 | 429)) = record.status() {
            violations.push(format!(
                "#{} {} was answered {status} but reached the upstream",
                record.id, record.sent.path
            ));
        }
        if request.path.starts_with("/admin") {
            violations.push(format!("#{} /admin reached the upstream", record.id));
        }
        if request.path.starts_with(PREDICT_V1) && request.header("x-test") != Some("istio-is-cool")
        {
            violations.push(format!(
                "#{} predict reached the upstream without X-Test",
                record.id
            ));
        }
        if request.path.starts_with("/healthz") && request.header("x-user") != Some("demo-user") {
            violations.push(format!(
                "#{} /healthz reached the upstream without the JWT's subject in x-user",
                record.id
            ));
        }
    }
    let denied = records.iter().filter(|r| r.kind.denied()).count();
    Check::new(
        "nothing denied reached the upstream",
        format!(
            "{} requests in the upstream's log; {denied} denied requests sent (no/forged token, \
             /admin, ../ traversal, predict without X-Test), none may be in it",
            received.len()
        ),
        violations,
    )
}

fn answered_at(record: &Record) -> Duration {
    record.started + record.elapsed
}

/// Whether `record` was sent and answered inside `window`.
fn inside(record: &Record, window: Window) -> bool {
    record.started >= window.0 && answered_at(record) <= window.1
}

/// Whether `record` was in flight at some time of `window`.
fn overlaps(record: &Record, window: Window) -> bool {
    record.started <= window.1 && answered_at(record) >= window.0
}

/// While `trapped` (path-allowlist, or the bundle) was a module that traps, with FAIL_CLOSE,
/// nothing got through: every request sent and answered inside such a window was refused
/// (Envoy's 503, or auth-gate's 401/403 before the allowlist's turn) and none reached the
/// upstream. Requests at the edges of a window (the push reaching the workers) are not judged.
pub fn fail_closed_held(
    records: &[Record],
    received: &[Received],
    windows: &[Window],
    trapped: &str,
) -> Check {
    let reached: std::collections::HashSet<u64> = received.iter().filter_map(chaos_id).collect();
    let mut violations = Vec::new();
    let (mut judged, mut refused_503) = (0, 0);
    for record in records
        .iter()
        .filter(|r| windows.iter().any(|w| inside(r, *w)))
    {
        judged += 1;
        if reached.contains(&record.id) {
            violations.push(format!(
                "#{} {} reached the upstream while {trapped} failed closed",
                record.id, record.sent.path
            ));
        }
        match record.status() {
            Some(503) => refused_503 += 1,
            Some(401 | 403) | None => {}
            Some(status) => violations.push(format!(
                "#{} {} was answered {status} while {trapped} failed closed",
                record.id, record.sent.path
            )),
        }
    }
    if judged > 0 && refused_503 == 0 {
        violations.push(format!(
            "none of the {judged} requests inside the windows got Envoy's fail-closed 503"
        ));
    }
    Check::new(
        "FAIL_CLOSE let nothing through",
        format!(
            "{} windows with a trapping {trapped} (FAIL_CLOSE); {judged} requests inside \
             them, {refused_503} answered 503, the others refused by auth-gate first; none \
             reached the upstream",
            windows.len()
        ),
        violations,
    )
}

/// Requests carrying the demo's valid JWT were never answered 401: not while the JWKS server
/// was down (the keys fetched before stay in use), nor at any other time.
pub fn valid_tokens_accepted(records: &[Record], outages: &[Window]) -> Check {
    let with_token: Vec<&Record> = records
        .iter()
        .filter(|r| r.kind.carries_valid_token())
        .collect();
    let during_outage = with_token
        .iter()
        .filter(|r| outages.iter().any(|w| overlaps(r, *w)))
        .count();
    let violations = with_token
        .iter()
        .filter(|r| r.status() == Some(401))
        .map(|r| {
            let outage = if outages.iter().any(|w| overlaps(r, *w)) {
                " during a JWKS outage"
            } else {
                ""
            };
            format!(
                "#{} {:?} at {:.1} s was refused 401{outage}",
                r.id,
                r.kind,
                r.started.as_secs_f64()
            )
        })
        .collect();
    Check::new(
        "valid tokens accepted through JWKS outages",
        format!(
            "{} requests with the valid token, {during_outage} of them while the JWKS server was \
             down ({} outages); none may be answered 401",
            with_token.len(),
            outages.len()
        ),
        violations,
    )
}

/// A rate limit of the gateway manifest (`wasmplugin-manifests/gateway/local-ratelimit.yaml`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    pub requests: u64,
    pub unit: Duration,
}

const MINUTE: Duration = Duration::from_secs(60);

/// The buckets a request draws from, by the manifest's descriptors: the predict path has 2/min
/// for the path and 5/min per `x-api-key`; every other path (query included) 10/min per value.
pub fn buckets(record: &Record) -> Vec<(String, Limit)> {
    let path = &record.sent.path;
    if path == PREDICT_V1 {
        let mut buckets = vec![(
            format!("path={path}"),
            Limit {
                requests: 2,
                unit: MINUTE,
            },
        )];
        if let Some(key) = record.sent.header("x-api-key") {
            buckets.push((
                format!("path={path} x-api-key={key}"),
                Limit {
                    requests: 5,
                    unit: MINUTE,
                },
            ));
        }
        buckets
    } else {
        vec![(
            format!("path={path}"),
            Limit {
                requests: 10,
                unit: MINUTE,
            },
        )]
    }
}

/// Whether the rate limiter let `record` through: it reached the upstream, or it was answered
/// with anything but the denials of the filters up to and including the rate limiter. A 503
/// while path-allowlist (before the rate limiter) failed closed is such a denial: no upstream
/// fault overlaps those spans, so every 503 in them is the allowlist's.
fn admitted(record: &Record, reached_upstream: bool, fail_closed: &[Window]) -> bool {
    let refused_by_trap =
        record.status() == Some(503) && fail_closed.iter().any(|w| overlaps(record, *w));
    !record.kind.denied()
        && (reached_upstream
            || (!refused_by_trap
                && matches!(record.status(), Some(s) if ![401, 403, 429].contains(&s))))
}

/// Per bucket, admitted requests never exceed what a token bucket allows: over any interval of
/// length `t`, `requests + requests·t/unit`. Intervals are measured from client times, which
/// enclose Envoy's decisions (a send time to an answer time), so the check never blames the
/// gateway for the client's clock. `fail_closed`: the spans of the FAIL_CLOSE faults.
pub fn rate_limits_held(
    records: &[Record],
    received: &[Received],
    fail_closed: &[Window],
) -> Check {
    let reached: std::collections::HashSet<u64> = received.iter().filter_map(chaos_id).collect();
    let mut per_bucket: BTreeMap<String, (Limit, Vec<(Duration, Duration)>)> = BTreeMap::new();
    let mut unknown = 0;
    for record in records.iter().filter(|r| !r.kind.denied()) {
        let reached_upstream = reached.contains(&record.id);
        if record.status().is_none() && !reached_upstream {
            unknown += 1;
            continue;
        }
        if !admitted(record, reached_upstream, fail_closed) {
            continue;
        }
        for (bucket, limit) in buckets(record) {
            per_bucket
                .entry(bucket)
                .or_insert((limit, Vec::new()))
                .1
                .push((record.started, record.started + record.elapsed));
        }
    }
    let mut violations = Vec::new();
    let mut admitted_total = 0;
    for (bucket, (limit, mut times)) in per_bucket.iter_mut().map(|(b, v)| (b, v.clone())) {
        times.sort();
        admitted_total += times.len();
        if let Some(violation) = over_limit(&times, limit) {
            violations.push(format!("{bucket}: {violation}"));
        }
    }
    Check::new(
        "rate limits held",
        format!(
            "{} buckets, {admitted_total} admissions; tolerance 0 (the valid pushes keep every \
             rule, so buckets keep their balance); {unknown} requests without an answer and not \
             in the upstream's log are not counted",
            per_bucket.len()
        ),
        violations,
    )
}

/// The first set of consecutive admissions (by send time) that no token bucket of `limit`
/// could have admitted, if any.
fn over_limit(times: &[(Duration, Duration)], limit: Limit) -> Option<String> {
    let unit = limit.unit.as_nanos();
    for (i, &(first_sent, _)) in times.iter().enumerate() {
        let mut last_answer = first_sent;
        for (j, &(_, answered)) in times.iter().enumerate().skip(i) {
            last_answer = last_answer.max(answered);
            let span = (last_answer - first_sent).as_nanos();
            let allowed = u128::from(limit.requests) + u128::from(limit.requests) * span / unit;
            let count = (j - i + 1) as u128;
            if count > allowed {
                return Some(format!(
                    "{count} admitted within {:.1} s (from {:.1} s), a {}/{} s bucket allows {allowed}",
                    span as f64 / 1e9,
                    first_sent.as_secs_f64(),
                    limit.requests,
                    limit.unit.as_secs()
                ));
            }
        }
    }
    None
}

/// The emotion-stats counter over one epoch: between two module swaps, read while no
/// prediction was in flight.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Epoch {
    pub id: u64,
    /// Whether the real emotion-stats module served it (not the trapping one, or skipped).
    pub counting: bool,
    /// `emotion_stats_top_label_total` summed, at the start and at the end of the epoch.
    pub counter_at_start: u64,
    pub counter_at_end: u64,
}

/// In every epoch the real module served, the counter grew by exactly the successful
/// predictions the clients received in it (one instance each); in every epoch the trapping
/// module served (FAIL_OPEN: skipped after its trap), it did not grow. It may reset there: the
/// metrics belong to the replaced module's VM, and Envoy drops them (the series leave
/// /stats/prometheus, a counter reset for Prometheus) once that VM is gone; the restored
/// module counts from 0 again.
pub fn predictions_counted_once(records: &[Record], epochs: &[Epoch]) -> Check {
    let mut successes: HashMap<u64, u64> = HashMap::new();
    for record in records.iter().filter(|r| r.successful_prediction()) {
        if let Some(epoch) = record.epoch {
            *successes.entry(epoch).or_default() += 1;
        }
    }
    let mut violations = Vec::new();
    let (mut counted, mut skipped, mut counter_growth, mut resets) = (0, 0, 0, 0);
    let mut previous_end = 0;
    for epoch in epochs {
        let received = successes.get(&epoch.id).copied().unwrap_or(0);
        let growth = epoch.counter_at_end.saturating_sub(epoch.counter_at_start);
        // The series went with the replaced module, at the swap or during the epoch.
        let reset = !epoch.counting && epoch.counter_at_end == 0 && previous_end > 0;
        previous_end = epoch.counter_at_end;
        counter_growth += growth;
        let expected = if epoch.counting { received } else { 0 };
        if epoch.counting {
            counted += received;
        } else {
            skipped += received;
        }
        if reset {
            resets += 1;
        }
        if (epoch.counter_at_end < epoch.counter_at_start && !reset) || growth != expected {
            violations.push(format!(
                "epoch {} ({}): counter {} -> {}, expected +{expected} ({received} successful \
                 predictions)",
                epoch.id,
                if epoch.counting {
                    "emotion-stats"
                } else {
                    "trapping module, skipped"
                },
                epoch.counter_at_start,
                epoch.counter_at_end
            ));
        }
    }
    let unassigned = records
        .iter()
        .filter(|r| r.successful_prediction() && !epochs.iter().any(|e| Some(e.id) == r.epoch))
        .count();
    if unassigned > 0 {
        violations.push(format!(
            "{unassigned} successful predictions outside every epoch"
        ));
    }
    Check::new(
        "emotion-stats counted each prediction once",
        format!(
            "{} epochs; {counted} successful predictions while emotion-stats ran, counter grew by \
             {counter_growth}; {skipped} while a trapping module served (skipped by FAIL_OPEN), not \
             counted; counter reset with the replaced module in {resets} of those epochs",
            epochs.len()
        ),
        violations,
    )
}

/// Every request was answered or failed within [`HANG_BOUND`].
pub fn nothing_hung(records: &[Record]) -> Check {
    let slowest = records.iter().map(|r| r.elapsed).max().unwrap_or_default();
    let violations = records
        .iter()
        .filter(|r| r.elapsed > HANG_BOUND)
        .map(|r| {
            format!(
                "#{} {:?} {} took {:.1} s",
                r.id,
                r.kind,
                r.sent.path,
                r.elapsed.as_secs_f64()
            )
        })
        .collect();
    let failed = records.iter().filter(|r| r.status().is_none()).count();
    Check::new(
        "no request hung",
        format!(
            "bound {} s; slowest {} ms; {failed} connection errors, all within the bound",
            HANG_BOUND.as_secs(),
            slowest.as_millis()
        ),
        violations,
    )
}

/// Requests by kind and by answer, for the report.
pub fn tally(records: &[Record]) -> (BTreeMap<Kind, usize>, BTreeMap<String, usize>) {
    let mut kinds = BTreeMap::new();
    let mut answers = BTreeMap::new();
    for record in records {
        *kinds.entry(record.kind).or_default() += 1;
        let answer = match record.status() {
            Some(status) => status.to_string(),
            None => "connection error".to_string(),
        };
        *answers.entry(answer).or_default() += 1;
    }
    (kinds, answers)
}

#[cfg(test)]
mod tests {
    use super::super::traffic::{build, Outcome};
    use super::*;
    use harness_runner::rng::Rng;

    fn record(id: u64, kind: Kind, status: Option<u16>, started_ms: u64) -> Record {
        let mut sent = build(kind, id, &mut Rng::new(id));
        if kind == Kind::ModelMetadata {
            sent.path = "/v1/models/bert-emotion-model?c=1".into();
        }
        Record {
            id,
            kind,
            sent,
            started: Duration::from_millis(started_ms),
            elapsed: Duration::from_millis(5),
            outcome: match status {
                Some(status) => Outcome::Answered {
                    status,
                    headers: Vec::new(),
                    prediction: status == 200 && kind.is_prediction(),
                },
                None => Outcome::Failed("reset".into()),
            },
            epoch: kind.is_prediction().then_some(0),
        }
    }

    fn received(id: u64, path: &str, headers: &[(&str, &str)]) -> Received {
        let mut all = vec![("x-chaos-id".to_string(), id.to_string())];
        all.extend(headers.iter().map(|(n, v)| (n.to_string(), v.to_string())));
        Received {
            method: "GET".into(),
            path: path.into(),
            headers: all,
        }
    }

    #[test]
    fn a_denied_or_refused_request_in_the_upstream_log_is_a_violation() {
        let records = vec![
            record(1, Kind::ModelMetadata, Some(200), 0),
            record(2, Kind::HealthzForgedToken, Some(401), 0),
            record(3, Kind::ModelMetadata, Some(429), 0),
        ];
        let clean = only_admissible_requests_reached_the_upstream(
            &records,
            &[received(1, "/v1/models/bert-emotion-model?c=1", &[])],
        );
        assert!(clean.violations.is_empty(), "{:?}", clean.violations);
        let dirty = only_admissible_requests_reached_the_upstream(
            &records,
            &[
                received(2, "/healthz", &[]),
                received(3, "/v1/models/bert-emotion-model?c=1", &[]),
                received(99, "/x", &[]),
            ],
        );
        // #2: a denied kind, answered 401, /healthz without x-user; #3: answered 429; #99:
        // an unknown id.
        assert_eq!(dirty.violations.len(), 5, "{:?}", dirty.violations);
        let healthz = record(4, Kind::HealthzWithToken, Some(200), 0);
        let with_subject = received(4, "/healthz?c=1", &[("x-user", "demo-user")]);
        assert!(
            only_admissible_requests_reached_the_upstream(&[healthz], &[with_subject])
                .violations
                .is_empty()
        );
    }

    #[test]
    fn token_bucket_bound_over_any_interval() {
        let limit = Limit {
            requests: 2,
            unit: MINUTE,
        };
        let at = |s: u64| {
            (
                Duration::from_secs(s),
                Duration::from_secs(s) + Duration::from_millis(5),
            )
        };
        // A full bucket, then one token back every 30 s.
        assert_eq!(over_limit(&[at(0), at(1), at(31), at(61)], limit), None);
        assert!(over_limit(&[at(0), at(1), at(2)], limit).is_some());
        assert!(over_limit(&[at(0), at(1), at(20), at(31)], limit).is_some());
    }

    #[test]
    fn predict_requests_draw_from_the_path_and_the_key_bucket() {
        let predict = record(1, Kind::PredictV1, Some(200), 0);
        let buckets: Vec<String> = buckets(&predict).into_iter().map(|b| b.0).collect();
        assert_eq!(buckets.len(), 2);
        assert!(buckets[1].contains("x-api-key=key-"));
        let many: Vec<Record> = (0..3)
            .map(|i| record(10 + i, Kind::ModelMetadata, Some(200), i * 10))
            .chain((0..9).map(|i| record(20 + i, Kind::ModelMetadata, Some(429), 40)))
            .collect();
        assert!(rate_limits_held(&many, &[], &[]).violations.is_empty());
        let flood: Vec<Record> = (0..11)
            .map(|i| record(i, Kind::ModelMetadata, Some(200), i))
            .collect();
        assert_eq!(rate_limits_held(&flood, &[], &[]).violations.len(), 1);
    }

    #[test]
    fn a_503_of_the_fail_closed_allowlist_is_no_admission() {
        // 10 admissions fill the 10/min bucket; 5 more 503s are admissions (an upstream
        // failure after the rate limiter) unless the allowlist before it failed closed.
        let records: Vec<Record> = (0..10)
            .map(|i| record(i, Kind::ModelMetadata, Some(200), i))
            .chain((10..15).map(|i| record(i, Kind::ModelMetadata, Some(503), 1_000 + i)))
            .collect();
        assert_eq!(rate_limits_held(&records, &[], &[]).violations.len(), 1);
        let span = (Duration::from_millis(900), Duration::from_millis(2_000));
        assert!(rate_limits_held(&records, &[], &[span])
            .violations
            .is_empty());
    }

    #[test]
    fn fail_close_windows_admit_nothing() {
        let window = (Duration::from_millis(100), Duration::from_millis(500));
        let refused = vec![
            record(1, Kind::ModelMetadata, Some(503), 200),
            record(2, Kind::HealthzNoToken, Some(401), 210),
            // At the edge, and after the window: not judged.
            record(3, Kind::ModelMetadata, Some(200), 98),
            record(4, Kind::ModelMetadata, Some(200), 600),
        ];
        let check = fail_closed_held(&refused, &[], &[window], "path-allowlist");
        assert!(check.violations.is_empty(), "{:?}", check.violations);
        assert!(check.summary.contains("2 requests inside"));

        let mut leaked = refused.clone();
        leaked.push(record(5, Kind::InferV2, Some(200), 300));
        let upstream = [received(5, "/v2/models/bert-emotion-model/infer", &[])];
        assert_eq!(
            fail_closed_held(&leaked, &upstream, &[window], "path-allowlist")
                .violations
                .len(),
            2
        );
        // A window whose requests all passed means the module never trapped.
        let open = vec![record(6, Kind::ModelMetadata, Some(200), 200)];
        let check = fail_closed_held(&open, &[], &[window], "model-gateway");
        assert_eq!(check.violations.len(), 2, "{:?}", check.violations);
    }

    #[test]
    fn a_valid_token_refused_is_a_violation_and_outages_are_named() {
        let outage = (Duration::from_millis(1_000), Duration::from_millis(3_000));
        let records = vec![
            record(1, Kind::HealthzWithToken, Some(200), 1_500),
            record(2, Kind::AdminWithToken, Some(403), 2_000),
            record(3, Kind::HealthzForgedToken, Some(401), 2_000),
        ];
        let check = valid_tokens_accepted(&records, &[outage]);
        assert!(check.violations.is_empty());
        assert!(check
            .summary
            .starts_with("2 requests with the valid token, 2 of them"));
        let mut refused = records;
        refused.push(record(4, Kind::HealthzWithToken, Some(401), 2_500));
        refused.push(record(5, Kind::HealthzWithToken, Some(401), 9_000));
        let check = valid_tokens_accepted(&refused, &[outage]);
        assert_eq!(check.violations.len(), 2);
        assert!(check.violations[0].contains("during a JWKS outage"));
        assert!(!check.violations[1].contains("outage"));
    }

    #[test]
    fn counter_growth_must_match_predictions_per_epoch() {
        let records = vec![
            record(1, Kind::InferV2, Some(200), 0),
            record(2, Kind::InferV2, Some(200), 0),
            record(3, Kind::InferV2, Some(503), 0),
        ];
        let epoch = |counting, end| Epoch {
            id: 0,
            counting,
            counter_at_start: 10,
            counter_at_end: end,
        };
        assert!(predictions_counted_once(&records, &[epoch(true, 12)])
            .violations
            .is_empty());
        assert_eq!(
            predictions_counted_once(&records, &[epoch(true, 13)])
                .violations
                .len(),
            1
        );
        assert!(predictions_counted_once(&records, &[epoch(false, 10)])
            .violations
            .is_empty());
        assert_eq!(
            predictions_counted_once(&records, &[epoch(false, 11)])
                .violations
                .len(),
            1
        );
        // After the counting epoch, the replaced module's series are gone: a reset, not a loss.
        let trapped = Epoch {
            id: 1,
            counting: false,
            counter_at_start: 12,
            counter_at_end: 0,
        };
        let reset = predictions_counted_once(&records, &[epoch(true, 12), trapped.clone()]);
        assert!(reset.violations.is_empty(), "{:?}", reset.violations);
        assert!(reset.summary.contains("in 1 of those epochs"));
        // Predictions counted while the trapping module ran are a violation, reset or not.
        let mut late = records.clone();
        late.push(Record {
            epoch: Some(1),
            ..record(4, Kind::InferV2, Some(200), 0)
        });
        let counted_late = Epoch {
            counter_at_end: 1,
            ..trapped
        };
        assert_eq!(
            predictions_counted_once(&late, &[epoch(true, 12), counted_late])
                .violations
                .len(),
            1
        );
        // While the real module serves, a drop is a violation.
        assert_eq!(
            predictions_counted_once(&records, &[epoch(true, 0)])
                .violations
                .len(),
            1
        );
    }

    #[test]
    fn a_slow_request_is_hung() {
        let mut slow = record(1, Kind::ModelMetadata, None, 0);
        assert!(nothing_hung(&[slow.clone()]).violations.is_empty());
        slow.elapsed = HANG_BOUND + Duration::from_millis(1);
        assert_eq!(nothing_hung(&[slow]).violations.len(), 1);
    }
}
