//! A proxy-wasm module that traps in `on_http_request_headers`, as a plugin with a bug would
//! (a Rust `panic!` ends in the same Wasm `unreachable`). Built from WAT text, so no plugin and
//! no wasm target is involved. What Envoy then does is the module's `failure_policy`:
//! FAIL_CLOSED answers 503 from then on, FAIL_OPEN skips the filter after the first 503,
//! FAIL_RELOAD restarts the VM (Envoy's `PluginConfig.failure_policy`, as Envoy 1.40 behaves).

use harness_runner::{Error, Result};
use std::path::{Path, PathBuf};

const TRAPPING_MODULE: &str = r#"(module
  (memory (export "memory") 2)
  (func (export "proxy_abi_version_0_2_1"))
  ;; One fixed allocation area: the host only hands over the configuration here.
  (func (export "proxy_on_memory_allocate") (param $size i32) (result i32)
    (if (result i32) (i32.gt_u (local.get $size) (i32.const 65536))
      (then (i32.const 0))
      (else (i32.const 65536))))
  (func (export "proxy_on_context_create") (param i32 i32))
  (func (export "proxy_on_vm_start") (param i32 i32) (result i32) (i32.const 1))
  (func (export "proxy_on_configure") (param i32 i32) (result i32) (i32.const 1))
  (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32) unreachable)
  (func (export "proxy_on_done") (param i32) (result i32) (i32.const 1))
  (func (export "proxy_on_log") (param i32))
  (func (export "proxy_on_delete") (param i32))
)"#;

/// The module's bytes.
pub fn trapping_module() -> Result<Vec<u8>> {
    wat::parse_str(TRAPPING_MODULE).map_err(|e| Error(format!("trapping module: {e}")))
}

/// Writes the module to `dir/trapping.wasm`.
pub fn write_trapping_module(dir: &Path) -> Result<PathBuf> {
    let path = dir.join("trapping.wasm");
    std::fs::write(&path, trapping_module()?)?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_module_compiles_and_traps_in_request_headers() {
        let bytes = trapping_module().unwrap();
        assert_eq!(&bytes[..4], b"\0asm");
        let text = String::from_utf8_lossy(&bytes);
        for export in [
            "proxy_abi_version_0_2_1",
            "proxy_on_request_headers",
            "memory",
        ] {
            assert!(text.contains(export), "{export}");
        }
        assert!(TRAPPING_MODULE.contains("(result i32) unreachable)"));
    }
}
