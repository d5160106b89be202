import { expect } from 'chai';
import { mayHaveArrived, scrapeDelayMs } from '../../../sidecar/sidecar.ts';

describe('scrapeDelayMs: fast first scrapes, then the interval', () => {
  it('retries every 100 ms until a scrape succeeds, then doubles up to the interval', () => {
    expect([0, 1, 2, 3, 4, 5, 6, 50].map((n) => scrapeDelayMs(n, 1_000))).to.deep.equal([100, 100, 200, 400, 800, 1_000, 1_000, 1_000]);
    expect([0, 1, 2].map((n) => scrapeDelayMs(n, 150))).to.deep.equal([100, 100, 150]);
  });
});

describe('mayHaveArrived: which failed deliveries may still have been counted', () => {
  const err = (message: string, code?: string): Error => {
    const cause = Object.assign(new Error(message), code ? { code } : {});
    return new Error(`remote write POST x: ${message}`, { cause });
  };
  const cases: Array<[string, Parameters<typeof mayHaveArrived>[0], boolean]> = [
    ['HTTP 503 (answered: not stored)', { ok: false, retryable: true, status: 503, error: err('503') }, false],
    ['HTTP 400', { ok: false, retryable: false, status: 400, error: err('400') }, false],
    ['connection refused', { ok: false, retryable: true, error: err('connect ECONNREFUSED', 'ECONNREFUSED') }, false],
    ['DNS failure', { ok: false, retryable: true, error: err('getaddrinfo ENOTFOUND', 'ENOTFOUND') }, false],
    ['deadline before any attempt', { ok: false, retryable: true, error: new Error('remote write POST x: deadline passed before attempt 1') }, false],
    ['timeout after sending', { ok: false, retryable: true, error: err('no complete response within 998 ms') }, true],
    ['connection reset', { ok: false, retryable: true, error: err('socket hang up', 'ECONNRESET') }, true],
  ];
  for (const [name, outcome, want] of cases) {
    it(`${name}: ${want}`, () => {
      expect(mayHaveArrived(outcome)).to.equal(want);
    });
  }
});
