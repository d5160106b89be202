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

const REPLICA = 'jobmetrics_replica';
const JOBS = 3;
const SERIES = 30;

describe('HA aggregator tier (manifests/overlays/ha-aggregator): two copies of every output, no double count', function () {
  this.timeout(120_000);
  let dir = '';
  let topology: Topology | undefined;
  let failed = false;
  const tier = (): Topology => {
    if (!topology) throw new Error('topology not started');
    return topology;
  };

  /** `pods` pods of namespace `ns`, started 100 ms apart; `during` runs once half of them started. */
  const load = async (ns: string, pods: number, seed: number, during?: () => Promise<void>): Promise<Map<string, number>> => {
    const random = seeded(seed);
    const timing: PodTiming = { remoteWriteUrl: tier().remoteWriteUrl, pushIntervalMs: 1_000, scrapeIntervalMs: 500, flushTimeoutMs: 10_000, stalenessMs: 60_000, random };
    const running: Array<Promise<PodResult>> = [];
    let fault: Promise<void> | undefined;
    for (let i = 0; i < pods; i++) {
      if (i === Math.floor(pods / 2) && during) fault = during();
      running.push(runSimulatedPod({ namespace: ns, job: `job-${i % JOBS}`, pod: `job-${i % JOBS}-${i}`, series: SERIES, lifetimeMs: 2_000 + Math.floor(random() * 3_000) }, timing));
      await sleep(100);
    }
    const results = await Promise.all(running);
    await fault;
    expect(results.filter((r) => !r.finalDelivered).map((r) => r.pod), 'pods whose final flush failed').to.deep.equal([]);
    const truth = new Map<string, number>();
    for (const r of results) addInto(truth, r.truth);
    await tier().flush();
    return truth;
  };

  before(async function () {
    this.timeout(90_000);
    dir = mkdtempSync(join(tmpdir(), 'jobmetrics-ha-'));
    topology = await startTopology({ dir, overlay: 'ha-aggregator', aggregationInterval: '1s', stalenessInterval: '1m' });
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
