/**
 * Webhook benchmark: `POST /mutate` of a real Job pod (test/fixtures/pod-cronjob.yaml) under load
 * on loopback, side by side in one run with a bare node:https server that echoes the request body
 * (the floor: TLS, HTTP and the same bytes, no work).
 *
 * What runs:
 * - the webhook **as deployed**: the built JavaScript (as `npm run build` makes it, plain node),
 *   with the `NODE_OPTIONS` of the webhook container in manifests/base/webhook-deployment.yaml,
 *   its default settings (log level info: one JSON line per review, on a pipe this process
 *   drains), TLS from files, and API access through a kubeconfig with a token (what the
 *   service account gives in a cluster) to a fake API server on loopback, so that, as in a
 *   cluster, the API client is loaded, the mode comes from the API server's version and the Job
 *   owner lookup runs (cached per Job: one GET in all);
 * - the echo: the same certificate and TLS options (TLS 1.3 negotiated), the same keep-alive
 *   timeout, a Content-Length answer like the webhook's; plain node, no flags;
 * - both pinned to the last CPU (taskset); this process, which generates the load, to the others.
 *
 * Load, each for both servers (alternating rounds, so a change in the machine's load hits both):
 * - saturation: autocannon, 10 keep-alive connections, each sends its next request when the last
 *   is answered (closed loop): the most the server answers per second;
 * - fixed offered load (500 and 2 000 requests/s): requests start on a fixed schedule (every 1-ms
 *   timer tick sends those that are due) over a pool of up to 16 keep-alive connections, whether
 *   or not the earlier ones have been answered (open loop); a request's latency runs from the
 *   moment it is sent, so waiting for a free connection counts. (autocannon's own rate limit is
 *   not used: it sends each second's quota back to back and then pauses, which measures queueing
 *   in a burst rather than latency at that load.)
 * Latencies are taken from every answer (high resolution). CPU is the server process's
 * user+system time (all threads) per answer, from /proc. RSS is sampled every 100 ms.
 *
 * Targets (docs/benchmarks.md): p99 <= 2x the echo's at the same offered load, >= 2 000 reviews/s on one
 * core, RSS <= 100 MB under load.
 *
 *   node --import tsx bench/webhook.ts                # print the table
 *   node --import tsx bench/webhook.ts --write-docs   # and update the block in "## Webhook" of docs/benchmarks.md
 *   node --import tsx bench/webhook.ts --express-only # express's own cost, with and without expressHttpClasses (below)
 *
 * To compare builds or flags: BENCH_WEBHOOK_MAIN=/path/to/dist/webhook/main.js (a build of another
 * commit, inside the project so node_modules resolve) and BENCH_WEBHOOK_NODE_OPTIONS='…' (instead of
 * the Deployment's; '' for none). The report says what ran.
 *
 * `--express-only`: what express itself costs and what `expressHttpClasses` (webhook/server.ts)
 * saves, without the review: three servers answer the same POST at saturation, each echoing the
 * body — the bare node:https echo, express (`express.raw`, then `res.send` of the body) as it
 * comes, and the same express app given node:https request/response classes whose prototypes are
 * express's (`expressHttpClasses`, as the webhook does). NODE_OPTIONS as deployed for both express
 * servers; CPU µs per answer above the echo's is express's own cost.
 *
 * Run it under the benchmark lock: `flock /tmp/jobmetrics-bench.lock node --import tsx bench/webhook.ts`.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import { Agent, request } from 'node:https';
import { createRequire } from 'node:module';
import type { AddressInfo } from 'node:net';
import { cpus, loadavg, tmpdir, totalmem } from 'node:os';
import { join, relative } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parse, parseAllDocuments } from 'yaml';
import { generateCa, issueServingCert } from '../webhook/cert.ts';
import { asMarkdown, BENCHMARKS_DOC, writeDocsBlock } from './docs-blocks.ts';

const ROOT = fileURLToPath(new URL('../', import.meta.url));
const DEPLOYMENT = join(ROOT, 'manifests/base/webhook-deployment.yaml');

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

export interface WebhookBenchOptions {
  /** Measured seconds per server and scenario (split over the rounds). */
  readonly durationS?: number;
  readonly warmupS?: number;
  /** Connections of the saturation run. */
  readonly connections?: number;
  /** Offered loads of the fixed-rate runs, requests/s, the same for both servers. */
  readonly rates?: readonly number[];
  /** Each scenario alternates echo and webhook this many times. */
  readonly rounds?: number;
}

interface Sample {
  answered: number;
  non2xx: number;
  errors: number;
  latencies: number[];
  cpuS: number;
  rssMaxMb: number;
  seconds: number;
  /** Fixed load only: connections the pool opened, and how late the schedule ran at worst. */
  connections?: number;
  maxLagMs?: number;
}

interface Row {
  readonly server: string;
  readonly scenario: string;
  readonly rps: number;
  readonly p50: number;
  readonly p90: number;
  readonly p99: number;
  readonly p999: number;
  readonly max: number;
  readonly cpuUsPerAnswer: number;
  readonly non2xx: number;
  readonly errors: number;
  readonly rssMaxMb: number;
  readonly connections: number | undefined;
  readonly maxLagMs: number | undefined;
}

function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] ?? NaN;
}

function rssMb(pid: number): number {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) / 1024 : NaN;
  } catch {
    return NaN;
  }
}

/** user + system CPU seconds of a process, all its threads (/proc/PID/stat fields 14 and 15). */
function cpuSeconds(pid: number): number {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.split(' ') ?? [];
    return (Number(fields[11]) + Number(fields[12])) / 100;
  } catch {
    return NaN;
  }
}

const hasTaskset = (): boolean => spawnSync('taskset', ['--version']).status === 0;
const serverCpu = (): number => cpus().length - 1;

/**
 * Pins this process (every thread: the load generators, the fake API server) to the CPUs the
 * servers do not use. Returns what it did, for the report.
 */
function pinSelf(): string {
  if (!hasTaskset() || cpus().length < 2) return 'not pinned';
  const others = cpus().length === 2 ? '0' : `0-${cpus().length - 2}`;
  const r = spawnSync('taskset', ['-a', '-p', '-c', others, String(process.pid)], { stdio: 'ignore' });
  return r.status === 0 ? `CPU ${others}` : 'not pinned';
}

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

/** NODE_OPTIONS of the webhook container in the shipped Deployment ('' when it sets none). */
export function deployedNodeOptions(): string {
  for (const doc of parseAllDocuments(readFileSync(DEPLOYMENT, 'utf8'))) {
    const o = doc.toJS() as { kind?: string; spec?: { template?: { spec?: { containers?: { name?: string; env?: { name?: string; value?: string }[] }[] } } } };
    if (o?.kind !== 'Deployment') continue;
    const c = o.spec?.template?.spec?.containers?.find((x) => x.name === 'webhook');
    return c?.env?.find((e) => e.name === 'NODE_OPTIONS')?.value ?? '';
  }
  return '';
}

/** The floor, as plain JavaScript: TLS, HTTP, read the body, send it back. */
const ECHO_SOURCE = `
import { createServer } from 'node:https';
import { readFileSync } from 'node:fs';
const dir = process.env.TLS_DIR;
// The webhook's TLS options (webhook/server.ts), keep-alive timeout and default request timeouts.
const server = createServer({ cert: readFileSync(dir + '/tls.crt'), key: readFileSync(dir + '/tls.key'), minVersion: 'TLSv1.2' }, (req, res) => {
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => {
    const body = Buffer.concat(chunks);
    res.writeHead(200, { 'content-type': 'application/json; charset=utf-8', 'content-length': body.length }).end(body);
  });
});
server.keepAliveTimeout = 120000;
server.headersTimeout = 5000;
server.requestTimeout = 10000;
server.listen(0, '127.0.0.1', () => console.log('echo listening ' + server.address().port));
`;

/** Starts a child pinned to the servers' CPU and resolves with its port once it logs it. */
function startChild(argv: string[], env: Record<string, string>, portFrom: (line: string) => number | undefined): Promise<{ proc: ChildProcess; port: number }> {
  const pin = hasTaskset() ? ['taskset', '-c', String(serverCpu())] : [];
  const [cmd, ...args] = [...pin, process.execPath, ...argv];
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

/**
 * A stand-in for the API server, over plain HTTP on loopback: `/version` (1.31, so native
 * sidecars) and GET of a Job, owned by the CronJob `nightly-report`. Counts the calls.
 */
async function fakeApi(): Promise<{ server: HttpServer; port: number; calls: () => number }> {
  let calls = 0;
  const server = createHttpServer((req, res) => {
    calls++;
    res.setHeader('content-type', 'application/json');
    if (req.url === '/version') {
      res.end(JSON.stringify({ major: '1', minor: '31', gitVersion: 'v1.31.4', platform: 'linux/amd64' }));
      return;
    }
    const job = /^\/apis\/batch\/v1\/namespaces\/([^/]+)\/jobs\/([^/?]+)/.exec(req.url ?? '');
    if (req.method === 'GET' && job) {
      res.end(
        JSON.stringify({
          apiVersion: 'batch/v1',
          kind: 'Job',
          metadata: {
            name: job[2],
            namespace: job[1],
            uid: '9c1d7a52-3b1e-4f55-9a57-1f0e3f1c2a10',
            ownerReferences: [{ apiVersion: 'batch/v1', kind: 'CronJob', name: 'nightly-report', uid: '3f0c1b8e-0000-4000-8000-000000000001', controller: true }],
          },
        }),
      );
      return;
    }
    res.statusCode = 404;
    res.end(JSON.stringify({ kind: 'Status', apiVersion: 'v1', status: 'Failure', reason: 'NotFound', code: 404 }));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { server, port: (server.address() as AddressInfo).port, calls: () => calls };
}

/** Watches a server process while `load` runs: CPU seconds used and the highest RSS. */
async function watched(pid: number, load: () => Promise<Omit<Sample, 'cpuS' | 'rssMaxMb' | 'seconds'>>): Promise<Sample> {
  const cpu0 = cpuSeconds(pid);
  const t0 = performance.now();
  let rssMaxMb = rssMb(pid);
  const sampler = setInterval(() => {
    rssMaxMb = Math.max(rssMaxMb, rssMb(pid));
  }, 100);
  try {
    const r = await load();
    return { ...r, cpuS: cpuSeconds(pid) - cpu0, rssMaxMb: Math.max(rssMaxMb, rssMb(pid)), seconds: (performance.now() - t0) / 1000 };
  } finally {
    clearInterval(sampler);
  }
}

/** Closed loop: autocannon with `connections` keep-alive connections. */
function saturate(port: number, body: string, connections: number, seconds: number): Promise<Omit<Sample, 'cpuS' | 'rssMaxMb' | 'seconds'>> {
  return new Promise((resolve, reject) => {
    const latencies: number[] = [];
    const instance = autocannon(
      {
        url: `https://127.0.0.1:${port}/mutate`,
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body,
        connections,
        pipelining: 1,
        duration: seconds,
      },
      (err, r) => (err ? reject(err) : resolve({ answered: r.requests.total, non2xx: r.non2xx, errors: r.errors + r.timeouts, latencies })),
    );
    // autocannon's own histogram holds whole milliseconds; the event has the exact time.
    instance.on('response', (_c, status, _b, ms) => {
      if (status >= 200 && status < 300) latencies.push(ms);
    });
  });
}

/**
 * Open loop at `rate` requests/s: every 1-ms tick sends the requests that are due by then, over
 * `agent`'s keep-alive connections. Latency from the send to the end of the answer.
 */
function paced(port: number, body: string, agent: Agent, sockets: WeakSet<object>, rate: number, seconds: number): Promise<Omit<Sample, 'cpuS' | 'rssMaxMb' | 'seconds'>> {
  const latencies: number[] = [];
  const length = Buffer.byteLength(body);
  let sent = 0;
  let finished = 0;
  let non2xx = 0;
  let errors = 0;
  let opened = 0;
  let maxLagMs = 0;
  return new Promise((resolve) => {
    let stopped = false;
    let settled = false;
    const settle = (): void => {
      if (settled) return;
      settled = true;
      resolve({ answered: latencies.length + non2xx, non2xx, errors: errors + (sent - finished), latencies, connections: opened, maxLagMs });
    };
    const done = (): void => {
      finished++;
      if (stopped && finished === sent) settle();
    };
    const send = (): void => {
      sent++;
      const start = performance.now();
      const req = request(
        { host: '127.0.0.1', port, path: '/mutate', method: 'POST', agent, headers: { 'content-type': 'application/json', 'content-length': length } },
        (res) => {
          res.on('data', () => {});
          res.on('end', () => {
            const status = res.statusCode ?? 0;
            if (status >= 200 && status < 300) latencies.push(performance.now() - start);
            else non2xx++;
            done();
          });
          res.on('error', () => {
            errors++;
            done();
          });
        },
      );
      req.on('socket', (socket) => {
        // A request queued in the agent gets a busy socket handed over without reusedSocket set.
        if (!sockets.has(socket)) {
          sockets.add(socket);
          opened++;
        }
      });
      req.on('error', () => {
        errors++;
        done();
      });
      req.end(body);
    };
    const t0 = performance.now();
    const tick = setInterval(() => {
      const elapsedMs = performance.now() - t0;
      if (elapsedMs >= seconds * 1000) {
        clearInterval(tick);
        stopped = true;
        if (finished === sent) settle();
        // Whatever is not answered 10 s later counts as an error.
        else setTimeout(settle, 10_000).unref();
        return;
      }
      const due = Math.floor((elapsedMs / 1000) * rate);
      if (due > sent) maxLagMs = Math.max(maxLagMs, elapsedMs - ((sent + 1) * 1000) / rate);
      while (sent < due) send();
    }, 1);
  });
}

function merge(samples: readonly Sample[]): Sample {
  const out: Sample = { answered: 0, non2xx: 0, errors: 0, latencies: [], cpuS: 0, rssMaxMb: 0, seconds: 0 };
  for (const s of samples) {
    out.answered += s.answered;
    out.non2xx += s.non2xx;
    out.errors += s.errors;
    for (const l of s.latencies) out.latencies.push(l);
    out.cpuS += s.cpuS;
    out.rssMaxMb = Math.max(out.rssMaxMb, s.rssMaxMb);
    out.seconds += s.seconds;
    if (s.connections !== undefined) out.connections = (out.connections ?? 0) + s.connections;
    if (s.maxLagMs !== undefined) out.maxLagMs = Math.max(out.maxLagMs ?? 0, s.maxLagMs);
  }
  return out;
}

function row(server: string, scenario: string, s: Sample): Row {
  const sorted = [...s.latencies].sort((a, b) => a - b);
  return {
    server,
    scenario,
    rps: s.answered / s.seconds,
    p50: percentile(sorted, 50),
    p90: percentile(sorted, 90),
    p99: percentile(sorted, 99),
    p999: percentile(sorted, 99.9),
    max: sorted.at(-1) ?? NaN,
    cpuUsPerAnswer: (s.cpuS / Math.max(1, s.answered)) * 1e6,
    non2xx: s.non2xx,
    errors: s.errors,
    rssMaxMb: s.rssMaxMb,
    connections: s.connections,
    maxLagMs: s.maxLagMs,
  };
}

export interface WebhookBenchResult {
  readonly rows: Row[];
  readonly nodeOptions: string;
  /** The webhook's main.js, relative to the project. */
  readonly main: string;
  readonly rssStartMb: { readonly echo: number; readonly webhook: number };
  readonly apiCalls: number;
  readonly pinnedSelf: string;
  readonly loadBefore: string;
  readonly loadAfter: string;
  readonly options: Required<WebhookBenchOptions>;
}

const load = (): string =>
  loadavg()
    .map((l) => l.toFixed(2))
    .join(' ');

export async function benchWebhook(opts: WebhookBenchOptions = {}): Promise<WebhookBenchResult> {
  const o: Required<WebhookBenchOptions> = {
    durationS: opts.durationS ?? 10,
    warmupS: opts.warmupS ?? 3,
    connections: opts.connections ?? 10,
    rates: opts.rates ?? [500, 2000],
    rounds: opts.rounds ?? 4,
  };
  const loadBefore = load();
  const pinnedSelf = pinSelf();
  const dir = mkdtempSync(join(tmpdir(), 'jobmetrics-bench-webhook-'));
  const children: ChildProcess[] = [];
  const api = await fakeApi();
  const agents: Agent[] = [];
  try {
    const now = new Date();
    const ca = generateCa({ commonName: 'bench-ca', now, validityDays: 1 });
    const serving = issueServingCert(ca, { dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'], now, validityDays: 1 });
    writeFileSync(join(dir, 'tls.crt'), serving.certPem);
    writeFileSync(join(dir, 'tls.key'), serving.keyPem);
    writeFileSync(
      join(dir, 'kubeconfig'),
      [
        'apiVersion: v1',
        'kind: Config',
        `clusters: [{name: fake, cluster: {server: "http://127.0.0.1:${api.port}", insecure-skip-tls-verify: true}}]`,
        'users: [{name: webhook, user: {token: bench-token}}]',
        'contexts: [{name: fake, context: {cluster: fake, user: webhook}}]',
        'current-context: fake',
      ].join('\n'),
    );
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

    const nodeOptions = process.env['BENCH_WEBHOOK_NODE_OPTIONS'] ?? deployedNodeOptions();
    const main = process.env['BENCH_WEBHOOK_MAIN'] || buildWebhook();
    const echo = await startChild(['--input-type=module', '-e', ECHO_SOURCE], { TLS_DIR: dir }, (l) => {
      const m = /^echo listening (\d+)$/.exec(l);
      return m ? Number(m[1]) : undefined;
    });
    children.push(echo.proc);
    const webhook = await startChild(
      [main],
      {
        // As Dockerfile.webhook sets it.
        NODE_ENV: 'production',
        JOBMETRICS_TLS_DIR: dir,
        JOBMETRICS_LISTEN: '127.0.0.1:0',
        KUBECONFIG: join(dir, 'kubeconfig'),
        ...(nodeOptions !== '' && { NODE_OPTIONS: nodeOptions }),
      },
      (l) => {
        const m = /"msg":"listening","address":"[^"]*:(\d+)"/.exec(l);
        return m ? Number(m[1]) : undefined;
      },
    );
    children.push(webhook.proc);
    // Idle, before any request: what start-up left behind.
    await new Promise((r) => setTimeout(r, 1000));
    const rssStartMb = { echo: rssMb(echo.proc.pid!), webhook: rssMb(webhook.proc.pid!) };

    const servers = [
      { name: 'bare https echo', pid: echo.proc.pid!, port: echo.port },
      { name: 'webhook /mutate', pid: webhook.proc.pid!, port: webhook.port },
    ];
    const scenarios: { name: string; run: (port: number, agent: Agent, sockets: WeakSet<object>, seconds: number) => ReturnType<typeof saturate> }[] = [
      { name: `saturation, ${o.connections} conns`, run: (port, _agent, _sockets, s) => saturate(port, body, o.connections, s) },
      ...o.rates.map((rate) => ({ name: `${rate} req/s, paced`, run: (port: number, agent: Agent, sockets: WeakSet<object>, s: number) => paced(port, body, agent, sockets, rate, s) })),
    ];
    const rows: Row[] = [];
    for (const sc of scenarios) {
      const perServer = servers.map((sv) => {
        const agent = new Agent({ keepAlive: true, maxSockets: 16, rejectUnauthorized: false });
        agents.push(agent);
        return { sv, agent, sockets: new WeakSet<object>(), samples: [] as Sample[] };
      });
      // Warm-up: also opens the connections the measured rounds then keep using.
      for (const p of perServer) await sc.run(p.sv.port, p.agent, p.sockets, o.warmupS);
      for (let round = 0; round < o.rounds; round++) {
        for (const p of perServer) p.samples.push(await watched(p.sv.pid, () => sc.run(p.sv.port, p.agent, p.sockets, o.durationS / o.rounds)));
      }
      for (const p of perServer) {
        rows.push(row(p.sv.name, sc.name, merge(p.samples)));
        p.agent.destroy();
      }
    }
    return { rows, nodeOptions, main: relative(ROOT, main), rssStartMb, apiCalls: api.calls(), pinnedSelf, loadBefore, loadAfter: load(), options: o };
  } finally {
    for (const a of agents) a.destroy();
    for (const c of children) c.kill('SIGKILL');
    api.server.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * Express alone, as the webhook's server.ts sets it up (TLS options, raw body, no etag, no
 * x-powered-by) but answering with the body it read; CLASSES=1 gives node:https express's
 * classes (the webhook's `expressHttpClasses`, from the built server.js, loaded in both variants
 * so their start-up is the same).
 */
const EXPRESS_SOURCE = `
import { createServer } from 'node:https';
import { readFileSync } from 'node:fs';
import express from 'express';
const { expressHttpClasses } = await import(process.env.SERVER_JS);
const dir = process.env.TLS_DIR;
const app = express();
app.disable('x-powered-by');
app.set('etag', false);
app.post('/mutate', express.raw({ type: () => true, limit: 3 * 1024 * 1024 }), (req, res) => {
  res.set('content-type', 'application/json; charset=utf-8').send(req.body);
});
const classes = process.env.CLASSES === '1' ? expressHttpClasses(app) : {};
const server = createServer({ cert: readFileSync(dir + '/tls.crt'), key: readFileSync(dir + '/tls.key'), minVersion: 'TLSv1.2', ...classes }, app);
server.keepAliveTimeout = 120000;
server.headersTimeout = 5000;
server.requestTimeout = 10000;
server.listen(0, '127.0.0.1', () => console.log('express listening ' + server.address().port));
`;

export interface ExpressOnlyResult {
  readonly rows: Row[];
  readonly nodeOptions: string;
  readonly bodyBytes: number;
  readonly rssStartMb: Readonly<Record<string, number>>;
  readonly loadBefore: string;
  readonly loadAfter: string;
  readonly options: Required<WebhookBenchOptions>;
}

/** `--express-only`: saturation of the echo, express, and express with expressHttpClasses. */
export async function benchExpressOnly(opts: WebhookBenchOptions = {}): Promise<ExpressOnlyResult> {
  const o: Required<WebhookBenchOptions> = {
    durationS: opts.durationS ?? 10,
    warmupS: opts.warmupS ?? 3,
    connections: opts.connections ?? 10,
    rates: [],
    rounds: opts.rounds ?? 4,
  };
  const loadBefore = load();
  pinSelf();
  const dir = mkdtempSync(join(tmpdir(), 'jobmetrics-bench-express-'));
  const children: ChildProcess[] = [];
  try {
    const now = new Date();
    const ca = generateCa({ commonName: 'bench-ca', now, validityDays: 1 });
    const serving = issueServingCert(ca, { dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'], now, validityDays: 1 });
    writeFileSync(join(dir, 'tls.crt'), serving.certPem);
    writeFileSync(join(dir, 'tls.key'), serving.keyPem);
    // The same bytes the webhook bench sends: a review of test/fixtures/pod-cronjob.yaml.
    const pod = parse(readFileSync(join(ROOT, 'test/fixtures/pod-cronjob.yaml'), 'utf8')) as unknown;
    const body = JSON.stringify({ apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', request: { uid: '0d3e1b0c-bench', operation: 'CREATE', object: pod } });
    const serverJs = pathToFileURL(join(buildWebhook(), '../server.js')).href;
    const nodeOptions = process.env['BENCH_WEBHOOK_NODE_OPTIONS'] ?? deployedNodeOptions();
    const portOf = (l: string): number | undefined => {
      const m = /^(?:echo|express) listening (\d+)$/.exec(l);
      return m ? Number(m[1]) : undefined;
    };
    const start = async (name: string, source: string, env: Record<string, string>): Promise<{ name: string; pid: number; port: number }> => {
      const c = await startChild(['--input-type=module', '-e', source], { TLS_DIR: dir, ...env }, portOf);
      children.push(c.proc);
      return { name, pid: c.proc.pid!, port: c.port };
    };
    const expressEnv = { NODE_ENV: 'production', SERVER_JS: serverJs, ...(nodeOptions !== '' && { NODE_OPTIONS: nodeOptions }) };
    const servers = [
      await start('bare https echo', ECHO_SOURCE, {}),
      await start('express, as it comes', EXPRESS_SOURCE, { ...expressEnv, CLASSES: '0' }),
      await start('express with expressHttpClasses (shipped)', EXPRESS_SOURCE, { ...expressEnv, CLASSES: '1' }),
    ];
    await new Promise((r) => setTimeout(r, 1000));
    const rssStartMb = Object.fromEntries(servers.map((sv) => [sv.name, rssMb(sv.pid)]));
    for (const sv of servers) await saturate(sv.port, body, o.connections, o.warmupS);
    const samples: Sample[][] = servers.map(() => []);
    for (let round = 0; round < o.rounds; round++) {
      for (const [i, sv] of servers.entries()) samples[i]?.push(await watched(sv.pid, () => saturate(sv.port, body, o.connections, o.durationS / o.rounds)));
    }
    const rows = servers.map((sv, i) => row(sv.name, `saturation, ${o.connections} conns`, merge(samples[i] ?? [])));
    return { rows, nodeOptions, bodyBytes: Buffer.byteLength(body), rssStartMb, loadBefore, loadAfter: load(), options: o };
  } finally {
    for (const c of children) c.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  }
}

export async function runExpressOnly(opts: WebhookBenchOptions = {}): Promise<string> {
  const r = await benchExpressOnly(opts);
  const echo = r.rows[0];
  const own = (x: Row): string => (echo === undefined ? '?' : (x.cpuUsPerAnswer - echo.cpuUsPerAnswer).toFixed(0));
  return [
    `Express alone: POST /mutate of ${(r.bodyBytes / 1024).toFixed(1)} KiB answered with the same body, TLS 1.3 with keep-alive, saturation (autocannon, ${r.options.connections} connections, closed loop), ` +
      `servers pinned to CPU ${serverCpu()}; ${r.options.warmupS} s warm-up, then ${r.options.durationS} s in ${r.options.rounds} alternating rounds. Express: NODE_ENV=production, NODE_OPTIONS "${r.nodeOptions}"; echo: no flags.`,
    `Machine: ${machine()}; load average before ${r.loadBefore}, after ${r.loadAfter}.`,
    '',
    '| server | answers/s | p50 ms | p99 ms | CPU µs/answer | above the echo µs | RSS idle MB | RSS max MB | errors |',
    '| --- | --- | --- | --- | --- | --- | --- | --- | --- |',
    ...r.rows.map((x) => `| ${x.server} | ${x.rps.toFixed(0)} | ${x.p50.toFixed(3)} | ${x.p99.toFixed(3)} | ${x.cpuUsPerAnswer.toFixed(0)} | ${x === echo ? '—' : own(x)} | ${(r.rssStartMb[x.server] ?? NaN).toFixed(1)} | ${x.rssMaxMb.toFixed(1)} | ${x.non2xx + x.errors} |`),
  ].join('\n');
}

function formatTable(rows: readonly Row[]): string {
  const ms = (v: number): string => v.toFixed(3);
  const head = ['load', 'server', 'answers/s', 'p50 ms', 'p90 ms', 'p99 ms', 'p99.9 ms', 'max ms', 'CPU µs/answer', 'non-2xx', 'errors', 'RSS max MB'];
  const body = rows.map((r) => [
    r.scenario,
    r.server,
    r.rps.toFixed(0),
    ms(r.p50),
    ms(r.p90),
    ms(r.p99),
    ms(r.p999),
    ms(r.max),
    r.cpuUsPerAnswer.toFixed(0),
    String(r.non2xx),
    String(r.errors),
    r.rssMaxMb.toFixed(1),
  ]);
  return [head, head.map(() => '---'), ...body].map((cells) => `| ${cells.join(' | ')} |`).join('\n');
}

export function machine(): string {
  const cpu = cpus();
  return `${cpu[0]?.model ?? 'unknown CPU'}, ${cpu.length} cores (shared with other work), ${(totalmem() / 2 ** 30).toFixed(1)} GiB, Node ${process.version}, ${process.platform}/${process.arch}`;
}

export async function run(opts: WebhookBenchOptions = {}): Promise<string> {
  const r = await benchWebhook(opts);
  const o = r.options;
  const find = (server: string, scenario: string): Row => {
    const x = r.rows.find((y) => y.server.startsWith(server) && y.scenario.startsWith(scenario));
    if (!x) throw new Error(`no row ${server} / ${scenario}`);
    return x;
  };
  const sat = { echo: find('bare', 'saturation'), wh: find('webhook', 'saturation') };
  const rate0 = o.rates[0] ?? 500;
  const at = (rate: number): { echo: Row; wh: Row } => ({ echo: find('bare', `${rate} req/s`), wh: find('webhook', `${rate} req/s`) });
  const first = at(rate0);
  const met = (ok: boolean): string => (ok ? 'MET' : 'NOT MET');
  const x = (a: number, b: number): string => `${(a / b).toFixed(2)}x`;
  const pin = hasTaskset() ? `both servers pinned to CPU ${serverCpu()} (taskset), the load generators to ${r.pinnedSelf}` : 'servers not pinned (no taskset)';
  const webhookRows = r.rows.filter((y) => y.server.startsWith('webhook'));
  const rssMax = Math.max(...webhookRows.map((y) => y.rssMaxMb));
  const podKb = (JSON.stringify(parse(readFileSync(join(ROOT, 'test/fixtures/pod-cronjob.yaml'), 'utf8'))).length / 1024).toFixed(1);
  const pacedRows = r.rows.filter((y) => y.scenario.includes('paced'));
  const lag = Math.max(...pacedRows.map((y) => y.maxLagMs ?? 0));
  const conns = pacedRows.map((y) => y.connections ?? 0);
  return [
    `POST /mutate of a CronJob Job pod (test/fixtures/pod-cronjob.yaml, ${podKb} KiB as JSON; answer: the native-sidecar patch) on loopback, ` +
      `TLS 1.3 with keep-alive, ${pin}. Per server and load: ${o.warmupS} s warm-up, then ${o.durationS} s measured in ${o.rounds} rounds that alternate with the other server. ` +
      `Saturation: autocannon, closed loop. Paced: open loop, requests sent on a fixed schedule (1-ms timer ticks) over up to 16 keep-alive connections, latency from the send (so waiting for a connection counts); ` +
      `the schedule ran at most ${lag.toFixed(1)} ms late; after the warm-up the pools opened ${Math.min(...conns)}–${Math.max(...conns)} more connections.`,
    `Webhook as deployed: ${r.main === '.cache/bench-webhook/dist/webhook/main.js' ? 'this tree built' : r.main}, plain node, NODE_ENV=production, NODE_OPTIONS "${r.nodeOptions}" (${process.env['BENCH_WEBHOOK_NODE_OPTIONS'] === undefined ? 'from manifests/base/webhook-deployment.yaml' : 'BENCH_WEBHOOK_NODE_OPTIONS'}), default settings (log level info: one JSON line per review), ` +
      `API access as in a cluster: a token (kubeconfig) for a fake API server on loopback, so the API client is loaded, the mode comes from /version (native) and the Job owner lookup runs, cached: ${r.apiCalls} API calls in all. ` +
      `Echo: node:https, same certificate, TLS options and keep-alive timeout, no flags. CPU µs/answer: the server process's user+system time (all threads) per answer.`,
    `Machine: ${machine()}; load average before ${r.loadBefore}, after ${r.loadAfter}.`,
    '',
    formatTable(r.rows),
    '',
    `RSS idle after start (before any request): echo ${r.rssStartMb.echo.toFixed(1)} MB, webhook ${r.rssStartMb.webhook.toFixed(1)} MB.`,
    `ratios webhook / echo: saturation throughput ${x(sat.wh.rps, sat.echo.rps)}, p99 ${x(sat.wh.p99, sat.echo.p99)}; ` +
      o.rates.map((rate) => `at ${rate} req/s p50 ${x(at(rate).wh.p50, at(rate).echo.p50)}, p99 ${x(at(rate).wh.p99, at(rate).echo.p99)}`).join('; '),
    `target p99 <= 2x the echo's at the same offered load (${rate0} req/s): ${first.wh.p99.toFixed(3)} ms vs ${first.echo.p99.toFixed(3)} ms = ${x(first.wh.p99, first.echo.p99)}: ${met(first.wh.p99 <= 2 * first.echo.p99)}`,
    `target >= 2 000 reviews/s on one core: ${sat.wh.rps.toFixed(0)}/s at saturation: ${met(sat.wh.rps >= 2000)}`,
    `target RSS <= 100 MB under load: ${rssMax.toFixed(1)} MB at most: ${met(rssMax <= 100)}`,
    `every answer 2xx: ${met(webhookRows.every((y) => y.non2xx === 0 && y.errors === 0))}`,
  ].join('\n');
}

/**
 * Writes the result into the `<!-- bench:webhook -->` block of "## Webhook" in
 * docs/benchmarks.md; the hand-written text around the block stays. Without the block, the
 * section is created (or replaced) with one.
 */
export function writeDocsSection(result: string): void {
  const text = `\`node --import tsx bench/webhook.ts --write-docs\` (${new Date().toISOString().slice(0, 10)}).\n\n${asMarkdown(result)}`;
  if (existsSync(BENCHMARKS_DOC) && writeDocsBlock('webhook', text)) return;
  const doc = existsSync(BENCHMARKS_DOC) ? readFileSync(BENCHMARKS_DOC, 'utf8') : '# Benchmarks\n\nMeasured on the project\'s own machine; each section says how to rerun it.\n';
  const section = `## Webhook\n\n<!-- bench:webhook -->\n${text}\n<!-- /bench:webhook -->\n`;
  const start = doc.search(/^## Webhook\s*$/m);
  if (start < 0) {
    writeFileSync(BENCHMARKS_DOC, `${doc.trimEnd()}\n\n${section}`);
    return;
  }
  const rest = doc.slice(start + 1);
  const next = rest.search(/^## /m);
  const end = next < 0 ? doc.length : start + 1 + next;
  writeFileSync(BENCHMARKS_DOC, `${doc.slice(0, start)}${section}${next < 0 ? '' : '\n' + doc.slice(end)}`);
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href && process.argv.includes('--express-only')) {
  console.log(await runExpressOnly());
} else if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const result = await run();
  console.log(result);
  if (process.argv.includes('--write-docs')) writeDocsSection(result);
}
