import { expect } from 'chai';
import { deliveryWindowMs, parseRecorderConfig } from '../../../recorder/config.ts';

const IN_CLUSTER = { KUBERNETES_SERVICE_HOST: '10.96.0.1', KUBERNETES_SERVICE_PORT: '443' };

describe('parseRecorderConfig (docs/outcomes.md "Settings")', () => {
  it('applies every default: the gateway on localhost, 15m staleness, a 10 m delivery window', () => {
    const r = parseRecorderConfig(IN_CLUSTER);
    if (!r.ok) throw new Error(JSON.stringify(r.errors));
    expect({ ...r.config, remoteWriteUrl: r.config.remoteWriteUrl.href }).to.deep.equal({
      remoteWriteUrl: 'http://127.0.0.1:8480/api/v1/write',
      listen: { host: '0.0.0.0', port: 8481 },
      stalenessMs: 900_000,
      flushMs: 1_000,
      kubeconfig: undefined,
      writerTokenFile: undefined,
      logLevel: 'info',
    });
    expect(deliveryWindowMs(r.config)).to.equal(600_000);
  });

  const bad: Array<[string, Record<string, string>, string]> = [
    ['a URL that is not one', { JOBMETRICS_REMOTE_WRITE_URL: 'gateway:8480' }, 'JOBMETRICS_REMOTE_WRITE_URL'],
    ['an ftp URL', { JOBMETRICS_REMOTE_WRITE_URL: 'ftp://g/api/v1/write' }, 'JOBMETRICS_REMOTE_WRITE_URL'],
    ['listen without a port', { JOBMETRICS_LISTEN: '0.0.0.0' }, 'JOBMETRICS_LISTEN'],
    ['staleness too short', { JOBMETRICS_STALENESS: '1s' }, 'JOBMETRICS_STALENESS'],
    ['flush interval not a duration', { JOBMETRICS_FLUSH_INTERVAL: 'often' }, 'JOBMETRICS_FLUSH_INTERVAL'],
    ['log level', { JOBMETRICS_LOG_LEVEL: 'trace' }, 'JOBMETRICS_LOG_LEVEL'],
    ['no way to the API server', { KUBERNETES_SERVICE_HOST: '' }, 'KUBECONFIG'],
  ];

  it('takes a kubeconfig outside a cluster', () => {
    const r = parseRecorderConfig({ KUBECONFIG: '/home/me/.kube/config' });
    expect(r.ok && r.config.kubeconfig).to.equal('/home/me/.kube/config');
  });
  for (const [name, env, setting] of bad) {
    it(`refuses ${name}, naming ${setting}`, () => {
      const r = parseRecorderConfig({ ...IN_CLUSTER, ...env });
      expect(r.ok).to.equal(false);
      if (!r.ok) expect(r.errors.map((e) => e.setting)).to.deep.equal([setting]);
    });
  }
});
