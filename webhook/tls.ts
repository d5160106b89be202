/**
 * Serving certificates from files: `tls.crt` and `tls.key` in a directory, as a mounted
 * `kubernetes.io/tls` Secret (or cert-manager's Certificate) lays them out, reloaded when they
 * change so a renewed certificate is served without a restart.
 *
 * Kubernetes updates a Secret volume by writing a new timestamped directory and swapping the
 * `..data` symlink (https://kubernetes.io/docs/concepts/configuration/secret/#mounted-secrets-are-updated-automatically),
 * so watching the files themselves stops working after the first update. This watches the
 * directory, and also polls, because inotify does not see every kind of volume change.
 */
import { createHash } from 'node:crypto';
import { watch, type FSWatcher } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createSecureContext } from 'node:tls';
import type { Logger } from '../shared/log.ts';

export interface TlsMaterial {
  readonly cert: string;
  readonly key: string;
}

export const TLS_FILES = { cert: 'tls.crt', key: 'tls.key' } as const;

/** Reads the pair and checks that the key belongs to the certificate. Throws with the files named. */
export async function readTlsDir(dir: string): Promise<TlsMaterial> {
  const certPath = join(dir, TLS_FILES.cert);
  const keyPath = join(dir, TLS_FILES.key);
  let cert: string;
  let key: string;
  try {
    [cert, key] = await Promise.all([readFile(certPath, 'utf8'), readFile(keyPath, 'utf8')]);
  } catch (cause) {
    throw new Error(`read TLS files ${certPath}, ${keyPath} failed: ${(cause as Error).message}`, { cause });
  }
  checkTlsMaterial({ cert, key }, `${certPath} + ${keyPath}`);
  return { cert, key };
}

/** Throws when the pair cannot serve: unparseable, or the key does not match (node:tls checks). */
export function checkTlsMaterial(m: TlsMaterial, what: string): void {
  try {
    createSecureContext({ cert: m.cert, key: m.key });
  } catch (cause) {
    throw new Error(`TLS material ${what} is unusable: ${(cause as Error).message}`, { cause });
  }
}

export function fingerprint(m: TlsMaterial): string {
  return createHash('sha256').update(m.cert).update('\0').update(m.key).digest('hex').slice(0, 16);
}

export interface TlsWatch {
  close(): void;
}

/**
 * Calls `onChange` with each new valid pair. A half-written update (a new certificate with the
 * old key) fails the check and is retried on the next event or poll; the old pair keeps serving.
 */
export function watchTlsDir(
  dir: string,
  current: TlsMaterial,
  onChange: (m: TlsMaterial) => void,
  opts: { log: Logger; pollMs?: number; debounceMs?: number; onError?: (e: unknown) => void },
): TlsWatch {
  let last = fingerprint(current);
  let timer: NodeJS.Timeout | undefined;
  let closed = false;
  let running = false;
  const check = async (): Promise<void> => {
    if (closed || running) return;
    running = true;
    try {
      const m = await readTlsDir(dir);
      const fp = fingerprint(m);
      if (fp !== last && !closed) {
        last = fp;
        onChange(m);
      }
    } catch (e) {
      opts.onError?.(e);
      opts.log.warn('TLS files changed but cannot be used yet; still serving the previous certificate', { dir, error: e });
    } finally {
      running = false;
    }
  };
  const schedule = (): void => {
    clearTimeout(timer);
    timer = setTimeout(() => void check(), opts.debounceMs ?? 200);
  };
  let watcher: FSWatcher | undefined;
  try {
    watcher = watch(dir, { persistent: false }, schedule);
    watcher.on('error', (e) => opts.log.warn('TLS directory watch failed; polling only', { dir, error: e }));
  } catch (e) {
    opts.log.warn('cannot watch the TLS directory; polling only', { dir, error: e });
  }
  const poll = setInterval(() => void check(), opts.pollMs ?? 30_000);
  poll.unref();
  return {
    close() {
      closed = true;
      clearTimeout(timer);
      clearInterval(poll);
      watcher?.close();
    },
  };
}
