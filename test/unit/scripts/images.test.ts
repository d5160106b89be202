/**
 * `npm run images -- push` (scripts/images.ts): its decisions as data, and the install it prints
 * rendered by the real `kubectl kustomize`: one `images:` entry moves both images.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { expect } from 'chai';
import { parse, parseAllDocuments } from 'yaml';
import { controlPlaneBinaries } from '../../../scripts/cluster/control-plane.ts';
import { chooseEngine, installInstructions, kustomization, parsePushArgs, pushPlan, type PushOptions } from '../../../scripts/images.ts';
import { ROOT } from '../../../scripts/version.ts';
import { sidecarImageBeside } from '../../../webhook/sidecar-image.ts';

const CTX = { version: '0.1.0', revision: 'abc123', imagesCache: '/cache' };
const opts = (o: Partial<PushOptions> = {}): PushOptions => ({ registry: 'reg.example.com/team', tag: '0.1.0', tlsVerify: true, standInBases: false, ...o });

describe('scripts/images.ts: build, push and print the install', () => {
  describe('the command line', () => {
    const table: { argv: string[]; out: object }[] = [
      { argv: ['--registry', 'reg.example.com/team'], out: opts() },
      { argv: ['--registry=10.244.0.1:5000/jobmetrics/', '--tag', '0.2.0-rc.1', '--tls-verify=false'], out: opts({ registry: '10.244.0.1:5000/jobmetrics', tag: '0.2.0-rc.1', tlsVerify: false }) },
      { argv: ['--registry', 'r.io', '--engine', 'podman', '--authfile', '/a.json'], out: opts({ registry: 'r.io', engine: 'podman', authfile: '/a.json' }) },
      { argv: ['--registry', 'r.io', '--stand-in-bases'], out: opts({ registry: 'r.io', standInBases: true }) },
      { argv: [], out: { error: '--registry <host[:port]/path> is required' } },
      { argv: ['--registry', 'Reg.io/x:1.0'], out: { error: '--registry Reg.io/x:1.0: a registry host (with its port) and an optional path, lowercase, no tag' } },
      { argv: ['--registry', 'r.io', '--tag', 'a/b'], out: { error: '--tag a/b: not an image tag' } },
      { argv: ['--registry', 'r.io', '--engine', 'kaniko'], out: { error: '--engine kaniko: one of docker, podman, buildah' } },
      { argv: ['--registry', 'r.io', '--push-now'], out: { error: 'unknown argument --push-now' } },
    ];
    for (const t of table) {
      it(`${t.argv.join(' ') || '(nothing)'}`, () => {
        expect(parsePushArgs(t.argv, '0.1.0')).to.deep.equal(t.out);
      });
    }
  });

  it('takes the engine asked for, else the first of docker, podman, buildah on PATH', () => {
    expect(chooseEngine(new Set(['buildah', 'podman']))).to.equal('podman');
    expect(chooseEngine(new Set(['buildah']))).to.equal('buildah');
    expect(chooseEngine(new Set(['docker', 'buildah']), 'buildah')).to.equal('buildah');
    expect(chooseEngine(new Set(['docker']), 'podman')).to.deep.equal({ error: '--engine podman: podman is not on PATH' });
    expect(chooseEngine(new Set())).to.deep.equal({ error: 'no container engine on PATH: install docker, podman or buildah' });
  });

  it('docker: builds each Dockerfile with the version and revision, then pushes both under the tag', () => {
    const argv = (pushPlan(opts(), 'docker', CTX) as { argv: readonly string[] }[]).map((s) => s.argv.join(' '));
    expect(argv).to.deep.equal([
      `docker build -f ${join(ROOT, 'Dockerfile.webhook')} --build-arg VERSION=0.1.0 --build-arg REVISION=abc123 -t reg.example.com/team/jobmetrics-webhook:0.1.0 ${ROOT}`,
      `docker build -f ${join(ROOT, 'Dockerfile.sidecar')} --build-arg VERSION=0.1.0 --build-arg REVISION=abc123 -t reg.example.com/team/jobmetrics-sidecar:0.1.0 ${ROOT}`,
      'docker push reg.example.com/team/jobmetrics-webhook:0.1.0',
      'docker push reg.example.com/team/jobmetrics-sidecar:0.1.0',
    ]);
    expect(pushPlan(opts({ tlsVerify: false }), 'docker', CTX)).to.deep.equal({ error: "docker has no --tls-verify: add the registry to the daemon's insecure-registries (daemon.json) and leave the flag out" });
  });

  it('podman and buildah: --tls-verify and --authfile reach the push', () => {
    const podman = (pushPlan(opts({ tlsVerify: false, authfile: '/a.json' }), 'podman', CTX) as { argv: readonly string[] }[]).map((s) => s.argv.join(' '));
    expect(podman.slice(2)).to.deep.equal([
      'podman push --tls-verify=false --authfile /a.json reg.example.com/team/jobmetrics-webhook:0.1.0',
      'podman push --tls-verify=false --authfile /a.json reg.example.com/team/jobmetrics-sidecar:0.1.0',
    ]);
    const buildah = (pushPlan(opts(), 'buildah', CTX) as { argv: readonly string[] }[]).map((s) => s.argv.slice(0, 2).join(' '));
    expect(buildah).to.deep.equal(['buildah bud', 'buildah bud', 'buildah push', 'buildah push']);
  });

  it('--stand-in-bases: scripts/build-images builds, then buildah pushes from its store under the lock', () => {
    const steps = pushPlan(opts({ registry: '10.244.0.1:5000/jobmetrics', tlsVerify: false, standInBases: true }), 'buildah', CTX) as { argv: readonly string[] }[];
    expect(steps.map((s) => s.argv.join(' '))).to.deep.equal([
      `bash ${join(ROOT, 'scripts', 'build-images')} all`,
      'flock /cache/.lock buildah --root /cache/storage --runroot /cache/run --storage-driver vfs push --tls-verify=false ghcr.io/jobmetrics/jobmetrics-webhook:0.1.0 docker://10.244.0.1:5000/jobmetrics/jobmetrics-webhook:0.1.0',
      'flock /cache/.lock buildah --root /cache/storage --runroot /cache/run --storage-driver vfs push --tls-verify=false ghcr.io/jobmetrics/jobmetrics-sidecar:0.1.0 docker://10.244.0.1:5000/jobmetrics/jobmetrics-sidecar:0.1.0',
    ]);
    expect(pushPlan(opts({ standInBases: true }), 'docker', CTX)).to.deep.equal({ error: '--stand-in-bases builds with buildah (scripts/build-images): use --engine buildah' });
  });

  it('the printed kustomization, rendered by kubectl kustomize: its one images: entry moves every jobmetrics image, the sidecar\'s included', () => {
    const dir = mkdtempSync(join(tmpdir(), 'jobmetrics-images-'));
    try {
      writeFileSync(join(dir, 'kustomization.yaml'), kustomization(relative(dir, join(ROOT, 'manifests', 'base')), 'reg.example.com:5000/team', '9.9.9'));
      const r = spawnSync(controlPlaneBinaries().kubectl, ['kustomize', dir], { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
      expect(r.status, r.stderr).to.equal(0);
      expect(r.stdout).to.not.include('ghcr.io/jobmetrics');
      const docs = parseAllDocuments(r.stdout).map((d) => d.toJSON() as { kind: string; metadata: { name: string }; spec?: { template?: { spec?: { containers?: { name: string; image: string }[] } } }; data?: Record<string, string> });
      const images = docs.flatMap((d) => (d.spec?.template?.spec?.containers ?? []).map((c) => `${d.metadata.name}/${c.name} ${c.image}`)).filter((l) => l.includes('jobmetrics-webhook:') || l.includes('jobmetrics-sidecar:'));
      expect(images.sort()).to.deep.equal([
        'jobmetrics-gateway/gateway reg.example.com:5000/team/jobmetrics-webhook:9.9.9',
        'jobmetrics-recorder/recorder reg.example.com:5000/team/jobmetrics-webhook:9.9.9',
        'jobmetrics-webhook/webhook reg.example.com:5000/team/jobmetrics-webhook:9.9.9',
      ]);
      // The webhook's settings leave the sidecar image to follow its own, so it injects this one.
      const settings = docs.find((d) => d.kind === 'ConfigMap' && d.metadata.name.startsWith('jobmetrics-webhook-settings-'))!;
      expect((parse(settings.data!['webhook.yaml']!) as { sidecar: { image: string } }).sidecar.image).to.equal('');
      expect(sidecarImageBeside('reg.example.com:5000/team/jobmetrics-webhook:9.9.9')).to.deep.equal({ image: 'reg.example.com:5000/team/jobmetrics-sidecar:9.9.9' });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('prints both installs: the kustomization and the Helm values image.registry and image.tag', () => {
    const text = installInstructions('reg.example.com/team', '0.1.0');
    expect(text).to.include('    newName: reg.example.com/team/jobmetrics-webhook');
    expect(text).to.include('--set image.registry=reg.example.com/team --set image.tag=0.1.0');
    // The chart renders the Namespace jobmetrics itself: Helm's --create-namespace for it would make
    // the install fail on a namespace the release does not own.
    expect(text).to.not.include('--create-namespace');
  });
});
