/** Settings: defaults, YAML file, env overrides, validation errors that name the setting. */
import { readFileSync } from 'node:fs';
import { expect } from 'chai';
import { CONFIG_ENV, defaultSettings, loadSettings, SETTINGS, type LoadInput } from '../../../webhook/config.ts';

const files: Record<string, string> = {};
/** The settings file `--config` names (the command line is shared/command-line.ts's, tested there), and the environment. */
const input = (configPath: string | undefined, env: Record<string, string> = {}): LoadInput => ({
  ...(configPath !== undefined && { configPath }),
  env,
  readFile: (p) => {
    const f = files[p];
    if (f === undefined) throw Object.assign(new Error(`ENOENT: no such file, open '${p}'`), { code: 'ENOENT' });
    return f;
  },
});

describe('webhook settings', () => {
  it('starts with no file at all, with the documented defaults', () => {
    const s = defaultSettings();
    expect(s.listen).to.deep.equal({ host: '0.0.0.0', port: 8443 });
    expect(s.tlsDir).to.equal(undefined);
    expect(s.mode).to.equal('auto');
    expect(s.maxRequestBytes).to.equal(3 * 1024 * 1024);
    expect(s.limits).to.deep.equal({ maxInFlightBytes: 32 * 1024 * 1024, maxConnections: 512, headersTimeoutMs: 5_000, requestTimeoutMs: 10_000 });
    expect(s.sidecar.interval).to.equal('1s');
    expect(s.sidecar.pushInterval).to.equal('10s');
    expect(s.sidecar.flushTimeoutMs).to.equal(10_000);
    expect(s.sidecar.resources).to.deep.equal({ requests: { cpu: '10m', memory: '48Mi' }, limits: { memory: '128Mi' } });
    expect(s.bootstrap).to.deep.equal({
      serviceName: 'jobmetrics-webhook',
      serviceNamespace: 'jobmetrics',
      secretName: 'jobmetrics-webhook-tls',
      webhookConfigurationName: 'jobmetrics',
    });
    expect(s.workloadLookup).to.deep.equal({ enabled: true, timeoutMs: 1000, cacheTtlMs: 600_000 });
    expect(s.excludedNamespaces).to.deep.equal(['kube-system', 'kube-public', 'kube-node-lease', 'jobmetrics']);
    expect(s.kube.inCluster).to.equal(false);
  });

  it('reads excludedNamespaces as a comma-separated list; an empty one excludes none', () => {
    files['/excluded.yaml'] = 'excludedNamespaces: " kube-system, kube-public ,batch-legacy,"\n';
    const fromFile = loadSettings(input('/excluded.yaml'));
    expect(fromFile.ok && fromFile.settings.excludedNamespaces).to.deep.equal(['kube-system', 'kube-public', 'batch-legacy']);
    const none = loadSettings(input(undefined, { JOBMETRICS_EXCLUDED_NAMESPACES: '' }));
    expect(none.ok && none.settings.excludedNamespaces).to.deep.equal([]);
  });

  it('the shipped settings file (manifests/base/webhook-settings.yaml) excludes what the built-in default does', () => {
    const shipped = readFileSync(new URL('../../../manifests/base/webhook-settings.yaml', import.meta.url), 'utf8');
    files['/shipped.yaml'] = shipped;
    const r = loadSettings(input('/shipped.yaml'));
    expect(r.ok && r.settings.excludedNamespaces).to.deep.equal(defaultSettings().excludedNamespaces);
  });

  it('reads a YAML file given by --config, and env overrides it', () => {
    files['/etc/jm/config.yaml'] = [
      'listen: "127.0.0.1:9443"',
      'tlsDir: /etc/jm/tls',
      'mode: native',
      'maxRequestBytes: 1Mi',
      'sidecar:',
      '  image: registry.local/sidecar:dev',
      '  interval: 500ms',
      '  resources:',
      '    limits:',
      '      cpu: 200m',
      '      memory: ""',
      'workloadLookup:',
      '  enabled: false',
    ].join('\n');
    const r = loadSettings(input('/etc/jm/config.yaml', { JOBMETRICS_SIDECAR_IMAGE: 'registry.local/sidecar:override', KUBERNETES_SERVICE_HOST: '10.0.0.1', KUBERNETES_SERVICE_PORT: '443' }));
    expect(r.ok, JSON.stringify(!r.ok && r.errors)).to.equal(true);
    if (!r.ok) return;
    expect(r.source).to.equal('/etc/jm/config.yaml');
    expect(r.settings.listen).to.deep.equal({ host: '127.0.0.1', port: 9443 });
    expect(r.settings.tlsDir).to.equal('/etc/jm/tls');
    expect(r.settings.mode).to.equal('native');
    expect(r.settings.maxRequestBytes).to.equal(1 << 20);
    expect(r.settings.sidecar.image).to.equal('registry.local/sidecar:override');
    expect(r.settings.sidecar.interval).to.equal('500ms');
    expect(r.settings.sidecar.resources.limits).to.deep.equal({ cpu: '200m' });
    expect(r.settings.workloadLookup.enabled).to.equal(false);
    expect(r.settings.kube.inCluster).to.equal(true);
  });

  it('takes the file from JOBMETRICS_CONFIG and from --config', () => {
    files['/a.yaml'] = 'mode: legacy\n';
    const a = loadSettings(input(undefined, { [CONFIG_ENV]: '/a.yaml' }));
    expect(a.ok && a.settings.mode).to.equal('legacy');
    const b = loadSettings(input('/a.yaml'));
    expect(b.ok && b.settings.mode).to.equal('legacy');
  });

  it('parses IPv6 listen addresses', () => {
    const r = loadSettings(input(undefined, { JOBMETRICS_LISTEN: '[::]:8443' }));
    expect(r.ok && r.settings.listen).to.deep.equal({ host: '::', port: 8443 });
  });

  const bad: [string, LoadInput, RegExp][] = [
    ['an unknown key (a typo)', (files['/typo.yaml'] = 'sidecar:\n  imgae: x\n', input('/typo.yaml')), /sidecar\.imgae \(\/typo\.yaml\): is not a known setting/],
    ['bad YAML', (files['/bad.yaml'] = 'mode: [\n', input('/bad.yaml')), /\/bad\.yaml: not valid YAML/],
    ['a missing file', input('/nope.yaml'), /\/nope\.yaml: cannot read the settings file: ENOENT/],
    ['a bad mode from env', input(undefined, { JOBMETRICS_SIDECAR_MODE: 'sidecar' }), /mode \(JOBMETRICS_SIDECAR_MODE\): "sidecar" must be one of auto, native, legacy/],
    ['a bad interval', input(undefined, { JOBMETRICS_SIDECAR_INTERVAL: '10ms' }), /sidecar\.interval \(JOBMETRICS_SIDECAR_INTERVAL\): "10ms" is outside 100ms…1m/],
    ['a bad URL', input(undefined, { JOBMETRICS_SIDECAR_REMOTE_WRITE_URL: 'vmagent:8429' }), /sidecar\.remoteWriteUrl \(JOBMETRICS_SIDECAR_REMOTE_WRITE_URL\)/],
    ['a bad listen address', input(undefined, { JOBMETRICS_LISTEN: '8443' }), /listen \(JOBMETRICS_LISTEN\): "8443" must be host:port/],
    ['a bad quantity', input(undefined, { JOBMETRICS_SIDECAR_MEMORY_LIMIT: '128MB' }), /sidecar\.resources\.limits\.memory .*not a Kubernetes quantity/],
    ['a bad boolean', input(undefined, { JOBMETRICS_WORKLOAD_LOOKUP: 'yes' }), /workloadLookup\.enabled .*must be true or false/],
    ['a namespace name that is no DNS-1123 label', input(undefined, { JOBMETRICS_EXCLUDED_NAMESPACES: 'kube-system,Kube_Public' }), /excludedNamespaces \(JOBMETRICS_EXCLUDED_NAMESPACES\): "Kube_Public" is not a namespace name \(DNS-1123 label\)/],
    ['a byte count with a unit it does not know', input(undefined, { JOBMETRICS_MAX_IN_FLIGHT_BYTES: '32MB' }), /maxInFlightBytes \(JOBMETRICS_MAX_IN_FLIGHT_BYTES\): "32MB" must be a byte count like 3145728 or 3Mi/],
    ['a budget below twice the largest body', input(undefined, { JOBMETRICS_MAX_IN_FLIGHT_BYTES: '5Mi' }), /^maxInFlightBytes \(JOBMETRICS_MAX_IN_FLIGHT_BYTES\): 5242880 bytes must be at least twice maxRequestBytes \(3145728\)/],
    ['a budget below twice the largest body, from the file', (files['/budget.yaml'] = 'maxRequestBytes: 20Mi\n', input('/budget.yaml')), /^maxInFlightBytes \(default\): 33554432 bytes must be at least twice maxRequestBytes \(20971520\)/],
    ['zero connections', input(undefined, { JOBMETRICS_MAX_CONNECTIONS: '0' }), /maxConnections \(JOBMETRICS_MAX_CONNECTIONS\): "0" is outside 1…65535/],
    ['a fractional connection count', input(undefined, { JOBMETRICS_MAX_CONNECTIONS: '1.5' }), /maxConnections \(JOBMETRICS_MAX_CONNECTIONS\): "1\.5" must be a whole number/],
    // node:http would swap the two, and a slow body would get the longer one.
    ['a requestTimeout shorter than headersTimeout', input(undefined, { JOBMETRICS_HEADERS_TIMEOUT: '30s', JOBMETRICS_REQUEST_TIMEOUT: '10s' }), /^requestTimeout \(JOBMETRICS_REQUEST_TIMEOUT\): 10000 ms must be at least headersTimeout \(30000 ms\)$/],
    ['a headersTimeout under a second', input(undefined, { JOBMETRICS_HEADERS_TIMEOUT: '500ms' }), /headersTimeout \(JOBMETRICS_HEADERS_TIMEOUT\): "500ms" is outside 1s…1m/],
    ['a nested value where a single one belongs', (files['/nested.yaml'] = 'mode:\n  a: 1\n', input('/nested.yaml')), /mode \(\/nested\.yaml\): must be a single value/],
  ];
  for (const [title, inp, message] of bad) {
    it(`rejects ${title}, naming the setting`, () => {
      const r = loadSettings(inp);
      expect(r.ok).to.equal(false);
      if (!r.ok) expect(r.errors.map((e) => `${e.setting}: ${e.message}`).join('\n')).to.match(message);
    });
  }

  it('reports every error at once', () => {
    const r = loadSettings(input(undefined, { JOBMETRICS_SIDECAR_INTERVAL: 'x', JOBMETRICS_SIDECAR_MODE: 'y' }));
    expect(r.ok).to.equal(false);
    if (!r.ok) expect(r.errors).to.have.length(2);
  });

  it('every setting has a unique key and env name, and its default parses', () => {
    expect(new Set(SETTINGS.map((s) => s.key)).size).to.equal(SETTINGS.length);
    expect(new Set(SETTINGS.map((s) => s.env)).size).to.equal(SETTINGS.length);
    for (const s of SETTINGS) expect(s.parse(s.default).ok, s.key).to.equal(true);
  });
});
