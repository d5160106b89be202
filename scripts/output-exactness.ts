/**
 * What the store holds against what the pods counted (pure). An aggregated counter's history in the
 * store is counted as a counter-reset-aware consumer counts it, without Prometheus' extrapolation:
 * its first value in full (the output's birth), every rise, and after a drop — an aggregator that
 * restarted and began again from 0 — the new value in full (docs/semantics.md, facts e and h).
 * With HA, each output series is written once per aggregator replica, told apart by the replica
 * label; each replica's count is never above the truth (a restart only loses), so the count of a
 * series is the highest of its replicas' (`max without (<replica label>)` in PromQL).
 */
import { seriesKey } from '../shared/series-key.ts';

/** A reset-aware total of a counter's successive values, its birth counted in full. */
export function countedTotal(values: readonly number[]): number {
  let sum = 0;
  let prev = 0;
  for (const cur of values) {
    sum += cur >= prev ? cur - prev : cur;
    prev = cur;
  }
  return sum;
}

export interface StoredSeries {
  readonly metric: Readonly<Record<string, string>>;
  readonly samples: ReadonlyArray<readonly [timestampMs: number, value: number]>;
}

export interface Counted {
  /** Output series key → the highest count of its replicas. */
  readonly counted: Map<string, number>;
  /** Output series key → how many replicas wrote it. */
  readonly replicas: Map<string, number>;
}

/** Counts every stored series; series that differ only in `replicaLabel` are one output series. */
export function countStored(series: readonly StoredSeries[], replicaLabel?: string): Counted {
  const counted = new Map<string, number>();
  const replicas = new Map<string, number>();
  for (const s of series) {
    const labels = Object.entries(s.metric).filter(([n]) => n !== replicaLabel);
    const key = seriesKey(labels);
    const c = countedTotal(s.samples.map(([, v]) => v));
    counted.set(key, Math.max(counted.get(key) ?? -Infinity, c));
    replicas.set(key, (replicas.get(key) ?? 0) + 1);
  }
  return { counted, replicas };
}

export interface Exactness {
  readonly seriesExpected: number;
  /** Σ (truth − floor): what the pods counted but never had acknowledged (final flushes past their deadline). */
  readonly undelivered: number;
  readonly seriesExact: number;
  /** Expected but absent from the store. */
  readonly seriesMissing: number;
  /** In the store but never counted by any pod. */
  readonly seriesUnexpected: number;
  readonly expectedTotal: number;
  readonly countedTotal: number;
  /** Σ over series of (floor − counted) where counted is below the floor: lost by the aggregator tier. */
  readonly lost: number;
  /** Σ over series of (counted − truth) where counted is above the truth: counted twice. */
  readonly double: number;
  /** Up to 5 series that differ, for the report: key, truth, counted. */
  readonly examples: ReadonlyArray<readonly [string, number, number]>;
}

/**
 * Compares the counted totals with what the pods counted (`truth`). `floor` (default `truth`) is
 * what the aggregator tier was given for sure: the acknowledged values; between it and the truth
 * lie deliveries that failed and may or may not have been counted. A series is exact when its
 * count lies in [floor, truth].
 */
export function compareWithTruth(truth: ReadonlyMap<string, number>, counted: ReadonlyMap<string, number>, floor: ReadonlyMap<string, number> = truth): Exactness {
  let seriesExact = 0;
  let seriesMissing = 0;
  let lost = 0;
  let double = 0;
  let expectedTotal = 0;
  let total = 0;
  let undelivered = 0;
  const examples: Array<readonly [string, number, number]> = [];
  for (const [key, want] of truth) {
    const low = floor.get(key) ?? 0;
    expectedTotal += want;
    undelivered += want - low;
    const got = counted.get(key);
    if (got === undefined) {
      seriesMissing++;
      lost += low;
      if (low !== 0 && examples.length < 5) examples.push([key, want, NaN]);
      continue;
    }
    total += got;
    if (got >= low && got <= want) seriesExact++;
    else if (examples.length < 5) examples.push([key, want, got]);
    if (got < low) lost += low - got;
    if (got > want) double += got - want;
  }
  let seriesUnexpected = 0;
  for (const [key, got] of counted) {
    if (truth.has(key)) continue;
    seriesUnexpected++;
    double += got;
    total += got;
  }
  return { seriesExpected: truth.size, undelivered, seriesExact, seriesMissing, seriesUnexpected, expectedTotal, countedTotal: total, lost, double, examples };
}

/** Adds `b` into `a` (the ground truth of many pods). */
export function addInto(a: Map<string, number>, b: ReadonlyMap<string, number>): void {
  for (const [k, v] of b) a.set(k, (a.get(k) ?? 0) + v);
}
