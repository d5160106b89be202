import { expect } from 'chai';
import { FINAL_FLUSH_MAX_ATTEMPTS, finalFlushRetry, undeliveredCause, undeliveredValues } from '../../../sidecar/final-flush.ts';
import type { DeliveryOutcome } from '../../../shared/remote-write.ts';
import { SeriesStore } from '../../../sidecar/series-store.ts';

describe('final flush: policy and account', () => {
  it('spreads at most 5 attempts over the budget: ≥ 1/8 of it apart, backoff capped at 1/4', () => {
    expect(finalFlushRetry(10_000)).to.deep.equal({ maxAttempts: FINAL_FLUSH_MAX_ATTEMPTS, baseBackoffMs: 1_250, maxBackoffMs: 2_500, minDelayMs: 1_250 });
    expect(finalFlushRetry(400)).to.deep.equal({ maxAttempts: FINAL_FLUSH_MAX_ATTEMPTS, baseBackoffMs: 100, maxBackoffMs: 100, minDelayMs: 100 });
    // The longest possible wait between the first and the last attempt fits in the budget, and
    // the shortest reaches past its half (an aggregator back by then is still reached).
    for (const budget of [1_000, 3_000, 10_000, 60_000]) {
      const r = finalFlushRetry(budget);
      expect((r.maxAttempts - 1) * r.maxBackoffMs, `budget ${budget}`).to.be.at.most(budget);
      expect((r.maxAttempts - 1) * r.minDelayMs, `budget ${budget}`).to.be.at.least(budget / 2);
    }
  });

  const failed = (o: Partial<Extract<DeliveryOutcome, { ok: false }>> & { message: string }): DeliveryOutcome => {
    const { message, ...rest } = o;
    return { ok: false, retryable: true, attempts: 1, error: new Error(message), ...rest };
  };
  const causes: Array<[string, DeliveryOutcome | undefined, string]> = [
    ['no delivery started', undefined, 'the flush deadline passed before the final delivery could start'],
    ['400', failed({ status: 400, retryable: false, message: 'remote write POST u returned HTTP 400: bad' }), 'the aggregator rejected the request (remote write POST u returned HTTP 400: bad); the same request cannot succeed later, so it was not retried'],
    ['429 with Retry-After', failed({ status: 429, retryAfterMs: 3_600_000, message: 'm' }), 'the aggregator asked to retry after 3600 s (HTTP 429), past the flush deadline; after 1 attempt: m'],
    ['500', failed({ status: 500, attempts: 5, message: 'm' }), 'the aggregator failed every attempt before the deadline (5 attempts; last: m)'],
    ['timeout', failed({ attempts: 2, message: 'remote write POST u timed out: x' }), 'no answer from the aggregator before the flush deadline (2 attempts): remote write POST u timed out: x'],
    ['refused', failed({ attempts: 3, message: 'remote write POST u failed: connect ECONNREFUSED' }), 'the aggregator could not be reached (3 attempts): remote write POST u failed: connect ECONNREFUSED'],
  ];
  for (const [what, outcome, want] of causes) it(`names the cause: ${what}`, () => expect(undeliveredCause(outcome)).to.equal(want));

  it('lists the first 20 undelivered series by name, labels and value, and counts the rest', () => {
    const store = new SeriesStore({ namespace: 'ns', job: 'j', pod: 'p', maxSeries: 100 });
    store.update([{ name: 'c', type: 'counter', samples: Array.from({ length: 25 }, (_, i) => ({ name: 'c_total', labels: [['i', String(i)], ['pod', 'x']] as const, value: i })) }], 1_000);
    const { values, more } = undeliveredValues(store.plan());
    expect(values.length).to.equal(20);
    expect(values.slice(0, 2)).to.deep.equal(['c_total{exported_pod="x",i="0"} 0', 'c_total{exported_pod="x",i="1"} 1']);
    expect(more).to.equal(5);
  });
});
