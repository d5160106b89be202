import { expect } from 'chai';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import snappy from 'snappyjs';
import { createLogger, silentLogger } from '../../../shared/log.ts';
import { parseSidecarConfig, type SidecarConfig } from '../../../sidecar/config.ts';
import { awaitRestart, deliver, mayHaveArrived, runSidecar, start } from '../../../sidecar/sidecar.ts';
import { loadState } from '../../../sidecar/state.ts';
import { decodeWriteRequest, type DecodedTimeSeries } from '../../support/write-request.ts';

describe('mayHaveArrived: which failed deliveries may still have been counted', () => {
  const err = (message: string, code?: string): Error => {
    const cause = Object.assign(new Error(message), code ? { code } : {});
    return new Error(`remote write POST x: ${message}`, { cause });
  };
  const cases: Array<[string, Parameters<typeof mayHaveArrived>[0], boolean]> = [
    ['HTTP 503 (answered: not stored)', { ok: false, retryable: true, status: 503, error: err('503') }, false],
    ['HTTP 400', { ok: false, retryable: false, status: 400, error: err('400') }, false],
    ['connection refused', { ok: false, retryable: true, error: err('connect ECONNREFUSED', 'ECONNREFUSED') }, false],
    ['DNS failure', { ok: false, retryable: true, error: err('getaddrinfo ENOTFOUND', 'ENOTFOUND') }, false],
    ['deadline before any attempt', { ok: false, retryable: true, error: new Error('remote write POST x: deadline passed before attempt 1') }, false],
    ['timeout after sending', { ok: false, retryable: true, error: err('no complete response within 998 ms') }, true],
    ['connection reset', { ok: false, retryable: true, error: err('socket hang up', 'ECONNRESET') }, true],
  ];
  for (const [name, outcome, want] of cases) {
    it(`${name}: ${want}`, () => {
      expect(mayHaveArrived(outcome)).to.equal(want);
    });
  }
});

describe('the sidecar’s steps (sidecar.ts), against a real local receiver and a fixture /proc tree', () => {
  let dir: string;
  let procRoot: string;
  let receiver: Server;
  let status = 204;
  const received: DecodedTimeSeries[][] = [];
  const terminate = new AbortController();

  const config = (extra: Partial<SidecarConfig> = {}): SidecarConfig => {
    const r = parseSidecarConfig({
      JOBMETRICS_SCRAPE_URL: 'http://127.0.0.1:1/metrics',
      JOBMETRICS_REMOTE_WRITE_URL: `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/api/v1/write`,
      JOBMETRICS_NAMESPACE: 'ns',
      JOBMETRICS_JOB: 'import',
      JOBMETRICS_POD: 'import-x7',
      JOBMETRICS_MODE: 'native',
      JOBMETRICS_FLUSH_TIMEOUT: '1s',
      JOBMETRICS_EXIT_POLL: '10ms',
      JOBMETRICS_PROC_ROOT: procRoot,
      JOBMETRICS_STATE_DIR: dir,
    });
    if (!r.ok) throw new Error(JSON.stringify(r.errors));
    return { ...r.config, ...extra };
  };
  const proc = (pid: number, ppid: number) => {
    mkdirSync(join(procRoot, String(pid)), { recursive: true });
    writeFileSync(join(procRoot, String(pid), 'stat'), `${pid} (p${pid}) S ${ppid} 0 0 0`);
    writeFileSync(join(procRoot, String(pid), 'cgroup'), '0::/\n');
  };
  const items = (value: number) => [{ name: 'items', type: 'counter' as const, samples: [{ name: 'items_total', labels: [] as Array<[string, string]>, value }] }];
  const env = () => ({ log: silentLogger, selfPid: 3, terminate: terminate.signal });

  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), 'sidecar-steps-'));
    procRoot = mkdtempSync(join(tmpdir(), 'sidecar-steps-proc-'));
    received.length = 0;
    status = 204;
    receiver = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        if (status < 300) received.push(decodeWriteRequest(snappy.uncompress(Buffer.concat(chunks))));
        res.writeHead(status).end();
      });
    });
    await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', r));
  });
  afterEach(() => {
    receiver.close();
    rmSync(dir, { recursive: true, force: true });
    rmSync(procRoot, { recursive: true, force: true });
  });

  it('deliver keeps the state only once the aggregator acknowledged; start goes on from it', async () => {
    const run = start(config(), env());
    run.store.update(items(7), 1_000);
    status = 400;
    const failed = await deliver(run, Date.now() + 1_000);
    expect(failed.outcome.ok).to.equal(false);
    expect(loadState(dir, 'import-x7'), 'an HTTP error status proves nothing arrived: nothing to keep').to.deep.equal({ found: false });
    status = 204;
    expect((await deliver(run, Date.now() + 1_000)).outcome.ok).to.equal(true);
    const kept = loadState(dir, 'import-x7');
    expect(kept.found && kept.ok && kept.snapshot.series.map((s) => s.acked)).to.deep.equal([{ value: 7, timestampMs: 1_000 }]);

    // The restarted sidecar: no explicit 0 any more, the acknowledged 7 first, then the new value.
    const again = start(config(), env());
    expect(again.store.hasUnstartedCounters).to.equal(false);
    again.store.update(items(9), 2_000);
    await deliver(again, Date.now() + 1_000);
    expect(received.at(-1)?.[0]?.samples).to.deep.equal([
      { value: 7, timestampMs: 1_000 },
      { value: 9, timestampMs: 2_000 },
    ]);
  });

  it('deliver counts what the termination message reports: acknowledged, failed after its retries (and those retries), superseded by the final flush (neither)', async () => {
    const run = start(config({ stateDir: undefined }), env());
    run.store.update(items(7), 1_000);
    status = 503;
    expect((await deliver(run, Date.now() + 5_000, undefined, false, { maxAttempts: 3, random: () => 0 })).outcome.ok).to.equal(false);
    status = 204;
    expect((await deliver(run, Date.now() + 1_000)).outcome.ok).to.equal(true);
    const finalFlushTookOver = new AbortController();
    finalFlushTookOver.abort();
    expect((await deliver(run, Date.now() + 1_000, finalFlushTookOver.signal)).outcome.ok).to.equal(false);
    expect(run.stats).to.include({ pushes: 3, deliveriesOk: 1, deliveryFailures: 1, retries: 2 });
  });

  it('awaitRestart: undefined on SIGTERM; else the new main container’s watch, its counters folded in', async () => {
    proc(1, 0);
    proc(3, 1); // us
    const run = start(config(), env());
    run.store.update(items(5), 1_000);
    const waiting = awaitRestart(run);
    await new Promise((r) => setTimeout(r, 50));
    proc(40, 0); // the kubelet started the main container again
    const watch = await waiting;
    expect(watch, 'a watch of the new main container').to.not.equal(undefined);
    expect(run.attempt).to.equal(2);
    run.store.update(items(2), 2_000);
    expect(run.store.plan().series[0]?.samples.at(-1)?.value, 'the new process counts on from 5').to.equal(7);
    watch?.abort();

    const idleRun = start(config(), env());
    const stopped = awaitRestart(idleRun);
    rmSync(join(procRoot, '40'), { recursive: true });
    terminate.abort();
    expect(await stopped).to.equal(undefined);
    expect(idleRun.attempt, 'no new attempt').to.equal(1);
  });

  it('a whole run reports the pod’s final values: the "final values" log line and the termination-message file', async () => {
    // A target that counts 7 items per scrape, until the main container's exit; the final flush
    // scrapes it once more. What it served last is what the pod counted.
    let served = 0;
    const target = createServer((_req, res) => {
      served += 7;
      res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4' });
      res.end(`# TYPE items counter\nitems_total{queue="é"} ${served}\n# TYPE temp gauge\ntemp 21.5\n# TYPE up gauge\nup +Inf\n`);
    });
    await new Promise<void>((r) => target.listen(0, '127.0.0.1', r));
    const lines: string[] = [];
    const log = createLogger({ component: 'jobmetrics-sidecar', sink: (l) => lines.push(l) });
    const messagePath = join(dir, 'termination-log');
    proc(1, 0);
    proc(3, 1); // us
    proc(40, 0); // the main container
    try {
      const cfg = config({
        mode: 'legacy',
        scrapeUrl: new URL(`http://127.0.0.1:${(target.address() as AddressInfo).port}/metrics`),
        intervalMs: 100,
        fastIntervalMs: 100,
        terminationMessagePath: messagePath,
      });
      const running = runSidecar(cfg, { log, selfPid: 3, terminate: new AbortController().signal });
      const deadline = Date.now() + 10_000;
      while (served < 21 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      rmSync(join(procRoot, '40'), { recursive: true }); // the main container exits
      const summary = await running;
      expect(summary.finalDelivered).to.equal(true);

      const final = lines.map((l) => JSON.parse(l) as Record<string, unknown>).filter((l) => l['msg'] === 'final values');
      expect(final).to.have.length(1);
      expect(final[0]).to.deep.include({ level: 'info', namespace: 'ns', job: 'import', pod: 'import-x7', trigger: 'main-exited', attempt: 1, delivered: true, series: 3 });
      expect(final[0]?.['values']).to.deep.equal({ 'items_total{queue="é"}': served, temp: 21.5, up: '+Inf' });
      expect(final[0]).to.not.have.property('truncated');
      expect(lines.findIndex((l) => l.includes('"msg":"final values"')), 'right after the summary').to.equal(lines.findIndex((l) => l.includes('"msg":"summary"')) + 1);
      // What the aggregator was sent last is the same number.
      const lastItems = received.flat().filter((s) => s.labels.some(([n, v]) => n === '__name__' && v === 'items_total')).at(-1);
      expect(lastItems?.samples.at(-1)?.value).to.equal(served);

      expect(readFileSync(messagePath, 'utf8')).to.equal(
        // Every request the aggregator took was a delivery: the zeros of the new counter, the final flush.
        [`jobmetrics final values: trigger=main-exited attempt=1 delivered=true series=3 deliveries_ok=${received.length} deliveries_failed=0 retries=0`, `items_total{queue="é"} ${served}`, 'temp 21.5', 'up +Inf'].join('\n'),
      );
    } finally {
      target.close();
    }
  });

  /**
   * A native sidecar through two runs of the main container in its pod (restartPolicy OnFailure),
   * then SIGTERM; the target counts 5 per scrape, from 0 again in the second run.
   */
  async function twoAttempts(terminationMessagePath: string): Promise<{ lines: Array<Record<string, unknown>>; counted: number }> {
    let served = 0;
    let counted = 0;
    const target = createServer((_req, res) => {
      served += 5;
      res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4' }).end(`# TYPE items counter\nitems_total ${served}\n`);
    });
    await new Promise<void>((r) => target.listen(0, '127.0.0.1', r));
    const lines: Array<Record<string, unknown>> = [];
    const log = createLogger({ component: 'jobmetrics-sidecar', sink: (l) => lines.push(JSON.parse(l) as Record<string, unknown>) });
    const until = async (what: () => boolean): Promise<void> => {
      const deadline = Date.now() + 10_000;
      while (!what()) {
        if (Date.now() > deadline) throw new Error(`not within 10 s: ${what.toString()}`);
        await new Promise((r) => setTimeout(r, 20));
      }
    };
    const sigterm = new AbortController();
    proc(1, 0);
    proc(3, 1);
    try {
      const cfg = config({ scrapeUrl: new URL(`http://127.0.0.1:${(target.address() as AddressInfo).port}/metrics`), intervalMs: 100, fastIntervalMs: 100, stateDir: undefined, terminationMessagePath });
      const running = runSidecar(cfg, { log, selfPid: 3, terminate: sigterm.signal });
      for (const pid of [40, 41]) {
        const flushes = lines.filter((l) => l['msg'] === 'final values').length;
        served = 0; // a new run of the main container counts from 0
        proc(pid, 0);
        await until(() => served >= 15);
        rmSync(join(procRoot, String(pid)), { recursive: true });
        await until(() => lines.filter((l) => l['msg'] === 'final values').length > flushes);
        counted += served;
      }
      sigterm.abort();
      await running;
      return { lines, counted };
    } finally {
      target.close();
    }
  }

  it('native mode, the main container restarted in the pod: each attempt’s flush reports, and the termination message is overwritten with the latest', async () => {
    const messagePath = join(dir, 'termination-log');
    const { lines, counted } = await twoAttempts(messagePath);
    const final = lines.filter((l) => l['msg'] === 'final values');
    expect(final.map((l) => l['attempt'])).to.deep.equal([1, 2]);
    expect(final[1]?.['values'], 'the counters of both attempts').to.deep.equal({ items_total: counted });
    // The counts of the sidecar's whole life, both attempts: every request the aggregator took.
    expect(readFileSync(messagePath, 'utf8')).to.equal(`jobmetrics final values: trigger=main-exited attempt=2 delivered=true series=1 deliveries_ok=${received.length} deliveries_failed=0 retries=0\nitems_total ${counted}`);
  });

  it('a termination message that cannot be written is logged once at warn, and fails nothing', async () => {
    // No such folder: every write fails.
    const messagePath = join(dir, 'missing', 'termination-log');
    const { lines } = await twoAttempts(messagePath);
    expect(lines.filter((l) => l['msg'] === 'final values')).to.have.length(2);
    const warnings = lines.filter((l) => l['msg'] === 'cannot write the termination message');
    expect(warnings).to.have.length(1);
    expect(warnings[0]).to.deep.include({ level: 'warn', path: messagePath });
    expect(lines.filter((l) => l['level'] === 'error')).to.deep.equal([]);
  });
});
