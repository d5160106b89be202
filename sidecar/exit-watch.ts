/**
 * Notices the moment the main container has exited, through the pod's shared PID namespace
 * (DESIGN.md "Sidecar interface"): the main container's processes are every process except PID 1
 * (the pause process) and the sidecar's own process tree; where cgroups tell containers apart,
 * they refine that set. The main container has exited when that set, once seen non-empty, is
 * empty. Zombies count as exited: their parent may not have reaped them yet.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { hasExited, listProcesses, readStatSync, type ProcEntry } from './proc.ts';

/**
 * Early signs that the main container may have exited (the scrape connection closing), which cut
 * the exit watch's wait short. Polling /proc fast enough to notice an exit within milliseconds
 * costs real CPU — on the benchmark machine every wake-up of a 20 ms timer costs ~0.16 ms, 0.8 %
 * of a core before any work (docs/benchmarks.md) — so the watch polls slowly and looks at once,
 * then fast for a short while, when a hint comes.
 *
 * While a sensor is armed — the scrape's keep-alive connection is open, held by the main
 * container's process, and the kernel closes it the moment that process exits — a hint is sure to
 * come, and the backstop poll can be slower still (issue 3: ≤ 1 % CPU at 1 s / 1 000 series).
 */
export class ExitHints {
  readonly #waiters = new Set<() => void>();
  #lastAt = Number.NEGATIVE_INFINITY;
  #armed = false;

  /** Something suggests the main container may be gone. The sensor that said so is spent. */
  hint(): void {
    this.#lastAt = Date.now();
    this.#armed = false;
    for (const wake of [...this.#waiters]) wake();
  }

  /**
   * Whether a sensor is armed: after each scrape answer, whether the server kept the connection
   * open (its close will be a hint) or announced it would close it (no hint will come from it).
   */
  sensor(armed: boolean): void {
    this.#armed = armed;
  }

  get armed(): boolean {
    return this.#armed;
  }

  /** How many waits are pending (for tests: finished waits must not pile up). */
  get waiting(): number {
    return this.#waiters.size;
  }

  /** When the last hint came (ms since the epoch; -Infinity before the first). */
  get lastAt(): number {
    return this.#lastAt;
  }

  /** Waits `ms`, less when a hint comes or `signal` aborts (then it rejects with the reason). */
  wait(ms: number, signal?: AbortSignal): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      if (signal?.aborted) {
        reject(signal.reason);
        return;
      }
      const settle = (): void => {
        clearTimeout(timer);
        this.#waiters.delete(finish);
        signal?.removeEventListener('abort', onAbort);
      };
      const finish = (): void => {
        settle();
        resolve();
      };
      const onAbort = (): void => {
        settle();
        reject(signal?.reason);
      };
      const timer = setTimeout(finish, ms);
      this.#waiters.add(finish);
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  }
}

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
  /** How often the known PIDs are checked when nothing hints at an exit (one small file each). */
  readonly pollMs: number;
  /** Early signs of an exit; each makes the watch look at once, then every `fastPollMs`. */
  readonly hints?: ExitHints;
  /**
   * The poll interval while a sensor of `hints` is armed (default 1 s; never faster than
   * `pollMs`): only a backstop then, for a connection held by a process outside the main
   * container. An exit is noticed by the hint within milliseconds either way.
   */
  readonly armedPollMs?: number;
  /** The poll interval for `fastWindowMs` after a hint (default 5 ms for 1 s). */
  readonly fastPollMs?: number;
  readonly fastWindowMs?: number;
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
  const scan = (): Set<number> => mainProcesses(listProcesses(opts.procRoot, withCgroup), opts.selfPid);

  let known = new Set<number>();
  // Phase 1: wait until the main container shows up.
  for (;;) {
    opts.signal?.throwIfAborted();
    known = scan();
    if (known.size > 0) break;
    if (opts.neverSeenGraceMs !== undefined && Date.now() - started >= opts.neverSeenGraceMs) {
      return { reason: 'never-seen', atMs: Date.now(), pids: [] };
    }
    await sleep(Math.max(opts.pollMs, 50), undefined, opts.signal ? { signal: opts.signal } : {});
  }
  opts.onFirstSeen?.([...known]);

  // Phase 2: poll the known PIDs; list /proc now and then, and always before declaring the exit,
  // so that a child forked just before its parent exited is not missed.
  const hints = opts.hints ?? new ExitHints();
  const fastPollMs = opts.fastPollMs ?? 5;
  const fastWindowMs = opts.fastWindowMs ?? 1_000;
  const armedPollMs = Math.max(opts.pollMs, opts.armedPollMs ?? 1_000);
  let lastRescan = Date.now();
  let lastSeen = [...known];
  for (;;) {
    const fast = Date.now() - hints.lastAt < fastWindowMs;
    await hints.wait(fast ? Math.min(fastPollMs, opts.pollMs) : hints.armed ? armedPollMs : opts.pollMs, opts.signal);
    const alive = new Set<number>();
    for (const pid of known) {
      const e = readStatSync(opts.procRoot, pid);
      if (e !== undefined && e.pid === pid && !hasExited(e)) alive.add(pid);
    }
    if (alive.size === 0 || Date.now() - lastRescan >= opts.rescanMs) {
      known = scan();
      lastRescan = Date.now();
    } else {
      known = alive;
    }
    if (known.size === 0) return { reason: 'exited', atMs: Date.now(), pids: lastSeen };
    lastSeen = [...known];
  }
}
