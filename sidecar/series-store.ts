/**
 * The sidecar's memory: the latest value of every scraped series, and what has been delivered.
 * Pure state transitions, no I/O (docs/semantics.md):
 *
 * - Every series carries `namespace`, `job` and `pod`; a scraped label of the same name is kept
 *   as `exported_<name>` (prefixed again until the name is free), as Prometheus does with
 *   `honor_labels: false`.
 * - What a target exposes that cannot be delivered, or would read as a reset when it is not one
 *   (duplicates, NaN or negative counters, float jitter), costs that series only: it is dropped,
 *   counted and reported once (docs/semantics.md, "What the sidecar drops").
 * - Values are cumulative, so a retried or duplicated delivery cannot count twice.
 * - Before the first value of a counter-like series, an explicit 0 travels 1 ms earlier in the
 *   same request, so the aggregator counts the first increment in full.
 * - The explicit 0 keeps one timestamp (first sight - 1 ms) until it is acknowledged. A delivery
 *   that reached the aggregator but whose answer was lost is then resent with the same, now
 *   older, 0, which the aggregator skips as out of order; a 0 stamped later would read as a
 *   counter reset and count the whole value a second time.
 * - A counter reset inside the pod (the main process restarted) is folded in here: the value
 *   before the reset is added to a base, so what is delivered never decreases. Otherwise only the
 *   latest value would reach the aggregator, and whatever was counted between the last delivery
 *   and the reset would be lost.
 * - Every delivery of a counter starts with its last acknowledged sample, at its original
 *   timestamp. A vmagent that did not restart skips it as a repeat; one that restarted (and so
 *   lost its state) takes it as the baseline, so what was counted between the last delivery
 *   before the restart and the first after it is counted too (docs/semantics.md, fact h).
 * - New counters get their explicit 0 in a delivery of its own, as soon as they are first seen
 *   (`plan({ zerosOnly: true })`): when the 0 reaches the aggregator an aggregation interval
 *   before the value, a newly born aggregated series starts at 0 and `increase()` counts its
 *   first interval too (docs/semantics.md, "increase() and an output's birth").
 * - After a delivery gap that may have made the aggregator forget the pod's series, a new
 *   *generation* starts: the `pod` value gets a suffix, an explicit 0 goes first, and only what
 *   was counted since the last acknowledged value follows (an offset), so nothing counts twice.
 */
import type { MetricFamily, Sample } from '../shared/exposition/types.ts';
import type { DropReason } from '../shared/final-report-head.ts';
import { EXPORTED_PREFIX } from '../shared/names.ts';
import { sampleKind, type SeriesKind } from './series-kind.ts';

/** The label that tells the aggregator how to aggregate a series (manifests/aggregator). */
export const KIND_LABEL = 'jobmetrics_kind';

export interface StoreOptions {
  readonly namespace: string;
  readonly job: string;
  readonly pod: string;
  /** Most series kept; new series beyond it are dropped and counted. */
  readonly maxSeries: number;
  /**
   * Most characters of metric names and scraped label names and values kept over all series
   * (shared/sidecar-memory.ts): series are few but their labels may be long. Default: no limit.
   */
  readonly maxLabelChars?: number;
}

interface SeriesState {
  readonly name: string;
  /** Output labels except `pod` and `__name__`, sorted by name. */
  readonly labels: ReadonlyArray<readonly [string, string]>;
  readonly kind: SeriesKind;
  /** The latest scraped value. */
  raw: number;
  timestampMs: number;
  /** Counters: the sum of the values before each reset, so `raw + base` never decreases. */
  base: number;
  /** Counters: subtracted from `raw + base` in the current generation. */
  offset: number;
  /** The timestamp of this generation's explicit 0. */
  zeroTimestampMs: number;
  /** The sample last acknowledged in the current generation (the explicit 0 counts). */
  acked: { value: number; timestampMs: number } | undefined;
  /** What the aggregator has of this series in all generations: `offset + acked.value`. */
  ackedTotal: number | undefined;
  /**
   * The highest total sent in a delivery that failed ambiguously (a timeout after sending): it may
   * have been counted. A new generation starts above it, so nothing is ever counted twice; at
   * worst, when that delivery was in fact lost, the increments in it are.
   */
  maybeTotal: number | undefined;
  /** The number of the last scrape that set this series: a second sample in the same scrape is a duplicate. */
  scrape: number;
  /** The labels a delivery carries (`__name__`, `pod` added) for one `pod` value, built once. */
  push: { readonly pod: string; readonly labels: ReadonlyArray<readonly [string, string]> } | undefined;
}

export interface UpdateStats {
  readonly samples: number;
  readonly newSeries: number;
  readonly resets: number;
  /** Samples not stored in this scrape: `_created` timestamps, and every sample of a `DropReason`. */
  readonly dropped: number;
  /** Problems to log: the first sight of each series with each reason, bounded (`PROBLEMS_LOGGED`). */
  readonly problems: readonly SeriesProblem[];
}

/**
 * Why a scraped sample is not stored (docs/semantics.md, "What the sidecar drops"; the list is
 * shared/final-report-head.ts's, as the recorder counts them by reason):
 * - `invalid-value`: a counter that is NaN, ±Inf or negative (it cannot be summed), or a NaN
 *   gauge (NaN is Prometheus' staleness marker, never a value to aggregate);
 * - `duplicate`: the same series (same name and labels in any order) again in one scrape;
 *   Prometheus keeps the first and reports the rest ("duplicate sample for timestamp");
 * - `invalid-labels`: labels no remote-write receiver accepts (a scraped `__name__` label);
 * - `over-limit`: a new series beyond `maxSeries`.
 */
export type { DropReason };

export interface SeriesProblem {
  readonly reason: DropReason;
  /** The series as scraped, `name{label="value",…}`, cut to `SERIES_TEXT_MAX` characters. */
  readonly series: string;
  /** The dropped value as text (JSON has no NaN or Infinity). */
  readonly value: string;
  /** When true, this is the last problem of its reason to be logged: later ones are only counted. */
  readonly last: boolean;
}

/** How many distinct series are logged per drop reason over the sidecar's life; the rest are counted. */
export const PROBLEMS_LOGGED = 20;
const SERIES_TEXT_MAX = 300;

/**
 * A decrease smaller than this fraction of the previous value is float jitter (a client summing
 * the same floats in another order: 0.3, then 0.30000000000000004, then 0.3), not a reset: a
 * restarted process that counted back to within a billionth of the old value between two scrapes
 * is not a case worth a double count of the whole value.
 */
export const RESET_TOLERANCE = 1e-9;

/** One series of one delivery: labels (with `__name__` and `pod`) and its samples. */
export interface PushSeries {
  readonly labels: ReadonlyArray<readonly [string, string]>;
  readonly samples: ReadonlyArray<{ readonly value: number; readonly timestampMs: number }>;
}

export interface PushPlan {
  readonly generation: number;
  readonly series: readonly PushSeries[];
  /** The last sample sent of each series, to be marked as acknowledged once the aggregator says 2xx. */
  readonly sent: ReadonlyArray<SentSample>;
  readonly samples: number;
}

/** One counter's delivery state in a StoreSnapshot. */
export interface SeriesSnapshot {
  readonly name: string;
  /** Output labels except `pod` and `__name__`, sorted by name (the kind label included). */
  readonly labels: ReadonlyArray<readonly [string, string]>;
  readonly raw: number;
  readonly timestampMs: number;
  readonly base: number;
  readonly offset: number;
  readonly zeroTimestampMs: number;
  readonly acked?: { readonly value: number; readonly timestampMs: number };
  readonly ackedTotal?: number;
  readonly maybeTotal?: number;
}

/** What the store keeps across a restart of the sidecar (snapshot(), restore()). */
export interface StoreSnapshot {
  /** The pod it belongs to: a snapshot of another pod is never restored. */
  readonly pod: string;
  readonly generation: number;
  readonly lastAckMs?: number;
  readonly series: readonly SeriesSnapshot[];
}

/** One series' final value (finalValues()). */
export interface FinalValue {
  readonly name: string;
  /** Output labels except `pod` and `__name__`, sorted by name (`namespace`, `job` and the kind included). */
  readonly labels: ReadonlyArray<readonly [string, string]>;
  readonly kind: SeriesKind;
  readonly value: number;
}

interface SentSample {
  readonly key: string;
  readonly value: number;
  readonly timestampMs: number;
}

export class SeriesStore {
  readonly #opts: StoreOptions;
  readonly #series = new Map<string, SeriesState>();
  /** The same states by the scraped name and labels (and kind): the fast path of update(). */
  readonly #byScraped = new Map<string, SeriesState>();
  /** Per position in the last scrape, the series found there and its scraped key. */
  readonly #order: Array<{ readonly scrapedKey: string; readonly state: SeriesState } | undefined> = [];
  #generation = 0;
  #lastAckMs: number | undefined;
  #scrapes = 0;
  #labelChars = 0;
  readonly #dropCounts: Record<DropReason, number> = { 'invalid-value': 0, duplicate: 0, 'invalid-labels': 0, 'over-limit': 0 };
  /** Per reason, the series already logged (at most PROBLEMS_LOGGED each). */
  readonly #reported = new Map<DropReason, Set<string>>();

  constructor(opts: StoreOptions) {
    this.#opts = opts;
  }

  get size(): number {
    return this.#series.size;
  }
  get generation(): number {
    return this.#generation;
  }
  /** Samples dropped for a `DropReason` over the store's life (every scrape counts). */
  get droppedSeries(): number {
    const c = this.#dropCounts;
    return c['invalid-value'] + c.duplicate + c['invalid-labels'] + c['over-limit'];
  }
  /** The same, per reason. */
  get droppedByReason(): Readonly<Record<DropReason, number>> {
    return { ...this.#dropCounts };
  }
  get lastAckMs(): number | undefined {
    return this.#lastAckMs;
  }

  /**
   * Every series' latest value as this pod counted it (final-report.ts): a counter with what it
   * counted before each reset and each earlier run of the main container in the pod (`raw +
   * base`), whatever generation delivered it; a gauge as last scraped. A read-only view: the labels
   * are the store's own arrays, not copies.
   */
  finalValues(): FinalValue[] {
    const out: FinalValue[] = [];
    for (const s of this.#series.values()) {
      out.push({ name: s.name, labels: s.labels, kind: s.kind, value: s.kind === 'counter' ? s.raw + s.base : s.raw });
    }
    return out;
  }

  /** The `pod` label value of a generation: the pod name, then `<pod>/gen<N>`. */
  podLabel(generation = this.#generation): string {
    return generation === 0 ? this.#opts.pod : `${this.#opts.pod}/gen${generation}`;
  }

  /** Records one scrape taken at `nowMs`. */
  update(families: readonly MetricFamily[], nowMs: number): UpdateStats {
    let samples = 0;
    let newSeries = 0;
    let resets = 0;
    let dropped = 0;
    let position = 0;
    const problems: SeriesProblem[] = [];
    const drop = (reason: DropReason, sample: Sample, key: string): void => {
      dropped++;
      this.#dropCounts[reason]++;
      const problem = this.#firstSight(reason, sample, key);
      if (problem !== undefined) problems.push(problem);
    };
    const scrape = ++this.#scrapes;
    let invalidNew: Set<string> | undefined;
    const order = this.#order;
    // A cache of the scraped spellings of each series: a target that writes its labels in a new
    // order every scrape must not grow it without bound.
    if (this.#byScraped.size > 2 * this.#opts.maxSeries + 1_000) this.#byScraped.clear();
    for (const family of families) {
      for (const sample of family.samples) {
        const at = position++;
        const sampled = sampleKind(family, sample);
        if (sampled === 'drop') {
          dropped++;
          continue;
        }
        const value = sample.value;
        // A target writes its series in the same order every time: the series at this position
        // in the last scrape is almost always this one, checked without building anything (this
        // runs for every sample of every scrape: the sidecar's CPU target in docs/benchmarks.md).
        const last = order[at];
        let state = last !== undefined && matchesKey(last.scrapedKey, '', sample.name, sample.labels) ? last.state : undefined;
        if (state === undefined) {
          const found = this.#find(sample);
          if ('problem' in found) {
            drop(found.problem, sample, found.scrapedKey);
            continue;
          }
          state = found.state;
          if (state === undefined) {
            // A series first seen with a value it cannot take is still the series of this scrape:
            // a later sample of it is a duplicate (Prometheus keeps the first), not its value.
            if (invalidNew?.has(found.key)) {
              drop('duplicate', sample, found.scrapedKey);
              continue;
            }
            if (!validValue(sampled, value)) {
              (invalidNew ??= new Set()).add(found.key);
              drop('invalid-value', sample, found.scrapedKey);
              continue;
            }
            if (this.#series.size >= this.#opts.maxSeries || this.#labelChars + labelChars(sample.name, found.labels) > (this.#opts.maxLabelChars ?? Infinity)) {
              drop('over-limit', sample, found.scrapedKey);
              continue;
            }
            state = this.#add(found, sample.name, sampled, value, nowMs);
            newSeries++;
          }
          order[at] = { scrapedKey: found.scrapedKey, state };
        }
        if (state.scrape === scrape) {
          drop('duplicate', sample, order[at]?.scrapedKey ?? '');
          continue;
        }
        state.scrape = scrape;
        if (!validValue(state.kind, value)) {
          drop('invalid-value', sample, order[at]?.scrapedKey ?? '');
          continue;
        }
        if (state.kind === 'counter' && value < state.raw) {
          if (state.raw - value > state.raw * RESET_TOLERANCE) {
            // The main process restarted its counter: keep what it had counted before.
            state.base += state.raw;
            resets++;
          } else {
            // Float jitter: what is delivered must never decrease, so the higher value stays.
            state.timestampMs = nowMs;
            samples++;
            continue;
          }
        }
        state.raw = value;
        state.timestampMs = nowMs;
        samples++;
      }
    }
    order.length = Math.min(order.length, position);
    return { samples, newSeries, resets, dropped, problems };
  }

  /**
   * Starts a new generation: every counter gets a new `pod` value, an explicit 0, and from then on
   * only what it counted after its last acknowledged value.
   */
  startGeneration(): void {
    this.#generation++;
    for (const s of this.#series.values()) {
      s.acked = undefined;
      s.zeroTimestampMs = s.timestampMs - 1;
      if (s.kind === 'counter') s.offset = Math.max(s.ackedTotal ?? 0, s.maybeTotal ?? 0);
    }
  }

  /** True when the last acknowledgement is so old that the aggregator may have forgotten us. */
  gapExceeded(nowMs: number, stalenessMs: number): boolean {
    // Half the staleness interval leaves room for clock and flush jitter; a new generation is
    // always safe (never double counts), only a little more churn for the aggregator.
    return this.#lastAckMs !== undefined && nowMs - this.#lastAckMs >= stalenessMs / 2;
  }

  /** Whether some counter still waits for its explicit 0 to be acknowledged. */
  get hasUnstartedCounters(): boolean {
    for (const s of this.#series.values()) if (s.kind === 'counter' && s.acked === undefined) return true;
    return false;
  }

  /**
   * What to deliver now: every series' latest value, each counter preceded by its last
   * acknowledged sample or, before the first acknowledgement, by its explicit 0. With
   * `zerosOnly`, just the explicit zeros of counters not yet started.
   */
  plan(options: { zerosOnly?: boolean } = {}): PushPlan {
    const pod = this.podLabel();
    const series: PushSeries[] = [];
    const sent: SentSample[] = [];
    let samples = 0;
    for (const [key, s] of this.#series) {
      const points: Array<{ value: number; timestampMs: number }> = [];
      if (s.kind === 'counter') {
        const first = s.acked ?? { value: 0, timestampMs: s.zeroTimestampMs };
        points.push(first);
        if (options.zerosOnly) {
          if (s.acked !== undefined) continue;
        } else {
          const value = s.raw + s.base - s.offset;
          if (s.timestampMs > first.timestampMs) points.push({ value, timestampMs: s.timestampMs });
          else points[0] = { value, timestampMs: first.timestampMs };
        }
      } else {
        if (options.zerosOnly) continue;
        points.push({ value: s.raw, timestampMs: s.timestampMs });
      }
      const last = points[points.length - 1] as { value: number; timestampMs: number };
      // The same labels array every push (until the generation changes `pod`): remote-write.ts
      // encodes each labels array once.
      if (s.push?.pod !== pod) s.push = { pod, labels: withPodAndName(s.name, s.labels, pod) };
      series.push({ labels: s.push.labels, samples: points });
      sent.push({ key, value: last.value, timestampMs: last.timestampMs });
      samples += points.length;
    }
    return { generation: this.#generation, series, sent, samples };
  }

  /** A delivery of `plan` failed, but may have been counted (see `maybeTotal`). */
  mayHaveArrived(plan: PushPlan): void {
    if (plan.generation !== this.#generation) return;
    for (const { key, value } of plan.sent) {
      const s = this.#series.get(key);
      if (s === undefined || s.kind !== 'counter') continue;
      s.maybeTotal = Math.max(s.maybeTotal ?? 0, s.offset + value);
    }
  }

  /** The aggregator acknowledged `plan` (2xx). */
  acknowledge(plan: PushPlan, nowMs: number): void {
    this.#lastAckMs = nowMs;
    if (plan.generation !== this.#generation) return;
    for (const { key, value, timestampMs } of plan.sent) {
      const s = this.#series.get(key);
      if (s === undefined || s.kind !== 'counter') continue;
      // A later acknowledgement of an older plan (never the case with one delivery at a time)
      // must not move the baseline back.
      if (s.acked !== undefined && s.acked.timestampMs > timestampMs) continue;
      s.acked = { value, timestampMs };
      s.ackedTotal = s.offset + value;
    }
  }

  /**
   * Drops the series of `plan.series[index]`, which the encoder could not encode (never the case
   * for labels `#outputLabels` checked; a safety net so one series never costs the others their
   * delivery). Counted as `invalid-labels`; returns the problem to log the first time.
   */
  discard(plan: PushPlan, index: number): SeriesProblem | undefined {
    const sent = plan.sent[index];
    const series = plan.series[index];
    if (sent === undefined || series === undefined) return undefined;
    const state = this.#series.get(sent.key);
    if (state === undefined) return undefined;
    this.#series.delete(sent.key);
    this.#labelChars -= labelChars(state.name, state.labels);
    for (const [k, s] of this.#byScraped) if (s === state) this.#byScraped.delete(k);
    for (let i = 0; i < this.#order.length; i++) if (this.#order[i]?.state === state) this.#order[i] = undefined;
    this.#dropCounts['invalid-labels']++;
    const name = series.labels.find(([n]) => n === '__name__')?.[1] ?? '';
    const labels = series.labels.filter(([n]) => n !== '__name__');
    return this.#firstSight('invalid-labels', { name, labels, value: sent.value }, sent.key);
  }

  /**
   * The main container was restarted (it exited and a new one started in the same pod): every
   * counter of the new process starts from 0, so what the old one had counted goes into the base
   * now. Waiting for the new process's values to fall below the old ones would miss a counter the
   * new process has already counted past the old value by its first scrape.
   */
  mainRestarted(): void {
    for (const s of this.#series.values()) {
      if (s.kind !== 'counter') continue;
      s.base += s.raw;
      s.raw = 0;
    }
  }

  /**
   * What a restarted sidecar needs to go on exactly under the same `pod` label (state.ts keeps
   * it): the generation, and per counter its latest value, base, offset, explicit 0 and what was
   * acknowledged or may have arrived. Gauges carry no delivery state: their latest value is sent
   * again as it is scraped.
   */
  snapshot(): StoreSnapshot {
    const series: SeriesSnapshot[] = [];
    for (const s of this.#series.values()) {
      if (s.kind !== 'counter') continue;
      series.push({
        name: s.name,
        labels: s.labels,
        raw: s.raw,
        timestampMs: s.timestampMs,
        base: s.base,
        offset: s.offset,
        zeroTimestampMs: s.zeroTimestampMs,
        ...(s.acked !== undefined && { acked: s.acked }),
        ...(s.ackedTotal !== undefined && { ackedTotal: s.ackedTotal }),
        ...(s.maybeTotal !== undefined && { maybeTotal: s.maybeTotal }),
      });
    }
    return { pod: this.#opts.pod, generation: this.#generation, ...(this.#lastAckMs !== undefined && { lastAckMs: this.#lastAckMs }), series };
  }

  /**
   * Goes on from `snap` (taken by a sidecar of the same pod before it was restarted). Call before
   * the first update(): the next scrape finds these series by their labels; a value below the
   * kept one is a counter reset while no sidecar watched, and folds in as any reset does.
   */
  restore(snap: StoreSnapshot): void {
    this.#generation = snap.generation;
    this.#lastAckMs = snap.lastAckMs;
    for (const r of snap.series) {
      // The labels the sidecar sets come from its settings (the Downward API and the webhook),
      // never from the file: anyone who can write the state directory must not be able to move
      // series to another namespace or job. The file's own are dropped and the settings' put in;
      // `pod` is set at delivery from the settings alone, so a `pod` or `__name__` in the file,
      // which no snapshot writes, goes too (a receiver would refuse it twice).
      const scraped = r.labels.filter(([n]) => n !== 'namespace' && n !== 'job' && n !== 'pod' && n !== '__name__' && n !== KIND_LABEL);
      // The store's key is the scraped identity: the output labels without the ones it adds.
      const key = seriesKey('', r.name, scraped);
      if (this.#series.size >= this.#opts.maxSeries && !this.#series.has(key)) break;
      const labels: Array<readonly [string, string]> = [...scraped, ['namespace', this.#opts.namespace], ['job', this.#opts.job], [KIND_LABEL, 'counter']];
      labels.sort(byName);
      this.#series.set(key, {
        name: r.name,
        labels,
        kind: 'counter',
        raw: r.raw,
        timestampMs: r.timestampMs,
        base: r.base,
        offset: r.offset,
        zeroTimestampMs: r.zeroTimestampMs,
        acked: r.acked === undefined ? undefined : { value: r.acked.value, timestampMs: r.acked.timestampMs },
        ackedTotal: r.ackedTotal,
        maybeTotal: r.maybeTotal,
        scrape: 0,
        push: undefined,
      });
      this.#labelChars += labelChars(r.name, labels);
    }
  }

  /**
   * The series of a scraped sample, found by its scraped key, so that the output labels (renamed,
   * extended, sorted) are built once per series, not once per scrape; else by its output labels
   * (the same series written another way, labels in another order); else `state` is undefined
   * and `#add` makes it. Identity is the name and the labels as a set: neither their order nor
   * the family's type (a family typed twice) makes another series, as in Prometheus.
   */
  #find(sample: Sample): { scrapedKey: string; key: string; labels: Array<readonly [string, string]>; state: SeriesState | undefined } | { scrapedKey: string; problem: DropReason } {
    const scrapedKey = seriesKey('', sample.name, sample.labels);
    const known = this.#byScraped.get(scrapedKey);
    if (known !== undefined) return { scrapedKey, key: '', labels: [], state: known };
    const labels = this.#outputLabels(sample.labels);
    if (labels === undefined) return { scrapedKey, problem: 'invalid-labels' };
    const key = seriesKey('', sample.name, labels);
    const state = this.#series.get(key);
    if (state !== undefined) this.#byScraped.set(scrapedKey, state);
    return { scrapedKey, key, labels, state };
  }

  #add(found: { scrapedKey: string; key: string; labels: Array<readonly [string, string]> }, name: string, kind: SeriesKind, value: number, nowMs: number): SeriesState {
    const labels = found.labels;
    labels.push(['namespace', this.#opts.namespace], ['job', this.#opts.job], [KIND_LABEL, kind]);
    labels.sort(byName);
    this.#labelChars += labelChars(name, labels);
    const state: SeriesState = {
      name: own(name),
      labels,
      kind,
      raw: value,
      timestampMs: nowMs,
      base: 0,
      offset: 0,
      zeroTimestampMs: nowMs - 1,
      acked: undefined,
      ackedTotal: undefined,
      maybeTotal: undefined,
      scrape: 0,
      push: undefined,
    };
    this.#series.set(found.key, state);
    this.#byScraped.set(found.scrapedKey, state);
    return state;
  }

  /**
   * The scraped labels as delivered, sorted by name, without the ones the sidecar adds
   * (`namespace`, `job`, `pod`, the kind), or undefined when no receiver would accept them.
   * As Prometheus does with `honor_labels: false` (scrape.go, resolveConflictingExposedLabels):
   * a scraped label named like one the sidecar sets is kept as `exported_<name>`, with
   * `exported_` prefixed again until the name is free (`pod` and `exported_pod` both scraped:
   * `exported_pod` stays, `pod` becomes `exported_exported_pod`), shorter names first. An empty
   * value is no label at all (Prometheus' data model), so `{a=""}` and `{}` are one series.
   */
  #outputLabels(scraped: ReadonlyArray<readonly [string, string]>): Array<readonly [string, string]> | undefined {
    const out: Array<readonly [string, string]> = [];
    let clashes: Array<readonly [string, string]> | undefined;
    for (const label of scraped) {
      const [name, value] = label;
      if (value === '') continue;
      if (name === 'namespace' || name === 'job' || name === 'pod' || name === KIND_LABEL) (clashes ??= []).push(label);
      else out.push([own(name), own(value)]);
    }
    if (clashes !== undefined) {
      const taken = new Set(out.map(([n]) => n));
      clashes.sort((a, b) => a[0].length - b[0].length);
      for (const [name, value] of clashes) {
        let renamed = name;
        do renamed = EXPORTED_PREFIX + renamed;
        while (taken.has(renamed));
        taken.add(renamed);
        out.push([renamed, own(value)]);
      }
    }
    out.sort(byName);
    for (let i = 0; i < out.length; i++) {
      const n = out[i]![0];
      // `__name__` and `pod` are set at delivery; any name twice is refused by receivers.
      if (n === '__name__' || n === 'pod' || (i > 0 && n === out[i - 1]![0])) return undefined;
    }
    return out;
  }

  /** The problem to log for this drop, the first time this series is seen with this reason. */
  #firstSight(reason: DropReason, sample: Sample, scrapedKey: string): SeriesProblem | undefined {
    let seen = this.#reported.get(reason);
    if (seen === undefined) this.#reported.set(reason, (seen = new Set()));
    if (seen.size >= PROBLEMS_LOGGED || seen.has(scrapedKey)) return undefined;
    seen.add(scrapedKey);
    return { reason, series: seriesText(sample), value: String(sample.value), last: seen.size === PROBLEMS_LOGGED };
  }
}

/** The fields of the log line for a dropped series. */
export function describeProblem(p: SeriesProblem): Record<string, unknown> {
  const why: Record<DropReason, string> = {
    'invalid-value': 'a counter must be finite and non-negative, and NaN is no value to aggregate',
    duplicate: 'the same series (same name and labels, in any order) again in one scrape: the first is kept, as Prometheus does',
    'invalid-labels': 'labels no remote-write receiver accepts (a scraped __name__ label)',
    'over-limit': 'the series limit is reached',
  };
  return {
    reason: p.reason,
    why: why[p.reason],
    series: p.series,
    value: p.value,
    ...(p.last ? { more: `no further series are logged for ${p.reason}; every drop is counted in the summary` } : {}),
  };
}

const byName = (a: readonly [string, string], b: readonly [string, string]): number => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0);

/** The characters a series' name and labels hold. */
function labelChars(name: string, labels: ReadonlyArray<readonly [string, string]>): number {
  let n = name.length;
  for (const [k, v] of labels) n += k.length + v.length;
  return n;
}

/** Whether a value can be delivered: counters finite and non-negative, gauges anything but NaN. */
function validValue(kind: SeriesKind, value: number): boolean {
  return kind === 'counter' ? value >= 0 && value < Infinity : !Number.isNaN(value);
}

/** `name{label="value",…}` for a log line, bounded. */
function seriesText(sample: Sample): string {
  let text = sample.name + '{' + sample.labels.map(([n, v]) => `${n}=${JSON.stringify(v)}`).join(',') + '}';
  if (text.length > SERIES_TEXT_MAX) text = text.slice(0, SERIES_TEXT_MAX - 1) + '…';
  return text;
}

/**
 * A series' identity as one string: `head` (the kind, for scraped keys), the name, and every
 * label. Label values may hold any character, NUL included, so each is preceded by its length:
 * no two label sets share a key.
 */
function seriesKey(head: string, name: string, labels: ReadonlyArray<readonly [string, string]>): string {
  // Joined rather than concatenated: a key built with `+` stays a tree of partial strings in V8
  // (~20 per key), and the store keeps two keys per series.
  const parts: Array<string | number> = [head, name];
  for (let i = 0; i < labels.length; i++) {
    const [n, v] = labels[i]!;
    parts.push(n, v.length, v);
  }
  return parts.join('\u0000');
}

/** `key === seriesKey(head, name, labels)`, without building the right side. */
export function matchesKey(key: string, head: string, name: string, labels: ReadonlyArray<readonly [string, string]>): boolean {
  if (!key.startsWith(head)) return false;
  let p = head.length;
  if (key.charCodeAt(p++) !== 0 || !key.startsWith(name, p)) return false;
  p += name.length;
  for (let i = 0; i < labels.length; i++) {
    const [n, v] = labels[i]!;
    if (key.charCodeAt(p++) !== 0 || !key.startsWith(n, p)) return false;
    p += n.length;
    if (key.charCodeAt(p++) !== 0) return false;
    let length = 0;
    for (let c = key.charCodeAt(p); c >= 48 && c <= 57; c = key.charCodeAt(++p)) length = length * 10 + (c - 48);
    if (length !== v.length || key.charCodeAt(p++) !== 0 || !key.startsWith(v, p)) return false;
    p += v.length;
  }
  return p === key.length;
}

/**
 * A copy of `s` that does not keep the scraped body alive. The parser's names and values are
 * slices of the body (V8 shares the body's memory for slices of 13 characters or more); the store
 * keeps them for the pod's life, and each would otherwise hold on to a whole body.
 */
function own(s: string): string {
  // Concatenation then slice flattens into a new string of its own (a V8 detail: a slice of a
  // concatenation copies; the test "does not keep scraped bodies alive" measures it).
  return s.length < 13 ? s : (' ' + s).slice(1);
}

function withPodAndName(
  name: string,
  labels: ReadonlyArray<readonly [string, string]>,
  pod: string,
): Array<readonly [string, string]> {
  // Remote write requires labels sorted by name; `__name__` sorts first, `pod` is spliced in place.
  const out: Array<readonly [string, string]> = [['__name__', name]];
  let placed = false;
  for (const l of labels) {
    if (!placed && l[0] > 'pod') {
      out.push(['pod', pod]);
      placed = true;
    }
    out.push(l);
  }
  if (!placed) out.push(['pod', pod]);
  return out;
}
