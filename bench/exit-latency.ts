/**
 * Exit-to-delivered latency: the time from the moment the main container's process exits to the
 * moment the aggregator has the job's final values, over many runs of a real local pod
 * (scripts/local-pod.ts: the sample job and the real sidecar in their own PID namespace under a
 * pause-like PID 1), measured outside the sidecar:
 *
 * - exit: pod-init (PID 1 of the pod) reaps the main process and writes
 *   `{"event":"exit","container":"main","atMs":…}` at once; that is the moment the process is gone.
 * - delivered: the sidecar's remote write goes to a receiver in this process, which decodes every
 *   request (snappy + protobuf WriteRequest) and timestamps the arrival of the first request that
 *   carries every final value the job reported in its ground-truth file (items ok, items failed,
 *   histogram count). Two receivers:
 *   - `receiver`: answers 204 itself; arrival = the request body fully read. The sidecar's part
 *     alone.
 *   - `vmagent`: a pass-through proxy in front of a real vmagent 1.112 with the shipped stream
 *     aggregation (scripts/aggregator-stack.ts); delivered = vmagent's 2xx answer reached the
 *     proxy, i.e. vmagent has aggregated the samples (it answers after aggregating). The proxy adds
 *     one loopback hop.
 *   Both timestamps come from Date.now() of processes on the same machine (same clock, 1 ms grain).
 *
 * Each run is one pod with the shipped sidecar defaults (1 s scrapes, 10 s pushes,
 * JOBMETRICS_EXIT_POLL from sidecar/config.ts): the job counts 20 items over 0.3 s, stays up 1.5 s so its last
 * values are scraped, and exits 0. With a 10 s push interval nothing but the explicit zeros is
 * delivered before the exit, so the final values travel in the final flush.
 * Also reported: detection (exit → the sidecar's "final flush" log line, its own clock) and the
 * sidecar's self-reported `exitToDeliveredMs` (its detection → its 2xx), as a cross-check.
 *
 *   node --import tsx bench/exit-latency.ts                 100 runs per receiver (~8 min)
 *   node --import tsx bench/exit-latency.ts --quick         20 runs per receiver
 *   … --runs 50 --concurrency 2 --no-vmagent --exit-poll 50ms
 *   import { run } from './exit-latency.ts'                 the same text (for bench/run.ts)
 */
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer, request, type IncomingHttpHeaders, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { uncompressSync } from 'snappy';
import { aggregatorBinaries, startStack, type Stack } from '../scripts/aggregator-stack.ts';
import { freePort, pidNamespaceSupport, readTruth, sampleJob, sidecarEnv, resultWithin, startLocalPod, type GroundTruth } from '../scripts/local-pod.ts';
import { SIDECAR_DEFAULTS } from '../sidecar/config.ts';
import { decodeWriteRequest } from '../test/support/write-request.ts';

export type ReceiverKind = 'receiver' | 'vmagent';

export interface ExitLatencyOptions {
  /** Runs per receiver; default 100, or 20 with `quick`. */
  readonly runs?: number;
  /** Pods at a time; default 1 (sequential: nothing else of ours competes for the 2 cores). */
  readonly concurrency?: number;
  /** Which receivers; default both when vmagent is installed, else the local receiver only. */
  readonly receivers?: readonly ReceiverKind[];
  readonly quick?: boolean;
  /** JOBMETRICS_EXIT_POLL for the sidecar; default the sidecar's own (sidecar/config.ts). */
  readonly exitPoll?: string;
  /** Progress lines (one every 10 runs); default stderr. */
  readonly progress?: (line: string) => void;
}

export interface RunRecord {
  readonly pod: string;
  readonly exitAtMs: number;
  /** Exit → the request with every final value arrived (receiver) / was accepted (vmagent). */
  readonly latencyMs: number | undefined;
  /** Exit → the sidecar's "final flush" log line. */
  readonly detectMs: number | undefined;
  /** The sidecar's own exitToDeliveredMs (its detection → its 2xx). */
  readonly reportedMs: number | undefined;
  readonly trigger: unknown;
  /** Requests of this pod before the main container's exit, and at or after it. */
  readonly requestsBefore: number;
  readonly requestsAfter: number;
  /** The final values were already delivered before the exit (a push interval shorter than the job). */
  readonly deliveredBeforeExit: boolean;
}

export interface ExitLatencyResult {
  readonly receiver: ReceiverKind;
  readonly runs: readonly RunRecord[];
  readonly concurrency: number;
  readonly exitPoll: string;
}

// ---------------------------------------------------------------------------------------------
// What arrived, as the checks read it (decoded by test/support/write-request.ts)

interface DecodedSeries {
  readonly labels: Readonly<Record<string, string>>;
  readonly values: readonly number[];
}


// ---------------------------------------------------------------------------------------------
// The receiver: answers itself, or passes through to vmagent and timestamps vmagent's answer

interface Arrival {
  readonly atMs: number;
  readonly status: number;
  readonly series: readonly DecodedSeries[];
}

interface Receiver {
  readonly url: string;
  readonly arrivals: Map<string, Arrival[]>;
  close(): Promise<void>;
}

async function startReceiver(upstream: string | undefined): Promise<Receiver> {
  const arrivals = new Map<string, Arrival[]>();
  const record = (pod: string, atMs: number, status: number, body: Buffer): void => {
    let series: DecodedSeries[] = [];
    try {
      series = decodeWriteRequest(uncompressSync(body) as Buffer).map((ts) => ({ labels: Object.fromEntries(ts.labels), values: ts.samples.map((x) => x.value) }));
    } catch {
      // Not a WriteRequest: recorded without series, so it never counts as the final delivery.
    }
    const list = arrivals.get(pod) ?? [];
    list.push({ atMs, status, series });
    arrivals.set(pod, list);
  };
  const forward = (headers: IncomingHttpHeaders, body: Buffer): Promise<number> =>
    new Promise((resolve) => {
      const h: Record<string, string> = {};
      for (const k of ['content-type', 'content-encoding', 'x-prometheus-remote-write-version', 'user-agent']) {
        const v = headers[k];
        if (typeof v === 'string') h[k] = v;
      }
      const req = request(upstream!, { method: 'POST', headers: { ...h, 'content-length': String(body.length) } }, (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
        res.on('error', () => resolve(0));
      });
      req.on('error', () => resolve(0));
      req.end(body);
    });
  const server: Server = createServer((req, res) => {
    const pod = decodeURIComponent((req.url ?? '').replace(/^\/write\//, ''));
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      if (upstream === undefined) {
        const atMs = Date.now();
        res.writeHead(204).end();
        record(pod, atMs, 204, body);
        return;
      }
      void forward(req.headers, body).then((status) => {
        const atMs = Date.now();
        res.writeHead(status === 0 ? 502 : status).end();
        record(pod, atMs, status, body);
      });
    });
  });
  server.keepAliveTimeout = 60_000;
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const addr = server.address();
  if (typeof addr !== 'object' || addr === null) throw new Error('receiver: no address');
  return {
    url: `http://127.0.0.1:${addr.port}`,
    arrivals,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

// ---------------------------------------------------------------------------------------------
// One run

/** Whether `series` holds every final value of the sample job's ground truth. */
function hasFinalValues(series: readonly DecodedSeries[], truth: GroundTruth): boolean {
  const want: Array<[(l: Readonly<Record<string, string>>) => boolean, number]> = [
    [(l) => l['__name__'] === 'demo_items_processed_total' && l['outcome'] === 'ok', truth.ok],
    [(l) => l['__name__'] === 'demo_item_duration_seconds_count', truth.observations],
  ];
  if (truth.failed > 0) want.push([(l) => l['__name__'] === 'demo_items_processed_total' && l['outcome'] === 'failed', truth.failed]);
  return want.every(([match, value]) => series.some((s) => match(s.labels) && s.values.includes(value)));
}


async function oneRun(name: string, o: { dir: string; receiver: Receiver; exitPoll: string | undefined }): Promise<RunRecord> {
  const port = await freePort();
  const truthFile = join(o.dir, `${name}.truth.json`);
  const pod = startLocalPod({
    name,
    dir: o.dir,
    main: sampleJob({ port, items: 20, durationMs: 300, settleMs: 1_500, truthFile }),
    sidecarEnv: sidecarEnv({
      port,
      remoteWriteUrl: `${o.receiver.url}/write/${encodeURIComponent(name)}`,
      namespace: 'bench',
      job: 'exit-latency',
      pod: name,
      extra: o.exitPoll !== undefined ? { JOBMETRICS_EXIT_POLL: o.exitPoll } : {},
    }),
  });
  let result;
  try {
    result = await resultWithin(pod, 60_000, name);
  } catch (error) {
    pod.signal('*', 'SIGKILL');
    throw error;
  }
  const truth = readTruth(truthFile);
  const exitAtMs = result.main.atMs;
  const arrivals = (o.receiver.arrivals.get(name) ?? []).filter((a) => a.status >= 200 && a.status < 300);
  o.receiver.arrivals.delete(name);
  const final = arrivals.find((a) => hasFinalValues(a.series, truth));
  const flushLine = result.sidecarLog.find((l) => l['msg'] === 'final flush');
  const flushAt = typeof flushLine?.['time'] === 'string' ? Date.parse(flushLine['time']) : NaN;
  const reported = result.summary?.['exitToDeliveredMs'];
  return {
    pod: name,
    exitAtMs,
    latencyMs: final === undefined ? undefined : final.atMs - exitAtMs,
    detectMs: Number.isFinite(flushAt) ? flushAt - exitAtMs : undefined,
    reportedMs: typeof reported === 'number' ? reported : undefined,
    trigger: result.summary?.['trigger'],
    requestsBefore: arrivals.filter((a) => a.atMs < exitAtMs).length,
    requestsAfter: arrivals.filter((a) => a.atMs >= exitAtMs).length,
    deliveredBeforeExit: final !== undefined && final.atMs < exitAtMs,
  };
}

// ---------------------------------------------------------------------------------------------

/** Nearest-rank percentile of sorted values. */
export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))] ?? NaN;
}

const sortedOf = (xs: ReadonlyArray<number | undefined>): number[] => xs.filter((x): x is number => x !== undefined).sort((a, b) => a - b);

export function vmagentAvailable(): boolean {
  try {
    aggregatorBinaries();
    return true;
  } catch {
    return false;
  }
}

export async function benchExitLatency(opts: ExitLatencyOptions = {}): Promise<ExitLatencyResult[]> {
  const quick = opts.quick ?? process.env['BENCH_QUICK'] === '1';
  const runs = opts.runs ?? (quick ? 20 : 100);
  const concurrency = Math.max(1, opts.concurrency ?? 1);
  const receivers = opts.receivers ?? (vmagentAvailable() ? (['receiver', 'vmagent'] as const) : (['receiver'] as const));
  const progress = opts.progress ?? ((line: string) => process.stderr.write(line + '\n'));
  const dir = mkdtempSync(join(tmpdir(), 'jobmetrics-bench-exit-'));
  const results: ExitLatencyResult[] = [];
  try {
    for (const kind of receivers) {
      let stack: Stack | undefined;
      if (kind === 'vmagent') {
        progress('exit latency: starting vmagent + Prometheus …');
        // Aggregation as in the manifests (10 s); only the write path is timed here.
        const stackDir = join(dir, 'stack');
        mkdirSync(stackDir);
        stack = await startStack({ dir: stackDir, aggregationInterval: '10s' });
      }
      const receiver = await startReceiver(stack?.remoteWriteUrl);
      const records: RunRecord[] = [];
      try {
        let next = 0;
        const worker = async (): Promise<void> => {
          while (next < runs) {
            const i = next++;
            records.push(await oneRun(`exit-${kind}-${i}`, { dir, receiver, exitPoll: opts.exitPoll }));
            if (records.length % 10 === 0 || records.length === runs) {
              const lat = sortedOf(records.map((r) => r.latencyMs));
              progress(
                `exit latency (${kind}): ${records.length}/${runs} runs, p50 ${percentile(lat, 50).toFixed(0)} ms, ` +
                  `max ${(lat.at(-1) ?? NaN).toFixed(0)} ms, final values missing in ${records.length - lat.length}`,
              );
            }
          }
        };
        await Promise.all(Array.from({ length: concurrency }, worker));
      } finally {
        await receiver.close();
        await stack?.stop();
      }
      results.push({ receiver: kind, runs: records, concurrency, exitPoll: opts.exitPoll ?? `${SIDECAR_DEFAULTS.exitPoll} (default)` });
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  return results;
}

const ms = (v: number): string => (Number.isFinite(v) ? v.toFixed(0) : '-');

export function formatTable(results: readonly ExitLatencyResult[]): string {
  const header = ['aggregator', 'runs', 'final delivered', 'p50', 'p90', 'p99', 'max', 'mean', 'detect p50 / p99', 'sidecar-reported p50 / p99'];
  const lines = results.map((r) => {
    const lat = sortedOf(r.runs.map((x) => x.latencyMs));
    const det = sortedOf(r.runs.map((x) => x.detectMs));
    const rep = sortedOf(r.runs.map((x) => x.reportedMs));
    return [
      r.receiver === 'vmagent' ? 'vmagent 1.112 (via proxy)' : 'local receiver (204)',
      String(r.runs.length),
      `${lat.length}/${r.runs.length}`,
      `${ms(percentile(lat, 50))} ms`,
      `${ms(percentile(lat, 90))} ms`,
      `${ms(percentile(lat, 99))} ms`,
      `${ms(lat.at(-1) ?? NaN)} ms`,
      `${(lat.reduce((s, v) => s + v, 0) / Math.max(1, lat.length)).toFixed(1)} ms`,
      `${ms(percentile(det, 50))} / ${ms(percentile(det, 99))} ms`,
      `${ms(percentile(rep, 50))} / ${ms(percentile(rep, 99))} ms`,
    ];
  });
  const widths = header.map((h, i) => Math.max(h.length, ...lines.map((l) => (l[i] ?? '').length)));
  const fmt = (cells: readonly string[]): string => `| ${cells.map((c, i) => (i < 1 ? c.padEnd(widths[i] ?? 0) : c.padStart(widths[i] ?? 0))).join(' | ')} |`;
  const rule = `|${widths.map((w, i) => (i < 1 ? `:${'-'.repeat(w + 1)}` : `${'-'.repeat(w + 1)}:`)).join('|')}|`;
  return [fmt(header), rule, ...lines.map(fmt)].join('\n');
}

/** Target (docs/benchmarks.md): p99 <= 100 ms with the aggregator up; every run must deliver its final values. */
export function verdict(results: readonly ExitLatencyResult[]): string[] {
  return results.map((r) => {
    const lat = sortedOf(r.runs.map((x) => x.latencyMs));
    const p99 = percentile(lat, 99);
    const all = lat.length === r.runs.length;
    const ok = all && p99 <= 100;
    return `target p99 <= 100 ms, ${r.receiver === 'vmagent' ? 'real vmagent' : 'local receiver'}: p99 ${ms(p99)} ms${all ? '' : `, final values missing in ${r.runs.length - lat.length} runs`}: ${ok ? 'MET' : 'NOT MET'}`;
  });
}

export async function run(opts: ExitLatencyOptions = {}): Promise<string> {
  const results = await benchExitLatency(opts);
  const ns = pidNamespaceSupport();
  const odd = results.flatMap((r) =>
    r.runs
      .filter((x) => x.trigger !== 'main-exited' || x.deliveredBeforeExit || x.latencyMs === undefined)
      .map((x) => `  ${x.pod}: trigger ${String(x.trigger)}, final values ${x.latencyMs === undefined ? 'never seen' : x.deliveredBeforeExit ? 'delivered before the exit' : 'delivered'}`),
  );
  const first = results[0];
  return [
    `Exit-to-delivered latency: main process exit (reaped by the pod's PID 1) → the remote-write request carrying every final value ` +
      `arrived at a local receiver, or was accepted by real vmagent. Local pods (${ns.ok ? 'own PID namespace' : `plain child processes: ${ns.why}`}), ` +
      `shipped sidecar defaults (1 s scrapes, 10 s pushes, exit poll ${first?.exitPoll ?? `${SIDECAR_DEFAULTS.exitPoll} (default)`}), ${first?.concurrency ?? 1} pod(s) at a time.`,
    '',
    formatTable(results),
    '',
    ...verdict(results),
    '',
    'detect = exit → the sidecar\'s "final flush" log line; sidecar-reported = its own exitToDeliveredMs (from its detection, so without the detection time).',
    ...(odd.length ? ['', 'runs to look at:', ...odd] : []),
  ].join('\n');
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const args = process.argv.slice(2);
  const value = (flag: string): string | undefined => {
    const i = args.indexOf(flag);
    return i >= 0 ? args[i + 1] : undefined;
  };
  const runs = value('--runs');
  const concurrency = value('--concurrency');
  const exitPoll = value('--exit-poll');
  console.log(
    await run({
      quick: args.includes('--quick'),
      ...(runs !== undefined ? { runs: Number(runs) } : {}),
      ...(concurrency !== undefined ? { concurrency: Number(concurrency) } : {}),
      ...(exitPoll !== undefined ? { exitPoll } : {}),
      ...(args.includes('--no-vmagent') ? { receivers: ['receiver'] as const } : {}),
    }),
  );
}
