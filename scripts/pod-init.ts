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
}

export interface PodSpec {
  readonly containers: readonly ContainerSpec[];
}

const emit = (event: Record<string, unknown>): void => {
  process.stdout.write(JSON.stringify({ ...event, atMs: Date.now() }) + '\n');
};

async function main(): Promise<void> {
  const spec = JSON.parse(process.env['POD_SPEC'] ?? '') as PodSpec;
  const inNamespace = process.pid === 1;
  const procRoot = inNamespace ? undefined : mkdtempSync(join(tmpdir(), 'jobmetrics-proc-'));
  const children = new Map<string, ChildProcess>();
  let running = 0;
  let allDone: () => void = () => {};
  const finished = new Promise<void>((resolve) => (allDone = resolve));

  for (const sig of ['SIGTERM', 'SIGINT'] as const) {
    process.on(sig, () => {
      for (const c of children.values()) if (c.exitCode === null && c.signalCode === null) c.kill(sig);
    });
  }
  createInterface({ input: process.stdin }).on('line', (line) => {
    try {
      const cmd = JSON.parse(line) as { signal?: NodeJS.Signals; container?: string };
      const targets = cmd.container === '*' ? [...children.values()] : [children.get(cmd.container ?? '')];
      for (const c of targets) if (c && cmd.signal && c.exitCode === null && c.signalCode === null) c.kill(cmd.signal);
    } catch {
      // Not a command: ignore, the harness only sends JSON.
    }
  });

  for (const c of spec.containers) {
    if (c.startDelayMs) await new Promise((r) => setTimeout(r, c.startDelayMs));
    const out = openSync(c.logFile, 'a');
    const env: Record<string, string | undefined> = { ...process.env, ...c.env, ...(procRoot ? { JOBMETRICS_PROC_ROOT: procRoot } : {}) };
    delete env['POD_SPEC'];
    const child = spawn(c.command, c.args, { stdio: ['ignore', out, out], env });
    children.set(c.name, child);
    running++;
    if (procRoot && child.pid !== undefined) symlinkSync(`/proc/${child.pid}`, join(procRoot, String(child.pid)));
    emit({ event: 'start', container: c.name, pid: child.pid });
    child.on('exit', (code, signal) => {
      emit({ event: 'exit', container: c.name, code, signal });
      if (--running === 0) allDone();
    });
    child.on('error', (error) => emit({ event: 'error', container: c.name, message: error.message }));
  }
  await finished;
  if (procRoot) rmSync(procRoot, { recursive: true, force: true });
  emit({ event: 'done' });
  process.exit(0);
}

await main();
