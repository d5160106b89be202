/** The webhook's own API client: credentials from kubeconfig or the service account, calls, errors. */
import { expect } from 'chai';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generateCa, issueServingCert } from '../../../webhook/cert.ts';
import { createKubeApi, inClusterConnection, kubeconfigConnection, type KubeApi } from '../../../webhook/kube-api.ts';

interface Seen {
  method: string;
  url: string;
  auth: string | undefined;
  contentType: string | undefined;
  body: string;
}

type Handler = (req: IncomingMessage, body: string) => { status: number; body?: unknown; delayMs?: number };

function listen(server: Server): Promise<number> {
  return new Promise((r) => server.listen(0, '127.0.0.1', () => r((server.address() as AddressInfo).port)));
}

function apiHandler(seen: Seen[], handler: Handler) {
  return (req: IncomingMessage, res: ServerResponse): void => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString('utf8')));
    req.on('end', () => {
      seen.push({ method: req.method ?? '', url: req.url ?? '', auth: req.headers.authorization, contentType: req.headers['content-type'], body });
      const a = handler(req, body);
      setTimeout(() => {
        res.writeHead(a.status, { 'content-type': 'application/json' }).end(a.body === undefined ? '' : JSON.stringify(a.body));
      }, a.delayMs ?? 0);
    });
  };
}

const status = (code: number, message: string): { status: number; body: unknown } => ({
  status: code,
  body: { kind: 'Status', apiVersion: 'v1', status: 'Failure', message, code },
});

describe('webhook kube-api (node:http client)', function () {
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'jobmetrics-kube-api-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  const kubeconfig = (name: string, cluster: string, user: string): string => {
    const path = join(dir, name);
    writeFileSync(
      path,
      [
        'apiVersion: v1',
        'kind: Config',
        `clusters: [{name: c, cluster: ${cluster}}]`,
        `users: [{name: u, user: ${user}}]`,
        'contexts: [{name: x, context: {cluster: c, user: u}}]',
        'current-context: x',
      ].join('\n'),
    );
    return path;
  };

  describe('credentials', () => {
    it('reads a kubeconfig: server, token, inline CA, client certificate, relative token file', () => {
      writeFileSync(join(dir, 'tok'), 'from-file\n');
      const b64 = (s: string): string => Buffer.from(s).toString('base64');
      const a = kubeconfigConnection(
        kubeconfig('a', `{server: "https://10.0.0.1:6443/", certificate-authority-data: ${b64('CA PEM')}, tls-server-name: api.local}`, `{token: t0k3n, client-certificate-data: ${b64('CERT')}, client-key-data: ${b64('KEY')}}`),
      );
      expect('needs' in a).to.equal(false);
      if ('needs' in a) return;
      expect(a.server).to.equal('https://10.0.0.1:6443');
      expect([a.ca, a.cert, a.key, a.tlsServerName, a.insecureSkipTlsVerify]).to.deep.equal(['CA PEM', 'CERT', 'KEY', 'api.local', false]);
      expect(a.authHeaders()).to.deep.equal({ Authorization: 'Bearer t0k3n' });
      const b = kubeconfigConnection(kubeconfig('b', '{server: "http://127.0.0.1:1", insecure-skip-tls-verify: true}', '{tokenFile: tok}'));
      if ('needs' in b) throw new Error('unexpected');
      expect(b.insecureSkipTlsVerify).to.equal(true);
      expect(b.authHeaders()).to.deep.equal({ Authorization: 'Bearer from-file' });
      const c = kubeconfigConnection(kubeconfig('c', '{server: "https://h"}', '{username: me, password: pw}'));
      if ('needs' in c) throw new Error('unexpected');
      expect(c.authHeaders()).to.deep.equal({ Authorization: `Basic ${b64('me:pw')}` });
    });

    it('hands exec plugins, auth providers, impersonation and proxies to client-node', () => {
      expect(kubeconfigConnection(kubeconfig('d', '{server: "https://h"}', '{exec: {command: aws, apiVersion: client.authentication.k8s.io/v1}}'))).to.deep.equal({ needs: 'user.exec' });
      expect(kubeconfigConnection(kubeconfig('e', '{server: "https://h"}', '{auth-provider: {name: oidc}}'))).to.deep.equal({ needs: 'user.auth-provider' });
      expect(kubeconfigConnection(kubeconfig('f', '{server: "https://h"}', '{token: t, as: admin}'))).to.deep.equal({ needs: 'user.as' });
      expect(kubeconfigConnection(kubeconfig('g', '{server: "https://h", proxy-url: "http://proxy:3128"}', '{token: t}'))).to.deep.equal({ needs: 'cluster.proxy-url' });
    });

    it('says what is wrong with an unusable kubeconfig', () => {
      writeFileSync(join(dir, 'h'), 'apiVersion: v1\nkind: Config\ncurrent-context: nope\n');
      expect(() => kubeconfigConnection(join(dir, 'h'))).to.throw(/no current context named "nope"/);
      expect(() => kubeconfigConnection(kubeconfig('i', '{}', '{}'))).to.throw(/cluster "c" has no server/);
    });

    it('in a cluster: the service account token and CA, the host in brackets when it is IPv6', () => {
      const sa = join(dir, 'sa');
      mkdirSync(sa);
      writeFileSync(join(sa, 'token'), 'sa-token');
      writeFileSync(join(sa, 'ca.crt'), 'CLUSTER CA');
      const v4 = inClusterConnection({ KUBERNETES_SERVICE_HOST: '10.96.0.1', KUBERNETES_SERVICE_PORT: '443' }, sa);
      expect([v4.server, v4.ca, v4.authHeaders()]).to.deep.equal(['https://10.96.0.1:443', 'CLUSTER CA', { Authorization: 'Bearer sa-token' }]);
      expect(inClusterConnection({ KUBERNETES_SERVICE_HOST: 'fd00::1', KUBERNETES_SERVICE_PORT: '443' }, sa).server).to.equal('https://[fd00::1]:443');
      expect(() => inClusterConnection({}, sa)).to.throw(/KUBERNETES_SERVICE_HOST/);
    });
  });

  describe('calls', () => {
    let server: Server;
    let api: KubeApi;
    const seen: Seen[] = [];
    let handler: Handler = () => ({ status: 500 });

    before(async () => {
      server = createServer(apiHandler(seen, (req, body) => handler(req, body)));
      const port = await listen(server);
      const made = await createKubeApi({ kubeconfig: kubeconfig('calls', `{server: "http://127.0.0.1:${port}"}`, '{token: secret-token}'), inCluster: false, timeoutMs: 300 });
      if ('unavailable' in made) throw new Error(made.unavailable);
      api = made;
    });
    after(() => server.close());
    beforeEach(() => (seen.length = 0));

    it('GET /version with the token', async () => {
      handler = () => ({ status: 200, body: { major: '1', minor: '31', gitVersion: 'v1.31.4', platform: 'linux/amd64' } });
      expect(await api.serverVersion()).to.deep.equal({ ok: true, version: { major: '1', minor: '31', gitVersion: 'v1.31.4' } });
      expect(seen).to.have.length(1);
      expect(seen[0]).to.include({ method: 'GET', url: '/version', auth: 'Bearer secret-token' });
      expect(api.client).to.equal('node:https');
    });

    it('GET a Job: its uid and owners; 404 is null; other errors say what and why', async () => {
      handler = () => ({
        status: 200,
        body: { kind: 'Job', metadata: { name: 'n-1', uid: 'u1', ownerReferences: [{ apiVersion: 'batch/v1', kind: 'CronJob', name: 'n', uid: 'c', controller: true, blockOwnerDeletion: true }] } },
      });
      const signal = new AbortController().signal;
      expect(await api.fetchJob('ns 1', 'n-1', signal)).to.deep.equal({ uid: 'u1', ownerReferences: [{ apiVersion: 'batch/v1', kind: 'CronJob', name: 'n', controller: true }] });
      expect(seen[0]?.url).to.equal('/apis/batch/v1/namespaces/ns%201/jobs/n-1');
      handler = () => status(404, 'jobs.batch "gone" not found');
      expect(await api.fetchJob('ns', 'gone', signal)).to.equal(null);
      handler = () => status(403, 'jobs.batch "x" is forbidden: User "system:serviceaccount:jobmetrics:jobmetrics-webhook" cannot get resource "jobs"');
      const err = await api.fetchJob('ns', 'x', signal).then(
        () => undefined,
        (e: unknown) => e as Error & { status?: number },
      );
      expect(err?.message).to.equal('get job ns/x failed: HTTP 403: jobs.batch "x" is forbidden: User "system:serviceaccount:jobmetrics:jobmetrics-webhook" cannot get resource "jobs"');
      expect(err?.status).to.equal(403);
    });

    it('the caller can abort a Job GET, and every call has a timeout', async () => {
      handler = () => ({ status: 200, body: {}, delayMs: 2_000 });
      const ac = new AbortController();
      const pending = api.fetchJob('ns', 'slow', ac.signal).then(
        () => 'resolved',
        (e: Error) => e.message,
      );
      setTimeout(() => ac.abort(new Error('gave up')), 20);
      expect(await pending).to.match(/^get job ns\/slow failed: gave up$/);
      // The server answers after 2 s; the client's 300 ms timeout ends the call first (an answer
      // would be a version or a parse error, never this).
      const v = await api.serverVersion();
      expect(v.ok).to.equal(false);
      if (!v.ok) expect(v.error).to.match(/\/version failed: .*(abort|timeout)/i);
    });

    it('Secrets: read (404 is null), create (409 is exists), replace with the resourceVersion (409 is conflict)', async () => {
      handler = () => ({ status: 200, body: { kind: 'Secret', metadata: { name: 's', resourceVersion: '42' }, data: { 'tls.crt': 'Y2VydA==' } } });
      expect(await api.bootstrap.readSecret('jm', 's')).to.deep.equal({ data: { 'tls.crt': 'Y2VydA==' }, resourceVersion: '42' });
      handler = () => status(404, 'not found');
      expect(await api.bootstrap.readSecret('jm', 's')).to.equal(null);
      handler = () => ({ status: 201, body: {} });
      expect(await api.bootstrap.createSecret('jm', 's', { a: 'Yg==' })).to.equal('created');
      const created = seen.at(-1)!;
      expect(created).to.include({ method: 'POST', url: '/api/v1/namespaces/jm/secrets', contentType: 'application/json' });
      expect(JSON.parse(created.body)).to.deep.equal({
        apiVersion: 'v1',
        kind: 'Secret',
        type: 'kubernetes.io/tls',
        metadata: { name: 's', namespace: 'jm', labels: { 'app.kubernetes.io/name': 'jobmetrics', 'app.kubernetes.io/component': 'webhook' } },
        data: { a: 'Yg==' },
      });
      handler = () => status(409, 'secrets "s" already exists');
      expect(await api.bootstrap.createSecret('jm', 's', {})).to.equal('exists');
      handler = () => ({ status: 200, body: {} });
      expect(await api.bootstrap.replaceSecret('jm', 's', { a: 'Yg==' }, '42')).to.equal('replaced');
      expect(seen.at(-1)).to.include({ method: 'PUT', url: '/api/v1/namespaces/jm/secrets/s' });
      expect(JSON.parse(seen.at(-1)!.body).metadata).to.deep.equal({ name: 's', namespace: 'jm', resourceVersion: '42' });
      handler = () => status(409, 'the object has been modified');
      expect(await api.bootstrap.replaceSecret('jm', 's', {}, '41')).to.equal('conflict');
      handler = () => status(500, 'etcd is sad');
      await api.bootstrap.createSecret('jm', 's', {}).then(
        () => expect.fail('should throw'),
        (e: Error) => expect(e.message).to.equal('create secret jm/s failed: HTTP 500: etcd is sad'),
      );
    });

    it('the MutatingWebhookConfiguration: read its caBundles (404 is null), patch with a JSON patch', async () => {
      handler = () => ({ status: 200, body: { webhooks: [{ name: 'a.jobmetrics.io', clientConfig: { caBundle: 'Q0E=', service: {} } }, { name: 'b.jobmetrics.io', clientConfig: {} }] } });
      expect(await api.bootstrap.readWebhookConfiguration('jobmetrics')).to.deep.equal({
        webhooks: [
          { name: 'a.jobmetrics.io', clientConfig: { caBundle: 'Q0E=' } },
          { name: 'b.jobmetrics.io', clientConfig: {} },
        ],
      });
      expect(seen.at(-1)?.url).to.equal('/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/jobmetrics');
      handler = () => status(404, 'not found');
      expect(await api.bootstrap.readWebhookConfiguration('jobmetrics')).to.equal(null);
      handler = () => ({ status: 200, body: {} });
      const ops = [{ op: 'test' as const, path: '/webhooks/0/name', value: 'a.jobmetrics.io' }, { op: 'replace' as const, path: '/webhooks/0/clientConfig/caBundle', value: 'TkVX' }];
      await api.bootstrap.patchWebhookConfiguration('jobmetrics', ops);
      expect(seen.at(-1)).to.include({ method: 'PATCH', contentType: 'application/json-patch+json' });
      expect(JSON.parse(seen.at(-1)!.body)).to.deep.equal(ops);
    });
  });

  it('over HTTPS: verifies the server against the kubeconfig CA, and refuses an unknown one', async () => {
    const now = new Date();
    const ca = generateCa({ commonName: 'api-ca', now, validityDays: 1 });
    const other = generateCa({ commonName: 'other-ca', now, validityDays: 1 });
    const serving = issueServingCert(ca, { dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'], now, validityDays: 1 });
    const seen: Seen[] = [];
    const server = createHttpsServer({ cert: serving.certPem, key: serving.keyPem }, apiHandler(seen, () => ({ status: 200, body: { major: '1', minor: '28', gitVersion: 'v1.28.9' } })));
    const port = await listen(server as unknown as Server);
    try {
      const b64 = (s: string): string => Buffer.from(s).toString('base64');
      const good = await createKubeApi({ kubeconfig: kubeconfig('tls-good', `{server: "https://127.0.0.1:${port}", certificate-authority-data: ${b64(ca.certPem)}}`, '{token: t}'), inCluster: false, timeoutMs: 2_000 });
      if ('unavailable' in good) throw new Error(good.unavailable);
      expect(await good.serverVersion()).to.deep.equal({ ok: true, version: { major: '1', minor: '28', gitVersion: 'v1.28.9' } });
      const bad = await createKubeApi({ kubeconfig: kubeconfig('tls-bad', `{server: "https://127.0.0.1:${port}", certificate-authority-data: ${b64(other.certPem)}}`, '{token: t}'), inCluster: false, timeoutMs: 2_000 });
      if ('unavailable' in bad) throw new Error(bad.unavailable);
      const v = await bad.serverVersion();
      expect(v.ok).to.equal(false);
      if (!v.ok) expect(v.error).to.match(/certificate|self.signed|verify/i);
      expect(seen).to.have.length(1);
    } finally {
      server.close();
    }
  });

  it('a kubeconfig with an exec plugin gets @kubernetes/client-node, which runs the plugin', async function () {
    this.timeout(20_000);
    const seen: Seen[] = [];
    const server = createServer(apiHandler(seen, () => ({ status: 200, body: { major: '1', minor: '30', gitVersion: 'v1.30.2' } })));
    const port = await listen(server);
    try {
      const plugin = join(dir, 'plugin.sh');
      writeFileSync(plugin, '#!/bin/sh\necho \'{"apiVersion":"client.authentication.k8s.io/v1","kind":"ExecCredential","status":{"token":"from-exec"}}\'\n', { mode: 0o755 });
      const made = await createKubeApi({
        kubeconfig: kubeconfig('exec', `{server: "http://127.0.0.1:${port}", insecure-skip-tls-verify: true}`, `{exec: {apiVersion: client.authentication.k8s.io/v1, command: ${plugin}, interactiveMode: Never}}`),
        inCluster: false,
        timeoutMs: 5_000,
      });
      if ('unavailable' in made) throw new Error(made.unavailable);
      expect(made.client).to.equal("@kubernetes/client-node (the kubeconfig's user.exec)");
      expect(await made.serverVersion()).to.deep.equal({ ok: true, version: { major: '1', minor: '30', gitVersion: 'v1.30.2' } });
      expect(seen[0]?.auth).to.equal('Bearer from-exec');
    } finally {
      server.close();
    }
  });

  it('without a kubeconfig or a cluster there is no API; an unreadable kubeconfig says why', async () => {
    expect(await createKubeApi({ inCluster: false, timeoutMs: 100 })).to.deep.equal({ unavailable: 'no kubeconfig set and not running in a cluster (KUBERNETES_SERVICE_HOST unset)' });
    const r = await createKubeApi({ kubeconfig: join(dir, 'missing'), inCluster: false, timeoutMs: 100 });
    expect(r).to.have.property('unavailable').that.matches(/^cannot load the API client configuration: ENOENT/);
  });
});
