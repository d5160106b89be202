/**
 * What the real-pod suites share: one local cluster (scripts/cluster/cluster.ts) per test file,
 * Jobs run to their end, the jobs' own ground truth, and what Prometheus in the cluster holds.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { NODE_NAME, startCluster, type Cluster } from '../../scripts/cluster/cluster.ts';
import { kubectlOk } from '../../scripts/cluster/control-plane.ts';
import { waitForInjection, type ProbeAnswer } from '../../scripts/cluster/injection-check.ts';
import { clusterImages, ensureImages } from '../../scripts/cluster/images.ts';
import { clusterDir, runningSupervisor } from '../../scripts/cluster/state.ts';

export const SAMPLE_JOB_IMAGE = 'localhost/jobmetrics/sample-job:dev';
export const PYTHON_JOB_IMAGE = 'localhost/jobmetrics/python-job:dev';

/** Starts the cluster for a test file; fails loudly (never skips) without root or with a
 * `npm run cluster` cluster already holding the node's bridge and addresses. */
export async function startTestCluster(): Promise<Cluster> {
  if (process.getuid?.() !== 0) {
    throw new Error('the real-pod tests need root: they run containerd, a kubelet, a bridge and iptables rules (run npm test as root)');
  }
  const peopleDir = clusterDir({ JOBMETRICS_CLUSTER_DIR: process.env['JOBMETRICS_CLUSTER_DIR'] });
  if (runningSupervisor(peopleDir) !== undefined) {
    throw new Error(`a cluster from \`npm run cluster -- up\` is running (${peopleDir}); stop it with \`npm run cluster -- down\` before running the real-pod tests`);
  }
  ensureImages();
  const dir = mkdtempSync(join(tmpdir(), 'jobmetrics-e2e-cluster-'));
  return startCluster({ dir, images: clusterImages(), progress: (line) => console.log(`      cluster: ${line}`) });
}

export async function labelledNamespace(cluster: Cluster, name: string, labels: Record<string, string> = {}): Promise<void> {
  const manifest = { apiVersion: 'v1', kind: 'Namespace', metadata: { name, labels: { 'jobmetrics.io/inject': 'enabled', ...labels } } };
  await kubectlOk(cluster.cp, ['apply', '-f', '-'], { input: JSON.stringify(manifest) });
  const deadline = Date.now() + 60_000;
  for (;;) {
    const r = await cluster.cp.kubectl(['-n', name, 'get', 'serviceaccount', 'default', '-o', 'name']);
    if (r.code === 0) return;
    if (Date.now() > deadline) throw new Error(`namespace ${name}: no default ServiceAccount after 60 s`);
    await sleep(250);
  }
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export interface JobStatus {
  readonly condition: 'Complete' | 'Failed';
  readonly succeeded: number;
  readonly failed: number;
}

/** Waits until the Job has the Complete or Failed condition. */
export async function waitForJob(cluster: Cluster, ns: string, name: string, timeoutMs = 240_000): Promise<JobStatus> {
  const deadline = Date.now() + timeoutMs;
  let last = '';
  for (;;) {
    const r = await cluster.cp.kubectl(['-n', ns, 'get', 'job', name, '-o', 'json']);
    if (r.code === 0) {
      const job = JSON.parse(r.stdout) as { status?: { succeeded?: number; failed?: number; conditions?: { type: string; status: string }[] } };
      const st = job.status ?? {};
      last = JSON.stringify(st);
      const cond = (st.conditions ?? []).find((c) => (c.type === 'Complete' || c.type === 'Failed') && c.status === 'True');
      if (cond) return { condition: cond.type as 'Complete' | 'Failed', succeeded: st.succeeded ?? 0, failed: st.failed ?? 0 };
    }
    if (Date.now() > deadline) throw new Error(`job ${ns}/${name} did not finish within ${timeoutMs} ms; last status ${last}\n${await describePods(cluster, ns)}`);
    await sleep(1_000);
  }
}

export async function describePods(cluster: Cluster, ns: string): Promise<string> {
  const r = await cluster.cp.kubectl(['-n', ns, 'get', 'pods', '-o', 'wide']);
  const events = await cluster.cp.kubectl(['-n', ns, 'get', 'events', '--sort-by=.lastTimestamp']);
  return `${r.stdout}\n${events.stdout.split('\n').slice(-25).join('\n')}`;
}

export interface PodInfo {
  readonly name: string;
  readonly uid: string;
  readonly annotations: Record<string, string>;
  readonly initContainers: string[];
  readonly containers: string[];
  readonly phase: string;
  readonly statuses: readonly ContainerStatus[];
}

export interface ContainerStatus {
  readonly name: string;
  readonly restartCount: number;
  /** containerd's id of the container's current run (without the `containerd://` scheme). */
  readonly containerId?: string;
  readonly running: boolean;
  readonly terminated?: { exitCode: number; reason?: string };
  readonly lastTerminated?: { exitCode: number; reason?: string };
}

interface RawPod {
  metadata: { name: string; uid: string; annotations?: Record<string, string> };
  spec: { initContainers?: { name: string }[]; containers: { name: string }[] };
  status: {
    phase?: string;
    initContainerStatuses?: RawStatus[];
    containerStatuses?: RawStatus[];
  };
}
interface RawStatus {
  name: string;
  restartCount: number;
  containerID?: string;
  state?: { running?: unknown; terminated?: { exitCode: number; reason?: string } };
  lastState?: { terminated?: { exitCode: number; reason?: string } };
}

export async function jobPods(cluster: Cluster, ns: string, job: string): Promise<PodInfo[]> {
  const out = await kubectlOk(cluster.cp, ['-n', ns, 'get', 'pods', '-l', `job-name=${job}`, '-o', 'json']);
  return (JSON.parse(out) as { items: RawPod[] }).items.map((p) => ({
    name: p.metadata.name,
    uid: p.metadata.uid,
    annotations: p.metadata.annotations ?? {},
    initContainers: (p.spec.initContainers ?? []).map((c) => c.name),
    containers: p.spec.containers.map((c) => c.name),
    phase: p.status.phase ?? '',
    statuses: [...(p.status.initContainerStatuses ?? []), ...(p.status.containerStatuses ?? [])].map((s) => ({
      name: s.name,
      restartCount: s.restartCount,
      running: s.state?.running !== undefined,
      ...(s.containerID ? { containerId: s.containerID.replace(/^containerd:\/\//, '') } : {}),
      ...(s.state?.terminated ? { terminated: s.state.terminated } : {}),
      ...(s.lastState?.terminated ? { lastTerminated: s.lastState.terminated } : {}),
    })),
  }));
}

/** The sample job's ground truth: the last JSON line it wrote to TRUTH_FILE. */
export interface Truth {
  ok: number;
  failed: number;
  observations: number;
  buckets: Record<string, number>;
}

export function lastTruth(text: string): Truth | undefined {
  const lines = text.split('\n').filter((l) => l.startsWith('{"ok":') || l.startsWith('{"truth":'));
  const last = lines.at(-1);
  if (last === undefined) return undefined;
  // The Python job prints `{"truth": {"ok", "failed"}, "exitCode"}` once, when it ends.
  const parsed = JSON.parse(last) as Truth | { truth: { ok: number; failed: number } };
  return 'truth' in parsed ? { ok: parsed.truth.ok, failed: parsed.truth.failed, observations: 0, buckets: {} } : parsed;
}

/** The truth a container printed on stdout (TRUTH_FILE=/dev/stdout), from its log. */
export async function truthFromLog(cluster: Cluster, ns: string, pod: string, container: string): Promise<Truth> {
  const log = await kubectlOk(cluster.cp, ['-n', ns, 'logs', pod, '-c', container]);
  const t = lastTruth(log);
  if (!t) throw new Error(`no truth line in the log of ${ns}/${pod}/${container}:\n${log.slice(-2000)}`);
  return t;
}

export function sumTruths(truths: readonly Truth[]): Truth {
  const total: Truth = { ok: 0, failed: 0, observations: 0, buckets: {} };
  for (const t of truths) {
    total.ok += t.ok;
    total.failed += t.failed;
    total.observations += t.observations;
    for (const [le, n] of Object.entries(t.buckets)) total.buckets[le] = (total.buckets[le] ?? 0) + n;
  }
  return total;
}

export interface Sample {
  readonly labels: Record<string, string>;
  readonly value: number;
}

/** A GET of the in-cluster Prometheus (`path` with its query string), with the credentials it needs. */
export function promFetch(cluster: Cluster, path: string): Promise<Response> {
  return fetch(`${cluster.prometheusUrl}${path}`, { headers: { authorization: cluster.prometheusAuthorization }, signal: AbortSignal.timeout(10_000) });
}

export async function promQuery(cluster: Cluster, query: string): Promise<Sample[]> {
  const res = await promFetch(cluster, `/api/v1/query?query=${encodeURIComponent(query)}`);
  const body = (await res.json()) as { status: string; error?: string; data?: { result: { metric: Record<string, string>; value: [number, string] }[] } };
  if (body.status !== 'success') throw new Error(`query ${query}: ${res.status} ${body.error ?? ''}`);
  return (body.data?.result ?? []).map((r) => ({ labels: r.metric, value: Number(r.value[1]) }));
}

/**
 * Polls Prometheus until `query` returns exactly `expected` (sorted by labels) — the aggregator
 * writes every 10 s — and returns the last result either way, for an exact assertion.
 */
export async function settle(cluster: Cluster, query: string, matches: (samples: Sample[]) => boolean, timeoutMs = 90_000): Promise<Sample[]> {
  const deadline = Date.now() + timeoutMs;
  let last: Sample[] = [];
  for (;;) {
    last = await promQuery(cluster, query).catch(() => last);
    if (matches(last)) return last;
    if (Date.now() > deadline) return last;
    await sleep(2_000);
  }
}

/** A sample Job manifest with the project's sample job as its main container. */
export function sampleJob(opts: {
  name: string;
  ns: string;
  completions?: number;
  parallelism?: number;
  env?: Record<string, string>;
  podSpec?: Record<string, unknown>;
  jobSpec?: Record<string, unknown>;
  annotations?: Record<string, string>;
  labels?: Record<string, string>;
  image?: string;
  main?: Record<string, unknown>;
}): Record<string, unknown> {
  return {
    apiVersion: 'batch/v1',
    kind: 'Job',
    metadata: { name: opts.name, namespace: opts.ns },
    spec: {
      completions: opts.completions ?? 1,
      parallelism: opts.parallelism ?? 1,
      backoffLimit: 0,
      ...opts.jobSpec,
      template: {
        metadata: { annotations: { 'prometheus.io/port': '9100', ...opts.annotations }, labels: { ...opts.labels } },
        spec: {
          restartPolicy: 'Never',
          containers: [{ ...sampleMain(opts.env, opts.image), ...opts.main }],
          ...opts.podSpec,
        },
      },
    },
  };
}

/** The sample job's container: counts ITEMS over DURATION_MS and prints its truth on stdout. */
export function sampleMain(env: Record<string, string> = {}, image = SAMPLE_JOB_IMAGE): Record<string, unknown> {
  const all = { PORT: '9100', ITEMS: '60', DURATION_MS: '3000', SETTLE_MS: '1500', TRUTH_FILE: '/dev/stdout', ...env };
  return { name: 'main', image, imagePullPolicy: 'Never', env: Object.entries(all).map(([name, value]) => ({ name, value })) };
}

/** The first pod of a Job once it is running with every container started. */
export async function runningPod(cluster: Cluster, ns: string, job: string): Promise<PodInfo> {
  for (const deadline = Date.now() + 120_000; ; await sleep(500)) {
    const pod = (await jobPods(cluster, ns, job))[0];
    if (pod && pod.phase === 'Running' && pod.statuses.every((c) => c.running)) return pod;
    if (Date.now() > deadline) throw new Error(`${ns}/${job}: no running pod after 120 s:\n${JSON.stringify(pod)}`);
  }
}

/**
 * Changes the webhook's settings (`NAME=value`, or `NAME-` to unset; several in one rollout) and
 * waits until only replicas with the new ones answer: a replica being replaced keeps answering,
 * with its old settings, for its shutdownDelay (docs/webhook.md). `live` tells the new settings from the old in what a
 * dry-run pod gets (scripts/cluster/injection-check.ts).
 */
export async function setWebhookEnv(cluster: Cluster, change: string | readonly string[], live: (answer: ProbeAnswer) => boolean): Promise<void> {
  await kubectlOk(cluster.cp, ['-n', 'jobmetrics', 'set', 'env', 'deployment/jobmetrics-webhook', ...(typeof change === 'string' ? [change] : change)]);
  await kubectlOk(cluster.cp, ['-n', 'jobmetrics', 'rollout', 'status', 'deployment/jobmetrics-webhook', '--timeout=180s'], { timeoutMs: 190_000 });
  for (const deadline = Date.now() + 120_000; ; await sleep(500)) {
    const pods = JSON.parse(await kubectlOk(cluster.cp, ['-n', 'jobmetrics', 'get', 'pods', '-l', 'app.kubernetes.io/name=jobmetrics-webhook', '-o', 'json'])) as { items: unknown[] };
    if (pods.items.length === 2) break;
    if (Date.now() > deadline) throw new Error(`old webhook replicas still there 120 s after the rollout: ${pods.items.length} pods`);
  }
  // Ready replicas of the new settings are not yet the ones the API server reaches (kube-proxy).
  await waitForInjection(cluster.cp, { accept: live });
}

/** Each running container's working set (bytes) in a pod, as the kubelet reports it (its Summary API). */
export async function workingSets(cluster: Cluster, ns: string, pod: string): Promise<Record<string, number>> {
  const raw = await kubectlOk(cluster.cp, ['get', '--raw', `/api/v1/nodes/${NODE_NAME}/proxy/stats/summary`]);
  const summary = JSON.parse(raw) as { pods?: { podRef: { name: string; namespace: string }; containers?: { name: string; memory?: { workingSetBytes?: number } }[] }[] };
  const found = summary.pods?.find((p) => p.podRef.namespace === ns && p.podRef.name === pod);
  return Object.fromEntries((found?.containers ?? []).flatMap((c) => (c.memory?.workingSetBytes === undefined ? [] : [[c.name, c.memory.workingSetBytes]])));
}

export async function apply(cluster: Cluster, manifest: unknown): Promise<void> {
  await kubectlOk(cluster.cp, ['apply', '-f', '-'], { input: JSON.stringify(manifest) });
}
