/**
 * The long-running child processes of the demo, the tests and the benchmarks (vmagent,
 * Prometheus, etcd, kube-apiserver, the webhook): each logs to a file, is stopped with a grace
 * period, and never outlives us — killed when this process exits or is signalled, and, where
 * `setpriv --pdeathsig` exists, by the kernel even when we die by SIGKILL.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { appendFileSync, closeSync, openSync, readFileSync, writeFileSync } from 'node:fs';

export interface ExitInfo {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  /** Set when the program could not be started at all (ENOENT, EACCES). */
  readonly error?: string;
}

export interface Child {
  readonly name: string;
  readonly proc: ChildProcess;
  readonly logPath: string;
  readonly exited: Promise<ExitInfo>;
  /** How it ended, once it has. */
  readonly exitInfo: ExitInfo | undefined;
}

export interface StartChildOptions {
  /** The whole environment of the child (default: ours). */
  readonly env?: NodeJS.ProcessEnv;
  readonly cwd?: string;
}

const live = new Set<ChildProcess>();
let hooksInstalled = false;

function killAll(): void {
  for (const proc of live) proc.kill('SIGKILL');
  live.clear();
}

function installExitHooks(): void {
  if (hooksInstalled) return;
  hooksInstalled = true;
  process.on('exit', killAll);
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    const onSignal = (): void => {
      killAll();
      // Keep the default behaviour (terminate by the signal) unless someone else handles it.
      process.off(signal, onSignal);
      if (process.listenerCount(signal) === 0) process.kill(process.pid, signal);
    };
    process.on(signal, onSignal);
  }
}

let pdeathsigPrefix: string[] | undefined;
/** `setpriv --pdeathsig` makes the kernel kill a child when this process dies, even by SIGKILL. */
function pdeathsig(): string[] {
  if (!pdeathsigPrefix) {
    const r = spawnSync('setpriv', ['--help'], { encoding: 'utf8' });
    pdeathsigPrefix = r.status === 0 && r.stdout.includes('--pdeathsig') ? ['setpriv', '--pdeathsig', 'SIGKILL', '--'] : [];
  }
  return pdeathsigPrefix;
}

/** Starts `command` with stdout and stderr appended to `logPath`, under a header line. */
export function startChild(name: string, command: string, args: readonly string[], logPath: string, opts: StartChildOptions = {}): Child {
  installExitHooks();
  const fd = openSync(logPath, 'a');
  writeFileSync(fd, `\n--- ${new Date().toISOString()} ${command} ${args.join(' ')}\n`);
  const argv = [...pdeathsig(), command, ...args];
  let proc: ChildProcess;
  try {
    proc = spawn(argv[0] ?? command, argv.slice(1), {
      stdio: ['ignore', fd, fd],
      ...(opts.env !== undefined ? { env: opts.env } : {}),
      ...(opts.cwd !== undefined ? { cwd: opts.cwd } : {}),
    });
  } finally {
    closeSync(fd);
  }
  live.add(proc);
  let exitInfo: ExitInfo | undefined;
  const exited = new Promise<ExitInfo>((resolveExit) => {
    const done = (info: ExitInfo): void => {
      exitInfo ??= info;
      live.delete(proc);
      resolveExit(exitInfo);
    };
    proc.once('exit', (code, signal) => done({ code, signal }));
    proc.once('error', (err) => {
      try {
        appendFileSync(logPath, `[harness] cannot start ${command}: ${err.message}\n`);
      } catch {
        // the log folder is gone; the error is in exitInfo anyway
      }
      done({ code: null, signal: null, error: err.message });
    });
  });
  return {
    name,
    proc,
    logPath,
    exited,
    get exitInfo() {
      return exitInfo;
    },
  };
}

/** Sends `signal` (SIGKILL after `graceMs`) and waits for the exit. Idempotent. */
export async function stopChild(child: Child, opts: { signal?: NodeJS.Signals; graceMs?: number } = {}): Promise<void> {
  if (child.exitInfo) return;
  child.proc.kill(opts.signal ?? 'SIGTERM');
  const timer = setTimeout(() => child.proc.kill('SIGKILL'), opts.graceMs ?? 10_000);
  await child.exited;
  clearTimeout(timer);
}

/** The last `lines` lines of a log file, for error messages. */
export function logTail(path: string, lines = 40): string {
  try {
    return readFileSync(path, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

export function describeExit(info: ExitInfo | undefined): string {
  if (!info) return 'running';
  if (info.error !== undefined) return `not started (${info.error})`;
  return `exited (code ${info.code ?? 'none'}${info.signal ? `, signal ${info.signal}` : ''})`;
}

/** A child's state and its log's tail, for error messages. */
export function describeChild(child: Child, lines = 40): string {
  return `--- ${child.name}: ${describeExit(child.exitInfo)}, log ${child.logPath}, last lines:\n${logTail(child.logPath, lines)}`;
}
