//! `harness run` rehearses a cluster's WasmPlugin manifests in front of your own model server;
//! `harness demo` does the same with the demo model server and replays the walkthrough of
//! `harness-demo` (the BERT emotion model, the Kubeflow gateway's allowlist and JWT rule);
//! `harness bench` measures each plugin against the native Envoy filter doing the same job;
//! `harness chaos` runs the gateway under load and faults and checks nothing was lost.

use harness_model_server::{CannedResponse, ModelServer};
use harness_oci::ModuleResolver;
use harness_runner::manifests;
use harness_runner::render::Cluster;
use harness_runner::{Envoy, EnvoyConfig};
use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

const USAGE: &str = "usage:
  harness run --manifests DIR --upstream HOST:PORT [--cluster NAME=HOST:PORT]...
              [--concurrency N] [--port PORT] [IMAGES]
  harness demo --manifests DIR [--no-serve] [--concurrency N] [--port PORT] [IMAGES]
  harness image --module FILE.wasm --tag VERSION --out LAYOUT_DIR
  harness push --images IMAGES_DIR --to REGISTRY[/PREFIX] [--tag TAG]
  harness model-server --listen 127.0.0.1:PORT --log FILE [--json FILE]

HOST: an IP address or localhost. --cluster adds an Envoy cluster (repeatable), e.g. the JWKS server a jwksUri rule reaches:
--cluster 'outbound|5556||dex.auth.svc.cluster.local=127.0.0.1:5556' (without jwksCluster,
auth-gate uses the name istiod gives the service of the URI: outbound|<port>||<host>).
IMAGES: by default oci:// images on a 127.0.0.1/localhost registry are pulled, the others map
to dist/<name>.wasm; --pull-images pulls every oci:// image; --registry HOST:PORT[/PREFIX] pulls
every one from that registry instead (same name and tag). `image` writes an OCI layout with the module in every
variant Istio accepts: VERSION (compat: tar+gzip layer with plugin.wasm) and VERSION-wasm (the
two-layer Wasm artifact). `push` copies every layout under IMAGES_DIR (one per plugin) to
REGISTRY[/PREFIX]/<plugin>:<tag> with skopeo, tags renamed to TAG if given. `model-server`
serves the demo model API, appending one JSON line per received request to FILE, and prints
`listening on ADDR` once it serves (the chaos run's upstream); with --json it answers every
request with that file's JSON instead (the chaos run's JWKS server).";

struct Options {
    manifests: Option<PathBuf>,
    upstream: Option<SocketAddr>,
    concurrency: u32,
    port: u16,
    serve: bool,
    pull_every_image: bool,
    registry_override: Option<String>,
    clusters: Vec<Cluster>,
}

fn parse(args: &[String]) -> Result<Options, String> {
    let mut options = Options {
        manifests: None,
        upstream: None,
        concurrency: 2,
        port: 0,
        serve: true,
        pull_every_image: false,
        registry_override: None,
        clusters: Vec::new(),
    };
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().cloned().ok_or(format!("{name} needs a value"));
        match arg.as_str() {
            "--manifests" => options.manifests = Some(PathBuf::from(value(arg)?)),
            "--upstream" => {
                let v = value(arg)?;
                options.upstream = Some(host_port(&v).map_err(|e| format!("--upstream {v}: {e}"))?);
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
            "--pull-images" => options.pull_every_image = true,
            "--registry" => options.registry_override = Some(value(arg)?),
            "--cluster" => {
                let v = value(arg)?;
                let (name, addr) = v
                    .rsplit_once('=')
                    .ok_or(format!("--cluster {v}: expected NAME=HOST:PORT"))?;
                let addr = host_port(addr).map_err(|e| format!("--cluster {v}: {e}"))?;
                if name.is_empty() {
                    return Err(format!("--cluster {v}: the cluster needs a name"));
                }
                options.clusters.push(Cluster {
                    name: name.to_string(),
                    addr,
                });
            }
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(options)
}

/// Every command's usage.
fn full_usage() -> String {
    format!(
        "{USAGE}\n  {}\n  {}\n{}",
        harness_bench::USAGE,
        harness_chaos::USAGE,
        harness_diff::USAGE
    )
}

/// An address for Envoy's static clusters: `IP:PORT`, or `localhost:PORT` as 127.0.0.1 (what
/// people type). Other host names are refused rather than resolved: the cluster takes addresses.
fn host_port(value: &str) -> Result<SocketAddr, String> {
    if let Ok(addr) = value.parse() {
        return Ok(addr);
    }
    let Some((host, port)) = value.rsplit_once(':') else {
        return Err("expected HOST:PORT".to_string());
    };
    let port: u16 = port
        .parse()
        .map_err(|_| format!("{port:?} is not a port number"))?;
    if host.eq_ignore_ascii_case("localhost") {
        return Ok(SocketAddr::from(([127, 0, 0, 1], port)));
    }
    Err(format!(
        "{host:?} is not an IP address: give the address (e.g. 127.0.0.1:{port}) or localhost:{port}"
    ))
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some((command, rest)) = args.split_first() else {
        eprintln!("{}", full_usage());
        return ExitCode::from(2);
    };
    let asks_help = |arg: &String| matches!(arg.as_str(), "help" | "--help" | "-h");
    if asks_help(command) || rest.iter().any(|arg| arg == "--help" || arg == "-h") {
        // Not println!: `harness --help | head` must not panic on the closed pipe.
        let _ = writeln!(std::io::stdout(), "{}", full_usage());
        return ExitCode::SUCCESS;
    }
    if command == "bench" {
        return run_bench(rest);
    }
    if command == "chaos" {
        return run_chaos(rest);
    }
    if command == "diff" {
        return run_diff(rest);
    }
    if command == "model-server" {
        block_termination_signals();
        return match serve_model(rest) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("harness model-server: {e}\n{USAGE}");
                ExitCode::FAILURE
            }
        };
    }
    if command == "image" || command == "push" {
        let result = if command == "image" {
            build_image(rest)
        } else {
            push_images(rest)
        };
        return match result {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("harness {command}: {e}\n{USAGE}");
                ExitCode::FAILURE
            }
        };
    }
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
        _ => Err(format!("unknown command {command}\n{}", full_usage())),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("harness: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run_bench(args: &[String]) -> ExitCode {
    let options = match harness_bench::parse_args(args) {
        Ok(options) => options,
        Err(e) => {
            eprintln!("{e}\nusage: {}", harness_bench::USAGE);
            return ExitCode::from(2);
        }
    };
    match harness_bench::run(&options) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => {
            eprintln!("harness bench: a case did not answer as expected");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("harness bench: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run_chaos(args: &[String]) -> ExitCode {
    let options = match harness_chaos::parse_args(args) {
        Ok(options) => options,
        Err(e) => {
            eprintln!("{e}\nusage: {}", harness_chaos::USAGE);
            return ExitCode::from(2);
        }
    };
    match harness_chaos::run(&options) {
        Ok(report) => {
            println!("{}", report.text);
            if report.violations == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("harness chaos: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `harness model-server`: the demo model server with a request log, until killed.
fn serve_model(args: &[String]) -> Result<(), String> {
    let (mut listen, mut log, mut json) = (None, None, None);
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        let value = args.next().cloned().ok_or(format!("{arg} needs a value"));
        match arg.as_str() {
            "--listen" => listen = Some(value?),
            "--log" => log = Some(PathBuf::from(value?)),
            "--json" => json = Some(PathBuf::from(value?)),
            other => return Err(format!("unknown argument {other}")),
        }
    }
    let (Some(listen), Some(log)) = (listen, log) else {
        return Err("--listen and --log are required".to_string());
    };
    let canned = match json {
        Some(path) => Some(CannedResponse {
            status: 200,
            content_type: "application/json".to_string(),
            body: std::fs::read(&path)
                .map_err(|e| format!("cannot read {}: {e}", path.display()))?,
        }),
        None => None,
    };
    let server = ModelServer::start_logging(&listen, &log).map_err(|e| e.to_string())?;
    server.set_response(canned);
    println!("listening on {}", server.addr());
    std::io::stdout().flush().map_err(|e| e.to_string())?;
    wait_for_termination();
    Ok(())
}

fn start_envoy(options: &Options, upstream: SocketAddr) -> Result<Envoy, String> {
    let dir = options
        .manifests
        .clone()
        .ok_or("--manifests DIR is required")?;
    let resolver = ModuleResolver {
        pull_every_image: options.pull_every_image,
        registry_override: options.registry_override.clone(),
        ..Default::default()
    };
    let resources = manifests::load_dir_with(&dir, &resolver).map_err(|e| e.to_string())?;
    if resources.is_empty() {
        return Err(format!("no WasmPlugin in {}", dir.display()));
    }
    let plugins = manifests::to_plugins(resources);
    println!("filter chain, as istiod orders it:");
    for plugin in &plugins {
        match &plugin.fetch_failure {
            None => println!(
                "  {} <- {} ({:?})",
                plugin.name,
                plugin.module.display(),
                plugin.fail_strategy
            ),
            Some(why) => println!(
                "  {} <- RBAC {:?} stand-in ({:?}): {why}",
                plugin.name,
                plugin.fail_strategy.stand_in(),
                plugin.fail_strategy
            ),
        }
    }
    let config = EnvoyConfig {
        plugins,
        upstream,
        concurrency: options.concurrency,
        listener_port: options.port,
        extra_clusters: options.clusters.clone(),
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
    println!("  Envoy log         {}", envoy.log_path().display());
    println!("The plugins' warnings and errors are shown here as they happen. Ctrl-C stops it.");
    let _echo = envoy.echo_plugin_problems();
    wait_for_termination();
    Ok(ExitCode::SUCCESS)
}

fn run_demo(mut options: Options) -> Result<ExitCode, String> {
    let upstream = ModelServer::start().map_err(|e| e.to_string())?;
    // As in a cluster, the modules come from images in a registry when one can run here: the
    // dist/ modules are packed as images, pushed to a registry on 127.0.0.1 and pulled back.
    let registry_dir =
        std::env::temp_dir().join(format!("harness-demo-registry-{}", std::process::id()));
    let registry = if harness_oci::local_registry_available() && options.registry_override.is_none()
    {
        let (registry, prefix, pushed) = harness_oci::serve_dist_images(
            &registry_dir,
            &harness_runner::PLUGINS,
            env!("CARGO_PKG_VERSION"),
        )
        .map_err(|e| e.to_string())?;
        println!("images pushed to a local registry at {prefix}:");
        for image in &pushed {
            println!("  {} {}", image.reference, image.digest);
        }
        options.registry_override = Some(prefix);
        Some(registry)
    } else {
        println!("no local registry (docker-registry and skopeo, installed by ./build.sh setup): modules come from dist/");
        None
    };
    let result = run_walkthrough(&options, &upstream);
    drop(registry);
    let _ = std::fs::remove_dir_all(&registry_dir);
    result
}

fn run_walkthrough(options: &Options, upstream: &ModelServer) -> Result<ExitCode, String> {
    let envoy = start_envoy(options, upstream.addr())?;
    let base = format!("http://{}", envoy.listener());
    println!(
        "\nEnvoy log: {} (the plugins' warnings and errors are shown here as they happen)",
        envoy.log_path().display()
    );
    let _echo = envoy.echo_plugin_problems();
    println!(
        "\nWalkthrough (BERT emotion, Kubeflow) through Envoy at {base}, demo model server at {}",
        upstream.addr()
    );
    println!("(its curl lines name the tokens $DEMO_TOKEN and $FORGED_TOKEN, exported after it)");
    let admin = envoy.admin_url("");
    let failures = harness_demo::run(&base, &admin, &harness_demo::steps());
    if failures > 0 {
        println!(
            "\n{failures} step(s) did not answer as the walkthrough says. Envoy log: {}",
            envoy.log_path().display()
        );
    } else {
        println!("\nevery step answered as the walkthrough says");
    }
    println!("\nThe tokens of the curl lines, for a shell:");
    for export in harness_demo::token_exports() {
        println!("  {export}");
    }
    if !options.serve {
        return Ok(if failures > 0 {
            ExitCode::FAILURE
        } else {
            ExitCode::SUCCESS
        });
    }
    println!(
        "\nThe gateway keeps serving. Try these (the walkthrough used up the v1 predictions' 2 per \
         minute: they answer again a minute later):"
    );
    for step in harness_demo::suggestions() {
        let target = match step.target {
            harness_demo::Target::Gateway => &base,
            harness_demo::Target::Admin => &admin,
        };
        println!(
            "\n  {}, answered {}:\n    {}",
            step.title,
            step.expect_status,
            harness_demo::curl_line(&step, target)
        );
    }
    println!("\nCtrl-C stops it.");
    wait_for_termination();
    Ok(ExitCode::SUCCESS)
}

/// `harness image`: one OCI layout per module, every variant Istio accepts, each tagged.
fn build_image(args: &[String]) -> Result<(), String> {
    let (mut module, mut tag, mut out) = (None, None, None);
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        let value = args.next().cloned().ok_or(format!("{arg} needs a value"));
        match arg.as_str() {
            "--module" => module = Some(PathBuf::from(value?)),
            "--tag" => tag = Some(value?),
            "--out" => out = Some(PathBuf::from(value?)),
            other => return Err(format!("unknown argument {other}")),
        }
    }
    let (Some(module), Some(tag), Some(out)) = (module, tag, out) else {
        return Err("--module, --tag and --out are required".to_string());
    };
    let images =
        harness_oci::write_module_layout(&module, &tag, &out).map_err(|e| e.to_string())?;
    for (tag, digest) in images {
        println!("  {}:{tag}  {digest}", out.display());
    }
    Ok(())
}

/// `harness push`: every layout of `./build.sh images` to a registry; prints what it serves.
fn push_images(args: &[String]) -> Result<(), String> {
    let (mut images, mut to, mut tag) = (None, None, None);
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        let value = args.next().cloned().ok_or(format!("{arg} needs a value"));
        match arg.as_str() {
            "--images" => images = Some(PathBuf::from(value?)),
            "--to" => to = Some(value?),
            "--tag" => tag = Some(value?),
            other => return Err(format!("unknown argument {other}")),
        }
    }
    let (Some(images), Some(to)) = (images, to) else {
        return Err("--images and --to are required".to_string());
    };
    let pushed =
        harness_oci::push_images(&images, &to, tag.as_deref()).map_err(|e| e.to_string())?;
    for image in pushed {
        println!("  {}  {}", image.reference, image.digest);
    }
    Ok(())
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

/// `harness diff`: exit 0 when the plugin decides every request as Istio's filters do, 1 when
/// some differ, 2 when the run could not be made.
fn run_diff(args: &[String]) -> ExitCode {
    let options = match harness_diff::Options::parse(args) {
        Ok(options) => options,
        Err(e) => {
            eprintln!("harness diff: {e}\n{}", harness_diff::USAGE);
            return ExitCode::from(2);
        }
    };
    let mut differ = false;
    let outcome = harness_diff::run(&options, |run| {
        let unexplained = run.report.unexplained().next().is_some();
        differ |= unexplained;
        println!("== {}", run.title);
        if unexplained && options.istio.is_none() {
            println!("{}", run.resources.to_yaml());
        }
        print!("{}", run.report.render(options.show));
    });
    match outcome {
        Ok(()) if differ => ExitCode::from(1),
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("harness diff: {e}");
            ExitCode::from(2)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstream_takes_addresses_and_localhost_and_names_what_else_is_wrong() {
        let upstream =
            |v: &str| parse(&["--upstream".to_string(), v.to_string()]).map(|o| o.upstream);
        assert_eq!(
            upstream("127.0.0.1:8080"),
            Ok(Some("127.0.0.1:8080".parse().unwrap()))
        );
        assert_eq!(
            upstream("localhost:8080"),
            Ok(Some("127.0.0.1:8080".parse().unwrap()))
        );
        assert_eq!(
            upstream("[::1]:8080"),
            Ok(Some("[::1]:8080".parse().unwrap()))
        );
        assert_eq!(
            upstream("model.example.com:8080").unwrap_err(),
            "--upstream model.example.com:8080: \"model.example.com\" is not an IP address: give \
             the address (e.g. 127.0.0.1:8080) or localhost:8080"
        );
        assert_eq!(
            upstream("localhost:http").unwrap_err(),
            "--upstream localhost:http: \"http\" is not a port number"
        );
        assert_eq!(
            upstream("8080").unwrap_err(),
            "--upstream 8080: expected HOST:PORT"
        );
        let cluster = parse(&["--cluster".to_string(), "jwks=localhost:5556".to_string()]).unwrap();
        assert_eq!(cluster.clusters[0].addr, "127.0.0.1:5556".parse().unwrap());
    }
}
