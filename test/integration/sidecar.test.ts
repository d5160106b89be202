/**
 * The sidecar end to end, nothing mocked ("Integration tests"): real vmagent with the
 * shipped stream-aggregation config, real Prometheus with the remote-write receiver, real sample
 * jobs and real sidecar processes in real PID namespaces. Every assertion compares Prometheus'
 * aggregated value with what the jobs really counted: 0 lost, 0 counted twice.
 */
import { expect } from 'chai';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { measureScenario } from '../../bench/sidecar-memory.ts';
import { startStack, type Stack } from '../../scripts/aggregator-stack.ts';
import { SIDECAR_MEMORY } from '../../shared/sidecar-memory.ts';
import { pidNamespaceSupport, readTruth } from '../../scripts/local-pod.ts';
import { loadState } from '../../sidecar/state.ts';
import { SIDECAR_UID } from '../../webhook/mutate.ts';
import { uncompressSync } from 'snappy';
import { ensureBuilt } from '../support/build.ts';
import { decodeWriteRequest, type DecodedTimeSeries } from '../support/write-request.ts';
import { countedByPrometheus, itemsCounted, startSamplePod, type SamplePodOptions } from '../support/pods.ts';

const NS = 'it';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The aggregated total of the sample job's work-item counter for one workload. */
async function aggregatedItems(stack: Stack, job: string): Promise<number> {
  await stack.flush();
  const r = await stack.query(`sum(demo_items_processed_total{namespace="${NS}",job="${job}"})`);
  return r[0]?.value ?? 0;
}

/** A sample pod in namespace NS whose sidecar delivers to the stack's vmagent. */
function startPod(stack: Stack, dir: string, o: Omit<SamplePodOptions, 'dir' | 'remoteWriteUrl' | 'namespace'>) {
  return startSamplePod({ dir, remoteWriteUrl: stack.remoteWriteUrl, namespace: NS, ...o });
}

/**
 * Waits until `condition` holds: a signal sent before the containers have started would test
 * nothing (on a loaded machine Node alone can take seconds to start).
 */
async function until(condition: () => boolean, what: string, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`not within ${timeoutMs} ms: ${what}`);
    await sleep(50);
  }
}

/** Whether the pod's sidecar has seen the main container (its log says so). */
function sidecarSaw(dir: string, pod: string): boolean {
  try {
    return readFileSync(join(dir, `${pod}.sidecar.log`), 'utf8').includes('"main container seen"');
  } catch {
    return false;
  }
}

/** What a running job has counted so far (its truth file is rewritten per item: a read may catch it half-written). */
function countedSoFar(truthFile: string): number {
  for (;;) {
    try {
      return itemsCounted(readTruth(truthFile));
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return 0;
      if (!(error instanceof SyntaxError)) throw error;
    }
  }
}

function tmp(name: string): string {
  return mkdtempSync(join(tmpdir(), `jobmetrics-it-${name}-`));
}

describe('sidecar against real vmagent and Prometheus', function () {
  this.timeout(180_000);
  let stack: Stack;
  let dir: string;

  before(async function () {
    this.timeout(120_000);
    ensureBuilt();
    const ns = pidNamespaceSupport();
    if (!ns.ok) throw new Error(`these tests need real PID namespaces (root and unshare): ${ns.why}`);
    dir = tmp('main');
    stack = await startStack({ dir });
  });
  after(async () => {
    await stack?.stop();
  });

  it('one job: the aggregated total equals what the job counted', async () => {
    const p = await startPod(stack, dir, { job: 'one', pod: 'one-a', items: 137, durationMs: 1_500 });
    const { result, truth } = await p.done;
    expect([result.main.code, result.sidecar.code]).to.deep.equal([0, 0]);
    expect(result.summary?.['finalDelivered']).to.equal(true);
    expect(await aggregatedItems(stack, 'one')).to.equal(itemsCounted(truth));
    expect(itemsCounted(truth)).to.equal(137);

    // One pod's numbers (docs/sidecar.md): its log line and its termination message hold what it counted.
    const final = result.sidecarLog.find((l) => l['msg'] === 'final values');
    const values = (final?.['values'] ?? {}) as Record<string, unknown>;
    const lines = result.terminationMessage?.split('\n') ?? [];
    // Its deliveries, as its summary counted them: all acknowledged, none retried.
    expect(result.summary?.['deliveriesOk']).to.be.at.least(1);
    expect(lines[0]).to.equal(`jobmetrics final values: trigger=main-exited attempt=1 delivered=true series=${String(final?.['series'])} deliveries_ok=${String(result.summary?.['deliveriesOk'])} deliveries_failed=0 retries=0`);
    for (const outcome of ['ok', 'failed'] as const) {
      if (truth[outcome] === 0) continue;
      expect(values[`demo_items_processed_total{outcome="${outcome}"}`], outcome).to.equal(truth[outcome]);
      expect(lines, outcome).to.include(`demo_items_processed_total{outcome="${outcome}"} ${truth[outcome]}`);
    }
    expect(values['demo_item_duration_seconds_count']).to.equal(truth.observations);
    expect(final).to.not.have.property('truncated');
  });

  it('50 pods of one workload in parallel: one series per label set, the exact sum', async () => {
    // 150 Node processes on a 2-core machine: starting them 100 ms apart keeps a sidecar from
    // starting after its job has already ended (in a cluster each pod has its own CPU). Every job
    // runs longer than the 5 s it takes to start them all, so all 50 pods run at once.
    const pods = [];
    for (let i = 0; i < 50; i++) {
      pods.push(
        await startPod(stack, dir, {
          job: 'fifty',
          pod: `fifty-${i}`,
          items: 20 + i,
          durationMs: 6_000 + (i % 7) * 300,
          settleMs: 2_500,
          // Not the flush budget under test: 150 processes on 2 cores can take longer than 5 s.
          sidecar: { JOBMETRICS_INTERVAL: '500ms', JOBMETRICS_FLUSH_TIMEOUT: '30s' },
        }),
      );
      await sleep(100);
    }
    const done = await Promise.all(pods.map((p) => p.done));
    expect(done.filter((d) => d.result.main.code !== 0 || d.result.sidecar.code !== 0), 'every job and sidecar exited 0').to.have.length(0);
    const counted = done.reduce((s, d) => s + itemsCounted(d.truth), 0);
    expect(counted).to.equal(Array.from({ length: 50 }, (_, i) => 20 + i).reduce((a, b) => a + b, 0));
    expect(await aggregatedItems(stack, 'fifty')).to.equal(counted);
    const series = await stack.query(`count(demo_items_processed_total{namespace="${NS}",job="fifty"})`);
    expect(series[0]?.value, 'one output series per outcome, not per pod').to.be.at.most(2);
  });

  it('a job shorter than one scrape interval that counted in its first 100 ms', async () => {
    const p = await startPod(stack, dir, {
      job: 'short',
      pod: 'short-a',
      items: 9,
      durationMs: 90,
      settleMs: 400,
      sidecar: { JOBMETRICS_INTERVAL: '1s' },
    });
    const { result, truth } = await p.done;
    expect(result.sidecar.code).to.equal(0);
    expect(await aggregatedItems(stack, 'short')).to.equal(itemsCounted(truth));
  });

  it('a job that never exposes metrics: the sidecar exits 0 right after it, delivering nothing', async () => {
    const p = await startPod(stack, dir, {
      job: 'silent',
      pod: 'silent-a',
      items: 3,
      durationMs: 300,
      scrapeUrl: 'http://127.0.0.1:1/metrics',
      // A flush budget far above the bound below, so a sidecar that waited it out would fail.
      sidecar: { JOBMETRICS_FLUSH_TIMEOUT: '60s' },
    });
    const { result } = await p.done;
    expect(result.sidecar.code).to.equal(0);
    // The bound is the feature (the Job is not held up), with a wide margin for a loaded machine,
    // where the sidecar may even start after so short a job and wait out its 5 s never-seen grace.
    expect(result.sidecar.atMs - result.main.atMs).to.be.below(15_000);
    expect(result.summary?.['series']).to.equal(0);
    expect(await aggregatedItems(stack, 'silent')).to.equal(0);
  });

  it('a job whose metrics endpoint hangs: scrapes time out, the sidecar still exits 0 within the deadline', async () => {
    const hanging: Server = createServer(() => {
      // Never answers.
    });
    await new Promise<void>((r) => hanging.listen(0, '127.0.0.1', r));
    const port = (hanging.address() as { port: number }).port;
    try {
      const p = await startPod(stack, dir, {
        job: 'hang',
        pod: 'hang-a',
        items: 5,
        durationMs: 500,
        scrapeUrl: `http://127.0.0.1:${port}/metrics`,
      });
      const { result } = await p.done;
      expect(result.sidecar.code).to.equal(0);
      // The bound is the feature: the final flush ends within the 5 s flush timeout, however the
      // endpoint behaves. The sidecar measures it from the exit it noticed; how late a loaded
      // machine lets it notice is not the flush's doing. It takes a few hundred ms.
      expect(result.summary?.['flushMs']).to.be.below(5_000);
      expect(result.summary?.['scrapeFailures']).to.be.greaterThan(0);
    } finally {
      hanging.closeAllConnections();
      hanging.close();
    }
  });

  it('a counter reset inside a pod (the main process restarted its counters) is summed exactly', async () => {
    // The histogram has no labels, so the restarted process exposes it at 0 at once and the
    // decrease shows. (A labelled child that reappears only later, at a value not below its old
    // one, cannot be told from a running counter: neither by us nor by Prometheus.)
    const p = await startPod(stack, dir, { job: 'reset', pod: 'reset-a', items: 120, durationMs: 2_400, restartAt: 60 });
    const { result, truth } = await p.done;
    expect(truth.observations).to.equal(120);
    await stack.flush();
    const count = await stack.query(`demo_item_duration_seconds_count{namespace="${NS}",job="reset"}`);
    expect(count[0]?.value).to.equal(120);
    const resets = result.sidecarLog.filter((l) => l['msg'] === 'counter reset in the main container');
    expect(resets.length, 'the sidecar saw the reset').to.be.greaterThan(0);
  });

  it('histogram buckets, _sum and _count sum exactly across pods', async () => {
    const pods = await Promise.all(
      [40, 70, 90].map((items, i) => startPod(stack, dir, { job: 'histo', pod: `histo-${i}`, items, durationMs: 800 })),
    );
    const done = await Promise.all(pods.map((p) => p.done));
    await stack.flush();
    const buckets = await stack.query(`demo_item_duration_seconds_bucket{namespace="${NS}",job="histo"}`);
    const byLe = Object.fromEntries(buckets.map((b) => [b.metric['le'], b.value]));
    const want: Record<string, number> = {};
    for (const d of done) for (const [le, n] of Object.entries(d.truth.buckets)) want[le === '+Inf' ? '+Inf' : le] = (want[le] ?? 0) + n;
    expect(byLe).to.deep.equal(want);
    const count = await stack.query(`demo_item_duration_seconds_count{namespace="${NS}",job="histo"}`);
    expect(count[0]?.value).to.equal(200);
  });

  it('the job exiting non-zero: counts delivered, sidecar exits 0', async () => {
    const p = await startPod(stack, dir, { job: 'failing', pod: 'failing-a', items: 33, durationMs: 600, exitCode: 3 });
    const { result, truth } = await p.done;
    expect([result.main.code, result.sidecar.code]).to.deep.equal([3, 0]);
    expect(await aggregatedItems(stack, 'failing')).to.equal(itemsCounted(truth));
  });

  it('SIGKILL of the job: everything counted one interval before the kill is delivered', async () => {
    const p = await startPod(stack, dir, { job: 'killed', pod: 'killed-a', items: 40, durationMs: 400, settleMs: 60_000 });
    // It counts everything in 0.4 s, then idles: the kill comes > 1 interval after the last item.
    await until(() => sidecarSaw(dir, 'killed-a') && countedSoFar(p.truthFile) === 40, 'killed-a counted everything, watched');
    await sleep(1_000);
    p.pod.signal('main', 'SIGKILL');
    const { result, truth } = await p.done;
    expect(result.main.signal).to.equal('SIGKILL');
    expect(result.sidecar.code).to.equal(0);
    expect(await aggregatedItems(stack, 'killed')).to.equal(itemsCounted(truth));
  });

  it('SIGTERM to the sidecar while the job runs: it delivers at once, then follows the job to its exit', async () => {
    const p = await startPod(stack, dir, {
      job: 'sigterm',
      pod: 'sigterm-a',
      items: 60,
      durationMs: 3_000,
      settleMs: 400,
      // A budget far above the ~2 s this takes, so a loaded machine stays inside it.
      sidecar: { JOBMETRICS_FLUSH_TIMEOUT: '20s' },
    });
    // The job is counting (60 items in 3 s), and the sidecar has scraped it a few times.
    await until(() => sidecarSaw(dir, 'sigterm-a') && countedSoFar(p.truthFile) >= 10, 'sigterm-a counting, watched');
    await sleep(600);
    const sentAt = Date.now();
    p.pod.signal('sidecar', 'SIGTERM');
    const { result, truth } = await p.done;
    expect(result.sidecar.code).to.equal(0);
    expect(result.summary?.['trigger']).to.equal('signal');
    const messages = result.sidecarLog.map((l) => l['msg']);
    expect(messages).to.include('main container exited');
    // It delivered right after the signal, and again after the job's exit, well within the budget.
    expect(result.summary?.['pushes']).to.be.at.least(2);
    expect(result.sidecar.atMs - sentAt).to.be.below(20_000);
    expect(result.sidecar.atMs).to.be.at.least(result.main.atMs);
    expect(await aggregatedItems(stack, 'sigterm')).to.equal(itemsCounted(truth));
  });

  it('native mode: started before the job, it delivers at the job’s exit, then idles until SIGTERM', async () => {
    const p = await startPod(stack, dir, {
      job: 'native',
      pod: 'native-a',
      items: 44,
      durationMs: 800,
      sidecarFirstMs: 700,
      sidecar: { JOBMETRICS_MODE: 'native' },
    });
    const deadline = Date.now() + 20_000;
    while (!p.pod.exited().includes('main') && Date.now() < deadline) await sleep(100);
    // Its final delivery is over when it logs its summary, however long a loaded machine takes.
    const log = join(dir, 'native-a.sidecar.log');
    const summarized = (): boolean => existsSync(log) && readFileSync(log, 'utf8').includes('"msg":"summary');
    while (!summarized() && Date.now() < deadline) await sleep(100);
    await sleep(1_500);
    expect(p.pod.exited(), 'an exit now would make the kubelet restart it').to.deep.equal(['main']);
    const truth = JSON.parse(readFileSync(p.truthFile, 'utf8')) as { ok: number; failed: number };
    expect(await aggregatedItems(stack, 'native'), 'delivered at the exit, before any SIGTERM').to.equal(truth.ok + truth.failed);
    const sentAt = Date.now();
    p.pod.signal('sidecar', 'SIGTERM');
    const { result } = await p.done;
    expect(result.sidecar.code).to.equal(0);
    // The bound is the feature (it exits on SIGTERM, well inside the kubelet's default 30 s grace
    // period), with a wide margin for a loaded machine over the milliseconds it takes.
    expect(result.sidecar.atMs - sentAt).to.be.below(10_000);
    expect(result.summary?.['trigger']).to.equal('main-exited');
  });

  it('native mode, restartPolicy OnFailure: the job fails twice, then succeeds in the same pod; every attempt is delivered exactly', async () => {
    // pod-init restarts the main container like the kubelet (same pod, same sidecar), and sends
    // the native sidecar SIGTERM once the main container has finished for good.
    const p = await startPod(stack, dir, {
      job: 'on-failure',
      pod: 'on-failure-a',
      items: 30,
      durationMs: 600,
      settleMs: 400,
      failAttempts: 2,
      mainRestartPolicy: 'OnFailure',
      sidecarRestartPolicy: 'Always',
      restartDelayMs: 500,
      sidecarFirstMs: 700,
      sidecar: { JOBMETRICS_MODE: 'native' },
    });
    const { result, truth } = await p.done;
    expect(result.restarts, 'two restarts of the main container, none of the sidecar').to.deep.equal({ main: 2 });
    expect([result.main.code, result.sidecar.code]).to.deep.equal([0, 0]);
    const flushes = result.sidecarLog.filter((l) => typeof l['msg'] === 'string' && l['msg'].startsWith('summary'));
    // The last attempt's flush may be set off by the SIGTERM that ends a native sidecar once the
    // main container has finished for good, when it comes before the sidecar has seen the exit
    // (pod-init sends it at once; a busy machine can delay the exit watch): it is the same final
    // flush of the same values, and the exact total below is the proof.
    const lastTrigger = flushes[2]?.['trigger'] === 'signal' ? 'signal' : 'main-exited';
    expect(flushes.map((l) => [l['attempt'], l['trigger'], l['finalDelivered']]), 'a final flush per attempt').to.deep.equal([
      [1, 'main-exited', true],
      [2, 'main-exited', true],
      [3, lastTrigger, true],
    ]);
    expect(itemsCounted(truth), 'three runs of 30 items').to.equal(90);
    expect(await aggregatedItems(stack, 'on-failure')).to.equal(itemsCounted(truth));
  });

  it('native sidecar SIGKILLed and restarted with its state dir while the job counts: the exact total, nothing counted twice', async () => {
    const stateDir = tmp('state');
    const p = await startPod(stack, dir, {
      job: 'sidecar-restart',
      pod: 'sidecar-restart-a',
      items: 120,
      durationMs: 6_000,
      settleMs: 600,
      sidecarRestartPolicy: 'Always',
      restartDelayMs: 300,
      sidecarFirstMs: 700,
      sidecar: { JOBMETRICS_MODE: 'native', JOBMETRICS_STATE_DIR: stateDir },
    });
    // Kill it once a delivery with counted items has been acknowledged (its state says so), while
    // the job still counts: a fresh sidecar would then send a 0 and the whole value again.
    const acknowledged = async (): Promise<boolean> => {
      const s = loadState(stateDir, 'sidecar-restart-a');
      return s.found && s.ok && s.snapshot.series.some((x) => x.name === 'demo_items_processed_total' && (x.acked?.value ?? 0) > 0);
    };
    const deadline = Date.now() + 60_000;
    while (!(await acknowledged()) && Date.now() < deadline) await sleep(100);
    const countedAtKill = countedSoFar(p.truthFile);
    p.pod.signal('sidecar', 'SIGKILL');
    const { result, truth } = await p.done;
    expect(result.restarts).to.deep.equal({ sidecar: 1 });
    expect(result.main.code).to.equal(0);
    const messages = result.sidecarLog.map((l) => l['msg']);
    expect(messages, 'the second sidecar went on from the state').to.include('restarted: going on from the acknowledged state');
    expect(itemsCounted(truth)).to.equal(120);
    expect(countedAtKill, 'killed while the job was counting').to.be.within(1, 119);
    expect(await aggregatedItems(stack, 'sidecar-restart')).to.equal(itemsCounted(truth));
  });

  it('a mesh-like native sidecar before ours and an extra regular container: the main container’s exit is noticed at once', async () => {
    // Every container gets the kubelet's termination-message mount; ours runs as the shipped uid
    // (SIDECAR_UID, 65531) with every capability dropped, as injected, and is told which container
    // is main. The mesh proxy runs until SIGTERM; the extra container runs until the test has seen
    // our final flush (a fixed lifetime would be outlasted by a late start on a loaded machine).
    const release = join(dir, 'mesh-a.release');
    const p = await startPod(stack, dir, {
      job: 'mesh',
      pod: 'mesh-a',
      items: 40,
      durationMs: 800,
      settleMs: 400,
      sidecarFirstMs: 700,
      sidecarRestartPolicy: 'Always',
      kubeletMounts: true,
      sidecarUid: SIDECAR_UID,
      extraContainers: [
        { name: 'mesh', command: 'sleep', args: ['600'], restartPolicy: 'Always', before: true },
        { name: 'shipper', command: 'sh', args: ['-c', `until [ -e ${release} ]; do sleep 0.1; done`] },
      ],
      sidecar: { JOBMETRICS_MODE: 'native', JOBMETRICS_MAIN_CONTAINER: 'main' },
    });
    // Had the shipper been taken for part of the main container, this flush would never come.
    const flushed = (): boolean => existsSync(join(dir, 'mesh-a.sidecar.log')) && readFileSync(join(dir, 'mesh-a.sidecar.log'), 'utf8').includes('"msg":"summary');
    await until(flushed, 'mesh-a flushed while the shipper runs');
    writeFileSync(release, '');
    const { result, truth } = await p.done;
    expect([result.main.code, result.sidecar.code]).to.deep.equal([0, 0]);
    const seen = result.sidecarLog.find((l) => l['msg'] === 'main container seen');
    expect(seen?.['pids'], 'only the main container’s process').to.have.length(1);
    expect(result.summary?.['trigger'], 'flushed at the main container’s exit, not at SIGTERM').to.equal('main-exited');
    const flushedAt = Date.parse(String(result.summary?.['time']));
    expect(flushedAt, 'before the extra container ended').to.be.below(result.exits['shipper']?.atMs ?? 0);
    expect(await aggregatedItems(stack, 'mesh')).to.equal(itemsCounted(truth));
  });

  it('a pod deletion (SIGTERM to every container): everything the job counted is delivered', async () => {
    const p = await startPod(stack, dir, { job: 'deleted', pod: 'deleted-a', items: 30, durationMs: 300, settleMs: 30_000 });
    await until(() => sidecarSaw(dir, 'deleted-a') && countedSoFar(p.truthFile) === 30, 'deleted-a counted everything, watched');
    await sleep(1_000);
    p.pod.signal('*', 'SIGTERM');
    const { result, truth } = await p.done;
    expect([result.main.signal, result.sidecar.code]).to.deep.equal(['SIGTERM', 0]);
    expect(await aggregatedItems(stack, 'deleted')).to.equal(itemsCounted(truth));
  });
});

describe('sidecar when the aggregator is down', function () {
  this.timeout(180_000);
  let stack: Stack;
  let dir: string;
  before(async function () {
    this.timeout(120_000);
    ensureBuilt();
    dir = tmp('down');
    stack = await startStack({ dir });
  });
  after(async () => {
    await stack?.stop();
  });

  it('down when the job starts, up again before the flush deadline: nothing lost', async () => {
    await stack.stopVmagent();
    const p = await startPod(stack, dir, {
      job: 'down-up',
      pod: 'down-up-a',
      items: 50,
      durationMs: 1_000,
      sidecar: { JOBMETRICS_FLUSH_TIMEOUT: '20s' },
    });
    await sleep(2_500); // the job has exited; the sidecar is retrying its final delivery
    await stack.startVmagent();
    const { result, truth } = await p.done;
    expect(result.sidecar.code).to.equal(0);
    expect(result.summary?.['finalDelivered']).to.equal(true);
    expect(await aggregatedItems(stack, 'down-up')).to.equal(itemsCounted(truth));
  });

  it('down past the deadline: the sidecar exits 0 on time and logs what it dropped', async () => {
    await stack.stopVmagent();
    try {
      const p = await startPod(stack, dir, {
        job: 'down',
        pod: 'down-a',
        items: 10,
        durationMs: 300,
        sidecar: { JOBMETRICS_FLUSH_TIMEOUT: '2s' },
      });
      const { result } = await p.done;
      expect(result.sidecar.code).to.equal(0);
      // The bound is the feature (it gives up at its 2 s flush timeout rather than retrying on),
      // measured by the sidecar from the exit it noticed, with a wide margin for late timers.
      expect(result.summary?.['flushMs']).to.be.below(3 * 2_000 + 3_000);
      const summary = result.summary ?? {};
      expect(summary['finalDelivered']).to.equal(false);
      expect(summary['finalUndelivered']).to.be.greaterThan(0);
      expect(summary['level']).to.equal('error');
    } finally {
      await stack.startVmagent();
    }
  });
});

describe('sidecar across aggregator restarts and delivery gaps', function () {
  this.timeout(180_000);
  before(() => ensureBuilt());

  it('vmagent restarted while pods run: increase() counts everything exactly once', async () => {
    const dir = tmp('restart');
    const stack = await startStack({ dir });
    try {
      const pods = await Promise.all(
        [0, 1, 2].map((i) =>
          startPod(stack, dir, { job: 'restart', pod: `restart-${i}`, items: 150 + 10 * i, durationMs: 7_000, sidecar: { JOBMETRICS_FLUSH_TIMEOUT: '15s' } }),
        ),
      );
      // Mid-run in the jobs' own terms, with outputs downstream (a loaded machine may start the
      // pods seconds late).
      await until(() => pods.every((p, i) => countedSoFar(p.truthFile) >= (150 + 10 * i) / 2), 'every restart pod half-way');
      while (!(await stack.query(`demo_items_processed_total{namespace="${NS}",job="restart"}`)).some((s) => s.value > 0)) await sleep(250);
      await stack.restartVmagent('SIGTERM');
      const done = await Promise.all(pods.map((p) => p.done));
      await stack.flush();
      const truth = done.reduce((s, d) => s + itemsCounted(d.truth), 0);
      const counted = await countedByPrometheus(stack.prometheusUrl, `demo_items_processed_total{namespace="${NS}",job="restart"}`);
      expect(counted.resets, `the restart shows downstream as a reset: ${JSON.stringify(counted.histories)}`).to.be.greaterThan(0);
      expect(counted.total, JSON.stringify(counted.histories)).to.equal(truth);
    } finally {
      await stack.stop();
    }
  });

  it('a delivery gap longer than the staleness interval while other pods keep the output alive: nothing counted twice', async () => {
    const dir = tmp('gap');
    const stack = await startStack({ dir, stalenessInterval: '6s' });
    // A real HTTP hop in front of vmagent that can refuse this one pod's deliveries (503).
    let blocked = false;
    let forwarded = 0;
    const proxy = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        if (blocked) {
          res.writeHead(503).end('blocked by the test');
          return;
        }
        fetch(stack.remoteWriteUrl, { method: 'POST', headers: req.headers as Record<string, string>, body: Buffer.concat(chunks) }).then(
          async (r) => {
            if (r.ok) forwarded++;
            res.writeHead(r.status).end(await r.text());
          },
          () => res.writeHead(502).end(),
        );
      });
    });
    await new Promise<void>((r) => proxy.listen(0, '127.0.0.1', r));
    const proxyUrl = `http://127.0.0.1:${(proxy.address() as { port: number }).port}/api/v1/write`;
    try {
      const sidecar = { JOBMETRICS_STALENESS: '6s', JOBMETRICS_FLUSH_TIMEOUT: '10s' };
      const keeper = await startPod(stack, dir, { job: 'gap', pod: 'gap-keeper', items: 300, durationMs: 16_000, sidecar });
      const gapped = await startSamplePod({ dir, remoteWriteUrl: proxyUrl, namespace: NS, job: 'gap', pod: 'gap-a', items: 200, durationMs: 14_000, sidecar });
      await sleep(3_000);
      // A gap needs an acknowledged delivery before it (a loaded machine may start the pod late).
      while (forwarded === 0) await sleep(100);
      blocked = true;
      await sleep(9_000); // > 6 s staleness: vmagent forgets gap-a's series
      blocked = false;
      const done = await Promise.all([keeper.done, gapped.done]);
      await stack.flush();
      const truth = done.reduce((s, d) => s + itemsCounted(d.truth), 0);
      expect(done[1].result.summary?.['generation'], 'the gapped pod started a new generation').to.be.greaterThan(0);
      const counted = await countedByPrometheus(stack.prometheusUrl, `demo_items_processed_total{namespace="${NS}",job="gap"}`);
      // The premise too: the keeper's deliveries kept the output alive through the gap (had they
      // lapsed longer than the staleness interval, the output would have restarted: a reset).
      expect({ total: counted.total, outputRestarts: counted.resets }, JSON.stringify(counted.histories)).to.deep.equal({ total: truth, outputRestarts: 0 });
    } finally {
      proxy.close();
      await stack.stop();
    }
  });
});

describe('sidecar final flush against an aggregator that refuses (a real local HTTP server)', function () {
  this.timeout(60_000);
  let dir: string;
  before(() => {
    ensureBuilt();
    dir = tmp('refuse');
  });

  /** A remote-write endpoint on port 0 that answers every request with `answer`, noting when each came. */
  async function refusing(answer: (res: import('node:http').ServerResponse) => void): Promise<{ url: string; times: number[]; close: () => void }> {
    const times: number[] = [];
    const server: Server = createServer((req, res) => {
      times.push(Date.now());
      req.resume();
      req.on('end', () => answer(res));
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const url = `http://127.0.0.1:${(server.address() as { port: number }).port}/api/v1/write`;
    return { url, times, close: () => server.close() };
  }

  /** Runs one short job against `answer`; the requests of its final flush, and the summary line. */
  async function finalFlush(name: string, answer: (res: import('node:http').ServerResponse) => void) {
    const aggregator = await refusing(answer);
    try {
      const p = await startSamplePod({ dir, remoteWriteUrl: aggregator.url, namespace: NS, job: name, pod: `${name}-a`, items: 10, durationMs: 300, sidecar: { JOBMETRICS_FLUSH_TIMEOUT: '3s' } });
      const { result } = await p.done;
      const flushLine = result.sidecarLog.find((l) => l['msg'] === 'final flush');
      if (flushLine === undefined) throw new Error(`no "final flush" line in the sidecar's log`);
      const flushAt = Date.parse(String(flushLine['time']));
      return { code: result.sidecar.code, requests: aggregator.times.filter((t) => t >= flushAt).length, summary: result.summary ?? {} };
    } finally {
      aggregator.close();
    }
  }

  it('429 with Retry-After: 3600: one request, then an account naming the wait', async () => {
    const r = await finalFlush('ratelimited', (res) => res.writeHead(429, { 'Retry-After': '3600' }).end('slow down'));
    expect(r.code).to.equal(0);
    expect(r.requests).to.equal(1);
    expect(r.summary['finalDelivered']).to.equal(false);
    expect(String(r.summary['cause'])).to.match(/^the aggregator asked to retry after 3600 s \(HTTP 429\), past the flush deadline/);
    expect((r.summary['undelivered'] as string[]).some((v) => /^demo_items_processed_total\{.*\} \d+$/.test(v)), JSON.stringify(r.summary['undelivered'])).to.equal(true);
  });

  it('500 on every attempt: a few spaced attempts (at most 5) within the deadline, then the account', async () => {
    const r = await finalFlush('failing', (res) => res.writeHead(500).end('internal error'));
    expect(r.code).to.equal(0);
    expect(r.requests).to.be.within(2, 5);
    expect(String(r.summary['cause'])).to.match(/^the aggregator failed every attempt before the deadline \(\d attempts; last: .*HTTP 500: internal error\)/);
  });

  it('400: one request, and the cause says the aggregator rejected it (not a deadline)', async () => {
    const r = await finalFlush('rejected', (res) => res.writeHead(400).end('out of order sample'));
    expect(r.code).to.equal(0);
    expect(r.requests).to.equal(1);
    expect(String(r.summary['cause'])).to.match(/^the aggregator rejected the request \(remote write POST .* returned HTTP 400: out of order sample\)/);
  });
});

describe('sidecar memory at its limits (shared/sidecar-memory.ts, bench/sidecar-memory.ts)', function () {
  this.timeout(120_000);
  let dir: string;
  before(() => {
    ensureBuilt();
    dir = tmp('memory');
  });
  const limitMb = SIDECAR_MEMORY.limitBytes / 2 ** 20;
  // The bound is the feature: the kernel kills the sidecar at the injected limit, and a killed
  // sidecar fails the Job's pod. The derivation keeps a quarter of the limit as margin.
  for (const scenario of ['series', 'body', 'churn', 'oversize'] as const) {
    it(`${scenario}: the peak RSS stays under the injected ${limitMb} MiB limit`, async () => {
      const row = await measureScenario(scenario, dir, 8_000);
      expect(row.scrapes, 'the sidecar ran and wrote its summary').to.be.above(0);
      expect(row.peakRssMb, JSON.stringify(row)).to.be.below(limitMb);
      if (scenario === 'oversize') expect(row.scrapeFailures).to.equal(row.scrapes);
      else expect(row.series).to.be.above(0);
    });
  }
});

describe('sidecar against a hostile target (the real sidecar, a local target and receiver on port 0)', function () {
  this.timeout(60_000);
  before(() => ensureBuilt());

  it('clashing labels renamed, duplicates and bad values dropped and counted: the other series are still delivered', async () => {
    const dir = tmp('hostile');
    let n = 0;
    const target = createServer((_req, res) => {
      n++;
      // pod and exported_pod (once crashed the encoder), the same series twice in another label
      // order (once read as a reset every scrape), NaN and negative counters, a family typed twice,
      // a huge but valid OpenMetrics timestamp (once failed the whole scrape).
      const body = [
        '# TYPE clash counter',
        `clash_total{pod="p1",exported_pod="p2"} ${10 * n}`,
        '# TYPE dup counter',
        `dup_total{a="1",b="2"} ${10 * n}`,
        'dup_total{b="2",a="1"} 1',
        '# TYPE bad counter',
        'bad_total{v="nan"} NaN',
        'bad_total{v="neg"} -1',
        '# TYPE good counter',
        `good_total ${n} 12345678901234567890.123456789`,
        '# TYPE good gauge',
        '# EOF',
        '',
      ].join('\n');
      res.writeHead(200, { 'content-type': 'application/openmetrics-text; version=1.0.0' }).end(body);
    });
    const received: DecodedTimeSeries[][] = [];
    const receiver = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        received.push(decodeWriteRequest(uncompressSync(Buffer.concat(chunks)) as Buffer));
        res.writeHead(204).end();
      });
    });
    await new Promise<void>((r) => target.listen(0, '127.0.0.1', r));
    await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', r));
    const port = (s: Server) => (s.address() as { port: number }).port;
    try {
      const p = await startSamplePod({
        dir,
        remoteWriteUrl: `http://127.0.0.1:${port(receiver)}/api/v1/write`,
        scrapeUrl: `http://127.0.0.1:${port(target)}/metrics`,
        namespace: NS,
        job: 'hostile',
        pod: 'hostile-a',
        items: 5,
        durationMs: 2_000,
      });
      const { result } = await p.done;
      expect(result.sidecar.code).to.equal(0);
      const summary = result.summary ?? {};
      expect(summary['finalDelivered'], JSON.stringify(summary)).to.equal(true);
      const dropped = summary['droppedByReason'] as Record<string, number>;
      expect(dropped['duplicate']).to.be.above(0);
      expect(dropped['invalid-value']).to.be.above(0);
      const last = new Map(
        received.flat().map((s) => {
          const l = Object.fromEntries(s.labels.filter(([k]) => !['namespace', 'job', 'pod', 'jobmetrics_kind'].includes(k)));
          return [JSON.stringify(l), s.samples.at(-1)!.value] as const;
        }),
      );
      const scrapes = n;
      const clash = [...last].find(([k]) => k.includes('clash_total'));
      expect(clash?.[0]).to.equal(JSON.stringify({ __name__: 'clash_total', exported_exported_pod: 'p1', exported_pod: 'p2' }));
      const dup = [...last].find(([k]) => k.includes('dup_total'))!;
      // Never above what the target exposed (no reset read from the duplicate).
      expect(dup[1]).to.be.at.most(10 * scrapes).and.above(0);
      expect([...last.keys()].some((k) => k.includes('good_total'))).to.equal(true);
      expect([...last.keys()].some((k) => k.includes('bad_total'))).to.equal(false);
      const messages = result.sidecarLog.map((l) => `${String(l['msg'])} ${String(l['reason'] ?? '')}`);
      expect(messages.filter((m) => m === 'series dropped duplicate')).to.have.length(1);
      expect(messages).to.include('scrape accepted with a warning ');
    } finally {
      target.close();
      receiver.close();
    }
  });
});
