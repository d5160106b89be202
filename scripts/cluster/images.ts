/**
 * The cluster's images, from scripts/build-images (every image is built here: no public registry
 * can be reached). This module only runs that script and reads its list of archives; the project's
 * own two go through the cluster's registry instead (registry.ts).
 */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { ROOT } from './paths.ts';
import type { ClusterImages } from './cluster.ts';

const SCRIPT = join(ROOT, 'scripts', 'build-images');
const BASES = ['docker.io/library/debian:', 'docker.io/library/node:', 'gcr.io/distroless/'];
/** The project's two images: pushed to the cluster's registry and pulled from there (registry.ts), never imported. */
const PULLED = ['ghcr.io/jobmetrics/'];

export class ImageBuildError extends Error {
  constructor(
    readonly args: readonly string[],
    readonly status: number | null,
    readonly output: string,
  ) {
    super(`scripts/build-images ${args.join(' ')} failed (exit ${status ?? 'by signal'}):\n${output.trim().split('\n').slice(-30).join('\n')}`);
    this.name = 'ImageBuildError';
  }
}

function buildImages(args: readonly string[], progress: (line: string) => void): string {
  const r = spawnSync('bash', [SCRIPT, ...args], { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
  const output = `${r.stdout ?? ''}${r.stderr ?? ''}`;
  for (const line of (r.stdout ?? '').split('\n')) if (line.startsWith('build-images [')) progress(line.replace(/^build-images /, ''));
  if (r.status !== 0) throw new ImageBuildError(args, r.status, output);
  return r.stdout ?? '';
}

/** Runs the script with its progress lines on our stdout as they come (builds take minutes). */
function buildImagesLive(args: readonly string[]): void {
  const r = spawnSync('bash', [SCRIPT, ...args], { stdio: ['ignore', 'inherit', 'pipe'], encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
  if (r.status !== 0) throw new ImageBuildError(args, r.status, r.stderr ?? '');
}

/** Builds whatever image is missing or stale (quick when all are cached), showing its progress. */
export function ensureImages(): void {
  buildImagesLive(['all']);
}

/** `<name> <archive>` for every built image. */
export function builtImages(): Map<string, string> {
  const out = buildImages(['list'], () => {});
  const images = new Map<string, string>();
  for (const line of out.split('\n')) {
    const [name, archive] = line.trim().split(/\s+/);
    if (name && archive) images.set(name, archive);
  }
  return images;
}

/** What the cluster imports, and the names of its pause and CoreDNS images. */
export function clusterImages(): ClusterImages {
  const images = builtImages();
  const named = (prefix: string): string => {
    const name = [...images.keys()].find((n) => n.startsWith(prefix));
    if (!name) throw new Error(`no ${prefix}* image among the built ones (run bash scripts/build-images): ${[...images.keys()].join(', ')}`);
    return name;
  };
  // The stand-in bases are for builds (buildah's store has them); pods run the images built on them.
  const archives = [...images.entries()].filter(([name]) => !BASES.some((b) => name.startsWith(b)) && !PULLED.some((p) => name.startsWith(p))).map(([, archive]) => archive);
  return { archives, pause: named('localhost/jobmetrics/pause:'), coredns: named('localhost/jobmetrics/coredns:') };
}

/** Builds `<dir>/Dockerfile` as `name`; returns its archive. */
export function buildImage(dir: string, name: string): string {
  buildImagesLive(['job', dir, name]);
  const images = builtImages();
  const archive = images.get(name) ?? [...images.entries()].find(([n]) => n.endsWith(`/${name}`) || n === `docker.io/library/${name}`)?.[1];
  if (!archive) throw new Error(`scripts/build-images built ${name} but does not list it`);
  return archive;
}
