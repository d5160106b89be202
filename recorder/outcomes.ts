/**
 * What finished, read from API objects: the pure core of the outcome recorder (docs/outcomes.md).
 *
 * Every outcome is an **event** with an identity and a time that come from the object itself (the
 * Job's uid and completion time, the pod's uid and the container's restart index), so every
 * replica of the recorder, and every restart of one, derives the same event with the same samples.
 * `eventSeries` turns an event into remote-write series that the aggregator sums without their
 * `pod` label: the event's identity is that label. Delivered twice, an event's series are repeats
 * with the same timestamps, which the aggregator's `total` output adds as 0 (docs/semantics.md,
 * fact c). That is what makes the count exact without leader election.
 *
 * Nothing here reads a clock or does I/O; timestamps are parsed from the objects.
 */
import { parseTargetAnnotations } from '../shared/annotations.ts';
import { DROP_REASONS, parseReportHead } from '../shared/final-report-head.ts';
import type { RwSeries } from '../shared/remote-write.ts';
import { INJECT_DISABLED, INJECT_LABEL, SIDECAR_CONTAINER, SIDECAR_ENV, STATUS_SKIPPED_PREFIX, ANNOTATION } from '../shared/names.ts';
import { allContainers, type RawContainer, type RawPod } from '../webhook/pod.ts';
import { jobOf, workloadName, type Workload } from '../webhook/workload.ts';

// ---------------------------------------------------------------------------------------------
// The objects, as far as they are read here. Timestamps arrive as RFC 3339 strings from a watch
// and as Date objects from @kubernetes/client-node's typed list calls: both are accepted.

export type Timestamp = string | Date;

export interface RawCondition {
  type?: string;
  status?: string;
  reason?: string;
  lastTransitionTime?: Timestamp;
  [key: string]: unknown;
}

export interface RawJob {
  metadata?: RawPod['metadata'] & { uid?: string; creationTimestamp?: Timestamp };
  spec?: { template?: { metadata?: { annotations?: Record<string, string> } } ; [key: string]: unknown };
  status?: {
    startTime?: Timestamp;
    completionTime?: Timestamp;
    conditions?: RawCondition[];
    [key: string]: unknown;
  };
  [key: string]: unknown;
}

export interface RawTerminated {
  exitCode?: number;
  reason?: string;
  /** The container's termination message (the sidecar's final report, sidecar/final-report.ts). */
  message?: string;
  startedAt?: Timestamp;
  finishedAt?: Timestamp;
  [key: string]: unknown;
}

export interface RawContainerStatus {
  name?: string;
  restartCount?: number;
  state?: { terminated?: RawTerminated; [key: string]: unknown };
  lastState?: { terminated?: RawTerminated; [key: string]: unknown };
  [key: string]: unknown;
}

export interface RawPodWithStatus extends RawPod {
  metadata?: RawPod['metadata'] & { uid?: string; creationTimestamp?: Timestamp };
  status?: {
    phase?: string;
    reason?: string;
    conditions?: RawCondition[];
    containerStatuses?: RawContainerStatus[];
    initContainerStatuses?: RawContainerStatus[];
    [key: string]: unknown;
  };
}

export interface RawCronJob {
  metadata?: { name?: string; namespace?: string; uid?: string; [key: string]: unknown };
  status?: { lastSuccessfulTime?: Timestamp; [key: string]: unknown };
  [key: string]: unknown;
}

// ---------------------------------------------------------------------------------------------
// Metric names and the bounded label values (docs/outcomes.md "Metrics")

export const METRIC = {
  runs: 'jobmetrics_job_runs_total',
  runDuration: 'jobmetrics_job_run_duration_seconds',
  attempts: 'jobmetrics_job_attempts_total',
  attemptDuration: 'jobmetrics_job_attempt_duration_seconds',
  unmeasured: 'jobmetrics_pods_unmeasured_total',
  sidecarFlushes: 'jobmetrics_sidecar_final_flushes_total',
  sidecarUndelivered: 'jobmetrics_sidecar_undelivered_series_total',
  sidecarDeliveries: 'jobmetrics_sidecar_deliveries_total',
  sidecarRetries: 'jobmetrics_sidecar_delivery_retries_total',
  sidecarDropped: 'jobmetrics_sidecar_dropped_samples_total',
  sidecarCountsUnknown: 'jobmetrics_sidecar_delivery_counts_unknown_total',
  lastSuccess: 'jobmetrics_cronjob_last_success_timestamp_seconds',
} as const;

/** Seconds to days: the spread of batch work, a bucket per step a person would name. */
export const DURATION_BUCKETS = [1, 5, 10, 30, 60, 120, 300, 600, 1_800, 3_600, 7_200, 14_400, 43_200, 86_400] as const;

/**
 * Exit codes that say something on their own (1: the usual failure; 2: shells' misuse; 126/127:
 * not executable / not found; 137: SIGKILL, often the OOM killer; 139: SIGSEGV; 143: SIGTERM);
 * any other is `other`, so the label stays bounded.
 */
const NAMED_EXIT_CODES = new Set([0, 1, 2, 126, 127, 137, 139, 143]);
export const exitCodeClass = (code: number | undefined): string =>
  code === undefined ? 'unknown' : NAMED_EXIT_CODES.has(code) ? String(code) : 'other';

/**
 * A reason from the API kept as is when it looks like the API's own CamelCase vocabulary (Job
 * condition reasons, container and pod reasons), else `Other`: a label value never grows without
 * bound, whatever a kubelet or a controller writes.
 */
export const boundedReason = (reason: string | undefined, fallback: string): string =>
  reason === undefined || reason === '' ? fallback : /^[A-Z][A-Za-z]{0,47}$/.test(reason) ? reason : 'Other';

// ---------------------------------------------------------------------------------------------
// Events

export interface Counted {
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly value: number;
}

export interface OutcomeEvent {
  /** Unique per event and the same in every replica: becomes the series' `pod` label. */
  readonly id: string;
  readonly namespace: string;
  readonly workload: string;
  /** When it happened, from the object (ms since the epoch). */
  readonly atMs: number;
  readonly counters: readonly Counted[];
  /** Histogram observations: name and labels of the histogram, and the value observed. */
  readonly observations: ReadonlyArray<{ readonly name: string; readonly labels: Readonly<Record<string, string>>; readonly value: number }>;
}

export const toMs = (t: Timestamp | undefined): number | undefined => {
  if (t === undefined) return undefined;
  const ms = t instanceof Date ? t.getTime() : Date.parse(t);
  return Number.isFinite(ms) ? ms : undefined;
};

/** The workload a Job's runs are counted under: the webhook's own rule (webhook/workload.ts). */
export function jobWorkload(job: RawJob): Workload | undefined {
  const name = job.metadata?.name;
  if (name === undefined || name === '') return undefined;
  // The annotation only as the webhook accepts it (a label value); an invalid one is ignored here,
  // as the webhook skips such a pod, so a tenant cannot mint series through it.
  const raw = job.spec?.template?.metadata?.annotations?.[ANNOTATION.workload];
  const parsed = raw === undefined ? undefined : parseTargetAnnotations({ [ANNOTATION.workload]: raw });
  const annotation = parsed?.ok ? parsed.value.workload : undefined;
  const owner = (job.metadata?.ownerReferences ?? []).find((o) => o.kind === 'CronJob' && o.controller === true);
  return workloadName({
    pod: { metadata: { name }, spec: { containers: [] } },
    job: { name },
    annotation,
    lookup: { state: 'found', cronJob: owner?.name ?? null },
    nowMs: 0,
  });
}

/**
 * A finished Job's run: Complete or Failed with the controller's reason (CompletionsReached,
 * SuccessPolicy, BackoffLimitExceeded, DeadlineExceeded, PodFailurePolicy, …), at the time the
 * condition says, and how long it ran from `status.startTime`. Undefined while it runs: the
 * interim FailureTarget and SuccessCriteriaMet conditions are not an end yet.
 */
export function jobRun(job: RawJob): OutcomeEvent | undefined {
  const uid = job.metadata?.uid;
  const namespace = job.metadata?.namespace;
  const workload = jobWorkload(job);
  if (!uid || !namespace || !workload) return undefined;
  const conditions = job.status?.conditions ?? [];
  const done = conditions.find((c) => (c.type === 'Complete' || c.type === 'Failed') && c.status === 'True');
  if (!done) return undefined;
  const result = done.type === 'Complete' ? 'succeeded' : 'failed';
  const atMs = (done.type === 'Complete' ? toMs(job.status?.completionTime) : undefined) ?? toMs(done.lastTransitionTime);
  if (atMs === undefined) return undefined;
  const startMs = toMs(job.status?.startTime) ?? atMs;
  const reason = boundedReason(done.reason, done.type === 'Complete' ? 'Complete' : 'Failed');
  return {
    id: `run/${uid}`,
    namespace,
    workload: workload.name,
    atMs,
    counters: [{ name: METRIC.runs, labels: { result, reason }, value: 1 }],
    observations: [{ name: METRIC.runDuration, labels: { result }, value: Math.max(0, (atMs - startMs) / 1000) }],
  };
}

const injectedSidecar = (pod: RawPod): RawContainer | undefined => allContainers(pod).find((c) => c.name === SIDECAR_CONTAINER);

/** A setting the webhook gave the pod's sidecar (its env value), when the pod has one. */
export function sidecarSetting(pod: RawPod, name: string): string | undefined {
  const env = (injectedSidecar(pod)?.['env'] ?? []) as Array<{ name?: string; value?: string }>;
  return env.find((e) => e.name === name)?.value;
}

/** The container whose exit is the attempt's: the one the sidecar watches, else the first. */
export function mainContainerName(pod: RawPod): string | undefined {
  return sidecarSetting(pod, SIDECAR_ENV.mainContainer) ?? pod.spec.containers.find((c) => c.name !== SIDECAR_CONTAINER)?.name;
}

/**
 * The reason of an attempt: what ended the pod when the pod says (Evicted, DeadlineExceeded, a
 * DisruptionTarget reason such as PreemptionByScheduler), else the container's own (Completed,
 * Error, OOMKilled, …).
 */
function attemptReason(pod: RawPodWithStatus, t: RawTerminated, final: boolean): string {
  if (final) {
    const disruption = pod.status?.conditions?.find((c) => c.type === 'DisruptionTarget' && c.status === 'True');
    if (pod.status?.phase === 'Failed' && pod.status.reason) return boundedReason(pod.status.reason, 'Failed');
    if (disruption?.reason && t.exitCode !== 0) return boundedReason(disruption.reason, 'Disrupted');
  }
  return boundedReason(t.reason, t.exitCode === 0 ? 'Completed' : 'Error');
}

/**
 * Every finished attempt of the pod's main container this status shows: the previous one
 * (`lastState`) after an in-place restart (`restartPolicy: OnFailure`), and the current one once
 * the pod itself is over (phase Succeeded or Failed, or deleted). Attempt n of a pod is
 * `attempt/<pod uid>/<n>`, n counted from 0 by the kubelet's restartCount, so the same attempt
 * seen in two statuses is one event.
 *
 * The labels of an event must be the same in every status it is derived from, or two replicas
 * would count it under two label sets. A `lastState` never changes. The current termination is
 * read only from a pod that is over: before that, a container may be about to restart in place,
 * and the pod's own reason (Evicted, …) may not be written yet; after it, the status no longer
 * changes (a deleted pod's last status is the one its deletion carries).
 */
export function podAttempts(pod: RawPodWithStatus, workload: string, deleted = false): OutcomeEvent[] {
  const uid = pod.metadata?.uid;
  const namespace = pod.metadata?.namespace;
  const main = mainContainerName(pod);
  if (!uid || !namespace || main === undefined) return [];
  const status = pod.status?.containerStatuses?.find((s) => s.name === main);
  if (!status) return [];
  const restarts = status.restartCount ?? 0;
  const out: OutcomeEvent[] = [];
  const add = (t: RawTerminated | undefined, index: number, final: boolean): void => {
    if (!t || index < 0) return;
    const atMs = toMs(t.finishedAt);
    if (atMs === undefined) return;
    const startMs = toMs(t.startedAt) ?? atMs;
    const result = t.exitCode === 0 ? 'succeeded' : 'failed';
    out.push({
      id: `attempt/${uid}/${index}`,
      namespace,
      workload,
      atMs,
      counters: [{ name: METRIC.attempts, labels: { result, reason: attemptReason(pod, t, final), exit_code: exitCodeClass(t.exitCode) }, value: 1 }],
      observations: [{ name: METRIC.attemptDuration, labels: { result }, value: Math.max(0, (atMs - startMs) / 1000) }],
    });
  };
  add(status.lastState?.terminated, restarts - 1, false);
  const over = deleted || pod.status?.phase === 'Succeeded' || pod.status?.phase === 'Failed';
  if (over) add(status.state?.terminated, restarts, true);
  return out;
}

/**
 * How the pod's sidecar ended and what it did, from the first line of its termination message
 * (shared/final-report-head.ts):
 * - the final flush: `delivered` (it reached the gateway), `undelivered` (it gave up at its flush
 *   deadline; its series not delivered are counted too), or `no-report` (no report: killed,
 *   OOM-killed before it could write one);
 * - its deliveries (`ok`, `failed` after their retries, zeros included: known zeros), its
 *   retries, and the samples it dropped by reason (only the reasons it had);
 * - or, when it cannot say all of that, why those counts are not (all) there: `old-sidecar` (a
 *   report without them), `sidecar-restarted` (the kubelet restarted the sidecar in the pod: the
 *   counts are its last run's, the earlier runs' are lost).
 *
 * Per workload, so a sidecar that cannot reach the gateway — which then counts nothing itself —
 * still shows. Read only once the pod is over and the sidecar has a terminated state (a deleted
 * pod whose last status shows it running gives no event): the same object state in every replica
 * gives the same labels. `flush/<pod uid>`, at the sidecar's end.
 */
export function sidecarFlush(pod: RawPodWithStatus, workload: string): OutcomeEvent | undefined {
  const uid = pod.metadata?.uid;
  const namespace = pod.metadata?.namespace;
  if (!uid || !namespace || injectedSidecar(pod) === undefined) return undefined;
  if (pod.status?.phase !== 'Succeeded' && pod.status?.phase !== 'Failed') return undefined;
  const status = [...(pod.status.initContainerStatuses ?? []), ...(pod.status.containerStatuses ?? [])].find((c) => c.name === SIDECAR_CONTAINER);
  const t = status?.state?.terminated;
  const atMs = toMs(t?.finishedAt);
  if (!t || atMs === undefined) return undefined;
  const report = parseReportHead(t.message);
  const counters: Counted[] = [{ name: METRIC.sidecarFlushes, labels: { result: report === undefined ? 'no-report' : report.delivered ? 'delivered' : 'undelivered' }, value: 1 }];
  if (report !== undefined && report.undelivered > 0) counters.push({ name: METRIC.sidecarUndelivered, labels: {}, value: report.undelivered });
  const counts = report?.counts;
  if (counts !== undefined) {
    counters.push(
      { name: METRIC.sidecarDeliveries, labels: { result: 'ok' }, value: counts.ok },
      { name: METRIC.sidecarDeliveries, labels: { result: 'failed' }, value: counts.failed },
      { name: METRIC.sidecarRetries, labels: {}, value: counts.retries },
    );
    for (const reason of DROP_REASONS) {
      const n = counts.dropped[reason] ?? 0;
      if (n > 0) counters.push({ name: METRIC.sidecarDropped, labels: { reason }, value: n });
    }
  }
  const unknown = report === undefined ? undefined : counts === undefined ? 'old-sidecar' : (status?.restartCount ?? 0) > 0 ? 'sidecar-restarted' : undefined;
  if (unknown !== undefined) counters.push({ name: METRIC.sidecarCountsUnknown, labels: { reason: unknown }, value: 1 });
  return { id: `flush/${uid}`, namespace, workload, atMs, counters, observations: [] };
}

/**
 * A Job pod of an opted-in namespace that runs without the sidecar, and why: `opted-out` (the
 * pod's own label), `skipped` (the webhook said why in jobmetrics.io/status), or
 * `webhook-unreachable` (no status at all: the webhook was not called or did not answer, and
 * `failurePolicy: Ignore` let the pod through). Undefined for a pod with the sidecar.
 */
export function unmeasuredPod(pod: RawPodWithStatus, workload: string): OutcomeEvent | undefined {
  const uid = pod.metadata?.uid;
  const namespace = pod.metadata?.namespace;
  const atMs = toMs(pod.metadata?.creationTimestamp);
  if (!uid || !namespace || atMs === undefined || !jobOf(pod)) return undefined;
  if (injectedSidecar(pod) !== undefined) return undefined;
  const status = pod.metadata?.annotations?.[ANNOTATION.status];
  const reason =
    pod.metadata?.labels?.[INJECT_LABEL] === INJECT_DISABLED ? 'opted-out' : status?.startsWith(STATUS_SKIPPED_PREFIX) ? 'skipped' : 'webhook-unreachable';
  return { id: `unmeasured/${uid}`, namespace, workload, atMs, counters: [{ name: METRIC.unmeasured, labels: { reason }, value: 1 }], observations: [] };
}

// ---------------------------------------------------------------------------------------------
// Series

const KIND = 'jobmetrics_kind';

/**
 * An event's remote-write series: each counter and each histogram series (every bucket, `_sum`,
 * `_count`) as `0` one millisecond before the event and its value at the event. The explicit 0
 * makes the aggregator count the first value in full (docs/semantics.md, fact b); the gateway
 * then holds the value one aggregation interval behind it, so `increase()` sees the birth.
 */
export function eventSeries(e: OutcomeEvent): RwSeries[] {
  const series: RwSeries[] = [];
  const push = (name: string, labels: Readonly<Record<string, string>>, value: number): void => {
    series.push({
      labels: [['__name__', name], ['namespace', e.namespace], ['job', e.workload], ['pod', e.id], [KIND, 'counter'], ...Object.entries(labels)],
      samples: [
        { value: 0, timestampMs: e.atMs - 1 },
        { value, timestampMs: e.atMs },
      ],
    });
  };
  for (const c of e.counters) push(c.name, c.labels, c.value);
  for (const o of e.observations) {
    for (const le of DURATION_BUCKETS) push(`${o.name}_bucket`, { ...o.labels, le: String(le) }, o.value <= le ? 1 : 0);
    push(`${o.name}_bucket`, { ...o.labels, le: '+Inf' }, 1);
    push(`${o.name}_sum`, o.labels, o.value);
    push(`${o.name}_count`, o.labels, 1);
  }
  return series;
}

/**
 * A CronJob's last successful run as a gauge (seconds since the epoch), from its own status, at
 * `nowMs`: sent again and again (a gauge's output exists only in intervals with an input), under
 * the CronJob's uid, so `max` over replicas is the same value. Undefined before a first success.
 */
export function lastSuccessSeries(cron: RawCronJob, nowMs: number): RwSeries | undefined {
  const at = toMs(cron.status?.lastSuccessfulTime);
  const { name, namespace, uid } = cron.metadata ?? {};
  if (at === undefined || !name || !namespace || !uid) return undefined;
  return {
    labels: [['__name__', METRIC.lastSuccess], ['namespace', namespace], ['job', name], ['pod', `cronjob/${uid}`], [KIND, 'gauge']],
    samples: [{ value: at / 1000, timestampMs: nowMs }],
  };
}
