/**
 * One real Kubernetes node on this machine: containerd (CRI) with runc and the CNI bridge plugin,
 * the kubelet, and kube-proxy (iptables mode), all from the same Kubernetes release as the control
 * plane. What this machine needs, as measured (docs/e2e.md "A real node"):
 * - containerd's CRI with `restrict_oom_score_adj = true`: this VM refuses to lower
 *   oom_score_adj, and without the setting runc fails every sandbox.
 * - the kubelet with `failCgroupV1: false` and the cgroupfs driver (the hierarchy is cgroup v1).
 * - images: the project's two from the registry beside the node (scripts/cluster/registry.ts,
 *   plain HTTP through hosts.toml), every other one (pause, CoreDNS, the aggregator's, the job
 *   images) imported from an OCI archive.
 *
 * The config files are pure functions of the options (tested as data); {@link startNode} writes
 * them and starts the processes; {@link cleanupNode} removes everything the node left behind.
 */
import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describeChild, startChild, stopChild, type Child } from '../child-processes.ts';
import type { NodeCredentials } from './control-plane.ts';
import { freePort } from '../ports.ts';
import { containerdHostsToml } from './registry.ts';
import {
  removeCniNetns,
  removeContainerLogLinks,
  removeKubepodsCgroups,
  restoreSysctls,
  runCommand,
  teardownHostNetwork,
  unmountBelow,
  pidsWithArg,
  killPids,
  type HostNetwork,
} from './host.ts';

export interface NodeOptions {
  /** Folder for containerd's and the kubelet's state and the logs. */
  readonly dir: string;
  readonly nodeName: string;
  readonly network: HostNetwork;
  /** The cluster DNS Service's address (kubelet `clusterDNS`). */
  readonly clusterDns: string;
  readonly pauseImage: string;
  readonly credentials: NodeCredentials;
  /** The cluster CA (the kubelet verifies client certificates against it). */
  readonly caFile: string;
  readonly binaries: { readonly kubelet: string; readonly kubeProxy: string };
  /** OCI archives imported into containerd before the kubelet starts. */
  readonly images: readonly string[];
  /** host:port of a registry containerd pulls from over plain HTTP (scripts/cluster/registry.ts). */
  readonly registry?: string;
}

export interface NodePaths {
  readonly containerdConfig: string;
  readonly containerdSocket: string;
  readonly containerdRoot: string;
  readonly containerdState: string;
  /** containerd's registry hosts (`config_path`): <host:port>/hosts.toml. */
  readonly containerdCertsDir: string;
  readonly cniConfDir: string;
  /**
   * host-local's address reservations (its `dataDir`; default /var/lib/cni/networks, shared by every
   * cluster this machine ever ran): in the node's folder, a new cluster starts with none, so
   * reservations a killed run left behind cannot exhaust the pod range.
   */
  readonly cniIpamDir: string;
  readonly kubeletConfig: string;
  readonly kubeletRoot: string;
  readonly podLogs: string;
  readonly kubeProxyConfig: string;
  readonly resolvConf: string;
  readonly sysctlSave: string;
}

export function nodePaths(dir: string): NodePaths {
  return {
    containerdConfig: join(dir, 'containerd', 'config.toml'),
    containerdSocket: join(dir, 'containerd', 'containerd.sock'),
    containerdRoot: join(dir, 'containerd', 'root'),
    containerdState: join(dir, 'containerd', 'state'),
    containerdCertsDir: join(dir, 'containerd', 'certs.d'),
    cniConfDir: join(dir, 'cni'),
    cniIpamDir: join(dir, 'cni-ipam'),
    kubeletConfig: join(dir, 'kubelet', 'config.yaml'),
    kubeletRoot: join(dir, 'kubelet', 'root'),
    podLogs: join(dir, 'kubelet', 'pod-logs'),
    kubeProxyConfig: join(dir, 'kube-proxy.yaml'),
    resolvConf: join(dir, 'resolv.conf'),
    sysctlSave: join(dir, 'sysctls.json'),
  };
}

/** containerd 1.6's config (version 2 schema) for CRI with runc and CNI. */
export function containerdConfig(paths: NodePaths, pauseImage: string): string {
  return `# Written by scripts/cluster/node.ts
version = 2
root = "${paths.containerdRoot}"
state = "${paths.containerdState}"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.internal.v1.opt", "io.containerd.tracing.processor.v1.otlp"]

[grpc]
  address = "${paths.containerdSocket}"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "${pauseImage}"
  # This VM refuses to lower oom_score_adj; without this runc fails every sandbox with
  # "can't get final child's PID from pipe: EOF".
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "${paths.cniConfDir}"
  # Registries by host:port, each in its hosts.toml (scripts/cluster/registry.ts).
  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = "${paths.containerdCertsDir}"
`;
}

/** The CNI network: Debian's bridge + host-local + loopback plugins; no masquerading. */
export function cniConfig(net: HostNetwork, ipamDir: string): string {
  return JSON.stringify(
    {
      cniVersion: '0.4.0',
      name: 'jobmetrics',
      plugins: [
        {
          type: 'bridge',
          bridge: net.bridge,
          isGateway: true,
          ipMasq: false,
          hairpinMode: true,
          ipam: { type: 'host-local', dataDir: ipamDir, ranges: [[{ subnet: net.podCidr, gateway: net.address }]], routes: [{ dst: '0.0.0.0/0' }] },
        },
        { type: 'portmap', capabilities: { portMappings: true } },
      ],
    },
    null,
    2,
  );
}

export function kubeletConfig(opts: NodeOptions, paths: NodePaths, ports: { kubelet: number; healthz: number }): string {
  return JSON.stringify(
    {
      apiVersion: 'kubelet.config.k8s.io/v1beta1',
      kind: 'KubeletConfiguration',
      // The hierarchy here is cgroup v1; the kubelet refuses it unless told otherwise.
      failCgroupV1: false,
      cgroupDriver: 'cgroupfs',
      containerRuntimeEndpoint: `unix://${paths.containerdSocket}`,
      address: opts.network.address,
      port: ports.kubelet,
      readOnlyPort: 0,
      healthzBindAddress: '127.0.0.1',
      healthzPort: ports.healthz,
      authentication: { anonymous: { enabled: false }, webhook: { enabled: true }, x509: { clientCAFile: opts.caFile } },
      authorization: { mode: 'Webhook' },
      clusterDNS: [opts.clusterDns],
      clusterDomain: 'cluster.local',
      resolvConf: paths.resolvConf,
      podLogsDir: paths.podLogs,
      failSwapOn: false,
      // Most images are imported, not pulled: one removed by garbage collection could never come back.
      imageGCHighThresholdPercent: 100,
      imageGCLowThresholdPercent: 99,
      // A shared test machine's disk is not this node's to guard; evict only on real memory pressure.
      evictionHard: { 'memory.available': '100Mi', 'nodefs.available': '1%', 'imagefs.available': '1%', 'nodefs.inodesFree': '1%' },
      serializeImagePulls: false,
      // Fast status so tests see pods and Jobs finish promptly.
      nodeStatusUpdateFrequency: '5s',
      syncFrequency: '10s',
      fileCheckFrequency: '20s',
      registerNode: true,
      maxPods: 60,
    },
    null,
    2,
  );
}

export function kubeProxyConfig(opts: NodeOptions, ports: { metrics: number; healthz: number }): string {
  return JSON.stringify(
    {
      apiVersion: 'kubeproxy.config.k8s.io/v1alpha1',
      kind: 'KubeProxyConfiguration',
      mode: 'iptables',
      clientConnection: { kubeconfig: opts.credentials.kubeProxy },
      hostnameOverride: opts.nodeName,
      bindAddress: opts.network.address,
      clusterCIDR: opts.network.podCidr,
      healthzBindAddress: `127.0.0.1:${ports.healthz}`,
      metricsBindAddress: `127.0.0.1:${ports.metrics}`,
      // Only the node's own addresses, never every interface of this machine.
      nodePortAddresses: [`${opts.network.address}/32`],
      // Leave the machine's conntrack sysctls alone (kube-proxy would raise them).
      conntrack: { maxPerCore: 0, min: 0, tcpEstablishedTimeout: '0s', tcpCloseWaitTimeout: '0s' },
      iptables: { masqueradeAll: false, syncPeriod: '5s', minSyncPeriod: '0s' },
    },
    null,
    2,
  );
}

export interface RunningNode {
  readonly paths: NodePaths;
  readonly children: readonly Child[];
  /** `ctr` against this node's containerd, in the kubelet's namespace. */
  ctr(args: readonly string[]): string;
  importImage(archive: string): void;
  describe(): string;
  stop(): Promise<void>;
}

/**
 * Lets containerd pull from the registry at `host` (host:port) over plain HTTP: its hosts.toml,
 * which containerd reads at each pull, so a registry started later needs no restart.
 */
export function addRegistryHost(paths: NodePaths, host: string): void {
  mkdirSync(join(paths.containerdCertsDir, host), { recursive: true });
  writeFileSync(join(paths.containerdCertsDir, host, 'hosts.toml'), containerdHostsToml(host));
}

/** Starts containerd, imports the images, then the kubelet and kube-proxy. The host network
 * (host.ts setUpHostNetwork) must be up first: the control plane listens on the node's address. */
export async function startNode(opts: NodeOptions): Promise<RunningNode> {
  const paths = nodePaths(opts.dir);
  for (const d of [join(opts.dir, 'containerd'), paths.containerdRoot, paths.containerdState, paths.cniConfDir, join(opts.dir, 'kubelet'), paths.kubeletRoot, paths.podLogs]) {
    mkdirSync(d, { recursive: true });
  }
  writeFileSync(paths.containerdConfig, containerdConfig(paths, opts.pauseImage));
  if (opts.registry !== undefined) addRegistryHost(paths, opts.registry);
  writeFileSync(join(paths.cniConfDir, '10-jobmetrics.conflist'), cniConfig(opts.network, paths.cniIpamDir));
  // Pods get only the cluster DNS; nothing is forwarded off this machine.
  writeFileSync(paths.resolvConf, '');

  const children: Child[] = [];
  const ctr = (args: readonly string[]): string => runCommand(['ctr', '--address', paths.containerdSocket, '-n', 'k8s.io', ...args]).stdout;
  const importImage = (archive: string): void => {
    ctr(['images', 'import', '--all-platforms', archive]);
  };
  const stop = async (): Promise<void> => {
    for (const child of [...children].reverse()) await stopChild(child, { graceMs: 5_000 });
  };
  try {
    children.push(startChild('containerd', 'containerd', ['--config', paths.containerdConfig], join(opts.dir, 'containerd.log')));
    await waitFor('containerd', 30_000, children, () => existsSync(paths.containerdSocket) && runCommand(['ctr', '--address', paths.containerdSocket, 'version'], { allowFailure: true }).code === 0);
    for (const archive of opts.images) importImage(archive);

    const kubeletPorts = { kubelet: await freePort(), healthz: await freePort() };
    writeFileSync(paths.kubeletConfig, kubeletConfig(opts, paths, kubeletPorts));
    children.push(
      startChild('kubelet', opts.binaries.kubelet, [
        `--config=${paths.kubeletConfig}`,
        `--kubeconfig=${opts.credentials.kubelet}`,
        `--root-dir=${paths.kubeletRoot}`,
        `--cert-dir=${join(opts.dir, 'kubelet', 'pki')}`,
        `--hostname-override=${opts.nodeName}`,
        `--node-ip=${opts.network.address}`,
        '--v=1',
      ], join(opts.dir, 'kubelet.log')),
    );
    const proxyPorts = { metrics: await freePort(), healthz: await freePort() };
    writeFileSync(paths.kubeProxyConfig, kubeProxyConfig(opts, proxyPorts));
    children.push(startChild('kube-proxy', opts.binaries.kubeProxy, [`--config=${paths.kubeProxyConfig}`, '--v=1'], join(opts.dir, 'kube-proxy.log')));
    await waitFor('kubelet /healthz', 60_000, children, () => httpOk(`http://127.0.0.1:${kubeletPorts.healthz}/healthz`));
    await waitFor('kube-proxy /healthz', 60_000, children, () => httpOk(`http://127.0.0.1:${proxyPorts.healthz}/healthz`, true));
  } catch (err) {
    const report = children.map((c) => describeChild(c)).join('\n');
    await stop();
    throw new Error(`node ${opts.nodeName} did not start in ${opts.dir}: ${err instanceof Error ? err.message : String(err)}\n${report}`, { cause: err });
  }
  return { paths, children, ctr, importImage, describe: () => children.map((c) => describeChild(c, 20)).join('\n'), stop };
}

/**
 * Removes everything a node in `dir` may have left — also when it was killed: its processes and
 * the containers' (by their kubepods cgroups), mounts below `dir`, CNI network namespaces,
 * kube-proxy's and our iptables rules, the bridge, the sysctls it changed, and log links.
 */
export function cleanupNode(dir: string, network: HostNetwork, kubeProxy?: string): string[] {
  const done: string[] = [];
  const paths = nodePaths(dir);
  // Daemons first (kubelet would restart containers), then the containers, then the shims.
  const daemons = pidsWithArg(dir).filter((pid) => pid !== process.pid);
  killPids(daemons);
  if (daemons.length > 0) done.push(`killed ${daemons.length} node processes`);
  const cg = removeKubepodsCgroups();
  if (cg.killed + cg.removed > 0) done.push(`killed ${cg.killed} container processes, removed ${cg.removed} cgroups`);
  const shims = pidsWithArg(paths.containerdSocket);
  killPids(shims);
  const unmounted = unmountBelow(dir);
  if (unmounted > 0) done.push(`unmounted ${unmounted} mounts`);
  const netns = removeCniNetns();
  if (netns > 0) done.push(`removed ${netns} network namespaces`);
  // No pod is left to hold an address: host-local's reservations are stale now.
  if (existsSync(paths.cniIpamDir)) {
    rmSync(paths.cniIpamDir, { recursive: true, force: true });
    done.push('released the pod addresses');
  }
  if (kubeProxy && existsSync(kubeProxy)) runCommand([kubeProxy, '--cleanup', '--v=0'], { allowFailure: true });
  teardownHostNetwork(network);
  restoreSysctls(paths.sysctlSave);
  removeContainerLogLinks(dir);
  return done;
}

async function waitFor(what: string, deadlineMs: number, children: readonly Child[], check: () => boolean | Promise<boolean>): Promise<void> {
  const deadline = Date.now() + deadlineMs;
  for (;;) {
    const dead = children.find((c) => c.exitInfo);
    if (dead) throw new Error(`${dead.name} exited while waiting for ${what}`);
    if (await check()) return;
    if (Date.now() > deadline) throw new Error(`timed out after ${deadlineMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

async function httpOk(url: string, anyStatus = false): Promise<boolean> {
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(2_000) });
    return anyStatus ? res.status > 0 : res.ok;
  } catch {
    return false;
  }
}
