/**
 * The project's version lives in package.json; everything that names it follows from there
 * (CHANGELOG.md "Releasing"). This is the one command that moves it:
 *
 *   npm run set-version -- 0.2.0      package.json, the image tags the manifests, the docs and the
 *                                     Dockerfiles name, app.kubernetes.io/version, install.yaml,
 *                                     the chart's version and appVersion
 *   npm run set-version -- --check    lists every place that names another version (exit 1)
 *
 * The binaries' --version and User-Agent read package.json at run time (shared/version.ts), and
 * the webhook's default sidecar image is built from it (webhook/config.ts), so they need nothing.
 * test/unit/scripts/version.test.ts runs the check on the tree.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { controlPlaneBinaries } from './cluster/control-plane.ts';

export const ROOT = fileURLToPath(new URL('..', import.meta.url));

/** The files that name the version, relative to the root (install.yaml is rendered, not edited). */
export const VERSIONED_FILES = [
  'Dockerfile.sidecar',
  'Dockerfile.webhook',
  'README.md',
  'charts/jobmetrics/Chart.yaml',
  'docs/install.md',
  'docs/webhook.md',
  'manifests/aggregator/gateway.yaml',
  'manifests/base/kustomization.yaml',
  'manifests/base/recorder.yaml',
  'manifests/base/webhook-deployment.yaml',
  'test/e2e/injection.test.ts',
  'test/integration/dockerfile-runtime.test.ts',
] as const;

const SEMVER = /^\d+\.\d+\.\d+(?:-[0-9A-Za-z.-]+)?$/;

/**
 * Each way the version is written: our images' tags, the Dockerfiles' build argument, the
 * kustomization's label and image tag, the chart's version and appVersion (Chart.yaml; the chart
 * takes its images' tag and version label from appVersion), the README's status line, and the
 * version tests expect from package.json.
 */
const PATTERNS: ReadonlyArray<RegExp> = [
  /(ghcr\.io\/jobmetrics\/jobmetrics-(?:webhook|sidecar):)([0-9][0-9A-Za-z.-]*)/g,
  /(registry\.example\.com\/jobmetrics\/jobmetrics-(?:webhook|sidecar):)([0-9][0-9A-Za-z.-]*)/g,
  /(^ARG VERSION=)(\S+)/gm,
  /(app\.kubernetes\.io\/version: )(\S+)/g,
  /(^\s+newTag: )(\S+)/gm,
  /(roundTrip: true, version: ')([^']+)/g,
  /(^version: )([0-9][0-9A-Za-z.-]*)/gm,
  /(^appVersion: "?)([0-9][0-9A-Za-z.-]*)/gm,
  // The README's status line.
  /(\*\*Status:\*\* version )([0-9][0-9A-Za-z.-]*)/g,
];

/** `text` with every written version replaced by `version`. Pure. */
export function withVersion(text: string, version: string): string {
  return PATTERNS.reduce((t, p) => t.replace(p, (_m, head: string) => `${head}${version}`), text);
}

/** The versions `text` names that are not `version`: `line: found`. */
export function staleVersions(text: string, version: string): string[] {
  const out: string[] = [];
  text.split('\n').forEach((line, i) => {
    for (const p of PATTERNS) {
      for (const m of line.matchAll(new RegExp(p.source, p.flags.replace('m', '')))) {
        if (m[2] !== version) out.push(`${i + 1}: ${m[0]}`);
      }
    }
  });
  return out;
}

export function packageVersion(root = ROOT): string {
  return (JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version: string }).version;
}

/** Every place under `root` that names a version other than package.json's. */
export function checkTree(root = ROOT): string[] {
  const version = packageVersion(root);
  return [...VERSIONED_FILES, 'manifests/install.yaml'].flatMap((f) => staleVersions(readFileSync(join(root, f), 'utf8'), version).map((s) => `${f}:${s}`));
}

function setVersion(version: string): void {
  if (!SEMVER.test(version)) throw new Error(`"${version}" is not a version (x.y.z)`);
  execFileSync('npm', ['version', version, '--no-git-tag-version', '--allow-same-version'], { cwd: ROOT, stdio: 'inherit' });
  for (const f of VERSIONED_FILES) {
    const path = join(ROOT, f);
    const before = readFileSync(path, 'utf8');
    const after = withVersion(before, version);
    if (after !== before) writeFileSync(path, after);
  }
  // install.yaml is the base rendered by kustomize under its header (docs/install.md).
  const kubectl = controlPlaneBinaries().kubectl;
  const rendered = execFileSync(kubectl, ['kustomize', join(ROOT, 'manifests/base')], { encoding: 'utf8' });
  writeFileSync(join(ROOT, 'manifests/install.yaml'), readFileSync(join(ROOT, 'manifests/install-header.txt'), 'utf8') + rendered);
  const left = checkTree();
  if (left.length > 0) throw new Error(`still naming another version:\n${left.join('\n')}`);
  console.log(`version ${version}: package.json, ${VERSIONED_FILES.length} files and manifests/install.yaml. Add its section to CHANGELOG.md.`);
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const arg = process.argv[2];
  if (arg === '--check') {
    const stale = checkTree();
    for (const s of stale) console.log(s);
    console.log(stale.length === 0 ? `every place names ${packageVersion()}` : `${stale.length} place(s) name another version than package.json's ${packageVersion()}`);
    process.exit(stale.length === 0 ? 0 : 1);
  }
  if (arg === undefined) {
    console.error('usage: npm run set-version -- <x.y.z> | --check');
    process.exit(2);
  }
  try {
    setVersion(arg);
  } catch (error) {
    console.error(`set-version: ${(error as Error).message}`);
    process.exit(1);
  }
}
