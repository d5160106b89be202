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
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse } from 'yaml';
import { CHART_DIR, helmBinary, HelmError, helmTemplate, pinnedHelmVersion } from '../../scripts/helm.ts';
import { objectsByKey, renderDifferences, type KubeObject } from '../../scripts/object-diff.ts';
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

  it('an unknown layout or TLS source is refused, naming the value', () => {
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
  });
});
