/**
 * The aggregator tier under load, with faults: many concurrent simulated pods
 * (scripts/simulated-pod.ts: the sidecar's own series store, encoder and delivery) write through
 * the real tier of an overlay (scripts/aggregator-topology.ts: real vmagent routers and shards with
 * the overlay's flags, one real Prometheus), and at the end what Prometheus holds is compared with
 * what the pods counted, series by series: 0 lost, 0 counted twice — or, where a fault may lose,
 * how much, against its bound.
 *
 * - Pods start and end all the time: each lives a random time in [--lifetime], and when one ends,
 *   with its final flush, another starts, so --pods are live at once (after a ramp of 20 s). At
 *   --duration the live ones end together (a burst of final flushes) and no more start.
 * - Every pod has --series series (one counter family; from 24 series on also a 10-bucket
 *   histogram; read into the store once per push interval and at the exit), in one of --jobs
 *   workloads; every 3 s one pod is a probe with a workload of its own,
 *   whose final value is polled in Prometheus: exit → visible.
 * - Faults (unless --no-faults), at 30 %, 50 % and 70 % of the duration: one shard crashes (SIGKILL)
 *   and is started again at once; one router is restarted (SIGTERM: a rolling update); with the HA
 *   overlay, one aggregator that is not a neighbour of the first is killed (SIGKILL) and left down.
 * - Counted as docs/install.md says to read each overlay (scripts/output-exactness.ts): per output
 *   series the reset-aware total of its samples; with HA the higher of its two copies.
 * - CPU and memory of every process from /proc, sampled every 5 s; a progress line every 10 s.
 *
 *   node --import tsx bench/aggregator-load.ts                     1 000 pods × 100 series, 5 min, HA
 *   … --pods 200 --series 50 --duration 60s --overlay sharded-aggregator --no-faults
 *   npm run bench -- aggregator-load [--pods N] [--series N] [--duration D] [--overlay NAME]
 */
import { setMaxListeners } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseDuration } from '../shared/duration.ts';
import { startTopology, type Member, type Topology } from '../scripts/aggregator-topology.ts';
import { sumOf, vmagentMetricsAt } from '../scripts/aggregator-stack.ts';
import { addInto, compareWithTruth, countStored, type Exactness } from '../scripts/output-exactness.ts';
import { seeded } from '../scripts/seeded-random.ts';
import { runSimulatedPod, type PodResult, type PodTiming } from '../scripts/simulated-pod.ts';
import { closeIdleConnections } from '../shared/remote-write.ts';
import { percentile } from './exit-latency.ts';
import { cpuTicks, rssKb, ticksPerSecond } from './sidecar.ts';

export interface LoadOptions {
  readonly pods?: number;
  readonly series?: number;
  readonly durationMs?: number;
  readonly overlay?: 'ha-aggregator' | 'sharded-aggregator';
  readonly jobs?: number;
  readonly lifetimeMs?: readonly [number, number];
  readonly faults?: boolean;
  /** The stream-aggregation interval; default the shipped one (10 s). */
  readonly aggregationInterval?: string;
  readonly seed?: number;
  readonly progress?: (line: string) => void;
}

const NS = 'load';
const REPLICA = 'jobmetrics_replica';
/** The sidecar's defaults (sidecar/config.ts): push every 10 s, flush within 10 s. */
const PUSH_MS = 10_000;
const FLUSH_MS = 10_000;
const STALENESS_MS = 15 * 60_000;
const PROBE_EVERY_MS = 3_000;
const RAMP_MS = 20_000;
/**
 * The sidecar's HTTP client keeps at most 4 connections per address (shared/remote-write.ts), one
 * pool per process; a real pod has its own. So the simulated pods are spread over this many
 * addresses of the routers' Service (scripts/tcp-balancer.ts), 4 connections each.
 */
const SERVICE_ADDRESSES = 25;

interface Usage {
  readonly name: string;
  readonly role: 'router' | 'shard' | 'prometheus' | 'generator';
  cpuS: number;
  peakRssMb: number;
  rssSumMb: number;
  samples: number;
}

interface FaultRecord {
  readonly what: string;
  readonly atS: number;
  readonly tookMs: number;
}

export interface LoadResult {
  readonly opts: Required<Omit<LoadOptions, 'progress' | 'lifetimeMs' | 'aggregationInterval'>> & { lifetimeMs: readonly [number, number]; aggregationInterval: string };
  readonly podsRun: number;
  readonly finalUndelivered: number;
  readonly deliveries: number;
  readonly retries: number;
  readonly samplesDelivered: number;
  readonly activeS: number;
  readonly exactness: Exactness;
  readonly faults: readonly FaultRecord[];
  /** Sharded overlay with a crashed shard: the increments of its outputs in one aggregation interval, at the run's mean rate. */
  readonly lossBound: number | undefined;
  /** Pods that ended at the end of their lifetime during the load. */
  readonly exitToAckMs: readonly number[];
  /** The pods still live at the end, all ended at once. */
  readonly burstToAckMs: readonly number[];
  readonly exitToVisibleMs: readonly number[];
  readonly probesNotVisible: number;
  readonly usage: readonly Usage[];
  readonly shardRowsPerS: readonly number[];
  readonly outputSeries: number;
  /** Why attempts were retried: error (URL and numbers elided) → count. */
  readonly retryReasons: ReadonlyMap<string, number>;
}

function durationArg(text: string, what: string): number {
  const r = parseDuration(text);
  if (!r.ok) throw new Error(`${what}: ${r.error}`);
  return r.ms;
}

export async function benchAggregatorLoad(o: LoadOptions = {}): Promise<LoadResult> {
  const opts = {
    pods: o.pods ?? 1_000,
    series: o.series ?? 100,
    durationMs: o.durationMs ?? 5 * 60_000,
    overlay: o.overlay ?? 'ha-aggregator',
    jobs: o.jobs ?? 20,
    lifetimeMs: o.lifetimeMs ?? ([30_000, 120_000] as const),
    faults: o.faults ?? true,
    aggregationInterval: o.aggregationInterval ?? '10s',
    seed: o.seed ?? 1,
  };
  const progress = o.progress ?? ((l: string) => void process.stderr.write(`${l}\n`));
  const intervalMs = durationArg(opts.aggregationInterval, 'aggregation interval');
  const ha = opts.overlay === 'ha-aggregator';
  const dir = mkdtempSync(join(tmpdir(), 'jobmetrics-load-'));
  const topology = await startTopology({ dir, overlay: opts.overlay, aggregationInterval: opts.aggregationInterval, serviceAddresses: SERVICE_ADDRESSES });
  let ok = false;
  try {
    const result = await drive(topology, opts, intervalMs, ha, progress);
    ok = true;
    return result;
  } finally {
    await topology.close();
    closeIdleConnections();
    if (ok) rmSync(dir, { recursive: true, force: true });
    else progress(`aggregator-load: logs and data kept in ${dir}`);
  }
}

async function drive(
  t: Topology,
  opts: LoadResult['opts'],
  intervalMs: number,
  ha: boolean,
  progress: (line: string) => void,
): Promise<LoadResult> {
  const random = seeded(opts.seed);
  const stats = { started: 0, ended: 0, finalUndelivered: 0, deliveries: 0, retries: 0, samplesDelivered: 0 };
  const timing: Omit<PodTiming, 'remoteWriteUrl'> = {
    pushIntervalMs: PUSH_MS,
    scrapeIntervalMs: PUSH_MS,
    flushTimeoutMs: FLUSH_MS,
    stalenessMs: STALENESS_MS,
    random,
    onDelivery: (okDelivery, samples, retries) => {
      stats.deliveries++;
      stats.retries += retries;
      if (okDelivery) stats.samplesDelivered += samples;
    },
    onRetry: (error) => {
      // The URL and numbers vary; the kind of failure is what matters.
      const reason = error.replace(/https?:\/\/\S+/g, '<url>').replace(/\d+/g, 'N');
      retryReasons.set(reason, (retryReasons.get(reason) ?? 0) + 1);
    },
  };
  const truth = new Map<string, number>();
  const floor = new Map<string, number>();
  const retryReasons = new Map<string, number>();
  const exitToAck: number[] = [];
  const burstToAck: number[] = [];
  const exitToVisible: number[] = [];
  let probesNotVisible = 0;
  const probeWaits: Array<Promise<void>> = [];
  const end = new AbortController();
  // Every live pod waits on it.
  setMaxListeners(0, end.signal);
  const t0 = Date.now();
  const deadline = t0 + opts.durationMs;

  // ---- processes: CPU and memory ----
  const tps = ticksPerSecond();
  const usage = new Map<number, Usage & { lastTicks: number }>();
  let first = true;
  const track = (): void => {
    const procs: Array<[number | undefined, string, Usage['role']]> = [
      ...t.routers.map((m: Member): [number | undefined, string, Usage['role']] => [m.child?.proc.pid, m.name, 'router']),
      ...t.shards.map((m: Member): [number | undefined, string, Usage['role']] => [m.child?.proc.pid, m.name, 'shard']),
      [t.prometheus.proc.pid, 'prometheus', 'prometheus'],
      [process.pid, 'generator (this process)', 'generator'],
    ];
    for (const [pid, name, role] of procs) {
      if (pid === undefined) continue;
      const ticks = cpuTicks(pid);
      const rss = rssKb(pid);
      if (ticks === undefined || rss === undefined) continue;
      let u = usage.get(pid);
      if (!u) {
        // A restarted process is a new pid under the same name: its usage adds to the name's, from
        // its start; a process that ran before the load counts from the load's start.
        u = { name, role, cpuS: 0, peakRssMb: 0, rssSumMb: 0, samples: 0, lastTicks: first ? ticks : 0 };
        usage.set(pid, u);
      }
      u.cpuS += (ticks - u.lastTicks) / tps;
      u.lastTicks = ticks;
      u.peakRssMb = Math.max(u.peakRssMb, rss / 1024);
      u.rssSumMb += rss / 1024;
      u.samples++;
    }
    first = false;
  };
  track();
  const tracker = setInterval(track, 5_000);

  const rowsIn = async (): Promise<number[]> =>
    Promise.all(t.shards.map(async (s) => (s.child ? sumOf(await vmagentMetricsAt(s.url), 'vmagent_rows_inserted_total') : 0)));
  const rowsAtStart = await rowsIn();
  const rowsByShard = new Array<number>(t.shards.length).fill(0);

  // ---- probes: exit → visible ----
  const visibleQuery = (job: string, key: string, value: number): Promise<void> => {
    const op = /op="([^"]+)"/.exec(key)?.[1] ?? 'op0';
    const selector = `load_ops_total{namespace="${NS}",job="${job}",op="${op}"}`;
    const q = ha ? `max without (${REPLICA}) (${selector})` : selector;
    return (async () => {
      const exitAt = Date.now();
      for (;;) {
        const r = await t.query(q).catch(() => []);
        if (r[0]?.value === value) return;
        if (Date.now() - exitAt > 120_000) {
          probesNotVisible++;
          return;
        }
        await sleep(250);
      }
    })();
  };

  // ---- pods ----
  let probeN = 0;
  let lastProbe = t0;
  const startPod = (delayMs: number): Promise<void> =>
    (async () => {
      if (delayMs > 0) await sleep(delayMs);
      if (end.signal.aborted) return;
      const n = stats.started++;
      const isProbe = Date.now() - lastProbe >= PROBE_EVERY_MS;
      if (isProbe) lastProbe = Date.now();
      const job = isProbe ? `probe-${probeN++}` : `job-${n % opts.jobs}`;
      const [lo, hi] = opts.lifetimeMs;
      const remoteWriteUrl = t.remoteWriteUrls[n % t.remoteWriteUrls.length] ?? t.remoteWriteUrl;
      const r: PodResult = await runSimulatedPod(
        { namespace: NS, job, pod: `${job}-${n}`, series: opts.series, lifetimeMs: lo + Math.floor(random() * (hi - lo)) },
        { ...timing, remoteWriteUrl },
        end.signal,
      );
      stats.ended++;
      addInto(truth, r.truth);
      addInto(floor, r.acknowledged);
      if (!r.finalDelivered) stats.finalUndelivered++;
      if (r.deliveredAtMs !== undefined) (r.endedEarly ? burstToAck : exitToAck).push(r.deliveredAtMs - r.exitAtMs);
      // Probes that end in the final burst would measure the burst, not the steady state.
      if (isProbe && r.finalDelivered && !r.endedEarly) {
        const [key, value] = [...r.truth].find(([k]) => k.startsWith('load_ops_total{')) ?? ['', 0];
        const exitAt = r.exitAtMs;
        probeWaits.push(visibleQuery(job, key, value).then(() => void exitToVisible.push(Date.now() - exitAt)));
      }
      // Another pod takes its place until the end.
      if (!end.signal.aborted) await startPod(0);
    })();
  const lanes: Array<Promise<void>> = [];
  for (let i = 0; i < opts.pods; i++) lanes.push(startPod(Math.floor((i / opts.pods) * RAMP_MS)));

  // ---- faults ----
  const faults: FaultRecord[] = [];
  const fault = async (at: number, what: string, act: () => Promise<void>): Promise<void> => {
    await sleep(Math.max(0, t0 + at * opts.durationMs - Date.now()));
    const s = Date.now();
    await act();
    faults.push({ what, atS: Math.round((s - t0) / 1000), tookMs: Date.now() - s });
    progress(`aggregator-load: ${what} at ${Math.round((s - t0) / 1000)} s (${Date.now() - s} ms)`);
  };
  const crashed = 0;
  const killed = Math.floor(t.shards.length / 2);
  const faultRuns: Array<Promise<void>> = [];
  if (opts.faults) {
    faultRuns.push(fault(0.3, `shard ${t.shards[crashed]?.name} crashed (SIGKILL) and started again`, () => t.restart('shard', crashed, 'SIGKILL')));
    faultRuns.push(fault(0.5, `router ${t.routers[0]?.name} restarted (SIGTERM)`, () => t.restart('router', 0, 'SIGTERM')));
    if (ha) faultRuns.push(fault(0.7, `HA replica ${t.shards[killed]?.name} killed (SIGKILL), left down`, () => t.stop('shard', killed, 'SIGKILL')));
  }

  // ---- progress ----
  let lastLine = { at: t0, deliveries: 0 };
  const ticker = setInterval(() => {
    const now = Date.now();
    const cpu = (role: Usage['role']): string => [...usage.values()].filter((u) => u.role === role).reduce((a, u) => a + u.cpuS, 0).toFixed(0);
    progress(
      `aggregator-load: ${Math.round((now - t0) / 1000)} s/${opts.durationMs / 1000} s, pods live ${stats.started - stats.ended}, started ${stats.started}, ended ${stats.ended}, ` +
        `deliveries/s ${((stats.deliveries - lastLine.deliveries) / ((now - lastLine.at) / 1000)).toFixed(0)}, retries ${stats.retries}, final undelivered ${stats.finalUndelivered}; ` +
        `CPU s routers ${cpu('router')} shards ${cpu('shard')} prometheus ${cpu('prometheus')} generator ${cpu('generator')}`,
    );
    lastLine = { at: now, deliveries: stats.deliveries };
  }, 10_000);

  await sleep(Math.max(0, deadline - Date.now()));
  end.abort();
  await Promise.all(faultRuns);
  await Promise.all(lanes);
  const activeS = (Date.now() - t0) / 1000;
  const rowsAtEnd = await rowsIn();
  rowsAtEnd.forEach((r, i) => (rowsByShard[i] = r - (rowsAtStart[i] ?? 0)));
  clearInterval(ticker);
  progress(`aggregator-load: all ${stats.ended} pods ended after ${activeS.toFixed(0)} s; waiting for probes and for the tier to deliver`);
  await Promise.all(probeWaits);
  track();
  clearInterval(tracker);
  await t.flush();

  const stored = await t.rangeSamples(`{namespace="${NS}"}`, `${Math.ceil(activeS / 60) + 5}m`);
  const { counted } = countStored(stored, ha ? REPLICA : undefined);
  const exactness = compareWithTruth(truth, counted, floor);

  let lossBound: number | undefined;
  if (opts.faults && !ha) {
    const onCrashed = t.outputsByShard()[crashed] ?? new Map<string, number>();
    let sum = 0;
    for (const [k, v] of truth) if (onCrashed.has(k)) sum += v;
    lossBound = Math.round((sum / activeS) * (intervalMs / 1000));
  }

  const byName = new Map<string, Usage>();
  for (const u of usage.values()) {
    const prev = byName.get(u.name);
    if (!prev) byName.set(u.name, { name: u.name, role: u.role, cpuS: u.cpuS, peakRssMb: u.peakRssMb, rssSumMb: u.rssSumMb, samples: u.samples });
    else {
      prev.cpuS += u.cpuS;
      prev.peakRssMb = Math.max(prev.peakRssMb, u.peakRssMb);
      prev.rssSumMb += u.rssSumMb;
      prev.samples += u.samples;
    }
  }
  return {
    opts,
    podsRun: stats.ended,
    finalUndelivered: stats.finalUndelivered,
    deliveries: stats.deliveries,
    retries: stats.retries,
    samplesDelivered: stats.samplesDelivered,
    activeS,
    exactness,
    faults,
    lossBound,
    exitToAckMs: exitToAck.sort((a, b) => a - b),
    burstToAckMs: burstToAck.sort((a, b) => a - b),
    exitToVisibleMs: exitToVisible.sort((a, b) => a - b),
    probesNotVisible,
    usage: [...byName.values()],
    shardRowsPerS: rowsByShard.map((r) => r / activeS),
    outputSeries: counted.size,
    retryReasons,
  };
}

// ---- report ----------------------------------------------------------------------------------

const f0 = (n: number): string => (Number.isFinite(n) ? n.toFixed(0) : '–');
const f2 = (n: number): string => (Number.isFinite(n) ? n.toFixed(2) : '–');

export function formatReport(r: LoadResult): string {
  const { opts } = r;
  const e = r.exactness;
  const lines: string[] = [];
  lines.push(
    `Overlay ${opts.overlay}; ${opts.pods} concurrent pods × ${opts.series} series, ${opts.jobs} workloads (+1 probe workload every 3 s), lifetimes ${opts.lifetimeMs[0] / 1000}–${opts.lifetimeMs[1] / 1000} s, ` +
      `${(opts.durationMs / 1000).toFixed(0)} s of load; push every ${PUSH_MS / 1000} s, aggregation interval ${opts.aggregationInterval}, staleness 15m (as shipped); seed ${opts.seed}.`,
  );
  lines.push(
    `${r.podsRun} pods ran (each with its final flush; ${r.finalUndelivered} final flushes not delivered), ${r.deliveries} deliveries (${f0(r.deliveries / r.activeS)}/s), ` +
      `${r.samplesDelivered} samples delivered (${f0(r.samplesDelivered / r.activeS)}/s), ${r.retries} retries.`,
  );
  lines.push('');
  lines.push('| counted as | output series | exact | missing | unexpected | pods counted (sum) | not acknowledged to the pods | counted in Prometheus | lost by the tier | counted twice |');
  lines.push('| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |');
  lines.push(
    `| ${opts.overlay === 'ha-aggregator' ? 'max over the 2 copies' : 'one copy'} | ${e.seriesExpected} | ${e.seriesExact} | ${e.seriesMissing} | ${e.seriesUnexpected} | ${e.expectedTotal} | ${e.undelivered} | ${e.countedTotal} | ${e.lost} | ${e.double} |`,
  );
  lines.push(
    '',
    'A series is exact when its count lies between what the tier acknowledged to the pods and what the pods counted; ' +
      '"not acknowledged" is what pods whose final flush missed its 10 s deadline counted after their last acknowledged delivery (the sidecar\'s accepted loss when delivery is late; it may or may not have been counted).',
  );
  if (r.lossBound !== undefined) lines.push('', `Loss bound for the crashed shard (one aggregation interval of its outputs' increments at the run's mean rate): ${r.lossBound}; lost ${e.lost}.`);
  if (e.examples.length > 0) lines.push('', `Series that differ (key, truth, counted): ${e.examples.map(([k, a, b]) => `${k} ${a} ${b}`).join('; ')}`);
  if (r.retryReasons.size > 0) lines.push('', `Retried attempts by error: ${[...r.retryReasons].sort((a, b) => b[1] - a[1]).map(([k, n]) => `${n}× ${k}`).join('; ')}.`);
  lines.push('', `Faults: ${r.faults.length === 0 ? 'none' : r.faults.map((x) => `${x.what} at ${x.atS} s`).join('; ')}.`);
  lines.push('');
  lines.push('| latency | n | p50 | p90 | p99 | max |');
  lines.push('| --- | --- | --- | --- | --- | --- |');
  const lat = (name: string, xs: readonly number[]): string => `| ${name} | ${xs.length} | ${f0(percentile(xs, 50))} ms | ${f0(percentile(xs, 90))} ms | ${f0(percentile(xs, 99))} ms | ${f0(xs.at(-1) ?? NaN)} ms |`;
  lines.push(lat('exit → final delivery acknowledged (the tier took it), during the load', r.exitToAckMs));
  lines.push(lat('the same for the pods live at the end, all ended at once', r.burstToAckMs));
  lines.push(lat('exit → its value visible in Prometheus (probe pods, during the load)', r.exitToVisibleMs));
  if (r.probesNotVisible > 0) lines.push('', `${r.probesNotVisible} probe(s) never showed their value within 120 s.`);
  lines.push('');
  lines.push('| process | CPU s | cores (mean) | RSS mean | RSS peak |');
  lines.push('| --- | --- | --- | --- | --- |');
  for (const u of r.usage) lines.push(`| ${u.name} | ${f0(u.cpuS)} | ${f2(u.cpuS / r.activeS)} | ${f0(u.rssSumMb / u.samples)} MiB | ${f0(u.peakRssMb)} MiB |`);
  const tier = r.usage.filter((u) => u.role === 'router' || u.role === 'shard');
  const tierCores = tier.reduce((a, u) => a + u.cpuS, 0) / r.activeS;
  const tierPeak = tier.reduce((a, u) => a + u.peakRssMb, 0);
  const per1000 = 1000 / opts.pods;
  const shards = r.usage.filter((u) => u.role === 'shard');
  const shardCpu = shards.reduce((a, u) => a + u.cpuS, 0);
  const shardRows = r.shardRowsPerS.reduce((a, b) => a + b, 0) * r.activeS;
  const copies = opts.overlay === 'ha-aggregator' ? 2 : 1;
  lines.push('');
  lines.push(
    `Aggregator tier (routers + shards): ${f2(tierCores)} cores and ${f0(tierPeak)} MiB (sum of peaks) for ${opts.pods} pods, i.e. ${f2(tierCores * per1000)} cores and ${f0(tierPeak * per1000)} MiB per 1 000 pods. ` +
      `Shards: ${f0(shardRows / shardCpu)} samples per CPU-second (samples/s one shard holds per core), ` +
      `${f0((opts.pods * copies * r.activeS) / shardCpu)} concurrent pods of ${opts.series} series per shard core. ` +
      `Output series in Prometheus: ${r.outputSeries}${copies === 2 ? ' (each in 2 copies)' : ''}.`,
  );
  return lines.join('\n');
}

export function verdict(r: LoadResult): string[] {
  const e = r.exactness;
  const out = [`target nothing counted twice: ${e.double === 0 ? 'MET' : 'NOT MET'} (counted twice: ${e.double})`];
  if (r.lossBound === undefined) out.push(`target nothing lost by the tier: ${e.lost === 0 ? 'MET' : 'NOT MET'} (lost ${e.lost})`);
  else out.push(`target loss within one aggregation interval of the crashed shard: ${e.lost <= r.lossBound ? 'MET' : 'NOT MET'} (lost ${e.lost}, bound ${r.lossBound})`);
  return out;
}

export async function run(o: LoadOptions = {}): Promise<string> {
  const r = await benchAggregatorLoad(o);
  return [formatReport(r), ...verdict(r)].join('\n\n');
}

// ---- CLI ---------------------------------------------------------------------------------------

export function parseLoadArgs(argv: readonly string[]): LoadOptions {
  const o: { -readonly [K in keyof LoadOptions]: LoadOptions[K] } = {};
  const int = (name: string, v: string | undefined): number => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < 1) throw new Error(`${name} needs a positive integer, not "${v ?? ''}"`);
    return n;
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--pods') o.pods = int(a, argv[++i]);
    else if (a === '--series') o.series = int(a, argv[++i]);
    else if (a === '--jobs') o.jobs = int(a, argv[++i]);
    else if (a === '--seed') o.seed = int(a, argv[++i]);
    else if (a === '--duration') o.durationMs = durationArg(argv[++i] ?? '', '--duration');
    else if (a === '--interval') o.aggregationInterval = argv[++i] ?? '';
    else if (a === '--lifetime') {
      const [lo, hi] = (argv[++i] ?? '').split('-');
      o.lifetimeMs = [durationArg(lo ?? '', '--lifetime'), durationArg(hi ?? '', '--lifetime')];
    } else if (a === '--overlay') {
      const v = argv[++i];
      if (v !== 'ha-aggregator' && v !== 'sharded-aggregator') throw new Error(`--overlay is ha-aggregator or sharded-aggregator, not "${v ?? ''}"`);
      o.overlay = v;
    } else if (a === '--no-faults') o.faults = false;
    else throw new Error(`unknown option "${a ?? ''}"; options: --pods N --series N --jobs N --duration D --lifetime D-D --interval D --overlay NAME --no-faults --seed N`);
  }
  return o;
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const text = await run(parseLoadArgs(process.argv.slice(2)));
  console.log(text);
  process.exit(0);
}
