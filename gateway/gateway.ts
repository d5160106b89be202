/**
 * The gateway: a remote-write endpoint in front of the aggregator that delivers every counter-like
 * series' first values one aggregation interval after its 0 (births.ts), so that `increase()`
 * counts every run. The story of one request: read the body (bounded), decode it, admit it (what
 * goes now, what is held), forward what goes now, answer. A timer forwards held samples when they
 * are due. On close it stops taking requests and forwards everything still held, each when due.
 *
 * Answers follow the remote write 1.0 spec, so the sidecar's retry rules apply unchanged: 204 when
 * what goes now was delivered and the rest is held; 400 for a body that cannot be decoded (the
 * sender drops it); 413 for one over the size limit; 503 (with the aggregator's Retry-After) when
 * the aggregator could not take it (the sender retries); 429 passed through.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Counter, Gauge, Registry } from 'prom-client';
import type { Logger } from '../shared/log.ts';
import { deliverWithRetry, encodeWriteRequest, sendWriteRequest, type RwSeries } from '../shared/remote-write.ts';
import { VERSION } from '../shared/version.ts';
import { BirthLedger } from './births.ts';
import { NamespaceLimits } from './namespace-limits.ts';
import { FirstSight } from '../shared/first-sight.ts';
import { seriesKey } from '../shared/series-key.ts';
import type { GatewayConfig } from './config.ts';
import { apiTokenReview } from './token-review-api.ts';
import { asWriter, TokenReviewer, type RefusalReason, type ReviewFn } from './writer-identity.ts';
import { decodeCompressedWriteRequest, WriteRequestError } from './write-request.ts';

export const USER_AGENT = `jobmetrics-gateway/${VERSION}`;
const WRITE_PATH = '/api/v1/write';
/** One forward of a request's immediate part; the sender's own timeout is longer (10 s as shipped). */
const FORWARD_TIMEOUT_MS = 5_000;
/** A due batch the aggregator refused is tried again after this long, until it goes. */
const RELEASE_RETRY_MS = 1_000;
const EXPIRE_EVERY_MS = 60_000;
/** One TokenReview; past it the write is answered 503 and the sender retries. */
const REVIEW_TIMEOUT_MS = 5_000;

export interface Gateway {
  /** http://host:port of the listening socket. */
  readonly url: string;
  readonly registry: Registry;
  /** Stops taking requests, forwards every held sample when it is due, then resolves. */
  close(): Promise<void>;
}

export interface GatewayDeps {
  readonly log: Logger;
  /** How tokens are reviewed; default: TokenReview at the API server (token-review-api.ts). Tests pass their own. */
  readonly review?: ReviewFn;
  /** The `Authorization` header of every forward to the aggregator (aggregator-credentials.ts); absent: none. */
  readonly aggregatorAuthorization?: string;
  /** Milliseconds; tests may pass their own clock. */
  readonly now?: () => number;
}

export async function startGateway(config: GatewayConfig, deps: GatewayDeps): Promise<Gateway> {
  const { log } = deps;
  const now = deps.now ?? Date.now;
  const aggregator = config.aggregatorUrl.toString();
  const forwardAuth = deps.aggregatorAuthorization !== undefined ? { authorization: deps.aggregatorAuthorization } : {};
  const ledger = new BirthLedger({
    holdMs: config.aggregationIntervalMs + config.birthMarginMs,
    forgetAfterMs: config.stalenessMs,
    maxTracked: config.maxTrackedSeries,
  });
  const limits = new NamespaceLimits({ ...config.limits, staleMs: config.stalenessMs });
  const auth = config.writerAuth;
  const reviewer =
    auth.mode === 'tokenreview'
      ? new TokenReviewer({ audience: auth.audience, trusted: auth.trusted, review: deps.review ?? apiTokenReview({ kubeconfig: config.kubeconfig, timeoutMs: REVIEW_TIMEOUT_MS }), now })
      : undefined;
  const m = gatewayMetrics(ledger, reviewer, limits);
  // One warning per writer namespace (relabelled) and per refusal reason; counters keep the rest.
  const firstRefusal = new FirstSight(200);
  // One warning per namespace and reason for the process's life; the counters keep the rest.
  const firstDrop = new FirstSight(200);
  let draining = false;

  // ---- one request --------------------------------------------------------------------------

  async function handleWrite(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    // The token is checked while the body arrives (a cached answer costs nothing).
    const [body, check] = await Promise.all([readBody(req, config.maxBodyBytes), reviewer?.check(req.headers.authorization)]);
    if (body === undefined) return answer(res, 413, `request body over ${config.maxBodyBytes} bytes`);
    if (check !== undefined && !check.ok) {
      m.writerRefusals.inc({ reason: check.reason });
      if (firstRefusal.first(check.reason)) log.warn('write refused: the writer is not known', { reason: check.reason, message: check.message, remote: req.socket.remoteAddress });
      // The API server could not say who wrote: the sender retries, as for an aggregator outage.
      if (check.reason === 'unavailable') return answer(res, 503, check.message, RELEASE_RETRY_MS);
      res.setHeader('WWW-Authenticate', 'Bearer');
      return answer(res, 401, `${check.message} (docs/gateway.md "Who may write what")`);
    }
    let series: RwSeries[];
    try {
      series = decodeCompressedWriteRequest(body, { maxUncompressedBytes: config.maxUncompressedBytes });
    } catch (err) {
      if (!(err instanceof WriteRequestError)) throw err;
      log.warn('write request refused: cannot decode', { error: err, remote: req.socket.remoteAddress, bytes: body.length });
      return answer(res, 400, err.message);
    }
    if (check?.ok === true) {
      const own = asWriter(series, check.writer);
      series = own.series;
      if (own.relabelled > 0 && check.writer.kind === 'pod') {
        const w = check.writer;
        m.relabelled.inc({ namespace: w.namespace }, own.relabelled);
        if (firstRefusal.first(`relabelled/${w.namespace}`)) log.warn("series written as another namespace or pod were given the writer's own", { namespace: w.namespace, pod: w.pod, series: own.relabelled });
      }
    }
    // Each series' key once, for the namespace limits and the birth ledger.
    const limited = limits.check(series, now(), series.map((s) => seriesKey(s.labels)));
    if (limited.refuse) {
      m.limitRefusals.inc({ namespace: limited.namespace });
      return answer(res, 429, `namespace ${limited.namespace} is over its samples per second (docs/gateway.md "Limits per namespace"); retry later`, limited.retryAfterMs);
    }
    for (const d of limited.dropped) {
      m.limitDrops.inc({ namespace: d.namespace, reason: d.reason }, d.samples);
      if (firstDrop.first(`${d.namespace}/${d.reason}`)) log.warn('samples dropped by a namespace limit', { namespace: d.namespace, reason: d.reason, series: d.series, samples: d.samples });
    }
    const admitted = ledger.admit(limited.accepted, now(), limited.acceptedKeys);
    m.held.inc(admitted.heldSamples);
    m.births.inc(admitted.births.length);
    m.untracked.inc(admitted.untracked);
    if (admitted.now.length === 0) {
      if (admitted.heldSamples > 0) scheduleRelease();
      return answer(res, 204);
    }
    const out = await sendWriteRequest(aggregator, encodeWriteRequest(admitted.now), { timeoutMs: FORWARD_TIMEOUT_MS, userAgent: USER_AGENT, ...forwardAuth });
    if (out.ok) {
      ledger.confirm(admitted.births, now());
      if (admitted.heldSamples > 0) scheduleRelease();
      return answer(res, 204);
    }
    // Not delivered: the sender retries the whole request, whose 0s must then go first again.
    ledger.forget(admitted.births);
    m.forwardFailures.inc({ part: 'now' });
    log.warn('forward to the aggregator failed; the sender will retry', { error: out.error, status: out.status });
    if (out.status === 429) return answer(res, 429, out.error.message, out.retryAfterMs);
    if (out.retryable) return answer(res, 503, out.error.message, out.retryAfterMs);
    // The aggregator refused the data itself (4xx): the sender must not retry it either.
    return answer(res, out.status ?? 400, out.error.message);
  }

  // ---- held samples, when due ---------------------------------------------------------------

  let timer: NodeJS.Timeout | undefined;
  let releasing: Promise<void> | undefined;
  function scheduleRelease(): void {
    if (releasing !== undefined) return; // it schedules the next one when it ends
    const at = ledger.nextDueAt();
    if (at === undefined) return;
    if (timer !== undefined) clearTimeout(timer);
    timer = setTimeout(() => {
      timer = undefined;
      releasing = releaseDue().finally(() => {
        releasing = undefined;
        scheduleRelease();
      });
    }, Math.max(0, at - now()));
  }

  async function releaseDue(): Promise<void> {
    const due = ledger.due(now());
    if (due.length === 0) return;
    const samples = due.reduce((n, s) => n + s.samples.length, 0);
    const out = await deliverWithRetry(aggregator, encodeWriteRequest(due), {
      deadlineMs: now() + 3 * FORWARD_TIMEOUT_MS,
      timeoutMs: FORWARD_TIMEOUT_MS,
      userAgent: USER_AGENT,
      ...forwardAuth,
    });
    if (out.ok) {
      m.released.inc(samples);
      return;
    }
    m.forwardFailures.inc({ part: 'held' });
    if (!out.retryable) {
      // The aggregator refuses these samples themselves; holding them would only refuse again.
      m.dropped.inc(samples);
      log.error('held samples refused by the aggregator; dropped', { error: out.error, status: out.status, series: due.length, samples });
      return;
    }
    log.warn('held samples not delivered; trying again', { error: out.error, series: due.length, samples });
    ledger.requeue(due);
    await new Promise((r) => setTimeout(r, RELEASE_RETRY_MS));
  }

  const expireTimer = setInterval(() => {
    m.forgotten.inc(ledger.expire(now()));
    limits.expire(now());
    reviewer?.expire();
  }, EXPIRE_EVERY_MS);
  expireTimer.unref();

  // ---- HTTP ---------------------------------------------------------------------------------

  const server = http.createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    const route = `${req.method ?? ''} ${path ?? ''}`;
    const handled =
      route === `POST ${WRITE_PATH}`
        ? handleWrite(req, res)
        : route === 'GET /metrics'
          ? m.registry.metrics().then((text) => answer(res, 200, text, undefined, m.registry.contentType))
          : route === 'GET /healthz'
            ? Promise.resolve(answer(res, 200, 'ok'))
            : route === 'GET /readyz'
              ? Promise.resolve(draining ? answer(res, 503, 'draining') : answer(res, 200, 'ok'))
              : Promise.resolve(answer(res, 404, `no route ${route}; remote write goes to POST ${WRITE_PATH}`));
    handled
      .catch((err: unknown) => {
        log.error('request failed', { error: err, route });
        if (!res.headersSent) answer(res, 500, 'internal error');
        else res.destroy();
      })
      .finally(() => {
        if (route === `POST ${WRITE_PATH}`) m.requests.inc({ code: String(res.statusCode) });
      });
  });
  // Keep-alive longer than the sidecar's (30 s), so the server never closes a socket the client
  // is about to reuse.
  server.keepAliveTimeout = 65_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(config.listen.port, config.listen.host, () => resolve());
  });
  const addr = server.address() as AddressInfo;
  const url = `http://${addr.family === 'IPv6' ? `[${addr.address}]` : addr.address}:${addr.port}`;
  log.info('gateway listening', { url, aggregator, holdMs: config.aggregationIntervalMs + config.birthMarginMs, version: VERSION });

  return {
    url,
    registry: m.registry,
    async close() {
      draining = true;
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeIdleConnections();
      // Every held sample goes when it is due (at most one hold from now), never earlier: a
      // birth sent early would be the very loss the hold prevents.
      while (ledger.heldSamples > 0 || releasing !== undefined) {
        scheduleRelease();
        await new Promise((r) => setTimeout(r, 100));
      }
      if (timer !== undefined) clearTimeout(timer);
      clearInterval(expireTimer);
      await closed;
      log.info('gateway stopped; nothing held');
    },
  };
}

function answer(res: http.ServerResponse, status: number, body = '', retryAfterMs?: number, contentType = 'text/plain; charset=utf-8'): void {
  if (retryAfterMs !== undefined) res.setHeader('Retry-After', String(Math.ceil(retryAfterMs / 1000)));
  if (status === 204) {
    res.writeHead(204).end();
    return;
  }
  res.writeHead(status, { 'Content-Type': contentType }).end(body.endsWith('\n') || body === '' ? body : `${body}\n`);
}

/** The whole body, or undefined past `limit` bytes (the rest is not read). */
async function readBody(req: http.IncomingMessage, limit: number): Promise<Buffer | undefined> {
  const declared = Number(req.headers['content-length']);
  if (Number.isFinite(declared) && declared > limit) {
    req.resume();
    return undefined;
  }
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > limit) {
      req.resume();
      return undefined;
    }
    chunks.push(chunk);
  }
  return Buffer.concat(chunks, size);
}

function gatewayMetrics(ledger: BirthLedger, reviewer: TokenReviewer | undefined, limits: NamespaceLimits): {
  registry: Registry;
  requests: Counter<'code'>;
  births: Counter;
  held: Counter;
  released: Counter;
  dropped: Counter;
  untracked: Counter;
  forgotten: Counter;
  forwardFailures: Counter<'part'>;
  limitDrops: Counter<'namespace' | 'reason'>;
  limitRefusals: Counter<'namespace'>;
  writerRefusals: Counter<'reason'>;
  relabelled: Counter<'namespace'>;
} {
  const registry = new Registry();
  const c = <L extends string = never>(name: string, help: string, labelNames: L[] = []): Counter<L> => new Counter({ name, help, labelNames, registers: [registry] });
  new Gauge({ name: 'jobmetrics_gateway_tracked_series', help: 'Counter-like series whose birth the gateway tracks.', registers: [registry], collect() { this.set(ledger.size); } });
  new Gauge({ name: 'jobmetrics_gateway_held_samples', help: 'Samples held until one aggregation interval after their series\' 0.', registers: [registry], collect() { this.set(ledger.heldSamples); } });
  new Gauge({
    name: 'jobmetrics_gateway_namespace_live_series',
    help: "Input series per namespace seen within the staleness interval, what JOBMETRICS_MAX_SERIES_PER_NAMESPACE caps (this replica's count).",
    labelNames: ['namespace'],
    registers: [registry],
    collect() {
      this.reset();
      for (const [namespace, n] of limits.liveSeriesByNamespace()) this.set({ namespace }, n);
    },
  });
  if (reviewer !== undefined) {
    const reviews = reviewer.stats.reviews;
    new Counter({
      name: 'jobmetrics_gateway_token_reviews_total',
      help: 'TokenReviews sent to the API server, by result (authenticated, refused, failed: no answer).',
      labelNames: ['result'],
      registers: [registry],
      collect() {
        this.reset();
        for (const [result, n] of Object.entries(reviews)) this.inc({ result }, n);
      },
    });
    new Counter({ name: 'jobmetrics_gateway_token_cache_hits_total', help: 'Writes whose token was checked from a remembered answer.', registers: [registry], collect() { this.reset(); this.inc(reviewer.stats.cacheHits); } });
    new Gauge({ name: 'jobmetrics_gateway_token_cache_entries', help: 'Token answers remembered.', registers: [registry], collect() { this.set(reviewer.size); } });
  }
  const metrics = {
    registry,
    writerRefusals: c('jobmetrics_gateway_writer_refusals_total', 'Writes refused because their writer is not known, by reason (no-token, invalid-token, not-a-service-account, not-bound-to-a-pod, unavailable: 503, the API server did not answer).', ['reason']),
    relabelled: c('jobmetrics_gateway_relabelled_series_total', "Series a pod wrote with another namespace or pod, given its own (a sidecar's never are), by the writer's namespace.", ['namespace']),
    requests: c('jobmetrics_gateway_write_requests_total', 'Remote-write requests answered, by HTTP status.', ['code']),
    births: c('jobmetrics_gateway_births_total', 'Counter-like series whose 0 went ahead of their values.'),
    held: c('jobmetrics_gateway_held_samples_total', 'Samples held behind their series\' 0.'),
    released: c('jobmetrics_gateway_released_samples_total', 'Held samples delivered when due.'),
    dropped: c('jobmetrics_gateway_dropped_samples_total', 'Held samples the aggregator refused as invalid (4xx).'),
    untracked: c('jobmetrics_gateway_untracked_births_total', 'Series born while the tracking limit was reached (forwarded without a hold).'),
    forgotten: c('jobmetrics_gateway_forgotten_series_total', 'Series forgotten after the staleness interval without samples.'),
    forwardFailures: c('jobmetrics_gateway_forward_failures_total', 'Forwards the aggregator did not take, by part (now, held).', ['part']),
    limitDrops: c('jobmetrics_gateway_limit_dropped_samples_total', 'Samples dropped by a namespace limit, by namespace and reason (series-limit, rate-limit, no-namespace).', ['namespace', 'reason']),
    limitRefusals: c('jobmetrics_gateway_limit_refused_requests_total', 'Requests refused with 429 because their namespace was over its samples per second (the sender retries).', ['namespace']),
  };
  // Every refusal reason and forward part at 0 from the start: increase() and rate() never count a
  // series' first sample, so a replica's first refusal or failed forward would otherwise be missed
  // by the alerts and dashboards reading these (docs/dashboards.md).
  for (const reason of Object.keys(REFUSAL_REASONS)) metrics.writerRefusals.inc({ reason }, 0);
  for (const part of ['now', 'held']) metrics.forwardFailures.inc({ part }, 0);
  return metrics;
}

const REFUSAL_REASONS = { 'no-token': true, 'invalid-token': true, 'not-a-service-account': true, 'not-bound-to-a-pod': true, unavailable: true } satisfies Record<RefusalReason | 'unavailable', true>;
