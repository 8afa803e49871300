//! New tokens met by two workers: auth-gate (token cache on) in an Envoy with two workers, one
//! keep-alive connection on each, every token sent once on each connection. With the verified
//! token shared between workers, each token costs one signature check, not two: the run reads
//! `auth_gate_signature_checks_total` and `auth_gate_token_cache_shared_hits_total` afterwards.

use super::cases::{self, PREDICT_PATH};
use super::client::Client;
use super::tokens::Tokens;
use harness_runner::{Envoy, EnvoyConfig, Error, Plugin, Result};
use serde::Serialize;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WorkersRun {
    pub case: String,
    pub what: String,
    pub tokens: u64,
    pub signature_checks: Option<u64>,
    pub shared_hits: Option<u64>,
    /// Why there are no numbers (the plugin refused its configuration).
    pub skipped: Option<String>,
}

pub fn new_tokens_on_two_workers(count: u64, tokens: &Tokens) -> Result<WorkersRun> {
    let config =
        cases::auth_gate_jwt_config(&tokens.issuer, true, vec![cases::require_jwt_policy()]);
    let config = EnvoyConfig {
        plugins: vec![Plugin::from_dist("auth-gate", config)],
        concurrency: 2,
        ..cases::upstream_config()
    };
    let mut record = WorkersRun {
        case: "auth-gate-2-workers".into(),
        what: format!(
            "auth-gate, 2 workers, {} new ES256 tokens each sent once per worker",
            count + 1
        ),
        // The first token opens the connections.
        tokens: count + 1,
        signature_checks: None,
        shared_hits: None,
        skipped: None,
    };
    let envoy = match super::start_or_skip(config) {
        Ok(envoy) => envoy,
        Err(reason) => {
            record.skipped = Some(reason);
            return Ok(record);
        }
    };
    let probe = format!(
        "{PREDICT_PATH}?access_token={}",
        tokens.sign_es256("worker-user")?
    );
    let (mut first, mut second) = clients_on_both_workers(&envoy, &probe)?;
    for i in 0..count {
        let token = tokens.sign_es256(&format!("worker-user-{i}"))?;
        let path = format!("{PREDICT_PATH}?access_token={token}");
        for client in [&mut first, &mut second] {
            let answer = client.get(&path, &[])?;
            if answer.status != 200 {
                return Err(Error(format!(
                    "token {i} answered {} (expected 200)",
                    answer.status
                )));
            }
        }
    }
    let stats = envoy.admin_get("/stats/prometheus")?;
    record.signature_checks = Some(untagged_counter(&stats, "auth_gate_signature_checks_total"));
    record.shared_hits = Some(untagged_counter(
        &stats,
        "auth_gate_token_cache_shared_hits_total",
    ));
    Ok(record)
}

/// Two keep-alive connections served by different workers: a second connection that lands on
/// the first one's worker is closed and opened again (the kernel spreads connections by hash).
/// Each connection's first request is `probe` (a valid token: an answer that keeps it open).
fn clients_on_both_workers(envoy: &Envoy, probe: &str) -> Result<(Client, Client)> {
    let mut first = Client::new(envoy.listener());
    first.get(probe, &[])?;
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        let mut second = Client::new(envoy.listener());
        second.get(probe, &[])?;
        if active_per_worker(envoy)? == [1, 1] {
            return Ok((first, second));
        }
        drop(second);
        // Let Envoy see the close before the next count.
        std::thread::sleep(Duration::from_millis(50));
    }
    Err(Error(
        "could not get one connection on each of the two workers".into(),
    ))
}

/// Open downstream connections of worker 0 and worker 1.
fn active_per_worker(envoy: &Envoy) -> Result<[u64; 2]> {
    let stats = envoy.admin_get("/stats?filter=worker_.\\.downstream_cx_active")?;
    let mut active = [0u64; 2];
    for line in stats.lines() {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let worker = if name.contains(".worker_0.") {
            0
        } else if name.contains(".worker_1.") {
            1
        } else {
            continue;
        };
        if name.starts_with("listener.127.0.0.1_") {
            active[worker] += value.trim().parse::<u64>().unwrap_or(0);
        }
    }
    Ok(active)
}

/// A counter without tags on `/stats/prometheus` (`name{} value`), 0 when not reported.
fn untagged_counter(stats: &str, name: &str) -> u64 {
    stats
        .lines()
        .find_map(|line| {
            line.strip_prefix(name)?
                .strip_prefix("{}")?
                .trim()
                .parse()
                .ok()
        })
        .unwrap_or(0)
}
