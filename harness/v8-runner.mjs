// Cargo runner for wasm32-wasip1 test binaries under Node.js's WASI: the logic tests that
// wasi-runner.py runs under wasmtime, run again in v8, the engine Envoy (and Istio's proxy) runs
// the plugins in. Imports outside WASI (the proxy-wasm host functions) are functions that throw:
// the logic tests never reach the host, and if one does, the run fails loudly.
//
// Usage (what build.sh sets): CARGO_TARGET_WASM32_WASIP1_RUNNER="node harness/v8-runner.mjs"
import { readFile } from 'node:fs/promises';
import { basename } from 'node:path';
import { WASI } from 'node:wasi';

const [path, ...args] = process.argv.slice(2);
const wasi = new WASI({
  version: 'preview1',
  args: [basename(path), ...args],
  env: process.env,
  returnOnExit: true,
});
const module = await WebAssembly.compile(await readFile(path));
const imports = wasi.getImportObject();
for (const imp of WebAssembly.Module.imports(module)) {
  if (imp.module === 'wasi_snapshot_preview1' || imp.kind !== 'function') continue;
  imports[imp.module] ??= {};
  imports[imp.module][imp.name] = () => {
    throw new Error(`host function ${imp.module}::${imp.name} called from a logic test`);
  };
}
const instance = await WebAssembly.instantiate(module, imports);
// A test binary linking a plugin's module also exports its `_initialize` (proxy-wasm's entry);
// WASI's `start` accepts a command only, so the test harness's `_start` is run alone.
const exports = { ...instance.exports };
delete exports._initialize;
let code;
try {
  code = wasi.start({ exports });
} catch (error) {
  console.error(`wasm trap: ${error}`);
  process.exit(134);
}
process.exit(code ?? 0);
