// The bundle's own code, measured without Envoy: a proxy-wasm host in Node.js (v8, the engine
// Envoy runs the plugins in) whose hostcalls are plain JavaScript over fixed request and response
// data, driving dist/model-gateway.wasm through one allowed request after another. Under load in
// Envoy a case's CPU moves by several µs from run to run on a shared machine; here the same code
// runs alone, so a change to the plugins' own code shows as a change of a few per cent. What it
// does not measure is Envoy's side of each hostcall and callback: the bench's `wasm-hostcalls`
// case does (docs/performance.md).
//
// Usage (./build.sh profile): node host.mjs --module FILE --fixture FILE [--requests N]
//   [--sections] [--functions FILE]
// --sections: the module with no section, each section alone, then all four. Run node with
// --cpu-prof for a profile by function (a module built with its names: ./build.sh profile
// --cpu-prof). A module instrumented by binaryen's `wasm-opt --log-execution` (./build.sh
// profile --count) calls `env.log_execution` at every function entry and loop iteration: this
// host counts those steps per request, a number that does not move from run to run; with
// --functions FILE (lines `id<TAB>function`, ./build.sh profile --functions) it also prints, per
// run, the functions that took the most of them. Exits 1
// when the configuration is refused, a request is refused or paused, or the module reaches a
// hostcall this host does not give.
import { readFileSync } from 'node:fs';
import { WASI } from 'node:wasi';

const args = process.argv.slice(2);
const option = (name, fallback) => {
  const at = args.indexOf(name);
  return at >= 0 ? args[at + 1] : fallback;
};
const modulePath = option('--module');
const fixture = JSON.parse(readFileSync(option('--fixture'), 'utf8'));
const requests = Number(option('--requests', '20000'));
const functionsPath = option('--functions');
if (!modulePath || !Number.isInteger(requests) || requests < 1) {
  console.error('usage: node host.mjs --module FILE --fixture FILE [--requests N] [--sections]'
    + ' [--functions FILE]');
  process.exit(2);
}
const module = new WebAssembly.Module(readFileSync(modulePath));

// --functions: the function each `log_execution` id is in, from the module's names.
const functionOf = functionsPath ? readFunctions(functionsPath) : null;

function readFunctions(path) {
  const names = [];
  for (const line of readFileSync(path, 'utf8').split('\n')) {
    const [id, name] = line.split('\t');
    if (name) names[Number(id)] = demangle(name);
  }
  return Array.from(names, (name) => name ?? '?');
}

// Rust's legacy symbols (`_ZN` length-prefixed parts `17h<hash>E`) made readable; others as
// they are.
function demangle(symbol) {
  if (!symbol.startsWith('_ZN')) return symbol;
  const parts = [];
  let at = 3;
  while (at < symbol.length && symbol[at] !== 'E') {
    const digits = /^\d+/.exec(symbol.slice(at));
    if (!digits) return symbol;
    at += digits[0].length;
    parts.push(symbol.slice(at, at + Number(digits[0])));
    at += Number(digits[0]);
  }
  if (/^h[0-9a-f]{16}$/.test(parts.at(-1) ?? '')) parts.pop();
  const escapes = { SP: '@', BP: '*', RF: '&', LT: '<', GT: '>', LP: '(', RP: ')', C: ',' };
  return parts
    .map((part) => part
      .replace(/^_\$/, '$')
      .replace(/\$u([0-9a-f]+)\$/g, (_, hex) => String.fromCodePoint(parseInt(hex, 16)))
      .replace(/\$([A-Z]+)\$/g, (all, code) => escapes[code] ?? all)
      .replace(/\.\./g, '::'))
    .join('::');
}

// Steps per request by function, the 25 largest.
function stepsByFunction(byId, n) {
  const totals = new Map();
  byId.forEach((count, id) => {
    if (count) totals.set(functionOf[id], (totals.get(functionOf[id]) ?? 0) + count / n);
  });
  return [...totals].sort((a, b) => b[1] - a[1]).slice(0, 25);
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const responseBody = encoder.encode(JSON.stringify(fixture.responseBody));
const startNanos = BigInt(Date.parse(fixture.now)) * 1000000n;


// proxy-wasm's header map encoding: count, then each name and value size, then each name and
// value with a NUL after it.
// The same names and values come back on every request: each is encoded once.
const encoded = new Map();
function encode(text) {
  let bytes = encoded.get(text);
  if (!bytes) {
    bytes = encoder.encode(text);
    encoded.set(text, bytes);
  }
  return bytes;
}

function serialize(pairs) {
  const parts = pairs.map(([name, value]) => [encode(name), encode(value)]);
  let size = 4 + parts.length * 8;
  for (const [name, value] of parts) size += name.length + value.length + 2;
  const out = new Uint8Array(size);
  const view = new DataView(out.buffer);
  view.setUint32(0, parts.length, true);
  let at = 4;
  for (const [name, value] of parts) {
    view.setUint32(at, name.length, true);
    view.setUint32(at + 4, value.length, true);
    at += 8;
  }
  for (const [name, value] of parts) {
    out.set(name, at);
    at += name.length + 1;
    out.set(value, at);
    at += value.length + 1;
  }
  return out;
}

const requestBytes = serialize(fixture.request);
const responseBytes = serialize(fixture.response);

// A header map of one stream: serialized again only after a change (each stream starts from
// the fixture's, serialized once).
class HeaderMap {
  constructor(pairs, bytes) {
    this.pairs = pairs.map(([name, value]) => [name, value]);
    this.bytes = bytes;
  }
  serialized() {
    this.bytes ??= serialize(this.pairs);
    return this.bytes;
  }
  get(name) {
    return this.pairs.find(([key]) => key === name)?.[1];
  }
  replace(name, value) {
    this.remove(name);
    this.pairs.push([name, value]);
  }
  add(name, value) {
    this.pairs.push([name, value]);
    this.bytes = null;
  }
  remove(name) {
    this.pairs = this.pairs.filter(([key]) => key !== name);
    this.bytes = null;
  }
}

// One VM: the module instantiated with this host, configured with `pluginConfig`.
function startVm(pluginConfig) {
  const configuration = encoder.encode(JSON.stringify(pluginConfig));
  const counts = new Map();
  const steps = { taken: 0, byId: functionOf ? new Float64Array(functionOf.length) : null };
  const shared = new Map();
  let version = 0;
  let now = startNanos;
  let stream = null;
  let instance;
  const memory = () => new Uint8Array(instance.exports.memory.buffer);
  const view = () => new DataView(instance.exports.memory.buffer);
  const text = (at, size) => decoder.decode(memory().subarray(at, at + size));
  const count = (name) => counts.set(name, (counts.get(name) ?? 0) + 1);
  // Copies `data` into memory the module allocates (proxy_on_memory_allocate), as Envoy does.
  const handOver = (data, returnData, returnSize) => {
    const at = instance.exports.proxy_on_memory_allocate(data.length);
    memory().set(data, at);
    view().setUint32(returnData, at, true);
    view().setUint32(returnSize, data.length, true);
    return 0;
  };
  const map = (type) => (type === 0 ? stream.request : type === 2 ? stream.response : null);
  const OK = 0, NOT_FOUND = 1, BAD_ARGUMENT = 2, CAS_MISMATCH = 8;
  const host = {
    proxy_log: (level, at, size) => {
      if (level >= 3) console.error(`module log (level ${level}): ${text(at, size)}`);
      return OK;
    },
    proxy_get_log_level: (returnLevel) => (view().setUint32(returnLevel, 2, true), OK),
    proxy_get_current_time_nanoseconds: (returnTime) => {
      count('get_current_time');
      now += 1000n;
      view().setBigUint64(returnTime, now, true);
      return OK;
    },
    proxy_set_tick_period_milliseconds: () => OK,
    proxy_get_buffer_bytes: (type, start, max, returnData, returnSize) => {
      count('get_buffer_bytes');
      const buffer = type === 7 ? configuration : type === 1 ? responseBody : null;
      if (!buffer) return NOT_FOUND;
      const from = start >>> 0;
      return handOver(buffer.subarray(from, Math.min(buffer.length, from + (max >>> 0))),
        returnData, returnSize);
    },
    proxy_get_header_map_pairs: (type, returnData, returnSize) => {
      count('get_header_map_pairs');
      const headers = map(type);
      return headers ? handOver(headers.serialized(), returnData, returnSize) : BAD_ARGUMENT;
    },
    proxy_get_header_map_value: (type, keyAt, keySize, returnData, returnSize) => {
      count('get_header_map_value');
      const value = map(type)?.get(text(keyAt, keySize));
      return value === undefined ? NOT_FOUND : handOver(encode(value), returnData, returnSize);
    },
    proxy_replace_header_map_value: (type, keyAt, keySize, valueAt, valueSize) => {
      count('replace_header_map_value');
      map(type).replace(text(keyAt, keySize), text(valueAt, valueSize));
      return OK;
    },
    proxy_add_header_map_value: (type, keyAt, keySize, valueAt, valueSize) => {
      count('add_header_map_value');
      map(type).add(text(keyAt, keySize), text(valueAt, valueSize));
      return OK;
    },
    proxy_remove_header_map_value: (type, keyAt, keySize) => {
      count('remove_header_map_value');
      map(type).remove(text(keyAt, keySize));
      return OK;
    },
    proxy_get_property: () => (count('get_property'), NOT_FOUND),
    proxy_get_shared_data: (keyAt, keySize, returnData, returnSize, returnCas) => {
      count('get_shared_data');
      const entry = shared.get(text(keyAt, keySize));
      if (!entry) return NOT_FOUND;
      handOver(entry.value, returnData, returnSize);
      view().setUint32(returnCas, entry.version, true);
      return OK;
    },
    proxy_set_shared_data: (keyAt, keySize, valueAt, valueSize, cas) => {
      count('set_shared_data');
      const key = text(keyAt, keySize);
      const entry = shared.get(key);
      if (cas !== 0 && entry && entry.version !== cas) return CAS_MISMATCH;
      shared.set(key, { value: memory().slice(valueAt, valueAt + valueSize), version: ++version });
      return OK;
    },
    proxy_send_local_response: (status) => {
      stream.localReply = status;
      return OK;
    },
    proxy_define_metric: (type, nameAt, nameSize, returnId) => {
      view().setUint32(returnId, 1, true);
      return OK;
    },
    proxy_increment_metric: () => (count('increment_metric'), OK),
    proxy_record_metric: () => (count('record_metric'), OK),
    proxy_set_effective_context: () => OK,
    proxy_continue_stream: () => OK,
    log_execution: (id) => {
      steps.taken++;
      if (steps.byId) steps.byId[id]++;
    },
  };
  const env = {};
  for (const wanted of WebAssembly.Module.imports(module)) {
    if (wanted.module !== 'env') continue;
    env[wanted.name] = host[wanted.name] ?? (() => {
      throw new Error(`the module called ${wanted.name}, which this host does not give`);
    });
  }
  const wasi = new WASI({ version: 'preview1', returnOnExit: true });
  instance = new WebAssembly.Instance(module, { wasi_snapshot_preview1: wasi.wasiImport, env });
  wasi.initialize(instance);
  const vm = instance.exports;
  const ROOT = 1;
  vm.proxy_on_context_create(ROOT, 0);
  vm.proxy_on_vm_start(ROOT, 0);
  if (!vm.proxy_on_configure(ROOT, configuration.length)) {
    throw new Error(`the configuration was refused: ${JSON.stringify(pluginConfig)}`);
  }
  let nextContext = ROOT + 1;
  // One allowed request and its answer, through every callback the module exports.
  const exchange = () => {
    const context = nextContext++;
    stream = {
      request: new HeaderMap(fixture.request, requestBytes),
      response: new HeaderMap(fixture.response, responseBytes),
      localReply: null,
    };
    vm.proxy_on_context_create(context, ROOT);
    const action = vm.proxy_on_request_headers(context, stream.request.pairs.length, 0);
    if (action !== 0 || stream.localReply !== null) {
      throw new Error(`request ${context} was not let through (action ${action}, ` +
        `local reply ${stream.localReply})`);
    }
    vm.proxy_on_response_headers?.(context, stream.response.pairs.length, 0);
    vm.proxy_on_response_body?.(context, responseBody.length, 1);
    vm.proxy_on_done?.(context);
    vm.proxy_on_delete(context);
  };
  return { exchange, counts, steps };
}

// µs per request: the fastest of five batches, after a warm-up batch (v8 optimizes hot code);
// what else runs on the machine only ever adds time.
function measure(pluginConfig) {
  const { exchange, counts, steps } = startVm(pluginConfig);
  const batch = Math.max(1, Math.floor(requests / 5));
  for (let i = 0; i < batch; i++) exchange();
  counts.clear();
  steps.taken = 0;
  steps.byId?.fill(0);
  const perRequest = [];
  for (let round = 0; round < 5; round++) {
    const start = process.hrtime.bigint();
    for (let i = 0; i < batch; i++) exchange();
    perRequest.push(Number(process.hrtime.bigint() - start) / batch / 1000);
  }
  perRequest.sort((a, b) => a - b);
  const hostcalls = [...counts].map(([name, n]) => `${name} ${n / (5 * batch)}`).join(', ');
  const n = 5 * batch;
  return { micros: perRequest[0], steps: steps.taken / n, byId: steps.byId, n, hostcalls };
}

const all = fixture.pluginConfig;
const runs = args.includes('--sections')
  ? [['no section', {}], ...Object.keys(all).map((key) => [key, { [key]: all[key] }]),
    ['all four', all]]
  : [['all four', all]];
console.log(`${modulePath}: µs per request in Node.js's v8, hostcalls given by JavaScript`);
const counted = WebAssembly.Module.imports(module).some((i) => i.name === 'log_execution');
console.log(`| sections | µs/request |${counted ? ' steps/request |' : ''} hostcalls per request |`);
console.log(`|---|---|${counted ? '---|' : ''}---|`);
const byFunction = [];
for (const [name, config] of runs) {
  const { micros, steps, byId, n, hostcalls } = measure(config);
  const stepsColumn = counted ? ` ${steps.toFixed(0)} |` : '';
  console.log(`| ${name} | ${micros.toFixed(2)} |${stepsColumn} ${hostcalls || '-'} |`);
  if (byId) byFunction.push([name, stepsByFunction(byId, n)]);
}
for (const [name, top] of byFunction) {
  console.log(`\n${name}: the functions with the most steps per request`);
  for (const [fn, perRequest] of top) console.log(`${perRequest.toFixed(1).padStart(8)}  ${fn}`);
}
