//! `harness chaos` as `./build.sh test` runs it, shortened: the gateway under load and faults,
//! the model server a separate process it kills, the report with no violation, the records kept.
#![allow(clippy::unwrap_used)]

use std::process::Command;

#[test]
fn a_short_chaos_run_holds_every_invariant() {
    let out = std::env::temp_dir().join(format!("harness-chaos-test-{}", std::process::id()));
    let run = Command::new(env!("CARGO_BIN_EXE_harness"))
        .args([
            "chaos",
            "--duration",
            "15s",
            "--clients",
            "3",
            "--seed",
            "10",
            "--out",
        ])
        .arg(&out)
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success(),
        "{report}\n{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(report.contains("\nviolations: 0\n"), "{report}");
    assert!(!report.contains("  FAIL "), "{report}");
    let requests = std::fs::read_to_string(out.join("requests.jsonl")).unwrap();
    let upstream = std::fs::read_to_string(out.join("upstream-requests.jsonl")).unwrap();
    assert!(requests.lines().count() > 100, "{report}");
    assert!(upstream.lines().count() > 10, "{report}");
    // Denied requests were sent, and answered by the gateway.
    assert!(requests.contains(r#""kind":"AdminByTraversal""#));
    assert!(requests.contains(r#""status":403"#));
    std::fs::remove_dir_all(&out).unwrap();
}
