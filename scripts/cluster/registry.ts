/**
 * An image registry beside the node: Debian's `docker-registry` (Docker's distribution registry),
 * fetched with scripts/fetch-debian, listening on the node's address over plain HTTP, its storage
 * in the cluster's folder. The cluster pushes the project's two images into it with
 * `npm run images -- push` (the admin's command) and installs jobmetrics with a kustomize
 * `images:` edit pointing there, so the node's containerd pulls them as any cluster pulls from a
 * registry (hosts.toml: {@link containerdHostsToml}); docs/e2e.md.
 *
 * The configs are pure functions (tested as data); {@link startRegistry} writes them and runs it.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startChild, stopChild, type Child } from '../child-processes.ts';
import { ROOT } from './paths.ts';

/** Debian trixie's package, pinned like vmagent and Prometheus (scripts/install-aggregator). */
export const REGISTRY_PACKAGE = 'docker-registry=2.8.3+ds1-2+b8';
export const REGISTRY_PORT = 5000;
/** The path under the registry the cluster pushes to: <host>/jobmetrics/jobmetrics-<program>. */
export const REGISTRY_PATH = 'jobmetrics';

/** The registry's config: filesystem storage, plain HTTP on `address:port`, no auth. */
export function registryConfig(storage: string, address: string, port: number): string {
  return [
    '# Written by scripts/cluster/registry.ts',
    'version: 0.1',
    'log:',
    '  level: info',
    '  accesslog:',
    '    disabled: false',
    'storage:',
    '  filesystem:',
    `    rootdirectory: ${storage}`,
    '  delete:',
    '    enabled: true',
    'http:',
    `  addr: ${address}:${port}`,
    '',
  ].join('\n');
}

/**
 * containerd's hosts.toml for a registry over plain HTTP
 * (https://github.com/containerd/containerd/blob/main/docs/hosts.md): `<config_path>/<host:port>/hosts.toml`.
 */
export function containerdHostsToml(host: string): string {
  return [`# Written by scripts/cluster/registry.ts`, `server = "http://${host}"`, '', `[host."http://${host}"]`, '  capabilities = ["pull", "resolve"]', ''].join('\n');
}

export interface Registry {
  /** host:port, as image names and containerd's hosts.toml spell it. */
  readonly host: string;
  readonly child: Child;
  stop(): Promise<void>;
}

/** The registry binary, fetched (and unpacked, not installed) once into the project's .cache. */
export function registryBinary(): string {
  const dest = join(process.env['JOBMETRICS_CACHE'] ?? join(ROOT, '.cache'), 'debian');
  const r = spawnSync('bash', [join(ROOT, 'scripts', 'fetch-debian'), dest, REGISTRY_PACKAGE], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`scripts/fetch-debian ${REGISTRY_PACKAGE} failed (exit ${r.status}): ${r.stderr.trim().split('\n').slice(-5).join('\n')}`);
  return join(dest, 'docker-registry', 'usr', 'bin', 'docker-registry');
}

/** Starts the registry on `address` (the node's, so containerd and pods reach it); waits until it answers /v2/. */
export async function startRegistry(dir: string, address: string, port = REGISTRY_PORT): Promise<Registry> {
  const binary = registryBinary();
  mkdirSync(join(dir, 'storage'), { recursive: true });
  const config = join(dir, 'config.yml');
  writeFileSync(config, registryConfig(join(dir, 'storage'), address, port));
  const child = startChild('registry', binary, ['serve', config], join(dir, 'registry.log'));
  const host = `${address}:${port}`;
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (child.exitInfo) throw new Error(`the registry exited at start (${JSON.stringify(child.exitInfo)}); log: ${join(dir, 'registry.log')}`);
    const ok = await fetch(`http://${host}/v2/`, { signal: AbortSignal.timeout(1_000) }).then((r) => r.ok, () => false);
    if (ok) break;
    if (Date.now() > deadline) {
      await stopChild(child, { graceMs: 2_000 });
      throw new Error(`the registry did not answer http://${host}/v2/ within 30 s; log: ${join(dir, 'registry.log')}`);
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  return { host, child, stop: () => stopChild(child, { graceMs: 5_000 }).then(() => undefined) };
}
