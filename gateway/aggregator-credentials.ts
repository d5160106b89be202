/**
 * The credentials of the tier behind the gateway (docs/install.md "What each part trusts"): vmagent
 * (routers, shards) and the default store take writes only with them, so a pod that skips the
 * gateway — and its check of who may write what — is refused. One Secret holds them:
 *
 * - `username`, `password`: what the gateway sends (HTTP basic auth) and what vmagent checks
 *   (`-httpAuth.*`); vmagent sends them on to the shards and the store (`-remoteWrite.basicAuth.*`);
 * - `web-config.yml`: Prometheus' `--web.config.file`, the same user with the password's bcrypt
 *   hash (https://prometheus.io/docs/prometheus/latest/configuration/https/): Prometheus checks
 *   only hashes.
 *
 * The gateway creates the Secret when it does not exist (a random password; replicas racing to
 * create it: the API server lets one win, the others read the winner's), so an install needs no
 * manual step, and reads it at start. An admin may create it beforehand with their own password;
 * it is then only read. The decisions are pure (`newCredentials`, `readCredentials`); `ensure…`
 * is the shell.
 */
import { randomBytes } from 'node:crypto';
import { CoreV1Api, KubeConfig } from '@kubernetes/client-node';

export const USERNAME = 'jobmetrics';
export const KEYS = { username: 'username', password: 'password', webConfig: 'web-config.yml' } as const;

export interface Credentials {
  readonly username: string;
  readonly password: string;
}

/** The Secret's string data for a new password; `bcryptHash` is injected so tests stay fast. */
export function newCredentials(password: string, bcryptHash: string): Record<string, string> {
  return {
    [KEYS.username]: USERNAME,
    [KEYS.password]: password,
    [KEYS.webConfig]: [
      '# Prometheus --web.config.file: writes and reads need this user (docs/install.md "What each part trusts").',
      'basic_auth_users:',
      `  ${USERNAME}: ${JSON.stringify(bcryptHash)}`,
      '',
    ].join('\n'),
  };
}

/** A random password: 32 bytes, base64url (no character needs escaping in a flag, a file or a header). */
export const randomPassword = (): string => randomBytes(32).toString('base64url');

/** The credentials in a Secret's `data` (base64), or what is wrong with them. */
export function readCredentials(data: Readonly<Record<string, string>> | undefined): Credentials | { readonly error: string } {
  const get = (k: string): string | undefined => (data?.[k] === undefined ? undefined : Buffer.from(data[k], 'base64').toString('utf8'));
  const username = get(KEYS.username);
  const password = get(KEYS.password);
  const missing = [KEYS.username, KEYS.password, KEYS.webConfig].filter((k) => !get(k));
  if (missing.length > 0 || username === undefined || password === undefined) return { error: `keys missing or empty: ${missing.join(', ')}` };
  if (/[:\s]/.test(username)) return { error: `the username "${username}" may not hold a colon or white space (HTTP basic auth)` };
  return { username, password };
}

/** `Basic <base64(user:password)>` (RFC 7617). */
export const basicAuthorization = (c: Credentials): string => `Basic ${Buffer.from(`${c.username}:${c.password}`, 'utf8').toString('base64')}`;

export class CredentialsError extends Error {
  override readonly name = 'CredentialsError';
}

/**
 * Reads the Secret `namespace/name`, creating it first when it does not exist. Throws
 * CredentialsError (with the API's answer as `cause`) when it can do neither, or when the Secret
 * exists but holds no usable credentials (an admin's, to be fixed by the admin).
 */
export async function ensureAggregatorCredentials(opts: { readonly kubeconfig: string | undefined; readonly namespace: string; readonly name: string }): Promise<Credentials & { readonly created: boolean }> {
  const kc = new KubeConfig();
  if (opts.kubeconfig !== undefined) kc.loadFromFile(opts.kubeconfig);
  else kc.loadFromCluster();
  const core = kc.makeApiClient(CoreV1Api);
  const where = `Secret ${opts.namespace}/${opts.name}`;
  const read = async (): Promise<Credentials | undefined> => {
    try {
      const s = await core.readNamespacedSecret({ name: opts.name, namespace: opts.namespace });
      const c = readCredentials(s.data);
      if ('error' in c) throw new CredentialsError(`${where} holds no usable aggregator credentials: ${c.error}`);
      return c;
    } catch (err) {
      if (err instanceof CredentialsError) throw err;
      if (statusOf(err) === 404) return undefined;
      throw new CredentialsError(`reading ${where}: ${describe(err)}`, { cause: err });
    }
  };
  const existing = await read();
  if (existing !== undefined) return { ...existing, created: false };
  const password = randomPassword();
  // Loaded only here, once per install: bcrypt's cost 10, as htpasswd -B and Prometheus' docs use.
  const bcrypt = (await import('bcryptjs')).default;
  const stringData = newCredentials(password, await bcrypt.hash(password, 10));
  try {
    await core.createNamespacedSecret({
      namespace: opts.namespace,
      body: {
        apiVersion: 'v1',
        kind: 'Secret',
        type: 'Opaque',
        metadata: { name: opts.name, namespace: opts.namespace, labels: { 'app.kubernetes.io/part-of': 'jobmetrics', 'app.kubernetes.io/component': 'aggregator' } },
        stringData,
      },
    });
    return { username: USERNAME, password, created: true };
  } catch (err) {
    // Another replica created it first: use theirs.
    if (statusOf(err) === 409) {
      const theirs = await read();
      if (theirs !== undefined) return { ...theirs, created: false };
    }
    throw new CredentialsError(`creating ${where}: ${describe(err)}`, { cause: err });
  }
}

function statusOf(err: unknown): number | undefined {
  const code = (err as { code?: unknown } | undefined)?.code;
  return typeof code === 'number' ? code : undefined;
}

function describe(err: unknown): string {
  const status = statusOf(err);
  const body = (err as { body?: unknown } | undefined)?.body;
  const text = typeof body === 'string' ? body : body === undefined ? '' : JSON.stringify(body);
  const message = err instanceof Error ? err.message.split('\n')[0] : String(err);
  return `${status !== undefined ? `HTTP ${status}: ` : ''}${text ? text.slice(0, 300) : message}`;
}
