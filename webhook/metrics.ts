/**
 * The webhook's own /metrics (prom-client), on a registry of its own so tests can create
 * several servers in one process.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { SidecarMode } from '../shared/names.ts';
import type { LookupResult } from './job-owner.ts';
import { SKIP_REASONS } from './mutate.ts';
import type { Outcome } from './review.ts';
import type { WorkloadSource } from './workload.ts';

/** Every label value of the injections counter, so that each series exists from the start. */
const MODES = { native: true, legacy: true } satisfies Record<SidecarMode, true>;
const WORKLOAD_SOURCES = { annotation: true, cronjob: true, 'cronjob-name-pattern': true, job: true, pod: true } satisfies Record<WorkloadSource, true>;

export interface WebhookMetrics {
  readonly registry: Registry;
  readonly requests: Counter<'outcome'>;
  readonly injections: Counter<'mode' | 'workload_source'>;
  readonly skips: Counter<'reason'>;
  readonly duration: Histogram<'outcome'>;
  readonly jobLookups: Counter<'result'>;
  readonly tlsReloads: Counter<'result'>;
  readonly connectionsDropped: Counter;
  readonly bodyBytesInFlight: Gauge;
  observe(outcome: Outcome, seconds: number): void;
  lookup(result: LookupResult): void;
}

export function createMetrics(opts: { defaultMetrics?: boolean } = {}): WebhookMetrics {
  const registry = new Registry();
  if (opts.defaultMetrics ?? true) collectDefaultMetrics({ register: registry, prefix: 'jobmetrics_webhook_' });
  const requests = new Counter({
    name: 'jobmetrics_webhook_requests_total',
    help: 'AdmissionReviews answered, by outcome (injected, skipped, ignored, bad_request, too_large, overloaded, error).',
    labelNames: ['outcome'] as const,
    registers: [registry],
  });
  const injections = new Counter({
    name: 'jobmetrics_webhook_injections_total',
    help: 'Pods the sidecar was injected into, by mode and by where the workload name came from.',
    labelNames: ['mode', 'workload_source'] as const,
    registers: [registry],
  });
  const skips = new Counter({
    name: 'jobmetrics_webhook_skips_total',
    help: 'Pods not injected, by reason.',
    labelNames: ['reason'] as const,
    registers: [registry],
  });
  // Every series at 0 from the start: increase() and rate() never count a series' first sample, so
  // a replica's first skip or injection of a kind would otherwise be missed (and a rare skip never
  // seen at all) by the dashboards and alerts reading these (docs/dashboards.md).
  for (const mode of Object.keys(MODES)) for (const source of Object.keys(WORKLOAD_SOURCES)) injections.inc({ mode, workload_source: source }, 0);
  for (const reason of SKIP_REASONS) skips.inc({ reason }, 0);
  const duration = new Histogram({
    name: 'jobmetrics_webhook_request_duration_seconds',
    help: 'Time from the arrival of a review to its answer being written, by outcome.',
    labelNames: ['outcome'] as const,
    // The API server's timeout for this webhook is a few seconds; most answers take well under 1 ms.
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
    registers: [registry],
  });
  const jobLookups = new Counter({
    name: 'jobmetrics_webhook_job_lookups_total',
    help: "Lookups of a pod's Job owner, by result (hit = from the cache).",
    labelNames: ['result'] as const,
    registers: [registry],
  });
  const tlsReloads = new Counter({
    name: 'jobmetrics_webhook_tls_reloads_total',
    help: 'Certificate (re)loads, by result.',
    labelNames: ['result'] as const,
    registers: [registry],
  });
  const connectionsDropped = new Counter({
    name: 'jobmetrics_webhook_connections_dropped_total',
    help: 'Connections closed on arrival because maxConnections were open.',
    registers: [registry],
  });
  const bodyBytesInFlight = new Gauge({
    name: 'jobmetrics_webhook_request_body_bytes_in_flight',
    help: 'Request-body bytes reserved now (declared Content-Length of requests being read or reviewed), against maxInFlightBytes.',
    registers: [registry],
  });
  return {
    registry,
    connectionsDropped,
    bodyBytesInFlight,
    requests,
    injections,
    skips,
    duration,
    jobLookups,
    tlsReloads,
    observe(outcome, seconds) {
      requests.inc({ outcome });
      duration.observe({ outcome }, seconds);
    },
    lookup(result) {
      jobLookups.inc({ result });
    },
  };
}
