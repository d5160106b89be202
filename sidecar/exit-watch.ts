/**
 * Notices the moment the main container has exited, through the pod's shared PID namespace: which
 * processes are the main container's is containers.ts's decision. The main container has exited
 * when that set, once seen non-empty, is empty. Zombies count as exited: their parent may not have
 * reaped them yet.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { ContainerNames, mainProcesses } from './containers.ts';
import { hasExited, listProcesses, readMountinfo, readStatSync } from './proc.ts';

/**
 * Early signs that the main container may have exited (the scrape connection closing), which cut
 * the exit watch's wait short. Polling /proc fast enough to notice an exit within milliseconds
 * costs real CPU — on the benchmark machine every wake-up of a 20 ms timer costs ~0.16 ms, 0.8 %
 * of a core before any work (docs/benchmarks.md) — so the watch polls slowly and looks at once,
 * then fast for a short while, when a hint comes.
 *
 * While a sensor is armed — the scrape's keep-alive connection is open, held by the main
 * container's process, and the kernel closes it the moment that process exits — a hint is sure to
 * come, and the backstop poll can be slower still (docs/benchmarks.md: ≤ 1 % CPU at 1 s / 1 000 series).
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
  /**
   * The main container's name (the webhook's choice). When the kubelet's mounts name the
   * containers, only this one's processes count (containers.ts); without it, every process but
   * PID 1 and our own tree does.
   */
  readonly mainContainer?: string;
  readonly signal?: AbortSignal;
  /** Called once, when the main container's processes are first seen. */
  readonly onFirstSeen?: (pids: readonly number[]) => void;
}

/**
 * Lists `procRoot` and returns the main container's live PIDs, each call. Mountinfo is read only
 * when there is a container name to look for, and then once per new process (containers.ts).
 */
export function mainScanner(opts: Pick<ExitWatchOptions, 'procRoot' | 'selfPid' | 'withCgroup' | 'mainContainer'>): () => Set<number> {
  const withCgroup = opts.withCgroup ?? true;
  const names = opts.mainContainer === undefined ? undefined : new ContainerNames((pid) => readMountinfo(opts.procRoot, pid));
  return () => {
    const entries = listProcesses(opts.procRoot, withCgroup);
    return mainProcesses(names ? names.name(entries) : entries, opts.selfPid, opts.mainContainer);
  };
}

/** Resolves when the main container has exited; rejects only with the abort reason. */
export async function waitForMainExit(opts: ExitWatchOptions): Promise<ExitEvent> {
  const started = Date.now();
  if (opts.selfPid === 1) return { reason: 'no-shared-pid-namespace', atMs: Date.now(), pids: [] };
  const scan = mainScanner(opts);

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
