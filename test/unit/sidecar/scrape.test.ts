/**
 * The scrape connection as an exit signal (sidecar/scrape.ts): a keep-alive connection that the
 * server's side closes is reported (the kernel closes it when the main process exits), a close the
 * server announced after each answer is not — else every scrape of an HTTP/1.0 target (Python's
 * wsgiref) would send the exit watch into its fast polls. Real local servers on port 0.
 */
import { expect } from 'chai';
import { createServer as createHttpServer, type Server } from 'node:http';
import { createServer as createNetServer, type AddressInfo, type Server as NetServer } from 'node:net';
import { createScraper, keepsAlive } from '../../../sidecar/scrape.ts';

const OPTS = { timeoutMs: 2_000, maxBytes: 1 << 20, accept: 'text/plain', userAgent: 'test' };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const urlOf = (s: Server | NetServer) => new URL(`http://127.0.0.1:${(s.address() as AddressInfo).port}/metrics`);
const listen = async <S extends Server | NetServer>(s: S): Promise<S> => {
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  return s;
};

describe('keepsAlive (RFC 9112 9.3)', () => {
  const cases: Array<[string, string, Record<string, string>, boolean]> = [
    ['HTTP/1.1 default', '1.1', {}, true],
    ['HTTP/1.1 Connection: close', '1.1', { connection: 'close' }, false],
    ['HTTP/1.1 Connection: Keep-Alive, Close', '1.1', { connection: 'Keep-Alive, Close' }, false],
    ['HTTP/1.0 default', '1.0', {}, false],
    ['HTTP/1.0 Connection: keep-alive', '1.0', { connection: 'keep-alive' }, true],
  ];
  for (const [name, httpVersion, headers, want] of cases) it(`${name}: ${want}`, () => expect(keepsAlive({ httpVersion, headers })).to.equal(want));
});

describe('createScraper: connection closes as exit hints', () => {
  it('a keep-alive connection the server side closes (the process exited) is reported once', async () => {
    const server = await listen(createHttpServer((_req, res) => res.end('x_total 1\n')));
    let closes = 0;
    const kept: boolean[] = [];
    const scraper = createScraper(urlOf(server), { ...OPTS, onConnectionClosed: () => closes++, onConnectionKept: (k) => kept.push(k) });
    for (let i = 0; i < 3; i++) expect((await scraper.scrape()).ok).to.equal(true);
    expect(closes, 'one kept-alive connection, never closed').to.equal(0);
    expect(kept, 'a sensor after every answer').to.deep.equal([true, true, true]);
    server.closeAllConnections();
    server.close();
    // Wait for the close however long a loaded machine takes; then a moment for a second report.
    while (closes === 0) await sleep(10);
    await sleep(100);
    expect(closes).to.equal(1);
    scraper.close();
  });

  it('"Connection: close" on every answer: scrapes work, no hint', async () => {
    const server = await listen(createHttpServer((_req, res) => res.setHeader('connection', 'close').end('x_total 1\n')));
    let closes = 0;
    const kept: boolean[] = [];
    const scraper = createScraper(urlOf(server), { ...OPTS, onConnectionClosed: () => closes++, onConnectionKept: (k) => kept.push(k) });
    for (let i = 0; i < 3; i++) expect((await scraper.scrape()).ok).to.equal(true);
    await sleep(100);
    expect(closes).to.equal(0);
    expect(kept, 'never a sensor: the exit watch keeps its faster backstop poll').to.deep.equal([false, false, false]);
    scraper.close();
    server.close();
  });

  it('an HTTP/1.0 server that closes after each answer (like wsgiref): no hint', async () => {
    const server = await listen(
      createNetServer((socket) => {
        socket.once('data', () => socket.end('HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nx_total 1\n'));
      }),
    );
    let closes = 0;
    const kept: boolean[] = [];
    const scraper = createScraper(urlOf(server), { ...OPTS, onConnectionClosed: () => closes++, onConnectionKept: (k) => kept.push(k) });
    for (let i = 0; i < 3; i++) {
      const r = await scraper.scrape();
      expect(r.ok && r.body).to.equal('x_total 1\n');
    }
    await sleep(100);
    expect(closes).to.equal(0);
    expect(kept).to.deep.equal([false, false, false]);
    scraper.close();
    server.close();
  });

  it('connections the sidecar itself drops (body over the limit, timeout) are no hint', async () => {
    const server = await listen(
      createHttpServer((req, res) => {
        if (req.url === '/big') res.end('x'.repeat(4096));
        // '/slow': never answers
      }),
    );
    let closes = 0;
    const big = createScraper(new URL('/big', urlOf(server)), { ...OPTS, maxBytes: 100, onConnectionClosed: () => closes++ });
    const r1 = await big.scrape();
    expect(r1.ok ? '' : r1.error).to.match(/exceeds the limit of 100/);
    const slow = createScraper(new URL('/slow', urlOf(server)), { ...OPTS, timeoutMs: 100, onConnectionClosed: () => closes++ });
    const r2 = await slow.scrape();
    expect(r2.ok ? '' : r2.error).to.match(/no complete answer within 100 ms/);
    await sleep(100);
    expect(closes).to.equal(0);
    big.close();
    slow.close();
    server.closeAllConnections();
    server.close();
  });
});

describe('createScraper: bodies over the limit', () => {
  /** A target in a process of its own (its write buffers must not count here) serving `bytes` of body. */
  async function bigTarget(bytes: number, chunked: boolean): Promise<{ url: URL; stop: () => void }> {
    const { spawn } = await import('node:child_process');
    const program = `
      const line = 'a_total{p="' + 'x'.repeat(200) + '"} 1\\n';
      const body = line.repeat(Math.ceil(${bytes} / line.length));
      require('node:http').createServer((_q, res) => {
        ${chunked ? "res.writeHead(200); res.end(body);" : "res.end(body);"}
      }).listen(0, '127.0.0.1', function () { process.stdout.write(String(this.address().port) + '\\n'); });`;
    const child = spawn(process.execPath, ['-e', program], { stdio: ['ignore', 'pipe', 'inherit'] });
    const port = await new Promise<number>((resolve) => child.stdout.once('data', (d: Buffer) => resolve(Number(String(d).trim()))));
    return { url: new URL(`http://127.0.0.1:${port}/metrics`), stop: () => child.kill() };
  }

  it('refuses a body declared too large before reading it, and an undeclared one at the limit while reading', async () => {
    for (const chunked of [false, true]) {
      const target = await bigTarget(8 << 20, chunked);
      try {
        const r = await createScraper(target.url, { ...OPTS, maxBytes: 1 << 20 }).scrape();
        expect(r.ok ? '' : r.error).to.match(chunked ? /body exceeds the limit of 1048576 bytes$/ : /body of \d+ bytes exceeds the limit of 1048576$/);
      } finally {
        target.stop();
      }
    }
  });

  it('leaves no pile of socket buffers behind refused bodies (with --expose-gc, as the image runs)', async () => {
    const { setFlagsFromString } = await import('node:v8');
    const { runInNewContext } = await import('node:vm');
    setFlagsFromString('--expose-gc');
    const g = globalThis as { gc?: unknown };
    const had = g.gc;
    g.gc = runInNewContext('gc');
    const target = await bigTarget(8 << 20, true);
    const scraper = createScraper(target.url, { ...OPTS, maxBytes: 2 << 20 });
    try {
      const before = process.memoryUsage().arrayBuffers;
      let most = 0;
      for (let i = 0; i < 30; i++) {
        const r = await scraper.scrape();
        expect(r.ok).to.equal(false);
        most = Math.max(most, process.memoryUsage().arrayBuffers - before);
      }
      // The reused 2 MiB body buffer and about one read's chunks; without the collection ~1 MiB
      // more piled up with every refused body (30 MiB and more here).
      expect(most / 2 ** 20, `${(most / 2 ** 20).toFixed(1)} MiB outside the heap`).to.be.below(8);
    } finally {
      scraper.close();
      target.stop();
      g.gc = had;
    }
  });
});
