import { expect } from 'chai';
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { commandLine, envSettings, type CommandLineSpec } from '../../shared/command-line.ts';
import { VERSION } from '../../shared/version.ts';

const spec: CommandLineSpec = {
  name: 'jobmetrics-demo',
  summary: 'a binary for this test',
  options: [{ flag: '--config', value: 'file', doc: 'the settings file' }],
  settings: envSettings(
    { listen: 'JOBMETRICS_LISTEN', url: 'JOBMETRICS_URL', extra: 'JOBMETRICS_EXTRA' },
    { listen: '0.0.0.0:1' },
    { listen: 'where it listens', url: 'where it sends', extra: 'something more' },
    ['url'],
  ),
  docs: 'docs/demo.md',
};

describe('shared command-line: --help, --version, and nothing else unknown', () => {
  const rows: Array<[argv: string[], want: string]> = [
    [[], 'run {}'],
    [['--config', 'a.yaml'], 'run {"--config":"a.yaml"}'],
    [['--config=b.yaml'], 'run {"--config":"b.yaml"}'],
    [['--version'], `exit 0: jobmetrics-demo ${VERSION}\n`],
    [['--config', 'a.yaml', '--version'], `exit 0: jobmetrics-demo ${VERSION}\n`],
    [['--bogus'], 'exit 2: jobmetrics-demo: unknown option --bogus (see jobmetrics-demo --help)\n'],
    [['serve'], 'exit 2: jobmetrics-demo: unexpected argument "serve": settings come from the environment (see jobmetrics-demo --help)\n'],
    [['--config'], 'exit 2: jobmetrics-demo: --config needs file (see jobmetrics-demo --help)\n'],
    [['--config='], 'exit 2: jobmetrics-demo: --config needs file (see jobmetrics-demo --help)\n'],
  ];
  for (const [argv, want] of rows) {
    it(`${JSON.stringify(argv)} → ${want.trim()}`, () => {
      const c = commandLine(argv, spec);
      expect(c.run ? `run ${JSON.stringify(Object.fromEntries(c.options))}` : `exit ${c.exitCode}: ${c.stdout}${c.stderr}`).to.equal(want);
    });
  }

  it('--help (or -h, whatever follows) lists the options and every setting with its default, required or unset', () => {
    for (const flag of ['--help', '-h']) {
      const c = commandLine([flag, '--bogus'], spec);
      expect(c.run === false && c.exitCode).to.equal(0);
      if (c.run) return;
      expect(c.stdout.split('\n')).to.deep.equal([
        `jobmetrics-demo ${VERSION}: a binary for this test`,
        '',
        'Usage: jobmetrics-demo [--config <file>] [--help] [--version]',
        '',
        '  --config <file>    the settings file',
        '  --help             this text',
        '  --version          the version',
        '',
        'Settings (environment variables; docs/demo.md):',
        '  JOBMETRICS_LISTEN  0.0.0.0:1  where it listens',
        '  JOBMETRICS_URL     (required)  where it sends',
        '  JOBMETRICS_EXTRA   (unset)  something more',
        '',
      ]);
    }
  });
});

describe('the binaries answer --help and --version without starting anything', function () {
  this.timeout(60_000);
  const run = promisify(execFile);
  const ROOT = join(import.meta.dirname, '..', '..');
  for (const binary of ['webhook', 'sidecar', 'gateway', 'recorder']) {
    it(`jobmetrics-${binary}: --version and --help exit 0 at once, even with KUBECONFIG set; an unknown option exits 2`, async () => {
      // A KUBECONFIG that would fail any API call: --help must not make one (the webhook would
      // otherwise bootstrap a Secret and a caBundle into that cluster).
      const env = { ...process.env, KUBECONFIG: '/nonexistent/kubeconfig', JOBMETRICS_LISTEN: '127.0.0.1:0' };
      const main = join(ROOT, binary, 'main.ts');
      const version = await run(process.execPath, ['--import', 'tsx', main, '--version'], { env, timeout: 30_000 });
      expect(version.stdout).to.equal(`jobmetrics-${binary} ${VERSION}\n`);
      const help = await run(process.execPath, ['--import', 'tsx', main, '--help'], { env, timeout: 30_000 });
      expect(help.stdout).to.match(new RegExp(`^jobmetrics-${binary} ${VERSION.replaceAll('.', '\\.')}: `));
      expect(help.stdout).to.include('Settings (environment variables; ');
      expect(help.stderr).to.equal('');
      const bad = await run(process.execPath, ['--import', 'tsx', main, '--port', '80'], { env, timeout: 30_000 }).then(
        () => ({ code: 0, stderr: '' }),
        (e: { code: number; stderr: string }) => ({ code: e.code, stderr: e.stderr }),
      );
      expect(bad).to.deep.equal({ code: 2, stderr: `jobmetrics-${binary}: unknown option --port (see jobmetrics-${binary} --help)\n` });
    });
  }
});
