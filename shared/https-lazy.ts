/**
 * node:https, loaded on first use. Most sidecars talk plain HTTP to both ends (the main container
 * on loopback, vmagent inside the cluster); loading https pulls in tls and the crypto bindings,
 * ~1 MB of RSS that such a sidecar would carry for nothing (the sidecar's memory target in docs/benchmarks.md). `require`
 * through createRequire keeps the call synchronous.
 */
import { createRequire } from 'node:module';

let loaded: typeof import('node:https') | undefined;

export function https(): typeof import('node:https') {
  loaded ??= createRequire(import.meta.url)('node:https') as typeof import('node:https');
  return loaded;
}
