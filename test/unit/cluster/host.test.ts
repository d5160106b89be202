import { expect } from 'chai';
import { bridgeSetup, guardSetup, guardTeardown, mountsBelow, type HostNetwork } from '../../../scripts/cluster/host.ts';
import { cniConfig, containerdConfig, kubeletConfig, nodePaths } from '../../../scripts/cluster/node.ts';

const NET: HostNetwork = { bridge: 'jm0', address: '10.244.0.1', prefixLength: 24, podCidr: '10.244.0.0/24', serviceCidr: '10.96.0.0/16' };

describe('local cluster: host plan (scripts/cluster/host.ts, node.ts)', () => {
  it('lists the mounts below a folder deepest first, and nothing outside it', () => {
    const mountinfo = [
      '22 1 254:0 / / rw - ext4 /dev/vda rw',
      '90 22 0:50 / /c/node/containerd/state/t/abc/rootfs rw - overlay overlay rw',
      '91 22 0:51 / /c/node/kubelet/root/pods/u/volumes/kubernetes.io~projected/token rw - tmpfs tmpfs rw',
      '92 22 0:52 / /c/node-other/x rw - tmpfs tmpfs rw',
      '93 22 0:53 / /c/node rw - tmpfs tmpfs rw',
    ].join('\n');
    expect(mountsBelow(mountinfo, '/c/node')).to.deep.equal([
      '/c/node/kubelet/root/pods/u/volumes/kubernetes.io~projected/token',
      '/c/node/containerd/state/t/abc/rootfs',
      '/c/node',
    ]);
  });

  it('keeps pod traffic on the bridge: forwarded packets may only go bridge to bridge, nothing is masqueraded', () => {
    const rules = guardSetup(NET).map((a) => a.join(' '));
    expect(rules).to.deep.equal([
      'iptables -w -N JOBMETRICS-NODE-GUARD',
      'iptables -w -A JOBMETRICS-NODE-GUARD -i jm0 -o jm0 -j RETURN',
      'iptables -w -A JOBMETRICS-NODE-GUARD -i jm0 -j DROP',
      'iptables -w -A JOBMETRICS-NODE-GUARD -o jm0 -j DROP',
      'iptables -w -I FORWARD 1 -j JOBMETRICS-NODE-GUARD',
    ]);
    expect(guardTeardown().map((a) => a.join(' '))).to.deep.equal([
      'iptables -w -D FORWARD -j JOBMETRICS-NODE-GUARD',
      'iptables -w -F JOBMETRICS-NODE-GUARD',
      'iptables -w -X JOBMETRICS-NODE-GUARD',
    ]);
    expect(JSON.parse(cniConfig(NET, '/tmp/node/cni-ipam')).plugins[0]).to.include({ type: 'bridge', bridge: 'jm0', ipMasq: false });
    // Its address reservations in the node's own folder, never the machine-wide default a killed run leaks into.
    expect(JSON.parse(cniConfig(NET, '/tmp/node/cni-ipam')).plugins[0].ipam).to.include({ type: 'host-local', dataDir: '/tmp/node/cni-ipam' });
    // The Service network is routed into the bridge, never to the default route.
    expect(bridgeSetup(NET).at(-1)).to.deep.equal(['ip', 'route', 'replace', '10.96.0.0/16', 'dev', 'jm0', 'src', '10.244.0.1']);
  });

  it('configures containerd and the kubelet for this machine: restricted oom_score_adj, cgroup v1 with cgroupfs, no image GC', () => {
    const paths = nodePaths('/c/node');
    const toml = containerdConfig(paths, 'localhost/jobmetrics/pause:3.10');
    expect(toml).to.contain('restrict_oom_score_adj = true');
    expect(toml).to.contain('sandbox_image = "localhost/jobmetrics/pause:3.10"');
    expect(toml).to.contain('SystemdCgroup = false');
    const kubelet = JSON.parse(
      kubeletConfig(
        {
          dir: '/c/node',
          nodeName: 'n',
          network: NET,
          clusterDns: '10.96.0.10',
          pauseImage: 'p',
          credentials: { kubelet: 'k', kubeProxy: 'p' },
          caFile: '/ca.crt',
          binaries: { kubelet: 'kubelet', kubeProxy: 'kube-proxy' },
          images: [],
        },
        paths,
        { kubelet: 10250, healthz: 10248 },
      ),
    ) as Record<string, unknown>;
    expect(kubelet).to.include({ failCgroupV1: false, cgroupDriver: 'cgroupfs', imageGCHighThresholdPercent: 100, readOnlyPort: 0 });
    expect(kubelet['containerRuntimeEndpoint']).to.equal('unix:///c/node/containerd/containerd.sock');
    expect(kubelet['clusterDNS']).to.deep.equal(['10.96.0.10']);
  });
});
