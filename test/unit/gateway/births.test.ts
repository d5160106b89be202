/**
 * The births rule (gateway/births.ts): a counter-like series' values never reach the aggregator in
 * the aggregation interval of its 0. Tables of requests in, what is forwarded when out.
 */
import { expect } from 'chai';
import { BirthLedger } from '../../../gateway/births.ts';
import { seriesKey } from '../../../shared/series-key.ts';
import type { RwSeries } from '../../../shared/remote-write.ts';

const HOLD = 12_000;
const settings = { holdMs: HOLD, forgetAfterMs: 900_000, maxTracked: 1_000 };

const counter = (pod: string, ...samples: Array<[number, number]>): RwSeries => ({
  labels: [['__name__', 'items_total'], ['namespace', 'ns'], ['job', 'w'], ['pod', pod], ['jobmetrics_kind', 'counter']],
  samples: samples.map(([timestampMs, value]) => ({ timestampMs, value })),
});
const gauge = (pod: string, ...samples: Array<[number, number]>): RwSeries => ({
  labels: [['__name__', 'temp'], ['namespace', 'ns'], ['job', 'w'], ['pod', pod], ['jobmetrics_kind', 'gauge']],
  samples: samples.map(([timestampMs, value]) => ({ timestampMs, value })),
});
/** pod → the values of its forwarded samples, for compact expectations. */
const values = (series: readonly RwSeries[]): Record<string, number[]> =>
  Object.fromEntries(series.map((s) => [s.labels.find(([n]) => n === 'pod')![1], s.samples.map((x) => x.value)]));

describe('gateway births: a series\' values never share an aggregation interval with its 0', () => {
  it('a short run (0 and its final value 2 s apart): the 0 goes at once, the value one hold later', () => {
    const l = new BirthLedger(settings);
    const a = l.admit([counter('p1', [999, 0])], 1_000);
    expect(values(a.now)).to.deep.equal({ p1: [0] });
    expect(a.births).to.deep.equal([seriesKey(counter('p1').labels)]);
    const b = l.admit([counter('p1', [2_999, 0], [3_000, 240])], 3_000);
    expect(b.now).to.deep.equal([]);
    expect(b.heldSamples).to.equal(2);
    expect(l.due(1_000 + HOLD - 1)).to.deep.equal([]);
    expect(values(l.due(1_000 + HOLD))).to.deep.equal({ p1: [0, 240] });
    expect(l.heldSamples).to.equal(0);
  });

  it('the hold runs from when the 0 was delivered (confirm), however long its delivery took', () => {
    const l = new BirthLedger(settings);
    const a = l.admit([counter('p1', [0, 0], [1, 9])], 1);
    l.confirm(a.births, 800);
    expect(l.nextDueAt()).to.equal(800 + HOLD);
    expect(l.due(1 + HOLD)).to.deep.equal([]);
  });

  it('a 0 and a value in one request (a series first seen mid-run): the 0 now, the value held', () => {
    const l = new BirthLedger(settings);
    const a = l.admit([counter('p1', [4_999, 0], [5_000, 7])], 5_000);
    expect(values(a.now)).to.deep.equal({ p1: [0] });
    expect(a.heldSamples).to.equal(1);
    expect(l.nextDueAt()).to.equal(5_000 + HOLD);
  });

  it('after the hold, samples go at once; samples that arrive while others are held queue behind them in time order', () => {
    const l = new BirthLedger(settings);
    l.admit([counter('p1', [0, 0])], 0);
    l.admit([counter('p1', [5_000, 5])], 5_000);
    // Due but not yet taken: a newer sample must not overtake the held one.
    expect(l.admit([counter('p1', [HOLD + 1_000, 9])], HOLD + 1_000).now).to.deep.equal([]);
    expect(values(l.due(HOLD + 1_000))).to.deep.equal({ p1: [5, 9] });
    expect(values(l.admit([counter('p1', [HOLD + 2_000, 11])], HOLD + 2_000).now)).to.deep.equal({ p1: [11] });
  });

  it('a series first seen with a value (its 0 went before this gateway started) is not held', () => {
    const l = new BirthLedger(settings);
    expect(values(l.admit([counter('p1', [1_000, 50])], 1_000).now)).to.deep.equal({ p1: [50] });
    expect(l.admit([counter('p1', [2_000, 60])], 2_000).now).to.have.length(1);
  });

  it('gauges are never held: max and last have no birth to protect', () => {
    const l = new BirthLedger(settings);
    expect(values(l.admit([gauge('p1', [1, 0], [2, 3])], 2).now)).to.deep.equal({ p1: [0, 3] });
  });

  it('pods are separate series: a new pod is held while an older one of the same workload flows', () => {
    const l = new BirthLedger(settings);
    l.admit([counter('old', [0, 0])], 0);
    const a = l.admit([counter('old', [HOLD + 1, 30]), counter('new', [HOLD, 0], [HOLD + 1, 4])], HOLD + 1);
    expect(values(a.now)).to.deep.equal({ old: [30], new: [0] });
    expect(a.heldSamples).to.equal(1);
  });

  it('a birth whose 0 could not be delivered is forgotten, so the retried request starts it again', () => {
    const l = new BirthLedger(settings);
    const a = l.admit([counter('p1', [999, 0], [1_000, 3])], 1_000);
    expect(l.heldSamples).to.equal(1);
    l.forget(a.births);
    expect({ held: l.heldSamples, due: l.nextDueAt(), size: l.size }).to.deep.equal({ held: 0, due: undefined, size: 0 });
    const retry = l.admit([counter('p1', [999, 0], [1_000, 3])], 1_500);
    expect(values(retry.now)).to.deep.equal({ p1: [0] });
    expect(l.nextDueAt()).to.equal(1_500 + HOLD);
  });

  it('samples whose delivery failed are held again and go with the next due (values are cumulative: a newer one sent meanwhile loses nothing)', () => {
    const l = new BirthLedger(settings);
    l.admit([counter('p1', [0, 0], [1, 5])], 1);
    const due = l.due(HOLD + 1);
    expect(values(l.admit([counter('p1', [HOLD + 2, 8])], HOLD + 2).now)).to.deep.equal({ p1: [8] });
    l.requeue(due);
    expect(l.heldSamples).to.equal(1);
    expect(values(l.due(HOLD + 3))).to.deep.equal({ p1: [5] });
    expect(l.heldSamples).to.equal(0);
  });

  it('past maxTracked a new series goes unheld and is counted, never dropped', () => {
    const l = new BirthLedger({ ...settings, maxTracked: 1 });
    l.admit([counter('a', [0, 0])], 0);
    const b = l.admit([counter('b', [0, 0], [1, 2])], 1);
    expect(b.untracked).to.equal(1);
    expect(values(b.now)).to.deep.equal({ b: [0, 2] });
  });

  it('a series unwritten for forgetAfterMs is forgotten, unless it still holds samples', () => {
    const l = new BirthLedger({ ...settings, forgetAfterMs: 1_000, holdMs: 5_000 });
    l.admit([counter('quiet', [0, 0])], 0);
    l.admit([counter('holding', [0, 0], [1, 1])], 0);
    expect(l.expire(2_000)).to.equal(1);
    expect(l.size).to.equal(1);
    expect(values(l.due(5_000))).to.deep.equal({ holding: [1] });
    expect(l.expire(7_000)).to.equal(1);
    expect(l.size).to.equal(0);
  });
});
