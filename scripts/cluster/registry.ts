/**
 * An image registry beside the node: Debian's `docker-registry` (Docker's distribution registry),
 * fetched with scripts/fetch-debian, listening on the node's address over plain HTTP, its storage
 * in the cluster's folder. The cluster pushes the project's two images into it with
 * `npm run images -- push` (the admin's command) and installs jobmetrics with a kustomize
 * `images:` edit pointing there, so the node's containerd pulls them as any cluster pulls from a
 * registry (hosts.toml: {@link containerdHostsToml}); docs/e2e.md.
 *
 * A second one, private, is started on request ({@link PRIVATE_REGISTRY_PORT}): the same program
 * with htpasswd basic auth, so an image there is pulled only with credentials — the case of
 * docs/install.md "Private registries", over plain HTTP: distribution 2.8 takes basic auth on any
 * listener, and containerd sends the credentials it is given to the host hosts.toml declares,
 * `http://` or not.
 *
 * The configs are pure functions (tested as data); {@link startRegistry} writes them and runs it.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import bcrypt from 'bcryptjs';
import { basicAuthorization, type Credentials } from '../../gateway/aggregator-credentials.ts';
import { startChild, stopChild, type Child } from '../child-processes.ts';
import { ROOT } from './paths.ts';

/** Debian trixie's package, pinned like vmagent and Prometheus (scripts/install-aggregator). */
export const REGISTRY_PACKAGE = 'docker-registry=2.8.3+ds1-2+b8';
export const REGISTRY_PORT = 5000;
/** The private registry's port, on the same address. */
export const PRIVATE_REGISTRY_PORT = 5001;
/** The realm of its `WWW-Authenticate: Basic` challenge. */
export const PRIVATE_REGISTRY_REALM = 'jobmetrics-private';
/** The path under the registry the cluster pushes to: <host>/jobmetrics/jobmetrics-<program>. */
export const REGISTRY_PATH = 'jobmetrics';

/**
 * The registry's config: filesystem storage, plain HTTP on `address:port`; without `htpasswd`
 * anyone pulls and pushes, with it every request needs basic auth from that file
 * (distribution's configuration reference, `auth: htpasswd`: bcrypt hashes only).
 */
export function registryConfig(storage: string, address: string, port: number, htpasswd?: string): string {
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
    ...(htpasswd === undefined ? [] : ['auth:', '  htpasswd:', `    realm: ${PRIVATE_REGISTRY_REALM}`, `    path: ${htpasswd}`]),
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

/**
 * Credentials for `host` as buildah's and podman's `--authfile` read them (containers-auth.json(5),
 * the `auths` of docker's config.json): `auth` is base64 of `username:password`.
 */
export function authFile(host: string, auth: Credentials): string {
  return `${JSON.stringify({ auths: { [host]: { auth: Buffer.from(`${auth.username}:${auth.password}`).toString('base64') } } }, null, 2)}\n`;
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

/**
 * Starts the registry on `address` (the node's, so containerd and pods reach it), with basic auth
 * when `auth` is given; waits until it answers /v2/ (with the credentials).
 */
export async function startRegistry(dir: string, address: string, port = REGISTRY_PORT, auth?: Credentials): Promise<Registry> {
  const binary = registryBinary();
  mkdirSync(join(dir, 'storage'), { recursive: true });
  const config = join(dir, 'config.yml');
  let htpasswd: string | undefined;
  if (auth !== undefined) {
    htpasswd = join(dir, 'htpasswd');
    // bcrypt's lowest cost: the registry checks the hash on every request, and guards nothing here.
    writeFileSync(htpasswd, `${auth.username}:${bcrypt.hashSync(auth.password, 4)}\n`, { mode: 0o600 });
  }
  writeFileSync(config, registryConfig(join(dir, 'storage'), address, port, htpasswd));
  const child = startChild('registry', binary, ['serve', config], join(dir, 'registry.log'));
  const host = `${address}:${port}`;
  const headers: Record<string, string> = auth === undefined ? {} : { authorization: basicAuthorization(auth) };
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (child.exitInfo) throw new Error(`the registry exited at start (${JSON.stringify(child.exitInfo)}); log: ${join(dir, 'registry.log')}`);
    const ok = await fetch(`http://${host}/v2/`, { headers, signal: AbortSignal.timeout(1_000) }).then((r) => r.ok, () => false);
    if (ok) break;
    if (Date.now() > deadline) {
      await stopChild(child, { graceMs: 2_000 });
      throw new Error(`the registry did not answer http://${host}/v2/ within 30 s; log: ${join(dir, 'registry.log')}`);
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  return { host, child, stop: () => stopChild(child, { graceMs: 5_000 }).then(() => undefined) };
}
