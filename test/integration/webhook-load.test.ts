/**
 * The webhook under slow and idle clients: the compiled `jobmetrics-webhook` as the Deployment runs
 * it (dist/, the NODE_OPTIONS of manifests/base/webhook-deployment.yaml, default settings) on real
 * TLS. Memory must stay bounded however many clients hold connections, their timeouts must fire,
 * and the reviews the API server sends must be answered meanwhile (docs/webhook.md "Limits and
 * load shedding").
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect as netConnect } from 'node:net';
import { connect, type TLSSocket } from 'node:tls';
import { expect } from 'chai';
import { deployedNodeOptions } from '../../bench/webhook.ts';
import { ORDINARY_RESERVE_FRACTION } from '../../webhook/body-budget.ts';
import { defaultSettings } from '../../webhook/config.ts';
import { ensureBuilt } from '../support/build.ts';
import { call, killWebhook, podOfJob, review, ROOT, startWebhookWithFreshCerts, type Webhook } from '../support/webhook.ts';

/** The container's memory limit in the Deployment. */
const LIMIT_MIB = 256;
/**
 * What the webhook may reach under the attack: the ~91–94 MiB docs/webhook.md states, with a third
 * of margin for a loaded machine's later garbage collection (and half the container's limit).
 */
const RSS_BOUND_MIB = 130;
const SLOW_CLIENTS = 200;
const DECLARED = 3_000_000;
const SENT_AT_ONCE = 2_900_000;
const defaults = defaultSettings().limits;

function rssMib(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : NaN;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** How a hostile connection ended: an HTTP status, `closed` (no answer), an error code, or `open`. */
interface Ending {
  readonly how: string;
  readonly ms: number;
}

/**
 * One TLS connection that behaves as the caller says once connected, and reports how the server
 * ended it; still open after `giveUpMs`, it reports `open` and goes.
 */
function hostile(port: number, ca: string, giveUpMs: number, behave: (s: TLSSocket) => () => void): Promise<Ending> {
  return new Promise((resolve) => {
    const started = Date.now();
    const socket = connect({ host: '127.0.0.1', port, ca, servername: 'localhost' });
    let received = '';
    let stop = (): void => {};
    let done = false;
    const finish = (how: string): void => {
      if (done) return;
      done = true;
      stop();
      clearTimeout(giveUp);
      socket.destroy();
      resolve({ how, ms: Date.now() - started });
    };
    const giveUp = setTimeout(() => finish('open'), giveUpMs);
    socket.once('secureConnect', () => {
      stop = behave(socket);
    });
    socket.on('data', (d: Buffer) => {
      received += d.toString('latin1');
      const m = /^HTTP\/1\.1 (\d{3})/.exec(received);
      if (m) finish(m[1] ?? '');
    });
    socket.on('close', () => finish('closed'));
    socket.on('error', (e: NodeJS.ErrnoException) => finish(e.code ?? 'error'));
  });
}

/** A TCP connection that sends nothing, not even a TLS ClientHello. */
function silentTcp(port: number, giveUpMs: number): Promise<Ending> {
  return new Promise((resolve) => {
    const started = Date.now();
    const socket = netConnect({ host: '127.0.0.1', port });
    const finish = (how: string): void => {
      clearTimeout(giveUp);
      socket.destroy();
      resolve({ how, ms: Date.now() - started });
    };
    const giveUp = setTimeout(() => finish('open'), giveUpMs);
    socket.on('close', () => finish('closed'));
    socket.on('error', (e: NodeJS.ErrnoException) => finish(e.code ?? 'error'));
  });
}

/** Declares a large body, sends most of it as fast as the server takes it, then a byte a second. */
function slowBody(body: Buffer): (s: TLSSocket) => () => void {
  return (s) => {
    let trickle: NodeJS.Timeout | undefined;
    let stopped = false;
    s.write(`POST /mutate HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: ${DECLARED}\r\n\r\n`);
    void (async () => {
      // In 64 KiB slices that wait for 'drain', so this process holds no copy of its own per client.
      for (let at = 0; at < body.length && !stopped && !s.destroyed; at += 65_536) {
        if (!s.write(body.subarray(at, at + 65_536))) await drainedOrClosed(s);
      }
      if (!stopped) trickle = setInterval(() => s.destroyed || s.write('x'), 1_000);
    })();
    return () => {
      stopped = true;
      clearInterval(trickle);
    };
  };
}

function drainedOrClosed(s: TLSSocket): Promise<void> {
  return new Promise((resolve) => {
    const go = (): void => {
      s.off('drain', go);
      s.off('close', go);
      resolve();
    };
    s.on('drain', go);
    s.on('close', go);
  });
}

describe('webhook under slow and idle clients (compiled, as deployed, real TLS)', function () {
  this.timeout(180_000);
  let dir: string;
  let ca: string;
  let wh: Webhook;

  before(async () => {
    ensureBuilt();
    dir = mkdtempSync(join(tmpdir(), 'jobmetrics-webhook-load-'));
    const nodeOptions = deployedNodeOptions();
    expect(nodeOptions, 'the Deployment fixes the V8 heap').to.contain('--max-old-space-size');
    ({ wh, ca } = await startWebhookWithFreshCerts(dir, 'load-ca', { NODE_OPTIONS: nodeOptions, NODE_ENV: 'production' }, [join(ROOT, 'dist/webhook/main.js')]));
  });

  after(() => {
    killWebhook(wh);
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it(`${SLOW_CLIENTS} slow clients with ${DECLARED}-byte bodies: RSS stays under ${RSS_BOUND_MIB} MiB (limit ${LIMIT_MIB}Mi), each is shed or timed out, and every review is answered meanwhile`, async () => {
    const pid = wh.proc.pid ?? 0;
    const idle = rssMib(pid);
    let peak = idle;
    const sampler = setInterval(() => (peak = Math.max(peak, rssMib(pid))), 50);

    // Normal reviews, one after another, for as long as the slow clients are there.
    let attacking = true;
    const reviews: { uid: string; status: number; echoed: string }[] = [];
    const pod = podOfJob('plain-job');
    const normal = (async () => {
      for (let i = 0; attacking; i++) {
        const uid = `normal-${i}`;
        try {
          const a = await call(wh.port, ca, 'POST', '/mutate', review(pod, {}, uid));
          reviews.push({ uid, status: a.status, echoed: a.json().response.uid });
        } catch (e) {
          reviews.push({ uid, status: 0, echoed: String(e) });
        }
        await sleep(20);
      }
    })();

    const body = Buffer.alloc(SENT_AT_ONCE, 'x');
    // requestTimeout is the feature under test: each must be over by then, with a wide margin.
    const giveUpMs = defaults.requestTimeoutMs + 20_000;
    const endings = await Promise.all(Array.from({ length: SLOW_CLIENTS }, () => hostile(wh.port, ca, giveUpMs, slowBody(body))));
    attacking = false;
    await normal;
    clearInterval(sampler);

    const by = new Map<string, number>();
    for (const e of endings) by.set(e.how, (by.get(e.how) ?? 0) + 1);
    const summary = `RSS idle ${idle.toFixed(1)} MiB, peak ${peak.toFixed(1)} MiB; slow clients ended: ${JSON.stringify(Object.fromEntries(by))}, the last after ${Math.max(...endings.map((e) => e.ms))} ms; ${reviews.length} normal reviews`;
    console.log(`      ${summary}`);

    expect(peak, summary).to.be.below(RSS_BOUND_MIB);
    expect(by.get('open') ?? 0, `still open after ${giveUpMs} ms: ${summary}`).to.equal(0);
    // As many as fit in the share of the budget for large bodies are read, and held until
    // requestTimeout answers 408; every other one is refused before its body is read. The client
    // mostly sees its write fail (EPIPE, ECONNRESET) before it reads that 503.
    const admitted = Math.floor((defaults.maxInFlightBytes * (1 - ORDINARY_RESERVE_FRACTION)) / DECLARED);
    const metrics = (await call(wh.port, ca, 'GET', '/metrics')).body;
    expect(Number(/jobmetrics_webhook_requests_total\{outcome="overloaded"\} (\d+)/.exec(metrics)?.[1]), summary).to.equal(SLOW_CLIENTS - admitted);
    expect(by.get('408') ?? 0, summary).to.be.at.most(admitted);
    const lasted = endings.filter((e) => e.ms >= defaults.requestTimeoutMs).length;
    expect(lasted, `only the admitted ones lasted until requestTimeout: ${summary}`).to.be.at.most(admitted);
    expect(metrics).to.match(/jobmetrics_webhook_request_body_bytes_in_flight 0\n/);
    // The reviews the API server sends went on being answered, each with its own uid.
    expect(reviews.length, summary).to.be.above(10);
    expect(reviews.filter((r) => r.status !== 200 || r.echoed !== r.uid), summary).to.deep.equal([]);
    expect((await call(wh.port, ca, 'GET', '/healthz')).status).to.equal(200);
  });

  it('more connections than maxConnections, silent or trickling headers: the extra ones are closed at once, the rest after headersTimeout, RSS stays bounded', async () => {
    const pid = wh.proc.pid ?? 0;
    let peak = rssMib(pid);
    const sampler = setInterval(() => (peak = Math.max(peak, rssMib(pid))), 50);
    const giveUpMs = defaults.headersTimeoutMs + 20_000;
    const TRICKLING = 100;
    let connected = 0;
    let allConnected = (): void => {};
    const trickled = new Promise<void>((r) => (allConnected = r));
    const slowHeaders = (s: TLSSocket): (() => void) => {
      if (++connected === TRICKLING) allConnected();
      s.write('POST /mutate HTTP/1.1\r\nHost: localhost\r\n');
      const t = setInterval(() => s.destroyed || s.write('X-Slow: 1\r\n'), 500);
      return () => clearInterval(t);
    };
    const trickling = Array.from({ length: TRICKLING }, () => hostile(wh.port, ca, giveUpMs, slowHeaders));
    await Promise.race([trickled, Promise.all(trickling)]);
    // Then TCP connections that never start the TLS handshake: cheap to open, so more than
    // maxConnections are open at once.
    const silent = Array.from({ length: defaults.maxConnections + 100 }, () => silentTcp(wh.port, giveUpMs));
    const endings = await Promise.all([...trickling, ...silent]);
    clearInterval(sampler);
    const by = new Map<string, number>();
    for (const e of endings) by.set(e.how, (by.get(e.how) ?? 0) + 1);
    const summary = `peak RSS ${peak.toFixed(1)} MiB; ${endings.length} connections ended: ${JSON.stringify(Object.fromEntries(by))}, the last after ${Math.max(...endings.map((e) => e.ms))} ms`;
    console.log(`      ${summary}`);
    expect(by.get('open') ?? 0, summary).to.equal(0);
    expect(by.get('408') ?? 0, `the trickling ones: 408 at headersTimeout; ${summary}`).to.equal(TRICKLING);
    expect(peak, summary).to.be.below(RSS_BOUND_MIB);
    const metrics = (await call(wh.port, ca, 'GET', '/metrics')).body;
    expect(Number(/jobmetrics_webhook_connections_dropped_total (\d+)/.exec(metrics)?.[1]), summary).to.be.at.least(100);
    const a = await call(wh.port, ca, 'POST', '/mutate', review(podOfJob('plain-job'), {}, 'after-slowloris'));
    expect(a.json().response.uid).to.equal('after-slowloris');
  });
});
