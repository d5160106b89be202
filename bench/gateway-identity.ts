/**
 * What "who may write what" costs (docs/gateway.md): the gateway with token review against the
 * gateway without, under 1 000 pods' writes, side by side in one run.
 *
 * A real control plane (scripts/cluster/control-plane.ts, no node): 1 000 pods of one namespace
 * (never scheduled) and, for each, a token of its service account for the gateway's audience,
 * bound to the pod, from the TokenRequest API — what the kubelet mounts into each sidecar. The
 * gateway is the built `dist/gateway/main.js` in a child process, with the admin kubeconfig for
 * its TokenReviews, forwarding to a null sink in this process (a fake aggregator answering 204:
 * what lies behind the gateway is the same for both rows). Each simulated pod writes 100 series
 * (counters and gauges, its own namespace and pod labels) every 10 s, staggered, as a sidecar
 * does: 100 requests/s.
 *
 * Rows, interleaved round by round (the machine is shared and noisy): `none`
 * (JOBMETRICS_WRITER_AUTH=none) and `tokenreview`, each with a fresh gateway. Per row: write
 * latency p50/p99 as the writer sees it over the measured window (after every pod has written
 * once), the first write of each pod (the one that waits for its TokenReview), and the gateway's
 * CPU (utime+stime of its process over the window, in % of a core).
 *
 *   node --import tsx bench/gateway-identity.ts [--pods N] [--seconds S] [--rounds R]
 *   npm run bench -- gateway-identity
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import { Agent } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { startChild, stopChild, type Child } from '../scripts/child-processes.ts';
import { createNamespace, startControlPlane, type ControlPlane } from '../scripts/cluster/control-plane.ts';
import { closeIdleConnections, encodeWriteRequest, sendWriteRequest, type RwSeries } from '../shared/remote-write.ts';
import { ensureBuilt } from '../test/support/build.ts';
import { wholeFlag } from './cli.ts';
import { percentile } from './exit-latency.ts';
import { callOk } from './recorder-burst.ts';
import { cpuTicks, ticksPerSecond } from './sidecar.ts';

const ROOT = resolve(fileURLToPath(import.meta.url), '..', '..');
const GATEWAY = join(ROOT, 'dist', 'gateway', 'main.js');
const NAMESPACE = 'tenant';
const SERVICE_ACCOUNT = 'batch';
const PUSH_EVERY_MS = 10_000;
const SERIES_PER_POD = 100;

export interface GatewayIdentityOptions {
  readonly pods?: number;
  /** The measured window per row, after the first round of writes; default 60 s. */
  readonly seconds?: number;
  readonly rounds?: number;
  readonly progress?: (line: string) => void;
}

interface Row {
  readonly variant: 'none' | 'tokenreview';
  readonly round: number;
  readonly writes: number;
  readonly failed: number;
  readonly p50: number;
  readonly p99: number;
  readonly firstP50: number;
  readonly firstP99: number;
  readonly cpuPct: number;
  readonly reviews: number;
}

/** A remote-write sink answering 204 to everything: the fake aggregator behind both rows. */
async function nullSink(): Promise<{ url: string; server: Server }> {
  const server = createServer((req, res) => {
    req.resume();
    req.on('end', () => res.writeHead(204).end());
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/api/v1/write`, server };
}

async function podTokens(cp: ControlPlane, pods: number, progress: (l: string) => void): Promise<Array<{ pod: string; token: string }>> {
  const agent = new Agent({ keepAlive: true, maxSockets: 40 });
  await createNamespace(cp, NAMESPACE);
  await callOk(cp, agent, 'POST', `/api/v1/namespaces/${NAMESPACE}/serviceaccounts`, { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: SERVICE_ACCOUNT } }, (s) => s === 201 || s === 409);
  const out: Array<{ pod: string; token: string }> = [];
  const names = Array.from({ length: pods }, (_, i) => `job-${String(i).padStart(4, '0')}`);
  for (let i = 0; i < names.length; i += 40) {
    await Promise.all(
      names.slice(i, i + 40).map(async (name) => {
        const pod = { apiVersion: 'v1', kind: 'Pod', metadata: { name }, spec: { serviceAccountName: SERVICE_ACCOUNT, automountServiceAccountToken: false, containers: [{ name: 'main', image: 'registry.invalid/job:1' }] } };
        const created = JSON.parse((await callOk(cp, agent, 'POST', `/api/v1/namespaces/${NAMESPACE}/pods`, pod, (s) => s === 201)).text) as { metadata: { uid: string } };
        const request = { apiVersion: 'authentication.k8s.io/v1', kind: 'TokenRequest', spec: { audiences: ['jobmetrics-gateway'], expirationSeconds: 3600, boundObjectRef: { apiVersion: 'v1', kind: 'Pod', name, uid: created.metadata.uid } } };
        const tr = JSON.parse((await callOk(cp, agent, 'POST', `/api/v1/namespaces/${NAMESPACE}/serviceaccounts/${SERVICE_ACCOUNT}/token`, request, (s) => s === 201)).text) as { status: { token: string } };
        out.push({ pod: name, token: tr.status.token });
      }),
    );
    if ((i / 40) % 5 === 4) progress(`gateway-identity: ${out.length}/${pods} pods with their tokens`);
  }
  agent.destroy();
  return out;
}

function podSeries(pod: string, value: number, atMs: number): RwSeries[] {
  return Array.from({ length: SERIES_PER_POD }, (_, i) => ({
    labels: [
      ['__name__', i % 2 === 0 ? 'items_processed_total' : 'queue_depth'],
      ['namespace', NAMESPACE],
      ['job', 'nightly'],
      ['pod', pod],
      ['shard', String(i)],
      ['jobmetrics_kind', i % 2 === 0 ? 'counter' : 'last'],
    ],
    samples: [{ value, timestampMs: atMs }],
  }));
}

async function gatewayUrl(child: Child, logPath: string): Promise<string> {
  const { readFileSync } = await import('node:fs');
  for (const deadline = Date.now() + 30_000; Date.now() < deadline; await sleep(100)) {
    for (const line of readFileSync(logPath, 'utf8').split('\n')) {
      if (!line.startsWith('{')) continue;
      const rec = JSON.parse(line) as { msg?: string; url?: string };
      if (rec.msg === 'gateway listening' && rec.url) return rec.url;
    }
    if (child.proc.exitCode !== null) break;
  }
  throw new Error(`the gateway did not start; see ${logPath}`);
}

async function runRow(variant: Row['variant'], round: number, cp: ControlPlane, tokens: ReadonlyArray<{ pod: string; token: string }>, sinkUrl: string, dir: string, windowMs: number): Promise<Row> {
  const logPath = join(dir, `gateway-${variant}-${round}.log`);
  const gw = startChild(`gateway-${variant}`, process.execPath, [GATEWAY], logPath, {
    env: {
      PATH: process.env['PATH'] ?? '/usr/bin:/bin',
      JOBMETRICS_LISTEN: '127.0.0.1:0',
      JOBMETRICS_AGGREGATOR_URL: sinkUrl,
      JOBMETRICS_WRITER_AUTH: variant,
      KUBECONFIG: cp.kubeconfigPath,
      // As the Deployment (manifests/aggregator/gateway.yaml).
      NODE_OPTIONS: '--max-old-space-size=768',
    },
  });
  try {
    const url = `${await gatewayUrl(gw, logPath)}/api/v1/write`;
    const pid = gw.proc.pid ?? 0;
    const started = Date.now();
    const first: number[] = [];
    const steady: number[] = [];
    let failed = 0;
    let measuring = false;
    let cpuAtStart = 0;
    let stop = false;
    // Each pod on its own 10 s clock, offset so the writes spread evenly over the interval.
    const loops = tokens.map(async ({ pod, token }, i) => {
      await sleep(Math.floor((i / tokens.length) * PUSH_EVERY_MS));
      let n = 0;
      while (!stop) {
        const t0 = performance.now();
        const out = await sendWriteRequest(url, encodeWriteRequest(podSeries(pod, n, Date.now())), { timeoutMs: 10_000, ...(variant === 'tokenreview' && { authorization: `Bearer ${token}` }) });
        const ms = performance.now() - t0;
        if (!out.ok) failed++;
        if (n === 0) first.push(ms);
        else if (measuring) steady.push(ms);
        n++;
        const next = started + Math.floor((i / tokens.length) * PUSH_EVERY_MS) + n * PUSH_EVERY_MS;
        await sleep(Math.max(0, next - Date.now()));
      }
    });
    // Every pod has written once after one interval; the window starts then.
    await sleep(PUSH_EVERY_MS + 1_000);
    measuring = true;
    cpuAtStart = cpuTicks(pid) ?? 0;
    const windowStart = Date.now();
    await sleep(windowMs);
    const cpu = ((cpuTicks(pid) ?? 0) - cpuAtStart) / ticksPerSecond();
    const elapsed = (Date.now() - windowStart) / 1000;
    measuring = false;
    stop = true;
    await Promise.all(loops);
    const metrics = await (await fetch(url.replace('/api/v1/write', '/metrics'))).text();
    const reviews = [...metrics.matchAll(/^jobmetrics_gateway_token_reviews_total\{result="\w+"\} (\d+)$/gm)].reduce((s, m) => s + Number(m[1]), 0);
    first.sort((a, b) => a - b);
    steady.sort((a, b) => a - b);
    return { variant, round, writes: steady.length, failed, p50: percentile(steady, 50), p99: percentile(steady, 99), firstP50: percentile(first, 50), firstP99: percentile(first, 99), cpuPct: (cpu / elapsed) * 100, reviews };
  } finally {
    await stopChild(gw);
    closeIdleConnections();
  }
}

export async function run(o: GatewayIdentityOptions = {}): Promise<string> {
  const pods = o.pods ?? 1_000;
  const windowMs = (o.seconds ?? 60) * 1_000;
  const rounds = o.rounds ?? 2;
  const progress = o.progress ?? ((l: string) => void process.stderr.write(`${l}\n`));
  const dir = await mkdtemp(join(tmpdir(), 'jobmetrics-gateway-identity-'));
  progress('gateway-identity: starting a control plane (etcd, kube-apiserver, kube-controller-manager)');
  const [cp] = await Promise.all([startControlPlane({ dir }), Promise.resolve().then(ensureBuilt)]);
  const sink = await nullSink();
  const rows: Row[] = [];
  let ok = false;
  try {
    const tokens = await podTokens(cp, pods, progress);
    for (let round = 1; round <= rounds; round++) {
      for (const variant of ['none', 'tokenreview'] as const) {
        progress(`gateway-identity: round ${round}/${rounds}, ${variant}: ${pods} pods × ${SERIES_PER_POD} series every ${PUSH_EVERY_MS / 1000} s, ${windowMs / 1000} s measured`);
        rows.push(await runRow(variant, round, cp, tokens, sink.url, dir, windowMs));
      }
    }
    ok = true;
  } finally {
    sink.server.close();
    await cp.stop();
    if (ok) await rm(dir, { recursive: true, force: true });
    else progress(`gateway-identity: kept ${dir} for a look`);
  }
  const f = (n: number): string => n.toFixed(2);
  const lines = [
    `Gateway identity: ${pods} pods × ${SERIES_PER_POD} series, a write every ${PUSH_EVERY_MS / 1000} s each (${pods / (PUSH_EVERY_MS / 1000)} writes/s), ${windowMs / 1000} s measured per row, rounds interleaved`,
    '',
    '| writer check | round | writes | failed | write p50 ms | write p99 ms | first write p50 ms | first write p99 ms | gateway CPU % of a core | TokenReviews |',
    '|---|---|---|---|---|---|---|---|---|---|',
    ...rows.map((r) => `| ${r.variant} | ${r.round} | ${r.writes} | ${r.failed} | ${f(r.p50)} | ${f(r.p99)} | ${f(r.firstP50)} | ${f(r.firstP99)} | ${f(r.cpuPct)} | ${r.reviews} |`),
  ];
  const mean = (v: Row['variant'], k: 'p99' | 'cpuPct'): number => {
    const rs = rows.filter((r) => r.variant === v);
    return rs.reduce((s, r) => s + r[k], 0) / rs.length;
  };
  lines.push('', `tokenreview / none (means over rounds): write p99 ${f(mean('tokenreview', 'p99') / mean('none', 'p99'))}×, gateway CPU ${f(mean('tokenreview', 'cpuPct') / mean('none', 'cpuPct'))}×`);
  return lines.join('\n');
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const args = process.argv.slice(2);
  const num = (flag: string): number | undefined => wholeFlag(args, flag, 1);
  const pods = num('--pods');
  const seconds = num('--seconds');
  const rounds = num('--rounds');
  process.stdout.write(`${await run({ ...(pods !== undefined && { pods }), ...(seconds !== undefined && { seconds }), ...(rounds !== undefined && { rounds }) })}\n`);
}
