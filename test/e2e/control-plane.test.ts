/**
 * Smoke test of the e2e control plane itself: the real Job and CronJob controllers work against
 * the real API server. Needs `bash scripts/install-control-plane`; without it this FAILS (the
 * `before all` hook throws the message saying so) — it never skips.
 */

import { expect } from 'chai';
import { createServer, type Server } from 'node:https';
import { createNamespace, freePort, kubectlOk, makeServingCert, pinnedKubernetesVersion } from '../../scripts/cluster/control-plane.ts';
import { useControlPlane } from './control-plane-suite.ts';

interface ObjectMeta {
  name: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  ownerReferences?: Array<{ apiVersion: string; kind: string; name: string; uid: string; controller?: boolean }>;
  uid: string;
}
interface List<T> {
  items: T[];
}
interface Pod {
  metadata: ObjectMeta;
  spec: { nodeName?: string };
}
interface Job {
  metadata: ObjectMeta;
  spec: { parallelism?: number };
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe('e2e: the Kubernetes control plane (etcd, kube-apiserver, kube-controller-manager)', function () {
  this.timeout(120_000);
  const { plane } = useControlPlane('cp');
  const ns = 'smoke';

  const getJson = async <T>(args: string[]): Promise<T> => JSON.parse(await kubectlOk(plane(), [...args, '-o', 'json'])) as T;
  const podsOf = async (jobName: string): Promise<Pod[]> =>
    (await getJson<List<Pod>>(['-n', ns, 'get', 'pods', '-l', `batch.kubernetes.io/job-name=${jobName}`])).items;

  /** Polls until the Job has `want` pods, then checks that no more appear for a moment. */
  async function expectPods(jobName: string, want: number, deadlineMs = 30_000): Promise<Pod[]> {
    const deadline = Date.now() + deadlineMs;
    let pods = await podsOf(jobName);
    while (pods.length < want && Date.now() < deadline) {
      await sleep(250);
      pods = await podsOf(jobName);
    }
    expect(pods.length, `pods of Job ${jobName} after ${deadlineMs} ms`).to.equal(want);
    await sleep(1_500);
    pods = await podsOf(jobName);
    expect(pods.length, `pods of Job ${jobName} a moment later`).to.equal(want);
    return pods;
  }

  before(async () => {
    await createNamespace(plane(), ns);
  });

  it('serves the pinned Kubernetes release with RBAC on', async () => {
    expect(plane().version).to.equal(pinnedKubernetesVersion());
    const noRights = await plane().kubectl(['auth', 'can-i', 'create', 'pods', '-n', ns], { as: 'nobody' });
    expect(noRights.stdout.trim(), noRights.stderr).to.equal('no');
    const admin = await plane().kubectl(['auth', 'can-i', '*', '*']);
    expect(admin.stdout.trim(), admin.stderr).to.equal('yes');
  });

  it('the real Job controller creates exactly `parallelism` pods, which never run', async () => {
    const job = {
      apiVersion: 'batch/v1',
      kind: 'Job',
      metadata: { name: 'counter', namespace: ns },
      spec: {
        parallelism: 3,
        completions: 5,
        backoffLimit: 0,
        template: {
          spec: {
            restartPolicy: 'Never',
            containers: [{ name: 'main', image: 'registry.invalid/jobmetrics/never-pulled:0', command: ['true'] }],
          },
        },
      },
    };
    await kubectlOk(plane(), ['apply', '-f', '-'], { input: JSON.stringify(job) });
    const created = await getJson<Job>(['-n', ns, 'get', 'job', 'counter']);
    const pods = await expectPods('counter', 3);
    for (const pod of pods) {
      const owner = pod.metadata.ownerReferences?.[0];
      expect(owner, pod.metadata.name).to.include({ kind: 'Job', name: 'counter', uid: created.metadata.uid, controller: true });
      expect(pod.spec.nodeName, 'no scheduler: pods stay unscheduled').to.equal(undefined);
    }
  });

  it('kubectl create job --from=cronjob makes a Job owned by the CronJob, marked manual', async () => {
    const cronJob = {
      apiVersion: 'batch/v1',
      kind: 'CronJob',
      metadata: { name: 'nightly', namespace: ns },
      spec: {
        schedule: '0 3 * * *',
        suspend: true,
        jobTemplate: {
          spec: {
            template: {
              spec: {
                restartPolicy: 'Never',
                containers: [{ name: 'main', image: 'registry.invalid/jobmetrics/never-pulled:0', command: ['true'] }],
              },
            },
          },
        },
      },
    };
    await kubectlOk(plane(), ['apply', '-f', '-'], { input: JSON.stringify(cronJob) });
    const cron = await getJson<{ metadata: ObjectMeta }>(['-n', ns, 'get', 'cronjob', 'nightly']);
    await kubectlOk(plane(), ['-n', ns, 'create', 'job', 'nightly-manual-1', '--from=cronjob/nightly']);

    const job = await getJson<Job>(['-n', ns, 'get', 'job', 'nightly-manual-1']);
    expect(job.metadata.annotations?.['cronjob.kubernetes.io/instantiate']).to.equal('manual');
    expect(job.metadata.ownerReferences).to.have.length(1);
    expect(job.metadata.ownerReferences?.[0]).to.include({ apiVersion: 'batch/v1', kind: 'CronJob', name: 'nightly', uid: cron.metadata.uid });

    const pods = await expectPods('nightly-manual-1', 1);
    expect(pods[0]?.metadata.ownerReferences?.[0]).to.include({ kind: 'Job', name: 'nightly-manual-1' });
  });

  it('calls a mutating webhook registered with clientConfig.url on loopback', async () => {
    // A stand-in webhook: the real one is tested in its own suite; this proves the plumbing.
    const tls = makeServingCert({ ips: ['127.0.0.1'] });
    const calls: string[] = [];
    const server: Server = createServer({ cert: tls.certPem, key: tls.keyPem }, (req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const review = JSON.parse(Buffer.concat(chunks).toString('utf8')) as { request: { uid: string; name?: string } };
        calls.push(review.request.name ?? '');
        const patch = [{ op: 'add', path: '/metadata/annotations', value: { 'e2e.jobmetrics.io/mutated': 'yes' } }];
        res.setHeader('content-type', 'application/json');
        res.end(JSON.stringify({
          apiVersion: 'admission.k8s.io/v1',
          kind: 'AdmissionReview',
          response: { uid: review.request.uid, allowed: true, patchType: 'JSONPatch', patch: Buffer.from(JSON.stringify(patch)).toString('base64') },
        }));
      });
    });
    const port = await freePort();
    await new Promise<void>((r) => server.listen(port, '127.0.0.1', r));
    const hookedNs = 'smoke-hooked';
    const config = {
      apiVersion: 'admissionregistration.k8s.io/v1',
      kind: 'MutatingWebhookConfiguration',
      metadata: { name: 'e2e-smoke' },
      webhooks: [{
        name: 'smoke.e2e.jobmetrics.io',
        clientConfig: { url: `https://127.0.0.1:${port}/mutate`, caBundle: Buffer.from(tls.caPem).toString('base64') },
        rules: [{ operations: ['CREATE'], apiGroups: [''], apiVersions: ['v1'], resources: ['pods'] }],
        namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': hookedNs } },
        failurePolicy: 'Fail',
        sideEffects: 'None',
        admissionReviewVersions: ['v1'],
        timeoutSeconds: 5,
      }],
    };
    try {
      await createNamespace(plane(), hookedNs);
      await kubectlOk(plane(), ['apply', '-f', '-'], { input: JSON.stringify(config) });
      const pod = {
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: { name: 'hooked', namespace: hookedNs },
        spec: { containers: [{ name: 'main', image: 'registry.invalid/jobmetrics/never-pulled:0' }] },
      };
      // A new webhook configuration takes effect within a moment; retry the create until it does.
      const deadline = Date.now() + 15_000;
      let created: Pod | undefined;
      while (!created?.metadata.annotations?.['e2e.jobmetrics.io/mutated'] && Date.now() < deadline) {
        if (created) {
          await kubectlOk(plane(), ['-n', hookedNs, 'delete', 'pod', 'hooked', '--wait=false']);
          await sleep(500);
        }
        const out = await plane().kubectl(['create', '-o', 'json', '-f', '-'], { input: JSON.stringify(pod) });
        if (out.code === 0) created = JSON.parse(out.stdout) as Pod;
        else await sleep(500);
      }
      expect(created?.metadata.annotations?.['e2e.jobmetrics.io/mutated'], 'annotation added by the webhook').to.equal('yes');
      expect(calls).to.include('hooked');
    } finally {
      await plane().kubectl(['delete', 'mutatingwebhookconfiguration', 'e2e-smoke', '--ignore-not-found']);
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    }
  });
});
