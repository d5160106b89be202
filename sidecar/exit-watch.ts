/**
 * Notices the moment the main container has exited, through the pod's shared PID namespace
 * (DESIGN.md "Sidecar interface"): the main container's processes are every process except PID 1
 * (the pause process) and the sidecar's own process tree; where cgroups tell containers apart,
 * they refine that set. The main container has exited when that set, once seen non-empty, is
 * empty. Zombies count as exited: their parent may not have reaped them yet.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { hasExited, listProcesses, readProcess, type ProcEntry } from './proc.ts';

/** The main container's live PIDs among `entries`, as seen from `selfPid`. Pure. */
export function mainProcesses(entries: readonly ProcEntry[], selfPid: number): Set<number> {
  const byPid = new Map(entries.map((e) => [e.pid, e]));
  // Our ancestors (a wrapper such as `sh -c` or tini) belong to the sidecar container too.
  const ancestors = new Set<number>();
  for (let p = byPid.get(selfPid)?.ppid; p !== undefined && p > 1 && !ancestors.has(p); p = byPid.get(p)?.ppid) {
    ancestors.add(p);
  }
  const self = byPid.get(selfPid);
  const pause = byPid.get(1);
  // Cgroups tell containers apart when ours differs from the pause container's.
  const ownCgroup = self?.cgroup !== undefined && pause?.cgroup !== undefined && self.cgroup !== pause.cgroup ? self.cgroup : undefined;

  const isOurs = (e: ProcEntry): boolean => {
    for (let p: number | undefined = e.pid, hops = 0; p !== undefined && p > 1 && hops < 4096; hops++) {
      if (p === selfPid) return true;
      p = byPid.get(p)?.ppid;
    }
    return false;
  };
  const main = new Set<number>();
  for (const e of entries) {
    if (e.pid === 1 || hasExited(e) || ancestors.has(e.pid) || isOurs(e)) continue;
    if (ownCgroup !== undefined && e.cgroup === ownCgroup) continue;
    main.add(e.pid);
  }
  return main;
}

export type ExitReason =
  /** The main container's processes were seen and are all gone. */
  | 'exited'
  /** None was ever seen within the grace period (legacy mode: it ran and ended before us). */
  | 'never-seen'
  /** We are PID 1: the pod does not share its process namespace, so nothing can be watched. */
  | 'no-shared-pid-namespace';

export interface ExitEvent {
  readonly reason: ExitReason;
  readonly atMs: number;
  /** The PIDs last seen alive. */
  readonly pids: readonly number[];
}

export interface ExitWatchOptions {
  readonly procRoot: string;
  readonly selfPid: number;
  /** How often the known PIDs are checked (cheap: one small file each). */
  readonly pollMs: number;
  /** How often all of /proc is listed, to learn new processes (forks) of the main container. */
  readonly rescanMs: number;
  /** Resolve with `never-seen` when nothing was seen this long; undefined waits forever. */
  readonly neverSeenGraceMs?: number;
  readonly withCgroup?: boolean;
  readonly signal?: AbortSignal;
  /** Called once, when the main container's processes are first seen. */
  readonly onFirstSeen?: (pids: readonly number[]) => void;
}

/** Resolves when the main container has exited; rejects only with the abort reason. */
export async function waitForMainExit(opts: ExitWatchOptions): Promise<ExitEvent> {
  const withCgroup = opts.withCgroup ?? true;
  const started = Date.now();
  if (opts.selfPid === 1) return { reason: 'no-shared-pid-namespace', atMs: Date.now(), pids: [] };
  const scan = async (): Promise<Set<number>> =>
    mainProcesses(await listProcesses(opts.procRoot, withCgroup), opts.selfPid);

  let known = new Set<number>();
  // Phase 1: wait until the main container shows up.
  for (;;) {
    opts.signal?.throwIfAborted();
    known = await scan();
    if (known.size > 0) break;
    if (opts.neverSeenGraceMs !== undefined && Date.now() - started >= opts.neverSeenGraceMs) {
      return { reason: 'never-seen', atMs: Date.now(), pids: [] };
    }
    await sleep(Math.max(opts.pollMs, 50), undefined, opts.signal ? { signal: opts.signal } : {});
  }
  opts.onFirstSeen?.([...known]);

  // Phase 2: poll the known PIDs; list /proc now and then, and always before declaring the exit,
  // so that a child forked just before its parent exited is not missed.
  let lastRescan = Date.now();
  let lastSeen = [...known];
  for (;;) {
    await sleep(opts.pollMs, undefined, opts.signal ? { signal: opts.signal } : {});
    const alive = new Set<number>();
    for (const pid of known) {
      const e = await readProcess(opts.procRoot, pid, false);
      if (e !== undefined && !hasExited(e)) alive.add(pid);
    }
    if (alive.size === 0 || Date.now() - lastRescan >= opts.rescanMs) {
      known = await scan();
      lastRescan = Date.now();
    } else {
      known = alive;
    }
    if (known.size === 0) return { reason: 'exited', atMs: Date.now(), pids: lastSeen };
    lastSeen = [...known];
  }
}
