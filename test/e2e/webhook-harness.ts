/**
 * What the end-to-end suites share beyond the control plane itself (control-plane.ts): the built
 * webhook as a real process, kubeconfigs for a ServiceAccount token, the shipped manifests
 * rendered with kustomize, and small polling helpers.
 *
 * The webhook runs exactly as in a pod — `node dist/webhook/main.js` with the shipped settings
 * file (manifests/base/webhook-settings.yaml) — except for what only a test machine needs:
 * JOBMETRICS_LISTEN on loopback, KUBECONFIG with a token of the jobmetrics-webhook
 * ServiceAccount (so it has exactly the RBAC of install.yaml), and the TLS directory or service
 * name the test asks for.
 */

import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { request as httpsRequest } from 'node:https';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseAllDocuments } from 'yaml';
import { describeExit, startChild, stopChild } from '../../scripts/child-processes.ts';
import { ensureBuilt } from '../support/build.ts';
import { controlPlaneBinaries, freePort, kubectlOk, type ControlPlane } from '../../scripts/cluster/control-plane.ts';

export const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const MANIFESTS = join(REPO, 'manifests');
export const SETTINGS_FILE = join(MANIFESTS, 'base', 'webhook-settings.yaml');
export const WEBHOOK_NAMESPACE = 'jobmetrics';
export const WEBHOOK_SA = 'jobmetrics-webhook';
export const WEBHOOK_SA_USER = `system:serviceaccount:${WEBHOOK_NAMESPACE}:${WEBHOOK_SA}`;
/** The URL the e2e-local overlay writes into every clientConfig; tests put their own port in. */
export const E2E_LOCAL_URL = 'https://localhost:8443/mutate';

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Polls `probe` until it returns a value other than undefined; throws with `what` after the deadline. */
export async function eventually<T>(what: string, deadlineMs: number, probe: () => Promise<T | undefined>, everyMs = 250): Promise<T> {
  const deadline = Date.now() + deadlineMs;
  let lastError = '';
  for (;;) {
    try {
      const v = await probe();
      if (v !== undefined) return v;
    } catch (e) {
      lastError = e instanceof Error ? e.message : String(e);
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${deadlineMs} ms waiting for ${what}${lastError ? ` (last error: ${lastError})` : ''}`);
    await sleep(everyMs);
  }
}

// ---------------------------------------------------------------------------------------------
// Build

/** dist/ is the code under test; the first suite that needs it compiles it once (test/support/build.ts). */
export { ensureBuilt };

// ---------------------------------------------------------------------------------------------
// Manifests

/** `kubectl kustomize <dir>` with the pinned kubectl (kustomize is built into it). */
export function kustomize(dir: string): string {
  const { kubectl } = controlPlaneBinaries();
  const r = spawnSync(kubectl, ['kustomize', dir], { encoding: 'utf8', maxBuffer: 16 << 20 });
  if (r.status !== 0) throw new Error(`kubectl kustomize ${dir} exited ${r.status}: ${r.stderr}`);
  return r.stdout;
}

export interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  [key: string]: unknown;
}

export function parseManifests(text: string): K8sObject[] {
  return parseAllDocuments(text)
    .map((d) => {
      if (d.errors.length > 0) throw new Error(`invalid YAML: ${d.errors[0]?.message ?? ''}`);
      return d.toJS() as K8sObject | null;
    })
    .filter((o): o is K8sObject => o !== null);
}

export function manifestsText(docs: readonly unknown[]): string {
  return docs.map((d) => JSON.stringify(d)).join('\n---\n') + '\n';
}

interface WebhookEntry {
  name: string;
  clientConfig: { url?: string; caBundle?: string; service?: unknown };
}

/**
 * The e2e-local overlay (the shipped install with clientConfig.url) with the test's webhook URL
 * and, when given, the CA that signed the webhook's certificate.
 */
export function e2eLocalInstall(opts: { url: string; caPem?: string }): K8sObject[] {
  const docs = parseManifests(kustomize(join(MANIFESTS, 'overlays', 'e2e-local')));
  for (const doc of docs) {
    if (doc.kind !== 'MutatingWebhookConfiguration') continue;
    for (const w of doc['webhooks'] as WebhookEntry[]) {
      if (w.clientConfig.url !== E2E_LOCAL_URL) throw new Error(`e2e-local overlay: webhook ${w.name} has url ${String(w.clientConfig.url)}, expected ${E2E_LOCAL_URL}`);
      w.clientConfig.url = opts.url;
      if (opts.caPem !== undefined) w.clientConfig.caBundle = Buffer.from(opts.caPem).toString('base64');
    }
  }
  return docs;
}

/** Server-side apply of these objects (the Namespace first, as kubectl applies in order). */
export async function applyObjects(cp: ControlPlane, docs: readonly K8sObject[], extraArgs: string[] = []): Promise<string> {
  return kubectlOk(cp, ['apply', '--server-side', '--field-manager=jobmetrics-e2e', ...extraArgs, '-f', '-'], { input: manifestsText(docs) });
}

// ---------------------------------------------------------------------------------------------
// Credentials

/**
 * A kubeconfig holding a token of the ServiceAccount (`kubectl create token`): whoever uses it
 * has exactly that account's RBAC, as the webhook has in its pod.
 */
export async function serviceAccountKubeconfig(cp: ControlPlane, path: string, namespace = WEBHOOK_NAMESPACE, sa = WEBHOOK_SA): Promise<string> {
  const token = (await kubectlOk(cp, ['-n', namespace, 'create', 'token', sa, '--duration=2h'])).trim();
  const caPath = `${path}.ca.crt`;
  await writeFile(caPath, cp.caPem);
  const config = {
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [{ name: 'e2e', cluster: { server: cp.serverUrl, 'certificate-authority': caPath } }],
    users: [{ name: sa, user: { token } }],
    contexts: [{ name: 'e2e', context: { cluster: 'e2e', user: sa, namespace } }],
    'current-context': 'e2e',
  };
  await writeFile(path, JSON.stringify(config, null, 2) + '\n', { mode: 0o600 });
  return path;
}

// ---------------------------------------------------------------------------------------------
// The webhook process

export interface WebhookProcess {
  readonly port: number;
  /** https://localhost:<port>/mutate */
  readonly url: string;
  readonly logPath: string;
  /** The log so far (JSON lines). */
  log(): string;
  /** GET path over HTTPS (certificate not verified unless `ca` is given). */
  get(path: string, ca?: string): Promise<{ status: number; body: string; peerCertPem: string }>;
  /**
   * Its review counters from /metrics: `injected`, `skipped:<reason>`, and the other outcomes
   * (`ignored`, `bad_request`, …) by name; absent keys are 0.
   */
  reviews(): Promise<Record<string, number>>;
  /** SIGTERM, then wait for the exit (SIGKILL after 10 s). Idempotent. */
  stop(): Promise<void>;
}

export interface StartWebhookOptions {
  /** Folder for the log file. */
  dir: string;
  /** Log file name inside dir; default webhook-<port>.log. */
  name?: string;
  kubeconfig: string;
  /** A folder with tls.crt/tls.key; absent: the webhook bootstraps its certificate. */
  tlsDir?: string;
  /** Listen port on 127.0.0.1; default a free one. */
  port?: number;
  /** More settings as environment variables (e.g. JOBMETRICS_SIDECAR_MODE). */
  env?: Record<string, string>;
  /** Resolve only once /readyz answers 200 (default true). */
  waitReady?: boolean;
}

export async function startWebhook(opts: StartWebhookOptions): Promise<WebhookProcess> {
  ensureBuilt();
  const port = opts.port ?? (await freePort());
  const logPath = join(opts.dir, opts.name ?? `webhook-${port}.log`);
  const env: Record<string, string> = {
    PATH: process.env['PATH'] ?? '/usr/bin:/bin',
    JOBMETRICS_LISTEN: `127.0.0.1:${port}`,
    KUBECONFIG: opts.kubeconfig,
    ...(opts.tlsDir !== undefined && { JOBMETRICS_TLS_DIR: opts.tlsDir }),
    ...opts.env,
  };
  // A clean environment: nothing of the test process (no KUBERNETES_SERVICE_HOST) leaks in.
  const child = startChild('webhook', process.execPath, [join(REPO, 'dist', 'webhook', 'main.js'), '--config', SETTINGS_FILE], logPath, { cwd: opts.dir, env });
  const log = (): string => {
    try {
      return readFileSync(logPath, 'utf8');
    } catch {
      return '';
    }
  };
  const get = (path: string, ca?: string): Promise<{ status: number; body: string; peerCertPem: string }> =>
    new Promise((resolveGet, reject) => {
      const req = httpsRequest(
        {
          host: '127.0.0.1',
          port,
          path,
          method: 'GET',
          servername: 'localhost',
          timeout: 5_000,
          ...(ca !== undefined ? { ca, rejectUnauthorized: true } : { rejectUnauthorized: false }),
        },
        (res) => {
          const chunks: Buffer[] = [];
          const raw = (res.socket as import('node:tls').TLSSocket).getPeerCertificate(false).raw;
          const peerCertPem = raw ? `-----BEGIN CERTIFICATE-----\n${raw.toString('base64').replace(/(.{64})/g, '$1\n').replace(/\n$/, '')}\n-----END CERTIFICATE-----\n` : '';
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => resolveGet({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8'), peerCertPem }));
          res.on('error', reject);
        },
      );
      req.on('timeout', () => req.destroy(new Error(`GET https://127.0.0.1:${port}${path} timed out`)));
      req.on('error', reject);
      req.end();
    });
  const stop = (): Promise<void> => stopChild(child);
  const wp: WebhookProcess = {
    port,
    url: `https://localhost:${port}/mutate`,
    logPath,
    log,
    get,
    stop,
    async reviews() {
      const r = await get('/metrics');
      const out: Record<string, number> = {};
      for (const m of r.body.matchAll(/^jobmetrics_webhook_requests_total\{outcome="([^"]+)"\} (\d+)$/gm)) {
        if (m[1] !== 'skipped' && Number(m[2]) > 0) out[m[1] ?? ''] = Number(m[2]);
      }
      for (const m of r.body.matchAll(/^jobmetrics_webhook_skips_total\{reason="([^"]+)"\} (\d+)$/gm)) {
        if (Number(m[2]) > 0) out[`skipped:${m[1] ?? ''}`] = Number(m[2]);
      }
      return out;
    },
  };
  try {
    const path = opts.waitReady === false ? '/healthz' : '/readyz';
    await eventually(`the webhook on port ${port} to answer ${path} with 200`, 30_000, async () => {
      if (child.exitInfo) throw new Error(`the webhook ${describeExit(child.exitInfo)}; log ${logPath}:\n${log().slice(-3000)}`);
      const r = await get(path);
      return r.status === 200 ? true : undefined;
    });
  } catch (e) {
    await stop();
    throw new Error(`${(e as Error).message}\nwebhook log (${logPath}):\n${log().slice(-3000)}`, { cause: e });
  }
  return wp;
}

// ---------------------------------------------------------------------------------------------
// Kubernetes objects as the tests read them

export interface EnvVar {
  name: string;
  value?: string;
  valueFrom?: unknown;
}
export interface Container {
  name: string;
  image?: string;
  imagePullPolicy?: string;
  restartPolicy?: string;
  env?: EnvVar[];
  resources?: unknown;
  securityContext?: unknown;
  ports?: Array<{ name?: string; containerPort: number }>;
  volumeMounts?: Array<{ name: string; mountPath: string; readOnly?: boolean }>;
}
export interface Pod {
  metadata: {
    name: string;
    namespace: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
    ownerReferences?: Array<{ kind: string; name: string; uid: string; controller?: boolean }>;
  };
  spec: {
    containers: Container[];
    initContainers?: Container[];
    shareProcessNamespace?: boolean;
    hostPID?: boolean;
  };
}

/** The pods of a Job, once the Job controller has created `want` of them. */
export async function jobPods(cp: ControlPlane, namespace: string, job: string, want: number, deadlineMs = 30_000): Promise<Pod[]> {
  return eventually(`${want} pod(s) of Job ${namespace}/${job}`, deadlineMs, async () => {
    const out = await kubectlOk(cp, ['-n', namespace, 'get', 'pods', '-l', `batch.kubernetes.io/job-name=${job}`, '-o', 'json']);
    const pods = (JSON.parse(out) as { items: Pod[] }).items;
    if (pods.length > want) throw new Error(`Job ${namespace}/${job} has ${pods.length} pods, expected ${want}`);
    return pods.length === want ? pods : undefined;
  });
}

/** What changed between two `reviews()` readings (keys with a difference only). */
export function reviewDelta(before: Record<string, number>, after: Record<string, number>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const k of new Set([...Object.keys(before), ...Object.keys(after)])) {
    const d = (after[k] ?? 0) - (before[k] ?? 0);
    if (d !== 0) out[k] = d;
  }
  return out;
}

export async function getJson<T>(cp: ControlPlane, args: string[]): Promise<T> {
  return JSON.parse(await kubectlOk(cp, [...args, '-o', 'json'])) as T;
}
