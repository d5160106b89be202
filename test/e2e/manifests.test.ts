/**
 * The shipped manifests against a real API server:
 * install.yaml is what the kustomization renders; the API server accepts every object of it
 * (server-side dry run) and of the overlays; the webhook's ServiceAccount can do exactly what the
 * webhook calls and nothing more, the recorder's only list and watch what it counts
 * (`kubectl auth can-i --as`, both ways); each NetworkPolicy selects the pods of one shipped part
 * and lets in exactly the ports and peers intended, in the base and in the overlays; vmagent's
 * guards admit everything a sidecar can deliver.
 */

import { expect } from 'chai';
import { readFile } from 'node:fs/promises';
import bcrypt from 'bcryptjs';
import { parse as parseYaml } from 'yaml';
import { ensureAggregatorCredentials } from '../../gateway/aggregator-credentials.ts';
import { join } from 'node:path';
import { createNamespace, kubectlOk } from '../../scripts/cluster/control-plane.ts';
import { readTopology } from '../../scripts/topology-spec.ts';
import { DEFAULT_PARSE_LIMITS } from '../../shared/exposition/types.ts';
import { DEFAULT_EXCLUDED_NAMESPACES } from '../../webhook/config.ts';
import { useControlPlane } from './control-plane-suite.ts';
import { MANIFESTS, WEBHOOK_NAMESPACE, WEBHOOK_SA_USER, kustomize, manifestsText, parseManifests, serviceAccountKubeconfig, type K8sObject } from './webhook-harness.ts';

const INSTALL = join(MANIFESTS, 'install.yaml');

/** `kind.group/name` as kubectl prints it, in install.yaml's order. */
const INSTALL_OBJECTS = [
  'namespace/jobmetrics',
  'serviceaccount/jobmetrics-gateway',
  'serviceaccount/jobmetrics-prometheus',
  'serviceaccount/jobmetrics-recorder',
  'serviceaccount/jobmetrics-webhook',
  'role.rbac.authorization.k8s.io/jobmetrics-gateway',
  'role.rbac.authorization.k8s.io/jobmetrics-prometheus',
  'role.rbac.authorization.k8s.io/jobmetrics-webhook',
  'role.rbac.authorization.k8s.io/jobmetrics-webhook-bootstrap',
  'clusterrole.rbac.authorization.k8s.io/jobmetrics-gateway',
  'clusterrole.rbac.authorization.k8s.io/jobmetrics-recorder',
  'clusterrole.rbac.authorization.k8s.io/jobmetrics-webhook',
  'clusterrole.rbac.authorization.k8s.io/jobmetrics-webhook-bootstrap',
  'rolebinding.rbac.authorization.k8s.io/jobmetrics-gateway',
  'rolebinding.rbac.authorization.k8s.io/jobmetrics-prometheus',
  'rolebinding.rbac.authorization.k8s.io/jobmetrics-webhook',
  'rolebinding.rbac.authorization.k8s.io/jobmetrics-webhook-bootstrap',
  'clusterrolebinding.rbac.authorization.k8s.io/jobmetrics-gateway',
  'clusterrolebinding.rbac.authorization.k8s.io/jobmetrics-recorder',
  'clusterrolebinding.rbac.authorization.k8s.io/jobmetrics-webhook',
  'clusterrolebinding.rbac.authorization.k8s.io/jobmetrics-webhook-bootstrap',
  'configmap/jobmetrics-aggregator-config',
  'configmap/jobmetrics-aggregator-remote-write',
  'configmap/jobmetrics-prometheus-config',
  'configmap/jobmetrics-webhook-settings',
  'service/jobmetrics-aggregator',
  'service/jobmetrics-gateway',
  'service/jobmetrics-prometheus',
  'service/jobmetrics-webhook',
  'deployment.apps/jobmetrics-aggregator',
  'deployment.apps/jobmetrics-gateway',
  'deployment.apps/jobmetrics-prometheus',
  'deployment.apps/jobmetrics-recorder',
  'deployment.apps/jobmetrics-webhook',
  'poddisruptionbudget.policy/jobmetrics-webhook',
  'networkpolicy.networking.k8s.io/jobmetrics-aggregator',
  'networkpolicy.networking.k8s.io/jobmetrics-gateway',
  'networkpolicy.networking.k8s.io/jobmetrics-prometheus',
  'networkpolicy.networking.k8s.io/jobmetrics-recorder',
  'networkpolicy.networking.k8s.io/jobmetrics-webhook',
  'mutatingwebhookconfiguration.admissionregistration.k8s.io/jobmetrics',
];

/** kubectl's "<kind>/<name> serverside-applied (server dry run)" lines, generated ConfigMap hashes removed. */
function dryRunApplied(stdout: string): string[] {
  return stdout
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => {
      const m = /^(\S+) serverside-applied \(server dry run\)$/.exec(l.trim());
      if (!m?.[1]) throw new Error(`unexpected kubectl output line: ${l}`);
      return m[1].replace(/^(configmap\/.+)-[a-z0-9]{10}$/, '$1');
    });
}

function stripHeader(text: string): string {
  return text.replace(/^(#.*\n)+/, '');
}

describe('e2e: manifests (install.yaml, overlays, RBAC) against the real API server', function () {
  this.timeout(120_000);
  const { plane, dir: suiteDir } = useControlPlane('manifests');

  describe('install.yaml', () => {
    it('is manifests/base rendered by kustomize, under its header (regenerate as the header says)', async () => {
      const installed = await readFile(INSTALL, 'utf8');
      const header = await readFile(join(MANIFESTS, 'install-header.txt'), 'utf8');
      expect(installed.startsWith(header), 'install.yaml starts with install-header.txt').to.equal(true);
      expect(installed.slice(header.length), 'install.yaml is out of date').to.equal(kustomize(join(MANIFESTS, 'base')));
    });

    it('`kubectl apply -k manifests/` renders the same objects as install.yaml', async () => {
      expect(kustomize(MANIFESTS)).to.equal(stripHeader(await readFile(INSTALL, 'utf8')));
    });

    it('puts every namespaced object into namespace jobmetrics, the Namespace first', async () => {
      const docs = parseManifests(await readFile(INSTALL, 'utf8'));
      expect(docs[0]?.kind).to.equal('Namespace');
      const clusterScoped = new Set(['Namespace', 'ClusterRole', 'ClusterRoleBinding', 'MutatingWebhookConfiguration']);
      for (const d of docs) {
        expect(d.metadata.namespace, `${d.kind}/${d.metadata.name}`).to.equal(clusterScoped.has(d.kind) ? undefined : WEBHOOK_NAMESPACE);
      }
    });

    it('server-side dry run in a fresh cluster: only the Namespace passes, since the namespace is not created by a dry run', async () => {
      // A dry run persists nothing, so the namespaced objects are checked against a namespace that
      // does not exist yet and fail with NotFound. That is the API server's rule, not a defect of
      // the file; a real `kubectl apply -f` creates the Namespace first (the next tests).
      const r = await plane().kubectl(['apply', '--server-side', '--dry-run=server', '-f', INSTALL]);
      expect(r.code, r.stderr).to.equal(1);
      const clusterScoped = INSTALL_OBJECTS.filter((o) => /^(namespace|clusterrole\.|clusterrolebinding\.|mutatingwebhookconfiguration\.)/.test(o));
      expect(clusterScoped).to.have.length(10);
      expect(dryRunApplied(r.stdout)).to.deep.equal(clusterScoped);
      const errors = r.stderr.split('\n').filter((l) => l.trim() !== '');
      expect(errors).to.deep.equal(Array(INSTALL_OBJECTS.length - clusterScoped.length).fill('Error from server (NotFound): namespaces "jobmetrics" not found'));
    });

    it('server-side dry run with the namespace present: the API server accepts all 40 objects', async () => {
      await kubectlOk(plane(), ['create', 'namespace', WEBHOOK_NAMESPACE]);
      const r = await plane().kubectl(['apply', '--server-side', '--dry-run=server', '-f', INSTALL]);
      expect(r.code, r.stderr).to.equal(0);
      expect(r.stderr).to.equal('');
      expect(dryRunApplied(r.stdout)).to.deep.equal(INSTALL_OBJECTS);
    });

    it('`kubectl apply --server-side -f install.yaml` creates all of it (and a second apply changes nothing)', async () => {
      await kubectlOk(plane(), ['delete', 'namespace', WEBHOOK_NAMESPACE, '--wait=true', '--timeout=60s']);
      const first = await kubectlOk(plane(), ['apply', '--server-side', '-f', INSTALL]);
      expect(first.split('\n').filter((l) => l !== '').map((l) => l.replace(/^(configmap\/.+)-[a-z0-9]{10} /, '$1 '))).to.deep.equal(
        INSTALL_OBJECTS.map((o) => `${o} serverside-applied`),
      );
      const second = await kubectlOk(plane(), ['apply', '--server-side', '-f', INSTALL]);
      expect(second).to.equal(first);
      const config = JSON.parse(await kubectlOk(plane(), ['get', 'mutatingwebhookconfiguration', 'jobmetrics', '-o', 'json'])) as {
        webhooks: Array<{ name: string }>;
      };
      expect(config.webhooks.map((w) => w.name)).to.deep.equal(['job-pods.jobmetrics.io', 'legacy-job-pods.jobmetrics.io', 'opted-in-pods.jobmetrics.io']);
    });
  });

  describe('the MutatingWebhookConfiguration as the API server stored it', () => {
    interface Stored {
      webhooks: Array<Record<string, unknown> & { name: string }>;
    }
    it('has, on every entry, failurePolicy Ignore, a 5 s timeout, sideEffects None, reinvocation IfNeeded, and only pod CREATE', async () => {
      const stored = JSON.parse(await kubectlOk(plane(), ['get', 'mutatingwebhookconfiguration', 'jobmetrics', '-o', 'json'])) as Stored;
      for (const w of stored.webhooks) {
        expect(w, w.name).to.deep.include({
          clientConfig: { service: { name: 'jobmetrics-webhook', namespace: 'jobmetrics', path: '/mutate', port: 443 } },
          rules: [{ operations: ['CREATE'], apiGroups: [''], apiVersions: ['v1'], resources: ['pods'], scope: 'Namespaced' }],
          failurePolicy: 'Ignore',
          matchPolicy: 'Equivalent',
          timeoutSeconds: 5,
          sideEffects: 'None',
          reinvocationPolicy: 'IfNeeded',
          admissionReviewVersions: ['v1'],
        });
      }
    });

    it('selects Job pods in labelled namespaces and opted-in pods anywhere but the excluded and opted-out namespaces, with mutually exclusive entries', async () => {
      const stored = JSON.parse(await kubectlOk(plane(), ['get', 'mutatingwebhookconfiguration', 'jobmetrics', '-o', 'json'])) as Stored;
      const selectors = stored.webhooks.map((w) => ({ name: w.name, namespaceSelector: w['namespaceSelector'], objectSelector: w['objectSelector'] }));
      // The control plane's namespaces and jobmetrics' own, never, whatever their labels; the
      // webhook's default excludedNamespaces is the same list (its own check, for an API server
      // configured otherwise).
      const notExcluded = { key: 'kubernetes.io/metadata.name', operator: 'NotIn', values: [...DEFAULT_EXCLUDED_NAMESPACES] };
      expect(notExcluded.values).to.deep.equal(['kube-system', 'kube-public', 'kube-node-lease', WEBHOOK_NAMESPACE]);
      expect(selectors).to.deep.equal([
        {
          name: 'job-pods.jobmetrics.io',
          namespaceSelector: { matchLabels: { 'jobmetrics.io/inject': 'enabled' }, matchExpressions: [notExcluded] },
          objectSelector: {
            matchExpressions: [
              { key: 'batch.kubernetes.io/job-name', operator: 'Exists' },
              { key: 'jobmetrics.io/inject', operator: 'NotIn', values: ['disabled', 'enabled'] },
            ],
          },
        },
        {
          name: 'legacy-job-pods.jobmetrics.io',
          namespaceSelector: { matchLabels: { 'jobmetrics.io/inject': 'enabled' }, matchExpressions: [notExcluded] },
          objectSelector: {
            matchExpressions: [
              { key: 'job-name', operator: 'Exists' },
              { key: 'batch.kubernetes.io/job-name', operator: 'DoesNotExist' },
              { key: 'jobmetrics.io/inject', operator: 'NotIn', values: ['disabled', 'enabled'] },
            ],
          },
        },
        {
          name: 'opted-in-pods.jobmetrics.io',
          namespaceSelector: { matchExpressions: [notExcluded, { key: 'jobmetrics.io/inject', operator: 'NotIn', values: ['disabled'] }] },
          objectSelector: { matchLabels: { 'jobmetrics.io/inject': 'enabled' } },
        },
      ]);
      // Which pods reach the webhook is proven in injection.test.ts, where the API server calls it.
    });
  });

  /** One test per line of the tables: `kubectl auth can-i <args> --as <user>` answers yes, or no. */
  const canITable = (user: string, allowed: readonly string[][], denied: readonly string[][]): void => {
    const canI = async (args: string[]): Promise<string> => {
      const r = await plane().kubectl(['auth', 'can-i', ...args], { as: user });
      // can-i exits 1 for "no"; anything else on stderr is a real failure.
      if (r.code !== 0 && r.stdout.trim() !== 'no') throw new Error(`kubectl auth can-i ${args.join(' ')}: ${r.stderr}`);
      return r.stdout.trim();
    };
    for (const args of allowed) {
      it(`yes: ${args.join(' ')}`, async () => {
        expect(await canI(args)).to.equal('yes');
      });
    }
    for (const args of denied) {
      it(`no: ${args.join(' ')}`, async () => {
        expect(await canI(args)).to.equal('no');
      });
    }
  };

  describe('RBAC: the webhook ServiceAccount can do what the webhook calls, and nothing more', () => {

    before(async () => {
      await createNamespace(plane(), 'tenant', { 'jobmetrics.io/inject': 'enabled' });
    });

    const allowed: string[][] = [
      // The CronJob owner lookup: a single Job by name, in any namespace.
      ['get', 'jobs.batch', '-n', 'tenant'],
      ['get', 'jobs.batch/nightly-28000000', '-n', 'tenant'],
      ['get', 'jobs.batch', '--all-namespaces'],
      // The TLS bootstrap's Secret, by name, in its own namespace; create of any name only there.
      ['get', 'secrets/jobmetrics-webhook-tls', '-n', 'jobmetrics'],
      ['update', 'secrets/jobmetrics-webhook-tls', '-n', 'jobmetrics'],
      ['create', 'secrets', '-n', 'jobmetrics'],
      // The caBundle of its own MutatingWebhookConfiguration.
      ['get', 'mutatingwebhookconfigurations.admissionregistration.k8s.io/jobmetrics'],
      ['patch', 'mutatingwebhookconfigurations.admissionregistration.k8s.io/jobmetrics'],
      // Server version (mode auto): the default system:public-info-viewer role.
      ['get', '/version'],
      // Its own Pod, whose image the sidecar image follows: pods in its own namespace only.
      ['get', 'pods/jobmetrics-webhook-abc', '-n', 'jobmetrics'],
    ];
    const denied: string[][] = [
      ['list', 'jobs.batch', '-n', 'tenant'],
      ['watch', 'jobs.batch', '-n', 'tenant'],
      ['create', 'jobs.batch', '-n', 'tenant'],
      ['update', 'jobs.batch', '-n', 'tenant'],
      ['patch', 'jobs.batch', '-n', 'tenant'],
      ['delete', 'jobs.batch', '-n', 'tenant'],
      ['get', 'cronjobs.batch', '-n', 'tenant'],
      ['get', 'pods', '-n', 'tenant'],
      ['create', 'pods', '-n', 'tenant'],
      ['list', 'pods', '-n', 'jobmetrics'],
      ['update', 'pods/jobmetrics-webhook-abc', '-n', 'jobmetrics'],
      ['get', 'namespaces/tenant'],
      // Secrets: no other name, no unnamed get (that is list-like), no list/watch/delete/patch.
      ['get', 'secrets', '-n', 'jobmetrics'],
      ['get', 'secrets/other', '-n', 'jobmetrics'],
      ['list', 'secrets', '-n', 'jobmetrics'],
      ['watch', 'secrets', '-n', 'jobmetrics'],
      ['delete', 'secrets/jobmetrics-webhook-tls', '-n', 'jobmetrics'],
      ['patch', 'secrets/jobmetrics-webhook-tls', '-n', 'jobmetrics'],
      ['get', 'secrets/jobmetrics-webhook-tls', '-n', 'tenant'],
      ['create', 'secrets', '-n', 'tenant'],
      ['create', 'secrets', '-n', 'default'],
      ['update', 'secrets/jobmetrics-webhook-tls', '-n', 'default'],
      // Webhook configurations: only its own, only get and patch.
      ['get', 'mutatingwebhookconfigurations.admissionregistration.k8s.io/other'],
      ['list', 'mutatingwebhookconfigurations.admissionregistration.k8s.io'],
      ['update', 'mutatingwebhookconfigurations.admissionregistration.k8s.io/jobmetrics'],
      ['delete', 'mutatingwebhookconfigurations.admissionregistration.k8s.io/jobmetrics'],
      ['create', 'mutatingwebhookconfigurations.admissionregistration.k8s.io'],
      ['patch', 'validatingwebhookconfigurations.admissionregistration.k8s.io/jobmetrics'],
      ['get', 'configmaps', '-n', 'jobmetrics'],
      ['*', '*'],
    ];

    canITable(WEBHOOK_SA_USER, allowed, denied);

    it('the rules granted are exactly those (nothing beyond the defaults every ServiceAccount gets)', async () => {
      type Rule = { verbs: string[]; apiGroups?: string[]; resources?: string[]; resourceNames?: string[] };
      // SelfSubjectRulesReview, asked as the account itself (what `kubectl auth can-i --list` shows).
      const rulesOf = async (user: string): Promise<Rule[]> => {
        const review = { apiVersion: 'authorization.k8s.io/v1', kind: 'SelfSubjectRulesReview', spec: { namespace: 'jobmetrics' } };
        const out = await kubectlOk(plane(), ['create', '--validate=false', '-o', 'json', '-f', '-'], { as: user, input: JSON.stringify(review) });
        return (JSON.parse(out) as { status: { resourceRules: Rule[] } }).status.resourceRules;
      };
      const key = (x: Rule): string => JSON.stringify([x.apiGroups ?? [], x.resources ?? [], x.resourceNames ?? [], [...x.verbs].sort()]);
      const baseline = new Set((await rulesOf('system:serviceaccount:jobmetrics:default')).map(key));
      const extra = (await rulesOf(WEBHOOK_SA_USER)).filter((x) => !baseline.has(key(x))).map(key).sort();
      expect(extra).to.deep.equal(
        [
          [['admissionregistration.k8s.io'], ['mutatingwebhookconfigurations'], ['jobmetrics'], ['get', 'patch']],
          [['batch'], ['jobs'], [], ['get']],
          [[''], ['pods'], [], ['get']],
          [[''], ['secrets'], ['jobmetrics-webhook-tls'], ['get', 'update']],
          [[''], ['secrets'], [], ['create']],
        ]
          .map((x) => JSON.stringify(x))
          .sort(),
      );
    });
  });

  describe('RBAC: the recorder ServiceAccount lists and watches what it counts, and nothing more', () => {
    const RECORDER = 'system:serviceaccount:jobmetrics:jobmetrics-recorder';
    const allowed: string[][] = [
      ['list', 'namespaces'],
      ['watch', 'namespaces'],
      ['list', 'jobs.batch', '-n', 'tenant'],
      ['watch', 'jobs.batch', '-n', 'tenant'],
      ['list', 'cronjobs.batch', '-n', 'tenant'],
      ['watch', 'cronjobs.batch', '-n', 'tenant'],
      ['list', 'pods', '-n', 'tenant'],
      ['watch', 'pods', '-n', 'tenant'],
    ];
    const denied: string[][] = [
      ['create', 'jobs.batch', '-n', 'tenant'],
      ['patch', 'jobs.batch', '-n', 'tenant'],
      ['delete', 'pods', '-n', 'tenant'],
      ['update', 'pods/status', '-n', 'tenant'],
      ['get', 'pods/log', '-n', 'tenant'],
      ['create', 'pods/exec', '-n', 'tenant'],
      ['patch', 'namespaces/tenant'],
      ['list', 'secrets', '-n', 'tenant'],
      ['list', 'configmaps', '-n', 'jobmetrics'],
      ['create', 'leases.coordination.k8s.io', '-n', 'jobmetrics'],
      ['*', '*'],
    ];
    canITable(RECORDER, allowed, denied);
  });

  describe('RBAC: the gateway ServiceAccount may ask whose a token is, and nothing more', () => {
    const GATEWAY = 'system:serviceaccount:jobmetrics:jobmetrics-gateway';
    canITable(
      GATEWAY,
      [
        ['create', 'tokenreviews.authentication.k8s.io'],
        // The aggregator's credentials: created when missing, read; no other Secret read.
        ['create', 'secrets', '-n', 'jobmetrics'],
        ['get', 'secrets/jobmetrics-aggregator-credentials', '-n', 'jobmetrics'],
      ],
      [
        ['create', 'subjectaccessreviews.authorization.k8s.io'],
        ['create', 'serviceaccounts/token', '-n', 'tenant'],
        ['get', 'secrets/jobmetrics-webhook-tls', '-n', 'jobmetrics'],
        ['list', 'secrets', '-n', 'jobmetrics'],
        ['update', 'secrets/jobmetrics-aggregator-credentials', '-n', 'jobmetrics'],
        ['create', 'secrets', '-n', 'tenant'],
        ['list', 'pods', '-n', 'tenant'],
        ['get', 'namespaces'],
        ['*', '*'],
      ],
    );
  });

  describe('RBAC: the default store may list the pods of jobmetrics (to scrape its parts), and nothing more', () => {
    canITable(
      'system:serviceaccount:jobmetrics:jobmetrics-prometheus',
      [
        ['list', 'pods', '-n', 'jobmetrics'],
        ['watch', 'pods', '-n', 'jobmetrics'],
      ],
      [
        ['list', 'pods', '-n', 'tenant'],
        ['get', 'secrets', '-n', 'jobmetrics'],
        ['list', 'services', '-n', 'jobmetrics'],
        ['create', 'pods', '-n', 'jobmetrics'],
        ['*', '*'],
      ],
    );
  });

  describe("the aggregator's credentials, as the gateway's ServiceAccount gets them from the real API server", () => {
    it('two gateways starting at once: one creates the Secret, the other reads it; a restart reads the same; Prometheus\' web config holds its hash', async function () {
      this.timeout(60_000);
      // A kubeconfig with a token of the gateway's ServiceAccount (install.yaml is applied above).
      const kubeconfig = await serviceAccountKubeconfig(plane(), join(suiteDir(), 'gateway.kubeconfig'), 'jobmetrics', 'jobmetrics-gateway');
      const where = { kubeconfig, namespace: 'jobmetrics', name: 'jobmetrics-aggregator-credentials' };
      const [a, b] = await Promise.all([ensureAggregatorCredentials(where), ensureAggregatorCredentials(where)]);
      expect([a.created, b.created].sort()).to.deep.equal([false, true]);
      expect(b.password).to.equal(a.password);
      const again = await ensureAggregatorCredentials(where);
      expect({ created: again.created, same: again.password === a.password }).to.deep.equal({ created: false, same: true });
      const secret = JSON.parse(await kubectlOk(plane(), ['-n', 'jobmetrics', 'get', 'secret', 'jobmetrics-aggregator-credentials', '-o', 'json'])) as { data: Record<string, string> };
      const web = parseYaml(Buffer.from(secret.data['web-config.yml'] ?? '', 'base64').toString('utf8')) as { basic_auth_users: Record<string, string> };
      expect(await bcrypt.compare(a.password, web.basic_auth_users['jobmetrics'] ?? '')).to.equal(true);
    });
  });

  describe('overlays', () => {
    const build = (name: string): K8sObject[] => parseManifests(kustomize(join(MANIFESTS, 'overlays', name)));
    const find = (docs: K8sObject[], kind: string, name: string): K8sObject => {
      const d = docs.find((x) => x.kind === kind && x.metadata.name === name);
      if (!d) throw new Error(`${kind}/${name} not in the overlay`);
      return d;
    };

    // Every vmagent takes writes only with the credentials and sends them on; the store checks
    // them; each mounts the key it needs from the Secret the gateway creates.
    for (const overlay of ['../base', 'sharded-aggregator', 'ha-aggregator']) {
      it(`${overlay === '../base' ? 'base' : overlay}: every vmagent checks the credentials and sends them on; Prometheus checks them`, () => {
        const docs = build(overlay);
        const pods = docs.filter((d) => d.kind === 'Deployment' || d.kind === 'StatefulSet');
        const checked: string[] = [];
        for (const d of pods) {
          const spec = (d['spec'] as { template: { spec: { containers: Array<{ args?: string[]; volumeMounts?: Array<{ name: string; mountPath: string }> }>; volumes?: Array<{ name: string; secret?: { secretName: string; items: Array<{ key: string }> } }> } } }).template.spec;
          const c = spec.containers[0]!;
          const args = c.args ?? [];
          const creds = spec.volumes?.find((v) => v.name === 'credentials');
          const mounted = c.volumeMounts?.find((m) => m.name === 'credentials')?.mountPath;
          if (args.some((a) => a.startsWith('-remoteWrite.url'))) {
            expect(args.filter((a) => /^-(httpAuth|remoteWrite\.basicAuth)\./.test(a)), d.metadata.name).to.deep.equal([
              '-httpAuth.username=jobmetrics',
              '-httpAuth.password=file:///etc/jobmetrics/credentials/password',
              '-remoteWrite.basicAuth.username=jobmetrics',
              '-remoteWrite.basicAuth.passwordFile=/etc/jobmetrics/credentials/password',
            ]);
            expect([creds?.secret?.secretName, creds?.secret?.items.map((i) => i.key), mounted], d.metadata.name).to.deep.equal(['jobmetrics-aggregator-credentials', ['password'], '/etc/jobmetrics/credentials']);
            checked.push(`vmagent ${d.metadata.name}`);
          } else if (args.includes('--web.enable-remote-write-receiver')) {
            expect(args, d.metadata.name).to.include('--web.config.file=/etc/jobmetrics/credentials/web-config.yml');
            expect([creds?.secret?.secretName, creds?.secret?.items.map((i) => i.key), mounted], d.metadata.name).to.deep.equal(['jobmetrics-aggregator-credentials', ['web-config.yml', 'password'], '/etc/jobmetrics/credentials']);
            checked.push(`prometheus ${d.metadata.name}`);
          }
        }
        const want =
          overlay === '../base'
            ? ['vmagent jobmetrics-aggregator', 'prometheus jobmetrics-prometheus']
            : ['vmagent jobmetrics-aggregator', 'vmagent jobmetrics-aggregator-shard', 'prometheus jobmetrics-prometheus'];
        expect(checked.sort()).to.deep.equal(want.sort());
      });
    }

    // manifests/monitoring (for prometheus-operator): each PodMonitor selects the pods of one part
    // (two in the sharded overlays: the aggregator and its shards) by a port those pods name, and
    // together they cover the parts the bundled Prometheus scrapes.
    for (const overlay of ['../base', 'sharded-aggregator']) {
      it(`${overlay === '../base' ? 'base' : overlay}: the PodMonitors of manifests/monitoring select every part by a port it names`, () => {
        type Sel = { matchLabels?: Record<string, string>; matchExpressions?: Array<{ key: string; operator: string; values: string[] }> };
        const monitors = parseManifests(kustomize(join(MANIFESTS, 'monitoring'))).filter((d) => d.kind === 'PodMonitor') as Array<K8sObject & { spec: { selector: Sel; podMetricsEndpoints: Array<{ port: string }> } }>;
        const workloads = build(overlay).filter((d) => d.kind === 'Deployment' || d.kind === 'StatefulSet') as Array<K8sObject & { spec: { template: { metadata: { labels: Record<string, string> }; spec: { containers: Array<{ ports?: Array<{ name?: string }> }> } } } }>;
        const selects = (sel: Sel, labels: Record<string, string>): boolean =>
          Object.entries(sel.matchLabels ?? {}).every(([k, v]) => labels[k] === v) && (sel.matchExpressions ?? []).every((e) => e.operator === 'In' && e.values.includes(labels[e.key] ?? ''));
        const covered: string[] = [];
        for (const m of monitors) {
          const mine = workloads.filter((w) => selects(m.spec.selector, w.spec.template.metadata.labels));
          expect(mine.length, `PodMonitor ${m.metadata.name} selects`).to.be.at.least(1);
          for (const w of mine) {
            const ports = w.spec.template.spec.containers.flatMap((c) => (c.ports ?? []).map((p) => p.name));
            for (const e of m.spec.podMetricsEndpoints) expect(ports, `${m.metadata.name} → ${w.metadata.name} port ${e.port}`).to.include(e.port);
            covered.push(w.metadata.name);
          }
        }
        expect(covered.sort()).to.deep.equal(workloads.map((w) => w.metadata.name).filter((n) => n !== 'jobmetrics-prometheus').sort());
      });
    }

    it('sharded-aggregator: the API server accepts all of it', async () => {
      const r = await plane().kubectl(['apply', '--server-side', '--dry-run=server', '-k', join(MANIFESTS, 'overlays', 'sharded-aggregator')]);
      expect(r.code, r.stderr).to.equal(0);
      expect(dryRunApplied(r.stdout)).to.include.members(['statefulset.apps/jobmetrics-aggregator-shard', 'service/jobmetrics-aggregator-shard', 'deployment.apps/jobmetrics-aggregator']);
    });

    it('sharded-aggregator: the routers shard by every label but pod (and jobmetrics_kind) over one URL per shard', () => {
      const docs = build('sharded-aggregator');
      type Workload = { spec: { replicas: number; template: { spec: { containers: Array<{ args: string[]; env?: unknown }> } } } };
      const router = find(docs, 'Deployment', 'jobmetrics-aggregator') as unknown as Workload;
      const shards = find(docs, 'StatefulSet', 'jobmetrics-aggregator-shard') as unknown as Workload;
      const args = router.spec.template.spec.containers[0]?.args ?? [];
      const urls = args.filter((a) => a.startsWith('-remoteWrite.url='));
      expect(urls).to.deep.equal(
        Array.from({ length: shards.spec.replicas }, (_, i) => `-remoteWrite.url=http://jobmetrics-aggregator-shard-${i}.jobmetrics-aggregator-shard.jobmetrics.svc:8429/api/v1/write`),
      );
      expect(args).to.include.members(['-remoteWrite.shardByURL', '-remoteWrite.shardByURL.ignoreLabels=pod,jobmetrics_kind', '-sortLabels']);
      expect(args.some((a) => a.startsWith('-streamAggr.')), 'routers do not aggregate').to.equal(false);
      const shardArgs = shards.spec.template.spec.containers[0]?.args ?? [];
      const baseArgs = ((find(build('e2e-local'), 'Deployment', 'jobmetrics-aggregator') as unknown as Workload).spec.template.spec.containers[0]?.args) ?? [];
      expect(shardArgs, 'each shard aggregates exactly as the single aggregator').to.deep.equal(baseArgs);
    });

    it('ha-aggregator: the API server accepts all of it', async () => {
      const r = await plane().kubectl(['apply', '--server-side', '--dry-run=server', '-k', join(MANIFESTS, 'overlays', 'ha-aggregator')]);
      expect(r.code, r.stderr).to.equal(0);
      expect(dryRunApplied(r.stdout)).to.include.members([
        'statefulset.apps/jobmetrics-aggregator-shard',
        'service/jobmetrics-aggregator-shard',
        'deployment.apps/jobmetrics-aggregator',
        'poddisruptionbudget.policy/jobmetrics-aggregator-shard',
      ]);
    });

    it('ha-aggregator: one URL per aggregator, two copies of each series, each aggregator labels its outputs with its pod name', () => {
      const docs = build('ha-aggregator');
      type Container = { args: string[]; env?: Array<{ name: string; valueFrom?: { fieldRef?: { fieldPath: string } } }> };
      type Workload = { spec: { replicas: number; template: { spec: { containers: Container[] } } } };
      const router = find(docs, 'Deployment', 'jobmetrics-aggregator') as unknown as Workload;
      const shards = find(docs, 'StatefulSet', 'jobmetrics-aggregator-shard') as unknown as Workload;
      expect(shards.spec.replicas).to.equal(6);
      const args = router.spec.template.spec.containers[0]?.args ?? [];
      expect(args.filter((a) => a.startsWith('-remoteWrite.url='))).to.deep.equal(
        Array.from({ length: 6 }, (_, i) => `-remoteWrite.url=http://jobmetrics-aggregator-shard-${i}.jobmetrics-aggregator-shard.jobmetrics.svc:8429/api/v1/write`),
      );
      expect(args).to.include.members(['-remoteWrite.shardByURL', '-remoteWrite.shardByURLReplicas=2', '-remoteWrite.shardByURL.ignoreLabels=pod,jobmetrics_kind', '-sortLabels']);
      const shard = shards.spec.template.spec.containers[0];
      expect(shard?.args).to.include('-remoteWrite.label=jobmetrics_replica=$(POD_NAME)');
      expect(shard?.env?.find((e) => e.name === 'POD_NAME')?.valueFrom?.fieldRef?.fieldPath).to.equal('metadata.name');
      const baseArgs = ((find(build('e2e-local'), 'Deployment', 'jobmetrics-aggregator') as unknown as Workload).spec.template.spec.containers[0]?.args) ?? [];
      expect(shard?.args.filter((a) => !a.startsWith('-remoteWrite.label=')), 'otherwise each aggregates exactly as the single aggregator').to.deep.equal(baseArgs);
    });

    for (const overlay of ['sharded-aggregator', 'ha-aggregator']) {
      it(`${overlay}: the local tier of the integration tests and benchmarks (scripts/topology-spec.ts) reads what kustomize renders`, () => {
        const docs = build(overlay);
        type Container = { args: string[]; env?: Array<{ name: string }> };
        type Workload = { spec: { replicas: number; template: { spec: { containers: Container[] } } } };
        const router = find(docs, 'Deployment', 'jobmetrics-aggregator') as unknown as Workload;
        const shards = find(docs, 'StatefulSet', 'jobmetrics-aggregator-shard') as unknown as Workload;
        const spec = readTopology(overlay);
        expect(spec.routerArgs).to.deep.equal(router.spec.template.spec.containers[0]?.args);
        expect(spec.routers).to.equal(router.spec.replicas);
        expect(spec.shardArgs).to.deep.equal(shards.spec.template.spec.containers[0]?.args);
        expect(spec.shards).to.equal(shards.spec.replicas);
        expect([...spec.shardEnv.keys()]).to.deep.equal((shards.spec.template.spec.containers[0]?.env ?? []).map((e) => e.name));
      });
    }

    it('cert-manager: everything but the cert-manager objects is accepted; those need cert-manager\'s CRDs, not installed here', async () => {
      const docs = build('cert-manager');
      const certManager = docs.filter((d) => d.apiVersion.startsWith('cert-manager.io/'));
      expect(certManager.map((d) => `${d.kind}/${d.metadata.name}`).sort()).to.deep.equal([
        'Certificate/jobmetrics-webhook',
        'Certificate/jobmetrics-webhook-ca',
        'Issuer/jobmetrics-ca',
        'Issuer/jobmetrics-selfsigned',
      ]);
      const rest = docs.filter((d) => !d.apiVersion.startsWith('cert-manager.io/'));
      const r = await plane().kubectl(['apply', '--server-side', '--dry-run=server', '-f', '-'], { input: manifestsText(rest) });
      expect(r.code, r.stderr).to.equal(0);
      expect(dryRunApplied(r.stdout)).to.have.length(rest.length);
    });

    it('cert-manager: the webhook serves the Certificate\'s Secret, the CA injector fills the caBundle, no bootstrap RBAC remains', () => {
      const docs = build('cert-manager');
      const mwc = find(docs, 'MutatingWebhookConfiguration', 'jobmetrics');
      expect(mwc.metadata.annotations?.['cert-manager.io/inject-ca-from']).to.equal('jobmetrics/jobmetrics-webhook');
      const cert = find(docs, 'Certificate', 'jobmetrics-webhook') as unknown as { spec: { secretName: string; dnsNames: string[]; issuerRef: { name: string } } };
      expect(cert.spec.dnsNames).to.deep.equal(['jobmetrics-webhook.jobmetrics.svc', 'jobmetrics-webhook.jobmetrics.svc.cluster.local']);
      type Spec = { containers: Array<{ env: Array<{ name: string; value?: string }>; volumeMounts: Array<{ name: string; mountPath: string }> }>; volumes: Array<{ name: string; secret?: { secretName: string } }> };
      const pod = (find(docs, 'Deployment', 'jobmetrics-webhook') as unknown as { spec: { template: { spec: Spec } } }).spec.template.spec;
      const env = pod.containers[0]?.env ?? [];
      expect(env.find((e) => e.name === 'JOBMETRICS_TLS_DIR')?.value).to.equal('/etc/jobmetrics-tls');
      expect(pod.containers[0]?.volumeMounts.find((m) => m.name === 'tls')?.mountPath).to.equal('/etc/jobmetrics-tls');
      expect(pod.volumes.find((v) => v.name === 'tls')?.secret?.secretName).to.equal(cert.spec.secretName);
      expect(docs.filter((d) => d.metadata.name === 'jobmetrics-webhook-bootstrap')).to.deep.equal([]);
    });
  });

  describe('NetworkPolicies: each selects one shipped part and lets in exactly what it must', () => {
    type Selector = { matchLabels?: Record<string, string>; matchExpressions?: unknown[] };
    type Peer = { podSelector?: Selector; namespaceSelector?: Selector; ipBlock?: unknown };
    type Rule = { from?: Peer[]; ports?: Array<{ protocol?: string; port?: number | string; endPort?: number }> };
    type Policy = K8sObject & { spec: { podSelector: Selector; policyTypes?: string[]; ingress?: Rule[]; egress?: unknown } };
    type Workload = K8sObject & {
      spec: { template: { metadata: { labels: Record<string, string> }; spec: { containers: Array<{ ports?: Array<{ name?: string; containerPort: number }> }> } } };
    };
    type Service = K8sObject & { spec: { selector: Record<string, string>; ports: Array<{ targetPort: number | string }> } };

    const render = (what: string): K8sObject[] => parseManifests(what === 'base' ? kustomize(join(MANIFESTS, 'base')) : kustomize(join(MANIFESTS, 'overlays', what)));
    const matches = (sel: Selector, labels: Record<string, string>): boolean => {
      expect(sel.matchExpressions, 'only matchLabels is used').to.equal(undefined);
      return Object.entries(sel.matchLabels ?? {}).every(([k, v]) => labels[k] === v);
    };
    const workloadsOf = (docs: K8sObject[]): Workload[] => docs.filter((d): d is Workload => d.kind === 'Deployment' || d.kind === 'StatefulSet');
    /** The one workload whose pods a selector picks, as `Kind/name`; a selector that picks none or several fails. */
    const selected = (docs: K8sObject[], sel: Selector): string => {
      const hits = workloadsOf(docs).filter((w) => matches(sel, w.spec.template.metadata.labels));
      expect(hits.map((w) => w.metadata.name), `exactly one workload for ${JSON.stringify(sel)}`).to.have.length(1);
      return `${hits[0]!.kind}/${hits[0]!.metadata.name}`;
    };
    /** A peer in words: a workload of this namespace, namespaces or pods by label, any namespace. */
    const peer = (docs: K8sObject[], p: Peer): string => {
      expect(p.ipBlock, 'no ipBlock: addresses differ per cluster').to.equal(undefined);
      const labels = (sel: Selector): string =>
        Object.entries(sel.matchLabels ?? {})
          .map(([k, v]) => `${k}=${v}`)
          .join(',');
      if (p.namespaceSelector !== undefined) {
        expect(p.podSelector, 'no namespace-and-pod peers').to.equal(undefined);
        return labels(p.namespaceSelector) === '' ? 'pods of every namespace' : `pods of namespaces labelled ${labels(p.namespaceSelector)}`;
      }
      const pods = p.podSelector ?? {};
      const hits = workloadsOf(docs).filter((w) => matches(pods, w.spec.template.metadata.labels));
      return hits.length > 0 ? hits.map((w) => `${w.kind}/${w.metadata.name}`).join(' ') : `pods of jobmetrics labelled ${labels(pods)}`;
    };
    /** Each policy: which workload it isolates, and its ingress rules as `TCP <port> from <peers>`. */
    const summary = (docs: K8sObject[]): Record<string, { selects: string; ingress: string[] }> => {
      const out: Record<string, { selects: string; ingress: string[] }> = {};
      for (const np of docs.filter((d): d is Policy => d.kind === 'NetworkPolicy')) {
        expect(np.metadata.namespace, np.metadata.name).to.equal(WEBHOOK_NAMESPACE);
        // Ingress only: egress (DNS, the API server, your store) stays open.
        expect(np.spec.policyTypes, np.metadata.name).to.deep.equal(['Ingress']);
        expect(np.spec.egress, np.metadata.name).to.equal(undefined);
        const ingress = (np.spec.ingress ?? []).flatMap((r) =>
          (r.ports ?? []).map((port) => {
            expect(port.endPort, 'single ports').to.equal(undefined);
            const from = r.from === undefined ? 'any source' : r.from.map((p) => peer(docs, p)).join(' + ');
            return `${port.protocol ?? 'TCP'} ${port.port} from ${from}`;
          }),
        );
        out[np.metadata.name] = { selects: selected(docs, np.spec.podSelector), ingress };
      }
      return out;
    };

    const BASE = {
      'jobmetrics-aggregator': { selects: 'Deployment/jobmetrics-aggregator', ingress: ['TCP 8429 from Deployment/jobmetrics-gateway + Deployment/jobmetrics-prometheus'] },
      'jobmetrics-gateway': { selects: 'Deployment/jobmetrics-gateway', ingress: ['TCP 8480 from pods of every namespace'] },
      'jobmetrics-prometheus': {
        selects: 'Deployment/jobmetrics-prometheus',
        ingress: [
          'TCP 9090 from Deployment/jobmetrics-aggregator',
          'TCP 9090 from pods of namespaces labelled jobmetrics.io/prometheus-reader=true + pods of jobmetrics labelled jobmetrics.io/prometheus-reader=true',
        ],
      },
      'jobmetrics-recorder': { selects: 'Deployment/jobmetrics-recorder', ingress: ['TCP 8481 from any source'] },
      'jobmetrics-webhook': { selects: 'Deployment/jobmetrics-webhook', ingress: ['TCP 8443 from any source'] },
    };
    const SHARDED = {
      ...BASE,
      // The routers (the Deployment jobmetrics-aggregator) keep the base's policy: only the gateway.
      'jobmetrics-aggregator-shard': { selects: 'StatefulSet/jobmetrics-aggregator-shard', ingress: ['TCP 8429 from Deployment/jobmetrics-aggregator + Deployment/jobmetrics-prometheus'] },
      'jobmetrics-prometheus': { ...BASE['jobmetrics-prometheus'], ingress: ['TCP 9090 from StatefulSet/jobmetrics-aggregator-shard', BASE['jobmetrics-prometheus'].ingress[1]!] },
    };
    const EXPECTED: Record<string, Record<string, { selects: string; ingress: string[] }>> = {
      base: BASE,
      'sharded-aggregator': SHARDED,
      'ha-aggregator': SHARDED,
      'cert-manager': BASE,
      'e2e-local': BASE,
    };

    for (const [what, expected] of Object.entries(EXPECTED)) {
      it(`${what}: each policy's podSelector matches one workload's pod template, and it allows exactly the intended ports and peers`, () => {
        expect(summary(render(what))).to.deep.equal(expected);
      });

      it(`${what}: every workload is isolated by one policy, which allows the port its Service targets and only ports its pods listen on`, () => {
        const docs = render(what);
        const policies = docs.filter((d): d is Policy => d.kind === 'NetworkPolicy');
        for (const w of workloadsOf(docs)) {
          const labels = w.spec.template.metadata.labels;
          const mine = policies.filter((np) => matches(np.spec.podSelector, labels));
          expect(mine.map((np) => np.metadata.name), `${w.kind}/${w.metadata.name}`).to.have.length(1);
          const allowed = (mine[0]!.spec.ingress ?? []).flatMap((r) => (r.ports ?? []).map((p) => p.port));
          const listening = w.spec.template.spec.containers.flatMap((c) => c.ports ?? []);
          expect(allowed.filter((p) => !listening.some((l) => l.containerPort === p)), `${w.metadata.name}: allowed ports nobody listens on`).to.deep.equal([]);
          for (const svc of docs.filter((d): d is Service => d.kind === 'Service' && matches({ matchLabels: (d as Service).spec.selector }, labels))) {
            for (const sp of svc.spec.ports) {
              const target = typeof sp.targetPort === 'number' ? sp.targetPort : listening.find((l) => l.name === sp.targetPort)?.containerPort;
              expect(allowed, `Service ${svc.metadata.name} → ${w.metadata.name}:${sp.targetPort}`).to.include(target);
            }
          }
        }
      });
    }

    it('the API server stores them as written (ha-aggregator, the one with every policy: server-side dry run)', async () => {
      const policies = render('ha-aggregator').filter((d) => d.kind === 'NetworkPolicy');
      await plane().kubectl(['create', 'namespace', WEBHOOK_NAMESPACE]);
      const r = await plane().kubectl(['apply', '--server-side', '--dry-run=server', '-f', '-'], { input: manifestsText(policies) });
      expect(r.code, r.stderr).to.equal(0);
      expect(dryRunApplied(r.stdout)).to.deep.equal(policies.map((d) => `networkpolicy.networking.k8s.io/${d.metadata.name}`));
    });
  });

  describe("vmagent's guards", () => {
    type Workload = K8sObject & { spec: { template: { spec: { containers: Array<{ args: string[] }> } } } };
    const argsOf = (docs: K8sObject[], kind: string, name: string): string[] => {
      const w = docs.find((d) => d.kind === kind && d.metadata.name === name) as Workload | undefined;
      if (!w) throw new Error(`${kind}/${name} not rendered`);
      return w.spec.template.spec.containers[0]?.args ?? [];
    };
    const flag = (args: string[], name: string): string | undefined => args.find((a) => a.startsWith(`${name}=`))?.slice(name.length + 1);
    const base = (): string[] => argsOf(parseManifests(kustomize(join(MANIFESTS, 'base'))), 'Deployment', 'jobmetrics-aggregator');

    it('admit everything a sidecar can deliver: its parser\'s label limits, plus the labels it adds and __name__, in UTF-8 bytes', () => {
      const args = base();
      // __name__, namespace, job, pod, jobmetrics_kind on top of the scraped labels.
      expect(flag(args, '-maxLabelsPerTimeseries')).to.equal(String(DEFAULT_PARSE_LIMITS.maxLabelsPerSample + 5));
      expect(flag(args, '-maxLabelNameLen')).to.equal(String(DEFAULT_PARSE_LIMITS.maxLabelNameLength));
      // The parser counts UTF-16 units; vmagent counts bytes, at most 3 a unit in UTF-8.
      expect(flag(args, '-maxLabelValueLen')).to.equal(String(3 * DEFAULT_PARSE_LIMITS.maxLabelValueLength));
      expect(flag(args, '-remoteWrite.maxHourlySeries')).to.equal('900000');
      expect(flag(args, '-remoteWrite.maxDailySeries'), 'no daily limit').to.equal(undefined);
    });

    for (const overlay of ['sharded-aggregator', 'ha-aggregator']) {
      it(`${overlay}: the routers carry the label guards but no series limit (they hold no series)`, () => {
        const args = argsOf(parseManifests(kustomize(join(MANIFESTS, 'overlays', overlay))), 'Deployment', 'jobmetrics-aggregator');
        for (const f of ['-maxLabelsPerTimeseries', '-maxLabelNameLen', '-maxLabelValueLen']) expect(flag(args, f), f).to.equal(flag(base(), f));
        expect(args.filter((a) => /^-remoteWrite\.max(Hourly|Daily)Series=/.test(a))).to.deep.equal([]);
      });
    }
  });
});
