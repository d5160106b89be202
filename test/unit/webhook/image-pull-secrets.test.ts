/** sidecar.imagePullSecrets: the Secrets an injected pod needs to pull the sidecar from a private registry. */
import { expect } from 'chai';
import { defaultSettings } from '../../../webhook/config.ts';
import { mutate } from '../../../webhook/mutate.ts';
import { loadPod } from './golden.ts';

describe('webhook: sidecar.imagePullSecrets on injected pods', () => {
  const secretsAfter = (setting: string[], podHas: unknown): unknown => {
    const pod = loadPod('pod-annotations-good');
    if (podHas !== undefined) pod.spec.imagePullSecrets = podHas as { name: string }[];
    const sidecar = { ...defaultSettings().sidecar, imagePullSecrets: setting };
    const r = mutate(pod, { sidecar, mode: 'native', nowMs: Date.UTC(2026, 0, 15) });
    expect(r.inject).to.equal(true);
    return r.pod.spec.imagePullSecrets;
  };
  const table: { what: string; setting: string[]; podHas?: unknown; after: unknown }[] = [
    { what: 'none set: the pod is left as it was (no field added)', setting: [], after: undefined },
    { what: 'none set, the pod has its own: kept as they are', setting: [], podHas: [{ name: 'team' }], after: [{ name: 'team' }] },
    { what: 'added to a pod without any', setting: ['regcred'], after: [{ name: 'regcred' }] },
    { what: 'appended after the pod\'s own, in the setting\'s order', setting: ['regcred', 'mirror'], podHas: [{ name: 'team' }], after: [{ name: 'team' }, { name: 'regcred' }, { name: 'mirror' }] },
    { what: 'a Secret the pod lists already is not listed twice', setting: ['regcred', 'mirror'], podHas: [{ name: 'mirror' }], after: [{ name: 'mirror' }, { name: 'regcred' }] },
  ];
  for (const t of table) {
    it(t.what, () => {
      expect(secretsAfter(t.setting, t.podHas)).to.deep.equal(t.after);
    });
  }

  it('the setting is a comma-separated list of Secret names; a bad name names the setting', async () => {
    const { loadSettings } = await import('../../../webhook/config.ts');
    const good = loadSettings({ env: { JOBMETRICS_SIDECAR_IMAGE_PULL_SECRETS: ' regcred, mirror.example ' }, readFile: () => '' });
    expect(good.ok && good.settings.sidecar.imagePullSecrets).to.deep.equal(['regcred', 'mirror.example']);
    const bad = loadSettings({ env: { JOBMETRICS_SIDECAR_IMAGE_PULL_SECRETS: 'Reg_Cred' }, readFile: () => '' });
    expect(bad.ok ? [] : bad.errors.map((e) => e.setting)).to.deep.equal(['sidecar.imagePullSecrets (JOBMETRICS_SIDECAR_IMAGE_PULL_SECRETS)']);
  });
});
