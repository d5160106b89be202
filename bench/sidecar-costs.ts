/**
 * The costs behind three of the sidecar's design choices, each measured on its own, so the figures
 * docs/benchmarks.md gives for them come from code that still runs:
 *
 * - **load**: the RSS of a fresh Node process started with the image's flags (SIDECAR_NODE_FLAGS)
 *   after it loaded nothing more, snappyjs through `require` (as shared/remote-write.ts does),
 *   snappyjs through `import` (importing any CommonJS package from ESM starts Node's CommonJS
 *   export lexer), the native `snappy` addon (a devDependency, for the comparison), node:http, and
 *   node:http with node:https (shared/https-lazy.ts loads node:https only for https URLs), and
 *   nothing more without `--single-threaded` (V8's helper threads, at rest). Each
 *   variant runs in `--processes` fresh processes, interleaved; the row is their median VmRSS
 *   after a full GC and a pause.
 * - **compress**: a 1 000-series WriteRequest as the sidecar builds it (the body bench/sidecar.ts's
 *   target serves, parsed, stored, planned and encoded by the sidecar's own modules), compressed
 *   by snappyjs and by the native addon: sizes, the first (cold) call, and the median of warm calls.
 * - **state**: `saveState(dir, store.snapshot())` of those 1 000 counters once acknowledged (what
 *   sidecar/sidecar.ts does after every acknowledged push when JOBMETRICS_STATE_DIR is set): the
 *   file's size and the CPU time per write (`process.cpuUsage` over the writes), into a folder
 *   under the OS's temporary directory.
 *
 *   node --import tsx bench/sidecar-costs.ts [--series N] [--processes N] [--writes N]
 *   npm run bench -- sidecar-costs [--write-docs]
 *   import { run } from './sidecar-costs.ts'   the same text (for bench/run.ts)
 *
 * Run it under the benchmark lock: `flock /tmp/jobmetrics-bench.lock npm run bench -- sidecar-costs`.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { SIDECAR_NODE_FLAGS } from '../scripts/local-pod.ts';
import { parse } from '../shared/exposition/parse.ts';
import { encodeWriteRequestProto } from '../shared/remote-write.ts';
import { SeriesStore } from '../sidecar/series-store.ts';
import { saveState, STATE_FILE } from '../sidecar/state.ts';

const ROOT = fileURLToPath(new URL('../', import.meta.url));
const require = createRequire(join(ROOT, 'package.json'));

export interface SidecarCostsOptions {
  /** Counter series of the WriteRequest and the state file; default 1 000. */
  readonly series?: number;
  /** Fresh processes per load variant; default 7. */
  readonly processes?: number;
  /** State writes timed; default 200. */
  readonly writes?: number;
  readonly progress?: (line: string) => void;
}

const median = (xs: readonly number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? (s[mid] ?? NaN) : ((s[mid - 1] ?? NaN) + (s[mid] ?? NaN)) / 2;
};

// ---------------------------------------------------------------------------------------------
// load: RSS of a fresh process per variant

/** What each variant loads, as ESM statements after `req` (a require from the project) exists. */
const LOAD_VARIANTS = [
  { name: 'nothing more (the baseline)', code: '' },
  { name: 'snappyjs through require (as the sidecar loads it)', code: "req('snappyjs');" },
  { name: 'snappyjs through import', code: "await import(pathToFileURL(req.resolve('snappyjs')).href);" },
  { name: 'the native snappy addon through require', code: "req('snappy');" },
  { name: 'node:fs through process.getBuiltinModule (as the sidecar loads it, shared/node-builtins.ts)', code: "process.getBuiltinModule('node:fs');" },
  { name: 'node:fs through import', code: "await import('node:fs');" },
  { name: 'node:http through process.getBuiltinModule (as the sidecar loads it, shared/node-builtins.ts)', code: "process.getBuiltinModule('node:http');" },
  { name: 'node:http and node:https (as the sidecar loads them)', code: "process.getBuiltinModule('node:http'); req('node:https');" },
  { name: 'node:http through import', code: "await import('node:http');" },
  // The image's flags less --single-threaded: V8's helper threads, at rest (each thread that
  // allocates gets a malloc arena of its own, which grows with the work it does).
  { name: 'nothing more, without --single-threaded', code: '', flags: SIDECAR_NODE_FLAGS.filter((f) => f !== '--single-threaded') },
] as const;

/** An ES module file (as dist/sidecar/main.js is one) that loads `code`, then reports its VmRSS. */
function loadProgram(code: string): string {
  return [
    // Built-in modules through process.getBuiltinModule: an ES import of node:fs alone would load
    // ~30 modules into every row (shared/node-builtins.ts).
    "const { createRequire } = process.getBuiltinModule('node:module');",
    "const { readFileSync } = process.getBuiltinModule('node:fs');",
    "const { pathToFileURL } = process.getBuiltinModule('node:url');",
    `const req = createRequire(${JSON.stringify(join(ROOT, 'package.json'))});`,
    code,
    // A full GC (the flags include --expose-gc), then a pause for anything that settles late.
    'globalThis.gc();',
    'setTimeout(() => {',
    "  const kb = Number(/^VmRSS:\\s+(\\d+) kB/m.exec(readFileSync('/proc/self/status', 'utf8'))[1]);",
    '  process.stdout.write(String(kb));',
    '}, 300);',
  ].join('\n');
}

function rssOf(file: string, flags: readonly string[]): Promise<number> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [...flags, file], { cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (c: Buffer) => (out += c.toString('utf8')));
    child.on('error', reject);
    child.on('exit', (code) => (code === 0 && /^\d+$/.test(out) ? resolve(Number(out)) : reject(new Error(`${file} exited with ${code}: ${out}`))));
  });
}

interface LoadRow {
  readonly name: string;
  readonly medianKb: number;
  readonly minKb: number;
  readonly maxKb: number;
}

async function benchLoad(processes: number, progress: (line: string) => void): Promise<LoadRow[]> {
  const dir = mkdtempSync(join(tmpdir(), 'jobmetrics-bench-costs-'));
  try {
    const files = LOAD_VARIANTS.map((v, i) => {
      const file = join(dir, `load-${i}.mjs`);
      writeFileSync(file, loadProgram(v.code));
      return file;
    });
    const samples: number[][] = LOAD_VARIANTS.map(() => []);
    // Interleaved: a change in the machine's state hits every variant alike.
    for (let round = 0; round < processes; round++) {
      progress(`sidecar costs: load, round ${round + 1}/${processes} …`);
      for (const [i, file] of files.entries()) {
        const v = LOAD_VARIANTS[i];
        samples[i]?.push(await rssOf(file, v !== undefined && 'flags' in v ? v.flags : SIDECAR_NODE_FLAGS));
      }
    }
    return LOAD_VARIANTS.map((v, i) => {
      const s = samples[i] ?? [];
      return { name: v.name, medianKb: median(s), minKb: Math.min(...s), maxKb: Math.max(...s) };
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

// ---------------------------------------------------------------------------------------------
// The sidecar's state after a scrape and an acknowledged push of `series` counters

/** The body bench/sidecar.ts's target serves: prom-client, N counter series of three labels. */
async function targetBody(series: number): Promise<string> {
  const { default: client } = await import('prom-client');
  const registry = new client.Registry();
  const counter = new client.Counter({ name: 'bench_items_processed_total', help: 'Work items processed by the job.', labelNames: ['worker', 'queue', 'status'], registers: [registry] });
  for (let i = 0; i < series; i++) counter.inc({ worker: `worker-${i % 100}`, queue: `queue-${Math.floor(i / 100)}`, status: i % 7 === 0 ? 'failed' : 'ok' }, 1 + (i % 3));
  return registry.metrics();
}

async function acknowledgedStore(series: number): Promise<{ store: SeriesStore; body: string }> {
  const body = await targetBody(series);
  const parsed = parse(body);
  if (!parsed.ok) throw new Error(`target body unparsable: ${parsed.error.message}`);
  const store = new SeriesStore({ namespace: 'bench', job: 'sidecar-costs', pod: 'sidecar-costs-0', maxSeries: Math.max(series, 1) });
  const t0 = Date.now() - 10_000;
  store.update(parsed.families, t0);
  // The explicit zeros, acknowledged, then a push of the values: the state a running pod keeps.
  store.acknowledge(store.plan({ zerosOnly: true }), t0);
  store.update(parsed.families, t0 + 1_000);
  store.acknowledge(store.plan(), t0 + 2_000);
  return { store, body };
}

// ---------------------------------------------------------------------------------------------
// compress

interface CompressRow {
  readonly name: string;
  readonly inBytes: number;
  readonly outBytes: number;
  readonly firstMs: number;
  /** Calls 2–10: a pod's first pushes, before the JIT has optimized anything. */
  readonly earlyMs: number;
  readonly medianMs: number;
}

function timeCompress(name: string, compress: (b: Buffer) => Uint8Array, input: Buffer, runs: number): CompressRow {
  let t = performance.now();
  const out = compress(input);
  const firstMs = performance.now() - t;
  const times: number[] = [];
  for (let i = 0; i < 9 + runs; i++) {
    t = performance.now();
    compress(input);
    times.push(performance.now() - t);
  }
  return { name, inBytes: input.length, outBytes: out.length, firstMs, earlyMs: median(times.slice(0, 9)), medianMs: median(times.slice(9)) };
}

function benchCompress(store: SeriesStore): CompressRow[] {
  const proto = encodeWriteRequestProto(store.plan().series);
  const snappyjs = require('snappyjs') as typeof import('snappyjs');
  const native = require('snappy') as { compressSync(b: Buffer): Buffer };
  // Each compressor's first call in this process is its cold one; then warm calls.
  return [
    timeCompress('snappyjs (shipped)', (b) => snappyjs.compress(b), proto, 200),
    timeCompress('snappy, the native addon', (b) => native.compressSync(b), proto, 200),
  ];
}

// ---------------------------------------------------------------------------------------------
// state

interface StateResult {
  readonly writes: number;
  readonly fileBytes: number;
  readonly cpuMsPerWrite: number;
  readonly wallMsPerWrite: number;
}

function benchState(store: SeriesStore, writes: number): StateResult {
  const dir = mkdtempSync(join(tmpdir(), 'jobmetrics-bench-state-'));
  try {
    saveState(dir, store.snapshot());
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    for (let i = 0; i < writes; i++) saveState(dir, store.snapshot());
    const wallMs = performance.now() - t0;
    const cpu = process.cpuUsage(cpu0);
    return { writes, fileBytes: statSync(join(dir, STATE_FILE)).size, cpuMsPerWrite: (cpu.user + cpu.system) / 1000 / writes, wallMsPerWrite: wallMs / writes };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

// ---------------------------------------------------------------------------------------------

const mb = (kb: number): string => (kb / 1024).toFixed(1);
const kib = (bytes: number): string => `${(bytes / 1024).toFixed(0)} KiB`;

export async function run(opts: SidecarCostsOptions = {}): Promise<string> {
  const series = opts.series ?? 1_000;
  const processes = opts.processes ?? 7;
  const writes = opts.writes ?? 200;
  const progress = opts.progress ?? ((line: string) => process.stderr.write(line + '\n'));
  const load = await benchLoad(processes, progress);
  progress('sidecar costs: compress and state …');
  const { store, body } = await acknowledgedStore(series);
  const compress = benchCompress(store);
  const state = benchState(store, writes);
  const base = load[0]?.medianKb ?? NaN;
  const delta = (kb: number): string => (kb === base ? '—' : Math.abs(kb - base) < 51.2 ? '±0.0 MB' : `${kb > base ? '+' : ''}${mb(kb - base)} MB`);
  const byName = (prefix: string): LoadRow | undefined => load.find((r) => r.name.startsWith(prefix));
  const http = byName('node:http through process')?.medianKb ?? NaN;
  const https = byName('node:http and')?.medianKb ?? NaN;
  const pushEveryS = 10;
  return [
    `Sidecar design costs: a fresh \`node ${SIDECAR_NODE_FLAGS.join(' ')}\` ES module per row (the image's flags; the last row without --single-threaded), median of ${processes} processes (interleaved), VmRSS after a full GC.`,
    '',
    '| loaded | RSS median | min–max | vs the baseline |',
    '| --- | ---: | ---: | ---: |',
    ...load.map((r) => `| ${r.name} | ${mb(r.medianKb)} MB | ${mb(r.minKb)}–${mb(r.maxKb)} MB | ${delta(r.medianKb)} |`),
    '',
    `node:https on top of node:http: ${https >= http ? '+' : ''}${mb(https - http)} MB.`,
    '',
    `A ${series.toLocaleString('en-US')}-series WriteRequest as the sidecar encodes it (the target body of bench/sidecar.ts, ${kib(Buffer.byteLength(body))}), compressed in this process; calls 2–10 = their median (a pod's first pushes), warm = the median of the next 200:`,
    '',
    '| compressor | protobuf | compressed | first call ms | calls 2–10 ms | warm ms |',
    '| --- | ---: | ---: | ---: | ---: | ---: |',
    ...compress.map((r) => `| ${r.name} | ${kib(r.inBytes)} | ${kib(r.outBytes)} | ${r.firstMs.toFixed(2)} | ${r.earlyMs.toFixed(2)} | ${r.medianMs.toFixed(2)} |`),
    '',
    `State file (JOBMETRICS_STATE_DIR) of ${series.toLocaleString('en-US')} acknowledged counters: ${kib(state.fileBytes)}; saveState(store.snapshot()) ${state.cpuMsPerWrite.toFixed(2)} ms of CPU ` +
      `(${state.wallMsPerWrite.toFixed(2)} ms wall) per write over ${state.writes} writes, so ${((state.cpuMsPerWrite / (pushEveryS * 1000)) * 100).toFixed(3)} % of a core at the default ${pushEveryS} s push interval.`,
  ].join('\n');
}

function option(argv: readonly string[], name: string): number | undefined {
  const i = argv.indexOf(name);
  if (i < 0) return undefined;
  const n = Number(argv[i + 1]);
  if (!Number.isInteger(n) || n < 1) throw new Error(`${name} needs a positive integer`);
  return n;
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const argv = process.argv.slice(2);
  const series = option(argv, '--series');
  const processes = option(argv, '--processes');
  const writes = option(argv, '--writes');
  console.log(await run({ ...(series !== undefined && { series }), ...(processes !== undefined && { processes }), ...(writes !== undefined && { writes }) }));
}
