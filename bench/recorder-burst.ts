/**
 * The outcome recorder under a burst: 1 000 Jobs of 10 pods each, created at once, in a namespace
 * it watches; its CPU and memory next to those of the API server, etcd and the
 * kube-controller-manager for the same load.
 *
 * A real control plane (etcd, kube-apiserver and kube-controller-manager from
 * scripts/cluster/control-plane.ts) without a node: the Job controller creates the pods and they
 * are never scheduled. This process stands in for the kubelet: it watches the namespace's pods
 * and writes each new pod's status through the pods/status subresource (phase Succeeded, the
 * container terminated with exit code 0), which is all the Job controller reads to count a
 * completion, so the Jobs complete as on a real cluster. The recorder is the built
 * `dist/recorder/main.js` in a child process of its own, with the admin kubeconfig, delivering to
 * a remote-write receiver in this process that answers 204 and decodes every request to count
 * the events by their `pod` label (an event's identity: run/<job uid>, attempt/<pod uid>/<n>,
 * unmeasured/<pod uid>).
 *
 * The measurement runs from the first Job created until every Job is Complete and the receiver
 * has every run and attempt event, then over a settle period. CPU is utime+stime from
 * /proc/<pid>/stat, RSS is VmRSS from /proc/<pid>/status sampled every second.
 *
 *   node --import tsx bench/recorder-burst.ts [--jobs N] [--pods N] [--settle S]
 *   npm run bench -- recorder-burst
 *   import { run } from './recorder-burst.ts'    the same text (for bench/run.ts)
 */
import { readdirSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import { Agent, request } from 'node:https';
import { tmpdir } from 'node:os';
import { basename, join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { startChild, stopChild, type Child } from '../scripts/child-processes.ts';
import { createNamespace, startControlPlane, type ControlPlane } from '../scripts/cluster/control-plane.ts';
import { decodeCompressedWriteRequest } from '../gateway/write-request.ts';
import { ensureBuilt } from '../test/support/build.ts';
import { wholeFlag } from './cli.ts';
import { cpuTicks, rssKb, ticksPerSecond } from './sidecar.ts';

const ROOT = resolve(fileURLToPath(import.meta.url), '..', '..');
const RECORDER = join(ROOT, 'dist', 'recorder', 'main.js');
const NAMESPACE = 'burst';

export interface RecorderBurstOptions {
  /** Jobs created in the burst; default 1 000. */
  readonly jobs?: number;
  /** Pods per Job (completions = parallelism); default 10. */
  readonly pods?: number;
  /** Job create requests in flight; default 50. */
  readonly concurrency?: number;
  /** Measured after everything is delivered, to see what the recorder costs once the burst is over; default 30 s. */
  readonly settleMs?: number;
  /** Give up after this long from the first Job created; default 60 min. */
  readonly timeoutMs?: number;
  readonly progress?: (line: string) => void;
}

// ---------------------------------------------------------------------------------------------
// The API server, through its REST API with the admin token

interface Reply {
  readonly status: number;
  readonly text: string;
}

export function call(cp: ControlPlane, agent: Agent, method: string, path: string, body?: unknown, contentType = 'application/json'): Promise<Reply> {
  const url = new URL(path, cp.serverUrl);
  return new Promise((resolveCall, reject) => {
    const req = request(
      url,
      { method, agent, ca: cp.caPem, headers: { authorization: `Bearer ${cp.adminToken}`, ...(body !== undefined ? { 'content-type': contentType } : {}) }, timeout: 120_000 },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolveCall({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }));
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error(`${method} ${url.href} timed out`)));
    req.on('error', reject);
    req.end(body === undefined ? undefined : JSON.stringify(body));
  });
}

/** `call` again after a transport error or a 429/5xx (the API server sheds load under a burst). */
export async function callOk(cp: ControlPlane, agent: Agent, method: string, path: string, body: unknown, ok: (status: number) => boolean, contentType?: string): Promise<Reply> {
  let last = '';
  for (let attempt = 0; attempt < 10; attempt++) {
    const r = await call(cp, agent, method, path, body, contentType).catch((e: unknown) => ({ status: 0, text: String(e) }));
    if (ok(r.status)) return r;
    last = `${r.status} ${r.text.slice(0, 300)}`;
    if (r.status !== 0 && r.status !== 429 && r.status < 500) break;
    await sleep(200 * 2 ** Math.min(attempt, 5));
  }
  throw new Error(`${method} ${path}: ${last}`);
}

interface KObject {
  metadata?: { name?: string; uid?: string; resourceVersion?: string };
  status?: { phase?: string; conditions?: Array<{ type?: string; status?: string }> };
}

/**
 * A list, then a watch from its resourceVersion, restarted where it ended (and re-listed on 410
 * Gone) until stopped: what a kubelet or a controller does, so the load on the API server is the
 * usual kind. `onObject` sees every object as listed, added and modified.
 */
function watchAll(cp: ControlPlane, path: string, onObject: (o: KObject, type: string) => void): { stop(): void } {
  let stopped = false;
  let current: ReturnType<typeof request> | undefined;
  const agent = new Agent({ keepAlive: false });
  const loop = async (): Promise<void> => {
    let rv: string | undefined;
    while (!stopped) {
      if (rv === undefined) {
        const r = await call(cp, agent, 'GET', path).catch((e: unknown) => ({ status: 0, text: String(e) }));
        if (r.status !== 200) {
          await sleep(1_000);
          continue;
        }
        const list = JSON.parse(r.text) as { metadata?: { resourceVersion?: string }; items?: KObject[] };
        for (const o of list.items ?? []) onObject(o, 'LISTED');
        rv = list.metadata?.resourceVersion;
      }
      const url = new URL(`${path}?watch=true&allowWatchBookmarks=true&timeoutSeconds=300&resourceVersion=${rv ?? ''}`, cp.serverUrl);
      const gone = await new Promise<boolean>((done) => {
        const req = request(url, { method: 'GET', agent, ca: cp.caPem, headers: { authorization: `Bearer ${cp.adminToken}` } }, (res) => {
          let buf = '';
          let isGone = res.statusCode !== 200;
          res.setEncoding('utf8');
          res.on('data', (chunk: string) => {
            buf += chunk;
            for (let nl = buf.indexOf('\n'); nl >= 0; nl = buf.indexOf('\n')) {
              const line = buf.slice(0, nl);
              buf = buf.slice(nl + 1);
              if (line.trim() === '') continue;
              const ev = JSON.parse(line) as { type: string; object: KObject & { code?: number } };
              if (ev.type === 'ERROR') {
                isGone = true;
                continue;
              }
              const v = ev.object.metadata?.resourceVersion;
              if (v !== undefined) rv = v;
              if (ev.type !== 'BOOKMARK') onObject(ev.object, ev.type);
            }
          });
          res.on('end', () => done(isGone));
          res.on('error', () => done(false));
        });
        current = req;
        req.on('error', () => done(false));
        req.end();
      });
      if (gone) rv = undefined;
    }
  };
  void loop();
  return {
    stop() {
      stopped = true;
      current?.destroy();
      agent.destroy();
    },
  };
}

function jobManifest(name: string, pods: number): unknown {
  return {
    apiVersion: 'batch/v1',
    kind: 'Job',
    metadata: { name, namespace: NAMESPACE },
    spec: {
      completions: pods,
      parallelism: pods,
      template: { spec: { restartPolicy: 'Never', containers: [{ name: 'main', image: 'registry.invalid/jobmetrics/job:1' }] } },
    },
  };
}

/** What a kubelet writes when the pod's only container has exited 0. */
function succeededStatus(startedAt: Date, finishedAt: Date): unknown {
  const terminated = { exitCode: 0, reason: 'Completed', startedAt: startedAt.toISOString(), finishedAt: finishedAt.toISOString() };
  return {
    status: {
      phase: 'Succeeded',
      startTime: startedAt.toISOString(),
      conditions: [
        { type: 'Initialized', status: 'True', reason: 'PodCompleted', lastTransitionTime: startedAt.toISOString() },
        { type: 'Ready', status: 'False', reason: 'PodCompleted', lastTransitionTime: finishedAt.toISOString() },
        { type: 'ContainersReady', status: 'False', reason: 'PodCompleted', lastTransitionTime: finishedAt.toISOString() },
      ],
      containerStatuses: [
        { name: 'main', image: 'registry.invalid/jobmetrics/job:1', imageID: '', ready: false, started: false, restartCount: 0, state: { terminated } },
      ],
    },
  };
}

// ---------------------------------------------------------------------------------------------
// The remote-write receiver: answers 204 and counts events by kind

interface Receiver {
  readonly url: string;
  readonly server: Server;
  readonly requests: () => number;
  readonly series: () => number;
  readonly bytes: () => number;
  /** Series per metric name. */
  readonly byName: Map<string, number>;
  /** Distinct events per kind (run, attempt, unmeasured), and when each kind's last new one arrived. */
  readonly events: Map<string, Set<string>>;
  readonly lastNewAt: Map<string, number>;
  readonly firstAt: () => number | undefined;
  /** Series of an event seen again (a repeat: harmless at the aggregator, but work). */
  readonly repeats: () => number;
  readonly badRequests: () => number;
}

async function startReceiver(): Promise<Receiver> {
  let requests = 0;
  let series = 0;
  let bytes = 0;
  let repeats = 0;
  let bad = 0;
  let firstAt: number | undefined;
  const byName = new Map<string, number>();
  const events = new Map<string, Set<string>>();
  const lastNewAt = new Map<string, number>();
  // The counter series of each event: one per event, so a second one is a repeat.
  const COUNTERS = new Set(['jobmetrics_job_runs_total', 'jobmetrics_job_attempts_total', 'jobmetrics_pods_unmeasured_total']);
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      let decoded;
      try {
        decoded = decodeCompressedWriteRequest(body, { maxUncompressedBytes: 64 * 2 ** 20 });
      } catch (e) {
        bad++;
        res.writeHead(400).end(String(e));
        return;
      }
      const t = performance.now();
      firstAt ??= t;
      requests++;
      bytes += body.length;
      for (const s of decoded) {
        series++;
        const label = (n: string): string => s.labels.find(([k]) => k === n)?.[1] ?? '';
        const name = label('__name__');
        byName.set(name, (byName.get(name) ?? 0) + 1);
        if (!COUNTERS.has(name)) continue;
        const id = label('pod');
        const kind = id.split('/')[0] ?? '';
        let set = events.get(kind);
        if (!set) events.set(kind, (set = new Set()));
        if (set.has(id)) repeats++;
        else {
          set.add(id);
          lastNewAt.set(kind, t);
        }
      }
      res.writeHead(204).end();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const addr = server.address();
  if (typeof addr !== 'object' || addr === null) throw new Error('receiver: no address');
  return {
    url: `http://127.0.0.1:${addr.port}/api/v1/write`,
    server,
    requests: () => requests,
    series: () => series,
    bytes: () => bytes,
    byName,
    events,
    lastNewAt,
    firstAt: () => firstAt,
    repeats: () => repeats,
    badRequests: () => bad,
  };
}

// ---------------------------------------------------------------------------------------------
// Processes and their usage

/** The PID of the control plane's `binary` (etcd, kube-apiserver, …): its command line names our folder. */
function findPid(binary: string, dir: string): number {
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const argv = readFileSync(`/proc/${name}/cmdline`, 'utf8').split('\0');
      if (basename(argv[0] ?? '') === binary && argv.some((a) => a.includes(dir))) return Number(name);
    } catch {
      // gone, or not ours to read
    }
  }
  throw new Error(`no ${binary} process of ${dir} in /proc`);
}

interface Tracked {
  readonly name: string;
  readonly pid: number;
  readonly rss: number[];
}

interface Usage {
  readonly name: string;
  readonly cpuBurstS: number;
  readonly burstPercent: number;
  readonly cpuSettlePercent: number;
  readonly rssBeforeKb: number;
  readonly rssMeanKb: number;
  readonly rssPeakKb: number;
  readonly rssAfterKb: number;
}

const mb = (kb: number): string => (kb / 1024).toFixed(0);
const s1 = (ms: number): string => (ms / 1000).toFixed(1);

async function recorderUrl(logPath: string, timeoutMs: number): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const text = readFileSync(logPath, 'utf8');
    const started = /"msg":"recorder started".*?"url":"([^"]+)"/.exec(text) ?? /"url":"([^"]+)".*?"msg":"recorder started"/.exec(text);
    const watching = text.includes('"msg":"watching namespace"') && text.includes(`"namespace":"${NAMESPACE}"`);
    if (started?.[1] && watching) return started[1];
    if (Date.now() > deadline) throw new Error(`the recorder did not start watching namespace ${NAMESPACE} within ${timeoutMs} ms; log ${logPath}:\n${text.slice(-2_000)}`);
    await sleep(200);
  }
}

// ---------------------------------------------------------------------------------------------

export async function run(o: RecorderBurstOptions = {}): Promise<string> {
  const jobs = o.jobs ?? 1_000;
  const podsPerJob = o.pods ?? 10;
  const concurrency = o.concurrency ?? 50;
  const settleMs = o.settleMs ?? 30_000;
  const timeoutMs = o.timeoutMs ?? 60 * 60_000;
  const progress = o.progress ?? ((l: string) => void process.stderr.write(`${l}\n`));
  const totalPods = jobs * podsPerJob;
  const dir = await mkdtemp(join(tmpdir(), 'jobmetrics-recorder-burst-'));
  const [cp] = await Promise.all([startControlPlane({ dir }), Promise.resolve().then(ensureBuilt)]);
  const receiver = await startReceiver();
  const agent = new Agent({ keepAlive: true, maxSockets: concurrency + 20 });
  let recorder: Child | undefined;
  const watches: Array<{ stop(): void }> = [];
  let sampler: ReturnType<typeof setInterval> | undefined;
  let ok = false;
  try {
    await createNamespace(cp, NAMESPACE, { 'jobmetrics.io/inject': 'enabled' });
    const logPath = join(dir, 'recorder.log');
    recorder = startChild('recorder', process.execPath, [RECORDER], logPath, {
      env: { ...process.env, KUBECONFIG: cp.kubeconfigPath, JOBMETRICS_REMOTE_WRITE_URL: receiver.url, JOBMETRICS_LISTEN: '127.0.0.1:0' },
    });
    const metricsUrl = await recorderUrl(logPath, 60_000);
    if (recorder.proc.pid === undefined) throw new Error('the recorder did not start');
    const tracked: Tracked[] = [
      { name: 'recorder', pid: recorder.proc.pid, rss: [] },
      { name: 'kube-apiserver', pid: findPid('kube-apiserver', cp.dir), rss: [] },
      { name: 'etcd', pid: findPid('etcd', cp.dir), rss: [] },
      { name: 'kube-controller-manager', pid: findPid('kube-controller-manager', cp.dir), rss: [] },
    ];
    const rssNow = (): number[] => tracked.map((t) => rssKb(t.pid) ?? NaN);
    // A moment of quiet so the "before" figures are those of a started, idle cluster.
    await sleep(5_000);
    const rssBefore = rssNow();

    // ---- the fake kubelet: every new pod gets a Succeeded status, a few writes in flight ------
    const seenPods = new Set<string>();
    const statusQueue: string[] = [];
    let statusWrites = 0;
    let statusFailures = 0;
    let lastStatusAt = 0;
    let writersBusy = 0;
    const STATUS_WRITERS = 20;
    const pump = (): void => {
      while (writersBusy < STATUS_WRITERS && statusQueue.length > 0) {
        const name = statusQueue.shift() ?? '';
        writersBusy++;
        const finishedAt = new Date();
        const body = succeededStatus(new Date(finishedAt.getTime() - 1_000), finishedAt);
        void callOk(cp, agent, 'PATCH', `/api/v1/namespaces/${NAMESPACE}/pods/${name}/status`, body, (s) => s === 200, 'application/merge-patch+json')
          .then(() => {
            statusWrites++;
            lastStatusAt = performance.now();
          })
          .catch((e: unknown) => {
            statusFailures++;
            if (statusFailures <= 3) progress(`recorder-burst: status write failed: ${String(e)}`);
          })
          .finally(() => {
            writersBusy--;
            pump();
          });
      }
    };
    watches.push(
      watchAll(cp, `/api/v1/namespaces/${NAMESPACE}/pods`, (pod) => {
        const name = pod.metadata?.name;
        const uid = pod.metadata?.uid;
        if (!name || !uid || seenPods.has(uid) || pod.status?.phase === 'Succeeded') return;
        seenPods.add(uid);
        statusQueue.push(name);
        pump();
      }),
    );
    const complete = new Set<string>();
    let lastCompleteAt = 0;
    watches.push(
      watchAll(cp, `/apis/batch/v1/namespaces/${NAMESPACE}/jobs`, (job) => {
        const uid = job.metadata?.uid;
        if (!uid || complete.has(uid)) return;
        if ((job.status?.conditions ?? []).some((c) => c.type === 'Complete' && c.status === 'True')) {
          complete.add(uid);
          lastCompleteAt = performance.now();
        }
      }),
    );

    // ---- the burst ---------------------------------------------------------------------------
    const t0 = performance.now();
    const cpu0 = tracked.map((t) => cpuTicks(t.pid));
    const self0 = process.cpuUsage();
    sampler = setInterval(() => rssNow().forEach((kb, i) => Number.isFinite(kb) && tracked[i]?.rss.push(kb)), 1_000);
    progress(`recorder-burst: creating ${jobs} Jobs of ${podsPerJob} pods (${concurrency} requests in flight)`);
    let next = 0;
    await Promise.all(
      Array.from({ length: concurrency }, async () => {
        for (let i = next++; i < jobs; i = next++) {
          await callOk(cp, agent, 'POST', `/apis/batch/v1/namespaces/${NAMESPACE}/jobs`, jobManifest(`burst-${i}`, podsPerJob), (s) => s === 201);
        }
      }),
    );
    const createdMs = performance.now() - t0;
    progress(`recorder-burst: ${jobs} Jobs created in ${s1(createdMs)} s`);

    const runsOf = (): number => receiver.events.get('run')?.size ?? 0;
    const attemptsOf = (): number => receiver.events.get('attempt')?.size ?? 0;
    let lastReport = 0;
    while (complete.size < jobs || runsOf() < jobs || attemptsOf() < totalPods) {
      const elapsed = performance.now() - t0;
      if (elapsed > timeoutMs) {
        throw new Error(`timed out after ${s1(elapsed)} s: ${seenPods.size} pods seen, ${statusWrites} statuses written, ${complete.size} Jobs Complete, ${runsOf()} run and ${attemptsOf()} attempt events delivered`);
      }
      if (elapsed - lastReport >= 30_000) {
        lastReport = elapsed;
        progress(`recorder-burst: ${s1(elapsed)} s: ${seenPods.size} pods, ${statusWrites} statuses written, ${complete.size} Jobs Complete; delivered ${runsOf()} runs, ${attemptsOf()} attempts`);
      }
      await sleep(100);
    }
    const t1 = performance.now();
    const cpu1 = tracked.map((t) => cpuTicks(t.pid));
    const self1 = process.cpuUsage(self0);
    const burstMs = t1 - t0;
    progress(`recorder-burst: all delivered after ${s1(burstMs)} s; settling ${s1(settleMs)} s`);
    const burstSamples = tracked.map((t) => t.rss.length);

    // ---- the settle period -------------------------------------------------------------------
    await sleep(settleMs);
    const t2 = performance.now();
    const cpu2 = tracked.map((t) => cpuTicks(t.pid));
    clearInterval(sampler);
    sampler = undefined;
    const rssAfter = rssNow();
    const recorderMetrics = await fetch(`${metricsUrl}/metrics`).then((r) => r.text()).catch((e: unknown) => `# ${String(e)}`);

    const hz = ticksPerSecond();
    const usage: Usage[] = tracked.map((t, i) => {
      const [a, b, c] = [cpu0[i], cpu1[i], cpu2[i]];
      if (a === undefined || b === undefined || c === undefined) throw new Error(`${t.name} (pid ${t.pid}) ended during the measurement`);
      const all = t.rss;
      return {
        name: t.name,
        cpuBurstS: (b - a) / hz,
        burstPercent: ((b - a) / hz / (burstMs / 1000)) * 100,
        cpuSettlePercent: ((c - b) / hz / ((t2 - t1) / 1000)) * 100,
        rssBeforeKb: rssBefore[i] ?? NaN,
        rssMeanKb: all.slice(0, burstSamples[i]).reduce((s, v) => s + v, 0) / Math.max(1, burstSamples[i] ?? 0),
        rssPeakKb: Math.max(...all),
        rssAfterKb: rssAfter[i] ?? NaN,
      };
    });
    const selfCpuS = (self1.user + self1.system) / 1e6;

    const lastEventAt = Math.max(receiver.lastNewAt.get('run') ?? 0, receiver.lastNewAt.get('attempt') ?? 0);
    const delivered = runsOf() + attemptsOf();
    const firstAt = receiver.firstAt() ?? t0;
    const rec = usage[0];
    const api = usage[1];
    const metric = (re: RegExp): string => re.exec(recorderMetrics)?.[1] ?? '?';
    const row = (u: Usage): string =>
      `| ${u.name} | ${u.cpuBurstS.toFixed(1)} | ${u.burstPercent.toFixed(1)} % | ${u.cpuSettlePercent.toFixed(2)} % | ${mb(u.rssBeforeKb)} | ${mb(u.rssMeanKb)} | ${mb(u.rssPeakKb)} | ${mb(u.rssAfterKb)} |`;
    ok = true;
    return [
      `${jobs} Jobs × ${podsPerJob} pods (completions = parallelism = ${podsPerJob}) created at once in one opted-in namespace of a real kube-apiserver ${cp.version} (no node: a fake kubelet in the benchmark writes each pod's Succeeded status as soon as the pod appears); one recorder replica (dist/recorder/main.js, shipped settings). ` +
        `Burst = first Job created → every Job Complete and every run and attempt event delivered: ${s1(burstMs)} s. Settle: the ${s1(t2 - t1)} s after it.`,
      '',
      '| process | CPU s (burst) | mean CPU (burst) | CPU (settle) | RSS before MB | RSS mean MB (burst) | RSS peak MB | RSS after settle MB |',
      '| --- | --- | --- | --- | --- | --- | --- | --- |',
      ...usage.map(row),
      `| benchmark (client, fake kubelet, receiver) | ${selfCpuS.toFixed(1)} | ${((selfCpuS / (burstMs / 1000)) * 100).toFixed(1)} % | | | | | |`,
      '',
      `Jobs created in ${s1(createdMs)} s; ${statusWrites} pod statuses written (${statusFailures} failed), the last ${s1(lastStatusAt - t0)} s after the first Job; last Job Complete at ${s1(lastCompleteAt - t0)} s; last event delivered at ${s1(lastEventAt - t0)} s.`,
      `Last status write → last event delivered: ${s1(lastEventAt - lastStatusAt)} s; last Job Complete (seen by a watch) → last event delivered: ${s1(lastEventAt - lastCompleteAt)} s.`,
      `Delivered: ${runsOf()} run + ${attemptsOf()} attempt events (${(delivered / ((lastEventAt - t0) / 1000)).toFixed(0)} events/s over the burst, ${(delivered / Math.max(0.001, (lastEventAt - firstAt) / 1000)).toFixed(0)} events/s from the first delivery), ` +
        `and ${receiver.events.get('unmeasured')?.size ?? 0} unmeasured-pod events (no webhook here, so every pod ran without the sidecar); ` +
        `${receiver.requests()} remote-write requests, ${receiver.series()} series, ${(receiver.bytes() / 2 ** 20).toFixed(1)} MiB compressed; ${receiver.repeats()} repeated counter series; ${receiver.badRequests()} undecodable requests.`,
      `Recorder's own counters: delivered ${metric(/jobmetrics_recorder_events_total\{kind="run",state="delivered"\} (\S+)/)} runs, ${metric(/jobmetrics_recorder_events_total\{kind="attempt",state="delivered"\} (\S+)/)} attempts; ` +
        `delivery failures ${metric(/^jobmetrics_recorder_delivery_failures_total (\S+)/m)}; queued at the end ${metric(/^jobmetrics_recorder_queued_events (\S+)/m)}.`,
      rec && api
        ? `Recorder / kube-apiserver: CPU ${(rec.cpuBurstS / api.cpuBurstS).toFixed(2)}× over the burst, peak RSS ${(rec.rssPeakKb / api.rssPeakKb).toFixed(2)}×; recorder CPU per event ${((rec.cpuBurstS * 1000) / Math.max(1, delivered)).toFixed(2)} ms.`
        : '',
    ].join('\n');
  } finally {
    if (sampler) clearInterval(sampler);
    for (const w of watches) w.stop();
    if (recorder) await stopChild(recorder);
    receiver.server.close();
    receiver.server.closeAllConnections();
    agent.destroy();
    await cp.stop();
    if (ok) await rm(dir, { recursive: true, force: true });
    else progress(`recorder-burst: logs kept in ${dir}`);
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const argv = process.argv.slice(2);
  const num = (flag: string): number | undefined => wholeFlag(argv, flag, 0);
  const jobs = num('--jobs');
  const pods = num('--pods');
  const settle = num('--settle');
  console.log(
    await run({
      ...(jobs !== undefined ? { jobs } : {}),
      ...(pods !== undefined ? { pods } : {}),
      ...(settle !== undefined ? { settleMs: settle * 1000 } : {}),
    }),
  );
  process.exit(0);
}
