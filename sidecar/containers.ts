/**
 * Which processes of the shared PID namespace belong to the main container (README "Which
 * container is main"). Pure decisions over facts read from /proc, plus one small cache.
 *
 * The sidecar runs as another uid with every capability dropped, so /proc/<pid>/environ, fd and
 * root of the main container's processes are closed to it. Two files are world-readable and
 * carry no ptrace check (proc(5); the kernel's mounts_open_common does not call
 * ptrace_may_access): `cgroup` and `mountinfo`.
 *
 * - `cgroup` groups processes by container where the runtime gives every container a cgroup of its
 *   own (cgroup v1 with the cgroupfs driver: `/kubepods/<qos>/pod<uid>/<container id>`): a
 *   process whose mountinfo could not be read is named by the others of its cgroup.
 * - `mountinfo` names the container: the kubelet bind-mounts each container's termination-message
 *   file from `<kubelet root>/pods/<pod uid>/containers/<container name>/<random id>` onto its
 *   `terminationMessagePath` (default `/dev/termination-log`), so one mount's root field ends in
 *   `/pods/<uid>/containers/<name>/<id>`. The mount point is not needed (a container may set its
 *   own terminationMessagePath); the root is the kubelet's and has this shape for every container.
 *
 * Where no process outside the sidecar's own tree carries such a mount (no kubelet: the local
 * demo and tests, which use `unshare`), the rule is the one that works without names: every
 * process but PID 1 (the pause process) and the sidecar's own tree (and cgroup) is main.
 */
import { hasExited, type ProcEntry } from './proc.ts';

/** A process, with the name of its container when its mountinfo showed one. */
export interface ProcessFacts extends ProcEntry {
  /** The container's name from the kubelet's termination-message mount; undefined: none seen. */
  readonly container?: string | undefined;
}

const KUBELET_MOUNT_ROOT = /\/pods\/[^/]+\/containers\/([^/]+)\/[^/]+$/;

/**
 * The container name of a process from its `/proc/<pid>/mountinfo` (proc(5): field 4 is the root
 * of the mount within its filesystem, octal-escaped), or undefined when no mount has the kubelet's
 * per-container shape.
 */
export function containerFromMountinfo(text: string): string | undefined {
  for (const line of text.split('\n')) {
    // Fields: mount ID, parent ID, major:minor, root, mount point, ...
    const root = line.split(' ', 4)[3];
    if (root === undefined || !root.includes('/containers/')) continue;
    const m = KUBELET_MOUNT_ROOT.exec(unescapeMountField(root));
    if (m?.[1] !== undefined) return m[1];
  }
  return undefined;
}

/** Mount fields escape space, tab, newline and backslash as `\ooo` (the kernel's show_mountinfo). */
function unescapeMountField(s: string): string {
  return s.includes('\\') ? s.replace(/\\([0-7]{3})/g, (_, oct: string) => String.fromCharCode(parseInt(oct, 8))) : s;
}

/**
 * Names every process's container from its own mountinfo, read once per process (a few KB; a pod
 * holds a handful of processes, and the exit watch lists them only every few seconds). Not once per
 * cgroup: where cgroups do not tell containers apart (a hybrid cgroup v1 node shows `0::/` for
 * every process; the local demo runs every container in one cgroup), one read would name them all.
 * `read(pid)` returns the text, or undefined when the process is gone or the file unreadable.
 */
export class ContainerNames {
  readonly #read: (pid: number) => string | undefined;
  /**
   * By PID, cgroup and command name: the name, or null. A PID reused by another container differs
   * in cgroup. A container's process exists before its mounts do: runc's `runc:[2:INIT]` (the
   * harness's `pod-init`, `unshare`, `sh`) sets them up and only then execs the container's
   * program, so a process read too early shows no kubelet mount. Its exec changes its command name,
   * and with it the key: the mounts are read again, once, when they are final.
   */
  readonly #known = new Map<string, string | null>();

  constructor(read: (pid: number) => string | undefined) {
    this.#read = read;
  }

  /** How many processes are remembered (for tests: one read per process, gone ones forgotten). */
  get processesKnown(): number {
    return this.#known.size;
  }

  name(entries: readonly ProcEntry[]): ProcessFacts[] {
    const live = new Set<string>();
    const out = entries.map((e): ProcessFacts => {
      const key = `${e.pid}:${e.cgroup ?? ''}:${e.comm}`;
      live.add(key);
      let known = this.#known.get(key);
      if (known === undefined) {
        const text = this.#read(e.pid);
        if (text === undefined) return e; // gone, or unreadable: try again next time
        known = containerFromMountinfo(text) ?? null;
        this.#known.set(key, known);
      }
      return known === null ? e : { ...e, container: known };
    });
    for (const key of this.#known.keys()) if (!live.has(key)) this.#known.delete(key);
    return out;
  }
}

/**
 * The main container's live PIDs among `facts`, as seen from `selfPid`. Pure.
 *
 * With `mainContainer` set and some process outside our own tree named by its mounts, the main
 * container is the processes named `mainContainer` (or sharing a cgroup with one): other native
 * sidecars, regular containers and debug containers never count. Otherwise every process but
 * PID 1 and our own tree and cgroup counts.
 */
export function mainProcesses(facts: readonly ProcessFacts[], selfPid: number, mainContainer?: string): Set<number> {
  const byPid = new Map(facts.map((e) => [e.pid, e]));
  // Our ancestors (a wrapper such as `sh -c` or tini) belong to the sidecar container too.
  const ancestors = new Set<number>();
  for (let p = byPid.get(selfPid)?.ppid; p !== undefined && p > 1 && !ancestors.has(p); p = byPid.get(p)?.ppid) {
    ancestors.add(p);
  }
  const self = byPid.get(selfPid);
  const pause = byPid.get(1);
  // Cgroups tell containers apart when ours differs from the pause container's.
  const ownCgroup = self?.cgroup !== undefined && pause?.cgroup !== undefined && self.cgroup !== pause.cgroup ? self.cgroup : undefined;
  const isOurs = (e: ProcessFacts): boolean => {
    if (e.pid === 1 || ancestors.has(e.pid)) return true;
    if (ownCgroup !== undefined && e.cgroup === ownCgroup) return true;
    for (let p: number | undefined = e.pid, hops = 0; p !== undefined && p > 1 && hops < 4096; hops++) {
      if (p === selfPid) return true;
      p = byPid.get(p)?.ppid;
    }
    return false;
  };
  const others = facts.filter((e) => !isOurs(e));

  const named = mainContainer !== undefined && others.some((e) => e.container !== undefined);
  // A process whose own mountinfo could not be read is named by the others of its cgroup, when
  // they all agree (a cgroup shared by several containers names nothing).
  const mainCgroups = new Set<string>();
  const otherCgroups = new Set<string>();
  if (named) {
    for (const e of others) {
      if (e.cgroup === undefined || e.container === undefined) continue;
      (e.container === mainContainer ? mainCgroups : otherCgroups).add(e.cgroup);
    }
    for (const c of otherCgroups) mainCgroups.delete(c);
  }

  const main = new Set<number>();
  for (const e of others) {
    if (hasExited(e)) continue;
    if (named && e.container !== mainContainer && (e.cgroup === undefined || !mainCgroups.has(e.cgroup))) continue;
    main.add(e.pid);
  }
  return main;
}
