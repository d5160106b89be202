/**
 * A fuzz run of the real webhook process over TLS with generated AdmissionReviews, valid Job pods and malformed ones
 * (fast-check, seeded, so a failure reproduces; the failing input is printed shrunk). Whatever
 * comes in, the answer is an AdmissionReview that allows the pod and echoes the request's uid when
 * it had a string one: 200 with a patch that applies to the request's object, or a clean 4xx that
 * says what was wrong. An injected sidecar scrapes a real port (1…65535) on localhost. Never a 500,
 * never a crash: /healthz answers afterwards.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'chai';
import fc from 'fast-check';
import jsonPatch, { type Operation } from 'fast-json-patch';
import { Pod } from 'kubernetes-models/v1/Pod';
import { call, killWebhook, podOfJob, startWebhookWithFreshCerts, type Webhook } from '../support/webhook.ts';

const RUNS = 300;
const MUST_INJECT = 'fuzz.example.com/must-inject';
const SEED = 20_261_127;

/** A value of any JSON type, small. */
const anyJson = fc.jsonValue({ maxDepth: 3 });
/** Mostly the right value (so some reviews get through to the pod), else anything at all, or nothing. */
const maybe = <T>(right: fc.Arbitrary<T>): fc.Arbitrary<unknown> =>
  fc.oneof({ weight: 8, arbitrary: right }, { weight: 1, arbitrary: anyJson }, { weight: 1, arbitrary: fc.constant(undefined) });

/** Leave the field as the valid pod has it. */
const KEEP = Symbol('keep');
/** A field replaced by something else in one review of ten. */
const rarely = (other: fc.Arbitrary<unknown>): fc.Arbitrary<unknown> =>
  fc.oneof({ weight: 9, arbitrary: fc.constant(KEEP) }, { weight: 1, arbitrary: other });

const ANNOTATIONS = [
  'jobmetrics.io/port',
  'prometheus.io/port',
  'jobmetrics.io/path',
  'prometheus.io/path',
  'jobmetrics.io/scheme',
  'jobmetrics.io/interval',
  'jobmetrics.io/container',
  'jobmetrics.io/workload',
  'sidecar.istio.io/status',
];

/** A Job pod with hostile values where the webhook looks: annotations, labels, ports, flags. */
const hostilePod = fc
  .record(
    {
      annotations: maybe(fc.dictionary(fc.constantFrom(...ANNOTATIONS), fc.oneof(fc.string(), fc.constantFrom('-5', '80.5', '1e20', '0', '65536', 'metrics', '8080')))),
      labels: maybe(fc.dictionary(fc.constantFrom('jobmetrics.io/inject', 'job-name', 'batch.kubernetes.io/job-name'), fc.oneof(fc.string(), fc.constantFrom('enabled', 'disabled')))),
      containerPort: fc.oneof(fc.constantFrom(-5, 80.5, 1e20, 0, 65536, 9090), fc.integer(), fc.double(), anyJson),
      portName: fc.constantFrom('metrics', 'http-metrics', 'web'),
      hostPID: maybe(fc.boolean()),
      shareProcessNamespace: maybe(fc.boolean()),
      containers: rarely(anyJson),
      initContainers: rarely(anyJson),
      ownerReferences: rarely(anyJson),
    },
    { requiredKeys: ['containerPort', 'portName'] },
  )
  .map((h) => {
    const pod = podOfJob('fuzz-job') as unknown as { metadata: Record<string, unknown>; spec: Record<string, unknown> };
    const spec = pod.spec;
    const containers = spec['containers'] as Record<string, unknown>[];
    if ('annotations' in h) pod.metadata['annotations'] = h.annotations;
    if ('labels' in h) pod.metadata['labels'] = h.labels;
    if (h.ownerReferences !== KEEP) pod.metadata['ownerReferences'] = h.ownerReferences;
    containers[0] = { ...containers[0], ports: [{ name: h.portName, containerPort: h.containerPort }] };
    if ('hostPID' in h) spec['hostPID'] = h.hostPID;
    if ('shareProcessNamespace' in h) spec['shareProcessNamespace'] = h.shareProcessNamespace;
    if (h.containers !== KEEP) spec['containers'] = h.containers;
    if (h.initContainers !== KEEP) spec['initContainers'] = h.initContainers;
    return pod;
  });

/** An AdmissionReview with any part of it wrong, missing (undefined: left out of the JSON), or of another type. */
const hostileReview = fc.record(
  {
    apiVersion: maybe(fc.constant('admission.k8s.io/v1')),
    kind: maybe(fc.constant('AdmissionReview')),
    request: maybe(
      fc.record(
        {
          uid: maybe(fc.oneof(fc.uuid(), fc.string())),
          kind: maybe(fc.record({ group: maybe(fc.constant('')), version: maybe(fc.constant('v1')), kind: maybe(fc.constantFrom('Pod', 'Job')) })),
          operation: maybe(fc.constantFrom('CREATE', 'UPDATE', 'DELETE', 'CONNECT')),
          namespace: maybe(fc.constantFrom('reports', '')),
          subResource: fc.option(fc.constantFrom('status', 'ephemeralcontainers', ''), { nil: undefined }),
          dryRun: maybe(fc.boolean()),
          object: fc.oneof({ weight: 8, arbitrary: hostilePod }, { weight: 1, arbitrary: anyJson }),
        },
      ),
    ),
  },
);

/**
 * A well-formed review of a valid Job pod whose metrics port is valid, named by any of the ways the
 * webhook reads it, with other valid annotations: the webhook must inject every one of them.
 */
const validJobReview = fc
  .record({
    uid: fc.uuid(),
    port: fc.integer({ min: 1, max: 65_535 }),
    portBy: fc.constantFrom('container port named metrics', 'container port named http-metrics', 'jobmetrics.io/port', 'prometheus.io/port'),
    path: fc.option(fc.constantFrom('/metrics', '/m', '/a/b?x=1'), { nil: undefined }),
    interval: fc.option(fc.constantFrom('1s', '100ms', '60s', '2500ms'), { nil: undefined }),
    scheme: fc.option(fc.constantFrom('http', 'https'), { nil: undefined }),
  })
  .map((v) => {
    const pod = podOfJob('fuzz-job') as unknown as { metadata: { annotations?: Record<string, string> }; spec: { containers: Array<Record<string, unknown>> } };
    // Marks the review for the check below (the webhook ignores annotations it does not know).
    const annotations: Record<string, string> = { [MUST_INJECT]: 'yes' };
    const main = pod.spec.containers[0]!;
    if (v.portBy.startsWith('container port')) main['ports'] = [{ name: v.portBy.endsWith('http-metrics') ? 'http-metrics' : 'metrics', containerPort: v.port, protocol: 'TCP' }];
    else {
      main['ports'] = [];
      annotations[v.portBy] = String(v.port);
    }
    if (v.path !== undefined) annotations['jobmetrics.io/path'] = v.path;
    if (v.interval !== undefined) annotations['jobmetrics.io/interval'] = v.interval;
    if (v.scheme !== undefined) annotations['jobmetrics.io/scheme'] = v.scheme;
    pod.metadata.annotations = annotations;
    return JSON.stringify({
      apiVersion: 'admission.k8s.io/v1',
      kind: 'AdmissionReview',
      request: { uid: v.uid, kind: { group: '', version: 'v1', kind: 'Pod' }, resource: { group: '', version: 'v1', resource: 'pods' }, namespace: 'reports', operation: 'CREATE', dryRun: false, object: pod },
    });
  });

/**
 * What goes on the wire: valid Job pods that must be injected (four in ten), hostile reviews (four
 * in ten), any JSON, or text that is not JSON.
 */
const body = fc.oneof(
  { weight: 4, arbitrary: validJobReview },
  { weight: 4, arbitrary: hostileReview.map((r) => JSON.stringify(r)) },
  { weight: 1, arbitrary: anyJson.map((v) => JSON.stringify(v) ?? '') },
  { weight: 1, arbitrary: fc.oneof(fc.string(), hostileReview.map((r) => JSON.stringify(r).slice(0, -1))) },
);

/** The uid an answer must echo: the request's, when the body is an object whose request.uid is a string. */
function expectedUid(text: string): { uid: string; object: unknown; uidGiven: boolean } {
  try {
    const v = JSON.parse(text) as { request?: { uid?: unknown; object?: unknown } } | null;
    const request = typeof v === 'object' && v !== null && !Array.isArray(v) ? v.request : undefined;
    if (typeof request === 'object' && request !== null && !Array.isArray(request)) {
      if (typeof request.uid === 'string') return { uid: request.uid, object: request.object, uidGiven: true };
      return { uid: '', object: undefined, uidGiven: 'uid' in request };
    }
  } catch {
    // not JSON: no uid
  }
  return { uid: '', object: undefined, uidGiven: false };
}

interface PatchedPod {
  spec?: { containers?: unknown; initContainers?: unknown };
}

/** JOBMETRICS_SCRAPE_URL of the injected sidecar, if the patch injected one. */
function scrapeUrlOf(pod: PatchedPod): string | undefined {
  const lists = [pod.spec?.containers, pod.spec?.initContainers].filter(Array.isArray) as { name?: unknown; env?: { name?: string; value?: string }[] }[][];
  const sidecar = lists.flat().find((c) => c?.name === 'jobmetrics-sidecar');
  return sidecar?.env?.find((e) => e.name === 'JOBMETRICS_SCRAPE_URL')?.value;
}

describe('webhook fuzz: valid and malformed AdmissionReviews (real process, TLS, fast-check)', function () {
  this.timeout(300_000);
  let dir: string;
  let ca: string;
  let wh: Webhook;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'jobmetrics-webhook-fuzz-'));
    ({ wh, ca } = await startWebhookWithFreshCerts(dir, 'fuzz-ca'));
  });

  after(() => {
    killWebhook(wh);
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it(`${RUNS} generated reviews (seed ${SEED}): each answer is an AdmissionReview that allows and echoes the uid, 200 or a clean 4xx; every valid Job pod is injected into a valid pod scraping a port 1…65535; /healthz answers afterwards`, async () => {
    const statuses = new Map<number, number>();
    let injected = 0;
    await fc.assert(
      fc.asyncProperty(body, async (text) => {
        const a = await call(wh.port, ca, 'POST', '/mutate', text);
        statuses.set(a.status, (statuses.get(a.status) ?? 0) + 1);
        const { uid, object, uidGiven } = expectedUid(text);
        expect([200, 400], a.body).to.include(a.status);
        const out = JSON.parse(a.body) as { apiVersion: string; kind: string; response: { uid: string; allowed: boolean; patch?: string; status?: { message: string } } };
        expect(out.apiVersion).to.equal('admission.k8s.io/v1');
        expect(out.kind).to.equal('AdmissionReview');
        expect(out.response.allowed).to.equal(true);
        expect(out.response.uid).to.equal(uid);
        const mustInject = text.includes(`"${MUST_INJECT}":"yes"`);
        if (mustInject) expect(a.status, a.body).to.equal(200);
        if (a.status === 200) {
          expect(uid, 'a 200 answers a request with a uid').to.not.equal('');
          if (mustInject) expect(out.response.patch, `a valid Job pod is injected: ${a.body.slice(0, 500)}`).to.be.a('string');
          if (out.response.patch !== undefined) {
            const ops = JSON.parse(Buffer.from(out.response.patch, 'base64').toString('utf8')) as Operation[];
            // The patch applies to the object the API server sent (validated, so a bad path throws).
            const pod = jsonPatch.applyPatch(structuredClone(object), ops, true, false).newDocument as PatchedPod;
            const scrapeUrl = scrapeUrlOf(pod);
            if (mustInject) expect(scrapeUrl, 'the valid Job pod got the sidecar').to.be.a('string');
            if (scrapeUrl !== undefined) {
              injected++;
              // The injected pod is a valid Pod by the Kubernetes schema.
              expect(() => new Pod(pod as never).validate(), JSON.stringify(pod).slice(0, 2000)).to.not.throw();
              // An injected sidecar scrapes a real port on localhost, never localhost:-5.
              const url = new URL(scrapeUrl);
              expect(url.hostname).to.equal('localhost');
              const port = Number(url.port || (url.protocol === 'https:' ? 443 : 80));
              expect(Number.isInteger(port) && port >= 1 && port <= 65535, scrapeUrl).to.equal(true);
            }
          }
        } else {
          expect(out.response.status?.message, 'a 4xx says what was wrong').to.be.a('string').and.not.equal('');
          // A uid of another type is named for what it is, not called missing.
          if (uidGiven) expect(out.response.status?.message).to.not.contain('uid is missing');
        }
      }),
      { numRuns: RUNS, seed: SEED },
    );
    console.log(`      answers by status: ${JSON.stringify(Object.fromEntries(statuses))}; injected: ${injected}`);
    // Four in ten generated reviews are valid Job pods: at least a third of the run must reach an
    // injection, so the patch, schema and port checks above really run.
    expect(injected, 'injections').to.be.at.least(RUNS / 3);
    expect(wh.proc.exitCode, 'the process is still running').to.equal(null);
    expect((await call(wh.port, ca, 'GET', '/healthz')).status).to.equal(200);
    // The run covered both kinds of answer.
    expect([...statuses.keys()].sort(), JSON.stringify([...statuses])).to.include.members([200, 400]);
  });
});
