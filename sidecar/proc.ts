/**
 * Reading /proc without any capability: `/proc/<pid>/stat`, `cgroup` and `mountinfo` are
 * world-readable (proc(5)), unlike `exe`, `environ`, `fd`, `root` or ptrace. Parsing is pure; reading is a thin
 * layer that takes `procRoot`, so tests can point it at a fixture tree.
 */
import { fs } from '../shared/node-builtins.ts';
import { join } from 'node:path';

export interface ProcStat {
  readonly pid: number;
  readonly comm: string;
  /** R, S, D, Z (zombie), T, t, X, I, … */
  readonly state: string;
  readonly ppid: number;
}

/**
 * Parses `/proc/<pid>/stat` (proc(5)). `comm` may contain spaces and parentheses, so the fields
 * after it are found from the *last* `)`.
 */
export function parseProcStat(text: string): ProcStat | undefined {
  const open = text.indexOf('(');
  const close = text.lastIndexOf(')');
  if (open < 1 || close < open) return undefined;
  const pid = Number(text.slice(0, open).trim());
  const rest = text.slice(close + 2).split(' ');
  const state = rest[0];
  const ppid = Number(rest[1]);
  if (!Number.isInteger(pid) || state === undefined || state === '' || !Number.isInteger(ppid)) return undefined;
  return { pid, comm: text.slice(open + 1, close), state, ppid };
}

/** A zombie or dead process has exited; only its parent has not reaped it yet. */
export function hasExited(stat: ProcStat): boolean {
  return stat.state === 'Z' || stat.state === 'X' || stat.state === 'x';
}

/**
 * The cgroup of a process from `/proc/<pid>/cgroup`: the v2 line (`0::/path`), else the v1 line
 * of a controller every runtime sets up, else the first line. On a hybrid node (cgroup v1 with the
 * unified hierarchy mounted but unused) the v2 line is `0::/` for every process; then the v1 line
 * is the one that tells containers apart.
 */
export function parseCgroup(text: string): string | undefined {
  let first: string | undefined;
  let v1: string | undefined;
  let v2: string | undefined;
  for (const line of text.split('\n')) {
    if (line === '') continue;
    const i = line.indexOf(':');
    const j = line.indexOf(':', i + 1);
    if (i < 0 || j < 0) continue;
    const controllers = line.slice(i + 1, j);
    const path = line.slice(j + 1);
    if (line.startsWith('0::')) v2 = path;
    else if (controllers.split(',').includes('pids') || controllers.split(',').includes('memory')) v1 ??= path;
    first ??= path;
  }
  if (v2 !== undefined && (v2 !== '/' || v1 === undefined || v1 === '/')) return v2;
  return v1 ?? first;
}

export interface ProcEntry extends ProcStat {
  readonly cgroup: string | undefined;
}

/**
 * Every process visible in `procRoot`, skipping those that vanish while we look. Synchronous: a
 * pod's PID namespace holds a handful of processes, each two small procfs files read in
 * microseconds; the async reads cost a thread-pool round trip each, and node:fs/promises alone
 * ~0.5 MB of RSS (the sidecar's memory target in docs/benchmarks.md).
 */
export function listProcesses(procRoot: string, withCgroup: boolean): ProcEntry[] {
  const out: ProcEntry[] = [];
  for (const name of fs.readdirSync(procRoot)) {
    if (!isPid(name)) continue;
    const entry = readProcess(procRoot, Number(name), withCgroup);
    if (entry !== undefined) out.push(entry);
  }
  return out;
}

export function readProcess(procRoot: string, pid: number, withCgroup: boolean): ProcEntry | undefined {
  try {
    const stat = parseProcStat(fs.readFileSync(join(procRoot, String(pid), 'stat'), 'utf8'));
    if (stat === undefined) return undefined;
    const cgroup = withCgroup ? parseCgroup(fs.readFileSync(join(procRoot, String(pid), 'cgroup'), 'utf8')) : undefined;
    return { ...stat, cgroup };
  } catch {
    // ENOENT/ESRCH: the process ended between readdir and read. That is the normal race.
    return undefined;
  }
}

function isPid(name: string): boolean {
  for (let i = 0; i < name.length; i++) {
    const c = name.charCodeAt(i);
    if (c < 48 || c > 57) return false;
  }
  return name.length > 0;
}

/**
 * One process's stat, read synchronously: the exit watch's frequent check of the few known PIDs.
 * A small procfs file is read in microseconds without blocking; the async read would cost four
 * thread-pool round trips, each a wake-up of the event loop (measured: 2x the CPU at 50 Hz).
 */
export function readStatSync(procRoot: string, pid: number): ProcStat | undefined {
  try {
    return parseProcStat(fs.readFileSync(join(procRoot, String(pid), 'stat'), 'utf8'));
  } catch {
    return undefined; // ENOENT/ESRCH: gone
  }
}

/** `/proc/<pid>/mountinfo` (proc(5)), or undefined when the process is gone or it is unreadable. */
export function readMountinfo(procRoot: string, pid: number): string | undefined {
  try {
    return fs.readFileSync(join(procRoot, String(pid), 'mountinfo'), 'utf8');
  } catch {
    return undefined;
  }
}
