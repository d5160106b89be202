/** AdmissionReview decoding and answers, without HTTP. */
import { expect } from 'chai';
import jsonPatch, { type Operation } from 'fast-json-patch';
import { defaultSettings } from '../../../webhook/config.ts';
import { review, type ReviewDeps } from '../../../webhook/review.ts';
import type { JobRef } from '../../../webhook/workload.ts';
import { describeDifference, loadPod } from './golden.ts';

const NOW = Date.UTC(2026, 0, 15);
const deps = (extra: Partial<ReviewDeps> = {}): ReviewDeps => ({
  sidecar: defaultSettings().sidecar,
  mode: () => 'native',
  now: () => NOW,
  ...extra,
});

function admissionReview(object: unknown, request: Record<string, unknown> = {}): string {
  return JSON.stringify({
    apiVersion: 'admission.k8s.io/v1',
    kind: 'AdmissionReview',
    request: {
      uid: '705ab4f5-6393-11e8-b7cc-42010a800002',
      kind: { group: '', version: 'v1', kind: 'Pod' },
      resource: { group: '', version: 'v1', resource: 'pods' },
      requestKind: { group: '', version: 'v1', kind: 'Pod' },
      requestResource: { group: '', version: 'v1', resource: 'pods' },
      namespace: 'reports',
      operation: 'CREATE',
      userInfo: { username: 'system:serviceaccount:kube-system:job-controller' },
      object,
      oldObject: null,
      dryRun: false,
      options: { kind: 'CreateOptions', apiVersion: 'meta.k8s.io/v1' },
      ...request,
    },
  });
}

const decodePatch = (patch: string | undefined): Operation[] => JSON.parse(Buffer.from(patch ?? '', 'base64').toString('utf8')) as Operation[];

describe('webhook review', () => {
  const pod = loadPod('pod-cronjob');

  it('answers a Job pod with a base64 JSONPatch that injects, echoing the uid', async () => {
    const a = await review(admissionReview(pod), deps());
    expect(a.httpStatus).to.equal(200);
    expect(a.outcome).to.equal('injected');
    expect(a.body.apiVersion).to.equal('admission.k8s.io/v1');
    expect(a.body.kind).to.equal('AdmissionReview');
    expect(a.body.response.uid).to.equal('705ab4f5-6393-11e8-b7cc-42010a800002');
    expect(a.body.response.allowed).to.equal(true);
    expect(a.body.response.patchType).to.equal('JSONPatch');
    const patched = jsonPatch.applyPatch(structuredClone(pod), decodePatch(a.body.response.patch), true, false).newDocument;
    expect(patched.spec.initContainers?.at(-1)?.name).to.equal('jobmetrics-sidecar');
    expect(patched.metadata?.annotations?.['jobmetrics.io/status']).to.equal('injected');
  });

  it("decides on the request's namespace and the configured excludedNamespaces", async () => {
    const bare = structuredClone(pod);
    delete bare.metadata!.namespace; // a create request may leave it to the URL's namespace
    const system = await review(admissionReview(bare, { namespace: 'kube-system' }), deps());
    expect(system.outcome).to.equal('skipped');
    expect(system.detail.skip).to.deep.equal({ reason: 'namespace-excluded', message: 'namespace kube-system is excluded (webhook setting excludedNamespaces)' });
    const configured = await review(admissionReview(bare, { namespace: 'kube-system' }), deps({ excludedNamespaces: ['reports'] }));
    expect(configured.outcome).to.equal('injected');
    const reports = await review(admissionReview(bare), deps({ excludedNamespaces: ['reports'] }));
    expect(reports.detail.skip?.reason).to.equal('namespace-excluded');
  });

  it('the same answer for dryRun', async () => {
    const wet = await review(admissionReview(pod), deps());
    const dry = await review(admissionReview(pod, { dryRun: true }), deps());
    expect(dry.body).to.deep.equal(wet.body);
    expect(dry.detail.dryRun).to.equal(true);
  });

  it('asks the API for the Job owner, once per review, and uses the answer', async () => {
    const asked: [string, JobRef][] = [];
    const a = await review(admissionReview(pod), deps({
      lookupJobOwner: async (ns, job) => {
        asked.push([ns, job]);
        return { state: 'found', cronJob: 'reports-nightly' };
      },
    }));
    expect(asked).to.deep.equal([['reports', { name: 'nightly-report-29430720', uid: '9c1d7a52-3b1e-4f55-9a57-1f0e3f1c2a10' }]]);
    expect(a.detail.injection?.workload).to.deep.equal({ name: 'reports-nightly', source: 'cronjob' });
  });

  it('does not ask when jobmetrics.io/workload is set', async () => {
    const p = structuredClone(pod);
    p.metadata!.annotations = { 'jobmetrics.io/workload': 'mine' };
    let asked = 0;
    await review(admissionReview(p), deps({ lookupJobOwner: async () => (asked++, { state: 'found', cronJob: null }) }));
    expect(asked).to.equal(0);
  });

  it('no change, no patch: an already-injected pod', async () => {
    const a = await review(admissionReview(loadPod('pod-already-injected')), deps());
    expect(a.outcome).to.equal('skipped');
    expect(a.detail.skip?.reason).to.equal('already-injected');
    expect(a.body.response).to.deep.equal({ uid: '705ab4f5-6393-11e8-b7cc-42010a800002', allowed: true });
  });

  it('a skip patches only the status annotation, and an invalid annotation adds a warning', async () => {
    const a = await review(admissionReview(loadPod('pod-annotations-bad-interval')), deps());
    expect(a.outcome).to.equal('skipped');
    expect(decodePatch(a.body.response.patch)).to.deep.equal([
      { op: 'add', path: '/metadata/annotations/jobmetrics.io~1status', value: a.detail.skip && `skipped: ${a.detail.skip.message}` },
    ]);
    expect(a.body.response.warnings?.[0]).to.match(/^jobmetrics: invalid annotation jobmetrics\.io\/interval/);
  });

  it('a container port that is no port number skips with invalid-port and a warning', async () => {
    const a = await review(admissionReview(loadPod('pod-container-port-invalid')), deps());
    expect(a.outcome).to.equal('skipped');
    expect(a.detail.skip?.reason).to.equal('invalid-port');
    expect(a.body.response.warnings).to.deep.equal(['jobmetrics: container port "metrics" of container worker is -5, not an integer port number 1…65535']);
  });

  const bad: [string, string, number, RegExp, string][] = [
    ['non-JSON', '{"apiVersion":', 400, /body is not JSON/, ''],
    ['a JSON array', '[]', 400, /not a JSON object/, ''],
    ['the wrong kind', JSON.stringify({ apiVersion: 'admission.k8s.io/v1', kind: 'Pod', request: { uid: 'u1' } }), 400, /expected kind AdmissionReview/, 'u1'],
    ['v1beta1', JSON.stringify({ apiVersion: 'admission.k8s.io/v1beta1', kind: 'AdmissionReview', request: { uid: 'u2' } }), 400, /apiVersion "admission\.k8s\.io\/v1beta1"/, 'u2'],
    ['no request', JSON.stringify({ apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview' }), 400, /has no request/, ''],
    ['no uid', JSON.stringify({ apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', request: { kind: { kind: 'Pod' } } }), 400, /^request\.uid is missing$/, ''],
    ['a uid that is a number', admissionReview(pod, { uid: 42 }), 400, /^request\.uid is a number, expected a string$/, ''],
    ['a uid that is null', admissionReview(pod, { uid: null }), 400, /^request\.uid is null, expected a string$/, ''],
    ['a uid that is an object', admissionReview(pod, { uid: { id: 'x' } }), 400, /^request\.uid is an object, expected a string$/, ''],
    ['a uid that is a list', admissionReview(pod, { uid: ['x'] }), 400, /^request\.uid is an array, expected a string$/, ''],
    ['a uid that is a boolean', admissionReview(pod, { uid: true }), 400, /^request\.uid is a boolean, expected a string$/, ''],
    ['an empty uid', admissionReview(pod, { uid: '' }), 400, /^request\.uid is empty$/, ''],
    ['a pod without spec', admissionReview({ metadata: { name: 'x' } }), 400, /spec is missing/, '705ab4f5-6393-11e8-b7cc-42010a800002'],
    ['labels that are not strings', admissionReview({ metadata: { labels: { a: 1 } }, spec: { containers: [] } }), 400, /labels is not a map of strings/, '705ab4f5-6393-11e8-b7cc-42010a800002'],
  ];
  for (const [title, body, status, message, uid] of bad) {
    it(`answers ${title} with ${status}, a clear message and the uid it could read`, async () => {
      const a = await review(body, deps());
      expect(a.httpStatus).to.equal(status);
      expect(a.outcome).to.equal('bad_request');
      expect(a.body.kind).to.equal('AdmissionReview');
      expect(a.body.response.uid).to.equal(uid);
      expect(a.body.response.allowed).to.equal(true);
      expect(a.body.response.status?.message).to.match(message);
      expect(a.body.response.patch).to.equal(undefined);
    });
  }

  const ignored: [string, Record<string, unknown>, RegExp][] = [
    ['an UPDATE', { operation: 'UPDATE' }, /operation UPDATE is not handled/],
    ['a DELETE', { operation: 'DELETE', object: null }, /operation DELETE/],
    ['a non-Pod', { kind: { group: 'batch', version: 'v1', kind: 'Job' } }, /batch\/Job is not handled/],
    ['a pod subresource', { subResource: 'ephemeralcontainers', operation: 'UPDATE' }, /Pod\/ephemeralcontainers is not handled/],
  ];
  for (const [title, request, message] of ignored) {
    it(`allows ${title} unchanged`, async () => {
      const a = await review(admissionReview(pod, request), deps());
      expect(a.httpStatus).to.equal(200);
      expect(a.outcome).to.equal('ignored');
      expect(a.body.response.allowed).to.equal(true);
      expect(a.body.response.patch).to.equal(undefined);
      expect(a.body.response.status?.message).to.match(message);
    });
  }

  it('never throws: a failing dependency is an allowed answer with code 500', async () => {
    const a = await review(admissionReview(pod), deps({ mode: () => { throw new Error('boom'); } }));
    expect(a.httpStatus).to.equal(500);
    expect(a.outcome).to.equal('error');
    expect(a.body.response.allowed).to.equal(true);
    expect(a.body.response.uid).to.equal('705ab4f5-6393-11e8-b7cc-42010a800002');
  });

  it('keeps fields it does not know: the patch touches only what it adds', async () => {
    const p = structuredClone(pod) as typeof pod & Record<string, unknown>;
    p.spec['resourceClaims'] = [{ name: 'gpu', resourceClaimTemplateName: 'gpu-template' }];
    (p.spec.containers[0] as Record<string, unknown>)['someFutureField'] = { x: 1 };
    const a = await review(admissionReview(p), deps());
    const patched = jsonPatch.applyPatch(structuredClone(p), decodePatch(a.body.response.patch), true, false).newDocument;
    expect(patched.spec['resourceClaims']).to.deep.equal(p.spec['resourceClaims']);
    expect(describeDifference(p.spec.containers[0], patched.spec.containers[0])).to.equal('');
    const paths = decodePatch(a.body.response.patch).map((o) => o.path).sort();
    expect(paths).to.deep.equal(['/metadata/annotations', '/spec/initContainers', '/spec/shareProcessNamespace', '/spec/volumes/1', '/spec/volumes/2']);
  });
});
