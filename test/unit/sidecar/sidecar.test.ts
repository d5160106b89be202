import { expect } from 'chai';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import snappy from 'snappyjs';
import { silentLogger } from '../../../shared/log.ts';
import { parseSidecarConfig, type SidecarConfig } from '../../../sidecar/config.ts';
import { awaitRestart, deliver, mayHaveArrived, scrapeDelayMs, start } from '../../../sidecar/sidecar.ts';
import { loadState } from '../../../sidecar/state.ts';
import { decodeWriteRequest, type DecodedTimeSeries } from '../../support/write-request.ts';

describe('scrapeDelayMs: fast first scrapes, then the interval', () => {
  it('retries every 100 ms until a scrape succeeds, then doubles up to the interval', () => {
    expect([0, 1, 2, 3, 4, 5, 6, 50].map((n) => scrapeDelayMs(n, 1_000))).to.deep.equal([100, 100, 200, 400, 800, 1_000, 1_000, 1_000]);
    expect([0, 1, 2].map((n) => scrapeDelayMs(n, 150))).to.deep.equal([100, 100, 150]);
  });
});

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
});
