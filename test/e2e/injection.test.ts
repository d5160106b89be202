/**
 * The webhook as the API server calls it: the real Job and CronJob
 * controllers create pods, the API server sends them to the built webhook (node
 * dist/webhook/main.js, a local process) through the shipped MutatingWebhookConfiguration (the
 * e2e-local overlay: only clientConfig.url differs), and the tests read the pods as stored.
 *
 * The webhook runs with the shipped settings file and a token of the jobmetrics-webhook
 * ServiceAccount, so its API calls (server version, Job owner lookups) have exactly the RBAC of
 * install.yaml. It serves a certificate from a TLS directory here; the bootstrap has its own suite
 * (tls-bootstrap.test.ts). The API server is v1.37, so mode `auto` means native sidecars.
 */

import { expect } from 'chai';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { createServer, type Server, type Socket } from 'node:net';
import { dirname, join } from 'node:path';
import { controlPlaneBinaries, createNamespace, freePort, kubectlOk, makeServingCert } from '../../scripts/cluster/control-plane.ts';
import { ROOT } from '../../scripts/cluster/paths.ts';
import { waitForInjection } from '../../scripts/cluster/injection-check.ts';
import { useControlPlane } from './control-plane-suite.ts';
import {
  applyObjects,
  e2eLocalInstall,
  ensureBuilt,
  getJson,
  jobPods,
  reviewDelta,
  serviceAccountKubeconfig,
  startWebhook,
  type Container,
  type Pod,
  type WebhookProcess,
} from './webhook-harness.ts';

const LABELLED = 'batch-jobs';
const UNLABELLED = 'plain';
const JOB_IMAGE = 'registry.invalid/jobmetrics/job:1';
const STATUS = 'jobmetrics.io/status';

interface JobOptions {
  parallelism?: number;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  /** Merged into the pod spec of the template. */
  spec?: Record<string, unknown>;
  containers?: Container[];
}

function job(namespace: string, name: string, o: JobOptions = {}): unknown {
  const parallelism = o.parallelism ?? 1;
  return {
    apiVersion: 'batch/v1',
    kind: 'Job',
    metadata: { name, namespace },
    spec: {
      parallelism,
      completions: parallelism,
      backoffLimit: 0,
      template: {
        metadata: { labels: o.labels ?? {}, annotations: o.annotations ?? {} },
        spec: {
          restartPolicy: 'Never',
          containers: o.containers ?? [{ name: 'main', image: JOB_IMAGE, ports: [{ name: 'metrics', containerPort: 9100 }] }],
          ...o.spec,
        },
      },
    },
  };
}

/**
 * The sidecar container exactly as the API server stores it: with its defaults filled in, and
 * with the ServiceAccount token mount that the ServiceAccount admission plugin adds to every
 * container of the pod (the same as the pod's first container has; `pod` supplies it).
 */
function expectedSidecar(pod: Pod | undefined, mode: 'native' | 'legacy', workload: string, scrapeUrl: string, interval = '1s', mainContainer = 'main'): Record<string, unknown> {
  const tokenMount = pod?.spec.containers[0]?.volumeMounts;
  expect(tokenMount?.map((m) => m.mountPath), 'the ServiceAccount token mount').to.deep.equal(['/var/run/secrets/kubernetes.io/serviceaccount']);
  return {
    name: 'jobmetrics-sidecar',
    image: 'ghcr.io/jobmetrics/jobmetrics-sidecar:0.1.0',
    imagePullPolicy: 'IfNotPresent',
    ...(mode === 'native' && { restartPolicy: 'Always' }),
    env: [
      { name: 'JOBMETRICS_SCRAPE_URL', value: scrapeUrl },
      { name: 'JOBMETRICS_REMOTE_WRITE_URL', value: 'http://jobmetrics-gateway.jobmetrics.svc:8480/api/v1/write' },
      { name: 'JOBMETRICS_INTERVAL', value: interval },
      { name: 'JOBMETRICS_PUSH_INTERVAL', value: '10s' },
      { name: 'JOBMETRICS_FLUSH_TIMEOUT', value: '10s' },
      { name: 'JOBMETRICS_NAMESPACE', valueFrom: { fieldRef: { apiVersion: 'v1', fieldPath: 'metadata.namespace' } } },
      { name: 'JOBMETRICS_POD', valueFrom: { fieldRef: { apiVersion: 'v1', fieldPath: 'metadata.name' } } },
      { name: 'JOBMETRICS_JOB', value: workload },
      { name: 'JOBMETRICS_MODE', value: mode },
      { name: 'JOBMETRICS_MAIN_CONTAINER', value: mainContainer },
      ...(mode === 'native' ? [{ name: 'JOBMETRICS_STATE_DIR', value: '/var/run/jobmetrics' }] : []),
      { name: 'JOBMETRICS_WRITER_TOKEN_FILE', value: '/var/run/secrets/jobmetrics.io/token/token' },
    ],
    resources: { requests: { cpu: '10m', memory: '48Mi' }, limits: { memory: '128Mi' } },
    securityContext: {
      runAsNonRoot: true,
      runAsUser: 65531,
      runAsGroup: 65531,
      readOnlyRootFilesystem: true,
      allowPrivilegeEscalation: false,
      capabilities: { drop: ['ALL'] },
      seccompProfile: { type: 'RuntimeDefault' },
    },
    terminationMessagePath: '/dev/termination-log',
    terminationMessagePolicy: 'FallbackToLogsOnError',
    // The webhook's mounts first (a native sidecar's state emptyDir, the token for the gateway),
    // then the API token the ServiceAccount plugin adds when it runs again after the webhook.
    volumeMounts: [
      ...(mode === 'native' ? [{ name: 'jobmetrics-state', mountPath: '/var/run/jobmetrics' }] : []),
      { name: 'jobmetrics-token', mountPath: '/var/run/secrets/jobmetrics.io/token', readOnly: true },
      ...(tokenMount ?? []),
    ],
  };
}

const envOf = (c: Container | undefined, name: string): string | undefined => c?.env?.find((e) => e.name === name)?.value;

describe('e2e: injection into the pods of real Jobs and CronJobs, through the shipped webhook configuration', function () {
  this.timeout(120_000);
  let webhook: WebhookProcess | undefined;
  const { plane, dir } = useControlPlane('injection', { whileStarting: ensureBuilt, beforeStop: async () => webhook?.stop() });
  let port = 0;
  let kubeconfig = '';
  let tlsDir = '';

  const hook = (): WebhookProcess => {
    if (!webhook) throw new Error('webhook not running');
    return webhook;
  };
  const create = async (obj: unknown): Promise<void> => {
    await kubectlOk(plane(), ['create', '-f', '-'], { input: JSON.stringify(obj) });
  };
  /** Creates the Job and returns its pods, with the reviews the webhook answered meanwhile. */
  const runJob = async (namespace: string, name: string, o: JobOptions = {}): Promise<{ pods: Pod[]; reviews: Record<string, number> }> => {
    const before = webhook ? await hook().reviews() : {};
    await create(job(namespace, name, o));
    const pods = await jobPods(plane(), namespace, name, o.parallelism ?? 1);
    const reviews = webhook ? reviewDelta(before, await hook().reviews()) : {};
    return { pods, reviews };
  };
  /**
   * What one injected pod costs: the call that injects, and one re-invocation
   * (reinvocationPolicy: IfNeeded) that returns it unchanged. The re-invocation happens because the
   * API server re-runs its built-in admission plugins after a webhook changed the pod, and the
   * ServiceAccount plugin then mounts the API token into the new sidecar container too: a change
   * after the webhook's call, so the webhook is called once more
   * (https://kubernetes.io/docs/reference/access-authn-authz/extensible-admission-controllers/#reinvocation-policy).
   */
  const injectedReviews = (pods: number): Record<string, number> => ({ injected: pods, 'skipped:already-injected': pods });
  const restartWebhook = async (env: Record<string, string> = {}): Promise<void> => {
    await webhook?.stop();
    webhook = undefined;
    webhook = await startWebhook({ dir: dir(), kubeconfig, tlsDir, port, env, name: `webhook-${Date.now()}.log` });
  };

  before(async function () {
    this.timeout(180_000);
    const cp = plane();
    port = await freePort();
    const tls = makeServingCert({ dnsNames: ['localhost'], ips: ['127.0.0.1'] });
    tlsDir = join(dir(), 'tls');
    await mkdir(tlsDir);
    await writeFile(join(tlsDir, 'tls.crt'), tls.certPem);
    await writeFile(join(tlsDir, 'tls.key'), tls.keyPem, { mode: 0o600 });
    await applyObjects(cp, e2eLocalInstall({ url: `https://localhost:${port}/mutate`, caPem: tls.caPem }));
    kubeconfig = await serviceAccountKubeconfig(cp, join(dir(), 'webhook.kubeconfig'));
    webhook = await startWebhook({ dir: dir(), kubeconfig, tlsDir, port, name: 'webhook-auto.log' });
    await createNamespace(cp, LABELLED, { 'jobmetrics.io/inject': 'enabled' });
    await createNamespace(cp, UNLABELLED);
    // The API server picks up a new webhook configuration a moment after it is written: wait until
    // the dry-run Job pod of manifests/checks/injection-check.yaml comes back injected in the
    // labelled namespace (the check docs/install.md gives admins).
    await waitForInjection(cp, { namespace: LABELLED, timeoutMs: 20_000 });
  });

  describe('a Job in a labelled namespace', () => {
    it('each pod the Job controller creates gets the native sidecar (last init container, restartPolicy Always), shareProcessNamespace and the status', async () => {
      const { pods, reviews } = await runJob(LABELLED, 'work', { parallelism: 2 });
      const created = await getJson<{ metadata: { uid: string } }>(plane(), ['-n', LABELLED, 'get', 'job', 'work']);
      expect(reviews).to.deep.equal(injectedReviews(2));
      for (const pod of pods) {
        expect(pod.metadata.annotations, pod.metadata.name).to.deep.equal({ [STATUS]: 'injected' });
        expect(pod.spec.shareProcessNamespace).to.equal(true);
        expect(pod.spec.containers.map((c) => c.name)).to.deep.equal(['main']);
        expect(pod.spec.initContainers).to.deep.equal([expectedSidecar(pod, 'native', 'work', 'http://localhost:9100/metrics')]);
        // The Job controller's labels, untouched (the webhook adds none).
        expect(pod.metadata.labels).to.deep.equal({
          'batch.kubernetes.io/controller-uid': created.metadata.uid,
          'batch.kubernetes.io/job-name': 'work',
          'controller-uid': created.metadata.uid,
          'job-name': 'work',
        });
        expect(pod.metadata.ownerReferences?.[0]).to.include({ kind: 'Job', name: 'work', uid: created.metadata.uid, controller: true });
      }
    });

    it('the pod template annotations choose port, path, scheme, interval and main container', async () => {
      const { pods } = await runJob(LABELLED, 'annotated', {
        annotations: {
          'jobmetrics.io/port': '8080',
          'jobmetrics.io/path': '/internal/metrics',
          'jobmetrics.io/scheme': 'https',
          'jobmetrics.io/interval': '5s',
          'jobmetrics.io/container': 'worker',
        },
        containers: [
          { name: 'proxy', image: JOB_IMAGE },
          { name: 'worker', image: JOB_IMAGE, ports: [{ containerPort: 8080 }] },
        ],
      });
      const sidecar = pods[0]?.spec.initContainers?.at(-1);
      expect(sidecar).to.deep.equal(expectedSidecar(pods[0], 'native', 'annotated', 'https://localhost:8080/internal/metrics', '5s', 'worker'));
      expect(pods[0]?.spec.containers.map((c) => c.name)).to.deep.equal(['proxy', 'worker']);
    });

    it('a Job pod also labelled jobmetrics.io/inject=enabled is sent once (opted-in-pods only) and injected once', async () => {
      const { pods, reviews } = await runJob(LABELLED, 'both', { labels: { 'jobmetrics.io/inject': 'enabled' } });
      // Exactly what a pod matching one entry costs; a second matching entry would add a call.
      expect(reviews).to.deep.equal(injectedReviews(1));
      expect(pods[0]?.metadata.annotations?.[STATUS]).to.equal('injected');
      expect(pods[0]?.spec.initContainers?.map((c) => c.name)).to.deep.equal(['jobmetrics-sidecar']);
    });

    it('an opted-in pod outside a labelled namespace, owned by no Job, is injected under its own name', async () => {
      const before = await hook().reviews();
      const pod = {
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: { name: 'adhoc', namespace: UNLABELLED, labels: { 'jobmetrics.io/inject': 'enabled' } },
        spec: { restartPolicy: 'Never', containers: [{ name: 'main', image: JOB_IMAGE, ports: [{ name: 'http-metrics', containerPort: 9200 }] }] },
      };
      const stored = JSON.parse(await kubectlOk(plane(), ['create', '-o', 'json', '-f', '-'], { input: JSON.stringify(pod) })) as Pod;
      expect(reviewDelta(before, await hook().reviews())).to.deep.equal(injectedReviews(1));
      expect(stored.metadata.annotations).to.deep.equal({ [STATUS]: 'injected' });
      expect(stored.spec.initContainers).to.deep.equal([expectedSidecar(stored, 'native', 'adhoc', 'http://localhost:9200/metrics')]);
    });

    it('legacy mode forced by the setting (JOBMETRICS_SIDECAR_MODE=legacy): a regular last container, no restartPolicy; restartPolicy OnFailure skipped', async () => {
      await restartWebhook({ JOBMETRICS_SIDECAR_MODE: 'legacy' });
      try {
        const { pods, reviews } = await runJob(LABELLED, 'work-legacy');
        expect(reviews).to.deep.equal(injectedReviews(1));
        const pod = pods[0];
        expect(pod?.metadata.annotations).to.deep.equal({ [STATUS]: 'injected' });
        expect(pod?.spec.shareProcessNamespace).to.equal(true);
        expect(pod?.spec.initContainers).to.equal(undefined);
        expect(pod?.spec.containers.map((c) => c.name)).to.deep.equal(['main', 'jobmetrics-sidecar']);
        expect(pod?.spec.containers[1]).to.deep.equal(expectedSidecar(pod, 'legacy', 'work-legacy', 'http://localhost:9100/metrics'));
        // restartPolicy OnFailure restarts the main container in the pod, which a legacy sidecar
        // cannot follow: skipped, with the reason where an admin looks.
        const retried = await runJob(LABELLED, 'work-legacy-retry', { spec: { restartPolicy: 'OnFailure' } });
        expect(retried.reviews).to.deep.equal({ 'skipped:restart-needs-native': 1 });
        expect(retried.pods[0]?.metadata.annotations?.[STATUS]).to.match(/^skipped: restartPolicy OnFailure needs native sidecar mode/);
        expect(retried.pods[0]?.spec.containers.map((c) => c.name)).to.deep.equal(['main']);
      } finally {
        await restartWebhook();
      }
    });
  });

  describe('Jobs of a CronJob', () => {
    it('a Job made from a CronJob (kubectl create job --from=cronjob/…) is named after the CronJob, as the API says', async () => {
      const cronJob = {
        apiVersion: 'batch/v1',
        kind: 'CronJob',
        metadata: { name: 'nightly-report', namespace: LABELLED },
        spec: { schedule: '0 3 * * *', suspend: true, jobTemplate: { spec: (job(LABELLED, 'template') as { spec: unknown }).spec } },
      };
      await create(cronJob);
      const before = await hook().reviews();
      await kubectlOk(plane(), ['-n', LABELLED, 'create', 'job', 'manual-rerun', '--from=cronjob/nightly-report']);
      const pods = await jobPods(plane(), LABELLED, 'manual-rerun', 1);
      expect(reviewDelta(before, await hook().reviews())).to.deep.equal(injectedReviews(1));
      const sidecar = pods[0]?.spec.initContainers?.at(-1);
      expect(sidecar).to.deep.equal(expectedSidecar(pods[0], 'native', 'nightly-report', 'http://localhost:9100/metrics'));
      const metrics = (await hook().get('/metrics')).body;
      expect(metrics).to.match(/^jobmetrics_webhook_injections_total\{mode="native",workload_source="cronjob"\} 1$/m);
    });

    it('a Job named like a CronJob run but owned by none keeps its own name (the API beats the name pattern)', async () => {
      const { pods } = await runJob(LABELLED, 'report-29000000');
      expect(envOf(pods[0]?.spec.initContainers?.at(-1), 'JOBMETRICS_JOB')).to.equal('report-29000000');
    });
  });

  describe('pods the webhook does not inject are created, never rejected', () => {
    const unchanged = (pod: Pod | undefined): void => {
      expect(pod?.spec.containers.map((c) => c.name)).to.deep.equal(['main']);
      expect(pod?.spec.initContainers).to.equal(undefined);
      expect(pod?.spec.shareProcessNamespace).to.equal(undefined);
    };

    it('a Job in an unlabelled namespace: never sent to the webhook, created as is', async () => {
      const { pods, reviews } = await runJob(UNLABELLED, 'elsewhere');
      expect(reviews).to.deep.equal({});
      expect(pods[0]?.metadata.annotations).to.equal(undefined);
      unchanged(pods[0]);
    });

    it('a pod labelled jobmetrics.io/inject=disabled in a labelled namespace: never sent, created as is', async () => {
      const { pods, reviews } = await runJob(LABELLED, 'opted-out', { labels: { 'jobmetrics.io/inject': 'disabled' } });
      expect(reviews).to.deep.equal({});
      expect(pods[0]?.metadata.annotations).to.equal(undefined);
      unchanged(pods[0]);
    });

    const skipped: Array<[string, JobOptions, string, string]> = [
      ['hostPID: true', { spec: { hostPID: true } }, 'host-pid', 'skipped: hostPID: true; the sidecar needs a PID namespace shared by the pod alone'],
      ['shareProcessNamespace: false', { spec: { shareProcessNamespace: false } }, 'share-process-namespace-false', 'skipped: shareProcessNamespace: false is set explicitly'],
      [
        'an invalid annotation',
        { annotations: { 'jobmetrics.io/interval': '5ms' } },
        'invalid-annotation',
        'skipped: invalid annotation jobmetrics.io/interval="5ms": "5ms" is outside 100ms…1m',
      ],
      [
        'no metrics port',
        { containers: [{ name: 'main', image: JOB_IMAGE }] },
        'no-metrics-port',
        'skipped: no metrics port: set jobmetrics.io/port, or name a container port metrics or http-metrics',
      ],
    ];
    skipped.forEach(([what, o, reason, status], i) => {
      it(`${what}: created without the sidecar, status "${status}"`, async () => {
        const { pods, reviews } = await runJob(LABELLED, `skipped-${i}`, o);
        // Only the status annotation changed, which no built-in plugin reacts to: one call.
        expect(reviews).to.deep.equal({ [`skipped:${reason}`]: 1 });
        const pod = pods[0];
        expect(pod?.metadata.annotations?.[STATUS]).to.equal(status);
        expect(pod?.spec.containers.map((c) => c.name)).to.deep.equal(['main']);
        expect(pod?.spec.initContainers).to.equal(undefined);
        expect(pod?.spec.shareProcessNamespace).to.equal(o.spec?.['shareProcessNamespace']);
      });
    });
  });

  describe('the webhook down: failurePolicy Ignore', () => {
    it('webhook stopped (connection refused): the Job and its pods are created, without the sidecar', async () => {
      await webhook?.stop();
      webhook = undefined;
      const started = Date.now();
      const { pods } = await runJob(LABELLED, 'while-down', { parallelism: 2 });
      for (const pod of pods) {
        expect(pod.metadata.annotations).to.equal(undefined);
        expect(pod.spec.containers.map((c) => c.name)).to.deep.equal(['main']);
        expect(pod.spec.initContainers).to.equal(undefined);
      }
      expect(Date.now() - started, 'pods created promptly').to.be.below(20_000);
      // The injection check says so, and why, rather than passing on a pod created as is.
      const check = await waitForInjection(plane(), { namespace: LABELLED, timeoutMs: 0 }).then(() => undefined, (e: unknown) => e);
      expect(check).to.be.instanceOf(Error);
      expect((check as Error).message).to.equal(
        `injection is not live after 0 s of dry runs: a pod in ${LABELLED} got no jobmetrics.io/status annotation: the API server did not reach the webhook (its log says why: "Failed calling webhook")`,
      );
    });

    it('webhook hanging (accepts, never answers): each pod is created after timeoutSeconds (5 s), without the sidecar', async () => {
      const sockets = new Set<Socket>();
      const blackhole: Server = createServer((s) => {
        sockets.add(s);
        s.on('error', () => undefined);
      });
      await new Promise<void>((r) => blackhole.listen(port, '127.0.0.1', r));
      try {
        const started = Date.now();
        await create(job(LABELLED, 'while-hung'));
        const pods = await jobPods(plane(), LABELLED, 'while-hung', 1, 40_000);
        const tookMs = Date.now() - started;
        expect(pods[0]?.metadata.annotations).to.equal(undefined);
        expect(pods[0]?.spec.initContainers).to.equal(undefined);
        expect(tookMs, 'the API server waited for the webhook timeout').to.be.at.least(4_500);
        expect(tookMs, 'and not much longer').to.be.below(30_000);
      } finally {
        for (const s of sockets) s.destroy();
        await new Promise<void>((r) => blackhole.close(() => r()));
      }
    });

    it('webhook back: injection resumes', async () => {
      await restartWebhook();
      const { pods } = await runJob(LABELLED, 'after-restart');
      expect(pods[0]?.metadata.annotations).to.deep.equal({ [STATUS]: 'injected' });
    });
  });

  describe('the check admins run after an install (README.md step 3, manifests/checks/injection-check.yaml)', () => {
    it("the README's command, run as written in the labelled namespace: prints injected, and stores no pod", async () => {
      const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
      const command = /^kubectl -n batch create --dry-run=server .*\\\n.*$/m.exec(readme)?.[0];
      expect(command, 'the check in README.md step 3').to.be.a('string');
      const before = await kubectlOk(plane(), ['-n', LABELLED, 'get', 'pods', '-o', 'name']);
      const out = execFileSync('sh', ['-c', (command ?? '').replace('-n batch', `-n ${LABELLED}`)], {
        cwd: ROOT,
        encoding: 'utf8',
        env: { ...process.env, KUBECONFIG: plane().kubeconfigPath, PATH: `${dirname(controlPlaneBinaries().kubectl)}:${process.env['PATH'] ?? ''}` },
      });
      expect(out).to.equal('injected\n');
      expect(await kubectlOk(plane(), ['-n', LABELLED, 'get', 'pods', '-o', 'name'])).to.equal(before);
    });
  });
});
