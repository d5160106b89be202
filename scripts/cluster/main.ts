/**
 * `npm run cluster -- <command>`: the local cluster for people (the tests start the same one).
 *
 *   up                  build what is missing, start the cluster, install jobmetrics, print
 *                       `export KUBECONFIG=…` and the Prometheus URL, return with it running
 *   image <dir> <name>  build the Dockerfile in <dir> (the stand-in bases are available to its
 *                       FROM) and load the image into the node
 *   down                stop the cluster and remove everything it left
 *   status              say whether it runs, and where
 */
import { spawn, spawnSync } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, rmSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { NETWORK } from './cluster.ts';
import { ROOT } from './paths.ts';
import { buildImage, ensureImages } from './images.ts';
import { cleanupNode } from './node.ts';
import { controlPlaneBinaries } from './control-plane.ts';
import { clusterDir, readReady, runningSupervisor, supervisorFiles } from './state.ts';
import { runCommand } from './host.ts';

const USAGE = `usage: npm run cluster -- up | down | status | image <dir> <name>`;

function die(message: string): never {
  console.error(`cluster: ${message}`);
  process.exit(1);
}

function say(line: string): void {
  console.log(`cluster: ${line}`);
}

function printReady(dir: string): void {
  const ready = readReady(dir);
  if (!ready) die(`no ready.json in ${dir}`);
  console.log(`\nThe cluster is running (supervisor pid ${ready.pid}, state in ${dir}).`);
  console.log(`  export KUBECONFIG=${ready.kubeconfig}`);
  console.log(`  Prometheus: ${ready.prometheusUrl}, with the aggregator's credentials (Secret jobmetrics/jobmetrics-aggregator-credentials), e.g.`);
  console.log(`    curl -H '${`Authorization: ${ready.prometheusAuthorization}`}' '${ready.prometheusUrl}/api/v1/query?query=up{namespace="jobmetrics"}'`);
  console.log('    (every part of jobmetrics, scraped by the store; a Job\'s numbers are there too once one ran in a labelled namespace)');
  if (ready.registry !== undefined) {
    console.log(`  Image registry (plain HTTP, the node pulls jobmetrics' two images from it): ${ready.registry}, e.g.`);
    console.log(`    npm run images -- push --registry ${ready.registry}/jobmetrics --engine buildah --stand-in-bases --tls-verify=false`);
  }
  console.log(`Stop it with: npm run cluster -- down`);
}

function requireRoot(): void {
  if (process.getuid?.() !== 0) die('needs root (containerd, the kubelet, a bridge and iptables rules)');
}

/** Runs a project install script with its own progress lines; dies with its name on failure. */
function installStep(script: string): void {
  const r = spawnSync('bash', [join(ROOT, 'scripts', script)], { stdio: 'inherit' });
  if (r.status !== 0) die(`scripts/${script} failed (exit ${r.status ?? r.signal}); see its output above`);
}

async function up(dir: string): Promise<void> {
  requireRoot();
  if (runningSupervisor(dir) !== undefined && readReady(dir)) {
    say('already running');
    printReady(dir);
    return;
  }
  installStep('preflight');
  installStep('install-control-plane');
  installStep('install-aggregator');
  ensureImages();
  mkdirSync(dir, { recursive: true });
  const files = supervisorFiles(dir);
  rmSync(files.failed, { force: true });
  rmSync(files.ready, { force: true });
  const log = openSync(files.log, 'a');
  const child = spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'scripts', 'cluster', 'supervise.ts')], {
    detached: true,
    stdio: ['ignore', log, log],
    cwd: ROOT,
    env: { ...process.env, JOBMETRICS_CLUSTER_DIR: dir },
  });
  closeSync(log);
  child.unref();
  say(`starting (supervisor pid ${child.pid}; progress in ${files.log})`);
  let shown = 0;
  for (;;) {
    await new Promise((r) => setTimeout(r, 500));
    // Echo the supervisor's progress lines as they come.
    const text = existsSync(files.log) ? readFileSync(files.log, 'utf8') : '';
    const lines = text.split('\n');
    for (const line of lines.slice(shown, -1)) if (/^\[\d+s\]/.test(line)) say(line);
    shown = Math.max(shown, lines.length - 1);
    if (readReady(dir)) break;
    if (existsSync(files.failed) || (child.exitCode !== null && !readReady(dir))) {
      die(`the cluster did not start:\n${existsSync(files.failed) ? readFileSync(files.failed, 'utf8') : '(supervisor exited)'}\nlog: ${files.log}`);
    }
  }
  printReady(dir);
}

async function down(dir: string): Promise<void> {
  requireRoot();
  const pid = runningSupervisor(dir);
  if (pid !== undefined) {
    say(`stopping (supervisor pid ${pid})`);
    process.kill(pid, 'SIGTERM');
    const deadline = Date.now() + 90_000;
    while (runningSupervisor(dir) !== undefined && Date.now() < deadline) await new Promise((r) => setTimeout(r, 300));
    if (runningSupervisor(dir) !== undefined) {
      say('supervisor still running after 90 s; killing it');
      process.kill(pid, 'SIGKILL');
    }
  }
  // Whatever a killed run left: the same cleanup the tests do before they start.
  let kubeProxy: string | undefined;
  try {
    kubeProxy = controlPlaneBinaries().kubeProxy;
  } catch {
    kubeProxy = undefined;
  }
  const done = cleanupNode(join(dir, 'node'), NETWORK, kubeProxy);
  if (existsSync(dir)) rmSync(dir, { recursive: true, force: true });
  say(done.length > 0 ? `removed: ${done.join(', ')}` : 'nothing left behind');
  say(`down (${dir} removed)`);
}

function status(dir: string): void {
  const pid = runningSupervisor(dir);
  if (pid === undefined) {
    say(`not running (state folder ${dir}${existsSync(dir) ? ' exists: `npm run cluster -- down` removes it' : ' absent'})`);
    return;
  }
  if (!readReady(dir)) {
    say(`starting (supervisor pid ${pid}); progress in ${supervisorFiles(dir).log}`);
    return;
  }
  printReady(dir);
}

async function image(dir: string, contextDir: string | undefined, name: string | undefined): Promise<void> {
  requireRoot();
  if (!contextDir || !name) die(USAGE);
  if (!existsSync(join(resolve(contextDir), 'Dockerfile'))) die(`no Dockerfile in ${resolve(contextDir)}`);
  if (runningSupervisor(dir) === undefined || !readReady(dir)) die('the cluster is not running (npm run cluster -- up)');
  ensureImages();
  const archive = buildImage(resolve(contextDir), name);
  runCommand(['ctr', '--address', join(dir, 'node', 'containerd', 'containerd.sock'), '-n', 'k8s.io', 'images', 'import', '--all-platforms', archive]);
  say(`loaded ${name} into the node (use imagePullPolicy: IfNotPresent or Never)`);
}

const [command, ...rest] = process.argv.slice(2);
const dir = clusterDir({ JOBMETRICS_CLUSTER_DIR: process.env['JOBMETRICS_CLUSTER_DIR'] });
switch (command) {
  case 'up':
    await up(dir);
    break;
  case 'down':
    await down(dir);
    break;
  case 'status':
    status(dir);
    break;
  case 'image':
    await image(dir, rest[0], rest[1]);
    break;
  default:
    die(USAGE);
}
