//! `./build.sh` as a user meets it: asking for help explains and starts nothing.
#![allow(clippy::unwrap_used)]

use std::process::{Command, Output};
use std::time::{Duration, Instant};

fn build_sh(args: &[&str]) -> (Output, Duration) {
    let started = Instant::now();
    let output = Command::new(harness::repo_root().join("build.sh"))
        .args(args)
        .output()
        .unwrap();
    (output, started.elapsed())
}

#[test]
fn help_prints_the_usage_and_starts_nothing() {
    for args in [
        &["help"][..],
        &["--help"],
        &["-h"],
        &["test", "--help"],
        &["test", "--quick", "--help"],
        &["demo", "--help"],
        &["push", "--help"],
        &["fuzz", "--help"],
    ] {
        let (output, took) = build_sh(args);
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            output.status.success(),
            "{args:?}: {}\n{stderr}",
            output.status
        );
        assert!(
            stdout.starts_with("usage: ./build.sh"),
            "{args:?}: {stdout}"
        );
        assert!(stdout.contains("test [--quick]"), "{args:?}: {stdout}");
        assert!(
            !stdout.contains("==>") && !stderr.contains("==>"),
            "{args:?} started a step:\n{stdout}{stderr}"
        );
        assert!(took < Duration::from_secs(10), "{args:?} took {took:?}");
    }
}

#[test]
fn wrong_arguments_are_refused_with_the_usage() {
    for args in [&["test", "--quik"][..], &["tset"]] {
        let (output, _) = build_sh(args);
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains("usage: ./build.sh"), "{args:?}: {stderr}");
    }
}
