/**
 * Real pods on the local node (scripts/cluster), side by side in one run:
 *
 * 1. The sidecar's memory as the kubelet reports it (container working set, its Summary API) while
 *    it scrapes and pushes 1 000 series, next to an idle Node process in a container of the same
 *    image and base (the sidecar image with `node -e` instead of the sidecar), sampled together.
 * 2. Job completion delay: from the moment the main container's process exits to the moment the
 *    Job is `Complete`, for the same Job without injection, with a native sidecar and with a
 *    legacy one, 100 Jobs of each by default, the three interleaved (see interleave) so that a
 *    change of the node's or the machine's state over the run falls on every row alike. The main
 *    container prints `{"exiting": <ms>}` just before it exits (ANNOUNCE_EXIT); a watch on the
 *    Jobs records when each turns Complete. Both clocks are this machine's. The kubelet, the Job
 *    controller and the watch each add their own delay; what matters is the difference between
 *    the rows. The sidecars write to the gateway, as shipped; each pod is checked for it.
 *
 *   node --import tsx bench/job-completion.ts [--jobs N] [--parallel P]
 *   npm run bench -- job-completion
 *
 * It starts its own cluster and stops it at the end; a cluster from `npm run cluster -- up` must be
 * down first (one per machine).
 */
import { spawn } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { startCluster, type Cluster } from '../scripts/cluster/cluster.ts';
import { controlPlaneBinaries, createNamespace, kubectlOk } from '../scripts/cluster/control-plane.ts';
import { clusterImages, ensureImages } from '../scripts/cluster/images.ts';
import { clusterDir, runningSupervisor } from '../scripts/cluster/state.ts';
import { packageVersion } from '../scripts/version.ts';
import { ANNOTATION, RESERVED_VOLUMES, SIDECAR_CONTAINER, SIDECAR_ENV, STATUS_INJECTED } from '../shared/names.ts';
import { apply, labelledNamespace, runningPod, sampleJob, sampleMain, setWebhookEnv, sleep, waitForJob, workingSets } from '../test/e2e/cluster-harness.ts';
import { defaultSettings } from '../webhook/config.ts';
import { percentile } from './exit-latency.ts';

export interface CompletionOptions {
  /** Jobs per completion row (default 100). */
  readonly jobs?: number;
  /** Jobs created at once (default 4). */
  readonly parallel?: number;
  /** Seconds the memory phase samples (default 60). */
  readonly sampleSeconds?: number;
}

interface Args {
  readonly jobs: number;
  readonly parallel: number;
}

const progress = (line: string): void => {
  process.stderr.write(`job-completion: ${line}\n`);
};

/**
 * Records when each Job of a namespace first shows the Complete condition. The API server ends a
 * watch after 30–60 min (--min-request-timeout); a run of a few hundred Jobs can come near that,
 * so a watch that ends is started again (it lists the Jobs first, so none is missed).
 */
function watchCompletions(cluster: Cluster, ns: string): { completedAt: Map<string, number>; stop(): void } {
  const completedAt = new Map<string, number>();
  let stopped = false;
  let proc: ReturnType<typeof spawn>;
  const start = (): void => {
    proc = spawn(controlPlaneBinaries().kubectl, [`--kubeconfig=${cluster.kubeconfigPath}`, '-n', ns, 'get', 'jobs', '--watch', '-o', 'json'], {
      stdio: ['ignore', 'pipe', 'ignore'],
    });
    let buf = '';
    let depth = 0;
    let from = -1;
    proc.stdout?.setEncoding('utf8');
    proc.stdout?.on('data', (chunk: string) => {
      // kubectl prints one pretty-printed JSON object per event: split on balanced braces.
      const now = Date.now();
      for (const ch of chunk) {
        buf += ch;
        if (ch === '{') {
          if (depth === 0) from = buf.length - 1;
          depth++;
        } else if (ch === '}') {
          depth--;
          if (depth === 0 && from >= 0) {
            const obj = JSON.parse(buf.slice(from)) as { metadata: { name: string }; status?: { conditions?: { type: string; status: string }[] } };
            if (obj.status?.conditions?.some((c) => c.type === 'Complete' && c.status === 'True') && !completedAt.has(obj.metadata.name)) {
              completedAt.set(obj.metadata.name, now);
            }
            buf = '';
            from = -1;
          }
        }
      }
    });
    proc.on('exit', () => {
      if (!stopped) {
        progress(`${ns}: the Job watch ended; watching again`);
        start();
      }
    });
  };
  start();
  return {
    completedAt,
    stop: () => {
      stopped = true;
      proc.kill();
    },
  };
}

async function exitTime(cluster: Cluster, ns: string, job: string): Promise<number> {
  const log = await kubectlOk(cluster.cp, ['-n', ns, 'logs', `job/${job}`, '-c', 'main']);
  const line = log.split('\n').find((l) => l.startsWith('{"exiting":'));
  if (!line) throw new Error(`${ns}/${job}: the main container did not announce its exit`);
  return (JSON.parse(line) as { exiting: number }).exiting;
}

interface Variant {
  readonly label: string;
  readonly ns: string;
  readonly sidecar: 'none' | 'native' | 'legacy';
}

/** The rows, in table order; the first is the baseline the others are compared with. */
const VARIANTS: readonly Variant[] = [
  { label: 'no injection', ns: 'bench-plain', sidecar: 'none' },
  { label: 'native sidecar', ns: 'bench-native', sidecar: 'native' },
  { label: 'legacy sidecar', ns: 'bench-legacy', sidecar: 'legacy' },
];

interface Row {
  readonly variant: string;
  readonly delays: number[];
  /** Injected pods whose sidecar's termination message says its final flush was delivered. */
  readonly delivered: number;
}

/** The same short Job every time: 20 items over 1 s, then 1.2 s before it exits. */
const JOB_ENV = { ITEMS: '20', DURATION_MS: '1000', SETTLE_MS: '1200', ANNOUNCE_EXIT: '1', TRUTH_FILE: '' };

interface CapturedSidecar {
  readonly container: Record<string, unknown>;
  /** The volumes the webhook added for it (the token for the gateway). */
  readonly volumes: readonly Record<string, unknown>[];
  readonly status: string;
}

/**
 * The legacy sidecar exactly as the deployed webhook injects it, asked for once through a server-side
 * dry run with the webhook switched to legacy mode, which is then switched back to the shipped
 * `auto` (native on this v1.37 node). The webhook's mode is one setting for all pods, and a
 * rollout per round would dominate the run; with the legacy injection set in those Jobs'
 * template, the webhook passes them as already injected, and both sidecar variants can run side
 * by side with the shipped settings (the gateway as remote-write URL among them).
 */
async function captureLegacySidecar(cluster: Cluster, ns: string): Promise<CapturedSidecar> {
  await setWebhookEnv(cluster, 'JOBMETRICS_SIDECAR_MODE=legacy', (a) => a.sidecar?.in === 'containers');
  try {
    const name = 'legacy-capture';
    // A pod as the Job controller makes it from sampleJob's template: the job-name labels make it
    // a Job pod for the webhook.
    const pod = {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name, namespace: ns, labels: { 'batch.kubernetes.io/job-name': name, 'job-name': name }, annotations: { 'prometheus.io/port': '9100' } },
      spec: { restartPolicy: 'Never', containers: [sampleMain(JOB_ENV)] },
    };
    const out = JSON.parse(await kubectlOk(cluster.cp, ['create', '--dry-run=server', '-o', 'json', '-f', '-'], { input: JSON.stringify(pod) })) as {
      metadata: { annotations?: Record<string, string> };
      spec: { containers: ({ name: string; env?: { name: string; value?: string }[]; volumeMounts?: { mountPath: string }[] } & Record<string, unknown>)[]; volumes?: ({ name: string } & Record<string, unknown>)[] };
    };
    const sidecar = out.spec.containers.find((c) => c.name === SIDECAR_CONTAINER);
    const status = out.metadata.annotations?.[ANNOTATION.status];
    if (!sidecar || status !== STATUS_INJECTED || envOf(sidecar, SIDECAR_ENV.mode) !== 'legacy') {
      throw new Error(`the webhook in legacy mode did not inject a legacy sidecar into a dry-run pod: status ${status ?? 'none'}, containers ${out.spec.containers.map((c) => c.name).join(', ')}`);
    }
    // The ServiceAccount admission plugin mounted its token volume, under a name made for that
    // pod alone; each Job pod gets its own the same way.
    const mounts = (sidecar.volumeMounts ?? []).filter((m) => m.mountPath !== SERVICE_ACCOUNT_MOUNT);
    const { volumeMounts: _dropped, ...rest } = sidecar;
    const volumes = (out.spec.volumes ?? []).filter((v) => (RESERVED_VOLUMES as readonly string[]).includes(v.name));
    return { container: mounts.length > 0 ? { ...rest, volumeMounts: mounts } : rest, volumes, status };
  } finally {
    await setWebhookEnv(cluster, 'JOBMETRICS_SIDECAR_MODE-', (a) => a.sidecar?.in === 'initContainers');
  }
}

const SERVICE_ACCOUNT_MOUNT = '/var/run/secrets/kubernetes.io/serviceaccount';

function envOf(container: { env?: { name: string; value?: string }[] }, name: string): string | undefined {
  return container.env?.find((e) => e.name === name)?.value;
}

function jobManifest(v: Variant, name: string, legacy: CapturedSidecar): Record<string, unknown> {
  if (v.sidecar !== 'legacy') return sampleJob({ name, ns: v.ns, env: JOB_ENV });
  const env = (legacy.container['env'] as { name: string }[]).map((e) =>
    // The workload name the webhook would have given this Job's pods.
    e.name === SIDECAR_ENV.job ? { name: e.name, value: name } : e,
  );
  return sampleJob({
    name,
    ns: v.ns,
    env: JOB_ENV,
    annotations: { [ANNOTATION.status]: legacy.status },
    podSpec: { shareProcessNamespace: true, containers: [sampleMain(JOB_ENV), { ...legacy.container, env }], volumes: legacy.volumes },
  });
}

interface RawJobPod {
  metadata: { labels?: Record<string, string> };
  spec: { initContainers?: RawSpecContainer[]; containers: RawSpecContainer[] };
  status: { initContainerStatuses?: RawTerminated[]; containerStatuses?: RawTerminated[] };
}
interface RawSpecContainer {
  name: string;
  restartPolicy?: string;
  env?: { name: string; value?: string }[];
}
interface RawTerminated {
  name: string;
  state?: { terminated?: { message?: string } };
}

/**
 * Checks that each pod carries what its row says (no sidecar, a native one, a legacy one) and that
 * the sidecar sends to the gateway as shipped; returns how many final flushes were delivered.
 */
async function checkPods(cluster: Cluster, v: Variant, names: readonly string[]): Promise<number> {
  const out = await kubectlOk(cluster.cp, ['-n', v.ns, 'get', 'pods', '-l', `batch.kubernetes.io/job-name in (${names.join(',')})`, '-o', 'json']);
  const pods = (JSON.parse(out) as { items: RawJobPod[] }).items;
  if (pods.length !== names.length) throw new Error(`${v.ns}: ${pods.length} pods for Jobs ${names.join(', ')}`);
  let delivered = 0;
  for (const pod of pods) {
    const job = pod.metadata.labels?.['batch.kubernetes.io/job-name'] ?? '?';
    const inInit = pod.spec.initContainers?.find((c) => c.name === SIDECAR_CONTAINER);
    const inMain = pod.spec.containers.find((c) => c.name === SIDECAR_CONTAINER);
    const found = inInit?.restartPolicy === 'Always' ? 'native' : inMain ? 'legacy' : inInit ? 'init container' : 'none';
    if (found !== v.sidecar) throw new Error(`${v.ns}/${job}: the pod has sidecar ${found}, its row wants ${v.sidecar}`);
    const sidecar = inInit ?? inMain;
    if (!sidecar) continue;
    const url = envOf(sidecar, SIDECAR_ENV.remoteWriteUrl);
    if (url !== GATEWAY_URL) throw new Error(`${v.ns}/${job}: the sidecar writes to ${url ?? 'nothing'}, not the gateway (${GATEWAY_URL})`);
    const st = [...(pod.status.initContainerStatuses ?? []), ...(pod.status.containerStatuses ?? [])].find((c) => c.name === SIDECAR_CONTAINER);
    if (/^jobmetrics final values: .*\bdelivered=true\b/.test(st?.state?.terminated?.message ?? '')) delivered++;
  }
  return delivered;
}

/** The webhook's built-in sidecar.remoteWriteUrl, which manifests/base/webhook-settings.yaml writes out: the gateway Service. */
const GATEWAY_URL = defaultSettings().sidecar.remoteWriteUrl;

/**
 * Round r runs Job j<r> of every variant, the variants' order rotated by one each round; the
 * sequence is then cut into batches of `parallel` Jobs created at once. So every variant meets the
 * same node, the same load and the same neighbours over the whole run, and no row gets the quiet
 * start or the warm end to itself.
 */
export function interleave<T>(variants: readonly T[], rounds: number): { variant: T; round: number }[] {
  const out: { variant: T; round: number }[] = [];
  for (let r = 0; r < rounds; r++) {
    for (let k = 0; k < variants.length; k++) {
      const variant = variants[(r + k) % variants.length];
      if (variant !== undefined) out.push({ variant, round: r });
    }
  }
  return out;
}

async function runInterleaved(cluster: Cluster, args: Args): Promise<Row[]> {
  await createNamespace(cluster.cp, 'bench-plain');
  await labelledNamespace(cluster, 'bench-native');
  await labelledNamespace(cluster, 'bench-legacy');
  const legacy = await captureLegacySidecar(cluster, 'bench-legacy');
  progress(`legacy sidecar captured from the webhook; the webhook is back to its shipped mode; sidecars write to ${GATEWAY_URL}`);
  const watches = new Map(VARIANTS.map((v) => [v.ns, watchCompletions(cluster, v.ns)]));
  const delays = new Map<Variant, number[]>(VARIANTS.map((v) => [v, []]));
  const delivered = new Map<Variant, number>(VARIANTS.map((v) => [v, 0]));
  const sequence = interleave(VARIANTS, args.jobs);
  const t0 = Date.now();
  try {
    for (let i = 0; i < sequence.length; i += args.parallel) {
      const batch = sequence.slice(i, i + args.parallel).map(({ variant, round }) => ({ v: variant, name: `j${round}` }));
      await Promise.all(batch.map(({ v, name }) => apply(cluster, jobManifest(v, name, legacy))));
      for (const { v, name } of batch) {
        const st = await waitForJob(cluster, v.ns, name);
        if (st.condition !== 'Complete') throw new Error(`${v.ns}/${name} failed`);
      }
      // The watch may see the condition a moment after our poll did.
      await sleep(1_500);
      for (const { v, name } of batch) {
        const done = watches.get(v.ns)?.completedAt.get(name);
        if (done === undefined) throw new Error(`${v.ns}/${name}: the watch never saw Complete`);
        delays.get(v)?.push(done - (await exitTime(cluster, v.ns, name)));
      }
      const byNs = VARIANTS.map((v) => ({ v, names: batch.filter((b) => b.v === v).map((b) => b.name) })).filter((g) => g.names.length > 0);
      for (const { v, names } of byNs) delivered.set(v, (delivered.get(v) ?? 0) + (await checkPods(cluster, v, names)));
      // Finished Jobs and their pods go before the next batch, so every batch starts on the same
      // node: a few hundred dead pods and containers would otherwise slow the kubelet's relist as
      // the run goes on.
      await Promise.all(
        byNs.map(({ v, names }) => kubectlOk(cluster.cp, ['-n', v.ns, 'delete', 'job', ...names, '--cascade=foreground', '--wait=true', '--timeout=120s'], { timeoutMs: 130_000 })),
      );
      const done = Math.min(i + args.parallel, sequence.length);
      if (Math.floor(done / 20) > Math.floor(i / 20) || done === sequence.length) {
        const parts = VARIANTS.map((v) => {
          const d = [...(delays.get(v) ?? [])].sort((a, b) => a - b);
          return `${v.label} ${d.length} (p50 ${percentile(d, 50)} ms)`;
        });
        progress(`${done}/${sequence.length} Jobs, ${Math.round((Date.now() - t0) / 1000)} s: ${parts.join(', ')}`);
      }
    }
  } finally {
    for (const w of watches.values()) w.stop();
  }
  return VARIANTS.map((v) => ({ variant: v.label, delays: [...(delays.get(v) ?? [])].sort((a, b) => a - b), delivered: delivered.get(v) ?? 0 }));
}

/** The sidecar image as the cluster's webhook injects it: pulled from the cluster's registry. */
const sidecarImage = (cluster: Cluster): string => `${cluster.registry}/jobmetrics/jobmetrics-sidecar:${packageVersion()}`;
const MiB = 2 ** 20;

/** A counter family of `n` series whose values all grow by one every second. */
const SERIES_SERVER = (n: number): string => `
let tick = 0;
setInterval(() => tick++, 1000);
require('node:http').createServer((req, res) => {
  const lines = ['# TYPE bench_events_total counter'];
  for (let i = 0; i < ${n}; i++) lines.push('bench_events_total{worker="w' + i + '",shard="' + (i % 16) + '"} ' + (tick + i));
  res.end(lines.join('\\n') + '\\n');
}).listen(9100, '127.0.0.1');
setTimeout(() => process.exit(0), 3600000);`;

interface MemoryRow {
  readonly what: string;
  readonly samples: number[];
}

/**
 * Memory: an injected Job whose main container serves 1 000 series, and an uninjected pod running
 * an idle Node process from the sidecar image; both sampled from the kubelet every 2 s.
 */
async function measureMemory(cluster: Cluster, seconds: number): Promise<MemoryRow[]> {
  await labelledNamespace(cluster, 'bench-memory');
  await kubectlOk(cluster.cp, ['create', 'namespace', 'bench-idle']);
  await apply(cluster, sampleJob({ name: 'series-1000', ns: 'bench-memory', main: { command: ['node', '-e', SERIES_SERVER(1_000)] } }));
  await apply(cluster, {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: 'idle-node', namespace: 'bench-idle' },
    spec: {
      containers: [{ name: 'idle', image: sidecarImage(cluster), imagePullPolicy: 'IfNotPresent', command: ['/nodejs/bin/node', '-e', 'setInterval(() => {}, 1e9)'] }],
    },
  });
  const jobPod = (await runningPod(cluster, 'bench-memory', 'series-1000')).name;
  await kubectlOk(cluster.cp, ['-n', 'bench-idle', 'wait', '--for=condition=Ready', 'pod/idle-node', '--timeout=120s'], { timeoutMs: 130_000 });
  progress('memory: warming up 20 s (the kubelet reports every ~10 s)');
  await sleep(20_000);
  const rows: MemoryRow[] = [
    { what: 'jobmetrics sidecar, scraping and pushing 1 000 series every 1 s', samples: [] },
    { what: 'the main container serving those 1 000 series (the node base, for scale)', samples: [] },
    { what: 'idle Node process, same image and base as the sidecar', samples: [] },
  ];
  for (let t = 0; t < seconds; t += 2) {
    const [job, idle] = await Promise.all([workingSets(cluster, 'bench-memory', jobPod), workingSets(cluster, 'bench-idle', 'idle-node')]);
    const push = (row: MemoryRow | undefined, v: number | undefined): void => {
      if (row && v !== undefined) row.samples.push(v);
    };
    push(rows[0], job['jobmetrics-sidecar']);
    push(rows[1], job['main']);
    push(rows[2], idle['idle']);
    await sleep(2_000);
  }
  progress(`memory: ${rows.map((r) => `${r.samples.length} samples`).join(', ')}`);
  // Gone before the completion rows start, so they do not share the node with these pods.
  await kubectlOk(cluster.cp, ['delete', 'namespace', 'bench-memory', 'bench-idle', '--timeout=180s'], { timeoutMs: 190_000 });
  return rows.map((r) => ({ ...r, samples: r.samples.sort((a, b) => a - b) }));
}

export async function run(o: CompletionOptions = {}): Promise<string> {
  const args: Args = { jobs: o.jobs ?? 100, parallel: o.parallel ?? 4 };
  const peopleDir = clusterDir({ JOBMETRICS_CLUSTER_DIR: process.env['JOBMETRICS_CLUSTER_DIR'] });
  if (runningSupervisor(peopleDir) !== undefined) {
    throw new Error('a cluster from `npm run cluster -- up` is running; this benchmark starts its own: run `npm run cluster -- down` first');
  }
  ensureImages();
  const cluster = await startCluster({ dir: mkdtempSync(join(tmpdir(), 'jobmetrics-bench-cluster-')), images: clusterImages(), progress });
  try {
    const memory = await measureMemory(cluster, o.sampleSeconds ?? 60);
    const rows = await runInterleaved(cluster, args);

    const mib = (b: number | undefined): string => (b === undefined ? '—' : (b / MiB).toFixed(1));
    const idle = percentile(memory[2]?.samples ?? [], 50);
    const sidecarMedian = percentile(memory[0]?.samples ?? [], 50);
    const base = rows[0];
    const basePercentile = (p: number): number => percentile(base?.delays ?? [], p);
    const addedP99 = (r: Row): number => percentile(r.delays, 99) - basePercentile(99);
    const worst = Math.max(...rows.slice(1).map(addedP99));
    return [
      `Container working set as the kubelet reports it (Summary API, sampled every 2 s for ${o.sampleSeconds ?? 60} s after a 20 s warm-up), on the local node (containerd, runc, cgroup v1):`,
      '',
      '| container | median MiB | max MiB |',
      '| --- | ---: | ---: |',
      ...memory.map((r) => `| ${r.what} | ${mib(percentile(r.samples, 50))} | ${mib(r.samples.at(-1))} |`),
      '',
      `Sidecar at 1 000 series / idle Node on the same base (median): ${(sidecarMedian / idle).toFixed(2)}×; the injected limit is 128 MiB, the request 48 MiB.`,
      '',
      `Job completion delay: main container exit → Job Complete (${args.jobs} Jobs per row, the rows interleaved: each round runs one Job of every row, the order rotated every round, ${args.parallel} Jobs at a time, each batch deleted before the next; the same Job each time: 20 items over 1 s, then 1.2 s settle). ` +
        `The sidecars deliver through the gateway as shipped: the webhook's sidecar.remoteWriteUrl, ${GATEWAY_URL} (manifests/base/webhook-settings.yaml and the built-in default; checked on every injected pod). ` +
        'Native: as the webhook injects by default (mode auto, native on v1.37); legacy: what the same webhook injects in legacy mode (asked once through a server-side dry run) in the Job template.',
      '',
      '| variant | p50 ms | p99 ms | max ms | added at p99 vs no injection | final flush delivered |',
      '| --- | ---: | ---: | ---: | ---: | ---: |',
      ...rows.map((r) => `| ${r.variant} | ${percentile(r.delays, 50)} | ${percentile(r.delays, 99)} | ${r.delays.at(-1)} | ${r === base ? '—' : addedP99(r)} | ${r === base ? '—' : `${r.delivered}/${r.delays.length}`} |`),
      '',
      `Target: ≤ 1 000 ms added at p99: ${worst <= 1_000 ? 'MET' : 'NOT MET'} (worst ${worst} ms).`,
    ].join('\n');
  } finally {
    await cluster.stop();
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const argv = process.argv.slice(2);
  let jobs: number | undefined;
  let parallel: number | undefined;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const n = Number(argv[i + 1]);
    if ((a === '--jobs' || a === '--parallel') && Number.isInteger(n) && n > 0) {
      if (a === '--jobs') jobs = n;
      else parallel = n;
      i++;
    } else throw new Error(`bad argument ${a ?? ''}; usage: job-completion.ts [--jobs N] [--parallel P] (positive integers)`);
  }
  console.log(await run({ ...(jobs !== undefined ? { jobs } : {}), ...(parallel !== undefined ? { parallel } : {}) }));
  process.exit(0);
}
