/** The local cluster's image registry: its config and containerd's, as data. */
import { expect } from 'chai';
import { nodePaths, containerdConfig } from '../../../scripts/cluster/node.ts';
import { containerdHostsToml, registryConfig, REGISTRY_PACKAGE } from '../../../scripts/cluster/registry.ts';

describe('scripts/cluster/registry.ts: a registry beside the node, pulled from over plain HTTP', () => {
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
