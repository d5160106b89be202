/**
 * A real Kubernetes control plane for the end-to-end tests and the local cluster: etcd,
 * kube-apiserver (RBAC, admission incl. MutatingAdmissionWebhook and PodSecurity, TLS,
 * service-account tokens) and kube-controller-manager (Job, CronJob, service-account, namespace,
 * garbage-collector controllers, among others). By default it listens on loopback with no
 * scheduler and no node, so pods are created and admitted but never run. With `node`, it listens
 * on the node's address, starts kube-scheduler too and issues the credentials a kubelet and
 * kube-proxy need (scripts/cluster/node.ts starts those).
 *
 * The binaries come from `bash scripts/install-control-plane`, which builds them from the
 * k8s.io/kubernetes release pinned in test/e2e/go.mod and caches them outside git.
 */

import { spawn } from 'node:child_process';
import { generateKeyPairSync, randomBytes, randomUUID } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { request as httpsRequest } from 'node:https';
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { homedir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describeChild, startChild, stopChild, type Child } from '../../scripts/child-processes.ts';
import { freePort } from '../../scripts/ports.ts';
import forge from 'node-forge';

export interface ControlPlaneOptions {
  /** Folder for certificates, kubeconfigs, etcd data and logs (`*.log`). Created if missing. */
  dir: string;
  /** Admission plugins enabled in addition to the API server's defaults (which already include
   * MutatingAdmissionWebhook and ValidatingAdmissionWebhook). */
  admissionPlugins?: string[];
  /** kube-controller-manager controllers; defaults to {@link DEFAULT_CONTROLLERS}. */
  controllers?: string[];
  /** Run for a real node: listen on `address` (reachable from pods), start kube-scheduler, and
   * issue kubeconfigs for the kubelet (`system:node:<nodeName>`) and kube-proxy. */
  node?: { nodeName: string; address: string };
}

/** Kubeconfigs of the node's components, when the control plane was started with `node`. */
export interface NodeCredentials {
  kubelet: string;
  kubeProxy: string;
}

export interface KubectlResult {
  stdout: string;
  stderr: string;
  code: number;
}

export interface KubectlOptions {
  /** Written to kubectl's stdin (e.g. a manifest for `apply -f -`). */
  input?: string;
  /** Impersonate this user (`--as`); the admin may impersonate anyone. */
  as?: string;
  /** Impersonate these groups too (`--as-group`). */
  asGroups?: string[];
  /** Kill kubectl after this long; default 60 s. */
  timeoutMs?: number;
}

export interface ControlPlane {
  /** Kubeconfig of a cluster admin (group system:masters), current context set. */
  kubeconfigPath: string;
  /** `https://127.0.0.1:<port>` */
  serverUrl: string;
  /** The API server's gitVersion, e.g. `v1.37.2`. */
  version: string;
  /** PEM of the CA that signed the API server's serving certificate. */
  caPem: string;
  /** Bearer token of the admin user. */
  adminToken: string;
  /**
   * `https://127.0.0.1:<port>` of the kube-controller-manager (a self-signed serving certificate;
   * its /metrics takes the admin token): the Job controller's own counters, for cross-checks.
   */
  controllerManagerUrl: string;
  /** Folder with the logs and state (as passed in). */
  dir: string;
  /** Kubeconfigs for the kubelet and kube-proxy (only with the `node` option). */
  nodeCredentials: NodeCredentials | undefined;
  /** Runs kubectl against this control plane; never throws for a non-zero exit. */
  kubectl(args: string[], opts?: KubectlOptions): Promise<KubectlResult>;
  /** Stops the controller-manager, the API server and etcd. Idempotent. */
  stop(): Promise<void>;
}

export interface ControlPlaneBinaries {
  version: string;
  cacheDir: string;
  etcd: string;
  kubeApiserver: string;
  kubeControllerManager: string;
  kubeScheduler: string;
  kubelet: string;
  kubeProxy: string;
  kubectl: string;
}

export const DEFAULT_CONTROLLERS: readonly string[] = [
  'job-controller',
  'cronjob-controller',
  'serviceaccount-controller',
  'serviceaccount-token-controller',
  'namespace-controller',
  'garbage-collector-controller',
  'root-ca-certificate-publisher-controller',
  'clusterrole-aggregation-controller',
  'certificatesigningrequest-signing-controller',
];

/** What a node running real pods needs on top: Deployments, Services and their endpoints,
 * PodDisruptionBudgets, finished-pod cleanup. */
export const NODE_CONTROLLERS: readonly string[] = [
  ...DEFAULT_CONTROLLERS,
  'deployment-controller',
  'replicaset-controller',
  'endpointslice-controller',
  'endpoints-controller',
  'disruption-controller',
  'pod-garbage-collector-controller',
  'ttl-after-finished-controller',
  'taint-eviction-controller',
  'node-lifecycle-controller',
];

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
/** The Service network. The local cluster routes it only through kube-proxy's rules on this
 * machine (scripts/cluster/node.ts). */
export const SERVICE_CIDR = '10.96.0.0/16';
const SERVICE_IP = '10.96.0.1';
const INSTALL_HINT = 'run `bash scripts/install-control-plane` (builds kube-apiserver, kube-controller-manager, kube-scheduler, kubelet, kube-proxy and kubectl with Go and fetches etcd; the first build takes a while)';

/** The k8s.io/kubernetes release pinned in test/e2e/go.mod, e.g. `v1.37.2`. */
export function pinnedKubernetesVersion(): string {
  const goMod = join(ROOT, 'test', 'e2e', 'go.mod');
  const text = readFileSync(goMod, 'utf8');
  const m = /^\s*(?:require\s+)?k8s\.io\/kubernetes\s+(v\d+\.\d+\.\d+)\b/m.exec(text);
  if (!m?.[1]) throw new Error(`cannot find the k8s.io/kubernetes requirement in ${goMod}`);
  return m[1];
}

/** Paths of the cached binaries; throws, telling how to build them, when any is missing. */
export function controlPlaneBinaries(): ControlPlaneBinaries {
  const version = pinnedKubernetesVersion();
  const cacheDir = process.env['JOBMETRICS_CONTROL_PLANE_CACHE'] || join(homedir(), '.cache', 'jobmetrics', 'control-plane', version);
  const bin = join(cacheDir, 'bin');
  const out: ControlPlaneBinaries = {
    version,
    cacheDir,
    etcd: join(bin, 'etcd'),
    kubeApiserver: join(bin, 'kube-apiserver'),
    kubeControllerManager: join(bin, 'kube-controller-manager'),
    kubeScheduler: join(bin, 'kube-scheduler'),
    kubelet: join(bin, 'kubelet'),
    kubeProxy: join(bin, 'kube-proxy'),
    kubectl: join(bin, 'kubectl'),
  };
  const missing = [out.etcd, out.kubeApiserver, out.kubeControllerManager, out.kubeScheduler, out.kubelet, out.kubeProxy, out.kubectl].filter(
    (p) => !isExecutable(p),
  );
  if (missing.length > 0) {
    throw new Error(`the Kubernetes ${version} control plane is not built (missing: ${missing.join(', ')}); ${INSTALL_HINT}`);
  }
  return out;
}

function isExecutable(path: string): boolean {
  try {
    return statSync(path).isFile() && (statSync(path).mode & 0o111) !== 0;
  } catch {
    return false;
  }
}

/** Ports from below the ephemeral range (scripts/ports.ts says why listen-on-0 races). */
export { freePort };

// ---------------------------------------------------------------------------------------------
// ---------------------------------------------------------------------------------------------
// Certificates and credentials

interface Pki {
  caPem: string;
  caKeyPem: string;
  serverCertPem: string;
  serverKeyPem: string;
  saPublicPem: string;
  saPrivatePem: string;
  frontProxyCaPem: string;
  frontProxyClientCertPem: string;
  frontProxyClientKeyPem: string;
  /** The API server's client certificate towards kubelets (logs, exec), in system:masters. */
  kubeletClientCertPem: string;
  kubeletClientKeyPem: string;
}

function rsaKey(): { publicPem: string; privatePem: string } {
  const { publicKey, privateKey } = generateKeyPairSync('rsa', {
    modulusLength: 2048,
    publicKeyEncoding: { type: 'spki', format: 'pem' },
    privateKeyEncoding: { type: 'pkcs1', format: 'pem' },
  });
  return { publicPem: publicKey, privatePem: privateKey };
}

function makeCert(opts: {
  commonName: string;
  organization?: string;
  publicPem: string;
  signerKeyPem: string;
  issuer?: forge.pki.Certificate;
  isCa: boolean;
  clientOnly?: boolean;
  dnsNames?: string[];
  ips?: string[];
}): forge.pki.Certificate {
  const cert = forge.pki.createCertificate();
  cert.publicKey = forge.pki.publicKeyFromPem(opts.publicPem);
  cert.serialNumber = '01' + randomBytes(15).toString('hex');
  const now = Date.now();
  cert.validity.notBefore = new Date(now - 60 * 60_000);
  cert.validity.notAfter = new Date(now + 7 * 24 * 60 * 60_000);
  const subject = [{ name: 'commonName', value: opts.commonName }, ...(opts.organization ? [{ name: 'organizationName', value: opts.organization }] : [])];
  cert.setSubject(subject);
  cert.setIssuer(opts.issuer ? opts.issuer.subject.attributes : subject);
  const extensions: object[] = [
    { name: 'basicConstraints', cA: opts.isCa, critical: true },
    opts.isCa
      ? { name: 'keyUsage', keyCertSign: true, cRLSign: true, digitalSignature: true, critical: true }
      : { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, critical: true },
    { name: 'subjectKeyIdentifier' },
  ];
  if (!opts.isCa) {
    extensions.push(opts.clientOnly ? { name: 'extKeyUsage', clientAuth: true } : { name: 'extKeyUsage', serverAuth: true, clientAuth: true });
    const altNames = [
      ...(opts.dnsNames ?? []).map((value) => ({ type: 2, value })),
      ...(opts.ips ?? []).map((ip) => ({ type: 7, ip })),
    ];
    if (altNames.length > 0) extensions.push({ name: 'subjectAltName', altNames });
  }
  cert.setExtensions(extensions);
  cert.sign(forge.pki.privateKeyFromPem(opts.signerKeyPem) as forge.pki.rsa.PrivateKey, forge.md.sha256.create());
  return cert;
}

function makePki(address: string): Pki {
  const ca = rsaKey();
  const caCert = makeCert({ commonName: 'jobmetrics-e2e-ca', publicPem: ca.publicPem, signerKeyPem: ca.privatePem, isCa: true });
  const server = rsaKey();
  const serverCert = makeCert({
    commonName: 'kube-apiserver',
    publicPem: server.publicPem,
    signerKeyPem: ca.privatePem,
    issuer: caCert,
    isCa: false,
    dnsNames: ['localhost', 'kubernetes', 'kubernetes.default', 'kubernetes.default.svc', 'kubernetes.default.svc.cluster.local'],
    ips: [...new Set(['127.0.0.1', address, SERVICE_IP])],
  });
  const sa = rsaKey();
  // The aggregation layer's front proxy (requestheader authentication): its own CA, as kubeadm does.
  const proxyCa = rsaKey();
  const proxyCaCert = makeCert({ commonName: 'jobmetrics-e2e-front-proxy-ca', publicPem: proxyCa.publicPem, signerKeyPem: proxyCa.privatePem, isCa: true });
  const proxyClient = rsaKey();
  const proxyClientCert = makeCert({
    commonName: 'front-proxy-client',
    publicPem: proxyClient.publicPem,
    signerKeyPem: proxyCa.privatePem,
    issuer: proxyCaCert,
    isCa: false,
    clientOnly: true,
  });
  const kubeletClient = rsaKey();
  const kubeletClientCert = makeCert({
    commonName: 'kube-apiserver-kubelet-client',
    organization: 'system:masters',
    publicPem: kubeletClient.publicPem,
    signerKeyPem: ca.privatePem,
    issuer: caCert,
    isCa: false,
    clientOnly: true,
  });
  return {
    kubeletClientCertPem: forge.pki.certificateToPem(kubeletClientCert),
    kubeletClientKeyPem: kubeletClient.privatePem,
    frontProxyCaPem: forge.pki.certificateToPem(proxyCaCert),
    frontProxyClientCertPem: forge.pki.certificateToPem(proxyClientCert),
    frontProxyClientKeyPem: proxyClient.privatePem,
    caPem: forge.pki.certificateToPem(caCert),
    caKeyPem: ca.privatePem,
    serverCertPem: forge.pki.certificateToPem(serverCert),
    serverKeyPem: server.privatePem,
    saPublicPem: sa.publicPem,
    saPrivatePem: sa.privatePem,
  };
}

/**
 * A fresh CA and a serving certificate it signed, for a local HTTPS server the API server calls
 * (e.g. a webhook registered with `clientConfig.url`; pass `caPem` as its `caBundle`, base64).
 */
export function makeServingCert(opts: { dnsNames?: string[]; ips?: string[] } = {}): { caPem: string; certPem: string; keyPem: string } {
  const ca = rsaKey();
  const caCert = makeCert({ commonName: 'jobmetrics-e2e-serving-ca', publicPem: ca.publicPem, signerKeyPem: ca.privatePem, isCa: true });
  const key = rsaKey();
  const cert = makeCert({
    commonName: opts.dnsNames?.[0] ?? opts.ips?.[0] ?? 'localhost',
    publicPem: key.publicPem,
    signerKeyPem: ca.privatePem,
    issuer: caCert,
    isCa: false,
    dnsNames: opts.dnsNames ?? ['localhost'],
    ips: opts.ips ?? ['127.0.0.1'],
  });
  return { caPem: forge.pki.certificateToPem(caCert), certPem: forge.pki.certificateToPem(cert), keyPem: key.privatePem };
}

function kubeconfig(server: string, caPath: string, user: string, token: string): string {
  // JSON is valid YAML; no quoting questions.
  return JSON.stringify(
    {
      apiVersion: 'v1',
      kind: 'Config',
      clusters: [{ name: 'e2e', cluster: { server, 'certificate-authority': caPath } }],
      users: [{ name: user, user: { token } }],
      contexts: [{ name: 'e2e', context: { cluster: 'e2e', user, namespace: 'default' } }],
      'current-context': 'e2e',
    },
    null,
    2,
  ) + '\n';
}

// ---------------------------------------------------------------------------------------------
// HTTP polling

interface Probe {
  status: number;
  body: string;
}

export function get(url: string, opts: { ca?: string; token?: string; insecure?: boolean; timeoutMs?: number } = {}): Promise<Probe> {
  return new Promise((resolveGet, reject) => {
    const u = new URL(url);
    const headers: Record<string, string> = {};
    if (opts.token) headers['authorization'] = `Bearer ${opts.token}`;
    const common = { method: 'GET', headers, timeout: opts.timeoutMs ?? 5_000 };
    const onResponse = (res: IncomingMessage): void => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolveGet({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    };
    const req =
      u.protocol === 'https:'
        ? httpsRequest(u, { ...common, ...(opts.ca ? { ca: opts.ca } : {}), rejectUnauthorized: !opts.insecure }, onResponse)
        : httpRequest(u, common, onResponse);
    req.on('timeout', () => req.destroy(new Error(`GET ${url} timed out`)));
    req.on('error', reject);
    req.end();
  });
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Polls `check` until it returns true; fails early when one of `children` exits. */
async function waitUntil(what: string, deadlineMs: number, children: Child[], check: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + deadlineMs;
  let lastError = '';
  for (;;) {
    const dead = children.find((c) => c.exitInfo);
    if (dead) throw new Error(`${dead.name} exited while waiting for ${what}`);
    try {
      if (await check()) return;
    } catch (err) {
      lastError = err instanceof Error ? err.message : String(err);
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${deadlineMs} ms waiting for ${what}${lastError ? ` (last error: ${lastError})` : ''}`);
    await sleep(250);
  }
}

// ---------------------------------------------------------------------------------------------

/**
 * Starts etcd, kube-apiserver and kube-controller-manager on 127.0.0.1 with free ports, and
 * resolves once the API server's /readyz is ok and the controller-manager is healthy. On failure
 * everything started is stopped and the error carries the last log lines of each process.
 */
export async function startControlPlane(opts: ControlPlaneOptions): Promise<ControlPlane> {
  const bins = controlPlaneBinaries();
  const dir = resolve(opts.dir);
  const pki = join(dir, 'pki');
  await mkdir(pki, { recursive: true });
  await mkdir(join(dir, 'etcd-data'), { recursive: true, mode: 0o700 });

  const address = opts.node?.address ?? '127.0.0.1';
  const material = makePki(address);
  const files = {
    ca: join(pki, 'ca.crt'),
    caKey: join(pki, 'ca.key'),
    serverCert: join(pki, 'apiserver.crt'),
    serverKey: join(pki, 'apiserver.key'),
    saPub: join(pki, 'sa.pub'),
    saKey: join(pki, 'sa.key'),
    tokens: join(pki, 'tokens.csv'),
    frontProxyCa: join(pki, 'front-proxy-ca.crt'),
    frontProxyCert: join(pki, 'front-proxy-client.crt'),
    frontProxyKey: join(pki, 'front-proxy-client.key'),
    kubeletClientCert: join(pki, 'apiserver-kubelet-client.crt'),
    kubeletClientKey: join(pki, 'apiserver-kubelet-client.key'),
    adminKubeconfig: join(dir, 'admin.kubeconfig'),
    kcmKubeconfig: join(dir, 'controller-manager.kubeconfig'),
    schedulerKubeconfig: join(dir, 'scheduler.kubeconfig'),
    kubeletKubeconfig: join(dir, 'kubelet.kubeconfig'),
    kubeProxyKubeconfig: join(dir, 'kube-proxy.kubeconfig'),
  };
  const adminToken = randomBytes(24).toString('hex');
  const kcmToken = randomBytes(24).toString('hex');
  const nodeTokens = { scheduler: randomBytes(24).toString('hex'), kubelet: randomBytes(24).toString('hex'), kubeProxy: randomBytes(24).toString('hex') };
  await writeFile(files.ca, material.caPem);
  await writeFile(files.caKey, material.caKeyPem, { mode: 0o600 });
  await writeFile(files.serverCert, material.serverCertPem);
  await writeFile(files.serverKey, material.serverKeyPem, { mode: 0o600 });
  await writeFile(files.saPub, material.saPublicPem);
  await writeFile(files.saKey, material.saPrivatePem, { mode: 0o600 });
  await writeFile(files.frontProxyCa, material.frontProxyCaPem);
  await writeFile(files.frontProxyCert, material.frontProxyClientCertPem);
  await writeFile(files.frontProxyKey, material.frontProxyClientKeyPem, { mode: 0o600 });
  await writeFile(files.kubeletClientCert, material.kubeletClientCertPem);
  await writeFile(files.kubeletClientKey, material.kubeletClientKeyPem, { mode: 0o600 });
  // token,user,uid,"groups" — the users and groups the API server's bootstrap RBAC policy and
  // the Node authorizer expect (system:kube-scheduler, system:node:<name> in system:nodes,
  // system:kube-proxy bound to system:node-proxier).
  const tokenLines = [`${adminToken},admin,${randomUUID()},"system:masters"`, `${kcmToken},system:kube-controller-manager,${randomUUID()}`];
  if (opts.node) {
    tokenLines.push(
      `${nodeTokens.scheduler},system:kube-scheduler,${randomUUID()}`,
      `${nodeTokens.kubelet},system:node:${opts.node.nodeName},${randomUUID()},"system:nodes,system:authenticated"`,
      `${nodeTokens.kubeProxy},system:kube-proxy,${randomUUID()}`,
    );
  }
  await writeFile(files.tokens, tokenLines.join('\n') + '\n', { mode: 0o600 });

  const [etcdClient, etcdPeer, apiPort, kcmPort, schedulerPort] = [await freePort(), await freePort(), await freePort(), await freePort(), await freePort()];
  const serverUrl = `https://${address}:${apiPort}`;
  await writeFile(files.adminKubeconfig, kubeconfig(serverUrl, files.ca, 'admin', adminToken), { mode: 0o600 });
  await writeFile(files.kcmKubeconfig, kubeconfig(serverUrl, files.ca, 'system:kube-controller-manager', kcmToken), { mode: 0o600 });
  if (opts.node) {
    await writeFile(files.schedulerKubeconfig, kubeconfig(serverUrl, files.ca, 'system:kube-scheduler', nodeTokens.scheduler), { mode: 0o600 });
    await writeFile(files.kubeletKubeconfig, kubeconfig(serverUrl, files.ca, `system:node:${opts.node.nodeName}`, nodeTokens.kubelet), { mode: 0o600 });
    await writeFile(files.kubeProxyKubeconfig, kubeconfig(serverUrl, files.ca, 'system:kube-proxy', nodeTokens.kubeProxy), { mode: 0o600 });
  }

  const children: Child[] = [];
  const stopAll = async (): Promise<void> => {
    for (const child of [...children].reverse()) await stopChild(child);
  };

  try {
    const etcdUrl = `http://127.0.0.1:${etcdClient}`;
    children.push(
      startChild('etcd', bins.etcd, [
        '--name=e2e',
        `--data-dir=${join(dir, 'etcd-data')}`,
        `--listen-client-urls=${etcdUrl}`,
        `--advertise-client-urls=${etcdUrl}`,
        `--listen-peer-urls=http://127.0.0.1:${etcdPeer}`,
        `--initial-advertise-peer-urls=http://127.0.0.1:${etcdPeer}`,
        `--initial-cluster=e2e=http://127.0.0.1:${etcdPeer}`,
        '--listen-metrics-urls=',
        '--unsafe-no-fsync', // throwaway data: no fsync keeps it fast on shared disks
        '--log-level=warn',
      ], join(dir, 'etcd.log')),
    );
    await waitUntil('etcd /health', 20_000, children, async () => {
      const r = await get(`${etcdUrl}/health`);
      return r.status === 200 && r.body.includes('"health":"true"');
    });

    const plugins = ['MutatingAdmissionWebhook', 'ValidatingAdmissionWebhook', ...(opts.admissionPlugins ?? [])];
    children.push(
      startChild('kube-apiserver', bins.kubeApiserver, [
        `--etcd-servers=${etcdUrl}`,
        `--etcd-prefix=/registry`,
        `--bind-address=${address}`,
        `--advertise-address=${address}`,
        // The `kubernetes` Service's endpoints may not point at loopback; without a node nothing
        // needs them. With one, pods reach the API server through them.
        ...(opts.node ? [] : ['--endpoint-reconciler-type=none']),
        `--secure-port=${apiPort}`,
        `--tls-cert-file=${files.serverCert}`,
        `--tls-private-key-file=${files.serverKey}`,
        `--client-ca-file=${files.ca}`,
        `--token-auth-file=${files.tokens}`,
        `--requestheader-client-ca-file=${files.frontProxyCa}`,
        '--requestheader-allowed-names=front-proxy-client',
        '--requestheader-username-headers=X-Remote-User',
        '--requestheader-group-headers=X-Remote-Group',
        '--requestheader-extra-headers-prefix=X-Remote-Extra-',
        `--proxy-client-cert-file=${files.frontProxyCert}`,
        `--proxy-client-key-file=${files.frontProxyKey}`,
        `--kubelet-client-certificate=${files.kubeletClientCert}`,
        // The node's name is not in this machine's DNS; its InternalIP is the address to call.
        '--kubelet-preferred-address-types=InternalIP,Hostname',
        `--kubelet-client-key=${files.kubeletClientKey}`,
        '--authorization-mode=Node,RBAC',
        `--enable-admission-plugins=${[...new Set(plugins)].join(',')}`,
        `--service-account-key-file=${files.saPub}`,
        `--service-account-signing-key-file=${files.saKey}`,
        '--service-account-issuer=https://kubernetes.default.svc.cluster.local',
        `--service-cluster-ip-range=${SERVICE_CIDR}`,
        '--allow-privileged=true', // so a hostPID pod is admitted and the webhook decides about it
        `--cert-dir=${pki}`,
        '--profiling=false',
        '--v=1',
      ], join(dir, 'kube-apiserver.log')),
    );
    await waitUntil('kube-apiserver /readyz', 90_000, children, async () => {
      const r = await get(`${serverUrl}/readyz`, { ca: material.caPem, token: adminToken });
      return r.status === 200;
    });

    children.push(
      startChild('kube-controller-manager', bins.kubeControllerManager, [
        `--kubeconfig=${files.kcmKubeconfig}`,
        `--authentication-kubeconfig=${files.kcmKubeconfig}`,
        `--authorization-kubeconfig=${files.kcmKubeconfig}`,
        '--bind-address=127.0.0.1',
        `--secure-port=${kcmPort}`,
        `--cert-dir=${join(dir, 'kcm-certs')}`,
        `--controllers=${(opts.controllers ?? (opts.node ? NODE_CONTROLLERS : DEFAULT_CONTROLLERS)).join(',')}`,
        '--use-service-account-credentials=true',
        `--service-account-private-key-file=${files.saKey}`,
        `--root-ca-file=${files.ca}`,
        `--cluster-signing-cert-file=${files.ca}`,
        `--cluster-signing-key-file=${files.caKey}`,
        `--service-cluster-ip-range=${SERVICE_CIDR}`,
        '--leader-elect=false',
        '--concurrent-job-syncs=5',
        '--profiling=false',
        '--v=1',
      ], join(dir, 'kube-controller-manager.log')),
    );
    await waitUntil('kube-controller-manager /healthz', 60_000, children, async () => {
      const r = await get(`https://127.0.0.1:${kcmPort}/healthz`, { insecure: true });
      return r.status === 200;
    });
    if (opts.node) {
      children.push(
        startChild('kube-scheduler', bins.kubeScheduler, [
          `--kubeconfig=${files.schedulerKubeconfig}`,
          `--authentication-kubeconfig=${files.schedulerKubeconfig}`,
          `--authorization-kubeconfig=${files.schedulerKubeconfig}`,
          '--bind-address=127.0.0.1',
          `--secure-port=${schedulerPort}`,
          '--leader-elect=false',
          '--profiling=false',
          '--v=1',
        ], join(dir, 'kube-scheduler.log')),
      );
      await waitUntil('kube-scheduler /healthz', 60_000, children, async () => {
        const r = await get(`https://127.0.0.1:${schedulerPort}/healthz`, { insecure: true });
        return r.status === 200;
      });
    }
    // The service-account controller is working once the default namespace has its account.
    await waitUntil('the default ServiceAccount in namespace default', 60_000, children, async () => {
      const r = await get(`${serverUrl}/api/v1/namespaces/default/serviceaccounts/default`, { ca: material.caPem, token: adminToken });
      return r.status === 200;
    });

    const versionProbe = await get(`${serverUrl}/version`, { ca: material.caPem, token: adminToken });
    const version = (JSON.parse(versionProbe.body) as { gitVersion?: string }).gitVersion ?? bins.version;

    let stopped: Promise<void> | undefined;
    const plane: ControlPlane = {
      kubeconfigPath: files.adminKubeconfig,
      serverUrl,
      version,
      caPem: material.caPem,
      adminToken,
      controllerManagerUrl: `https://127.0.0.1:${kcmPort}`,
      dir,
      nodeCredentials: opts.node ? { kubelet: files.kubeletKubeconfig, kubeProxy: files.kubeProxyKubeconfig } : undefined,
      kubectl: (args, kopts) => runKubectl(bins.kubectl, files.adminKubeconfig, args, kopts ?? {}),
      stop: () => (stopped ??= stopAll()),
    };
    return plane;
  } catch (err) {
    const report = children.map((c) => describeChild(c)).join('\n');
    await stopAll();
    const reason = err instanceof Error ? err.message : String(err);
    throw new Error(`control plane did not start in ${dir}: ${reason}\n${report}`, { cause: err });
  }
}

function runKubectl(kubectl: string, kubeconfigPath: string, args: string[], opts: KubectlOptions): Promise<KubectlResult> {
  const argv = [`--kubeconfig=${kubeconfigPath}`];
  if (opts.as !== undefined) argv.push(`--as=${opts.as}`);
  for (const group of opts.asGroups ?? []) argv.push(`--as-group=${group}`);
  argv.push(...args);
  return new Promise((resolveRun, reject) => {
    const proc = spawn(kubectl, argv, { stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let timedOut = false;
    const timeoutMs = opts.timeoutMs ?? 60_000;
    const timer = setTimeout(() => {
      timedOut = true;
      proc.kill('SIGKILL');
    }, timeoutMs);
    proc.stdout.on('data', (c: Buffer) => out.push(c));
    proc.stderr.on('data', (c: Buffer) => err.push(c));
    proc.on('error', (e) => {
      clearTimeout(timer);
      reject(new Error(`cannot run ${kubectl} ${args.join(' ')}: ${e.message}`, { cause: e }));
    });
    proc.on('close', (code, signal) => {
      clearTimeout(timer);
      let stderr = Buffer.concat(err).toString('utf8');
      if (timedOut) stderr += `\n[harness] kubectl ${args.join(' ')} killed after ${timeoutMs} ms`;
      else if (signal) stderr += `\n[harness] kubectl ${args.join(' ')} killed by ${signal}`;
      resolveRun({ stdout: Buffer.concat(out).toString('utf8'), stderr, code: code ?? 128 });
    });
    proc.stdin.on('error', () => undefined); // kubectl may exit before reading all input
    proc.stdin.end(opts.input ?? '');
  });
}

/** kubectl that throws, with the command and its stderr, when it exits non-zero. */
export async function kubectlOk(cp: ControlPlane, args: string[], opts?: KubectlOptions): Promise<string> {
  const r = await cp.kubectl(args, opts);
  if (r.code !== 0) throw new Error(`kubectl ${args.join(' ')} exited ${r.code}: ${r.stderr.trim() || r.stdout.trim()}`);
  return r.stdout;
}

/**
 * Creates a namespace (with labels) and waits for its default ServiceAccount, without which the
 * ServiceAccount admission plugin rejects pods and the Job controller would back off.
 */
export async function createNamespace(cp: ControlPlane, name: string, labels: Record<string, string> = {}): Promise<void> {
  const manifest = { apiVersion: 'v1', kind: 'Namespace', metadata: { name, labels } };
  await kubectlOk(cp, ['apply', '-f', '-'], { input: JSON.stringify(manifest) });
  const deadline = Date.now() + 30_000;
  for (;;) {
    const r = await cp.kubectl(['-n', name, 'get', 'serviceaccount', 'default', '-o', 'name']);
    if (r.code === 0) return;
    if (Date.now() > deadline) throw new Error(`namespace ${name}: no default ServiceAccount after 30 s (is the serviceaccount-controller running? see ${cp.dir}/kube-controller-manager.log): ${r.stderr.trim()}`);
    await sleep(200);
  }
}
