//! The dist modules export only the proxy-wasm callbacks their plugin implements. The SDK
//! exports every `proxy_on_*` callback and Envoy skips only those a module does not export, so
//! `./build.sh build` removes the others (wasm-metadce), keeping the list in the crate's
//! `[package.metadata.proxy-wasm]` `exports`. Checked here: each `dist/<plugin>.wasm` exports
//! exactly that list, and the list names every callback the contexts of the plugin's
//! `src/filter.rs` implement (a callback missing from it would never be called);
//! model-gateway-request-only runs model-gateway's contexts without their response callbacks.

use harness_runner::{dist_module, repo_root, BUNDLE, PLUGINS, REQUEST_ONLY_BUNDLE};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

/// What every module keeps, whatever its contexts implement: the SDK's entry points
/// (`_initialize` runs `main!`), the memory, the ABI marker, the allocator Envoy copies into, and
/// the context bookkeeping: `proxy_on_delete` is where the SDK frees a context (Envoy calls it
/// right after `proxy_on_done`, each only if exported), so a plugin's end-of-stream work is done
/// as its context drops and no module exports `proxy_on_done`, one VM entry less per request.
const ALWAYS: [&str; 8] = [
    "_initialize",
    "memory",
    "proxy_abi_version_0_2_1",
    "proxy_on_memory_allocate",
    "proxy_on_vm_start",
    "proxy_on_configure",
    "proxy_on_context_create",
    "proxy_on_delete",
];

/// What `src/filter.rs` says (a context's method of the SDK's traits, or a call out whose answer
/// the SDK's dispatcher must see to forget its token) and the exports that must then stay
/// (proxy-wasm 0.2's dispatcher.rs).
const NEEDS: [(&str, &[&str]); 21] = [
    ("fn on_http_request_headers(", &["proxy_on_request_headers"]),
    ("fn on_http_request_body(", &["proxy_on_request_body"]),
    (
        "fn on_http_request_trailers(",
        &["proxy_on_request_trailers"],
    ),
    (
        "fn on_http_response_headers(",
        &["proxy_on_response_headers"],
    ),
    ("fn on_http_response_body(", &["proxy_on_response_body"]),
    (
        "fn on_http_response_trailers(",
        &["proxy_on_response_trailers"],
    ),
    ("fn on_done(", &["proxy_on_done"]),
    ("fn on_log(", &["proxy_on_log"]),
    ("fn on_tick(", &["proxy_on_tick"]),
    ("fn on_queue_ready(", &["proxy_on_queue_ready"]),
    ("fn on_foreign_function(", &["proxy_on_foreign_function"]),
    (
        "fn on_http_call_response(",
        &["proxy_on_http_call_response"],
    ),
    ("dispatch_http_call(", &["proxy_on_http_call_response"]),
    (
        "fn on_grpc_call_response(",
        &["proxy_on_grpc_receive", "proxy_on_grpc_close"],
    ),
    (
        "dispatch_grpc_call(",
        &["proxy_on_grpc_receive", "proxy_on_grpc_close"],
    ),
    (
        "open_grpc_stream(",
        &[
            "proxy_on_grpc_receive_initial_metadata",
            "proxy_on_grpc_receive",
            "proxy_on_grpc_receive_trailing_metadata",
            "proxy_on_grpc_close",
        ],
    ),
    ("fn on_new_connection(", &["proxy_on_new_connection"]),
    ("fn on_downstream_data(", &["proxy_on_downstream_data"]),
    ("fn on_upstream_data(", &["proxy_on_upstream_data"]),
    (
        "fn on_downstream_close(",
        &["proxy_on_downstream_connection_close"],
    ),
    (
        "fn on_upstream_close(",
        &["proxy_on_upstream_connection_close"],
    ),
];

struct Crate {
    dir: PathBuf,
    /// `[package.metadata.proxy-wasm]` `exports`; `None`: the crate keeps every export.
    exports: Option<Vec<String>>,
}

/// The plugin crates as `cargo metadata` sees them.
fn crates() -> BTreeMap<String, Crate> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let output = std::process::Command::new(cargo)
        .args(["metadata", "--no-deps", "--format-version", "1"])
        .current_dir(repo_root())
        .output()
        .unwrap();
    assert!(output.status.success(), "cargo metadata failed");
    let meta: Value = serde_json::from_slice(&output.stdout).unwrap();
    let mut crates = BTreeMap::new();
    for package in meta["packages"].as_array().unwrap() {
        let name = package["name"].as_str().unwrap();
        if !PLUGINS.contains(&name) {
            continue;
        }
        let manifest = PathBuf::from(package["manifest_path"].as_str().unwrap());
        let exports = package["metadata"]["proxy-wasm"]["exports"]
            .as_array()
            .map(|list| {
                list.iter()
                    .map(|e| e.as_str().unwrap().to_string())
                    .collect()
            });
        let dir = manifest.parent().unwrap().to_path_buf();
        crates.insert(name.to_string(), Crate { dir, exports });
    }
    assert_eq!(crates.len(), PLUGINS.len(), "a plugin crate is missing");
    crates
}

/// The names in a Wasm module's export section, in order.
fn wasm_exports(module: &[u8]) -> Result<Vec<String>, String> {
    fn leb(bytes: &[u8], pos: &mut usize) -> Result<usize, String> {
        let (mut value, mut shift) = (0usize, 0);
        loop {
            let byte = *bytes.get(*pos).ok_or("truncated LEB128")?;
            *pos += 1;
            value |= usize::from(byte & 0x7f) << shift;
            if byte < 0x80 {
                return Ok(value);
            }
            shift += 7;
            if shift > 28 {
                return Err("LEB128 too long".into());
            }
        }
    }
    if module.get(..8) != Some(b"\0asm\x01\0\0\0") {
        return Err("not a Wasm module (version 1)".into());
    }
    let mut pos = 8;
    while pos < module.len() {
        let id = module[pos];
        pos += 1;
        let size = leb(module, &mut pos)?;
        let end = pos.checked_add(size).filter(|&e| e <= module.len());
        let end = end.ok_or("section past the end")?;
        if id == 7 {
            let section = &module[..end];
            let mut at = pos;
            let count = leb(section, &mut at)?;
            let mut names = Vec::with_capacity(count);
            for _ in 0..count {
                let len = leb(section, &mut at)?;
                let name = section.get(at..at + len).ok_or("name past the section")?;
                names.push(String::from_utf8(name.to_vec()).map_err(|e| e.to_string())?);
                at += len + 1; // the name, then the kind byte
                leb(section, &mut at)?; // the index
            }
            if at != end {
                return Err("export section of the wrong size".into());
            }
            return Ok(names);
        }
        pos = end;
    }
    Ok(Vec::new())
}

fn dist_exports(plugin: &str) -> Vec<String> {
    let path = dist_module(plugin);
    let module = std::fs::read(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (run ./build.sh build)", path.display()));
    wasm_exports(&module).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn each_module_exports_what_its_crate_declares() {
    let every_callback: BTreeSet<&str> =
        NEEDS.iter().flat_map(|(_, e)| e.iter().copied()).collect();
    for (plugin, krate) in crates() {
        let exported = dist_exports(&plugin);
        let exported_set: BTreeSet<&str> = exported.iter().map(String::as_str).collect();
        assert_eq!(exported_set.len(), exported.len(), "{plugin}: {exported:?}");
        match &krate.exports {
            Some(declared) => {
                let declared: BTreeSet<&str> = declared.iter().map(String::as_str).collect();
                assert_eq!(exported_set, declared, "dist/{plugin}.wasm");
            }
            // Without the list, nothing is removed: every callback of the SDK stays.
            None => {
                let missing: Vec<_> = every_callback.difference(&exported_set).collect();
                assert!(missing.is_empty(), "dist/{plugin}.wasm lacks {missing:?}");
            }
        }
    }
}

#[test]
fn path_allowlist_and_the_request_only_bundle_export_no_callback_after_the_request_headers() {
    for plugin in ["path-allowlist", REQUEST_ONLY_BUNDLE] {
        let exported = dist_exports(plugin);
        assert!(exported.iter().any(|e| e == "proxy_on_request_headers"));
        assert!(exported.iter().any(|e| e == "proxy_on_delete"));
        for absent in [
            "proxy_on_request_body",
            "proxy_on_response_headers",
            "proxy_on_response_body",
            "proxy_on_response_trailers",
            "proxy_on_done",
            "proxy_on_log",
        ] {
            assert!(
                !exported.iter().any(|e| e == absent),
                "dist/{plugin}.wasm exports {absent}: {exported:?}"
            );
        }
    }
}

#[test]
fn declared_exports_are_the_callbacks_filter_rs_implements() {
    let mut checked = 0;
    for (plugin, krate) in crates() {
        let Some(declared) = &krate.exports else {
            continue;
        };
        let request_only = plugin == REQUEST_ONLY_BUNDLE;
        let contexts = if request_only {
            &crates()[BUNDLE].dir
        } else {
            &krate.dir
        };
        let filter = contexts.join("src/filter.rs");
        let source = std::fs::read_to_string(&filter)
            .unwrap_or_else(|e| panic!("{}: {e}", filter.display()));
        let mut needed: BTreeSet<&str> = ALWAYS.into_iter().collect();
        for (needle, exports) in NEEDS {
            if source.contains(needle) {
                needed.extend(exports.iter().copied());
            }
        }
        if request_only {
            needed.retain(|export| !export.starts_with("proxy_on_response_"));
        }
        let declared: BTreeSet<&str> = declared.iter().map(String::as_str).collect();
        assert_eq!(
            declared, needed,
            "{plugin}: [package.metadata.proxy-wasm] exports (left) against what src/filter.rs \
             implements (right)"
        );
        checked += 1;
    }
    assert!(checked > 0, "no plugin declares its exports");
}

#[test]
fn no_module_exports_proxy_on_done() {
    // Its work is done as a context drops, in `proxy_on_delete`, which Envoy calls right after.
    for plugin in PLUGINS {
        let exported = dist_exports(plugin);
        assert!(
            exported.iter().all(|e| e != "proxy_on_done"),
            "dist/{plugin}.wasm exports proxy_on_done: {exported:?}"
        );
    }
}

#[test]
fn the_export_reader_reads_a_module_and_refuses_garbage() {
    // (module (func) (export "f" (func 0)) (memory 1) (export "memory" (memory 0)))
    let module = b"\0asm\x01\0\0\0\
        \x01\x04\x01\x60\0\0\
        \x03\x02\x01\0\
        \x05\x03\x01\0\x01\
        \x07\x0e\x02\x01f\0\0\x06memory\x02\0\
        \x0a\x04\x01\x02\0\x0b";
    assert_eq!(wasm_exports(module).unwrap(), ["f", "memory"]);
    assert!(wasm_exports(b"\0asm\x02\0\0\0").is_err());
    assert!(wasm_exports(&module[..30]).is_err());
}
