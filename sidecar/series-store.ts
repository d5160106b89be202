/**
 * The sidecar's memory: the latest value of every scraped series, and what has been delivered.
 * Pure state transitions, no I/O (DESIGN.md "Data semantics"):
 *
 * - Every series carries `namespace`, `job` and `pod`; a scraped label of the same name is kept
 *   as `exported_<name>`, as Prometheus does with `honor_labels: false`.
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
 * - After a delivery gap that may have made the aggregator forget the pod's series, a new
 *   *generation* starts: the `pod` value gets a suffix, an explicit 0 goes first, and only what
 *   was counted since the last acknowledged value follows (an offset), so nothing counts twice.
 */
import type { MetricFamily } from '../shared/exposition/types.ts';
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
  /** Whether a value of this series was acknowledged in the current generation. */
  started: boolean;
  /** `raw + base` as last acknowledged by the aggregator, in any generation. */
  ackedTotal: number | undefined;
}

export interface UpdateStats {
  readonly samples: number;
  readonly newSeries: number;
  readonly resets: number;
  readonly dropped: number;
}

/** One series of one delivery: labels (with `__name__` and `pod`) and its samples. */
export interface PushSeries {
  readonly labels: ReadonlyArray<readonly [string, string]>;
  readonly samples: ReadonlyArray<{ readonly value: number; readonly timestampMs: number }>;
}

export interface PushPlan {
  readonly generation: number;
  readonly series: readonly PushSeries[];
  /** What was sent (`raw + base`), to be marked as acknowledged once the aggregator says 2xx. */
  readonly sent: ReadonlyArray<readonly [key: string, total: number]>;
  readonly samples: number;
}

export class SeriesStore {
  readonly #opts: StoreOptions;
  readonly #series = new Map<string, SeriesState>();
  #generation = 0;
  #lastAckMs: number | undefined;
  #droppedTotal = 0;

  constructor(opts: StoreOptions) {
    this.#opts = opts;
  }

  get size(): number {
    return this.#series.size;
  }
  get generation(): number {
    return this.#generation;
  }
  get droppedSeries(): number {
    return this.#droppedTotal;
  }
  get lastAckMs(): number | undefined {
    return this.#lastAckMs;
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
    for (const family of families) {
      for (const sample of family.samples) {
        const kind = sampleKind(family, sample);
        const value = sample.value;
        // Counters must be finite and non-negative to be summed; NaN is also Prometheus' staleness
        // marker, never a value to aggregate.
        if (kind === 'drop' || Number.isNaN(value) || (kind === 'counter' && !(value >= 0 && value < Infinity))) {
          dropped++;
          continue;
        }
        const labels = this.#outputLabels(sample.labels, kind);
        const key = seriesKey(sample.name, labels);
        let state = this.#series.get(key);
        if (state === undefined) {
          if (this.#series.size >= this.#opts.maxSeries) {
            dropped++;
            this.#droppedTotal++;
            continue;
          }
          state = {
            name: sample.name,
            labels,
            kind,
            raw: value,
            timestampMs: nowMs,
            base: 0,
            offset: 0,
            zeroTimestampMs: nowMs - 1,
            started: false,
            ackedTotal: undefined,
          };
          this.#series.set(key, state);
          newSeries++;
        } else {
          if (state.kind === 'counter' && value < state.raw) {
            // The main process restarted its counter: keep what it had counted before.
            state.base += state.raw;
            resets++;
          }
          state.raw = value;
          state.timestampMs = nowMs;
        }
        samples++;
      }
    }
    return { samples, newSeries, resets, dropped };
  }

  /**
   * Starts a new generation: every counter gets a new `pod` value, an explicit 0, and from then on
   * only what it counted after its last acknowledged value.
   */
  startGeneration(): void {
    this.#generation++;
    for (const s of this.#series.values()) {
      s.started = false;
      s.zeroTimestampMs = s.timestampMs - 1;
      if (s.kind === 'counter') s.offset = s.ackedTotal ?? 0;
    }
  }

  /** True when the last acknowledgement is so old that the aggregator may have forgotten us. */
  gapExceeded(nowMs: number, stalenessMs: number): boolean {
    // Half the staleness interval leaves room for clock and flush jitter; a new generation is
    // always safe (never double counts), only a little more churn for the aggregator.
    return this.#lastAckMs !== undefined && nowMs - this.#lastAckMs >= stalenessMs / 2;
  }

  /** Everything there is to deliver now: every series' latest value, explicit zeros first. */
  plan(): PushPlan {
    const pod = this.podLabel();
    const series: PushSeries[] = [];
    const sent: Array<readonly [string, number]> = [];
    let samples = 0;
    for (const [key, s] of this.#series) {
      const total = s.kind === 'counter' ? s.raw + s.base : s.raw;
      const value = s.kind === 'counter' ? total - s.offset : s.raw;
      const labels = withPodAndName(s.name, s.labels, pod);
      const points =
        s.kind === 'counter' && !s.started
          ? [
              { value: 0, timestampMs: s.zeroTimestampMs },
              { value, timestampMs: Math.max(s.timestampMs, s.zeroTimestampMs + 1) },
            ]
          : [{ value, timestampMs: s.timestampMs }];
      series.push({ labels, samples: points });
      sent.push([key, total]);
      samples += points.length;
    }
    return { generation: this.#generation, series, sent, samples };
  }

  /** The aggregator acknowledged `plan` (2xx). */
  acknowledge(plan: PushPlan, nowMs: number): void {
    this.#lastAckMs = nowMs;
    for (const [key, total] of plan.sent) {
      const s = this.#series.get(key);
      if (s === undefined) continue;
      s.ackedTotal = total;
      if (plan.generation === this.#generation) s.started = true;
    }
  }

  #outputLabels(scraped: ReadonlyArray<readonly [string, string]>, kind: SeriesKind): Array<readonly [string, string]> {
    const out: Array<readonly [string, string]> = [];
    for (const [name, value] of scraped) {
      if (name === 'namespace' || name === 'job' || name === 'pod' || name === KIND_LABEL) {
        out.push([EXPORTED_PREFIX + name, value]);
      } else {
        out.push([name, value]);
      }
    }
    out.push(['namespace', this.#opts.namespace], ['job', this.#opts.job], [KIND_LABEL, kind]);
    out.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
    return out;
  }
}

function seriesKey(name: string, labels: ReadonlyArray<readonly [string, string]>): string {
  let key = name;
  for (const [n, v] of labels) key += '\u0000' + n + '\u0001' + v;
  return key;
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
