/**
 * The HTTPS edge: express 5 over node:https. `POST /mutate` (AdmissionReview v1), `/healthz`,
 * `/readyz`, `/metrics`. Everything that decides lives in webhook/review.ts and webhook/mutate.ts;
 * this file admits and reads bodies (webhook/body-budget.ts), enforces the connection limits and
 * timeouts, counts, logs, answers, reloads certificates and shuts down gracefully.
 */
import { IncomingMessage, ServerResponse } from 'node:http';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { Socket } from 'node:net';
import express, { type Express, type NextFunction, type Request, type Response } from 'express';
import type { Logger } from '../shared/log.ts';
import { BodyBudget } from './body-budget.ts';
import type { ConnectionLimits } from './config.ts';
import type { WebhookMetrics } from './metrics.ts';
import { errorAnswer, review, type ReviewAnswer, type ReviewDeps } from './review.ts';
import type { TlsMaterial } from './tls.ts';

export interface ServerOptions {
  readonly listen: { readonly host: string; readonly port: number };
  readonly limits: ServerLimits;
  readonly tls: TlsMaterial;
  readonly review: ReviewDeps;
  readonly metrics: WebhookMetrics;
  readonly log: Logger;
  /** Extra readiness, e.g. "a trusted certificate is being served". Default: always ready. */
  readonly ready?: () => boolean;
}

export interface ServerLimits extends ConnectionLimits {
  readonly maxRequestBytes: number;
}

/**
 * How often node:http looks for connections past headersTimeout or requestTimeout (its default is
 * 30 s, so a timeout fired up to 30 s late). The check walks only connections with a request in
 * progress.
 */
const TIMEOUT_CHECK_MS = 1_000;
/** Idle keep-alive connections; see the comment where it is set. */
const KEEP_ALIVE_MS = 120_000;
/** At most one log line per this interval for repeated load shedding, with the count in between. */
const SHED_LOG_EVERY_MS = 10_000;

export interface WebhookServer {
  readonly server: Server;
  listen(): Promise<AddressInfo>;
  /** Serves a new certificate to new connections; existing ones keep theirs. */
  setTls(m: TlsMaterial): void;
  /** Stops accepting, lets in-flight reviews finish, closes idle keep-alive connections; forces after graceMs. */
  /**
   * The first step of a shutdown: report not ready and ask clients to close their connections, but
   * go on accepting — the endpoints that still route here are being removed.
   */
  drain(): void;
  shutdown(graceMs: number): Promise<{ forced: boolean }>;
  inFlight(): number;
}

/**
 * Request and response classes for node:https whose prototypes already are express's.
 *
 * Express 5 re-parents every request and response (`Object.setPrototypeOf(req, app.request)` in
 * `app.handle`). V8 then gives each of those objects a hidden class of its own: every property
 * added later makes a new map, the inline caches in express and in node's HTTP code go
 * megamorphic, and the maps outlive the young generation: express's own cost per request grows
 * several-fold (`bench/webhook.ts --express-only` measures it with and without). Constructed
 * from these classes, req and res already have express's prototypes, so that call changes
 * nothing, and express works exactly as before.
 */
export function expressHttpClasses(app: Express) {
  class ExpressRequest extends IncomingMessage {}
  Object.setPrototypeOf(ExpressRequest.prototype, app.request);
  app.request = ExpressRequest.prototype as unknown as Request;
  class ExpressResponse extends ServerResponse {}
  Object.setPrototypeOf(ExpressResponse.prototype, app.response);
  app.response = ExpressResponse.prototype as unknown as Response;
  return { IncomingMessage: ExpressRequest, ServerResponse: ExpressResponse };
}

type TimedRequest = Request & { started?: bigint };

export function createWebhookServer(o: ServerOptions): WebhookServer {
  let shuttingDown = false;
  let inFlight = 0;
  const limits = o.limits;
  const budget = new BodyBudget(limits);
  const shedLog = throttledLog(o.log, SHED_LOG_EVERY_MS);
  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);

  // One middleware for every request: in-flight count (graceful shutdown), start time, draining.
  app.use((req: Request, res: Response, next: NextFunction) => {
    inFlight++;
    (req as TimedRequest).started = process.hrtime.bigint();
    let done = false;
    // 'close' follows 'finish', and also comes when the connection goes away first.
    res.once('close', () => {
      if (!done) {
        done = true;
        inFlight--;
      }
    });
    // Tell keep-alive clients to go elsewhere once we are draining.
    if (shuttingDown) res.setHeader('Connection', 'close');
    next();
  });

  /** Counts and logs one answered review; called after the answer is written, so it never delays it. */
  const record = (a: ReviewAnswer, seconds: number): void => {
    o.metrics.observe(a.outcome, seconds);
    const d = a.detail;
    const ms = Math.round(seconds * 1e6) / 1e3;
    if (a.outcome === 'injected' && d.injection) {
      o.metrics.injections.inc({ mode: d.injection.mode, workload_source: d.injection.workload.source });
      o.log.info('injected', {
        uid: d.uid, namespace: d.namespace, pod: d.pod, dryRun: d.dryRun, mode: d.injection.mode,
        workload: d.injection.workload.name, workloadSource: d.injection.workload.source,
        scrapeUrl: d.injection.scrapeUrl, container: d.injection.container, ms,
        ...(d.jobOwner?.state === 'unavailable' && { jobOwnerLookup: d.jobOwner.reason }),
      });
    } else if (a.outcome === 'skipped' && d.skip) {
      o.metrics.skips.inc({ reason: d.skip.reason });
      o.log.info('skipped', { uid: d.uid, namespace: d.namespace, pod: d.pod, dryRun: d.dryRun, reason: d.skip.reason, why: d.skip.message, ms });
    } else if (a.outcome === 'ignored') {
      o.log.debug('ignored', { uid: d.uid, why: d.message, ms });
    } else if (a.outcome === 'overloaded') {
      shedLog('shedding load: request refused before its body was read', { status: a.httpStatus, why: d.message });
    } else {
      o.log.warn('review not handled', { outcome: a.outcome, status: a.httpStatus, uid: d.uid, why: d.message, ms });
    }
  };

  const send = (req: Request, res: Response, a: ReviewAnswer): void => {
    const started = (req as TimedRequest).started;
    if (res.headersSent) {
      // Only an error after an answer could get here; there is nothing left to tell the client.
      res.end();
      return;
    }
    // Straight to node's response (express's res.send would look up the MIME type and re-encode).
    const json = JSON.stringify(a.body);
    res.writeHead(a.httpStatus, { 'Content-Type': 'application/json; charset=utf-8', 'Content-Length': Buffer.byteLength(json) });
    res.end(json);
    record(a, started === undefined ? 0 : Number(process.hrtime.bigint() - started) / 1e9);
  };

  /**
   * Reserves the body's bytes before any is read (webhook/body-budget.ts). A request that does not
   * fit is answered at once, 413 or 503, with `Connection: close`: its body is never read, and
   * the connection goes away with the answer. The API server takes any answer but 200 as a failed
   * call and applies `failurePolicy: Ignore`: the pod is created, without the sidecar. There is
   * no Retry-After, because a retry would come back into the same overload within the webhook's
   * timeoutSeconds.
   */
  const admitBody = (req: Request, res: Response, next: NextFunction): void => {
    // node:http has already refused a malformed or doubled Content-Length with 400.
    const header = req.headers['content-length'];
    const a = budget.admit(header === undefined ? undefined : Number(header));
    if (!a.ok) {
      res.setHeader('Connection', 'close');
      send(req, res, errorAnswer(a.status, a.outcome, '', a.message));
      return;
    }
    o.metrics.bodyBytesInFlight.set(budget.held);
    // 'close' comes after the answer, and also when the connection goes first (a timeout, a reset).
    res.once('close', () => {
      a.release();
      o.metrics.bodyBytesInFlight.set(budget.held);
    });
    next();
  };

  app.post(
    '/mutate',
    admitBody,
    // Raw bytes for any content type: a wrong Content-Type still gets an AdmissionReview answer.
    express.raw({ type: () => true, limit: limits.maxRequestBytes }),
    async (req: Request, res: Response) => {
      const body = Buffer.isBuffer(req.body) ? req.body.toString('utf8') : '';
      send(req, res, await review(body, o.review));
    },
  );
  app.all('/mutate', (_req: Request, res: Response) => {
    res.status(405).set('Allow', 'POST').json({ error: 'POST an AdmissionReview (admission.k8s.io/v1) to /mutate' });
  });
  app.get('/healthz', (_req: Request, res: Response) => {
    res.type('text/plain').send('ok\n');
  });
  app.get('/readyz', (_req: Request, res: Response) => {
    const ready = !shuttingDown && (o.ready?.() ?? true);
    res.status(ready ? 200 : 503).type('text/plain').send(ready ? 'ready\n' : shuttingDown ? 'shutting down\n' : 'not ready\n');
  });
  app.get('/metrics', async (_req: Request, res: Response) => {
    res.type(o.metrics.registry.contentType).send(await o.metrics.registry.metrics());
  });
  app.use((_req: Request, res: Response) => {
    res.status(404).json({ error: 'not found; the webhook serves POST /mutate, /healthz, /readyz, /metrics' });
  });
  // Body-parser errors: too large (413), aborted or badly encoded (400). Answered in the shape of
  // an AdmissionReview; the uid is unknown because the body was never read.
  app.use((err: unknown, req: Request, res: Response, _next: NextFunction) => {
    const e = err as { type?: string; status?: number; message?: string; limit?: number; length?: number };
    if (e.type === 'entity.too.large') {
      send(req, res, errorAnswer(413, 'too_large', '', `request body of ${e.length ?? '?'} bytes exceeds the limit of ${limits.maxRequestBytes} bytes`));
      return;
    }
    const status = typeof e.status === 'number' && e.status >= 400 && e.status < 500 ? e.status : 500;
    send(req, res, errorAnswer(status, status === 500 ? 'error' : 'bad_request', '', `cannot read the request: ${e.message ?? String(err)}`));
  });

  const server = createServer(
    {
      cert: o.tls.cert,
      key: o.tls.key,
      minVersion: 'TLSv1.2',
      ...expressHttpClasses(app),
      // A slow client holds memory and a connection only this long. Both are measured from the
      // first byte of a request; an idle keep-alive connection has no request in progress, so
      // neither applies to it. headersTimeout must not exceed requestTimeout: node:http swaps
      // them then (settings validation refuses that).
      headersTimeout: limits.headersTimeoutMs,
      requestTimeout: limits.requestTimeoutMs,
      connectionsCheckingInterval: TIMEOUT_CHECK_MS,
      // A TLS handshake that does not finish holds a connection too (node's default: 120 s).
      handshakeTimeout: limits.headersTimeoutMs,
      // The API server reuses connections; closing an idle one just as it sends a review makes
      // that call fail (and the pod go without the sidecar, failurePolicy: Ignore). Keep idle
      // connections longer than the client does (Go's http.Transport: 90 s) so the client closes
      // first.
      keepAliveTimeout: KEEP_ALIVE_MS,
    },
    app,
  );
  // Every connection costs memory (TLS and HTTP state, buffers) whether it sends anything or not.
  // Beyond the cap, node closes a new connection at once ('drop').
  server.maxConnections = limits.maxConnections;
  const dropLog = throttledLog(o.log, SHED_LOG_EVERY_MS);
  let idleClosedAt = 0;
  server.on('drop', () => {
    o.metrics.connectionsDropped.inc();
    dropLog('shedding load: connection closed at maxConnections', { maxConnections: limits.maxConnections });
    // Idle keep-alive connections would hold their places for KEEP_ALIVE_MS: when the cap is
    // reached, let them go (at most once a second), so the clients that have work get in.
    const now = Date.now();
    if (now - idleClosedAt >= 1_000) {
      idleClosedAt = now;
      server.closeIdleConnections();
    }
  });
  const sockets = new Set<Socket>();
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  server.on('tlsClientError', (err) => o.log.debug('TLS handshake failed', { error: err }));

  return {
    server,
    listen: () =>
      new Promise((resolve, reject) => {
        server.once('error', reject);
        server.listen(o.listen.port, o.listen.host, () => {
          server.off('error', reject);
          resolve(server.address() as AddressInfo);
        });
      }),
    setTls(m) {
      server.setSecureContext({ cert: m.cert, key: m.key, minVersion: 'TLSv1.2' });
    },
    inFlight: () => inFlight,
    drain() {
      shuttingDown = true;
      server.closeIdleConnections();
    },
    shutdown(graceMs) {
      shuttingDown = true;
      return new Promise((resolve) => {
        let forced = false;
        const idle = setInterval(() => server.closeIdleConnections(), 50);
        const deadline = setTimeout(() => {
          forced = true;
          o.log.warn('shutdown grace period over; closing remaining connections', { inFlight, connections: sockets.size });
          server.closeAllConnections();
        }, graceMs);
        server.close(() => {
          clearInterval(idle);
          clearTimeout(deadline);
          resolve({ forced });
        });
        server.closeIdleConnections();
      });
    },
  };
}

/**
 * A warn logger for a message that may repeat many times a second under load: the first is logged,
 * then at most one every `everyMs`, with how many were left out in between.
 */
function throttledLog(log: Logger, everyMs: number): (msg: string, fields: Record<string, unknown>) => void {
  let last = -Infinity;
  let suppressed = 0;
  return (msg, fields) => {
    const now = Date.now();
    if (now - last < everyMs) {
      suppressed++;
      return;
    }
    log.warn(msg, { ...fields, ...(suppressed > 0 && { sinceLastLine: suppressed }) });
    last = now;
    suppressed = 0;
  };
}
