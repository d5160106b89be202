/**
 * Restarts in a pod, as the series store and the state file see them (docs/sidecar.md "Restarts"): the
 * main container restarted by the kubelet (restartPolicy OnFailure) and the sidecar itself
 * restarted, going on from a snapshot. Every delivery goes through a model of the aggregator's
 * `total` (docs/semantics.md): a newer sample adds its increase, a decrease is a reset that adds
 * the new value, an older or repeated sample is skipped. What it sums must equal what the job
 * counted: 0 lost, 0 counted twice.
 */
import { expect } from 'chai';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { MetricFamily } from '../../../shared/exposition/types.ts';
import { SeriesStore, type PushPlan } from '../../../sidecar/series-store.ts';
import { formatState, loadState, parseState, saveState, STATE_FILE } from '../../../sidecar/state.ts';

const POD = 'import-x7';
const items = (value: number): MetricFamily => ({ name: 'items', type: 'counter', samples: [{ name: 'items_total', labels: [], value }] });
const newStore = () => new SeriesStore({ namespace: 'ns', job: 'import', pod: POD, maxSeries: 100 });

/** vmagent's `total` over one input series per label set, as docs/semantics.md measured it. */
class Aggregator {
  readonly #last = new Map<string, { value: number; timestampMs: number }>();
  total = 0;
  receive(plan: PushPlan): void {
    for (const s of plan.series) {
      const key = JSON.stringify(s.labels);
      for (const p of s.samples) {
        const last = this.#last.get(key);
        if (last !== undefined && p.timestampMs <= last.timestampMs) continue;
        this.total += last === undefined ? p.value : p.value >= last.value ? p.value - last.value : p.value;
        this.#last.set(key, p);
      }
    }
  }
}

/** One scrape, one delivery, acknowledged. */
function scrapeAndDeliver(store: SeriesStore, agg: Aggregator, value: number, atMs: number): void {
  store.update([items(value)], atMs);
  const plan = store.plan();
  agg.receive(plan);
  store.acknowledge(plan, atMs + 5);
}

describe('the main container restarted in the same pod (restartPolicy OnFailure)', () => {
  // [values scraped per attempt]: the new process counts from 0 each time.
  const cases: Array<[string, number[][]]> = [
    ['restart to 0, then counting', [[3, 8], [0, 4, 6], [0, 9]]],
    ['the new process has already counted past the old value at its first scrape', [[3, 5], [7, 12]]],
    ['the new process counts less than the old one did', [[40], [2], [1]]],
    ['an attempt that counted nothing', [[5], [], [0, 0], [4]]],
  ];
  for (const [name, attempts] of cases) {
    it(`${name}: the sum of every attempt's last value, exactly`, () => {
      const store = newStore();
      const agg = new Aggregator();
      let t = 1_000;
      attempts.forEach((values, i) => {
        if (i > 0) store.mainRestarted();
        for (const v of values) scrapeAndDeliver(store, agg, v, (t += 1_000));
      });
      const truth = attempts.reduce((sum, values) => sum + (values.at(-1) ?? 0), 0);
      expect(agg.total).to.equal(truth);
    });
  }

  it('a restart to 0 without mainRestarted() is folded in as a counter reset, exactly', () => {
    const store = newStore();
    const agg = new Aggregator();
    scrapeAndDeliver(store, agg, 8, 1_000);
    scrapeAndDeliver(store, agg, 0, 2_000);
    scrapeAndDeliver(store, agg, 3, 3_000);
    expect(agg.total).to.equal(11);
    expect(store.plan().series[0]?.samples.at(-1)?.value, 'what is delivered never decreases').to.equal(11);
  });
});

describe('the sidecar restarted, going on from its snapshot', () => {
  it('the restarted store sends no new 0 and not the whole value again: the aggregator counts exactly', () => {
    const before = newStore();
    const agg = new Aggregator();
    scrapeAndDeliver(before, agg, 4, 1_000);
    scrapeAndDeliver(before, agg, 9, 2_000);
    const snap = parseState(formatState(before.snapshot()), POD);
    if (!snap.ok) throw new Error(snap.error);
    // SIGKILL; the main process counts on (9 → 15) while no sidecar runs.
    const after = newStore();
    after.restore(snap.snapshot);
    expect(after.hasUnstartedCounters, 'its explicit 0 was acknowledged before').to.equal(false);
    after.update([items(15)], 5_000);
    const plan = after.plan();
    expect(plan.series[0]?.samples, 'the acknowledged 9 at its own time, then 15').to.deep.equal([
      { value: 9, timestampMs: 2_000 },
      { value: 15, timestampMs: 5_000 },
    ]);
    agg.receive(plan);
    expect(agg.total).to.equal(15);
  });

  it('without the snapshot the same restart counts the value twice (what the state file prevents)', () => {
    const agg = new Aggregator();
    scrapeAndDeliver(newStore(), agg, 9, 2_000);
    scrapeAndDeliver(newStore(), agg, 15, 5_000);
    expect(agg.total).to.equal(24);
  });

  it('keeps folded resets and generations: a restart after a main-container restart and a new generation', () => {
    const before = newStore();
    const agg = new Aggregator();
    scrapeAndDeliver(before, agg, 6, 1_000);
    before.mainRestarted();
    scrapeAndDeliver(before, agg, 2, 2_000);
    before.startGeneration();
    scrapeAndDeliver(before, agg, 5, 3_000);
    const after = newStore();
    after.restore(before.snapshot());
    expect([after.generation, after.podLabel()]).to.deep.equal([1, `${POD}/gen1`]);
    scrapeAndDeliver(after, agg, 7, 4_000);
    expect(agg.total).to.equal(6 + 7);
  });

  it('a counter reset while no sidecar ran folds in as a reset', () => {
    const before = newStore();
    const agg = new Aggregator();
    scrapeAndDeliver(before, agg, 9, 1_000);
    const after = newStore();
    after.restore(before.snapshot());
    scrapeAndDeliver(after, agg, 2, 3_000);
    expect(agg.total).to.equal(11);
  });

  it('takes namespace, job and pod from its settings, never from the state file: a tampered file moves no series', () => {
    const before = newStore();
    const agg = new Aggregator();
    scrapeAndDeliver(before, agg, 9, 1_000);
    // Someone who can write the state directory rewrites the labels the sidecar sets.
    const file = JSON.parse(formatState(before.snapshot())) as { series: [string, string[], ...unknown[]][] };
    const tampered = file.series[0]!;
    expect(tampered[1], 'what a snapshot holds').to.deep.equal(['job', 'import', 'jobmetrics_kind', 'counter', 'namespace', 'ns']);
    tampered[1] = ['job', 'payroll', 'jobmetrics_kind', 'gauge', 'namespace', 'kube-system', 'pod', 'someone-else'];
    const snap = parseState(JSON.stringify(file), POD);
    if (!snap.ok) throw new Error(snap.error);
    const after = newStore();
    after.restore(snap.snapshot);
    expect(after.hasUnstartedCounters, 'still the same series: no new 0').to.equal(false);
    after.update([items(15)], 5_000);
    const plan = after.plan();
    expect(plan.series.map((s) => s.labels)).to.deep.equal([
      [['__name__', 'items_total'], ['job', 'import'], ['jobmetrics_kind', 'counter'], ['namespace', 'ns'], ['pod', POD]],
    ]);
    agg.receive(plan);
    expect(agg.total).to.equal(15);
    expect(after.finalValues().map((v) => v.labels)).to.deep.equal([[['job', 'import'], ['jobmetrics_kind', 'counter'], ['namespace', 'ns']]]);
  });

  it('a counter first seen before the restart, its 0 never acknowledged, keeps the same 0', () => {
    const before = newStore();
    before.update([items(3)], 1_000);
    const after = newStore();
    after.restore(before.snapshot());
    after.update([items(4)], 2_000);
    expect(after.plan().series[0]?.samples).to.deep.equal([
      { value: 0, timestampMs: 999 },
      { value: 4, timestampMs: 2_000 },
    ]);
  });
});

describe('state file (sidecar/state.ts)', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'sidecar-state-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('round-trips a snapshot through an atomic write, leaving no temporary file', () => {
    const store = newStore();
    store.update([items(5)], 1_000);
    store.acknowledge(store.plan(), 1_010);
    saveState(dir, store.snapshot());
    saveState(dir, store.snapshot());
    expect(readdirSync(dir)).to.deep.equal([STATE_FILE]);
    const r = loadState(dir, POD);
    expect(r.found && r.ok && r.snapshot).to.deep.equal(store.snapshot());
  });

  it('nothing there: not found (a first start)', () => {
    expect(loadState(dir, POD)).to.deep.equal({ found: false });
  });

  const bad: Array<[string, string, RegExp]> = [
    ['not JSON (cut short)', '{"format":1,"pod":', /not JSON/],
    ['another format', '{"format":2}', /format 1/],
    ['another pod', formatState({ pod: 'other-pod', generation: 0, series: [] }), /belongs to pod "other-pod"/],
    ['a bad generation', '{"format":1,"pod":"import-x7","generation":-1,"series":[]}', /generation/],
    ['a bad series', '{"format":1,"pod":"import-x7","generation":0,"series":[{"name":"a"}]}', /series\[0\]: not a list/],
    ['bad labels', '{"format":1,"pod":"import-x7","generation":0,"series":[["a",["x"],1,2,0,0,1,null,null,null,null]]}', /series\[0\]: labels/],
    ['half an acknowledgement', '{"format":1,"pod":"import-x7","generation":0,"series":[["a",[],1,2,0,0,1,1,null,null,null]]}', /both/],
  ];
  for (const [name, text, error] of bad) {
    it(`refuses ${name}, saying why`, () => {
      writeFileSync(join(dir, STATE_FILE), text);
      const r = loadState(dir, POD);
      expect(r.found && !r.ok && r.error).to.match(error);
    });
  }

  it('a write that cannot happen names the path', () => {
    expect(() => saveState(join(dir, 'missing'), newStore().snapshot())).to.throw(/cannot write the sidecar state .*missing/);
  });
});
