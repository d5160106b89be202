import { expect } from 'chai';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ExitHints, waitForMainExit } from '../../../sidecar/exit-watch.ts';
import { parseCgroup, parseProcStat } from '../../../sidecar/proc.ts';

describe('parseProcStat (proc(5))', () => {
  const cases: Array<[string, ReturnType<typeof parseProcStat>]> = [
    ['42 (node) S 1 42 42 0 -1 4194560 1 0', { pid: 42, comm: 'node', state: 'S', ppid: 1 }],
    ['7 (a (weird) name) Z 3 7 7 0', { pid: 7, comm: 'a (weird) name', state: 'Z', ppid: 3 }],
    ['9 (sh) R 0 9 9', { pid: 9, comm: 'sh', state: 'R', ppid: 0 }],
    ['garbage', undefined],
    ['', undefined],
    ['12 (x)', undefined],
  ];
  for (const [text, want] of cases) it(`parses ${JSON.stringify(text)}`, () => expect(parseProcStat(text)).to.deep.equal(want));
});

describe('parseCgroup', () => {
  it('prefers the cgroup v2 line', () => expect(parseCgroup('12:pids:/a\n0::/kubepods/pod1/c2\n')).to.equal('/kubepods/pod1/c2'));
  it('falls back to the v1 pids controller', () => expect(parseCgroup('3:cpu:/x\n2:pids:/kubepods/c1\n')).to.equal('/kubepods/c1'));
  it('is undefined for nothing', () => expect(parseCgroup('')).to.equal(undefined));
  it('a hybrid node: the v1 line when the v2 line is the root', () =>
    expect(parseCgroup('12:pids:/kubepods/besteffort/podu/c1\n11:memory:/kubepods/besteffort/podu/c1\n0::/\n')).to.equal('/kubepods/besteffort/podu/c1'));
  it('the v2 root when nothing else says more', () => expect(parseCgroup('2:pids:/\n0::/\n')).to.equal('/'));
});

describe('waitForMainExit over a proc tree in a temp dir', () => {
  let root: string;
  const write = (pid: number, ppid: number, state = 'S') => {
    mkdirSync(join(root, String(pid)), { recursive: true });
    writeFileSync(join(root, String(pid), 'stat'), `${pid} (proc ${pid}) ${state} ${ppid} 0 0 0`);
    writeFileSync(join(root, String(pid), 'cgroup'), '0::/\n');
  };
  beforeEach(() => {
    root = mkdtempSync(join(tmpdir(), 'exit-watch-'));
  });
  afterEach(() => rmSync(root, { recursive: true, force: true }));

  it('resolves "exited" once the seen main processes are gone, including a late fork', async () => {
    write(1, 0);
    write(3, 1); // us
    write(2, 1); // main
    const seen: number[][] = [];
    const done = waitForMainExit({ procRoot: root, selfPid: 3, pollMs: 5, rescanMs: 10_000, onFirstSeen: (pids) => seen.push([...pids]) });
    await new Promise((r) => setTimeout(r, 80));
    write(4, 2); // main forks a child, unknown to the watcher so far
    rmSync(join(root, '2'), { recursive: true }); // main's first process ends
    await new Promise((r) => setTimeout(r, 80));
    write(4, 2, 'Z'); // the child has exited but is not reaped yet
    const event = await done;
    expect(seen).to.deep.equal([[2]]);
    expect(event.reason).to.equal('exited');
    expect(event.pids).to.deep.equal([4]);
  });

  it('polls slowly, but looks at once (then every fastPollMs) when a hint comes', async () => {
    write(1, 0);
    write(3, 1);
    write(2, 1);
    const hints = new ExitHints();
    // A fast window far longer than this test needs, so a loaded machine cannot outlast it.
    const done = waitForMainExit({ procRoot: root, selfPid: 3, pollMs: 60_000, hints, fastPollMs: 5, fastWindowMs: 30_000, rescanMs: 60_000 });
    await new Promise((r) => setTimeout(r, 100)); // seen; now in a 60 s wait
    // The scrape connection closes a moment before the process is gone (the kernel closes its
    // sockets first): the first look still finds it, the fast polls that follow see the exit.
    hints.hint();
    await new Promise((r) => setTimeout(r, 20));
    write(2, 1, 'Z');
    const started = Date.now();
    const event = await done;
    expect(event.reason).to.equal('exited');
    // The bound is the feature: seen by a 5 ms fast poll, not the 60 s one; 10 s is a wide margin.
    expect(Date.now() - started).to.be.below(10_000);
  });

  it('while a sensor is armed, the backstop poll slows to armedPollMs; disarmed, back to pollMs', async () => {
    write(1, 0);
    write(3, 1);
    write(2, 1);
    const hints = new ExitHints();
    hints.sensor(true);
    const done = waitForMainExit({ procRoot: root, selfPid: 3, pollMs: 20, armedPollMs: 60_000, hints, rescanMs: 60_000 });
    await new Promise((r) => setTimeout(r, 100)); // seen; now in a 60 s wait, as the sensor is armed
    write(2, 1, 'Z'); // gone without a hint (a connection held by another container's process)
    const outcome = await Promise.race([done.then(() => 'noticed'), new Promise((r) => setTimeout(() => r('not yet'), 300))]);
    expect(outcome, 'armed: the 20 ms poll is not running').to.equal('not yet');
    // The server announced a close (no sensor any more): the next wait is pollMs again. The
    // current 60 s wait still runs; a hint-free exit is then noticed within that one wait, which
    // here a hint ends (as the close of the next connection would).
    hints.sensor(false);
    hints.hint();
    const event = await done;
    expect(event.reason).to.equal('exited');
  });

  it('a hint disarms the sensor (the connection that was it is gone)', () => {
    const hints = new ExitHints();
    hints.sensor(true);
    expect(hints.armed).to.equal(true);
    hints.hint();
    expect(hints.armed).to.equal(false);
  });

  it('ExitHints.wait ends at its time, at a hint, or rejects on abort; and keeps no waiters', async () => {
    const hints = new ExitHints();
    let t = Date.now();
    await hints.wait(30);
    expect(Date.now() - t).to.be.at.least(25);
    t = Date.now();
    const w = hints.wait(60_000);
    hints.hint();
    expect(hints.waiting, 'the hint ended the 60 s wait').to.equal(0);
    await w;
    expect(hints.lastAt).to.be.at.least(t);
    const ac = new AbortController();
    const aborted = hints.wait(60_000, ac.signal);
    ac.abort(new Error('stop'));
    let reason: unknown;
    await aborted.catch((e: unknown) => (reason = e));
    expect((reason as Error).message).to.equal('stop');
    // 1 000 waits that ended by their timer leave nothing behind for the next hint to call.
    for (let i = 0; i < 1_000; i++) await hints.wait(0);
    expect(hints.waiting).to.equal(0);
  });

  it('resolves "never-seen" after the grace period when no main process shows up', async () => {
    write(1, 0);
    write(3, 1);
    const event = await waitForMainExit({ procRoot: root, selfPid: 3, pollMs: 5, rescanMs: 100, neverSeenGraceMs: 120 });
    expect(event.reason).to.equal('never-seen');
  });

  it('resolves "no-shared-pid-namespace" when the sidecar is PID 1', async () => {
    const event = await waitForMainExit({ procRoot: root, selfPid: 1, pollMs: 5, rescanMs: 100 });
    expect(event.reason).to.equal('no-shared-pid-namespace');
  });
});
