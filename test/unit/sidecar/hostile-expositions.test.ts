/**
 * A property over generated hostile expositions, through the sidecar's own path (parse with the
 * sidecar's limits, SeriesStore.update, plan, encodeWriteRequest, acknowledge): duplicates (the
 * same labels again, in another order), labels that clash with the sidecar's (pod and
 * exported_pod, job, namespace, jobmetrics_kind, a scraped __name__), label order shuffled every
 * scrape, series order shuffled, a family typed twice, special values (NaN, ±Inf, negative),
 * float increments, counter resets (the main process restarted), float jitter (a value a
 * billionth lower, as a client summing floats in another order exposes it), over-limit series and
 * huge label values. After every scrape it checks every delivered counter against a model of what
 * the sidecar promises: the exposed valid values with every reset folded in (README.md
 * "Restarts"), jitter ignored — never more (no double count) and never less (nothing lost) — and
 * that a delivered value never decreases. The run counts the resets, jitters and over-limit drops
 * it generated and fails when it covered too few of any.
 */
import { expect } from 'chai';
import fc from 'fast-check';
import { decodeWriteRequest } from '../../support/write-request.ts';
import { parse } from '../../../shared/exposition/parse.ts';
import { SIDECAR_MEMORY } from '../../../shared/sidecar-memory.ts';
import { encodeWriteRequest } from '../../../shared/remote-write.ts';
import { KIND_LABEL, RESET_TOLERANCE, SeriesStore } from '../../../sidecar/series-store.ts';
import { uncompressSync } from 'snappy';

const LABEL_NAMES = ['pod', 'exported_pod', 'job', 'exported_job', 'namespace', 'exported_namespace', KIND_LABEL, '__name__', 'path', 'le'] as const;
const LABEL_VALUES = ['', 'a', 'x y', 'é', 'quote"back\\slash', 'line\nfeed', '0'.repeat(4_000)];
const NAMES = ['req_total', 'bytes_total', 'lat_bucket', 'temp'] as const;
const SPECIAL = [NaN, Infinity, -Infinity, -1] as const;

interface BaseSeries {
  readonly name: (typeof NAMES)[number];
  /** Its own labels; `id` is added to tell the series apart in the result (never renamed). */
  readonly labels: ReadonlyArray<readonly [string, string]>;
}

/** What happens to a series' counter between two scrapes. */
type Change = 'count' | 'reset' | 'jitter';

interface ScrapePlan {
  /**
   * Per base series: `count` adds the increment (≥ 0); `reset` restarts the counter at 0;
   * `jitter` exposes the unchanged counter a tenth of a billionth lower. `special`: the index of a
   * special value exposed instead.
   */
  readonly steps: ReadonlyArray<{ readonly change: Change; readonly increment: number; readonly special: number | undefined }>;
  /** A permutation seed for the series order, and one per line for its label order. */
  readonly order: number;
  /** Duplicate lines (base series index, value) written after all originals. */
  readonly duplicates: ReadonlyArray<readonly [number, number]>;
  /** Whether a second TYPE line (gauge) for `req` comes before the duplicates. */
  readonly typedTwice: boolean;
}

const escape = (v: string): string => v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
const formatValue = (v: number): string => (Number.isNaN(v) ? 'NaN' : v === Infinity ? '+Inf' : v === -Infinity ? '-Inf' : String(v));

/** A deterministic shuffle (the seed comes from fast-check, so a failure replays). */
function shuffled<T>(items: readonly T[], seed: number): T[] {
  const out = [...items];
  let s = seed >>> 0 || 1;
  for (let i = out.length - 1; i > 0; i--) {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0;
    const j = s % (i + 1);
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}

function line(s: BaseSeries, id: number, value: number, seed: number): string {
  const labels = shuffled([...s.labels, ['id', String(id)] as const], seed);
  return `${s.name}{${labels.map(([n, v]) => `${n}="${escape(v)}"`).join(',')}} ${formatValue(value)}`;
}

const baseSeries: fc.Arbitrary<BaseSeries> = fc.record({
  name: fc.constantFrom(...NAMES),
  labels: fc.uniqueArray(fc.tuple(fc.constantFrom(...LABEL_NAMES), fc.constantFrom(...LABEL_VALUES)), { selector: ([n]) => n, maxLength: 5 }),
});

const scrapePlan = (series: number): fc.Arbitrary<ScrapePlan> =>
  fc.record({
    steps: fc.array(
      fc.record({
        // Unbiased: fast-check's bias towards small values would make nearly every change a count.
        change: fc.noBias(fc.nat({ max: 4 })).map((n): Change => (n < 3 ? 'count' : n === 3 ? 'reset' : 'jitter')),
        increment: fc.noBias(fc.oneof(fc.constant(0), fc.constant(0.1), fc.constant(0.2), fc.constant(1), fc.double({ min: 1, max: 1e6, noNaN: true }))),
        // One step in six exposes a special value instead (fc.option's `freq` is the odds of nil,
        // which made five in six special, so a counter rarely had two valid values in a row).
        special: fc.tuple(fc.noBias(fc.nat({ max: 5 })), fc.nat({ max: SPECIAL.length - 1 })).map(([roll, which]) => (roll === 0 ? which : undefined)),
      }),
      { minLength: series, maxLength: series },
    ),
    order: fc.nat(),
    duplicates: fc.array(fc.tuple(fc.nat({ max: series - 1 }), fc.oneof(fc.double({ noNaN: false }), fc.constantFrom(...SPECIAL))), { maxLength: 4 }),
    typedTwice: fc.boolean(),
  });

const scenario = fc
  .array(baseSeries, { minLength: 2, maxLength: 8 })
  .chain((series) =>
    fc.tuple(
      fc.constant(series),
      fc.array(scrapePlan(series.length), { minLength: 4, maxLength: 8 }),
      fc.boolean(),
      // The series limit: usually the sidecar's own, sometimes fewer than the target exposes.
      fc.oneof({ weight: 2, arbitrary: fc.constant(SIDECAR_MEMORY.maxSeries) }, { weight: 1, arbitrary: fc.integer({ min: 1, max: 4 }) }),
    ),
  );

/** What the sidecar promises to deliver for one counter: its valid values, resets folded in, jitter ignored. */
class CounterModel {
  raw: number | undefined;
  base = 0;
  /** Takes a value the target exposed in a scrape the sidecar read; says what happened. */
  see(value: number): 'first' | 'count' | 'reset' | 'jitter' | 'invalid' {
    if (!Number.isFinite(value) || value < 0) return 'invalid';
    if (this.raw === undefined) {
      this.raw = value;
      return 'first';
    }
    if (value < this.raw) {
      if (this.raw - value <= this.raw * RESET_TOLERANCE) return 'jitter';
      this.base += this.raw;
      this.raw = value;
      return 'reset';
    }
    this.raw = value;
    return 'count';
  }
  get total(): number {
    return (this.raw ?? 0) + this.base;
  }
}

describe('sidecar store and encoder over hostile expositions (fast-check, seeded)', () => {
  it('never throws; after every scrape each delivered counter is exactly its valid exposed values with resets folded in and jitter ignored, and never decreases', () => {
    const covered = { resets: 0, jitters: 0, overLimit: 0, runs: 0 };
    fc.assert(
      fc.property(scenario, ([series, scrapes, openMetrics, maxSeries]) => {
        covered.runs++;
        const store = new SeriesStore({ namespace: 'ns', job: 'job', pod: 'pod-1', maxSeries, maxLabelChars: SIDECAR_MEMORY.maxLabelChars });
        const cumulative = series.map(() => 0);
        const models = series.map(() => new CounterModel());
        /** Per id: the last value delivered, to check it never decreases. */
        const lastDelivered = new Map<string, number>();
        let sawReset = false;
        let sawJitter = false;
        scrapes.forEach((plan, scrapeIndex) => {
          const lines: string[] = ['# TYPE req counter', '# TYPE bytes counter', '# TYPE lat histogram'];
          const exposed = series.map((_, i) => {
            const step = plan.steps[i]!;
            // A restarted process counts from 0 again.
            if (step.change === 'reset') cumulative[i] = 0;
            else if (step.change === 'count') cumulative[i]! += step.increment;
            const counted = step.change === 'jitter' ? cumulative[i]! * (1 - RESET_TOLERANCE / 10) : cumulative[i]!;
            return step.special === undefined ? counted : SPECIAL[step.special]!;
          });
          lines.push(...shuffled(series.map((s, i) => line(s, i, exposed[i]!, plan.order + i)), plan.order));
          if (plan.typedTwice) lines.push('# TYPE req gauge');
          for (const [i, value] of plan.duplicates) lines.push(line(series[i]!, i, value, plan.order * 31 + i));
          const body = lines.join('\n') + (openMetrics ? '\n# EOF\n' : '\n');
          const parsed = parse(body, { format: openMetrics ? 'openmetrics' : 'prometheus', limits: { maxBytes: SIDECAR_MEMORY.maxBodyBytes, maxSamples: SIDECAR_MEMORY.maxSamples } });
          if (!parsed.ok) return; // a scrape the sidecar refuses costs only that scrape
          store.update(parsed.families, 1_000 * (scrapeIndex + 1));
          // Duplicates come after every original line, so the original is the one read (as Prometheus does).
          const seen = exposed.map((v, i) => models[i]!.see(v));
          const delivery = store.plan();
          // Strict encoding (no onInvalid): the store hands the encoder only series it accepts.
          const body2 = encodeWriteRequest(delivery.series);
          expect(decodeWriteRequest(uncompressSync(body2) as Buffer).length).to.equal(delivery.series.length);
          for (const s of delivery.series) {
            const labels = Object.fromEntries(s.labels);
            expect(new Set(s.labels.map(([n]) => n)).size, 'label names unique').to.equal(s.labels.length);
            if (labels[KIND_LABEL] !== 'counter') continue;
            const id = Number(labels['id']);
            const delivered = s.samples[s.samples.length - 1]!.value;
            const what = `scrape ${scrapeIndex}, ${JSON.stringify(labels).slice(0, 200)}`;
            expect(delivered, what).to.equal(models[id]!.total);
            expect(delivered, `${what}: never decreases`).to.be.at.least(lastDelivered.get(String(id)) ?? 0);
            lastDelivered.set(String(id), delivered);
            if (seen[id] === 'reset') sawReset = true;
            if (seen[id] === 'jitter' && models[id]!.total > 0) sawJitter = true;
          }
          if (scrapeIndex % 2 === 0) store.acknowledge(delivery, 1_000 * (scrapeIndex + 1) + 10);
        });
        if (sawReset) covered.resets++;
        if (sawJitter) covered.jitters++;
        if (store.droppedByReason['over-limit'] > 0) covered.overLimit++;
      }),
      { numRuns: 300, seed: 20261127, endOnFailure: true },
    );
    // Each kind of hostility reached the checks in a good share of the runs.
    expect(covered.resets, JSON.stringify(covered)).to.be.at.least(covered.runs / 10);
    expect(covered.jitters, JSON.stringify(covered)).to.be.at.least(covered.runs / 10);
    expect(covered.overLimit, JSON.stringify(covered)).to.be.at.least(covered.runs / 10);
  });
});
