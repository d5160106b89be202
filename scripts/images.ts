/**
 * `npm run images -- push --registry <host[:port]/path>`: build both images with whichever
 * engine is here (docker, podman or buildah), tag them with package.json's version, push them to
 * the registry named, and print the install commands that use them (docs/install.md "Building the
 * images").
 *
 *   npm run images -- push --registry registry.example.com/jobmetrics
 *        [--tag <tag>]              default: package.json's version
 *        [--engine docker|podman|buildah]   default: the first of those on PATH
 *        [--tls-verify=false]       a registry over plain HTTP or with an untrusted certificate
 *                                   (podman and buildah; docker takes it from its daemon's
 *                                   insecure-registries)
 *        [--authfile <file>]        podman and buildah: credentials of `podman login`/`buildah
 *                                   login` elsewhere than their default; docker reads `docker login`'s
 *        [--stand-in-bases]         buildah: build through scripts/build-images, on the project's
 *                                   stand-in bases (a machine that reaches no image registry for
 *                                   the bases, like the project's own; docs/stand-in-images.md)
 *
 * One image setting moves both: the webhook injects the sidecar image beside its own
 * (webhook/sidecar-image.ts), so the kustomize overlay printed has one `images:` entry.
 * The decisions are pure functions (tested in test/unit/scripts/images.test.ts); `main` runs them.
 */
import { spawnSync } from 'node:child_process';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { packageVersion, ROOT } from './version.ts';

export const ENGINES = ['docker', 'podman', 'buildah'] as const;
export type Engine = (typeof ENGINES)[number];
export const PROGRAMS = ['webhook', 'sidecar'] as const;
export type Program = (typeof PROGRAMS)[number];

/** The names manifests/base deploys; the kustomize `images:` entry rewrites the webhook's. */
export const PUBLISHED = 'ghcr.io/jobmetrics';

export interface PushOptions {
  readonly registry: string;
  readonly tag: string;
  readonly engine?: Engine;
  readonly tlsVerify: boolean;
  readonly authfile?: string;
  readonly standInBases: boolean;
}

/** The command line after `push`, or what is wrong with it. */
export function parsePushArgs(argv: readonly string[], version: string): PushOptions | { error: string } {
  let registry: string | undefined;
  let tag = version;
  let engine: Engine | undefined;
  let tlsVerify = true;
  let authfile: string | undefined;
  let standInBases = false;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const [flag, inline] = a.includes('=') ? [a.slice(0, a.indexOf('=')), a.slice(a.indexOf('=') + 1)] : [a, undefined];
    const value = (): string | undefined => inline ?? argv[++i];
    switch (flag) {
      case '--registry':
        registry = value();
        break;
      case '--tag':
        tag = value() ?? '';
        break;
      case '--engine': {
        const e = value();
        if (!ENGINES.includes(e as Engine)) return { error: `--engine ${e ?? ''}: one of ${ENGINES.join(', ')}` };
        engine = e as Engine;
        break;
      }
      case '--tls-verify': {
        const v = inline ?? 'true';
        if (v !== 'true' && v !== 'false') return { error: `--tls-verify=${v}: true or false` };
        tlsVerify = v === 'true';
        break;
      }
      case '--authfile':
        authfile = value();
        if (authfile === undefined) return { error: '--authfile needs a file' };
        break;
      case '--stand-in-bases':
        standInBases = true;
        break;
      default:
        return { error: `unknown argument ${a}` };
    }
  }
  if (registry === undefined || registry === '') return { error: '--registry <host[:port]/path> is required' };
  registry = registry.replace(/\/+$/, '');
  if (!/^[a-z0-9.-]+(:\d+)?(\/[a-z0-9._-]+)*$/.test(registry)) return { error: `--registry ${registry}: a registry host (with its port) and an optional path, lowercase, no tag` };
  if (!/^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/.test(tag)) return { error: `--tag ${tag}: not an image tag` };
  return { registry, tag, ...(engine !== undefined && { engine }), tlsVerify, ...(authfile !== undefined && { authfile }), standInBases };
}

/** The engine to use: the one asked for, else the first one present. */
export function chooseEngine(present: ReadonlySet<string>, asked?: Engine): Engine | { error: string } {
  if (asked !== undefined) return present.has(asked) ? asked : { error: `--engine ${asked}: ${asked} is not on PATH` };
  return ENGINES.find((e) => present.has(e)) ?? { error: `no container engine on PATH: install docker, podman or buildah` };
}

export const imageName = (registry: string, program: Program, tag: string): string => `${registry}/jobmetrics-${program}:${tag}`;

export interface Step {
  readonly what: string;
  readonly argv: readonly string[];
}

/**
 * The commands that build and push both images. With --stand-in-bases, scripts/build-images
 * builds them into its own buildah store under the names manifests/ deploys, and they are pushed
 * from there; otherwise the engine builds each Dockerfile from the project root.
 */
export function pushPlan(o: PushOptions, engine: Engine, ctx: { version: string; revision: string; imagesCache: string }): Step[] | { error: string } {
  if (o.standInBases && engine !== 'buildah') return { error: '--stand-in-bases builds with buildah (scripts/build-images): use --engine buildah' };
  if (!o.tlsVerify && engine === 'docker') return { error: "docker has no --tls-verify: add the registry to the daemon's insecure-registries (daemon.json) and leave the flag out" };
  const tls = engine === 'docker' ? [] : [`--tls-verify=${o.tlsVerify}`];
  const auth = o.authfile === undefined ? [] : engine === 'docker' ? [] : ['--authfile', o.authfile];
  if (o.authfile !== undefined && engine === 'docker') return { error: '--authfile: docker reads the credentials of `docker login` (its config.json); leave the flag out' };
  const steps: Step[] = [];
  if (o.standInBases) {
    steps.push({ what: 'build both images on the stand-in bases (scripts/build-images)', argv: ['bash', join(ROOT, 'scripts', 'build-images'), 'all'] });
    const store = ['buildah', '--root', join(ctx.imagesCache, 'storage'), '--runroot', join(ctx.imagesCache, 'run'), '--storage-driver', 'vfs'];
    for (const p of PROGRAMS) {
      const target = imageName(o.registry, p, o.tag);
      // The build store's lock: no scripts/build-images may change the store while it is read.
      steps.push({ what: `push ${target}`, argv: ['flock', join(ctx.imagesCache, '.lock'), ...store, 'push', ...tls, ...auth, imageName(PUBLISHED, p, ctx.version), `docker://${target}`] });
    }
    return steps;
  }
  for (const p of PROGRAMS) {
    const target = imageName(o.registry, p, o.tag);
    const build = engine === 'buildah' ? ['buildah', 'bud'] : [engine, 'build'];
    steps.push({
      what: `build ${target}`,
      argv: [...build, '-f', join(ROOT, `Dockerfile.${p}`), '--build-arg', `VERSION=${ctx.version}`, '--build-arg', `REVISION=${ctx.revision}`, '-t', target, ROOT],
    });
  }
  for (const p of PROGRAMS) {
    const target = imageName(o.registry, p, o.tag);
    steps.push({ what: `push ${target}`, argv: [engine, 'push', ...tls, ...auth, target, ...(engine === 'buildah' ? [`docker://${target}`] : [])] });
  }
  return steps;
}

/**
 * A kustomization that installs manifests/base (at `base`, relative to the kustomization's folder:
 * kustomize refuses an absolute one) with the pushed images: one `images:` entry, since the
 * sidecar image follows the webhook's (sidecar.image is empty in the base).
 */
export function kustomization(base: string, registry: string, tag: string): string {
  return [
    'apiVersion: kustomize.config.k8s.io/v1beta1',
    'kind: Kustomization',
    'resources:',
    `  - ${base}`,
    'images:',
    `  - name: ${PUBLISHED}/jobmetrics-webhook`,
    `    newName: ${registry}/jobmetrics-webhook`,
    `    newTag: "${tag}"`,
    '',
  ].join('\n');
}

/** What to run next, for both ways to install. */
export function installInstructions(registry: string, tag: string): string {
  return [
    `Pushed ${imageName(registry, 'webhook', tag)} (webhook, gateway, recorder)`,
    `   and ${imageName(registry, 'sidecar', tag)} (injected into Job pods: the webhook follows its own image to it).`,
    '',
    `Install with kustomize (one images: entry moves both images), an overlay in the checkout (${ROOT.replace(/\/$/, '')}):`,
    '',
    '  mkdir -p manifests/overlays/registry && cat > manifests/overlays/registry/kustomization.yaml <<EOF',
    ...kustomization('../../base', registry, tag).trimEnd().split('\n').map((l) => `  ${l}`),
    '  EOF',
    '  kubectl apply -k manifests/overlays/registry',
    '',
    'or with Helm (image.registry and image.tag move both; the chart creates the namespace jobmetrics itself):',
    '',
    `  helm install jobmetrics ${join(ROOT, 'charts', 'jobmetrics')} \\`,
    `    --set image.registry=${registry} --set image.tag=${tag}`,
    '',
    'A private registry: create a pull Secret in namespace jobmetrics and in every namespace whose Jobs',
    'get the sidecar, and name it (docs/install.md "Private registries").',
  ].join('\n');
}

function onPath(cmd: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }).status === 0;
}

function main(argv: readonly string[]): number {
  const usage = 'usage: npm run images -- push --registry <host[:port]/path> [--tag <tag>] [--engine docker|podman|buildah] [--tls-verify=false] [--authfile <file>] [--stand-in-bases]';
  if (argv[0] === '--help' || argv[0] === '-h') {
    console.log(usage);
    return 0;
  }
  if (argv[0] !== 'push') {
    console.error(`images: ${argv[0] === undefined ? 'a command is required' : `unknown command ${argv[0]}`}\n${usage}`);
    return 2;
  }
  const version = packageVersion();
  const o = parsePushArgs(argv.slice(1), version);
  if ('error' in o) {
    console.error(`images: ${o.error}\n${usage}`);
    return 2;
  }
  const engine = chooseEngine(new Set(ENGINES.filter(onPath)), o.engine);
  if (typeof engine !== 'string') {
    console.error(`images: ${engine.error}`);
    return 1;
  }
  const rev = spawnSync('git', ['-C', ROOT, 'rev-parse', 'HEAD'], { encoding: 'utf8' });
  const plan = pushPlan(o, engine, {
    version,
    revision: rev.status === 0 ? rev.stdout.trim() : 'unknown',
    imagesCache: process.env['JOBMETRICS_IMAGES_CACHE'] ?? join(homedir(), '.cache', 'jobmetrics', 'images'),
  });
  if ('error' in plan) {
    console.error(`images: ${plan.error}`);
    return 2;
  }
  console.log(`images: engine ${engine}${o.standInBases ? ' (stand-in bases, scripts/build-images)' : ''}, tag ${o.tag}, registry ${o.registry}`);
  for (const step of plan) {
    console.log(`images: ${step.what}`);
    const r = spawnSync(step.argv[0]!, step.argv.slice(1), { stdio: 'inherit' });
    if (r.status !== 0) {
      console.error(`images: ${step.what} failed (exit ${r.status ?? r.signal}): ${step.argv.join(' ')}`);
      return 1;
    }
  }
  console.log(`\n${installInstructions(o.registry, o.tag)}`);
  return 0;
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  process.exitCode = main(process.argv.slice(2));
}
