/**
 * Real Job pods on a real node: the kubelet runs them through containerd and runc (pause as PID 1,
 * one cgroup per container, the sidecar as a non-root uid, native-sidecar ordering, grace
 * periods), jobmetrics is installed from manifests/install.yaml with the images built from the
 * project's Dockerfiles, and the API server reaches the webhook through its Service (kube-proxy).
 * Every expected value is the jobs' own ground truth (the sample job writes what it counted to
 * stdout); every actual value is what the in-cluster Prometheus holds after aggregation.
 */
import { expect } from 'chai';
import { loadState } from '../../sidecar/state.ts';
import { chmodSync, existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { basicAuthorization } from '../../gateway/aggregator-credentials.ts';
import { NETWORK, type Cluster } from '../../scripts/cluster/cluster.ts';
import { pidsWithArg, runCommand } from '../../scripts/cluster/host.ts';
import { get, kubectlOk } from '../../scripts/cluster/control-plane.ts';
import { ROOT } from '../../scripts/cluster/paths.ts';
import { waitForInjection } from '../../scripts/cluster/injection-check.ts';
import { packageVersion } from '../../scripts/version.ts';
import { CHART_DIR, runHelm } from '../../scripts/helm.ts';
import { panelQueries, substitute } from '../../dashboards/src/panel-queries.ts';
import { DURATION_BUCKETS } from '../../recorder/outcomes.ts';
import {
  apply,
  jobPods,
  labelledNamespace,
  promFetch,
  promQuery,
  PYTHON_JOB_IMAGE,
  SAMPLE_JOB_IMAGE,
  sampleJob,
  lastTruth,
  runningPod,
  sampleMain,
  setWebhookEnv,
  settle,
  sleep,
  startTestCluster,
  sumTruths,
  truthFromLog,
  waitForJob,
  workingSets,
  type Sample,
  type Truth,
} from './cluster-harness.ts';

const SIDECAR = 'jobmetrics-sidecar';
const STATUS = 'jobmetrics.io/status';

function byOutcome(samples: readonly Sample[]): Record<string, number> {
  return Object.fromEntries(samples.map((s) => [s.labels['outcome'] ?? '', s.value]).sort());
}

function expectedOutcomes(t: Truth): Record<string, number> {
  const out: Record<string, number> = {};
  if (t.failed > 0) out['failed'] = t.failed;
  if (t.ok > 0) out['ok'] = t.ok;
  return out;
}

const sameAs = (want: Record<string, number>) => (s: Sample[]): boolean => JSON.stringify(byOutcome(s)) === JSON.stringify(want);

/** The sidecar's summary log line (JSON) in a pod. */
async function sidecarSummary(cluster: Cluster, ns: string, pod: string): Promise<Record<string, unknown>> {
  const log = await kubectlOk(cluster.cp, ['-n', ns, 'logs', pod, '-c', SIDECAR]);
  const line = log
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Record<string, unknown>)
    .filter((l) => typeof l['msg'] === 'string' && (l['msg'] as string).startsWith('summary'))
    .at(-1);
  if (!line) throw new Error(`no summary in the sidecar log of ${ns}/${pod}:\n${log.slice(-3000)}`);
  return line;
}

/**
 * What the deadline and deletion tests' jobs count in one scrape interval (10 items/s × 1 s), the
 * most that may be lost when a main container is stopped (README.md "What is guaranteed"), plus the
 * one item that can land while the last scrape is read.
 */
const ONE_INTERVAL_OF_ITEMS = 11;

describe('real Job pods on a kubelet node (containerd, runc, our images, install.yaml)', function () {
  this.timeout(300_000);
  let cluster: Cluster;

  before(async function () {
    this.timeout(1_200_000);
    cluster = await startTestCluster();
  });

  after(async function () {
    this.timeout(120_000);
    await cluster?.stop();
  });

  /** Runs a sample Job to its end; returns its pods and what they counted together. */
  async function runSampleJob(ns: string, name: string, opts: Omit<Parameters<typeof sampleJob>[0], 'name' | 'ns'> = {}) {
    await apply(cluster, sampleJob({ name, ns, ...opts }));
    const status = await waitForJob(cluster, ns, name);
    const pods = await jobPods(cluster, ns, name);
    const truths = await Promise.all(pods.map((p) => truthFromLog(cluster, ns, p.name, 'main')));
    return { status, pods, truth: sumTruths(truths) };
  }

  it('native mode: completions 6, parallelism 3 → Complete; Prometheus holds exactly the jobs’ totals, one series per label set', async () => {
    const ns = 'e2e-native';
    await labelledNamespace(cluster, ns);
    const { status, pods, truth } = await runSampleJob(ns, 'counts', { completions: 6, parallelism: 3 });
    expect(status).to.deep.include({ condition: 'Complete', succeeded: 6 });
    expect(pods).to.have.length(6);
    for (const p of pods) {
      expect(p.annotations[STATUS], p.name).to.equal('injected');
      expect(p.initContainers, p.name).to.include(SIDECAR);
    }
    const want = expectedOutcomes(truth);
    const got = await settle(cluster, `demo_items_processed_total{namespace="${ns}"}`, sameAs(want));
    expect(byOutcome(got)).to.deep.equal(want);
    for (const s of got) {
      expect(s.labels).to.include({ namespace: ns, job: 'counts' });
      expect(s.labels).to.not.have.property('pod');
    }
    const count = await promQuery(cluster, `demo_item_duration_seconds_count{namespace="${ns}"}`);
    expect(count.map((s) => s.value)).to.deep.equal([truth.observations]);
  });

  it("the project's two images are pulled from the registry beside the node: the webhook, gateway and recorder run the pushed webhook image, and the sidecar the webhook injects is the one beside it", async () => {
    const version = packageVersion();
    const pushed = (program: string): string => `${cluster.registry}/jobmetrics/jobmetrics-${program}:${version}`;
    const deployments = JSON.parse(await kubectlOk(cluster.cp, ['-n', 'jobmetrics', 'get', 'deployments', '-o', 'json'])) as { items: { metadata: { name: string }; spec: { template: { spec: { containers: { image: string }[] } } } }[] };
    const images = Object.fromEntries(deployments.items.filter((d) => /webhook|gateway|recorder/.test(d.metadata.name)).map((d) => [d.metadata.name, d.spec.template.spec.containers.map((c) => c.image)]));
    expect(images).to.deep.equal({
      'jobmetrics-gateway': [pushed('webhook')],
      'jobmetrics-recorder': [pushed('webhook')],
      'jobmetrics-webhook': [pushed('webhook')],
    });
    // The Job pods of the test above: their sidecar follows the webhook's image (sidecar.image is empty).
    const pods = JSON.parse(await kubectlOk(cluster.cp, ['-n', 'e2e-native', 'get', 'pods', '-o', 'json'])) as { items: { spec: { initContainers?: { name: string; image: string }[] } }[] };
    const sidecarImages = new Set(pods.items.flatMap((p) => (p.spec.initContainers ?? []).filter((c) => c.name === SIDECAR).map((c) => c.image)));
    expect([...sidecarImages]).to.deep.equal([pushed('sidecar')]);
    // containerd holds them under the registry's names only, each with the repository digest the
    // CRI records for a pulled image (an imported one has none).
    const stored = cluster.node.ctr(['images', 'ls', '-q']).split('\n').filter((n) => /\/jobmetrics-(webhook|sidecar)[:@]/.test(n));
    const digestOf = (program: string): string => `${cluster.registry}/jobmetrics/jobmetrics-${program}@sha256:<digest>`;
    expect(stored.map((n) => n.replace(/@sha256:[0-9a-f]{64}$/, '@sha256:<digest>')).sort()).to.deep.equal([pushed('sidecar'), digestOf('sidecar'), pushed('webhook'), digestOf('webhook')].sort());
    // The registry served both images to the node (its access log: containerd resolving the tag, then fetching the layers).
    const log = readFileSync(join(cluster.dir, 'registry', 'registry.log'), 'utf8');
    for (const program of ['webhook', 'sidecar']) {
      expect(log, program).to.match(new RegExp(`"(HEAD|GET) /v2/jobmetrics/jobmetrics-${program}/manifests/${version.replaceAll('.', '\\.')} HTTP/1\\.1" 200 .*containerd`));
      expect(log, program).to.match(new RegExp(`"GET /v2/jobmetrics/jobmetrics-${program}/blobs/sha256:[0-9a-f]{64} HTTP/1\\.1" 200 .*containerd`));
    }
  });

  it('a job in another language (Python, prometheus_client from Debian) is counted exactly', async () => {
    const ns = 'e2e-python';
    await labelledNamespace(cluster, ns);
    const { status, truth } = await runSampleJob(ns, 'py', { completions: 2, parallelism: 2, image: PYTHON_JOB_IMAGE, env: { TRUTH_FILE: '' } });
    expect(status.condition).to.equal('Complete');
    const want = expectedOutcomes(truth);
    const got = await settle(cluster, `pyjob_items_processed_total{namespace="${ns}"}`, sameAs(want));
    expect(byOutcome(got)).to.deep.equal(want);
  });

  it('a CronJob’s three runs: one series per label set; increase() over the window equals their sum', async () => {
    const ns = 'e2e-cron';
    await labelledNamespace(cluster, ns);
    // Runs of 3 s, shorter than one aggregation interval: each is counted because the gateway
    // delivers the values an interval after the zeros (docs/gateway.md).
    const template = sampleJob({ name: 'x', ns, env: { ITEMS: '40', DURATION_MS: '3000' } }) as { spec: Record<string, unknown> };
    await apply(cluster, {
      apiVersion: 'batch/v1',
      kind: 'CronJob',
      metadata: { name: 'nightly', namespace: ns },
      spec: { schedule: '0 0 1 1 *', suspend: true, jobTemplate: { spec: template.spec } },
    });
    const truths: Truth[] = [];
    for (const run of ['run-1', 'run-2', 'run-3']) {
      // kubectl create job --from makes the CronJob the Job's owner, as the CronJob controller does.
      await kubectlOk(cluster.cp, ['-n', ns, 'create', 'job', run, '--from=cronjob/nightly']);
      expect((await waitForJob(cluster, ns, run)).condition).to.equal('Complete');
      for (const p of await jobPods(cluster, ns, run)) truths.push(await truthFromLog(cluster, ns, p.name, 'main'));
    }
    const truth = sumTruths(truths);
    const want = expectedOutcomes(truth);
    const got = await settle(cluster, `demo_items_processed_total{namespace="${ns}"}`, sameAs(want));
    expect(byOutcome(got)).to.deep.equal(want);
    for (const s of got) expect(s.labels['job']).to.equal('nightly');
    // increase() at the last sample's time: no extrapolation at the end, and the output was born
    // at 0 (the gateway delivered the values an aggregation interval after the explicit zeros).
    const range = await promQuery(cluster, `timestamp(demo_items_processed_total{namespace="${ns}", outcome="ok"})`);
    const at = range[0]?.value ?? 0;
    const res = await promFetch(cluster, `/api/v1/query?query=${encodeURIComponent(`increase(demo_items_processed_total{namespace="${ns}", outcome="ok"}[30m])`)}&time=${at}`);
    const inc = ((await res.json()) as { data: { result: { value: [number, string] }[] } }).data.result[0]?.value[1];
    expect(Number(inc)).to.equal(truth.ok);
  });

  it('a new workload\'s single short Job (about 1.5 s), shipped settings: increase() over the window equals what it counted', async () => {
    const ns = 'e2e-first-run';
    await labelledNamespace(cluster, ns);
    const { status, truth } = await runSampleJob(ns, 'first', { env: { ITEMS: '240', DURATION_MS: '1500' } });
    expect(status.condition).to.equal('Complete');
    const want = expectedOutcomes(truth);
    const got = await settle(cluster, `demo_items_processed_total{namespace="${ns}"}`, sameAs(want));
    expect(byOutcome(got)).to.deep.equal(want);
    // At the last sample's time there is no extrapolation at the end, and none at the start either
    // when the output was born at 0 (the gateway delivered the values one aggregation interval
    // after the zeros); straight to vmagent this run's output is born at its total and increase()
    // reads 0 (docs/gateway.md).
    const last = await promQuery(cluster, `timestamp(demo_items_processed_total{namespace="${ns}", outcome="ok"})`);
    const res = await promFetch(cluster, `/api/v1/query?query=${encodeURIComponent(`increase(demo_items_processed_total{namespace="${ns}", outcome="ok"}[30m])`)}&time=${last[0]?.value ?? 0}`);
    const inc = ((await res.json()) as { data: { result: { value: [number, string] }[] } }).data.result[0]?.value[1];
    expect(Number(inc)).to.equal(truth.ok);
  });

  it('a namespace that enforces Pod Security "restricted": injected pods are admitted and run', async () => {
    const ns = 'e2e-restricted';
    await labelledNamespace(cluster, ns, { 'pod-security.kubernetes.io/enforce': 'restricted' });
    const { status, pods, truth } = await runSampleJob(ns, 'strict', {
      podSpec: { securityContext: { runAsNonRoot: true, seccompProfile: { type: 'RuntimeDefault' } } },
      main: { securityContext: { allowPrivilegeEscalation: false, capabilities: { drop: ['ALL'] } } },
    });
    expect(status.condition).to.equal('Complete');
    expect(pods[0]?.annotations[STATUS]).to.equal('injected');
    const want = expectedOutcomes(truth);
    expect(byOutcome(await settle(cluster, `demo_items_processed_total{namespace="${ns}"}`, sameAs(want)))).to.deep.equal(want);
  });

  it('a mesh-like native sidecar before ours and an extra regular container: the main container’s exit is noticed at once', async () => {
    const ns = 'e2e-mesh';
    await labelledNamespace(cluster, ns);
    const node = (script: string) => ({ command: ['node', '-e', script], image: SAMPLE_JOB_IMAGE, imagePullPolicy: 'Never' });
    const { status, pods, truth } = await runSampleJob(ns, 'meshed', {
      podSpec: {
        initContainers: [{ name: 'mesh-proxy', restartPolicy: 'Always', ...node("process.on('SIGTERM', () => process.exit(0)); setInterval(() => {}, 1e9)") }],
        // Runs 20 s past the main container, so the Job ends only then.
        containers: [
          sampleMain(),
          { name: 'uploader', ...node('setTimeout(() => {}, 20000)') },
        ],
      },
    });
    expect(status.condition).to.equal('Complete');
    const pod = pods[0];
    if (!pod) throw new Error('no pod');
    expect(pod.annotations[STATUS]).to.equal('injected');
    const summary = await sidecarSummary(cluster, ns, pod.name);
    expect(summary).to.include({ trigger: 'main-exited', finalDelivered: true });
    const want = expectedOutcomes(truth);
    expect(byOutcome(await settle(cluster, `demo_items_processed_total{namespace="${ns}"}`, sameAs(want)))).to.deep.equal(want);
  });

  it('a main container that is a shell wrapper forking the worker, and one that leaves a background process behind: exact, no hang', async () => {
    const ns = 'e2e-shell';
    await labelledNamespace(cluster, ns);
    const wrapped = await runSampleJob(ns, 'wrapper', { main: { command: ['sh', '-c', 'node /app/sample-job.js; echo worker done'] } });
    const leaky = await runSampleJob(ns, 'leaky', { main: { command: ['sh', '-c', '(sleep 3600 &); exec node /app/sample-job.js'] } });
    expect(wrapped.status.condition).to.equal('Complete');
    expect(leaky.status.condition).to.equal('Complete');
    for (const [job, r] of [['wrapper', wrapped], ['leaky', leaky]] as const) {
      const want = expectedOutcomes(r.truth);
      const got = await settle(cluster, `demo_items_processed_total{namespace="${ns}", job="${job}"}`, sameAs(want));
      expect(byOutcome(got), job).to.deep.equal(want);
    }
  });

  it('restartPolicy OnFailure: the main container fails twice, then succeeds in the same pod; every attempt is delivered exactly', async () => {
    const ns = 'e2e-onfailure';
    await labelledNamespace(cluster, ns);
    const { status, pods } = await runSampleJob(ns, 'retries', {
      jobSpec: { backoffLimit: 6 },
      env: { FAIL_ATTEMPTS: '2', ATTEMPT_FILE: '/work/attempt', TRUTH_FILE: '/work/truth.json', ITEMS: '40' },
      // The job sums its attempts in TRUTH_FILE (an emptyDir survives the restarts); the last
      // attempt prints that sum, so its log holds the truth of all three.
      main: { command: ['sh', '-c', 'node /app/sample-job.js; rc=$?; cat /work/truth.json; exit $rc'], volumeMounts: [{ name: 'work', mountPath: '/work' }] },
      podSpec: { restartPolicy: 'OnFailure', volumes: [{ name: 'work', emptyDir: {} }] },
    });
    expect(status.condition).to.equal('Complete');
    expect(pods).to.have.length(1);
    const pod = pods[0];
    if (!pod) throw new Error('no pod');
    expect(pod.statuses.find((c) => c.name === 'main')?.restartCount).to.equal(2);
    const truth = await truthFromLog(cluster, ns, pod.name, 'main');
    expect(truth.ok + truth.failed).to.equal(120); // 3 attempts × 40 items, summed by the job itself
    const want = expectedOutcomes(truth);
    expect(byOutcome(await settle(cluster, `demo_items_processed_total{namespace="${ns}"}`, sameAs(want)))).to.deep.equal(want);
  });

  it('a grace period shorter than the flush timeout: the flush budget is cut to fit, and the values arrive', async () => {
    const ns = 'e2e-grace';
    await labelledNamespace(cluster, ns);
    const { status, pods, truth } = await runSampleJob(ns, 'brief', { podSpec: { terminationGracePeriodSeconds: 3 } });
    expect(status.condition).to.equal('Complete');
    const podJson = JSON.parse(await kubectlOk(cluster.cp, ['-n', ns, 'get', 'pod', pods[0]?.name ?? '', '-o', 'json'])) as {
      spec: { initContainers: { name: string; env: { name: string; value?: string }[] }[] };
    };
    const sidecar = podJson.spec.initContainers.find((c) => c.name === SIDECAR);
    // min(10 s, max(0.5 s, 3 s − min(2 s, 1.5 s))) = 1.5 s (docs/webhook.md)
    expect(sidecar?.env.find((e) => e.name === 'JOBMETRICS_FLUSH_TIMEOUT')?.value).to.equal('1500ms');
    const want = expectedOutcomes(truth);
    expect(byOutcome(await settle(cluster, `demo_items_processed_total{namespace="${ns}"}`, sameAs(want)))).to.deep.equal(want);
  });

  it('activeDeadlineSeconds exceeded mid-run: the Job fails, and what was counted up to the last scrape arrives, never more', async () => {
    const ns = 'e2e-deadline';
    await labelledNamespace(cluster, ns);
    await apply(cluster, sampleJob({ name: 'slow', ns, env: { ITEMS: '400', DURATION_MS: '40000' }, jobSpec: { activeDeadlineSeconds: 12 } }));
    const status = await waitForJob(cluster, ns, 'slow');
    expect(status.condition).to.equal('Failed');
    const pods = await jobPods(cluster, ns, 'slow');
    const truth = sumTruths(await Promise.all(pods.map((p) => truthFromLog(cluster, ns, p.name, 'main'))));
    const counted = truth.ok + truth.failed;
    const got = await settle(cluster, `sum(demo_items_processed_total{namespace="${ns}"})`, (s) => (s[0]?.value ?? 0) >= counted - ONE_INTERVAL_OF_ITEMS);
    const delivered = got[0]?.value ?? 0;
    // At most the last scrape interval may be lost; never more than counted, at any time.
    expect(counted - delivered).to.be.at.most(ONE_INTERVAL_OF_ITEMS);
    expect(await highestSum(`demo_items_processed_total{namespace="${ns}"}`)).to.be.at.most(counted);
  });

  /**
   * Waits until the native sidecar of `pod` has acknowledged a non-zero count of items, as its state
   * file in the pod's emptyDir on the node says (sidecar/state.ts); returns that count.
   */
  async function acknowledgedItems(ns: string, pod: string): Promise<number> {
    const uid = (await kubectlOk(cluster.cp, ['-n', ns, 'get', 'pod', pod, '-o', 'jsonpath={.metadata.uid}'])).trim();
    const dir = join(cluster.dir, 'node', 'kubelet', 'root', 'pods', uid, 'volumes', 'kubernetes.io~empty-dir', 'jobmetrics-state');
    for (const deadline = Date.now() + 60_000; ; await sleep(250)) {
      const state = loadState(dir, pod);
      if (state.found && state.ok) {
        const items = state.snapshot.series.filter((s) => s.name === 'demo_items_processed_total').reduce((n, s) => n + (s.acked?.value ?? 0), 0);
        if (items > 0) return items;
      }
      if (Date.now() > deadline) throw new Error(`${ns}/${pod}: no acknowledged items in ${dir} after 60 s: ${JSON.stringify(state)}`);
    }
  }

  /** The highest value the sum over `selector` ever had in Prometheus (every output sample). */
  async function highestSum(selector: string): Promise<number> {
    const r = await promQuery(cluster, `max_over_time(sum(${selector})[30m:1s])`);
    return r[0]?.value ?? 0;
  }

  /** The highest value each series of `selector` ever had in Prometheus, by outcome. */
  async function highest(selector: string): Promise<Record<string, number>> {
    return byOutcome(await promQuery(cluster, `max_over_time(${selector}[30m])`));
  }

  it('the native sidecar killed mid-run: the kubelet restarts it, it resumes from what was acknowledged, and nothing is counted twice', async () => {
    const ns = 'e2e-sidecar-killed';
    await labelledNamespace(cluster, ns);
    await apply(cluster, sampleJob({ name: 'survivor', ns, env: { ITEMS: '300', DURATION_MS: '30000' } }));
    const pod = await runningPod(cluster, ns, 'survivor');
    // Killed only once a value was acknowledged (the first push with values comes one push
    // interval in), as the sidecar's own state in its emptyDir on the node says: a restart that
    // lost that state would then send its whole value again.
    const acked = await acknowledgedItems(ns, pod.name);
    const sidecar = pod.statuses.find((c) => c.name === SIDECAR);
    if (sidecar?.containerId === undefined) throw new Error(`no container id for the sidecar of ${pod.name}`);
    // SIGKILL: no flush, no goodbye; only what the state dir (an emptyDir) holds survives.
    cluster.node.ctr(['task', 'kill', '--signal', 'SIGKILL', sidecar.containerId]);
    expect((await waitForJob(cluster, ns, 'survivor')).condition).to.equal('Complete');
    const [after] = await jobPods(cluster, ns, 'survivor');
    expect(after?.statuses.find((c) => c.name === SIDECAR)?.restartCount).to.equal(1);
    // The restarted sidecar found the acknowledged state in its emptyDir.
    const restarted = await kubectlOk(cluster.cp, ['-n', ns, 'logs', pod.name, '-c', SIDECAR]);
    expect(restarted, 'the restarted sidecar\'s log').to.contain('restarted: going on from the acknowledged state');
    const truth = await truthFromLog(cluster, ns, pod.name, 'main');
    expect(truth.ok + truth.failed, `killed after ${acked} were acknowledged, before the end`).to.be.above(acked);
    const want = expectedOutcomes(truth);
    const selector = `demo_items_processed_total{namespace="${ns}"}`;
    expect(byOutcome(await settle(cluster, selector, sameAs(want)))).to.deep.equal(want);
    // A restarted sidecar that sent its values again would have pushed the output above the
    // truth at some point, even if it came back down: no sample ever exceeded it.
    expect(await highest(selector)).to.deep.equal(want);
    expect(await sidecarSummary(cluster, ns, pod.name)).to.include({ trigger: 'main-exited', finalDelivered: true });
  });

  it('the main container OOM-killed by its memory limit: what it counted up to the last scrape arrives, and the Job records the failure', async () => {
    const ns = 'e2e-oom';
    await labelledNamespace(cluster, ns);
    const { status, pods, truth } = await runSampleJob(ns, 'hungry', {
      // The job counts, waits SETTLE_MS (more than one scrape interval), then allocates until killed.
      env: { ITEMS: '80', DURATION_MS: '4000', SETTLE_MS: '2000', OOM_AT_END: '1' },
      main: { resources: { limits: { memory: '160Mi' } } },
    });
    expect(status).to.deep.include({ condition: 'Failed', succeeded: 0 });
    const pod = pods[0];
    if (!pod) throw new Error('no pod');
    expect(pod.statuses.find((c) => c.name === 'main')?.terminated).to.deep.include({ reason: 'OOMKilled', exitCode: 137 });
    const sidecar = pod.statuses.find((c) => c.name === SIDECAR);
    expect(sidecar?.restartCount, 'sidecar restarts').to.equal(0);
    expect(sidecar?.terminated?.reason, 'sidecar end').to.not.equal('OOMKilled');
    expect(truth.ok + truth.failed).to.equal(80);
    const want = expectedOutcomes(truth);
    expect(byOutcome(await settle(cluster, `demo_items_processed_total{namespace="${ns}"}`, sameAs(want)))).to.deep.equal(want);
    expect(await sidecarSummary(cluster, ns, pod.name)).to.include({ trigger: 'main-exited', finalDelivered: true });
  });

  it('the sidecar at its input limits (9 000 series, 1.6 MB a scrape): never OOM-killed at its memory limit; the first 6 000 series arrive exactly', async () => {
    const ns = 'e2e-sidecar-limits';
    await labelledNamespace(cluster, ns);
    // 9 000 counters of value 1 with 150-character label values: under the 2 MiB body and the
    // 12 000-sample limits, over the 6 000-series one (shared/sidecar-memory.ts at 128Mi).
    const serve = [
      "const body = ['# TYPE wide_total counter'];",
      "for (let i = 0; i < 9000; i++) body.push(`wide_total{key=\"${'k'.repeat(150)}${i}\"} 1`);",
      "const text = body.join('\\n') + '\\n';",
      "require('node:http').createServer((req, res) => res.end(text)).listen(9100, '127.0.0.1');",
      'setTimeout(() => process.exit(0), 25000);',
    ].join('\n');
    await apply(cluster, sampleJob({ name: 'wide', ns, main: { command: ['node', '-e', serve] } }));
    const pod = await runningPod(cluster, ns, 'wide');
    let peak = 0;
    for (const deadline = Date.now() + 180_000; Date.now() < deadline; ) {
      const [current] = await jobPods(cluster, ns, 'wide');
      if (!current || current.phase !== 'Running') break;
      peak = Math.max(peak, (await workingSets(cluster, ns, pod.name).catch(() => ({}) as Record<string, number>))[SIDECAR] ?? 0);
      await sleep(1_000);
    }
    expect((await waitForJob(cluster, ns, 'wide')).condition).to.equal('Complete');
    const [after] = await jobPods(cluster, ns, 'wide');
    const sidecar = after?.statuses.find((c) => c.name === SIDECAR);
    expect(sidecar?.restartCount, 'sidecar restarts').to.equal(0);
    expect(sidecar?.terminated?.reason, 'sidecar end').to.not.equal('OOMKilled');
    const summary = await sidecarSummary(cluster, ns, pod.name);
    expect(summary).to.include({ trigger: 'main-exited', finalDelivered: true, series: 6000 });
    // Drops are counted per sample (docs/semantics.md): the same 3 000 series in every scrape.
    const overLimit = (summary['droppedByReason'] as Record<string, number>)['over-limit'] ?? 0;
    expect(overLimit, 'over-limit drops').to.be.above(0);
    expect(overLimit % 3000, 'over-limit drops, a multiple of 3 000').to.equal(0);
    const got = await settle(cluster, `count(wide_total{namespace="${ns}"})`, (s) => s[0]?.value === 6000);
    expect(got.map((s) => s.value)).to.deep.equal([6000]);
    expect((await promQuery(cluster, `sum(wide_total{namespace="${ns}"})`)).map((s) => s.value)).to.deep.equal([6000]);
    console.log(`      sidecar working set at its limits, highest seen by the kubelet: ${(peak / 2 ** 20).toFixed(1)} MiB of 128 MiB (peak RSS ${String(summary['peakRssMb'])} MiB)`);
  });

  it('the Job deleted mid-run: its pods are stopped, and what was counted up to the last scrape arrives, never more', async () => {
    const ns = 'e2e-deleted';
    await labelledNamespace(cluster, ns);
    // The pod and its log go with the Job: the job writes its truth to a directory of this machine.
    const truthDir = join(cluster.dir, 'truth-deleted');
    mkdirSync(truthDir, { recursive: true });
    chmodSync(truthDir, 0o777);
    await apply(cluster, sampleJob({
      name: 'doomed',
      ns,
      env: { ITEMS: '300', DURATION_MS: '30000', TRUTH_FILE: '/truth/counted.json' },
      main: { volumeMounts: [{ name: 'truth', mountPath: '/truth' }] },
      podSpec: { volumes: [{ name: 'truth', hostPath: { path: truthDir, type: 'Directory' } }] },
    }));
    const pod = await runningPod(cluster, ns, 'doomed');
    for (const deadline = Date.now() + 120_000; ; await sleep(500)) {
      const file = join(truthDir, 'counted.json');
      const t = existsSync(file) ? lastTruth(readFileSync(file, 'utf8')) : undefined;
      if (t && t.ok + t.failed >= 50) break;
      if (Date.now() > deadline) throw new Error(`${ns}/${pod.name}: fewer than 50 items counted in 120 s`);
    }
    await kubectlOk(cluster.cp, ['-n', ns, 'delete', 'job', 'doomed', '--wait=true', '--cascade=foreground', '--timeout=120s'], { timeoutMs: 130_000 });
    await kubectlOk(cluster.cp, ['-n', ns, 'wait', '--for=delete', `pod/${pod.name}`, '--timeout=120s'], { timeoutMs: 130_000 });
    const truth = lastTruth(readFileSync(join(truthDir, 'counted.json'), 'utf8'));
    if (!truth) throw new Error('no truth written');
    const counted = truth.ok + truth.failed;
    expect(counted, 'stopped mid-run').to.be.below(300);
    const got = await settle(cluster, `sum(demo_items_processed_total{namespace="${ns}"})`, (s) => (s[0]?.value ?? 0) >= counted - ONE_INTERVAL_OF_ITEMS);
    const delivered = got[0]?.value ?? 0;
    // The main container dies on SIGTERM: at most its last scrape interval is lost; never more
    // than counted, at any time.
    expect(counted - delivered).to.be.at.most(ONE_INTERVAL_OF_ITEMS);
    expect(await highestSum(`demo_items_processed_total{namespace="${ns}"}`)).to.be.at.most(counted);
  });

  it('legacy mode: the same Job completes because the sidecar exits after the main container, and the totals are exact', async () => {
    const ns = 'e2e-legacy';
    await labelledNamespace(cluster, ns);
    await setWebhookEnv(cluster, 'JOBMETRICS_SIDECAR_MODE=legacy', (a) => a.sidecar?.in === 'containers');
    try {
      const { status, pods, truth } = await runSampleJob(ns, 'counts', { completions: 6, parallelism: 3 });
      expect(status).to.deep.include({ condition: 'Complete', succeeded: 6 });
      for (const p of pods) {
        expect(p.containers, p.name).to.include(SIDECAR);
        expect(p.initContainers, p.name).to.not.include(SIDECAR);
        const sidecar = p.statuses.find((s) => s.name === SIDECAR);
        expect(sidecar?.terminated?.exitCode, p.name).to.equal(0);
      }
      const want = expectedOutcomes(truth);
      expect(byOutcome(await settle(cluster, `demo_items_processed_total{namespace="${ns}"}`, sameAs(want)))).to.deep.equal(want);
    } finally {
      await setWebhookEnv(cluster, 'JOBMETRICS_SIDECAR_MODE-', (a) => a.sidecar?.in === 'initContainers');
    }
  });

  it('a sidecar image in a private registry (basic auth): pushed there with npm run images -- push --authfile, pulled by the node with the pull Secret the webhook adds to the pod (sidecar.imagePullSecrets); the Job is exact', async function () {
    this.timeout(420_000);
    const ns = 'e2e-private-registry';
    const version = packageVersion();
    const priv = await cluster.privateRegistry();
    const image = `${priv.host}/jobmetrics/jobmetrics-sidecar:${version}`;
    const manifest = `http://${priv.host}/v2/jobmetrics/jobmetrics-sidecar/manifests/${version}`;
    const accept = { accept: 'application/vnd.oci.image.manifest.v1+json' };
    // Not vacuous: without credentials the registry serves nothing; with them, what was pushed.
    const anonymous = await fetch(manifest, { method: 'HEAD', headers: accept });
    const withCredentials = await fetch(manifest, { method: 'HEAD', headers: { ...accept, authorization: basicAuthorization(priv.auth) } });
    expect([anonymous.status, anonymous.headers.get('www-authenticate'), withCredentials.status]).to.deep.equal([401, 'Basic realm="jobmetrics-private"', 200]);
    await labelledNamespace(cluster, ns);
    // docs/install.md "Private registries": the Secret in every namespace whose Jobs get the sidecar.
    await kubectlOk(cluster.cp, ['-n', ns, 'create', 'secret', 'docker-registry', 'regcred', `--docker-server=${priv.host}`, `--docker-username=${priv.auth.username}`, `--docker-password=${priv.auth.password}`]);
    const ours = `${cluster.registry}/jobmetrics/jobmetrics-sidecar:${version}`;
    await setWebhookEnv(cluster, [`JOBMETRICS_SIDECAR_IMAGE=${image}`, 'JOBMETRICS_SIDECAR_IMAGE_PULL_SECRETS=regcred'], (a) => a.sidecar?.image === image && a.imagePullSecrets.join() === 'regcred');
    try {
      const { status, pods, truth } = await runSampleJob(ns, 'pulled-privately');
      expect(status).to.deep.include({ condition: 'Complete', succeeded: 1 });
      const pod = JSON.parse(await kubectlOk(cluster.cp, ['-n', ns, 'get', 'pod', pods[0]?.name ?? '', '-o', 'json'])) as {
        metadata: { annotations?: Record<string, string> };
        spec: { imagePullSecrets?: { name: string }[]; initContainers?: { name: string; image: string }[] };
      };
      expect({
        status: pod.metadata.annotations?.[STATUS],
        imagePullSecrets: pod.spec.imagePullSecrets,
        sidecar: pod.spec.initContainers?.find((c) => c.name === SIDECAR)?.image,
      }).to.deep.equal({ status: 'injected', imagePullSecrets: [{ name: 'regcred' }], sidecar: image });
      // The node pulled it: containerd holds the private name with the repository digest of a pull.
      // (Not the pod's imageID: the CRI reports an image's first repository digest, and the content
      // is the same as the public copy's, pulled by the tests above.)
      const stored = cluster.node.ctr(['images', 'ls', '-q']).split('\n').filter((n) => n.startsWith(`${priv.host}/`));
      expect(stored.map((n) => n.replace(/@sha256:[0-9a-f]{64}$/, '@sha256:<digest>')).sort()).to.deep.equal([image, `${priv.host}/jobmetrics/jobmetrics-sidecar@sha256:<digest>`]);
      // The registry's access log: the push (buildah with --authfile), and containerd's pull: asked
      // without credentials, refused, asked again with the Secret's (the only ones it knows), served.
      const log = readFileSync(priv.log, 'utf8');
      const line = (method: string, code: number, agent: string): RegExp => new RegExp(`"${method} /v2/jobmetrics/jobmetrics-sidecar/manifests/${version.replaceAll('.', '\\.')} HTTP/1\\.1" ${code} \\d+ "[^"]*" "${agent}/`);
      expect({
        pushed: line('PUT', 201, 'Buildah').test(log),
        refusedWithout: line('HEAD', 401, 'containerd').test(log),
        servedWith: line('HEAD', 200, 'containerd').test(log),
      }).to.deep.equal({ pushed: true, refusedWithout: true, servedWith: true });
      const want = expectedOutcomes(truth);
      expect(byOutcome(await settle(cluster, `demo_items_processed_total{namespace="${ns}"}`, sameAs(want)))).to.deep.equal(want);
    } finally {
      await setWebhookEnv(cluster, ['JOBMETRICS_SIDECAR_IMAGE-', 'JOBMETRICS_SIDECAR_IMAGE_PULL_SECRETS-'], (a) => a.sidecar?.image === ours && a.imagePullSecrets.length === 0);
    }
  });

  it('two webhook replicas, one deleted during a burst of Job creations: no pod rejected, all injected', async () => {
    const ns = 'e2e-burst';
    await labelledNamespace(cluster, ns);
    // The live replicas (an earlier rollout's old pods may still be terminating).
    const listed = JSON.parse(await kubectlOk(cluster.cp, ['-n', 'jobmetrics', 'get', 'pods', '-l', 'app.kubernetes.io/name=jobmetrics-webhook', '-o', 'json'])) as {
      items: { metadata: { name: string; deletionTimestamp?: string }; status: { phase?: string } }[];
    };
    const webhookPods = listed.items.filter((p) => p.metadata.deletionTimestamp === undefined && p.status.phase === 'Running').map((p) => `pod/${p.metadata.name}`);
    expect(webhookPods).to.have.length(2);
    const jobs = Array.from({ length: 16 }, (_, i) => `burst-${i}`);
    const creating = (async () => {
      for (const name of jobs) await apply(cluster, sampleJob({ name, ns, env: { ITEMS: '5', DURATION_MS: '200', SETTLE_MS: '1200' } }));
    })();
    await kubectlOk(cluster.cp, ['-n', 'jobmetrics', 'delete', webhookPods[0] ?? '', '--wait=false']);
    await creating;
    for (const name of jobs) expect((await waitForJob(cluster, ns, name)).condition, name).to.equal('Complete');
    const statuses = (await Promise.all(jobs.map((j) => jobPods(cluster, ns, j)))).flat().map((p) => p.annotations[STATUS]);
    expect(statuses).to.have.length(jobs.length);
    expect(new Set(statuses)).to.deep.equal(new Set(['injected']));
  });

  it("a shared cluster: a container writing another namespace's numbers is refused by the gateway without a pod's gateway token and relabelled to its own namespace with one, refused by the aggregator and the store it tried to reach directly; the victim stays exact and the forger's own sidecar still delivers", async () => {
    const victim = 'e2e-victim';
    const forger = 'e2e-forger';
    await labelledNamespace(cluster, victim);
    await labelledNamespace(cluster, forger);
    const image = (await kubectlOk(cluster.cp, ['-n', 'jobmetrics', 'get', 'deployment', 'jobmetrics-gateway', '-o', 'jsonpath={.spec.template.spec.containers[0].image}'])).trim();
    // A second container in the forger's pod, in the gateway's image for its remote-write client:
    // it claims the victim's workload (a counter of 1 000 000 ok items) three ways — with no
    // token, with the pod's API token, and with a token of its own service account for the
    // gateway's audience, which any pod may mount (this one as `stolen-audience`).
    const script = `
      const { encodeWriteRequest, sendWriteRequest } = await import('/app/dist/shared/remote-write.js');
      const { readFileSync } = await import('node:fs');
      const now = Date.now();
      const body = encodeWriteRequest([{ labels: [['__name__', 'demo_items_processed_total'], ['namespace', '${victim}'], ['job', 'billing'], ['pod', 'billing-forged'], ['outcome', 'ok'], ['jobmetrics_kind', 'counter']], samples: [{ value: 0, timestampMs: now - 1 }, { value: 1000000, timestampMs: now }] }]);
      const tokens = { none: undefined, 'api-token': readFileSync('/var/run/secrets/kubernetes.io/serviceaccount/token', 'utf8'), 'own-gateway-token': readFileSync('/var/run/secrets/forger/token', 'utf8') };
      for (const [name, token] of Object.entries(tokens)) {
        const out = await sendWriteRequest('http://jobmetrics-gateway.jobmetrics.svc:8480/api/v1/write', body, { timeoutMs: 5000, ...(token && { authorization: 'Bearer ' + token.trim() }) });
        console.log(JSON.stringify({ forged: 'gateway, ' + name, status: out.status ?? out.error.message }));
      }
      // Skipping the gateway: straight to the aggregator, and to the store's remote-write receiver.
      for (const [name, url] of [['aggregator', 'http://jobmetrics-aggregator.jobmetrics.svc:8429/api/v1/write'], ['store', 'http://jobmetrics-prometheus.jobmetrics.svc:9090/api/v1/write']]) {
        const out = await sendWriteRequest(url, body, { timeoutMs: 5000 });
        console.log(JSON.stringify({ forged: name, status: out.status ?? out.error.message }));
      }`;
    await apply(cluster, sampleJob({ name: 'billing', ns: victim }));
    await apply(
      cluster,
      sampleJob({
        name: 'forger',
        ns: forger,
        annotations: { 'jobmetrics.io/container': 'main' },
        podSpec: {
          containers: [
            sampleMain(),
            {
              name: 'forge',
              image,
              imagePullPolicy: 'Never',
              command: ['/nodejs/bin/node', '--input-type=module', '-e', script],
              volumeMounts: [{ name: 'stolen-audience', mountPath: '/var/run/secrets/forger', readOnly: true }],
            },
          ],
          volumes: [{ name: 'stolen-audience', projected: { sources: [{ serviceAccountToken: { audience: 'jobmetrics-gateway', expirationSeconds: 3600, path: 'token' } }] } }],
        },
      }),
    );
    expect(await waitForJob(cluster, victim, 'billing')).to.deep.include({ condition: 'Complete' });
    expect(await waitForJob(cluster, forger, 'forger')).to.deep.include({ condition: 'Complete' });
    const [forgerPod] = await jobPods(cluster, forger, 'forger');
    const forgeLog = await kubectlOk(cluster.cp, ['-n', forger, 'logs', forgerPod!.name, '-c', 'forge']);
    const answers = Object.fromEntries(forgeLog.split('\n').filter((l) => l.startsWith('{"forged"')).map((l) => { const r = JSON.parse(l) as { forged: string; status: unknown }; return [r.forged, r.status]; }));
    expect(answers, forgeLog).to.deep.equal({ 'gateway, none': 401, 'gateway, api-token': 401, 'gateway, own-gateway-token': 204, aggregator: 401, store: 401 });

    // The accepted forgery landed in the forger's own namespace, under the pod that wrote it.
    const relabelled = await settle(cluster, `demo_items_processed_total{namespace="${forger}", job="billing"}`, (s) => s.length === 1 && s[0]!.value === 1_000_000);
    expect(relabelled.map((s) => [s.labels['outcome'], s.value])).to.deep.equal([['ok', 1_000_000]]);
    // The victim holds exactly what its own job counted, and the forger's sidecar delivered its own.
    const victimTruth = await truthFromLog(cluster, victim, (await jobPods(cluster, victim, 'billing'))[0]!.name, 'main');
    const forgerTruth = await truthFromLog(cluster, forger, forgerPod!.name, 'main');
    for (const [ns, job, truth] of [[victim, 'billing', victimTruth], [forger, 'forger', forgerTruth]] as const) {
      const want = expectedOutcomes(truth);
      const got = await settle(cluster, `demo_items_processed_total{namespace="${ns}", job="${job}"}`, sameAs(want));
      expect(byOutcome(got), `${ns}/${job}`).to.deep.equal(want);
    }
    // Each gateway replica's counters, summed: the two refusals by reason, the one relabelled series.
    const ips = (await kubectlOk(cluster.cp, ['-n', 'jobmetrics', 'get', 'pods', '-l', 'app.kubernetes.io/name=jobmetrics-gateway', '-o', 'jsonpath={.items[*].status.podIP}'])).trim().split(/\s+/);
    const texts = await Promise.all(ips.map(async (ip) => (await fetch(`http://${ip}:8480/metrics`)).text()));
    const total = (re: RegExp): number => texts.reduce((n, t) => n + Number(re.exec(t)?.[1] ?? 0), 0);
    expect({
      noToken: total(/^jobmetrics_gateway_writer_refusals_total\{reason="no-token"\} (\d+)$/m),
      invalidToken: total(/^jobmetrics_gateway_writer_refusals_total\{reason="invalid-token"\} (\d+)$/m),
      relabelled: total(new RegExp(`^jobmetrics_gateway_relabelled_series_total\\{namespace="${forger}"\\} (\\d+)$`, 'm')),
    }).to.deep.equal({ noToken: 1, invalidToken: 1, relabelled: 1 });
  });

  /**
   * Rolls the gateway onto `replicas` pods (and an environment change, `NAME=value` or `NAME-`),
   * and waits until exactly that many run.
   */
  async function gateway(replicas: number, change?: string): Promise<void> {
    if (change !== undefined) await kubectlOk(cluster.cp, ['-n', 'jobmetrics', 'set', 'env', 'deployment/jobmetrics-gateway', change]);
    await kubectlOk(cluster.cp, ['-n', 'jobmetrics', 'scale', 'deployment/jobmetrics-gateway', `--replicas=${replicas}`]);
    await kubectlOk(cluster.cp, ['-n', 'jobmetrics', 'rollout', 'status', 'deployment/jobmetrics-gateway', '--timeout=180s'], { timeoutMs: 190_000 });
    for (const deadline = Date.now() + 120_000; ; await sleep(500)) {
      const pods = JSON.parse(await kubectlOk(cluster.cp, ['-n', 'jobmetrics', 'get', 'pods', '-l', 'app.kubernetes.io/name=jobmetrics-gateway', '-o', 'json'])) as { items: unknown[] };
      if (pods.items.length === replicas) return;
      if (Date.now() > deadline) throw new Error(`gateway: ${pods.items.length} pods 120 s after the rollout, want ${replicas}`);
    }
  }

  it("a shared cluster: a Job flooding series in one namespace is capped at the gateway, its drops counted, while another namespace's Job running beside it stays exact and the aggregator keeps running", async () => {
    const bomb = 'e2e-bomb';
    const calm = 'e2e-calm';
    await labelledNamespace(cluster, bomb);
    await labelledNamespace(cluster, calm);
    // A small cap for this namespace alone (the default, 300 000, would take a long Job to reach),
    // and one gateway replica for the test: each replica keeps its own count (a sidecar's
    // connections may reach either), so with one the cap is exact.
    const CAP = 1_000;
    await gateway(1, `JOBMETRICS_NAMESPACE_LIMITS=${bomb}=${CAP}/-`);
    try {
      // 4 pods × 3 000 distinct counters of value 1: 12 000 input series (the pod label tells them apart).
      const serve = [
        "const body = ['# TYPE bomb_total counter'];",
        'for (let i = 0; i < 3000; i++) body.push(`bomb_total{key="k${i}"} 1`);',
        "const text = body.join('\\n') + '\\n';",
        "require('node:http').createServer((req, res) => res.end(text)).listen(9100, '127.0.0.1');",
        'setTimeout(() => process.exit(0), 20000);',
      ].join('\n');
      await apply(cluster, sampleJob({ name: 'flood', ns: bomb, completions: 4, parallelism: 4, main: { command: ['node', '-e', serve] } }));
      await apply(cluster, sampleJob({ name: 'steady', ns: calm, env: { ITEMS: '200', DURATION_MS: '15000' } }));
      expect((await waitForJob(cluster, bomb, 'flood')).condition).to.equal('Complete');
      expect((await waitForJob(cluster, calm, 'steady')).condition).to.equal('Complete');

      // The calm namespace: exactly what its job counted.
      const calmTruth = await truthFromLog(cluster, calm, (await jobPods(cluster, calm, 'steady'))[0]!.name, 'main');
      const want = expectedOutcomes(calmTruth);
      const got = await settle(cluster, `demo_items_processed_total{namespace="${calm}"}`, sameAs(want));
      expect(byOutcome(got)).to.deep.equal(want);

      // The flood: the gateway admitted exactly CAP of the namespace's series and counted the
      // rest as dropped; exactly those arrived.
      const ips = (await kubectlOk(cluster.cp, ['-n', 'jobmetrics', 'get', 'pods', '-l', 'app.kubernetes.io/name=jobmetrics-gateway', '-o', 'jsonpath={.items[*].status.podIP}'])).trim().split(/\s+/);
      const texts = await Promise.all(ips.map(async (ip) => (await fetch(`http://${ip}:8480/metrics`)).text()));
      const perReplica = (re: RegExp): number[] => texts.map((t) => Number(re.exec(t)?.[1] ?? 0));
      const live = perReplica(new RegExp(`^jobmetrics_gateway_namespace_live_series\\{namespace="${bomb}"\\} (\\d+)$`, 'm'));
      const dropped = perReplica(new RegExp(`^jobmetrics_gateway_limit_dropped_samples_total\\{namespace="${bomb}",reason="series-limit"\\} (\\d+)$`, 'm'));
      expect(live, 'live series of the namespace at the gateway').to.deep.equal([CAP]);
      expect(dropped[0], 'samples dropped by the series cap').to.be.above(0);
      const admitted = CAP;
      const arrived = await settle(cluster, `sum(bomb_total{namespace="${bomb}"})`, (s) => s[0]?.value === admitted);
      expect(arrived.map((s) => s.value), 'every admitted series (value 1 each) arrived, and nothing else').to.deep.equal([admitted]);
      // The aggregator was never OOM-killed or restarted.
      const vmagent = JSON.parse(await kubectlOk(cluster.cp, ['-n', 'jobmetrics', 'get', 'pods', '-l', 'app.kubernetes.io/name=jobmetrics-aggregator', '-o', 'json'])) as { items: Array<{ status: { containerStatuses?: Array<{ restartCount: number }> } }> };
      expect(vmagent.items.map((p) => p.status.containerStatuses?.[0]?.restartCount)).to.deep.equal([0]);
      console.log(`      flood: 12 000 input series offered, ${admitted} admitted, ${dropped[0]} samples dropped`);
    } finally {
      await gateway(2, 'JOBMETRICS_NAMESPACE_LIMITS-');
    }
  });

  it('Job outcomes (the recorder): runs, attempts, durations and unmeasured pods per workload equal what the API objects say and the Job controller counted; a recorder killed mid-stream counts nothing twice', async function () {
    this.timeout(420_000);
    const ns = 'e2e-outcomes';
    await labelledNamespace(cluster, ns);
    // A CronJob whose run fails (retained by failedJobsHistoryLimit) and whose retry succeeds: the
    // case where per-Job series give duplicate samples and "succeeded 1, failed 1" elsewhere.
    await apply(cluster, { apiVersion: 'batch/v1', kind: 'CronJob', metadata: { name: 'flaky', namespace: ns }, spec: { schedule: '0 0 1 1 *', suspend: true, failedJobsHistoryLimit: 1, jobTemplate: { spec: (sampleJob({ name: 'x', ns }) as { spec: Record<string, unknown> }).spec } } });
    const cron = JSON.parse(await kubectlOk(cluster.cp, ['-n', ns, 'get', 'cronjob', 'flaky', '-o', 'json'])) as { metadata: { uid: string } };
    const owned = (name: string, env: Record<string, string>): Record<string, unknown> => {
      const job = sampleJob({ name, ns, env }) as { metadata: Record<string, unknown> };
      job.metadata['ownerReferences'] = [{ apiVersion: 'batch/v1', kind: 'CronJob', name: 'flaky', uid: cron.metadata.uid, controller: true, blockOwnerDeletion: true }];
      return job;
    };
    await apply(cluster, owned('flaky-run-1', { EXIT_CODE: '3', ITEMS: '20' }));
    // One recorder replica killed while the run ends: the other delivers; the new one lists
    // everything again and delivers the same events, which add nothing.
    const recorders = JSON.parse(await kubectlOk(cluster.cp, ['-n', 'jobmetrics', 'get', 'pods', '-l', 'app.kubernetes.io/name=jobmetrics-recorder', '-o', 'json'])) as { items: { metadata: { name: string } }[] };
    expect(recorders.items, 'recorder replicas').to.have.length(2);
    await kubectlOk(cluster.cp, ['-n', 'jobmetrics', 'delete', 'pod', recorders.items[0]?.metadata.name ?? '', '--grace-period=0', '--force', '--wait=false']);
    expect((await waitForJob(cluster, ns, 'flaky-run-1')).condition).to.equal('Failed');
    await apply(cluster, owned('flaky-run-2', { ITEMS: '20' }));
    expect((await waitForJob(cluster, ns, 'flaky-run-2')).condition).to.equal('Complete');
    // Pods that run without the sidecar: one opted out by its label, one the webhook skips (no
    // metrics port declared or annotated).
    await apply(cluster, sampleJob({ name: 'opted-out', ns, labels: { 'jobmetrics.io/inject': 'disabled' } }));
    const unported = sampleJob({ name: 'no-port', ns }) as { spec: { template: { metadata: { annotations: Record<string, string> } } } };
    unported.spec.template.metadata.annotations = {};
    await apply(cluster, unported);
    for (const name of ['opted-out', 'no-port']) expect((await waitForJob(cluster, ns, name)).condition, name).to.equal('Complete');

    // What the API objects say, for every namespace of this suite (all opted in).
    interface ApiJob { metadata: { namespace: string; name: string; ownerReferences?: { kind: string; name: string; controller?: boolean }[] }; status: { startTime?: string; completionTime?: string; conditions?: { type: string; status: string; reason?: string; lastTransitionTime?: string }[] } }
    const jobs = (JSON.parse(await kubectlOk(cluster.cp, ['get', 'jobs', '-A', '-o', 'json'])) as { items: ApiJob[] }).items;
    const runs = new Map<string, number>();
    const durations = new Map<string, { count: number; sum: number }>();
    const controllerView = new Map<string, number>();
    for (const j of jobs) {
      const done = j.status.conditions?.find((c) => (c.type === 'Complete' || c.type === 'Failed') && c.status === 'True');
      if (!done) continue;
      const result = done.type === 'Complete' ? 'succeeded' : 'failed';
      const workload = j.metadata.ownerReferences?.find((o) => o.kind === 'CronJob' && o.controller)?.name ?? j.metadata.name;
      const key = `${j.metadata.namespace}/${workload}/${result}/${done.reason ?? ''}`;
      runs.set(key, (runs.get(key) ?? 0) + 1);
      controllerView.set(`${result}/${done.reason ?? ''}`, (controllerView.get(`${result}/${done.reason ?? ''}`) ?? 0) + 1);
      const end = Date.parse((done.type === 'Complete' ? j.status.completionTime : undefined) ?? done.lastTransitionTime ?? '');
      const d = durations.get(`${j.metadata.namespace}/${workload}/${result}`) ?? { count: 0, sum: 0 };
      durations.set(`${j.metadata.namespace}/${workload}/${result}`, { count: d.count + 1, sum: d.sum + (end - Date.parse(j.status.startTime ?? '')) / 1000 });
    }
    expect(runs.get(`${ns}/flaky/failed/BackoffLimitExceeded`), 'the failed run').to.equal(1);
    expect(runs.get(`${ns}/flaky/succeeded/CompletionsReached`), 'the retry').to.equal(1);
    const keyOf = (s: Sample, ...names: string[]): string => names.map((n) => s.labels[n] ?? '').join('/');
    const asMap = (samples: readonly Sample[], ...names: string[]): Map<string, number> => new Map(samples.map((s) => [keyOf(s, ...names), s.value]));
    const sameMap = (a: Map<string, number>, b: Map<string, number>): boolean => JSON.stringify([...a].sort()) === JSON.stringify([...b].sort());
    const gotRuns = await settle(cluster, 'jobmetrics_job_runs_total', (s) => sameMap(asMap(s, 'namespace', 'job', 'result', 'reason'), runs), 120_000);
    expect(Object.fromEntries([...asMap(gotRuns, 'namespace', 'job', 'result', 'reason')].sort())).to.deep.equal(Object.fromEntries([...runs].sort()));
    const counts = asMap(await promQuery(cluster, 'jobmetrics_job_run_duration_seconds_count'), 'namespace', 'job', 'result');
    const sums = asMap(await promQuery(cluster, 'jobmetrics_job_run_duration_seconds_sum'), 'namespace', 'job', 'result');
    for (const [key, d] of durations) {
      expect(counts.get(key), `run durations counted: ${key}`).to.equal(d.count);
      expect(sums.get(key), `run durations summed: ${key}`).to.equal(d.sum);
    }

    // The Job controller's own count of finished Jobs (no namespace, no workload), by result and reason.
    const kcm = await get(`${cluster.cp.controllerManagerUrl}/metrics`, { token: cluster.cp.adminToken, insecure: true });
    expect(kcm.status, 'kube-controller-manager /metrics').to.equal(200);
    const kcmText = kcm.body;
    const finished = new Map<string, number>();
    for (const m of kcmText.matchAll(/^job_controller_jobs_finished_total\{([^}]*)\} (\S+)$/gm)) {
      const labels = Object.fromEntries([...(m[1] ?? '').matchAll(/(\w+)="([^"]*)"/g)].map((l) => [l[1], l[2]]));
      const key = `${labels['result']}/${labels['reason']}`;
      finished.set(key, (finished.get(key) ?? 0) + Number(m[2]));
    }
    expect(Object.fromEntries([...finished].filter(([, v]) => v > 0).sort()), 'job_controller_jobs_finished_total').to.deep.equal(Object.fromEntries([...controllerView].sort()));

    // Attempts: every termination of a main container the pods still show (restarts in place included).
    interface ApiPod { metadata: { namespace: string; name: string; labels?: Record<string, string> }; spec: { containers: { name: string }[]; initContainers?: { name: string }[] }; status: { containerStatuses?: { name: string; restartCount: number; state?: { terminated?: { exitCode: number; reason?: string } } }[] } }
    const pods = (JSON.parse(await kubectlOk(cluster.cp, ['-n', ns, 'get', 'pods', '-o', 'json'])) as { items: ApiPod[] }).items;
    let attempts = 0;
    for (const p of pods) {
      const main = p.status.containerStatuses?.find((c) => c.name === 'main');
      if (main) attempts += main.restartCount + (main.state?.terminated ? 1 : 0);
    }
    expect(attempts, 'attempts the API shows').to.equal(4);
    const gotAttempts = await settle(cluster, `sum(jobmetrics_job_attempts_total{namespace="${ns}"})`, (s) => s[0]?.value === attempts);
    expect(gotAttempts[0]?.value).to.equal(attempts);
    const failedAttempts = await promQuery(cluster, `jobmetrics_job_attempts_total{namespace="${ns}", result="failed"}`);
    expect(failedAttempts.map((s) => [s.labels['job'], s.labels['reason'], s.labels['exit_code'], s.value])).to.deep.equal([['flaky', 'Error', 'other', 1]]);
    const unmeasured = await settle(cluster, `jobmetrics_pods_unmeasured_total{namespace="${ns}"}`, (s) => s.length === 2);
    expect(Object.fromEntries(unmeasured.map((s) => [`${s.labels['job']}/${s.labels['reason']}`, s.value]))).to.deep.equal({ 'opted-out/opted-out': 1, 'no-port/skipped': 1 });

    // The in-place restarts of the OnFailure test: three attempts, two failed, in one pod.
    const inPlace = await promQuery(cluster, 'sum by (result) (jobmetrics_job_attempts_total{namespace="e2e-onfailure"})');
    expect(Object.fromEntries(inPlace.map((s) => [s.labels['result'], s.value]))).to.deep.equal({ failed: 2, succeeded: 1 });
    const oom = await promQuery(cluster, 'jobmetrics_job_attempts_total{namespace="e2e-oom"}');
    expect(oom.map((s) => [s.labels['reason'], s.labels['exit_code'], s.value])).to.deep.equal([['OOMKilled', '137', 1]]);

    // How each pod's sidecar ended and what it did, read from its termination message: per
    // workload, exactly what the sidecars' own summary lines add up to. The six pods of the first
    // test, the OOM-killed main container's pod and the pod restarted in place delivered their
    // final flush and dropped nothing; the sidecar at its input limits
    // dropped the samples over its limit; the sidecar killed and restarted in its pod counts its
    // last run only, and says so.
    const sidecarCounts = (samples: readonly Sample[]): Record<string, number> =>
      Object.fromEntries(samples.map((x) => [`${(x.labels['__name__'] ?? '').replace('jobmetrics_sidecar_', '')}{${x.labels['result'] ?? x.labels['reason'] ?? ''}}`, x.value]).sort());
    for (const [namespace, pods, healthy, extra] of [
      ['e2e-native', 6, true, {}],
      ['e2e-oom', 1, true, {}],
      ['e2e-onfailure', 1, true, {}],
      ['e2e-sidecar-limits', 1, false, {}],
      ['e2e-sidecar-killed', 1, false, { 'delivery_counts_unknown_total{sidecar-restarted}': 1 }],
    ] as const) {
      const names = (await kubectlOk(cluster.cp, ['-n', namespace, 'get', 'pods', '-o', 'jsonpath={.items[*].metadata.name}'])).trim().split(/\s+/);
      expect(names, namespace).to.have.length(pods);
      const summaries = await Promise.all(names.map((p) => sidecarSummary(cluster, namespace, p)));
      const total = (f: (s: Record<string, unknown>) => unknown): number => summaries.reduce((n, s) => n + Number(f(s) ?? 0), 0);
      const drops: Record<string, number> = {};
      for (const s of summaries) for (const [reason, n] of Object.entries(s['droppedByReason'] as Record<string, number>)) if (n > 0) drops[`dropped_samples_total{${reason}}`] = (drops[`dropped_samples_total{${reason}}`] ?? 0) + n;
      const want = Object.fromEntries(Object.entries({
        'final_flushes_total{delivered}': summaries.filter((s) => s['finalDelivered'] === true).length,
        'deliveries_total{ok}': total((s) => s['deliveriesOk']),
        'deliveries_total{failed}': total((s) => s['deliveryFailures']),
        'delivery_retries_total{}': total((s) => s['retries']),
        ...drops,
        ...extra,
      }).sort());
      const q = `sum by (__name__, result, reason) ({__name__=~"jobmetrics_sidecar_.+", namespace="${namespace}"})`;
      const got = await settle(cluster, q, (x) => JSON.stringify(sidecarCounts(x)) === JSON.stringify(want));
      expect(sidecarCounts(got), namespace).to.deep.equal(want);
      expect(want['final_flushes_total{delivered}'], `${namespace}: final flushes delivered`).to.equal(pods);
      expect(want['deliveries_total{ok}'], `${namespace}: deliveries acknowledged`).to.be.at.least(pods);
      // A failed attempt or a retry is possible even here (a TokenReview slow on a loaded node makes the
      // gateway answer 503), and it is counted exactly like the rest above; what a healthy pod must
      // show is that its final flush was delivered (above) and that nothing was dropped.
      if (healthy) expect(Object.keys(drops), `${namespace}: samples dropped`).to.deep.equal([]);
    }

    // The workload's first failure is a new output series: increase() counts it (born at 0).
    const failedRuns = await promQuery(cluster, `timestamp(jobmetrics_job_runs_total{namespace="${ns}", result="failed"})`);
    const firstFailure = await promFetch(cluster, `/api/v1/query?query=${encodeURIComponent(`increase(jobmetrics_job_runs_total{namespace="${ns}", result="failed"}[30m])`)}&time=${failedRuns[0]?.value ?? 0}`);
    expect(Number(((await firstFailure.json()) as { data: { result: { value: [number, string] }[] } }).data.result[0]?.value[1])).to.equal(1);

    // One pod's own numbers, kept by the kubelet as the sidecar's termination message.
    const [retry] = await jobPods(cluster, ns, 'flaky-run-2');
    const message = await kubectlOk(cluster.cp, ['-n', ns, 'get', 'pod', retry?.name ?? '', '-o', `jsonpath={.status.initContainerStatuses[?(@.name=="${SIDECAR}")].state.terminated.message}`]);
    const retryTruth = await truthFromLog(cluster, ns, retry?.name ?? '', 'main');
    const head = message.split('\n')[0] ?? '';
    expect(head).to.match(/^jobmetrics final values: trigger=main-exited attempt=1 delivered=true series=\d+ deliveries_ok=[1-9]\d* deliveries_failed=\d+ retries=\d+$/);
    const retrySummary = await sidecarSummary(cluster, ns, retry?.name ?? '');
    expect(head.split(' ').slice(-3), 'the message counts what the sidecar logged').to.deep.equal([
      `deliveries_ok=${String(retrySummary['deliveriesOk'])}`,
      `deliveries_failed=${String(retrySummary['deliveryFailures'])}`,
      `retries=${String(retrySummary['retries'])}`,
    ]);
    expect(message.split('\n')).to.include(`demo_items_processed_total{outcome="ok"} ${retryTruth.ok}`);

    // A CronJob's last success, from its own status, as a gauge.
    const nightly = (await cronSuccesses()).get('e2e-cron/nightly');
    expect(nightly, 'the CronJob controller recorded a success').to.be.a('number');
    const lastSuccess = await settle(cluster, 'jobmetrics_cronjob_last_success_timestamp_seconds:max{namespace="e2e-cron", job="nightly"}', (s) => s.length === 1);
    expect(lastSuccess.map((s) => s.value)).to.deep.equal([nightly]);

    // Prometheus never saw a sample out of order or duplicated.
    const promLog = await kubectlOk(cluster.cp, ['-n', 'jobmetrics', 'logs', 'deploy/jobmetrics-prometheus']);
    expect(promLog.split('\n').filter((l) => /out of order|duplicate sample/i.test(l))).to.deep.equal([]);
  });

  // Last: the cluster's own cleanup, as `after` would run it.
  it('it watches itself: the default store scrapes every part of jobmetrics (webhook, gateway, recorder, vmagent, Prometheus), each replica up, and its rules raise the run-failed alert for the failed Jobs above', async () => {
    const want = { 'jobmetrics-aggregator': 1, 'jobmetrics-gateway': 2, 'jobmetrics-prometheus': 1, 'jobmetrics-recorder': 2, 'jobmetrics-webhook': 2 };
    const query = 'sum by (job) (up{namespace="jobmetrics"} == 1)';
    const got = await settle(cluster, query, (s) => JSON.stringify(Object.fromEntries(s.map((x) => [x.labels['job'], x.value]).sort())) === JSON.stringify(want), 120_000);
    expect(Object.fromEntries(got.map((x) => [x.labels['job'] ?? '', x.value]).sort())).to.deep.equal(want);
    // Each part's own counters are there, e.g. the webhook's injections and the gateway's writes.
    for (const metric of ['jobmetrics_webhook_injections_total', 'jobmetrics_gateway_write_requests_total', 'vmagent_remotewrite_requests_total']) {
      expect((await promQuery(cluster, `count(${metric}{namespace="jobmetrics"})`)).map((x) => x.value > 0), metric).to.deep.equal([true]);
    }
    // The rules (docs/alerts.md) are loaded and evaluated: the outcome test's failed runs, within
    // the last 15 minutes, raise JobmetricsRunFailed for exactly those workloads and reasons.
    const pairs = (samples: Sample[]): string[] => samples.map((x) => `${x.labels['job']}/${x.labels['reason']}`).sort();
    const failed = pairs(await promQuery(cluster, 'sum by (job, reason) (jobmetrics_job_runs_total{namespace="e2e-outcomes", result="failed"})'));
    expect(failed.length, 'failed runs in e2e-outcomes').to.be.above(0);
    const firing = await settle(cluster, 'ALERTS{alertname="JobmetricsRunFailed", alertstate="firing", namespace="e2e-outcomes"}', (x) => JSON.stringify(pairs(x)) === JSON.stringify(failed), 120_000);
    expect(pairs(firing)).to.deep.equal(failed);
  });

  // ---- The dashboards (docs/dashboards.md): every panel's query as Grafana sends it, the variables
  // set to this suite's workloads, run against this Prometheus; the answers are what the Jobs above
  // imply. Instant queries are read at T, the newest flush of e2e-outcomes/flaky's runs (alive, so
  // increase() over a window holding its birth at 0 has nothing to extrapolate).
  interface PanelAnswer { readonly expr: string; readonly error?: string; readonly samples: Sample[] }
  const dashboardJson = (file: string): Parameters<typeof panelQueries>[0] & { templating: { list: { name: string; definition?: string; regex?: string }[] } } =>
    JSON.parse(readFileSync(join(ROOT, 'dashboards', file), 'utf8')) as Parameters<typeof panelQueries>[0] & { templating: { list: { name: string; definition?: string; regex?: string }[] } };
  async function runPanels(file: string, values: Record<string, string>, at: number): Promise<Map<string, PanelAnswer>> {
    const out = new Map<string, PanelAnswer>();
    for (const q of panelQueries(dashboardJson(file), { __rate_interval: '1m', __interval: '30s', __range: '3600s', ...values })) {
      const e = encodeURIComponent(q.expr);
      const res = await promFetch(cluster, q.instant ? `/api/v1/query?query=${e}&time=${at}` : `/api/v1/query_range?query=${e}&start=${at - 1800}&end=${at}&step=30`);
      const body = (await res.json()) as { status: string; error?: string; data?: { result: { metric: Record<string, string>; value?: [number, string]; values?: [number, string][] }[] } };
      const samples = (body.data?.result ?? []).map((r) => ({ labels: r.metric, value: Number((r.value ?? r.values?.at(-1))?.[1]) }));
      const key = `${q.panel} ${q.refId}`;
      if (out.has(key)) throw new Error(`${file}: two queries ${key}`);
      out.set(key, { expr: q.expr, samples, ...(body.status === 'success' ? {} : { error: `${res.status} ${body.error ?? ''}` }) });
    }
    return out;
  }
  /** A panel's answer as { "label/label…": value }; fails on a panel that does not exist. */
  const answer = (panels: Map<string, PanelAnswer>, key: string, ...labels: string[]): Record<string, number> => {
    const a = panels.get(key);
    if (!a) throw new Error(`no panel query "${key}" among ${[...panels.keys()].join('; ')}`);
    return Object.fromEntries(a.samples.map((s) => [labels.map((l) => s.labels[l] ?? '').join('/'), s.value]).sort());
  };
  const rounded = (r: Record<string, number>): Record<string, number> => Object.fromEntries(Object.entries(r).map(([k, v]) => [k, Math.round(v)]));
  const dashboardValues = {
    overview: { namespace: '.+' },
    workload: { namespace: 'e2e-outcomes', job: 'flaky', counter: 'demo_items_processed_total', histogram: 'demo_item_duration_seconds' },
    self: { jobmetrics_namespace: 'jobmetrics' },
  };
  const flushTime = async (): Promise<number> => {
    // A CronJob's last success reaches the recorder with the controller's status update, after the
    // Job's end: wait until every CronJob with a success has its gauge, then one aggregation
    // interval more, so that the flush at T holds it beside the runs (the panels' checks say what a
    // gauge still missing after 90 s may leave out).
    const crons = [...(await cronSuccesses()).keys()];
    const delivered = (x: readonly Sample[]): boolean => crons.every((k) => x.some((g) => `${g.labels['namespace']}/${g.labels['job']}` === k));
    const gauges = 'jobmetrics_cronjob_last_success_timestamp_seconds:max';
    if (!delivered(await promQuery(cluster, gauges))) {
      await settle(cluster, gauges, delivered);
      await sleep(15_000);
    }
    const [t] = await promQuery(cluster, 'max(timestamp(jobmetrics_job_runs_total{namespace="e2e-outcomes", job="flaky"}))');
    const alive = await promQuery(cluster, `count(timestamp(jobmetrics_job_runs_total{namespace="e2e-outcomes", job="flaky"}) == ${t?.value ?? 0})`);
    expect(alive.map((s) => s.value), 'both of flaky\'s runs series flushed at T').to.deep.equal([2]);
    return t?.value ?? 0;
  };
  /** Each CronJob's last success in seconds, by `namespace/name`, from the controller's status. */
  async function cronSuccesses(): Promise<Map<string, number>> {
    const crons = (JSON.parse(await kubectlOk(cluster.cp, ['get', 'cronjobs', '-A', '-o', 'json'])) as { items: { metadata: { namespace: string; name: string }; status: { lastSuccessfulTime?: string } }[] }).items;
    return new Map(crons.flatMap((c) => (c.status.lastSuccessfulTime ? [[`${c.metadata.namespace}/${c.metadata.name}`, Date.parse(c.status.lastSuccessfulTime) / 1000] as const] : [])));
  }
  /** Finished Jobs per workload, from the API objects (the outcome test's reading). */
  async function finishedJobs(): Promise<{ key: string; result: string; reason: string; seconds: number }[]> {
    const jobs = (JSON.parse(await kubectlOk(cluster.cp, ['get', 'jobs', '-A', '-o', 'json'])) as { items: { metadata: { namespace: string; name: string; ownerReferences?: { kind: string; name: string; controller?: boolean }[] }; status: { startTime?: string; completionTime?: string; conditions?: { type: string; status: string; reason?: string; lastTransitionTime?: string }[] } }[] }).items;
    return jobs.flatMap((j) => {
      const done = j.status.conditions?.find((c) => (c.type === 'Complete' || c.type === 'Failed') && c.status === 'True');
      if (!done) return [];
      const workload = j.metadata.ownerReferences?.find((o) => o.kind === 'CronJob' && o.controller)?.name ?? j.metadata.name;
      const end = Date.parse((done.type === 'Complete' ? j.status.completionTime : undefined) ?? done.lastTransitionTime ?? '');
      return [{ key: `${j.metadata.namespace}/${workload}`, result: done.type === 'Complete' ? 'succeeded' : 'failed', reason: done.reason ?? '', seconds: (end - Date.parse(j.status.startTime ?? '')) / 1000 }];
    });
  }

  it('dashboards: every panel query runs without error, returns data wherever the workloads above imply it, and reads only series Prometheus holds; the variables list this suite\'s workloads', async () => {
    const at = await flushTime();
    const empty: string[] = [];
    const names = new Set<string>();
    for (const [name, file] of [['overview', 'overview.json'], ['workload', 'workload.json'], ['self', 'self.json']] as const) {
      const panels = await runPanels(file, dashboardValues[name], at);
      expect([...panels].filter(([, a]) => a.error !== undefined).map(([k, a]) => `${k}: ${a.expr}: ${a.error}`), `${file}: queries that failed`).to.deep.equal([]);
      const withData = new Map<string, boolean>();
      for (const [key, a] of panels) {
        const panel = `${name}: ${key.slice(0, key.lastIndexOf(' '))}`;
        withData.set(panel, (withData.get(panel) ?? false) || a.samples.length > 0);
        for (const m of a.expr.matchAll(/([a-zA-Z_:][a-zA-Z0-9_:]*)\{/g)) names.add(m[1] ?? '');
      }
      empty.push(...[...withData].filter(([, data]) => !data).map(([panel]) => panel));
    }
    // No data implied: the sample job exposes no gauge, and every final flush was delivered.
    // flaky's CronJob success may still be on its way when T is read (flushTime waits 90 s for it).
    expect(empty.sort().filter((p) => p !== 'workload: Last successful run (CronJob)'), 'panels without data').to.deep.equal(['self: Series not delivered by final flushes', 'workload: Gauges: highest value across pods (:max)']);
    const held = (((await (await promFetch(cluster, '/api/v1/label/__name__/values')).json()) as { data: string[] }).data);
    const absent = [...names].filter((n) => !held.includes(n)).sort();
    // Series written only when something happens: a final flush undelivered (none in a healthy
    // run), and the flood test's limit drops, a series born at its first drop on the one gateway
    // replica the test scaled to, which its rollback may replace before a scrape saw it.
    expect(absent.filter((n) => n !== 'jobmetrics_gateway_limit_dropped_samples_total' && n !== 'jobmetrics_sidecar_undelivered_series_total'), 'series no query finds').to.deep.equal([]);
    // The variables' own queries (label_values), as Grafana runs them over the range.
    const variable = async (file: string, name: string, values: Record<string, string>): Promise<string[]> => {
      const v = dashboardJson(file).templating.list.find((x) => x.name === name);
      const m = /^label_values\((.+), (\w+)\)$/.exec(v?.definition ?? '');
      if (!m?.[1] || !m[2]) throw new Error(`${file}: variable ${name} is not label_values: ${v?.definition}`);
      const res = await promFetch(cluster, `/api/v1/label/${m[2]}/values?match[]=${encodeURIComponent(substitute(m[1], values))}&start=${at - 3600}&end=${at}`);
      const found = ((await res.json()) as { data: string[] }).data;
      const regex = v?.regex ? new RegExp(v.regex.slice(1, -1)) : undefined;
      return found.map((x) => (regex ? regex.exec(x)?.[1] ?? '' : x)).filter(Boolean).sort();
    };
    expect(await variable('overview.json', 'namespace', {})).to.include.members(['e2e-cron', 'e2e-deadline', 'e2e-native', 'e2e-outcomes']);
    expect(await variable('workload.json', 'job', dashboardValues.workload)).to.deep.equal(['flaky', 'no-port', 'opted-out']);
    expect(await variable('workload.json', 'counter', dashboardValues.workload)).to.deep.equal(['demo_items_processed_total']);
    expect(await variable('workload.json', 'histogram', dashboardValues.workload)).to.deep.equal(['demo_item_duration_seconds']);
    expect(await variable('self.json', 'jobmetrics_namespace', {})).to.deep.equal(['jobmetrics']);
  });

  it('dashboards, overview: completion rate per workload, runs, failures and their causes, run time, CronJobs\' last success and SLO burn equal what the Job objects say', async () => {
    const at = await flushTime();
    const panels = await runPanels('overview.json', dashboardValues.overview, at);
    const jobs = await finishedJobs();
    const count = (pick: (j: (typeof jobs)[number]) => string | undefined): Record<string, number> => {
      const out: Record<string, number> = {};
      for (const j of jobs) { const k = pick(j); if (k !== undefined) out[k] = (out[k] ?? 0) + 1; }
      return Object.fromEntries(Object.entries(out).sort());
    };
    const runs = count((j) => j.key);
    const succeeded = count((j) => (j.result === 'succeeded' ? j.key : undefined));
    const rate = Object.fromEntries(Object.keys(runs).map((k) => [k, (succeeded[k] ?? 0) / (runs[k] ?? 1)]));
    // Exact: a workload's rate is 0 or 1 from one series, and flaky's two series hold samples at T.
    expect(answer(panels, 'Completion rate per workload A', 'namespace', 'job')).to.deep.equal(rate);
    expect(rate['e2e-outcomes/flaky']).to.equal(0.5);
    // Runs of workloads whose series went stale (15 m after their last run) are extrapolated by
    // increase() over the last few seconds of the window: counts are exact once rounded.
    expect(rounded(answer(panels, 'Completion rate per workload B', 'namespace', 'job'))).to.deep.equal(runs);
    expect(answer(panels, 'Completion rate per workload B', 'namespace', 'job')['e2e-outcomes/flaky']).to.equal(2);
    expect(rounded(answer(panels, 'Runs finished A'))).to.deep.equal({ '': jobs.length });
    const failed = count((j) => (j.result === 'failed' ? j.key : undefined));
    expect(rounded(answer(panels, 'Runs failed A'))).to.deep.equal({ '': Object.values(failed).reduce((a, b) => a + b, 0) });
    expect(rounded(answer(panels, 'Top failing workloads A', 'namespace', 'job'))).to.deep.equal(failed);
    expect(rounded(answer(panels, 'Why runs failed A', 'namespace', 'job', 'reason'))).to.deep.equal(count((j) => (j.result === 'failed' ? `${j.key}/${j.reason}` : undefined)));
    expect(rounded(answer(panels, 'Why attempts failed A', 'namespace', 'job', 'reason', 'exit_code'))).to.deep.include({
      'e2e-outcomes/flaky/Error/other': 1, // EXIT_CODE 3
      'e2e-oom/hungry/OOMKilled/137': 1,
      'e2e-onfailure/retries/Error/1': 2, // FAIL_ATTEMPTS 2, restarted in place
    });
    // Run time of flaky's one successful run (start → Complete), and its bucket for the quantiles.
    const ran = jobs.find((j) => j.key === 'e2e-outcomes/flaky' && j.result === 'succeeded')?.seconds ?? NaN;
    expect(answer(panels, 'Run time of successful runs per workload A', 'namespace', 'job')['e2e-outcomes/flaky']).to.equal(ran);
    const upper = DURATION_BUCKETS.find((b) => ran <= b) ?? Infinity;
    const lower = [0, ...DURATION_BUCKETS].filter((b) => b < upper).at(-1) ?? 0;
    for (const ref of ['B', 'C']) expect(answer(panels, `Run time of successful runs per workload ${ref}`, 'namespace', 'job')['e2e-outcomes/flaky'], ref).to.be.within(lower, upper);
    // CronJobs: T minus the controller's lastSuccessfulTime.
    const crons = await cronSuccesses();
    const since = answer(panels, 'CronJobs: time since the last success A', 'namespace', 'job');
    // Every gauge answered is a CronJob's success, to the millisecond; the nightly CronJob's, long
    // delivered, must be there (flaky's may still be on its way when T is read).
    expect(Object.keys(since)).to.include('e2e-cron/nightly');
    expect([...crons.keys()]).to.include.members(Object.keys(since));
    for (const [key, success] of crons) {
      if (since[key] !== undefined) expect(since[key], key).to.be.closeTo(at - success, 0.001);
    }
    // SLO: flaky failed half its runs, 10× the 5 % budget. The recording rules' rate() extrapolates
    // each series to its window's end, the more so the younger it is: the retry's series, born a
    // minute or two before, weighs up to a quarter more (8.8 seen). Between the slow-burn (6) and
    // the fast-burn (14.4) thresholds, as half of the runs failing is.
    // The ratio is a recording rule, evaluated once a minute, and the alert on it is evaluated
    // every 30 s after that: either may be an evaluation behind T. And a run's series enters
    // rate() only with its second sample in the window: an evaluation right after flaky's last run
    // counts the other run alone (20 seen: all failed). So both are re-read until every window
    // holds both runs.
    let burn = panels;
    const burnOf = (ref: string): number | undefined => answer(burn, `Error-budget burn rate ${ref}`, 'namespace', 'job')['e2e-outcomes/flaky'];
    const firingNow = (): Record<string, number> => answer(burn, 'Workloads burning their error budget A', 'alertname', 'namespace', 'job');
    const slowBurn = 'JobmetricsCompletionSLOSlowBurn/e2e-outcomes/flaky';
    const inBand = (ref: string): boolean => { const b = burnOf(ref); return b !== undefined && (!Number.isFinite(b) ? ref === 'A' : b >= 6 && b <= 14.4); };
    for (let i = 0; i < 18 && (!inBand('A') || !inBand('B') || firingNow()[slowBurn] === undefined); i++) {
      await sleep(10_000);
      burn = await runPanels('overview.json', dashboardValues.overview, Date.now() / 1000);
    }
    // The 6 h window must hold it; the 1 h one where its ratio is a number (seen NaN once: 0/0 right after a rule evaluation).
    expect(burnOf('B'), 'B').to.be.within(6, 14.4);
    if (Number.isFinite(burnOf('A'))) expect(burnOf('A'), 'A').to.be.within(6, 14.4);
    const firing = firingNow();
    expect(firing).to.have.property(slowBurn);
    for (const alert of Object.keys(firing)) expect(failed, alert).to.have.property(alert.split('/').slice(1).join('/'));
    // The completion rate over the hour is the 1 h burn rate's complement, from the same recording rule.
    const last = answer(burn, 'Completion rate over the preceding hour A', 'namespace', 'job');
    if (Number.isFinite(burnOf('A'))) expect(last['e2e-outcomes/flaky']).to.be.closeTo(1 - (burnOf('A') ?? NaN) * 0.05, 1e-9);
    else expect(last['e2e-outcomes/flaky']).to.be.NaN;
    expect(last['e2e-native/counts']).to.equal(1);
  });

  it('dashboards, workload: e2e-outcomes/flaky\'s own counter and histogram over the range equal its jobs\' truths; its runs, attempts, run times and sidecars\' flushes equal the objects', async () => {
    const ns = 'e2e-outcomes';
    const at = await flushTime();
    const panels = await runPanels('workload.json', dashboardValues.workload, at);
    const pods = [...(await jobPods(cluster, ns, 'flaky-run-1')), ...(await jobPods(cluster, ns, 'flaky-run-2'))];
    expect(pods).to.have.length(2);
    const truth = sumTruths(await Promise.all(pods.map((p) => truthFromLog(cluster, ns, p.name, 'main'))));
    expect(answer(panels, 'demo_items_processed_total: increase in the range, by label A', 'outcome')).to.deep.equal(expectedOutcomes(truth));
    expect(answer(panels, 'demo_items_processed_total: rate by label A', 'outcome')).to.have.keys(Object.keys(expectedOutcomes(truth)));
    const quantiles = answer(panels, 'demo_item_duration_seconds: quantiles in the range D');
    expect(quantiles).to.deep.equal({ '': truth.observations });
    // Each quantile lies in the bucket the truth's cumulative counts put it in (Prometheus
    // interpolates inside it; past the last finite bucket it answers that bucket's bound).
    const les = Object.keys(truth.buckets).map((le) => (le === '+Inf' ? Infinity : Number(le))).sort((a, b) => a - b);
    for (const [ref, q] of [['A', 0.5], ['B', 0.9], ['C', 0.99]] as const) {
      const i = les.findIndex((le) => (truth.buckets[le === Infinity ? '+Inf' : String(le)] ?? 0) >= q * truth.observations);
      const [lo, hi] = les[i] === Infinity ? [les[i - 1] ?? 0, les[i - 1] ?? 0] : [les[i - 1] ?? 0, les[i] ?? 0];
      expect(answer(panels, `demo_item_duration_seconds: quantiles in the range ${ref}`)[''], `p${q * 100}`).to.be.within(lo, hi);
    }
    expect(Object.keys(answer(panels, 'demo_item_duration_seconds: quantiles while it ran A'))).to.deep.equal(['']);
    expect(answer(panels, 'Runs by result and reason A', 'result', 'reason')).to.deep.equal({ 'failed/BackoffLimitExceeded': 1, 'succeeded/CompletionsReached': 1 });
    expect(answer(panels, 'Attempts by result, reason and exit code A', 'result', 'reason', 'exit_code')).to.deep.equal({ 'failed/Error/other': 1, 'succeeded/Completed/0': 1 });
    expect(answer(panels, 'Sidecars\' final flushes A', 'result')).to.deep.equal({ delivered: 2 });
    const deliveries = answer(panels, 'Sidecars\' deliveries A', 'result');
    // What the two pods' sidecars logged: a failed attempt or a retry is possible even in a healthy
    // cluster (a slow TokenReview), so the panel must show exactly what they counted, not zero.
    const summaries = await Promise.all(pods.map((p) => sidecarSummary(cluster, ns, p.name)));
    const counted = (key: string): number => summaries.reduce((n, s) => n + Number(s[key] ?? 0), 0);
    expect([deliveries['ok'], deliveries['failed'], answer(panels, 'Sidecars\' deliveries B')['']], 'deliveries acknowledged, failed, retries').to.deep.equal([
      counted('deliveriesOk'),
      counted('deliveryFailures'),
      counted('retries'),
    ]);
    expect(deliveries['ok'], 'deliveries acknowledged: at least the final flush of each pod').to.be.at.least(2);
    const jobs = (await finishedJobs()).filter((j) => j.key === `${ns}/flaky`);
    expect(answer(panels, 'Mean run time by result A', 'result')).to.deep.equal(Object.fromEntries(jobs.map((j) => [j.result, j.seconds]).sort()));
    expect(Object.keys(answer(panels, 'p90 attempt time by result A', 'result'))).to.deep.equal(['failed', 'succeeded']);
  });

  it('dashboards, jobmetrics itself: every part\'s replicas up; injections answered; skips, unmeasured pods and final flushes as the pods say', async () => {
    const at = await flushTime();
    const webhookPods = (await kubectlOk(cluster.cp, ['-n', 'jobmetrics', 'get', 'pods', '-l', 'app.kubernetes.io/name=jobmetrics-webhook', '-o', 'jsonpath={.items[*].metadata.name}'])).trim().split(/\s+/);
    // From the newest webhook replica's first sample on, every injection is between two samples.
    const first = await Promise.all(webhookPods.map(async (pod) => (await promQuery(cluster, `min(min_over_time(timestamp(jobmetrics_webhook_injections_total{namespace="jobmetrics", pod="${pod}"})[1h:5s]))`))[0]?.value ?? at));
    const since = Math.max(...first);
    const allPods = (JSON.parse(await kubectlOk(cluster.cp, ['get', 'pods', '-A', '-o', 'json'])) as { items: { metadata: { creationTimestamp: string; annotations?: Record<string, string> } }[] }).items;
    const injected = allPods.filter((p) => Date.parse(p.metadata.creationTimestamp) / 1000 > since + 1 && p.metadata.annotations?.[STATUS] === 'injected').length;
    expect(injected, 'pods injected after the webhook replicas\' first scrape').to.be.above(5);
    const panels = await runPanels('self.json', { ...dashboardValues.self, __range: `${Math.ceil(at - since) + 1}s` }, at);
    const total = Object.values(answer(panels, 'Pods injected and skipped A', 'mode', 'workload_source')).reduce((a, b) => a + b, 0);
    // At least the Deployments' replicas answered, of the replicas found: a pod on its way out of a
    // rollout (the flood test's gateway, the recorder after a restart) may still be a target, up
    // for its last scrapes or already down, so the found may outnumber the answering.
    const want = { 'jobmetrics-aggregator': 1, 'jobmetrics-gateway': 2, 'jobmetrics-prometheus': 1, 'jobmetrics-recorder': 2, 'jobmetrics-webhook': 2 };
    const up = answer(panels, 'Replicas up, by part A', 'job');
    const found = answer(panels, 'Replicas up, by part B', 'job');
    expect(Object.keys(up)).to.deep.equal(Object.keys(want));
    expect(Object.keys(found)).to.deep.equal(Object.keys(want));
    for (const [part, n] of Object.entries(want)) {
      expect(up[part], `${part} up`).to.be.at.least(n);
      expect(found[part], `${part} found`).to.be.at.least(up[part] ?? 0);
    }
    expect(answer(panels, 'Skips by reason A', 'reason')['no-metrics-port'], 'the no-port pod of the outcome test').to.be.at.least(1);
    const wide = await runPanels('self.json', dashboardValues.self, at);
    expect(answer(wide, 'Job pods that ran without the sidecar A', 'namespace', 'job', 'reason')).to.deep.include({ 'e2e-outcomes/no-port/skipped': 1, 'e2e-outcomes/opted-out/opted-out': 1 });
    const flushes = answer(wide, 'Sidecars\' final flushes by workload A', 'namespace', 'job', 'result');
    expect(flushes['e2e-outcomes/flaky/delivered']).to.equal(2);
    expect(Math.round(flushes['e2e-native/counts/delivered'] ?? 0)).to.equal(6);
    expect(answer(wide, 'Sidecars\' deliveries by workload B', 'namespace', 'job')['e2e-outcomes/flaky'], 'flaky: failed deliveries').to.equal(0);
    expect(answer(wide, 'Samples the sidecars dropped, by reason A', 'namespace', 'job', 'reason')['e2e-sidecar-limits/wide/over-limit'], 'the sidecar at its input limits').to.be.above(0);
    expect(Math.round(answer(wide, 'Samples the sidecars dropped, by reason B', 'namespace', 'job', 'reason')['e2e-sidecar-killed/survivor/sidecar-restarted'] ?? 0), 'the restarted sidecar').to.equal(1);
    expect(Object.keys(answer(wide, 'Gateway: writes by status A', 'code'))).to.include('204');
    expect(Object.keys(answer(wide, 'Recorder: outcome events A', 'state'))).to.include('delivered');
    expect(answer(wide, 'Hourly series limit used A')['']).to.be.within(0, 1);
    expect(answer(wide, 'Pending for the store A')['']).to.be.at.least(0);
    const counters = await promFetch(cluster, `/api/v1/query_range?query=${encodeURIComponent('sum by (pod) (jobmetrics_webhook_injections_total{namespace="jobmetrics"})')}&start=${since - 120}&end=${at}&step=15`);
    // The panel answers the injections of the range; its count against the pods created since is
    // not asserted: a replica's first injections fall between increase()'s samples (seen 8.5 for 9).
    expect(total, `injections counted over the last ${Math.ceil(at - since)} s; webhook pods ${webhookPods.join(' ')} first scraped at ${first.map((f) => at - f).join(', ')} s before T; pods: ${allPods.filter((p) => p.metadata.annotations?.[STATUS] === 'injected').map((p) => at - Date.parse(p.metadata.creationTimestamp) / 1000).filter((d) => d < 400).join(' ')}; counters: ${JSON.stringify(((await counters.json()) as { data: unknown }).data)}`).to.be.above(0);
  });

  // ---- The Helm chart (charts/jobmetrics/README.md), after every test of the install.yaml install:
  // that install is deleted, the chart installed with default values (the images the cluster
  // has), upgraded with changed values, and uninstalled.
  const helmHome = (): string => join(cluster.dir, 'helm');
  const helm = (args: string[]): Promise<string> => runHelm(args, { kubeconfig: cluster.kubeconfigPath, home: helmHome(), timeoutMs: 400_000 });
  /** What the webhook created at run time and the upgrade must keep: its Secret's data and the caBundles it wrote. */
  const webhookTls = async (): Promise<{ secret: Record<string, string>; caBundles: string[] }> => {
    const secret = JSON.parse(await kubectlOk(cluster.cp, ['-n', 'jobmetrics', 'get', 'secret', 'jobmetrics-webhook-tls', '-o', 'json'])) as { data: Record<string, string> };
    const mwc = JSON.parse(await kubectlOk(cluster.cp, ['get', 'mutatingwebhookconfiguration', 'jobmetrics', '-o', 'json'])) as { webhooks: { clientConfig: { caBundle?: string } }[] };
    return { secret: secret.data, caBundles: mwc.webhooks.map((w) => w.clientConfig.caBundle ?? '') };
  };
  let tlsAfterInstall: Awaited<ReturnType<typeof webhookTls>> | undefined;

  it('the gateway down for a Job\'s whole life: the pod still ends, its sidecar counts the failed deliveries and the undelivered final flush, and once the gateway is back the recorder\'s counts of them raise JobmetricsSidecarDeliveriesFailing for that workload', async function () {
    this.timeout(420_000);
    const ns = 'e2e-gateway-down';
    await labelledNamespace(cluster, ns);
    await gateway(0);
    let summary: Record<string, unknown>;
    try {
      const { status, pods } = await runSampleJob(ns, 'unheard', { env: { ITEMS: '30', DURATION_MS: '3000' } });
      // The sidecar gives up after its flush timeout: the Job is not held up by its metrics.
      expect(status.condition).to.equal('Complete');
      summary = await sidecarSummary(cluster, ns, pods[0]?.name ?? '');
    } finally {
      await gateway(2);
    }
    expect(summary).to.include({ trigger: 'main-exited', finalDelivered: false, deliveriesOk: 0 });
    expect(summary['deliveryFailures'], 'deliveries failed after their retries').to.be.at.least(1);
    expect(summary['finalUndelivered'], 'series whose final values were lost').to.be.at.least(1);
    // The recorder read the pod's termination message and delivers its counts once the gateway
    // is back (it keeps them meanwhile, docs/outcomes.md): exactly what the sidecar logged.
    const want = {
      'deliveries_total{failed}': Number(summary['deliveryFailures']),
      'deliveries_total{ok}': 0,
      'delivery_retries_total{}': Number(summary['retries']),
      'final_flushes_total{undelivered}': 1,
      'undelivered_series_total{}': Number(summary['finalUndelivered']),
    };
    const counts = (x: readonly Sample[]): Record<string, number> =>
      Object.fromEntries(x.map((v) => [`${(v.labels['__name__'] ?? '').replace('jobmetrics_sidecar_', '')}{${v.labels['result'] ?? ''}}`, v.value]).sort());
    const q = `sum by (__name__, result) ({__name__=~"jobmetrics_sidecar_(deliveries|delivery_retries|final_flushes|undelivered_series)_total", namespace="${ns}"})`;
    expect(counts(await settle(cluster, q, (x) => JSON.stringify(counts(x)) === JSON.stringify(want), 180_000))).to.deep.equal(want);
    // The alert on them (its rule group evaluates every 30 s), for this workload.
    const firing = await settle(cluster, `ALERTS{alertname="JobmetricsSidecarDeliveriesFailing", alertstate="firing", namespace="${ns}"}`, (x) => x.length > 0, 120_000);
    expect(firing.map((a) => a.labels['job'])).to.deep.equal(['unheard']);
  });

  it('helm install (default values but image.registry, the cluster’s registry; in place of the deleted install.yaml install): every part ready, a Job pod gets the sidecar and delivers its final values', async function () {
    this.timeout(600_000);
    await kubectlOk(cluster.cp, ['delete', '-f', join(ROOT, 'manifests', 'install.yaml'), '--ignore-not-found', '--wait=true', '--timeout=240s'], { timeoutMs: 250_000 });
    // The chart's defaults but its image.registry: the registry the cluster pushed the images to (the node imports no other copy).
    await helm(['install', 'jobmetrics', CHART_DIR, '--namespace', 'default', '--set', `image.registry=${cluster.registry}/jobmetrics`, '--wait', '--timeout', '6m']);
    const ready = JSON.parse(await kubectlOk(cluster.cp, ['-n', 'jobmetrics', 'get', 'deployments', '-o', 'json'])) as { items: { metadata: { name: string }; status: { readyReplicas?: number } }[] };
    expect(Object.fromEntries(ready.items.map((d) => [d.metadata.name, d.status.readyReplicas ?? 0]))).to.deep.equal({
      'jobmetrics-aggregator': 1,
      'jobmetrics-gateway': 2,
      'jobmetrics-prometheus': 1,
      'jobmetrics-recorder': 2,
      'jobmetrics-webhook': 2,
    });
    const ns = 'e2e-helm';
    await labelledNamespace(cluster, ns);
    // Ready is not yet reached by the API server (kube-proxy routes the Service a moment later):
    // the check docs/install.md gives admins (manifests/checks/injection-check.yaml), before the first Job.
    await waitForInjection(cluster.cp, { namespace: ns });
    const { status, pods } = await runSampleJob(ns, 'charted');
    expect(status).to.deep.include({ condition: 'Complete', succeeded: 1 });
    const pod = pods[0]!;
    expect([pod.annotations[STATUS], pod.initContainers.includes(SIDECAR)]).to.deep.equal(['injected', true]);
    expect(await sidecarSummary(cluster, ns, pod.name)).to.include({ trigger: 'main-exited', finalDelivered: true });
    tlsAfterInstall = await webhookTls();
    expect(tlsAfterInstall.caBundles.map((b) => b.length > 0)).to.deep.equal([true, true, true]);
  });

  it('helm upgrade with changed values (webhook replicas, a sidecar setting, the excluded namespaces): the webhook rolls onto them, new Job pods get them, and the TLS Secret and the caBundle keep their bytes', async function () {
    this.timeout(600_000);
    if (!tlsAfterInstall) throw new Error('the helm install test did not get as far as the TLS state');
    await helm([
      'upgrade', 'jobmetrics', CHART_DIR, '--namespace', 'default', '--reuse-values', '--wait', '--timeout', '6m',
      '--set', 'webhook.replicas=3,sidecar.interval=2s',
      // Changes the MutatingWebhookConfiguration itself, so Helm patches the object whose caBundle the webhook wrote.
      '--set-json', 'webhook.excludedNamespaces=["kube-system","kube-public","kube-node-lease","e2e-helm-excluded"]',
    ]);
    // Helm 4 applied both revisions server-side (its default; an upgrade keeps the install's method):
    // the caBundle below survives because Helm's field manager never owned it.
    const release = JSON.parse(await helm(['get', 'metadata', 'jobmetrics', '--namespace', 'default', '-o', 'json'])) as { revision: number; status: string; applyMethod?: string };
    expect([release.revision, release.status, release.applyMethod]).to.deep.equal([2, 'deployed', 'ssa']);
    // Replicas of the old settings answer until their shutdownDelay is over: wait for the 3 new ones alone.
    for (const deadline = Date.now() + 180_000; ; await sleep(1_000)) {
      const pods = JSON.parse(await kubectlOk(cluster.cp, ['-n', 'jobmetrics', 'get', 'pods', '-l', 'app.kubernetes.io/name=jobmetrics-webhook', '-o', 'json'])) as { items: { status: { containerStatuses?: { ready: boolean }[] } }[] };
      if (pods.items.length === 3 && pods.items.every((p) => p.status.containerStatuses?.[0]?.ready)) break;
      if (Date.now() > deadline) throw new Error(`webhook pods 180 s after the upgrade: ${pods.items.length}, not 3 ready ones`);
    }
    await waitForInjection(cluster.cp, { accept: (a) => a.sidecar?.env['JOBMETRICS_INTERVAL'] === '2s' });
    const mwc = JSON.parse(await kubectlOk(cluster.cp, ['get', 'mutatingwebhookconfiguration', 'jobmetrics', '-o', 'json'])) as { webhooks: { namespaceSelector: { matchExpressions: { values?: string[] }[] } }[] };
    expect(mwc.webhooks.map((w) => w.namespaceSelector.matchExpressions[0]?.values)).to.deep.equal(Array(3).fill(['kube-system', 'kube-public', 'kube-node-lease', 'e2e-helm-excluded', 'jobmetrics']));
    expect(await webhookTls()).to.deep.equal(tlsAfterInstall);
    // A Job pod created now gets the new setting (the pod is enough: injection happens at creation).
    const ns = 'e2e-helm';
    await apply(cluster, sampleJob({ name: 'charted-after-upgrade', ns }));
    const pod = JSON.parse(
      await (async () => {
        for (const deadline = Date.now() + 60_000; ; await sleep(500)) {
          const out = await kubectlOk(cluster.cp, ['-n', ns, 'get', 'pods', '-l', 'job-name=charted-after-upgrade', '-o', 'json']);
          if ((JSON.parse(out) as { items: unknown[] }).items.length > 0) return out;
          if (Date.now() > deadline) throw new Error('no pod of charted-after-upgrade after 60 s');
        }
      })(),
    ) as { items: { spec: { initContainers?: { name: string; env?: { name: string; value?: string }[] }[] } }[] };
    const sidecar = pod.items[0]?.spec.initContainers?.find((c) => c.name === SIDECAR);
    expect(sidecar?.env?.find((e) => e.name === 'JOBMETRICS_INTERVAL')?.value).to.equal('2s');
    await waitForJob(cluster, ns, 'charted-after-upgrade');
  });

  it('helm uninstall leaves nothing of jobmetrics: no MutatingWebhookConfiguration, no cluster-wide RBAC, and the namespace with the Secrets created at run time is gone', async function () {
    this.timeout(400_000);
    await helm(['uninstall', 'jobmetrics', '--namespace', 'default', '--wait', '--timeout', '5m']);
    await kubectlOk(cluster.cp, ['wait', '--for=delete', 'namespace/jobmetrics', '--timeout=240s'], { timeoutMs: 250_000 });
    const names = async (kind: string): Promise<string[]> => (await kubectlOk(cluster.cp, ['get', kind, '-o', 'jsonpath={.items[*].metadata.name}'])).split(/\s+/).filter((n) => n.startsWith('jobmetrics'));
    expect({
      mutatingwebhookconfigurations: await names('mutatingwebhookconfigurations'),
      clusterroles: await names('clusterroles'),
      clusterrolebindings: await names('clusterrolebindings'),
      namespaces: await names('namespaces'),
      releases: (await helm(['list', '--all-namespaces', '-q'])).trim(),
    }).to.deep.equal({ mutatingwebhookconfigurations: [], clusterroles: [], clusterrolebindings: [], namespaces: [], releases: '' });
  });

  it('stopping the cluster leaves nothing behind: processes, mounts, network namespaces, bridge, iptables rules, cgroups, the image store', async function () {
    this.timeout(180_000);
    const dir = cluster.dir;
    await cluster.stop();
    const left = leftovers(dir);
    expect(left).to.deep.equal({ processes: [], mounts: [], netns: [], bridge: false, iptables: [], cgroups: [], imageStore: false });
  });
});

/** What a stopped cluster could have left on this machine. */
function leftovers(dir: string): Record<string, unknown> {
  const sh = (cmd: string): string[] => runCommand(['sh', '-c', cmd], { allowFailure: true }).stdout.split('\n').filter(Boolean);
  return {
    processes: pidsWithArg(dir),
    mounts: sh(`grep -F ' ${dir}/' /proc/self/mountinfo || true`),
    netns: sh('ls /run/netns 2>/dev/null | grep ^cni- || true'),
    bridge: runCommand(['ip', 'link', 'show', NETWORK.bridge], { allowFailure: true }).code === 0,
    iptables: sh('for t in filter nat mangle; do iptables -w -t $t -S; done | grep -E "KUBE|JOBMETRICS" || true'),
    cgroups: sh('ls -d /sys/fs/cgroup/*/kubepods 2>/dev/null || true'),
    // containerd's images and snapshots (~0.9 GB a run); the logs stay.
    imageStore: existsSync(join(dir, 'node', 'containerd', 'root')),
  };
}

