/**
 * The local cluster: a real control plane (etcd, kube-apiserver, kube-controller-manager,
 * kube-scheduler), one real node (containerd, runc, kubelet, kube-proxy), cluster DNS, an image
 * registry beside the node, and jobmetrics installed as an admin installs it: its two images pushed
 * to that registry with `npm run images -- push`, then manifests/base applied with the kustomize
 * `images:` edit that command prints, so the node pulls them (scripts/cluster/registry.ts). A
 * private registry (basic auth) beside it starts on request: {@link Cluster.privateRegistry}.
 * The end-to-end tests and `npm run cluster` both start it through {@link startCluster}.
 *
 * Addresses: the node is 10.244.0.1 on its own bridge, pods get 10.244.0.0/24, Services
 * 10.96.0.0/16 (reached only through kube-proxy's rules on this machine). The pod network has no
 * masquerading and no route off this machine (scripts/cluster/host.ts).
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { join, relative, resolve } from 'node:path';
import { basicAuthorization, randomPassword, readCredentials, type Credentials } from '../../gateway/aggregator-credentials.ts';
import { controlPlaneBinaries, kubectlOk, SERVICE_CIDR, startControlPlane, type ControlPlane } from './control-plane.ts';
import { mountsBelow, setUpHostNetwork, type HostNetwork } from './host.ts';
import { waitForInjection } from './injection-check.ts';
import { addRegistryHost, cleanupNode, nodePaths, startNode, type RunningNode } from './node.ts';
import { ROOT } from './paths.ts';
import { authFile, PRIVATE_REGISTRY_PORT, REGISTRY_PATH, startRegistry, type Registry } from './registry.ts';
import { kustomization } from '../images.ts';
import { packageVersion } from '../version.ts';

export const NODE_NAME = 'jobmetrics-node';
export const NETWORK: HostNetwork = {
  bridge: 'jm0',
  address: '10.244.0.1',
  prefixLength: 24,
  podCidr: '10.244.0.0/24',
  serviceCidr: SERVICE_CIDR,
};
export const CLUSTER_DNS = '10.96.0.10';

export interface ClusterImages {
  /** OCI archives to import into the node (not the project's two: the node pulls those). */
  readonly archives: readonly string[];
  /** The sandbox (pause) image's name, among the archives. */
  readonly pause: string;
  /** The CoreDNS image's name, among the archives. */
  readonly coredns: string;
}

export interface ClusterOptions {
  readonly dir: string;
  readonly images: ClusterImages;
  /** Install jobmetrics from this manifest (default: manifests/base with the registry's images). */
  readonly installManifest?: string;
  /** One line per step. */
  readonly progress?: (line: string) => void;
}

export interface Cluster {
  readonly dir: string;
  readonly cp: ControlPlane;
  readonly node: RunningNode;
  readonly kubeconfigPath: string;
  /** host:port of the registry the project's images are pulled from (`<host>/jobmetrics/…`). */
  readonly registry: string;
  /** The in-cluster Prometheus, reachable from this machine through its Service address. */
  readonly prometheusUrl: string;
  /**
   * What every request to it needs: the aggregator's credentials, which the gateway created
   * (docs/install.md "What each part trusts"), as an `Authorization` header.
   */
  readonly prometheusAuthorization: string;
  /**
   * The private registry, started on the first call: basic auth on every request, the project's
   * two images pushed to `<host>/jobmetrics/…` with `npm run images -- push --authfile`, and
   * containerd told of the host (no credentials: those come from a pod's pull secrets). Stopped
   * with the cluster.
   */
  privateRegistry(): Promise<PrivateRegistry>;
  stop(): Promise<void>;
}

export interface PrivateRegistry {
  /** host:port. */
  readonly host: string;
  readonly auth: Credentials;
  /** Its log, access log included: who asked for what, and the answer. */
  readonly log: string;
}

/** Starts everything and installs jobmetrics; on failure, stops and cleans up what it started. */
export async function startCluster(opts: ClusterOptions): Promise<Cluster> {
  const say = opts.progress ?? (() => {});
  const t0 = Date.now();
  const step = (line: string): void => say(`[${Math.round((Date.now() - t0) / 1000)}s] ${line}`);
  const dir = resolve(opts.dir);
  const bins = controlPlaneBinaries();
  const leftovers = cleanupNode(join(dir, 'node'), NETWORK, bins.kubeProxy);
  if (leftovers.length > 0) step(`cleaned up an earlier run: ${leftovers.join(', ')}`);
  await mkdir(join(dir, 'node'), { recursive: true });
  step(`host network: bridge ${NETWORK.bridge} ${NETWORK.address}/${NETWORK.prefixLength}, Service route, firewall guard`);
  setUpHostNetwork(NETWORK, nodePaths(join(dir, 'node')).sysctlSave);

  step('control plane: etcd, kube-apiserver, kube-controller-manager, kube-scheduler');
  let cp: ControlPlane;
  try {
    cp = await startControlPlane({ dir: join(dir, 'control-plane'), node: { nodeName: NODE_NAME, address: NETWORK.address } });
  } catch (err) {
    cleanupNode(join(dir, 'node'), NETWORK, bins.kubeProxy);
    throw err;
  }
  let node: RunningNode | undefined;
  let registry: Registry | undefined;
  let privateRegistry: Promise<Registry> | undefined;
  const stop = async (): Promise<void> => {
    await node?.stop();
    await registry?.stop();
    await (await privateRegistry?.catch(() => undefined))?.stop();
    await cp.stop();
    cleanupNode(join(dir, 'node'), NETWORK, bins.kubeProxy);
    dropContainerdStore(join(dir, 'node'));
  };
  try {
    step(`image registry on ${NETWORK.address}: the project's two images pushed with npm run images -- push`);
    registry = await startRegistry(join(dir, 'registry'), NETWORK.address);
    pushProjectImages(`${registry.host}/${REGISTRY_PATH}`, join(dir, 'registry', 'push.log'));

    step(`node: containerd (pulls from ${registry.host}), ${opts.images.archives.length} images imported, kubelet, kube-proxy`);
    node = await startNode({
      dir: join(dir, 'node'),
      nodeName: NODE_NAME,
      network: NETWORK,
      clusterDns: CLUSTER_DNS,
      pauseImage: opts.images.pause,
      credentials: cp.nodeCredentials ?? missing('node credentials'),
      caFile: join(cp.dir, 'pki', 'ca.crt'),
      binaries: { kubelet: bins.kubelet, kubeProxy: bins.kubeProxy },
      images: opts.images.archives,
      registry: registry.host,
    });
    await kubectlOk(cp, ['wait', '--for=condition=Ready', `node/${NODE_NAME}`, '--timeout=120s'], { timeoutMs: 130_000 });

    step('cluster DNS (CoreDNS)');
    const dns = readFileSync(join(ROOT, 'scripts', 'cluster', 'coredns.yaml'), 'utf8')
      .replaceAll('__COREDNS_IMAGE__', opts.images.coredns)
      .replaceAll('__CLUSTER_DNS__', CLUSTER_DNS);
    await kubectlOk(cp, ['apply', '-f', '-'], { input: dns });
    await kubectlOk(cp, ['-n', 'kube-system', 'rollout', 'status', 'deployment/coredns', '--timeout=120s'], { timeoutMs: 130_000 });

    const manifest = opts.installManifest ?? installFromRegistry(join(dir, 'install'), `${registry.host}/${REGISTRY_PATH}`);
    step(`jobmetrics: kubectl apply -f ${manifest}`);
    await kubectlOk(cp, ['apply', '-f', manifest]);
    for (const d of ['jobmetrics-webhook', 'jobmetrics-gateway', 'jobmetrics-aggregator', 'jobmetrics-prometheus']) {
      await kubectlOk(cp, ['-n', 'jobmetrics', 'rollout', 'status', `deployment/${d}`, '--timeout=180s'], { timeoutMs: 190_000 });
    }
    step('injection live: a server-side dry run of an opted-in pod comes back with the sidecar');
    await waitForInjection(cp);
    const ip = (await kubectlOk(cp, ['-n', 'jobmetrics', 'get', 'service', 'jobmetrics-prometheus', '-o', 'jsonpath={.spec.clusterIP}'])).trim();
    const secret = JSON.parse(await kubectlOk(cp, ['-n', 'jobmetrics', 'get', 'secret', 'jobmetrics-aggregator-credentials', '-o', 'json'])) as { data?: Record<string, string> };
    const credentials = readCredentials(secret.data);
    if ('error' in credentials) throw new Error(`Secret jobmetrics/jobmetrics-aggregator-credentials: ${credentials.error}`);
    step('ready');
    const running = node;
    const privateAuth: Credentials = { username: 'jobmetrics-e2e', password: randomPassword() };
    const where = join(dir, 'private-registry');
    const startPrivate = async (): Promise<Registry> => {
      const r = await startRegistry(where, NETWORK.address, PRIVATE_REGISTRY_PORT, privateAuth);
      try {
        const file = join(where, 'auth.json');
        writeFileSync(file, authFile(r.host, privateAuth), { mode: 0o600 });
        pushProjectImages(`${r.host}/${REGISTRY_PATH}`, join(where, 'push.log'), ['--authfile', file]);
        addRegistryHost(running.paths, r.host);
        return r;
      } catch (err) {
        await r.stop();
        throw err;
      }
    };
    const privateRegistryOnce = async (): Promise<PrivateRegistry> => {
      privateRegistry ??= startPrivate();
      const r = await privateRegistry;
      return { host: r.host, auth: privateAuth, log: join(where, 'registry.log') };
    };
    return { dir, cp, node, registry: registry.host, kubeconfigPath: cp.kubeconfigPath, prometheusUrl: `http://${ip}:9090`, prometheusAuthorization: basicAuthorization(credentials), privateRegistry: privateRegistryOnce, stop };
  } catch (err) {
    const report = node?.describe() ?? '';
    await stop();
    throw new Error(`cluster did not start in ${dir}: ${err instanceof Error ? err.message : String(err)}\n${report}`, { cause: err });
  }
}

/** `npm run images -- push` of both images to `registry` (buildah, the stand-in bases, plain HTTP, `extra` flags); its output into `log`. */
function pushProjectImages(registry: string, log: string, extra: readonly string[] = []): void {
  const r = spawnSync(process.execPath, ['--import', 'tsx', join(ROOT, 'scripts', 'images.ts'), 'push', '--registry', registry, '--engine', 'buildah', '--stand-in-bases', '--tls-verify=false', ...extra], {
    cwd: ROOT,
    encoding: 'utf8',
    maxBuffer: 64 * 1024 * 1024,
  });
  writeFileSync(log, `${r.stdout ?? ''}${r.stderr ?? ''}`);
  if (r.status !== 0) throw new Error(`npm run images -- push ${['--registry', registry, ...extra].join(' ')} failed (exit ${r.status ?? r.signal}); log: ${log}\n${`${r.stdout ?? ''}${r.stderr ?? ''}`.trim().split('\n').slice(-15).join('\n')}`);
}

/** manifests/base with the kustomize `images:` edit `npm run images -- push` prints, rendered into `dir`. */
function installFromRegistry(dir: string, registry: string): string {
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'kustomization.yaml'), kustomization(relative(dir, join(ROOT, 'manifests', 'base')), registry, packageVersion()));
  const r = spawnSync(controlPlaneBinaries().kubectl, ['kustomize', dir], { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
  if (r.status !== 0) throw new Error(`kubectl kustomize ${dir} failed (exit ${r.status}): ${r.stderr}`);
  writeFileSync(join(dir, 'install.yaml'), r.stdout);
  return join(dir, 'install.yaml');
}

function missing(what: string): never {
  throw new Error(`internal: ${what} missing`);
}

/**
 * Removes containerd's content and snapshots (the imported images, ~0.9 GB a run) from a stopped
 * node's folder; the logs and configs stay for a look afterwards. Only when nothing is mounted
 * below the folder any more: a recursive removal would otherwise reach into a mounted filesystem.
 */
function dropContainerdStore(nodeDir: string): void {
  const paths = nodePaths(nodeDir);
  if (mountsBelow(readFileSync('/proc/self/mountinfo', 'utf8'), nodeDir).length > 0) return;
  for (const d of [paths.containerdRoot, paths.containerdState]) rmSync(d, { recursive: true, force: true });
}
