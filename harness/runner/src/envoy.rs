//! A real Envoy process: config written to a private temp dir, admin and listener on ports the
//! kernel picks (no races between parallel tests), readiness awaited on admin `/ready`, log
//! captured, and the process killed when the handle is dropped (also when a test panics, and
//! by the kernel if the harness itself dies).

use crate::render::{self, EnvoyConfig, Plugin};
use crate::{http, Error, Result};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long Envoy may take to become ready (a cold v8 compile of a large module included).
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a pushed extension config may take to be loaded or refused (a v8 compile included).
const PUSH_TIMEOUT: Duration = Duration::from_secs(60);

pub struct Envoy {
    child: Child,
    dir: PathBuf,
    listener: SocketAddr,
    admin: SocketAddr,
    /// Where the ECDS files live, when the plugins were started with `live_plugin_config`.
    ecds_dir: Option<PathBuf>,
    /// `version_info` of the next ECDS file written.
    ecds_version: AtomicU64,
    /// The extension config last given to each filter, by filter name, accepted or not:
    /// Envoy silently ignores a push of the same config again (it keeps the hash of the last
    /// config it tried, also when the plugin refused it).
    last_pushed: Mutex<HashMap<String, serde_json::Value>>,
}

/// What Envoy did with a pushed extension config.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushOutcome {
    /// Accepted: `extension_config_discovery.http_filter.<filter>.config_reload` moved; new streams use it.
    Reloaded,
    /// Refused (the module's `on_configure` said no, or Envoy could not load it):
    /// `config_fail` moved and the filter keeps its last good config.
    Rejected,
}

/// The `envoy` binary: `$ENVOY_BIN`, else the one `./build.sh setup` put in `.venv/`, else PATH.
pub fn envoy_binary() -> PathBuf {
    if let Some(bin) = std::env::var_os("ENVOY_BIN") {
        return PathBuf::from(bin);
    }
    let venv = crate::repo_root().join(".venv/bin/envoy");
    if venv.is_file() {
        venv
    } else {
        PathBuf::from("envoy")
    }
}

impl Envoy {
    /// Renders the bootstrap, starts Envoy and waits until it serves. The error of a refused
    /// configuration carries Envoy's log, where the plugin says why.
    pub fn start(config: EnvoyConfig) -> Result<Self> {
        // A plugin whose fetch failed has no module: it is rendered as an RBAC stand-in.
        for plugin in config.plugins.iter().filter(|p| p.fetch_failure.is_none()) {
            if !plugin.module.is_file() {
                return Err(Error(format!(
                    "module {} not found: run ./build.sh build",
                    plugin.module.display()
                )));
            }
        }
        let dir = private_dir()?;
        let ecds_dir = config.live_plugin_config.then(|| dir.join("ecds"));
        let bootstrap_json = match &ecds_dir {
            None => render::bootstrap(&config),
            Some(ecds_dir) => {
                std::fs::create_dir_all(ecds_dir)?;
                for plugin in &config.plugins {
                    write_ecds_file(ecds_dir, plugin, 0)?;
                }
                render::bootstrap_with_discovery(&config, ecds_dir)
            }
        };
        let bootstrap = dir.join("envoy.json");
        let rendered =
            serde_json::to_string_pretty(&bootstrap_json).map_err(|e| Error(e.to_string()))?;
        std::fs::write(&bootstrap, rendered)?;
        let log = dir.join("envoy.log");
        let admin_file = dir.join("admin-address");
        let mut command = Command::new(envoy_binary());
        command
            .arg("-c")
            .arg(&bootstrap)
            .arg("--concurrency")
            .arg(config.concurrency.max(1).to_string())
            .arg("--disable-hot-restart")
            .arg("--admin-address-path")
            .arg(&admin_file)
            .arg("--log-path")
            .arg(&log)
            // Tests read the log while Envoy runs: flush it every 100 ms, not every 10 s.
            .arg("--file-flush-interval-msec")
            .arg("100")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        crate::die_with_parent(&mut command);
        let child = command.spawn().map_err(|e| {
            Error(format!(
                "cannot start {}: {e} (run ./build.sh setup)",
                envoy_binary().display()
            ))
        })?;
        let mut envoy = Envoy {
            child,
            dir,
            listener: SocketAddr::from(([127, 0, 0, 1], 0)),
            admin: SocketAddr::from(([127, 0, 0, 1], 0)),
            ecds_dir,
            ecds_version: AtomicU64::new(1),
            last_pushed: Mutex::new(
                config
                    .plugins
                    .iter()
                    .map(|p| (p.filter_name(), extension_config(p)))
                    .collect(),
            ),
        };
        envoy.wait_ready(&admin_file)?;
        Ok(envoy)
    }

    fn wait_ready(&mut self, admin_file: &Path) -> Result<()> {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(Error(format!(
                    "envoy exited ({status}) before it was ready; its warnings and errors:\n{}",
                    self.log_problems()
                )));
            }
            if self.admin.port() == 0 {
                if let Some(addr) = std::fs::read_to_string(admin_file)
                    .ok()
                    .and_then(|s| s.trim().parse().ok())
                {
                    self.admin = addr;
                }
            }
            if self.admin.port() != 0 {
                let ready = http::send("GET", &format!("http://{}/ready", self.admin), &[], b"");
                if matches!(ready, Ok(ref r) if r.status == 200) {
                    self.listener = self.discover_listener()?;
                    return Ok(());
                }
            }
            if Instant::now() > deadline {
                return Err(Error(format!(
                    "envoy not ready after {READY_TIMEOUT:?}; its warnings and errors:\n{}",
                    self.log_problems()
                )));
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    /// The listener's real port, from admin `/listeners` (it was bound to port 0).
    fn discover_listener(&self) -> Result<SocketAddr> {
        let listeners = self.admin_get("/listeners?format=json")?;
        let parsed: serde_json::Value =
            serde_json::from_str(&listeners).map_err(|e| Error(e.to_string()))?;
        let socket = &parsed["listener_statuses"][0]["local_address"]["socket_address"];
        let port = socket["port_value"]
            .as_u64()
            .and_then(|p| u16::try_from(p).ok());
        match port {
            Some(port) if port != 0 => Ok(SocketAddr::from(([127, 0, 0, 1], port))),
            _ => Err(Error(format!(
                "no listener port in admin /listeners: {listeners}"
            ))),
        }
    }

    pub fn listener(&self) -> SocketAddr {
        self.listener
    }

    pub fn admin(&self) -> SocketAddr {
        self.admin
    }

    /// `http://<listener><path>`, the address clients use.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.listener)
    }

    pub fn admin_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.admin)
    }

    /// GET on the admin interface; the body as text.
    pub fn admin_get(&self, path: &str) -> Result<String> {
        let response = http::send("GET", &self.admin_url(path), &[], b"")?;
        if response.status != 200 {
            return Err(Error(format!("admin {path}: status {}", response.status)));
        }
        Ok(response.text())
    }

    /// Envoy's log file.
    pub fn log_path(&self) -> PathBuf {
        self.dir.join("envoy.log")
    }

    /// Envoy's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// Prints on stderr, from a background thread and as Envoy writes them, the warnings and
    /// errors of the Wasm plugins (see [`plugin_problem`]), from the start of the log: a person
    /// at `harness run` sees a failing JWKS fetch or a refused config without opening the log.
    /// Stops when the returned handle is dropped.
    pub fn echo_plugin_problems(&self) -> LogEcho {
        let stop = Arc::new(AtomicBool::new(false));
        let path = self.log_path();
        let stopped = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            let mut offset = 0;
            let mut partial = String::new();
            while !stopped.load(Ordering::Relaxed) {
                if let Ok(bytes) = read_from(&path, &mut offset) {
                    partial.push_str(&String::from_utf8_lossy(&bytes));
                    // A line is printed once whole: the last piece may still be being written.
                    if let Some(end) = partial.rfind('\n') {
                        for line in partial[..end].lines().filter_map(plugin_problem) {
                            eprintln!("{line}");
                        }
                        partial.drain(..=end);
                    }
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        });
        LogEcho {
            stop,
            thread: Some(thread),
        }
    }

    /// The log lines that say what went wrong (warnings, errors and everything the Wasm
    /// plugins logged), without the long list of extensions Envoy prints at start.
    pub fn log_problems(&self) -> String {
        self.log()
            .lines()
            .filter(|l| {
                ["][warning][", "][error][", "][critical][", "][wasm]"]
                    .iter()
                    .any(|m| l.contains(m))
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// How Envoy ended, if it has (it should not while the handle lives).
    pub fn exit_status(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// Pushes `plugin` (its module, `pluginConfig` and fail strategy; matched to the running
    /// filter by name) as istiod pushes a changed `WasmPlugin`: the ECDS file is replaced
    /// atomically (Envoy's watch fires on the rename) and this waits until Envoy has loaded or
    /// refused it. Needs an Envoy started with `live_plugin_config`, and a config other than
    /// the last one pushed to that filter (Envoy would ignore it without a word).
    pub fn push_plugin(&self, plugin: &Plugin) -> Result<PushOutcome> {
        let ecds_dir = self.ecds_dir.as_ref().ok_or_else(|| {
            Error("push_plugin needs an Envoy started with live_plugin_config".into())
        })?;
        let filter = plugin.filter_name();
        let pushed = extension_config(plugin);
        {
            let mut last_pushed = self.last_pushed_configs();
            let Some(last) = last_pushed.get_mut(&filter) else {
                return Err(Error(format!("no filter {filter} in this Envoy")));
            };
            if *last == pushed {
                return Err(Error(format!(
                    "the config pushed for {filter} is the last one it was given: Envoy would \
                     ignore it"
                )));
            }
            *last = pushed;
        }
        let before = self.discovery_counters(&filter)?;
        let version = self.ecds_version.fetch_add(1, Ordering::SeqCst);
        write_ecds_file(ecds_dir, plugin, version)?;
        let deadline = Instant::now() + PUSH_TIMEOUT;
        loop {
            let now = self.discovery_counters(&filter)?;
            if now.fail > before.fail {
                return Ok(PushOutcome::Rejected);
            }
            if now.reload > before.reload {
                // A refused config moves config_reload first, then config_fail: look again.
                std::thread::sleep(Duration::from_millis(100));
                if self.discovery_counters(&filter)?.fail > before.fail {
                    return Ok(PushOutcome::Rejected);
                }
                return Ok(PushOutcome::Reloaded);
            }
            if Instant::now() > deadline {
                let log = self.log();
                let mut problems: Vec<&str> = log
                    .lines()
                    .filter(|l| {
                        ["][warning][", "][error][", "][critical]["]
                            .iter()
                            .any(|m| l.contains(m))
                    })
                    .collect();
                problems.drain(..problems.len().saturating_sub(10));
                return Err(Error(format!(
                    "envoy neither loaded nor refused the config pushed for {filter} within \
                     {PUSH_TIMEOUT:?}; its last warnings and errors:\n{}",
                    problems.join("\n")
                )));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn last_pushed_configs(&self) -> std::sync::MutexGuard<'_, HashMap<String, serde_json::Value>> {
        self.last_pushed
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// `extension_config_discovery.http_filter.<filter>.config_reload` and `.config_fail`.
    fn discovery_counters(&self, filter: &str) -> Result<DiscoveryCounters> {
        let stats = self.admin_get("/stats?filter=extension_config_discovery")?;
        let prefix = format!("extension_config_discovery.http_filter.{filter}.");
        let counter = |name: &str| {
            stats
                .lines()
                .filter_map(|line| line.split_once(": "))
                .find(|(stat, _)| stat.strip_prefix(&prefix) == Some(name))
                .and_then(|(_, value)| value.trim().parse::<u64>().ok())
                .unwrap_or(0)
        };
        Ok(DiscoveryCounters {
            reload: counter("config_reload"),
            fail: counter("config_fail"),
        })
    }

    /// The directory holding this run's bootstrap and log.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Drop for Envoy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::env::var_os("HARNESS_KEEP").is_none() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// The background thread of [`Envoy::echo_plugin_problems`]; dropping it stops the thread.
pub struct LogEcho {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for LogEcho {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The bytes of `path` after `offset`, moving `offset` past them.
fn read_from(path: &Path, offset: &mut u64) -> std::io::Result<Vec<u8>> {
    use std::io::{Read, Seek, SeekFrom};
    let mut file = std::fs::File::open(path)?;
    file.seek(SeekFrom::Start(*offset))?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)?;
    *offset += bytes.len() as u64;
    Ok(bytes)
}

/// A Wasm log line of Envoy at warning level or above, shortened for a console: its time, level
/// and message, without the date and Envoy's source location. `None` for every other line.
/// Envoy's format: `[2026-12-02 19:50:58.881][27223][warning][wasm] [source/…:1151] wasm log: …`.
pub fn plugin_problem(line: &str) -> Option<String> {
    let mut fields = line.strip_prefix('[')?.splitn(4, "][");
    let (stamp, _thread, level, rest) = (
        fields.next()?,
        fields.next()?,
        fields.next()?,
        fields.next()?,
    );
    if !matches!(level, "warning" | "error" | "critical") {
        return None;
    }
    let message = rest.strip_prefix("wasm] ")?;
    let message = message
        .strip_prefix('[')
        .and_then(|m| m.split_once("] "))
        .map_or(message, |(_, m)| m);
    let time = stamp.rsplit(' ').next().unwrap_or(stamp);
    Some(format!("envoy {time} {level}: {message}"))
}

/// The `typed_config` of `plugin`'s extension config, as its ECDS file carries it.
fn extension_config(plugin: &Plugin) -> serde_json::Value {
    let mut resource = render::ecds_resource(plugin, 0);
    resource["resources"][0]["typed_config"].take()
}

struct DiscoveryCounters {
    reload: u64,
    fail: u64,
}

/// Writes `plugin`'s ECDS file as a whole: to a temp file, then renamed over the old one, so
/// Envoy (watching for moves into the directory) never reads half a file.
fn write_ecds_file(ecds_dir: &Path, plugin: &Plugin, version: u64) -> Result<()> {
    let file = render::ecds_file(ecds_dir, plugin);
    let temp = ecds_dir.join(format!(".{}.tmp", plugin.name));
    let text = serde_json::to_string_pretty(&render::ecds_resource(plugin, version))
        .map_err(|e| Error(e.to_string()))?;
    std::fs::write(&temp, text)?;
    std::fs::rename(&temp, &file)?;
    Ok(())
}

fn private_dir() -> Result<PathBuf> {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let dir = std::env::temp_dir().join(format!(
        "harness-envoy-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plugin_warnings_and_errors_reach_the_console() {
        let warning = "[2026-12-02 19:50:58.881][27223][warning][wasm] [source/extensions/common/wasm/context.cc:1151] wasm log: auth-gate: JWKS fetch of http://dex/keys failed: no cluster";
        assert_eq!(
            plugin_problem(warning).as_deref(),
            Some("envoy 19:50:58.881 warning: wasm log: auth-gate: JWKS fetch of http://dex/keys failed: no cluster")
        );
        let error = "[2026-12-02 19:50:58.881][1][error][wasm] [source/extensions/common/wasm/wasm.cc:110] Wasm VM failed to initialize";
        assert_eq!(
            plugin_problem(error).as_deref(),
            Some("envoy 19:50:58.881 error: Wasm VM failed to initialize")
        );
        for other in [
            "[2026-12-02 19:50:58.881][27223][info][wasm] [source/x.cc:1] wasm log: auth-gate: configuration accepted",
            "[2026-12-02 19:50:58.881][27223][warning][main] [source/server/server.cc:1059] There is no configured limit",
            "  a continuation line",
            "",
        ] {
            assert_eq!(plugin_problem(other), None, "{other}");
        }
    }
}
