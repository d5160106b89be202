/**
 * The aggregator stack of the demo and the integration tests: real vmagent (stream aggregation with
 * manifests/aggregator/stream-aggr.yaml) writing to a real Prometheus (remote-write receiver), both
 * on loopback, data and logs in one folder (docs/semantics.md, README "Develop: the two commands").
 *
 * - Ports: from scripts/ports.ts; a bind race (EADDRINUSE) is retried with a new port. vmagent is
 *   restarted on the SAME port, since sidecars keep its URL.
 * - No orphans: children are started by scripts/child-processes.ts.
 * - The stream-aggregation file is the one the manifests use; only `interval`,
 *   `staleness_interval` and `ignore_first_sample_interval` are overridden, in a copy in `dir`, so
 *   tests can run with short intervals.
 */
import { accessSync, constants, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { parse, stringify } from 'yaml';
import { parseDuration } from '../shared/duration.ts';
import { describeExit, logTail, startChild, stopChild, type Child } from './child-processes.ts';
import { freePort } from './ports.ts';

const PROJECT_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
export const DEFAULT_AGGR_CONFIG = join(PROJECT_ROOT, 'manifests/aggregator/stream-aggr.yaml');

export interface StackOptions {
  /** Folder for data and logs (created by the caller; left in place by stop()). */
  dir: string;
  /** `staleness_interval` of every rule; default `15m`, as in the manifests. */
  stalenessInterval?: string;
  /** `ignore_first_sample_interval` of every rule; default: vmagent's (= the staleness interval). */
  ignoreFirstSampleInterval?: string;
  /** Default: manifests/aggregator/stream-aggr.yaml. */
  aggrConfigPath?: string;
  /** vmagent's `-remoteWrite.flushInterval` (how long outputs may wait before they are sent); default `100ms`. */
  flushInterval?: string;
  /** `interval` of every rule; default `1s` (the manifests use 10s) so tests and the demo see results fast. */
  aggregationInterval?: string;
  /** Prometheus `--query.lookback-delta`; default Prometheus' own (5m). */
  lookbackDelta?: string;
  extraVmagentArgs?: string[];
  /** Most time to wait for either process to become ready; default 30 s. */
  readyTimeoutMs?: number;
}

export interface QueryResult {
  metric: Record<string, string>;
  value: number;
}

export interface Stack {
  /** vmagent's `/api/v1/write`; stays the same across vmagent restarts. */
  readonly remoteWriteUrl: string;
  readonly prometheusUrl: string;
  readonly vmagentUrl: string;
  /** The derived stream-aggregation file vmagent runs with. */
  readonly aggrConfigPath: string;
  /** Instant query; values are exact numbers (`+Inf`, `-Inf`, `NaN` included). */
  query(promql: string, atSec?: number): Promise<QueryResult[]>;
  /** Resolves once every aggregated output of samples pushed before the call is in Prometheus. */
  flush(): Promise<void>;
  /** SIGTERM (graceful: vmagent writes `flush_on_shutdown` outputs) or SIGKILL (a crash). */
  stopVmagent(signal?: 'SIGTERM' | 'SIGKILL'): Promise<void>;
  startVmagent(): Promise<void>;
  restartVmagent(signal?: 'SIGTERM' | 'SIGKILL'): Promise<void>;
  /** vmagent's own /metrics, parsed (name → summed value), for tests that look at its counters. */
  vmagentMetrics(): Promise<Map<string, number>>;
  stop(): Promise<void>;
}

/** The cached binaries (scripts/install-aggregator); throws with what to run when missing. */
export function aggregatorBinaries(): { vmagent: string; prometheus: string; promtool: string } {
  const cache = process.env['JOBMETRICS_CACHE'] ?? join(PROJECT_ROOT, '.cache');
  const bins = {
    vmagent: join(cache, 'debian/victoria-metrics/usr/bin/vmagent'),
    prometheus: join(cache, 'debian/prometheus/usr/bin/prometheus'),
    promtool: join(cache, 'debian/promtool/usr/bin/promtool'),
  };
  for (const [name, path] of Object.entries(bins)) {
    try {
      accessSync(path, constants.X_OK);
    } catch (cause) {
      throw new Error(`aggregator stack: ${name} is missing or not executable at ${path}; run \`npm run install-aggregator\``, { cause });
    }
  }
  return bins;
}

// ---- children ------------------------------------------------------------------------------

export class StartError extends Error {
  constructor(
    message: string,
    readonly addressInUse: boolean,
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}

/** Polls `url` until it answers 200; fails early, with the log's tail, if the process exits. */
export async function waitReady(name: string, r: Child, url: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    if (r.exitInfo) {
      const tail = logTail(r.logPath, 25);
      throw new StartError(`aggregator stack: ${name} ${describeExit(r.exitInfo)} while starting; last lines of ${r.logPath}:\n${tail}`, /address already in use/i.test(tail));
    }
    try {
      const res = await fetch(url, { signal: AbortSignal.timeout(1_000) });
      await res.arrayBuffer();
      if (res.status === 200) return;
      last = new Error(`HTTP ${res.status}`);
    } catch (err) {
      last = err;
    }
    await delay(50);
  }
  await stopChild(r, { signal: 'SIGKILL' });
  throw new Error(`aggregator stack: ${name} not ready at ${url} within ${timeoutMs} ms; last lines of ${r.logPath}:\n${logTail(r.logPath, 25)}`, { cause: last });
}

/** Starts a child on a port, retrying with a new free port when the bind raced (EADDRINUSE). */
export async function startOnFreePort(name: string, start: (port: number) => Promise<Child>, attempts = 5): Promise<{ port: number; running: Child }> {
  for (let i = 1; ; i++) {
    const port = await freePort();
    try {
      return { port, running: await start(port) };
    } catch (err) {
      if (!(err instanceof StartError && err.addressInUse) || i >= attempts) throw err;
    }
  }
}

// ---- config --------------------------------------------------------------------------------

/** The rules of a stream-aggregation config (pure). */
function aggrRules(source: string): Array<Record<string, unknown>> {
  const rules: unknown = parse(source);
  if (!Array.isArray(rules)) throw new Error('stream-aggregation config: expected a list of rules');
  return rules.map((rule: unknown) => {
    if (typeof rule !== 'object' || rule === null || Array.isArray(rule)) throw new Error('stream-aggregation config: a rule is not a mapping');
    return rule as Record<string, unknown>;
  });
}

/** The rules of `source` with the test-tunable intervals overridden (pure). */
export function deriveAggrConfig(source: string, o: { interval: string; staleness: string; ignoreFirst?: string }): string {
  const out = aggrRules(source).map((rule) => {
    const r: Record<string, unknown> = { ...rule, interval: o.interval, staleness_interval: o.staleness };
    if (o.ignoreFirst !== undefined) r['ignore_first_sample_interval'] = o.ignoreFirst;
    return r;
  });
  return stringify(out);
}

/** The `interval` and `staleness_interval` every rule of `source` shares (pure); an error names a rule that differs. */
export function aggrIntervals(source: string): { interval: string; staleness: string } {
  const rules = aggrRules(source);
  const of = (rule: Record<string, unknown>): { interval: string; staleness: string } => {
    const interval = rule['interval'];
    const staleness = rule['staleness_interval'];
    if (typeof interval !== 'string' || typeof staleness !== 'string') {
      throw new Error(`stream-aggregation config: rule ${String(rule['name'])} lacks interval or staleness_interval`);
    }
    return { interval, staleness };
  };
  const first = rules[0];
  if (first === undefined) throw new Error('stream-aggregation config: no rules');
  const shared = of(first);
  for (const rule of rules) {
    const own = of(rule);
    if (own.interval !== shared.interval || own.staleness !== shared.staleness) {
      throw new Error(`stream-aggregation config: rule ${String(rule['name'])} has interval ${own.interval}, staleness_interval ${own.staleness}; the first rule ${shared.interval}, ${shared.staleness}`);
    }
  }
  return shared;
}

// ---- metrics -------------------------------------------------------------------------------

/** Prometheus text → series key (`name{labels}` as printed) → value; enough for vmagent's /metrics. */
export function parseMetricsText(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const sp = line.lastIndexOf(' ');
    if (sp <= 0) continue;
    out.set(line.slice(0, sp), promNumber(line.slice(sp + 1)));
  }
  return out;
}

export function sumOf(metrics: Map<string, number>, name: string, labelFilter?: (key: string) => boolean): number {
  let sum = 0;
  for (const [key, value] of metrics) {
    if ((key === name || key.startsWith(name + '{')) && (labelFilter === undefined || labelFilter(key))) sum += value;
  }
  return sum;
}

/** Per rule (`position` label) counts of finished aggregation flushes. */
function flushCounts(metrics: Map<string, number>): Map<string, number> {
  const out = new Map<string, number>();
  const position = (key: string): string => /position="([^"]*)"/.exec(key)?.[1] ?? key;
  // Every rule has matched_samples_total from the start; flush_duration only after its first flush.
  for (const key of metrics.keys()) {
    if (key.startsWith('vm_streamaggr_matched_samples_total{')) out.set(position(key), 0);
  }
  for (const [key, value] of metrics) {
    if (key.startsWith('vm_streamaggr_flush_duration_seconds_count{')) out.set(position(key), value);
  }
  if (out.size === 0) throw new Error('aggregator stack: vmagent reports no stream-aggregation rules in /metrics');
  return out;
}

export function promNumber(text: string): number {
  if (text === '+Inf' || text === 'Inf') return Infinity;
  if (text === '-Inf') return -Infinity;
  return Number(text);
}

const excerpt = (s: string): string => (s.length > 200 ? s.slice(0, 199) + '…' : s);

export async function getText(url: string, what: string): Promise<string> {
  let res: Response;
  try {
    res = await fetch(url, { signal: AbortSignal.timeout(5_000) });
  } catch (cause) {
    throw new Error(`aggregator stack: ${what} GET ${url} failed`, { cause });
  }
  const body = await res.text();
  if (!res.ok) throw new Error(`aggregator stack: ${what} GET ${url} returned HTTP ${res.status}: ${excerpt(body)}`);
  return body;
}


// ---- shared by the stack and scripts/aggregator-topology.ts --------------------------------

export interface PrometheusOptions {
  /** Data, config and log go here. */
  dir: string;
  readyTimeoutMs?: number;
  /** `--query.lookback-delta`; default Prometheus' own (5m). */
  lookbackDelta?: string;
}

/** Prometheus with the remote-write receiver and no scrape jobs, on a free loopback port. */
export async function startPrometheus(opts: PrometheusOptions): Promise<{ url: string; child: Child }> {
  const bins = aggregatorBinaries();
  const promConfig = join(opts.dir, 'prometheus.yml');
  writeFileSync(promConfig, '# no scrape jobs: everything arrives by remote write\nglobal: {}\n');
  const { port, running } = await startOnFreePort('prometheus', async (p) => {
    const args = [
      `--config.file=${promConfig}`,
      `--storage.tsdb.path=${join(opts.dir, 'prometheus-data')}`,
      `--web.listen-address=127.0.0.1:${p}`,
      '--web.enable-remote-write-receiver',
    ];
    if (opts.lookbackDelta !== undefined) args.push(`--query.lookback-delta=${opts.lookbackDelta}`);
    const r = startChild('prometheus', bins.prometheus, args, join(opts.dir, 'prometheus.log'));
    await waitReady('prometheus', r, `http://127.0.0.1:${p}/-/ready`, opts.readyTimeoutMs ?? 30_000);
    return r;
  });
  return { url: `http://127.0.0.1:${port}`, child: running };
}

/** An instant query; values are exact numbers (`+Inf`, `-Inf`, `NaN` included). */
export async function queryPrometheus(prometheusUrl: string, promql: string, atSec?: number): Promise<QueryResult[]> {
  const form = new URLSearchParams({ query: promql });
  if (atSec !== undefined) form.set('time', String(atSec));
  const url = `${prometheusUrl}/api/v1/query`;
  let res: Response;
  try {
    res = await fetch(url, { method: 'POST', body: form, signal: AbortSignal.timeout(10_000) });
  } catch (cause) {
    throw new Error(`aggregator stack: query ${promql} at ${url} failed`, { cause });
  }
  const text = await res.text();
  if (!res.ok) throw new Error(`aggregator stack: query ${promql} returned HTTP ${res.status}: ${excerpt(text)}`);
  const body = JSON.parse(text) as {
    data: { resultType: string; result: unknown };
  };
  const { resultType, result } = body.data;
  if (resultType === 'scalar') {
    const [, v] = result as [number, string];
    return [{ metric: {}, value: promNumber(v) }];
  }
  if (resultType !== 'vector') throw new Error(`aggregator stack: query ${promql} gave a ${resultType}, not an instant vector`);
  return (result as Array<{ metric: Record<string, string>; value: [number, string] }>).map((s) => ({ metric: s.metric, value: promNumber(s.value[1]) }));
}

/** A vmagent's own /metrics, parsed (name → value). */
export async function vmagentMetricsAt(vmagentUrl: string): Promise<Map<string, number>> {
  return parseMetricsText(await getText(`${vmagentUrl}/metrics`, 'vmagent metrics'));
}

/**
 * Resolves after two finished flushes of every stream-aggregation rule of the vmagent at
 * `vmagentUrl` that started after the call: the second one started after now, so it covers every
 * sample pushed before now (pushes are aggregated before vmagent answers).
 */
export async function awaitAggregationFlushes(vmagentUrl: string, intervalMs: number, deadlineMs: number): Promise<void> {
  const before = flushCounts(await vmagentMetricsAt(vmagentUrl));
  for (;;) {
    const now = flushCounts(await vmagentMetricsAt(vmagentUrl));
    if ([...before].every(([pos, n]) => (now.get(pos) ?? 0) >= n + 2)) return;
    if (Date.now() > deadlineMs) throw new Error(`aggregator stack: vmagent ${vmagentUrl} did not flush its aggregation state twice in time`);
    await delay(Math.min(100, intervalMs / 4));
  }
}

/**
 * Resolves once every row the vmagent at `vmagentUrl` handed to remote write is in a block its
 * remote storage acknowledged and nothing waits in its queue. A block the storage rejected (4xx)
 * is dropped by vmagent and never counted as sent: more rejected blocks than `seen.rejected` throw
 * (once: `seen` is updated).
 */
export async function awaitDelivered(vmagentUrl: string, deadlineMs: number, seen: { rejected: number }, logPath: string): Promise<void> {
  const pushed = sumOf(await vmagentMetricsAt(vmagentUrl), 'vmagent_remotewrite_rows_pushed_after_relabel_total');
  for (;;) {
    const cur = await vmagentMetricsAt(vmagentUrl);
    const inBlocks = sumOf(cur, 'vmagent_remotewrite_block_size_rows_sum');
    const blocks = sumOf(cur, 'vmagent_remotewrite_block_size_rows_count');
    const sent = sumOf(cur, 'vmagent_remotewrite_blocks_sent_total');
    const rejected = sumOf(cur, 'vmagent_remotewrite_packets_dropped_total');
    if (rejected > seen.rejected) {
      const was = seen.rejected;
      seen.rejected = rejected;
      throw new Error(`aggregator stack: the remote storage of ${vmagentUrl} rejected ${rejected - was} block(s), so results are incomplete; last lines of ${logPath}:\n${logTail(logPath, 5)}`);
    }
    if (inBlocks >= pushed && sent + rejected >= blocks && sumOf(cur, 'vmagent_remotewrite_pending_data_bytes') === 0) return;
    if (Date.now() > deadlineMs) {
      throw new Error(`aggregator stack: vmagent ${vmagentUrl} did not deliver its outputs in time (rows ${inBlocks}/${pushed}, blocks ${sent}/${blocks}); see ${logPath}`);
    }
    await delay(25);
  }
}

// ---- the stack -----------------------------------------------------------------------------

export async function startStack(opts: StackOptions): Promise<Stack> {
  const bins = aggregatorBinaries();
  const readyMs = opts.readyTimeoutMs ?? 30_000;
  const aggrInterval = opts.aggregationInterval ?? '1s';
  const derived = join(opts.dir, 'stream-aggr.yaml');
  const ignoreFirst = opts.ignoreFirstSampleInterval;
  writeFileSync(
    derived,
    deriveAggrConfig(readFileSync(opts.aggrConfigPath ?? DEFAULT_AGGR_CONFIG, 'utf8'), {
      interval: aggrInterval,
      staleness: opts.stalenessInterval ?? '15m',
      ...(ignoreFirst !== undefined ? { ignoreFirst } : {}),
    }),
  );
  const { url: prometheusUrl, child: prom } = await startPrometheus({ dir: opts.dir, readyTimeoutMs: readyMs, ...(opts.lookbackDelta !== undefined ? { lookbackDelta: opts.lookbackDelta } : {}) });

  const vmagentArgs = (port: number): string[] => [
    `-httpListenAddr=127.0.0.1:${port}`,
    `-remoteWrite.url=${prometheusUrl}/api/v1/write`,
    // Prometheus speaks only the Prometheus protocol; skip vmagent's VictoriaMetrics-protocol probe.
    '-remoteWrite.forcePromProto',
    `-remoteWrite.flushInterval=${opts.flushInterval ?? '100ms'}`,
    `-remoteWrite.tmpDataPath=${join(opts.dir, 'vmagent-queue')}`,
    `-streamAggr.config=${derived}`,
    // As in the manifests: a series that matched no rule must not reach the store per pod.
    '-streamAggr.dropInput',
    // One sender keeps the outputs in order: with several queues a block delayed by a slow send
    // can land after the next interval's block, and Prometheus rejects it as out of order (400).
    '-remoteWrite.queues=1',
    ...(opts.extraVmagentArgs ?? []),
  ];
  const vmLog = join(opts.dir, 'vmagent.log');
  const startVm = async (port: number): Promise<Child> => {
    const r = startChild('vmagent', bins.vmagent, vmagentArgs(port), vmLog);
    await waitReady('vmagent', r, `http://127.0.0.1:${port}/health`, readyMs);
    return r;
  };

  let vm: Child | undefined;
  let vmPort: number;
  try {
    const started = await startOnFreePort('vmagent', startVm);
    vm = started.running;
    vmPort = started.port;
  } catch (err) {
    await stopChild(prom, { signal: 'SIGKILL' });
    throw err;
  }
  const vmagentUrl = `http://127.0.0.1:${vmPort}`;

  const seen = { rejected: 0 };
  const vmagentMetrics = (): Promise<Map<string, number>> => vmagentMetricsAt(vmagentUrl);

  const stack: Stack = {
    remoteWriteUrl: `${vmagentUrl}/api/v1/write`,
    prometheusUrl,
    vmagentUrl,
    aggrConfigPath: derived,

    query: (promql, atSec) => queryPrometheus(prometheusUrl, promql, atSec),

    async flush() {
      if (vm === undefined) throw new Error('aggregator stack: flush() while vmagent is stopped');
      const intervalMs = parseSimpleDuration(aggrInterval);
      const deadline = Date.now() + 3 * intervalMs + 10_000;
      await awaitAggregationFlushes(vmagentUrl, intervalMs, deadline);
      await awaitDelivered(vmagentUrl, deadline, seen, vmLog);
    },

    async stopVmagent(signal = 'SIGTERM') {
      if (vm === undefined) return;
      const r = vm;
      vm = undefined;
      await stopChild(r, { signal });
    },

    async startVmagent() {
      if (vm !== undefined) return;
      // The same port: sidecars keep the URL. Go listens with SO_REUSEADDR, so only a real
      // second listener could take it; retry briefly in case the old socket is still closing.
      let lastErr: unknown;
      for (let i = 0; i < 20; i++) {
        try {
          vm = await startVm(vmPort);
          seen.rejected = 0;
          return;
        } catch (err) {
          lastErr = err;
          if (!(err instanceof StartError && err.addressInUse)) throw err;
          await delay(250);
        }
      }
      throw lastErr;
    },

    async restartVmagent(signal = 'SIGTERM') {
      await stack.stopVmagent(signal);
      await stack.startVmagent();
    },

    vmagentMetrics,

    async stop() {
      await stack.stopVmagent();
      await stopChild(prom);
    },
  };
  return stack;
}

function parseSimpleDuration(text: string): number {
  const r = parseDuration(text);
  if (!r.ok) throw new Error(`aggregator stack: aggregation interval: ${r.error}`);
  return r.ms;
}
