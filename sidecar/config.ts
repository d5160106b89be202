/**
 * The sidecar's settings, parsed once from its environment (docs/settings.md "jobmetrics-sidecar").
 * Nothing else in the sidecar reads process.env; every default lives here.
 */
import { envSettings, type CommandLineSpec } from '../shared/command-line.ts';
import { formatDuration, parseBoundedDuration } from '../shared/duration.ts';
import { INTERVAL, SIDECAR_ENV, SIDECAR_MODES, type SidecarMode } from '../shared/names.ts';

export interface SidecarConfig {
  readonly scrapeUrl: URL;
  readonly remoteWriteUrl: URL;
  /** The longest wait between two scrapes (scrape-pace.ts). */
  readonly intervalMs: number;
  /** The shortest wait between two scrapes while they cost little (scrape-pace.ts). */
  readonly fastIntervalMs: number;
  readonly pushIntervalMs: number;
  readonly flushTimeoutMs: number;
  readonly namespace: string;
  readonly job: string;
  readonly pod: string;
  readonly mode: SidecarMode;
  /**
   * The main container's name: only its exit counts, where the kubelet's mounts name the
   * containers (containers.ts). Undefined: every process but PID 1 and our own tree is main.
   */
  readonly mainContainer: string | undefined;
  /**
   * Where what was acknowledged is kept across a restart of the sidecar (an emptyDir in a native
   * sidecar's pod; state.ts). Undefined: nothing is kept.
   */
  readonly stateDir: string | undefined;
  /**
   * The token presented to the gateway on every delivery (shared/writer-token.ts), which the
   * webhook mounts into the sidecar alone; undefined: no `Authorization` header.
   */
  readonly writerTokenFile: string | undefined;
  /**
   * The aggregator's staleness interval. A delivery gap of half of it starts a new generation of
   * the pod's series (docs/semantics.md); must match the aggregator (15m as shipped).
   */
  readonly stalenessMs: number;
  /** How often the exit watch looks at the known main-container PIDs. */
  readonly exitPollMs: number;
  /** Where the shared PID namespace is mounted; tests and the no-root demo point it elsewhere. */
  readonly procRoot: string;
  /**
   * The file whose content the kubelet keeps as the container's termination message (the
   * container's `terminationMessagePath`): the final flush writes a summary of the pod's values
   * there (final-report.ts).
   */
  readonly terminationMessagePath: string;
  readonly logLevel: 'debug' | 'info';
}

/** Settings the webhook never sets (tuning and tests); each has a default, so pods need not set them. */
export const EXTRA_ENV = {
  staleness: 'JOBMETRICS_STALENESS',
  fastInterval: 'JOBMETRICS_FAST_INTERVAL',
  exitPoll: 'JOBMETRICS_EXIT_POLL',
  procRoot: 'JOBMETRICS_PROC_ROOT',
  terminationMessagePath: 'JOBMETRICS_TERMINATION_MESSAGE_PATH',
  logLevel: 'JOBMETRICS_LOG_LEVEL',
} as const;

export const SIDECAR_DEFAULTS = {
  interval: formatDuration(INTERVAL.defaultMs),
  fastInterval: '200ms',
  pushInterval: '10s',
  flushTimeout: '10s',
  mode: 'legacy' as SidecarMode,
  staleness: '15m',
  exitPoll: '100ms',
  procRoot: '/proc',
  // Kubernetes' default `terminationMessagePath`, which the webhook leaves as it is: the kubelet
  // mounts a file there in every container
  // (https://kubernetes.io/docs/tasks/debug/debug-application/determine-reason-pod-failure/).
  terminationMessagePath: '/dev/termination-log',
  logLevel: 'info',
} as const;

/** What each setting means: `--help` and docs/settings.md (rendered from this) say it. */
export const SIDECAR_SETTING_DOCS: Readonly<Record<keyof typeof SIDECAR_ENV | keyof typeof EXTRA_ENV, string>> = {
  scrapeUrl: "the main container's metrics URL (an `https://` one is read without verifying its certificate: it is made for a Service name, never for the pod's loopback)",
  remoteWriteUrl: "the remote-write endpoint: the gateway (the webhook's `JOBMETRICS_SIDECAR_REMOTE_WRITE_URL`); an `https://` one is verified against the image's CAs and `NODE_EXTRA_CA_CERTS`",
  interval: 'the longest wait between two scrapes (100ms … 60s)',
  fastInterval:
    'the shortest: the sidecar scrapes this often while the scrapes take at most 1 % of a core (their CPU time is measured), slower as the exposition grows, never slower than `JOBMETRICS_INTERVAL`; set it to the interval to scrape at the interval only',
  pushInterval: 'delivery interval while the job runs',
  flushTimeout: 'the most time the final delivery may take after exit; the webhook cuts it to fit the pod\'s grace period (docs/sidecar.md "Flush budget")',
  namespace: 'the `namespace` label',
  job: 'the `job` label (the workload)',
  pod: 'the `pod` label (the aggregator drops it)',
  mode: '`native` (an init container with `restartPolicy: Always`) or `legacy` (exits by itself)',
  mainContainer:
    'the main container\'s name (`jobmetrics.io/container`, else the container with the metrics port): in a kubelet pod only its processes\' exit counts (docs/sidecar.md "Which container is main"); unset: every process but PID 1 and the sidecar\'s own',
  stateDir:
    'a folder that survives a restart of the sidecar container; what was acknowledged is kept there (the webhook mounts the emptyDir `jobmetrics-state` at `/var/run/jobmetrics` in native mode); unset: nothing kept',
  writerTokenFile:
    'a file holding the token sent to the gateway as `Authorization: Bearer`, read again once a minute (the webhook mounts the pod\'s projected token for the gateway\'s audience at `/var/run/secrets/jobmetrics.io/token/token`, into the sidecar alone); unset: no token',
  staleness: "the aggregator's `staleness_interval`; a delivery gap of half of it starts a new series generation",
  exitPoll:
    'how often the known main-container PIDs are checked when no keep-alive scrape connection is open (targets that close after every answer, such as HTTP/1.0 servers); while one is open, its closing triggers a check at once and the poll is only a 1 s backstop',
  procRoot: 'where the shared PID namespace is mounted',
  terminationMessagePath:
    "where each final flush writes the pod's final values as the container's termination message (README \"One pod's numbers\"); must match the container's `terminationMessagePath`, which the webhook leaves at Kubernetes' default. A failed write is logged once at warn and fails nothing",
  logLevel: '`info` or `debug` (JSON lines on stderr)',
};

/** The binary's command line: `--help` lists these settings, docs/settings.md is rendered from it. */
export const SIDECAR_COMMAND_LINE: CommandLineSpec = {
  name: 'jobmetrics-sidecar',
  summary: "scrapes the main container's /metrics, notices its exit through the shared process namespace, and delivers the final counters",
  settings: envSettings({ ...SIDECAR_ENV, ...EXTRA_ENV }, SIDECAR_DEFAULTS, SIDECAR_SETTING_DOCS, ['scrapeUrl', 'remoteWriteUrl', 'namespace', 'job', 'pod']),
  docs: 'docs/settings.md "jobmetrics-sidecar"',
};

export interface ConfigError {
  /** The environment variable at fault. */
  readonly setting: string;
  readonly message: string;
}

export type ConfigResult =
  | { readonly ok: true; readonly config: SidecarConfig }
  | { readonly ok: false; readonly errors: readonly ConfigError[]; readonly mode: SidecarMode; readonly logLevel: 'debug' | 'info' };

type Env = Readonly<Record<string, string | undefined>>;

export function parseSidecarConfig(env: Env): ConfigResult {
  const errors: ConfigError[] = [];
  const fail = (setting: string, message: string): void => {
    errors.push({ setting, message });
  };
  const value = (name: string): string | undefined => {
    const v = env[name]?.trim();
    return v === '' ? undefined : v;
  };
  const required = (name: string): string => {
    const v = value(name);
    if (v === undefined) fail(name, 'is required but not set');
    return v ?? '';
  };
  const url = (name: string, protocols: readonly string[]): URL => {
    const raw = required(name);
    if (raw === '') return new URL('http://invalid.invalid/');
    try {
      const u = new URL(raw);
      if (!protocols.includes(u.protocol)) fail(name, `"${raw}" must use ${protocols.join(' or ')}`);
      return u;
    } catch {
      fail(name, `"${raw}" is not a URL`);
      return new URL('http://invalid.invalid/');
    }
  };
  const duration = (name: string, fallback: string, bounds: { minMs: number; maxMs: number }): number => {
    const r = parseBoundedDuration(value(name) ?? fallback, bounds);
    if (!r.ok) {
      fail(name, r.error);
      return 0;
    }
    return r.ms;
  };

  const rawMode = value(SIDECAR_ENV.mode) ?? SIDECAR_DEFAULTS.mode;
  const mode = (SIDECAR_MODES as readonly string[]).includes(rawMode) ? (rawMode as SidecarMode) : undefined;
  if (mode === undefined) fail(SIDECAR_ENV.mode, `"${rawMode}" must be one of ${SIDECAR_MODES.join(', ')}`);

  const rawLevel = value(EXTRA_ENV.logLevel) ?? SIDECAR_DEFAULTS.logLevel;
  const logLevel = rawLevel === 'debug' || rawLevel === 'info' ? rawLevel : undefined;
  if (logLevel === undefined) fail(EXTRA_ENV.logLevel, `"${rawLevel}" must be debug or info`);

  const config: SidecarConfig = {
    scrapeUrl: url(SIDECAR_ENV.scrapeUrl, ['http:', 'https:']),
    remoteWriteUrl: url(SIDECAR_ENV.remoteWriteUrl, ['http:', 'https:']),
    intervalMs: duration(SIDECAR_ENV.interval, SIDECAR_DEFAULTS.interval, INTERVAL),
    fastIntervalMs: duration(EXTRA_ENV.fastInterval, SIDECAR_DEFAULTS.fastInterval, INTERVAL),
    pushIntervalMs: duration(SIDECAR_ENV.pushInterval, SIDECAR_DEFAULTS.pushInterval, { minMs: 100, maxMs: 300_000 }),
    flushTimeoutMs: duration(SIDECAR_ENV.flushTimeout, SIDECAR_DEFAULTS.flushTimeout, { minMs: 100, maxMs: 600_000 }),
    namespace: required(SIDECAR_ENV.namespace),
    job: required(SIDECAR_ENV.job),
    pod: required(SIDECAR_ENV.pod),
    mode: mode ?? 'legacy',
    mainContainer: value(SIDECAR_ENV.mainContainer),
    stateDir: value(SIDECAR_ENV.stateDir),
    writerTokenFile: value(SIDECAR_ENV.writerTokenFile),
    stalenessMs: duration(EXTRA_ENV.staleness, SIDECAR_DEFAULTS.staleness, { minMs: 1_000, maxMs: 24 * 3_600_000 }),
    exitPollMs: duration(EXTRA_ENV.exitPoll, SIDECAR_DEFAULTS.exitPoll, { minMs: 5, maxMs: 10_000 }),
    procRoot: value(EXTRA_ENV.procRoot) ?? SIDECAR_DEFAULTS.procRoot,
    terminationMessagePath: value(EXTRA_ENV.terminationMessagePath) ?? SIDECAR_DEFAULTS.terminationMessagePath,
    logLevel: logLevel ?? 'info',
  };
  // A relative path would depend on the working directory of the image.
  const absolute = (name: string, path: string | undefined): void => {
    if (path !== undefined && !path.startsWith('/')) fail(name, `"${path}" must be an absolute path`);
  };
  absolute(SIDECAR_ENV.stateDir, config.stateDir);
  absolute(SIDECAR_ENV.writerTokenFile, config.writerTokenFile);
  absolute(EXTRA_ENV.terminationMessagePath, config.terminationMessagePath);
  if (errors.length > 0) return { ok: false, errors, mode: mode ?? 'legacy', logLevel: logLevel ?? 'info' };
  return { ok: true, config };
}
