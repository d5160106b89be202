/**
 * The injection check's pod and its reading, against the webhook's own decision (mutate): the pod
 * stays one the webhook injects, and the reading tells native from legacy and the settings apart.
 * The check against a real API server and webhook is in test/e2e/injection.test.ts.
 */
import { expect } from 'chai';
import { defaultSettings } from '../../../webhook/config.ts';
import { mutate } from '../../../webhook/mutate.ts';
import type { RawPod } from '../../../webhook/pod.ts';
import { probeAnswer, probePod } from '../../../scripts/cluster/injection-check.ts';

const NOW = Date.UTC(2026, 0, 15);

describe('scripts/cluster/injection-check: the dry-run pod and what it got', () => {
  for (const [mode, where] of [['native', 'initContainers'], ['legacy', 'containers']] as const) {
    it(`${mode} mode: the webhook injects the check's pod; the answer says where the sidecar went and with which settings`, () => {
      const sidecar = { ...defaultSettings().sidecar, interval: '2s', image: 'registry.example.com:5001/jobmetrics/jobmetrics-sidecar:1.2.3', imagePullSecrets: ['regcred'] };
      const r = mutate(probePod('batch') as RawPod, { sidecar, mode, nowMs: NOW, namespace: 'batch' });
      const answer = probeAnswer(r.pod);
      expect([r.inject, answer.status, answer.sidecar?.in]).to.deep.equal([true, 'injected', where]);
      expect(answer.sidecar?.env['JOBMETRICS_INTERVAL']).to.equal('2s');
      expect([answer.sidecar?.image, answer.imagePullSecrets]).to.deep.equal(['registry.example.com:5001/jobmetrics/jobmetrics-sidecar:1.2.3', ['regcred']]);
    });
  }

  it("manifests/checks/injection-check.yaml is a Job's pod, in the namespace asked; opted in by its own label on request", () => {
    const meta = (p: Record<string, unknown>): unknown => p['metadata'];
    expect(meta(probePod('batch'))).to.deep.equal({ generateName: 'jobmetrics-injection-check-', namespace: 'batch', labels: { 'batch.kubernetes.io/job-name': 'jobmetrics-injection-check' } });
    expect(meta(probePod('default', { optIn: true }))).to.deep.include({ namespace: 'default', labels: { 'batch.kubernetes.io/job-name': 'jobmetrics-injection-check', 'jobmetrics.io/inject': 'enabled' } });
  });

  const table: [string, unknown, ReturnType<typeof probeAnswer>][] = [
    ['the webhook not reached: no annotation, no sidecar', probePod('batch'), { status: undefined, sidecar: undefined, imagePullSecrets: [] }],
    ['skipped with a reason', { metadata: { annotations: { 'jobmetrics.io/status': 'skipped: no-metrics-port' } }, spec: { containers: [{ name: 'main' }] } }, { status: 'skipped: no-metrics-port', sidecar: undefined, imagePullSecrets: [] }],
    ['an env entry from a reference (no value) is left out', { metadata: { annotations: { 'jobmetrics.io/status': 'injected' } }, spec: { initContainers: [{ name: 'jobmetrics-sidecar', image: 's:1', env: [{ name: 'A', value: '1' }, { name: 'B' }] }] } }, { status: 'injected', sidecar: { in: 'initContainers', image: 's:1', env: { A: '1' } }, imagePullSecrets: [] }],
    ["the pod's pull secrets, by name", { metadata: { annotations: { 'jobmetrics.io/status': 'injected' } }, spec: { imagePullSecrets: [{ name: 'mine' }, { name: 'regcred' }], initContainers: [{ name: 'jobmetrics-sidecar', image: 's:1' }] } }, { status: 'injected', sidecar: { in: 'initContainers', image: 's:1', env: {} }, imagePullSecrets: ['mine', 'regcred'] }],
  ];
  for (const [what, pod, want] of table) it(what, () => expect(probeAnswer(pod)).to.deep.equal(want));
});
