import { expect } from 'chai';
import { parseSidecarConfig } from '../../../sidecar/config.ts';

const base = {
  JOBMETRICS_SCRAPE_URL: 'http://localhost:9100/metrics',
  JOBMETRICS_REMOTE_WRITE_URL: 'http://vmagent.jobmetrics:8429/api/v1/write',
  JOBMETRICS_NAMESPACE: 'batch',
  JOBMETRICS_JOB: 'nightly',
  JOBMETRICS_POD: 'nightly-x1',
};

describe('parseSidecarConfig (docs/settings.md "jobmetrics-sidecar")', () => {
  it('applies every default', () => {
    const r = parseSidecarConfig(base);
    if (!r.ok) throw new Error(JSON.stringify(r.errors));
    const { scrapeUrl, remoteWriteUrl, ...rest } = r.config;
    expect([scrapeUrl.href, remoteWriteUrl.href]).to.deep.equal([base.JOBMETRICS_SCRAPE_URL, base.JOBMETRICS_REMOTE_WRITE_URL]);
    expect(rest).to.deep.equal({
      intervalMs: 1_000,
      fastIntervalMs: 200,
      pushIntervalMs: 10_000,
      flushTimeoutMs: 10_000,
      namespace: 'batch',
      job: 'nightly',
      pod: 'nightly-x1',
      mode: 'legacy',
      mainContainer: undefined,
      stateDir: undefined,
      writerTokenFile: undefined,
      stalenessMs: 900_000,
      exitPollMs: 100,
      procRoot: '/proc',
      terminationMessagePath: '/dev/termination-log',
      logLevel: 'info',
    });
  });

  const bad: Array<[string, Record<string, string>, string, RegExp]> = [
    ['missing scrape URL', { JOBMETRICS_SCRAPE_URL: '' }, 'JOBMETRICS_SCRAPE_URL', /required/],
    ['non-URL', { JOBMETRICS_REMOTE_WRITE_URL: 'vmagent:8429' }, 'JOBMETRICS_REMOTE_WRITE_URL', /not a URL|must use/],
    ['ftp URL', { JOBMETRICS_SCRAPE_URL: 'ftp://x/metrics' }, 'JOBMETRICS_SCRAPE_URL', /must use http: or https:/],
    ['interval too short', { JOBMETRICS_INTERVAL: '50ms' }, 'JOBMETRICS_INTERVAL', /outside 100ms…1m/],
    ['interval too long', { JOBMETRICS_INTERVAL: '2m' }, 'JOBMETRICS_INTERVAL', /outside/],
    ['fast interval too short', { JOBMETRICS_FAST_INTERVAL: '10ms' }, 'JOBMETRICS_FAST_INTERVAL', /outside 100ms…1m/],
    ['interval without unit', { JOBMETRICS_INTERVAL: '1' }, 'JOBMETRICS_INTERVAL', /not a duration/],
    ['unknown mode', { JOBMETRICS_MODE: 'sidecar' }, 'JOBMETRICS_MODE', /must be one of native, legacy/],
    ['missing pod', { JOBMETRICS_POD: ' ' }, 'JOBMETRICS_POD', /required/],
    ['relative termination message path', { JOBMETRICS_TERMINATION_MESSAGE_PATH: 'termination-log' }, 'JOBMETRICS_TERMINATION_MESSAGE_PATH', /must be an absolute path/],
    ['relative state dir', { JOBMETRICS_STATE_DIR: 'state' }, 'JOBMETRICS_STATE_DIR', /must be an absolute path/],
  ];

  it('reads the main container and the state dir the webhook sets', () => {
    const r = parseSidecarConfig({ ...base, JOBMETRICS_MAIN_CONTAINER: 'worker', JOBMETRICS_STATE_DIR: '/var/run/jobmetrics' });
    expect(r.ok && [r.config.mainContainer, r.config.stateDir]).to.deep.equal(['worker', '/var/run/jobmetrics']);
  });
  for (const [name, env, setting, message] of bad) {
    it(`names the bad setting: ${name}`, () => {
      const r = parseSidecarConfig({ ...base, ...env });
      expect(r.ok).to.equal(false);
      if (r.ok) return;
      expect(r.errors.map((e) => e.setting)).to.deep.equal([setting]);
      expect(r.errors[0]?.message).to.match(message);
    });
  }

  it('keeps the mode of a bad config, so native mode idles instead of exiting', () => {
    const r = parseSidecarConfig({ JOBMETRICS_MODE: 'native' });
    expect(r.ok === false && r.mode).to.equal('native');
  });
});
