/**
 * A scaled-out aggregator tier (scripts/aggregator-topology.ts) for one mocha suite, and the load
 * of simulated pods the tier tests put through it.
 */
import { expect } from 'chai';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { startTopology, type Topology } from '../../scripts/aggregator-topology.ts';
import { addInto } from '../../scripts/output-exactness.ts';
import { runSimulatedPod, type PodResult, type PodTiming } from '../../scripts/simulated-pod.ts';
import { seeded } from '../../scripts/seeded-random.ts';
import { closeIdleConnections } from '../../shared/remote-write.ts';

/**
 * Registers the suite's hooks for the tier `overlay` ships (`sharded-aggregator`,
 * `ha-aggregator`): `before all` starts it in a fresh temporary folder, `after all` stops it and
 * removes the folder, unless a test failed: then its logs and data are kept and the folder is
 * printed. The rules aggregate every 1 s instead of 10 s, as in the other integration tests, with a
 * staleness interval (1 m) no test outlives; everything else is as shipped.
 *
 * Returns the running tier; calling it before `before all` has run throws.
 */
export function useTopology(overlay: string): () => Topology {
  let dir = '';
  let topology: Topology | undefined;
  let failed = false;

  before(async function () {
    this.timeout(90_000);
    dir = mkdtempSync(join(tmpdir(), `jobmetrics-${overlay}-`));
    topology = await startTopology({ dir, overlay, aggregationInterval: '1s', stalenessInterval: '1m' });
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

  return () => {
    if (!topology) throw new Error(`topology ${overlay} not started`);
    return topology;
  };
}

export interface PodLoad {
  readonly namespace: string;
  readonly pods: number;
  /** Pod i belongs to workload `job-<i mod jobs>`. */
  readonly jobs: number;
  /** Counter series per pod. */
  readonly series: number;
  /** Seed of the pods' lifetimes and increments (scripts/seeded-random.ts). */
  readonly seed: number;
  /** Each pod lives `min` plus a random share of `spread` milliseconds. */
  readonly lifetimeMs: { readonly min: number; readonly spread: number };
  /** Runs once half of the pods have started: a fault in the middle of the load. */
  readonly during?: (() => Promise<void>) | undefined;
}

/**
 * Simulated pods (scripts/simulated-pod.ts: the sidecar's series store, encoder and delivery) of
 * `load`, started 100 ms apart and writing to the tier's Service, each ending with its final flush.
 * Asserts that every final flush was delivered, waits until the tier has delivered everything to
 * Prometheus, and returns the pods' summed ground truth by output series key.
 */
export async function runPodLoad(tier: Topology, load: PodLoad): Promise<Map<string, number>> {
  const random = seeded(load.seed);
  const timing: PodTiming = { remoteWriteUrl: tier.remoteWriteUrl, pushIntervalMs: 1_000, scrapeIntervalMs: 500, flushTimeoutMs: 10_000, stalenessMs: 60_000, random };
  const running: Array<Promise<PodResult>> = [];
  let fault: Promise<void> | undefined;
  for (let i = 0; i < load.pods; i++) {
    if (i === Math.floor(load.pods / 2) && load.during) fault = load.during();
    const job = `job-${i % load.jobs}`;
    const lifetimeMs = load.lifetimeMs.min + Math.floor(random() * load.lifetimeMs.spread);
    running.push(runSimulatedPod({ namespace: load.namespace, job, pod: `${job}-${i}`, series: load.series, lifetimeMs }, timing));
    await sleep(100);
  }
  const results = await Promise.all(running);
  await fault;
  expect(results.filter((r) => !r.finalDelivered).map((r) => r.pod), 'pods whose final flush failed').to.deep.equal([]);
  const truth = new Map<string, number>();
  for (const r of results) addInto(truth, r.truth);
  await tier.flush();
  return truth;
}
