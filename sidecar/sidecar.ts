/**
 * The sidecar's life, as a sequence of named steps (README "How the sidecar works"):
 *
 *   start → [scrape and push → exit → final flush] → idle
 *
 * - start: settings, the series store (restored from the state dir after a restart of ours).
 * - scrape and push: scrape the main container every interval, deliver the latest cumulative
 *   values every push interval.
 * - exit: the main container's processes are gone (or SIGTERM came: deliver at once, then follow
 *   the main container to its exit).
 * - final flush: scrape once more, deliver until the flush timeout; then leave the pod's final
 *   values in the log and the termination message (final-report.ts).
 * - native mode: the kubelet may restart the main container in the same pod (restartPolicy
 *   OnFailure); when a new one appears, its counters are folded in as a restart and the bracket
 *   runs again. The sidecar ends on SIGTERM (idle until then); legacy mode ends after one flush.
 *
 * Nothing here throws to the caller and nothing here can fail the Job.
 */
import { fs } from '../shared/node-builtins.ts';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from '../shared/log.ts';
import { ACCEPT_HEADER, formatFromContentType } from '../shared/exposition/negotiate.ts';
import { parse } from '../shared/exposition/parse.ts';
import { SIDECAR_MEMORY } from '../shared/sidecar-memory.ts';
import type { SidecarConfig } from './config.ts';
import { ExitHints, waitForMainExit, type ExitEvent } from './exit-watch.ts';
import { finalFlushRetry, undeliveredCause, undeliveredValues } from './final-flush.ts';
import { FINAL_VALUES_MSG, finalReport } from './final-report.ts';
import { FirstSight } from '../shared/first-sight.ts';
import { peakRssMb } from './peak-rss.ts';
import { WriterToken } from '../shared/writer-token.ts';
import { deliverWithRetry, encodeWriteRequest, USER_AGENT, type DeliverOptions, type DeliveryOutcome, type SendOutcome } from '../shared/remote-write.ts';
import { createScraper, type ScrapeResult } from './scrape.ts';
import { ScrapeCost, scrapeDelayMs } from './scrape-pace.ts';
import { describeProblem, SeriesStore, type DropReason, type PushPlan } from './series-store.ts';
import { loadState, saveState } from './state.ts';
import { VERSION } from '../shared/version.ts';

export interface SidecarEnvironment {
  readonly log: Logger;
  readonly selfPid: number;
  /** Aborted on SIGTERM/SIGINT: triggers the final flush. */
  readonly terminate: AbortSignal;
}

export interface SidecarSummary {
  /** Why the sidecar finished: the main container's exit, or a signal. */
  readonly trigger: 'main-exited' | 'main-never-seen' | 'no-shared-pid-namespace' | 'signal';
  /** Which run of the main container this flush ended (1, then 2… after in-pod restarts). */
  readonly attempt: number;
  readonly series: number;
  readonly scrapes: number;
  readonly scrapeFailures: number;
  /** Deliveries started: acknowledged, failed, or superseded (stopped by the final flush). */
  readonly pushes: number;
  readonly samplesDelivered: number;
  /** Deliveries acknowledged, and failed after their retries (a superseded one is neither). */
  readonly deliveriesOk: number;
  readonly deliveryFailures: number;
  readonly retries: number;
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

/**
 * The share of one core that scrapes faster than the interval may take (scrape-pace.ts): at 1 %,
 * a scrape of up to 2 ms of CPU (a small exposition: most of it is the HTTP exchange) allows the
 * 200 ms pace. docs/benchmarks.md "Tail loss" weighs the loss against the CPU.
 */
const SCRAPE_CPU_SHARE = 0.01;

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

/** What the steps of one sidecar run share. */
export interface SidecarRun {
  readonly cfg: SidecarConfig;
  readonly env: SidecarEnvironment;
  readonly store: SeriesStore;
  readonly stats: { scrapes: number; scrapeFailures: number; pushes: number; samplesDelivered: number; deliveriesOk: number; deliveryFailures: number; retries: number };
  /** Resolves on SIGTERM/SIGINT. */
  readonly terminated: Promise<'signal'>;
  /** The early exit signs of the current attempt (the scrape connection closing). */
  hints: ExitHints;
  /** The run of the main container being watched: 1, then 2… after restarts in the pod. */
  attempt: number;
  lastScrapeError: string;
  /** Parse warnings already logged (each once, the first 20). */
  readonly parseWarnings: FirstSight;
  /** Cuts the push loop's wait short (new counters whose zeros should go now). */
  wakePush: () => void;
  /** The token presented to the gateway (cfg.writerTokenFile); undefined: none. */
  readonly writerToken: WriterToken | undefined;
  /** Whether the last state write failed (logged once, not every push). */
  stateWriteFailed: boolean;
  /** Whether writing the termination message failed once already (logged once). */
  terminationMessageFailed: boolean;
}

/** The scrape and push loops of one attempt. */
export interface Loops {
  /** Stops the periodic push (an in-flight one is superseded: values are cumulative). */
  stopPushing(): void;
  /** Stops both loops and waits for them. */
  stop(): Promise<void>;
}

/** The exit watch of one attempt. */
export interface MainWatch {
  /** Resolves when the main container's processes are first seen. */
  readonly seen: Promise<void>;
  /** Resolves with the exit (undefined when aborted). */
  readonly exited: Promise<ExitEvent | undefined>;
  abort(): void;
}

/** How an attempt ended, and the flush deadline that follows. */
export interface Exit {
  readonly trigger: SidecarSummary['trigger'];
  readonly atMs: number;
  readonly deadlineMs: number;
}

/**
 * The sidecar's life: start, then per run of the main container scrape and push, exit, final
 * flush; then, in native mode, either the next run of the main container (restarted by the
 * kubelet in this pod) or idle until SIGTERM. Returns the last flush's summary.
 */
export async function runSidecar(cfg: SidecarConfig, env: SidecarEnvironment): Promise<SidecarSummary> {
  const run = start(cfg, env);
  let watch = watchMain(run);
  for (;;) {
    const loops = scrapeAndPush(run);
    const exit = await awaitExit(run, watch, loops);
    const summary = await finalFlush(run, exit, loops);
    if (cfg.mode === 'native' && exit.trigger === 'main-exited') {
      const next = await awaitRestart(run);
      if (next !== undefined) {
        watch = next;
        continue;
      }
    } else if (cfg.mode === 'native' && exit.trigger !== 'signal') {
      await idle(run);
    }
    return summary;
  }
}

/** Start: the series store (restored when a state dir holds what we acknowledged before a restart). */
export function start(cfg: SidecarConfig, env: SidecarEnvironment): SidecarRun {
  const { log } = env;
  // Every input limit comes from the memory budget (shared/sidecar-memory.ts).
  const store = new SeriesStore({ namespace: cfg.namespace, job: cfg.job, pod: cfg.pod, maxSeries: SIDECAR_MEMORY.maxSeries, maxLabelChars: SIDECAR_MEMORY.maxLabelChars });
  if (cfg.stateDir !== undefined) {
    const r = loadState(cfg.stateDir, cfg.pod);
    if (r.found && r.ok) {
      store.restore(r.snapshot);
      log.info('restarted: going on from the acknowledged state', { generation: r.snapshot.generation, series: r.snapshot.series.length });
    } else if (r.found) {
      // Starting afresh may count what the lost state had acknowledged twice; say so.
      log.warn('state not restored; starting afresh', { stateDir: cfg.stateDir, error: r.error });
    }
  }
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
    mainContainer: cfg.mainContainer,
    stateDir: cfg.stateDir,
  });
  return {
    cfg,
    env,
    store,
    stats: { scrapes: 0, scrapeFailures: 0, pushes: 0, samplesDelivered: 0, deliveriesOk: 0, deliveryFailures: 0, retries: 0 },
    terminated,
    hints: new ExitHints(),
    attempt: 1,
    lastScrapeError: '',
    parseWarnings: new FirstSight(20),
    wakePush: () => {},
    writerToken:
      cfg.writerTokenFile === undefined
        ? undefined
        : new WriterToken(cfg.writerTokenFile, {
            onReadError: (error, haveOlderToken) => env.log.warn('cannot read the token for the gateway; the gateway refuses writes without one', { error, haveOlderToken }),
          }),
    stateWriteFailed: false,
    terminationMessageFailed: false,
  };
}

/** Starts watching the main container of the next attempt (a fresh set of exit hints). */
export function watchMain(run: SidecarRun): MainWatch {
  const { cfg, env } = run;
  const abort = new AbortController();
  run.hints = new ExitHints();
  let seen: () => void = () => {};
  const seenPromise = new Promise<void>((resolve) => (seen = resolve));
  const exited = waitForMainExit({
    procRoot: cfg.procRoot,
    selfPid: env.selfPid,
    pollMs: cfg.exitPollMs,
    hints: run.hints,
    // Only to follow forks of a long-lived main process; an exit of every known PID always
    // rescans before it counts, so a child forked just before its parent exited is found anyway.
    rescanMs: 10_000,
    // Legacy mode starts after the main container (the kubelet starts containers in order), so a
    // main container not seen within a few intervals has already come and gone. Native mode
    // starts first and must wait, and so does every later attempt.
    ...(cfg.mode === 'legacy' && run.attempt === 1 ? { neverSeenGraceMs: Math.max(5_000, 3 * cfg.intervalMs) } : {}),
    ...(cfg.mainContainer !== undefined ? { mainContainer: cfg.mainContainer } : {}),
    signal: abort.signal,
    onFirstSeen: (pids) => {
      env.log.info('main container seen', { pids, attempt: run.attempt });
      seen();
    },
  }).catch(() => undefined);
  return { seen: seenPromise, exited, abort: () => abort.abort() };
}

/** Scrape and push: the two loops of an attempt, until stopped. */
export function scrapeAndPush(run: SidecarRun): Loops {
  const { cfg, store } = run;
  const scraper = createScraper(cfg.scrapeUrl, {
    onConnectionClosed: () => run.hints.hint(),
    onConnectionKept: (kept) => run.hints.sensor(kept),
    // At least 1 s even at a 100 ms interval: a busy node must not turn slow scrapes into lost
    // ones (scrapes never overlap, a slow one only delays the next); at most 10 s, as Prometheus.
    timeoutMs: Math.min(10_000, Math.max(1_000, cfg.intervalMs)),
    maxBytes: SIDECAR_MEMORY.maxBodyBytes,
    accept: ACCEPT_HEADER,
    userAgent: USER_AGENT,
  });
  const running = new AbortController();
  const pushAbort = new AbortController();
  const scrapeLoop = (async () => {
    let succeeded = 0;
    const cost = new ScrapeCost();
    const pace = { intervalMs: cfg.intervalMs, fastMs: cfg.fastIntervalMs, cpuShare: SCRAPE_CPU_SHARE };
    while (!running.signal.aborted) {
      const tick = Date.now();
      const cpu = process.cpuUsage();
      if (recordScrape(run, await scraper.scrape(), tick)) {
        succeeded++;
        const used = process.cpuUsage(cpu);
        cost.observe((used.user + used.system) / 1_000);
      }
      const wait = scrapeDelayMs(succeeded, cost.meanMs, pace) - (Date.now() - tick);
      await sleep(Math.max(0, wait), undefined, { signal: running.signal }).catch(() => {});
    }
  })();
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
        run.wakePush = stop;
        running.signal.addEventListener('abort', stop, { once: true });
        pushAbort.signal.addEventListener('abort', stop, { once: true });
      });
      run.wakePush = () => {};
      if (running.signal.aborted || pushAbort.signal.aborted) break;
      if (Date.now() >= nextRegular) {
        nextRegular = Date.now() + cfg.pushIntervalMs;
        if (store.size > 0) await deliver(run, nextRegular, pushAbort.signal);
      } else if (store.hasUnstartedCounters) {
        // New counters: their zeros go now, alone, so they reach the aggregator an aggregation
        // interval before the values whenever the job lives that long (series-store.ts).
        await deliver(run, nextRegular, pushAbort.signal, true);
      }
    }
  })();
  return {
    stopPushing: () => pushAbort.abort(),
    stop: async () => {
      running.abort();
      await Promise.all([scrapeLoop, pushLoop]);
      scraper.close();
    },
  };
}

/**
 * Exit: waits for the main container's exit or a signal. On a signal (a pod deletion sends
 * SIGTERM to every container at once, and the main container may still count while it shuts
 * down) it delivers what it has now (a SIGKILL may follow), then keeps scraping until the main
 * container exits, keeping a third of the budget for the last delivery.
 */
export async function awaitExit(run: SidecarRun, watch: MainWatch, loops: Loops): Promise<Exit> {
  const { cfg, store } = run;
  const log = run.env.log;
  const first = await Promise.race([watch.exited, run.terminated]);
  const atMs = Date.now();
  const deadlineMs = atMs + cfg.flushTimeoutMs;
  const trigger: SidecarSummary['trigger'] =
    first === 'signal' || first === undefined
      ? 'signal'
      : ({ exited: 'main-exited', 'never-seen': 'main-never-seen', 'no-shared-pid-namespace': 'no-shared-pid-namespace' } as const)[first.reason];
  if (trigger === 'no-shared-pid-namespace') {
    log.error('the pod does not share its process namespace (shareProcessNamespace: true is missing); cannot see the main container exit');
  }
  loops.stopPushing();
  if (trigger === 'signal') {
    log.info('signal: delivering now, then waiting for the main container to exit', { deadlineMs: cfg.flushTimeoutMs });
    const reserveMs = Math.max(200, cfg.flushTimeoutMs / 3);
    if (store.size > 0) await deliver(run, deadlineMs - reserveMs, undefined, false, finalFlushRetry(cfg.flushTimeoutMs - reserveMs));
    const waitMs = deadlineMs - reserveMs - Date.now();
    if (waitMs > 0) {
      const stopWaiting = new AbortController();
      const until = sleep(waitMs, 'deadline' as const, { signal: stopWaiting.signal }).catch(() => 'deadline' as const);
      const outcome = await Promise.race([watch.exited, until]);
      stopWaiting.abort();
      log.info(outcome === 'deadline' ? 'main container still running at the flush deadline' : 'main container exited');
    }
  }
  watch.abort();
  return { trigger, atMs, deadlineMs };
}

/** Final flush: stop scraping, scrape once more if the endpoint still answers, deliver until the deadline. */
export async function finalFlush(run: SidecarRun, exit: Exit, loops: Loops): Promise<SidecarSummary> {
  const { cfg, store, stats } = run;
  const log = run.env.log;
  const deadline = exit.deadlineMs;
  log.info('final flush', { trigger: exit.trigger, attempt: run.attempt, deadlineMs: deadline - Date.now() });
  await loops.stop();
  const lastScraper = createScraper(cfg.scrapeUrl, {
    timeoutMs: Math.max(50, Math.min(cfg.intervalMs, (deadline - Date.now()) / 4)),
    maxBytes: SIDECAR_MEMORY.maxBodyBytes,
    accept: ACCEPT_HEADER,
    userAgent: USER_AGENT,
  });
  const lastScrape = await lastScraper.scrape();
  lastScraper.close();
  if (lastScrape.ok) recordScrape(run, lastScrape, Date.now());

  // One delivery of a few spaced attempts that honour Retry-After (final-flush.ts), never a loop
  // of deliveries: each would start its attempts afresh against an aggregator that said to wait.
  let finalDelivered = store.size === 0;
  let deliveredAt: number | undefined;
  let final: { plan: PushPlan; outcome: DeliveryOutcome } | undefined;
  if (!finalDelivered && Date.now() < deadline) {
    final = await deliver(run, deadline, undefined, false, finalFlushRetry(deadline - Date.now()));
    finalDelivered = final.outcome.ok;
    if (finalDelivered) deliveredAt = Date.now();
  }
  const summary: SidecarSummary = {
    trigger: exit.trigger,
    attempt: run.attempt,
    series: store.size,
    scrapes: stats.scrapes,
    scrapeFailures: stats.scrapeFailures,
    pushes: stats.pushes,
    samplesDelivered: stats.samplesDelivered,
    deliveriesOk: stats.deliveriesOk,
    deliveryFailures: stats.deliveryFailures,
    retries: stats.retries,
    generation: store.generation,
    droppedSeries: store.droppedSeries,
    droppedByReason: store.droppedByReason,
    finalDelivered,
    finalUndelivered: finalDelivered ? 0 : store.size,
    flushMs: Date.now() - exit.atMs,
    peakRssMb: peakRssMb(),
    exitToDeliveredMs: deliveredAt === undefined ? undefined : deliveredAt - exit.atMs,
  };
  if (finalDelivered) log.info('summary', { ...summary });
  else {
    const { values, more } = undeliveredValues(final?.plan ?? store.plan());
    log.error('summary: final values NOT delivered; they are dropped', { ...summary, cause: undeliveredCause(final?.outcome), undelivered: values, undeliveredMore: more });
  }
  reportFinalValues(run, summary);
  return summary;
}

/**
 * Native mode, after the main container's exit: the kubelet restarts a failed main container in
 * the same pod (restartPolicy OnFailure), or sends SIGTERM when the pod is done. Returns the watch
 * of the new main container once it is seen, its counters folded in as a restart (they start
 * from 0), or undefined on SIGTERM.
 */
export async function awaitRestart(run: SidecarRun): Promise<MainWatch | undefined> {
  run.env.log.info('waiting for SIGTERM, or for the main container to be restarted in this pod');
  run.attempt++;
  const watch = watchMain(run);
  const first = await Promise.race([watch.seen.then(() => 'seen' as const), run.terminated]);
  if (first === 'signal') {
    watch.abort();
    run.attempt--;
    return undefined;
  }
  run.store.mainRestarted();
  run.env.log.info('main container restarted in the pod: its counters go on from what the last one counted', { attempt: run.attempt });
  return watch;
}

/**
 * Idle (native mode): exiting now would make the kubelet restart us; wait for its SIGTERM. A
 * pending promise alone does not keep Node's event loop alive (it would exit with code 13), so a
 * timer is held until the signal arrives.
 */
export async function idle(run: SidecarRun): Promise<void> {
  const keepAlive = setInterval(() => {}, 3_600_000);
  await run.terminated;
  clearInterval(keepAlive);
}

/** One scrape into the store; false when it failed. Logs changes of the error, not repetitions. */
export function recordScrape(run: SidecarRun, r: ScrapeResult, atMs: number): boolean {
  const { cfg, store, stats } = run;
  const log = run.env.log;
  stats.scrapes++;
  if (!r.ok) {
    stats.scrapeFailures++;
    if (r.error !== run.lastScrapeError) log.warn('scrape failed', { target: cfg.scrapeUrl.href, error: r.error, status: r.status });
    run.lastScrapeError = r.error;
    return false;
  }
  const parsed = parse(r.body, {
    format: formatFromContentType(r.contentType),
    limits: { maxBytes: SIDECAR_MEMORY.maxBodyBytes, maxSamples: SIDECAR_MEMORY.maxSamples, maxFamilies: SIDECAR_MEMORY.maxFamilies },
  });
  if (!parsed.ok) {
    stats.scrapeFailures++;
    const error = `line ${parsed.error.line}: ${parsed.error.message}`;
    if (error !== run.lastScrapeError) log.warn('scrape unparsable', { target: cfg.scrapeUrl.href, contentType: r.contentType, error });
    run.lastScrapeError = error;
    return false;
  }
  if (run.lastScrapeError !== '') log.info('scrape recovered', { target: cfg.scrapeUrl.href });
  for (const w of parsed.warnings) if (run.parseWarnings.first(w.message)) log.warn('scrape accepted with a warning', { target: cfg.scrapeUrl.href, line: w.line, warning: w.message });
  run.lastScrapeError = '';
  const u = store.update(parsed.families, atMs);
  for (const p of u.problems) log.warn('series dropped', describeProblem(p));
  if (u.newSeries > 0 && store.hasUnstartedCounters) run.wakePush();
  if (u.newSeries > 0) log.debug('new series', { count: u.newSeries, total: store.size });
  if (u.resets > 0) log.info('counter reset in the main container', { series: u.resets });
  return true;
}

/** Delivers everything in the store once, retrying until `deadlineMs`; keeps the state on an acknowledgement. */
export async function deliver(
  run: SidecarRun,
  deadlineMs: number,
  signal?: AbortSignal,
  zerosOnly = false,
  retry: Partial<DeliverOptions> = {},
): Promise<{ plan: PushPlan; outcome: DeliveryOutcome }> {
  const { cfg, store, stats } = run;
  const log = run.env.log;
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
  const authorization = run.writerToken?.authorization();
  // deliverWithRetry reports failures as values; an abort may still surface as a rejection.
  const outcome = await deliverWithRetry(cfg.remoteWriteUrl.href, body, {
    ...(authorization !== undefined && { authorization }),
    deadlineMs,
    timeoutMs: Math.min(5_000, cfg.flushTimeoutMs),
    ...retry,
    ...(signal ? { signal } : {}),
    onRetry: (attempt, o, delayMs) => {
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
  // The retries made, not the ones planned: a retry whose wait ended too close to the deadline is
  // given up before it is sent (shared/remote-write.ts MIN_ATTEMPT_MS).
  stats.retries += Math.max(0, outcome.attempts - 1);
  if (outcome.ok) {
    store.acknowledge(plan, Date.now());
    stats.deliveriesOk++;
    stats.samplesDelivered += plan.samples;
    keepState(run);
  } else {
    // Unknown whether it was counted: a later generation must start above it, never below.
    if (maybeArrived || mayHaveArrived(outcome)) {
      store.mayHaveArrived(plan);
      keepState(run);
    }
    // A periodic delivery stopped because the final flush takes over (its values go with the
    // flush, values being cumulative) did not fail: the recorder's count of failed deliveries
    // must mean trouble (docs/outcomes.md).
    if (signal?.aborted === true) {
      log.debug('delivery superseded by the final flush', { attempts: outcome.attempts });
      return { plan, outcome };
    }
    stats.deliveryFailures++;
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
}

/**
 * One pod's numbers (docs/sidecar.md "One pod's numbers"; final-report.ts): the final values as one log
 * line, and a summary as the container's termination message. Each attempt's flush overwrites the
 * message: its counters include every earlier attempt's. Neither can fail anything; a failed
 * write is logged once.
 */
function reportFinalValues(run: SidecarRun, summary: SidecarSummary): void {
  const { cfg } = run;
  const log = run.env.log;
  let message: string;
  try {
    const report = finalReport(run.store.finalValues(), summary, { namespace: cfg.namespace, job: cfg.job, pod: cfg.pod });
    log.info(FINAL_VALUES_MSG, report.fields);
    message = report.message;
  } catch (error) {
    log.warn('cannot report the final values', { error });
    return;
  }
  try {
    fs.writeFileSync(cfg.terminationMessagePath, message);
  } catch (error) {
    if (!run.terminationMessageFailed) log.warn('cannot write the termination message', { path: cfg.terminationMessagePath, error });
    run.terminationMessageFailed = true;
  }
}

/** Writes what was acknowledged to the state dir, if there is one; a failure is logged once. */
function keepState(run: SidecarRun): void {
  const dir = run.cfg.stateDir;
  if (dir === undefined) return;
  try {
    saveState(dir, run.store.snapshot());
    if (run.stateWriteFailed) run.env.log.info('state written again', { stateDir: dir });
    run.stateWriteFailed = false;
  } catch (error) {
    if (!run.stateWriteFailed) run.env.log.warn('cannot keep the acknowledged state; a restart of the sidecar may count twice', { error });
    run.stateWriteFailed = true;
  }
}
