import { expect } from 'chai';
import { containerImage, sidecarImageBeside, splitImage } from '../../../webhook/sidecar-image.ts';

describe('webhook sidecar image: follows the webhook\'s own (registry, path and tag)', () => {
  const table: [string, string][] = [
    ['ghcr.io/jobmetrics/jobmetrics-webhook:0.1.0', 'ghcr.io/jobmetrics/jobmetrics-sidecar:0.1.0'],
    ['registry.example.com/platform/jobmetrics/jobmetrics-webhook:0.2.0-rc.1', 'registry.example.com/platform/jobmetrics/jobmetrics-sidecar:0.2.0-rc.1'],
    // A registry with a port: its colon is not a tag's.
    ['10.244.0.1:5000/jobmetrics/jobmetrics-webhook:0.1.0', '10.244.0.1:5000/jobmetrics/jobmetrics-sidecar:0.1.0'],
    ['localhost:5000/jobmetrics-webhook', 'localhost:5000/jobmetrics-sidecar'],
    ['jobmetrics-webhook:dev', 'jobmetrics-sidecar:dev'],
    // Tag and digest: the tag names the pair; the digest is the webhook's alone.
    [`reg.local/jobmetrics-webhook:0.1.0@sha256:${'a'.repeat(64)}`, 'reg.local/jobmetrics-sidecar:0.1.0'],
  ];
  for (const [webhook, sidecar] of table) {
    it(`${webhook} -> ${sidecar}`, () => {
      expect(sidecarImageBeside(webhook)).to.deep.equal({ image: sidecar });
    });
  }

  it('refuses a digest alone and an image named otherwise, naming the setting to use', () => {
    expect(sidecarImageBeside(`reg.local/jobmetrics-webhook@sha256:${'b'.repeat(64)}`)).to.deep.equal({
      error: `the webhook's image reg.local/jobmetrics-webhook@sha256:${'b'.repeat(64)} is pinned by digest only, which names no sidecar image: set sidecar.image (JOBMETRICS_SIDECAR_IMAGE), by digest too`,
    });
    expect(sidecarImageBeside('reg.local/mirror/webhook:0.1.0')).to.deep.equal({
      error: "the webhook's image reg.local/mirror/webhook:0.1.0 is not named …/jobmetrics-webhook, so the sidecar's cannot follow it: set sidecar.image (JOBMETRICS_SIDECAR_IMAGE)",
    });
  });

  it('splits name, tag and digest', () => {
    expect(splitImage('h:5000/a/b:t@sha256:x')).to.deep.equal({ name: 'h:5000/a/b', tag: 't', digest: 'sha256:x' });
    expect(splitImage('h:5000/a/b')).to.deep.equal({ name: 'h:5000/a/b' });
  });

  it('reads the named container\'s image from a Pod as the API returns it', () => {
    const pod = { spec: { containers: [{ name: 'other', image: 'x' }, { name: 'webhook', image: 'r/jobmetrics-webhook:1' }] } };
    expect(containerImage(pod, 'webhook')).to.equal('r/jobmetrics-webhook:1');
    expect(containerImage(pod, 'missing')).to.equal(undefined);
    expect(containerImage(null, 'webhook')).to.equal(undefined);
  });
});
