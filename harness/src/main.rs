//! `harness run` rehearses a cluster's WasmPlugin manifests in front of your own model server;
//! `harness demo` does the same with the demo model server and replays the seed walkthrough.

use harness::{demo, manifests, Envoy, EnvoyConfig, ModelServer};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

const USAGE: &str = "usage:
  harness run --manifests DIR --upstream 127.0.0.1:PORT [--concurrency N] [--port PORT]
  harness demo --manifests DIR [--no-serve] [--concurrency N] [--port PORT]";

struct Options {
    manifests: Option<PathBuf>,
    upstream: Option<SocketAddr>,
    concurrency: u32,
    port: u16,
    serve: bool,
}

fn parse(args: &[String]) -> Result<Options, String> {
    let mut options = Options {
        manifests: None,
        upstream: None,
        concurrency: 2,
        port: 0,
        serve: true,
    };
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().cloned().ok_or(format!("{name} needs a value"));
        match arg.as_str() {
            "--manifests" => options.manifests = Some(PathBuf::from(value(arg)?)),
            "--upstream" => {
                let v = value(arg)?;
                options.upstream = Some(
                    v.parse()
                        .map_err(|_| format!("--upstream {v}: expected HOST:PORT"))?,
                );
            }
            "--concurrency" => {
                let v = value(arg)?;
                options.concurrency = v
                    .parse()
                    .map_err(|_| format!("--concurrency {v}: expected a number"))?;
            }
            "--port" => {
                let v = value(arg)?;
                options.port = v
                    .parse()
                    .map_err(|_| format!("--port {v}: expected a port number"))?;
            }
            "--no-serve" => options.serve = false,
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(options)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some((command, rest)) = args.split_first() else {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    };
    let options = match parse(rest) {
        Ok(options) => options,
        Err(e) => {
            eprintln!("{e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    // Ctrl-C and SIGTERM are waited for, not taken by default: so Envoy, the model server and
    // the temp dir are cleaned up by the handles' Drop before the process exits.
    block_termination_signals();
    let result = match command.as_str() {
        "run" => run(options),
        "demo" => run_demo(options),
        _ => Err(format!("unknown command {command}\n{USAGE}")),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("harness: {e}");
            ExitCode::FAILURE
        }
    }
}

fn start_envoy(options: &Options, upstream: SocketAddr) -> Result<Envoy, String> {
    let dir = options
        .manifests
        .clone()
        .ok_or("--manifests DIR is required")?;
    let resources = manifests::load_dir(&dir).map_err(|e| e.to_string())?;
    if resources.is_empty() {
        return Err(format!("no WasmPlugin in {}", dir.display()));
    }
    let plugins = manifests::to_plugins(resources);
    println!("filter chain, as istiod orders it:");
    for plugin in &plugins {
        println!(
            "  {} <- {} ({:?})",
            plugin.name,
            plugin.module.display(),
            plugin.fail_strategy
        );
    }
    let config = EnvoyConfig {
        plugins,
        upstream,
        concurrency: options.concurrency,
        listener_port: options.port,
        ..Default::default()
    };
    Envoy::start(config).map_err(|e| e.to_string())
}

fn run(options: Options) -> Result<ExitCode, String> {
    let upstream = options.upstream.ok_or("--upstream HOST:PORT is required")?;
    let envoy = start_envoy(&options, upstream)?;
    println!("\nEnvoy is serving in front of {upstream}:");
    println!("  send requests to  {}", envoy.url("/"));
    println!(
        "  admin / stats     {}",
        envoy.admin_url("/stats/prometheus")
    );
    println!("  Envoy log         {}/envoy.log", envoy.dir().display());
    println!("Ctrl-C stops it.");
    wait_for_termination();
    Ok(ExitCode::SUCCESS)
}

fn run_demo(options: Options) -> Result<ExitCode, String> {
    let upstream = ModelServer::start().map_err(|e| e.to_string())?;
    let envoy = start_envoy(&options, upstream.addr())?;
    let base = format!("http://{}", envoy.listener());
    println!(
        "\nWalkthrough (seed 003) through Envoy at {base}, demo model server at {}",
        upstream.addr()
    );
    let failures = demo::run(&base, &demo::steps());
    if failures > 0 {
        println!(
            "\n{failures} step(s) did not answer as the walkthrough says. Envoy log: {}/envoy.log",
            envoy.dir().display()
        );
        if !options.serve {
            return Ok(ExitCode::FAILURE);
        }
    } else {
        println!("\nevery step answered as the walkthrough says");
    }
    if options.serve {
        println!("\nThe gateway keeps serving; Ctrl-C stops it. Try:");
        println!("  curl -H 'content-type: application/json' -H 'x-test: istio-is-cool' {base}/v1/models/bert-emotion-model:predict -d '{{\"input\": \"Istio is lovely\"}}'");
        println!("  curl {base}/admin");
        println!(
            "  curl {} | grep emotion",
            envoy.admin_url("/stats/prometheus")
        );
        wait_for_termination();
    }
    Ok(ExitCode::SUCCESS)
}

fn termination_signals() -> libc::sigset_t {
    // SAFETY: sigset_t is plain data, initialised by sigemptyset before use.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGTERM);
        set
    }
}

fn block_termination_signals() {
    let set = termination_signals();
    // SAFETY: blocks the signals in this thread; threads started later inherit the mask.
    unsafe {
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
    }
}

fn wait_for_termination() {
    let set = termination_signals();
    let mut signal = 0;
    // SAFETY: waits for one of the blocked signals.
    unsafe {
        libc::sigwait(&set, &mut signal);
    }
    println!("\nstopping");
}
