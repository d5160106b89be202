/**
 * The highly available tier as manifests/overlays/ha-aggregator ships it, run for real on loopback
 * (scripts/aggregator-topology.ts reads the flags from the overlay): 2 routers, 6 aggregators, every
 * series sent to 2 of them (`-remoteWrite.shardByURLReplicas=2`), each aggregator labelling its
 * outputs `jobmetrics_replica=<pod name>`, into one Prometheus, which keeps both copies. Counted as
 * `max without (jobmetrics_replica)` (scripts/output-exactness.ts), the totals are exact with both
 * copies running, with one aggregator crashed and started again, and with one killed and left down,
 * in the middle of the load.
 *
 * The stream-aggregation rules run with a 1 s interval instead of 10 s; everything else is as shipped.
 */
import { expect } from 'chai';
import { sumOf, vmagentMetricsAt } from '../../scripts/aggregator-stack.ts';
import { compareWithTruth, countStored } from '../../scripts/output-exactness.ts';
import { runPodLoad, useTopology } from '../support/topology.ts';

const REPLICA = 'jobmetrics_replica';
const JOBS = 3;
const SERIES = 30;

describe('HA aggregator tier (manifests/overlays/ha-aggregator): two copies of every output, no double count', function () {
  this.timeout(120_000);
  const tier = useTopology('ha-aggregator');

  /** `pods` pods of namespace `ns`, started 100 ms apart; `during` runs once half of them started. */
  const load = (ns: string, pods: number, seed: number, during?: () => Promise<void>): Promise<Map<string, number>> =>
    runPodLoad(tier(), { namespace: ns, pods, jobs: JOBS, series: SERIES, seed, lifetimeMs: { min: 2_000, spread: 3_000 }, during });

  it('runs exactly the overlay: 2 routers, 6 aggregators, 2 copies of each series, a replica label from the pod name', () => {
    const { spec } = tier();
    expect([spec.routers, spec.shards]).to.deep.equal([2, 6]);
    expect(spec.routerArgs).to.include.members(['-remoteWrite.shardByURL', '-remoteWrite.shardByURLReplicas=2', '-remoteWrite.shardByURL.ignoreLabels=pod,jobmetrics_kind']);
    expect(spec.shardArgs).to.include(`-remoteWrite.label=${REPLICA}=$(POD_NAME)`);
  });

  it('both copies running: every output series is written by exactly 2 neighbouring aggregators, and max over the copies is exact', async () => {
    const ns = 'ha-both';
    const truth = await load(ns, 30, 21);
    const owners = new Map<string, number[]>();
    tier()
      .outputsByShard()
      .forEach((series, shard) => {
        for (const k of series.keys()) {
          if (!k.includes(`namespace="${ns}"`)) continue;
          const key = k.replace(new RegExp(`,?${REPLICA}="[^"]*"`), '').replace('{,', '{');
          owners.set(key, [...(owners.get(key) ?? []), shard]);
        }
      });
    expect(new Set(owners.keys())).to.deep.equal(new Set(truth.keys()));
    const n = tier().spec.shards;
    const notNeighbours = [...owners].filter(([, s]) => !(s.length === 2 && ((s[0]! + 1) % n === s[1] || (s[1]! + 1) % n === s[0])));
    expect(notNeighbours, 'outputs not written by exactly two neighbouring aggregators').to.deep.equal([]);

    const stored = await tier().rangeSamples(`{namespace="${ns}"}`, '10m');
    expect(stored.every((s) => (s.metric[REPLICA] ?? '').startsWith('jobmetrics-aggregator-shard-')), 'every stored series has its replica label').to.equal(true);
    const { counted, replicas } = countStored(stored, REPLICA);
    expect([...replicas.values()].every((r) => r === 2), 'two copies of each output in Prometheus').to.equal(true);
    const exact = compareWithTruth(truth, counted);
    expect(exact.examples).to.deep.equal([]);
    expect(exact).to.include({ seriesExpected: JOBS * SERIES, seriesExact: JOBS * SERIES, lost: 0, double: 0 });
    // Summing the copies instead of taking the higher would count everything twice.
    const summed = [...countStored(stored).counted.values()].reduce((a, b) => a + b, 0);
    expect(summed).to.equal(2 * exact.expectedTotal);
  });

  it('one aggregator crashed (SIGKILL) and started again in the middle of the load: max over the copies is still exact, its own copies never above the truth', async () => {
    const ns = 'ha-crash';
    const crashed = 1;
    const truth = await load(ns, 30, 23, () => tier().restart('shard', crashed, 'SIGKILL'));
    const stored = await tier().rangeSamples(`{namespace="${ns}"}`, '10m');
    const exact = compareWithTruth(truth, countStored(stored, REPLICA).counted);
    expect(exact.examples).to.deep.equal([]);
    expect(exact).to.include({ seriesExpected: JOBS * SERIES, seriesExact: JOBS * SERIES, lost: 0, double: 0 });
    // The restarted aggregator's copies went on after the crash, never above the truth.
    const own = countStored(stored.filter((s) => s.metric[REPLICA] === `jobmetrics-aggregator-shard-${crashed}`), REPLICA).counted;
    expect(own.size).to.be.above(0);
    expect([...own].filter(([k, v]) => v > (truth.get(k) ?? 0))).to.deep.equal([]);
  });

  it('one aggregator killed (SIGKILL) in the middle of the load and left down: still exact, its copies stop', async () => {
    const ns = 'ha-kill';
    const killed = 4;
    const truth = await load(ns, 30, 22, () => tier().stop('shard', killed, 'SIGKILL'));
    const stored = await tier().rangeSamples(`{namespace="${ns}"}`, '10m');
    const exact = compareWithTruth(truth, countStored(stored, REPLICA).counted);
    expect(exact.examples).to.deep.equal([]);
    expect(exact).to.include({ seriesExpected: JOBS * SERIES, seriesExact: JOBS * SERIES, lost: 0, double: 0 });
    // The killed aggregator's own copies are not above the truth (a crash only loses), and its
    // share of the inputs waits in the routers' on-disk queues.
    const own = countStored(stored.filter((s) => s.metric[REPLICA] === `jobmetrics-aggregator-shard-${killed}`), REPLICA).counted;
    expect([...own].filter(([k, v]) => v > (truth.get(k) ?? 0))).to.deep.equal([]);
    const waiting = await Promise.all(tier().routers.map(async (r) => sumOf(await vmagentMetricsAt(r.url), 'vmagent_remotewrite_pending_data_bytes', (k) => k.includes(`url="${killed + 1}:`))));
    expect(waiting.some((bytes) => bytes > 0), `bytes queued for the killed aggregator per router: ${waiting.join(', ')}`).to.equal(true);
    await tier().start('shard', killed);
  });
});
