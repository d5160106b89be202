/**
 * TLS bootstrap against the real API server: the webhook started with no
 * certificate (no TLS directory, the shipped settings' `tlsDir: ""`) and a token of the
 * jobmetrics-webhook ServiceAccount (so only install.yaml's RBAC) creates the Secret
 * jobmetrics-webhook-tls and writes the caBundle of the MutatingWebhookConfiguration, after which
 * the API server calls it over TLS it verifies. A second replica reuses the Secret.
 *
 * One deviation from a pod, and why: the API server reaches this local webhook through
 * clientConfig.url, and verifies the certificate against the URL's host. The bootstrapped
 * certificate names the webhook Service (JOBMETRICS_SERVICE_NAME and its `<service>.<namespace>…`
 * forms), so the webhook runs with the service name `localhost` and the URL is
 * https://localhost:<port>/mutate. Namespace, Secret and configuration names are the shipped ones.
 */

import { expect } from 'chai';
import { join } from 'node:path';
import { createNamespace, freePort, kubectlOk } from '../../scripts/cluster/control-plane.ts';
import { useControlPlane } from './control-plane-suite.ts';
import {
  applyObjects,
  e2eLocalInstall,
  ensureBuilt,
  eventually,
  getJson,
  jobPods,
  serviceAccountKubeconfig,
  startWebhook,
  type Pod,
  type WebhookProcess,
} from './webhook-harness.ts';

const NS = 'boot-jobs';
const SECRET = 'jobmetrics-webhook-tls';
const WEBHOOK_NAMES = ['job-pods.jobmetrics.io', 'legacy-job-pods.jobmetrics.io', 'opted-in-pods.jobmetrics.io'];

interface Secret {
  type: string;
  metadata: { resourceVersion: string; labels?: Record<string, string> };
  data: Record<string, string>;
}
interface Mwc {
  metadata: { resourceVersion: string };
  webhooks: Array<{ name: string; clientConfig: { url?: string; caBundle?: string } }>;
}

const unb64 = (s: string | undefined): string => Buffer.from(s ?? '', 'base64').toString('utf8');

/** The first PEM block of a chain, normalised to end in a newline. */
function firstPem(chain: string): string {
  const m = /-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/.exec(chain);
  if (!m) throw new Error('no certificate in the PEM text');
  return `${m[0]}\n`;
}

/** The log record whose `msg` is `msg` (JSON lines), or undefined. */
function logRecord(log: string, msg: string): Record<string, unknown> | undefined {
  for (const line of log.split('\n')) {
    if (!line.startsWith('{')) continue;
    const r = JSON.parse(line) as Record<string, unknown>;
    if (r['msg'] === msg) return r;
  }
  return undefined;
}

describe('e2e: TLS bootstrap — Secret, caBundle, a second replica — with only the shipped RBAC', function () {
  this.timeout(120_000);
  const replicas: WebhookProcess[] = [];
  const { plane, dir } = useControlPlane('tls', {
    whileStarting: ensureBuilt,
    beforeStop: async () => {
      for (const r of replicas) await r.stop();
    },
  });
  let kubeconfig = '';
  let portA = 0;
  let portB = 0;
  /** The CA the first replica bootstrapped. */
  let bootstrappedCa = '';

  const replica = (i: number): WebhookProcess => {
    const r = replicas[i];
    if (!r) throw new Error(`replica ${i} not started`);
    return r;
  };
  const secret = (): Promise<Secret> => getJson<Secret>(plane(), ['-n', 'jobmetrics', 'get', 'secret', SECRET]);
  const config = (): Promise<Mwc> => getJson<Mwc>(plane(), ['get', 'mutatingwebhookconfiguration', 'jobmetrics']);
  const start = (port: number, name: string): Promise<WebhookProcess> =>
    startWebhook({ dir: dir(), kubeconfig, port, name, env: { JOBMETRICS_SERVICE_NAME: 'localhost' } });

  /** Creates opted-in pods until the API server's call succeeds (a changed configuration takes a moment). */
  async function untilCalled(): Promise<void> {
    await eventually('the API server to call the webhook successfully', 20_000, async () => {
      const probe = {
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: { generateName: 'probe-', namespace: NS, labels: { 'jobmetrics.io/inject': 'enabled' } },
        spec: { containers: [{ name: 'main', image: 'registry.invalid/jobmetrics/job:1', ports: [{ name: 'metrics', containerPort: 9100 }] }] },
      };
      const pod = JSON.parse(await kubectlOk(plane(), ['create', '-o', 'json', '-f', '-'], { input: JSON.stringify(probe) })) as Pod;
      await kubectlOk(plane(), ['-n', NS, 'delete', 'pod', pod.metadata.name, '--wait=false']);
      return pod.metadata.annotations?.['jobmetrics.io/status'] === 'injected' ? true : undefined;
    }, 500);
  }

  async function jobIsInjected(name: string): Promise<void> {
    const job = {
      apiVersion: 'batch/v1',
      kind: 'Job',
      metadata: { name, namespace: NS },
      spec: {
        backoffLimit: 0,
        template: { spec: { restartPolicy: 'Never', containers: [{ name: 'main', image: 'registry.invalid/jobmetrics/job:1', ports: [{ name: 'metrics', containerPort: 9100 }] }] } },
      },
    };
    await kubectlOk(plane(), ['create', '-f', '-'], { input: JSON.stringify(job) });
    const [pod] = await jobPods(plane(), NS, name, 1);
    expect(pod?.metadata.annotations?.['jobmetrics.io/status']).to.equal('injected');
    expect(pod?.spec.initContainers?.map((c) => c.name)).to.deep.equal(['jobmetrics-sidecar']);
  }

  before(async () => {
    const cp = plane();
    portA = await freePort();
    portB = await freePort();
    // No caBundle: writing it is the bootstrap's job.
    await applyObjects(cp, e2eLocalInstall({ url: `https://localhost:${portA}/mutate` }));
    kubeconfig = await serviceAccountKubeconfig(cp, join(dir(), 'webhook.kubeconfig'));
    await createNamespace(cp, NS, { 'jobmetrics.io/inject': 'enabled' });
  });

  it('before the webhook starts there is no Secret and no caBundle', async () => {
    const r = await plane().kubectl(['-n', 'jobmetrics', 'get', 'secret', SECRET]);
    expect(r.code).to.equal(1);
    expect(r.stderr.trim()).to.equal(`Error from server (NotFound): secrets "${SECRET}" not found`);
    const c = await config();
    expect(c.webhooks.map((w) => [w.name, w.clientConfig.caBundle])).to.deep.equal(WEBHOOK_NAMES.map((n) => [n, undefined]));
  });

  it('the first replica creates the Secret, writes the caBundle of every entry, and reports ready', async () => {
    replicas.push(await start(portA, 'replica-a.log'));
    const s = await secret();
    expect(s.type).to.equal('kubernetes.io/tls');
    expect(Object.keys(s.data).sort()).to.deep.equal(['ca.crt', 'ca.key', 'tls.crt', 'tls.key']);
    const caPem = unb64(s.data['ca.crt']);
    expect(caPem).to.match(/^-----BEGIN CERTIFICATE-----\n/);
    bootstrappedCa = caPem;
    const c = await config();
    expect(c.webhooks.map((w) => [w.name, unb64(w.clientConfig.caBundle).trim()])).to.deep.equal(WEBHOOK_NAMES.map((n) => [n, caPem.trim()]));
    // It serves the Secret's certificate, which the Secret's CA verifies for the name `localhost`.
    const health = await replica(0).get('/healthz', caPem);
    expect(health.status).to.equal(200);
    expect(health.peerCertPem).to.equal(firstPem(unb64(s.data['tls.crt'])));
    expect(logRecord(replica(0).log(), 'TLS bootstrap done')).to.deep.include({ secret: 'created', caBundle: 'patched' });
  });

  it('the API server then calls it over verified TLS: a Job\'s pod is injected', async () => {
    await untilCalled();
    await jobIsInjected('after-bootstrap');
  });

  it('a second replica reuses the Secret: same CA and certificate, nothing written', async () => {
    const secretBefore = await secret();
    const configBefore = await config();
    replicas.push(await start(portB, 'replica-b.log'));
    expect(logRecord(replica(1).log(), 'TLS bootstrap done')).to.deep.include({ secret: 'used', caBundle: 'unchanged' });
    expect((await secret()).metadata.resourceVersion, 'Secret unchanged').to.equal(secretBefore.metadata.resourceVersion);
    expect((await config()).metadata.resourceVersion, 'configuration unchanged').to.equal(configBefore.metadata.resourceVersion);
    const caPem = unb64(secretBefore.data['ca.crt']);
    const [a, b] = await Promise.all([replica(0).get('/healthz', caPem), replica(1).get('/healthz', caPem)]);
    expect(b.status).to.equal(200);
    expect(b.peerCertPem).to.equal(a.peerCertPem);
  });

  it('with the first replica gone, the API server calls the second one with the same caBundle', async () => {
    await replica(0).stop();
    const ops = WEBHOOK_NAMES.map((_, i) => ({ op: 'replace', path: `/webhooks/${i}/clientConfig/url`, value: `https://localhost:${portB}/mutate` }));
    await kubectlOk(plane(), ['patch', 'mutatingwebhookconfiguration', 'jobmetrics', '--type=json', '-p', JSON.stringify(ops)]);
    await untilCalled();
    await jobIsInjected('second-replica');
    const c = await config();
    expect(c.webhooks.map((w) => unb64(w.clientConfig.caBundle).trim())).to.deep.equal(WEBHOOK_NAMES.map(() => bootstrappedCa.trim()));
  });
});
