/**
 * A pause-like PID 1 for a local "pod" (the demo, the tests, the benchmarks): started as
 * `unshare --pid --fork --mount-proc node dist/scripts/pod-init.js`, it starts the containers in
 * order (the main container first, as the kubelet does in legacy mode), reaps them, forwards
 * SIGTERM to all (as a pod deletion does), and reports on stdout as JSON lines:
 *   {"event":"start","container":"main","pid":2,"atMs":…}
 *   {"event":"exit","container":"main","code":0,"signal":null,"atMs":…}
 *   {"event":"done"}
 * Commands on stdin: {"signal":"SIGKILL","container":"main"}; container "*" signals all of them
 * (what a pod deletion does).
 *
 * Restarts as the kubelet does them: a container with `restartPolicy: OnFailure` is started again
 * (same command, same environment) when it exits non-zero or by a signal, one with `Always` (a
 * native sidecar) whenever it exits; once every other container has finished for good, the
 * `Always` ones get SIGTERM, as the kubelet ends a native sidecar of a completed pod. A pod
 * deletion (SIGTERM, or "*") stops all restarts.
 *
 * Without a PID namespace (no root, no unshare) it is a plain parent: then it builds a proc root
 * of its own, holding links to its containers' /proc entries only, and gives its path to the
 * containers as JOBMETRICS_PROC_ROOT, so the sidecar's exit watch sees just this pod.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, openSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';

export interface ContainerSpec {
  readonly name: string;
  readonly command: string;
  readonly args: readonly string[];
  readonly env: Readonly<Record<string, string>>;
  /** Where the container's stdout and stderr go. */
  readonly logFile: string;
  /** Wait this long after starting the previous container. */
  readonly startDelayMs?: number;
  /** Default Never. */
  readonly restartPolicy?: 'Never' | 'OnFailure' | 'Always';
  /** The wait before a restart (the kubelet's back-off starts at 10 s; tests wait less). */
  readonly restartDelayMs?: number;
}

export interface PodSpec {
  readonly containers: readonly ContainerSpec[];
}

const emit = (event: Record<string, unknown>): void => {
  process.stdout.write(JSON.stringify({ ...event, atMs: Date.now() }) + '\n');
};

async function main(): Promise<void> {
  // Its own command name, inherited by every container it forks until that container execs its
  // program, as a real container carries its runtime's (`runc:[2:INIT]`) while its mounts are set
  // up. Left at `node`, a container read by the sidecar in that moment (no kubelet mount yet) and
  // then running `node` (the sample job) would keep one key in the sidecar's cache of container
  // names, never be read again and never be its main container (sidecar/containers.ts).
  process.title = 'pod-init';
  const spec = JSON.parse(process.env['POD_SPEC'] ?? '') as PodSpec;
  const inNamespace = process.pid === 1;
  const procRoot = inNamespace ? undefined : mkdtempSync(join(tmpdir(), 'jobmetrics-proc-'));
  const children = new Map<string, ChildProcess>();
  let running = 0;
  let allDone: () => void = () => {};
  const finished = new Promise<void>((resolve) => (allDone = resolve));

  // A pod deletion: no more restarts.
  let terminating = false;
  const done = new Set<string>();
  const alive = (c: ChildProcess | undefined): c is ChildProcess => c !== undefined && c.exitCode === null && c.signalCode === null;
  for (const sig of ['SIGTERM', 'SIGINT'] as const) {
    process.on(sig, () => {
      terminating = true;
      for (const c of children.values()) if (alive(c)) c.kill(sig);
    });
  }
  createInterface({ input: process.stdin }).on('line', (line) => {
    try {
      const cmd = JSON.parse(line) as { signal?: NodeJS.Signals; container?: string };
      if (cmd.container === '*') terminating = true;
      const targets = cmd.container === '*' ? [...children.values()] : [children.get(cmd.container ?? '')];
      for (const c of targets) if (alive(c) && cmd.signal) c.kill(cmd.signal);
    } catch {
      // Not a command: ignore, the harness only sends JSON.
    }
  });

  const start = (c: ContainerSpec, restart: boolean): void => {
    const out = openSync(c.logFile, 'a');
    const env: Record<string, string | undefined> = { ...process.env, ...c.env, ...(procRoot ? { JOBMETRICS_PROC_ROOT: procRoot } : {}) };
    delete env['POD_SPEC'];
    const child = spawn(c.command, c.args, { stdio: ['ignore', out, out], env });
    children.set(c.name, child);
    if (procRoot && child.pid !== undefined) symlinkSync(`/proc/${child.pid}`, join(procRoot, String(child.pid)));
    emit({ event: restart ? 'restart' : 'start', container: c.name, pid: child.pid });
    child.on('exit', (code, signal) => {
      emit({ event: 'exit', container: c.name, code, signal });
      const policy = c.restartPolicy ?? 'Never';
      if (!terminating && (policy === 'Always' || (policy === 'OnFailure' && code !== 0))) {
        setTimeout(() => (terminating ? finish(c) : start(c, true)), c.restartDelayMs ?? 0);
        return;
      }
      finish(c);
    });
    child.on('error', (error) => emit({ event: 'error', container: c.name, message: error.message }));
  };
  const finish = (c: ContainerSpec): void => {
    done.add(c.name);
    if (--running === 0) {
      allDone();
      return;
    }
    // Every other container has finished for good: the kubelet ends the native sidecars.
    const sidecars = spec.containers.filter((x) => x.restartPolicy === 'Always');
    if (sidecars.length > 0 && spec.containers.every((x) => x.restartPolicy === 'Always' || done.has(x.name))) {
      terminating = true;
      for (const x of sidecars) {
        const child = children.get(x.name);
        if (alive(child)) child.kill('SIGTERM');
      }
    }
  };

  for (const c of spec.containers) {
    if (c.startDelayMs) await new Promise((r) => setTimeout(r, c.startDelayMs));
    running++;
    start(c, false);
  }
  await finished;
  if (procRoot) rmSync(procRoot, { recursive: true, force: true });
  emit({ event: 'done' });
  process.exit(0);
}

await main();
