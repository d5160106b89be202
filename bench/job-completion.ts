/**
 * Real pods on the local node (scripts/cluster), side by side in one run:
 *
 * 1. The sidecar's memory as the kubelet reports it (container working set, its Summary API) while
 *    it scrapes and pushes 1 000 series, next to an idle Node process in a container of the same
 *    image and base (the sidecar image with `node -e` instead of the sidecar), sampled together.
 * 2. Job completion delay: from the moment the main container's process exits to the moment the
 *    Job is `Complete`, for the same Job without injection, with a native sidecar and with a
 *    legacy one. The main container prints `{"exiting": <ms>}` just before it exits
 *    (ANNOUNCE_EXIT); a watch on the Jobs records when each turns Complete. Both clocks are this
 *    machine's. The kubelet, the Job controller and the watch each add their own delay; what
 *    matters is the difference between the rows.
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
import { controlPlaneBinaries, kubectlOk } from '../scripts/cluster/control-plane.ts';
import { clusterImages, ensureImages } from '../scripts/cluster/images.ts';
import { clusterDir, runningSupervisor } from '../scripts/cluster/state.ts';
import { apply, labelledNamespace, runningPod, sampleJob, setWebhookEnv, sleep, waitForJob, workingSets } from '../test/e2e/cluster-harness.ts';
import { percentile } from './exit-latency.ts';

export interface CompletionOptions {
  /** Jobs per completion row (default 20). */
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

/** Records when each Job of a namespace first shows the Complete condition. */
function watchCompletions(cluster: Cluster, ns: string): { completedAt: Map<string, number>; stop(): void } {
  const completedAt = new Map<string, number>();
  const proc = spawn(controlPlaneBinaries().kubectl, [`--kubeconfig=${cluster.kubeconfigPath}`, '-n', ns, 'get', 'jobs', '--watch', '-o', 'json'], {
    stdio: ['ignore', 'pipe', 'ignore'],
  });
  let buf = '';
  let depth = 0;
  let start = -1;
  proc.stdout.setEncoding('utf8');
  proc.stdout.on('data', (chunk: string) => {
    // kubectl prints one pretty-printed JSON object per event: split on balanced braces.
    const now = Date.now();
    for (const ch of chunk) {
      buf += ch;
      if (ch === '{') {
        if (depth === 0) start = buf.length - 1;
        depth++;
      } else if (ch === '}') {
        depth--;
        if (depth === 0 && start >= 0) {
          const obj = JSON.parse(buf.slice(start)) as { metadata: { name: string }; status?: { conditions?: { type: string; status: string }[] } };
          if (obj.status?.conditions?.some((c) => c.type === 'Complete' && c.status === 'True') && !completedAt.has(obj.metadata.name)) {
            completedAt.set(obj.metadata.name, now);
          }
          buf = '';
          start = -1;
        }
      }
    }
  });
  return { completedAt, stop: () => proc.kill() };
}

async function exitTime(cluster: Cluster, ns: string, job: string): Promise<number> {
  const log = await kubectlOk(cluster.cp, ['-n', ns, 'logs', `job/${job}`, '-c', 'main']);
  const line = log.split('\n').find((l) => l.startsWith('{"exiting":'));
  if (!line) throw new Error(`${ns}/${job}: the main container did not announce its exit`);
  return (JSON.parse(line) as { exiting: number }).exiting;
}

interface Row {
  readonly variant: string;
  readonly delays: number[];
}

async function runVariant(cluster: Cluster, variant: string, ns: string, args: Args): Promise<Row> {
  const watch = watchCompletions(cluster, ns);
  const names = Array.from({ length: args.jobs }, (_, i) => `j${i}`);
  const delays: number[] = [];
  try {
    for (let i = 0; i < names.length; i += args.parallel) {
      const batch = names.slice(i, i + args.parallel);
      await Promise.all(batch.map((name) => apply(cluster, sampleJob({ name, ns, env: { ITEMS: '20', DURATION_MS: '1000', SETTLE_MS: '1200', ANNOUNCE_EXIT: '1', TRUTH_FILE: '' } }))));
      for (const name of batch) {
        const st = await waitForJob(cluster, ns, name);
        if (st.condition !== 'Complete') throw new Error(`${ns}/${name} failed`);
      }
      // The watch may see the condition a moment after our poll did.
      await new Promise((r) => setTimeout(r, 1_500));
      for (const name of batch) {
        const done = watch.completedAt.get(name);
        if (done === undefined) throw new Error(`${ns}/${name}: the watch never saw Complete`);
        delays.push(done - (await exitTime(cluster, ns, name)));
      }
      progress(`${variant}: ${delays.length}/${args.jobs}`);
    }
  } finally {
    watch.stop();
  }
  return { variant, delays: delays.sort((a, b) => a - b) };
}

const SIDECAR_IMAGE = 'ghcr.io/jobmetrics/jobmetrics-sidecar:0.1.0';
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
      containers: [{ name: 'idle', image: SIDECAR_IMAGE, imagePullPolicy: 'Never', command: ['/nodejs/bin/node', '-e', 'setInterval(() => {}, 1e9)'] }],
    },
  });
  const jobPod = (await runningPod(cluster, 'bench-memory', 'series-1000')).name;
  await kubectlOk(cluster.cp, ['-n', 'bench-idle', 'wait', '--for=condition=Ready', 'pod/idle-node', '--timeout=120s'], { timeoutMs: 130_000 });
  progress('memory: warming up 20 s (the kubelet reports every ~10 s)');
  await sleep(20_000);
  const rows: MemoryRow[] = [
    { what: 'jobmetrics sidecar, scraping and pushing 1 000 series every 1 s', samples: [] },
    { what: 'the main container serving those 1 000 series (node:20 base, for scale)', samples: [] },
    { what: 'idle Node 20 process, same image and base as the sidecar', samples: [] },
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
  const args: Args = { jobs: o.jobs ?? 20, parallel: o.parallel ?? 4 };
  const peopleDir = clusterDir({ JOBMETRICS_CLUSTER_DIR: process.env['JOBMETRICS_CLUSTER_DIR'] });
  if (runningSupervisor(peopleDir) !== undefined) {
    throw new Error('a cluster from `npm run cluster -- up` is running; this benchmark starts its own: run `npm run cluster -- down` first');
  }
  ensureImages();
  const cluster = await startCluster({ dir: mkdtempSync(join(tmpdir(), 'jobmetrics-bench-cluster-')), images: clusterImages(), progress });
  try {
    const memory = await measureMemory(cluster, o.sampleSeconds ?? 60);
    const rows: Row[] = [];
    await kubectlOk(cluster.cp, ['create', 'namespace', 'bench-plain']);
    rows.push(await runVariant(cluster, 'no injection', 'bench-plain', args));
    await labelledNamespace(cluster, 'bench-native');
    rows.push(await runVariant(cluster, 'native sidecar', 'bench-native', args));
    await setWebhookEnv(cluster, 'JOBMETRICS_SIDECAR_MODE=legacy');
    await labelledNamespace(cluster, 'bench-legacy');
    rows.push(await runVariant(cluster, 'legacy sidecar', 'bench-legacy', args));

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
      `Job completion delay: main container exit → Job Complete (${args.jobs} Jobs per row, ${args.parallel} at a time, the same Job each time; 20 items over 1 s, then 1.2 s settle):`,
      '',
      '| variant | p50 ms | p99 ms | max ms | added at p99 vs no injection |',
      '| --- | ---: | ---: | ---: | ---: |',
      ...rows.map((r) => `| ${r.variant} | ${percentile(r.delays, 50)} | ${percentile(r.delays, 99)} | ${r.delays.at(-1)} | ${r === base ? '—' : addedP99(r)} |`),
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
