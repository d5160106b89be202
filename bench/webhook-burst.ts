/**
 * Pod creation in a burst, with and without the webhook: a real API server (etcd, kube-apiserver,
 * kube-controller-manager v1.37 from scripts/cluster/control-plane.ts; no kubelet, so pods stay pending),
 * the shipped MutatingWebhookConfiguration (overlay e2e-local: only the URL differs), and 2 webhook
 * processes (the built `dist/webhook/main.js` with the shipped settings and the webhook
 * ServiceAccount's RBAC) behind one address (scripts/tcp-balancer.ts, TLS passed through, standing
 * in for the Service).
 *
 * Each burst creates --pods pods (default 1 000) through the API server's REST API with
 * --concurrency requests in flight (default 100), the same pod spec both times:
 * - without: in a namespace without the injection label, pods without it — the API server's
 *   selectors skip the webhook, so this is pod creation as it is without jobmetrics;
 * - with: pods labelled `jobmetrics.io/inject=enabled` — each is sent to the webhook and injected.
 * Latency = one create request, sent to answered.
 *
 *   node --import tsx bench/webhook-burst.ts [--pods N] [--concurrency N]
 *   npm run bench -- webhook-burst
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { Agent, request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { startBalancer } from '../scripts/tcp-balancer.ts';
import { createNamespace, makeServingCert, startControlPlane, type ControlPlane } from '../scripts/cluster/control-plane.ts';
import { applyObjects, e2eLocalInstall, ensureBuilt, eventually, serviceAccountKubeconfig, startWebhook, type WebhookProcess } from '../test/e2e/webhook-harness.ts';
import { wholeFlag } from './cli.ts';
import { percentile } from './exit-latency.ts';

export interface BurstOptions {
  readonly pods?: number;
  readonly concurrency?: number;
  readonly progress?: (line: string) => void;
}

interface BurstResult {
  readonly name: string;
  readonly latenciesMs: readonly number[];
  readonly failures: number;
  readonly wallMs: number;
}

function createPod(cp: ControlPlane, agent: Agent, namespace: string, body: string): Promise<{ status: number; text: string }> {
  const url = new URL(`/api/v1/namespaces/${namespace}/pods`, cp.serverUrl);
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      { method: 'POST', agent, ca: cp.caPem, headers: { authorization: `Bearer ${cp.adminToken}`, 'content-type': 'application/json' }, timeout: 60_000 },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }));
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error(`POST ${url.href} timed out`)));
    req.on('error', reject);
    req.end(body);
  });
}

/** How many pods of `namespace` whose name starts with `prefix` the API server stored with each `jobmetrics.io/status`. */
async function storedStatuses(cp: ControlPlane, namespace: string, prefix: string): Promise<Map<string, number>> {
  const url = new URL(`/api/v1/namespaces/${namespace}/pods`, cp.serverUrl);
  const text = await new Promise<string>((resolve, reject) => {
    const req = request(url, { method: 'GET', ca: cp.caPem, headers: { authorization: `Bearer ${cp.adminToken}` } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
  const list = JSON.parse(text) as { items: Array<{ metadata: { name: string; annotations?: Record<string, string> } }> };
  const out = new Map<string, number>();
  for (const p of list.items) {
    if (!p.metadata.name.startsWith(prefix)) continue;
    const status = p.metadata.annotations?.['jobmetrics.io/status'] ?? '(none: not mutated)';
    out.set(status, (out.get(status) ?? 0) + 1);
  }
  return out;
}

function podBody(namespace: string, name: string, injected: boolean): string {
  return JSON.stringify({
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, namespace, ...(injected ? { labels: { 'jobmetrics.io/inject': 'enabled' } } : {}), annotations: { 'jobmetrics.io/port': '8080' } },
    spec: { restartPolicy: 'Never', containers: [{ name: 'main', image: 'registry.invalid/jobmetrics/job:1' }] },
  });
}

async function burst(cp: ControlPlane, name: string, namespace: string, injected: boolean, pods: number, concurrency: number): Promise<BurstResult> {
  const agent = new Agent({ keepAlive: true, maxSockets: concurrency });
  const latencies: number[] = [];
  let failures = 0;
  let next = 0;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      for (let i = next++; i < pods; i = next++) {
        const s = performance.now();
        const r = await createPod(cp, agent, namespace, podBody(namespace, `${name}-${i}`, injected)).catch((e: unknown) => ({ status: 0, text: String(e) }));
        latencies.push(performance.now() - s);
        if (r.status !== 201) failures++;
      }
    }),
  );
  const wallMs = performance.now() - t0;
  agent.destroy();
  return { name, latenciesMs: latencies.sort((a, b) => a - b), failures, wallMs };
}

export async function run(o: BurstOptions = {}): Promise<string> {
  const pods = o.pods ?? 1_000;
  const concurrency = o.concurrency ?? 100;
  const progress = o.progress ?? ((l: string) => void process.stderr.write(`${l}\n`));
  const dir = await mkdtemp(join(tmpdir(), 'jobmetrics-webhook-burst-'));
  const [cp] = await Promise.all([startControlPlane({ dir }), ensureBuilt()]);
  const webhooks: WebhookProcess[] = [];
  let ok = false;
  try {
    const tls = makeServingCert({ dnsNames: ['localhost'], ips: ['127.0.0.1'] });
    const tlsDir = join(dir, 'tls');
    await mkdir(tlsDir);
    await writeFile(join(tlsDir, 'tls.crt'), tls.certPem);
    await writeFile(join(tlsDir, 'tls.key'), tls.keyPem, { mode: 0o600 });
    const balancer = await startBalancer(() => webhooks.map((w) => `127.0.0.1:${w.port}`));
    const address = balancer.addresses[0] ?? '';
    await applyObjects(cp, e2eLocalInstall({ url: `https://localhost:${address.slice(address.lastIndexOf(':') + 1)}/mutate`, caPem: tls.caPem }));
    const kubeconfig = await serviceAccountKubeconfig(cp, join(dir, 'webhook.kubeconfig'));
    for (let i = 0; i < 2; i++) webhooks.push(await startWebhook({ dir, kubeconfig, tlsDir, name: `webhook-${i}.log` }));
    await createNamespace(cp, 'burst-without');
    await createNamespace(cp, 'burst-with');
    // The API server picks up the webhook configuration a moment after it is written.
    let probes = 0;
    await eventually('the API server to call the webhook', 30_000, async () => {
      const r = await createPod(cp, new Agent(), 'burst-with', podBody('burst-with', `probe-${probes++}`, true));
      return r.status === 201 && r.text.includes('"jobmetrics.io/status":"injected"') ? true : undefined;
    }, 500);
    progress('webhook-burst: warm-up (50 pods each way)');
    await burst(cp, 'warm-without', 'burst-without', false, 50, 10);
    await burst(cp, 'warm-with', 'burst-with', true, 50, 10);
    const before = await Promise.all(webhooks.map((w) => w.reviews()));
    progress(`webhook-burst: ${pods} pods without the webhook`);
    const without = await burst(cp, 'without', 'burst-without', false, pods, concurrency);
    progress(`webhook-burst: ${pods} pods with the webhook`);
    const withHook = await burst(cp, 'with', 'burst-with', true, pods, concurrency);
    const after = await Promise.all(webhooks.map((w) => w.reviews()));
    const injected = after.map((a, i) => (a['injected'] ?? 0) - (before[i]?.['injected'] ?? 0));
    const stored = await storedStatuses(cp, 'burst-with', 'with-');
    const row = (r: BurstResult, what: string): string =>
      `| ${what} | ${pods} | ${r.failures} | ${(pods / (r.wallMs / 1000)).toFixed(0)} | ${percentile(r.latenciesMs, 50).toFixed(0)} | ${percentile(r.latenciesMs, 90).toFixed(0)} | ${percentile(r.latenciesMs, 99).toFixed(0)} | ${(r.latenciesMs.at(-1) ?? NaN).toFixed(0)} |`;
    ok = true;
    return [
      `Pod creation burst through a real kube-apiserver ${cp.version} (no kubelet: pods stay pending), ${concurrency} create requests in flight, after 50 warm-up pods each way; 2 webhook replicas behind one address.`,
      '',
      '| pods created | pods | failed | pods/s | p50 ms | p90 ms | p99 ms | max ms |',
      '| --- | --- | --- | --- | --- | --- | --- | --- |',
      row(without, 'without the webhook (not selected)'),
      row(withHook, 'with the webhook (injected)'),
      '',
      `Injected by each webhook replica during the burst: ${injected.join(' and ')} (of ${pods}). ` +
        `Stored by the API server: ${[...stored].map(([k, n]) => `${n} ${k}`).join(', ')} (a webhook answer later than the configuration's timeoutSeconds is ignored: failurePolicy Ignore).`,
      `p99 with / without: ${(percentile(withHook.latenciesMs, 99) / percentile(without.latenciesMs, 99)).toFixed(2)}×.`,
    ].join('\n');
  } finally {
    for (const w of webhooks) await w.stop();
    await cp.stop();
    if (ok) await rm(dir, { recursive: true, force: true });
    else progress(`webhook-burst: logs kept in ${dir}`);
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const argv = process.argv.slice(2);
  const num = (flag: string): number | undefined => wholeFlag(argv, flag, 1);
  const pods = num('--pods');
  const concurrency = num('--concurrency');
  console.log(await run({ ...(pods !== undefined ? { pods } : {}), ...(concurrency !== undefined ? { concurrency } : {}) }));
  process.exit(0);
}
