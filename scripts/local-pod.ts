/**
 * A "pod" on this machine, for the demo, the integration tests and the benchmarks: a sample job
 * (or any main command) and the real sidecar, in their own PID namespace
 * (`unshare --pid --fork --mount-proc`) under a pause-like PID 1 (pod-init.ts). No kubelet: this
 * is the part of a pod that jobmetrics depends on, and nothing else.
 */
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve, sep } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import type { ContainerSpec, PodSpec } from './pod-init.ts';
import { SIDECAR_MEMORY } from '../shared/sidecar-memory.ts';

export { freePort } from './ports.ts';

export const PROJECT_ROOT = fileURLToPath(new URL('..', import.meta.url));
/** The compiled programs (npm ci builds them through `prepare`). */
export const PROGRAMS = {
  podInit: join(PROJECT_ROOT, 'dist/scripts/pod-init.js'),
  sampleJob: join(PROJECT_ROOT, 'dist/scripts/sample-job.js'),
  sidecar: join(PROJECT_ROOT, 'dist/sidecar/main.js'),
} as const;

/**
 * The Node flags the sidecar image runs with (Dockerfile.sidecar's ENTRYPOINT; a static test in
 * test/unit/dockerfiles.test.ts keeps the two equal), so that the demo, the tests and the
 * benchmarks run it as deployed. `--single-threaded`: V8 runs its GC and compile jobs on the main
 * thread instead of helper threads — for a process that works ~10 ms a second, helper threads only
 * cost hand-offs and a malloc arena each: measured −2.7 MB RSS, no more CPU (docs/benchmarks.md).
 * `--max-old-space-size`: V8's heap cap from the sidecar's memory budget (shared/sidecar-memory.ts),
 * so V8 collects before the container's limit instead of growing towards a cap Node would derive
 * from the machine. `--max-semi-space-size=1`: a 1 MB young generation, as a scrape leaves only
 * short-lived garbage, so it is collected (with the buffers it holds) a scrape at a time.
 * `--no-allocation-site-pretenuring`: V8 would otherwise see a scrape's parsed samples survive the
 * young-generation collections that land mid-parse and allocate them straight in the old space,
 * where a scrape's garbage waits for a full collection: ~9 MB more heap held at 1 000 series.
 * `--max-opt=2`: Maglev is V8's top tier, not Turbofan, whose compiler code paged in costs ~5 MB
 * of RSS and whose faster code buys a scrape nothing measurable (docs/benchmarks.md, "Sidecar
 * footprint"). `--expose-gc`: so the scraper can collect the socket buffers of a large read at
 * once (sidecar/read-garbage.ts).
 */
export const SIDECAR_NODE_FLAGS: readonly string[] = [
  '--single-threaded',
  `--max-old-space-size=${SIDECAR_MEMORY.heapMiB}`,
  '--max-semi-space-size=1',
  '--no-allocation-site-pretenuring',
  '--max-opt=2',
  '--expose-gc',
];

let namespaceCheck: { ok: boolean; why: string } | undefined;

/** Whether real PID namespaces work here (root and util-linux unshare); says why not. */
export function pidNamespaceSupport(): { ok: boolean; why: string } {
  if (namespaceCheck) return namespaceCheck;
  if (process.getuid?.() !== 0) return (namespaceCheck = { ok: false, why: 'not running as root' });
  const r = spawnSync('unshare', ['--pid', '--fork', '--mount-proc', 'true'], { encoding: 'utf8' });
  if (r.error) return (namespaceCheck = { ok: false, why: `unshare not available: ${r.error.message}` });
  if (r.status !== 0) return (namespaceCheck = { ok: false, why: `unshare failed: ${r.stderr.trim()}` });
  return (namespaceCheck = { ok: true, why: '' });
}

export interface ContainerExit {
  readonly code: number | null;
  readonly signal: string | null;
  readonly atMs: number;
}

export interface PodResult {
  readonly name: string;
  readonly main: ContainerExit;
  readonly sidecar: ContainerExit;
  /** Every container's last exit, extra containers included. */
  readonly exits: Readonly<Record<string, ContainerExit>>;
  /** How often each container was restarted (restartPolicy OnFailure or Always). */
  readonly restarts: Readonly<Record<string, number>>;
  /** The sidecar's JSON log lines, parsed. */
  readonly sidecarLog: ReadonlyArray<Record<string, unknown>>;
  /** The sidecar's exit summary line, when it wrote one. */
  readonly summary: Record<string, unknown> | undefined;
  /** What the sidecar left as its termination message (sidecar/final-report.ts), when it wrote one. */
  readonly terminationMessage: string | undefined;
}

export interface LocalPod {
  readonly name: string;
  readonly result: Promise<PodResult>;
  /** Sends a signal to one container, or to all (`*`, a pod deletion). */
  signal(container: 'main' | 'sidecar' | '*', signal: NodeJS.Signals): void;
  /** The containers that have exited so far. */
  exited(): string[];
}

export interface LocalPodOptions {
  readonly name: string;
  /** A folder for the logs. */
  readonly dir: string;
  readonly main: { readonly command: string; readonly args: readonly string[]; readonly env: Readonly<Record<string, string>> };
  readonly sidecarEnv: Readonly<Record<string, string>>;
  /** Default: a real PID namespace when pidNamespaceSupport() says so. */
  readonly pidNamespace?: boolean;
  /** Start the sidecar this long after the main container (legacy mode's order). */
  readonly sidecarDelayMs?: number;
  /**
   * Start the sidecar first, and the main container this long after it: native mode, where the
   * sidecar is an init container with `restartPolicy: Always` and the kubelet starts it first.
   */
  readonly sidecarFirstMs?: number;
  /** Run the sidecar from this command instead of the compiled bin. */
  readonly sidecarCommand?: { readonly command: string; readonly args: readonly string[] };
  /**
   * The kubelet's restarts (pod-init.ts): the main container with the pod's `restartPolicy:
   * OnFailure`, the sidecar as a native one (`Always`: restarted when it dies, SIGTERM once the
   * main container has finished for good).
   */
  readonly mainRestartPolicy?: 'Never' | 'OnFailure';
  readonly sidecarRestartPolicy?: 'Never' | 'Always';
  readonly restartDelayMs?: number;
  /**
   * More containers in the pod's PID namespace: a native sidecar declared before ours (`before`,
   * e.g. a mesh proxy that runs until SIGTERM) or another regular container after the main one.
   */
  readonly extraContainers?: readonly ExtraContainer[];
  /**
   * Give every container the mount the kubelet gives it (each in a mount namespace of its own):
   * its termination-message file bind-mounted from `<dir>/kubelet/pods/<pod>/containers/<name>/<id>`,
   * which names the container in its world-readable mountinfo (sidecar/containers.ts).
   */
  readonly kubeletMounts?: boolean;
  /** Run the sidecar as this uid/gid with every capability dropped, as the injected container runs. */
  readonly sidecarUid?: number;
}

export interface ExtraContainer {
  readonly name: string;
  readonly command: string;
  readonly args: readonly string[];
  readonly restartPolicy?: 'Never' | 'Always';
  /** Started before the sidecar (a native sidecar declared before ours); else after the main container. */
  readonly before?: boolean;
}

/**
 * `command args` in a mount namespace of its own where, as the kubelet does for every container, a
 * file under `<dir>/kubelet/pods/<pod>/containers/<container>/<id>` is bind-mounted (onto a file
 * of the pod's folder: the mount point does not matter, the mount's root names the container).
 */
function withKubeletMount(dir: string, pod: string, container: string, command: string, args: readonly string[]): { command: string; args: string[] } {
  const source = join(dir, 'kubelet', 'pods', pod, 'containers', container, randomBytes(4).toString('hex'));
  const target = join(dir, `${pod}.${container}.termination-log`);
  mkdirSync(dirname(source), { recursive: true });
  writeFileSync(source, '');
  writeFileSync(target, '');
  return {
    command: 'unshare',
    args: ['--mount', '--propagation', 'private', 'sh', '-c', 'mount --bind "$1" "$2" && shift 2 && exec "$@"', 'sh', source, target, command, ...args],
  };
}

/** The pod's result, or an error naming the pod when it has not ended within `ms`. */
export async function resultWithin(pod: LocalPod, ms: number, name: string): Promise<PodResult> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${name}: no result within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([pod.result, late]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * The first folder on the way to `path` that users other than its owner cannot search, if any: a
 * sidecar started as another uid cannot run a program below it (a checkout in a `mktemp -d`
 * folder, mode 0700, is the usual case).
 */
export function closedToOthers(path: string): string | undefined {
  const parts = resolve(path).split(sep).filter((p) => p !== '');
  for (let i = 0; i < parts.length; i++) {
    const dir = sep + parts.slice(0, i).join(sep);
    if ((statSync(dir).mode & 0o001) === 0) return dir;
  }
  return undefined;
}

export function startLocalPod(opts: LocalPodOptions): LocalPod {
  if (opts.sidecarUid !== undefined && opts.sidecarCommand === undefined) {
    const closed = closedToOthers(PROGRAMS.sidecar);
    if (closed !== undefined) {
      throw new Error(`${opts.name}: the sidecar runs as uid ${opts.sidecarUid}, which cannot reach ${PROGRAMS.sidecar}: ${closed} is not searchable by others (chmod o+x it, or use a checkout others can read)`);
    }
  }
  const wrap = (container: string, command: string, args: readonly string[]): { command: string; args: readonly string[] } =>
    opts.kubeletMounts ? withKubeletMount(opts.dir, opts.name, container, command, args) : { command, args };
  const mainCommand = wrap('main', opts.main.command, opts.main.args);
  const sidecarArgv = opts.sidecarCommand ?? { command: process.execPath, args: [...SIDECAR_NODE_FLAGS, PROGRAMS.sidecar] };
  const sidecarCommand = wrap(
    'sidecar',
    ...((opts.sidecarUid === undefined
      ? [sidecarArgv.command, sidecarArgv.args]
      : [
          'setpriv',
          [`--reuid=${opts.sidecarUid}`, `--regid=${opts.sidecarUid}`, '--clear-groups', '--inh-caps=-all', '--bounding-set=-all', sidecarArgv.command, ...sidecarArgv.args],
        ]) as [string, readonly string[]]),
  );
  const main: ContainerSpec = {
    name: 'main',
    command: mainCommand.command,
    args: mainCommand.args,
    env: opts.main.env,
    logFile: join(opts.dir, `${opts.name}.main.log`),
    ...(opts.sidecarFirstMs !== undefined ? { startDelayMs: opts.sidecarFirstMs } : {}),
    ...(opts.mainRestartPolicy !== undefined ? { restartPolicy: opts.mainRestartPolicy } : {}),
    ...(opts.restartDelayMs !== undefined ? { restartDelayMs: opts.restartDelayMs } : {}),
  };
  // The termination message goes to a file of the pod's folder, not to the host's
  // /dev/termination-log (the kubelet's mount is not there; a sidecar run as root would create it).
  const terminationMessage = join(opts.dir, `${opts.name}.sidecar.termination-message`);
  const sidecar: ContainerSpec = {
    name: 'sidecar',
    command: sidecarCommand.command,
    args: sidecarCommand.args,
    env: { JOBMETRICS_TERMINATION_MESSAGE_PATH: terminationMessage, ...opts.sidecarEnv },
    logFile: join(opts.dir, `${opts.name}.sidecar.log`),
    ...(opts.sidecarDelayMs !== undefined ? { startDelayMs: opts.sidecarDelayMs } : {}),
    ...(opts.sidecarRestartPolicy !== undefined ? { restartPolicy: opts.sidecarRestartPolicy } : {}),
    ...(opts.restartDelayMs !== undefined ? { restartDelayMs: opts.restartDelayMs } : {}),
  };
  const extra = (e: ExtraContainer): ContainerSpec => ({
    name: e.name,
    ...wrap(e.name, e.command, e.args),
    env: {},
    logFile: join(opts.dir, `${opts.name}.${e.name}.log`),
    ...(e.restartPolicy !== undefined ? { restartPolicy: e.restartPolicy } : {}),
  });
  const before = (opts.extraContainers ?? []).filter((e) => e.before).map(extra);
  const after = (opts.extraContainers ?? []).filter((e) => !e.before).map(extra);
  const containers = [...before, ...(opts.sidecarFirstMs !== undefined ? [sidecar, main] : [main, sidecar]), ...after];
  const spec: PodSpec = { containers };
  const useNs = opts.pidNamespace ?? pidNamespaceSupport().ok;
  const argv = useNs
    ? ['unshare', ['--pid', '--fork', '--mount-proc', '--kill-child', process.execPath, PROGRAMS.podInit]]
    : [process.execPath, [PROGRAMS.podInit]];
  const child = spawn(argv[0] as string, argv[1] as string[], {
    stdio: ['pipe', 'pipe', 'inherit'],
    env: { ...process.env, POD_SPEC: JSON.stringify(spec) },
  });
  const exits = new Map<string, ContainerExit>();
  const restarts: Record<string, number> = {};
  const result = new Promise<PodResult>((resolve, reject) => {
    createInterface({ input: child.stdout! }).on('line', (line) => {
      try {
        const e = JSON.parse(line) as { event: string; container?: string; code?: number | null; signal?: string | null; atMs: number };
        if (e.event === 'exit' && e.container) exits.set(e.container, { code: e.code ?? null, signal: e.signal ?? null, atMs: e.atMs });
        if (e.event === 'restart' && e.container) restarts[e.container] = (restarts[e.container] ?? 0) + 1;
      } catch {
        // pod-init writes only JSON lines; anything else is not ours to interpret.
      }
    });
    child.on('error', reject);
    child.on('close', (code) => {
      const main = exits.get('main');
      const sidecar = exits.get('sidecar');
      if (!main || !sidecar) {
        reject(new Error(`pod ${opts.name}: pod-init ended (code ${code}) before both containers exited; see ${opts.dir}`));
        return;
      }
      const sidecarLog = readJsonLines(join(opts.dir, `${opts.name}.sidecar.log`));
      const summary = sidecarLog.find((l) => typeof l['msg'] === 'string' && (l['msg'] as string).startsWith('summary'));
      resolve({ name: opts.name, main, sidecar, exits: Object.fromEntries(exits), restarts, sidecarLog, summary, terminationMessage: readIfThere(terminationMessage) });
    });
  });
  return {
    name: opts.name,
    result,
    signal(container, signal) {
      child.stdin?.write(JSON.stringify({ container, signal }) + '\n');
    },
    exited: () => [...exits.keys()],
  };
}

function readIfThere(file: string): string | undefined {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    return undefined;
  }
}

function readJsonLines(file: string): Array<Record<string, unknown>> {
  let text = '';
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    return [];
  }
  const out: Array<Record<string, unknown>> = [];
  for (const line of text.split('\n')) {
    if (!line.startsWith('{')) continue;
    try {
      out.push(JSON.parse(line) as Record<string, unknown>);
    } catch {
      // A half-written last line: skip it.
    }
  }
  return out;
}

/** What a sample job really counted (scripts/sample-job.ts writes it). */
export interface GroundTruth {
  readonly ok: number;
  readonly failed: number;
  readonly observations: number;
  readonly buckets: Readonly<Record<string, number>>;
}

export function readTruth(file: string): GroundTruth {
  return JSON.parse(readFileSync(file, 'utf8')) as GroundTruth;
}

export interface SampleJobOptions {
  readonly port: number;
  readonly items: number;
  readonly durationMs: number;
  readonly settleMs?: number;
  readonly exitCode?: number;
  readonly truthFile: string;
  readonly restartAt?: number;
  readonly metricsDelayMs?: number;
  /**
   * Restarted in its pod (restartPolicy OnFailure): its first `failAttempts` runs exit 1, later
   * ones EXIT_CODE; the truth file sums every run (it counts runs in `<truthFile>.attempts`).
   */
  readonly failAttempts?: number;
}

/** The main container of a sample job pod. */
export function sampleJob(o: SampleJobOptions): LocalPodOptions['main'] {
  const env: Record<string, string> = {
    PORT: String(o.port),
    ITEMS: String(o.items),
    DURATION_MS: String(o.durationMs),
    TRUTH_FILE: o.truthFile,
  };
  if (o.settleMs !== undefined) env['SETTLE_MS'] = String(o.settleMs);
  if (o.exitCode !== undefined) env['EXIT_CODE'] = String(o.exitCode);
  if (o.restartAt !== undefined) env['RESTART_AT'] = String(o.restartAt);
  if (o.metricsDelayMs !== undefined) env['METRICS_DELAY_MS'] = String(o.metricsDelayMs);
  if (o.failAttempts !== undefined) {
    env['FAIL_ATTEMPTS'] = String(o.failAttempts);
    env['ATTEMPT_FILE'] = `${o.truthFile}.attempts`;
  }
  return { command: process.execPath, args: [PROGRAMS.sampleJob], env };
}

/** The sidecar's environment for a local pod (docs/settings.md "jobmetrics-sidecar"). */
export function sidecarEnv(o: {
  port: number;
  remoteWriteUrl: string;
  namespace: string;
  job: string;
  pod: string;
  extra?: Readonly<Record<string, string>>;
}): Record<string, string> {
  return {
    JOBMETRICS_SCRAPE_URL: `http://127.0.0.1:${o.port}/metrics`,
    JOBMETRICS_REMOTE_WRITE_URL: o.remoteWriteUrl,
    JOBMETRICS_NAMESPACE: o.namespace,
    JOBMETRICS_JOB: o.job,
    JOBMETRICS_POD: o.pod,
    ...o.extra,
  };
}
