/** The budget of request-body bytes: who is read, who is refused before a byte is read, and why. */
import { expect } from 'chai';
import { BodyBudget, ORDINARY_BODY_BYTES } from '../../../webhook/body-budget.ts';

const MiB = 1 << 20;
/** The defaults: 3 MiB per body, 32 MiB in all, of which 24 MiB for bodies over 256 KiB. */
const limits = { maxRequestBytes: 3 * MiB, maxInFlightBytes: 32 * MiB };

/** Admits each declared length in turn (undefined: chunked) and says what became of it. */
function run(declared: readonly (number | undefined)[]): string[] {
  const budget = new BodyBudget(limits);
  return declared.map((d) => {
    const a = budget.admit(d);
    return a.ok ? `ok ${a.reserved}` : `${a.status} ${a.outcome}`;
  });
}

describe('webhook BodyBudget', () => {
  const rows: [string, (number | undefined)[], string[]][] = [
    ['an ordinary review', [12_000], ['ok 12000']],
    ['a body over maxRequestBytes is 413 before it is read', [3 * MiB + 1], ['413 too_large']],
    ['a body of exactly maxRequestBytes is read', [3 * MiB], [`ok ${3 * MiB}`]],
    ['a chunked body reserves maxRequestBytes', [undefined], [`ok ${3 * MiB}`]],
    ['large bodies fill their 24 MiB share; the ninth 3 MB one is 503', Array(9).fill(3_000_000), [...Array(8).fill('ok 3000000'), '503 overloaded']],
    [
      'with the large share full, ordinary reviews still fit in the reserve',
      [...Array(8).fill(3_000_000), 12_000, ORDINARY_BODY_BYTES],
      [...Array(8).fill('ok 3000000'), 'ok 12000', `ok ${ORDINARY_BODY_BYTES}`],
    ],
    ['ordinary bodies may use the whole budget', Array(129).fill(ORDINARY_BODY_BYTES), [...Array(128).fill(`ok ${ORDINARY_BODY_BYTES}`), '503 overloaded']],
    ['with the budget full of ordinary bodies, a large one is 503 too', [...Array(128).fill(ORDINARY_BODY_BYTES), 300_000], [...Array(128).fill(`ok ${ORDINARY_BODY_BYTES}`), '503 overloaded']],
  ];
  for (const [title, declared, want] of rows) {
    it(title, () => expect(run(declared)).to.deep.equal(want));
  }

  it('gives the bytes back once, however often release is called', () => {
    const budget = new BodyBudget(limits);
    const held = Array.from({ length: 8 }, () => budget.admit(3_000_000));
    expect(budget.admit(3_000_000).ok).to.equal(false);
    const first = held[0];
    if (!first?.ok) throw new Error('expected the first to be admitted');
    first.release();
    first.release();
    expect(budget.held).to.equal(7 * 3_000_000);
    expect(budget.admit(3_000_000).ok).to.equal(true);
    expect(budget.admit(3_000_000).ok).to.equal(false);
  });

  it('says what did not fit, and where', () => {
    const budget = new BodyBudget(limits);
    for (let i = 0; i < 8; i++) budget.admit(3_000_000);
    const a = budget.admit(3_000_000);
    expect(a.ok ? '' : a.message).to.equal(
      `overloaded: 24000000 bytes of request bodies in flight; a body of 3000000 bytes does not fit in the ${24 * MiB} bytes for bodies over ${ORDINARY_BODY_BYTES} bytes`,
    );
    const tooBig = budget.admit(4 * MiB);
    expect(tooBig.ok ? '' : tooBig.message).to.equal(`request body of ${4 * MiB} bytes exceeds the limit of ${3 * MiB} bytes`);
  });
});
