import { expect } from 'chai';
import fc from 'fast-check';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import type { MetricFamily } from '../../../shared/exposition/types.ts';
import { encodeWriteRequest } from '../../../shared/remote-write.ts';
import { KIND_LABEL, PROBLEMS_LOGGED, SeriesStore, type PushPlan } from '../../../sidecar/series-store.ts';

const counter = (value: number, labels: Array<[string, string]> = []): MetricFamily => ({
  name: 'items',
  type: 'counter',
  samples: [{ name: 'items_total', labels, value }],
});
const gauge = (value: number): MetricFamily => ({ name: 'queue', type: 'gauge', samples: [{ name: 'queue', labels: [], value }] });

const newStore = () => new SeriesStore({ namespace: 'ns', job: 'nightly', pod: 'nightly-abc', maxSeries: 100 });

/** The plan as `name{pod} -> [values]`, the shape the aggregator sees. */
const view = (plan: PushPlan): Record<string, number[]> =>
  Object.fromEntries(
    plan.series.map((s) => {
      const l = Object.fromEntries(s.labels);
      return [`${l['__name__']}{pod=${l['pod']}}`, s.samples.map((p) => p.value)];
    }),
  );

describe('SeriesStore (docs/semantics.md)', () => {
  it('labels every series with namespace, job, pod and kind; renames clashing labels to exported_*', () => {
    const store = newStore();
    store.update([counter(3, [['job', 'inner'], ['pod', 'x'], ['namespace', 'y'], ['path', '/a']])], 1_000);
    const [series] = store.plan().series;
    expect(series?.labels).to.deep.equal([
      ['__name__', 'items_total'],
      ['exported_job', 'inner'],
      ['exported_namespace', 'y'],
      ['exported_pod', 'x'],
      ['job', 'nightly'],
      [KIND_LABEL, 'counter'],
      ['namespace', 'ns'],
      ['path', '/a'],
      ['pod', 'nightly-abc'],
    ]);
  });

  it('sends an explicit 0 one millisecond before the first value of a counter, once', () => {
    const store = newStore();
    store.update([counter(5), gauge(7)], 10_000);
    const first = store.plan();
    expect(first.series.map((s) => s.samples)).to.deep.equal([
      [
        { value: 0, timestampMs: 9_999 },
        { value: 5, timestampMs: 10_000 },
      ],
      [{ value: 7, timestampMs: 10_000 }],
    ]);
    store.acknowledge(first, 10_050);
    store.update([counter(9), gauge(2)], 11_000);
    // The acknowledged 5 goes first at its own timestamp: a repeat for a vmagent that kept its
    // state, the baseline for one that restarted.
    expect(store.plan().series.map((s) => s.samples)).to.deep.equal([
      [
        { value: 5, timestampMs: 10_000 },
        { value: 9, timestampMs: 11_000 },
      ],
      [{ value: 2, timestampMs: 11_000 }],
    ]);
  });

  it('zerosOnly: just the explicit zeros of counters not yet started, in a delivery of their own', () => {
    const store = newStore();
    store.update([counter(5), gauge(7)], 10_000);
    expect(store.hasUnstartedCounters).to.equal(true);
    const zeros = store.plan({ zerosOnly: true });
    expect(view(zeros)).to.deep.equal({ 'items_total{pod=nightly-abc}': [0] });
    store.acknowledge(zeros, 10_010);
    expect(store.hasUnstartedCounters).to.equal(false);
    expect(view(store.plan({ zerosOnly: true }))).to.deep.equal({});
    store.update([counter(6), gauge(7)], 11_000);
    expect(view(store.plan())).to.deep.equal({ 'items_total{pod=nightly-abc}': [0, 6], 'queue{pod=nightly-abc}': [7] });
  });

  it('repeats the explicit 0 until a delivery is acknowledged', () => {
    const store = newStore();
    store.update([counter(5)], 10_000);
    store.plan(); // lost: never acknowledged
    store.update([counter(6)], 11_000);
    expect(view(store.plan())).to.deep.equal({ 'items_total{pod=nightly-abc}': [0, 6] });
  });

  it('a new generation delivers 0 and then only what was counted since the last acknowledged value', () => {
    const store = newStore();
    store.update([counter(100)], 1_000);
    store.acknowledge(store.plan(), 1_100);
    store.update([counter(130)], 2_000);
    store.startGeneration();
    expect(view(store.plan())).to.deep.equal({ 'items_total{pod=nightly-abc/gen1}': [0, 30] });
  });

  it('folds a counter reset into a base, so what is delivered never decreases', () => {
    const store = newStore();
    store.update([counter(28)], 1_000);
    store.acknowledge(store.plan(), 1_100);
    store.update([counter(54)], 1_200); // scraped, not yet delivered
    const stats = store.update([counter(3)], 1_400); // the process restarted
    store.update([counter(15)], 1_600);
    expect(stats.resets).to.equal(1);
    expect(view(store.plan())).to.deep.equal({ 'items_total{pod=nightly-abc}': [28, 54 + 15] });
  });

  it('keeps the explicit 0 at its first timestamp, so a resend after a lost answer is skipped as old', () => {
    const store = newStore();
    store.update([counter(5)], 10_000);
    store.plan(); // reached the aggregator, the answer was lost
    store.update([counter(8)], 11_000);
    expect(store.plan().series[0]?.samples).to.deep.equal([
      { value: 0, timestampMs: 9_999 },
      { value: 8, timestampMs: 11_000 },
    ]);
  });

  it('a new generation after a reset delivers only the increments since the last acknowledgement', () => {
    const store = newStore();
    store.update([counter(100)], 1_000);
    store.acknowledge(store.plan(), 1_100);
    store.update([counter(150)], 2_000);
    store.update([counter(3)], 3_000); // reset: 150 + 3 = 153 in all
    store.startGeneration();
    const plan = store.plan();
    expect(view(plan)).to.deep.equal({ 'items_total{pod=nightly-abc/gen1}': [0, 53] });
    expect(plan.series[0]?.samples.map((p) => p.timestampMs)).to.deep.equal([2_999, 3_000]);
  });

  it('a new generation starts above a delivery that may have arrived, so nothing counts twice', () => {
    const store = newStore();
    store.update([counter(10)], 1_000);
    store.acknowledge(store.plan(), 1_100);
    store.update([counter(25)], 2_000);
    store.mayHaveArrived(store.plan()); // timed out after sending: 25 may have been counted
    store.update([counter(40)], 3_000);
    store.startGeneration();
    expect(view(store.plan())).to.deep.equal({ 'items_total{pod=nightly-abc/gen1}': [0, 15] });
  });

  it('gapExceeded once half the staleness interval passed since the last acknowledgement', () => {
    const store = newStore();
    expect(store.gapExceeded(1e12, 1_000)).to.equal(false); // never delivered: nothing to forget
    store.update([counter(1)], 0);
    store.acknowledge(store.plan(), 10_000);
    expect(store.gapExceeded(10_499, 1_000)).to.equal(false);
    expect(store.gapExceeded(10_500, 1_000)).to.equal(true);
  });

  it('classifies samples: histogram and summary sums/counts are counters, quantiles gauges, _created dropped', () => {
    const store = newStore();
    const stats = store.update(
      [
        {
          name: 'lat',
          type: 'histogram',
          samples: [
            { name: 'lat_bucket', labels: [['le', '+Inf']], value: 2 },
            { name: 'lat_sum', labels: [], value: 0.5 },
            { name: 'lat_count', labels: [], value: 2 },
            { name: 'lat_created', labels: [], value: 1.7e9 },
          ],
        },
        {
          name: 'rpc',
          type: 'summary',
          samples: [
            { name: 'rpc', labels: [['quantile', '0.5']], value: 0.1 },
            { name: 'rpc_count', labels: [], value: 4 },
          ],
        },
        { name: 'legacy_total', type: 'untyped', samples: [{ name: 'legacy_total', labels: [], value: 1 }] },
        { name: 'temp', type: 'untyped', samples: [{ name: 'temp', labels: [], value: 21 }] },
        { name: 'bad', type: 'counter', samples: [{ name: 'bad_total', labels: [], value: Number.NaN }, { name: 'neg_total', labels: [], value: -1 }] },
      ],
      0,
    );
    expect({ ...stats, problems: stats.problems.map((p) => `${p.reason} ${p.series} ${p.value}`) }).to.deep.equal({
      samples: 7,
      newSeries: 7,
      resets: 0,
      dropped: 3,
      problems: ['invalid-value bad_total{} NaN', 'invalid-value neg_total{} -1'],
    });
    const kinds = Object.fromEntries(store.plan().series.map((s) => [Object.fromEntries(s.labels)['__name__'], Object.fromEntries(s.labels)[KIND_LABEL]]));
    expect(kinds).to.deep.equal({
      lat_bucket: 'counter',
      lat_sum: 'counter',
      lat_count: 'counter',
      rpc: 'gauge',
      rpc_count: 'counter',
      legacy_total: 'counter',
      temp: 'gauge',
    });
  });

  it('keeps at most maxSeries series and counts what it drops', () => {
    const store = new SeriesStore({ namespace: 'ns', job: 'j', pod: 'p', maxSeries: 2 });
    store.update([{ name: 'c', type: 'counter', samples: [1, 2, 3].map((i) => ({ name: 'c_total', labels: [['i', String(i)]] as const, value: i })) }], 0);
    expect([store.size, store.droppedSeries]).to.deep.equal([2, 1]);
  });
});

describe('SeriesStore: finding each scraped series again, scrape after scrape', () => {
  const g = (name: string, labels: Array<[string, string]>, value: number) => ({ name, labels, value });
  const scrape = (...samples: Array<ReturnType<typeof g>>): MetricFamily[] => [{ name: 'temp', type: 'gauge', samples }];
  /** Latest value per series as the plan says: `name{labels}` -> value. */
  const latest = (store: SeriesStore): Record<string, number> =>
    Object.fromEntries(
      store.plan().series.map((s) => [
        JSON.stringify(s.labels.filter(([n]) => !['pod', 'job', 'namespace', KIND_LABEL].includes(n))),
        s.samples[s.samples.length - 1]!.value,
      ]),
    );

  const cases: Array<{ name: string; scrapes: MetricFamily[][]; want: Record<string, number> }> = [
    {
      name: 'the same order every time (the fast path)',
      scrapes: [scrape(g('temp', [['a', '1']], 1), g('temp', [['a', '2']], 2)), scrape(g('temp', [['a', '1']], 3), g('temp', [['a', '2']], 4))],
      want: { '[["__name__","temp"],["a","1"]]': 3, '[["__name__","temp"],["a","2"]]': 4 },
    },
    {
      name: 'reordered, one series inserted and one gone',
      scrapes: [
        scrape(g('temp', [['a', '1']], 1), g('temp', [['a', '2']], 2), g('temp', [['a', '3']], 3)),
        scrape(g('temp', [['a', '3']], 30), g('temp', [['a', '0']], 0), g('temp', [['a', '1']], 10)),
      ],
      want: { '[["__name__","temp"],["a","0"]]': 0, '[["__name__","temp"],["a","1"]]': 10, '[["__name__","temp"],["a","2"]]': 2, '[["__name__","temp"],["a","3"]]': 30 },
    },
    {
      name: 'labels written in another order are the same series',
      scrapes: [scrape(g('temp', [['a', '1'], ['b', '2']], 1)), scrape(g('temp', [['b', '2'], ['a', '1']], 5))],
      want: { '[["__name__","temp"],["a","1"],["b","2"]]': 5 },
    },
    {
      name: 'label values holding the key separators stay apart (NUL and digits in values)',
      scrapes: [
        scrape(g('temp', [['a', 'x'], ['b', 'y']], 1), g('temp', [['a', 'x\u0000b\u00001\u0000y']], 2), g('temp', [['a', 'x\u00001\u0000b']], 3)),
        scrape(g('temp', [['a', 'x\u0000b\u00001\u0000y']], 20), g('temp', [['a', 'x'], ['b', 'y']], 10), g('temp', [['a', 'x\u00001\u0000b']], 30)),
      ],
      want: {
        '[["__name__","temp"],["a","x"],["b","y"]]': 10,
        '[["__name__","temp"],["a","x\\u0000b\\u00001\\u0000y"]]': 20,
        '[["__name__","temp"],["a","x\\u00001\\u0000b"]]': 30,
      },
    },
    {
      name: 'same labels, another name at the same position',
      scrapes: [scrape(g('temp', [['a', '1']], 1)), scrape(g('temp_max', [['a', '1']], 7))],
      want: { '[["__name__","temp"],["a","1"]]': 1, '[["__name__","temp_max"],["a","1"]]': 7 },
    },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const store = newStore();
      c.scrapes.forEach((families, i) => store.update(families, 1_000 * (i + 1)));
      expect(latest(store)).to.deep.equal(c.want);
      expect(store.size).to.equal(Object.keys(c.want).length);
    });
  }

  it('any sequence of scrapes (order, subsets, look-alike values): the latest value of every series, nothing merged', () => {
    // An empty label value is no label (Prometheus' data model): the reference drops it too.
    const values = ['', '0', '1', '10', 'a', 'a\u0000', '\u0000', 'x\u00001\u0000y', 'é'];
    const series = fc.record({ name: fc.constantFrom('m', 'm_total', 'n'), labels: fc.uniqueArray(fc.tuple(fc.constantFrom('a', 'b', 'c'), fc.constantFrom(...values)), { selector: ([n]) => n, maxLength: 3 }) });
    fc.assert(
      fc.property(fc.array(fc.array(fc.tuple(series, fc.integer({ min: 0, max: 1000 })), { maxLength: 12 }), { minLength: 1, maxLength: 6 }), (scrapes) => {
        const store = new SeriesStore({ namespace: 'ns', job: 'j', pod: 'p', maxSeries: 10_000 });
        const want = new Map<string, number>();
        scrapes.forEach((samples, i) => {
          // One scrape has each series once (duplicates have their own tests).
          const seen = new Map<string, { name: string; labels: Array<[string, string]>; value: number }>();
          for (const [s, value] of samples) {
            const key = JSON.stringify([s.name, s.labels.filter(([, v]) => v !== '').sort()]);
            if (!seen.has(key)) seen.set(key, { name: s.name, labels: s.labels as Array<[string, string]>, value });
          }
          store.update([{ name: 'x', type: 'gauge', samples: [...seen.values()] }], 1_000 * (i + 1));
          for (const [k, v] of seen) want.set(k, v.value);
        });
        const got = new Map(
          store.plan().series.map((s) => {
            const l = s.labels.filter(([n]) => !['pod', 'job', 'namespace', KIND_LABEL, '__name__'].includes(n)).map(([n, v]) => [n, v]);
            return [JSON.stringify([Object.fromEntries(s.labels)['__name__'], l.sort()]), s.samples[s.samples.length - 1]!.value] as const;
          }),
        );
        expect(got).to.deep.equal(want);
      }),
      { numRuns: 300 },
    );
  });

  it('keeps no scraped body alive: the names and values it stores are copies', () => {
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as () => void;
    const store = new SeriesStore({ namespace: 'ns', job: 'j', pod: 'p', maxSeries: 10_000 });
    gc();
    const before = process.memoryUsage().heapUsed;
    // 200 scrapes of a 1 MB body, each with one new series whose name and label value are slices
    // of it (as the parser's are): kept slices would hold 200 MB.
    for (let i = 0; i < 200; i++) {
      const body = `${i} `.padEnd(1 << 20, 'x');
      const name = `m${i}_`.concat(body.slice(0, 30)).slice(0, 30);
      const value = body.slice(0, 40);
      store.update([{ name: 'x', type: 'gauge', samples: [{ name: body.slice(0, 20) + name.length, labels: [['path', value]], value: i }] }], 1_000 * (i + 1));
    }
    gc();
    const grownMb = (process.memoryUsage().heapUsed - before) / 2 ** 20;
    expect(store.size).to.equal(200);
    expect(grownMb, `heap grew ${grownMb.toFixed(1)} MB for 200 small series`).to.be.below(10);
  });
});

describe('SeriesStore: hostile scrapes cost only the bad series', () => {
  const sample = (name: string, labels: Array<[string, string]>, value: number) => ({ name, labels, value });
  const counters = (...samples: Array<ReturnType<typeof sample>>): MetricFamily[] => [{ name: 'c', type: 'counter', samples }];
  /** `name{labels but the sidecar's own}` -> last delivered value. */
  const delivered = (plan: PushPlan): Record<string, number> =>
    Object.fromEntries(
      plan.series.map((s) => {
        const l = Object.fromEntries(s.labels);
        const own = s.labels.filter(([n]) => !['__name__', 'pod', 'job', 'namespace', KIND_LABEL].includes(n)).map(([n, v]) => `${n}=${v}`);
        return [`${l['__name__']}{${own.join(',')}}`, s.samples[s.samples.length - 1]!.value];
      }),
    );

  it('renames clashing labels as Prometheus does: pod and exported_pod scraped give exported_pod and exported_exported_pod', () => {
    const store = newStore();
    store.update(
      counters(
        sample('a_total', [['pod', 'p1'], ['exported_pod', 'p2']], 1),
        sample('b_total', [['job', 'j1'], ['exported_job', 'j2'], ['exported_exported_job', 'j3']], 2),
        sample('c_total', [['namespace', 'n1'], ['exported_namespace', 'n2'], ['jobmetrics_kind', 'k'], ['exported_jobmetrics_kind', 'k2']], 3),
      ),
      1_000,
    );
    const plan = store.plan();
    expect(delivered(plan)).to.deep.equal({
      'a_total{exported_exported_pod=p1,exported_pod=p2}': 1,
      'b_total{exported_exported_exported_job=j1,exported_exported_job=j3,exported_job=j2}': 2,
      'c_total{exported_exported_jobmetrics_kind=k,exported_exported_namespace=n1,exported_jobmetrics_kind=k2,exported_namespace=n2}': 3,
    });
    // The labels of every series are unique, so the request encodes.
    expect(encodeWriteRequest(plan.series).length).to.be.above(0);
    expect(store.droppedSeries).to.equal(0);
  });

  it('drops a series no receiver would accept (a scraped __name__ label), reports it once, counts it, keeps the rest', () => {
    const store = newStore();
    const scrape = counters(sample('bad_total', [['__name__', 'x']], 1), sample('good_total', [], 2));
    const first = store.update(scrape, 1_000);
    const second = store.update(scrape, 2_000);
    expect(first.problems.map((p) => [p.reason, p.series])).to.deep.equal([['invalid-labels', 'bad_total{__name__="x"}']]);
    expect(second.problems).to.deep.equal([]);
    expect(store.droppedByReason['invalid-labels']).to.equal(2);
    expect(delivered(store.plan())).to.deep.equal({ 'good_total{}': 2 });
    expect(() => encodeWriteRequest(store.plan().series)).not.to.throw();
  });

  it('discard: a series the encoder refused leaves the store, is counted and reported once; the others stay', () => {
    const store = newStore();
    store.update(counters(sample('a_total', [], 1), sample('b_total', [], 2)), 1_000);
    const plan = store.plan();
    const problem = store.discard(plan, 0);
    expect([problem?.reason, problem?.series.startsWith('a_total{'), problem?.value]).to.deep.equal(['invalid-labels', true, '1']);
    expect(store.discard(plan, 0)).to.equal(undefined);
    expect(delivered(store.plan())).to.deep.equal({ 'b_total{}': 2 });
    expect(store.droppedByReason['invalid-labels']).to.equal(1);
  });

  it('duplicates in one scrape (same labels, or in another order): the first is kept, the rest reported once; never a reset', () => {
    const store = newStore();
    let resets = 0;
    const problems: string[] = [];
    // The exposed maximum of the series is 30; reading each duplicate as a reset would deliver 100+.
    for (const [i, v] of [10, 20, 30].entries()) {
      const u = store.update(
        counters(
          sample('req_total', [['code', '200'], ['path', '/a']], v),
          sample('req_total', [['path', '/a'], ['code', '200']], 5),
          sample('req_total', [['code', '200'], ['path', '/a']], 1),
        ),
        1_000 * (i + 1),
      );
      resets += u.resets;
      problems.push(...u.problems.map((p) => `${p.reason} ${p.series} ${p.value}`));
    }
    expect(delivered(store.plan())).to.deep.equal({ 'req_total{code=200,path=/a}': 30 });
    expect(resets).to.equal(0);
    expect(problems).to.deep.equal(['duplicate req_total{path="/a",code="200"} 5', 'duplicate req_total{code="200",path="/a"} 1']);
    expect(store.droppedByReason.duplicate).to.equal(6);
  });

  it('a family typed twice (gauge, then counter) is one series: the second sample is a duplicate, as in Prometheus', () => {
    const store = newStore();
    const u = store.update(
      [
        { name: 'x', type: 'gauge', samples: [sample('x', [], 4)] },
        { name: 'x', type: 'counter', samples: [sample('x', [], 9)] },
      ],
      1_000,
    );
    expect(store.plan().series.map((s) => [Object.fromEntries(s.labels)[KIND_LABEL], s.samples.map((p) => p.value)])).to.deep.equal([['gauge', [4]]]);
    expect(u.problems.map((p) => p.reason)).to.deep.equal(['duplicate']);
  });

  it('NaN, ±Inf and negative counters are dropped, reported once per series and counted; a NaN gauge too', () => {
    const store = newStore();
    const scrape = (n: number): MetricFamily[] => [
      { name: 'c', type: 'counter', samples: [sample('nan_total', [], NaN), sample('inf_total', [], Infinity), sample('minf_total', [], -Infinity), sample('neg_total', [], -1), sample('ok_total', [], n)] },
      { name: 'g', type: 'gauge', samples: [sample('g', [], NaN), sample('g2', [], -Infinity)] },
    ];
    const first = store.update(scrape(1), 1_000);
    const second = store.update(scrape(2), 2_000);
    expect(first.problems.map((p) => `${p.series} ${p.value}`)).to.deep.equal(['nan_total{} NaN', 'inf_total{} Infinity', 'minf_total{} -Infinity', 'neg_total{} -1', 'g{} NaN']);
    expect(second.problems).to.deep.equal([]);
    expect(store.droppedByReason['invalid-value']).to.equal(10);
    expect(delivered(store.plan())).to.deep.equal({ 'ok_total{}': 2, 'g2{}': -Infinity });
  });

  it('a counter that turns NaN after a value keeps its value and is not reset', () => {
    const store = newStore();
    for (const [i, v] of [5, NaN, 7].entries()) store.update(counters(sample('x_total', [], v)), 1_000 * (i + 1));
    expect(delivered(store.plan())).to.deep.equal({ 'x_total{}': 7 });
  });

  it('float jitter is no reset (relative tolerance); what is delivered never decreases', () => {
    const store = newStore();
    let resets = 0;
    const values = [0.3, 0.1 + 0.2, 0.3, 1e15 + 0.125, 1e15, 1e15 + 0.25];
    const seen: number[] = [];
    for (const [i, v] of values.entries()) {
      resets += store.update(counters(sample('x_total', [], v)), 1_000 * (i + 1)).resets;
      seen.push(delivered(store.plan())['x_total{}']!);
    }
    expect(resets).to.equal(0);
    expect(seen).to.deep.equal([0.3, 0.30000000000000004, 0.30000000000000004, 1e15 + 0.125, 1e15 + 0.125, 1e15 + 0.25]);
    // A real reset is still one.
    expect(store.update(counters(sample('x_total', [], 3)), 10_000).resets).to.equal(1);
  });

  it('an empty label value is no label (Prometheus): {a=""} and {} are one series', () => {
    const store = newStore();
    const u = store.update(counters(sample('x_total', [['a', '']], 1), sample('x_total', [], 2)), 1_000);
    expect(delivered(store.plan())).to.deep.equal({ 'x_total{}': 1 });
    expect(u.problems.map((p) => p.reason)).to.deep.equal(['duplicate']);
  });

  it(`logs at most ${PROBLEMS_LOGGED} series per reason, the last one saying so; every drop is counted`, () => {
    const store = newStore();
    const u = store.update(counters(...Array.from({ length: 50 }, (_, i) => sample('x_total', [['i', String(i)]], -1))), 1_000);
    expect(u.problems.length).to.equal(PROBLEMS_LOGGED);
    expect(u.problems.map((p) => p.last)).to.deep.equal([...Array<boolean>(PROBLEMS_LOGGED - 1).fill(false), true]);
    expect(store.droppedSeries).to.equal(50);
  });
});
