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

/// A started harness, killed if a failed assertion ends the test first: no demo keeps serving.
struct Running(std::process::Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs the demo's suggested curl lines as a user pastes them, after its exports, each checked
/// against what [`harness_demo::suggestions`] says it answers.
fn check_suggestions(printed: &[String]) {
    let exports: Vec<&str> = printed
        .iter()
        .filter_map(|l| l.strip_prefix("  export "))
        .collect();
    let curls: Vec<&str> = printed
        .iter()
        .filter_map(|l| l.strip_prefix("    curl "))
        .collect();
    let suggestions = harness_demo::suggestions();
    assert_eq!(curls.len(), suggestions.len(), "{printed:#?}");
    for (curl, step) in curls.iter().zip(&suggestions) {
        let script = format!("export {}\ncurl {curl}", exports.join("\nexport "));
        let output = Command::new("sh").args(["-c", &script]).output().unwrap();
        let answer = String::from_utf8_lossy(&output.stdout);
        if step.target == harness_demo::Target::Gateway {
            let status = answer.lines().next().unwrap_or_default();
            assert!(
                status.starts_with(&format!("HTTP/1.1 {} ", step.expect_status)),
                "curl {curl}\n{answer}{}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
        for text in &step.expect_body {
            assert!(answer.contains(text.as_str()), "curl {curl}\n{answer}");
        }
    }
}

#[test]
fn ctrl_c_stops_the_demo_and_its_envoy() {
    let manifests = harness_runner::repo_root().join("wasmplugin-manifests/gateway");
    let mut demo = Running(
        Command::new(env!("CARGO_BIN_EXE_harness"))
            .args(["demo", "--manifests"])
            .arg(&manifests)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap(),
    );
    let pid = demo.0.id();
    let mut lines = BufReader::new(demo.0.stdout.take().unwrap()).lines();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut serving = false;
    let mut printed = Vec::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        if line.contains("Ctrl-C stops it") {
            serving = true;
            break;
        }
        printed.push(line);
        assert!(Instant::now() < deadline, "demo did not start serving");
    }
    assert!(serving, "demo exited before serving");
    check_suggestions(&printed);
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
    let status = demo.0.wait().unwrap();
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

/// Every line `child` writes on stdout and stderr, as it comes, on one channel.
fn lines_of(child: &mut std::process::Child) -> std::sync::mpsc::Receiver<String> {
    let (send, receive) = std::sync::mpsc::channel();
    let stdout: Box<dyn std::io::Read + Send> = Box::new(child.stdout.take().unwrap());
    let stderr: Box<dyn std::io::Read + Send> = Box::new(child.stderr.take().unwrap());
    for stream in [stdout, stderr] {
        let send = send.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines().map_while(Result::ok) {
                let _ = send.send(line);
            }
        });
    }
    receive
}

#[test]
fn harness_run_shows_plugin_warnings_as_they_happen() {
    // A jwksUri without jwksCluster goes through the cluster istiod would make for its host;
    // here there is none, so every fetch fails and auth-gate logs it at warning level.
    let upstream = harness_model_server::ModelServer::start().unwrap();
    let dir = std::env::temp_dir().join(format!("cli-warnings-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("auth-gate.yaml"),
        "apiVersion: extensions.istio.io/v1alpha1
kind: WasmPlugin
metadata: {name: auth-gate, namespace: istio-system}
spec:
  url: oci://ghcr.io/model-gateway-plugins/auth-gate:0.1.0
  pluginConfig:
    jwtRules:
    - issuer: https://dex.example.com
      jwksUri: http://dex.auth.svc.cluster.local:5556/dex/keys
",
    )
    .unwrap();
    let mut run = Running(
        Command::new(env!("CARGO_BIN_EXE_harness"))
            .args(["run", "--manifests"])
            .arg(&dir)
            .arg("--upstream")
            .arg(upstream.addr().to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let lines = lines_of(&mut run.0);
    let deadline = Instant::now() + Duration::from_secs(60);
    let (mut log_path, mut warning) = (None, None);
    while warning.is_none() || log_path.is_none() {
        let left = deadline.saturating_duration_since(Instant::now());
        let Ok(line) = lines.recv_timeout(left) else {
            break;
        };
        if let Some(path) = line.strip_prefix("  Envoy log         ") {
            log_path = Some(std::path::PathBuf::from(path));
        }
        if line.contains("JWKS fetch of http://dex.auth.svc.cluster.local:5556/dex/keys failed") {
            warning = Some(line);
        }
    }
    let log_path = log_path.expect("harness run did not say where the Envoy log is");
    let warning = warning.expect("the plugin's warning was not shown on the console");
    assert!(
        warning.starts_with("envoy ") && warning.contains(" warning: "),
        "{warning}"
    );
    assert!(
        warning.contains("outbound|5556||dex.auth.svc.cluster.local"),
        "{warning}"
    );
    // The full line is in the log the console points to.
    let log = std::fs::read_to_string(&log_path).unwrap();
    assert!(log.contains("[warning][wasm]"), "{}", log_path.display());
    // SAFETY: sends SIGINT to the child we started, as Ctrl-C would.
    unsafe { libc::kill(run.0.id() as i32, libc::SIGINT) };
    assert!(run.0.wait().unwrap().success());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn help_prints_every_commands_usage() {
    for args in [
        &["help"][..],
        &["--help"],
        &["-h"],
        &["run", "--help"],
        &["diff", "-h"],
    ] {
        let output = Command::new(env!("CARGO_BIN_EXE_harness"))
            .args(args)
            .output()
            .unwrap();
        assert!(output.status.success(), "{args:?}: {}", output.status);
        let stdout = String::from_utf8_lossy(&output.stdout);
        for command in [
            "harness run",
            "harness demo",
            "harness diff",
            "harness bench",
        ] {
            assert!(
                stdout.contains(command),
                "{args:?}: no {command} in\n{stdout}"
            );
        }
    }
    let unknown = Command::new(env!("CARGO_BIN_EXE_harness"))
        .arg("rnu")
        .output()
        .unwrap();
    assert!(!unknown.status.success());
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("unknown command rnu"));
}
