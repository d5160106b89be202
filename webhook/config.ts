/**
 * The webhook's settings (docs/webhook.md): one YAML file (`--config FILE` or
 * JOBMETRICS_CONFIG), each setting overridable by its environment variable, every default in the
 * table below, all validated once at start. Nothing else in the webhook reads process.env.
 *
 * The defaults are the values the shipped manifests use, so the webhook starts with no file at all.
 */
import { parse as parseYaml } from 'yaml';
import type { CommandLineSpec } from '../shared/command-line.ts';
import { formatDuration, parseBoundedDuration } from '../shared/duration.ts';
import type { Level } from '../shared/log.ts';
import { DEFAULT_TOKEN_AUDIENCE, INTERVAL } from '../shared/names.ts';
import { SIDECAR_MEMORY } from '../shared/sidecar-memory.ts';
import { VERSION } from '../shared/version.ts';
import { MODE_SETTINGS, type ModeSetting } from './mode.ts';

export type PullPolicy = 'Always' | 'IfNotPresent' | 'Never';

export interface SidecarSettings {
  readonly image: string;
  readonly imagePullPolicy: PullPolicy;
  /**
   * Secrets (by name) the kubelet may use to pull the sidecar image, added to an injected pod's
   * imagePullSecrets when it does not list them: each must exist in the pod's namespace.
   */
  readonly imagePullSecrets: readonly string[];
  readonly remoteWriteUrl: string;
  /** Durations as the sidecar reads them (`1s`, `10s`), already validated and normalised. */
  readonly interval: string;
  readonly pushInterval: string;
  /** The most a final flush may take; mutate.ts cuts it to fit each pod's grace period. */
  readonly flushTimeoutMs: number;
  /**
   * The audience of the projected service-account token mounted into the sidecar, which it
   * presents to the gateway (docs/gateway.md "Who may write what"); empty: no token is mounted.
   */
  readonly tokenAudience: string;
  readonly resources: {
    readonly requests: Readonly<Record<string, string>>;
    readonly limits: Readonly<Record<string, string>>;
  };
}

export interface WebhookSettings {
  readonly listen: { readonly host: string; readonly port: number };
  /** Serve tls.crt/tls.key from here; absent: bootstrap a certificate through the API. */
  readonly tlsDir?: string;
  readonly mode: ModeSetting;
  readonly maxRequestBytes: number;
  /** Guards against slow and idle clients; docs/webhook.md "Limits and load shedding". */
  readonly limits: ConnectionLimits;
  readonly shutdownDelayMs: number;
  readonly shutdownGraceMs: number;
  readonly logLevel: Level;
  readonly kube: {
    /** A kubeconfig file; absent: the in-cluster service account, when in a cluster. */
    readonly kubeconfig?: string;
    readonly inCluster: boolean;
    readonly timeoutMs: number;
  };
  readonly bootstrap: {
    readonly serviceName: string;
    readonly serviceNamespace: string;
    readonly secretName: string;
    readonly webhookConfigurationName: string;
  };
  readonly workloadLookup: { readonly enabled: boolean; readonly timeoutMs: number; readonly cacheTtlMs: number };
  /** Namespaces whose pods are never injected, whatever their labels (webhook/mutate.ts). */
  readonly excludedNamespaces: readonly string[];
  /**
   * `sidecar.image` is the default (the setting was left empty); in a Pod, webhook/main.ts
   * replaces it by the image beside the webhook's own (webhook/sidecar-image.ts), read from here.
   */
  readonly sidecarImageFollows?: { readonly namespace: string; readonly pod: string; readonly container: string };
  readonly sidecar: SidecarSettings;
}

/** The webhook's container in its Deployment (manifests/base/webhook-deployment.yaml). */
export const WEBHOOK_CONTAINER = 'webhook';

/**
 * The namespaces the webhook never injects into by default: the control plane's own
 * (https://kubernetes.io/docs/concepts/overview/working-with-objects/namespaces/#initial-namespaces)
 * and the one jobmetrics is installed in, whose pods (the webhook, the gateway, the aggregator)
 * must never depend on the webhook. The MutatingWebhookConfiguration's namespaceSelector lists the
 * same names; this list is the webhook's own check, for an API server configured otherwise.
 */
export const DEFAULT_EXCLUDED_NAMESPACES: readonly string[] = ['kube-system', 'kube-public', 'kube-node-lease', 'jobmetrics'];

export interface ConnectionLimits {
  /** Request-body bytes held at once, over all requests: read, being reviewed, or declared and awaited. */
  readonly maxInFlightBytes: number;
  /** Open connections, idle ones included; a connection beyond it is closed at once. */
  readonly maxConnections: number;
  /** From the first byte of a request (or of the TLS handshake) to the end of its headers. */
  readonly headersTimeoutMs: number;
  /** From the first byte of a request to the end of its body. */
  readonly requestTimeoutMs: number;
}

/** One setting: where it lives in the YAML file, its env variable, its default, how to read it. */
export interface SettingSpec {
  readonly key: string;
  readonly env: string;
  /** As written in YAML or env; `''` means "not set". */
  readonly default: string;
  readonly doc: string;
  readonly parse: (raw: string) => { ok: true; value: unknown } | { ok: false; error: string };
}

type Parsed = { ok: true; value: unknown } | { ok: false; error: string };
const ok = (value: unknown): Parsed => ({ ok: true, value });
const bad = (error: string): Parsed => ({ ok: false, error });

const text: SettingSpec['parse'] = (raw) => ok(raw);
const oneOf =
  (values: readonly string[]): SettingSpec['parse'] =>
  (raw) =>
    values.includes(raw) ? ok(raw) : bad(`"${raw}" must be one of ${values.join(', ')}`);
const duration =
  (minMs: number, maxMs: number, as: 'ms' | 'text'): SettingSpec['parse'] =>
  (raw) => {
    const r = parseBoundedDuration(raw, { minMs, maxMs });
    if (!r.ok) return bad(r.error);
    return ok(as === 'ms' ? r.ms : formatDuration(r.ms));
  };
const bool: SettingSpec['parse'] = (raw) =>
  raw === 'true' ? ok(true) : raw === 'false' ? ok(false) : bad(`"${raw}" must be true or false`);
const dnsLabel: SettingSpec['parse'] = (raw) =>
  /^(?=.{1,63}$)[a-z0-9]([-a-z0-9]*[a-z0-9])?$/.test(raw) ? ok(raw) : bad(`"${raw}" must be a DNS-1123 label`);
const dnsSubdomain: SettingSpec['parse'] = (raw) =>
  /^(?=.{1,253}$)[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/.test(raw)
    ? ok(raw)
    : bad(`"${raw}" must be a DNS-1123 subdomain`);
// Comma-separated namespace names (DNS-1123 labels), blanks around them ignored; '' for none.
const namespaceList: SettingSpec['parse'] = (raw) => {
  const names = raw.split(',').map((n) => n.trim()).filter((n) => n !== '');
  const badName = names.find((n) => !dnsLabel(n).ok);
  return badName === undefined ? ok(names) : bad(`"${badName}" is not a namespace name (DNS-1123 label)`);
};
const secretList: SettingSpec['parse'] = (raw) => {
  const names = raw.split(',').map((n) => n.trim()).filter((n) => n !== '');
  const badName = names.find((n) => !dnsSubdomain(n).ok);
  return badName === undefined ? ok(names) : bad(`"${badName}" is not a Secret name (DNS-1123 subdomain)`);
};
const httpUrl: SettingSpec['parse'] = (raw) => {
  try {
    const u = new URL(raw);
    if (u.protocol !== 'http:' && u.protocol !== 'https:') return bad(`"${raw}" must be an http or https URL`);
    return ok(raw);
  } catch {
    return bad(`"${raw}" is not a URL`);
  }
};
const listen: SettingSpec['parse'] = (raw) => {
  // host:port, [v6]:port
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(raw);
  const port = Number(m?.[3]);
  if (!m || port > 65535) return bad(`"${raw}" must be host:port, e.g. 0.0.0.0:8443 or [::]:8443`);
  return ok({ host: m[1] ?? m[2] ?? '', port });
};
const UNIT: Readonly<Record<string, number>> = { '': 1, Ki: 1 << 10, Mi: 1 << 20, Gi: 1 << 30 };
const bytes =
  (min: string, max: string): SettingSpec['parse'] =>
  (raw) => {
    const amount = (text: string): number | undefined => {
      const m = /^(\d+)(Ki|Mi|Gi)?$/.exec(text);
      return m ? Number(m[1]) * (UNIT[m[2] ?? ''] ?? 1) : undefined;
    };
    const n = amount(raw);
    if (n === undefined) return bad(`"${raw}" must be a byte count like 3145728 or 3Mi`);
    if (n < (amount(min) ?? 0) || n > (amount(max) ?? Infinity)) return bad(`"${raw}" is outside ${min}…${max}`);
    return ok(n);
  };
const integer =
  (min: number, max: number): SettingSpec['parse'] =>
  (raw) => {
    if (!/^\d+$/.test(raw)) return bad(`"${raw}" must be a whole number`);
    const n = Number(raw);
    return n < min || n > max ? bad(`"${raw}" is outside ${min}…${max}`) : ok(n);
  };
// A Kubernetes resource quantity (k8s.io/apimachinery resource.Quantity), or '' for none.
/** A token audience is any string (TokenRequestSpec); printable ASCII without spaces keeps it one word in logs and flags. */
const audience: SettingSpec['parse'] = (raw) =>
  raw === '' || /^[\x21-\x7e]{1,256}$/.test(raw) ? ok(raw) : bad(`"${raw}" must be empty or 1…256 printable ASCII characters without spaces`);
const quantity: SettingSpec['parse'] = (raw) =>
  raw === '' || /^[0-9]+(\.[0-9]+)?(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei|e[0-9]+)?$/.test(raw)
    ? ok(raw)
    : bad(`"${raw}" is not a Kubernetes quantity like 10m, 0.5, 64Mi`);

/** The sidecar image outside a Pod (tests, the demo): the published name, tagged with package.json's version. */
export const DEFAULT_SIDECAR_IMAGE = `ghcr.io/jobmetrics/jobmetrics-sidecar:${VERSION}`;

/**
 * Every setting, its default and its env variable: `--help` lists them, and docs/settings.md is
 * rendered from this list (`npm run render-settings`; a unit test checks it is up to date).
 */
export const SETTINGS: readonly SettingSpec[] = [
  { key: 'listen', env: 'JOBMETRICS_LISTEN', default: '0.0.0.0:8443', doc: 'HTTPS listen address, host:port', parse: listen },
  { key: 'tlsDir', env: 'JOBMETRICS_TLS_DIR', default: '', doc: 'directory with tls.crt and tls.key (a mounted kubernetes.io/tls Secret); reloaded on change. Empty: bootstrap through the API', parse: text },
  { key: 'mode', env: 'JOBMETRICS_SIDECAR_MODE', default: 'auto', doc: 'sidecar mode: auto (native on Kubernetes >= 1.29, else legacy), native, legacy', parse: oneOf(MODE_SETTINGS) },
  { key: 'maxRequestBytes', env: 'JOBMETRICS_MAX_REQUEST_BYTES', default: '3Mi', doc: 'largest AdmissionReview body accepted; larger gets 413 (the API server itself accepts at most 3 MiB per request)', parse: bytes('64Ki', '64Mi') },
  { key: 'maxInFlightBytes', env: 'JOBMETRICS_MAX_IN_FLIGHT_BYTES', default: '32Mi', doc: 'request-body bytes held at once over all requests (Content-Length is reserved before the body is read); a request beyond it gets 503 at once. At least twice maxRequestBytes', parse: bytes('1Mi', '1Gi') },
  { key: 'maxConnections', env: 'JOBMETRICS_MAX_CONNECTIONS', default: '512', doc: 'open connections, idle keep-alive ones included; one beyond it is closed at once', parse: integer(1, 65_535) },
  { key: 'headersTimeout', env: 'JOBMETRICS_HEADERS_TIMEOUT', default: '5s', doc: 'TLS handshake, and the first byte of a request to the end of its headers; then 408 and the connection is closed', parse: duration(1_000, 60_000, 'ms') },
  { key: 'requestTimeout', env: 'JOBMETRICS_REQUEST_TIMEOUT', default: '10s', doc: "the first byte of a request to the end of its body; then 408 and the connection is closed. At least headersTimeout; above the webhook's timeoutSeconds (5), which abandons the call anyway", parse: duration(1_000, 300_000, 'ms') },
  { key: 'shutdownDelay', env: 'JOBMETRICS_SHUTDOWN_DELAY', default: '5s', doc: "on SIGTERM, how long to keep accepting reviews while reporting not ready, so the Service's endpoints drop this pod before it stops listening", parse: duration(0, 60_000, 'ms') },
  { key: 'shutdownGrace', env: 'JOBMETRICS_SHUTDOWN_GRACE', default: '20s', doc: 'on SIGTERM, how long in-flight reviews may take before connections are closed', parse: duration(0, 300_000, 'ms') },
  { key: 'logLevel', env: 'JOBMETRICS_LOG_LEVEL', default: 'info', doc: 'debug, info, warn or error', parse: oneOf(['debug', 'info', 'warn', 'error']) },
  { key: 'kube.kubeconfig', env: 'KUBECONFIG', default: '', doc: 'kubeconfig file for API calls; empty: the in-cluster service account', parse: text },
  { key: 'kube.timeout', env: 'JOBMETRICS_API_TIMEOUT', default: '5s', doc: 'timeout of each API call at start (version, Secret, caBundle)', parse: duration(100, 60_000, 'ms') },
  { key: 'bootstrap.serviceName', env: 'JOBMETRICS_SERVICE_NAME', default: 'jobmetrics-webhook', doc: 'the webhook Service; its DNS names go into the bootstrapped certificate', parse: dnsLabel },
  { key: 'bootstrap.serviceNamespace', env: 'JOBMETRICS_SERVICE_NAMESPACE', default: 'jobmetrics', doc: 'namespace of the Service and the TLS Secret', parse: dnsLabel },
  { key: 'bootstrap.secretName', env: 'JOBMETRICS_TLS_SECRET', default: 'jobmetrics-webhook-tls', doc: 'Secret holding the bootstrapped CA and serving certificate, shared by replicas', parse: dnsSubdomain },
  { key: 'bootstrap.webhookConfigurationName', env: 'JOBMETRICS_WEBHOOK_CONFIGURATION', default: 'jobmetrics', doc: 'MutatingWebhookConfiguration whose caBundle the bootstrap writes', parse: dnsSubdomain },
  { key: 'workloadLookup.enabled', env: 'JOBMETRICS_WORKLOAD_LOOKUP', default: 'true', doc: "GET the pod's Job to find the CronJob that owns it (needs get on jobs)", parse: bool },
  { key: 'workloadLookup.timeout', env: 'JOBMETRICS_WORKLOAD_LOOKUP_TIMEOUT', default: '1s', doc: 'timeout of that GET; on timeout the CronJob name pattern decides', parse: duration(50, 10_000, 'ms') },
  { key: 'workloadLookup.cacheTtl', env: 'JOBMETRICS_WORKLOAD_LOOKUP_CACHE_TTL', default: '10m', doc: 'how long a Job\'s owner is remembered', parse: duration(0, 24 * 3_600_000, 'ms') },
  { key: 'pod.name', env: 'JOBMETRICS_POD_NAME', default: '', doc: "this replica's Pod (the Deployment sets it from the downward API), whose webhook container's image the sidecar image follows; empty: not in a Pod", parse: text },
  { key: 'pod.namespace', env: 'JOBMETRICS_POD_NAMESPACE', default: '', doc: "that Pod's namespace (downward API)", parse: text },
  { key: 'excludedNamespaces', env: 'JOBMETRICS_EXCLUDED_NAMESPACES', default: DEFAULT_EXCLUDED_NAMESPACES.join(','), doc: "comma-separated namespaces whose pods are never injected, not even when opted in (skip reason namespace-excluded); empty: none. Keep it in step with the MutatingWebhookConfiguration's namespaceSelector", parse: namespaceList },
  { key: 'sidecar.image', env: 'JOBMETRICS_SIDECAR_IMAGE', default: '', doc: `sidecar image; empty: the webhook's own image with jobmetrics-webhook replaced by jobmetrics-sidecar (same registry, path and tag), read from its Pod (pod.name), so one image setting moves both; outside a Pod ${DEFAULT_SIDECAR_IMAGE}`, parse: text },
  { key: 'sidecar.imagePullPolicy', env: 'JOBMETRICS_SIDECAR_IMAGE_PULL_POLICY', default: 'IfNotPresent', doc: 'Always, IfNotPresent or Never', parse: oneOf(['Always', 'IfNotPresent', 'Never']) },
  { key: 'sidecar.imagePullSecrets', env: 'JOBMETRICS_SIDECAR_IMAGE_PULL_SECRETS', default: '', doc: "comma-separated Secrets added to an injected pod's imagePullSecrets (when absent) so its node can pull the sidecar image from a private registry; each must exist in every namespace whose Jobs get the sidecar; empty: none", parse: secretList },
  { key: 'sidecar.remoteWriteUrl', env: 'JOBMETRICS_SIDECAR_REMOTE_WRITE_URL', default: 'http://jobmetrics-gateway.jobmetrics.svc:8480/api/v1/write', doc: "the remote-write URL given to every sidecar: the gateway in front of the aggregator", parse: httpUrl },
  { key: 'sidecar.interval', env: 'JOBMETRICS_SIDECAR_INTERVAL', default: formatDuration(INTERVAL.defaultMs), doc: 'default scrape interval (100ms … 60s); a pod can set jobmetrics.io/interval', parse: duration(INTERVAL.minMs, INTERVAL.maxMs, 'text') },
  { key: 'sidecar.pushInterval', env: 'JOBMETRICS_SIDECAR_PUSH_INTERVAL', default: '10s', doc: 'how often a running sidecar delivers its latest values', parse: duration(100, 300_000, 'text') },
  { key: 'sidecar.flushTimeout', env: 'JOBMETRICS_SIDECAR_FLUSH_TIMEOUT', default: '10s', doc: 'the most time the final delivery may take after the main container exits (less in pods whose grace period is shorter)', parse: duration(100, 600_000, 'ms') },
  { key: 'sidecar.tokenAudience', env: 'JOBMETRICS_TOKEN_AUDIENCE', default: DEFAULT_TOKEN_AUDIENCE, doc: "audience of the service-account token mounted into the sidecar alone, which the gateway verifies to set each write's namespace and pod (empty: no token, for a target that does not check)", parse: audience },
  { key: 'sidecar.resources.requests.cpu', env: 'JOBMETRICS_SIDECAR_CPU_REQUEST', default: '10m', doc: 'sidecar CPU request (empty: none)', parse: quantity },
  { key: 'sidecar.resources.requests.memory', env: 'JOBMETRICS_SIDECAR_MEMORY_REQUEST', default: '48Mi', doc: 'sidecar memory request (empty: none)', parse: quantity },
  { key: 'sidecar.resources.limits.cpu', env: 'JOBMETRICS_SIDECAR_CPU_LIMIT', default: '', doc: 'sidecar CPU limit (empty: none, so the final flush is never throttled)', parse: quantity },
  { key: 'sidecar.resources.limits.memory', env: 'JOBMETRICS_SIDECAR_MEMORY_LIMIT', default: SIDECAR_MEMORY.limit, doc: "sidecar memory limit (empty: none); the sidecar derives its body and series limits and its heap cap from the default (shared/sidecar-memory.ts, docs/semantics.md \"The sidecar's memory\"): do not set less", parse: quantity },
];

/** The binary's command line: `--help` lists every setting with its key, docs/settings.md is rendered from it. */
export const WEBHOOK_COMMAND_LINE: CommandLineSpec = {
  name: 'jobmetrics-webhook',
  summary: 'the mutating admission webhook that adds the jobmetrics sidecar to Job pods',
  options: [{ flag: '--config', value: 'file', doc: 'the settings file (YAML, manifests/base/webhook-settings.yaml); the environment overrides it' }],
  settings: SETTINGS.map((s) => ({ env: s.env, default: s.default, doc: `(${s.key}) ${s.doc}` })),
  docs: 'docs/settings.md "jobmetrics-webhook"',
};

/** The file's own location; not a setting inside the file. */
export const CONFIG_ENV = 'JOBMETRICS_CONFIG';

export interface ConfigError {
  /** `key (ENV)`, or the file, naming what is wrong. */
  readonly setting: string;
  readonly message: string;
}

export type LoadResult =
  | { readonly ok: true; readonly settings: WebhookSettings; readonly source: string }
  | { readonly ok: false; readonly errors: readonly ConfigError[] };

export interface LoadInput {
  /** The settings file `--config` names (shared/command-line.ts reads the command line); else JOBMETRICS_CONFIG's. */
  readonly configPath?: string;
  readonly env: Readonly<Record<string, string | undefined>>;
  /** Injected so tests need no files; main passes fs.readFileSync. */
  readonly readFile: (path: string) => string;
}

export function formatConfigErrors(errors: readonly ConfigError[]): string {
  return errors.map((e) => `${e.setting}: ${e.message}`).join('; ');
}

/** Reads the file (if any), applies env overrides, validates everything, reports every error. */
export function loadSettings(input: LoadInput): LoadResult {
  const errors: ConfigError[] = [];
  const path = input.configPath ?? nonBlank(input.env[CONFIG_ENV]);

  let fileValues = new Map<string, string>();
  if (path !== undefined) {
    let textContent: string;
    try {
      textContent = input.readFile(path);
    } catch (cause) {
      return { ok: false, errors: [{ setting: path, message: `cannot read the settings file: ${(cause as Error).message}` }] };
    }
    const flat = flattenYaml(textContent, path);
    if ('errors' in flat) return { ok: false, errors: flat.errors };
    fileValues = flat.values;
  }

  const values = new Map<string, unknown>();
  /** `key (where it came from)`, as errors name a setting. */
  const named = new Map<string, string>();
  for (const spec of SETTINGS) {
    const fromEnv = input.env[spec.env];
    const raw = fromEnv !== undefined ? fromEnv.trim() : (fileValues.get(spec.key) ?? spec.default);
    const r = spec.parse(raw);
    named.set(spec.key, `${spec.key} (${fromEnv !== undefined ? spec.env : fileValues.has(spec.key) ? path : 'default'})`);
    if (r.ok) values.set(spec.key, r.value);
    else errors.push({ setting: `${spec.key} (${fromEnv !== undefined ? spec.env : (path ?? 'default')})`, message: r.error });
  }
  if (errors.length > 0) return { ok: false, errors };

  const str = (k: string): string => values.get(k) as string;
  const num = (k: string): number => values.get(k) as number;
  // Settings that only make sense together.
  if (num('maxInFlightBytes') < 2 * num('maxRequestBytes')) {
    errors.push({
      setting: named.get('maxInFlightBytes') ?? 'maxInFlightBytes',
      message: `${num('maxInFlightBytes')} bytes must be at least twice maxRequestBytes (${num('maxRequestBytes')}), so a largest review still leaves room for ordinary ones`,
    });
  }
  // node:http swaps the two when headersTimeout is the longer one: requestTimeout would then be
  // headersTimeout (node src/node_http_parser.cc, ConnectionsList::Expired).
  if (num('requestTimeout') < num('headersTimeout')) {
    errors.push({
      setting: named.get('requestTimeout') ?? 'requestTimeout',
      message: `${num('requestTimeout')} ms must be at least headersTimeout (${num('headersTimeout')} ms)`,
    });
  }
  if (errors.length > 0) return { ok: false, errors };
  const resources = (kind: 'requests' | 'limits'): Record<string, string> => {
    const out: Record<string, string> = {};
    for (const r of ['cpu', 'memory']) {
      const v = str(`sidecar.resources.${kind}.${r}`);
      if (v !== '') out[r] = v;
    }
    return out;
  };
  const tlsDir = str('tlsDir');
  const kubeconfig = str('kube.kubeconfig');
  const settings: WebhookSettings = {
    listen: values.get('listen') as WebhookSettings['listen'],
    ...(tlsDir !== '' && { tlsDir }),
    mode: values.get('mode') as ModeSetting,
    maxRequestBytes: num('maxRequestBytes'),
    limits: {
      maxInFlightBytes: num('maxInFlightBytes'),
      maxConnections: num('maxConnections'),
      headersTimeoutMs: num('headersTimeout'),
      requestTimeoutMs: num('requestTimeout'),
    },
    shutdownDelayMs: num('shutdownDelay'),
    shutdownGraceMs: num('shutdownGrace'),
    logLevel: values.get('logLevel') as Level,
    kube: {
      ...(kubeconfig !== '' && { kubeconfig }),
      // The in-cluster client reads these two; without them there is no service account to use.
      inCluster: nonBlank(input.env['KUBERNETES_SERVICE_HOST']) !== undefined && nonBlank(input.env['KUBERNETES_SERVICE_PORT']) !== undefined,
      timeoutMs: num('kube.timeout'),
    },
    bootstrap: {
      serviceName: str('bootstrap.serviceName'),
      serviceNamespace: str('bootstrap.serviceNamespace'),
      secretName: str('bootstrap.secretName'),
      webhookConfigurationName: str('bootstrap.webhookConfigurationName'),
    },
    workloadLookup: {
      enabled: values.get('workloadLookup.enabled') as boolean,
      timeoutMs: num('workloadLookup.timeout'),
      cacheTtlMs: num('workloadLookup.cacheTtl'),
    },
    excludedNamespaces: values.get('excludedNamespaces') as readonly string[],
    ...(str('sidecar.image') === '' && str('pod.name') !== '' && str('pod.namespace') !== '' && {
      sidecarImageFollows: { namespace: str('pod.namespace'), pod: str('pod.name'), container: WEBHOOK_CONTAINER },
    }),
    sidecar: {
      image: str('sidecar.image') === '' ? DEFAULT_SIDECAR_IMAGE : str('sidecar.image'),
      imagePullPolicy: str('sidecar.imagePullPolicy') as PullPolicy,
      imagePullSecrets: values.get('sidecar.imagePullSecrets') as readonly string[],
      remoteWriteUrl: str('sidecar.remoteWriteUrl'),
      interval: str('sidecar.interval'),
      pushInterval: str('sidecar.pushInterval'),
      flushTimeoutMs: num('sidecar.flushTimeout'),
      tokenAudience: str('sidecar.tokenAudience'),
      resources: { requests: resources('requests'), limits: resources('limits') },
    },
  };
  return { ok: true, settings, source: path ?? 'defaults' };
}

/** The settings with every default, as a test or a tool needs them. */
export function defaultSettings(): WebhookSettings {
  const r = loadSettings({ env: {}, readFile: () => '' });
  if (!r.ok) throw new Error(`built-in defaults are invalid: ${formatConfigErrors(r.errors)}`);
  return r.settings;
}

/**
 * The YAML document as `dotted.key -> string`. Unknown keys are errors: a misspelt setting that
 * silently keeps its default is the worst kind of configuration bug.
 */
function flattenYaml(content: string, path: string): { values: Map<string, string> } | { errors: ConfigError[] } {
  let doc: unknown;
  try {
    doc = parseYaml(content);
  } catch (cause) {
    return { errors: [{ setting: path, message: `not valid YAML: ${(cause as Error).message.split('\n')[0] ?? ''}` }] };
  }
  const values = new Map<string, string>();
  if (doc === null || doc === undefined) return { values };
  const known = new Set(SETTINGS.map((s) => s.key));
  const prefixes = new Set(SETTINGS.flatMap((s) => s.key.split('.').slice(0, -1).map((_, i, parts) => parts.slice(0, i + 1).join('.'))));
  const errors: ConfigError[] = [];
  const walk = (node: unknown, prefix: string): void => {
    if (typeof node !== 'object' || node === null || Array.isArray(node)) {
      errors.push({ setting: `${prefix || '(top level)'} (${path})`, message: 'must be a mapping' });
      return;
    }
    for (const [k, v] of Object.entries(node)) {
      const key = prefix === '' ? k : `${prefix}.${k}`;
      if (known.has(key)) {
        if (v === null || v === undefined) continue; // `key:` with no value keeps the default
        if (typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean') values.set(key, String(v).trim());
        else errors.push({ setting: `${key} (${path})`, message: 'must be a single value' });
      } else if (prefixes.has(key)) {
        if (v !== null && v !== undefined) walk(v, key);
      } else {
        errors.push({ setting: `${key} (${path})`, message: 'is not a known setting' });
      }
    }
  };
  walk(doc, '');
  return errors.length > 0 ? { errors } : { values };
}

function nonBlank(v: string | undefined): string | undefined {
  const t = v?.trim();
  return t === undefined || t === '' ? undefined : t;
}
