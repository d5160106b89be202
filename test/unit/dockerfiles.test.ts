/**
 * Dockerfile.webhook and Dockerfile.sidecar, checked without a container engine (there is none where
 * these tests run, so the images are never built here): the stages and their pinned bases, every
 * COPY source (from the build context through .dockerignore, or produced by an earlier stage), the
 * numeric non-root user the manifests and the webhook expect, exec-form entry points that name the
 * compiled programs, no RUN in the runtime stage (distroless has no shell), production
 * dependencies only, OCI labels, and image names that match what the manifests deploy.
 * test/integration/dockerfile-runtime.test.ts runs the runtime stages' contents;
 * test/integration/dockerfile-lint.test.ts lints both files.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { expect } from 'chai';
import { parse, parseAllDocuments } from 'yaml';
import { PROJECT_ROOT, SIDECAR_NODE_FLAGS } from '../../scripts/local-pod.ts';
import { sidecarImageBeside } from '../../webhook/sidecar-image.ts';
import { defaultSettings } from '../../webhook/config.ts';
import { SIDECAR_UID } from '../../webhook/mutate.ts';
import { ensureBuilt } from '../support/build.ts';
import {
  args,
  copies,
  copyDestination,
  dockerignore,
  filesUnder,
  importGraph,
  pairs,
  parseDockerfile,
  substitute,
  workdir,
  type Dockerfile,
  type Stage,
} from '../support/dockerfile.ts';

const read = (path: string): string => readFileSync(join(PROJECT_ROOT, path), 'utf8');
const pkg = JSON.parse(read('package.json')) as {
  version: string;
  license: string;
  engines: { node: string };
  bin: Record<string, string>;
  dependencies: Record<string, string>;
  devDependencies: Record<string, string>;
};

/**
 * Node 24 (LTS) on Debian 12 in every stage: the native addon npm picks in `deps` must load in the
 * runtime. The same release scripts/fetch-node fetches, which the stand-in bases and the tests run.
 */
const NODE_IMAGE = 'node:24.22.3-bookworm-slim';
const RUNTIME_IMAGE = 'gcr.io/distroless/nodejs24-debian12:nonroot';
const DIGEST = /@sha256:[0-9a-f]{64}$/;
/** What the build stage copies from the context; tsconfig.build.json compiles these two for local pods only. */
const CONTEXT = ['gateway/', 'package-lock.json', 'package.json', 'recorder/', 'shared/', 'sidecar/', 'tsconfig.build.json', 'tsconfig.json', 'webhook/'];
const NOT_IN_IMAGES = ['scripts/pod-init.ts', 'scripts/sample-job.ts'];
const RUNTIME_KEYWORDS = new Set(['ARG', 'LABEL', 'ENV', 'WORKDIR', 'COPY', 'USER', 'EXPOSE', 'ENTRYPOINT']);

function installManifests(): Record<string, unknown>[] {
  return parseAllDocuments(read('manifests/install.yaml')).map((d) => d.toJSON() as Record<string, unknown>);
}

interface Container {
  name: string;
  image: string;
}
interface Deployment {
  kind: string;
  metadata: { name: string };
  spec: { template: { spec: { securityContext: { runAsUser: number; runAsGroup: number; runAsNonRoot: boolean }; containers: Container[] } } };
}

/** The image each manifest source runs, per program. */
function deployedImages(program: 'webhook' | 'sidecar'): Record<string, string> {
  const docs = installManifests();
  if (program === 'webhook') {
    const rendered = docs.find((d) => d['kind'] === 'Deployment' && (d as unknown as Deployment).metadata.name === 'jobmetrics-webhook') as unknown as Deployment;
    const base = parse(read('manifests/base/webhook-deployment.yaml')) as Deployment;
    const kustomization = parse(read('manifests/base/kustomization.yaml')) as { images: { name: string; newName?: string; newTag: string }[] };
    const entry = kustomization.images.find((i) => i.name === 'ghcr.io/jobmetrics/jobmetrics-webhook')!;
    return {
      'install.yaml Deployment': rendered.spec.template.spec.containers.find((c) => c.name === 'webhook')!.image,
      'base/webhook-deployment.yaml': base.spec.template.spec.containers.find((c) => c.name === 'webhook')!.image,
      'base/kustomization.yaml images': `${entry.newName ?? entry.name}:${entry.newTag}`,
    };
  }
  const settings = docs.find((d) => d['kind'] === 'ConfigMap' && String((d as { metadata: { name: string } }).metadata.name).startsWith('jobmetrics-webhook-settings-')) as {
    data: Record<string, string>;
  };
  // The shipped settings leave sidecar.image empty: the webhook injects the image beside its own.
  const setting = (parse(settings.data['webhook.yaml']!) as { sidecar: { image: string } }).sidecar.image;
  const found = sidecarImageBeside(deployedImages('webhook')['install.yaml Deployment']!);
  const beside = 'image' in found ? found.image : found.error;
  return {
    'install.yaml: sidecar.image, else the image beside the webhook Deployment\'s': setting !== '' ? setting : beside,
    'base/webhook-settings.yaml sidecar.image is empty': (parse(read('manifests/base/webhook-settings.yaml')) as { sidecar: { image: string } }).sidecar.image === '' ? beside : 'not empty',
    'webhook/config.ts default (outside a Pod)': defaultSettings().sidecar.image,
  };
}

/** The runAsUser/runAsGroup the image's user must equal. */
function expectedUser(program: 'webhook' | 'sidecar'): { uid: number; gid: number } {
  if (program === 'sidecar') return { uid: SIDECAR_UID, gid: SIDECAR_UID };
  const rendered = installManifests().find((d) => d['kind'] === 'Deployment' && (d as unknown as Deployment).metadata.name === 'jobmetrics-webhook') as unknown as Deployment;
  const sc = rendered.spec.template.spec.securityContext;
  expect(sc.runAsNonRoot).to.equal(true);
  return { uid: sc.runAsUser, gid: sc.runAsGroup };
}

const withoutLines = (s: Stage): unknown => ({ ...s, instructions: s.instructions.map(({ line: _line, ...rest }) => rest) });

describe('the .dockerignore matcher (test support)', () => {
  const ignored = dockerignore(['# comment', '*', '!keep/', '!top.json', '**/*.test.ts', 'keep/secret'].join('\n'));
  const cases: [string, boolean][] = [
    ['top.json', false],
    ['other.json', true],
    ['keep/a.ts', false],
    ['keep/deep/b.ts', false],
    ['keep/deep/b.test.ts', true],
    ['keep/secret', true],
    ['keep/secret/x', true],
    ['node_modules/x/index.js', true],
    ['.git/HEAD', true],
  ];
  for (const [path, excluded] of cases) {
    it(`${path} is ${excluded ? 'excluded' : 'sent'}`, () => expect(ignored(path)).to.equal(excluded));
  }
});

describe('Dockerfiles', function () {
  // ensureBuilt compiles once (a few seconds): the entry points must exist in dist/.
  this.timeout(60_000);
  before(function () {
    // Compiling takes minutes on a loaded machine; not under test.
    this.timeout(600_000);
    ensureBuilt();
  });
  const ignored = dockerignore(read('.dockerignore'));
  const parsed: Record<string, Dockerfile> = {};

  for (const program of ['webhook', 'sidecar'] as const) {
    const file = `Dockerfile.${program}`;
    const df = parseDockerfile(read(file));
    parsed[program] = df;
    const stage = (name: string): Stage => df.stages.find((s) => s.name === name)!;
    const final = df.stages.at(-1)!;

    describe(file, () => {
      it('has a build stage, a production-dependency stage and a runtime stage, on pinned bases', () => {
        expect(df.preamble).to.deep.equal([]);
        // A digest after the tag (docs/install.md, "Pinning the bases by digest") is welcome.
        expect(df.stages.map((s) => [s.name ?? '(runtime)', s.base.replace(DIGEST, '')])).to.deep.equal([
          ['build', NODE_IMAGE],
          ['deps', NODE_IMAGE],
          ['(runtime)', RUNTIME_IMAGE],
        ]);
      });

      it('pins every base: an explicit tag, never latest; Node by full version, >= engines.node, the release scripts/fetch-node fetches; Node 24 on Debian 12 throughout', () => {
        for (const s of df.stages) {
          const tag = /^[^@]+:([^:/@]+)$/.exec(s.base.replace(DIGEST, ''))?.[1];
          expect(tag, s.base).to.be.a('string');
          expect(tag).to.not.equal('latest');
        }
        const node = /^node:(\d+)\.(\d+)\.(\d+)-bookworm-slim$/.exec(NODE_IMAGE)!;
        const min = /^>=(\d+)\.(\d+)\.(\d+)$/.exec(pkg.engines.node)!;
        const version = (m: RegExpExecArray): number => Number(m[1]) * 1e6 + Number(m[2]) * 1e3 + Number(m[3]);
        expect(version(node)).to.be.at.least(version(min));
        expect(/^NODE_VERSION=(\S+)$/m.exec(read('scripts/fetch-node'))?.[1]).to.equal(`${node[1]}.${node[2]}.${node[3]}`);
        // bookworm is Debian 12; distroless names the Node major and the Debian release.
        expect(/^gcr\.io\/distroless\/nodejs(\d+)-debian(\d+):nonroot$/.exec(RUNTIME_IMAGE)!.slice(1)).to.deep.equal([node[1], '12']);
      });

      it('compiles on the build platform, installs dependencies and runs on the target platform', () => {
        expect(df.stages.map((s) => s.platform ?? '(target)')).to.deep.equal(['$BUILDPLATFORM', '(target)', '(target)']);
      });

      it('every COPY source from the build context exists and is sent (.dockerignore)', () => {
        const sources = new Set<string>();
        for (const s of df.stages) {
          for (const c of copies(s)) {
            if (c.from !== undefined) continue;
            for (const src of c.sources) {
              sources.add(src);
              expect(existsSync(join(PROJECT_ROOT, src)), `${file}:${c.line} ${src}`).to.equal(true);
              const files = filesUnder(PROJECT_ROOT, src);
              expect(files.length, src).to.be.above(0);
              expect(files.filter(ignored), `${file}:${c.line}: excluded by .dockerignore`).to.deep.equal([]);
            }
          }
        }
        expect([...sources].sort()).to.deep.equal(CONTEXT);
      });

      it('the build stage gets what tsconfig.build.json compiles into the images', () => {
        const build = copies(stage('build')).flatMap((c) => c.sources);
        const tsconfig = JSON.parse(read('tsconfig.build.json')) as { extends: string; include: string[] };
        expect(build).to.include(tsconfig.extends.replace(/^\.\//, ''));
        expect(build).to.include('tsconfig.build.json');
        expect(tsconfig.include.filter((i) => !build.includes(`${i}/`))).to.deep.equal(NOT_IN_IMAGES);
        expect(stage('build').instructions.filter((i) => i.keyword === 'RUN').map((i) => i.args)).to.deep.equal([
          'npm ci --ignore-scripts --no-audit --no-fund',
          'npm run build',
        ]);
      });

      it('the runtime stage copies package.json, node_modules from deps and the compiled program from build', () => {
        const build = stage('build');
        const deps = stage('deps');
        expect(copies(final).map((c) => [c.from ?? '(context)', c.sources, copyDestination(final, c)])).to.deep.equal([
          ['(context)', ['package.json'], '/app'],
          ['deps', [`${workdir(deps)}/node_modules/`], '/app/node_modules'],
          // The webhook's image carries the gateway and the recorder too (their Deployments run them by command).
          ...(program === 'webhook'
            ? [
                ['build', [`${workdir(build)}/dist/gateway/`], '/app/dist/gateway'],
                ['build', [`${workdir(build)}/dist/recorder/`], '/app/dist/recorder'],
              ]
            : []),
          ['build', [`${workdir(build)}/dist/shared/`], '/app/dist/shared'],
          ['build', [`${workdir(build)}/dist/${program}/`], `/app/dist/${program}`],
        ]);
        // The build stage's dist/<dir>/ comes from <dir>/ compiled by `npm run build`; ensureBuilt did the same here.
        const compiled = copies(build).flatMap((c) => c.sources);
        for (const c of copies(final).filter((c) => c.from === 'build')) {
          const dir = relative(join(workdir(build), 'dist'), c.sources[0]!);
          expect(compiled, dir).to.include(`${dir}/`);
          expect(existsSync(join(PROJECT_ROOT, 'dist', dir)), `dist/${dir}`).to.equal(true);
        }
      });

      it('every module the program loads (also lazily) is in the copied part of dist/, every package a production dependency', () => {
        for (const bin of program === 'webhook' ? (['webhook', 'gateway'] as const) : ([program] as const)) {
          const graph = importGraph(join(PROJECT_ROOT, pkg.bin[`jobmetrics-${bin}`]!));
          const outside = graph.files.map((f) => relative(join(PROJECT_ROOT, 'dist'), f)).filter((f) => !f.startsWith('shared/') && !f.startsWith(`${bin}/`));
          expect(outside, bin).to.deep.equal([]);
          expect(graph.packages.filter((p) => pkg.dependencies[p] === undefined), bin).to.deep.equal([]);
        }
      });

      it('the runtime stage has no RUN, no shell and no CMD: only files, metadata, the user and the entry point', () => {
        expect(final.instructions.map((i) => i.keyword).filter((k) => !RUNTIME_KEYWORDS.has(k))).to.deep.equal([]);
        expect(final.instructions.filter((i) => i.keyword === 'ENTRYPOINT')).to.have.length(1);
      });

      it(`runs as the numeric non-root user the manifests and the webhook set (${program === 'sidecar' ? '65531:65531' : '65532:65532'})`, () => {
        const users = final.instructions.filter((i) => i.keyword === 'USER').map((i) => i.args);
        expect(users).to.deep.equal([program === 'sidecar' ? '65531:65531' : '65532:65532']);
        const [uid, gid] = users[0]!.split(':').map(Number);
        expect(uid).to.be.above(0);
        expect({ uid, gid }).to.deep.equal(expectedUser(program));
      });

      it('starts node on the compiled bin with an exec-form ENTRYPOINT; the file exists in dist/', () => {
        const entry = final.instructions.find((i) => i.keyword === 'ENTRYPOINT')!;
        // The sidecar's Node flags are those the demo, the tests and the benchmarks run it with.
        const flags = program === 'sidecar' ? SIDECAR_NODE_FLAGS : [];
        expect(entry.json).to.deep.equal(['/nodejs/bin/node', ...flags, `/app/dist/${program}/main.js`]);
        const script = relative(workdir(final), entry.json![entry.json!.length - 1]!);
        expect(script).to.equal(pkg.bin[`jobmetrics-${program}`]);
        expect(existsSync(join(PROJECT_ROOT, script)), script).to.equal(true);
      });

      it('installs production dependencies only, with no install scripts, for the target platform', () => {
        const run = stage('deps').instructions.filter((i) => i.keyword === 'RUN');
        expect(run).to.have.length(1);
        expect(run[0]!.args.startsWith('npm ci --omit=dev --ignore-scripts --no-audit --no-fund')).to.equal(true);
        expect(copies(stage('deps')).map((c) => c.sources)).to.deep.equal([['package.json', 'package-lock.json']]);
      });

      it('OCI labels name the image, its version (package.json), its license and its base', () => {
        const labels = Object.fromEntries(Object.entries(pairs(final, 'LABEL')).map(([k, v]) => [k, substitute(v, args(final))]));
        const description = labels['org.opencontainers.image.description'];
        expect(description).to.match(/^jobmetrics /);
        expect(labels).to.deep.equal({
          'org.opencontainers.image.title': `jobmetrics-${program}`,
          'org.opencontainers.image.description': description,
          'org.opencontainers.image.version': pkg.version,
          'org.opencontainers.image.revision': 'unknown',
          'org.opencontainers.image.licenses': pkg.license,
          'org.opencontainers.image.base.name': RUNTIME_IMAGE,
        });
        expect(pairs(final, 'ENV')).to.deep.equal({ NODE_ENV: 'production' });
      });

      it('its documented build command makes the image the manifests deploy, tagged with the package version', () => {
        const commands = df.comments.map((c) => c.trim()).filter((c) => c.startsWith('docker build'));
        const image = `ghcr.io/jobmetrics/jobmetrics-${program}:${pkg.version}`;
        expect(commands).to.deep.equal([`docker build -f ${file} -t ${image} .`]);
        const deployed = deployedImages(program);
        expect(Object.values(deployed).map((v) => v === image)).to.deep.equal(Object.keys(deployed).map(() => true), JSON.stringify(deployed));
        expect(args(final)['VERSION']).to.equal(pkg.version);
        expect(read('docs/install.md')).to.include(commands[0]);
      });
    });
  }

  it('both Dockerfiles have the same build stage, so building both images compiles once', () => {
    expect(withoutLines(parsed['sidecar']!.stages[0]!)).to.deep.equal(withoutLines(parsed['webhook']!.stages[0]!));
  });

  it('the webhook image keeps every production dependency', () => {
    const deps = parsed['webhook']!.stages.find((s) => s.name === 'deps')!;
    expect(deps.instructions.filter((i) => i.keyword === 'RUN').map((i) => i.args)).to.deep.equal(['npm ci --omit=dev --ignore-scripts --no-audit --no-fund']);
  });

  it('the sidecar image leaves out exactly the production dependencies the sidecar does not load', () => {
    const deps = parsed['sidecar']!.stages.find((s) => s.name === 'deps')!;
    const run = deps.instructions.find((i) => i.keyword === 'RUN')!.args;
    const m = /^npm ci --omit=dev --ignore-scripts --no-audit --no-fund && npm uninstall --omit=dev --ignore-scripts --no-audit --no-fund ([@a-z0-9/. -]+)$/.exec(run);
    expect(m, run).to.not.equal(null);
    const loaded = importGraph(join(PROJECT_ROOT, pkg.bin['jobmetrics-sidecar']!)).packages;
    expect(loaded).to.deep.equal(['snappyjs']);
    expect(m![1]!.split(/\s+/).sort()).to.deep.equal(Object.keys(pkg.dependencies).filter((d) => !loaded.includes(d)).sort());
  });

  it('.dockerignore sends the sources and nothing else', () => {
    const sent = ['package.json', 'package-lock.json', 'tsconfig.json', 'tsconfig.build.json', 'shared/names.ts', 'sidecar/main.ts', 'webhook/main.ts'];
    const kept = ['.git/HEAD', 'node_modules/express/package.json', 'dist/webhook/main.js', '.cache/debian/x', 'test/unit/dockerfiles.test.ts', 'bench/run.ts', 'manifests/install.yaml', 'docs/install.md', 'scripts/demo.ts', 'README.md'];
    expect(sent.filter(ignored)).to.deep.equal([]);
    expect(kept.filter((p) => !ignored(p))).to.deep.equal([]);
  });
});
