/**
 * Births: the one rule that makes `increase()` count every run (docs/semantics.md, "Counting where
 * users look"). Pure: state in, decisions out; the server does the I/O.
 *
 * An aggregated output (vmagent `total`) that is born, or reborn after its inputs went stale, holds
 * in its first sample everything its inputs counted in that aggregation interval; `increase()` and
 * `rate()` never count a series' first sample. The sidecar sends an explicit 0 before the first value
 * of every counter-like series, but a short run sends its 0 and its values within one aggregation
 * interval, and so does any run when the 0 and the first push happen to share one. The output is then
 * born with the whole value, and on a rebirth with the same value as last time, `increase()` sees
 * no change at all.
 *
 * The rule: a counter-like input series' values never reach the aggregator in the same aggregation
 * interval as its 0. The 0 goes at once; every later sample of that series is held until `holdMs`
 * (one aggregation interval plus a margin for the path) after the 0 was delivered, then goes in
 * order. The aggregator has then flushed the 0 — a new output starts at 0, an old one is unchanged —
 * and the values are counted as increments. Holding needs no knowledge of whether the output is
 * alive (a vmagent restart, a gap longer than the staleness interval and the first run of a workload
 * are all the same case), costs only delivery latency of a series' first values, and never the
 * pod's: the gateway accepts held samples at once.
 *
 * A series whose first sample this gateway sees is not 0 is one it did not see born (it restarted,
 * or a sidecar restarted onto acknowledged state): its 0 went through earlier, so nothing is held.
 */
import type { RwSample, RwSeries } from '../shared/remote-write.ts';
import { seriesKey } from '../shared/series-key.ts';

/** Series of this kind are cumulative and summed by `total` (manifests/aggregator/stream-aggr.yaml). */
export const KIND_LABEL = 'jobmetrics_kind';
export const COUNTER_KIND = 'counter';

export interface BirthSettings {
  /** How long after its 0 a series' later samples are held: aggregation interval + margin. */
  readonly holdMs: number;
  /** A series not written for this long is forgotten (the aggregator's staleness interval). */
  readonly forgetAfterMs: number;
  /** The most series tracked at once; beyond it a new series is forwarded without a hold. */
  readonly maxTracked: number;
}

interface Tracked {
  /** Samples of this series may be forwarded from this time on. */
  releaseAt: number;
  lastSeenAt: number;
  /** Held samples, oldest first, with the labels they came with. */
  held: RwSample[];
  labels: RwSeries['labels'];
}

/** What to do with one write request's series. */
export interface Admission {
  /** Forward now, in this order; the request is acknowledged once these are delivered. */
  readonly now: RwSeries[];
  /** Series keys whose birth this request starts: call `forget` with them if `now` cannot be delivered. */
  readonly births: string[];
  /** Samples accepted and held (they go with a later `due`). */
  readonly heldSamples: number;
  /** Counter-like series that started without a hold because `maxTracked` was reached. */
  readonly untracked: number;
}

const isCounterLike = (labels: RwSeries['labels']): boolean => labels.some(([n, v]) => n === KIND_LABEL && v === COUNTER_KIND);

export class BirthLedger {
  private readonly tracked = new Map<string, Tracked>();
  /**
   * The tracked series that hold samples now: the births of the last hold, a small part of all
   * tracked series, so what runs per request and per release never walks every series.
   */
  private readonly holding = new Map<string, Tracked>();
  private held = 0;

  constructor(private readonly settings: BirthSettings) {}

  get size(): number {
    return this.tracked.size;
  }

  /** Held samples over every series. */
  get heldSamples(): number {
    return this.held;
  }

  /** The earliest time a held sample becomes due, if any is held. */
  nextDueAt(): number | undefined {
    let next: number | undefined;
    for (const t of this.holding.values()) if (next === undefined || t.releaseAt < next) next = t.releaseAt;
    return next;
  }

  /**
   * Decides, for one write request received at `nowMs`, what goes now and what is held. `keys[i]`
   * is `seriesKey` of `series[i]` when the caller computed it already.
   */
  admit(series: readonly RwSeries[], nowMs: number, keys?: readonly string[]): Admission {
    const now: RwSeries[] = [];
    const births: string[] = [];
    let heldSamples = 0;
    let untracked = 0;
    for (const [i, s] of series.entries()) {
      if (s.samples.length === 0) continue;
      if (!isCounterLike(s.labels)) {
        now.push(s);
        continue;
      }
      const key = keys?.[i] ?? seriesKey(s.labels);
      const samples = [...s.samples].sort((a, b) => a.timestampMs - b.timestampMs);
      const t = this.tracked.get(key);
      if (t === undefined) {
        const first = samples[0]!;
        if (first.value !== 0) {
          // Not born here: its 0 went earlier, through this gateway before a restart or another
          // replica. Nothing to hold, and so nothing to remember: tracking it would grow the
          // ledger past maxTracked with every series another replica saw born (after a failover,
          // all of them), and a later request of it passes the same way.
          now.push({ labels: s.labels, samples });
          continue;
        }
        if (this.tracked.size >= this.settings.maxTracked) {
          untracked++;
          now.push({ labels: s.labels, samples });
          continue;
        }
        // Its birth: the 0 (and any further 0s of the same request) now, the rest later.
        let split = 1;
        while (split < samples.length && samples[split]!.value === 0) split++;
        now.push({ labels: s.labels, samples: samples.slice(0, split) });
        const rest = samples.slice(split);
        this.track(key, s.labels, nowMs + this.settings.holdMs, nowMs, rest);
        births.push(key);
        heldSamples += rest.length;
        continue;
      }
      t.lastSeenAt = nowMs;
      if (nowMs < t.releaseAt || t.held.length > 0) {
        // Still inside its hold (or its held samples are not out yet: keep the order).
        this.hold(key, t, samples, 'after');
        heldSamples += samples.length;
        continue;
      }
      now.push({ labels: s.labels, samples });
    }
    return { now, births, heldSamples, untracked };
  }

  /**
   * The births a request started were delivered at `ackMs`: their holds run from then, so a held
   * value goes at least one hold after its 0 reached the aggregator, however long that took.
   */
  confirm(births: readonly string[], ackMs: number): void {
    for (const key of births) {
      const t = this.tracked.get(key);
      if (t !== undefined) t.releaseAt = ackMs + this.settings.holdMs;
    }
  }

  /**
   * Undoes the births a request started, when its `now` part could not be delivered: the client
   * retries the whole request, and its 0 must then go first again, not be held behind itself.
   */
  forget(births: readonly string[]): void {
    for (const key of births) {
      const t = this.tracked.get(key);
      if (t === undefined) continue;
      this.held -= t.held.length;
      this.holding.delete(key);
      this.tracked.delete(key);
    }
  }

  /** The held samples due at `nowMs`, removed from the ledger; `requeue` puts them back on failure. */
  due(nowMs: number): RwSeries[] {
    const out: RwSeries[] = [];
    for (const [key, t] of this.holding) {
      if (t.releaseAt > nowMs) continue;
      out.push({ labels: t.labels, samples: t.held });
      this.held -= t.held.length;
      t.held = [];
      this.holding.delete(key);
    }
    return out;
  }

  /** Puts samples that `due` gave back (their delivery failed), before any held since. */
  requeue(series: readonly RwSeries[]): void {
    for (const s of series) {
      const key = seriesKey(s.labels);
      const t = this.tracked.get(key);
      if (t === undefined) this.track(key, s.labels, 0, 0, [...s.samples]);
      else this.hold(key, t, s.samples, 'before');
    }
  }

  /** Forgets series not written for `forgetAfterMs` and holding nothing; returns how many. */
  expire(nowMs: number): number {
    let n = 0;
    for (const [key, t] of this.tracked) {
      if (t.held.length === 0 && nowMs - t.lastSeenAt > this.settings.forgetAfterMs) {
        this.tracked.delete(key);
        n++;
      }
    }
    return n;
  }

  private track(key: string, labels: RwSeries['labels'], releaseAt: number, lastSeenAt: number, held: RwSample[]): void {
    const t: Tracked = { releaseAt, lastSeenAt, held: [], labels };
    this.tracked.set(key, t);
    if (held.length > 0) this.hold(key, t, held, 'after');
  }

  /** Adds samples to what `t` holds, in time order (`before`: samples sent earlier that came back). */
  private hold(key: string, t: Tracked, samples: readonly RwSample[], where: 'before' | 'after'): void {
    t.held = where === 'after' ? mergeByTime(t.held, samples) : mergeByTime(samples, t.held);
    this.held += samples.length;
    this.holding.set(key, t);
  }
}

/** Two runs of samples as one, oldest first (each already oldest first). */
function mergeByTime(a: readonly RwSample[], b: readonly RwSample[]): RwSample[] {
  if (a.length === 0) return [...b];
  if (b.length === 0) return [...a];
  return [...a, ...b].sort((x, y) => x.timestampMs - y.timestampMs);
}
