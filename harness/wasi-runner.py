#!/usr/bin/env python3
"""Cargo runner for wasm32-wasip1 test binaries (CARGO_TARGET_WASM32_WASIP1_RUNNER).

Runs the module under wasmtime's WASI. Imports outside WASI (the proxy-wasm host functions) are
defined as functions that trap: the logic tests never reach the host, and if one does, the run
fails loudly instead of passing.
"""
import os
import sys

import wasmtime


def trap_for(name):
    def trap(*_args):
        raise wasmtime.Trap(f"host function {name} called from a logic test")
    return trap


def main():
    path, args = sys.argv[1], sys.argv[2:]
    config = wasmtime.Config()
    cache = os.environ.get("WASI_RUNNER_CACHE")
    if cache:
        # Compiled test modules are reused across runs (the compile is most of a run's time).
        os.makedirs(cache, exist_ok=True)
        toml = os.path.join(cache, "cache.toml")
        with open(toml, "w") as f:
            f.write(f'[cache]\ndirectory = "{cache}"\n')
        config.cache = toml
    engine = wasmtime.Engine(config)
    module = wasmtime.Module.from_file(engine, path)
    store = wasmtime.Store(engine)
    wasi = wasmtime.WasiConfig()
    wasi.argv = [os.path.basename(path)] + args
    wasi.inherit_env()
    wasi.inherit_stdout()
    wasi.inherit_stderr()
    store.set_wasi(wasi)
    linker = wasmtime.Linker(engine)
    linker.define_wasi()
    for imp in module.imports:
        if imp.module != "wasi_snapshot_preview1" and isinstance(imp.type, wasmtime.FuncType):
            func = wasmtime.Func(store, imp.type, trap_for(f"{imp.module}::{imp.name}"))
            linker.define(store, imp.module, imp.name, func)
    instance = linker.instantiate(store, module)
    start = instance.exports(store)["_start"]
    try:
        start(store)
    except wasmtime.ExitTrap as exit_trap:
        sys.exit(exit_trap.code)
    except wasmtime.Trap as trap:
        print(f"wasm trap: {trap}", file=sys.stderr)
        sys.exit(134)


if __name__ == "__main__":
    main()
