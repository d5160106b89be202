import { expect } from 'chai';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { checkTree, packageVersion, ROOT, staleVersions, VERSIONED_FILES, withVersion } from '../../../scripts/version.ts';
import { defaultSettings } from '../../../webhook/config.ts';

describe('the version in one place (scripts/version.ts, `npm run set-version`)', () => {
  it('every image tag, build argument and version label in the tree is package.json\'s', () => {
    expect(checkTree()).to.deep.equal([]);
  });

  it('moving it rewrites every place, and nothing else', () => {
    const version = packageVersion();
    for (const f of VERSIONED_FILES) {
      const text = readFileSync(join(ROOT, f), 'utf8');
      const moved = withVersion(text, '9.8.7-rc.1');
      expect(staleVersions(moved, '9.8.7-rc.1'), f).to.deep.equal([]);
      expect(staleVersions(moved, version).length, `${f} names the version`).to.be.above(0);
      // Only the versions changed: moving back gives the file as it was.
      expect(withVersion(moved, version), f).to.equal(text);
    }
  });

  const cases: Array<[string, string, string]> = [
    ['an image tag', 'image: ghcr.io/jobmetrics/jobmetrics-sidecar:0.1.0', 'image: ghcr.io/jobmetrics/jobmetrics-sidecar:1.2.3'],
    ['a registry of the docs', '-t registry.example.com/jobmetrics/jobmetrics-webhook:0.1.0 .', '-t registry.example.com/jobmetrics/jobmetrics-webhook:1.2.3 .'],
    ['the Dockerfile argument', 'ARG VERSION=0.1.0', 'ARG VERSION=1.2.3'],
    ['the version label', '      app.kubernetes.io/version: 0.1.0', '      app.kubernetes.io/version: 1.2.3'],
    ['the kustomize image tag', '    newTag: 0.1.0', '    newTag: 1.2.3'],
    ['the chart\'s version', 'version: 0.1.0', 'version: 1.2.3'],
    ['the chart\'s appVersion', 'appVersion: "0.1.0"', 'appVersion: "1.2.3"'],
    ['a nested version stays', '  version: 0.1.0', '  version: 0.1.0'],
    ['another project\'s image stays', 'image: docker.io/victoriametrics/vmagent:v1.112.0', 'image: docker.io/victoriametrics/vmagent:v1.112.0'],
    ['a Go module stays', 'github.com/containerd/log v0.1.0 // indirect', 'github.com/containerd/log v0.1.0 // indirect'],
  ];
  for (const [what, before, after] of cases) {
    it(`${what}: ${JSON.stringify(before)}`, () => expect(withVersion(before, '1.2.3')).to.equal(after));
  }

  it('the webhook\'s default sidecar image carries package.json\'s version', () => {
    expect(defaultSettings().sidecar.image).to.equal(`ghcr.io/jobmetrics/jobmetrics-sidecar:${packageVersion()}`);
  });
});
