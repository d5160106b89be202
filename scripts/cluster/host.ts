/**
 * The host side of the local cluster's node: the pod bridge, the sysctls, the firewall guard and
 * the routes it needs, and the cleanup that removes all of it again — processes, mounts, network
 * namespaces, the bridge, iptables rules and cgroups — also after a run that was killed.
 *
 * Every step is a command line built by a pure function (so the plan can be read and tested) and
 * run by {@link runCommand}; cleanup steps tolerate "already gone".
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, readlinkSync, rmdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface HostNetwork {
  /** The Linux bridge the CNI bridge plugin attaches pods to, e.g. `jm0`. */
  readonly bridge: string;
  /** The node's address on the bridge (the pods' gateway), e.g. `10.244.0.1`. */
  readonly address: string;
  /** Prefix length of the pod network on the bridge, e.g. 24. */
  readonly prefixLength: number;
  /** The pod network, e.g. `10.244.0.0/24`. */
  readonly podCidr: string;
  /** The Service network, e.g. `10.96.0.0/16`. */
  readonly serviceCidr: string;
}

/** The firewall chain that keeps all pod traffic on this machine. */
export const GUARD_CHAIN = 'JOBMETRICS-NODE-GUARD';

export interface CommandResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

export class HostCommandError extends Error {
  constructor(
    readonly argv: readonly string[],
    readonly result: CommandResult,
  ) {
    super(`${argv.join(' ')} exited ${result.code}: ${(result.stderr || result.stdout).trim().slice(0, 500)}`);
    this.name = 'HostCommandError';
  }
}

export function runCommand(argv: readonly string[], opts: { input?: string; allowFailure?: boolean } = {}): CommandResult {
  const [cmd, ...args] = argv;
  if (cmd === undefined) throw new Error('empty command');
  const r = spawnSync(cmd, args, { encoding: 'utf8', input: opts.input ?? '', timeout: 120_000 });
  const result: CommandResult = {
    code: r.status ?? (r.error ? 127 : 128),
    stdout: r.stdout ?? '',
    stderr: (r.stderr ?? '') + (r.error ? `\n${r.error.message}` : ''),
  };
  if (result.code !== 0 && !opts.allowFailure) throw new HostCommandError(argv, result);
  return result;
}

/** The sysctls the node needs: routing between the bridge and the Service DNAT rules, and
 * bridged traffic through iptables (kube-proxy's rules for pod -> Service -> pod on one bridge). */
export const NODE_SYSCTLS: Readonly<Record<string, string>> = {
  'net/ipv4/ip_forward': '1',
  'net/bridge/bridge-nf-call-iptables': '1',
};

/** Commands that create the bridge, its address and the Service route. */
export function bridgeSetup(net: HostNetwork): string[][] {
  return [
    ['ip', 'link', 'add', net.bridge, 'type', 'bridge'],
    ['ip', 'addr', 'add', `${net.address}/${net.prefixLength}`, 'dev', net.bridge],
    ['ip', 'link', 'set', net.bridge, 'up'],
    // The Service network is only ever DNAT'd by kube-proxy on this machine. A route through the
    // bridge (rather than the default route) keeps a packet that no rule rewrote on this machine.
    ['ip', 'route', 'replace', net.serviceCidr, 'dev', net.bridge, 'src', net.address],
  ];
}

/**
 * Firewall rules that keep pod traffic on this machine: forwarded packets may only go from the
 * bridge to the bridge (pod to pod, also after a Service DNAT). Nothing is masqueraded, and a pod
 * cannot reach any other network through this host.
 */
export function guardSetup(net: HostNetwork): string[][] {
  return [
    ['iptables', '-w', '-N', GUARD_CHAIN],
    ['iptables', '-w', '-A', GUARD_CHAIN, '-i', net.bridge, '-o', net.bridge, '-j', 'RETURN'],
    ['iptables', '-w', '-A', GUARD_CHAIN, '-i', net.bridge, '-j', 'DROP'],
    ['iptables', '-w', '-A', GUARD_CHAIN, '-o', net.bridge, '-j', 'DROP'],
    ['iptables', '-w', '-I', 'FORWARD', '1', '-j', GUARD_CHAIN],
  ];
}

export function guardTeardown(): string[][] {
  return [
    ['iptables', '-w', '-D', 'FORWARD', '-j', GUARD_CHAIN],
    ['iptables', '-w', '-F', GUARD_CHAIN],
    ['iptables', '-w', '-X', GUARD_CHAIN],
  ];
}

/**
 * The chains the kubelet itself adds (its iptables "canary" and the localnet firewall rule, see the
 * kubelet's kubelet_network_linux.go); kube-proxy's own cleanup does not remove them.
 */
export function kubeletChainsTeardown(): string[][] {
  return [
    ['iptables', '-w', '-D', 'INPUT', '-j', 'KUBE-FIREWALL'],
    ['iptables', '-w', '-D', 'OUTPUT', '-j', 'KUBE-FIREWALL'],
    ['iptables', '-w', '-F', 'KUBE-FIREWALL'],
    ['iptables', '-w', '-X', 'KUBE-FIREWALL'],
    ...['filter', 'nat', 'mangle'].flatMap((table) => [
      ['iptables', '-w', '-t', table, '-F', 'KUBE-KUBELET-CANARY'],
      ['iptables', '-w', '-t', table, '-X', 'KUBE-KUBELET-CANARY'],
    ]),
    ['iptables', '-w', '-t', 'mangle', '-X', 'KUBE-IPTABLES-HINT'],
  ];
}

export function bridgeTeardown(net: HostNetwork): string[][] {
  return [
    ['ip', 'route', 'del', net.serviceCidr, 'dev', net.bridge],
    ['ip', 'link', 'set', net.bridge, 'down'],
    ['ip', 'link', 'del', net.bridge],
  ];
}

/** Sets the node's sysctls and records the old values in `savePath`, to restore on cleanup. */
export function applySysctls(savePath: string): void {
  const saved: Record<string, string> = existsSync(savePath) ? (JSON.parse(readFileSync(savePath, 'utf8')) as Record<string, string>) : {};
  for (const [key, value] of Object.entries(NODE_SYSCTLS)) {
    const path = join('/proc/sys', key);
    const old = readFileSync(path, 'utf8').trim();
    saved[key] ??= old;
    if (old !== value) writeFileSync(path, value);
  }
  writeFileSync(savePath, JSON.stringify(saved));
}

export function restoreSysctls(savePath: string): void {
  if (!existsSync(savePath)) return;
  const saved = JSON.parse(readFileSync(savePath, 'utf8')) as Record<string, string>;
  for (const [key, value] of Object.entries(saved)) {
    try {
      writeFileSync(join('/proc/sys', key), value);
    } catch {
      // a sysctl that cannot be written back is left as it is; the cleanup goes on
    }
  }
  rmSync(savePath, { force: true });
}

export function setUpHostNetwork(net: HostNetwork, sysctlSave: string): void {
  teardownHostNetwork(net); // a run killed before its cleanup may have left them
  applySysctls(sysctlSave);
  for (const argv of [...bridgeSetup(net), ...guardSetup(net)]) runCommand(argv);
}

export function teardownHostNetwork(net: HostNetwork): void {
  for (const argv of [...guardTeardown(), ...kubeletChainsTeardown(), ...bridgeTeardown(net)]) runCommand(argv, { allowFailure: true });
}

// ---------------------------------------------------------------------------------------------
// Processes, mounts, network namespaces, cgroups

/** Mount points at or below `dir`, deepest first (the order they can be unmounted in). */
export function mountsBelow(mountinfo: string, dir: string): string[] {
  const prefix = dir.endsWith('/') ? dir : `${dir}/`;
  const points = mountinfo
    .split('\n')
    .map((line) => line.split(' ')[4])
    .filter((p): p is string => p !== undefined && (p === dir || p.startsWith(prefix)))
    .map((p) => p.replace(/\\040/g, ' '));
  return [...new Set(points)].sort((a, b) => b.length - a.length);
}

export function unmountBelow(dir: string): number {
  let count = 0;
  // A lazy unmount can uncover a mount below it; a few rounds settle it.
  for (let round = 0; round < 5; round++) {
    const points = mountsBelow(readFileSync('/proc/self/mountinfo', 'utf8'), dir);
    if (points.length === 0) break;
    for (const p of points) {
      if (runCommand(['umount', '-l', p], { allowFailure: true }).code === 0) count++;
    }
  }
  return count;
}

/** PIDs whose command line contains `needle` (e.g. the node folder), excluding ourselves. */
export function pidsWithArg(needle: string): number[] {
  const pids: number[] = [];
  for (const name of readdirSync('/proc')) {
    const pid = Number(name);
    if (!Number.isInteger(pid) || pid === process.pid) continue;
    try {
      const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
      if (cmdline.includes(needle)) pids.push(pid);
    } catch {
      // exited meanwhile
    }
  }
  return pids;
}

export function killPids(pids: readonly number[]): void {
  for (const pid of pids) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
}

/** The cgroup v1 hierarchies (or the v2 root) the kubelet creates `kubepods` in. */
function cgroupRoots(): string[] {
  const base = '/sys/fs/cgroup';
  if (!existsSync(base)) return [];
  if (existsSync(join(base, 'cgroup.controllers'))) return [base];
  return readdirSync(base)
    .map((d) => join(base, d))
    .filter((d) => {
      try {
        return statSync(d).isDirectory() && !readlinkSafe(d);
      } catch {
        return false;
      }
    });
}

function readlinkSafe(path: string): string | undefined {
  try {
    return readlinkSync(path);
  } catch {
    return undefined;
  }
}

/** Every cgroup folder at or below `top`, deepest first. */
function cgroupTree(top: string): string[] {
  const out: string[] = [];
  const walk = (d: string): void => {
    let entries: string[];
    try {
      entries = readdirSync(d, { withFileTypes: true }).filter((e) => e.isDirectory()).map((e) => join(d, e.name));
    } catch {
      return;
    }
    for (const e of entries) walk(e);
    out.push(d);
  };
  walk(top);
  return out;
}

/** Kills every process in the kubelet's `kubepods` cgroups and removes those cgroups. */
export function removeKubepodsCgroups(): { killed: number; removed: number } {
  let killed = 0;
  let removed = 0;
  const tops = cgroupRoots().map((r) => join(r, 'kubepods')).filter((t) => existsSync(t));
  for (let round = 0; round < 10 && tops.some((t) => existsSync(t)); round++) {
    for (const top of tops) {
      for (const dir of cgroupTree(top)) {
        try {
          const pids = readFileSync(join(dir, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean).map(Number);
          killPids(pids);
          killed += pids.length;
        } catch {
          // gone
        }
      }
    }
    for (const top of tops) {
      for (const dir of cgroupTree(top)) {
        try {
          rmdirSync(dir);
          removed++;
        } catch {
          // busy (a process still dying) or gone: the next round retries
        }
      }
    }
    if (tops.some((t) => existsSync(t))) spawnSync('sleep', ['0.2']);
  }
  return { killed, removed };
}

/** Network namespaces the CNI plugins left (containerd names them `cni-<uuid>`). */
export function removeCniNetns(): number {
  const dir = '/run/netns';
  if (!existsSync(dir)) return 0;
  let count = 0;
  for (const name of readdirSync(dir).filter((n) => n.startsWith('cni-'))) {
    runCommand(['umount', '-l', join(dir, name)], { allowFailure: true });
    rmSync(join(dir, name), { force: true });
    count++;
  }
  return count;
}

/** Symlinks the kubelet made in /var/log/containers that point into `dir`. */
export function removeContainerLogLinks(dir: string): void {
  const logs = '/var/log/containers';
  if (!existsSync(logs)) return;
  for (const name of readdirSync(logs)) {
    const target = readlinkSafe(join(logs, name));
    if (target?.startsWith(dir)) rmSync(join(logs, name), { force: true });
  }
}
