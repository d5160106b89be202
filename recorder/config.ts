/**
 * The outcome recorder's settings, parsed once from its environment (docs/outcomes.md). Nothing
 * else in the recorder reads process.env; every default lives here. A setting the gateway or the
 * sidecar has too (`JOBMETRICS_STALENESS`, `JOBMETRICS_LOG_LEVEL`, `KUBECONFIG`) has the same name
 * and meaning.
 */
import { parseBoundedDuration } from '../shared/duration.ts';

export interface RecorderConfig {
  /** Where outcomes go: the gateway's remote-write endpoint (in its pod: localhost). */
  readonly remoteWriteUrl: URL;
  /** host:port of the recorder's own /metrics and /healthz. */
  readonly listen: { readonly host: string; readonly port: number };
  /** The aggregator's `staleness_interval`; events are delivered for two thirds of it. */
  readonly stalenessMs: number;
  /** How often queued events are delivered, and CronJobs' last success re-sent (×30). */
  readonly flushMs: number;
  /** A kubeconfig file; undefined: the in-cluster service account. */
  readonly kubeconfig: string | undefined;
  readonly logLevel: 'debug' | 'info';
}

export const RECORDER_ENV = {
  remoteWriteUrl: 'JOBMETRICS_REMOTE_WRITE_URL',
  listen: 'JOBMETRICS_LISTEN',
  staleness: 'JOBMETRICS_STALENESS',
  flush: 'JOBMETRICS_FLUSH_INTERVAL',
  kubeconfig: 'KUBECONFIG',
  logLevel: 'JOBMETRICS_LOG_LEVEL',
} as const;

export const RECORDER_DEFAULTS = {
  remoteWriteUrl: 'http://127.0.0.1:8480/api/v1/write',
  listen: '0.0.0.0:8481',
  staleness: '15m',
  flush: '1s',
  logLevel: 'info',
} as const;

/**
 * How long after an event it is still delivered: two thirds of the staleness interval, so that
 * any repeat (another replica, a restart) reaches the aggregator while it still remembers the
 * event's series, with a third of the interval to spare for clock skew and slow paths.
 */
export const deliveryWindowMs = (c: Pick<RecorderConfig, 'stalenessMs'>): number => Math.floor((c.stalenessMs * 2) / 3);

export interface ConfigError {
  readonly setting: string;
  readonly message: string;
}

export type ConfigResult = { readonly ok: true; readonly config: RecorderConfig } | { readonly ok: false; readonly errors: readonly ConfigError[] };

export function parseRecorderConfig(env: Readonly<Record<string, string | undefined>>): ConfigResult {
  const errors: ConfigError[] = [];
  const fail = (setting: string, message: string): void => void errors.push({ setting, message });
  const value = (name: string): string | undefined => {
    const v = env[name]?.trim();
    return v === '' ? undefined : v;
  };
  const duration = (name: string, fallback: string, bounds: { minMs: number; maxMs: number }): number => {
    const r = parseBoundedDuration(value(name) ?? fallback, bounds);
    if (r.ok) return r.ms;
    fail(name, r.error);
    return 0;
  };

  let remoteWriteUrl = new URL(RECORDER_DEFAULTS.remoteWriteUrl);
  const rawUrl = value(RECORDER_ENV.remoteWriteUrl) ?? RECORDER_DEFAULTS.remoteWriteUrl;
  try {
    remoteWriteUrl = new URL(rawUrl);
    if (remoteWriteUrl.protocol !== 'http:' && remoteWriteUrl.protocol !== 'https:') fail(RECORDER_ENV.remoteWriteUrl, `"${rawUrl}" must use http: or https:`);
  } catch {
    fail(RECORDER_ENV.remoteWriteUrl, `"${rawUrl}" is not a URL`);
  }

  const rawListen = value(RECORDER_ENV.listen) ?? RECORDER_DEFAULTS.listen;
  const m = /^(.*):(\d{1,5})$/.exec(rawListen);
  const port = m ? Number(m[2]) : NaN;
  if (!m || m[1] === '' || port > 65535) fail(RECORDER_ENV.listen, `"${rawListen}" must be host:port (port 0…65535)`);

  const rawLevel = value(RECORDER_ENV.logLevel) ?? RECORDER_DEFAULTS.logLevel;
  if (rawLevel !== 'debug' && rawLevel !== 'info') fail(RECORDER_ENV.logLevel, `"${rawLevel}" must be debug or info`);

  const kubeconfig = value(RECORDER_ENV.kubeconfig);
  // In a pod the service account's token and the API server's address come from the kubelet
  // (KUBERNETES_SERVICE_HOST/PORT); anywhere else a kubeconfig must be named.
  const inCluster = value('KUBERNETES_SERVICE_HOST') !== undefined && value('KUBERNETES_SERVICE_PORT') !== undefined;
  if (kubeconfig === undefined && !inCluster) fail(RECORDER_ENV.kubeconfig, 'is not set, and this is not a pod of a cluster (KUBERNETES_SERVICE_HOST unset): the recorder needs the API server');

  const config: RecorderConfig = {
    remoteWriteUrl,
    listen: { host: m?.[1] ?? '0.0.0.0', port: Number.isFinite(port) ? port : 0 },
    stalenessMs: duration(RECORDER_ENV.staleness, RECORDER_DEFAULTS.staleness, { minMs: 3_000, maxMs: 24 * 3_600_000 }),
    flushMs: duration(RECORDER_ENV.flush, RECORDER_DEFAULTS.flush, { minMs: 100, maxMs: 60_000 }),
    kubeconfig,
    logLevel: rawLevel === 'debug' ? 'debug' : 'info',
  };
  return errors.length > 0 ? { ok: false, errors } : { ok: true, config };
}
