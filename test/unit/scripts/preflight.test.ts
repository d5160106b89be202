/**
 * scripts/preflight: on a machine that lacks things, one run names all of them and how to get each,
 * before any long step. The machine is simulated by a PATH of our own (symlinks to this machine's
 * real programs, minus the ones a case takes away, plus stand-ins for a too-old node or go), so
 * the real script runs unchanged; `--check` makes it change nothing.
 */
import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PROJECT_ROOT } from '../../../scripts/local-pod.ts';

const SCRIPT = join(PROJECT_ROOT, 'scripts', 'preflight');

/** What a machine of the project's kind always has: the shell tools the script itself uses. */
const BASE = ['bash', 'sed', 'awk', 'sort', 'head', 'id', 'df', 'dirname', 'date', 'cat', 'tr', 'mkdir', 'printf', 'env', 'apt-get', 'dpkg-deb', 'dpkg-query'];
/** Everything the preflight checks by command name (its Debian packages' programs). */
const CHECKED = ['containerd', 'ctr', 'runc', 'iptables', 'conntrack', 'buildah', 'debootstrap', 'wget', 'gpgv', 'setcap', 'ip', 'unshare', 'flock', 'setpriv', 'mount', 'gcc', 'git', 'node', 'npm', 'go'];

function which(cmd: string): string | undefined {
  const r = spawnSync('bash', ['-c', `command -v ${cmd}`], { encoding: 'utf8' });
  return r.status === 0 ? r.stdout.trim() : undefined;
}

/** Runs `preflight --check` with a PATH of BASE and CHECKED minus `without`, plus `fakes`. */
function preflightOn(machine: { without: string[]; fakes?: Record<string, string> }): { status: number | null; out: string } {
  const dir = mkdtempSync(join(tmpdir(), 'jobmetrics-preflight-'));
  try {
    const bin = join(dir, 'bin');
    mkdirSync(bin);
    for (const cmd of [...BASE, ...CHECKED]) {
      if (machine.without.includes(cmd) || machine.fakes?.[cmd] !== undefined) continue;
      const real = which(cmd);
      if (real === undefined) throw new Error(`this machine lacks ${cmd}, which the test needs to build its simulated machine (run npm run setup first)`);
      symlinkSync(real, join(bin, cmd));
    }
    for (const [cmd, script] of Object.entries(machine.fakes ?? {})) {
      writeFileSync(join(bin, cmd), `#!/bin/bash\n${script}\n`);
      chmodSync(join(bin, cmd), 0o755);
    }
    const r = spawnSync(join(bin, 'bash'), [SCRIPT, '--check'], { encoding: 'utf8', env: { PATH: bin, HOME: dir }, timeout: 60_000 });
    return { status: r.status, out: `${r.stdout}${r.stderr}` };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

describe('scripts/preflight: everything a machine lacks, in one list, before any long step', () => {
  it('a complete machine passes the check', () => {
    const r = preflightOn({ without: [] });
    expect(r.out).to.match(/preflight \[ *\d+s\] ok: root, node v/);
    expect(r.status, r.out).to.equal(0);
  });

  it('a machine without debootstrap, buildah, containerd and conntrack gets one apt-get line naming all four packages', () => {
    const r = preflightOn({ without: ['debootstrap', 'buildah', 'containerd', 'ctr', 'conntrack'] });
    expect(r.status, r.out).to.equal(1);
    for (const line of [
      'missing: debootstrap (package debootstrap)',
      'missing: buildah (package buildah)',
      'missing: containerd (package containerd)',
      'missing: ctr (package containerd)',
      'missing: conntrack (package conntrack)',
    ]) expect(r.out).to.include(line);
    expect(r.out).to.include('  - packages: apt-get install -y buildah conntrack containerd debootstrap (');
  });

  it('what apt cannot fix (no Go, a Node.js too old) is listed together with the packages, each with how to get it', () => {
    const r = preflightOn({ without: ['go', 'setcap'], fakes: { node: 'echo v18.19.0' } });
    expect(r.status, r.out).to.equal(1);
    const list = r.out.slice(r.out.indexOf('Missing:'));
    expect(list).to.match(/- node: v18\.19\.0 is too old; package\.json needs >= 20\.19\.0/);
    expect(list).to.match(/- go: Go >= 1\.26\.0 is not installed; it builds Kubernetes and CoreDNS \(https:\/\/go\.dev\/dl\//);
    expect(list).to.include('- packages: apt-get install -y libcap2-bin (');
    expect(list.match(/^ {2}- /gm)).to.have.length(3);
  });

  it('a Go older than test/e2e/go.mod asks for is named with both versions', () => {
    const r = preflightOn({ without: [], fakes: { go: '[ "$1 $2" = "env GOVERSION" ] && echo go1.22.4' } });
    expect(r.status, r.out).to.equal(1);
    expect(r.out).to.include('- go: 1.22.4 is too old; test/e2e/go.mod needs >= 1.26.0');
  });
});
