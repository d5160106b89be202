/**
 * The gateway's settings, parsed once from its environment (docs/gateway.md). Nothing else in the
 * gateway reads process.env; every default lives here. A setting the sidecar has too
 * (`JOBMETRICS_STALENESS`, `JOBMETRICS_LOG_LEVEL`) has the same name and meaning.
 */
import { envSettings, type CommandLineSpec } from '../shared/command-line.ts';
import { envReader, type ConfigError, type Env, type EnvReader } from '../shared/env-reader.ts';
import { DEFAULT_TOKEN_AUDIENCE } from '../shared/names.ts';
import { parseOverrides } from './namespace-limits.ts';
import { parseTrustedWriters } from './writer-identity.ts';

export interface GatewayConfig {
  /** host:port the gateway listens on for remote write. */
  readonly listen: { readonly host: string; readonly port: number };
  /** The aggregator's remote-write endpoint (vmagent's /api/v1/write, or the sharded tier's routers). */
  readonly aggregatorUrl: URL;
  /** The aggregator's `interval` (manifests/aggregator/stream-aggr.yaml): a 0 is flushed within it. */
  readonly aggregationIntervalMs: number;
  /** Added to the interval: the path to the aggregator (a router tier's queue) and clock slack. */
  readonly birthMarginMs: number;
  /** The aggregator's `staleness_interval`: a series unwritten that long is forgotten. */
  readonly stalenessMs: number;
  /** The most counter-like series whose birth is tracked at once (memory bound). */
  readonly maxTrackedSeries: number;
  /** Per-namespace limits before the aggregator (namespace-limits.ts). */
  readonly limits: { readonly maxSeries: number; readonly samplesPerSecond: number; readonly burstSeconds: number; readonly overrides: ReadonlyMap<string, { readonly maxSeries?: number; readonly samplesPerSecond?: number }> };
  /** The most bytes of a compressed request body, and of the body once decompressed. */
  readonly maxBodyBytes: number;
  readonly maxUncompressedBytes: number;
  /**
   * Who may write what (writer-identity.ts): `tokenreview` takes each write's namespace and pod from
   * its bearer token, as the API server vouches for it; `none` trusts the labels (a gateway no
   * pod can reach, as in the demo).
   */
  readonly writerAuth: { readonly mode: 'none' } | { readonly mode: 'tokenreview'; readonly audience: string; readonly trusted: ReadonlySet<string> };
  /**
   * The Secret with the credentials the gateway sends to the aggregator (aggregator-credentials.ts),
   * created when missing; undefined: it sends none.
   */
  readonly aggregatorCredentials: { readonly namespace: string; readonly name: string } | undefined;
  /** A kubeconfig file for the API server (TokenReview, the credentials Secret); undefined: in-cluster. */
  readonly kubeconfig: string | undefined;
  readonly logLevel: 'debug' | 'info';
}

export const GATEWAY_ENV = {
  listen: 'JOBMETRICS_LISTEN',
  aggregatorUrl: 'JOBMETRICS_AGGREGATOR_URL',
  aggregationInterval: 'JOBMETRICS_AGGREGATION_INTERVAL',
  birthMargin: 'JOBMETRICS_BIRTH_MARGIN',
  staleness: 'JOBMETRICS_STALENESS',
  maxTrackedSeries: 'JOBMETRICS_MAX_TRACKED_SERIES',
  maxSeriesPerNamespace: 'JOBMETRICS_MAX_SERIES_PER_NAMESPACE',
  maxSamplesPerSecondPerNamespace: 'JOBMETRICS_MAX_SAMPLES_PER_SECOND_PER_NAMESPACE',
  namespaceLimits: 'JOBMETRICS_NAMESPACE_LIMITS',
  writerAuth: 'JOBMETRICS_WRITER_AUTH',
  tokenAudience: 'JOBMETRICS_TOKEN_AUDIENCE',
  trustedWriters: 'JOBMETRICS_TRUSTED_WRITERS',
  aggregatorCredentials: 'JOBMETRICS_AGGREGATOR_CREDENTIALS',
  kubeconfig: 'KUBECONFIG',
  logLevel: 'JOBMETRICS_LOG_LEVEL',
} as const;

/** What each setting means: `--help` and docs/settings.md (rendered from this) say it. */
export const GATEWAY_SETTING_DOCS: Readonly<Record<keyof typeof GATEWAY_ENV, string>> = {
  listen: 'host:port for remote write, `/metrics`, `/healthz`, `/readyz`',
  aggregatorUrl: "where it forwards: vmagent's (or the routers') `/api/v1/write`",
  aggregationInterval: "the aggregator's `interval` (manifests/aggregator/stream-aggr.yaml)",
  birthMargin: "added to it: the path to the aggregator (a router tier's queue) and slack",
  staleness: "the aggregator's `staleness_interval`; a series unwritten that long is forgotten",
  maxTrackedSeries:
    'the most counter-like series tracked at once (only series born here: a series first seen with a value, its 0 having gone through another replica, is passed on and not tracked); past it, new series go unheld (counted)',
  maxSeriesPerNamespace: 'live input series per namespace (seen within the staleness interval), per replica; `0`: no limit (docs/gateway.md "Limits per namespace")',
  maxSamplesPerSecondPerNamespace: 'samples per second per namespace, per replica, a bucket of 10 s of it; `0`: no limit',
  namespaceLimits: 'overrides: `<namespace>=<series>/<samples per second>`, comma separated, `-` for the default (e.g. `batch=1000000/100000,sandbox=5000/-`)',
  writerAuth:
    '`tokenreview`: each write\'s namespace and pod come from its bearer token (docs/gateway.md "Who may write what"); `none`: the labels are trusted (only for a gateway no untrusted pod can reach, as in `npm run demo`)',
  tokenAudience: "the audience a writer's token must have; the webhook's `sidecar.tokenAudience`, same name and meaning",
  trustedWriters: 'service accounts (`namespace:name`, comma separated) whose writes keep their labels: they may write any namespace',
  aggregatorCredentials:
    '`<namespace>/<name>` of the Secret with the credentials the gateway sends to the aggregator (basic auth), created with a random password when missing (docs/install.md "What each part trusts"); empty: none sent (the Deployment sets `jobmetrics/jobmetrics-aggregator-credentials`)',
  kubeconfig: "the API server for TokenReview and the credentials Secret; unset: the pod's own service account (in-cluster). `tokenreview` without either refuses to start",
  logLevel: '`info` or `debug` (JSON lines on stderr)',
};

export const GATEWAY_DEFAULTS = {
  listen: '0.0.0.0:8480',
  aggregationInterval: '10s',
  birthMargin: '3s',
  staleness: '15m',
  // ~1.5 KiB of heap each: 400 000 fit the shipped 768 MB heap (docs/install.md "The gateway").
  maxTrackedSeries: 400_000,
  // One namespace may hold at most a fifth of what one vmagent of the shipped size (512 Mi, a few
  // hundred bytes per input series) holds, and send a tenth of a core's worth of samples: a flood
  // in one namespace cannot take the aggregator down for the others (docs/gateway.md).
  maxSeriesPerNamespace: 300_000,
  maxSamplesPerSecondPerNamespace: 30_000,
  namespaceLimits: '',
  writerAuth: 'tokenreview',
  tokenAudience: DEFAULT_TOKEN_AUDIENCE,
  // The outcome recorder writes every opted-in namespace's Job outcomes (docs/outcomes.md).
  trustedWriters: 'jobmetrics:jobmetrics-recorder',
  aggregatorCredentials: '',
  logLevel: 'info',
} as const;

/** The binary's command line: `--help` lists these settings, docs/settings.md is rendered from it. */
export const GATEWAY_COMMAND_LINE: CommandLineSpec = {
  name: 'jobmetrics-gateway',
  summary: "the remote-write endpoint every sidecar writes to: checks who writes, limits each namespace, holds each counter's first values one aggregation interval, forwards to the aggregator",
  settings: envSettings(GATEWAY_ENV, GATEWAY_DEFAULTS, GATEWAY_SETTING_DOCS, ['aggregatorUrl']),
  docs: 'docs/settings.md "jobmetrics-gateway"',
};

/** Bodies: vmagent's own default limit for one remote-write request is 32 MiB uncompressed. */
const MAX_BODY_BYTES = 8 * 1024 * 1024;
const MAX_UNCOMPRESSED_BYTES = 32 * 1024 * 1024;

export type { ConfigError };

export type ConfigResult = { readonly ok: true; readonly config: GatewayConfig } | { readonly ok: false; readonly errors: readonly ConfigError[] };

export function parseGatewayConfig(env: Env): ConfigResult {
  const r = envReader(env);
  const overrides = parseOverrides(r.value(GATEWAY_ENV.namespaceLimits) ?? GATEWAY_DEFAULTS.namespaceLimits);
  if (!overrides.ok) r.fail(GATEWAY_ENV.namespaceLimits, overrides.error);
  const auth = writerAuth(r);
  const credentials = aggregatorCredentials(r);
  const kubeconfig = r.value(GATEWAY_ENV.kubeconfig);
  // As the recorder: in a pod the kubelet gives the API server's address and the token.
  const inCluster = r.value('KUBERNETES_SERVICE_HOST') !== undefined && r.value('KUBERNETES_SERVICE_PORT') !== undefined;
  if (kubeconfig === undefined && !inCluster) {
    if (auth.mode === 'tokenreview') {
      r.fail(GATEWAY_ENV.writerAuth, `is tokenreview (the default), which needs the API server: set ${GATEWAY_ENV.kubeconfig}, run in a pod, or set ${GATEWAY_ENV.writerAuth}=none where no untrusted pod can reach the gateway`);
    }
    if (credentials !== undefined) r.fail(GATEWAY_ENV.aggregatorCredentials, `names a Secret, which needs the API server: set ${GATEWAY_ENV.kubeconfig} or run in a pod`);
  }
  const config: GatewayConfig = {
    writerAuth: auth,
    aggregatorCredentials: credentials,
    kubeconfig,
    listen: r.hostPort(GATEWAY_ENV.listen, GATEWAY_DEFAULTS.listen),
    aggregatorUrl: r.httpUrl(GATEWAY_ENV.aggregatorUrl, undefined),
    aggregationIntervalMs: r.duration(GATEWAY_ENV.aggregationInterval, GATEWAY_DEFAULTS.aggregationInterval, { minMs: 100, maxMs: 3_600_000 }),
    birthMarginMs: r.duration(GATEWAY_ENV.birthMargin, GATEWAY_DEFAULTS.birthMargin, { minMs: 0, maxMs: 600_000 }),
    stalenessMs: r.duration(GATEWAY_ENV.staleness, GATEWAY_DEFAULTS.staleness, { minMs: 1_000, maxMs: 24 * 3_600_000 }),
    maxTrackedSeries: r.whole(GATEWAY_ENV.maxTrackedSeries, GATEWAY_DEFAULTS.maxTrackedSeries),
    limits: {
      // 0: no limit.
      maxSeries: r.whole(GATEWAY_ENV.maxSeriesPerNamespace, GATEWAY_DEFAULTS.maxSeriesPerNamespace),
      samplesPerSecond: r.whole(GATEWAY_ENV.maxSamplesPerSecondPerNamespace, GATEWAY_DEFAULTS.maxSamplesPerSecondPerNamespace),
      // A sidecar delivers every 10 s: a bucket of 10 s of samples lets a namespace's normal pushes through whole.
      burstSeconds: 10,
      overrides: overrides.ok ? overrides.overrides : new Map(),
    },
    maxBodyBytes: MAX_BODY_BYTES,
    maxUncompressedBytes: MAX_UNCOMPRESSED_BYTES,
    logLevel: r.logLevel(GATEWAY_ENV.logLevel, GATEWAY_DEFAULTS.logLevel),
  };
  return r.errors.length > 0 ? { ok: false, errors: r.errors } : { ok: true, config };
}

function writerAuth(r: EnvReader): GatewayConfig['writerAuth'] {
  const mode = r.value(GATEWAY_ENV.writerAuth) ?? GATEWAY_DEFAULTS.writerAuth;
  if (mode === 'none') return { mode };
  if (mode !== 'tokenreview') {
    r.fail(GATEWAY_ENV.writerAuth, `"${mode}" must be tokenreview or none`);
    return { mode: 'none' };
  }
  const trusted = parseTrustedWriters(r.value(GATEWAY_ENV.trustedWriters) ?? GATEWAY_DEFAULTS.trustedWriters);
  if (!trusted.ok) r.fail(GATEWAY_ENV.trustedWriters, trusted.error);
  const audience = r.value(GATEWAY_ENV.tokenAudience) ?? GATEWAY_DEFAULTS.tokenAudience;
  return { mode: 'tokenreview', audience, trusted: trusted.ok ? trusted.writers : new Set() };
}

function aggregatorCredentials(r: EnvReader): GatewayConfig['aggregatorCredentials'] {
  const raw = r.value(GATEWAY_ENV.aggregatorCredentials) ?? GATEWAY_DEFAULTS.aggregatorCredentials;
  if (raw === '') return undefined;
  const m = /^([a-z0-9]([-a-z0-9]*[a-z0-9])?)\/([a-z0-9]([-.a-z0-9]*[a-z0-9])?)$/.exec(raw);
  if (!m || m[1] === undefined || m[3] === undefined) {
    r.fail(GATEWAY_ENV.aggregatorCredentials, `"${raw}" must be <namespace>/<secret name>`);
    return undefined;
  }
  return { namespace: m[1], name: m[3] };
}
