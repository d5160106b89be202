import { expect } from 'chai';
import type { OutcomeEvent } from '../../../recorder/outcomes.ts';
import { Pending } from '../../../recorder/pending.ts';

const WINDOW = 600_000;
const ev = (id: string, atMs: number): OutcomeEvent => ({ id, namespace: 'ns', workload: 'w', atMs, counters: [], observations: [] });

describe('Pending: which events still go out (recorder/pending.ts)', () => {
  it('queues an event once, however often it is offered, and hands them out in the order first offered', () => {
    const p = new Pending(WINDOW);
    expect(p.offer([ev('b', 2_000), ev('a', 1_000)], 5_000)).to.deep.equal({ queued: 2, tooOld: 0 });
    expect(p.offer([ev('a', 1_000), ev('b', 2_000)], 6_000)).to.deep.equal({ queued: 0, tooOld: 0 });
    expect(p.take(10).map((e) => e.id)).to.deep.equal(['b', 'a']);
    expect(p.take(1).map((e) => e.id)).to.deep.equal(['b']);
  });

  it('never sends an event older than the window: a repeat then would count again', () => {
    const p = new Pending(WINDOW);
    expect(p.offer([ev('old', 0), ev('edge', 1)], WINDOW + 1)).to.deep.equal({ queued: 1, tooOld: 1 });
    expect(p.take(10).map((e) => e.id)).to.deep.equal(['edge']);
  });

  it('a delivered event is not queued again while it could still be delivered', () => {
    const p = new Pending(WINDOW);
    p.offer([ev('a', 1_000)], 1_000);
    p.delivered(p.take(10));
    expect(p.size).to.equal(0);
    expect(p.offer([ev('a', 1_000)], 2_000)).to.deep.equal({ queued: 0, tooOld: 0 });
    // After the window it is too old anyway, so forgetting it loses nothing.
    p.prune(1_000 + WINDOW + 1);
    expect(p.offer([ev('a', 1_000)], 1_000 + WINDOW + 1)).to.deep.equal({ queued: 0, tooOld: 1 });
  });

  it('a failed delivery leaves the events queued until the window closes, then gives them up', () => {
    const p = new Pending(WINDOW);
    p.offer([ev('a', 1_000), ev('b', 500_000)], 1_000);
    expect(p.prune(1_000 + WINDOW).map((e) => e.id)).to.deep.equal([]);
    expect(p.prune(1_000 + WINDOW + 1).map((e) => e.id)).to.deep.equal(['a']);
    expect(p.take(10).map((e) => e.id)).to.deep.equal(['b']);
  });
});
