/**
 * What the runtime stage of Dockerfile.webhook and Dockerfile.sidecar holds, laid out on disk and
 * run — there is no container engine here, so this stands in for building the images:
 *
 * - the `deps` stage as written: its COPYs from the checkout into a temporary directory, then its
 *   RUN lines through `sh -c` (`npm ci --omit=dev --ignore-scripts …`, for the sidecar also the
 *   `npm uninstall` of the webhook's dependencies), with the local npm cache;
 * - the runtime stage's COPYs into `<tmp>/<image>/rootfs`: package.json from the checkout,
 *   node_modules from that deps directory, dist/ from the checkout's build (ensureBuilt runs the
 *   same `tsc -p tsconfig.build.json` as the build stage's `npm run build`);
 * - its ENTRYPOINT, with the Node release the Dockerfiles name (node:<version>-bookworm-slim; the
 *   official binary from scripts/fetch-node, the one the stand-in distroless base carries) in
 *   place of the distroless one, whatever Node runs the tests.
 *
 * So it shows that the production-only dependency sets are enough: every module of the image
 * loads (also the ones the webhook loads lazily), snappy's native addon works, the sidecar reports a
 * bad setting and exits 0, the webhook serves over TLS and talks to an API server (its node:https
 * client; @kubernetes/client-node, its fallback for exec/auth-provider kubeconfigs, loads too). It cannot show anything about the base images, the user, or a
 * read-only root filesystem.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { request } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { basename, dirname, join, relative } from 'node:path';
import { expect } from 'chai';
import { parseAllDocuments } from 'yaml';
import jsonPatch, { type Operation } from 'fast-json-patch';
import { PROJECT_ROOT } from '../../scripts/local-pod.ts';
import { generateCa, issueServingCert } from '../../webhook/cert.ts';
import { ensureBuilt } from '../support/build.ts';
import { copies, copyDestination, pairs, parseDockerfile, workdir, type Stage } from '../support/dockerfile.ts';

/** Above this, `npm ci --omit=dev` is reported as slow (a cold npm cache or a slow registry). */
const SLOW_INSTALL_MS = 20_000;

interface Image {
  /** <tmp>/<program>/rootfs/app: the runtime stage's WORKDIR. */
  app: string;
  rootfs: string;
  entrypoint: string[];
  env: Record<string, string>;
  installMs: number;
}

function dirSize(dir: string): number {
  let total = 0;
  for (const e of readdirSync(dir, { recursive: true, withFileTypes: true })) if (e.isFile()) total += statSync(join(e.parentPath, e.name)).size;
  return total;
}

/** COPY as the builder does it: a directory's contents into the destination, a file into a destination ending in `/`. */
function copyInto(source: string, destination: string, destIsDir: boolean): void {
  if (statSync(source).isDirectory()) {
    cpSync(source, destination, { recursive: true, verbatimSymlinks: true });
  } else {
    const target = destIsDir ? join(destination, basename(source)) : destination;
    mkdirSync(dirname(target), { recursive: true });
    cpSync(source, target);
  }
}

/** Runs the deps stage and assembles the runtime stage of Dockerfile.<program> under `tmp`. */
function assemble(program: 'webhook' | 'sidecar', tmp: string): Image {
  const df = parseDockerfile(readFileSync(join(PROJECT_ROOT, `Dockerfile.${program}`), 'utf8'));
  const stage = (name: string): Stage => df.stages.find((s) => s.name === name)!;
  const build = stage('build');
  const deps = stage('deps');
  const final = df.stages.at(-1)!;

  const depsRoot = join(tmp, program, 'deps');
  for (const c of copies(deps)) {
    for (const src of c.sources) copyInto(join(PROJECT_ROOT, src), join(depsRoot, copyDestination(deps, c)), c.dest.endsWith('/') || c.sources.length > 1);
  }
  const started = Date.now();
  for (const run of deps.instructions.filter((i) => i.keyword === 'RUN')) {
    const r = spawnSync('sh', ['-c', run.args], {
      cwd: join(depsRoot, workdir(deps)),
      // The image's npm would fetch; here the local cache answers what it can.
      env: { ...process.env, npm_config_prefer_offline: 'true', npm_config_update_notifier: 'false' },
      encoding: 'utf8',
      timeout: 120_000,
    });
    expect(r.status, `Dockerfile.${program}:${run.line} ${run.args}\n${r.stdout}\n${r.stderr}`).to.equal(0);
  }
  const installMs = Date.now() - started;

  const rootfs = join(tmp, program, 'rootfs');
  const from = (c: { from?: string }, src: string): string => {
    if (c.from === undefined) return join(PROJECT_ROOT, src);
    if (c.from === 'deps') return join(depsRoot, src);
    if (c.from === 'build') return join(PROJECT_ROOT, relative(workdir(build), src));
    throw new Error(`COPY --from=${c.from}`);
  };
  for (const c of copies(final)) {
    for (const src of c.sources) copyInto(from(c, src), join(rootfs, copyDestination(final, c)), c.dest.endsWith('/') || c.sources.length > 1);
  }
  const entry = final.instructions.find((i) => i.keyword === 'ENTRYPOINT')!.json!;
  return { app: join(rootfs, workdir(final)), rootfs, entrypoint: entry, env: pairs(final, 'ENV'), installMs };
}

/** The Node release of the Dockerfiles' `node:<version>-bookworm-slim` stages. */
function dockerfileNodeVersion(): string {
  const df = parseDockerfile(readFileSync(join(PROJECT_ROOT, 'Dockerfile.sidecar'), 'utf8'));
  const version = /^node:(\d+\.\d+\.\d+)-bookworm-slim/.exec(df.stages[0]!.base)?.[1];
  if (version === undefined) throw new Error(`Dockerfile.sidecar: build stage base ${df.stages[0]!.base} is not node:<version>-bookworm-slim`);
  return version;
}

/** That release's official binary (scripts/fetch-node: cached, integrity checked), as the runtime stage's node. */
function imageNode(): string {
  const r = spawnSync('bash', [join(PROJECT_ROOT, 'scripts', 'fetch-node'), dockerfileNodeVersion()], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`scripts/fetch-node ${dockerfileNodeVersion()} failed (exit ${r.status}): ${r.stderr}`);
  return join(r.stdout.trim(), 'bin', 'node');
}
let IMAGE_NODE = '';

/** Runs the image's ENTRYPOINT (its node: {@link IMAGE_NODE}), or `command` in its place (as a Deployment's `command` does). */
function startEntrypoint(img: Image, env: Record<string, string>, command: readonly string[] = img.entrypoint): { proc: ChildProcess; lines: string[]; exited: Promise<number | null> } {
  const [node, ...rest] = command;
  expect(node).to.equal('/nodejs/bin/node');
  const argv = rest.map((a) => (a.startsWith('/') ? join(img.rootfs, a) : a));
  const proc = spawn(IMAGE_NODE, argv, { cwd: img.app, env: { PATH: '/usr/bin:/bin', ...img.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  const lines: string[] = [];
  let buf = '';
  const onData = (chunk: Buffer): void => {
    buf += chunk.toString('utf8');
    let nl;
    while ((nl = buf.indexOf('\n')) >= 0) {
      lines.push(buf.slice(0, nl));
      buf = buf.slice(nl + 1);
    }
  };
  proc.stdout!.on('data', onData);
  proc.stderr!.on('data', onData);
  const exited = new Promise<number | null>((r) => proc.on('exit', (code) => r(code)));
  return { proc, lines, exited };
}

/** The first JSON log line of a started program that `matches`; rejects, with its log, if it exits first. */
function logLine(p: { lines: string[]; exited: Promise<number | null> }, what: string, matches: (rec: Record<string, unknown>) => boolean): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    const timer = setInterval(() => {
      for (const l of p.lines) {
        const rec = JSON.parse(l) as Record<string, unknown>;
        if (matches(rec)) {
          clearInterval(timer);
          resolve(rec);
          return;
        }
      }
    }, 50);
    void p.exited.then((code) => {
      clearInterval(timer);
      reject(new Error(`${what} exited with ${code}:\n${p.lines.join('\n')}`));
    });
  });
}

/** Imports every module of the image's dist/ except the entry points, from inside the image. */
function loadEveryModule(img: Image, extra: string): { status: number | null; out: string } {
  const modules = readdirSync(join(img.app, 'dist'), { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile() && e.name.endsWith('.js') && e.name !== 'main.js')
    .map((e) => './' + relative(img.app, join(e.parentPath, e.name)));
  const probe = join(img.app, 'probe.mjs');
  writeFileSync(probe, `for (const m of ${JSON.stringify(modules)}) await import(m);\n${extra}\n`);
  const r = spawnSync(IMAGE_NODE, [probe], { cwd: img.app, env: { PATH: '/usr/bin:/bin', ...img.env }, encoding: 'utf8', timeout: 30_000 });
  rmSync(probe);
  return { status: r.status, out: `${r.stdout}${r.stderr}` };
}

function packagesIn(nodeModules: string): string[] {
  return readdirSync(nodeModules)
    .filter((n) => !n.startsWith('.'))
    .flatMap((n) => (n.startsWith('@') ? readdirSync(join(nodeModules, n)).map((s) => `${n}/${s}`) : [n]))
    .sort();
}

describe('image runtime stages on disk (no container engine): production dependencies only', function () {
  this.timeout(120_000);
  let tmp: string;
  before(() => {
    ensureBuilt();
    IMAGE_NODE = imageNode();
    tmp = mkdtempSync(join(tmpdir(), 'jobmetrics-image-'));
    // Node looks for packages in every parent's node_modules: there must be none above rootfs, or
    // a package missing from the image could be found there.
    for (let d = dirname(tmp); ; d = dirname(d)) {
      expect(existsSync(join(d, 'node_modules')), `${d}/node_modules would hide missing packages`).to.equal(false);
      if (d === dirname(d)) break;
    }
  });
  after(() => {
    if (tmp) rmSync(tmp, { recursive: true, force: true });
  });

  it('runs the images\' Node: the release of the node:<version> stages, an LTS line (24)', () => {
    const r = spawnSync(IMAGE_NODE, ['-p', 'JSON.stringify({ version: process.version, lts: process.release.lts })'], { encoding: 'utf8' });
    expect(JSON.parse(r.stdout) as unknown).to.deep.equal({ version: `v${dockerfileNodeVersion()}`, lts: 'Krypton' });
    expect(dockerfileNodeVersion()).to.match(/^24\./);
  });

  describe('Dockerfile.sidecar', () => {
    let img: Image;
    before(function () {
      img = assemble('sidecar', tmp);
      const mb = (dirSize(join(img.app, 'node_modules')) / 1e6).toFixed(1);
      console.log(`      deps stage (npm ci --omit=dev, npm uninstall) took ${(img.installMs / 1000).toFixed(1)} s; node_modules ${mb} MB`);
      if (img.installMs > SLOW_INSTALL_MS) console.log(`      that is slow: a cold npm cache or a slow registry (above ${SLOW_INSTALL_MS / 1000} s)`);
    });

    it('holds snappyjs and nothing else: no native addon, neither protobufjs nor any of the webhook’s packages', () => {
      const installed = packagesIn(join(img.app, 'node_modules'));
      expect(installed).to.deep.equal(['snappyjs']);
      expect(readdirSync(join(img.app, 'dist')).sort()).to.deep.equal(['shared', 'sidecar']);
    });

    it('loads every module; snappyjs round-trips; the version comes from package.json', () => {
      const r = loadEveryModule(
        img,
        [
          "const { encodeWriteRequest, encodeWriteRequestProto } = await import('./dist/shared/remote-write.js');",
          "const { default: snappy } = await import('snappyjs');",
          "const series = [{ labels: [['__name__', 'jobmetrics_items_total'], ['job', 'j']], samples: [{ value: 1, timestampMs: 1 }] }];",
          "const roundTrip = Buffer.from(snappy.uncompress(encodeWriteRequest(series))).equals(encodeWriteRequestProto(series));",
          "const { VERSION } = await import('./dist/shared/version.js');",
          'console.log(JSON.stringify({ roundTrip, version: VERSION }));',
        ].join('\n'),
      );
      expect(r.status, r.out).to.equal(0);
      expect(JSON.parse(r.out.trim())).to.deep.equal({ roundTrip: true, version: '0.1.0' });
    });

    it('the ENTRYPOINT with a bad setting: one JSON error line naming the variable, then exit 0 at once', async () => {
      const started = Date.now();
      const s = startEntrypoint(img, {
        JOBMETRICS_SCRAPE_URL: 'http://127.0.0.1:1/metrics',
        JOBMETRICS_REMOTE_WRITE_URL: 'http://127.0.0.1:1/api/v1/write',
        JOBMETRICS_NAMESPACE: 'ns',
        JOBMETRICS_JOB: 'job',
        JOBMETRICS_POD: 'pod',
        JOBMETRICS_MODE: 'legacy',
        JOBMETRICS_INTERVAL: '5 parsecs',
      });
      const code = await s.exited;
      expect(code, s.lines.join('\n')).to.equal(0);
      // The bound is the feature (a bad setting must not hold up the Job), with a wide margin for
      // Node's start on a loaded machine; held up, it would wait for a main container forever.
      expect(Date.now() - started).to.be.below(20_000);
      const records = s.lines.map((l) => JSON.parse(l) as { level: string; setting?: string });
      expect(records.filter((r) => r.level === 'error').map((r) => r.setting)).to.deep.equal(['JOBMETRICS_INTERVAL']);
    });
  });

  describe('Dockerfile.webhook', () => {
    let img: Image;
    let api: Server;
    let kubeconfig: string;
    const apiRequests: string[] = [];
    before(async function () {
      img = assemble('webhook', tmp);
      const mb = (dirSize(join(img.app, 'node_modules')) / 1e6).toFixed(1);
      console.log(`      deps stage (npm ci --omit=dev) took ${(img.installMs / 1000).toFixed(1)} s; node_modules ${mb} MB`);
      if (img.installMs > SLOW_INSTALL_MS) console.log(`      that is slow: a cold npm cache or a slow registry (above ${SLOW_INSTALL_MS / 1000} s)`);
      // A fake API server: the version probe only (mode auto then picks native on 1.31).
      api = createServer((req, res) => {
        apiRequests.push(`${req.method} ${req.url}`);
        if (req.url === '/version' || req.url === '/version/') {
          res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ major: '1', minor: '31', gitVersion: 'v1.31.4', platform: 'linux/amd64' }));
        } else {
          res.writeHead(404, { 'content-type': 'application/json' }).end(JSON.stringify({ kind: 'Status', apiVersion: 'v1', status: 'Failure', reason: 'NotFound', code: 404 }));
        }
      });
      await new Promise<void>((r) => api.listen(0, '127.0.0.1', r));
      kubeconfig = join(tmp, 'kubeconfig');
      writeFileSync(
        kubeconfig,
        [
          'apiVersion: v1',
          'kind: Config',
          `clusters: [{name: fake, cluster: {server: "http://127.0.0.1:${(api.address() as AddressInfo).port}", insecure-skip-tls-verify: true}}]`,
          'users: [{name: u, user: {token: test-token}}]',
          'contexts: [{name: c, context: {cluster: fake, user: u}}]',
          'current-context: c',
        ].join('\n'),
      );
    });
    after(() => api?.close());

    it('holds every production dependency and no package the lockfile marks dev-only', () => {
      const pkg = JSON.parse(readFileSync(join(PROJECT_ROOT, 'package.json'), 'utf8')) as { dependencies: Record<string, string> };
      const lock = JSON.parse(readFileSync(join(PROJECT_ROOT, 'package-lock.json'), 'utf8')) as { packages: Record<string, { dev?: boolean }> };
      const installed = packagesIn(join(img.app, 'node_modules'));
      expect(installed).to.include.members(Object.keys(pkg.dependencies));
      expect(installed.filter((p) => lock.packages[`node_modules/${p}`]?.dev === true)).to.deep.equal([]);
      expect(installed.filter((p) => p === 'snappy' || p.startsWith('@napi-rs/')), 'no native addon').to.deep.equal([]);
      // The webhook's image carries the gateway and the recorder too (their Deployments run them by command).
      expect(readdirSync(join(img.app, 'dist')).sort()).to.deep.equal(['gateway', 'recorder', 'shared', 'webhook']);
    });

    it('loads every module, also those it imports only when needed (API client, certificates)', () => {
      const r = loadEveryModule(img, "await import('@kubernetes/client-node'); await import('node-forge'); console.log('loaded');");
      expect(r.status, r.out).to.equal(0);
      expect(r.out.trim()).to.equal('loaded');
    });

    it('the gateway, by the command of its Deployment (manifests/aggregator/gateway.yaml): listens, is ready, and exits 0 on SIGTERM', async () => {
      const deployment = parseAllDocuments(readFileSync(join(PROJECT_ROOT, 'manifests/aggregator/gateway.yaml'), 'utf8'))
        .map((d) => d.toJS() as { kind: string; spec: { template: { spec: { containers: Array<{ command: string[] }> } } } })
        .find((d) => d.kind === 'Deployment')!;
      const command = deployment.spec.template.spec.containers[0]!.command;
      expect(command).to.deep.equal(['/nodejs/bin/node', '/app/dist/gateway/main.js']);
      const gw = startEntrypoint(img, { JOBMETRICS_LISTEN: '127.0.0.1:0', JOBMETRICS_AGGREGATOR_URL: 'http://127.0.0.1:9/api/v1/write', JOBMETRICS_WRITER_AUTH: 'none' }, command);
      try {
        const url = (await logLine(gw, 'gateway', (rec) => rec['msg'] === 'gateway listening' && typeof rec['url'] === 'string'))['url'] as string;
        expect((await fetch(`${url}/readyz`)).status).to.equal(200);
        gw.proc.kill('SIGTERM');
        expect(await gw.exited).to.equal(0);
      } finally {
        gw.proc.kill('SIGKILL');
      }
    });

    it('the recorder, by the command of its Deployment (manifests/base/recorder.yaml): refuses to start without a way to the API server, naming KUBECONFIG; with one, serves /healthz and exits 0 on SIGTERM', async () => {
      const deployment = parseAllDocuments(readFileSync(join(PROJECT_ROOT, 'manifests/base/recorder.yaml'), 'utf8'))
        .map((d) => d.toJS() as { kind: string; spec: { template: { spec: { containers: Array<{ command: string[] }> } } } })
        .find((d) => d.kind === 'Deployment')!;
      const command = deployment.spec.template.spec.containers[0]!.command;
      expect(command).to.deep.equal(['/nodejs/bin/node', '/app/dist/recorder/main.js']);
      const lost = startEntrypoint(img, { JOBMETRICS_LISTEN: '127.0.0.1:0' }, command);
      try {
        expect(await lost.exited).to.equal(2);
        expect(lost.lines.join('\n')).to.match(/"msg":"invalid setting KUBECONFIG: is not set, and this is not a pod of a cluster/);
      } finally {
        lost.proc.kill('SIGKILL');
      }
      const rec = startEntrypoint(img, { JOBMETRICS_LISTEN: '127.0.0.1:0', KUBECONFIG: kubeconfig, JOBMETRICS_REMOTE_WRITE_URL: 'http://127.0.0.1:9/api/v1/write' }, command);
      try {
        const url = (await logLine(rec, 'recorder', (r) => r['msg'] === 'recorder started' && typeof r['url'] === 'string'))['url'] as string;
        expect((await fetch(`${url.replace('0.0.0.0', '127.0.0.1')}/healthz`)).status).to.equal(200);
        rec.proc.kill('SIGTERM');
        expect(await rec.exited).to.equal(0);
      } finally {
        rec.proc.kill('SIGKILL');
      }
    });

    it('the ENTRYPOINT serves over TLS from a certificate directory, asks the API server for its version, injects, and stops on SIGTERM', async () => {
      const ca = generateCa({ commonName: 'image-test-ca', now: new Date(), validityDays: 1 });
      const serving = issueServingCert(ca, { dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'], now: new Date(), validityDays: 1 });
      const tlsDir = join(tmp, 'tls');
      mkdirSync(tlsDir);
      writeFileSync(join(tlsDir, 'tls.crt'), serving.certPem);
      writeFileSync(join(tlsDir, 'tls.key'), serving.keyPem);
      const wh = startEntrypoint(img, { JOBMETRICS_LISTEN: '127.0.0.1:0', JOBMETRICS_TLS_DIR: tlsDir, KUBECONFIG: kubeconfig, JOBMETRICS_WORKLOAD_LOOKUP: 'false' });
      try {
        const listening = await logLine(wh, 'webhook', (rec) => rec['msg'] === 'listening' && typeof rec['address'] === 'string');
        const port = Number(String(listening['address']).split(':').at(-1));
        const get = (path: string, body?: string): Promise<{ status: number; body: string }> =>
          new Promise((resolve, reject) => {
            const req = request(
              { host: '127.0.0.1', port, path, method: body === undefined ? 'GET' : 'POST', ca: ca.certPem, servername: 'localhost', agent: false, headers: { 'content-type': 'application/json' } },
              (res) => {
                let text = '';
                res.on('data', (c: Buffer) => (text += c.toString('utf8')));
                res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
              },
            );
            req.on('error', reject);
            req.end(body);
          });
        expect(await get('/healthz')).to.deep.equal({ status: 200, body: 'ok\n' });
        expect(await get('/readyz')).to.deep.equal({ status: 200, body: 'ready\n' });
        expect(wh.lines.join('\n')).to.match(/"msg":"sidecar mode chosen","mode":"native".*v1\.31\.4/);
        expect(apiRequests).to.include('GET /version');

        const pod = {
          apiVersion: 'v1',
          kind: 'Pod',
          metadata: { generateName: 'report-', namespace: 'batch', labels: { 'batch.kubernetes.io/job-name': 'report', 'job-name': 'report' }, ownerReferences: [{ apiVersion: 'batch/v1', kind: 'Job', name: 'report', uid: 'u1', controller: true }] },
          spec: { restartPolicy: 'Never', containers: [{ name: 'main', image: 'busybox', ports: [{ name: 'metrics', containerPort: 9100 }] }] },
        };
        const review = JSON.stringify({
          apiVersion: 'admission.k8s.io/v1',
          kind: 'AdmissionReview',
          request: { uid: 'image-test', kind: { group: '', version: 'v1', kind: 'Pod' }, resource: { group: '', version: 'v1', resource: 'pods' }, namespace: 'batch', operation: 'CREATE', object: pod },
        });
        const answer = await get('/mutate', review);
        expect(answer.status).to.equal(200);
        const response = (JSON.parse(answer.body) as { response: { uid: string; allowed: boolean; patch: string } }).response;
        expect([response.uid, response.allowed]).to.deep.equal(['image-test', true]);
        const patch = JSON.parse(Buffer.from(response.patch, 'base64').toString('utf8')) as Operation[];
        const out = jsonPatch.applyPatch(structuredClone(pod), patch, true, false).newDocument as unknown as { spec: { initContainers: { name: string; image: string }[] } };
        expect(out.spec.initContainers.map((c) => [c.name, c.image])).to.deep.equal([['jobmetrics-sidecar', 'ghcr.io/jobmetrics/jobmetrics-sidecar:0.1.0']]);

        const metrics = await get('/metrics');
        expect(metrics.status).to.equal(200);
        expect(metrics.body).to.match(/^jobmetrics_webhook_injections_total\{mode="native",workload_source="[a-z-]+"\} 1$/m);
      } finally {
        wh.proc.kill('SIGTERM');
      }
      expect(await wh.exited).to.equal(0);
    });
  });
});
