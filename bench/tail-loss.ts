/**
 * Tail loss (docs/benchmarks.md: "Measure and report the tail loss for increments made in the last
 * interval"). Increments made in the last scrape interval before the main container exits may be
 * lost: the sidecar notices the exit at once, but the job's /metrics is gone with it, so what was
 * counted after the last successful scrape was never seen.
 *
 * Each run is a real pod (PID namespace, pause-like PID 1, the sample job, the real sidecar)
 * delivering to real vmagent + Prometheus. The job counts one work item every `stepMs` right up
 * to its exit (SETTLE_MS=0, the worst case: real jobs usually log, close files and return after
 * their last increment). Lost = what the job counted (its ground-truth file) − what Prometheus
 * aggregated for that workload; "lost window" = lost × stepMs, the stretch of work before the
 * exit that was not delivered.
 *
 *   node --import tsx bench/tail-loss.ts [--runs N]     prints the table
 *   import { run } from './tail-loss.ts'                 the same table as text (bench/run.ts)
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { startStack } from '../scripts/aggregator-stack.ts';
import { pidNamespaceSupport } from '../scripts/local-pod.ts';
import { ensureBuilt } from '../test/support/build.ts';
import { itemsCounted, startSamplePod } from '../test/support/pods.ts';

export interface TailLossOptions {
  /** Runs per interval (default 20). */
  readonly runs?: number;
  /** Scrape intervals to measure (default 1s and 200ms). */
  readonly intervals?: readonly string[];
  /** Pods running at once (default 5). */
  readonly concurrency?: number;
  readonly progress?: (line: string) => void;
}

export interface TailLossRow {
  readonly interval: string;
  readonly runs: number;
  readonly stepMs: number;
  /** Items lost per run, sorted. */
  readonly lost: readonly number[];
  /** Runs where Prometheus had more than the job counted (must be none). */
  readonly double: number;
  readonly counted: number;
}

const STEP_MS = 10;
/**
 * 2.5–3.5 s of work at one item per 10 ms, spread evenly over the runs (golden-ratio steps): with
 * one fixed duration every run would exit at the same phase of the scrape schedule, and the table
 * would show that one phase instead of the spread a real fleet sees.
 */
const itemsOfRun = (i: number): number => 250 + Math.floor(100 * ((i * 0.6180339887) % 1));

const quantile = (sorted: readonly number[], q: number): number => sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))] ?? NaN;

export async function benchTailLoss(opts: TailLossOptions = {}): Promise<TailLossRow[]> {
  const runs = opts.runs ?? 20;
  const intervals = opts.intervals ?? ['1s', '200ms'];
  const concurrency = opts.concurrency ?? 5;
  const progress = opts.progress ?? ((l: string) => process.stderr.write(`${l}\n`));
  const ns = pidNamespaceSupport();
  if (!ns.ok) progress(`tail loss: no PID namespaces (${ns.why}); pods run as plain child processes`);
  ensureBuilt();
  const dir = mkdtempSync(join(tmpdir(), 'jobmetrics-bench-tail-'));
  const stack = await startStack({ dir });
  const rows: TailLossRow[] = [];
  try {
    for (const interval of intervals) {
      const lost: number[] = [];
      let double = 0;
      let counted = 0;
      let next = 0;
      const one = async (i: number): Promise<void> => {
        const job = `tail-${interval}-${i}`;
        const p = await startSamplePod({
          dir,
          remoteWriteUrl: stack.remoteWriteUrl,
          namespace: 'bench',
          job,
          pod: `${job}-a`,
          items: itemsOfRun(i),
          durationMs: itemsOfRun(i) * STEP_MS,
          settleMs: 0,
          sidecar: { JOBMETRICS_INTERVAL: interval, JOBMETRICS_PUSH_INTERVAL: '10s' },
        });
        const { truth } = await p.done;
        const c = itemsCounted(truth);
        await stack.flush();
        const r = await stack.query(`sum(demo_items_processed_total{namespace="bench",job="${job}"})`);
        const a = r[0]?.value ?? 0;
        counted += c;
        lost.push(Math.max(0, c - a));
        if (a > c) double++;
      };
      const worker = async (): Promise<void> => {
        while (next < runs) {
          const i = next++;
          await one(i);
          if (lost.length % 10 === 0) progress(`tail loss at ${interval}: ${lost.length}/${runs} runs`);
        }
      };
      await Promise.all(Array.from({ length: Math.min(concurrency, runs) }, worker));
      rows.push({ interval, runs, stepMs: STEP_MS, lost: [...lost].sort((a, b) => a - b), double, counted });
    }
  } finally {
    await stack.stop();
    rmSync(dir, { recursive: true, force: true });
  }
  return rows;
}

export function formatTable(rows: readonly TailLossRow[]): string {
  const head = ['interval', 'runs', 'items lost: min', 'p50', 'p90', 'max', 'mean', 'lost window p50 ms', 'max ms', 'double-counted runs'];
  const lines = [`| ${head.join(' | ')} |`, `| ${head.map(() => '---').join(' | ')} |`];
  for (const r of rows) {
    const mean = r.lost.reduce((s, x) => s + x, 0) / r.lost.length;
    lines.push(
      `| ${[
        r.interval,
        r.runs,
        quantile(r.lost, 0),
        quantile(r.lost, 0.5),
        quantile(r.lost, 0.9),
        quantile(r.lost, 1),
        mean.toFixed(1),
        quantile(r.lost, 0.5) * r.stepMs,
        quantile(r.lost, 1) * r.stepMs,
        r.double,
      ].join(' | ')} |`,
    );
  }
  return lines.join('\n');
}

export async function run(opts: TailLossOptions = {}): Promise<string> {
  const rows = await benchTailLoss(opts);
  return [
    `Tail loss: jobs of 2.5–3.5 s counting one item every ${STEP_MS} ms right up to their exit (no pause after the last increment), real sidecar, vmagent and Prometheus; load average ${loadavg().map((x) => x.toFixed(1)).join(' ')}`,
    '',
    formatTable(rows),
    '',
    'Expected: what was counted after the last scrape, i.e. up to one interval of work (plus one scrape\'s latency); nothing counted twice.',
  ].join('\n');
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const i = process.argv.indexOf('--runs');
  const runs = i > 0 ? Number(process.argv[i + 1]) : undefined;
  console.log(await run(runs !== undefined && Number.isInteger(runs) && runs > 0 ? { runs } : {}));
}
