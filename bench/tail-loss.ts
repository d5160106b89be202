/**
 * Tail loss (docs/benchmarks.md "Tail loss"). Increments made after the last scrape before the main
 * container exits are lost: the sidecar notices the exit at once, but the job's /metrics is gone
 * with it. How much depends on the scrape pace (sidecar/scrape-pace.ts) and on how long the job
 * lives after its last increment, so the table crosses both:
 *
 * - paces: `1s` as shipped (every 200 ms while a scrape costs little, never slower than 1 s) and
 *   `1s fixed` (the fast pace off, every 1 s: the pace before it existed);
 * - settle: the job exits 0, 100 or 300 ms after its last increment (0 is the worst case; real
 *   jobs usually log, close files and return after their last increment).
 *
 * Runs of every variant are interleaved, so a burst of load on the machine hits them alike.
 * Each run is a real pod (PID namespace, pause-like PID 1, the sample job, the real sidecar)
 * delivering to real vmagent + Prometheus. The job counts one work item every `stepMs`.
 * Lost = what the job counted (its ground-truth file) − what Prometheus aggregated for that
 * workload; "lost window" = lost × stepMs, the stretch of work before the exit that was not
 * delivered. The CPU that each pace costs is in the sidecar footprint table (bench/sidecar.ts).
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
import { paceEnv } from './sidecar.ts';

export interface TailLossOptions {
  /** Runs per variant (default 20). */
  readonly runs?: number;
  /** Paces to measure (bench/sidecar.ts `paceEnv`; default `1s fixed` and `1s`). */
  readonly paces?: readonly string[];
  /** How long the job lives after its last increment, in ms (default 0, 100 and 300). */
  readonly settleMs?: readonly number[];
  /** Pods running at once (default 5). */
  readonly concurrency?: number;
  readonly progress?: (line: string) => void;
}

export interface TailLossRow {
  readonly pace: string;
  readonly settleMs: number;
  readonly runs: number;
  readonly stepMs: number;
  /** Items lost per run, sorted. */
  readonly lost: readonly number[];
  /** Runs where Prometheus had more than the job counted (must be none). */
  readonly double: number;
  readonly counted: number;
  /** Scrapes per second of the sidecar's life, mean over the runs (its exit summary). */
  readonly scrapesPerSecond: number;
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
  const paces = opts.paces ?? ['1s fixed', '1s'];
  const settles = opts.settleMs ?? [0, 100, 300];
  const concurrency = opts.concurrency ?? 5;
  const progress = opts.progress ?? ((l: string) => process.stderr.write(`${l}\n`));
  const ns = pidNamespaceSupport();
  if (!ns.ok) progress(`tail loss: no PID namespaces (${ns.why}); pods run as plain child processes`);
  ensureBuilt();
  const variants = paces.flatMap((pace) => settles.map((settleMs) => ({ pace, settleMs, lost: [] as number[], double: 0, counted: 0, scrapeRates: [] as number[] })));
  // Round-robin over the variants: run k is variant k % n, its (k / n)th run.
  const plan = Array.from({ length: runs * variants.length }, (_, k) => ({ v: variants[k % variants.length]!, i: Math.floor(k / variants.length) }));
  const dir = mkdtempSync(join(tmpdir(), 'jobmetrics-bench-tail-'));
  const stack = await startStack({ dir });
  try {
    let next = 0;
    let done = 0;
    const one = async ({ v, i }: (typeof plan)[number]): Promise<void> => {
      const job = `tail-${v.pace.replace(/\W+/g, '-')}-${v.settleMs}-${i}`;
      const p = await startSamplePod({
        dir,
        remoteWriteUrl: stack.remoteWriteUrl,
        namespace: 'bench',
        job,
        pod: `${job}-a`,
        items: itemsOfRun(i),
        durationMs: itemsOfRun(i) * STEP_MS,
        settleMs: v.settleMs,
        sidecar: { ...paceEnv(v.pace), JOBMETRICS_PUSH_INTERVAL: '10s' },
      });
      const started = Date.now();
      const { result, truth } = await p.done;
      const scrapes = result.summary?.['scrapes'];
      if (typeof scrapes === 'number') v.scrapeRates.push(scrapes / ((Date.now() - started) / 1000));
      const c = itemsCounted(truth);
      await stack.flush();
      const r = await stack.query(`sum(demo_items_processed_total{namespace="bench",job="${job}"})`);
      const a = r[0]?.value ?? 0;
      v.counted += c;
      v.lost.push(Math.max(0, c - a));
      if (a > c) v.double++;
    };
    const worker = async (): Promise<void> => {
      while (next < plan.length) {
        await one(plan[next++]!);
        if (++done % 20 === 0) progress(`tail loss: ${done}/${plan.length} runs`);
      }
    };
    await Promise.all(Array.from({ length: Math.min(concurrency, plan.length) }, worker));
  } finally {
    await stack.stop();
    rmSync(dir, { recursive: true, force: true });
  }
  const mean = (xs: readonly number[]): number => xs.reduce((s, x) => s + x, 0) / Math.max(1, xs.length);
  return variants.map((v) => ({ pace: v.pace, settleMs: v.settleMs, runs, stepMs: STEP_MS, lost: [...v.lost].sort((a, b) => a - b), double: v.double, counted: v.counted, scrapesPerSecond: mean(v.scrapeRates) }));
}

export function formatTable(rows: readonly TailLossRow[]): string {
  const head = ['pace', 'exits after last increment', 'runs', 'scrapes/s', 'items lost: min', 'p50', 'p90', 'max', 'mean', 'lost window p50 ms', 'max ms', 'double-counted runs'];
  const lines = [`| ${head.join(' | ')} |`, `| ${head.map(() => '---').join(' | ')} |`];
  for (const r of rows) {
    const mean = r.lost.reduce((s, x) => s + x, 0) / r.lost.length;
    lines.push(
      `| ${[
        r.pace,
        `${r.settleMs} ms`,
        r.runs,
        r.scrapesPerSecond.toFixed(1),
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
    `Tail loss: jobs of 2.5–3.5 s counting one item every ${STEP_MS} ms, then exiting 0–300 ms after their last increment; real sidecar, vmagent and Prometheus; variants interleaved; load average ${loadavg().map((x) => x.toFixed(1)).join(' ')}`,
    '',
    formatTable(rows),
    '',
    'Expected: what was counted after the last scrape; nothing when the job lives one scrape pace (plus a scrape\'s latency) after its last increment; nothing counted twice.',
  ].join('\n');
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const i = process.argv.indexOf('--runs');
  const runs = i > 0 ? Number(process.argv[i + 1]) : undefined;
  console.log(await run(runs !== undefined && Number.isInteger(runs) && runs > 0 ? { runs } : {}));
}
