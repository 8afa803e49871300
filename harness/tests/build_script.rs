//! `./build.sh` as a user meets it: asking for help explains and starts nothing.
#![allow(clippy::unwrap_used)]

use std::process::{Command, Output};
use std::time::{Duration, Instant};

fn build_sh(args: &[&str]) -> (Output, Duration) {
    let started = Instant::now();
    let output = Command::new(harness_runner::repo_root().join("build.sh"))
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

/// A function of build.sh, sourced, with these arguments.
fn build_sh_function(function: &str, args: &[&std::ffi::OsStr]) -> Output {
    Command::new("bash")
        .current_dir(harness_runner::repo_root())
        .arg("-c")
        .arg(format!(r#"source ./build.sh && {function} "$@""#))
        .arg("bash")
        .args(args)
        .output()
        .unwrap()
}

/// `ship_module IN OUT [EXPORTS]` of build.sh: its console line.
fn ship_module_keeping(input: &std::path::Path, out: &std::path::Path, keep: &str) -> String {
    let output = build_sh_function(
        "ship_module",
        &[input.as_os_str(), out.as_os_str(), keep.as_ref()],
    );
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

fn ship_module(input: &std::path::Path, out: &std::path::Path) -> String {
    ship_module_keeping(input, out, "")
}

/// The names `out` exports, as build.sh reads them.
fn exports(out: &std::path::Path) -> Vec<String> {
    let output = build_sh_function("wasm_exports", &[out.as_os_str()]);
    assert!(output.status.success());
    let text = String::from_utf8(output.stdout).unwrap();
    text.lines().map(str::to_string).collect()
}

#[test]
fn wasm_opt_runs_again_only_when_its_input_changed() {
    let dir = std::env::temp_dir().join(format!("build-sh-ship-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (input, out) = (dir.join("built.wasm"), dir.join("m.wasm"));
    std::fs::write(
        &input,
        wat::parse_str("(module (func (export \"a\")))").unwrap(),
    )
    .unwrap();

    let first = ship_module(&input, &out);
    assert!(!first.contains("unchanged"), "{first}");
    let shipped = std::fs::metadata(&out).unwrap().modified().unwrap();
    let first_module = std::fs::read(&out).unwrap();
    let again = ship_module(&input, &out);
    assert!(again.contains("input unchanged: not made again"), "{again}");
    assert_eq!(
        std::fs::metadata(&out).unwrap().modified().unwrap(),
        shipped
    );

    // The same bytes written again (cargo relinking) are still the same input.
    std::fs::write(&input, std::fs::read(&input).unwrap()).unwrap();
    assert!(ship_module(&input, &out).contains("unchanged"));

    std::fs::write(
        &input,
        wat::parse_str("(module (func (export \"b\")))").unwrap(),
    )
    .unwrap();
    let changed = ship_module(&input, &out);
    assert!(!changed.contains("unchanged"), "{changed}");
    let module = std::fs::read(&out).unwrap();
    assert!(module.starts_with(b"\0asm") && module != first_module);
    // A lost output is made again even though the record of its input is there.
    std::fs::remove_file(&out).unwrap();
    assert!(!ship_module(&input, &out).contains("unchanged"));
    assert!(out.is_file());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn metadce_keeps_only_the_listed_exports() {
    let dir = std::env::temp_dir().join(format!("build-sh-trim-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (input, out) = (dir.join("built.wasm"), dir.join("m.wasm"));
    let module = r#"(module (memory (export "memory") 1)
        (func (export "a")) (func (export "b") (drop (i32.const 1))) (func (export "c")))"#;
    std::fs::write(&input, wat::parse_str(module).unwrap()).unwrap();

    // Without a list nothing is removed.
    ship_module(&input, &out);
    assert_eq!(exports(&out), ["memory", "a", "b", "c"]);

    let trimmed = ship_module_keeping(&input, &out, "memory a");
    assert!(!trimmed.contains("unchanged"), "{trimmed}");
    assert_eq!(exports(&out), ["memory", "a"]);
    assert!(ship_module_keeping(&input, &out, "memory a").contains("unchanged"));

    // The list is part of the recorded input: another list makes the module again.
    let other = ship_module_keeping(&input, &out, "memory a b");
    assert!(!other.contains("unchanged"), "{other}");
    assert_eq!(exports(&out), ["memory", "a", "b"]);

    // A listed name the module does not export fails, and leaves the last module as it was.
    let output = build_sh_function(
        "ship_module",
        &[input.as_os_str(), out.as_os_str(), "memory a d".as_ref()],
    );
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("declared, not exported: d"), "{stderr}");
    assert_eq!(exports(&out), ["memory", "a", "b"]);
    assert!(!dir.join("m.wasm.tmp").exists() && !dir.join("m.wasm.trimmed").exists());
    std::fs::remove_dir_all(&dir).unwrap();
}
