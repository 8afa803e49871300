//! The `harness` binary as a user runs it: the demo serves until Ctrl-C, and Ctrl-C leaves no
//! Envoy behind. Needs `dist/` (./build.sh test builds it before the tests run).
#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn children_of(pid: u32) -> Vec<u32> {
    let mut children = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(child) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{child}/stat")) else {
            continue;
        };
        // Fields after the command name (which may contain spaces): state, ppid, ...
        let after_name = stat
            .rsplit_once(')')
            .map(|(_, rest)| rest)
            .unwrap_or_default();
        let ppid = after_name
            .split_whitespace()
            .nth(1)
            .and_then(|p| p.parse::<u32>().ok());
        if ppid == Some(pid) {
            children.push(child);
        }
    }
    children
}

#[test]
fn ctrl_c_stops_the_demo_and_its_envoy() {
    let manifests = harness::repo_root().join("wasmplugin-manifests/gateway");
    let mut demo = Command::new(env!("CARGO_BIN_EXE_harness"))
        .args(["demo", "--manifests"])
        .arg(&manifests)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let pid = demo.id();
    let mut lines = BufReader::new(demo.stdout.take().unwrap()).lines();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut serving = false;
    for line in lines.by_ref() {
        let line = line.unwrap();
        if line.contains("Ctrl-C stops it") {
            serving = true;
            break;
        }
        assert!(Instant::now() < deadline, "demo did not start serving");
    }
    assert!(serving, "demo exited before serving");
    // Envoy, and the local registry the demo pulls its images from when it can run one.
    let children = children_of(pid);
    let is_envoy = |child: &u32| {
        std::fs::read(format!("/proc/{child}/cmdline"))
            .is_ok_and(|c| String::from_utf8_lossy(&c).contains("envoy"))
    };
    assert_eq!(
        children.iter().filter(|c| is_envoy(c)).count(),
        1,
        "expected one Envoy child, got {children:?}"
    );
    // SAFETY: sends SIGINT to the child we started, as Ctrl-C would.
    unsafe { libc::kill(pid as i32, libc::SIGINT) };
    let status = demo.wait().unwrap();
    assert!(
        status.success(),
        "demo should exit cleanly on Ctrl-C: {status}"
    );
    std::thread::sleep(Duration::from_millis(200));
    for child in children {
        assert!(
            !std::path::Path::new(&format!("/proc/{child}")).exists(),
            "process {child} left behind"
        );
    }
}
