// The `env` module of wasm32-unknown-unknown test binaries under wasm-bindgen-test-runner
// (build.sh puts this folder on NODE_PATH): the proxy-wasm host functions a plugin's crate
// imports, each a function that throws. The logic tests never reach the host, and if one does,
// the run fails loudly (as harness/v8-runner.mjs does for the wasm32-wasip1 binaries).
module.exports = new Proxy({}, {
  get: (_, name) => () => {
    throw new Error(`host function env::${String(name)} called from a logic test`);
  },
});
