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
 */
import { Buffer } from 'node:buffer';
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
  /** Median wall time of one run. */
  readonly ms: number;
  readonly mbPerSecond: number;
  readonly seriesPerSecond: number;
  /** Share of one core it costs at a 1 s scrape interval (ms per run / 1000 ms). */
  readonly cpuAt1s: number;
}

const MIN_RUNS = 20;
const MIN_TIME_MS = 1_000;

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

/** Median milliseconds of `fn`, after warming up, over at least MIN_RUNS runs and MIN_TIME_MS. */
async function time(fn: () => unknown | Promise<unknown>): Promise<number> {
  for (let i = 0; i < 5; i++) await fn();
  const samples: number[] = [];
  const started = performance.now();
  while (samples.length < MIN_RUNS || performance.now() - started < MIN_TIME_MS) {
    const t0 = performance.now();
    await fn();
    samples.push(performance.now() - t0);
  }
  samples.sort((a, b) => a - b);
  return samples[Math.floor(samples.length / 2)] ?? NaN;
}

function row(subject: string, format: ExpositionFormat, series: number, bytes: number, ms: number): ParserBenchRow {
  return {
    subject,
    format,
    series,
    bytes,
    ms,
    mbPerSecond: bytes / 1e6 / (ms / 1000),
    seriesPerSecond: series / (ms / 1000),
    cpuAt1s: ms / 1000,
  };
}

/** What parse-prometheus-text-format read of each body it was given, for the note in run(). */
const thirdRead: string[] = [];

export async function benchParser(): Promise<ParserBenchRow[]> {
  const rows: ParserBenchRow[] = [];
  const third = thirdPartyParser();
  thirdRead.length = 0;
  for (const counterSeries of [10_000, 1_000]) {
    for (const om of [false, true]) {
      const registry = benchRegistry(counterSeries, om);
      const body = await registry.metrics();
      const format = formatFromContentType(registry.contentType);
      const checked = parse(body, { format });
      if (!checked.ok) throw new Error(`the benchmark body does not parse: ${checked.error.message}`);
      const series = checked.families.reduce((n, f) => n + f.samples.length, 0);
      const bytes = Buffer.byteLength(body);
      rows.push(row('jobmetrics parse()', format, series, bytes, await time(() => parse(body, { format }))));
      rows.push(row('prom-client register.metrics()', format, series, bytes, await time(() => registry.metrics())));
      if (third && format === 'prometheus') {
        // Timed on the same body; it may read fewer samples than there are (see the note in run()).
        thirdRead.push(`${series} in the body, ${thirdPartySamples(third.parse(body))} read`);
        rows.push(row(third.name, format, series, bytes, await time(() => third.parse(body))));
      }
    }
  }
  return rows;
}

export function formatTable(rows: readonly ParserBenchRow[]): string {
  const header = ['what', 'format', 'series', 'body', 'ms/run', 'MB/s', 'series/s', 'CPU at 1 s'];
  const lines = rows.map((r) => [
    r.subject,
    r.format === 'openmetrics' ? 'OpenMetrics 1.0' : 'text 0.0.4',
    String(r.series),
    `${(r.bytes / 1e6).toFixed(2)} MB`,
    r.ms.toFixed(2),
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
  const rows = await benchParser();
  const cpu = cpus()[0]?.model ?? 'unknown CPU';
  return [
    `Exposition parser throughput (Node ${process.version}, ${cpu}; median of >= ${MIN_RUNS} runs and >= ${MIN_TIME_MS / 1000} s each)`,
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
  console.log(await run());
}
