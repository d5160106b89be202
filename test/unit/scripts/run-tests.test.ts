import { expect } from 'chai';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { failureHeads, LANES, plainText, runLanes, summaryCounts, type Lane } from '../../../scripts/run-tests.ts';

describe('scripts/run-tests: npm test in lanes side by side', () => {
  describe('summaryCounts reads the last spec summary', () => {
    const cases: readonly [string, string, ReturnType<typeof summaryCounts>][] = [
      ['passing only', '  ✔ a\n\n  12 passing (3s)\n', { passing: 12, failing: 0, pending: 0 }],
      ['all three, coloured', '\x1b[32m  3 passing\x1b[0m (1s)\n\x1b[31m  1 failing\x1b[0m\n\x1b[36m  2 pending\x1b[0m\n', { passing: 3, failing: 1, pending: 2 }],
      ['a test title that says "5 passing" is not the summary', '    ✔ shows 5 passing jobs\n\n  1 passing (1s)\n', { passing: 1, failing: 0, pending: 0 }],
      ['no summary: mocha died first', '  ✔ a\nError: boom\n', undefined],
    ];
    for (const [name, output, want] of cases) it(name, () => expect(summaryCounts(output)).to.deep.equal(want));
  });

  it('failureHeads lists the numbered failures under "N failing" only, each with its suite path and title', () => {
    const output = '  suite\n    1) fails\n\n  1 passing\n  2 failing\n\n  1) suite\n       inner\n         fails:\n     Error: x\n  2) other\n       breaks:\n     Error: y\n';
    expect(failureHeads(output)).to.deep.equal(['1) suite inner fails', '2) other breaks']);
  });

  it('the lanes run every test file once: the real-pod suite alone, everything else beside it', () => {
    expect(LANES.map((l) => l.name)).to.deep.equal(['node', 'rest']);
    const [node, rest] = LANES;
    expect(node?.files).to.deep.equal(['test/e2e/real-pods.test.ts']);
    expect(rest?.ignore).to.deep.equal(node?.files);
    expect(rest?.files).to.include('test/e2e/**/*.test.ts');
  });

  describe('runLanes, with real mocha processes on a temporary folder', function () {
    this.timeout(60_000);
    let dir = '';
    const colour = process.env['FORCE_COLOR'];
    before(() => {
      // Coloured, as a CI runner that sets FORCE_COLOR makes every lane's mocha print it, whatever
      // the environment these tests run in (the lanes inherit it).
      process.env['FORCE_COLOR'] = '1';
      dir = mkdtempSync(join(tmpdir(), 'jobmetrics-run-tests-'));
      // 'later' has no body: mocha counts it pending, the third number the summary must add up.
      writeFileSync(join(dir, 'pass.test.mjs'), "describe('p', () => { it('one', () => {}); it('two', () => {}); it('later'); });\n");
      writeFileSync(join(dir, 'fail.test.mjs'), "describe('f', () => { it('ok', () => {}); it('breaks', () => { throw new Error('boom'); }); });\n");
      writeFileSync(join(dir, 'dies.test.mjs'), 'process.exit(3);\n');
    });
    after(() => {
      if (colour === undefined) delete process.env['FORCE_COLOR'];
      else process.env['FORCE_COLOR'] = colour;
      rmSync(dir, { recursive: true, force: true });
    });

    const run = async (lanes: readonly Lane[]): Promise<{ code: number; text: string }> => {
      let text = '';
      const code = await runLanes(lanes, { cwd: dir, write: (t) => { text += t; } });
      expect(text, 'the lanes printed in colour').to.include('\x1b[');
      return { code, text: plainText(text) };
    };

    it('adds the lanes up in one summary, names the failures, and exits 1 on any failure', async () => {
      const { code, text } = await run([
        { name: 'a', files: ['pass.test.mjs'], ignore: [] },
        { name: 'bb', files: ['fail.test.mjs'], ignore: [] },
      ]);
      expect(code).to.equal(1);
      expect(text).to.match(/^\[a \] {5}✔ one$/m);
      expect(text).to.match(/^\[bb\] {3}1\) f$/m);
      expect(summaryCounts(text)).to.deep.equal({ passing: 3, failing: 1, pending: 1 });
      expect(text).to.include('  a: 2 passing, 0 failing, 1 pending');
      expect(text).to.include('  bb: 1 passing, 1 failing');
      expect(text).to.include('    bb: 1) f breaks\n');
    });

    it('a lane that dies before its summary is a failure, named', async () => {
      const { code, text } = await run([
        { name: 'a', files: ['pass.test.mjs'], ignore: [] },
        { name: 'd', files: ['dies.test.mjs'], ignore: [] },
      ]);
      expect(code).to.equal(1);
      expect(summaryCounts(text)).to.deep.equal({ passing: 2, failing: 1, pending: 1 });
      expect(text).to.include("  d: died before mocha's summary (exit 3");
    });

    it('every lane passing: exit 0, and an ignored file is not run', async () => {
      const { code, text } = await run([{ name: 'a', files: ['*.test.mjs'], ignore: ['fail.test.mjs', 'dies.test.mjs'] }, { name: 'b', files: ['pass.test.mjs'], ignore: [] }]);
      expect(code).to.equal(0);
      expect(summaryCounts(text)).to.deep.equal({ passing: 4, failing: 0, pending: 2 });
      expect(text).not.to.include('breaks');
    });
  });
});
