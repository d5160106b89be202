/**
 * The outcome recorder's settings, parsed once from its environment (docs/outcomes.md). Nothing
 * else in the recorder reads process.env; every default lives here. A setting the gateway or the
 * sidecar has too (`JOBMETRICS_STALENESS`, `JOBMETRICS_LOG_LEVEL`, `KUBECONFIG`) has the same name
 * and meaning.
 */
import { envSettings, type CommandLineSpec } from '../shared/command-line.ts';
import { envReader, type ConfigError, type Env } from '../shared/env-reader.ts';

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
  /**
   * The token presented to the gateway (shared/writer-token.ts): the recorder's own projected
   * service-account token with the gateway's audience, which the gateway trusts to write any
   * namespace's outcomes (docs/gateway.md "Who may write what"); undefined: no token.
   */
  readonly writerTokenFile: string | undefined;
  readonly logLevel: 'debug' | 'info';
}

export const RECORDER_ENV = {
  remoteWriteUrl: 'JOBMETRICS_REMOTE_WRITE_URL',
  listen: 'JOBMETRICS_LISTEN',
  staleness: 'JOBMETRICS_STALENESS',
  flush: 'JOBMETRICS_FLUSH_INTERVAL',
  kubeconfig: 'KUBECONFIG',
  writerTokenFile: 'JOBMETRICS_WRITER_TOKEN_FILE',
  logLevel: 'JOBMETRICS_LOG_LEVEL',
} as const;

export const RECORDER_DEFAULTS = {
  remoteWriteUrl: 'http://127.0.0.1:8480/api/v1/write',
  listen: '0.0.0.0:8481',
  staleness: '15m',
  flush: '1s',
  logLevel: 'info',
} as const;

/** What each setting means: `--help` and docs/settings.md (rendered from this) say it. */
export const RECORDER_SETTING_DOCS: Readonly<Record<keyof typeof RECORDER_ENV, string>> = {
  remoteWriteUrl: "where outcomes go: the gateway (the manifests set the gateway's Service)",
  listen: "the recorder's `/metrics` and `/healthz`",
  staleness: "the aggregator's `staleness_interval`; events are delivered for two thirds of it",
  flush: 'how often queued events are delivered',
  kubeconfig: 'a kubeconfig file for the watches of Jobs, pods and CronJobs; unset: the in-cluster service account',
  writerTokenFile: 'a file holding the token sent to the gateway as `Authorization: Bearer` (the Deployment mounts its own projected token for the gateway\'s audience), read again once a minute; unset: no token',
  logLevel: '`info` or `debug` (JSON lines on stderr)',
};

/** The binary's command line: `--help` lists these settings, docs/settings.md is rendered from it. */
export const RECORDER_COMMAND_LINE: CommandLineSpec = {
  name: 'jobmetrics-recorder',
  summary: "counts every Job's runs, attempts and durations, and the Job pods that ran without the sidecar, from the API server, and delivers them through the gateway",
  settings: envSettings(RECORDER_ENV, RECORDER_DEFAULTS, RECORDER_SETTING_DOCS),
  docs: 'docs/settings.md "jobmetrics-recorder"',
};

/**
 * How long after an event it is still delivered: two thirds of the staleness interval, so that
 * any repeat (another replica, a restart) reaches the aggregator while it still remembers the
 * event's series, with a third of the interval to spare for clock skew and slow paths.
 */
export const deliveryWindowMs = (c: Pick<RecorderConfig, 'stalenessMs'>): number => Math.floor((c.stalenessMs * 2) / 3);

export type { ConfigError };

export type ConfigResult = { readonly ok: true; readonly config: RecorderConfig } | { readonly ok: false; readonly errors: readonly ConfigError[] };

export function parseRecorderConfig(env: Env): ConfigResult {
  const r = envReader(env);
  const kubeconfig = r.value(RECORDER_ENV.kubeconfig);
  // In a pod the service account's token and the API server's address come from the kubelet
  // (KUBERNETES_SERVICE_HOST/PORT); anywhere else a kubeconfig must be named.
  const inCluster = r.value('KUBERNETES_SERVICE_HOST') !== undefined && r.value('KUBERNETES_SERVICE_PORT') !== undefined;
  if (kubeconfig === undefined && !inCluster) r.fail(RECORDER_ENV.kubeconfig, 'is not set, and this is not a pod of a cluster (KUBERNETES_SERVICE_HOST unset): the recorder needs the API server');
  const config: RecorderConfig = {
    remoteWriteUrl: r.httpUrl(RECORDER_ENV.remoteWriteUrl, RECORDER_DEFAULTS.remoteWriteUrl),
    listen: r.hostPort(RECORDER_ENV.listen, RECORDER_DEFAULTS.listen),
    stalenessMs: r.duration(RECORDER_ENV.staleness, RECORDER_DEFAULTS.staleness, { minMs: 3_000, maxMs: 24 * 3_600_000 }),
    flushMs: r.duration(RECORDER_ENV.flush, RECORDER_DEFAULTS.flush, { minMs: 100, maxMs: 60_000 }),
    kubeconfig,
    writerTokenFile: r.value(RECORDER_ENV.writerTokenFile),
    logLevel: r.logLevel(RECORDER_ENV.logLevel, RECORDER_DEFAULTS.logLevel),
  };
  return r.errors.length > 0 ? { ok: false, errors: r.errors } : { ok: true, config };
}
