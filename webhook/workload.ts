/**
 * Which Job a pod belongs to, and the stable workload name that becomes the `job` label.
 *
 * The rule (docs/webhook.md "Workload name"), first match wins:
 * 1. the `jobmetrics.io/workload` annotation;
 * 2. the CronJob that owns the pod's Job, as the API says: the webhook GETs the Job (cached,
 *    short timeout) and reads its controller ownerReference. This also covers Jobs made by hand
 *    from a CronJob (`kubectl create job --from=cronjob/x`), whose names follow no pattern;
 * 3. when that lookup is off or failed: the CronJob controller's naming pattern. It names each
 *    run `<cronjob>-<scheduled time in minutes since the epoch>` (pkg/controller/cronjob
 *    `getJobName`), so a Job name `<prefix>-<digits>` whose digits are a plausible such time
 *    (2015 … tomorrow) and whose prefix fits a CronJob name (at most 52 characters) maps to prefix;
 * 4. the Job's name; 5. for an opted-in pod no Job owns: the pod's name or generateName stem.
 */
import { JOB_CONTROLLER_UID_LABELS, JOB_NAME_LABELS } from '../shared/names.ts';
import type { RawPod } from './pod.ts';

export interface JobRef {
  readonly name: string;
  /** From the ownerReference or the controller-uid label; absent when only the name label is set. */
  readonly uid?: string;
}

/** What the API said about the Job's owner; absent from the context when nobody asked. */
export type JobOwnerLookup =
  | { readonly state: 'found'; readonly cronJob: string | null }
  | { readonly state: 'unavailable'; readonly reason: string };

export type WorkloadSource = 'annotation' | 'cronjob' | 'cronjob-name-pattern' | 'job' | 'pod';

export interface Workload {
  readonly name: string;
  readonly source: WorkloadSource;
}

/** The Job owning the pod: its controller ownerReference of kind Job, else the Job controller's labels. */
export function jobOf(pod: RawPod): JobRef | undefined {
  const owners = pod.metadata?.ownerReferences ?? [];
  const owner =
    owners.find((o) => o.kind === 'Job' && isBatchGroup(o.apiVersion) && o.controller === true) ??
    owners.find((o) => o.kind === 'Job' && isBatchGroup(o.apiVersion));
  if (owner && typeof owner.name === 'string' && owner.name !== '') {
    return typeof owner.uid === 'string' && owner.uid !== '' ? { name: owner.name, uid: owner.uid } : { name: owner.name };
  }
  const labels = pod.metadata?.labels ?? {};
  const name = firstLabel(labels, JOB_NAME_LABELS);
  if (name === undefined) return undefined;
  const uid = firstLabel(labels, JOB_CONTROLLER_UID_LABELS);
  return uid === undefined ? { name } : { name, uid };
}

/** A pod the Job controller made carries at least one of these, even without an ownerReference. */
export function isJobPod(pod: RawPod): boolean {
  if (jobOf(pod)) return true;
  const labels = pod.metadata?.labels ?? {};
  return firstLabel(labels, JOB_CONTROLLER_UID_LABELS) !== undefined;
}

const MINUTES_2015 = Date.UTC(2015, 0, 1) / 60_000;
const MAX_CRONJOB_NAME = 52; // validation of CronJob names: 63 minus the 11 characters of the suffix
const CRONJOB_JOB_NAME = /^(.+)-(\d+)$/;

/** The CronJob name behind a Job name, if it follows the CronJob controller's pattern. */
export function cronJobFromJobName(jobName: string, nowMs: number): string | undefined {
  const m = CRONJOB_JOB_NAME.exec(jobName);
  if (!m) return undefined;
  const prefix = m[1] ?? '';
  const minutes = Number(m[2]);
  const tomorrow = nowMs / 60_000 + 24 * 60;
  if (prefix.length > MAX_CRONJOB_NAME || minutes < MINUTES_2015 || minutes > tomorrow) return undefined;
  return prefix;
}

export function workloadName(input: {
  readonly pod: RawPod;
  readonly job: JobRef | undefined;
  readonly annotation: string | undefined;
  readonly lookup: JobOwnerLookup | undefined;
  readonly nowMs: number;
}): Workload | undefined {
  if (input.annotation !== undefined) return { name: input.annotation, source: 'annotation' };
  if (input.job) {
    if (input.lookup?.state === 'found') {
      return input.lookup.cronJob !== null
        ? { name: input.lookup.cronJob, source: 'cronjob' }
        : { name: input.job.name, source: 'job' };
    }
    const cron = cronJobFromJobName(input.job.name, input.nowMs);
    if (cron !== undefined) return { name: cron, source: 'cronjob-name-pattern' };
    return { name: input.job.name, source: 'job' };
  }
  const meta = input.pod.metadata;
  if (meta?.name) return { name: meta.name, source: 'pod' };
  // generateName is `<stem>-` by convention; the stem is what stays the same across pods.
  const stem = meta?.generateName?.replace(/-+$/, '');
  if (stem) return { name: stem, source: 'pod' };
  return undefined;
}

function isBatchGroup(apiVersion: string | undefined): boolean {
  return typeof apiVersion === 'string' && apiVersion.startsWith('batch/');
}

function firstLabel(labels: Readonly<Record<string, string>>, names: readonly string[]): string | undefined {
  for (const n of names) {
    const v = labels[n];
    if (v !== undefined && v !== '') return v;
  }
  return undefined;
}
