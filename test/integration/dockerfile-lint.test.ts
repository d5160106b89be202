/**
 * Both Dockerfiles through the Dockerfile linters this project can get (hadolint is not in Debian
 * and its binaries are on GitHub, out of reach): dockerlinter — hadolint-like best-practice rules,
 * with ShellCheck (Debian trixie) on every RUN — and dockerfile-utils, the validator of the
 * Dockerfile language server. `scripts/install-dockerfile-linters` puts them into .cache/ the first
 * time (npm registry and Debian's archive), and does nothing afterwards.
 * Each linter must also find the faults of a known-bad Dockerfile, so a linter that silently does
 * nothing (ShellCheck missing, say) cannot pass.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'chai';
import { PROJECT_ROOT } from '../../scripts/local-pod.ts';

const CACHE = process.env['JOBMETRICS_CACHE'] ?? join(PROJECT_ROOT, '.cache');
const DOCKERLINTER = join(CACHE, 'dockerfile-lint/node_modules/dockerlinter/bin/dockerfilelinter.js');
const DOCKERFILE_UTILS = join(CACHE, 'dockerfile-lint/node_modules/dockerfile-utils/bin/dockerfile-utils');
const SHELLCHECK_DIR = join(CACHE, 'debian/shellcheck/usr/bin');

const BAD_PRACTICE = ['FROM node', 'RUN cd /app && npm install $PKGS', 'ADD main.js /app/', 'USER root', 'CMD node main.js', ''].join('\n');
const INVALID = ['FROM node:20', 'EXPOSE abc', 'MAINTAINER me', ''].join('\n');

describe('Dockerfile lint (dockerlinter with ShellCheck, dockerfile-utils)', function () {
  this.timeout(120_000);
  let tmp: string;
  before(() => {
    const r = spawnSync('bash', [join(PROJECT_ROOT, 'scripts/install-dockerfile-linters')], { encoding: 'utf8', timeout: 110_000 });
    expect(r.status, `scripts/install-dockerfile-linters failed:\n${r.stdout}\n${r.stderr}`).to.equal(0);
    tmp = mkdtempSync(join(tmpdir(), 'jobmetrics-lint-'));
    writeFileSync(join(tmp, 'Dockerfile.bad-practice'), BAD_PRACTICE);
    writeFileSync(join(tmp, 'Dockerfile.invalid'), INVALID);
  });
  after(() => {
    if (tmp) rmSync(tmp, { recursive: true, force: true });
  });

  /** dockerlinter's findings (every level, info upwards), as `line code`. */
  function dockerlinter(file: string): string[] {
    // It writes each RUN into a temporary script in its working directory for ShellCheck.
    const r = spawnSync(process.execPath, [DOCKERLINTER, '-f', file, '-s', 'sh', '-j', '-e', 'info'], {
      cwd: tmp,
      env: { ...process.env, PATH: `${SHELLCHECK_DIR}:${process.env['PATH'] ?? ''}` },
      encoding: 'utf8',
      timeout: 60_000,
    });
    expect(r.stderr, 'dockerlinter itself failed').to.equal('');
    const findings = r.stdout.trim() === '' ? [] : (JSON.parse(r.stdout) as { lineNumber: number; code: string; message: string }[]);
    expect(r.status).to.equal(findings.length === 0 ? 0 : 1);
    return findings.map((f) => `${f.lineNumber} ${f.code} ${f.message}`);
  }

  /** dockerfile-utils' diagnostics (errors and warnings), as `line severity message`. */
  function dockerfileUtils(file: string): string[] {
    const r = spawnSync(process.execPath, [DOCKERFILE_UTILS, 'lint', '-j', file], { encoding: 'utf8', timeout: 60_000 });
    expect(r.stderr, 'dockerfile-utils itself failed').to.equal('');
    const findings = JSON.parse(r.stdout) as { instructionLine: number; severity: string; message: string }[];
    expect(r.status).to.equal(findings.length === 0 ? 0 : 1);
    return findings.map((f) => `${f.instructionLine + 1} ${f.severity} ${f.message}`);
  }

  it('dockerlinter finds the faults of a known-bad Dockerfile, ShellCheck’s included', () => {
    expect(dockerlinter(join(tmp, 'Dockerfile.bad-practice'))).to.deep.equal([
      '1 EF0004 Always tag the version of an image explicitly',
      '2 SC2086 Double quote to prevent globbing and word splitting.',
      '2 ER0003 Use WORKDIR to switch to a directory',
      '2 ER0014 Pin versions in npm install',
      '3 EA0002 Use COPY instead of ADD for files and folders',
      '4 EU0001 Last user should not be root',
      '5 EJ0002 CMD and ENTRYPOINT should be written in JSON form',
    ]);
  });

  it('dockerfile-utils finds the faults of an invalid Dockerfile', () => {
    expect(dockerfileUtils(join(tmp, 'Dockerfile.invalid'))).to.deep.equal(['2 error Invalid containerPort: abc', '3 warning MAINTAINER has been deprecated']);
  });

  for (const file of ['Dockerfile.webhook', 'Dockerfile.sidecar']) {
    it(`${file}: dockerlinter reports nothing, not even at level info`, () => {
      expect(dockerlinter(join(PROJECT_ROOT, file))).to.deep.equal([]);
    });
    it(`${file}: dockerfile-utils reports nothing`, () => {
      expect(dockerfileUtils(join(PROJECT_ROOT, file))).to.deep.equal([]);
    });
  }
});
