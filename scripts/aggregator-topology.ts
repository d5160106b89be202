/**
 * The scaled-out aggregator tier on loopback, exactly as an overlay ships it
 * (scripts/topology-spec.ts reads the flags from manifests/overlays/<name>): real vmagent routers
 * behind one address (scripts/tcp-balancer.ts, standing in for the Service the sidecars write to),
 * real vmagent aggregators ("shards"), one real Prometheus. Only addresses, ports and paths differ
 * from a cluster, and the stream-aggregation file's intervals may be shortened for tests, as
 * scripts/aggregator-stack.ts does for the single aggregator.
 *
 * `base` is the shipped default instead (manifests/aggregator): no routers, ONE vmagent with the
 * Deployment's own flags (vmagent.yaml), and in front of it the gateway's replicas (gateway.yaml),
 * each its own `node` process running the gateway as the image does (compiled JavaScript, the
 * Deployment's environment), behind the balancer the sidecars write to. Gateways can stand in front
 * of an overlay's routers too (`gateways`); by default only `base` has them, so the overlays' tests
 * keep writing to the routers (and put an in-process gateway in front when they need one).
 *
 * Between each shard and Prometheus sits a recorder (scripts/remote-write-recorder.ts), the
 * shard's stand-in for the store's address, so a test can say which shard wrote which output series.
 */
import { copyFileSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { parse } from 'yaml';
import { parseDuration } from '../shared/duration.ts';
import {
  aggrIntervals,
  aggregatorBinaries,
  awaitAggregationFlushes,
  DEFAULT_AGGR_CONFIG,
  deriveAggrConfig,
  getText,
  parseMetricsText,
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
import { localizeArgs, MANIFESTS_DIR, ManifestError, readTopology, SHARD_SET, shardHosts, type EnvSource, type TopologySpec } from './topology-spec.ts';

export interface TopologyOptions {
  /** Folder for data and logs (created by the caller; left in place by close()). */
  readonly dir: string;
  /** `sharded-aggregator`, `ha-aggregator`, or `base` (BASE_OVERLAY: the shipped default). */
  readonly overlay: string;
  /** `interval` of every rule; default the shipped file's. */
  readonly aggregationInterval?: string;
  /** `staleness_interval` of every rule; default the shipped file's. */
  readonly stalenessInterval?: string;
  readonly readyTimeoutMs?: number;
  /** Addresses of the Service the sidecars write to (scripts/tcp-balancer.ts); default 1. */
  readonly serviceAddresses?: number;
  /** Gateway replicas in front (each a process); default gateway.yaml's replicas for `base`, else 0. */
  readonly gateways?: number;
  /** The gateways' heap limit (`--max-old-space-size`, MiB) instead of gateway.yaml's NODE_OPTIONS. */
  readonly gatewayHeapMb?: number;
}

/** The shipped default: the gateway, one vmagent aggregator, Prometheus (manifests/base). */
export const BASE_OVERLAY = 'base';
/** The single aggregator's name in the shipped default (its Deployment). */
const BASE_AGGREGATOR = 'jobmetrics-aggregator';

/** One process of the tier: a vmagent (router, shard) or a gateway replica. */
export interface Member {
  readonly role: 'router' | 'shard' | 'gateway';
  readonly index: number;
  /**
   * The pod name it stands for: `jobmetrics-aggregator-router-<i>`, `jobmetrics-aggregator-shard-<i>`
   * (`jobmetrics-aggregator` in `base`), `jobmetrics-gateway-<i>`.
   */
  readonly name: string;
  readonly url: string;
  readonly logPath: string;
  /** The process, while it runs. */
  readonly child: Child | undefined;
}

export interface Topology {
  readonly spec: TopologySpec;
  /** What the sidecars are given: the gateways' Service if there are gateways, else the routers'. */
  readonly remoteWriteUrl: string;
  /** The same Service at each of its addresses (`serviceAddresses`). */
  readonly remoteWriteUrls: readonly string[];
  readonly prometheusUrl: string;
  readonly routers: readonly Member[];
  readonly shards: readonly Member[];
  readonly gateways: readonly Member[];
  /** The Prometheus process (for its CPU and memory; the recorders and the balancer run in ours). */
  readonly prometheus: Child;
  /** Output series keys (scripts/series-key.ts) each shard wrote, by shard index. */
  outputsByShard(): ReadonlyArray<ReadonlyMap<string, number>>;
  query(promql: string, atSec?: number): Promise<QueryResult[]>;
  /** The raw samples of every series `selector` matches over the last `range` (e.g. `1h`). */
  rangeSamples(selector: string, range: string): Promise<Array<{ metric: Record<string, string>; samples: Array<[number, number]> }>>;
  /**
   * Resolves once everything pushed before the call is in Prometheus: every running gateway has
   * delivered what it held, every running router has handed its queue for every running shard on,
   * and every running shard has aggregated it and delivered the outputs.
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
  /** The program: vmagent, or node for a gateway. */
  command: string;
  /** The whole environment (gateways); vmagent gets ours. */
  env: NodeJS.ProcessEnv | undefined;
  /** Polled until it answers 200. */
  readyPath: string;
  /** SIGTERM → SIGKILL after this long: the pod's terminationGracePeriodSeconds. */
  graceMs: number;
}

const PROJECT_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const AGGREGATOR_DIR = join(MANIFESTS_DIR, 'aggregator');
/** terminationGracePeriodSeconds of both Deployments (gateway.yaml, vmagent.yaml). */
const GRACE_MS = 30_000;

type Json = unknown;
const isRecord = (x: Json): x is Record<string, Json> => typeof x === 'object' && x !== null && !Array.isArray(x);
const isStringArray = (x: Json): x is string[] => Array.isArray(x) && x.every((a) => typeof a === 'string');

interface ShippedDeployment {
  readonly replicas: number;
  readonly args: readonly string[];
  readonly env: ReadonlyMap<string, EnvSource>;
}

/**
 * A Deployment of manifests/aggregator as shipped: replicas, the first container's args and its
 * environment (a `configMapKeyRef` resolved to the literal of that folder's configMapGenerator).
 */
function shippedDeployment(file: string, name: string): ShippedDeployment {
  const path = join(AGGREGATOR_DIR, file);
  const docs = readFileSync(path, 'utf8')
    .split(/^---$/m)
    .map((d) => parse(d) as Json);
  const dep = docs.find((d) => isRecord(d) && d['kind'] === 'Deployment' && isRecord(d['metadata']) && d['metadata']['name'] === name);
  type Container = { args?: Json; env?: Array<{ name: string; value?: string; valueFrom?: { configMapKeyRef?: { name: string; key: string } } }> };
  const spec = (dep as { spec?: { replicas?: Json; template?: { spec?: { containers?: Container[] } } } } | undefined)?.spec;
  const c = spec?.template?.spec?.containers?.[0];
  if (spec === undefined || c === undefined) throw new ManifestError(path, `no Deployment ${name} with a container`);
  const kustomization = parse(readFileSync(join(AGGREGATOR_DIR, 'kustomization.yaml'), 'utf8')) as Json;
  const generators = isRecord(kustomization) && Array.isArray(kustomization['configMapGenerator']) ? kustomization['configMapGenerator'] : [];
  const literal = (cm: string, key: string): string => {
    for (const g of generators) {
      if (!isRecord(g) || g['name'] !== cm || !isStringArray(g['literals'])) continue;
      for (const lit of g['literals']) if (lit.startsWith(`${key}=`)) return lit.slice(key.length + 1);
    }
    throw new ManifestError(join(AGGREGATOR_DIR, 'kustomization.yaml'), `no literal ${key} in configMapGenerator ${cm}`);
  };
  const env = new Map<string, EnvSource>();
  for (const e of c.env ?? []) {
    const ref = e.valueFrom?.configMapKeyRef;
    if (e.value !== undefined) env.set(e.name, { value: e.value });
    else if (ref !== undefined) env.set(e.name, { value: literal(ref.name, ref.key) });
    else throw new ManifestError(path, `env ${e.name}: only value and configMapKeyRef are understood`);
  }
  return { replicas: typeof spec.replicas === 'number' ? spec.replicas : 1, args: isStringArray(c.args) ? c.args : [], env };
}

/** The shipped default as a tier: no routers, one aggregator with vmagent.yaml's flags. */
function baseSpec(): TopologySpec {
  const vm = shippedDeployment('vmagent.yaml', BASE_AGGREGATOR);
  return { overlay: BASE_OVERLAY, routers: 0, routerArgs: [], shards: 1, shardArgs: vm.args, shardEnv: vm.env };
}

/**
 * The gateway as the image runs it (`node /app/dist/gateway/main.js`): its modules compiled to
 * JavaScript in `outDir`, not run through tsx, whose loader thread and transpiler would add to the
 * memory and CPU measured for the process. Only the gateway's own import graph is compiled (each
 * file on its own, as `tsc` emits it), so edits elsewhere in the project cannot stop it. Returns
 * the entry point.
 */
function compileGateway(outDir: string): string {
  const options: ts.CompilerOptions = {
    target: ts.ScriptTarget.ES2023,
    module: ts.ModuleKind.ESNext,
    verbatimModuleSyntax: true,
    rewriteRelativeImportExtensions: true,
  };
  const pending = [join(PROJECT_ROOT, 'gateway', 'main.ts')];
  const done = new Set<string>();
  for (let file = pending.pop(); file !== undefined; file = pending.pop()) {
    if (done.has(file)) continue;
    done.add(file);
    const source = readFileSync(file, 'utf8');
    const out = join(outDir, relative(PROJECT_ROOT, file).replace(/\.ts$/, '.js'));
    mkdirSync(dirname(out), { recursive: true });
    writeFileSync(out, ts.transpileModule(source, { compilerOptions: options, fileName: file }).outputText);
    for (const m of source.matchAll(/^(?:import|export)\s[^;]*?from\s+'(\.{1,2}\/[^']+\.ts)'/gm)) {
      if (m[1] !== undefined && !/^import\s+type\s/.test(m[0])) pending.push(resolve(dirname(file), m[1]));
    }
  }
  // The package's own package.json (ESM, and the version the gateway reports), and its dependencies.
  copyFileSync(join(PROJECT_ROOT, 'package.json'), join(outDir, 'package.json'));
  symlinkSync(join(PROJECT_ROOT, 'node_modules'), join(outDir, 'node_modules'));
  return join(outDir, 'gateway', 'main.js');
}

/** A gateway's counters and gauges (GET /metrics). */
export async function gatewayMetricsAt(gatewayUrl: string): Promise<Map<string, number>> {
  return parseMetricsText(await getText(`${gatewayUrl}/metrics`, 'gateway metrics'));
}

const IN_CLUSTER_PROMETHEUS = 'jobmetrics-prometheus.jobmetrics.svc:9090';

function ms(text: string, what: string): number {
  const r = parseDuration(text);
  if (!r.ok) throw new Error(`aggregator topology: ${what}: ${r.error}`);
  return r.ms;
}

export async function startTopology(opts: TopologyOptions): Promise<Topology> {
  const base = opts.overlay === BASE_OVERLAY;
  const spec = base ? baseSpec() : readTopology(opts.overlay);
  const gatewaySpec = shippedDeployment('gateway.yaml', 'jobmetrics-gateway');
  const gatewayCount = opts.gateways ?? (base ? gatewaySpec.replicas : 0);
  const bins = aggregatorBinaries();
  const readyMs = opts.readyTimeoutMs ?? 30_000;
  const shipped = readFileSync(DEFAULT_AGGR_CONFIG, 'utf8');
  const shippedIntervals = aggrIntervals(shipped);
  const interval = opts.aggregationInterval ?? shippedIntervals.interval;
  const staleness = opts.stalenessInterval ?? shippedIntervals.staleness;
  const intervalMs = ms(interval, 'aggregation interval');
  const etc = join(opts.dir, 'etc-vmagent');
  mkdirSync(etc, { recursive: true });
  writeFileSync(join(etc, 'stream-aggr.yaml'), deriveAggrConfig(shipped, { interval, staleness }));

  const cleanup: Array<() => Promise<void>> = [];
  const members: MutableMember[] = [];
  const startMember = async (m: MutableMember): Promise<void> => {
    const child = startChild(m.name, m.command, m.args, m.logPath, m.env !== undefined ? { env: m.env } : {});
    await waitReady(m.name, child, `${m.url}${m.readyPath}`, readyMs);
    m.child = child;
  };
  const vmagentMember = (role: 'router' | 'shard', index: number, name: string): MutableMember => ({
    role,
    index,
    name,
    port: 0,
    url: '',
    logPath: join(opts.dir, `${name}.log`),
    child: undefined,
    args: [],
    command: bins.vmagent,
    env: undefined,
    readyPath: '/health',
    graceMs: GRACE_MS,
  });
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
      const name = base ? BASE_AGGREGATOR : `${SHARD_SET}-${i}`;
      const dataDir = join(opts.dir, name);
      mkdirSync(dataDir, { recursive: true });
      const env = new Map<string, string>();
      for (const [k, src] of spec.shardEnv) env.set(k, 'podName' in src ? name : src.value);
      const recorderHost = new URL(recorders[i]?.url ?? '').host;
      const m = vmagentMember('shard', i, name);
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
      const m = vmagentMember('router', i, name);
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
    let front: Balancer | undefined;
    if (routers.length > 0) {
      // With gateways in front, they are the routers' only clients: one address is enough.
      const b = await startBalancer(() => routers.map((r) => `127.0.0.1:${r.port}`), gatewayCount > 0 ? 1 : (opts.serviceAddresses ?? 1));
      cleanup.push(() => b.close());
      front = b;
    }

    // The gateways forward to the routers' Service, or straight to the one aggregator.
    const gateways: MutableMember[] = [];
    if (gatewayCount > 0) {
      const forwardTo = front !== undefined ? `http://${front.addresses[0] ?? ''}/api/v1/write` : `${shards[0]?.url ?? ''}/api/v1/write`;
      if (front === undefined && shards.length !== 1) throw new Error(`aggregator topology: gateways need routers or exactly one aggregator, not ${shards.length}`);
      const main = compileGateway(join(opts.dir, 'gateway-js'));
      for (let i = 0; i < gatewayCount; i++) {
        const name = `jobmetrics-gateway-${i}`;
        const m: MutableMember = {
          role: 'gateway',
          index: i,
          name,
          port: 0,
          url: '',
          logPath: join(opts.dir, `${name}.log`),
          child: undefined,
          args: [main],
          command: process.execPath,
          env: undefined,
          readyPath: '/readyz',
          graceMs: GRACE_MS,
        };
        await startOnFreePort(name, async (p) => {
          m.port = p;
          m.url = `http://127.0.0.1:${p}`;
          // The Deployment's environment (NODE_OPTIONS, its heap limit, included); only the
          // addresses are local, and the intervals follow the aggregator's, as the manifest asks.
          const env: NodeJS.ProcessEnv = { PATH: process.env['PATH'] ?? '/usr/bin:/bin' };
          for (const [k, src] of gatewaySpec.env) if ('value' in src) env[k] = src.value;
          if (opts.gatewayHeapMb !== undefined) env['NODE_OPTIONS'] = `--max-old-space-size=${opts.gatewayHeapMb}`;
          env['JOBMETRICS_LISTEN'] = `127.0.0.1:${p}`;
          env['JOBMETRICS_AGGREGATOR_URL'] = forwardTo;
          env['JOBMETRICS_AGGREGATION_INTERVAL'] = interval;
          env['JOBMETRICS_STALENESS'] = staleness;
          // No API server here to review tokens or hold the aggregator's credentials: the simulated
          // pods write as themselves, and the local aggregators check no credentials (localizeArgs).
          env['JOBMETRICS_WRITER_AUTH'] = 'none';
          delete env['JOBMETRICS_AGGREGATOR_CREDENTIALS'];
          m.env = env;
          await startMember(m);
          if (m.child === undefined) throw new Error(`${name} did not start`);
          return m.child;
        });
        gateways.push(m);
        members.push(m);
        cleanup.push(async () => {
          if (m.child) await stopChild(m.child, { graceMs: m.graceMs });
        });
      }
      // The gateways' Service. A real pod keeps its one keep-alive connection, so its series go
      // through one replica (which then holds their births); a simulated pod shares a pool of
      // connections per address with the others on it. So each address keeps to one replica while
      // that replica runs, and only then goes to another, as a new connection would.
      const addresses: string[] = [];
      for (let a = 0; a < (opts.serviceAddresses ?? 1); a++) {
        const preferred = a % gateways.length;
        const b = await startBalancer(() => {
          const up = (g: MutableMember | undefined): g is MutableMember => g?.child !== undefined && g.child.exitInfo === undefined;
          const p = gateways[preferred];
          if (up(p)) return [`127.0.0.1:${p.port}`];
          return gateways.filter(up).map((g) => `127.0.0.1:${g.port}`);
        }, 1);
        cleanup.push(() => b.close());
        addresses.push(...b.addresses);
      }
      front = { addresses, connections: new Map(), close: async () => {} };
    }
    if (front === undefined) throw new Error(`aggregator topology: ${opts.overlay} has neither routers nor gateways for the sidecars to write to`);
    const balancer = front;

    const member = (role: Member['role'], index: number): MutableMember => {
      const m = (role === 'router' ? routers : role === 'shard' ? shards : gateways)[index];
      if (m === undefined) throw new Error(`aggregator topology: no ${role} ${index}`);
      return m;
    };
    const stop = async (role: Member['role'], index: number, signal: 'SIGTERM' | 'SIGKILL' = 'SIGTERM'): Promise<void> => {
      const m = member(role, index);
      const c = m.child;
      m.child = undefined;
      if (c) await stopChild(c, { signal, graceMs: m.graceMs });
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
      gateways,
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
        // 0. Every gateway delivered what it held. The gauge drops when a due batch is taken, before
        //    it is delivered; so also: every held sample released (or dropped as refused). A birth
        //    undone because its request failed leaves its held samples counted but never released:
        //    after such a failure, a quiet spell longer than one release's retries (3 × 5 s)
        //    stands in for the equality.
        await Promise.all(
          gateways
            // One that died (an OOM) holds nothing any more: what it held is lost, not late.
            .filter((g) => g.child !== undefined && g.child.exitInfo === undefined)
            .map(async (g) => {
              let quietSince = Date.now();
              let lastOut = -1;
              for (;;) {
                const cur = await gatewayMetricsAt(g.url);
                const holding = sumOf(cur, 'jobmetrics_gateway_held_samples');
                const out = sumOf(cur, 'jobmetrics_gateway_released_samples_total') + sumOf(cur, 'jobmetrics_gateway_dropped_samples_total');
                const failedNow = sumOf(cur, 'jobmetrics_gateway_forward_failures_total', (k) => k.includes('part="now"'));
                if (out !== lastOut || holding > 0) quietSince = Date.now();
                lastOut = out;
                if (holding === 0 && (out === sumOf(cur, 'jobmetrics_gateway_held_samples_total') || (failedNow > 0 && Date.now() - quietSince > 16_000))) return;
                if (Date.now() > deadline) throw new Error(`aggregator topology: ${g.name} did not deliver what it held in time (holding ${holding}); see ${g.logPath}`);
                await delay(500);
              }
            }),
        );
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
