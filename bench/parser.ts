/**
 * Parser throughput: MB/s and series/s of `shared/exposition/parse.ts` on prom-client bodies of
 * 10 000 and 1 000 series, next to prom-client's own serializer (`register.metrics()`) for the same
 * data as the reference for size and speed.
 *
 * No maintained third-party JavaScript parser was found. The most used one on npm,
 * `parse-prometheus-text-format` 1.1.1 (last built 2019, text 0.0.4 only, values left as
 * strings), is not a dependency of the project; when it can be resolved from BENCH_EXTRA_MODULES
 * (a folder holding a node_modules, or the project itself) it is measured on the text bodies as
 * a reference:
 *
 *   npm install --prefix /tmp/jobmetrics-bench-extra parse-prometheus-text-format@1.1.1
 *   BENCH_EXTRA_MODULES=/tmp/jobmetrics-bench-extra node --import tsx bench/parser.ts
 *
 *   node --import tsx bench/parser.ts        prints the table
 *   import { run } from './parser.ts'        returns the same table as text (for bench/run.ts)
 *
 * Every row is measured in a fresh child process, ROUNDS times, the rows taking turns (round 1
 * runs rows A B C …, round 2 starts one row later, …). Timed one after the other in one process,
 * the rows measured the machine as much as the code: the first row ran while the process was
 * still compiling and sizing its heap, every later one inherited the garbage of the rows before
 * it, and a minute of load from another process on this 2-core machine landed on whichever row
 * was running then. Single runs of a 10 000-series parse are bimodal (about 5.7 ms, 7–9 ms for
 * the one in five that includes a young-generation collection, more of them when other rows'
 * garbage shares the heap), so a median of single runs jumped between the two modes from one
 * run to the next; each round's figure is therefore the mean over its whole window, which
 * charges every run its share of the collections it causes — what a scrape really costs.
 */
import { Buffer } from 'node:buffer';
import { execFileSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath, pathToFileURL } from 'node:url';
import client, { type Registry, type RegistryContentType } from 'prom-client';
import { formatFromContentType } from '../shared/exposition/negotiate.ts';
import { parse } from '../shared/exposition/parse.ts';
import type { ExpositionFormat } from '../shared/exposition/types.ts';

export interface ParserBenchRow {
  /** What was timed. */
  readonly subject: string;
  readonly format: ExpositionFormat;
  readonly series: number;
  readonly bytes: number;
  /** Median over the rounds of each round's mean wall time per run. */
  readonly ms: number;
  /** Lowest and highest of the rounds' means: how far one measurement can be off. */
  readonly msMin: number;
  readonly msMax: number;
  readonly mbPerSecond: number;
  readonly seriesPerSecond: number;
  /**
   * Share of one core it costs at a 1 s scrape interval: the process's CPU time per run (the
   * collector's and compiler's threads included; median over the rounds) / 1000 ms. Unlike wall
   * time it does not grow when another process takes the core.
   */
  readonly cpuAt1s: number;
}

const MIN_RUNS = 20;
const MIN_TIME_MS = 1_000;
/** Runs before timing, in each child: parse() reaches its optimized code after ~5 runs of 10 000 series. */
const WARMUP_RUNS = 10;
const WARMUP_MS = 300;
/** Fresh processes per row; the table gives their median and spread. */
const ROUNDS = 3;
/** How bench/parser.ts is started as the child that measures one row. */
const CHILD_FLAG = '--measure-row';

/**
 * A job-like registry: a counter with `counterSeries` label combinations and a histogram with 20
 * label values × (11 default buckets + `+Inf` + `_sum` + `_count`) = 280 series.
 */
function benchRegistry(counterSeries: number, om: boolean): Registry<RegistryContentType> {
  const registry: Registry<RegistryContentType> = new client.Registry<RegistryContentType>();
  if (om) registry.setContentType(client.Registry.OPENMETRICS_CONTENT_TYPE);
  const items = new client.Counter({
    name: 'bench_items_processed_total',
    help: 'Work items processed by the job.',
    labelNames: ['worker', 'queue', 'status'],
    registers: [registry],
  });
  for (let i = 0; i < counterSeries; i++) {
    items.inc({ worker: `worker-${i % 100}`, queue: `queue-${Math.floor(i / 100)}`, status: i % 7 === 0 ? 'failed' : 'ok' }, i * 3 + 1);
  }
  const duration = new client.Histogram({
    name: 'bench_item_duration_seconds',
    help: 'Time to process one item.',
    labelNames: ['kind'],
    registers: [registry],
  });
  for (let k = 0; k < 20; k++) {
    for (let j = 0; j < 50; j++) duration.observe({ kind: `kind-${k}` }, (j * 37) % 1000 / 100);
  }
  return registry;
}

type ThirdPartyParse = (
  text: string,
) => Array<{ metrics: Array<{ value?: string; buckets?: Record<string, string>; quantiles?: Record<string, string>; sum?: string; count?: string }> }>;

/** parse-prometheus-text-format, when it can be resolved (see the header); undefined otherwise. */
function thirdPartyParser(): { name: string; parse: ThirdPartyParse } | undefined {
  const roots = [process.env['BENCH_EXTRA_MODULES'], fileURLToPath(new URL('..', import.meta.url))].filter((r): r is string => !!r);
  for (const root of roots) {
    try {
      const req = createRequire(join(root, 'package.json'));
      const parse = req('parse-prometheus-text-format') as ThirdPartyParse;
      const version = (req('parse-prometheus-text-format/package.json') as { version: string }).version;
      return { name: `parse-prometheus-text-format ${version}`, parse };
    } catch {
      // not installed there
    }
  }
  return undefined;
}

/** Samples in parse-prometheus-text-format's output: histograms and summaries are folded into one object. */
function thirdPartySamples(families: ReturnType<ThirdPartyParse>): number {
  let n = 0;
  for (const f of families) {
    for (const m of f.metrics) {
      if (m.value !== undefined) n += 1;
      n += Object.keys(m.buckets ?? {}).length + Object.keys(m.quantiles ?? {}).length;
      if (m.sum !== undefined) n += 1;
      if (m.count !== undefined) n += 1;
    }
  }
  return n;
}

/**
 * Mean milliseconds per run of `fn` over at least MIN_RUNS runs and MIN_TIME_MS, after
 * WARMUP_RUNS and WARMUP_MS of warm-up. The mean, not the median: see the header.
 */
async function time(fn: () => unknown | Promise<unknown>): Promise<{ ms: number; cpuMs: number }> {
  const warmStarted = performance.now();
  for (let i = 0; i < WARMUP_RUNS || performance.now() - warmStarted < WARMUP_MS; i++) await fn();
  let runs = 0;
  const cpuStarted = process.cpuUsage();
  const started = performance.now();
  let elapsed = 0;
  while (runs < MIN_RUNS || elapsed < MIN_TIME_MS) {
    await fn();
    runs++;
    elapsed = performance.now() - started;
  }
  const cpu = process.cpuUsage(cpuStarted);
  return { ms: elapsed / runs, cpuMs: (cpu.user + cpu.system) / 1000 / runs };
}

const median = (values: readonly number[]): number => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)] ?? NaN;

function row(subject: string, format: ExpositionFormat, series: number, bytes: number, rounds: readonly Measured[]): ParserBenchRow {
  const sorted = rounds.map((m) => m.ms).sort((a, b) => a - b);
  const ms = median(sorted);
  return {
    subject,
    format,
    series,
    bytes,
    ms,
    msMin: sorted[0] ?? NaN,
    msMax: sorted.at(-1) ?? NaN,
    mbPerSecond: bytes / 1e6 / (ms / 1000),
    seriesPerSecond: series / (ms / 1000),
    cpuAt1s: median(rounds.map((m) => m.cpuMs)) / 1000,
  };
}

type Subject = 'parse' | 'prom-client' | 'third-party';

/** One row of the table: what is timed on which body. */
interface RowSpec {
  readonly counterSeries: number;
  readonly om: boolean;
  readonly subject: Subject;
}

/** What a child reports for its row. */
interface Measured {
  readonly subject: string;
  readonly format: ExpositionFormat;
  readonly series: number;
  readonly bytes: number;
  readonly ms: number;
  /** Process CPU time per run over the same window. */
  readonly cpuMs: number;
  /** Samples parse-prometheus-text-format read of the body (third-party rows only). */
  readonly thirdRead?: number;
}

function rowSpecs(third: boolean): RowSpec[] {
  const specs: RowSpec[] = [];
  for (const counterSeries of [10_000, 1_000]) {
    for (const om of [false, true]) {
      specs.push({ counterSeries, om, subject: 'parse' }, { counterSeries, om, subject: 'prom-client' });
      if (third && !om) specs.push({ counterSeries, om, subject: 'third-party' });
    }
  }
  return specs;
}

/** Measures one row in this process (the child's side). */
async function measureRow(spec: RowSpec): Promise<Measured> {
  const registry = benchRegistry(spec.counterSeries, spec.om);
  const body = await registry.metrics();
  const format = formatFromContentType(registry.contentType);
  const checked = parse(body, { format });
  if (!checked.ok) throw new Error(`the benchmark body does not parse: ${checked.error.message}`);
  const series = checked.families.reduce((n, f) => n + f.samples.length, 0);
  const bytes = Buffer.byteLength(body);
  const base = { format, series, bytes };
  switch (spec.subject) {
    case 'parse':
      return { ...base, subject: 'jobmetrics parse()', ...(await time(() => parse(body, { format }))) };
    case 'prom-client':
      return { ...base, subject: 'prom-client register.metrics()', ...(await time(() => registry.metrics())) };
    case 'third-party': {
      const third = thirdPartyParser();
      if (third === undefined) throw new Error('parse-prometheus-text-format cannot be resolved');
      // Timed on the same body; it may read fewer samples than there are (see the note in run()).
      const thirdRead = thirdPartySamples(third.parse(body));
      return { ...base, subject: third.name, ...(await time(() => third.parse(body))), thirdRead };
    }
  }
}

/** Measures one row in a fresh process, started as the current one was (`--import tsx`). */
function measureInChild(spec: RowSpec): Measured {
  const script = fileURLToPath(import.meta.url);
  const out = execFileSync(process.execPath, [...process.execArgv, script, CHILD_FLAG, JSON.stringify(spec)], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  return JSON.parse(out.trim().split('\n').at(-1) ?? '') as Measured;
}

/** What parse-prometheus-text-format read of each body it was given, for the note in run(). */
const thirdRead: string[] = [];

export async function benchParser(progress: (line: string) => void = () => {}): Promise<ParserBenchRow[]> {
  const specs = rowSpecs(thirdPartyParser() !== undefined);
  const results: Measured[][] = specs.map(() => []);
  for (let round = 0; round < ROUNDS; round++) {
    // Each round starts one row later, so no row is always the one after the same neighbour.
    for (let k = 0; k < specs.length; k++) {
      const i = (k + round) % specs.length;
      const spec = specs[i] as RowSpec;
      const m = measureInChild(spec);
      (results[i] as Measured[]).push(m);
      progress(`bench: parser: round ${round + 1}/${ROUNDS} ${m.subject}, ${m.format}, ${m.series} series: ${m.ms.toFixed(2)} ms/run`);
    }
  }
  thirdRead.length = 0;
  return results.map((rounds) => {
    const first = rounds[0] as Measured;
    if (first.thirdRead !== undefined) thirdRead.push(`${first.series} in the body, ${first.thirdRead} read`);
    return row(first.subject, first.format, first.series, first.bytes, rounds);
  });
}

export function formatTable(rows: readonly ParserBenchRow[]): string {
  const header = ['what', 'format', 'series', 'body', 'ms/run', `${ROUNDS} rounds`, 'MB/s', 'series/s', 'CPU at 1 s'];
  const lines = rows.map((r) => [
    r.subject,
    r.format === 'openmetrics' ? 'OpenMetrics 1.0' : 'text 0.0.4',
    String(r.series),
    `${(r.bytes / 1e6).toFixed(2)} MB`,
    r.ms.toFixed(2),
    `${r.msMin.toFixed(2)}–${r.msMax.toFixed(2)}`,
    r.mbPerSecond.toFixed(0),
    `${(r.seriesPerSecond / 1e6).toFixed(2)} M`,
    `${(r.cpuAt1s * 100).toFixed(2)} %`,
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...lines.map((l) => (l[i] ?? '').length)));
  const fmt = (cells: readonly string[]) => `| ${cells.map((c, i) => (i < 2 ? c.padEnd(widths[i] ?? 0) : c.padStart(widths[i] ?? 0))).join(' | ')} |`;
  const rule = `|${widths.map((w, i) => (i < 2 ? `:${'-'.repeat(w + 1)}` : `${'-'.repeat(w + 1)}:`)).join('|')}|`;
  return [fmt(header), rule, ...lines.map(fmt)].join('\n');
}

/** The table as text, with what it ran on. */
export async function run(): Promise<string> {
  const rows = await benchParser((line) => void process.stderr.write(`${line}\n`));
  const cpu = cpus()[0]?.model ?? 'unknown CPU';
  return [
    `Exposition parser throughput (Node ${process.version}, ${cpu}; each row in its own process, ${ROUNDS} rounds taking turns; ` +
      `ms/run: median of the rounds' means over >= ${MIN_RUNS} runs and >= ${MIN_TIME_MS / 1000} s after >= ${WARMUP_MS} ms of warm-up; ` +
      `"${ROUNDS} rounds": lowest and highest of those means; CPU at 1 s: the process's CPU time per run, collector threads included, / 1 s)`,
    '',
    formatTable(rows),
    '',
    '"series" counts samples (one per series). prom-client\'s serializer writes the same body: the reference for its size and speed.',
    thirdPartyParser()
      ? 'parse-prometheus-text-format (npm 1.1.1, unmaintained since 2019, text 0.0.4 only, values kept as strings) is the most used JS parser; no maintained one was found. ' +
        `It is not a correct reference: of prom-client's labelled histogram it keeps only one label set's buckets, without _sum and _count (samples: ${thirdRead.join('; ')}).`
      : 'No maintained third-party JS parser was found; parse-prometheus-text-format 1.1.1 (unmaintained) is measured when BENCH_EXTRA_MODULES points at an install of it (see bench/parser.ts).',
  ].join('\n');
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const at = process.argv.indexOf(CHILD_FLAG);
  if (at >= 0) console.log(JSON.stringify(await measureRow(JSON.parse(process.argv[at + 1] ?? '') as RowSpec)));
  else console.log(await run());
}
