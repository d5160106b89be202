/**
 * Sidecar footprint: RSS and CPU of the real sidecar process (`node dist/sidecar/main.js`) while
 * it scrapes a target of 100, 1 000 and 10 000 counter series at three paces (sidecar/scrape-pace.ts):
 * `1s` as shipped (every 200 ms while a scrape is cheap, never slower than 1 s), `1s fixed` (the
 * fast pace off: JOBMETRICS_FAST_INTERVAL=1s, every 1 s) and `100ms`, next to
 * an idle Node process with the image's flags (`node <ENTRYPOINT flags> -e "setInterval(()=>{},1000)"`, the floor) measured over the same
 * window, side by side, so that noise from other work on the machine hits both alike.
 *
 * Each configuration is a real local pod (scripts/local-pod.ts: its own PID namespace when root,
 * so the exit watch sees only the target, as in a Kubernetes pod): the main container serves the
 * target's /metrics (a prom-client registry with N counter series in a child process, body
 * re-rendered once a second so values move and a scrape costs the target nothing but the
 * write), and the sidecar delivers to a remote-write receiver in this process that answers 204.
 * Numbers come from /proc/<pid>/stat (utime+stime) and /proc/<pid>/status (VmRSS) of both
 * processes, read from the host's /proc: CPU% is the CPU time used over the window divided by the
 * window; RSS is sampled every second (mean and max).
 *
 *   node --import tsx bench/sidecar.ts           all 6 configurations, 60 s windows (~7 min)
 *   BENCH_QUICK=1 node --import tsx bench/sidecar.ts   10 s windows
 *   node --import tsx bench/sidecar.ts --profile  also writes a --cpu-prof of the sidecar per
 *                                                 configuration and prints its top functions
 *   import { run } from './sidecar.ts'            the same table as text (for bench/run.ts)
 *
 * The same file is the target's program: `node --import tsx bench/sidecar.ts target <series>`.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { freePort, pidNamespaceSupport, PROGRAMS, SIDECAR_NODE_FLAGS, sidecarEnv, resultWithin, startLocalPod, type PodResult } from '../scripts/local-pod.ts';

const THIS_FILE = fileURLToPath(import.meta.url);
/** tsx's loader by absolute URL, so a child finds it whatever its working directory. */
const TSX = import.meta.resolve('tsx');

export interface SidecarBenchOptions {
  /** Measurement window per configuration; default 60 s, or 10 s with BENCH_QUICK=1 / quick. */
  readonly windowMs?: number;
  /** Time between the pod's start and the window (ramp-up, first push); default 6 s. */
  readonly warmupMs?: number;
  readonly quick?: boolean;
  /** Paces: an interval (`1s`, the shipped fast pace within it) or `<interval> fixed` (fast pace off). */
  readonly intervals?: readonly string[];
  readonly series?: readonly number[];
  /** Run the sidecar under `node --cpu-prof` and summarise the profile per configuration. */
  readonly profile?: boolean;
  /** Extra sidecar environment, for experiments (e.g. JOBMETRICS_EXIT_POLL). */
  readonly sidecarEnv?: Readonly<Record<string, string>>;
  /** Node flags for the sidecar, for experiments (e.g. --max-semi-space-size=1). */
  readonly sidecarNodeFlags?: readonly string[];
  /** Another build of the sidecar's main.js, for experiments; default dist/sidecar/main.js. */
  readonly sidecarProgram?: string;
  /** Progress lines; default stderr. */
  readonly progress?: (line: string) => void;
}

export interface ProcessUsage {
  /** CPU time over the window / the window, in % of one core. */
  readonly cpuPercent: number;
  readonly rssMeanKb: number;
  readonly rssMaxKb: number;
}

export interface SidecarBenchRow {
  readonly interval: string;
  readonly series: number;
  readonly windowMs: number;
  readonly sidecar: ProcessUsage;
  readonly floor: ProcessUsage;
  /** From the sidecar's exit summary: its whole life, warm-up included. */
  readonly scrapes: number | undefined;
  readonly scrapeFailures: number | undefined;
  readonly seriesSeen: number | undefined;
  /** Remote-write requests the receiver answered during the pod's life. */
  readonly pushes: number;
  readonly targetBodyBytes: number;
  /** Top self-time functions of the sidecar's CPU profile (with `profile`). */
  readonly profileTop?: string;
}

// ---------------------------------------------------------------------------------------------
// /proc readings

let clockTicks: number | undefined;
/** USER_HZ: the unit of utime/stime in /proc/<pid>/stat. */
export function ticksPerSecond(): number {
  if (clockTicks !== undefined) return clockTicks;
  const r = spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' });
  const n = Number(r.stdout?.trim());
  clockTicks = Number.isInteger(n) && n > 0 ? n : 100;
  return clockTicks;
}

/** utime + stime of a process (all its threads), in clock ticks; undefined once it is gone. */
export function cpuTicks(pid: number): number | undefined {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after comm (which may hold spaces) start after the last ')': state is field 3.
    const rest = text.slice(text.lastIndexOf(')') + 2).split(' ');
    const utime = Number(rest[11]);
    const stime = Number(rest[12]);
    return Number.isFinite(utime) && Number.isFinite(stime) ? utime + stime : undefined;
  } catch {
    return undefined;
  }
}

/** VmRSS in kB; undefined once the process is gone. */
export function rssKb(pid: number): number | undefined {
  try {
    const m = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m?.[1] !== undefined ? Number(m[1]) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The host PID of the sidecar of pod `pod`: inside its PID namespace it has another PID, so it
 * is found by its command line and its JOBMETRICS_POD in the host's /proc.
 */
async function findSidecarPid(pod: string, timeoutMs: number): Promise<number> {
  const started = Date.now();
  const wantEnv = `JOBMETRICS_POD=${pod}\0`;
  while (Date.now() - started < timeoutMs) {
    for (const name of readdirSync('/proc')) {
      if (!/^\d+$/.test(name)) continue;
      try {
        if (!/sidecar\/main\.js\0/.test(readFileSync(`/proc/${name}/cmdline`, 'utf8'))) continue;
        if (readFileSync(`/proc/${name}/environ`, 'utf8').includes(wantEnv)) return Number(name);
      } catch {
        // gone, or not ours to read
      }
    }
    await sleep(50);
  }
  throw new Error(`sidecar of pod ${pod} not found in /proc within ${timeoutMs} ms`);
}

/** Measures several processes over the same window. */
async function measure(pids: readonly number[], windowMs: number): Promise<ProcessUsage[]> {
  const t0 = performance.now();
  const ticks0 = pids.map(cpuTicks);
  const rss: number[][] = pids.map(() => []);
  const sampleRss = (): void => pids.forEach((pid, i) => {
    const kb = rssKb(pid);
    if (kb !== undefined) rss[i]?.push(kb);
  });
  sampleRss();
  while (performance.now() - t0 < windowMs) {
    await sleep(Math.min(1_000, Math.max(0, windowMs - (performance.now() - t0))));
    sampleRss();
  }
  const ticks1 = pids.map(cpuTicks);
  const seconds = (performance.now() - t0) / 1000;
  return pids.map((pid, i) => {
    const a = ticks0[i];
    const b = ticks1[i];
    if (a === undefined || b === undefined) throw new Error(`process ${pid} ended during the measurement window`);
    const samples = rss[i] ?? [];
    return {
      cpuPercent: ((b - a) / ticksPerSecond() / seconds) * 100,
      rssMeanKb: samples.reduce((s, v) => s + v, 0) / Math.max(1, samples.length),
      rssMaxKb: Math.max(...samples),
    };
  });
}

// ---------------------------------------------------------------------------------------------
// The remote-write receiver (in this process: it only answers 204 and counts)

interface Receiver {
  readonly url: string;
  readonly server: Server;
  readonly counts: Map<string, number>;
}

async function startReceiver(): Promise<Receiver> {
  const counts = new Map<string, number>();
  const server = createServer((req, res) => {
    // The pod is named in the path (/write/<pod>) so requests are counted per configuration.
    const key = req.url ?? '';
    req.resume();
    req.on('end', () => {
      counts.set(key, (counts.get(key) ?? 0) + 1);
      res.writeHead(204).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const addr = server.address();
  if (typeof addr !== 'object' || addr === null) throw new Error('receiver: no address');
  return { url: `http://127.0.0.1:${addr.port}`, server, counts };
}

// ---------------------------------------------------------------------------------------------
// One configuration

async function waitForTarget(port: number, timeoutMs: number): Promise<number> {
  const started = Date.now();
  for (;;) {
    try {
      const res = await fetch(`http://127.0.0.1:${port}/metrics`);
      const body = await res.arrayBuffer();
      if (res.ok) return body.byteLength;
    } catch {
      // not listening yet
    }
    if (Date.now() - started > timeoutMs) throw new Error(`target on port ${port} did not answer within ${timeoutMs} ms`);
    await sleep(50);
  }
}

/** The floor: an idle Node with the same flags as the sidecar image's ENTRYPOINT (like for like). */
function startFloor(nodeFlags: readonly string[]): ChildProcess {
  return spawn(process.execPath, [...SIDECAR_NODE_FLAGS, ...nodeFlags, '-e', 'setInterval(()=>{},1000)'], { stdio: 'ignore' });
}


/** The sidecar settings of a pace: `1s` (the fast pace within it, as shipped) or `1s fixed`. */
export function paceEnv(pace: string): Record<string, string> {
  const m = /^(\S+)( fixed)?$/.exec(pace);
  if (!m?.[1]) throw new Error(`pace "${pace}": expected an interval, optionally followed by " fixed"`);
  return { JOBMETRICS_INTERVAL: m[1], ...(m[2] ? { JOBMETRICS_FAST_INTERVAL: m[1] } : {}) };
}

async function benchOne(
  interval: string,
  series: number,
  o: {
    windowMs: number;
    warmupMs: number;
    dir: string;
    receiver: Receiver;
    profile: boolean;
    env: Readonly<Record<string, string>>;
    nodeFlags: readonly string[];
    program: string | undefined;
  },
): Promise<SidecarBenchRow> {
  const port = await freePort();
  const name = `bench-sidecar-${interval.replace(/\W+/g, '-')}-${series}`;
  const profDir = join(o.dir, `${name}.cpuprofile.d`);
  const pod = startLocalPod({
    name,
    dir: o.dir,
    main: { command: process.execPath, args: ['--import', TSX, THIS_FILE, 'target', String(series)], env: { PORT: String(port) } },
    sidecarEnv: sidecarEnv({
      port,
      remoteWriteUrl: `${o.receiver.url}/write/${name}`,
      namespace: 'bench',
      job: 'sidecar-footprint',
      pod: name,
      extra: { ...paceEnv(interval), ...o.env },
    }),
    // The target needs a moment (tsx, 10 000 series); the sidecar's own retries cover the rest.
    sidecarDelayMs: 1_000,
    ...(o.profile || o.nodeFlags.length > 0 || o.program !== undefined
      ? { sidecarCommand: { command: process.execPath, args: [...SIDECAR_NODE_FLAGS, ...o.nodeFlags, ...(o.profile ? ['--cpu-prof', '--cpu-prof-dir', profDir] : []), o.program ?? PROGRAMS.sidecar] } }
      : {}),
  });
  const floor = startFloor(o.nodeFlags);
  try {
    const bodyBytes = await waitForTarget(port, 30_000);
    const sidecarPid = await findSidecarPid(name, 10_000);
    if (floor.pid === undefined) throw new Error('floor process did not start');
    await sleep(o.warmupMs);
    const [sidecar, floorUsage] = await measure([sidecarPid, floor.pid], o.windowMs);
    pod.signal('*', 'SIGTERM');
    const result: PodResult = await resultWithin(pod, 30_000, name);
    const summary = result.summary;
    const num = (k: string): number | undefined => (typeof summary?.[k] === 'number' ? (summary[k] as number) : undefined);
    return {
      interval,
      series,
      windowMs: o.windowMs,
      sidecar: sidecar!,
      floor: floorUsage!,
      scrapes: num('scrapes'),
      scrapeFailures: num('scrapeFailures'),
      seriesSeen: num('series'),
      pushes: o.receiver.counts.get(`/write/${name}`) ?? 0,
      targetBodyBytes: bodyBytes,
      ...(o.profile ? { profileTop: summariseProfile(profDir) } : {}),
    };
  } catch (error) {
    pod.signal('*', 'SIGKILL');
    await pod.result.catch(() => undefined);
    throw error;
  } finally {
    floor.kill('SIGKILL');
  }
}

/** The top functions by self time of the newest .cpuprofile in `dir`. */
export function summariseProfile(dir: string, top = 15): string {
  let files: string[];
  try {
    files = readdirSync(dir).filter((f) => f.endsWith('.cpuprofile'));
  } catch {
    return '(no profile written)';
  }
  const file = files.sort().at(-1);
  if (file === undefined) return '(no profile written)';
  interface Node { id: number; callFrame: { functionName: string; url: string; lineNumber: number } }
  const prof = JSON.parse(readFileSync(join(dir, file), 'utf8')) as { nodes: Node[]; samples: number[]; timeDeltas: number[]; startTime: number; endTime: number };
  const byId = new Map(prof.nodes.map((n) => [n.id, n]));
  const self = new Map<string, number>();
  prof.samples.forEach((id, i) => {
    const f = byId.get(id)?.callFrame;
    if (f?.functionName === '(idle)') return;
    const where = f === undefined || f.url === '' ? '' : ` ${f.url.replace(/^.*\/(node_modules|dist)\//, '$1/')}:${f.lineNumber + 1}`;
    const key = f === undefined ? '?' : `${f.functionName || '(anonymous)'}${where}`;
    self.set(key, (self.get(key) ?? 0) + (prof.timeDeltas[i] ?? 0));
  });
  const wall = (prof.endTime - prof.startTime) / 1000;
  const busyUs = [...self.values()].reduce((s, v) => s + v, 0);
  const busy = busyUs / 1000;
  const lines = [...self]
    .sort((a, b) => b[1] - a[1])
    .slice(0, top)
    .map(([k, v]) => `  ${(v / 1000).toFixed(1).padStart(8)} ms  ${((v / Math.max(1, busyUs)) * 100).toFixed(1).padStart(5)} %  ${k}`);
  return [`profile ${file}: ${wall.toFixed(0)} ms wall, ${busy.toFixed(0)} ms on the JS thread (not idle); top self time:`, ...lines].join('\n');
}

// ---------------------------------------------------------------------------------------------

export async function benchSidecar(opts: SidecarBenchOptions = {}): Promise<SidecarBenchRow[]> {
  const quick = opts.quick ?? process.env['BENCH_QUICK'] === '1';
  const windowMs = opts.windowMs ?? (quick ? 10_000 : 60_000);
  const warmupMs = opts.warmupMs ?? 6_000;
  const intervals = opts.intervals ?? ['1s', '1s fixed', '100ms'];
  const seriesList = opts.series ?? [100, 1_000, 10_000];
  const progress = opts.progress ?? ((line: string) => process.stderr.write(line + '\n'));
  const dir = mkdtempSync(join(tmpdir(), 'jobmetrics-bench-sidecar-'));
  const receiver = await startReceiver();
  const rows: SidecarBenchRow[] = [];
  const total = intervals.length * seriesList.length;
  try {
    for (const interval of intervals) {
      for (const series of seriesList) {
        progress(`sidecar bench ${rows.length + 1}/${total}: interval ${interval}, ${series} series, ${warmupMs / 1000} s warm-up + ${windowMs / 1000} s window …`);
        const row = await benchOne(interval, series, { windowMs, warmupMs, dir, receiver, profile: opts.profile ?? false, env: opts.sidecarEnv ?? {}, nodeFlags: opts.sidecarNodeFlags ?? [], program: opts.sidecarProgram });
        progress(
          `  sidecar ${row.sidecar.cpuPercent.toFixed(2)} % CPU, ${mb(row.sidecar.rssMeanKb)} MB RSS; floor ${row.floor.cpuPercent.toFixed(2)} %, ${mb(row.floor.rssMeanKb)} MB`,
        );
        if (row.profileTop) progress(row.profileTop);
        rows.push(row);
      }
    }
  } finally {
    receiver.server.close();
    receiver.server.closeAllConnections();
    if (process.env['BENCH_KEEP'] === '1') progress(`sidecar bench: logs kept in ${dir}`);
    else rmSync(dir, { recursive: true, force: true });
  }
  return rows;
}

const mb = (kb: number): string => (kb / 1024).toFixed(1);

export function formatTable(rows: readonly SidecarBenchRow[]): string {
  const header = ['pace', 'series', 'sidecar CPU', 'floor CPU', 'sidecar RSS', 'floor RSS', 'RSS ratio', 'max RSS', 'scrapes', 'pushes'];
  const lines = rows.map((r) => [
    r.interval,
    r.series.toLocaleString('en-US'),
    `${r.sidecar.cpuPercent.toFixed(2)} %`,
    `${r.floor.cpuPercent.toFixed(2)} %`,
    `${mb(r.sidecar.rssMeanKb)} MB`,
    `${mb(r.floor.rssMeanKb)} MB`,
    `${(r.sidecar.rssMeanKb / r.floor.rssMeanKb).toFixed(2)}×`,
    `${mb(r.sidecar.rssMaxKb)} MB`,
    r.scrapes === undefined ? '?' : `${r.scrapes}${r.scrapeFailures ? ` (${r.scrapeFailures} failed)` : ''}`,
    String(r.pushes),
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...lines.map((l) => (l[i] ?? '').length)));
  const fmt = (cells: readonly string[]): string => `| ${cells.map((c, i) => (i < 1 ? c.padEnd(widths[i] ?? 0) : c.padStart(widths[i] ?? 0))).join(' | ')} |`;
  const rule = `|${widths.map((w, i) => (i < 1 ? `:${'-'.repeat(w + 1)}` : `${'-'.repeat(w + 1)}:`)).join('|')}|`;
  return [fmt(header), rule, ...lines.map(fmt)].join('\n');
}

/**
 * The sidecar targets of docs/benchmarks.md, judged at 1 000 series: memory on the shipped pace;
 * CPU on `1s fixed` (the scrape itself, every second) and on the shipped pace, whose fast scrapes
 * may add up to 1 % of a core by design (sidecar/scrape-pace.ts).
 */
export function verdict(rows: readonly SidecarBenchRow[]): string[] {
  const shipped = rows.find((x) => x.interval === '1s' && x.series === 1_000);
  const fixed = rows.find((x) => x.interval === '1s fixed' && x.series === 1_000);
  const lines: string[] = [];
  if (shipped) {
    const ratio = shipped.sidecar.rssMeanKb / shipped.floor.rssMeanKb;
    lines.push(`target RSS <= 1.5x the floor at 1 000 series (1 s as shipped): ${ratio.toFixed(2)}x (${mb(shipped.sidecar.rssMeanKb)} / ${mb(shipped.floor.rssMeanKb)} MB): ${ratio <= 1.5 ? 'MET' : 'NOT MET'}`);
    lines.push(`target CPU <= 2 % of a core at 1 000 series as shipped (the fast pace adds at most 1 %): ${shipped.sidecar.cpuPercent.toFixed(2)} %: ${shipped.sidecar.cpuPercent <= 2 ? 'MET' : 'NOT MET'}`);
  }
  if (fixed) lines.push(`target CPU <= 1 % of a core at 1 000 series scraped every 1 s (1s fixed): ${fixed.sidecar.cpuPercent.toFixed(2)} %: ${fixed.sidecar.cpuPercent <= 1 ? 'MET' : 'NOT MET'}`);
  return lines.length > 0 ? lines : ['targets: not judged (no 1 000-series row at 1 s in this run)'];
}

export async function run(opts: SidecarBenchOptions = {}): Promise<string> {
  const rows = await benchSidecar(opts);
  const ns = pidNamespaceSupport();
  const windowS = (rows[0]?.windowMs ?? 0) / 1000;
  const profiles = rows.filter((r) => r.profileTop).map((r) => `${r.interval} / ${r.series} series: ${r.profileTop}`);
  return [
    `Sidecar footprint: real sidecar as deployed (\`node ${[...SIDECAR_NODE_FLAGS, ...(opts.sidecarNodeFlags ?? [])].join(' ')} dist/sidecar/main.js\`, the image's ENTRYPOINT) in a local pod (${ns.ok ? 'own PID namespace' : `plain child process: ${ns.why}`}), ${windowS} s window per configuration after a warm-up, ` +
      `next to an idle Node process with the same flags (the floor) measured in the same window. CPU = (utime+stime) / window, % of one core; RSS = mean of 1 s VmRSS samples.`,
    '',
    formatTable(rows),
    '',
    ...verdict(rows),
    '',
    'scrapes and pushes cover the whole pod life (warm-up included); default push interval (10 s).',
    ...(profiles.length ? ['', ...profiles] : []),
  ].join('\n');
}

// ---------------------------------------------------------------------------------------------
// The target: `bench/sidecar.ts target <series>` with PORT in the environment.

async function serveTarget(series: number, port: number): Promise<void> {
  const { default: client } = await import('prom-client');
  const registry = new client.Registry();
  const counter = new client.Counter({
    name: 'bench_items_processed_total',
    help: 'Work items processed by the job.',
    labelNames: ['worker', 'queue', 'status'],
    registers: [registry],
  });
  const labels = Array.from({ length: series }, (_, i) => ({ worker: `worker-${i % 100}`, queue: `queue-${Math.floor(i / 100)}`, status: i % 7 === 0 ? 'failed' : 'ok' }));
  let tick = 0;
  let body = '';
  const update = async (): Promise<void> => {
    // A tenth of the series moves every second, a different tenth each time.
    tick++;
    for (let i = tick % 10; i < series; i += 10) counter.inc(labels[i]!, 1 + (i % 3));
    body = await registry.metrics();
  };
  for (const l of labels) counter.inc(l, 1);
  await update();
  setInterval(() => void update(), 1_000);
  const server = createServer((req, res) => {
    if (req.url !== '/metrics') {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { 'content-type': registry.contentType }).end(body);
  });
  server.listen(port, '127.0.0.1');
  process.on('SIGTERM', () => process.exit(0));
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  if (process.argv[2] === 'target') {
    await serveTarget(Number(process.argv[3] ?? '1000'), Number(process.env['PORT'] ?? '9100'));
  } else {
    console.log(await run({ profile: process.argv.includes('--profile') }));
  }
}
