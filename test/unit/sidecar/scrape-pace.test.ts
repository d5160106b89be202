import { expect } from 'chai';
import { ScrapeCost, scrapeDelayMs, type PaceSettings } from '../../../sidecar/scrape-pace.ts';

describe('scrapeDelayMs: the pace of the scrape loop (sidecar/scrape-pace.ts)', () => {
  const shipped: PaceSettings = { intervalMs: 1_000, fastMs: 200, cpuShare: 0.01 };

  it('retries every 100 ms until a scrape succeeds, then doubles up to the steady pace', () => {
    expect([0, 1, 2, 3, 4, 50].map((n) => scrapeDelayMs(n, 0.4, shipped))).to.deep.equal([100, 100, 200, 200, 200, 200]);
    expect([0, 1, 2, 3, 4, 5, 6, 50].map((n) => scrapeDelayMs(n, 10, shipped))).to.deep.equal([100, 100, 200, 400, 800, 1_000, 1_000, 1_000]);
  });

  // The steady pace: the CPU a scrape costs ÷ the share of a core scrapes may take, between the
  // fast interval and the interval.
  const table: Array<[string, number | undefined, PaceSettings, number]> = [
    ['no cost measured yet: the interval', undefined, shipped, 1_000],
    ['a cheap scrape (0.4 ms): the fast interval', 0.4, shipped, 200],
    ['exactly 2 ms: 2 ms ÷ 1 % = 200 ms', 2, shipped, 200],
    ['3 ms: 300 ms', 3, shipped, 300],
    ['9 ms: 900 ms', 9, shipped, 900],
    ['an expensive scrape (30 ms, about 10 000 series): never slower than the interval', 30, shipped, 1_000],
    ['fast interval ≥ interval: the fast pace is off', 0.1, { ...shipped, fastMs: 1_000 }, 1_000],
    ['a pod asking for 100 ms gets 100 ms, not slower', 0.1, { ...shipped, intervalMs: 100 }, 100],
    ['a pod asking for 150 ms with a 200 ms fast interval: 150 ms', 0.1, { ...shipped, intervalMs: 150 }, 150],
    ['a 60 s interval and a cheap scrape: the fast interval', 0.4, { ...shipped, intervalMs: 60_000 }, 200],
    ['a share of 0 turns the fast pace off', 0.1, { ...shipped, cpuShare: 0 }, 1_000],
  ];
  for (const [name, cost, settings, expected] of table) {
    it(`${name} → ${expected} ms`, () => {
      expect(scrapeDelayMs(50, cost, settings)).to.equal(expected);
    });
  }
});

describe('ScrapeCost: the mean CPU time of a scrape', () => {
  it('starts at the first value and moves a quarter of the way to each new one', () => {
    const c = new ScrapeCost();
    expect(c.meanMs).to.equal(undefined);
    c.observe(1);
    expect(c.meanMs).to.equal(1);
    c.observe(5);
    expect(c.meanMs).to.equal(2);
    c.observe(2);
    expect(c.meanMs).to.equal(2);
  });

  it('ignores values that are not a CPU time', () => {
    const c = new ScrapeCost();
    c.observe(2);
    for (const bad of [NaN, -1, Infinity]) c.observe(bad);
    expect(c.meanMs).to.equal(2);
  });

  it('one garbage collection in a scrape (40 ms among 1 ms ones) slows the pace for a few scrapes, not for good', () => {
    const c = new ScrapeCost();
    const pace: PaceSettings = { intervalMs: 1_000, fastMs: 200, cpuShare: 0.01 };
    for (let i = 0; i < 10; i++) c.observe(1);
    expect(scrapeDelayMs(50, c.meanMs, pace)).to.equal(200);
    c.observe(40);
    expect(scrapeDelayMs(50, c.meanMs, pace)).to.equal(1_000);
    const after: number[] = [];
    for (let i = 0; i < 24; i++) {
      c.observe(1);
      after.push(Math.round(scrapeDelayMs(50, c.meanMs, pace)));
    }
    // (1 + 39 × 0.25 × 0.75^n) ms ÷ 1 %: 831 ms, 648 ms, … the fast interval again after 8.
    expect(after.slice(0, 2)).to.deep.equal([831, 648]);
    expect(after[6]).to.be.above(200);
    expect(after.slice(7)).to.deep.equal(Array(17).fill(200));
  });
});
