/**
 * The few API calls the webhook makes, straight over node:http(s) with JSON.
 *
 * Calls (and so the RBAC the manifests grant): GET /version; get jobs (workload name); get its
 * own Pod (the image the sidecar image follows); get, create, update the TLS Secret; get, patch the MutatingWebhookConfiguration (bootstrap only).
 * Every call has a timeout and every error says which call, on what, with what status and body
 * excerpt, and keeps the original as `cause` (KubeApiError).
 *
 * Credentials: in a cluster, the service account's token (re-read every minute: bound tokens
 * rotate) and CA; else a kubeconfig file's current context with a token, a token file, a client
 * certificate or basic auth, and its CA or `insecure-skip-tls-verify`. A kubeconfig that needs
 * more (exec credential plugins, auth providers, impersonation, a proxy) gets its agent and
 * headers from @kubernetes/client-node (webhook/kube-api-client-node.ts), loaded only then: it
 * brings ~2 500 generated modules and ~70 MB of RSS, more than the rest of the webhook uses. The
 * calls themselves are the same code either way (`kubeApiOver` over `transportCaller`).
 */
import { readFileSync } from 'node:fs';
import { Agent as HttpAgent, request as httpRequest, type IncomingMessage } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import { dirname, resolve } from 'node:path';
import type { Operation } from 'fast-json-patch';
import { parse } from 'yaml';
import type { BootstrapApi, WebhookConfigView } from './bootstrap.ts';
import type { WebhookSettings } from './config.ts';
import type { JobFetch } from './job-owner.ts';
import type { VersionProbe } from './mode.ts';

export interface KubeApi {
  readonly server: string;
  /** Which client makes the calls, for the log. */
  readonly client: string;
  serverVersion(): Promise<VersionProbe>;
  /** GET one Pod: the webhook's own, whose image the sidecar image follows (webhook/sidecar-image.ts). */
  readPod(namespace: string, name: string): Promise<unknown>;
  readonly fetchJob: JobFetch;
  readonly bootstrap: BootstrapApi;
}

/** What an API server's error answer carries; client-node's ApiException has the same shape. */
interface StatusCause {
  readonly code: number;
  readonly body: unknown;
}
const isStatusCause = (e: unknown): e is StatusCause =>
  typeof e === 'object' && e !== null && typeof (e as { code?: unknown }).code === 'number' && 'body' in e;

export class KubeApiError extends Error {
  readonly status: number | undefined;
  constructor(operation: string, target: string, cause: unknown) {
    const status = isStatusCause(cause) ? cause.code : undefined;
    const body = isStatusCause(cause) ? excerpt(cause.body) : '';
    const why = status !== undefined ? `HTTP ${status}${body ? `: ${body}` : ''}` : cause instanceof Error ? cause.message : String(cause);
    super(`${operation} ${target} failed: ${why}`, { cause });
    this.name = 'KubeApiError';
    this.status = status;
  }
}

function excerpt(body: unknown): string {
  const text = typeof body === 'string' ? body : JSON.stringify(body ?? '');
  // A Status object says it best in its message.
  try {
    const parsed = typeof body === 'string' ? (JSON.parse(body) as { message?: unknown }) : (body as { message?: unknown });
    if (typeof parsed?.message === 'string') return parsed.message.slice(0, 300);
  } catch {
    // not JSON: fall through to the raw text
  }
  return text.slice(0, 300);
}

/** An answer with an error status. */
export class ApiStatusError extends Error implements StatusCause {
  readonly code: number;
  readonly body: unknown;
  constructor(code: number, body: unknown) {
    super(`HTTP ${code}`);
    this.name = 'ApiStatusError';
    this.code = code;
    this.body = body;
  }
}

/** Where the API server is and how to authenticate to it. */
export interface Connection {
  /** The server URL without a trailing slash, e.g. `https://10.96.0.1:443`. */
  readonly server: string;
  readonly ca?: string;
  readonly cert?: string;
  readonly key?: string;
  readonly insecureSkipTlsVerify: boolean;
  readonly tlsServerName?: string;
  /** Headers for each call (Authorization); read per call so a rotated token file is picked up. */
  readonly authHeaders: () => Record<string, string>;
}

const SERVICE_ACCOUNT_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';
const TOKEN_REREAD_MS = 60_000;

/** A token file read at most once a minute, as client-go does for bound service-account tokens. */
function tokenFile(path: string, now: () => number = Date.now): () => Record<string, string> {
  let token = readFileSync(path, 'utf8').trim();
  let readAt = now();
  return () => {
    if (now() - readAt >= TOKEN_REREAD_MS) {
      try {
        token = readFileSync(path, 'utf8').trim();
      } catch {
        // keep the last token; the API server says whether it still holds
      }
      readAt = now();
    }
    return { Authorization: `Bearer ${token}` };
  };
}

/** The in-cluster connection (KUBERNETES_SERVICE_HOST/PORT and the mounted service account). */
export function inClusterConnection(env: NodeJS.ProcessEnv, dir: string = SERVICE_ACCOUNT_DIR): Connection {
  const host = env['KUBERNETES_SERVICE_HOST'] ?? '';
  const port = env['KUBERNETES_SERVICE_PORT'] ?? '';
  if (host === '' || port === '') throw new Error('KUBERNETES_SERVICE_HOST or KUBERNETES_SERVICE_PORT is not set');
  return {
    server: `https://${host.includes(':') ? `[${host}]` : host}:${port}`,
    ca: readFileSync(`${dir}/ca.crt`, 'utf8'),
    insecureSkipTlsVerify: false,
    authHeaders: tokenFile(`${dir}/token`),
  };
}

interface KubeconfigCluster {
  server?: string;
  'certificate-authority'?: string;
  'certificate-authority-data'?: string;
  'insecure-skip-tls-verify'?: boolean;
  'tls-server-name'?: string;
  'proxy-url'?: string;
  [key: string]: unknown;
}
interface KubeconfigUser {
  token?: string;
  tokenFile?: string;
  'client-certificate'?: string;
  'client-certificate-data'?: string;
  'client-key'?: string;
  'client-key-data'?: string;
  username?: string;
  password?: string;
  exec?: unknown;
  'auth-provider'?: unknown;
  as?: unknown;
  'as-groups'?: unknown;
  'as-uid'?: unknown;
  'as-user-extra'?: unknown;
  [key: string]: unknown;
}

/**
 * The connection a kubeconfig file's current context describes; `{ needs }` when it takes more
 * than this module does (then @kubernetes/client-node is used). Throws when the file is unusable.
 */
export function kubeconfigConnection(path: string, text: string = readFileSync(path, 'utf8')): Connection | { needs: string } {
  const doc = (parse(text) ?? {}) as {
    'current-context'?: string;
    contexts?: { name?: string; context?: { cluster?: string; user?: string } }[];
    clusters?: { name?: string; cluster?: KubeconfigCluster }[];
    users?: { name?: string; user?: KubeconfigUser }[];
  };
  const contexts = doc.contexts ?? [];
  const contextName = doc['current-context'] ?? (contexts.length === 1 ? contexts[0]?.name : undefined);
  const context = contexts.find((c) => c.name === contextName)?.context;
  if (!context) throw new Error(`kubeconfig ${path}: no current context${contextName ? ` named ${JSON.stringify(contextName)}` : ''}`);
  const cluster = (doc.clusters ?? []).find((c) => c.name === context.cluster)?.cluster;
  if (!cluster?.server) throw new Error(`kubeconfig ${path}: cluster ${JSON.stringify(context.cluster)} has no server`);
  const user: KubeconfigUser = (doc.users ?? []).find((u) => u.name === context.user)?.user ?? {};
  for (const key of ['exec', 'auth-provider', 'as', 'as-groups', 'as-uid', 'as-user-extra'] as const) {
    if (user[key] !== undefined && user[key] !== null) return { needs: `user.${key}` };
  }
  if (cluster['proxy-url']) return { needs: 'cluster.proxy-url' };
  const base = dirname(resolve(path));
  const file = (p: string): string => readFileSync(resolve(base, p), 'utf8');
  const data = (b64: string): string => Buffer.from(b64, 'base64').toString('utf8');
  const pem = (inline: string | undefined, ref: string | undefined): string | undefined =>
    inline ? data(inline) : ref ? file(ref) : undefined;
  let authHeaders: () => Record<string, string> = () => ({});
  if (user.token) {
    const header = { Authorization: `Bearer ${user.token}` };
    authHeaders = () => header;
  } else if (user.tokenFile) {
    authHeaders = tokenFile(resolve(base, user.tokenFile));
  } else if (user.username !== undefined && user.password !== undefined) {
    const header = { Authorization: `Basic ${Buffer.from(`${user.username}:${user.password}`).toString('base64')}` };
    authHeaders = () => header;
  }
  const ca = pem(cluster['certificate-authority-data'], cluster['certificate-authority']);
  const cert = pem(user['client-certificate-data'], user['client-certificate']);
  const key = pem(user['client-key-data'], user['client-key']);
  return {
    server: cluster.server.replace(/\/+$/, ''),
    ...(ca !== undefined && { ca }),
    ...(cert !== undefined && { cert }),
    ...(key !== undefined && { key }),
    insecureSkipTlsVerify: cluster['insecure-skip-tls-verify'] === true,
    ...(cluster['tls-server-name'] && { tlsServerName: cluster['tls-server-name'] }),
    authHeaders,
  };
}

const MAX_ANSWER_BYTES = 8 * 1024 * 1024;

/** One JSON call; resolves with the parsed answer, rejects with ApiStatusError on 4xx/5xx. */
export type Call = (method: string, path: string, opts: { body?: unknown; contentType?: string; signal: AbortSignal }) => Promise<unknown>;

/** How one call goes out: the agent (TLS, proxy) and the headers that authenticate it. */
export interface Transport {
  readonly agent: HttpAgent;
  readonly headers: Readonly<Record<string, string>>;
}

/** Calls over a fixed `Connection`: one keep-alive agent, its auth headers read per call. */
export function httpCaller(conn: Connection): Call {
  const secure = new URL(conn.server).protocol === 'https:';
  const agent = secure
    ? new HttpsAgent({
        keepAlive: true,
        ...(conn.ca !== undefined && { ca: conn.ca }),
        ...(conn.cert !== undefined && { cert: conn.cert }),
        ...(conn.key !== undefined && { key: conn.key }),
        rejectUnauthorized: !conn.insecureSkipTlsVerify,
        ...(conn.tlsServerName !== undefined && { servername: conn.tlsServerName }),
      })
    : new HttpAgent({ keepAlive: true });
  return transportCaller(conn.server, () => ({ agent, headers: conn.authHeaders() }));
}

/** Calls to `server`, each sent as `transport()` says (it may be async: an exec credential plugin). */
export function transportCaller(server: string, transport: () => Transport | Promise<Transport>): Call {
  const url = new URL(server);
  const secure = url.protocol === 'https:';
  if (!secure && url.protocol !== 'http:') throw new Error(`unsupported API server URL ${server}`);
  const prefix = url.pathname.replace(/\/+$/, '');
  return async (method, path, opts) => {
    const { agent, headers: auth } = await transport();
    return new Promise((resolvePromise, reject) => {
      const payload = opts.body === undefined ? undefined : Buffer.from(JSON.stringify(opts.body));
      const headers: Record<string, string | number> = {
        Accept: 'application/json',
        'User-Agent': 'jobmetrics-webhook',
        ...auth,
        ...(payload !== undefined && { 'Content-Type': opts.contentType ?? 'application/json', 'Content-Length': payload.length }),
      };
      const onAnswer = (res: IncomingMessage): void => {
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (c: Buffer) => {
          size += c.length;
          if (size > MAX_ANSWER_BYTES) {
            res.destroy(new Error(`answer larger than ${MAX_ANSWER_BYTES} bytes`));
            return;
          }
          chunks.push(c);
        });
        res.on('error', reject);
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let body: unknown = text;
          if (/\bjson\b/.test(String(res.headers['content-type'] ?? ''))) {
            try {
              body = JSON.parse(text);
            } catch {
              // keep the text: the error says what came back
            }
          }
          const status = res.statusCode ?? 0;
          if (status >= 200 && status < 300) resolvePromise(body);
          else reject(new ApiStatusError(status, body));
        });
      };
      const options = { host: url.hostname.replace(/^\[|\]$/g, ''), port: url.port || (secure ? 443 : 80), method, path: prefix + path, headers, agent, signal: opts.signal };
      const req = secure ? httpsRequest(options, onAnswer) : httpRequest(options, onAnswer);
      req.on('error', (e) => reject(opts.signal.aborted ? (opts.signal.reason ?? e) : e));
      req.end(payload);
    });
  };
}

const seg = encodeURIComponent;

/** The webhook's calls over `call`. `timeoutMs` bounds each one. */
export function kubeApiOver(server: string, call: Call, timeoutMs: number, client = 'node:https'): KubeApi {
  const signal = (extra?: AbortSignal): AbortSignal => {
    const timeout = AbortSignal.timeout(timeoutMs);
    return extra ? AbortSignal.any([timeout, extra]) : timeout;
  };
  const statusOf = (e: unknown): number | undefined => (e instanceof ApiStatusError ? e.code : undefined);
  const secretPath = (namespace: string, name?: string): string =>
    `/api/v1/namespaces/${seg(namespace)}/secrets${name === undefined ? '' : `/${seg(name)}`}`;
  const configPath = (name: string): string => `/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/${seg(name)}`;

  const bootstrap: BootstrapApi = {
    async readSecret(namespace, name) {
      try {
        const s = (await call('GET', secretPath(namespace, name), { signal: signal() })) as { data?: Record<string, string>; metadata?: { resourceVersion?: string } };
        return { ...(s.data !== undefined && { data: s.data }), ...(s.metadata?.resourceVersion !== undefined && { resourceVersion: s.metadata.resourceVersion }) };
      } catch (e) {
        if (statusOf(e) === 404) return null;
        throw new KubeApiError('get', `secret ${namespace}/${name}`, e);
      }
    },
    async createSecret(namespace, name, data) {
      try {
        await call('POST', secretPath(namespace), {
          signal: signal(),
          body: {
            apiVersion: 'v1',
            kind: 'Secret',
            type: 'kubernetes.io/tls',
            metadata: { name, namespace, labels: { 'app.kubernetes.io/name': 'jobmetrics', 'app.kubernetes.io/component': 'webhook' } },
            data,
          },
        });
        return 'created';
      } catch (e) {
        if (statusOf(e) === 409) return 'exists';
        throw new KubeApiError('create', `secret ${namespace}/${name}`, e);
      }
    },
    async replaceSecret(namespace, name, data, resourceVersion) {
      try {
        await call('PUT', secretPath(namespace, name), {
          signal: signal(),
          body: { apiVersion: 'v1', kind: 'Secret', type: 'kubernetes.io/tls', metadata: { name, namespace, resourceVersion }, data },
        });
        return 'replaced';
      } catch (e) {
        if (statusOf(e) === 409) return 'conflict';
        throw new KubeApiError('update', `secret ${namespace}/${name}`, e);
      }
    },
    async readWebhookConfiguration(name) {
      try {
        const c = (await call('GET', configPath(name), { signal: signal() })) as { webhooks?: { name: string; clientConfig?: { caBundle?: string } }[] };
        const view: WebhookConfigView = {
          webhooks: (c.webhooks ?? []).map((w) => ({
            name: w.name,
            clientConfig: w.clientConfig?.caBundle !== undefined ? { caBundle: w.clientConfig.caBundle } : {},
          })),
        };
        return view;
      } catch (e) {
        if (statusOf(e) === 404) return null;
        throw new KubeApiError('get', `mutatingwebhookconfiguration ${name}`, e);
      }
    },
    async patchWebhookConfiguration(name, ops: Operation[]) {
      try {
        await call('PATCH', configPath(name), { signal: signal(), body: ops, contentType: 'application/json-patch+json' });
      } catch (e) {
        throw new KubeApiError('patch', `mutatingwebhookconfiguration ${name} caBundle`, e);
      }
    },
  };

  return {
    server,
    client,
    bootstrap,
    async serverVersion() {
      try {
        const v = (await call('GET', '/version', { signal: signal() })) as { major?: string; minor?: string; gitVersion?: string };
        return { ok: true, version: { ...(v.major !== undefined && { major: v.major }), ...(v.minor !== undefined && { minor: v.minor }), ...(v.gitVersion !== undefined && { gitVersion: v.gitVersion }) } };
      } catch (e) {
        return { ok: false, error: new KubeApiError('get', `${server}/version`, e).message };
      }
    },
    async readPod(namespace, name) {
      try {
        return await call('GET', `/api/v1/namespaces/${seg(namespace)}/pods/${seg(name)}`, { signal: signal() });
      } catch (e) {
        throw new KubeApiError('get', `pod ${namespace}/${name}`, e);
      }
    },
    fetchJob: async (namespace, name, abort) => {
      try {
        const job = (await call('GET', `/apis/batch/v1/namespaces/${seg(namespace)}/jobs/${seg(name)}`, { signal: signal(abort) })) as {
          metadata?: { uid?: string; ownerReferences?: { apiVersion?: string; kind?: string; name?: string; controller?: boolean }[] };
        };
        return {
          ...(job.metadata?.uid !== undefined && { uid: job.metadata.uid }),
          ownerReferences: (job.metadata?.ownerReferences ?? []).map((o) => ({
            ...(o.apiVersion !== undefined && { apiVersion: o.apiVersion }),
            ...(o.kind !== undefined && { kind: o.kind }),
            ...(o.name !== undefined && { name: o.name }),
            ...(o.controller !== undefined && { controller: o.controller }),
          })),
        };
      } catch (e) {
        if (statusOf(e) === 404) return null;
        throw new KubeApiError('get', `job ${namespace}/${name}`, e);
      }
    },
  };
}

/**
 * The client from a kubeconfig file or the in-cluster service account, or why there is none.
 * Creating it makes no call; the first call shows whether the API server answers.
 */
export async function createKubeApi(kube: WebhookSettings['kube'], env: NodeJS.ProcessEnv = process.env): Promise<KubeApi | { unavailable: string }> {
  let conn: Connection | { needs: string };
  try {
    if (kube.kubeconfig !== undefined) conn = kubeconfigConnection(kube.kubeconfig);
    else if (kube.inCluster) conn = inClusterConnection(env);
    else return { unavailable: 'no kubeconfig set and not running in a cluster (KUBERNETES_SERVICE_HOST unset)' };
  } catch (cause) {
    return { unavailable: `cannot load the API client configuration: ${(cause as Error).message}` };
  }
  if ('needs' in conn) return (await import('./kube-api-client-node.ts')).createClientNodeApi(kube, `@kubernetes/client-node (the kubeconfig's ${conn.needs})`);
  try {
    return kubeApiOver(conn.server, httpCaller(conn), kube.timeoutMs);
  } catch (cause) {
    return { unavailable: `cannot load the API client configuration: ${(cause as Error).message}` };
  }
}
