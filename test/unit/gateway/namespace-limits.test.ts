import { expect } from 'chai';
import type { RwSeries } from '../../../shared/remote-write.ts';
import { NamespaceLimits, parseOverrides, type LimitSettings } from '../../../gateway/namespace-limits.ts';

const s = (ns: string, name: string, samples = 1): RwSeries => ({
  labels: [['__name__', name], ...(ns === '' ? [] : [['namespace', ns] as const]), ['pod', 'p']],
  samples: Array.from({ length: samples }, (_, i) => ({ value: i, timestampMs: 1_000 + i })),
});
const settings = (o: Partial<LimitSettings> = {}): LimitSettings => ({ maxSeries: 3, samplesPerSecond: 10, burstSeconds: 10, overrides: new Map(), staleMs: 60_000, ...o });
const names = (series: readonly RwSeries[]): string[] => series.map((x) => `${x.labels.find((l) => l[0] === 'namespace')?.[1]}/${x.labels[0]?.[1]}`);

describe('NamespaceLimits: per-namespace limits before the aggregator (gateway/namespace-limits.ts)', () => {
  it('a namespace at its series cap keeps its live series and drops only new ones; others are not affected', () => {
    const l = new NamespaceLimits(settings());
    const first = l.check([s('a', 'x1'), s('a', 'x2'), s('a', 'x3'), s('a', 'x4'), s('b', 'y1')], 0);
    if (first.refuse) throw new Error('refused');
    expect(names(first.accepted)).to.deep.equal(['a/x1', 'a/x2', 'a/x3', 'b/y1']);
    expect(first.dropped).to.deep.equal([{ namespace: 'a', reason: 'series-limit', series: 1, samples: 1 }]);
    const again = l.check([s('a', 'x2'), s('a', 'x5')], 1_000);
    if (again.refuse) throw new Error('refused');
    expect(names(again.accepted)).to.deep.equal(['a/x2']);
    expect(l.liveSeries('a')).to.equal(3);
  });

  it('series unseen for the staleness interval stop counting, so the namespace can grow again', () => {
    const l = new NamespaceLimits(settings());
    l.check([s('a', 'x1'), s('a', 'x2'), s('a', 'x3')], 0);
    l.expire(60_001);
    expect(l.liveSeries('a')).to.equal(0);
    const later = l.check([s('a', 'x4')], 60_002);
    expect(!later.refuse && names(later.accepted)).to.deep.equal(['a/x4']);
  });

  it('a sidecar\'s request over its namespace\'s samples per second is refused whole, with the wait until it fits', () => {
    const l = new NamespaceLimits(settings({ maxSeries: 0 })); // 10/s, a bucket of 100
    expect(l.check([s('a', 'x', 90)], 0).refuse).to.equal(false);
    const over = l.check([s('a', 'y', 30)], 0);
    expect(over).to.deep.equal({ refuse: true, namespace: 'a', retryAfterMs: 2_000 }); // 20 missing at 10/s
    // After that wait it fits.
    expect(l.check([s('a', 'y', 30)], 2_000).refuse).to.equal(false);
  });

  it('a request larger than a whole bucket waits for a full bucket, then passes (it is never refused forever)', () => {
    const l = new NamespaceLimits(settings({ maxSeries: 0 }));
    l.check([s('a', 'x', 100)], 0);
    expect(l.check([s('a', 'y', 500)], 0)).to.deep.equal({ refuse: true, namespace: 'a', retryAfterMs: 10_000 });
    expect(l.check([s('a', 'y', 500)], 10_000).refuse).to.equal(false);
  });

  it('in a request of several namespaces (the outcome recorder\'s) only the namespace over its rate is dropped', () => {
    const l = new NamespaceLimits(settings({ maxSeries: 0 }));
    l.check([s('a', 'x', 100)], 0);
    const mixed = l.check([s('a', 'x', 5), s('b', 'y', 5)], 0);
    if (mixed.refuse) throw new Error('refused');
    expect(names(mixed.accepted)).to.deep.equal(['b/y']);
    expect(mixed.dropped).to.deep.equal([{ namespace: 'a', reason: 'rate-limit', series: 1, samples: 5 }]);
  });

  it('overrides per namespace; 0 means no limit', () => {
    const l = new NamespaceLimits(settings({ overrides: new Map([['big', { maxSeries: 0, samplesPerSecond: 0 }], ['tiny', { maxSeries: 1 }]]) }));
    const r = l.check([...Array.from({ length: 10 }, (_, i) => s('big', `x${i}`, 50)), s('tiny', 't1'), s('tiny', 't2')], 0);
    if (r.refuse) throw new Error('refused');
    expect(r.accepted).to.have.length(11);
    expect(r.dropped).to.deep.equal([{ namespace: 'tiny', reason: 'series-limit', series: 1, samples: 1 }]);
  });

  it('a series without a namespace label is dropped and counted', () => {
    const r = new NamespaceLimits(settings()).check([s('', 'x'), s('a', 'y')], 0);
    expect(!r.refuse && r.dropped).to.deep.equal([{ namespace: '', reason: 'no-namespace', series: 1, samples: 1 }]);
  });
});

describe('parseOverrides (JOBMETRICS_NAMESPACE_LIMITS)', () => {
  it('reads <namespace>=<series>/<samples per second>, - for the default', () => {
    const r = parseOverrides('batch=200000/100000, sandbox=1000/-');
    expect(r.ok && [...r.overrides]).to.deep.equal([['batch', { maxSeries: 200_000, samplesPerSecond: 100_000 }], ['sandbox', { maxSeries: 1_000 }]]);
    expect(parseOverrides('').ok).to.equal(true);
  });
  for (const bad of ['batch', 'batch=1', 'Batch=1/1', 'batch=x/1', 'batch=1/1/1']) {
    it(`refuses "${bad}"`, () => expect(parseOverrides(bad).ok).to.equal(false));
  }
});
