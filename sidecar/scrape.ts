/**
 * One scrape of the main container's metrics endpoint: an HTTP GET with a deadline and a body
 * limit. Never throws; every failure is a value with context for the log.
 */
import type { IncomingMessage } from 'node:http';
import { http } from '../shared/node-builtins.ts';
import { https } from '../shared/https-lazy.ts';
import { COLLECT_AFTER_BYTES, releaseReadGarbage } from './read-garbage.ts';

export type ScrapeResult =
  | { readonly ok: true; readonly body: string; readonly contentType: string | undefined; readonly durationMs: number }
  | { readonly ok: false; readonly error: string; readonly status?: number; readonly refused: boolean; readonly durationMs: number };

export interface ScrapeOptions {
  readonly timeoutMs: number;
  readonly maxBytes: number;
  readonly accept: string;
  readonly userAgent: string;
  /**
   * Called when a connection to the target closes unexpectedly. The kernel closes the idle
   * keep-alive connection the moment the process holding it exits, so this is the earliest, free
   * sign that the main container may be gone (sidecar/exit-watch.ts then looks at /proc at once).
   * Not called for a close the server announced (`Connection: close`, HTTP/1.0 without
   * keep-alive, as Python's wsgiref server answers): those come after every scrape.
   */
  readonly onConnectionClosed?: () => void;
  /**
   * Called after each answer: whether the server keeps the connection open, so that its close
   * will be reported by `onConnectionClosed`.
   */
  readonly onConnectionKept?: (kept: boolean) => void;
}

export interface Scraper {
  scrape(): Promise<ScrapeResult>;
  close(): void;
}

/**
 * A scraper with one keep-alive connection, as a scrape every 100 ms–1 s would otherwise open a
 * connection each time. TLS to the pod's own loopback is not verified: the main container's
 * certificate is made for its Service name, never for localhost (as Prometheus users set
 * `insecure_skip_verify` for pod scrapes).
 */
/** Whether the server keeps the connection open after this response (RFC 9112, section 9.3). */
export function keepsAlive(res: Pick<IncomingMessage, 'httpVersion' | 'headers'>): boolean {
  const connection = (res.headers.connection ?? '').toLowerCase().split(',').map((t) => t.trim());
  if (connection.includes('close')) return false;
  return res.httpVersion === '1.1' || connection.includes('keep-alive');
}

export function createScraper(url: URL, opts: ScrapeOptions): Scraper {
  const isHttps = url.protocol === 'https:';
  const agent = isHttps
    ? new (https().Agent)({ keepAlive: true, maxSockets: 1, rejectUnauthorized: false })
    : new http.Agent({ keepAlive: true, maxSockets: 1 });
  const get = isHttps ? https().get : http.get;
  const watched = new WeakSet<object>();
  /** The body's bytes, grown to the largest body read so far (at most `maxBytes`), reused. */
  let readBuffer = Buffer.allocUnsafe(64 * 1024);
  /** Sockets whose close says nothing about the target's process: announced by it, or ours. */
  const expectedClose = new WeakSet<object>();

  const scrape = (): Promise<ScrapeResult> =>
    new Promise((resolve) => {
      const started = Date.now();
      let settled = false;
      /** Aborts the request; the connection's close is then ours, not a sign of an exit. */
      const abort = (): void => {
        if (req.socket) expectedClose.add(req.socket);
        req.destroy();
      };
      /** Body bytes received, the refused chunk included. */
      let received = 0;
      const done = (r: ScrapeResult): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        if (received < COLLECT_AFTER_BYTES) return resolve(r);
        // Once the read's callbacks have returned, its chunks are garbage (read-garbage.ts).
        setImmediate(() => {
          releaseReadGarbage(received);
          resolve(r);
        });
      };
      const fail = (error: string, extra: { status?: number; refused?: boolean } = {}): void => {
        const r: { ok: false; error: string; refused: boolean; durationMs: number; status?: number } = {
          ok: false,
          error: `scrape ${url.href}: ${error}`,
          refused: extra.refused ?? false,
          durationMs: Date.now() - started,
        };
        if (extra.status !== undefined) r.status = extra.status;
        done(r);
      };
      const req = get(url, { agent, headers: { accept: opts.accept, 'user-agent': opts.userAgent, 'accept-encoding': 'identity' } }, (res) => {
        const kept = keepsAlive(res);
        if (!kept) expectedClose.add(res.socket);
        if (opts.onConnectionKept) res.once('end', () => opts.onConnectionKept?.(kept));
        const status = res.statusCode ?? 0;
        if (status < 200 || status > 299) {
          let excerpt = '';
          res.setEncoding('utf8');
          res.on('data', (c: string) => {
            if (excerpt.length < 200) excerpt += c;
          });
          res.on('end', () => fail(`HTTP ${status}${excerpt ? `: ${excerpt.slice(0, 200).trim()}` : ''}`, { status }));
          res.on('error', (e) => fail(`HTTP ${status}: ${e.message}`, { status }));
          return;
        }
        // The body goes into one buffer as it arrives, never more than `maxBytes`: a body over
        // the limit is refused by its declared length before any byte is read, or at the first
        // chunk past the limit, so its memory is never held. One buffer, kept from scrape to
        // scrape, not a list of chunks then their concatenation: a scrape holds the body once as
        // bytes and once as text (shared/sidecar-memory.ts counts both), and leaves no
        // body-sized garbage outside V8's heap, which V8 would free only late.
        const declared = Number(res.headers['content-length']);
        if (Number.isFinite(declared) && declared > opts.maxBytes) {
          abort();
          fail(`body of ${declared} bytes exceeds the limit of ${opts.maxBytes}`);
          return;
        }
        if (Number.isSafeInteger(declared) && declared > readBuffer.length) readBuffer = Buffer.allocUnsafe(declared);
        let size = 0;
        res.on('data', (c: Buffer) => {
          if (settled) return;
          received += c.length;
          if (size + c.length > opts.maxBytes) {
            abort();
            fail(`body exceeds the limit of ${opts.maxBytes} bytes`);
            return;
          }
          if (size + c.length > readBuffer.length) {
            const grown = Buffer.allocUnsafe(Math.min(opts.maxBytes, Math.max(size + c.length, 2 * readBuffer.length)));
            readBuffer.copy(grown, 0, 0, size);
            readBuffer = grown;
          }
          c.copy(readBuffer, size);
          size += c.length;
        });
        res.on('end', () =>
          done({
            ok: true,
            body: readBuffer.toString('utf8', 0, size),
            contentType: res.headers['content-type'],
            durationMs: Date.now() - started,
          }),
        );
        res.on('error', (e) => fail(`reading the body: ${e.message}`));
      });
      const onClosed = opts.onConnectionClosed;
      if (onClosed) {
        req.once('socket', (socket) => {
          if (watched.has(socket)) return;
          watched.add(socket);
          socket.once('close', () => {
            if (!expectedClose.has(socket)) onClosed();
          });
        });
      }
      const timer = setTimeout(() => {
        abort();
        fail(`no complete answer within ${opts.timeoutMs} ms`);
      }, opts.timeoutMs);
      req.on('error', (e: NodeJS.ErrnoException) => fail(e.code ? `${e.code} ${e.message}` : e.message, { refused: e.code === 'ECONNREFUSED' }));
    });

  return { scrape, close: () => agent.destroy() };
}
