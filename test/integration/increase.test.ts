/**
 * `increase()` counts every run: the real vmagent (manifests/aggregator/stream-aggr.yaml at a 1 s
 * interval and a 4 s staleness interval) writing to the real Prometheus, fed the requests a sidecar
 * sends — once straight to vmagent, once through the gateway (gateway/). Each case states what the
 * runs counted and checks, over a window covering them:
 *   - the stored samples' increase as Prometheus computes it before extrapolation (every rise, a
 *     drop read as a reset, the first sample not counted) equals that truth exactly;
 *   - Prometheus' own `increase()` lies between the truth and the most its extrapolation can add.
 * Straight to vmagent, an output born or reborn with its whole value in its first sample is missed
 * (docs/semantics.md, "Counting where users look"); those rows say by how much, so a vmagent that
 * changes this fails here too.
 */
import { expect } from 'chai';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Gateway } from '../../gateway/gateway.ts';
import { startLocalGateway } from '../../scripts/local-gateway.ts';
import { startStack, type Stack } from '../../scripts/aggregator-stack.ts';
import { startTopology, type Topology } from '../../scripts/aggregator-topology.ts';
import { silentLogger } from '../../shared/log.ts';
import { closeIdleConnections, encodeWriteRequest, sendWriteRequest, type RwSeries } from '../../shared/remote-write.ts';

const INTERVAL = '1s';
const STALENESS_MS = 4_000;
/** A gap between runs longer than the staleness interval: every input of the output goes stale. */
const LONG_GAP_MS = STALENESS_MS + 2_000;

type Path = 'straight to vmagent' | 'through the gateway';

/** The increase of a counter's stored samples as Prometheus computes it before extrapolation. */
function rawIncrease(values: readonly number[]): number {
  let sum = 0;
  for (let i = 1; i < values.length; i++) sum += values[i]! >= values[i - 1]! ? values[i]! - values[i - 1]! : values[i]!;
  return sum;
}

describe('increase() counts every run: the gateway holds a series\' values one aggregation interval behind its 0', function () {
  this.timeout(180_000);
  let dir: string;
  let stack: Stack;
  let gateway: Gateway;
  const startedSec = Math.floor(Date.now() / 1000);
  let ns = 0;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'jobmetrics-increase-'));
    stack = await startStack({ dir, aggregationInterval: INTERVAL, stalenessInterval: `${STALENESS_MS / 1000}s` });
    gateway = await startLocalGateway({ aggregatorUrl: stack.remoteWriteUrl, aggregationInterval: INTERVAL, birthMargin: '1s', staleness: `${STALENESS_MS / 1000}s`, log: silentLogger });
  });
  after(async function () {
    this.timeout(60_000);
    await gateway?.close();
    await stack?.stop();
    closeIdleConnections();
    if (this.currentTest?.state !== 'failed') rmSync(dir, { recursive: true, force: true });
    else console.log(`logs kept in ${dir}`);
  });

  /** A namespace of its own per case: a new workload every time. */
  const newWorkload = (): string => `inc${process.pid}-${++ns}`;
  const url = (path: Path): string => (path === 'through the gateway' ? `${gateway.url}/api/v1/write` : stack.remoteWriteUrl);

  const series = (namespace: string, pod: string, name: string, points: Array<[number, number]>, extra: Array<[string, string]> = []): RwSeries => ({
    labels: [['__name__', name], ['namespace', namespace], ['job', 'w'], ['pod', pod], ['jobmetrics_kind', 'counter'], ...extra],
    samples: points.map(([value, timestampMs]) => ({ value, timestampMs })),
  });
  const push = async (path: Path, ...s: RwSeries[]): Promise<void> => {
    const out = await sendWriteRequest(url(path), encodeWriteRequest(s), { timeoutMs: 5_000 });
    if (!out.ok) throw out.error;
  };

  /**
   * One run as the sidecar delivers it: the 0 alone at the first scrape, then (`ms` later) the
   * final value after the 0 again (the last acknowledged sample goes first). `ms` 0: a run
   * shorter than one scrape, its 0 and value in one request.
   */
  const run = async (path: Path, namespace: string, pod: string, count: number, ms: number, name = 'items_total', extra: Array<[string, string]> = []): Promise<void> => {
    const t0 = Date.now();
    if (ms > 0) {
      await push(path, series(namespace, pod, name, [[0, t0 - 1]], extra));
      await sleep(ms);
    }
    await push(path, series(namespace, pod, name, [[0, t0 - 1], [count, Date.now()]], extra));
  };

  /** Until the gateway holds nothing: everything sent so far has reached vmagent. */
  const drained = async (): Promise<void> => {
    while (!/ 0$/m.test(await gateway.registry.getSingleMetricAsString('jobmetrics_gateway_held_samples'))) await sleep(100);
  };
  /** Waits until the gateway holds nothing and every output is in Prometheus. */
  const settle = async (): Promise<void> => {
    await drained();
    await stack.flush();
  };

  /** The stored samples of one output series over every run of the test so far. */
  const stored = async (namespace: string, name = 'items_total', matchers = ''): Promise<number[]> => {
    const range = Math.floor(Date.now() / 1000) - startedSec + 10;
    const selector = `${name}{namespace="${namespace}"${matchers}}`;
    const res = await fetch(`${stack.prometheusUrl}/api/v1/query`, { method: 'POST', body: new URLSearchParams({ query: `${selector}[${range}s]` }) });
    const body = (await res.json()) as { data: { result: Array<{ values: Array<[number, string]> }> } };
    expect(body.data.result.length, `${selector}: one output series`).to.equal(1);
    return body.data.result[0]!.values.map(([, v]) => Number(v));
  };

  /** Prometheus' increase() over the same window, checked against the truth and its extrapolation bound. */
  const checkIncrease = async (namespace: string, truth: number): Promise<void> => {
    const range = Math.floor(Date.now() / 1000) - startedSec + 10;
    const [r] = await stack.query(`increase(items_total{namespace="${namespace}"}[${range}s])`);
    const values = await stored(namespace);
    // Extrapolation adds at most 1.1 average sample spacings at each end of the sampled span.
    const maxFactor = 1 + (2 * 1.1) / Math.max(1, values.length - 1);
    expect(r?.value, `increase(): samples ${values.join(',')}`).to.be.within(truth, truth * maxFactor + 1e-9);
  };

  const table: Array<{ path: Path; truth: number; missed: number }> = [];
  for (const [path, expectCounted] of [
    ['straight to vmagent', false],
    ['through the gateway', true],
  ] as const) {
    it(`${path}: a new workload's single run shorter than one scrape (its 0 and its 240 in one request) is ${expectCounted ? 'counted: 240' : 'missed: 0'}`, async () => {
      const w = newWorkload();
      await run(path, w, 'p1', 240, 0);
      await settle();
      const values = await stored(w);
      expect(rawIncrease(values), `stored ${values.join(',')}`).to.equal(expectCounted ? 240 : 0);
      if (expectCounted) await checkIncrease(w, 240);
      table.push({ path, truth: 240, missed: 240 - rawIncrease(values) });
    });

    it(`${path}: a CronJob-like workload, 3 runs of the same count (100) with gaps longer than the staleness interval, is ${expectCounted ? 'counted: 300' : 'missed: 0'}`, async () => {
      const w = newWorkload();
      for (let i = 1; i <= 3; i++) {
        // Straight to vmagent each run is one request, so no aggregation flush can fall between
        // its 0 and its value by chance (the miss is then certain, not likely).
        await run(path, w, `p${i}`, 100, expectCounted ? 300 : 0);
        await drained();
        if (i < 3) await sleep(LONG_GAP_MS);
      }
      await settle();
      const values = await stored(w);
      expect(rawIncrease(values), `stored ${values.join(',')}`).to.equal(expectCounted ? 300 : 0);
      if (expectCounted) await checkIncrease(w, 300);
      table.push({ path, truth: 300, missed: 300 - rawIncrease(values) });
    });
  }

  it('through the gateway: runs that overlap (3 pods, each 0 then its value while the others run) are counted exactly: 50 + 70 + 5', async () => {
    const w = newWorkload();
    await Promise.all([run('through the gateway', w, 'a', 50, 1_000), sleep(300).then(() => run('through the gateway', w, 'b', 70, 1_500)), sleep(600).then(() => run('through the gateway', w, 'c', 5, 0))]);
    await settle();
    expect(rawIncrease(await stored(w))).to.equal(125);
    await checkIncrease(w, 125);
  });

  it('through the gateway: a histogram\'s _bucket, _count and _sum of one short run are each counted exactly, so histogram_quantile over increase() is right', async () => {
    const w = newWorkload();
    const buckets: Array<[string, number]> = [['0.1', 3], ['1', 9], ['+Inf', 10]];
    await Promise.all([
      ...buckets.map(([le, n]) => run('through the gateway', w, 'p1', n, 400, 'latency_seconds_bucket', [['le', le]])),
      run('through the gateway', w, 'p1', 10, 400, 'latency_seconds_count'),
      run('through the gateway', w, 'p1', 4.5, 400, 'latency_seconds_sum'),
    ]);
    await settle();
    for (const [le, n] of buckets) expect(rawIncrease(await stored(w, 'latency_seconds_bucket', `,le="${le}"`)), `le=${le}`).to.equal(n);
    expect(rawIncrease(await stored(w, 'latency_seconds_count'))).to.equal(10);
    expect(rawIncrease(await stored(w, 'latency_seconds_sum'))).to.equal(4.5);
    const range = Math.floor(Date.now() / 1000) - startedSec + 10;
    const [q] = await stack.query(`histogram_quantile(0.5, sum by (le) (increase(latency_seconds_bucket{namespace="${w}"}[${range}s])))`);
    // 5 of 10 observations: the 2nd of the 6 between 0.1 and 1, linear inside the bucket.
    expect(q?.value).to.be.closeTo(0.1 + (0.9 * 2) / 6, 1e-9);
  });

  it('through the gateway: a vmagent restart between two runs of the same count (100 each) loses nothing: 200', async () => {
    const w = newWorkload();
    await run('through the gateway', w, 'p1', 100, 300);
    await settle();
    await stack.restartVmagent('SIGTERM');
    await run('through the gateway', w, 'p2', 100, 300);
    await settle();
    const values = await stored(w);
    expect(rawIncrease(values), `stored ${values.join(',')}`).to.equal(200);
    await checkIncrease(w, 200);
  });

  after(() => {
    if (process.env['JOBMETRICS_SEMANTICS_REPORT']) for (const r of table) console.log(`${r.path}: truth ${r.truth}, missed by increase(): ${r.missed}`);
  });
});

/**
 * The same promise through the scaled-out tiers the overlays ship (scripts/aggregator-topology.ts:
 * routers sharding by every label but `pod` over aggregating shards; with HA, two copies of every
 * output labelled `jobmetrics_replica`): the gateway in front of the routers, as in a cluster, with
 * a margin of 2 s for the router hop. Each copy of each output is checked on its own: with HA a
 * query reads `max without (jobmetrics_replica)`, so every copy must be exact.
 */
for (const overlay of ['sharded-aggregator', 'ha-aggregator'] as const) {
  describe(`increase() counts every run through the gateway and the ${overlay} overlay's tier`, function () {
    this.timeout(180_000);
    let dir: string;
    let tier: Topology;
    let gateway: Gateway;
    let ns = 0;
    const startedSec = Math.floor(Date.now() / 1000);

    before(async function () {
      this.timeout(90_000);
      dir = mkdtempSync(join(tmpdir(), `jobmetrics-increase-${overlay}-`));
      tier = await startTopology({ dir, overlay, aggregationInterval: INTERVAL, stalenessInterval: `${STALENESS_MS / 1000}s` });
      // A margin of 2 s: the routers hold what they forward for up to their flush interval (1 s).
      gateway = await startLocalGateway({ aggregatorUrl: tier.remoteWriteUrl, aggregationInterval: INTERVAL, birthMargin: '2s', staleness: `${STALENESS_MS / 1000}s`, log: silentLogger });
    });
    after(async function () {
      this.timeout(60_000);
      await gateway?.close();
      await tier?.close();
      closeIdleConnections();
      if (this.currentTest?.state !== 'failed') rmSync(dir, { recursive: true, force: true });
      else console.log(`logs kept in ${dir}`);
    });

    const push = async (namespace: string, pod: string, points: Array<[number, number]>): Promise<void> => {
      const s: RwSeries = {
        labels: [['__name__', 'items_total'], ['namespace', namespace], ['job', 'w'], ['pod', pod], ['jobmetrics_kind', 'counter']],
        samples: points.map(([value, timestampMs]) => ({ value, timestampMs })),
      };
      const out = await sendWriteRequest(`${gateway.url}/api/v1/write`, encodeWriteRequest([s]), { timeoutMs: 5_000 });
      if (!out.ok) throw out.error;
    };
    /** Until the gateway holds nothing: everything sent so far is on its way to the tier. */
    const drained = async (): Promise<void> => {
      while (!/ 0$/m.test(await gateway.registry.getSingleMetricAsString('jobmetrics_gateway_held_samples'))) await sleep(100);
    };
    const settle = async (): Promise<void> => {
      await drained();
      await tier.flush();
    };
    /** Each stored copy's increase before extrapolation. */
    const copies = async (namespace: string): Promise<number[]> => {
      const range = `${Math.floor(Date.now() / 1000) - startedSec + 10}s`;
      const series = await tier.rangeSamples(`items_total{namespace="${namespace}"}`, range);
      return series.map((s) => rawIncrease(s.samples.map(([, v]) => v)));
    };
    const copiesExpected = overlay === 'ha-aggregator' ? 2 : 1;

    // The first run is a new workload's first run too: its output is born in the tier.
    it(`3 runs of the same count (100) with gaps longer than the staleness interval: every copy (${copiesExpected}) counts 300`, async () => {
      const w = `tier${process.pid}-${++ns}`;
      for (let i = 1; i <= 3; i++) {
        const t0 = Date.now();
        await push(w, `p${i}`, [[0, t0 - 1]]);
        await sleep(300);
        await push(w, `p${i}`, [[0, t0 - 1], [100, Date.now()]]);
        await drained();
        // The gap starts once the routers have handed the run on (their flush interval is 1 s).
        if (i < 3) await sleep(LONG_GAP_MS + 1_000);
      }
      await settle();
      expect(await copies(w)).to.deep.equal(Array(copiesExpected).fill(300));
    });
  });
}
