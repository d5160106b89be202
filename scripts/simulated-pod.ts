/**
 * A Job pod with its sidecar, simulated in-process for load: the main container is a set of
 * counters (one counter family and, from 24 series on, one histogram) that grow by random whole
 * amounts; the sidecar part is the sidecar's own code — its SeriesStore (sidecar/series-store.ts),
 * its remote-write encoder and delivery with retries (shared/remote-write.ts) and its rule for a
 * failed delivery that may have arrived (sidecar/sidecar.ts `mayHaveArrived`). What is not the
 * sidecar's: the scrape (the counters are handed to the store as parsed families, no HTTP, no
 * parser) and the exit watch (the pod ends when its lifetime is up). The delivery step below
 * repeats the few lines of runSidecar's `deliver`, which is not exported.
 *
 * The schedule is the sidecar's: explicit zeros as soon as new series are seen, a regular delivery
 * every push interval, and at the end one last reading and a final delivery retried until the flush
 * deadline. The ground truth is the final cumulative value of every series: what a perfect
 * aggregator would add for this pod.
 */
import type { MetricFamily, Sample } from '../shared/exposition/types.ts';
import { deliverWithRetry, encodeWriteRequest } from '../shared/remote-write.ts';
import { KIND_LABEL, SeriesStore } from '../sidecar/series-store.ts';
import { mayHaveArrived } from '../sidecar/sidecar.ts';
import { seriesKey } from '../shared/series-key.ts';

export interface PodSpec {
  readonly namespace: string;
  readonly job: string;
  readonly pod: string;
  /** Series the main container exposes (≥ 1). */
  readonly series: number;
  readonly lifetimeMs: number;
}

export interface PodTiming {
  readonly remoteWriteUrl: string;
  /** The sidecar's JOBMETRICS_PUSH_INTERVAL. */
  readonly pushIntervalMs: number;
  /** How often the counters grow and are read into the store (the scrape interval). */
  readonly scrapeIntervalMs: number;
  /** The sidecar's JOBMETRICS_FLUSH_TIMEOUT. */
  readonly flushTimeoutMs: number;
  /** The aggregator's staleness interval (the sidecar's new-generation rule). */
  readonly stalenessMs: number;
  readonly random: () => number;
  /** Called after every delivery (for progress lines). */
  readonly onDelivery?: (ok: boolean, samples: number, retries: number) => void;
  /** Called with the error of every failed attempt that is retried. */
  readonly onRetry?: (error: string) => void;
}

export interface PodResult {
  readonly pod: string;
  readonly job: string;
  /** Output series key (scripts/series-key.ts, without `pod`) → final value. */
  readonly truth: ReadonlyMap<string, number>;
  /**
   * What the aggregator acknowledged of each output series: `truth` when the final delivery
   * worked; else the last acknowledged values (a failed delivery may still have been counted, so
   * the aggregator's share lies between this and `truth`). After a new generation the store's
   * offsets are not visible here: then 0 (a safe floor).
   */
  readonly acknowledged: ReadonlyMap<string, number>;
  readonly finalDelivered: boolean;
  /** The end of the pod's life (its main container's exit). */
  readonly exitAtMs: number;
  /** Ended by the caller's signal rather than at the end of its lifetime. */
  readonly endedEarly: boolean;
  /** When the final delivery was acknowledged. */
  readonly deliveredAtMs: number | undefined;
  readonly deliveries: number;
  readonly retries: number;
  readonly failedDeliveries: number;
  readonly samplesDelivered: number;
}

/** The bucket bounds of the simulated histogram (10 buckets with +Inf). */
const BOUNDS = [1, 2, 3, 5, 8, 13, 21, 34, 55, Infinity] as const;
const HISTOGRAM_SERIES = BOUNDS.length + 2;

/** The main container's metrics: cumulative values and their exposition as parsed families. */
class MainContainer {
  readonly #counters: Float64Array;
  readonly #buckets = new Float64Array(BOUNDS.length);
  #sum = 0;
  #count = 0;
  readonly #histogram: boolean;

  constructor(series: number) {
    this.#histogram = series >= 2 * HISTOGRAM_SERIES;
    this.#counters = new Float64Array(this.#histogram ? series - HISTOGRAM_SERIES : series);
  }

  /** Work done since the last call: each counter grows by 0–3, 0–3 observations of 1–55. */
  advance(random: () => number): void {
    const c = this.#counters;
    for (let i = 0; i < c.length; i++) c[i] = (c[i] ?? 0) + Math.floor(random() * 4);
    if (!this.#histogram) return;
    const n = Math.floor(random() * 4);
    for (let k = 0; k < n; k++) {
      const v = 1 + Math.floor(random() * 55);
      this.#sum += v;
      this.#count++;
      for (let b = 0; b < BOUNDS.length; b++) if (v <= (BOUNDS[b] ?? Infinity)) this.#buckets[b] = (this.#buckets[b] ?? 0) + 1;
    }
  }

  families(): MetricFamily[] {
    const ops: Sample[] = [];
    for (let i = 0; i < this.#counters.length; i++) ops.push({ name: 'load_ops_total', labels: [['op', `op${i}`]], value: this.#counters[i] ?? 0 });
    const out: MetricFamily[] = [{ name: 'load_ops', type: 'counter', samples: ops }];
    if (this.#histogram) {
      const samples: Sample[] = BOUNDS.map((b, i) => ({ name: 'load_duration_seconds_bucket', labels: [['le', b === Infinity ? '+Inf' : String(b)]], value: this.#buckets[i] ?? 0 }));
      samples.push({ name: 'load_duration_seconds_sum', labels: [], value: this.#sum }, { name: 'load_duration_seconds_count', labels: [], value: this.#count });
      out.push({ name: 'load_duration_seconds', type: 'histogram', samples });
    }
    return out;
  }
}

/** The output series key of each sample of `families` for this pod (what the aggregator keeps). */
function truthOf(spec: PodSpec, families: readonly MetricFamily[]): Map<string, number> {
  const out = new Map<string, number>();
  for (const f of families) {
    for (const s of f.samples) {
      out.set(seriesKey([['__name__', s.name], ...s.labels, ['namespace', spec.namespace], ['job', spec.job]]), s.value);
    }
  }
  return out;
}

/** The output series key of a delivered series: its labels without `pod` and the kind label. */
function outputKey(labels: ReadonlyArray<readonly [string, string]>): string {
  return seriesKey(labels.filter(([n]) => n !== 'pod' && n !== KIND_LABEL));
}

const sleepUntil = (atMs: number, signal: AbortSignal | undefined): Promise<void> =>
  new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const t = setTimeout(done, Math.max(0, atMs - Date.now()));
    function done(): void {
      clearTimeout(t);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });

/** Lives `spec.lifetimeMs` (or until `end` aborts), then flushes; never throws. */
export async function runSimulatedPod(spec: PodSpec, t: PodTiming, end?: AbortSignal): Promise<PodResult> {
  const main = new MainContainer(spec.series);
  const store = new SeriesStore({ namespace: spec.namespace, job: spec.job, pod: spec.pod, maxSeries: 50_000 });
  const stats = { deliveries: 0, retries: 0, failedDeliveries: 0, samplesDelivered: 0 };
  const acknowledged = new Map<string, number>();

  // runSidecar's `deliver`, step for step (sidecar/sidecar.ts).
  const deliver = async (deadlineMs: number, zerosOnly = false): Promise<{ ok: boolean; retryable: boolean }> => {
    if (store.gapExceeded(Date.now(), t.stalenessMs)) store.startGeneration();
    const plan = store.plan({ zerosOnly });
    stats.deliveries++;
    let maybeArrived = false;
    const outcome = await deliverWithRetry(t.remoteWriteUrl, encodeWriteRequest(plan.series), {
      deadlineMs,
      timeoutMs: Math.min(5_000, t.flushTimeoutMs),
      onRetry: (_attempt, o) => {
        stats.retries++;
        if (!o.ok) t.onRetry?.(o.error.message);
        if (mayHaveArrived(o)) maybeArrived = true;
      },
    });
    t.onDelivery?.(outcome.ok, plan.samples, outcome.attempts - 1);
    if (outcome.ok) {
      store.acknowledge(plan, Date.now());
      if (plan.generation === 0) {
        for (const series of plan.series) {
          const last = series.samples[series.samples.length - 1];
          if (last !== undefined) acknowledged.set(outputKey(series.labels), last.value);
        }
      }
      stats.samplesDelivered += plan.samples;
      return { ok: true, retryable: false };
    }
    stats.failedDeliveries++;
    if (maybeArrived || mayHaveArrived(outcome)) store.mayHaveArrived(plan);
    return { ok: false, retryable: outcome.retryable };
  };

  const startMs = Date.now();
  const endMs = startMs + spec.lifetimeMs;
  store.update(main.families(), startMs);
  // The sidecar delivers new counters' zeros at once, alone.
  if (store.hasUnstartedCounters) await deliver(startMs + t.pushIntervalMs, true);
  let nextScrape = startMs + t.scrapeIntervalMs;
  let nextPush = startMs + t.pushIntervalMs;
  for (;;) {
    await sleepUntil(Math.min(nextScrape, nextPush, endMs), end);
    const now = Date.now();
    if (now >= endMs || end?.aborted) break;
    if (now >= nextScrape) {
      main.advance(t.random);
      store.update(main.families(), now);
      nextScrape += t.scrapeIntervalMs;
    }
    if (now >= nextPush) {
      nextPush = now + t.pushIntervalMs;
      await deliver(nextPush);
    }
  }
  // Exit: the last work, the last reading, the final delivery until the flush deadline.
  const exitAtMs = Date.now();
  const endedEarly = end?.aborted === true && exitAtMs < endMs;
  main.advance(t.random);
  const families = main.families();
  store.update(families, exitAtMs);
  const deadline = exitAtMs + t.flushTimeoutMs;
  let finalDelivered = false;
  let deliveredAtMs: number | undefined;
  while (!finalDelivered && Date.now() < deadline) {
    const r = await deliver(deadline);
    finalDelivered = r.ok;
    if (r.ok) deliveredAtMs = Date.now();
    else if (!r.retryable) break;
  }
  const truth = truthOf(spec, families);
  const floor = finalDelivered ? truth : new Map([...truth.keys()].map((k) => [k, store.generation === 0 ? (acknowledged.get(k) ?? 0) : 0]));
  return { pod: spec.pod, job: spec.job, truth, acknowledged: floor, finalDelivered, exitAtMs, endedEarly, deliveredAtMs, ...stats };
}
