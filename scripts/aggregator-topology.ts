/**
 * The scaled-out aggregator tier on loopback, exactly as an overlay ships it
 * (scripts/topology-spec.ts reads the flags from manifests/overlays/<name>): real vmagent routers
 * behind one address (scripts/tcp-balancer.ts, standing in for the Service the sidecars write to),
 * real vmagent aggregators ("shards"), one real Prometheus. Only addresses, ports and paths differ
 * from a cluster, and the stream-aggregation file's intervals may be shortened for tests, as
 * scripts/aggregator-stack.ts does for the single aggregator.
 *
 * Between each shard and Prometheus sits a recorder (scripts/remote-write-recorder.ts), the
 * shard's stand-in for the store's address, so a test can say which shard wrote which output series.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { parseDuration } from '../shared/duration.ts';
import {
  aggrIntervals,
  aggregatorBinaries,
  awaitAggregationFlushes,
  DEFAULT_AGGR_CONFIG,
  deriveAggrConfig,
  queryPrometheus,
  startOnFreePort,
  startPrometheus,
  StartError,
  sumOf,
  vmagentMetricsAt,
  waitReady,
  type QueryResult,
} from './aggregator-stack.ts';
import { describeChild, startChild, stopChild, type Child } from './child-processes.ts';
import { startRecorder, type Recorder } from './remote-write-recorder.ts';
import { startBalancer, type Balancer } from './tcp-balancer.ts';
import { localizeArgs, readTopology, SHARD_SET, shardHosts, type TopologySpec } from './topology-spec.ts';

export interface TopologyOptions {
  /** Folder for data and logs (created by the caller; left in place by close()). */
  readonly dir: string;
  /** `sharded-aggregator` or `ha-aggregator`. */
  readonly overlay: string;
  /** `interval` of every rule; default the shipped file's. */
  readonly aggregationInterval?: string;
  /** `staleness_interval` of every rule; default the shipped file's. */
  readonly stalenessInterval?: string;
  readonly readyTimeoutMs?: number;
  /** Addresses of the routers' Service (scripts/tcp-balancer.ts); default 1. */
  readonly serviceAddresses?: number;
}

/** One vmagent process of the tier. */
export interface Member {
  readonly role: 'router' | 'shard';
  readonly index: number;
  /** The pod name it stands for: `jobmetrics-aggregator-router-<i>` or `jobmetrics-aggregator-shard-<i>`. */
  readonly name: string;
  readonly url: string;
  readonly logPath: string;
  /** The process, while it runs. */
  readonly child: Child | undefined;
}

export interface Topology {
  readonly spec: TopologySpec;
  /** What the sidecars are given: the routers' Service. */
  readonly remoteWriteUrl: string;
  /** The same Service at each of its addresses (`serviceAddresses`). */
  readonly remoteWriteUrls: readonly string[];
  readonly prometheusUrl: string;
  readonly routers: readonly Member[];
  readonly shards: readonly Member[];
  /** The Prometheus process (for its CPU and memory; the recorders and the balancer run in ours). */
  readonly prometheus: Child;
  /** Output series keys (scripts/series-key.ts) each shard wrote, by shard index. */
  outputsByShard(): ReadonlyArray<ReadonlyMap<string, number>>;
  query(promql: string, atSec?: number): Promise<QueryResult[]>;
  /** The raw samples of every series `selector` matches over the last `range` (e.g. `1h`). */
  rangeSamples(selector: string, range: string): Promise<Array<{ metric: Record<string, string>; samples: Array<[number, number]> }>>;
  /**
   * Resolves once everything pushed before the call is in Prometheus: every running router has
   * handed its queue for every running shard on, and every running shard has aggregated it and
   * delivered the outputs.
   */
  flush(): Promise<void>;
  /** SIGTERM: a graceful stop (vmagent writes its queues and `flush_on_shutdown` outputs); SIGKILL: a crash. */
  stop(role: Member['role'], index: number, signal?: 'SIGTERM' | 'SIGKILL'): Promise<void>;
  /** Starts a stopped member again on its port, so the routers and the Service find it. */
  start(role: Member['role'], index: number): Promise<void>;
  restart(role: Member['role'], index: number, signal?: 'SIGTERM' | 'SIGKILL'): Promise<void>;
  close(): Promise<void>;
}

interface MutableMember {
  role: Member['role'];
  index: number;
  name: string;
  port: number;
  url: string;
  logPath: string;
  child: Child | undefined;
  args: string[];
}

const IN_CLUSTER_PROMETHEUS = 'jobmetrics-prometheus.jobmetrics.svc:9090';

function ms(text: string, what: string): number {
  const r = parseDuration(text);
  if (!r.ok) throw new Error(`aggregator topology: ${what}: ${r.error}`);
  return r.ms;
}

export async function startTopology(opts: TopologyOptions): Promise<Topology> {
  const spec = readTopology(opts.overlay);
  const bins = aggregatorBinaries();
  const readyMs = opts.readyTimeoutMs ?? 30_000;
  const shipped = readFileSync(DEFAULT_AGGR_CONFIG, 'utf8');
  const shippedIntervals = aggrIntervals(shipped);
  const interval = opts.aggregationInterval ?? shippedIntervals.interval;
  const intervalMs = ms(interval, 'aggregation interval');
  const etc = join(opts.dir, 'etc-vmagent');
  mkdirSync(etc, { recursive: true });
  writeFileSync(join(etc, 'stream-aggr.yaml'), deriveAggrConfig(shipped, { interval, staleness: opts.stalenessInterval ?? shippedIntervals.staleness }));

  const cleanup: Array<() => Promise<void>> = [];
  const members: MutableMember[] = [];
  const startMember = async (m: MutableMember): Promise<void> => {
    const child = startChild(m.name, bins.vmagent, m.args, m.logPath);
    await waitReady(m.name, child, `${m.url}/health`, readyMs);
    m.child = child;
  };
  try {
    const prom = await startPrometheus({ dir: opts.dir, readyTimeoutMs: readyMs });
    cleanup.push(() => stopChild(prom.child));
    const recorders: Recorder[] = [];
    for (let i = 0; i < spec.shards; i++) {
      const r = await startRecorder(`${prom.url}/api/v1/write`);
      recorders.push(r);
      cleanup.push(() => r.close());
    }

    // Shards first, so the routers find them; each on a port of its own, kept across restarts.
    const shardAddresses: string[] = [];
    for (let i = 0; i < spec.shards; i++) {
      const name = `${SHARD_SET}-${i}`;
      const dataDir = join(opts.dir, name);
      mkdirSync(dataDir, { recursive: true });
      const env = new Map<string, string>();
      for (const [k, src] of spec.shardEnv) env.set(k, 'podName' in src ? name : src.value);
      const recorderHost = new URL(recorders[i]?.url ?? '').host;
      const m: MutableMember = { role: 'shard', index: i, name, port: 0, url: '', logPath: join(opts.dir, `${name}.log`), child: undefined, args: [] };
      const { port } = await startOnFreePort(name, async (p) => {
        m.port = p;
        m.url = `http://127.0.0.1:${p}`;
        m.args = localizeArgs(spec.shardArgs, {
          env,
          listen: `127.0.0.1:${p}`,
          hosts: new Map([[IN_CLUSTER_PROMETHEUS, recorderHost]]),
          paths: new Map([
            ['/vmagent-data', join(dataDir, 'vmagent-data')],
            ['/etc/vmagent', etc],
          ]),
        });
        await startMember(m);
        if (m.child === undefined) throw new Error(`${name} did not start`);
        return m.child;
      });
      shardAddresses.push(`127.0.0.1:${port}`);
      members.push(m);
      cleanup.push(async () => {
        if (m.child) await stopChild(m.child);
      });
    }
    const hosts = new Map(shardHosts(spec).map((h, i) => [h, shardAddresses[i] ?? '']));
    for (let i = 0; i < spec.routers; i++) {
      const name = `jobmetrics-aggregator-router-${i}`;
      const dataDir = join(opts.dir, name);
      mkdirSync(dataDir, { recursive: true });
      const m: MutableMember = { role: 'router', index: i, name, port: 0, url: '', logPath: join(opts.dir, `${name}.log`), child: undefined, args: [] };
      await startOnFreePort(name, async (p) => {
        m.port = p;
        m.url = `http://127.0.0.1:${p}`;
        m.args = localizeArgs(spec.routerArgs, { env: new Map(), listen: `127.0.0.1:${p}`, hosts, paths: new Map([['/vmagent-data', join(dataDir, 'vmagent-data')]]) });
        await startMember(m);
        if (m.child === undefined) throw new Error(`${name} did not start`);
        return m.child;
      });
      members.push(m);
      cleanup.push(async () => {
        if (m.child) await stopChild(m.child);
      });
    }
    const routers = members.filter((m) => m.role === 'router');
    const shards = members.filter((m) => m.role === 'shard');
    const balancer: Balancer = await startBalancer(() => routers.map((r) => `127.0.0.1:${r.port}`), opts.serviceAddresses ?? 1);
    cleanup.push(() => balancer.close());

    const member = (role: Member['role'], index: number): MutableMember => {
      const m = (role === 'router' ? routers : shards)[index];
      if (m === undefined) throw new Error(`aggregator topology: no ${role} ${index}`);
      return m;
    };
    const stop = async (role: Member['role'], index: number, signal: 'SIGTERM' | 'SIGKILL' = 'SIGTERM'): Promise<void> => {
      const m = member(role, index);
      const c = m.child;
      m.child = undefined;
      if (c) await stopChild(c, { signal });
    };
    const start = async (role: Member['role'], index: number): Promise<void> => {
      const m = member(role, index);
      if (m.child) return;
      // The same port: the routers (and the balancer) keep the address. Retry while the old
      // socket is still closing.
      for (let i = 0; ; i++) {
        try {
          await startMember(m);
          return;
        } catch (err) {
          if (!(err instanceof StartError && err.addressInUse) || i >= 20) throw err;
          await delay(250);
        }
      }
    };

    const topology: Topology = {
      spec,
      remoteWriteUrl: `http://${balancer.addresses[0] ?? ''}/api/v1/write`,
      remoteWriteUrls: balancer.addresses.map((a) => `http://${a}/api/v1/write`),
      prometheusUrl: prom.url,
      routers,
      shards,
      prometheus: prom.child,
      outputsByShard: () => recorders.map((r) => r.series),
      query: (promql, atSec) => queryPrometheus(prom.url, promql, atSec),
      async rangeSamples(selector, range) {
        const res = await fetch(`${prom.url}/api/v1/query`, { method: 'POST', body: new URLSearchParams({ query: `${selector}[${range}]` }), signal: AbortSignal.timeout(60_000) });
        const text = await res.text();
        if (!res.ok) throw new Error(`aggregator topology: range query ${selector}[${range}] returned HTTP ${res.status}: ${text.slice(0, 200)}`);
        const body = JSON.parse(text) as { data: { result: Array<{ metric: Record<string, string>; values: Array<[number, string]> }> } };
        return body.data.result.map((r) => ({ metric: r.metric, samples: r.values.map(([t, v]): [number, number] => [Math.round(t * 1000), Number(v)]) }));
      },
      async flush() {
        const deadline = Date.now() + 6 * intervalMs + 60_000;
        // 1. Every router has handed on what it holds for every running shard. vmagent counts the
        //    blocks it makes per process, not per URL, and collects rows for up to
        //    -remoteWrite.flushInterval (1 s) before it makes a block; so: nothing pending for a
        //    running shard's URL (`url="<n>:…"`, n = the -remoteWrite.url's position), and neither
        //    the blocks made nor the blocks sent to those URLs changed for 1.5 s. A stopped shard's
        //    share waits in the routers' queues; it is not waited for.
        const running = new Set(shards.filter((s) => s.child !== undefined).map((s) => s.index + 1));
        const forRunning = (key: string): boolean => {
          const n = /url="(\d+):/.exec(key)?.[1];
          return n !== undefined && running.has(Number(n));
        };
        for (const r of routers) {
          if (!r.child) continue;
          let last = '';
          for (;;) {
            const cur = await vmagentMetricsAt(r.url);
            const made = sumOf(cur, 'vmagent_remotewrite_block_size_rows_count');
            const sent = sumOf(cur, 'vmagent_remotewrite_blocks_sent_total', forRunning);
            const pending = sumOf(cur, 'vmagent_remotewrite_pending_data_bytes', forRunning);
            const state = pending === 0 ? `${made}/${sent}` : '';
            if (state !== '' && state === last) break;
            last = state;
            if (Date.now() > deadline) throw new Error(`aggregator topology: ${r.name} did not hand on its queues in time (pending ${pending} bytes); see ${r.logPath}`);
            await delay(1_500);
          }
        }
        // 2. Every running shard aggregated it (two flushes after now) and delivered the outputs.
        await Promise.all(
          shards
            .filter((s) => s.child !== undefined)
            .map(async (s) => {
              await awaitAggregationFlushes(s.url, intervalMs, deadline);
              const pushed = sumOf(await vmagentMetricsAt(s.url), 'vmagent_remotewrite_rows_pushed_after_relabel_total');
              for (;;) {
                const cur = await vmagentMetricsAt(s.url);
                const dropped = sumOf(cur, 'vmagent_remotewrite_packets_dropped_total');
                if (dropped > 0) throw new Error(`aggregator topology: Prometheus rejected ${dropped} block(s) of ${s.name}'s outputs; see ${s.logPath}`);
                const inBlocks = sumOf(cur, 'vmagent_remotewrite_block_size_rows_sum');
                const blocks = sumOf(cur, 'vmagent_remotewrite_block_size_rows_count');
                const sent = sumOf(cur, 'vmagent_remotewrite_blocks_sent_total');
                if (inBlocks >= pushed && sent >= blocks && sumOf(cur, 'vmagent_remotewrite_pending_data_bytes') === 0) return;
                if (Date.now() > deadline) throw new Error(`aggregator topology: ${s.name} did not deliver its outputs in time; see ${s.logPath}`);
                await delay(50);
              }
            }),
        );
      },
      stop,
      start,
      async restart(role, index, signal = 'SIGTERM') {
        await stop(role, index, signal);
        await start(role, index);
      },
      async close() {
        for (const c of cleanup.reverse()) await c().catch(() => {});
        cleanup.length = 0;
      },
    };
    return topology;
  } catch (err) {
    for (const c of cleanup.reverse()) await c().catch(() => {});
    const running = members.filter((m) => m.child).map((m) => (m.child ? describeChild(m.child, 10) : ''));
    if (running.length > 0 && err instanceof Error) err.message += `\n${running.join('\n')}`;
    throw err;
  }
}
