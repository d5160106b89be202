/**
 * A property over generated hostile expositions, through the sidecar's own path (parse with the
 * sidecar's limits, SeriesStore.update, plan, encodeWriteRequest, acknowledge): duplicates (the
 * same labels again, in another order), labels that clash with the sidecar's (pod and
 * exported_pod, job, namespace, jobmetrics_kind, a scraped __name__), label order shuffled every
 * scrape, series order shuffled, a family typed twice, special values (NaN, ±Inf, negative),
 * float increments and huge label values. It asserts that nothing throws and that no counter is
 * ever delivered above the largest valid value the target exposed for it.
 */
import { expect } from 'chai';
import fc from 'fast-check';
import { decodeWriteRequest } from '../../support/write-request.ts';
import { parse } from '../../../shared/exposition/parse.ts';
import { SIDECAR_MEMORY } from '../../../shared/sidecar-memory.ts';
import { encodeWriteRequest } from '../../../shared/remote-write.ts';
import { KIND_LABEL, SeriesStore } from '../../../sidecar/series-store.ts';
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

interface ScrapePlan {
  /** Per base series: the increment this scrape (≥ 0), or the index of a special value to expose instead. */
  readonly steps: ReadonlyArray<{ readonly increment: number; readonly special: number | undefined }>;
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
        increment: fc.oneof(fc.constant(0), fc.constant(0.1), fc.constant(0.2), fc.double({ min: 0, max: 1e6, noNaN: true })),
        special: fc.option(fc.nat({ max: SPECIAL.length - 1 }), { freq: 6, nil: undefined }),
      }),
      { minLength: series, maxLength: series },
    ),
    order: fc.nat(),
    duplicates: fc.array(fc.tuple(fc.nat({ max: series - 1 }), fc.oneof(fc.double({ noNaN: false }), fc.constantFrom(...SPECIAL))), { maxLength: 4 }),
    typedTwice: fc.boolean(),
  });

const scenario = fc
  .array(baseSeries, { minLength: 1, maxLength: 8 })
  .chain((series) => fc.tuple(fc.constant(series), fc.array(scrapePlan(series.length), { minLength: 1, maxLength: 6 }), fc.boolean()));

describe('sidecar store and encoder over hostile expositions (fast-check, seeded)', () => {
  it('never throws, and never delivers more for a counter than the target exposed', () => {
    fc.assert(
      fc.property(scenario, ([series, scrapes, openMetrics]) => {
        const store = new SeriesStore({ namespace: 'ns', job: 'job', pod: 'pod-1', maxSeries: SIDECAR_MEMORY.maxSeries, maxLabelChars: SIDECAR_MEMORY.maxLabelChars });
        const cumulative = series.map(() => 0);
        /** Per id: the largest finite, non-negative value the target exposed for it. */
        const exposedMax = new Map<string, number>();
        scrapes.forEach((plan, scrapeIndex) => {
          const lines: string[] = ['# TYPE req counter', '# TYPE bytes counter', '# TYPE lat histogram'];
          const originals = series.map((s, i) => {
            const step = plan.steps[i]!;
            cumulative[i]! += step.increment;
            const value = step.special === undefined ? cumulative[i]! : SPECIAL[step.special]!;
            if (Number.isFinite(value) && value >= 0) exposedMax.set(String(i), Math.max(exposedMax.get(String(i)) ?? 0, value));
            return line(s, i, value, plan.order + i);
          });
          lines.push(...shuffled(originals, plan.order));
          if (plan.typedTwice) lines.push('# TYPE req gauge');
          for (const [i, value] of plan.duplicates) lines.push(line(series[i]!, i, value, plan.order * 31 + i));
          const body = lines.join('\n') + (openMetrics ? '\n# EOF\n' : '\n');
          const parsed = parse(body, { format: openMetrics ? 'openmetrics' : 'prometheus', limits: { maxBytes: SIDECAR_MEMORY.maxBodyBytes, maxSamples: SIDECAR_MEMORY.maxSamples } });
          if (!parsed.ok) return; // a scrape the sidecar refuses costs only that scrape
          store.update(parsed.families, 1_000 * (scrapeIndex + 1));
          const delivery = store.plan();
          // Strict encoding (no onInvalid): the store hands the encoder only series it accepts.
          const body2 = encodeWriteRequest(delivery.series);
          expect(decodeWriteRequest(uncompressSync(body2) as Buffer).length).to.equal(delivery.series.length);
          if (scrapeIndex % 2 === 0) store.acknowledge(delivery, 1_000 * (scrapeIndex + 1) + 10);
        });
        for (const s of store.plan().series) {
          const labels = Object.fromEntries(s.labels);
          expect(new Set(s.labels.map(([n]) => n)).size, 'label names unique').to.equal(s.labels.length);
          if (labels[KIND_LABEL] !== 'counter') continue;
          const delivered = s.samples[s.samples.length - 1]!.value;
          const id = labels['id']!;
          expect(delivered, JSON.stringify(labels).slice(0, 300)).to.be.at.most(exposedMax.get(id) ?? 0);
          expect(delivered).to.be.at.least(0);
        }
      }),
      { numRuns: 200, seed: 20261127, endOnFailure: true },
    );
  });
});
