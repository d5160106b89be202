import { expect } from 'chai';
import { formatDuration, parseDuration } from '../../shared/duration.ts';

describe('parseDuration', () => {
  const ok: Array<[string, number]> = [['100ms', 100], ['1s', 1_000], ['1.5s', 1_500], ['1m30s', 90_000], ['2h', 7_200_000], [' 10s ', 10_000]];
  for (const [text, ms] of ok) it(`${text} = ${ms} ms`, () => expect(parseDuration(text)).to.deep.equal({ ok: true, ms }));
  for (const text of ['', '1', 's', '1d', '-1s', '1s2', 'abc']) {
    it(`rejects ${JSON.stringify(text)}`, () => expect(parseDuration(text).ok).to.equal(false));
  }
  it('formats back', () => expect([100, 1_000, 60_000, 3_600_000, 1_500].map(formatDuration)).to.deep.equal(['100ms', '1s', '1m', '1h', '1500ms']));
});
