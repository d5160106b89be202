/** The pure pieces mutate builds on: annotation parsing, the workload rule, the mode choice. */
import { expect } from 'chai';
import { parseTargetAnnotations } from '../../../shared/annotations.ts';
import { defaultSettings } from '../../../webhook/config.ts';
import { chooseMode, parseServerVersion } from '../../../webhook/mode.ts';
import { flushBudgetMs, mutate } from '../../../webhook/mutate.ts';
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
    { in: { 'jobmetrics.io/workload': 'a\nb' }, error: /control characters/ },
    { in: { 'jobmetrics.io/workload': 'billing/export €' }, ok: { workload: 'billing/export €' } },
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
