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
import { sumOf, vmagentMetricsAt } from '../../scripts/aggregator-stack.ts';
import { compareWithTruth, countStored } from '../../scripts/output-exactness.ts';
import { runPodLoad, useTopology } from '../support/topology.ts';

const NS = 'sharded';
const PODS = 50;
const JOBS = 4;
const SERIES = 30;

describe('sharded aggregator tier (manifests/overlays/sharded-aggregator): real vmagents, exact totals', function () {
  this.timeout(120_000);
  const tier = useTopology('sharded-aggregator');
  let truth = new Map<string, number>();

  it('runs exactly the overlay: 2 routers, 3 shards, the shipped flags', () => {
    const { spec } = tier();
    expect([spec.routers, spec.shards]).to.deep.equal([2, 3]);
    expect(spec.routerArgs).to.include.members(['-remoteWrite.shardByURL', '-remoteWrite.shardByURL.ignoreLabels=pod,jobmetrics_kind', '-sortLabels', '-remoteWrite.queues=1']);
    expect(spec.shardArgs).to.include.members(['-streamAggr.dropInput', '-remoteWrite.forcePromProto', '-remoteWrite.queues=1']);
  });

  it(`${PODS} pods of ${JOBS} jobs × ${SERIES} series, starting and ending throughout: the totals in Prometheus are exact`, async () => {
    truth = await runPodLoad(tier(), { namespace: NS, pods: PODS, jobs: JOBS, series: SERIES, seed: 12, lifetimeMs: { min: 1_500, spread: 4_000 } });
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
