import { expect } from 'chai';
import { readFileSync } from 'node:fs';
import { parse } from 'yaml';
import { aggrIntervals, DEFAULT_AGGR_CONFIG, deriveAggrConfig } from '../../../scripts/aggregator-stack.ts';

describe('aggregator-stack: the stream-aggregation config', () => {
  const shipped = readFileSync(DEFAULT_AGGR_CONFIG, 'utf8');

  it('aggrIntervals reads the interval and staleness every shipped rule shares: 10s, 15m', () => {
    expect(aggrIntervals(shipped)).to.deep.equal({ interval: '10s', staleness: '15m' });
  });

  it('deriveAggrConfig overrides only the intervals, and aggrIntervals reads them back', () => {
    const derived = deriveAggrConfig(shipped, { interval: '1s', staleness: '6s', ignoreFirst: '2s' });
    expect(aggrIntervals(derived)).to.deep.equal({ interval: '1s', staleness: '6s' });
    const strip = (rules: unknown): unknown =>
      (rules as Array<Record<string, unknown>>).map(({ interval: _i, staleness_interval: _s, ignore_first_sample_interval: _f, ...rest }) => rest);
    expect(strip(parse(derived))).to.deep.equal(strip(parse(shipped)));
    expect((parse(derived) as Array<Record<string, unknown>>).map((r) => r['ignore_first_sample_interval'])).to.deep.equal(['2s', '2s', '2s']);
  });

  const errors: Array<[string, string, RegExp]> = [
    ['rules that differ', '- {name: a, interval: 10s, staleness_interval: 15m}\n- {name: b, interval: 5s, staleness_interval: 15m}\n', /rule b has interval 5s, staleness_interval 15m; the first rule 10s, 15m/],
    ['a rule without staleness_interval', '- {name: a, interval: 10s}\n', /rule a lacks interval or staleness_interval/],
    ['no rules', '[]\n', /no rules/],
    ['not a list', 'interval: 10s\n', /expected a list of rules/],
  ];
  for (const [what, source, message] of errors) it(`aggrIntervals refuses ${what}`, () => expect(() => aggrIntervals(source)).to.throw(message));
});
