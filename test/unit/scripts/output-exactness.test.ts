import { expect } from 'chai';
import { compareWithTruth, countedTotal, countStored } from '../../../scripts/output-exactness.ts';

describe('output-exactness: what the store holds against what the pods counted', () => {
  describe('countedTotal: a reset-aware total, the birth counted in full', () => {
    const table: Array<[number[], number, string]> = [
      [[], 0, 'nothing'],
      [[0, 5, 8], 8, 'born at 0'],
      [[5, 8], 8, 'born with the first interval’s sum'],
      [[10, 12, 0, 5], 17, 'an aggregator restart: 12, then 5 more'],
      [[10, 12, 3, 8], 20, 'restart with the last acknowledged sample as baseline'],
      [[5, 5, 5], 5, 'repeats add nothing'],
    ];
    for (const [values, total, what] of table) it(`${JSON.stringify(values)} → ${total} (${what})`, () => expect(countedTotal(values)).to.equal(total));
  });

  it('countStored: copies that differ only in the replica label are one series, counted as the higher', () => {
    const { counted, replicas } = countStored(
      [
        { metric: { __name__: 'x_total', job: 'j', r: 'a' }, samples: [[1, 10], [2, 20]] },
        { metric: { __name__: 'x_total', job: 'j', r: 'b' }, samples: [[1, 10], [2, 2], [3, 5]] },
      ],
      'r',
    );
    expect([...counted]).to.deep.equal([['x_total{job="j"}', 20]]);
    expect([...replicas]).to.deep.equal([['x_total{job="j"}', 2]]);
  });

  it('compareWithTruth: exact within [acknowledged, counted by the pods]; below is lost, above is double', () => {
    const truth = new Map([['a', 10], ['b', 10], ['c', 10], ['d', 10]]);
    const floor = new Map([['a', 10], ['b', 8], ['c', 10], ['d', 10]]);
    const counted = new Map([['a', 10], ['b', 9], ['c', 7], ['d', 12], ['e', 1]]);
    const r = compareWithTruth(truth, counted, floor);
    expect(r).to.deep.include({ seriesExpected: 4, seriesExact: 2, seriesMissing: 0, seriesUnexpected: 1, undelivered: 2, lost: 3, double: 3, expectedTotal: 40, countedTotal: 39 });
  });
});
