/**
 * The outcome recorder: watches Jobs, their pods and CronJobs in opted-in namespaces, turns what
 * finished into events (outcomes.ts) and delivers them as remote write (docs/outcomes.md).
 *
 * The story: find the opted-in namespaces (a watch on the namespace label) → in each, watch Jobs,
 * Job pods and CronJobs → every change of an object offers its events → every flush interval the
 * queued events go out in one request; CronJobs' last success is re-sent every 30 flushes.
 *
 * Two replicas, and restarts, need no coordination: an event's samples are the same wherever they
 * are derived, and a repeat adds nothing at the aggregator (outcomes.ts, pending.ts).
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { BatchV1Api, CoreV1Api, KubeConfig, makeInformer, type Informer, type KubernetesObject, type ObjectCache } from '@kubernetes/client-node';
import client from 'prom-client';
import type { Logger } from '../shared/log.ts';
import { INJECT_ENABLED, INJECT_LABEL, SIDECAR_ENV } from '../shared/names.ts';
import { WriterToken } from '../shared/writer-token.ts';
import { deliverWithRetry, encodeWriteRequest, type RwSeries } from '../shared/remote-write.ts';
import { VERSION } from '../shared/version.ts';
import { jobOf, workloadName } from '../webhook/workload.ts';
import { deliveryWindowMs, type RecorderConfig } from './config.ts';
import { eventSeries, jobRun, jobWorkload, lastSuccessSeries, podAttempts, sidecarFlush, sidecarSetting, unmeasuredPod, type OutcomeEvent, type RawCronJob, type RawJob, type RawPodWithStatus } from './outcomes.ts';
import { Pending } from './pending.ts';

export const USER_AGENT = `jobmetrics-recorder/${VERSION}`;
/** Events per remote-write request: ~20 series each, so a request stays under ~100 KB. */
const MAX_EVENTS_PER_REQUEST = 200;
/** Pods the Job controller made (both label spellings exist since Kubernetes 1.27). */
const JOB_POD_SELECTOR = 'batch.kubernetes.io/controller-uid';
const RESTART_WATCH_MS = 5_000;

export interface Recorder {
  readonly url: string;
  readonly registry: client.Registry;
  /** Resolves once every opted-in namespace seen so far has listed its objects. */
  synced(): Promise<void>;
  close(): Promise<void>;
}

export interface RecorderDeps {
  readonly log: Logger;
  readonly now?: () => number;
}

interface NamespaceWatch {
  readonly jobs: Informer<KubernetesObject> & ObjectCache<KubernetesObject>;
  readonly pods: Informer<KubernetesObject> & ObjectCache<KubernetesObject>;
  readonly cronJobs: Informer<KubernetesObject> & ObjectCache<KubernetesObject>;
  readonly started: Promise<void>;
}

export async function startRecorder(config: RecorderConfig, deps: RecorderDeps): Promise<Recorder> {
  const { log } = deps;
  const now = deps.now ?? Date.now;
  const kc = new KubeConfig();
  if (config.kubeconfig !== undefined) kc.loadFromFile(config.kubeconfig);
  else kc.loadFromCluster();
  const core = kc.makeApiClient(CoreV1Api);
  const batch = kc.makeApiClient(BatchV1Api);
  const pending = new Pending(deliveryWindowMs(config));
  const m = recorderMetrics(pending);
  const namespaces = new Map<string, NamespaceWatch>();
  const target = config.remoteWriteUrl.toString();
  const token = config.writerTokenFile === undefined ? undefined : new WriterToken(config.writerTokenFile, {
          onReadError: (error, haveOlderToken) => log.warn('cannot read the token for the gateway', { error, haveOlderToken }),
        });

  // ---- events from objects ------------------------------------------------------------------

  const offer = (kind: string, events: readonly OutcomeEvent[]): void => {
    if (events.length === 0) return;
    const o = pending.offer(events, now());
    if (o.queued > 0) m.events.inc({ kind, state: 'queued' }, o.queued);
    if (o.tooOld > 0) m.events.inc({ kind, state: 'too_old' }, o.tooOld);
  };

  const onJob = (obj: KubernetesObject): void => {
    const run = jobRun(obj as RawJob);
    if (run) offer('run', [run]);
  };

  const podWorkload = (pod: RawPodWithStatus, ns: NamespaceWatch | undefined): string | undefined => {
    // The injected sidecar carries the exact name its series use.
    const fromSidecar = sidecarSetting(pod, SIDECAR_ENV.job);
    if (fromSidecar) return fromSidecar;
    const ref = jobOf(pod);
    const job = ref && ns ? (ns.jobs.get(ref.name, pod.metadata?.namespace) as RawJob | undefined) : undefined;
    if (job) return jobWorkload(job)?.name;
    return workloadName({ pod, job: ref, annotation: undefined, lookup: undefined, nowMs: now() })?.name;
  };

  const onPod = (obj: KubernetesObject, deleted: boolean): void => {
    const pod = obj as unknown as RawPodWithStatus;
    if (!Array.isArray(pod.spec?.containers)) return;
    const workload = podWorkload(pod, namespaces.get(pod.metadata?.namespace ?? ''));
    if (workload === undefined) return;
    offer('attempt', podAttempts(pod, workload, deleted));
    const unmeasured = unmeasuredPod(pod, workload);
    if (unmeasured) offer('unmeasured', [unmeasured]);
    const flush = sidecarFlush(pod, workload);
    if (flush) offer('flush', [flush]);
  };

  // ---- watches ------------------------------------------------------------------------------

  /** Starts an informer and restarts it after an error (client-node's informers stop on one). */
  const run = (what: string, inf: Informer<KubernetesObject>): Promise<void> => {
    inf.on('error', (err: unknown) => {
      m.watchErrors.inc({ resource: what.split(' ')[0] ?? what });
      log.warn('watch failed; restarting', { watch: what, error: err, inMs: RESTART_WATCH_MS });
      setTimeout(() => {
        if (!closing) void inf.start().catch(() => undefined);
      }, RESTART_WATCH_MS).unref();
    });
    return inf.start();
  };

  const watchNamespace = (name: string): void => {
    if (namespaces.has(name)) return;
    const jobs = makeInformer(kc, `/apis/batch/v1/namespaces/${name}/jobs`, () => batch.listNamespacedJob({ namespace: name }));
    const pods = makeInformer(kc, `/api/v1/namespaces/${name}/pods`, () => core.listNamespacedPod({ namespace: name, labelSelector: JOB_POD_SELECTOR }), JOB_POD_SELECTOR);
    const cronJobs = makeInformer(kc, `/apis/batch/v1/namespaces/${name}/cronjobs`, () => batch.listNamespacedCronJob({ namespace: name }));
    for (const verb of ['add', 'update', 'delete'] as const) {
      jobs.on(verb, onJob);
      pods.on(verb, (pod) => onPod(pod, verb === 'delete'));
    }
    // Jobs first: a pod without the sidecar finds its workload through its Job.
    const started = run(`jobs in ${name}`, jobs)
      .then(() => Promise.all([run(`pods in ${name}`, pods), run(`cronjobs in ${name}`, cronJobs)]))
      .then(() => log.info('watching namespace', { namespace: name }))
      .catch((error: unknown) => log.warn('cannot list in namespace; the watch retries', { namespace: name, error }));
    namespaces.set(name, { jobs, pods, cronJobs, started });
    m.namespaces.set(namespaces.size);
  };

  const unwatchNamespace = (name: string): void => {
    const ns = namespaces.get(name);
    if (!ns) return;
    namespaces.delete(name);
    m.namespaces.set(namespaces.size);
    void Promise.all([ns.jobs.stop(), ns.pods.stop(), ns.cronJobs.stop()]).catch(() => undefined);
    log.info('namespace no longer opted in; stopped watching it', { namespace: name });
  };

  const selector = `${INJECT_LABEL}=${INJECT_ENABLED}`;
  const nsInformer = makeInformer(kc, '/api/v1/namespaces', () => core.listNamespace({ labelSelector: selector }), selector);
  nsInformer.on('add', (ns) => ns.metadata?.name && watchNamespace(ns.metadata.name));
  nsInformer.on('update', (ns) => ns.metadata?.name && watchNamespace(ns.metadata.name));
  nsInformer.on('delete', (ns) => ns.metadata?.name && unwatchNamespace(ns.metadata.name));

  // ---- delivery -----------------------------------------------------------------------------

  let closing = false;
  let flushes = 0;
  let flushing: Promise<void> | undefined;

  // A gateway that is down fails every flush: one line when deliveries start failing (and the
  // count of failures since, when they recover), not one a second.
  let failingSince: { atMs: number; failures: number } | undefined;
  const deliver = async (series: RwSeries[], deadlineMs: number): Promise<boolean> => {
    const authorization = token?.authorization();
    const out = await deliverWithRetry(target, encodeWriteRequest(series), {
      deadlineMs,
      timeoutMs: Math.min(10_000, Math.max(1_000, deadlineMs - now())),
      userAgent: USER_AGENT,
      ...(authorization !== undefined && { authorization }),
    });
    if (!out.ok) {
      m.deliveryFailures.inc();
      if (failingSince === undefined) {
        failingSince = { atMs: now(), failures: 0 };
        log.warn('delivery failed; the events stay queued and are retried every flush', { error: out.error, status: out.status, series: series.length, queued: pending.size });
      }
      failingSince.failures++;
    } else if (failingSince !== undefined) {
      log.info('delivery recovered', { failures: failingSince.failures, afterMs: now() - failingSince.atMs, queued: pending.size });
      failingSince = undefined;
    }
    return out.ok;
  };

  const flush = async (): Promise<void> => {
    flushes++;
    for (const lost of pending.prune(now())) {
      m.events.inc({ kind: lost.id.split('/')[0] ?? 'event', state: 'expired' });
      log.error('event not delivered within its window; lost', { id: lost.id, namespace: lost.namespace, job: lost.workload });
    }
    for (let batchOf = pending.take(MAX_EVENTS_PER_REQUEST); batchOf.length > 0; batchOf = pending.take(MAX_EVENTS_PER_REQUEST)) {
      if (!(await deliver(batchOf.flatMap(eventSeries), now() + 3 * config.flushMs + 5_000))) break;
      pending.delivered(batchOf);
      for (const e of batchOf) m.events.inc({ kind: e.id.split('/')[0] ?? 'event', state: 'delivered' });
    }
    if (flushes % 30 === 1) {
      const gauges: RwSeries[] = [];
      for (const ns of namespaces.values()) for (const c of ns.cronJobs.list()) {
        const s = lastSuccessSeries(c as RawCronJob, now());
        if (s) gauges.push(s);
      }
      if (gauges.length > 0) await deliver(gauges, now() + 5_000);
    }
  };

  const flushTimer = setInterval(() => {
    if (flushing === undefined) flushing = flush().finally(() => (flushing = undefined));
  }, config.flushMs);

  // ---- HTTP: /metrics, /healthz ---------------------------------------------------------------

  const server = http.createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method === 'GET' && path === '/metrics') {
      void m.registry.metrics().then((text) => res.writeHead(200, { 'content-type': m.registry.contentType }).end(text));
    } else if (req.method === 'GET' && path === '/healthz') res.writeHead(200).end('ok');
    else res.writeHead(404).end('not found');
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(config.listen.port, config.listen.host, () => resolve());
  });
  const addr = server.address() as AddressInfo;
  const url = `http://${addr.family === 'IPv6' ? `[${addr.address}]` : addr.address}:${addr.port}`;

  await run('namespaces', nsInformer).catch((error: unknown) => log.warn('cannot list namespaces yet; the watch retries', { error }));
  log.info('recorder started', { url, remoteWrite: target, windowMs: deliveryWindowMs(config), version: VERSION });

  return {
    url,
    registry: m.registry,
    async synced() {
      await Promise.all([...namespaces.values()].map((n) => n.started));
    },
    async close() {
      closing = true;
      clearInterval(flushTimer);
      await flushing;
      await flush(); // what is queued goes now; a repeat later by another replica adds nothing
      await Promise.all([nsInformer.stop(), ...[...namespaces.values()].flatMap((n) => [n.jobs.stop(), n.pods.stop(), n.cronJobs.stop()])]).catch(() => undefined);
      await new Promise<void>((resolve) => server.close(() => resolve()));
      log.info('recorder stopped', { queued: pending.size });
    },
  };
}

function recorderMetrics(pending: Pending) {
  const registry = new client.Registry();
  return {
    registry,
    events: new client.Counter({
      name: 'jobmetrics_recorder_events_total',
      help: 'Outcome events by kind (run, attempt, unmeasured) and state: queued, delivered, too_old (older than the delivery window when first seen: counted before, or missed while no recorder ran), expired (not delivered within the window: lost).',
      labelNames: ['kind', 'state'],
      registers: [registry],
    }),
    deliveryFailures: new client.Counter({ name: 'jobmetrics_recorder_delivery_failures_total', help: 'Remote-write deliveries that failed after their retries (the events stay queued).', registers: [registry] }),
    watchErrors: new client.Counter({ name: 'jobmetrics_recorder_watch_errors_total', help: 'Watches that failed and were restarted, by resource.', labelNames: ['resource'], registers: [registry] }),
    namespaces: new client.Gauge({ name: 'jobmetrics_recorder_namespaces', help: 'Opted-in namespaces being watched.', registers: [registry] }),
    queued: new client.Gauge({
      name: 'jobmetrics_recorder_queued_events',
      help: 'Events waiting for delivery.',
      registers: [registry],
      collect() {
        this.set(pending.size);
      },
    }),
  };
}
