/**
 * The Helm chart (charts/jobmetrics) against the kustomize manifests it mirrors: with default
 * values `helm template` renders exactly the objects of `kubectl kustomize manifests/base` (what
 * install.yaml holds), and the layout and TLS values render exactly what the overlays render;
 * compared object by object, parsed (scripts/object-diff.ts). Then what each value changes.
 * helm is built by scripts/install-helm (npm run setup); the cluster test is in
 * test/e2e/real-pods.test.ts.
 */
import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingHttpHeaders } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse } from 'yaml';
import { CHART_DIR, helmBinary, HelmError, helmTemplate, pinnedHelmVersion } from '../../scripts/helm.ts';
import { objectsByKey, renderDifferences, type KubeObject } from '../../scripts/object-diff.ts';
import { aggregatorBinaries, startOnFreePort, waitReady } from '../../scripts/aggregator-stack.ts';
import { startChild, stopChild } from '../../scripts/child-processes.ts';
import { kustomize, MANIFESTS } from '../e2e/webhook-harness.ts';

const render = (values: Record<string, string> = {}, opts: Parameters<typeof helmTemplate>[1] = {}): Map<string, KubeObject> =>
  objectsByKey(helmTemplate(values, opts), `helm template ${JSON.stringify(values)}`);
const kustomized = (dir: string): Map<string, KubeObject> => objectsByKey(kustomize(join(MANIFESTS, dir)), `kubectl kustomize manifests/${dir}`);

/** The objects of one kind, by name. */
function ofKind(objects: Map<string, KubeObject>, kind: string): Map<string, KubeObject> {
  return new Map([...objects.values()].filter((o) => o.kind === kind).map((o) => [String(o.metadata?.name), o]));
}
function one(objects: Map<string, KubeObject>, key: string): Record<string, any> {
  const o = objects.get(key);
  if (!o) throw new Error(`${key} not rendered; rendered: ${[...objects.keys()].join(', ')}`);
  return o;
}
/** The webhook's settings file, parsed, and the name of its ConfigMap. */
function webhookSettings(objects: Map<string, KubeObject>): { name: string; settings: Record<string, any> } {
  const [cm, ...more] = [...ofKind(objects, 'ConfigMap').values()].filter((o) => String(o.metadata?.name).startsWith('jobmetrics-webhook-settings-'));
  if (!cm || more.length > 0) throw new Error('expected one webhook settings ConfigMap');
  return { name: String(cm.metadata?.name), settings: parse((cm as { data: Record<string, string> }).data['webhook.yaml'] ?? '') as Record<string, any> };
}
const containers = (o: Record<string, any>): Record<string, any>[] => o['spec']['template']['spec']['containers'];

describe(`Helm chart charts/jobmetrics (helm ${pinnedHelmVersion()})`, function () {
  this.timeout(120_000);

  it('helm lint --strict: no warning, no error, with default values and with each layout and TLS source', () => {
    for (const set of [[], ['--set', 'aggregator.layout=sharded'], ['--set', 'aggregator.layout=ha,webhook.tls.source=cert-manager,dashboards.enabled=true']]) {
      const r = spawnSync(helmBinary(), ['lint', '--strict', CHART_DIR, ...set], { encoding: 'utf8' });
      expect(r.status, r.stdout + r.stderr).to.equal(0);
      expect(r.stdout.split('\n').filter((l) => /\[(WARNING|ERROR)\]/.test(l)), set.join(' ')).to.deep.equal([]);
      expect(r.stdout).to.include('1 chart(s) linted, 0 chart(s) failed');
    }
  });

  it('default values render exactly the objects of `kubectl kustomize manifests/base` (install.yaml)', () => {
    const want = kustomized('base');
    const got = render();
    expect(renderDifferences(want, got)).to.deep.equal([]);
    expect(got.size).to.equal(want.size);
  });

  // Each value renders what the overlay renders. The one difference allowed: the chart labels the
  // objects only the overlay adds with the install's part-of and version labels too (an overlay's
  // own resources are outside the base's `labels:`).
  const overlays: Array<[string, Record<string, string>]> = [
    ['cert-manager', { 'webhook.tls.source': 'cert-manager' }],
    ['sharded-aggregator', { 'aggregator.layout': 'sharded' }],
    ['ha-aggregator', { 'aggregator.layout': 'ha' }],
  ];
  for (const [overlay, values] of overlays) {
    it(`${Object.entries(values).map(([k, v]) => `${k}=${v}`).join(' ')} renders exactly what manifests/overlays/${overlay} renders`, () => {
      const base = kustomized('base');
      const want = kustomized(`overlays/${overlay}`);
      const got = render(values);
      for (const [key, o] of got) {
        if (base.has(key) || !want.has(key)) continue;
        const labels = (o.metadata as { labels?: Record<string, string> }).labels;
        if (!labels) continue;
        const common = one(base, 'Namespace jobmetrics')['metadata']['labels'];
        expect([labels['app.kubernetes.io/part-of'], labels['app.kubernetes.io/version']], key).to.deep.equal([common['app.kubernetes.io/part-of'], common['app.kubernetes.io/version']]);
        delete labels['app.kubernetes.io/part-of'];
        delete labels['app.kubernetes.io/version'];
      }
      expect(renderDifferences(want, got)).to.deep.equal([]);
    });
  }

  it('aggregator.shards sets the StatefulSet and the routers’ URLs together', () => {
    const got = render({ 'aggregator.layout': 'sharded', 'aggregator.shards': '5' });
    expect(one(got, 'StatefulSet jobmetrics/jobmetrics-aggregator-shard')['spec']['replicas']).to.equal(5);
    const urls = (containers(one(got, 'Deployment jobmetrics/jobmetrics-aggregator'))[0]!['args'] as string[]).filter((a) => a.startsWith('-remoteWrite.url='));
    expect(urls).to.deep.equal([0, 1, 2, 3, 4].map((i) => `-remoteWrite.url=http://jobmetrics-aggregator-shard-${i}.jobmetrics-aggregator-shard.jobmetrics.svc:8429/api/v1/write`));
  });

  it('image.registry and image.tag move the webhook, gateway and recorder images (and so the sidecar the webhook injects, which follows its own); sidecar.image pins another; imagePullSecrets reach every pod', () => {
    const got = render({ 'image.registry': 'registry.example:5000/team', 'image.tag': '9.9.9', 'imagePullSecrets[0]': 'regcred' });
    const images = Object.fromEntries(
      [...ofKind(got, 'Deployment').values(), ...ofKind(got, 'StatefulSet').values()].map((o) => [String(o.metadata?.name), containers(o).map((c) => c['image'])]),
    );
    expect(images).to.deep.equal({
      'jobmetrics-webhook': ['registry.example:5000/team/jobmetrics-webhook:9.9.9'],
      'jobmetrics-gateway': ['registry.example:5000/team/jobmetrics-webhook:9.9.9'],
      'jobmetrics-recorder': ['registry.example:5000/team/jobmetrics-webhook:9.9.9'],
      'jobmetrics-aggregator': ['victoriametrics/vmagent:v1.112.0'],
      'jobmetrics-prometheus': ['prom/prometheus:v2.53.3'],
    });
    // The sidecar's follows the webhook's own image (webhook/sidecar-image.ts): no second setting.
    expect(webhookSettings(got).settings['sidecar']['image']).to.equal('');
    expect(webhookSettings(render({ 'sidecar.imagePullSecrets': '{regcred,other}' })).settings['sidecar']['imagePullSecrets']).to.equal('regcred,other');
    expect(webhookSettings(render({ 'sidecar.image': 'registry.example:5000/team/jobmetrics-sidecar@sha256:0123' })).settings['sidecar']['image']).to.equal('registry.example:5000/team/jobmetrics-sidecar@sha256:0123');
    const secrets = [...ofKind(got, 'Deployment').values()].map((o) => [o.metadata?.name, (o as Record<string, any>)['spec']['template']['spec']['imagePullSecrets']]);
    expect(secrets.filter(([, s]) => JSON.stringify(s) !== JSON.stringify([{ name: 'regcred' }]))).to.deep.equal([]);
  });

  it('aggregator.remoteWriteUrl: vmagent writes there, and the bundled Prometheus is not installed', () => {
    const got = render({ 'aggregator.remoteWriteUrl': 'http://mimir.mimir.svc:8080/api/v1/push' });
    const remote = [...ofKind(got, 'ConfigMap').values()].filter((o) => String(o.metadata?.name).startsWith('jobmetrics-aggregator-remote-write-'));
    expect(remote.map((o) => (o as { data: unknown }).data)).to.deep.equal([{ url: 'http://mimir.mimir.svc:8080/api/v1/push' }]);
    expect(containers(one(got, 'Deployment jobmetrics/jobmetrics-aggregator'))[0]!['env'][0]['valueFrom']['configMapKeyRef']['name']).to.equal(remote[0]!.metadata?.name);
    expect([...got.keys()].filter((k) => k.includes('prometheus'))).to.deep.equal([]);
    // The install's own credentials are for the bundled store only: none reach yours.
    const args: string[] = containers(one(got, 'Deployment jobmetrics/jobmetrics-aggregator'))[0]!['args'];
    expect(args.filter((a) => /^-remoteWrite\.(basicAuth|bearerToken|headers)/.test(a))).to.deep.equal([]);
    // Everything else is the default install.
    const dflt = render();
    expect([...dflt.keys()].filter((k) => !got.has(k)).sort()).to.deep.equal([
      'ConfigMap jobmetrics/jobmetrics-aggregator-remote-write-bm7m7hh4md',
      `ConfigMap jobmetrics/${[...ofKind(dflt, 'ConfigMap').keys()].find((n) => n.startsWith('jobmetrics-prometheus-config-'))}`,
      'Deployment jobmetrics/jobmetrics-prometheus',
      'NetworkPolicy jobmetrics/jobmetrics-prometheus',
      'Role jobmetrics/jobmetrics-prometheus',
      'RoleBinding jobmetrics/jobmetrics-prometheus',
      'Service jobmetrics/jobmetrics-prometheus',
      'ServiceAccount jobmetrics/jobmetrics-prometheus',
    ]);
  });

  /** The aggregators' store arguments, variables and volumes, by Deployment or StatefulSet. */
  const storeSide = (objects: Map<string, KubeObject>, key: string): { args: string[]; env: string[]; mounts: string[]; volumes: unknown[] } => {
    const pod = one(objects, key)['spec']['template']['spec'];
    const c = pod['containers'][0];
    return {
      args: (c['args'] as string[]).filter((a) => /^-remoteWrite\.(basicAuth|bearerToken|headers)/.test(a)),
      env: ((c['env'] ?? []) as { name: string; valueFrom: Record<string, { name: string; key: string }> }[]).map((e) => `${e.name}=${Object.values(e.valueFrom).map((r) => `${r.name}/${r.key}`).join('')}`),
      mounts: (c['volumeMounts'] as { name: string; mountPath: string }[]).map((m) => `${m.name}:${m.mountPath}`),
      volumes: (pod['volumes'] as { name: string }[]).filter((v) => v.name === 'store-credentials'),
    };
  };
  const url = 'https://mimir.example/api/v1/push';

  it('aggregator.remoteWriteAuth and remoteWriteHeaders: the aggregators sign in to your store from your Secret; the routers still use the install\'s own credentials', () => {
    const basic = storeSide(render({ 'aggregator.remoteWriteUrl': url, 'aggregator.remoteWriteAuth.secretName': 'mimir', 'aggregator.remoteWriteHeaders.X-Scope-OrgID': 'team-a', 'aggregator.remoteWriteHeaders.A-First': 'x' }), 'Deployment jobmetrics/jobmetrics-aggregator');
    expect(basic).to.deep.equal({
      args: ['-remoteWrite.basicAuth.username=$(STORE_USERNAME)', '-remoteWrite.basicAuth.passwordFile=/etc/jobmetrics/store/password', '-remoteWrite.headers=A-First:x^^X-Scope-OrgID:team-a'],
      env: [`REMOTE_WRITE_URL=${basic.env[0]?.split('=')[1]}`, 'STORE_USERNAME=mimir/username'],
      mounts: ['config:/etc/vmagent', 'data:/vmagent-data', 'credentials:/etc/jobmetrics/credentials', 'store-credentials:/etc/jobmetrics/store'],
      volumes: [{ name: 'store-credentials', secret: { secretName: 'mimir', items: [{ key: 'password', path: 'password' }] } }],
    });
    const sharded = render({ 'aggregator.layout': 'sharded', 'aggregator.remoteWriteUrl': url, 'aggregator.remoteWriteAuth.secretName': 'mimir', 'aggregator.remoteWriteAuth.type': 'bearer' });
    expect(storeSide(sharded, 'StatefulSet jobmetrics/jobmetrics-aggregator-shard')).to.deep.include({
      args: ['-remoteWrite.bearerTokenFile=/etc/jobmetrics/store/token'],
      volumes: [{ name: 'store-credentials', secret: { secretName: 'mimir', items: [{ key: 'token', path: 'token' }] } }],
    });
    const routers: string[] = containers(one(sharded, 'Deployment jobmetrics/jobmetrics-aggregator'))[0]!['args'];
    expect(routers.filter((a) => a.startsWith('-remoteWrite.basicAuth') || a.startsWith('-remoteWrite.bearer'))).to.deep.equal(['-remoteWrite.basicAuth.username=jobmetrics', '-remoteWrite.basicAuth.passwordFile=/etc/jobmetrics/credentials/password']);
    expect(storeSide(sharded, 'Deployment jobmetrics/jobmetrics-aggregator').volumes).to.deep.equal([]);
  });

  it('a real vmagent run with the rendered arguments signs in to the store as the Secret says, with the headers, and never with the install\'s password', async function () {
    this.timeout(90_000);
    const dir = mkdtempSync(join(tmpdir(), 'jobmetrics-store-auth-'));
    const seen: { kind: string; headers: IncomingHttpHeaders }[] = [];
    // The store: answers every write 204 and notes its headers, by the path each vmagent writes to.
    const store = createServer((req, res) => {
      req.resume();
      req.on('end', () => {
        seen.push({ kind: String(req.url).split('/')[1] ?? '', headers: req.headers });
        res.writeHead(204).end();
      });
    });
    await new Promise<void>((r) => store.listen(0, '127.0.0.1', () => r()));
    const storePort = (store.address() as { port: number }).port;
    const running: Awaited<ReturnType<typeof startOnFreePort>>[] = [];
    try {
      const installPassword = 'install-pw-0123456789';
      mkdirSync(join(dir, 'credentials'));
      writeFileSync(join(dir, 'credentials', 'password'), installPassword);
      // What Kubernetes makes of the pod: the Secret's files, the variables, the config mount.
      const files: Record<string, string> = { password: 's3cret', token: 'tok-en' };
      for (const kind of ['basic', 'bearer'] as const) {
        const rendered = render({ 'aggregator.remoteWriteUrl': `http://127.0.0.1:${storePort}/${kind}/api/v1/write`, 'aggregator.remoteWriteAuth.secretName': 'store', 'aggregator.remoteWriteAuth.type': kind, 'aggregator.remoteWriteHeaders.X-Scope-OrgID': 'team-a' });
        const c = containers(one(rendered, 'Deployment jobmetrics/jobmetrics-aggregator'))[0]!;
        const volume = storeSide(rendered, 'Deployment jobmetrics/jobmetrics-aggregator').volumes[0] as { secret: { items: { path: string }[] } };
        const storeDir = join(dir, kind);
        mkdirSync(storeDir);
        for (const { path } of volume.secret.items) writeFileSync(join(storeDir, path), files[path] ?? '');
        const vars: Record<string, string> = { REMOTE_WRITE_URL: `http://127.0.0.1:${storePort}/${kind}/api/v1/write`, STORE_USERNAME: 'tenant-a' };
        const local = (a: string, port: number): string =>
          a.replace(/\$\((\w+)\)/g, (_, v: string) => vars[v] ?? `$(${v})`)
            .replace('-httpListenAddr=:8429', `-httpListenAddr=127.0.0.1:${port}`)
            .replace('/etc/jobmetrics/credentials', join(dir, 'credentials'))
            .replace('/etc/jobmetrics/store', storeDir)
            .replace('/etc/vmagent/stream-aggr.yaml', join(CHART_DIR, 'files', 'stream-aggr.yaml'))
            .replace('/vmagent-data', join(storeDir, 'data'));
        running.push(await startOnFreePort(`vmagent (${kind})`, async (port) => {
          const child = startChild(`vmagent-${kind}`, aggregatorBinaries().vmagent, (c['args'] as string[]).map((a) => local(a, port)), join(storeDir, 'vmagent.log'));
          await waitReady(`vmagent (${kind})`, child, `http://127.0.0.1:${port}/health`, 30_000);
          return child;
        }));
        const push = await fetch(`http://127.0.0.1:${running.at(-1)!.port}/api/v1/import/prometheus`, {
          method: 'POST',
          headers: { authorization: `Basic ${Buffer.from(`jobmetrics:${installPassword}`).toString('base64')}` },
          body: 'jobs_done_total{jobmetrics_kind="counter",pod="p-1",namespace="ns",job="j"} 5\n',
        });
        expect(push.status, await push.text()).to.equal(204);
      }
      // Each vmagent writes its aggregated output after one aggregation interval (10 s).
      for (const deadline = Date.now() + 60_000; !['basic', 'bearer'].every((k) => seen.some((s) => s.kind === k)); ) {
        if (Date.now() > deadline) throw new Error(`the store saw no write from ${['basic', 'bearer'].filter((k) => !seen.some((s) => s.kind === k)).join(', ')} within 60 s`);
        await new Promise((r) => setTimeout(r, 250));
      }
      const signIn = (kind: string): string[] => [...new Set(seen.filter((s) => s.kind === kind).map((s) => `${s.headers['authorization']} ${s.headers['x-scope-orgid']}`))];
      expect(signIn('basic')).to.deep.equal([`Basic ${Buffer.from('tenant-a:s3cret').toString('base64')} team-a`]);
      expect(signIn('bearer')).to.deep.equal(['Bearer tok-en team-a']);
      expect(JSON.stringify(seen)).not.to.include(Buffer.from(`jobmetrics:${installPassword}`).toString('base64'));
    } finally {
      for (const r of running) await stopChild(r.running, { signal: 'SIGKILL' });
      await new Promise<void>((r) => store.close(() => r()));
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('the sidecar’s settings and mode land in the webhook’s settings file, under a new ConfigMap name that rolls the webhook', () => {
    const dflt = webhookSettings(render());
    const got = render({ 'webhook.settings.mode': 'legacy', 'sidecar.interval': '2s', 'sidecar.pushInterval': '20s', 'sidecar.flushTimeout': '15s', 'sidecar.resources.limits.memory': '256Mi', 'sidecar.tokenAudience': 'my-gateway' });
    const { name, settings } = webhookSettings(got);
    expect(name).to.not.equal(dflt.name);
    expect(one(got, 'Deployment jobmetrics/jobmetrics-webhook')['spec']['template']['spec']['volumes'][0]['configMap']['name']).to.equal(name);
    expect({ mode: settings['mode'], sidecar: settings['sidecar'] }).to.deep.equal({
      mode: 'legacy',
      sidecar: {
        ...dflt.settings['sidecar'],
        interval: '2s',
        pushInterval: '20s',
        flushTimeout: '15s',
        tokenAudience: 'my-gateway',
        resources: { requests: { cpu: '10m', memory: '48Mi' }, limits: { cpu: '', memory: '256Mi' } },
      },
    });
    // The gateway checks the audience the sidecars' tokens are for, and the recorder's token has it.
    const env = Object.fromEntries((containers(one(got, 'Deployment jobmetrics/jobmetrics-gateway'))[0]!['env'] as { name: string; value: string }[]).map((e) => [e.name, e.value]));
    expect(env['JOBMETRICS_TOKEN_AUDIENCE']).to.equal('my-gateway');
    expect(one(got, 'Deployment jobmetrics/jobmetrics-recorder')['spec']['template']['spec']['volumes'][0]['projected']['sources'][0]['serviceAccountToken']['audience']).to.equal('my-gateway');
  });

  // Helm merges a map given on the command line into the default one: null removes a default key.
  it('replicas, resources, the namespace selector and the excluded namespaces', () => {
    const got = render({}, { extraArgs: ['--set-json', 'webhook.namespaceSelector={"matchLabels":{"jobmetrics.io/inject":null,"team":"batch"}}', '--set-json', 'webhook.excludedNamespaces=["kube-system","infra"]', '--set', 'webhook.replicas=3,gateway.replicas=4,recorder.replicas=1,webhook.resources.limits.memory=300Mi'] });
    const replicas = Object.fromEntries([...ofKind(got, 'Deployment').values()].map((o) => [o.metadata?.name, (o as Record<string, any>)['spec']['replicas']]));
    expect(replicas).to.deep.equal({ 'jobmetrics-webhook': 3, 'jobmetrics-gateway': 4, 'jobmetrics-recorder': 1, 'jobmetrics-aggregator': 1, 'jobmetrics-prometheus': 1 });
    expect(containers(one(got, 'Deployment jobmetrics/jobmetrics-webhook'))[0]!['resources']).to.deep.equal({ requests: { cpu: '50m', memory: '96Mi' }, limits: { memory: '300Mi' } });
    const hooks = one(got, 'MutatingWebhookConfiguration jobmetrics')['webhooks'] as Record<string, any>[];
    const exclusion = { key: 'kubernetes.io/metadata.name', operator: 'NotIn', values: ['kube-system', 'infra', 'jobmetrics'] };
    expect(hooks.map((h) => h['namespaceSelector'])).to.deep.equal([
      { matchLabels: { team: 'batch' }, matchExpressions: [exclusion] },
      { matchLabels: { team: 'batch' }, matchExpressions: [exclusion] },
      { matchExpressions: [exclusion, { key: 'jobmetrics.io/inject', operator: 'NotIn', values: ['disabled'] }] },
    ]);
    expect(webhookSettings(got).settings['excludedNamespaces']).to.equal('kube-system,infra,jobmetrics');
  });

  it('namespace.name moves every namespaced object, every address and name between the parts, and the exclusions', () => {
    const got = render({ 'namespace.name': 'jm-system' });
    const clusterScoped = ['Namespace', 'ClusterRole', 'ClusterRoleBinding', 'MutatingWebhookConfiguration'];
    const namespaces = [...got.values()].map((o) => (clusterScoped.includes(String(o.kind)) ? 'cluster' : o.metadata?.namespace));
    expect([...new Set(namespaces)].sort()).to.deep.equal(['cluster', 'jm-system']);
    expect(got.has('Namespace jm-system')).to.equal(true);
    // Outside the files' comments: no address, subject or reference names the default namespace.
    const objects = JSON.stringify([...got.values()].filter((o) => o.kind !== 'ConfigMap'));
    expect(objects.match(/[^"]{0,60}(\.jobmetrics\.svc|"namespace":"jobmetrics"|"jobmetrics\/jobmetrics|"jobmetrics:jobmetrics)[^"]{0,20}/g)).to.equal(null);
    const { settings } = webhookSettings(got);
    expect([settings['excludedNamespaces'], settings['bootstrap']['serviceNamespace'], settings['sidecar']['remoteWriteUrl']]).to.deep.equal([
      'kube-system,kube-public,kube-node-lease,jm-system',
      'jm-system',
      'http://jobmetrics-gateway.jm-system.svc:8480/api/v1/write',
    ]);
  });

  it('dashboards.enabled: one ConfigMap per dashboards/*.json, labelled grafana_dashboard "1"; none by default', () => {
    const chart = mkdtempSync(join(tmpdir(), 'jobmetrics-chart-'));
    try {
      cpSync(CHART_DIR, chart, { recursive: true });
      const dashboard = JSON.stringify({ title: 'Test dashboard', panels: [{ type: 'timeseries', targets: [{ expr: 'sum(rate(x[5m]))' }] }] }, null, 2);
      mkdirSync(join(chart, 'dashboards'), { recursive: true });
      writeFileSync(join(chart, 'dashboards', 'zz-test.json'), dashboard);
      expect([...render({}, { chart }).keys()].filter((k) => k.includes('dashboard'))).to.deep.equal([]);
      const got = render({ 'dashboards.enabled': 'true' }, { chart });
      const cm = one(got, 'ConfigMap jobmetrics/jobmetrics-dashboard-zz-test');
      expect(cm['metadata']['labels']['grafana_dashboard']).to.equal('1');
      expect(cm['data']).to.deep.equal({ 'zz-test.json': dashboard });
      const all = [...ofKind(got, 'ConfigMap').values()].filter((o) => o.metadata?.name && String(o.metadata.name).startsWith('jobmetrics-dashboard-'));
      expect(all.map((o) => Object.keys((o as { data: object }).data)[0]).sort()).to.deep.equal(
        spawnSync('sh', ['-c', `cd '${join(chart, 'dashboards')}' && ls *.json`], { encoding: 'utf8' }).stdout.trim().split('\n').sort(),
      );
    } finally {
      rmSync(chart, { recursive: true, force: true });
    }
  });

  it('README.md lists every value of values.yaml in its table, and no other', () => {
    const readme = readFileSync(join(CHART_DIR, 'README.md'), 'utf8');
    const listed = new Set([...readme.matchAll(/^\| `([A-Za-z.]+)` \|/gm)].map((m) => m[1] ?? ''));
    const values = parse(readFileSync(join(CHART_DIR, 'values.yaml'), 'utf8')) as Record<string, unknown>;
    // A value is listed whole (webhook.resources) or by each of its leaves (image.tag).
    const unlisted = (v: unknown, path: string): string[] => {
      if (listed.has(path)) return [];
      if (typeof v === 'object' && v !== null && !Array.isArray(v)) return Object.entries(v).flatMap(([k, x]) => unlisted(x, path ? `${path}.${k}` : k));
      return [path];
    };
    const has = (path: string): boolean => {
      let v: unknown = values;
      for (const k of path.split('.')) {
        if (typeof v !== 'object' || v === null || !(k in v)) return false;
        v = (v as Record<string, unknown>)[k];
      }
      return true;
    };
    expect({ unlisted: unlisted(values, ''), unknown: [...listed].filter((p) => !has(p)) }).to.deep.equal({ unlisted: [], unknown: [] });
  });

  it('an unknown layout or TLS source, and store credentials or headers that cannot apply, are refused, naming the value', () => {
    const refusal = (values: Record<string, string>): string => {
      try {
        helmTemplate(values);
      } catch (err) {
        if (err instanceof HelmError) return err.stderr.trim().split('\n').find((l) => l.startsWith('Error:')) ?? err.stderr;
        throw err;
      }
      return 'rendered';
    };
    expect(refusal({ 'aggregator.layout': 'mesh' })).to.match(/aggregator\.layout must be single, sharded or ha \(got "mesh"\)$/);
    expect(refusal({ 'webhook.tls.source': 'vault' })).to.match(/webhook\.tls\.source must be bootstrap or cert-manager \(got "vault"\)$/);
    expect(refusal({ 'aggregator.remoteWriteAuth.secretName': 'mimir' })).to.match(/aggregator\.remoteWriteAuth\.secretName is for aggregator\.remoteWriteUrl, which is empty/);
    expect(refusal({ 'aggregator.remoteWriteHeaders.X-Scope-OrgID': 'a' })).to.match(/aggregator\.remoteWriteHeaders is for aggregator\.remoteWriteUrl, which is empty$/);
    expect(refusal({ 'aggregator.remoteWriteUrl': url, 'aggregator.remoteWriteAuth.secretName': 'mimir', 'aggregator.remoteWriteAuth.type': 'digest' })).to.match(/aggregator\.remoteWriteAuth\.type must be basic or bearer \(got "digest"\)$/);
    expect(refusal({ 'aggregator.remoteWriteUrl': url, 'aggregator.remoteWriteHeaders.X-Tenants': 'a^^b' })).to.match(/aggregator\.remoteWriteHeaders\.X-Tenants: no `,` or `\^\^` in a value/);
  });
});
