import { expect } from 'chai';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { staleFiles, writeOrCheck } from '../../../scripts/rendered-files.ts';

describe('scripts/rendered-files.ts: the render commands write, or with --check compare', () => {
  let dir = '';
  beforeEach(() => (dir = mkdtempSync(join(tmpdir(), 'jobmetrics-rendered-'))));
  afterEach(() => rmSync(dir, { recursive: true, force: true }));
  const quietly = <T>(f: () => T): T => {
    const [log, error] = [console.log, console.error];
    console.log = console.error = () => {};
    try {
      return f();
    } finally {
      [console.log, console.error] = [log, error];
    }
  };

  it('writes every file (folders made), after which --check passes; a changed or missing file is stale, and --check exits 1', () => {
    const files = [
      { path: join(dir, 'a.md'), text: 'A\n' },
      { path: join(dir, 'sub', 'b.json'), text: '{}\n' },
    ];
    expect(staleFiles(files)).to.deep.equal(files.map((f) => f.path));
    expect(quietly(() => writeOrCheck(files, 'npm run render-x', ['--check']))).to.equal(1);
    expect(quietly(() => writeOrCheck(files, 'npm run render-x', []))).to.equal(0);
    expect(readFileSync(join(dir, 'sub', 'b.json'), 'utf8')).to.equal('{}\n');
    expect(quietly(() => writeOrCheck(files, 'npm run render-x', ['--check']))).to.equal(0);
    writeFileSync(join(dir, 'a.md'), 'edited by hand\n');
    expect(staleFiles(files)).to.deep.equal([join(dir, 'a.md')]);
    expect(quietly(() => writeOrCheck(files, 'npm run render-x', ['--check']))).to.equal(1);
  });
});
