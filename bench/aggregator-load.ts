/**
 * The aggregator tier under load, with faults: many concurrent simulated pods
 * (scripts/simulated-pod.ts: the sidecar's own series store, encoder and delivery) write through
 * the real tier of an overlay (scripts/aggregator-topology.ts: real vmagent routers and shards with
 * the overlay's flags, one real Prometheus), and at the end what Prometheus holds is compared with
 * what the pods counted, series by series: 0 lost, 0 counted twice — or, where a fault may lose,
 * how much, against its bound.
 *
 * `--overlay base` is the shipped default instead: the pods write to the gateway's 2 replicas
 * (each its own process, the Deployment's environment), which forward to ONE vmagent with the
 * Deployment's flags, which writes to Prometheus. Its report adds what sizing needs: the gateways'
 * CPU, memory and tracked series, and Prometheus' ingestion (samples/s, head series).
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
 *   With `base`, only a gateway replica is restarted (SIGTERM: a rolling update), at 50 %: its one
 *   aggregator has no second copy, so a crash of it loses by design (the sharded overlay's run
 *   measures that loss), and the point of this run is the footprint.
 * - Counted as docs/install.md says to read each overlay (scripts/output-exactness.ts): per output
 *   series the reset-aware total of its samples; with HA the higher of its two copies.
 * - CPU and memory of every process from /proc, sampled every 5 s; a progress line every 10 s.
 *
 *   node --import tsx bench/aggregator-load.ts                     1 000 pods × 100 series, 5 min, HA
 *   … --pods 200 --series 50 --duration 60s --overlay sharded-aggregator --no-faults
 *   … --overlay base                                               the shipped default (gateway → vmagent)
 *
 * HA stays the default: `npm run bench -- --write-docs` writes this benchmark's output into the
 * HA block of docs/benchmarks.md.
 *   npm run bench -- aggregator-load [--pods N] [--series N] [--duration D] [--overlay NAME]
 */
import { setMaxListeners } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseDuration } from '../shared/duration.ts';
import { BASE_OVERLAY, gatewayMetricsAt, startTopology, type Member, type Topology } from '../scripts/aggregator-topology.ts';
import { getText, parseMetricsText, sumOf, vmagentMetricsAt } from '../scripts/aggregator-stack.ts';
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
  readonly overlay?: Overlay;
  readonly jobs?: number;
  readonly lifetimeMs?: readonly [number, number];
  readonly faults?: boolean;
  /** The stream-aggregation interval; default the shipped one (10 s). */
  readonly aggregationInterval?: string;
  /** The gateways' heap limit in MiB; default gateway.yaml's (NODE_OPTIONS). */
  readonly gatewayHeapMb?: number;
  readonly seed?: number;
  readonly progress?: (line: string) => void;
}

const OVERLAYS = ['ha-aggregator', 'sharded-aggregator', BASE_OVERLAY] as const;
type Overlay = (typeof OVERLAYS)[number];
const isOverlay = (v: string | undefined): v is Overlay => OVERLAYS.some((o) => o === v);

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
  readonly role: 'gateway' | 'router' | 'shard' | 'prometheus' | 'generator';
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

/** One gateway replica's own counters, at the end of the load. */
interface GatewayStats {
  readonly name: string;
  readonly trackedSeries: number;
  /** The most tracked series seen by the 10 s polls. */
  readonly peakTrackedSeries: number;
  readonly births: number;
  readonly heldSamples: number;
  readonly requests: number;
  readonly forwardFailures: number;
}

/** Prometheus' own ingestion counters (GET /metrics; it scrapes nothing, so they are not stored). */
interface Ingestion {
  /** Mean over the load. */
  readonly samplesPerS: number;
  /** Over the last minute of the load (outputs accumulate until their inputs go stale, 15 m). */
  readonly lastMinuteSamplesPerS: number;
  /** After the final flush. */
  headSeries: number;
  /** Rows the aggregators handed to remote write per second, over the load. */
  readonly aggregatorRowsOutPerS: number;
}

export interface LoadResult {
  readonly opts: Required<Omit<LoadOptions, 'progress' | 'lifetimeMs' | 'aggregationInterval' | 'gatewayHeapMb'>> & {
    lifetimeMs: readonly [number, number];
    aggregationInterval: string;
    gatewayHeapMb: number | undefined;
  };
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
  readonly gateways: readonly GatewayStats[];
  readonly ingestion: Ingestion;
  /** Processes that exited on their own during the run (an OOM, a crash), with how. */
  readonly died: readonly string[];
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
    gatewayHeapMb: o.gatewayHeapMb,
    seed: o.seed ?? 1,
  };
  const progress = o.progress ?? ((l: string) => void process.stderr.write(`${l}\n`));
  const intervalMs = durationArg(opts.aggregationInterval, 'aggregation interval');
  const ha = opts.overlay === 'ha-aggregator';
  const dir = mkdtempSync(join(tmpdir(), 'jobmetrics-load-'));
  const topology = await startTopology({
    dir,
    overlay: opts.overlay,
    aggregationInterval: opts.aggregationInterval,
    serviceAddresses: SERVICE_ADDRESSES,
    ...(opts.gatewayHeapMb !== undefined ? { gatewayHeapMb: opts.gatewayHeapMb } : {}),
  });
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
      ...t.gateways.map((m: Member): [number | undefined, string, Usage['role']] => [m.child?.proc.pid, m.name, 'gateway']),
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

  /** Running: started, and not dead by itself (a process that died is reported, not polled). */
  const alive = (m: Member): boolean => m.child !== undefined && m.child.exitInfo === undefined;
  const rowsIn = async (): Promise<number[]> =>
    Promise.all(t.shards.map(async (s) => (alive(s) ? sumOf(await vmagentMetricsAt(s.url), 'vmagent_rows_inserted_total') : 0)));
  const rowsAtStart = await rowsIn();
  const rowsByShard = new Array<number>(t.shards.length).fill(0);

  // ---- Prometheus' ingestion and the gateways' tracked series, every 10 s ----
  const rowsOut = async (): Promise<number> =>
    (await Promise.all(t.shards.map(async (s) => (alive(s) ? sumOf(await vmagentMetricsAt(s.url), 'vmagent_remotewrite_rows_pushed_after_relabel_total') : 0)))).reduce((a, b) => a + b, 0);
  const promMetrics = async (): Promise<Map<string, number>> => parseMetricsText(await getText(`${t.prometheusUrl}/metrics`, 'prometheus metrics'));
  const appendedAt = async (): Promise<[number, number]> => [Date.now(), sumOf(await promMetrics(), 'prometheus_tsdb_head_samples_appended_total')];
  const appended: Array<[number, number]> = [await appendedAt()];
  // A restarted aggregator starts its counter again; sum the increases, as rate() would.
  let rowsOutTotal = 0;
  let rowsOutLast = await rowsOut();
  const peakTracked = new Map<string, number>();
  /** Each gateway's last answer: what is known of one that died. */
  const lastGateway = new Map<string, Map<string, number>>();
  const died = new Map<string, string>();
  const pollTier = async (): Promise<void> => {
    for (const m of [...t.gateways, ...t.routers, ...t.shards]) {
      const info = m.child?.exitInfo;
      if (info !== undefined && !died.has(m.name)) {
        const how = `${m.name} exited by itself at ${Math.round((Date.now() - t0) / 1000)} s (code ${info.code ?? 'none'}${info.signal ? `, ${info.signal}` : ''}; log ${m.logPath})`;
        died.set(m.name, how);
        progress(`aggregator-load: ${how}`);
      }
    }
    appended.push(await appendedAt());
    const out = await rowsOut();
    rowsOutTotal += out >= rowsOutLast ? out - rowsOutLast : out;
    rowsOutLast = out;
    for (const g of t.gateways) {
      if (!alive(g)) continue;
      const m = await gatewayMetricsAt(g.url).catch(() => undefined);
      if (m === undefined) continue;
      lastGateway.set(g.name, m);
      peakTracked.set(g.name, Math.max(peakTracked.get(g.name) ?? 0, sumOf(m, 'jobmetrics_gateway_tracked_series')));
    }
  };

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
  const base = opts.overlay === BASE_OVERLAY;
  if (opts.faults && base) {
    // A rolling update of the gateway: the replica delivers what it holds, then exits.
    faultRuns.push(fault(0.5, `gateway ${t.gateways[0]?.name} restarted (SIGTERM)`, () => t.restart('gateway', 0, 'SIGTERM')));
  } else if (opts.faults) {
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
        `CPU s ${base ? `gateways ${cpu('gateway')} ` : ''}routers ${cpu('router')} shards ${cpu('shard')} prometheus ${cpu('prometheus')} generator ${cpu('generator')}`,
    );
    lastLine = { at: now, deliveries: stats.deliveries };
    // A member in the middle of a restart does not answer; the next poll does.
    void pollTier().catch(() => {});
  }, 10_000);

  await sleep(Math.max(0, deadline - Date.now()));
  end.abort();
  await Promise.all(faultRuns);
  await Promise.all(lanes);
  const activeS = (Date.now() - t0) / 1000;
  const rowsAtEnd = await rowsIn();
  rowsAtEnd.forEach((r, i) => (rowsByShard[i] = r - (rowsAtStart[i] ?? 0)));
  clearInterval(ticker);
  await pollTier();
  const gatewayStats: GatewayStats[] = [];
  for (const g of t.gateways) {
    const m = lastGateway.get(g.name);
    if (m === undefined) continue;
    const tracked = sumOf(m, 'jobmetrics_gateway_tracked_series');
    gatewayStats.push({
      name: alive(g) ? g.name : `${g.name} (died; its last poll)`,
      trackedSeries: tracked,
      peakTrackedSeries: Math.max(tracked, peakTracked.get(g.name) ?? 0),
      births: sumOf(m, 'jobmetrics_gateway_births_total'),
      heldSamples: sumOf(m, 'jobmetrics_gateway_held_samples_total'),
      requests: sumOf(m, 'jobmetrics_gateway_write_requests_total'),
      forwardFailures: sumOf(m, 'jobmetrics_gateway_forward_failures_total'),
    });
  }
  const [firstAt, firstN] = appended[0] ?? [t0, 0];
  const [lastAt, lastN] = appended.at(-1) ?? [t0, 0];
  const minuteAgo = appended.find(([at]) => at >= lastAt - 60_000) ?? [firstAt, firstN];
  const ingestion: Ingestion = {
    samplesPerS: (lastN - firstN) / Math.max(1, (lastAt - firstAt) / 1000),
    lastMinuteSamplesPerS: (lastN - minuteAgo[1]) / Math.max(1, (lastAt - minuteAgo[0]) / 1000),
    headSeries: 0,
    aggregatorRowsOutPerS: rowsOutTotal / activeS,
  };
  progress(`aggregator-load: all ${stats.ended} pods ended after ${activeS.toFixed(0)} s; waiting for probes and for the tier to deliver`);
  await Promise.all(probeWaits);
  track();
  clearInterval(tracker);
  await t.flush();
  // Once everything is in: the series the store holds for this load.
  ingestion.headSeries = sumOf(await promMetrics(), 'prometheus_tsdb_head_series');

  const stored = await t.rangeSamples(`{namespace="${NS}"}`, `${Math.ceil(activeS / 60) + 5}m`);
  const { counted } = countStored(stored, ha ? REPLICA : undefined);
  const exactness = compareWithTruth(truth, counted, floor);

  let lossBound: number | undefined;
  if (opts.faults && opts.overlay === 'sharded-aggregator') {
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
    gateways: gatewayStats,
    ingestion,
    died: [...died.values()],
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
      `${(opts.durationMs / 1000).toFixed(0)} s of load; push every ${PUSH_MS / 1000} s, aggregation interval ${opts.aggregationInterval}, staleness 15m (as shipped); seed ${opts.seed}` +
      `${opts.gatewayHeapMb !== undefined ? `; gateway heap limit ${opts.gatewayHeapMb} MiB (not gateway.yaml's)` : ''}.`,
  );
  if (opts.overlay === BASE_OVERLAY) {
    lines.push(`The shipped default: the pods write to ${r.gateways.length} gateway replicas (one Service, 2 processes), which forward to one vmagent (vmagent.yaml's flags), which writes to Prometheus.`);
  }
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
  if (r.died.length > 0) lines.push('', `Died during the run: ${r.died.join('; ')}.`);
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
  const ing = r.ingestion;
  lines.push(
    '',
    `Prometheus ingestion: ${f0(ing.samplesPerS)} samples/s over the load, ${f0(ing.lastMinuteSamplesPerS)} samples/s in its last minute ` +
      `(prometheus_tsdb_head_samples_appended_total); ${f0(ing.headSeries)} head series once all was delivered; the aggregator${r.usage.filter((u) => u.role === 'shard').length > 1 ? 's' : ''} handed ${f0(ing.aggregatorRowsOutPerS)} rows/s to remote write.`,
  );
  if (r.gateways.length > 0) {
    lines.push('');
    lines.push('| gateway | tracked series (end) | tracked series (peak) | births | samples held | write requests | forward failures |');
    lines.push('| --- | --- | --- | --- | --- | --- | --- |');
    for (const g of r.gateways) lines.push(`| ${g.name} | ${g.trackedSeries} | ${g.peakTrackedSeries} | ${g.births} | ${g.heldSamples} | ${g.requests} | ${g.forwardFailures} |`);
    const gw = r.usage.filter((u) => u.role === 'gateway');
    const gwCores = gw.reduce((a, u) => a + u.cpuS, 0) / r.activeS;
    const gwPeak = gw.reduce((a, u) => a + u.peakRssMb, 0);
    const tracked = r.gateways.reduce((a, g) => a + g.peakTrackedSeries, 0);
    lines.push(
      '',
      `Gateways: ${f2(gwCores)} cores and ${f0(gwPeak)} MiB (sum of peaks) for ${opts.pods} pods, i.e. ${f2((gwCores * 1000) / opts.pods)} cores and ${f0((gwPeak * 1000) / opts.pods)} MiB per 1 000 pods; ` +
        `${f0(r.samplesDelivered / r.activeS / Math.max(gwCores, 1e-9))} samples per CPU-second; ${tracked} tracked series in all at the peak (counters counted by each replica that saw them).`,
    );
  }
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
    else if (a === '--gateway-heap') o.gatewayHeapMb = int(a, argv[++i]);
    else if (a === '--lifetime') {
      const [lo, hi] = (argv[++i] ?? '').split('-');
      o.lifetimeMs = [durationArg(lo ?? '', '--lifetime'), durationArg(hi ?? '', '--lifetime')];
    } else if (a === '--overlay') {
      const v = argv[++i];
      if (!isOverlay(v)) throw new Error(`--overlay is ${OVERLAYS.join(', ')}, not "${v ?? ''}"`);
      o.overlay = v;
    } else if (a === '--no-faults') o.faults = false;
    else throw new Error(`unknown option "${a ?? ''}"; options: --pods N --series N --jobs N --duration D --lifetime D-D --interval D --overlay NAME --gateway-heap MiB --no-faults --seed N`);
  }
  return o;
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const text = await run(parseLoadArgs(process.argv.slice(2)));
  console.log(text);
  process.exit(0);
}
