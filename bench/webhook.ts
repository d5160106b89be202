/**
 * Webhook benchmark: `POST /mutate` of a real Job pod (test/fixtures/pod-cronjob.yaml) under load
 * on loopback, side by side in one run with a bare node:https server that echoes the request body
 * (the floor: TLS, HTTP and the same bytes, no work). Both servers run as child processes pinned
 * to one core (taskset, when present); autocannon drives them from this process.
 *
 * Targets (issue 4): p99 <= 2x the echo's, >= 2 000 reviews/s on one core, RSS <= 100 MB under load.
 *
 *   node --import tsx bench/webhook.ts                # print the table
 *   node --import tsx bench/webhook.ts --write-docs   # and update "## Webhook" in docs/benchmarks.md
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { cpus, loadavg, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parse } from 'yaml';
import { generateCa, issueServingCert } from '../webhook/cert.ts';

const ROOT = fileURLToPath(new URL('../', import.meta.url));

/** The part of autocannon's API used here (it ships no types). */
interface AutocannonResult {
  requests: { total: number };
  non2xx: number;
  errors: number;
  timeouts: number;
}
interface AutocannonInstance {
  on(event: 'response', fn: (client: unknown, status: number, bytes: number, responseTimeMs: number) => void): void;
}
type Autocannon = (opts: Record<string, unknown>, done: (err: Error | null, result: AutocannonResult) => void) => AutocannonInstance;
const autocannon = createRequire(import.meta.url)('autocannon') as Autocannon;

/**
 * Runs autocannon and keeps every response time. autocannon's own histogram holds whole
 * milliseconds, too coarse for sub-millisecond answers; its `response` event has the exact time.
 */
function fire(opts: Record<string, unknown>): Promise<{ result: AutocannonResult; latencies: number[] }> {
  return new Promise((resolve, reject) => {
    const latencies: number[] = [];
    const instance = autocannon(opts, (err, result) => (err ? reject(err) : resolve({ result, latencies })));
    instance.on('response', (_c, status, _b, ms) => {
      if (status >= 200 && status < 300) latencies.push(ms);
    });
  });
}

function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] ?? NaN;
}

export interface WebhookBenchOptions {
  readonly durationS?: number;
  readonly warmupS?: number;
  /** Connections for the saturation run. */
  readonly connections?: number;
  /** Offered load of the fixed-rate run, requests/s, the same for both servers. */
  readonly rate?: number;
}

interface Row {
  readonly name: string;
  readonly scenario: string;
  readonly rps: number;
  readonly p50: number;
  readonly p90: number;
  readonly p99: number;
  readonly max: number;
  readonly non2xx: number;
  readonly errors: number;
  readonly rssIdleMb: number;
  readonly rssMaxMb: number;
}

function rssMb(pid: number): number {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) / 1024 : NaN;
  } catch {
    return NaN;
  }
}

const pinned = (): string[] => (spawnSync('taskset', ['--version']).status === 0 ? ['taskset', '-c', String(cpus().length - 1)] : []);

/**
 * Compiles the project as `npm run build` does, into .cache/ (git-ignored, and inside the project
 * so node_modules resolve), so the webhook runs as shipped: plain node, no tsx loader, whose
 * esbuild alone would add ~100 MB of RSS. tsc emits even if some other part has type errors.
 */
function buildWebhook(): string {
  const outDir = join(ROOT, '.cache/bench-webhook/dist');
  spawnSync(process.execPath, [join(ROOT, 'node_modules/typescript/bin/tsc'), '-p', join(ROOT, 'tsconfig.build.json'), '--outDir', outDir], { cwd: ROOT, stdio: 'ignore' });
  const main = join(outDir, 'webhook/main.js');
  if (!existsSync(main)) throw new Error(`building the webhook into ${outDir} failed: ${main} missing`);
  return main;
}

/** The floor, as plain JavaScript: TLS, HTTP, read the body, send it back. */
const ECHO_SOURCE = `
import { createServer } from 'node:https';
import { readFileSync } from 'node:fs';
const dir = process.env.TLS_DIR;
const server = createServer({ cert: readFileSync(dir + '/tls.crt'), key: readFileSync(dir + '/tls.key') }, (req, res) => {
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => res.writeHead(200, { 'content-type': 'application/json' }).end(Buffer.concat(chunks)));
});
server.keepAliveTimeout = 120000;
server.listen(0, '127.0.0.1', () => console.log('echo listening ' + server.address().port));
`;

/** Starts a child and resolves with its port once it logs it. */
function startChild(argv: string[], env: Record<string, string>, portFrom: (line: string) => number | undefined): Promise<{ proc: ChildProcess; port: number }> {
  const [cmd, ...args] = [...pinned(), process.execPath, ...argv];
  return new Promise((resolve, reject) => {
    const proc = spawn(cmd!, args, { cwd: ROOT, env: { PATH: process.env['PATH'] ?? '', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let buf = '';
    const seen: string[] = [];
    const onData = (chunk: Buffer): void => {
      buf += chunk.toString('utf8');
      let nl;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        if (seen.length < 50) seen.push(line);
        const port = portFrom(line);
        if (port !== undefined) resolve({ proc, port });
      }
    };
    // Keep draining: a full pipe would block the child's logging and skew the numbers.
    proc.stdout!.on('data', onData);
    proc.stderr!.on('data', onData);
    proc.on('exit', (code) => reject(new Error(`${argv.join(' ')} exited with ${code}:\n${seen.join('\n')}`)));
  });
}

async function load(name: string, scenario: 'saturation' | 'fixed rate', pid: number, port: number, body: string, o: Required<WebhookBenchOptions>): Promise<Row> {
  const common = {
    url: `https://127.0.0.1:${port}/mutate`,
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body,
    pipelining: 1,
    ...(scenario === 'saturation' ? { connections: o.connections } : { connections: 4, overallRate: o.rate }),
  };
  await fire({ ...common, duration: o.warmupS });
  const rssIdleMb = rssMb(pid);
  let rssMaxMb = rssIdleMb;
  const sampler = setInterval(() => {
    rssMaxMb = Math.max(rssMaxMb, rssMb(pid));
  }, 200);
  const { result: r, latencies } = await fire({ ...common, duration: o.durationS });
  clearInterval(sampler);
  latencies.sort((a, b) => a - b);
  return {
    name,
    scenario: scenario === 'saturation' ? `saturation, ${o.connections} conns` : `${o.rate} req/s, 4 conns`,
    rps: r.requests.total / o.durationS,
    p50: percentile(latencies, 50),
    p90: percentile(latencies, 90),
    p99: percentile(latencies, 99),
    max: latencies.at(-1) ?? NaN,
    non2xx: r.non2xx,
    errors: r.errors + r.timeouts,
    rssIdleMb,
    rssMaxMb,
  };
}

export async function benchWebhook(opts: WebhookBenchOptions = {}): Promise<Row[]> {
  const o: Required<WebhookBenchOptions> = {
    durationS: opts.durationS ?? 10,
    warmupS: opts.warmupS ?? 3,
    connections: opts.connections ?? 10,
    rate: opts.rate ?? 500,
  };
  const dir = mkdtempSync(join(tmpdir(), 'jobmetrics-bench-webhook-'));
  const children: ChildProcess[] = [];
  try {
    const now = new Date();
    const ca = generateCa({ commonName: 'bench-ca', now, validityDays: 1 });
    const serving = issueServingCert(ca, { dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'], now, validityDays: 1 });
    writeFileSync(join(dir, 'tls.crt'), serving.certPem);
    writeFileSync(join(dir, 'tls.key'), serving.keyPem);
    const pod = parse(readFileSync(join(ROOT, 'test/fixtures/pod-cronjob.yaml'), 'utf8')) as unknown;
    const body = JSON.stringify({
      apiVersion: 'admission.k8s.io/v1',
      kind: 'AdmissionReview',
      request: {
        uid: '0d3e1b0c-bench',
        kind: { group: '', version: 'v1', kind: 'Pod' },
        resource: { group: '', version: 'v1', resource: 'pods' },
        namespace: 'reports',
        operation: 'CREATE',
        userInfo: { username: 'system:serviceaccount:kube-system:job-controller' },
        object: pod,
        oldObject: null,
        dryRun: false,
      },
    });

    const echo = await startChild(['--input-type=module', '-e', ECHO_SOURCE], { TLS_DIR: dir }, (l) => {
      const m = /^echo listening (\d+)$/.exec(l);
      return m ? Number(m[1]) : undefined;
    });
    children.push(echo.proc);
    const webhook = await startChild([buildWebhook()], { JOBMETRICS_TLS_DIR: dir, JOBMETRICS_LISTEN: '127.0.0.1:0', JOBMETRICS_SIDECAR_MODE: 'native' }, (l) => {
      const m = /"msg":"listening","address":"[^"]*:(\d+)"/.exec(l);
      return m ? Number(m[1]) : undefined;
    });
    children.push(webhook.proc);

    const rows: Row[] = [];
    for (const scenario of ['saturation', 'fixed rate'] as const) {
      rows.push(await load('bare https echo', scenario, echo.proc.pid!, echo.port, body, o));
      rows.push(await load('webhook /mutate', scenario, webhook.proc.pid!, webhook.port, body, o));
    }
    return rows;
  } finally {
    for (const c of children) c.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  }
}

function formatTable(rows: readonly Row[]): string {
  const ms = (v: number): string => v.toFixed(3);
  const head = ['load', 'server', 'req/s', 'p50 ms', 'p90 ms', 'p99 ms', 'max ms', 'non-2xx', 'errors', 'RSS before MB', 'RSS max MB'];
  const body = rows.map((r) => [r.scenario, r.name, r.rps.toFixed(0), ms(r.p50), ms(r.p90), ms(r.p99), ms(r.max), String(r.non2xx), String(r.errors), r.rssIdleMb.toFixed(1), r.rssMaxMb.toFixed(1)]);
  return [head, head.map(() => '---'), ...body].map((cells) => `| ${cells.join(' | ')} |`).join('\n');
}

export function machine(): string {
  const cpu = cpus();
  return `${cpu[0]?.model ?? 'unknown CPU'}, ${cpu.length} cores (shared with other work), ${(totalmem() / 2 ** 30).toFixed(1)} GiB, Node ${process.version}, ${process.platform}/${process.arch}; load average at the end ${loadavg().map((l) => l.toFixed(1)).join(' ')} (other work on the machine makes tails noisy)`;
}

export async function run(opts: WebhookBenchOptions = {}): Promise<string> {
  const rows = await benchWebhook(opts);
  const [satEcho, satWh, rateEcho, rateWh] = rows as [Row, Row, Row, Row];
  const met = (ok: boolean): string => (ok ? 'MET' : 'NOT MET');
  const x = (a: number, b: number): string => `${(a / b).toFixed(2)}x`;
  const pin = pinned().length > 0 ? `both servers pinned to CPU ${cpus().length - 1} (taskset), autocannon on the other` : 'servers not pinned (no taskset)';
  const rssMax = Math.max(satWh.rssMaxMb, rateWh.rssMaxMb);
  const podKb = (JSON.stringify(parse(readFileSync(join(ROOT, 'test/fixtures/pod-cronjob.yaml'), 'utf8'))).length / 1024).toFixed(1);
  return [
    `POST /mutate of a CronJob Job pod (test/fixtures/pod-cronjob.yaml, ${podKb} KiB as JSON; answer: the native-sidecar patch), ` +
      `${opts.durationS ?? 10} s per run after a ${opts.warmupS ?? 3} s warm-up, TLS 1.3 with keep-alive on loopback, ${pin}. ` +
      `Webhook as built (plain node), log level info (one JSON line per review). Latencies from every response, not autocannon's whole-millisecond histogram.`,
    `Machine: ${machine()}.`,
    '',
    formatTable(rows),
    '',
    `ratios webhook / echo: saturation throughput ${x(satWh.rps, satEcho.rps)}, p99 ${x(satWh.p99, satEcho.p99)}; ` +
      `at ${opts.rate ?? 500} req/s p50 ${x(rateWh.p50, rateEcho.p50)}, p99 ${x(rateWh.p99, rateEcho.p99)}`,
    `target p99 <= 2x the echo's at the same offered load: ${x(rateWh.p99, rateEcho.p99)}: ${met(rateWh.p99 <= 2 * rateEcho.p99)}`,
    `target >= 2 000 reviews/s on one core: ${satWh.rps.toFixed(0)}/s: ${met(satWh.rps >= 2000)}`,
    `target RSS <= 100 MB under load: ${rssMax.toFixed(1)} MB: ${met(rssMax <= 100)}`,
    `every answer 2xx: ${met([satWh, rateWh].every((r) => r.non2xx === 0 && r.errors === 0))}`,
  ].join('\n');
}

/** Replaces (or appends) the "## Webhook" section of docs/benchmarks.md; other sections are left as they are. */
export function writeDocsSection(result: string): void {
  const path = join(ROOT, 'docs/benchmarks.md');
  const section = `## Webhook\n\n\`node --import tsx bench/webhook.ts --write-docs\` (${new Date().toISOString().slice(0, 10)}).\n\n${result}\n`;
  if (!existsSync(path)) {
    writeFileSync(path, `# Benchmarks\n\nMeasured on the project's own machine; each section says how to rerun it.\n\n${section}`);
    return;
  }
  const text = readFileSync(path, 'utf8');
  const start = text.search(/^## Webhook\s*$/m);
  if (start < 0) {
    writeFileSync(path, `${text.trimEnd()}\n\n${section}`);
    return;
  }
  const rest = text.slice(start + 1);
  const next = rest.search(/^## /m);
  const end = next < 0 ? text.length : start + 1 + next;
  writeFileSync(path, `${text.slice(0, start)}${section}${next < 0 ? '' : '\n' + text.slice(end)}`);
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const result = await run();
  console.log(result);
  if (process.argv.includes('--write-docs')) writeDocsSection(result);
}
