/**
 * The sharded aggregator tier as manifests/overlays/sharded-aggregator ships it, run for real on
 * loopback (scripts/aggregator-topology.ts: the routers' and shards' vmagent flags are read from the
 * overlay; only addresses, ports and paths are local): 2 routers sharding by every label but `pod`
 * over 3 aggregating shards, into one Prometheus. Simulated pods (scripts/simulated-pod.ts: the
 * sidecar's series store, encoder and delivery) start and end throughout, each with its final flush.
 *
 * The stream-aggregation rules run with a 1 s interval instead of 10 s, as in the other
 * integration tests; everything else is as shipped.
 */
import { expect } from 'chai';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { startTopology, type Topology } from '../../scripts/aggregator-topology.ts';
import { sumOf, vmagentMetricsAt } from '../../scripts/aggregator-stack.ts';
import { addInto, compareWithTruth, countStored } from '../../scripts/output-exactness.ts';
import { runSimulatedPod, type PodResult, type PodTiming } from '../../scripts/simulated-pod.ts';
import { seeded } from '../../scripts/seeded-random.ts';
import { closeIdleConnections } from '../../sidecar/remote-write.ts';

const NS = 'sharded';
const PODS = 50;
const JOBS = 4;
const SERIES = 30;

describe('sharded aggregator tier (manifests/overlays/sharded-aggregator): real vmagents, exact totals', function () {
  this.timeout(120_000);
  let dir = '';
  let topology: Topology | undefined;
  let failed = false;
  const truth = new Map<string, number>();
  let results: PodResult[] = [];
  const tier = (): Topology => {
    if (!topology) throw new Error('topology not started');
    return topology;
  };

  before(async function () {
    this.timeout(90_000);
    dir = mkdtempSync(join(tmpdir(), 'jobmetrics-sharded-'));
    topology = await startTopology({ dir, overlay: 'sharded-aggregator', aggregationInterval: '1s', stalenessInterval: '1m' });
  });
  afterEach(function () {
    if (this.currentTest?.state === 'failed') failed = true;
  });
  after(async function () {
    this.timeout(30_000);
    await topology?.close();
    closeIdleConnections();
    if (failed) console.log(`    logs and data kept in ${dir}`);
    else if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('runs exactly the overlay: 2 routers, 3 shards, the shipped flags', () => {
    const { spec } = tier();
    expect([spec.routers, spec.shards]).to.deep.equal([2, 3]);
    expect(spec.routerArgs).to.include.members(['-remoteWrite.shardByURL', '-remoteWrite.shardByURL.ignoreLabels=pod,jobmetrics_kind', '-sortLabels', '-remoteWrite.queues=1']);
    expect(spec.shardArgs).to.include.members(['-streamAggr.dropInput', '-remoteWrite.forcePromProto', '-remoteWrite.queues=1']);
  });

  it(`${PODS} pods of ${JOBS} jobs × ${SERIES} series, starting and ending throughout: the totals in Prometheus are exact`, async () => {
    const random = seeded(12);
    const timing: PodTiming = { remoteWriteUrl: tier().remoteWriteUrl, pushIntervalMs: 1_000, scrapeIntervalMs: 500, flushTimeoutMs: 10_000, stalenessMs: 60_000, random };
    const running: Array<Promise<PodResult>> = [];
    for (let i = 0; i < PODS; i++) {
      running.push(runSimulatedPod({ namespace: NS, job: `job-${i % JOBS}`, pod: `job-${i % JOBS}-${i}`, series: SERIES, lifetimeMs: 1_500 + Math.floor(random() * 4_000) }, timing));
      await sleep(100);
    }
    results = await Promise.all(running);
    for (const r of results) addInto(truth, r.truth);
    expect(results.filter((r) => !r.finalDelivered).map((r) => r.pod), 'pods whose final flush failed').to.deep.equal([]);

    await tier().flush();
    const stored = await tier().rangeSamples(`{namespace="${NS}"}`, '10m');
    const { counted } = countStored(stored);
    const exact = compareWithTruth(truth, counted);
    expect(exact.examples, 'series that differ: [key, truth, counted]').to.deep.equal([]);
    expect(exact).to.include({ seriesExpected: JOBS * SERIES, seriesExact: JOBS * SERIES, seriesMissing: 0, seriesUnexpected: 0, lost: 0, double: 0 });
    expect(exact.countedTotal).to.equal(exact.expectedTotal).and.to.be.above(0);
  });

  it('one output series per label set: no `pod`, no `jobmetrics_kind`, and as many series as the pods had distinct label sets', async () => {
    const now = await tier().query(`{namespace="${NS}"}`);
    expect(now.filter((s) => 'pod' in s.metric || 'jobmetrics_kind' in s.metric)).to.deep.equal([]);
    expect(now).to.have.length(truth.size);
    expect(now).to.have.length(JOBS * SERIES);
  });

  it('each output series came from exactly one shard, and every shard wrote some', () => {
    const byShard = tier().outputsByShard().map((m) => new Set([...m.keys()].filter((k) => k.includes(`namespace="${NS}"`))));
    const owners = new Map<string, number[]>();
    byShard.forEach((keys, shard) => {
      for (const k of keys) owners.set(k, [...(owners.get(k) ?? []), shard]);
    });
    expect([...owners].filter(([, s]) => s.length !== 1), 'series written by more than one shard').to.deep.equal([]);
    expect(new Set(owners.keys())).to.deep.equal(new Set(truth.keys()));
    expect(byShard.map((s) => s.size > 0)).to.deep.equal([true, true, true]);
  });

  it('both routers carried pods\' deliveries (the Service balances connections)', async () => {
    const received = await Promise.all(tier().routers.map(async (r) => sumOf(await vmagentMetricsAt(r.url), 'vmagent_rows_inserted_total')));
    expect(received.map((n) => n > 0)).to.deep.equal([true, true]);
  });
});
