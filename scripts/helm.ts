/**
 * The helm command line the chart's tests use (charts/jobmetrics), built from the Go module proxy
 * by `bash scripts/install-helm` at the version pinned in scripts/helm/go.mod and cached outside
 * git, like the control plane (scripts/cluster/control-plane.ts).
 */
import { execFile, spawnSync } from 'node:child_process';
import { readFileSync, statSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { ROOT } from './cluster/paths.ts';

/** The chart's folder. */
export const CHART_DIR = join(ROOT, 'charts', 'jobmetrics');

/** The helm.sh/helm/v4 release pinned in scripts/helm/go.mod, e.g. `v4.3.2`. */
export function pinnedHelmVersion(): string {
  const goMod = join(ROOT, 'scripts', 'helm', 'go.mod');
  const m = /^\s*helm\.sh\/helm\/v4\s+(v\d+\.\d+\.\d+)\b/m.exec(readFileSync(goMod, 'utf8'));
  if (!m?.[1]) throw new Error(`cannot find the helm.sh/helm/v4 requirement in ${goMod}`);
  return m[1];
}

/** Path of the cached helm; throws, telling how to build it, when it is missing. */
export function helmBinary(env: NodeJS.ProcessEnv = process.env): string {
  const version = pinnedHelmVersion();
  const cache = env['JOBMETRICS_HELM_CACHE'] || join(homedir(), '.cache', 'jobmetrics', 'helm', version);
  const bin = join(cache, 'bin', 'helm');
  let ok = false;
  try {
    ok = statSync(bin).isFile() && (statSync(bin).mode & 0o111) !== 0;
  } catch {
    ok = false;
  }
  if (!ok) throw new Error(`helm ${version} is not built (missing: ${bin}); run \`bash scripts/install-helm\` (npm run setup does)`);
  return bin;
}

/** `helm template` of the chart (or another chart folder) with `--set`-style values; throws with helm's message. */
export function helmTemplate(values: Readonly<Record<string, string>> = {}, opts: { chart?: string; extraArgs?: readonly string[] } = {}): string {
  const args = ['template', 'jobmetrics', opts.chart ?? CHART_DIR, ...Object.entries(values).flatMap(([k, v]) => ['--set', `${k}=${v}`]), ...(opts.extraArgs ?? [])];
  const r = spawnSync(helmBinary(), args, { encoding: 'utf8', maxBuffer: 32 << 20 });
  if (r.status !== 0) throw new HelmError(args, r.status, r.stderr);
  return r.stdout;
}

export class HelmError extends Error {
  constructor(
    readonly args: readonly string[],
    readonly status: number | null,
    readonly stderr: string,
  ) {
    super(`helm ${args.join(' ')} exited ${status}: ${stderr.trim()}`);
    this.name = 'HelmError';
  }
}

/**
 * Runs helm against a cluster (`--kubeconfig`), with its own config, cache and data folders under
 * `home` so that nothing of the user's helm setup is read or written; resolves to stdout, rejects
 * with helm's message.
 */
export function runHelm(args: readonly string[], opts: { kubeconfig: string; home: string; timeoutMs?: number }): Promise<string> {
  const env = { ...process.env, HELM_CONFIG_HOME: join(opts.home, 'config'), HELM_CACHE_HOME: join(opts.home, 'cache'), HELM_DATA_HOME: join(opts.home, 'data') };
  return new Promise((resolve, reject) => {
    execFile(helmBinary(), ['--kubeconfig', opts.kubeconfig, ...args], { env, encoding: 'utf8', timeout: opts.timeoutMs ?? 600_000, maxBuffer: 32 << 20 }, (err, stdout, stderr) => {
      if (err) reject(new HelmError(args, typeof err.code === 'number' ? err.code : null, `${stderr}${err.killed ? ' (killed at its timeout)' : ''}`));
      else resolve(stdout);
    });
  });
}
