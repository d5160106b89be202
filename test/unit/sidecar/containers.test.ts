/**
 * Which processes are the main container's (sidecar/containers.ts): the pure rule over tables of
 * process facts, the mountinfo parser over lines as containerd shows them, and the whole scan
 * over fixture /proc trees laid out as a kubelet pod's PID namespace looks to the sidecar.
 */
import { expect } from 'chai';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ContainerNames, containerFromMountinfo, mainProcesses, type ProcessFacts } from '../../../sidecar/containers.ts';
import { mainScanner } from '../../../sidecar/exit-watch.ts';

const POD_UID = '0b6f3c2e-8d4a-4e0f-9a51-2c7d1e9f6a10';
const KUBELET = '/var/lib/kubelet';
/** The kubelet's bind mount of a container's termination-message file, as mountinfo shows it. */
const terminationMount = (container: string, id: string, mountPoint = '/dev/termination-log', root = KUBELET) =>
  `1510 1490 8:1 ${root}/pods/${POD_UID}/containers/${container}/${id} ${mountPoint} rw,relatime - ext4 /dev/sda1 rw`;
/** The rest of a container's mounts: none of them has the per-container shape. */
const OTHER_MOUNTS = [
  '1490 1380 0:140 / / rw,relatime master:420 - overlay overlay rw,lowerdir=/var/lib/containerd/l1,upperdir=/u,workdir=/w',
  '1491 1490 0:143 / /proc rw,nosuid,nodev,noexec,relatime - proc proc rw',
  '1492 1490 0:144 / /dev rw,nosuid - tmpfs tmpfs rw,size=65536k,mode=755',
  `1505 1490 8:1 ${KUBELET}/pods/${POD_UID}/etc-hosts /etc/hosts rw,relatime - ext4 /dev/sda1 rw`,
  `1506 1490 8:1 ${KUBELET}/pods/${POD_UID}/volumes/kubernetes.io~empty-dir/containers /data rw,relatime - ext4 /dev/sda1 rw`,
  `1507 1490 8:1 ${KUBELET}/pods/${POD_UID}/volume-subpaths/config/worker/0 /etc/app rw,relatime - ext4 /dev/sda1 rw`,
  '1508 1490 0:120 / /var/run/secrets/kubernetes.io/serviceaccount ro,relatime - tmpfs tmpfs rw,size=4096k',
];
const mountinfo = (...extra: string[]) => [...OTHER_MOUNTS, ...extra].join('\n') + '\n';

describe('containerFromMountinfo', () => {
  const cases: Array<[string, string, string | undefined]> = [
    ['the default terminationMessagePath', mountinfo(terminationMount('worker', '5c3e1a2b')), 'worker'],
    ['a terminationMessagePath of its own', mountinfo(terminationMount('worker', '5c3e1a2b', '/tmp/last-words')), 'worker'],
    ['the kubelet root on a filesystem of its own', mountinfo(terminationMount('worker', 'f00d', '/dev/termination-log', '')), 'worker'],
    ['a kubelet root elsewhere', mountinfo(terminationMount('etl', 'f00d', '/dev/termination-log', '/data/kubelet')), 'etl'],
    ['an escaped space in the kubelet root', terminationMount('worker', 'ab', '/dev/termination-log', '/srv/my\\040kubelet'), 'worker'],
    ['no termination-message mount (an emptyDir named containers, a subPath)', mountinfo(), undefined],
    ['no kubelet at all (unshare)', '22 27 0:21 / /proc rw,relatime - proc proc rw\n', undefined],
    ['empty', '', undefined],
  ];
  for (const [name, text, want] of cases) it(name, () => expect(containerFromMountinfo(text)).to.equal(want));
});

const f = (pid: number, ppid: number, o: { state?: string; cgroup?: string; container?: string } = {}): ProcessFacts => ({
  pid,
  ppid,
  comm: 'x',
  state: o.state ?? 'S',
  cgroup: o.cgroup,
  container: o.container,
});

describe('mainProcesses', () => {
  // A kubelet pod: pause (1), a mesh proxy declared before us (7), us (12), the main container
  // (36, its child 40 whose mountinfo was not read), and an extra regular container (50).
  const pod = [
    f(1, 0, { cgroup: '/kubepods/pod/pause' }),
    f(7, 0, { cgroup: '/kubepods/pod/c-mesh', container: 'istio-proxy' }),
    f(12, 0, { cgroup: '/kubepods/pod/c-us', container: 'jobmetrics-sidecar' }),
    f(36, 0, { cgroup: '/kubepods/pod/c-main', container: 'worker' }),
    f(40, 36, { cgroup: '/kubepods/pod/c-main' }),
    f(50, 0, { cgroup: '/kubepods/pod/c-logs', container: 'log-shipper' }),
  ];
  const cases: Array<{ name: string; facts: ProcessFacts[]; self: number; main?: string; want: number[] }> = [
    { name: 'named: only the main container, its unnamed child by its cgroup', facts: pod, self: 12, main: 'worker', want: [36, 40] },
    { name: 'no name given: every process but pause and ours (the rule without names)', facts: pod, self: 12, want: [7, 36, 40, 50] },
    { name: 'named, main not started yet (native mode): nothing, not the mesh proxy', facts: pod.filter((e) => e.pid < 36), self: 12, main: 'worker', want: [] },
    {
      name: 'named, main restarted: the new container (new cgroup)',
      facts: [...pod.filter((e) => e.pid !== 36 && e.pid !== 40), f(80, 0, { cgroup: '/kubepods/pod/c-main-2', container: 'worker' })],
      self: 12,
      main: 'worker',
      want: [80],
    },
    {
      name: 'named, one cgroup for all: an unread process is not named by it',
      facts: [f(1, 0, { cgroup: '/' }), f(7, 0, { cgroup: '/', container: 'mesh' }), f(12, 0, { cgroup: '/' }), f(36, 0, { cgroup: '/', container: 'worker' }), f(41, 0, { cgroup: '/' })],
      self: 12,
      main: 'worker',
      want: [36],
    },
    { name: 'named, main exiting: zombies have exited', facts: [...pod.slice(0, 3), f(36, 0, { state: 'Z', cgroup: '/kubepods/pod/c-main', container: 'worker' })], self: 12, main: 'worker', want: [] },
    {
      name: 'no kubelet mounts (the local demo): the rule without names, even with a name given',
      facts: [f(1, 0, { cgroup: '/' }), f(2, 0, { cgroup: '/' }), f(5, 2, { cgroup: '/' }), f(3, 0, { cgroup: '/' })],
      self: 3,
      main: 'worker',
      want: [2, 5],
    },
    {
      name: 'only our own mount is named: the rule without names',
      facts: [f(1, 0), f(2, 0), f(3, 0, { container: 'jobmetrics-sidecar' })],
      self: 3,
      main: 'worker',
      want: [2],
    },
    { name: 'pause, main, sidecar', facts: [f(1, 0), f(2, 0), f(3, 0)], self: 3, want: [2] },
    { name: 'main with children', facts: [f(1, 0), f(2, 0), f(5, 2), f(6, 5), f(3, 0)], self: 3, want: [2, 5, 6] },
    { name: 'sidecar children and wrapper are ours', facts: [f(1, 0), f(2, 0), f(8, 0), f(3, 8), f(4, 3)], self: 3, want: [2] },
    { name: 'nothing but us', facts: [f(1, 0), f(3, 1)], self: 3, want: [] },
    {
      name: 'cgroups refine: our container’s other processes are ours',
      facts: [f(1, 0, { cgroup: '/pause' }), f(2, 0, { cgroup: '/main' }), f(3, 0, { cgroup: '/side' }), f(9, 0, { cgroup: '/side' })],
      self: 3,
      want: [2],
    },
    { name: 'one cgroup for all (no refinement possible)', facts: [f(1, 0, { cgroup: '/' }), f(2, 0, { cgroup: '/' }), f(3, 0, { cgroup: '/' })], self: 3, want: [2] },
  ];
  for (const c of cases) {
    it(c.name, () => expect([...mainProcesses(c.facts, c.self, c.main)].sort((a, b) => a - b)).to.deep.equal(c.want));
  }
});

describe('ContainerNames', () => {
  it('reads each process’s mountinfo once, retries one that could not be read, forgets gone processes', () => {
    const reads: number[] = [];
    const texts = new Map<number, string>([
      [1, mountinfo()],
      [7, mountinfo(terminationMount('istio-proxy', 'a1'))],
      [36, mountinfo(terminationMount('worker', 'b2'))],
      [40, mountinfo(terminationMount('worker', 'b2'))],
    ]);
    const names = new ContainerNames((pid) => {
      reads.push(pid);
      return texts.get(pid);
    });
    const e = (pid: number, cgroup: string) => ({ pid, ppid: 0, comm: 'x', state: 'S', cgroup });
    // 35 is gone before its mountinfo is read: unnamed (mainProcesses names it by its cgroup).
    const first = names.name([e(1, '/'), e(7, '/'), e(35, '/'), e(36, '/'), e(40, '/')]);
    expect(first.map((x) => x.container), 'one cgroup for all, as on a hybrid node').to.deep.equal([undefined, 'istio-proxy', undefined, 'worker', 'worker']);
    expect(reads).to.deep.equal([1, 7, 35, 36, 40]);
    names.name([e(1, '/'), e(7, '/'), e(35, '/'), e(40, '/')]);
    expect(reads, 'only 35 again').to.deep.equal([1, 7, 35, 36, 40, 35]);
    names.name([e(1, '/'), e(7, '/')]);
    expect(names.processesKnown, 'the main container’s processes are gone').to.equal(2);
    names.name([e(1, '/'), e(7, '/c2')]);
    expect(reads.at(-1), 'PID 7 in another cgroup is another process').to.equal(7);
  });

  it('reads a process again once it has exec’d its program: one seen during runc init has no kubelet mount yet', () => {
    let mounted = false;
    const reads: number[] = [];
    const names = new ContainerNames((pid) => {
      reads.push(pid);
      return mounted ? mountinfo(terminationMount('worker', 'b2')) : mountinfo();
    });
    const at = (comm: string) => [{ pid: 36, ppid: 0, comm, state: 'S', cgroup: '/' }];
    expect(names.name(at('runc:[2:INIT]')).map((x) => x.container), 'still being set up').to.deep.equal([undefined]);
    mounted = true;
    expect(names.name(at('runc:[2:INIT]')).map((x) => x.container), 'the same program: not read again').to.deep.equal([undefined]);
    expect(names.name(at('python3')).map((x) => x.container), 'after its exec').to.deep.equal(['worker']);
    expect(names.name(at('python3')).map((x) => x.container)).to.deep.equal(['worker']);
    expect(reads).to.deep.equal([36, 36]);
    expect(names.processesKnown, 'the setup-time entry is forgotten').to.equal(1);
  });
});

describe('mainScanner over fixture /proc trees', () => {
  let root: string;
  beforeEach(() => {
    root = mkdtempSync(join(tmpdir(), 'containers-'));
  });
  afterEach(() => rmSync(root, { recursive: true, force: true }));

  /** A process as the sidecar sees it; `mountinfo: null` leaves the file out (unreadable). */
  const proc = (pid: number, ppid: number, cgroupPath: string, mounts: string | null) => {
    mkdirSync(join(root, String(pid)), { recursive: true });
    writeFileSync(join(root, String(pid), 'stat'), `${pid} (p${pid}) S ${ppid} ${pid} ${pid} 0 -1 4194560`);
    // cgroup v1 with the cgroupfs driver, as the node runs it.
    const lines = ['12:pids', '11:memory', '4:cpu,cpuacct'].map((c) => `${c}:${cgroupPath}`);
    writeFileSync(join(root, String(pid), 'cgroup'), lines.join('\n') + '\n');
    if (mounts !== null) writeFileSync(join(root, String(pid), 'mountinfo'), mounts);
  };
  const cg = (id: string) => `/kubepods/besteffort/pod${POD_UID}/${id.repeat(64 / id.length)}`;

  const trees: Array<{ name: string; build: () => void; main?: string; want: number[] }> = [
    {
      name: 'a mesh-like native sidecar before ours and an extra regular container',
      build: () => {
        proc(1, 0, `/kubepods/besteffort/pod${POD_UID}/${'9'.repeat(64)}`, mountinfo());
        proc(7, 0, cg('a'), mountinfo(terminationMount('mesh', '11')));
        proc(12, 0, cg('b'), mountinfo(terminationMount('jobmetrics-sidecar', '22')));
        proc(36, 0, cg('c'), mountinfo(terminationMount('worker', '33')));
        proc(41, 36, cg('c'), null);
        proc(50, 0, cg('d'), mountinfo(terminationMount('extra', '44')));
      },
      main: 'worker',
      want: [36, 41],
    },
    {
      name: 'the same pod without a name: everything but pause and us',
      build: () => {
        proc(1, 0, cg('9'), mountinfo());
        proc(7, 0, cg('a'), mountinfo(terminationMount('mesh', '11')));
        proc(12, 0, cg('b'), mountinfo(terminationMount('jobmetrics-sidecar', '22')));
        proc(36, 0, cg('c'), mountinfo(terminationMount('worker', '33')));
      },
      want: [7, 36],
    },
    {
      name: 'one cgroup for all containers (0::/ on a hybrid node, the local demo): each process named by its own mounts',
      build: () => {
        proc(1, 0, '/', mountinfo());
        proc(7, 0, '/', mountinfo(terminationMount('mesh', '11')));
        proc(12, 0, '/', mountinfo(terminationMount('jobmetrics-sidecar', '22')));
        proc(36, 0, '/', mountinfo(terminationMount('worker', '33')));
        proc(41, 36, '/', mountinfo(terminationMount('worker', '33')));
      },
      main: 'worker',
      want: [36, 41],
    },
    {
      name: 'unreadable mountinfo everywhere (another kernel policy): the rule without names',
      build: () => {
        proc(1, 0, cg('9'), null);
        proc(7, 0, cg('a'), null);
        proc(12, 0, cg('b'), null);
        proc(36, 0, cg('c'), null);
      },
      main: 'worker',
      want: [7, 36],
    },
  ];
  for (const t of trees) {
    it(t.name, () => {
      t.build();
      const scan = mainScanner({ procRoot: root, selfPid: 12, ...(t.main !== undefined ? { mainContainer: t.main } : {}) });
      expect([...scan()].sort((a, b) => a - b)).to.deep.equal(t.want);
    });
  }
});
