//! A real Envoy process: config written to a private temp dir, admin and listener on ports the
//! kernel picks (no races between parallel tests), readiness awaited on admin `/ready`, log
//! captured, and the process killed when the handle is dropped (also when a test panics, and
//! by the kernel if the harness itself dies).

use crate::render::{self, EnvoyConfig};
use crate::{http, Error, Result};
use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// How long Envoy may take to become ready (a cold v8 compile of a large module included).
const READY_TIMEOUT: Duration = Duration::from_secs(60);

pub struct Envoy {
    child: Child,
    dir: PathBuf,
    listener: SocketAddr,
    admin: SocketAddr,
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
        let bootstrap = dir.join("envoy.json");
        let rendered = serde_json::to_string_pretty(&render::bootstrap(&config))
            .map_err(|e| Error(e.to_string()))?;
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
        // SAFETY: prctl and sigprocmask are async-signal-safe. The kernel kills Envoy when the
        // process that started it dies, so a killed test run leaves no Envoy behind; and Envoy
        // gets the default signal mask even if the caller blocks SIGINT (as `harness run` does).
        unsafe {
            command.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                let mut empty: libc::sigset_t = std::mem::zeroed();
                libc::sigemptyset(&mut empty);
                libc::sigprocmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut());
                Ok(())
            });
        }
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

    /// Envoy's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("envoy.log")).unwrap_or_default()
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
