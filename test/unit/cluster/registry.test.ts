/** The local cluster's image registry: its config and containerd's, as data. */
import { expect } from 'chai';
import { nodePaths, containerdConfig } from '../../../scripts/cluster/node.ts';
import { authFile, containerdHostsToml, registryConfig, REGISTRY_PACKAGE } from '../../../scripts/cluster/registry.ts';

describe('scripts/cluster/registry.ts: registries beside the node, pulled from over plain HTTP', () => {
  it('serves filesystem storage on the node\'s address only, without auth', () => {
    expect(registryConfig('/c/registry/storage', '10.244.0.1', 5000).split('\n')).to.deep.equal([
      '# Written by scripts/cluster/registry.ts',
      'version: 0.1',
      'log:',
      '  level: info',
      '  accesslog:',
      '    disabled: false',
      'storage:',
      '  filesystem:',
      '    rootdirectory: /c/registry/storage',
      '  delete:',
      '    enabled: true',
      'http:',
      '  addr: 10.244.0.1:5000',
      '',
    ]);
  });

  it('the private one: the same, with htpasswd basic auth on every request (an auth section before http)', () => {
    const plain = registryConfig('/c/private-registry/storage', '10.244.0.1', 5001).split('\n');
    const http = plain.indexOf('http:');
    expect(registryConfig('/c/private-registry/storage', '10.244.0.1', 5001, '/c/private-registry/htpasswd').split('\n')).to.deep.equal([
      ...plain.slice(0, http),
      'auth:',
      '  htpasswd:',
      '    realm: jobmetrics-private',
      '    path: /c/private-registry/htpasswd',
      ...plain.slice(http),
    ]);
  });

  it("its credentials for `npm run images -- push --authfile`: buildah's auth.json, base64 of user:password under the host", () => {
    const file = authFile('10.244.0.1:5001', { username: 'jobmetrics-e2e', password: 'p:ss' });
    expect(JSON.parse(file)).to.deep.equal({ auths: { '10.244.0.1:5001': { auth: 'am9ibWV0cmljcy1lMmU6cDpzcw==' } } });
    expect(Buffer.from('am9ibWV0cmljcy1lMmU6cDpzcw==', 'base64').toString()).to.equal('jobmetrics-e2e:p:ss');
  });

  it('containerd finds it through config_path and a hosts.toml over http, for pulls and resolves', () => {
    const paths = nodePaths('/c/node');
    expect(containerdConfig(paths, 'p')).to.contain('[plugins."io.containerd.grpc.v1.cri".registry]\n    config_path = "/c/node/containerd/certs.d"');
    expect(containerdHostsToml('10.244.0.1:5000')).to.equal(
      '# Written by scripts/cluster/registry.ts\nserver = "http://10.244.0.1:5000"\n\n[host."http://10.244.0.1:5000"]\n  capabilities = ["pull", "resolve"]\n',
    );
  });

  it('is Debian\'s docker-registry, pinned like the aggregator\'s packages', () => {
    expect(REGISTRY_PACKAGE).to.match(/^docker-registry=2\.8\.\d+\+ds1-\d+(\+b\d+)?$/);
  });
});
