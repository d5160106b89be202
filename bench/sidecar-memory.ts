/**
 * Sidecar memory at its limits: the peak RSS of the real sidecar (as deployed, the image's node
 * flags) over a pod's life while its target serves the largest input the sidecar accepts —
 * the most series, the largest body, the most series renamed on every scrape — and a body over
 * the limit, which must be refused while it is read. The peak is the sidecar's own
 * `peakRssMb` (VmHWM of /proc/self/status) from its exit summary, so the final flush counts too.
 * The limits come from shared/sidecar-memory.ts, which derives them from the injected memory
 * limit; every row must stay under that limit with the margin the derivation keeps.
 *
 *   node --import tsx bench/sidecar-memory.ts        every scenario, 15 s pods (~2 min)
 *   import { run } from './sidecar-memory.ts'         the same table as text (for bench/run.ts)
 *
 * The same file is the target's program: `node --import tsx bench/sidecar-memory.ts target <scenario>`.
 */
import { mkdtempSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { freePort, resultWithin, sidecarEnv, startLocalPod } from '../scripts/local-pod.ts';
import { SIDECAR_MEMORY } from '../shared/sidecar-memory.ts';

const THIS_FILE = fileURLToPath(import.meta.url);
const TSX = import.meta.resolve('tsx');

const SCENARIOS = {
  idle: '10 counter series (the floor: the runtime and the sidecar at rest)',
  series: `${SIDECAR_MEMORY.maxSeries} stable counter series (the series limit), values rising every scrape`,
  body: `a valid body of ${SIDECAR_MEMORY.maxBodyBytes} bytes (the body limit): ${SIDECAR_MEMORY.maxSeries} series with long label values`,
  churn: `${SIDECAR_MEMORY.maxSeries} series renamed on every scrape (the store fills, then drops)`,
  oversize: `a body of ${4 * SIDECAR_MEMORY.maxBodyBytes} bytes (4x the limit), refused while read`,
} as const;
export type Scenario = keyof typeof SCENARIOS;

// ---------------------------------------------------------------------------------------------
// The target (the pod's main container)

/** The exposition of `scenario` at scrape number `n`. */
function body(scenario: Scenario, n: number): string {
  const lines: string[] = ['# TYPE jm_bench counter'];
  const series = scenario === 'idle' ? 10 : SIDECAR_MEMORY.maxSeries;
  if (scenario === 'oversize') {
    const line = `jm_bench_total{path="${'x'.repeat(200)}"} 1\n`;
    return lines.join('\n') + '\n' + line.repeat(Math.ceil((4 * SIDECAR_MEMORY.maxBodyBytes) / line.length));
  }
  // `body`: pad each series so the whole body is just under the limit.
  const fixed = `jm_bench_total{path="/api/v1/items/00000",pad=""} ${n}\n`.length;
  // Values grow to 6 digits, 5 more than in `fixed`: 8 bytes of slack per line.
  const pad = scenario === 'body' ? Math.max(0, Math.floor((SIDECAR_MEMORY.maxBodyBytes - 64) / series) - fixed - 8) : 0;
  const padding = 'p'.repeat(pad);
  for (let i = 0; i < series; i++) {
    const id = String(i).padStart(5, '0');
    const path = scenario === 'churn' ? `/api/v1/items/${id}/${n}` : `/api/v1/items/${id}`;
    lines.push(`jm_bench_total{path="${path}",pad="${padding}"} ${n + i}`);
  }
  return lines.join('\n') + '\n';
}

async function target(scenario: Scenario): Promise<void> {
  const port = Number(process.env['PORT']);
  const runMs = Number(process.env['RUN_MS'] ?? 15_000);
  let n = 0;
  const fixed = scenario === 'oversize' ? body(scenario, 0) : undefined;
  const server = createServer((_req, res) => {
    const text = fixed ?? body(scenario, ++n);
    res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4' }).end(text);
  });
  server.listen(port, '127.0.0.1');
  setTimeout(() => process.exit(0), runMs);
}

// ---------------------------------------------------------------------------------------------
// The measurement

export interface MemoryRow {
  readonly scenario: Scenario;
  readonly peakRssMb: number;
  readonly scrapes: number;
  readonly scrapeFailures: number;
  readonly series: number;
  readonly droppedSeries: number;
}

/** One pod of `scenario` for `runMs`: the sidecar's peak RSS and what its summary says. */
export async function measureScenario(scenario: Scenario, dir: string, runMs: number): Promise<MemoryRow> {
  const receiver = createServer((req, res) => {
    req.resume();
    req.on('end', () => res.writeHead(204).end());
  });
  await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', r));
  const receiverPort = (receiver.address() as { port: number }).port;
  const port = await freePort();
  const name = `bench-memory-${scenario}`;
  try {
    const pod = startLocalPod({
      name,
      dir,
      main: { command: process.execPath, args: ['--import', TSX, THIS_FILE, 'target', scenario], env: { PORT: String(port), RUN_MS: String(runMs) } },
      sidecarEnv: sidecarEnv({
        port,
        remoteWriteUrl: `http://127.0.0.1:${receiverPort}/api/v1/write`,
        namespace: 'bench',
        job: 'sidecar-memory',
        pod: name,
        // BENCH_NODE_OPTIONS: V8 flags to try on the sidecar (experiments only).
        extra: { JOBMETRICS_INTERVAL: '1s', JOBMETRICS_PUSH_INTERVAL: '2s', ...(process.env['BENCH_NODE_OPTIONS'] ? { NODE_OPTIONS: process.env['BENCH_NODE_OPTIONS'] } : {}) },
      }),
      sidecarDelayMs: 1_000,
    });
    const result = await resultWithin(pod, runMs + 60_000, name);
    const s = result.summary ?? {};
    const num = (k: string): number => (typeof s[k] === 'number' ? (s[k] as number) : NaN);
    return { scenario, peakRssMb: num('peakRssMb'), scrapes: num('scrapes'), scrapeFailures: num('scrapeFailures'), series: num('series'), droppedSeries: num('droppedSeries') };
  } finally {
    receiver.close();
  }
}

export async function benchSidecarMemory(o: { runMs?: number; progress?: (line: string) => void } = {}): Promise<MemoryRow[]> {
  const runMs = o.runMs ?? 15_000;
  const progress = o.progress ?? ((line: string) => process.stderr.write(line + '\n'));
  const dir = mkdtempSync(join(tmpdir(), 'jobmetrics-bench-memory-'));
  const rows: MemoryRow[] = [];
  const only = process.env['BENCH_SCENARIOS']?.split(',');
  for (const scenario of Object.keys(SCENARIOS) as Scenario[]) {
    if (only !== undefined && !only.includes(scenario)) continue;
    progress(`sidecar-memory: ${scenario} …`);
    rows.push(await measureScenario(scenario, dir, runMs));
  }
  return rows;
}

export function format(rows: readonly MemoryRow[]): string {
  const limitMb = SIDECAR_MEMORY.limitBytes / 2 ** 20;
  const budgetMb = SIDECAR_MEMORY.budgetBytes / 2 ** 20;
  const out = [
    `Sidecar memory at its limits: the real sidecar in a local pod, 1 s scrapes, 2 s pushes; peak RSS = the sidecar's own VmHWM over its life (final flush included). Limits (shared/sidecar-memory.ts): memory ${limitMb} MiB, budget ${budgetMb} MiB, body ${SIDECAR_MEMORY.maxBodyBytes} bytes, ${SIDECAR_MEMORY.maxSeries} series.`,
    '',
    '| input | peak RSS | scrapes (failed) | series kept | samples dropped |',
    '|---|--:|--:|--:|--:|',
    ...rows.map((r) => `| ${SCENARIOS[r.scenario]} | ${r.peakRssMb} MiB | ${r.scrapes} (${r.scrapeFailures}) | ${r.series} | ${r.droppedSeries} |`),
    '',
  ];
  const worst = Math.max(...rows.map((r) => r.peakRssMb));
  out.push(`target peak RSS <= the ${budgetMb} MiB budget (${limitMb} MiB limit less the margin) in every row: ${worst} MiB at most: ${worst * 2 ** 20 <= SIDECAR_MEMORY.budgetBytes ? 'MET' : 'NOT MET'}`);
  return out.join('\n');
}

export async function run(o: { quick?: boolean } = {}): Promise<string> {
  return format(await benchSidecarMemory(o.quick ? { runMs: 8_000 } : {}));
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  if (process.argv[2] === 'target') await target(process.argv[3] as Scenario);
  else {
    console.log(await run());
    process.exit(0);
  }
}
