/** The pure pieces mutate builds on: annotation parsing, the workload rule, the mode choice. */
import { expect } from 'chai';
import { parseTargetAnnotations } from '../../../shared/annotations.ts';
import { defaultSettings } from '../../../webhook/config.ts';
import { chooseMode, parseServerVersion } from '../../../webhook/mode.ts';
import { flushBudgetMs, mutate, type MutateContext } from '../../../webhook/mutate.ts';
import type { RawContainerPort, RawPod } from '../../../webhook/pod.ts';
import { cronJobFromJobName, jobOf, workloadName } from '../../../webhook/workload.ts';
import { loadPod } from './golden.ts';

const NOW = Date.UTC(2026, 0, 15);

describe('shared/annotations parseTargetAnnotations', () => {
  const table: { in: Record<string, string>; ok?: object; error?: RegExp }[] = [
    { in: {}, ok: { path: '/metrics', scheme: 'http' } },
    { in: { 'jobmetrics.io/port': '8080' }, ok: { port: { kind: 'number', port: 8080, from: 'jobmetrics.io/port' } } },
    { in: { 'prometheus.io/port': ' 9102 ' }, ok: { port: { kind: 'number', port: 9102, from: 'prometheus.io/port' } } },
    { in: { 'jobmetrics.io/port': '8080', 'prometheus.io/port': 'not valid at all' }, ok: { port: { kind: 'number', port: 8080, from: 'jobmetrics.io/port' } } },
    { in: { 'jobmetrics.io/port': 'http-metrics' }, ok: { port: { kind: 'name', name: 'http-metrics', from: 'jobmetrics.io/port' } } },
    { in: { 'jobmetrics.io/port': '0' }, error: /jobmetrics\.io\/port="0": must be a port number/ },
    { in: { 'jobmetrics.io/port': '65536' }, error: /jobmetrics\.io\/port="65536": must be a port number 1…65535/ },
    { in: { 'jobmetrics.io/port': '-5' }, error: /jobmetrics\.io\/port="-5": must be an integer port number 1…65535/ },
    { in: { 'prometheus.io/port': '80.5' }, error: /prometheus\.io\/port="80\.5": must be an integer port number 1…65535/ },
    { in: { 'jobmetrics.io/port': '1e20' }, error: /jobmetrics\.io\/port="1e20": must be an integer port number 1…65535/ },
    { in: { 'jobmetrics.io/port': '1E3' }, error: /jobmetrics\.io\/port="1E3": must be an integer port number/ },
    { in: { 'jobmetrics.io/port': '+8080' }, error: /jobmetrics\.io\/port="\+8080": must be an integer port number/ },
    { in: { 'jobmetrics.io/port': '99999999999999999999' }, error: /must be a port number 1…65535/ },
    { in: { 'jobmetrics.io/port': 'a-very-long-port-name' }, error: /IANA_SVC_NAME/ },
    { in: { 'jobmetrics.io/port': 'Metrics' }, error: /jobmetrics\.io\/port/ },
    { in: { 'jobmetrics.io/path': 'metrics' }, error: /must be a URL path starting with "\/"/ },
    { in: { 'jobmetrics.io/path': '/a b' }, error: /jobmetrics\.io\/path/ },
    { in: { 'jobmetrics.io/path': '/m#frag' }, error: /fragment/ },
    { in: { 'prometheus.io/path': '/stats?x=1' }, ok: { path: '/stats?x=1' } },
    { in: { 'jobmetrics.io/scheme': 'HTTPS' }, ok: { scheme: 'https' } },
    { in: { 'jobmetrics.io/scheme': 'grpc' }, error: /must be http or https/ },
    { in: { 'jobmetrics.io/interval': '500ms' }, ok: { interval: '500ms' } },
    { in: { 'jobmetrics.io/interval': '1m' }, ok: { interval: '1m' } },
    { in: { 'jobmetrics.io/interval': '61s' }, error: /outside 100ms…1m/ },
    { in: { 'jobmetrics.io/interval': '2' }, error: /not a duration/ },
    { in: { 'jobmetrics.io/container': 'Main_Container' }, error: /DNS-1123/ },
    { in: { 'jobmetrics.io/workload': '  ' }, error: /must not be empty/ },
    { in: { 'jobmetrics.io/workload': ' nightly-report ' }, ok: { workload: 'nightly-report' } },
    { in: { 'jobmetrics.io/workload': 'Billing.export_v2' }, ok: { workload: 'Billing.export_v2' } },
    { in: { 'jobmetrics.io/workload': 'x'.repeat(63) }, ok: { workload: 'x'.repeat(63) } },
    { in: { 'jobmetrics.io/workload': 'x'.repeat(64) }, error: /must be at most 63 characters \(a Kubernetes label value\)/ },
    // The kubelet expands $(VAR) in env values: every pod would get a `job` of its own.
    { in: { 'jobmetrics.io/workload': '$(JOBMETRICS_POD)' }, error: /workload="\$\(JOBMETRICS_POD\)": must not contain "\$\(": the kubelet would expand it/ },
    { in: { 'jobmetrics.io/workload': 'export-$(HOSTNAME)-x' }, error: /must not contain "\$\("/ },
    { in: { 'jobmetrics.io/workload': `${'x'.repeat(70)}$(A)` }, error: /must not contain "\$\("/ },
    { in: { 'jobmetrics.io/workload': 'a\nb' }, error: /must be a Kubernetes label value/ },
    { in: { 'jobmetrics.io/workload': 'billing/export €' }, error: /must be a Kubernetes label value/ },
    { in: { 'jobmetrics.io/workload': 'cost$HOME' }, error: /must be a Kubernetes label value/ },
    { in: { 'jobmetrics.io/workload': '-leading' }, error: /starting and ending with a letter or digit/ },
    { in: { 'jobmetrics.io/workload': 'trailing.' }, error: /starting and ending with a letter or digit/ },
  ];
  for (const row of table) {
    it(`${JSON.stringify(row.in)} → ${row.error ? `error ${row.error}` : JSON.stringify(row.ok)}`, () => {
      const r = parseTargetAnnotations(row.in);
      if (row.error) {
        expect(r.ok).to.equal(false);
        if (!r.ok) expect(`${r.error.annotation}="${r.error.value}": ${r.error.message}`).to.match(row.error);
      } else {
        expect(r.ok, JSON.stringify(r)).to.equal(true);
        if (r.ok) expect(r.value).to.deep.include(row.ok);
      }
    });
  }
});

describe('webhook workload name', () => {
  it('maps CronJob run names only when the digits are a plausible schedule time', () => {
    expect(cronJobFromJobName('nightly-report-29430720', NOW)).to.equal('nightly-report');
    expect(cronJobFromJobName('backup-20240101', NOW), 'a date is not minutes since 2015').to.equal(undefined);
    expect(cronJobFromJobName('shard-7', NOW)).to.equal(undefined);
    expect(cronJobFromJobName('future-99999999', NOW), 'after tomorrow').to.equal(undefined);
    expect(cronJobFromJobName(`${'x'.repeat(53)}-29430720`, NOW), 'prefix too long for a CronJob').to.equal(undefined);
    expect(cronJobFromJobName('nightly-report', NOW)).to.equal(undefined);
  });

  const pod = loadPod('pod-cronjob');
  const job = jobOf(pod);
  it('finds the Job from the ownerReference, with its uid', () => {
    expect(job).to.deep.equal({ name: 'nightly-report-29430720', uid: '9c1d7a52-3b1e-4f55-9a57-1f0e3f1c2a10' });
  });
  it('finds the Job from the labels when there is no ownerReference', () => {
    const p = structuredClone(pod);
    delete p.metadata!.ownerReferences;
    delete p.metadata!.labels!['batch.kubernetes.io/job-name'];
    expect(jobOf(p)).to.deep.equal({ name: 'nightly-report-29430720', uid: '9c1d7a52-3b1e-4f55-9a57-1f0e3f1c2a10' });
  });
  const rows: [string, Parameters<typeof workloadName>[0], string | undefined, string | undefined][] = [
    ['annotation first', { pod, job, annotation: 'custom', lookup: { state: 'found', cronJob: 'nightly-report' }, nowMs: NOW }, 'custom', 'annotation'],
    ['API: CronJob owner', { pod, job, annotation: undefined, lookup: { state: 'found', cronJob: 'other-name' }, nowMs: NOW }, 'other-name', 'cronjob'],
    ['API: no owner beats the pattern', { pod, job, annotation: undefined, lookup: { state: 'found', cronJob: null }, nowMs: NOW }, 'nightly-report-29430720', 'job'],
    ['lookup failed: pattern', { pod, job, annotation: undefined, lookup: { state: 'unavailable', reason: 'x' }, nowMs: NOW }, 'nightly-report', 'cronjob-name-pattern'],
    ['no lookup: pattern', { pod, job, annotation: undefined, lookup: undefined, nowMs: NOW }, 'nightly-report', 'cronjob-name-pattern'],
    ['bare pod: generateName stem', { pod: { metadata: { generateName: 'adhoc-' }, spec: { containers: [] } }, job: undefined, annotation: undefined, lookup: undefined, nowMs: NOW }, 'adhoc', 'pod'],
    ['nothing to go by', { pod: { spec: { containers: [] } }, job: undefined, annotation: undefined, lookup: undefined, nowMs: NOW }, undefined, undefined],
  ];
  for (const [title, input, name, source] of rows) {
    it(title, () => {
      const w = workloadName(input);
      expect(w?.name).to.equal(name);
      expect(w?.source).to.equal(source);
    });
  }
});

describe('webhook mode choice', () => {
  const rows: [Parameters<typeof chooseMode>, string][] = [
    [['native', undefined], 'native'],
    [['legacy', { ok: true, version: { major: '1', minor: '33' } }], 'legacy'],
    [['auto', { ok: true, version: { major: '1', minor: '29' } }], 'native'],
    [['auto', { ok: true, version: { major: '1', minor: '28' } }], 'legacy'],
    [['auto', { ok: true, version: { major: '1', minor: '30+', gitVersion: 'v1.30.2-eks-1' } }], 'native'],
    [['auto', { ok: true, version: { major: '', minor: '', gitVersion: 'v1.31.0-gke.100' } }], 'native'],
    [['auto', { ok: true, version: { gitVersion: 'weird' } }], 'legacy'],
    [['auto', { ok: false, error: 'connect ECONNREFUSED' }], 'legacy'],
    [['auto', undefined], 'legacy'],
    [['auto', { ok: true, version: { major: '2', minor: '0' } }], 'native'],
  ];
  for (const [args, mode] of rows) {
    it(`${JSON.stringify(args)} → ${mode}`, () => {
      const c = chooseMode(...args);
      expect(c.mode).to.equal(mode);
      expect(c.reason).to.be.a('string').and.not.equal('');
    });
  }
  it('says why it fell back', () => {
    expect(chooseMode('auto', { ok: false, error: 'connect ECONNREFUSED 10.0.0.1:443' }).reason).to.contain('ECONNREFUSED');
  });
  it('parses managed-cluster minors', () => {
    expect(parseServerVersion({ major: '1', minor: '29+' })).to.deep.equal({ major: 1, minor: 29 });
  });
});

describe('webhook mutate: context-driven skips', () => {
  const ctx = { sidecar: defaultSettings().sidecar, mode: 'legacy' as const, nowMs: NOW };
  const pod = loadPod('pod-cronjob');
  it('skips when the caller knows the namespace is not enabled', () => {
    const r = mutate(pod, { ...ctx, namespaceLabels: { 'kubernetes.io/metadata.name': 'reports' } });
    expect(r.inject ? '' : r.skip.reason).to.equal('namespace-not-enabled');
  });
  it('injects when the namespace label is known and enabled', () => {
    expect(mutate(pod, { ...ctx, namespaceLabels: { 'jobmetrics.io/inject': 'enabled' } }).inject).to.equal(true);
  });
  it('a pod opt-in works outside an enabled namespace', () => {
    const p: RawPod = structuredClone(pod);
    p.metadata!.labels!['jobmetrics.io/inject'] = 'enabled';
    expect(mutate(p, { ...ctx, namespaceLabels: {} }).inject).to.equal(true);
  });
  it('skips Windows pods', () => {
    const p: RawPod = structuredClone(pod);
    p.spec.os = { name: 'windows' };
    const r = mutate(p, ctx);
    expect(r.inject ? '' : r.skip.reason).to.equal('windows-pod');
  });
  it('keeps an existing initContainers list and unknown fields', () => {
    const p = structuredClone(pod) as RawPod & { spec: { futureField?: unknown } };
    p.spec['futureField'] = { alpha: [1, 2] };
    p['status'] = { phase: 'Pending' };
    const r = mutate(p, { ...ctx, mode: 'native' });
    expect(r.pod.spec['futureField']).to.deep.equal({ alpha: [1, 2] });
    expect(r.pod['status']).to.deep.equal({ phase: 'Pending' });
  });
  it('the Istio merge rewrite with no application values falls back to named ports', () => {
    const p = loadPod('pod-istio-native');
    expect(p.metadata?.annotations?.['prometheus.io/port']).to.equal('15020');
    const r = mutate(p, ctx);
    expect(r.inject && r.injection.scrapeUrl).to.equal('http://localhost:8080/metrics');
  });
});

describe('webhook mutate: excluded and opted-out namespaces', () => {
  const ctx = { sidecar: defaultSettings().sidecar, mode: 'legacy' as const, nowMs: NOW };
  const pod = loadPod('pod-cronjob');
  const optedIn: RawPod = structuredClone(pod);
  optedIn.metadata!.labels!['jobmetrics.io/inject'] = 'enabled';
  const rows: [title: string, pod: RawPod, ctx: Partial<MutateContext>, want: string][] = [
    ['kube-system, by the default list', pod, { namespace: 'kube-system' }, 'namespace-excluded: namespace kube-system is excluded (webhook setting excludedNamespaces)'],
    ['kube-public', pod, { namespace: 'kube-public' }, 'namespace-excluded: namespace kube-public is excluded (webhook setting excludedNamespaces)'],
    ['kube-node-lease', pod, { namespace: 'kube-node-lease' }, 'namespace-excluded: namespace kube-node-lease is excluded (webhook setting excludedNamespaces)'],
    ["jobmetrics' own namespace", pod, { namespace: 'jobmetrics' }, 'namespace-excluded: namespace jobmetrics is excluded (webhook setting excludedNamespaces)'],
    ['kube-system, the pod opted in', optedIn, { namespace: 'kube-system' }, 'namespace-excluded: namespace kube-system is excluded (webhook setting excludedNamespaces)'],
    ['kube-system, even when labelled enabled', pod, { namespace: 'kube-system', namespaceLabels: { 'jobmetrics.io/inject': 'enabled' } }, 'namespace-excluded: namespace kube-system is excluded (webhook setting excludedNamespaces)'],
    ['an ordinary namespace', pod, { namespace: 'reports' }, 'injected'],
    ['a configured list replaces the default', pod, { namespace: 'kube-system', excludedNamespaces: ['legacy-batch'] }, 'injected'],
    ['a configured list', pod, { namespace: 'legacy-batch', excludedNamespaces: ['legacy-batch'] }, 'namespace-excluded: namespace legacy-batch is excluded (webhook setting excludedNamespaces)'],
    ['an empty list excludes none', pod, { namespace: 'kube-system', excludedNamespaces: [] }, 'injected'],
    ['a namespace that opted out, the pod opted in', optedIn, { namespace: 'reports', namespaceLabels: { 'jobmetrics.io/inject': 'disabled' } }, 'namespace-not-enabled: namespace labelled jobmetrics.io/inject=disabled'],
    ['a namespace that opted out, a Job pod', pod, { namespace: 'reports', namespaceLabels: { 'jobmetrics.io/inject': 'disabled' } }, 'namespace-not-enabled: namespace labelled jobmetrics.io/inject=disabled'],
    ['a namespace neither in nor out, the pod opted in', optedIn, { namespace: 'reports', namespaceLabels: {} }, 'injected'],
  ];
  for (const [title, p, extra, want] of rows) {
    it(`${title} → ${want}`, () => {
      const r = mutate(p, { ...ctx, ...extra });
      expect(r.inject ? 'injected' : `${r.skip.reason}: ${r.skip.message}`).to.equal(want);
      if (!r.inject) expect(r.pod.metadata?.annotations?.['jobmetrics.io/status']).to.equal(`skipped: ${r.skip.message}`);
    });
  }
  it("falls back to the pod's metadata.namespace when the request names none", () => {
    const p: RawPod = structuredClone(pod);
    p.metadata!.namespace = 'kube-system';
    const r = mutate(p, ctx);
    expect(r.inject ? 'injected' : r.skip.reason).to.equal('namespace-excluded');
    expect(mutate(p, { ...ctx, namespace: 'reports' }).inject, "the request's namespace wins").to.equal(true);
  });
});

describe('webhook mutate: the sidecar state volume name is reserved', () => {
  const pod = loadPod('pod-cronjob');
  const STATE = { name: 'jobmetrics-state', emptyDir: {} };
  const MOUNT = { name: 'jobmetrics-state', mountPath: '/data' };
  const withVolume = (v: Record<string, unknown>): RawPod => {
    const p: RawPod = structuredClone(pod);
    p.spec.volumes = [...(p.spec.volumes ?? []), v as never];
    return p;
  };
  const withMount = (where: 'containers' | 'initContainers', key: string, entry: Record<string, unknown>): RawPod => {
    const p: RawPod = structuredClone(pod);
    if (where === 'containers') p.spec.containers[0]![key] = [entry];
    else p.spec.initContainers = [{ name: 'fetch', image: 'registry.example.com/fetch:1', [key]: [entry] }];
    return p;
  };
  const rows: [title: string, pod: RawPod, mode: 'native' | 'legacy', want: string][] = [
    ['a volume of that name (an emptyDir)', withVolume(STATE), 'native', "volume-conflict: the pod has a volume named jobmetrics-state, the name of the sidecar's state volume; another container could rewrite what the sidecar acknowledged"],
    ['a volume of that name (a hostPath)', withVolume({ name: 'jobmetrics-state', hostPath: { path: '/tmp' } }), 'native', "volume-conflict: the pod has a volume named jobmetrics-state, the name of the sidecar's state volume; another container could rewrite what the sidecar acknowledged"],
    ['a volume of that name, legacy mode too', withVolume(STATE), 'legacy', "volume-conflict: the pod has a volume named jobmetrics-state, the name of the sidecar's state volume; another container could rewrite what the sidecar acknowledged"],
    // No such volume: the pod is invalid without us, and our volume would make the mount valid.
    ['the main container mounts that name, no volume', withMount('containers', 'volumeMounts', MOUNT), 'native', "volume-conflict: container report mounts a volume named jobmetrics-state, the name of the sidecar's state volume; another container could rewrite what the sidecar acknowledged"],
    ['an init container mounts that name', withMount('initContainers', 'volumeMounts', MOUNT), 'native', "volume-conflict: container fetch mounts a volume named jobmetrics-state, the name of the sidecar's state volume; another container could rewrite what the sidecar acknowledged"],
    ['a volumeDevices entry of that name', withMount('containers', 'volumeDevices', { name: 'jobmetrics-state', devicePath: '/dev/x' }), 'native', "volume-conflict: container report mounts a volume named jobmetrics-state, the name of the sidecar's state volume; another container could rewrite what the sidecar acknowledged"],
    // The token volume's name is reserved the same way: a container holding a volume of that name
    // would hold the token the gateway takes for the sidecar's.
    ['a volume named like the token volume', withVolume({ name: 'jobmetrics-token', projected: { sources: [{ serviceAccountToken: { audience: 'jobmetrics-gateway', path: 'token' } }] } }), 'legacy', "volume-conflict: the pod has a volume named jobmetrics-token, the name of the sidecar's token volume; another container could write as the sidecar"],
    ['the main container mounts the token name, no volume', withMount('containers', 'volumeMounts', { name: 'jobmetrics-token', mountPath: '/t' }), 'native', "volume-conflict: container report mounts a volume named jobmetrics-token, the name of the sidecar's token volume; another container could write as the sidecar"],
    ['other volume names', withVolume({ name: 'jobmetrics-cache', emptyDir: {} }), 'native', 'injected'],
  ];
  for (const [title, p, mode, want] of rows) {
    it(`${title}, ${mode} mode → ${want}`, () => {
      const r = mutate(p, { sidecar: defaultSettings().sidecar, mode, nowMs: NOW });
      expect(r.inject ? 'injected' : `${r.skip.reason}: ${r.skip.message}`).to.equal(want);
    });
  }
  it('an injected pod is not a conflict with itself (already-injected first)', () => {
    const once = mutate(pod, { sidecar: defaultSettings().sidecar, mode: 'native', nowMs: NOW });
    const again = mutate(once.pod, { sidecar: defaultSettings().sidecar, mode: 'native', nowMs: NOW });
    expect(again.inject ? 'injected' : again.skip.reason).to.equal('already-injected');
  });
});

describe('webhook mutate: a container running as the sidecar uid', () => {
  const pod = loadPod('pod-cronjob');
  /** The pod with `runAsUser` at the pod level and on its container `report` (undefined: not set). */
  const runAs = (podUid: unknown, containerUid: unknown, initUid?: number): RawPod => {
    const p: RawPod = structuredClone(pod);
    if (podUid !== undefined) p.spec['securityContext'] = { runAsNonRoot: true, runAsUser: podUid };
    if (containerUid !== undefined) p.spec.containers[0]!['securityContext'] = { runAsUser: containerUid };
    if (initUid !== undefined) p.spec.initContainers = [{ name: 'mesh-proxy', image: 'registry.example.com/proxy:1', restartPolicy: 'Always', securityContext: { runAsUser: initUid } }];
    return p;
  };
  const skipped = (container: string): string =>
    `main-runs-as-sidecar-uid: container ${container} runs as uid 65531, the sidecar's: sharing the process namespace, each could read the other's /proc/<pid>/environ and root; set another runAsUser`;
  const rows: [title: string, pod: RawPod, want: string][] = [
    ['pod 65531, container unset', runAs(65531, undefined), skipped('report')],
    ['pod unset, container 65531', runAs(undefined, 65531), skipped('report')],
    ['pod 1000, container 65531 (the container overrides the pod)', runAs(1000, 65531), skipped('report')],
    ['pod 65531, container 1000 (the container overrides the pod)', runAs(65531, 1000), 'injected'],
    ['pod 65532 (distroless nonroot), container unset', runAs(65532, undefined), 'injected'],
    ['a native-sidecar init container as 65531', runAs(undefined, undefined, 65531), skipped('mesh-proxy')],
    ['neither set (the image decides; not visible at admission)', runAs(undefined, undefined), 'injected'],
    // The API server rejects a non-integer runAsUser after the webhooks; it is no uid to compare.
    ['a string "65531"', runAs(undefined, '65531'), 'injected'],
  ];
  for (const [title, p, want] of rows) {
    it(`${title} → ${want.split(':')[0]}`, () => {
      const r = mutate(p, { sidecar: defaultSettings().sidecar, mode: 'native', nowMs: NOW });
      expect(r.inject ? 'injected' : `${r.skip.reason}: ${r.skip.message}`).to.equal(want);
    });
  }
});

describe('webhook mutate: a container port must be an integer 1…65535', () => {
  const ctx = { sidecar: defaultSettings().sidecar, mode: 'legacy' as const, nowMs: NOW };
  /** A Job pod whose container `main` has one port named `name` with this containerPort. */
  const podWithPort = (containerPort: unknown, name = 'metrics', annotations: Record<string, string> = {}): RawPod => ({
    metadata: { generateName: 'export-', labels: { 'job-name': 'export' }, annotations },
    spec: { containers: [{ name: 'main', ports: [{ name, containerPort } as RawContainerPort] }] },
  });
  const rows: [string, RawPod, string][] = [
    ['9090', podWithPort(9090), 'injected http://localhost:9090/metrics'],
    ['1', podWithPort(1), 'injected http://localhost:1/metrics'],
    ['65535', podWithPort(65535), 'injected http://localhost:65535/metrics'],
    ['-5', podWithPort(-5), 'invalid-port: container port "metrics" of container main is -5, not an integer port number 1…65535'],
    ['80.5', podWithPort(80.5), 'invalid-port: container port "metrics" of container main is 80.5, not an integer port number 1…65535'],
    ['1e20', podWithPort(1e20), 'invalid-port: container port "metrics" of container main is 100000000000000000000, not an integer port number 1…65535'],
    ['0', podWithPort(0), 'invalid-port: container port "metrics" of container main is 0, not an integer port number 1…65535'],
    ['65536', podWithPort(65536), 'invalid-port: container port "metrics" of container main is 65536, not an integer port number 1…65535'],
    ['a string', podWithPort('9090', 'http-metrics'), 'invalid-port: container port "http-metrics" of container main is "9090", not an integer port number 1…65535'],
    ['null', podWithPort(null), 'invalid-port: container port "metrics" of container main is null, not an integer port number 1…65535'],
    ['absent', podWithPort(undefined), 'invalid-port: container port "metrics" of container main is missing, not an integer port number 1…65535'],
    ['-5, named by the annotation', podWithPort(-5, 'scrape', { 'jobmetrics.io/port': 'scrape' }), 'invalid-port: container port "scrape" of container main is -5, not an integer port number 1…65535'],
    ['-5, the annotation giving the number', podWithPort(-5, 'metrics', { 'jobmetrics.io/port': '8080' }), 'injected http://localhost:8080/metrics'],
  ];
  for (const [title, pod, want] of rows) {
    it(`containerPort ${title} → ${want}`, () => {
      const r = mutate(pod, ctx);
      expect(r.inject ? `injected ${r.injection.scrapeUrl}` : `${r.skip.reason}: ${r.skip.message}`).to.equal(want);
      if (!r.inject) expect(r.pod.metadata?.annotations?.['jobmetrics.io/status']).to.equal(`skipped: ${r.skip.message}`);
    });
  }
});

describe('webhook mutate: restartPolicy and mode', () => {
  const pod = loadPod('pod-cronjob');
  const rows: Array<[restartPolicy: string | undefined, mode: 'native' | 'legacy', outcome: string]> = [
    ['Never', 'legacy', 'injected'],
    ['Never', 'native', 'injected'],
    [undefined, 'legacy', 'injected'],
    ['OnFailure', 'native', 'injected'],
    // A legacy sidecar cannot see the exit code, so it would end after the first attempt.
    ['OnFailure', 'legacy', 'restart-needs-native'],
  ];
  for (const [restartPolicy, mode, outcome] of rows) {
    it(`restartPolicy ${restartPolicy ?? '(unset)'}, ${mode} mode → ${outcome}`, () => {
      const p: RawPod = structuredClone(pod);
      if (restartPolicy === undefined) delete p.spec.restartPolicy;
      else p.spec.restartPolicy = restartPolicy;
      const r = mutate(p, { sidecar: defaultSettings().sidecar, mode, nowMs: NOW });
      expect(r.inject ? 'injected' : r.skip.reason).to.equal(outcome);
      if (!r.inject) expect(r.pod.metadata?.annotations?.['jobmetrics.io/status']).to.match(/^skipped: restartPolicy OnFailure needs native sidecar mode/);
    });
  }
});

describe('webhook flush budget from terminationGracePeriodSeconds', () => {
  // min(configured, max(500ms, grace − min(2s, grace / 2)))
  const rows: Array<[grace: number | null | undefined, configuredMs: number, wantMs: number]> = [
    [undefined, 10_000, 10_000], // the default 30 s leaves the configured 10 s
    [null, 10_000, 10_000],
    [30, 10_000, 10_000],
    [30, 60_000, 28_000],
    [12, 10_000, 10_000],
    [10, 10_000, 8_000],
    [5, 10_000, 3_000],
    [3, 10_000, 1_500],
    [2, 10_000, 1_000],
    [1, 10_000, 500],
    [0, 10_000, 500], // no grace at all: nothing fits; the floor keeps the flush a real attempt
    [3_600, 10_000, 10_000],
    [5, 1_000, 1_000], // a configured timeout shorter than the budget is kept
  ];
  for (const [grace, configuredMs, wantMs] of rows) {
    it(`grace ${grace === undefined ? '(unset)' : String(grace)} s, configured ${configuredMs} ms → ${wantMs} ms`, () => {
      expect(flushBudgetMs(configuredMs, grace)).to.equal(wantMs);
    });
  }
});

describe('skip reasons are a bounded list (webhook/mutate.ts SKIP_REASONS)', () => {
  it('docs/webhook.md has a row for every one, and no other', async () => {
    const { readFileSync } = await import('node:fs');
    const { SKIP_REASONS } = await import('../../../webhook/mutate.ts');
    const doc = readFileSync(new URL('../../../docs/webhook.md', import.meta.url), 'utf8');
    const section = doc.slice(doc.indexOf('## Skip reasons'), doc.indexOf('\n## ', doc.indexOf('## Skip reasons') + 1));
    const rows = [...section.matchAll(/^\| `([a-z-]+)` \|/gm)].map((m) => m[1]);
    expect(rows).to.deep.equal([...SKIP_REASONS]);
  });
});

describe('the sidecar uid (webhook/mutate.ts SIDECAR_UID)', () => {
  it('is no uid images are built to use, so never the main container\'s, and maps under a 65 536-id user namespace', async () => {
    const { SIDECAR_UID } = await import('../../../webhook/mutate.ts');
    // 0–999 system users, 1000–1001 the first users images add, 65532 distroless/Chainguard
    // "nonroot", 65533 Alpine "nogroup", 65534 "nobody", 65535 (-1 as a 16-bit id).
    const taken = (uid: number): boolean => uid < 1_002 || uid >= 65_532;
    expect(taken(SIDECAR_UID), `uid ${SIDECAR_UID}`).to.equal(false);
    expect(SIDECAR_UID).to.equal(65_531);
  });
});
