/**
 * The real `jobmetrics-webhook` process on loopback: TLS from a directory (certificates made by
 * webhook/cert.ts), a real TLS client that verifies the CA, a fake API server (plain HTTP, with a
 * kubeconfig) for the version probe and the Job owner lookup through @kubernetes/client-node.
 * Checks answers, bad inputs, the body limit, /metrics, certificate reload when the files change
 * the way a Secret volume changes them, and graceful shutdown with a review in flight.
 */
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, mkdirSync, readFileSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'chai';
import jsonPatch, { type Operation } from 'fast-json-patch';
import { parse } from 'yaml';
import type { CertPair } from '../../webhook/cert.ts';
import { call, headersOnly, killWebhook, makeCerts, podOfJob, review, ROOT, startWebhook, type Webhook } from '../support/webhook.ts';

/** Lays files out as the kubelet does for a Secret volume: timestamped dir, `..data` symlink, file symlinks. */
function writeSecretVolume(dir: string, pair: CertPair, generation: number): void {
  const ts = join(dir, `..gen_${generation}`);
  mkdirSync(ts);
  writeFileSync(join(ts, 'tls.crt'), pair.certPem);
  writeFileSync(join(ts, 'tls.key'), pair.keyPem);
  const tmpLink = join(dir, '..data_tmp');
  symlinkSync(`..gen_${generation}`, tmpLink);
  renameSync(tmpLink, join(dir, '..data')); // atomic swap
  for (const f of ['tls.crt', 'tls.key']) {
    try {
      symlinkSync(`..data/${f}`, join(dir, f));
    } catch {
      // already links through ..data
    }
  }
}

/** A fake API server: /version, and Jobs whose answer a test can hold back until a promise settles. */
function fakeApi(): { server: Server; jobHeld: Map<string, Promise<void>>; requests: string[] } {
  const jobHeld = new Map<string, Promise<void>>();
  const requests: string[] = [];
  const jobs: Record<string, string | null> = { 'manual-run': 'nightly-report', 'slow-job': 'slow-cron', 'plain-job': null };
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    requests.push(`${req.method} ${req.url}`);
    const json = (status: number, body: unknown): void => {
      res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
    };
    if (req.url === '/version' || req.url === '/version/') {
      json(200, { major: '1', minor: '31', gitVersion: 'v1.31.4', gitCommit: 'x', gitTreeState: 'clean', buildDate: '2025-01-01T00:00:00Z', goVersion: 'go1.23', compiler: 'gc', platform: 'linux/amd64' });
      return;
    }
    const m = /^\/apis\/batch\/v1\/namespaces\/([^/]+)\/jobs\/([^/?]+)/.exec(req.url ?? '');
    if (m && m[2] !== undefined && m[2] in jobs) {
      const name = m[2];
      const cron = jobs[name];
      void (jobHeld.get(name) ?? Promise.resolve()).then(() => {
        json(200, {
          apiVersion: 'batch/v1',
          kind: 'Job',
          metadata: {
            name,
            namespace: m[1],
            uid: '9c1d7a52-3b1e-4f55-9a57-1f0e3f1c2a10',
            ...(cron && { ownerReferences: [{ apiVersion: 'batch/v1', kind: 'CronJob', name: cron, uid: 'c0', controller: true, blockOwnerDeletion: true }] }),
          },
          spec: { template: { spec: { containers: [] } } },
        });
      });
      return;
    }
    json(404, { kind: 'Status', apiVersion: 'v1', status: 'Failure', message: `${req.url} not found`, reason: 'NotFound', code: 404 });
  });
  return { server, jobHeld, requests };
}

const decode = (patch: string | undefined): Operation[] => JSON.parse(Buffer.from(patch ?? '', 'base64').toString('utf8')) as Operation[];

describe('webhook over HTTPS (real process, real TLS, fake API server)', function () {
  this.timeout(60_000);
  let dir: string;
  let first: { ca: CertPair; serving: CertPair };
  let api: ReturnType<typeof fakeApi>;
  let wh: Webhook;
  /** The certificates being served; the reload test swaps them. */
  let current: { ca: CertPair; serving: CertPair };

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'jobmetrics-webhook-'));
    const tlsDir = join(dir, 'tls');
    mkdirSync(tlsDir);
    first = makeCerts('test-ca-1');
    current = first;
    writeSecretVolume(tlsDir, first.serving, 1);
    api = fakeApi();
    await new Promise<void>((r) => api.server.listen(0, '127.0.0.1', r));
    const apiPort = (api.server.address() as AddressInfo).port;
    const kubeconfig = join(dir, 'kubeconfig');
    writeFileSync(
      kubeconfig,
      [
        'apiVersion: v1',
        'kind: Config',
        // client-node refuses plain http unless TLS verification is off explicitly.
        'clusters: [{name: fake, cluster: {server: "http://127.0.0.1:' + apiPort + '", insecure-skip-tls-verify: true}}]',
        'users: [{name: u, user: {token: test-token}}]',
        'contexts: [{name: c, context: {cluster: fake, user: u}}]',
        'current-context: c',
      ].join('\n'),
    );
    wh = await startWebhook({
      JOBMETRICS_TLS_DIR: tlsDir,
      KUBECONFIG: kubeconfig,
      JOBMETRICS_SHUTDOWN_GRACE: '10s',
      // Short, so the test does not wait the default 5 s; what it checks is the order of events.
      JOBMETRICS_SHUTDOWN_DELAY: '1s',
      // The shutdown test holds a Job lookup open across SIGTERM; on a loaded machine that takes
      // longer than the default 1 s, and a timed-out lookup would name the wrong workload.
      JOBMETRICS_WORKLOAD_LOOKUP_TIMEOUT: '10s',
      JOBMETRICS_LOG_LEVEL: 'debug',
    });
  });

  after(() => {
    killWebhook(wh);
    api?.server.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('chose native mode from the API server version', () => {
    expect(wh.logs.join('\n')).to.match(/"msg":"sidecar mode chosen","mode":"native".*v1\.31\.4/);
  });

  it('injects a Job pod, naming the workload after the CronJob the API reports', async () => {
    const pod = podOfJob('manual-run');
    const a = await call(wh.port, first.ca.certPem, 'POST', '/mutate', review(pod));
    expect(a.status).to.equal(200);
    const r = a.json().response;
    expect(r.uid).to.equal('e911857d-c318-11e8-bbad-025000000001');
    expect(r.allowed).to.equal(true);
    expect(r.patchType).to.equal('JSONPatch');
    const out = jsonPatch.applyPatch(structuredClone(pod), decode(r.patch), true, false).newDocument;
    const sidecar = out.spec.initContainers?.at(-1);
    expect(sidecar?.name).to.equal('jobmetrics-sidecar');
    expect(sidecar?.restartPolicy).to.equal('Always');
    const env = sidecar?.['env'] as { name: string; value?: string }[];
    expect(env.find((e) => e.name === 'JOBMETRICS_JOB')?.value).to.equal('nightly-report');
    expect(api.requests).to.include('GET /apis/batch/v1/namespaces/reports/jobs/manual-run');
  });

  it('a client that does not trust the CA cannot talk to it', async () => {
    const other = makeCerts('stranger');
    let error: unknown;
    try {
      await call(wh.port, other.ca.certPem, 'GET', '/healthz');
    } catch (e) {
      error = e;
    }
    expect((error as { code?: string } | undefined)?.code).to.match(/UNABLE_TO_VERIFY|SELF_SIGNED|CERT/);
  });

  const bad: [string, string, number, RegExp, string][] = [
    ['non-JSON', 'not json {', 400, /body is not JSON/, ''],
    ['the wrong kind', JSON.stringify({ apiVersion: 'admission.k8s.io/v1', kind: 'ConfigMap', request: { uid: 'abc' } }), 400, /expected kind AdmissionReview/, 'abc'],
    ['a missing request', JSON.stringify({ apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview' }), 400, /has no request/, ''],
    ['an empty body', '', 400, /body is not JSON/, ''],
  ];
  for (const [title, body, status, message, uid] of bad) {
    it(`answers ${title} with ${status} and an AdmissionReview-shaped error`, async () => {
      const a = await call(wh.port, first.ca.certPem, 'POST', '/mutate', body);
      expect(a.status).to.equal(status);
      const r = a.json().response;
      expect(r.uid).to.equal(uid);
      expect(r.status?.message).to.match(message);
    });
  }

  it('allows UPDATE and non-Pod objects unchanged, echoing the uid', async () => {
    const u = await call(wh.port, first.ca.certPem, 'POST', '/mutate', review(podOfJob('plain-job'), { operation: 'UPDATE' }, 'u-1'));
    expect(u.status).to.equal(200);
    expect(u.json().response).to.deep.include({ uid: 'u-1', allowed: true });
    expect(u.json().response.patch).to.equal(undefined);
    const j = await call(wh.port, first.ca.certPem, 'POST', '/mutate', review({ spec: {} }, { kind: { group: 'batch', version: 'v1', kind: 'Job' } }, 'u-2'));
    expect(j.json().response).to.deep.include({ uid: 'u-2', allowed: true });
  });

  it('dryRun gets the same answer', async () => {
    const pod = podOfJob('plain-job');
    const wet = await call(wh.port, first.ca.certPem, 'POST', '/mutate', review(pod, {}, 'same'));
    const dry = await call(wh.port, first.ca.certPem, 'POST', '/mutate', review(pod, { dryRun: true }, 'same'));
    expect(dry.json()).to.deep.equal(wet.json());
  });

  it('GET /mutate is 405', async () => {
    expect((await call(wh.port, first.ca.certPem, 'GET', '/mutate')).status).to.equal(405);
  });

  it('a 10 MB body gets 413 with an AdmissionReview-shaped answer before a byte of it is read, and the server keeps serving', async () => {
    const a = await headersOnly(wh.port, first.ca.certPem, '/mutate', 10 * 1024 * 1024);
    expect(a.status).to.equal(413);
    expect(a.connection).to.equal('close');
    expect(a.json().response.status?.message).to.equal('request body of 10485760 bytes exceeds the limit of 3145728 bytes');
    expect((await call(wh.port, first.ca.certPem, 'GET', '/healthz')).status).to.equal(200);
  });

  it('a 10 MB chunked body (no Content-Length) gets 413 at the limit', async () => {
    const big = review({ metadata: { annotations: { junk: 'x'.repeat(10 * 1024 * 1024) } }, spec: { containers: [] } });
    let answer: Awaited<ReturnType<typeof call>> | undefined;
    try {
      answer = await call(wh.port, first.ca.certPem, 'POST', '/mutate', big, { 'transfer-encoding': 'chunked' });
    } catch (e) {
      // The server may close while the rest is still being sent; then the answer is lost to this client.
      expect((e as NodeJS.ErrnoException).code).to.match(/EPIPE|ECONNRESET/);
    }
    if (answer) {
      expect(answer.status).to.equal(413);
      expect(answer.json().response.status?.message).to.match(/exceeds the limit of 3145728 bytes/);
    }
    expect((await call(wh.port, first.ca.certPem, 'GET', '/healthz')).status).to.equal(200);
  });

  it('serves /healthz, /readyz and /metrics with counts by outcome and reason', async () => {
    expect((await call(wh.port, first.ca.certPem, 'GET', '/readyz')).status).to.equal(200);
    await call(wh.port, first.ca.certPem, 'POST', '/mutate', review(parse(readFileSync(join(ROOT, 'test/fixtures/pod-host-pid.yaml'), 'utf8'))));
    const m = (await call(wh.port, first.ca.certPem, 'GET', '/metrics')).body;
    expect(m).to.match(/jobmetrics_webhook_requests_total\{outcome="injected"\} [1-9]/);
    expect(m).to.match(/jobmetrics_webhook_requests_total\{outcome="bad_request"\} [1-9]/);
    expect(m).to.match(/jobmetrics_webhook_requests_total\{outcome="too_large"\} [12]\n/);
    expect(m).to.match(/jobmetrics_webhook_skips_total\{reason="host-pid"\} 1/);
    expect(m).to.match(/jobmetrics_webhook_injections_total\{mode="native",workload_source="cronjob"\} 1/);
    expect(m).to.match(/jobmetrics_webhook_request_duration_seconds_bucket\{le="0\.005",outcome="injected"\}/);
    expect(m).to.match(/jobmetrics_webhook_job_lookups_total\{result="found"\}/);
  });

  it('reloads the certificate when the Secret volume changes', async () => {
    const second = makeCerts('test-ca-2');
    writeSecretVolume(join(dir, 'tls'), second.serving, 2);
    const want = new X509Certificate(second.serving.certPem).fingerprint256;
    const deadline = Date.now() + 15_000;
    let seen = '';
    while (Date.now() < deadline) {
      try {
        const a = await call(wh.port, second.ca.certPem, 'GET', '/healthz');
        seen = a.peerCert?.fingerprint256 ?? '';
        if (seen === want) break;
      } catch {
        // still the old certificate: the new CA does not verify it yet
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(seen).to.equal(want);
    expect(wh.logs.join('\n')).to.contain('serving a new certificate');
    current = second;
  });

  it('on SIGTERM reports not ready but still answers new reviews for shutdownDelay, then finishes the review in flight, stops accepting and exits 0', async () => {
    const ca = current.ca.certPem;
    // Events, not sleeps, order this: the review is in flight once its Job lookup reached the
    // API server, whose answer waits until the listener is closed.
    let answerJob = (): void => {};
    api.jobHeld.set('slow-job', new Promise<void>((r) => (answerJob = r)));
    const inFlight = call(wh.port, ca, 'POST', '/mutate', review(podOfJob('slow-job'), {}, 'in-flight'));
    const until = async (what: string, done: () => boolean): Promise<void> => {
      for (const deadline = Date.now() + 30_000; !done(); await new Promise((r) => setTimeout(r, 20))) {
        if (Date.now() > deadline) throw new Error(`no ${what} within 30 s:\n${wh.logs.join('\n')}`);
      }
    };
    await until('Job lookup', () => api.requests.some((r) => r.endsWith('/jobs/slow-job')));
    wh.proc.kill('SIGTERM');
    // First the drain: not ready, but a review routed here before the endpoints drop this pod is
    // still answered (else the API server would create that pod without the sidecar).
    await until('drain', () => wh.logs.some((l) => l.includes('"msg":"shutting down: not ready')));
    expect((await call(wh.port, ca, 'GET', '/readyz')).status).to.equal(503);
    const during = await call(wh.port, ca, 'POST', '/mutate', review(podOfJob('quick-job'), {}, 'during-drain'));
    expect(during.status).to.equal(200);
    expect(during.json().response.uid).to.equal('during-drain');
    // Logged just before the listener closes, in the same turn of the event loop.
    await until('shutdown', () => wh.logs.some((l) => l.includes('"msg":"shutting down: no new connections')));
    expect(wh.logs.find((l) => l.includes('"msg":"shutting down: no new connections'))).to.include('"inFlight":1');
    let refused: unknown;
    try {
      await call(wh.port, ca, 'GET', '/healthz');
    } catch (e) {
      refused = e;
    }
    expect((refused as { code?: string } | undefined)?.code).to.equal('ECONNREFUSED');
    answerJob();
    const a = await inFlight;
    expect(a.status).to.equal(200);
    expect(a.json().response.uid).to.equal('in-flight');
    const out = jsonPatch.applyPatch(podOfJob('slow-job'), decode(a.json().response.patch), true, false).newDocument;
    const env = out.spec.initContainers?.at(-1)?.['env'] as { name: string; value?: string }[];
    expect(env.find((e) => e.name === 'JOBMETRICS_JOB')?.value).to.equal('slow-cron');
    expect(await wh.exited).to.equal(0);
    expect(wh.logs.join('\n')).to.match(/"msg":"stopped","forced":false/);
  });
});
