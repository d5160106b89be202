/**
 * The user-facing contract (README.md "Annotations and labels", docs/settings.md "jobmetrics-sidecar"):
 * every label, annotation and container name lives here and nowhere else.
 */

/** Namespace opt-in (`enabled`) and pod opt-out/opt-in (`disabled`/`enabled`) label. */
export const INJECT_LABEL = 'jobmetrics.io/inject';
export const INJECT_ENABLED = 'enabled';
export const INJECT_DISABLED = 'disabled';

export const ANNOTATION = {
  port: 'jobmetrics.io/port',
  path: 'jobmetrics.io/path',
  scheme: 'jobmetrics.io/scheme',
  interval: 'jobmetrics.io/interval',
  container: 'jobmetrics.io/container',
  workload: 'jobmetrics.io/workload',
  /** Written by the webhook: `injected` or `skipped: <reason>`. */
  status: 'jobmetrics.io/status',
} as const;

/** The Prometheus-convention fallbacks for port, path and scheme. */
export const PROMETHEUS_ANNOTATION = {
  port: 'prometheus.io/port',
  path: 'prometheus.io/path',
  scheme: 'prometheus.io/scheme',
} as const;

/** Container port names that mark the metrics port when no annotation names it. */
export const METRICS_PORT_NAMES = ['metrics', 'http-metrics'] as const;

export const SIDECAR_CONTAINER = 'jobmetrics-sidecar';

export const STATUS_INJECTED = 'injected';
export const statusSkipped = (reason: string): string => `skipped: ${reason}`;

export const DEFAULT_METRICS_PATH = '/metrics';
export const DEFAULT_SCHEME = 'http';

/** Scrape interval bounds and default (README.md "Annotations and labels": `1s` (100ms … 60s)). */
export const INTERVAL = { defaultMs: 1_000, minMs: 100, maxMs: 60_000 } as const;

/** The labels every pushed series carries (docs/semantics.md). */
export const TARGET_LABELS = ['namespace', 'job', 'pod'] as const;
export const EXPORTED_PREFIX = 'exported_';

/** Sidecar environment (docs/settings.md "jobmetrics-sidecar"). */
export const SIDECAR_ENV = {
  scrapeUrl: 'JOBMETRICS_SCRAPE_URL',
  remoteWriteUrl: 'JOBMETRICS_REMOTE_WRITE_URL',
  interval: 'JOBMETRICS_INTERVAL',
  pushInterval: 'JOBMETRICS_PUSH_INTERVAL',
  flushTimeout: 'JOBMETRICS_FLUSH_TIMEOUT',
  namespace: 'JOBMETRICS_NAMESPACE',
  job: 'JOBMETRICS_JOB',
  pod: 'JOBMETRICS_POD',
  mode: 'JOBMETRICS_MODE',
  /** The container whose exit counts (the webhook's choice: `jobmetrics.io/container`, else the one with the port). */
  mainContainer: 'JOBMETRICS_MAIN_CONTAINER',
  /** A folder that outlives a restart of the sidecar container (an emptyDir): what was acknowledged. */
  stateDir: 'JOBMETRICS_STATE_DIR',
  /**
   * The file holding the token the sidecar presents to the gateway (`Authorization: Bearer`),
   * re-read as the kubelet rotates it; unset: no token (docs/gateway.md "Who may write what").
   */
  writerTokenFile: 'JOBMETRICS_WRITER_TOKEN_FILE',
} as const;

/** The sidecar's state volume (native mode): an emptyDir, mounted into the sidecar alone. */
export const STATE_VOLUME = { name: 'jobmetrics-state', mountPath: '/var/run/jobmetrics', sizeLimit: '16Mi' } as const;

/**
 * The sidecar's identity towards the gateway: a projected service-account token of the pod, with
 * the gateway's audience, mounted into the sidecar alone. The kubelet rotates it at 80 % of its
 * life (https://kubernetes.io/docs/concepts/storage/projected-volumes/#serviceaccounttoken);
 * 3600 s is the shortest life the API server never extends
 * (--service-account-max-token-expiration aside) and the default of the kubelet's own tokens.
 */
export const TOKEN_VOLUME = { name: 'jobmetrics-token', mountPath: '/var/run/secrets/jobmetrics.io/token', file: 'token', expirationSeconds: 3600 } as const;

/** The volume names the webhook adds; a pod that already uses one is skipped (`volume-conflict`). */
export const RESERVED_VOLUMES = [STATE_VOLUME.name, TOKEN_VOLUME.name] as const;

/** The audience of the token a sidecar presents to the gateway, as shipped (webhook and gateway setting `JOBMETRICS_TOKEN_AUDIENCE`). */
export const DEFAULT_TOKEN_AUDIENCE = 'jobmetrics-gateway';

export type SidecarMode = 'native' | 'legacy';
export const SIDECAR_MODES: readonly SidecarMode[] = ['native', 'legacy'];

/**
 * Labels the Job controller puts on the pods it creates: the `batch.kubernetes.io/` ones since
 * Kubernetes 1.27, the bare ones before and still alongside them
 * (https://kubernetes.io/docs/reference/labels-annotations-taints/#batchkubernetesiojob-name).
 */
export const JOB_NAME_LABELS = ['batch.kubernetes.io/job-name', 'job-name'] as const;
export const JOB_CONTROLLER_UID_LABELS = ['batch.kubernetes.io/controller-uid', 'controller-uid'] as const;

/** The prefix of a skip status, so readers can tell `skipped: …` from `injected`. */
export const STATUS_SKIPPED_PREFIX = 'skipped: ';
