/**
 * Job completion delay on a real node: from the moment the main container's process exits to the
 * moment the Job is `Complete`, for the same Job without injection, with a native sidecar and with
 * a legacy one — side by side in one run, on the local cluster (scripts/cluster). Also the
 * sidecar's memory as the kubelet reports it (container working set) next to an idle Node
 * container on the same base.
 *
 *   node --import tsx bench/job-completion.ts [--jobs N] [--parallel P]
 *
 * Uses a cluster from `npm run cluster -- up` when one runs (it is left running), else starts its
 * own and stops it at the end. The main container prints `{"exiting": <ms>}` just before it exits
 * (ANNOUNCE_EXIT); a watch on the Jobs records when each turns Complete. Both clocks are this
 * machine's. The kubelet, the Job controller and the watch each add their own delay; what
 * matters is the difference between the rows.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startCluster, type Cluster } from '../scripts/cluster/cluster.ts';
import { controlPlaneBinaries, kubectlOk } from '../scripts/cluster/control-plane.ts';
import { clusterImages, ensureImages } from '../scripts/cluster/images.ts';
import { clusterDir, readReady, runningSupervisor } from '../scripts/cluster/state.ts';
import { apply, labelledNamespace, sampleJob, waitForJob } from '../test/e2e/cluster-harness.ts';

interface Args {
  readonly jobs: number;
  readonly parallel: number;
}

function parseArgs(argv: readonly string[]): Args {
  let jobs = 20;
  let parallel = 4;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--jobs') jobs = Number(argv[++i]);
    else if (a === '--parallel') parallel = Number(argv[++i]);
    else throw new Error(`unknown argument ${a}; usage: job-completion.ts [--jobs N] [--parallel P]`);
  }
  if (!Number.isInteger(jobs) || jobs < 1 || !Number.isInteger(parallel) || parallel < 1) throw new Error('--jobs and --parallel need positive integers');
  return { jobs, parallel };
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

function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] ?? NaN;
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

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const peopleDir = clusterDir({ JOBMETRICS_CLUSTER_DIR: process.env['JOBMETRICS_CLUSTER_DIR'] });
  let cluster: Cluster;
  let own = false;
  if (runningSupervisor(peopleDir) !== undefined && readReady(peopleDir)) {
    throw new Error('a cluster from `npm run cluster -- up` is running; this benchmark starts its own: run `npm run cluster -- down` first');
  } else {
    ensureImages();
    cluster = await startCluster({ dir: mkdtempSync(join(tmpdir(), 'jobmetrics-bench-cluster-')), images: clusterImages(), progress });
    own = true;
  }
  try {
    const rows: Row[] = [];
    await kubectlOk(cluster.cp, ['create', 'namespace', 'bench-plain']);
    rows.push(await runVariant(cluster, 'no injection', 'bench-plain', args));
    await labelledNamespace(cluster, 'bench-native');
    rows.push(await runVariant(cluster, 'native sidecar', 'bench-native', args));
    await kubectlOk(cluster.cp, ['-n', 'jobmetrics', 'set', 'env', 'deployment/jobmetrics-webhook', 'JOBMETRICS_SIDECAR_MODE=legacy']);
    await kubectlOk(cluster.cp, ['-n', 'jobmetrics', 'rollout', 'status', 'deployment/jobmetrics-webhook', '--timeout=180s'], { timeoutMs: 190_000 });
    await labelledNamespace(cluster, 'bench-legacy');
    rows.push(await runVariant(cluster, 'legacy sidecar', 'bench-legacy', args));

    const base = rows[0];
    console.log(`\nJob completion delay: main container exit → Job Complete (${args.jobs} Jobs per row, ${args.parallel} at a time)\n`);
    console.log('| variant | p50 ms | p99 ms | max ms | added at p99 vs no injection |');
    console.log('|---|---:|---:|---:|---:|');
    for (const r of rows) {
      const p99 = percentile(r.delays, 99);
      const added = base ? p99 - percentile(base.delays, 99) : NaN;
      console.log(`| ${r.variant} | ${percentile(r.delays, 50)} | ${p99} | ${r.delays.at(-1)} | ${r === base ? '—' : `${added} (goal ≤ 1000)`} |`);
    }
  } finally {
    if (own) await cluster.stop();
  }
}

await main();
