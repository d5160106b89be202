/**
 * The sidecar's life (DESIGN.md "Sidecar interface", "Data semantics"): scrape the main
 * container every interval, deliver the latest cumulative values every push interval, and when
 * the main container exits (or SIGTERM comes) scrape once more, deliver, and finish within the
 * flush timeout. Nothing here throws to the caller and nothing here can fail the Job.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from '../shared/log.ts';
import { ACCEPT_HEADER, formatFromContentType } from '../shared/exposition/negotiate.ts';
import { parse } from '../shared/exposition/parse.ts';
import { SIDECAR_MEMORY } from '../shared/sidecar-memory.ts';
import type { SidecarConfig } from './config.ts';
import { ExitHints, waitForMainExit, type ExitEvent } from './exit-watch.ts';
import { FirstSight } from './first-sight.ts';
import { peakRssMb } from './peak-rss.ts';
import { finalFlushRetry, undeliveredCause, undeliveredValues } from './final-flush.ts';
import { deliverWithRetry, encodeWriteRequest, USER_AGENT, type DeliverOptions, type DeliveryOutcome, type SendOutcome } from './remote-write.ts';
import { createScraper, type ScrapeResult } from './scrape.ts';
import { describeProblem, SeriesStore, type DropReason, type PushPlan } from './series-store.ts';
import { VERSION } from './version.ts';

export interface SidecarEnvironment {
  readonly log: Logger;
  readonly selfPid: number;
  /** Aborted on SIGTERM/SIGINT: triggers the final flush. */
  readonly terminate: AbortSignal;
}

export interface SidecarSummary {
  /** Why the sidecar finished: the main container's exit, or a signal. */
  readonly trigger: 'main-exited' | 'main-never-seen' | 'no-shared-pid-namespace' | 'signal';
  readonly series: number;
  readonly scrapes: number;
  readonly scrapeFailures: number;
  readonly pushes: number;
  readonly samplesDelivered: number;
  readonly retries: number;
  readonly deliveryFailures: number;
  readonly generation: number;
  readonly droppedSeries: number;
  readonly droppedByReason: Readonly<Record<DropReason, number>>;
  /** Whether the last values reached the aggregator before the flush deadline. */
  readonly finalDelivered: boolean;
  /** Series whose final value was not delivered (0 when finalDelivered). */
  readonly finalUndelivered: number;
  readonly flushMs: number;
  /** The process's peak resident memory over its life, in MiB (sidecar/peak-rss.ts). */
  readonly peakRssMb: number | undefined;
  /** Main container exit (or signal) to the final delivery's acknowledgement. */
  readonly exitToDeliveredMs: number | undefined;
}

/** Network errors that prove the request never reached the aggregator (it was down). */
const UNREACHABLE = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH']);

/**
 * Whether a failed attempt may still have been counted: a timeout or a connection lost after the
 * request went out. An HTTP error status, or a connection that was never made, proves it was not.
 */
export function mayHaveArrived(outcome: SendOutcome): boolean {
  if (outcome.ok) return true;
  if (outcome.status !== undefined) return false;
  return !errorCodes(outcome.error).some((c) => UNREACHABLE.has(c)) && !/deadline passed before attempt/.test(outcome.error.message);
}

function errorCodes(error: unknown): string[] {
  const codes: string[] = [];
  for (let e = error, depth = 0; e instanceof Error && depth < 6; e = e.cause, depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string') codes.push(code);
  }
  return codes;
}

/**
 * The wait before the next scrape. Until one succeeds, every 100 ms: the sidecar often starts
 * before the main container listens. Then the pace ramps up from 100 ms, doubling, to the
 * interval, so a job shorter than one interval is still scraped after its first increments
 * (issue 3: "a job shorter than one scrape interval that counted in its first 100 ms").
 */
export function scrapeDelayMs(succeeded: number, intervalMs: number): number {
  const ramp = 100 * 2 ** Math.max(0, Math.min(succeeded - 1, 16));
  return Math.min(intervalMs, ramp);
}

export async function runSidecar(cfg: SidecarConfig, env: SidecarEnvironment): Promise<SidecarSummary> {
  const { log } = env;
  // Every input limit comes from the memory budget (shared/sidecar-memory.ts).
  const store = new SeriesStore({ namespace: cfg.namespace, job: cfg.job, pod: cfg.pod, maxSeries: SIDECAR_MEMORY.maxSeries, maxLabelChars: SIDECAR_MEMORY.maxLabelChars });
  const parseLimits = { maxBytes: SIDECAR_MEMORY.maxBodyBytes, maxSamples: SIDECAR_MEMORY.maxSamples, maxFamilies: SIDECAR_MEMORY.maxFamilies };
  const exitHints = new ExitHints();
  const scraper = createScraper(cfg.scrapeUrl, {
    onConnectionClosed: () => exitHints.hint(),
    onConnectionKept: (kept) => exitHints.sensor(kept),
    // At least 1 s even at a 100 ms interval: a busy node must not turn slow scrapes into lost
    // ones (scrapes never overlap, a slow one only delays the next); at most 10 s, as Prometheus.
    timeoutMs: Math.min(10_000, Math.max(1_000, cfg.intervalMs)),
    maxBytes: SIDECAR_MEMORY.maxBodyBytes,
    accept: ACCEPT_HEADER,
    userAgent: USER_AGENT,
  });
  const stats = { scrapes: 0, scrapeFailures: 0, pushes: 0, samplesDelivered: 0, retries: 0, deliveryFailures: 0 };
  let lastScrapeError = '';
  const parseWarnings = new FirstSight(20);

  const recordScrape = (r: ScrapeResult, atMs: number): boolean => {
    stats.scrapes++;
    if (!r.ok) {
      stats.scrapeFailures++;
      // A failing endpoint fails every second: log changes, not repetitions.
      if (r.error !== lastScrapeError) log.warn('scrape failed', { target: cfg.scrapeUrl.href, error: r.error, status: r.status });
      lastScrapeError = r.error;
      return false;
    }
    const parsed = parse(r.body, { format: formatFromContentType(r.contentType), limits: parseLimits });
    if (!parsed.ok) {
      stats.scrapeFailures++;
      const error = `line ${parsed.error.line}: ${parsed.error.message}`;
      if (error !== lastScrapeError) log.warn('scrape unparsable', { target: cfg.scrapeUrl.href, contentType: r.contentType, error });
      lastScrapeError = error;
      return false;
    }
    if (lastScrapeError !== '') log.info('scrape recovered', { target: cfg.scrapeUrl.href });
    for (const w of parsed.warnings) if (parseWarnings.first(w.message)) log.warn('scrape accepted with a warning', { target: cfg.scrapeUrl.href, line: w.line, warning: w.message });
    lastScrapeError = '';
    const u = store.update(parsed.families, atMs);
    for (const p of u.problems) log.warn('series dropped', describeProblem(p));
    if (u.newSeries > 0 && store.hasUnstartedCounters) wakePush();
    if (u.newSeries > 0) log.debug('new series', { count: u.newSeries, total: store.size });
    if (u.resets > 0) log.info('counter reset in the main container', { series: u.resets });
    return true;
  };

  /** Delivers everything in the store once, retrying until `deadlineMs`. */
  const deliver = async (deadlineMs: number, signal?: AbortSignal, zerosOnly = false, retry: Partial<DeliverOptions> = {}): Promise<{ plan: PushPlan; outcome: DeliveryOutcome }> => {
    const now = Date.now();
    if (store.gapExceeded(now, cfg.stalenessMs)) {
      store.startGeneration();
      log.info('new series generation', { generation: store.generation, pod: store.podLabel() });
    }
    const plan = store.plan({ zerosOnly });
    stats.pushes++;
    const body = encodeWriteRequest(plan.series, {
      onInvalid: (index, error) => {
        const problem = store.discard(plan, index);
        if (problem !== undefined) log.warn('series dropped', { ...describeProblem(problem), error });
      },
    });
    let maybeArrived = false;
    // deliverWithRetry reports failures as values; an abort may still surface as a rejection.
    const outcome = await deliverWithRetry(cfg.remoteWriteUrl.href, body, {
      deadlineMs,
      timeoutMs: Math.min(5_000, cfg.flushTimeoutMs),
      ...retry,
      ...(signal ? { signal } : {}),
      onRetry: (attempt, o, delayMs) => {
        stats.retries++;
        if (mayHaveArrived(o)) maybeArrived = true;
        log.debug('delivery retry', { attempt, delayMs, error: o.ok ? undefined : o.error.message });
      },
    }).catch(
      (error: unknown): DeliveryOutcome => ({
        ok: false,
        retryable: false,
        error: error instanceof Error ? error : new Error(String(error)),
        attempts: 0,
      }),
    );
    if (outcome.ok) {
      store.acknowledge(plan, Date.now());
      stats.samplesDelivered += plan.samples;
    } else {
      stats.deliveryFailures++;
      // Unknown whether it was counted: a later generation must start above it, never below.
      if (maybeArrived || mayHaveArrived(outcome)) store.mayHaveArrived(plan);
      log.warn('delivery failed', {
        target: cfg.remoteWriteUrl.href,
        attempts: outcome.attempts,
        retryable: outcome.retryable,
        status: outcome.status,
        error: outcome.error,
        series: plan.series.length,
      });
    }
    return { plan, outcome };
  };

  // The loops stop through `running`; the exit watch through `watchAbort`.
  const running = new AbortController();
  let wakePush: () => void = () => {};
  const scrapeLoop = (async () => {
    let succeeded = 0;
    while (!running.signal.aborted) {
      const tick = Date.now();
      if (recordScrape(await scraper.scrape(), tick)) succeeded++;
      const wait = scrapeDelayMs(succeeded, cfg.intervalMs) - (Date.now() - tick);
      await sleep(Math.max(0, wait), undefined, { signal: running.signal }).catch(() => {});
    }
  })();
  const pushAbort = new AbortController();
  const pushLoop = (async () => {
    let nextRegular = Date.now() + cfg.pushIntervalMs;
    while (!running.signal.aborted && !pushAbort.signal.aborted) {
      await new Promise<void>((resolve) => {
        const stop = (): void => {
          clearTimeout(timer);
          running.signal.removeEventListener('abort', stop);
          pushAbort.signal.removeEventListener('abort', stop);
          resolve();
        };
        const timer = setTimeout(stop, Math.max(0, nextRegular - Date.now()));
        wakePush = stop;
        running.signal.addEventListener('abort', stop, { once: true });
        pushAbort.signal.addEventListener('abort', stop, { once: true });
      });
      wakePush = () => {};
      if (running.signal.aborted || pushAbort.signal.aborted) break;
      if (Date.now() >= nextRegular) {
        nextRegular = Date.now() + cfg.pushIntervalMs;
        if (store.size > 0) await deliver(nextRegular, pushAbort.signal);
      } else if (store.hasUnstartedCounters) {
        // New counters: their zeros go now, alone, so they reach the aggregator an aggregation
        // interval before the values whenever the job lives that long (series-store.ts).
        await deliver(nextRegular, pushAbort.signal, true);
      }
    }
  })();

  const watchAbort = new AbortController();
  const exitWatch = waitForMainExit({
    procRoot: cfg.procRoot,
    selfPid: env.selfPid,
    pollMs: cfg.exitPollMs,
    hints: exitHints,
    // Only to follow forks of a long-lived main process; an exit of every known PID always
    // rescans before it counts, so a child forked just before its parent exited is found anyway.
    rescanMs: 10_000,
    // Legacy mode starts after the main container (the kubelet starts containers in order), so a
    // main container not seen within a few intervals has already come and gone. Native mode
    // starts first and must wait.
    ...(cfg.mode === 'legacy' ? { neverSeenGraceMs: Math.max(5_000, 3 * cfg.intervalMs) } : {}),
    signal: watchAbort.signal,
    onFirstSeen: (pids) => log.info('main container seen', { pids }),
  }).catch(() => undefined);
  const terminated = new Promise<'signal'>((resolve) => {
    if (env.terminate.aborted) resolve('signal');
    env.terminate.addEventListener('abort', () => resolve('signal'), { once: true });
  });

  log.info('started', {
    version: VERSION,
    target: cfg.scrapeUrl.href,
    remoteWrite: cfg.remoteWriteUrl.href,
    intervalMs: cfg.intervalMs,
    pushIntervalMs: cfg.pushIntervalMs,
    flushTimeoutMs: cfg.flushTimeoutMs,
    mode: cfg.mode,
    namespace: cfg.namespace,
    job: cfg.job,
    pod: cfg.pod,
  });

  const first = await Promise.race([exitWatch, terminated]);
  const exitAt = Date.now();
  const deadline = exitAt + cfg.flushTimeoutMs;
  const trigger: SidecarSummary['trigger'] =
    first === 'signal' || first === undefined
      ? 'signal'
      : ({ exited: 'main-exited', 'never-seen': 'main-never-seen', 'no-shared-pid-namespace': 'no-shared-pid-namespace' } as const)[
          (first as ExitEvent).reason
        ];
  if (trigger === 'no-shared-pid-namespace') {
    log.error('the pod does not share its process namespace (shareProcessNamespace: true is missing); cannot see the main container exit');
  }
  // The periodic push stops here: an in-flight one is superseded (values are cumulative).
  pushAbort.abort();

  if (trigger === 'signal') {
    // A pod deletion sends SIGTERM to every container at once, and the main container may still
    // count while it shuts down. Deliver what we have now (a SIGKILL may follow), then keep
    // scraping until the main container exits, keeping a third of the budget for the last delivery.
    log.info('signal: delivering now, then waiting for the main container to exit', { deadlineMs: cfg.flushTimeoutMs });
    const reserveMs = Math.max(200, cfg.flushTimeoutMs / 3);
    if (store.size > 0) await deliver(deadline - reserveMs, undefined, false, finalFlushRetry(cfg.flushTimeoutMs - reserveMs));
    const waitMs = deadline - reserveMs - Date.now();
    if (waitMs > 0) {
      const until = sleep(waitMs, 'deadline' as const, { signal: watchAbort.signal }).catch(() => 'deadline' as const);
      const outcome = await Promise.race([exitWatch, until]);
      log.info(outcome === 'deadline' ? 'main container still running at the flush deadline' : 'main container exited');
    }
  }
  watchAbort.abort();
  log.info('final flush', { trigger, deadlineMs: deadline - Date.now() });

  // Final flush: stop scraping, scrape once more if the endpoint still answers, deliver until
  // the deadline.
  running.abort();
  await Promise.all([scrapeLoop, pushLoop]);
  scraper.close();
  const lastScraper = createScraper(cfg.scrapeUrl, {
    timeoutMs: Math.max(50, Math.min(cfg.intervalMs, (deadline - Date.now()) / 4)),
    maxBytes: SIDECAR_MEMORY.maxBodyBytes,
    accept: ACCEPT_HEADER,
    userAgent: USER_AGENT,
  });
  const lastScrape = await lastScraper.scrape();
  lastScraper.close();
  if (lastScrape.ok) recordScrape(lastScrape, Date.now());

  // One delivery of a few spaced attempts that honour Retry-After (final-flush.ts), never a loop
  // of deliveries: each would start its attempts afresh against an aggregator that said to wait.
  let finalDelivered = store.size === 0;
  let deliveredAt: number | undefined;
  let final: { plan: PushPlan; outcome: DeliveryOutcome } | undefined;
  if (!finalDelivered && Date.now() < deadline) {
    final = await deliver(deadline, undefined, false, finalFlushRetry(deadline - Date.now()));
    finalDelivered = final.outcome.ok;
    if (finalDelivered) deliveredAt = Date.now();
  }
  const flushMs = Date.now() - exitAt;
  const summary: SidecarSummary = {
    trigger,
    series: store.size,
    scrapes: stats.scrapes,
    scrapeFailures: stats.scrapeFailures,
    pushes: stats.pushes,
    samplesDelivered: stats.samplesDelivered,
    retries: stats.retries,
    deliveryFailures: stats.deliveryFailures,
    generation: store.generation,
    droppedSeries: store.droppedSeries,
    droppedByReason: store.droppedByReason,
    finalDelivered,
    finalUndelivered: finalDelivered ? 0 : store.size,
    flushMs,
    peakRssMb: peakRssMb(),
    exitToDeliveredMs: deliveredAt === undefined ? undefined : deliveredAt - exitAt,
  };
  if (finalDelivered) log.info('summary', { ...summary });
  else {
    const { values, more } = undeliveredValues(final?.plan ?? store.plan());
    log.error('summary: final values NOT delivered; they are dropped', { ...summary, cause: undeliveredCause(final?.outcome), undelivered: values, undeliveredMore: more });
  }

  // Native mode: exiting now would make the kubelet restart us; wait for its SIGTERM.
  // A pending promise alone does not keep Node's event loop alive (it would exit with code 13),
  // so hold a timer until the signal arrives.
  if (cfg.mode === 'native' && trigger !== 'signal') {
    const keepAlive = setInterval(() => {}, 3_600_000);
    await terminated;
    clearInterval(keepAlive);
  }
  return summary;
}
