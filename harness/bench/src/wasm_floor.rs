//! The Wasm floor: tiny proxy-wasm modules built by the bench itself from the text below (no
//! crate, no wasm target needed). They do nothing a plugin could skip, so they measure what
//! crossing into a v8 VM costs per request: `noop` answers every callback with Continue; `body`
//! also copies each response body chunk out of Envoy as it passes (never buffering the
//! response, as emotion-stats must not) and reads every byte once; `hostcalls` makes the
//! hostcalls of one request through model-gateway's four sections, without their logic.
//!
//! They have no SDK inside: the Rust proxy-wasm SDK adds a context map lookup per callback on
//! top, a few µs at most next to the ~27 µs the baseline measured for its Rust no-op.

use harness_runner::{Error, Result};
use std::path::{Path, PathBuf};

/// What every module has: memory, ABI version, a fixed allocation area, the context lifecycle.
const LIFECYCLE: &str = r#"
  (memory (export "memory") 4)
  (func (export "proxy_abi_version_0_2_1"))
  ;; One request at a time per VM: a fixed area from 64 KiB on, 192 KiB long, is enough.
  (func (export "proxy_on_memory_allocate") (param $size i32) (result i32)
    (if (result i32) (i32.gt_u (local.get $size) (i32.const 196608))
      (then (i32.const 0))
      (else (i32.const 65536))))
  (func (export "proxy_on_context_create") (param i32 i32))
  (func (export "proxy_on_vm_start") (param i32 i32) (result i32) (i32.const 1))
"#;

/// The callbacks of `noop` and `body`: each answers at once.
const CONTINUE: &str = r#"
  (func (export "proxy_on_configure") (param i32 i32) (result i32) (i32.const 1))
  (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32) (i32.const 0))
  (func (export "proxy_on_response_headers") (param i32 i32 i32) (result i32) (i32.const 0))
  (func (export "proxy_on_log") (param i32))
  (func (export "proxy_on_delete") (param i32))
"#;

/// Reads the chunk with `proxy_get_buffer_bytes` (buffer 1 = response body), counts its `{`
/// bytes so every byte is touched, and lets the chunk go on (Continue).
const BODY_READER: &str = r#"
  (import "env" "proxy_get_buffer_bytes"
    (func $get_buffer_bytes (param i32 i32 i32 i32 i32) (result i32)))
  (func (export "proxy_on_response_body") (param $ctx i32) (param $size i32) (param $eos i32) (result i32)
    (local $at i32) (local $end i32) (local $braces i32)
    (if (i32.eqz (call $get_buffer_bytes (i32.const 1) (i32.const 0) (local.get $size) (i32.const 16) (i32.const 20)))
      (then
        (local.set $at (i32.load (i32.const 16)))
        (local.set $end (i32.add (local.get $at) (i32.load (i32.const 20))))
        (block $done
          (loop $scan
            (br_if $done (i32.ge_u (local.get $at) (local.get $end)))
            (if (i32.eq (i32.load8_u (local.get $at)) (i32.const 123))
              (then (local.set $braces (i32.add (local.get $braces) (i32.const 1)))))
            (local.set $at (i32.add (local.get $at) (i32.const 1)))
            (br $scan)))
        (i32.store (i32.const 24) (local.get $braces))))
    (i32.const 0))
"#;

/// The host interaction of one request through model-gateway with its four sections (the
/// `bundle` case), without any of its logic: every hostcall it makes, in its order (the request
/// headers read once; the clock; counters; the token's header removed; the rate limit's shared
/// bucket read and written, its three x-ratelimit headers; the response headers and body read;
/// when the stream ends, the clock, counters and histogram samples), and every callback it
/// exports. What the bundle costs above
/// this is its own code and the SDK's.
const HOSTCALLS: &str = r#"
  (import "env" "proxy_get_header_map_pairs" (func $get_pairs (param i32 i32 i32) (result i32)))
  (import "env" "proxy_get_current_time_nanoseconds" (func $now (param i32) (result i32)))
  (import "env" "proxy_increment_metric" (func $increment (param i32 i64) (result i32)))
  (import "env" "proxy_record_metric" (func $record (param i32 i64) (result i32)))
  (import "env" "proxy_define_metric" (func $define (param i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_remove_header_map_value" (func $remove (param i32 i32 i32) (result i32)))
  (import "env" "proxy_replace_header_map_value"
    (func $replace (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_get_shared_data" (func $get_shared (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_set_shared_data" (func $set_shared (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_get_buffer_bytes" (func $get_buffer (param i32 i32 i32 i32 i32) (result i32)))
  ;; 0: counter id, 4: histogram id, 8: clock, 16/20: returned pointer and size, 24: cas.
  (data (i32.const 256) "floor_requests_total")
  (data (i32.const 288) "floor_score")
  (data (i32.const 320) "authorization")
  (data (i32.const 352) "bucket")
  (data (i32.const 384) "x-ratelimit-limit")
  (data (i32.const 416) "x-ratelimit-remaining")
  (data (i32.const 448) "x-ratelimit-reset")
  (data (i32.const 480) "100")
  (func (export "proxy_on_configure") (param i32 i32) (result i32)
    (drop (call $define (i32.const 0) (i32.const 256) (i32.const 20) (i32.const 0)))
    (drop (call $define (i32.const 2) (i32.const 288) (i32.const 11) (i32.const 4)))
    (drop (call $set_shared (i32.const 352) (i32.const 6) (i32.const 480) (i32.const 3) (i32.const 0)))
    (i32.const 1))
  (func $count
    (drop (call $increment (i32.load (i32.const 0)) (i64.const 1))))
  (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
    (drop (call $get_pairs (i32.const 0) (i32.const 16) (i32.const 20)))
    (drop (call $now (i32.const 8)))
    (call $count)
    (drop (call $remove (i32.const 0) (i32.const 320) (i32.const 13)))
    (call $count)
    (call $count)
    (call $count)
    (drop (call $get_shared (i32.const 352) (i32.const 6) (i32.const 16) (i32.const 20) (i32.const 24)))
    (drop (call $set_shared (i32.const 352) (i32.const 6) (i32.const 480) (i32.const 3)
      (i32.load (i32.const 24))))
    (call $count)
    (call $count)
    (i32.const 0))
  (func (export "proxy_on_response_headers") (param i32 i32 i32) (result i32)
    (drop (call $replace (i32.const 2) (i32.const 384) (i32.const 17) (i32.const 480) (i32.const 3)))
    (drop (call $replace (i32.const 2) (i32.const 416) (i32.const 21) (i32.const 480) (i32.const 2)))
    (drop (call $replace (i32.const 2) (i32.const 448) (i32.const 17) (i32.const 480) (i32.const 1)))
    (drop (call $get_pairs (i32.const 2) (i32.const 16) (i32.const 20)))
    (i32.const 0))
  (func (export "proxy_on_response_body") (param i32) (param $size i32) (param i32) (result i32)
    (drop (call $get_buffer (i32.const 1) (i32.const 0) (local.get $size) (i32.const 16) (i32.const 20)))
    (i32.const 0))
  (func (export "proxy_on_delete") (param i32)
    (drop (call $now (i32.const 8)))
    (call $count)
    (drop (call $record (i32.load (i32.const 4)) (i64.const 98)))
    (drop (call $record (i32.load (i32.const 4)) (i64.const 2)))
    (call $count))
"#;

/// WAT text of the no-op module.
pub fn noop_wat() -> String {
    format!("(module {LIFECYCLE} {CONTINUE})")
}

/// WAT text of the body-reading module.
pub fn body_reader_wat() -> String {
    format!("(module {BODY_READER} {LIFECYCLE} {CONTINUE})")
}

/// WAT text of the module making the bundle's hostcalls.
pub fn hostcalls_wat() -> String {
    format!("(module {HOSTCALLS} {LIFECYCLE})")
}

/// Where the modules were written.
#[derive(Debug, Clone)]
pub struct Modules {
    pub noop: PathBuf,
    pub body_reader: PathBuf,
    pub hostcalls: PathBuf,
}

/// Compiles both modules into `dir`.
pub fn write_modules(dir: &Path) -> Result<Modules> {
    let write = |name: &str, wat: String| -> Result<PathBuf> {
        let bytes = wat::parse_str(wat).map_err(|e| Error(format!("{name}: {e}")))?;
        let path = dir.join(name);
        std::fs::write(&path, bytes)?;
        Ok(path)
    };
    Ok(Modules {
        noop: write("wasm-noop.wasm", noop_wat())?,
        body_reader: write("wasm-body.wasm", body_reader_wat())?,
        hostcalls: write("wasm-hostcalls.wasm", hostcalls_wat())?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_modules_compile_and_export_the_proxy_wasm_abi() {
        for wat in [noop_wat(), body_reader_wat(), hostcalls_wat()] {
            let bytes = wat::parse_str(&wat).unwrap();
            assert_eq!(&bytes[..4], b"\0asm");
            let text = String::from_utf8_lossy(&bytes);
            for export in [
                "proxy_abi_version_0_2_1",
                "proxy_on_memory_allocate",
                "proxy_on_request_headers",
                "memory",
            ] {
                assert!(text.contains(export), "{export}");
            }
        }
        let body = wat::parse_str(body_reader_wat()).unwrap();
        let text = String::from_utf8_lossy(&body);
        assert!(text.contains("proxy_on_response_body"));
        assert!(text.contains("proxy_get_buffer_bytes"));
        // The bundle's host interaction: the shared bucket, the token header, the counters.
        let hostcalls = wat::parse_str(hostcalls_wat()).unwrap();
        let text = String::from_utf8_lossy(&hostcalls);
        for import in [
            "proxy_get_header_map_pairs",
            "proxy_get_shared_data",
            "proxy_set_shared_data",
            "proxy_remove_header_map_value",
            "proxy_replace_header_map_value",
            "proxy_increment_metric",
            "proxy_record_metric",
            "proxy_get_buffer_bytes",
        ] {
            assert!(text.contains(import), "{import}");
        }
        let noop = wat::parse_str(noop_wat()).unwrap();
        assert!(!String::from_utf8_lossy(&noop).contains("proxy_get_buffer_bytes"));
    }

    #[test]
    fn modules_are_written_to_the_directory() {
        let dir = std::env::temp_dir().join(format!("bench-wasm-floor-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let modules = write_modules(&dir).unwrap();
        assert!(std::fs::metadata(&modules.noop).unwrap().len() > 100);
        assert!(std::fs::metadata(&modules.body_reader).unwrap().len() > 100);
        assert!(std::fs::metadata(&modules.hostcalls).unwrap().len() > 100);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
