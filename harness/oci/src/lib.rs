//! The modules of `WasmPlugin` resources as istio-agent handles them: OCI images built, served
//! from a loopback registry, pulled and cached (this module), and the resolver that fetches a
//! manifest's `oci://` url for harness-runner's `manifests` reader (`resolver`). Used by the
//! `harness` CLI (`run`, `image`, `push`, `demo`); its own tests pull the plugins from a local
//! registry into Envoy.
//!
//! Wasm modules as OCI images, in the shapes Istio's image fetcher accepts, and fetched back
//! the way istio-agent does it (istio/istio `pkg/wasm/imagefetcher.go`):
//!
//! - building: one reproducible image per variant from a module, written into an OCI layout
//!   directory that `skopeo copy oci:<dir>:<tag> docker://…` pushes unchanged;
//! - fetching: the image is pulled (skopeo, into its `dir:` layout), its manifest digest checked
//!   against `WasmPlugin.sha256`, `plugin.wasm` extracted by Istio's rules, and the module cached
//!   by manifest digest, honouring `imagePullPolicy`.

pub mod resolver;

pub use resolver::ModuleResolver;

use harness_runner::{Error, Result};
use serde::Deserialize;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const OCI_LAYER_TAR_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
pub const DOCKER_LAYER_TAR_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
pub const WASM_CONTENT_LAYER: &str = "application/vnd.module.wasm.content.layer.v1+wasm";
pub const WASM_CONFIG: &str = "application/vnd.module.wasm.config.v1+json";

/// The file name Istio looks for in a tar layer (only the base name is compared).
pub const MODULE_FILE: &str = "plugin.wasm";

/// istio-agent's default `ISTIO_WASM_MAX_BINARY_SIZE_BYTES`.
const MAX_MODULE_BYTES: u64 = 256 * 1024 * 1024;

/// The image shapes built here, both accepted by Istio's fetcher. A single-layer raw-wasm
/// artifact is deliberately not one of them: Istio rejects it (`number of layers must be 2 but
/// got 1`). The Docker variant (Docker v2 media types) is read when pulling but not built: an
/// OCI layout cannot hold it for skopeo, and `skopeo copy --format v2s2` converts the compat
/// image into it for a registry that refuses OCI manifests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Variant {
    /// OCI manifest, one `…layer.v1.tar+gzip` layer holding `plugin.wasm` (the default tag;
    /// docker, podman and crane handle it like any image).
    Compat,
    /// OCI manifest with exactly two layers: the runtime config and the raw module.
    WasmArtifact,
}

impl Variant {
    pub const ALL: [Variant; 2] = [Variant::Compat, Variant::WasmArtifact];

    /// Appended to the version to form the tag (`0.1.0`, `0.1.0-wasm`).
    pub fn tag_suffix(self) -> &'static str {
        match self {
            Variant::Compat => "",
            Variant::WasmArtifact => "-wasm",
        }
    }
}

/// A content-addressed blob (config or layer).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blob {
    pub media_type: &'static str,
    pub bytes: Vec<u8>,
}

impl Blob {
    pub fn digest(&self) -> String {
        sha256_digest(&self.bytes)
    }

    fn descriptor(&self) -> Value {
        json!({"mediaType": self.media_type, "digest": self.digest(), "size": self.bytes.len()})
    }
}

/// One image: its manifest bytes (serialised once; the digest is taken over exactly these
/// bytes) and the blobs it references.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image {
    pub manifest: Vec<u8>,
    pub config: Blob,
    pub layers: Vec<Blob>,
}

impl Image {
    /// `sha256:<hex>` of the manifest: the value `WasmPlugin.sha256` pins (without `sha256:`).
    pub fn digest(&self) -> String {
        sha256_digest(&self.manifest)
    }
}

/// `sha256:<hex>` of `bytes`.
pub fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex(&Sha256::digest(bytes)))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Builds the image of `module` in one variant. Deterministic: the same module gives the same
/// bytes, hence the same digest (fixed tar header fields, gzip without time or file name).
pub fn build_image(module: &[u8], variant: Variant) -> Result<Image> {
    check_module(module)?;
    let (config, layers, annotations) = match variant {
        Variant::Compat => {
            let tar = plugin_tar(module)?;
            let layer = Blob {
                media_type: OCI_LAYER_TAR_GZIP,
                bytes: gzip(&tar)?,
            };
            // Istio never reads the config; it is a valid image config so registries and
            // tools accept the image.
            let config = Blob {
                media_type: OCI_CONFIG,
                bytes: to_json(&json!({
                    "architecture": "wasm",
                    "os": "wasip1",
                    "rootfs": {"type": "layers", "diff_ids": [sha256_digest(&tar)]}
                }))?,
            };
            let annotations = Some(json!({"module.wasm.image/variant": "compat"}));
            (config, vec![layer], annotations)
        }
        Variant::WasmArtifact => {
            // The runtime config of the Wasm image spec; it is both the manifest's config and
            // the first of the two layers Istio requires.
            let runtime = Blob {
                media_type: WASM_CONFIG,
                bytes: to_json(&json!({
                    "type": "envoy_proxy",
                    "abi_version": "proxy_abi_version_0_2_1",
                    "config": {"root_ids": []}
                }))?,
            };
            let content = Blob {
                media_type: WASM_CONTENT_LAYER,
                bytes: module.to_vec(),
            };
            (runtime.clone(), vec![runtime, content], None)
        }
    };
    let mut manifest = json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": config.descriptor(),
        "layers": layers.iter().map(Blob::descriptor).collect::<Vec<_>>(),
    });
    if let Some(annotations) = annotations {
        manifest["annotations"] = annotations;
    }
    Ok(Image {
        manifest: to_json(&manifest)?,
        config,
        layers,
    })
}

fn to_json(value: &Value) -> Result<Vec<u8>> {
    serde_json::to_vec(value).map_err(|e| Error(format!("serialising JSON: {e}")))
}

/// A tar holding only `plugin.wasm`, owned by 0:0, mode 0644, mtime 0.
fn plugin_tar(module: &[u8]) -> Result<Vec<u8>> {
    let mut header = tar::Header::new_ustar();
    header
        .set_path(MODULE_FILE)
        .map_err(|e| Error(format!("tar header: {e}")))?;
    header.set_size(module.len() as u64);
    header.set_mode(0o644);
    header.set_mtime(0);
    header.set_uid(0);
    header.set_gid(0);
    header.set_entry_type(tar::EntryType::Regular);
    header.set_cksum();
    let mut builder = tar::Builder::new(Vec::new());
    builder
        .append(&header, module)
        .map_err(|e| Error(format!("writing the tar layer: {e}")))?;
    builder
        .into_inner()
        .map_err(|e| Error(format!("writing the tar layer: {e}")))
}

fn gzip(data: &[u8]) -> Result<Vec<u8>> {
    // No file name and mtime 0 in the gzip header: the bytes depend on the data only.
    let mut encoder = flate2::GzBuilder::new()
        .mtime(0)
        .write(Vec::new(), flate2::Compression::best());
    encoder.write_all(data)?;
    Ok(encoder.finish()?)
}

/// Writes an OCI image layout (`oci-layout`, `index.json`, `blobs/sha256/`) holding `images`,
/// each under its tag (`org.opencontainers.image.ref.name`), replacing the layout `dir` held.
/// A non-empty `dir` that is not an OCI layout is left alone: it is an error.
pub fn write_layout(dir: &Path, images: &[(String, Image)]) -> Result<()> {
    let holds_other_files =
        std::fs::read_dir(dir).is_ok_and(|mut entries| entries.next().is_some());
    if holds_other_files && !dir.join("oci-layout").is_file() {
        return Err(Error(format!(
            "refusing to replace {}: it is not an OCI image layout",
            dir.display()
        )));
    }
    if dir.exists() {
        std::fs::remove_dir_all(dir)
            .map_err(|e| Error(format!("cannot replace {}: {e}", dir.display())))?;
    }
    let blobs = dir.join("blobs").join("sha256");
    std::fs::create_dir_all(&blobs)
        .map_err(|e| Error(format!("cannot create {}: {e}", blobs.display())))?;
    let mut manifests = Vec::new();
    for (tag, image) in images {
        let mut all = vec![image.manifest.clone(), image.config.bytes.clone()];
        all.extend(image.layers.iter().map(|l| l.bytes.clone()));
        for bytes in all {
            let name = sha256_digest(&bytes);
            let hex = name.trim_start_matches("sha256:");
            std::fs::write(blobs.join(hex), &bytes)?;
        }
        manifests.push(json!({
            "mediaType": OCI_MANIFEST,
            "digest": image.digest(),
            "size": image.manifest.len(),
            "annotations": {"org.opencontainers.image.ref.name": tag}
        }));
    }
    std::fs::write(
        dir.join("oci-layout"),
        to_json(&json!({"imageLayoutVersion": "1.0.0"}))?,
    )?;
    std::fs::write(
        dir.join("index.json"),
        to_json(&json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests}))?,
    )?;
    Ok(())
}

/// What `./build.sh images` does for one module: every variant, tagged `<version><suffix>`, in
/// the OCI layout `out`. Returns `(tag, manifest digest)` per image.
pub fn write_module_layout(
    module: &Path,
    version: &str,
    out: &Path,
) -> Result<Vec<(String, String)>> {
    let code = std::fs::read(module)
        .map_err(|e| Error(format!("cannot read {}: {e}", module.display())))?;
    let mut images = Vec::new();
    for variant in Variant::ALL {
        let image =
            build_image(&code, variant).map_err(|e| Error(format!("{}: {e}", module.display())))?;
        images.push((format!("{version}{}", variant.tag_suffix()), image));
    }
    write_layout(out, &images)?;
    Ok(images
        .into_iter()
        .map(|(tag, image)| (tag, image.digest()))
        .collect())
}

// ---------------------------------------------------------------------------------------------
// Fetching, as istio-agent does it.

/// An image reference from `oci://host[:port]/repo[:tag|@sha256:hex]`, parsed as
/// go-containerregistry does (no host part ⇒ Docker Hub).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRef {
    pub registry: String,
    pub repository: String,
    pub tag: Option<String>,
    /// `sha256:<hex>` when the reference is pinned by digest.
    pub digest: Option<String>,
}

impl ImageRef {
    /// Parses an `oci://` url (the scheme is optional, as in `WasmPlugin.url`).
    pub fn parse(url: &str) -> Result<Self> {
        let rest = url.strip_prefix("oci://").unwrap_or(url);
        let bad = |why: &str| Error(format!("image reference {url:?}: {why}"));
        let (name, digest) = match rest.split_once('@') {
            Some((name, digest)) => {
                let hex = digest
                    .strip_prefix("sha256:")
                    .ok_or_else(|| bad("only sha256 digests are supported"))?;
                if !is_sha256_hex(hex) {
                    return Err(bad("the digest is not 64 lowercase hex digits"));
                }
                (name, Some(digest.to_string()))
            }
            None => (rest, None),
        };
        // The tag is after the last ':' of the last path component (a ':' before a '/' is a port).
        let last_slash = name.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match name[last_slash..].rfind(':') {
            Some(i) => (
                &name[..last_slash + i],
                Some(name[last_slash + i + 1..].to_string()),
            ),
            None => (name, None),
        };
        let (registry, repository) = match name.split_once('/') {
            Some((host, repo))
                if host.contains('.') || host.contains(':') || host == "localhost" =>
            {
                (host.to_string(), repo.to_string())
            }
            _ if name.contains('/') => ("index.docker.io".to_string(), name.to_string()),
            _ => ("index.docker.io".to_string(), format!("library/{name}")),
        };
        if repository.is_empty() || tag.as_deref() == Some("") {
            return Err(bad("expected host[:port]/repository[:tag|@sha256:hex]"));
        }
        let tag = if tag.is_none() && digest.is_none() {
            Some("latest".to_string())
        } else {
            tag
        };
        Ok(Self {
            registry,
            repository,
            tag,
            digest,
        })
    }

    /// The registry is this machine (127.0.0.0/8, ::1 or `localhost`): reached over plain HTTP,
    /// as go-containerregistry does by default.
    pub fn is_loopback(&self) -> bool {
        let host = match self.registry.rsplit_once(':') {
            Some((host, port)) if port.chars().all(|c| c.is_ascii_digit()) => host,
            _ => self.registry.as_str(),
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        host == "localhost"
            || host
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback())
    }

    /// The same image (last path component, tag, digest) in `registry` (`host[:port][/prefix]`).
    pub fn moved_to(&self, registry: &str) -> Result<Self> {
        let name = self
            .repository
            .rsplit('/')
            .next()
            .unwrap_or(&self.repository);
        let registry = registry.trim_start_matches("oci://").trim_end_matches('/');
        let mut moved = Self::parse(&format!("{registry}/{name}"))?;
        moved.tag.clone_from(&self.tag);
        moved.digest.clone_from(&self.digest);
        Ok(moved)
    }

    /// `host/repo:tag` or `host/repo@sha256:…` (the digest wins, as in a pull).
    pub fn reference(&self) -> String {
        match (&self.digest, &self.tag) {
            (Some(digest), _) => format!("{}/{}@{digest}", self.registry, self.repository),
            (None, Some(tag)) => format!("{}/{}:{tag}", self.registry, self.repository),
            (None, None) => format!("{}/{}", self.registry, self.repository),
        }
    }
}

fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// `WasmPlugin.imagePullPolicy`, resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PullPolicy {
    IfNotPresent,
    Always,
}

impl PullPolicy {
    /// Istio's rule: unspecified means IfNotPresent, except a `:latest` tag, which means Always.
    pub fn resolve(field: Option<&str>, image: &ImageRef) -> Result<Self> {
        match field.unwrap_or("UNSPECIFIED_POLICY") {
            "IfNotPresent" => Ok(PullPolicy::IfNotPresent),
            "Always" => Ok(PullPolicy::Always),
            "UNSPECIFIED_POLICY"
                if image.digest.is_none() && image.tag.as_deref() == Some("latest") =>
            {
                Ok(PullPolicy::Always)
            }
            "UNSPECIFIED_POLICY" => Ok(PullPolicy::IfNotPresent),
            other => Err(Error(format!(
                "imagePullPolicy {other:?} is not one of UNSPECIFIED_POLICY, IfNotPresent, Always"
            ))),
        }
    }
}

/// Where images come from. `pull` leaves the image in skopeo's `dir:` layout: the image
/// manifest (an index already resolved to linux/amd64) as `manifest.json`, and each blob in a
/// file named by its sha256 hex.
pub trait Registry {
    fn pull(&self, image: &ImageRef, into: &Path) -> Result<()>;
}

/// Pulls with `skopeo copy` (Debian package `skopeo`, installed by `./build.sh setup`).
#[derive(Debug, Clone, Copy, Default)]
pub struct Skopeo;

impl Skopeo {
    /// Global flags: skopeo refuses to run without a signature policy file.
    pub fn global_args() -> Vec<&'static str> {
        if Path::new("/etc/containers/policy.json").is_file() {
            Vec::new()
        } else {
            vec!["--insecure-policy"]
        }
    }
}

impl Registry for Skopeo {
    fn pull(&self, image: &ImageRef, into: &Path) -> Result<()> {
        let mut command = Command::new("skopeo");
        command
            .args(Skopeo::global_args())
            .args(["copy", "--quiet", "--preserve-digests"])
            // The platform Istio's fetcher picks from an index.
            .args(["--override-os", "linux", "--override-arch", "amd64"]);
        if insecure_registry(image) {
            command.arg("--src-tls-verify=false");
        }
        let output = command
            .arg(format!("docker://{}", image.reference()))
            .arg(format!("dir:{}", into.display()))
            .output()
            .map_err(|e| {
                Error(format!(
                    "cannot run skopeo ({e}); ./build.sh setup installs it"
                ))
            })?;
        if !output.status.success() {
            return Err(Error(format!(
                "skopeo copy docker://{}: {}",
                image.reference(),
                String::from_utf8_lossy(&output.stderr).trim()
            )));
        }
        Ok(())
    }
}

impl Skopeo {
    /// Copies tag `tag` of the OCI layout `layout` to `destination` byte for byte
    /// (`--preserve-digests`: skopeo fails rather than convert) and returns the digest the
    /// registry now serves for it.
    pub fn push(&self, layout: &Path, tag: &str, destination: &ImageRef) -> Result<String> {
        let tls = insecure_registry(destination).then_some("--dest-tls-verify=false");
        run_skopeo(
            Command::new("skopeo")
                .args(Skopeo::global_args())
                .args(["copy", "--quiet", "--preserve-digests"])
                .args(tls)
                .arg(format!("oci:{}:{tag}", layout.display()))
                .arg(format!("docker://{}", destination.reference())),
        )?;
        let tls = insecure_registry(destination).then_some("--tls-verify=false");
        let manifest = run_skopeo(
            Command::new("skopeo")
                .args(Skopeo::global_args())
                .args(["inspect", "--raw"])
                .args(tls)
                .arg(format!("docker://{}", destination.reference())),
        )?;
        Ok(sha256_digest(&manifest))
    }
}

/// Runs skopeo; its stdout, or its stderr as the error.
fn run_skopeo(command: &mut Command) -> Result<Vec<u8>> {
    let output = command.output().map_err(|e| {
        Error(format!(
            "cannot run skopeo ({e}); ./build.sh setup installs it"
        ))
    })?;
    if !output.status.success() {
        return Err(Error(format!(
            "{command:?}: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        )));
    }
    Ok(output.stdout)
}

/// One pushed image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pushed {
    /// `host/repo:tag`.
    pub reference: String,
    /// `sha256:<hex>` of the manifest, as the registry serves it.
    pub digest: String,
}

/// The tags of an OCI layout with their manifest digests, from its `index.json`.
pub fn layout_tags(layout: &Path) -> Result<Vec<(String, String)>> {
    let path = layout.join("index.json");
    let text =
        std::fs::read(&path).map_err(|e| Error(format!("cannot read {}: {e}", path.display())))?;
    let index: Value =
        serde_json::from_slice(&text).map_err(|e| Error(format!("{}: {e}", path.display())))?;
    let manifests = index["manifests"].as_array().cloned().unwrap_or_default();
    manifests
        .iter()
        .map(|m| {
            let tag = m["annotations"]["org.opencontainers.image.ref.name"].as_str();
            let digest = m["digest"].as_str();
            match (tag, digest) {
                (Some(tag), Some(digest)) => Ok((tag.to_string(), digest.to_string())),
                _ => Err(Error(format!(
                    "{}: a manifest without tag or digest",
                    path.display()
                ))),
            }
        })
        .collect()
}

/// Pushes every OCI layout directly under `images` (one per plugin, named after it, as
/// `./build.sh images` writes them) to `<destination>/<plugin>:<tag>`; with `rename_tag`, the
/// version part of each tag is replaced (`0.1.0-wasm` → `<rename_tag>-wasm`). Fails if the
/// registry serves a different digest than the layout holds.
pub fn push_images(
    images: &Path,
    destination: &str,
    rename_tag: Option<&str>,
) -> Result<Vec<Pushed>> {
    let destination = destination
        .trim_start_matches("oci://")
        .trim_end_matches('/');
    let mut layouts: Vec<PathBuf> = std::fs::read_dir(images)
        .map_err(|e| {
            Error(format!(
                "cannot read {}: {e} (run ./build.sh images)",
                images.display()
            ))
        })?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| p.join("index.json").is_file())
        .collect();
    layouts.sort();
    if layouts.is_empty() {
        return Err(Error(format!(
            "no OCI layout in {} (run ./build.sh images)",
            images.display()
        )));
    }
    let mut pushed = Vec::new();
    for layout in layouts {
        let name = layout
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        for (tag, digest) in layout_tags(&layout)? {
            let target_tag = match rename_tag {
                Some(renamed) => {
                    let suffix = Variant::ALL
                        .iter()
                        .map(|v| v.tag_suffix())
                        .filter(|s| !s.is_empty() && tag.ends_with(s))
                        .max_by_key(|s| s.len())
                        .unwrap_or("");
                    format!("{renamed}{suffix}")
                }
                None => tag.clone(),
            };
            let target = ImageRef::parse(&format!("{destination}/{name}:{target_tag}"))?;
            let served = Skopeo.push(&layout, &tag, &target)?;
            if served != digest {
                return Err(Error(format!(
                    "{} serves {served}, but the layout holds {digest}",
                    target.reference()
                )));
            }
            pushed.push(Pushed {
                reference: target.reference(),
                digest: served,
            });
        }
    }
    Ok(pushed)
}

/// Whether `docker-registry` and `skopeo` (Debian packages; `./build.sh setup` installs them)
/// are on PATH, so a [`LocalRegistry`] can be started and pushed to.
pub fn local_registry_available() -> bool {
    ["docker-registry", "skopeo"].iter().all(|tool| {
        std::env::var_os("PATH")
            .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(tool).is_file()))
    })
}

/// A registry on this machine: `docker-registry serve` (distribution v2) on a free 127.0.0.1
/// port, without auth (Istio's fetcher refuses a local auth realm), storage under `dir`. It is
/// killed when the handle is dropped, and by the kernel if this process dies.
pub struct LocalRegistry {
    child: std::process::Child,
    dir: PathBuf,
    addr: std::net::SocketAddr,
}

impl LocalRegistry {
    /// Starts it and waits until `GET /v2/` answers 200.
    pub fn start(dir: &Path) -> Result<Self> {
        // The kernel picks the port; docker-registry cannot report the one it bound to.
        let addr = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| Error(format!("no free port on 127.0.0.1: {e}")))?;
        std::fs::create_dir_all(dir)
            .map_err(|e| Error(format!("cannot create {}: {e}", dir.display())))?;
        let config = dir.join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: {addr}\n",
                dir.join("data").display()
            ),
        )?;
        let log = std::fs::File::create(dir.join("registry.log"))?;
        let mut command = Command::new("docker-registry");
        command
            .arg("serve")
            .arg(&config)
            .stdin(std::process::Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        harness_runner::die_with_parent(&mut command);
        let child = command.spawn().map_err(|e| {
            Error(format!(
                "cannot start docker-registry ({e}); ./build.sh setup installs it"
            ))
        })?;
        let mut registry = LocalRegistry {
            child,
            dir: dir.to_path_buf(),
            addr,
        };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        loop {
            if let Ok(Some(status)) = registry.child.try_wait() {
                return Err(Error(format!(
                    "docker-registry exited ({status}); its log:\n{}",
                    registry.log()
                )));
            }
            let ready = harness_runner::http::send("GET", &format!("http://{addr}/v2/"), &[], b"");
            if matches!(ready, Ok(ref r) if r.status == 200) {
                return Ok(registry);
            }
            if std::time::Instant::now() > deadline {
                return Err(Error(format!(
                    "docker-registry not ready on {addr}; its log:\n{}",
                    registry.log()
                )));
            }
            std::thread::sleep(std::time::Duration::from_millis(25));
        }
    }

    pub fn addr(&self) -> std::net::SocketAddr {
        self.addr
    }

    /// The registry's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("registry.log")).unwrap_or_default()
    }
}

impl Drop for LocalRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A [`LocalRegistry`] under `dir` serving the images of `dist/<plugin>.wasm` for each of
/// `plugins`, tagged `version`, as `./build.sh images` and `./build.sh push` would make them.
/// Returns the registry, the `host:port/prefix` the images are under, and what was pushed.
pub fn serve_dist_images(
    dir: &Path,
    plugins: &[&str],
    version: &str,
) -> Result<(LocalRegistry, String, Vec<Pushed>)> {
    let images = dir.join("images");
    for plugin in plugins {
        write_module_layout(
            &harness_runner::dist_module(plugin),
            version,
            &images.join(plugin),
        )?;
    }
    let registry = LocalRegistry::start(&dir.join("registry"))?;
    let prefix = format!("{}/wasm", registry.addr());
    let pushed = push_images(&images, &prefix, None)?;
    Ok((registry, prefix, pushed))
}

/// Plain HTTP and no certificate check: loopback registries (go-containerregistry's default)
/// and the hosts in `WASM_INSECURE_REGISTRIES` (istio-agent's setting, `*` for all).
fn insecure_registry(image: &ImageRef) -> bool {
    image.is_loopback()
        || std::env::var("WASM_INSECURE_REGISTRIES").is_ok_and(|list| {
            list.split(',')
                .map(str::trim)
                .any(|h| h == "*" || h == image.registry)
        })
}

/// A fetched module.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fetched {
    pub module: PathBuf,
    /// `sha256:<hex>` of the image manifest.
    pub digest: String,
    /// False when the module came from the cache without contacting the registry.
    pub pulled: bool,
}

/// istio-agent's module cache: modules stored by manifest digest, tags remembered so that
/// `IfNotPresent` does not contact the registry again.
#[derive(Debug, Clone)]
pub struct ModuleCache {
    dir: PathBuf,
}

impl ModuleCache {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// `$HARNESS_WASM_CACHE`, else `target/wasm-image-cache/` in the repository.
    pub fn default_dir() -> PathBuf {
        std::env::var_os("HARNESS_WASM_CACHE")
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                harness_runner::repo_root()
                    .join("target")
                    .join("wasm-image-cache")
            })
    }

    fn module_path(&self, digest: &str) -> PathBuf {
        self.dir
            .join("modules")
            .join(format!("{}.wasm", digest.trim_start_matches("sha256:")))
    }

    fn tag_path(&self, image: &ImageRef) -> PathBuf {
        let key = sha256_digest(image.reference().as_bytes());
        self.dir
            .join("tags")
            .join(key.trim_start_matches("sha256:"))
    }

    /// The module of `image`: from the cache when the policy allows, else pulled. `sha256`
    /// (`WasmPlugin.sha256`, hex) must equal the manifest digest.
    pub fn fetch(
        &self,
        registry: &dyn Registry,
        image: &ImageRef,
        sha256: Option<&str>,
        policy: PullPolicy,
    ) -> Result<Fetched> {
        let expected = expected_digest(image, sha256)?;
        // A digest-pinned reference is immutable, so the policy does not matter for it.
        if policy == PullPolicy::IfNotPresent || image.digest.is_some() {
            let known = expected.clone().or_else(|| {
                std::fs::read_to_string(self.tag_path(image))
                    .ok()
                    .map(|d| d.trim().to_string())
            });
            if let Some(digest) = known {
                let module = self.module_path(&digest);
                if module.is_file() {
                    return Ok(Fetched {
                        module,
                        digest,
                        pulled: false,
                    });
                }
            }
        }
        static PULLS: AtomicU32 = AtomicU32::new(0);
        let staging = self.dir.join(format!(
            "pull-{}-{}",
            std::process::id(),
            PULLS.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&staging);
        std::fs::create_dir_all(&self.dir)
            .map_err(|e| Error(format!("cannot create {}: {e}", self.dir.display())))?;
        let result = registry
            .pull(image, &staging)
            .and_then(|()| read_pulled(&staging));
        let _ = std::fs::remove_dir_all(&staging);
        let (digest, module) = result?;
        if let Some(expected) = expected {
            if expected != digest {
                return Err(Error(format!(
                    "module downloaded from {} has checksum {}, which does not match the expected {} (WasmPlugin.sha256 is the image manifest's digest)",
                    image.reference(),
                    digest.trim_start_matches("sha256:"),
                    expected.trim_start_matches("sha256:")
                )));
            }
        }
        let path = self.module_path(&digest);
        write_atomically(&path, &module)?;
        write_atomically(&self.tag_path(image), digest.as_bytes())?;
        Ok(Fetched {
            module: path,
            digest,
            pulled: true,
        })
    }
}

fn expected_digest(image: &ImageRef, sha256: Option<&str>) -> Result<Option<String>> {
    let given = match sha256.filter(|s| !s.is_empty()) {
        Some(hex) if is_sha256_hex(hex) => Some(format!("sha256:{hex}")),
        Some(other) => {
            return Err(Error(format!(
                "sha256 {other:?} is not 64 lowercase hex digits"
            )))
        }
        None => None,
    };
    match (given, image.digest.clone()) {
        (Some(a), Some(b)) if a != b => Err(Error(format!(
            "sha256 {} differs from the digest in the url {b}",
            a.trim_start_matches("sha256:")
        ))),
        (given, pinned) => Ok(given.or(pinned)),
    }
}

fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let parent = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent)
        .map_err(|e| Error(format!("cannot create {}: {e}", parent.display())))?;
    let temp = path.with_extension(format!("tmp-{}", std::process::id()));
    std::fs::write(&temp, bytes)?;
    std::fs::rename(&temp, path)?;
    Ok(())
}

/// `(manifest digest, module)` of an image in skopeo's `dir:` layout.
fn read_pulled(dir: &Path) -> Result<(String, Vec<u8>)> {
    let manifest = std::fs::read(dir.join("manifest.json"))
        .map_err(|e| Error(format!("pulled image has no manifest.json: {e}")))?;
    let module = extract_module(&manifest, &|digest: &str| {
        let hex = digest.trim_start_matches("sha256:");
        std::fs::read(dir.join(hex)).map_err(|e| Error(format!("blob {digest}: {e}")))
    })?;
    Ok((sha256_digest(&manifest), module))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Manifest {
    schema_version: u32,
    #[serde(default)]
    media_type: Option<String>,
    #[serde(default)]
    layers: Vec<Descriptor>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Descriptor {
    media_type: String,
    digest: String,
}

/// The module of an image, by Istio's rules (oci-wasm-image.md §1): a Docker manifest's last
/// layer must be a Docker tar.gzip; any other manifest is tried as the compat variant (last
/// layer an OCI tar+gzip) and then as the oci variant (exactly two layers, one raw module).
/// In a tar layer the module is the first entry whose base name is `plugin.wasm`.
pub fn extract_module(manifest: &[u8], blob: &dyn Fn(&str) -> Result<Vec<u8>>) -> Result<Vec<u8>> {
    let manifest: Manifest = serde_json::from_slice(manifest)
        .map_err(|e| Error(format!("the image manifest is not valid JSON: {e}")))?;
    if manifest.schema_version != 2 {
        return Err(Error(format!(
            "unsupported image manifest schemaVersion {} (Docker schema 1 is refused)",
            manifest.schema_version
        )));
    }
    let verified_blob = |d: &Descriptor| -> Result<Vec<u8>> {
        let bytes = blob(&d.digest)?;
        if sha256_digest(&bytes) != d.digest {
            return Err(Error(format!(
                "blob {} does not match its digest",
                d.digest
            )));
        }
        Ok(bytes)
    };
    let tar_layer = |media_type: &str| -> Result<Vec<u8>> {
        let last = manifest
            .layers
            .last()
            .ok_or_else(|| Error("the image has no layers".to_string()))?;
        if last.media_type != media_type {
            return Err(Error(format!(
                "invalid media type {} (expected {media_type})",
                last.media_type
            )));
        }
        module_from_tar_gz(&verified_blob(last)?)
    };
    let module = if manifest.media_type.as_deref() == Some(DOCKER_MANIFEST) {
        tar_layer(DOCKER_LAYER_TAR_GZIP)
            .map_err(|e| Error(format!("could not parse as Docker variant: {e}")))?
    } else {
        match tar_layer(OCI_LAYER_TAR_GZIP) {
            Ok(module) => module,
            Err(compat) => {
                let oci = if manifest.layers.len() != 2 {
                    Err(Error(format!(
                        "number of layers must be 2 but got {}",
                        manifest.layers.len()
                    )))
                } else {
                    manifest
                        .layers
                        .iter()
                        .find(|l| l.media_type == WASM_CONTENT_LAYER)
                        .ok_or_else(|| Error(format!("no layer of type {WASM_CONTENT_LAYER}")))
                        .and_then(verified_blob)
                };
                oci.map_err(|oci| {
                    Error(format!(
                        "the given image is in invalid format as an OCI image: could not parse as compat variant: {compat}; could not parse as oci variant: {oci}"
                    ))
                })?
            }
        }
    };
    check_module(&module)?;
    Ok(module)
}

fn module_from_tar_gz(layer: &[u8]) -> Result<Vec<u8>> {
    let gunzipped = flate2::read::GzDecoder::new(layer);
    let mut archive = tar::Archive::new(gunzipped);
    let entries = archive
        .entries()
        .map_err(|e| Error(format!("not a tar.gz layer: {e}")))?;
    for entry in entries {
        let entry = entry.map_err(|e| Error(format!("not a tar.gz layer: {e}")))?;
        let is_module = entry
            .path()
            .ok()
            .and_then(|p| p.file_name().map(|n| n == MODULE_FILE))
            .unwrap_or(false);
        if is_module {
            let mut module = Vec::new();
            entry
                .take(MAX_MODULE_BYTES + 1)
                .read_to_end(&mut module)
                .map_err(|e| Error(format!("reading {MODULE_FILE}: {e}")))?;
            if module.len() as u64 > MAX_MODULE_BYTES {
                return Err(Error(format!(
                    "{MODULE_FILE} is larger than {MAX_MODULE_BYTES} bytes"
                )));
            }
            return Ok(module);
        }
    }
    Err(Error(format!("{MODULE_FILE} not found in the layer")))
}

/// istio-agent's check: a Wasm binary starts with `\0asm` and has at least 8 bytes.
fn check_module(module: &[u8]) -> Result<()> {
    if module.len() < 8 || !module.starts_with(b"\0asm") {
        return Err(Error(
            "the module is not a Wasm binary (no \\0asm magic)".to_string(),
        ));
    }
    Ok(())
}

/// Registries for unit tests, without a network.
#[cfg(test)]
pub(crate) mod test_registry {
    use super::*;
    use std::cell::Cell;

    /// A minimal valid Wasm module header followed by `tail`.
    pub fn module(tail: &[u8]) -> Vec<u8> {
        let mut m = b"\0asm\x01\0\0\0".to_vec();
        m.extend_from_slice(tail);
        m
    }

    /// `(digest, bytes)` of the config and layers.
    pub fn image_blobs(image: &Image) -> Vec<(String, Vec<u8>)> {
        std::iter::once(&image.config)
            .chain(&image.layers)
            .map(|b| (b.digest(), b.bytes.clone()))
            .collect()
    }

    /// Serves one image as skopeo's `dir:` layout would, counting pulls.
    pub struct FakeRegistry {
        pub image: Image,
        pub pulls: Cell<u32>,
    }

    impl Registry for FakeRegistry {
        fn pull(&self, _image: &ImageRef, into: &Path) -> Result<()> {
            self.pulls.set(self.pulls.get() + 1);
            std::fs::create_dir_all(into)?;
            std::fs::write(into.join("manifest.json"), &self.image.manifest)?;
            for (digest, bytes) in image_blobs(&self.image) {
                std::fs::write(into.join(digest.trim_start_matches("sha256:")), bytes)?;
            }
            Ok(())
        }
    }

    /// A registry that cannot be reached.
    pub struct Unreachable;

    impl Registry for Unreachable {
        fn pull(&self, image: &ImageRef, _into: &Path) -> Result<()> {
            Err(Error(format!("{}: connection refused", image.reference())))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::test_registry::*;
    use super::*;
    use std::cell::Cell;
    use std::collections::HashMap;

    fn manifest_json(image: &Image) -> Value {
        serde_json::from_slice(&image.manifest).unwrap()
    }

    fn blobs_of(image: &Image) -> HashMap<String, Vec<u8>> {
        image_blobs(image).into_iter().collect()
    }

    fn extract(manifest: &[u8], blobs: &HashMap<String, Vec<u8>>) -> Result<Vec<u8>> {
        extract_module(manifest, &|d: &str| {
            blobs
                .get(d)
                .cloned()
                .ok_or_else(|| Error(format!("no blob {d}")))
        })
    }

    #[test]
    fn the_same_module_gives_the_same_digest() {
        let m = module(b"some code");
        for variant in Variant::ALL {
            let a = build_image(&m, variant).unwrap();
            let b = build_image(&m, variant).unwrap();
            assert_eq!(a, b, "{variant:?}");
            assert_eq!(a.digest(), b.digest());
            assert_ne!(
                a.digest(),
                build_image(&module(b"other code"), variant)
                    .unwrap()
                    .digest()
            );
        }
    }

    #[test]
    fn tar_layer_holds_exactly_plugin_wasm_with_fixed_metadata() {
        let m = module(b"payload");
        {
            let image = build_image(&m, Variant::Compat).unwrap();
            assert_eq!(image.layers.len(), 1);
            let gz = &image.layers[0].bytes;
            // gzip header: no FNAME flag, mtime 0.
            assert_eq!(&gz[..3], &[0x1f, 0x8b, 8]);
            assert_eq!(gz[3] & 0x08, 0, "gzip header names a file");
            assert_eq!(&gz[4..8], &[0, 0, 0, 0], "gzip header has a timestamp");
            let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(&gz[..]));
            let mut entries = Vec::new();
            for entry in archive.entries().unwrap() {
                let mut entry = entry.unwrap();
                let header = entry.header().clone();
                let mut content = Vec::new();
                entry.read_to_end(&mut content).unwrap();
                entries.push((
                    entry.path().unwrap().display().to_string(),
                    header.mode().unwrap(),
                    header.mtime().unwrap(),
                    header.uid().unwrap(),
                    header.gid().unwrap(),
                    content,
                ));
            }
            assert_eq!(
                entries,
                vec![("plugin.wasm".to_string(), 0o644, 0, 0, 0, m.clone())]
            );
            // The config's diff_id is the digest of the uncompressed tar.
            let mut tar = Vec::new();
            flate2::read::GzDecoder::new(&gz[..])
                .read_to_end(&mut tar)
                .unwrap();
            let config: Value = serde_json::from_slice(&image.config.bytes).unwrap();
            assert_eq!(config["rootfs"]["diff_ids"][0], sha256_digest(&tar));
        }
    }

    #[test]
    fn media_types_are_the_ones_istio_reads() {
        let m = module(b"x");
        let compat = manifest_json(&build_image(&m, Variant::Compat).unwrap());
        assert_eq!(compat["schemaVersion"], 2);
        assert_eq!(compat["mediaType"], OCI_MANIFEST);
        assert_eq!(compat["config"]["mediaType"], OCI_CONFIG);
        assert_eq!(compat["layers"][0]["mediaType"], OCI_LAYER_TAR_GZIP);
        assert_eq!(compat["annotations"]["module.wasm.image/variant"], "compat");
        let artifact = build_image(&m, Variant::WasmArtifact).unwrap();
        let wasm = manifest_json(&artifact);
        assert_eq!(wasm["mediaType"], OCI_MANIFEST);
        assert_eq!(wasm["config"]["mediaType"], WASM_CONFIG);
        let layers = wasm["layers"].as_array().unwrap();
        assert_eq!(layers.len(), 2, "Istio rejects a one-layer wasm artifact");
        assert_eq!(layers[0]["mediaType"], WASM_CONFIG);
        assert_eq!(layers[1]["mediaType"], WASM_CONTENT_LAYER);
        assert_eq!(
            artifact.layers[1].bytes, m,
            "the content layer is the raw module"
        );
        // Descriptors name the blobs they point to.
        for (descriptor, blob) in layers.iter().zip(&artifact.layers) {
            assert_eq!(descriptor["digest"], blob.digest());
            assert_eq!(descriptor["size"], blob.bytes.len());
        }
    }

    #[test]
    fn every_variant_extracts_back_to_the_module() {
        let m = module(b"round trip");
        for variant in Variant::ALL {
            let image = build_image(&m, variant).unwrap();
            assert_eq!(
                extract(&image.manifest, &blobs_of(&image)).unwrap(),
                m,
                "{variant:?}"
            );
        }
        // The Docker variant (what `docker build` of `FROM scratch` + plugin.wasm pushes).
        let compat = build_image(&m, Variant::Compat).unwrap();
        let mut docker = manifest_json(&compat);
        docker["mediaType"] = json!(DOCKER_MANIFEST);
        docker["config"]["mediaType"] = json!(DOCKER_CONFIG);
        docker["layers"][0]["mediaType"] = json!(DOCKER_LAYER_TAR_GZIP);
        let docker = to_json(&docker).unwrap();
        assert_eq!(extract(&docker, &blobs_of(&compat)).unwrap(), m);
    }

    #[test]
    fn images_istio_rejects_are_rejected_with_its_reasons() {
        let m = module(b"x");
        let raw = Blob {
            media_type: WASM_CONTENT_LAYER,
            bytes: m.clone(),
        };
        let config = Blob {
            media_type: OCI_CONFIG,
            bytes: b"{}".to_vec(),
        };
        let mut blobs = HashMap::new();
        blobs.insert(raw.digest(), raw.bytes.clone());
        let single_layer = to_json(&json!({
            "schemaVersion": 2, "mediaType": OCI_MANIFEST,
            "config": config.descriptor(), "layers": [raw.descriptor()]
        }))
        .unwrap();
        let err = extract(&single_layer, &blobs).unwrap_err().0;
        assert!(
            err.contains("number of layers must be 2 but got 1"),
            "{err}"
        );
        assert!(
            err.contains("could not parse as compat variant: invalid media type"),
            "{err}"
        );

        // A Docker manifest whose last layer has an OCI media type.
        let compat = build_image(&m, Variant::Compat).unwrap();
        let mut docker = manifest_json(&compat);
        docker["mediaType"] = json!(DOCKER_MANIFEST);
        let err = extract(&to_json(&docker).unwrap(), &blobs_of(&compat))
            .unwrap_err()
            .0;
        assert!(
            err.contains("Docker variant") && err.contains("invalid media type"),
            "{err}"
        );

        // A tar layer with the module under another name.
        let mut tar_builder = tar::Builder::new(Vec::new());
        let mut header = tar::Header::new_ustar();
        header.set_path("filter.wasm").unwrap();
        header.set_size(m.len() as u64);
        header.set_cksum();
        tar_builder.append(&header, &m[..]).unwrap();
        let layer = Blob {
            media_type: OCI_LAYER_TAR_GZIP,
            bytes: gzip(&tar_builder.into_inner().unwrap()).unwrap(),
        };
        let mut blobs = HashMap::new();
        blobs.insert(layer.digest(), layer.bytes.clone());
        let renamed = to_json(&json!({
            "schemaVersion": 2, "config": config.descriptor(), "layers": [layer.descriptor()]
        }))
        .unwrap();
        let err = extract(&renamed, &blobs).unwrap_err().0;
        assert!(err.contains("plugin.wasm not found"), "{err}");

        // Not a Wasm binary.
        assert!(build_image(b"#!/bin/sh\necho", Variant::Compat).is_err());
        let text = Blob {
            media_type: WASM_CONTENT_LAYER,
            bytes: b"not wasm at all".to_vec(),
        };
        let mut blobs = HashMap::new();
        blobs.insert(text.digest(), text.bytes.clone());
        let two = to_json(&json!({
            "schemaVersion": 2, "config": config.descriptor(),
            "layers": [config.descriptor(), text.descriptor()]
        }))
        .unwrap();
        assert!(extract(&two, &blobs).unwrap_err().0.contains("magic"));
    }

    #[test]
    fn layout_lists_every_tag_and_stores_blobs_by_digest() {
        let dir = std::env::temp_dir().join(format!("oci-layout-test-{}", std::process::id()));
        let m = module(b"layout");
        let images: Vec<(String, Image)> = Variant::ALL
            .iter()
            .map(|&v| {
                (
                    format!("1.2.3{}", v.tag_suffix()),
                    build_image(&m, v).unwrap(),
                )
            })
            .collect();
        write_layout(&dir, &images).unwrap();
        let index: Value =
            serde_json::from_slice(&std::fs::read(dir.join("index.json")).unwrap()).unwrap();
        let tags: Vec<&str> = index["manifests"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| {
                m["annotations"]["org.opencontainers.image.ref.name"]
                    .as_str()
                    .unwrap()
            })
            .collect();
        assert_eq!(tags, ["1.2.3", "1.2.3-wasm"]);
        for (entry, (_, image)) in index["manifests"].as_array().unwrap().iter().zip(&images) {
            assert_eq!(entry["digest"], image.digest());
            assert_eq!(entry["mediaType"], OCI_MANIFEST);
            let hex = image.digest().trim_start_matches("sha256:").to_string();
            assert_eq!(
                std::fs::read(dir.join("blobs/sha256").join(hex)).unwrap(),
                image.manifest
            );
        }
        assert!(dir.join("oci-layout").is_file());
        // A second write replaces the layout; a directory holding anything else is kept.
        write_layout(&dir, &images[..1]).unwrap();
        let index: Value =
            serde_json::from_slice(&std::fs::read(dir.join("index.json")).unwrap()).unwrap();
        assert_eq!(index["manifests"].as_array().unwrap().len(), 1);
        std::fs::remove_dir_all(&dir).unwrap();
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("notes.txt"), "mine").unwrap();
        assert!(write_layout(&dir, &images)
            .unwrap_err()
            .0
            .contains("refusing"));
        assert!(dir.join("notes.txt").is_file());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn references_parse_like_go_containerregistry() {
        let r = ImageRef::parse("oci://127.0.0.1:5000/wasm/path-allowlist:0.1.0").unwrap();
        assert_eq!(
            (r.registry.as_str(), r.repository.as_str(), r.tag.as_deref()),
            ("127.0.0.1:5000", "wasm/path-allowlist", Some("0.1.0"))
        );
        assert!(r.is_loopback());
        let hex = "ab".repeat(32);
        let r = ImageRef::parse(&format!("ghcr.io/org/auth-gate@sha256:{hex}")).unwrap();
        assert_eq!(r.digest.as_deref(), Some(format!("sha256:{hex}").as_str()));
        assert_eq!(r.tag, None);
        assert!(!r.is_loopback());
        let r = ImageRef::parse("oci://pj3677/stats-plugin:0.0.1").unwrap();
        assert_eq!(r.registry, "index.docker.io");
        assert_eq!(r.repository, "pj3677/stats-plugin");
        let r = ImageRef::parse("oci://localhost:5000/x").unwrap();
        assert_eq!(r.tag.as_deref(), Some("latest"));
        assert!(r.is_loopback());
        assert_eq!(
            ImageRef::parse("nginx").unwrap().repository,
            "library/nginx"
        );
        assert!(ImageRef::parse("oci://h.io/x@sha256:short").is_err());
        let moved = ImageRef::parse(&format!("oci://ghcr.io/org/auth-gate@sha256:{hex}"))
            .unwrap()
            .moved_to("127.0.0.1:5000/mirror/")
            .unwrap();
        assert_eq!(
            moved.reference(),
            format!("127.0.0.1:5000/mirror/auth-gate@sha256:{hex}")
        );
        let moved = ImageRef::parse("ghcr.io/org/auth-gate:0.1.0")
            .unwrap()
            .moved_to("localhost:5000")
            .unwrap();
        assert_eq!(moved.reference(), "localhost:5000/auth-gate:0.1.0");
        assert!(ImageRef::parse("oci://h.io/x:").is_err());
    }

    #[test]
    fn pull_policy_defaults_like_istio() {
        let latest = ImageRef::parse("h.io/x:latest").unwrap();
        let pinned = ImageRef::parse("h.io/x:1").unwrap();
        assert_eq!(
            PullPolicy::resolve(None, &latest).unwrap(),
            PullPolicy::Always
        );
        assert_eq!(
            PullPolicy::resolve(None, &pinned).unwrap(),
            PullPolicy::IfNotPresent
        );
        assert_eq!(
            PullPolicy::resolve(Some("IfNotPresent"), &latest).unwrap(),
            PullPolicy::IfNotPresent
        );
        assert_eq!(
            PullPolicy::resolve(Some("Always"), &pinned).unwrap(),
            PullPolicy::Always
        );
        assert!(PullPolicy::resolve(Some("Sometimes"), &pinned).is_err());
    }

    fn temp_cache(name: &str) -> ModuleCache {
        let dir = std::env::temp_dir().join(format!("oci-cache-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        ModuleCache::new(dir)
    }

    #[test]
    fn cache_honours_pull_policy_and_checks_the_manifest_digest() {
        let m = module(b"cached");
        let registry = FakeRegistry {
            image: build_image(&m, Variant::Compat).unwrap(),
            pulls: Cell::new(0),
        };
        let digest = registry.image.digest();
        let hex = digest.trim_start_matches("sha256:").to_string();
        let cache = temp_cache("policy");
        let image = ImageRef::parse("oci://127.0.0.1:1/wasm/x:0.1.0").unwrap();

        let first = cache
            .fetch(&registry, &image, Some(&hex), PullPolicy::IfNotPresent)
            .unwrap();
        assert!(first.pulled);
        assert_eq!(first.digest, digest);
        assert_eq!(std::fs::read(&first.module).unwrap(), m);
        assert!(first.module.ends_with(format!("{hex}.wasm")));

        let again = cache
            .fetch(&registry, &image, None, PullPolicy::IfNotPresent)
            .unwrap();
        assert!(!again.pulled, "IfNotPresent re-pulled a cached tag");
        assert_eq!(registry.pulls.get(), 1);

        assert!(
            cache
                .fetch(&registry, &image, None, PullPolicy::Always)
                .unwrap()
                .pulled
        );
        assert_eq!(registry.pulls.get(), 2);

        let pinned = ImageRef::parse(&format!("oci://127.0.0.1:1/wasm/x@{digest}")).unwrap();
        assert!(
            !cache
                .fetch(&registry, &pinned, None, PullPolicy::Always)
                .unwrap()
                .pulled
        );

        let wrong = "0".repeat(64);
        let empty = temp_cache("wrong");
        let err = empty
            .fetch(&registry, &image, Some(&wrong), PullPolicy::IfNotPresent)
            .unwrap_err()
            .0;
        std::fs::remove_dir_all(empty.dir()).unwrap();
        assert!(
            err.contains("does not match the expected") && err.contains(&hex),
            "{err}"
        );
        // A wrong sha256 is not satisfied by the cached tag either.
        assert!(cache
            .fetch(&registry, &image, Some(&wrong), PullPolicy::IfNotPresent)
            .is_err());
        assert!(cache
            .fetch(&registry, &pinned, Some(&wrong), PullPolicy::IfNotPresent)
            .unwrap_err()
            .0
            .contains("differs from the digest in the url"));
        std::fs::remove_dir_all(cache.dir()).unwrap();
    }
}
