/**
 * `npm run demo`: the whole idea on one machine, no cluster. Real vmagent (stream aggregation)
 * and Prometheus on loopback, the gateway in front of vmagent as in a cluster; 20 sample jobs, 5
 * at a time, each a real process in its own PID namespace beside the real sidecar; then what the
 * jobs really counted next to what Prometheus shows after aggregation.
 *
 *   npm run demo               runs, prints the table, stops everything
 *   npm run demo -- --keep     then leaves vmagent and Prometheus running (until Ctrl-C) and
 *                              prints Prometheus' address with queries to paste
 */
import { spawnSync } from 'node:child_process';
import { appendFileSync, existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Gateway } from '../gateway/gateway.ts';
import { createLogger } from '../shared/log.ts';
import { aggregatorBinaries, startStack, type Stack } from './aggregator-stack.ts';
import { startLocalGateway } from './local-gateway.ts';
import { freePort, pidNamespaceSupport, PROGRAMS, PROJECT_ROOT, readTruth, sampleJob, sidecarEnv, startLocalPod, type GroundTruth } from './local-pod.ts';

const NAMESPACE = 'demo';
const WORKLOADS = ['ingest', 'resize', 'report', 'backfill'] as const;
const JOBS = 20;
const PARALLEL = 5;

const say = (line: string): void => {
  process.stdout.write(line + '\n');
};

function ensurePrerequisites(): void {
  if (!existsSync(PROGRAMS.sidecar) || !existsSync(PROGRAMS.podInit)) {
    say('demo: building (npm run build)…');
    const r = spawnSync('npm', ['run', 'build', '--silent'], { cwd: PROJECT_ROOT, stdio: 'inherit' });
    if (r.status !== 0) throw new Error('npm run build failed');
  }
  try {
    aggregatorBinaries();
  } catch {
    say('demo: vmagent and Prometheus are not in the cache yet; fetching them from Debian’s archive…');
    const r = spawnSync('bash', [join(PROJECT_ROOT, 'scripts/install-aggregator')], { stdio: 'inherit' });
    if (r.status !== 0) throw new Error('scripts/install-aggregator failed; see above');
  }
}

interface JobPlan {
  readonly pod: string;
  readonly workload: string;
  readonly items: number;
  readonly durationMs: number;
  readonly exitCode: number;
}

function plans(): JobPlan[] {
  // A fixed seed: every run of the demo runs the same jobs.
  let seed = 42;
  const random = (): number => ((seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648);
  return Array.from({ length: JOBS }, (_, i) => {
    const workload = WORKLOADS[i % WORKLOADS.length] as string;
    const durationMs = Math.round(300 + random() * 19_700);
    return {
      pod: `${workload}-${String(i).padStart(2, '0')}-${Math.floor(random() * 1e5).toString(36)}`,
      workload,
      durationMs,
      items: Math.max(1, Math.round(durationMs / 20 + random() * 200)),
      exitCode: random() < 0.2 ? 1 : 0,
    };
  });
}

/** The gateway in front of vmagent, as the manifests run it, at the demo stack's 1 s interval. */
function startDemoGateway(stack: Stack, dir: string): Promise<Gateway> {
  const logFile = join(dir, 'gateway.log');
  const log = createLogger({ component: 'jobmetrics-gateway', sink: (line) => appendFileSync(logFile, line + '\n') });
  return startLocalGateway({ aggregatorUrl: stack.remoteWriteUrl, aggregationInterval: '1s', birthMargin: '1s', log });
}

async function runJob(plan: JobPlan, gateway: Gateway, dir: string, pidNamespace: boolean): Promise<{ plan: JobPlan; truth: GroundTruth; sidecarCode: number | null; mainCode: number | null }> {
  const port = await freePort();
  const truthFile = join(dir, `${plan.pod}.truth.json`);
  const pod = startLocalPod({
    name: plan.pod,
    dir,
    pidNamespace,
    main: sampleJob({ port, items: plan.items, durationMs: plan.durationMs, exitCode: plan.exitCode, truthFile }),
    sidecarEnv: sidecarEnv({ port, remoteWriteUrl: `${gateway.url}/api/v1/write`, namespace: NAMESPACE, job: plan.workload, pod: plan.pod, extra: { JOBMETRICS_PUSH_INTERVAL: '2s' } }),
  });
  const result = await pod.result;
  return { plan, truth: readTruth(truthFile), sidecarCode: result.sidecar.code, mainCode: result.main.code };
}

/** Queries to paste into the kept Prometheus (README "What Prometheus holds"). */
const QUERIES = [
  `sum by (job, outcome) (demo_items_processed_total{namespace="${NAMESPACE}"})`,
  `sum by (job) (increase(demo_items_processed_total{namespace="${NAMESPACE}"}[15m]))`,
  `histogram_quantile(0.9, sum by (job, le) (increase(demo_item_duration_seconds_bucket{namespace="${NAMESPACE}"}[15m])))`,
  `count by (__name__) ({namespace="${NAMESPACE}"})`,
];

function parseArgs(argv: readonly string[]): { keep: boolean } {
  for (const a of argv) {
    if (a !== '--keep') {
      process.stderr.write(`demo: unknown argument ${a}; usage: npm run demo [-- --keep]\n`);
      process.exit(2);
    }
  }
  return { keep: argv.includes('--keep') };
}

/** Until SIGINT or SIGTERM. */
function untilStopped(): Promise<void> {
  return new Promise((resolve) => {
    const keepAlive = setInterval(() => {}, 3_600_000);
    for (const sig of ['SIGINT', 'SIGTERM'] as const) {
      process.once(sig, () => {
        clearInterval(keepAlive);
        resolve();
      });
    }
  });
}

async function main(): Promise<number> {
  const args = parseArgs(process.argv.slice(2));
  ensurePrerequisites();
  const ns = pidNamespaceSupport();
  if (!ns.ok) say(`demo: no PID namespaces here (${ns.why}); falling back to plain child processes, each pod with a proc view of its own`);
  const dir = mkdtempSync(join(tmpdir(), 'jobmetrics-demo-'));
  say(`demo: starting vmagent and Prometheus on loopback (logs in ${dir})`);
  const stack = await startStack({ dir });
  let gateway: Gateway | undefined;
  try {
    gateway = await startDemoGateway(stack, dir);
    const gw = gateway;
    say(`demo: sidecars → gateway ${gw.url} → vmagent ${stack.remoteWriteUrl} → Prometheus ${stack.prometheusUrl}`);
    say(`demo: running ${JOBS} jobs of ${WORKLOADS.length} workloads, ${PARALLEL} at a time, each in ${ns.ok ? 'its own PID namespace' : 'a plain process group'} with the sidecar`);
    const queue = plans();
    const results: Array<Awaited<ReturnType<typeof runJob>>> = [];
    const started = Date.now();
    const worker = async (): Promise<void> => {
      for (let plan = queue.shift(); plan; plan = queue.shift()) {
        const r = await runJob(plan, gw, dir, ns.ok);
        results.push(r);
        const counted = r.truth.ok + r.truth.failed;
        say(
          `  [${String(results.length).padStart(2)}/${JOBS}] ${r.plan.pod.padEnd(22)} ran ${(r.plan.durationMs / 1000).toFixed(1).padStart(5)}s, counted ${String(counted).padStart(4)}, job exit ${r.mainCode}, sidecar exit ${r.sidecarCode}  (${((Date.now() - started) / 1000).toFixed(0)}s)`,
        );
      }
    };
    await Promise.all(Array.from({ length: PARALLEL }, worker));

    say('demo: waiting for the gateway to deliver what it holds and the aggregator to flush to Prometheus…');
    await gw.close();
    gateway = undefined;
    await stack.flush();

    const rows: Array<{ workload: string; metric: string; counted: number; shown: number }> = [];
    const sumTruth = (workload: string, f: (t: GroundTruth) => number): number =>
      results.filter((r) => r.plan.workload === workload).reduce((s, r) => s + f(r.truth), 0);
    const shownBy = async (promql: string): Promise<Map<string, number>> => {
      const out = new Map<string, number>();
      for (const s of await stack.query(promql)) out.set(s.metric['job'] ?? '', s.value);
      return out;
    };
    const queries: Array<{ metric: string; promql: string; truth: (t: GroundTruth) => number }> = [
      { metric: 'items processed (ok)', promql: `sum by (job) (demo_items_processed_total{namespace="${NAMESPACE}",outcome="ok"})`, truth: (t) => t.ok },
      { metric: 'items processed (failed)', promql: `sum by (job) (demo_items_processed_total{namespace="${NAMESPACE}",outcome="failed"})`, truth: (t) => t.failed },
      { metric: 'duration histogram _count', promql: `sum by (job) (demo_item_duration_seconds_count{namespace="${NAMESPACE}"})`, truth: (t) => t.observations },
      { metric: 'duration bucket le=0.05', promql: `sum by (job) (demo_item_duration_seconds_bucket{namespace="${NAMESPACE}",le="0.05"})`, truth: (t) => t.buckets['0.05'] ?? 0 },
    ];
    for (const q of queries) {
      const shown = await shownBy(q.promql);
      for (const w of WORKLOADS) rows.push({ workload: w, metric: q.metric, counted: sumTruth(w, q.truth), shown: shown.get(w) ?? 0 });
    }
    // What users type: increase() over the whole demo. The gateway makes every workload's first
    // runs count in it; Prometheus extrapolates a little past the first and last samples.
    const windowSec = Math.ceil((Date.now() - started) / 1000) + 60;
    const increased = (await stack.query(`sum(increase(demo_items_processed_total{namespace="${NAMESPACE}"}[${windowSec}s]))`))[0]?.value ?? 0;
    const seriesCount = (await stack.query(`count({namespace="${NAMESPACE}",__name__=~"demo_.*"})`))[0]?.value ?? 0;

    say('');
    say(`${'workload'.padEnd(10)} ${'metric'.padEnd(26)} ${'jobs counted'.padStart(12)} ${'Prometheus'.padStart(10)} ${'lost'.padStart(5)} ${'double'.padStart(6)}`);
    for (const r of rows) {
      say(
        `${r.workload.padEnd(10)} ${r.metric.padEnd(26)} ${String(r.counted).padStart(12)} ${String(r.shown).padStart(10)} ${String(Math.max(0, r.counted - r.shown)).padStart(5)} ${String(Math.max(0, r.shown - r.counted)).padStart(6)}`,
      );
    }
    const itemRows = rows.filter((r) => r.metric.startsWith('items processed'));
    const C = itemRows.reduce((s, r) => s + r.counted, 0);
    const A = itemRows.reduce((s, r) => s + r.shown, 0);
    say('');
    say(`Prometheus holds ${seriesCount} demo series for ${JOBS} pods: one per workload and label set, however many pods ran.`);
    const failedJobs = results.filter((r) => r.mainCode !== 0).length;
    const badSidecars = results.filter((r) => r.sidecarCode !== 0).length;
    say(`${failedJobs} jobs failed on purpose (exit 1); sidecars that exited non-zero: ${badSidecars}.`);
    say(`increase(demo_items_processed_total[${windowSec}s]) summed: ${increased.toFixed(1)} (counted ${C}; the rest is Prometheus' extrapolation).`);
    say(`demo: ${JOBS} jobs, counted ${C}, aggregated ${A}, lost ${C - A}, double ${Math.max(0, A - C)}`);
    const code = C === A && badSidecars === 0 ? 0 : 1;
    if (args.keep) {
      say('');
      say(`demo: --keep: vmagent and Prometheus keep running until Ctrl-C (logs and data in ${dir}).`);
      say(`  Prometheus: ${stack.prometheusUrl}  (its UI: ${stack.prometheusUrl}/graph; on loopback, no credentials)`);
      say('  queries to paste:');
      for (const q of QUERIES) say(`    ${q}`);
      await untilStopped();
      say('demo: stopping vmagent and Prometheus');
    }
    return code;
  } finally {
    await gateway?.close();
    await stack.stop();
  }
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    process.stderr.write(`demo: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exit(1);
  },
);
