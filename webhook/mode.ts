/**
 * Which sidecar mode to inject: native sidecars (an init container with `restartPolicy: Always`)
 * are beta and on by default from Kubernetes 1.29 (feature gate SidecarContainers, KEP-753,
 * https://kubernetes.io/docs/concepts/workloads/pods/sidecar-containers/); on 1.28 the gate is
 * alpha and off, and older API servers drop the field, which would turn the sidecar into an init
 * container that never ends and so a pod that never starts. Legacy mode works everywhere.
 */
import type { SidecarMode } from '../shared/names.ts';

export type ModeSetting = 'auto' | SidecarMode;
export const MODE_SETTINGS: readonly ModeSetting[] = ['auto', 'native', 'legacy'];

/** The first version with native sidecars on by default. */
export const NATIVE_SINCE = { major: 1, minor: 29 } as const;

/** What `GET /version` returns, as far as it matters here. */
export interface ServerVersion {
  readonly major?: string;
  readonly minor?: string;
  readonly gitVersion?: string;
}

export type VersionProbe = { readonly ok: true; readonly version: ServerVersion } | { readonly ok: false; readonly error: string };

export interface ModeChoice {
  readonly mode: SidecarMode;
  readonly reason: string;
}

/**
 * `major`/`minor` as the API server reports them; managed clusters append to minor (`"29+"` on
 * GKE and EKS), so only the leading digits count, and gitVersion (`v1.29.3-gke.1`) is the fallback.
 */
export function parseServerVersion(v: ServerVersion): { major: number; minor: number } | undefined {
  const major = Number.parseInt(v.major ?? '', 10);
  const minor = Number.parseInt(v.minor ?? '', 10);
  if (Number.isInteger(major) && Number.isInteger(minor)) return { major, minor };
  const m = /^v?(\d+)\.(\d+)/.exec(v.gitVersion ?? '');
  if (m) return { major: Number(m[1]), minor: Number(m[2]) };
  return undefined;
}

export function chooseMode(setting: ModeSetting, probe: VersionProbe | undefined): ModeChoice {
  if (setting !== 'auto') return { mode: setting, reason: `mode ${setting} set in the settings` };
  if (probe === undefined) return { mode: 'legacy', reason: 'server version not known yet; legacy works on every version' };
  if (!probe.ok) {
    return { mode: 'legacy', reason: `server version unavailable (${probe.error}); legacy works on every version` };
  }
  const parsed = parseServerVersion(probe.version);
  const shown = probe.version.gitVersion ?? `${probe.version.major ?? '?'}.${probe.version.minor ?? '?'}`;
  if (!parsed) return { mode: 'legacy', reason: `server version "${shown}" not understood; legacy works on every version` };
  const native =
    parsed.major > NATIVE_SINCE.major || (parsed.major === NATIVE_SINCE.major && parsed.minor >= NATIVE_SINCE.minor);
  return native
    ? { mode: 'native', reason: `server ${shown} >= ${NATIVE_SINCE.major}.${NATIVE_SINCE.minor}: native sidecars` }
    : { mode: 'legacy', reason: `server ${shown} < ${NATIVE_SINCE.major}.${NATIVE_SINCE.minor}: no native sidecars` };
}
