/**
 * A pass-through in front of a remote-write receiver that notes which series went through it: the
 * local aggregator tier puts one in front of the store for each aggregator, so a test can tell
 * which aggregator wrote each output series. Every request is forwarded unchanged, and the
 * receiver's answer (status and body) is returned unchanged, so the aggregator sees the store.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createRequire } from 'node:module';
import { decodeWriteRequest } from '../test/support/write-request.ts';
import { seriesKey } from '../shared/series-key.ts';

const snappy: typeof import('snappyjs') = createRequire(import.meta.url)('snappyjs');

export interface Recorder {
  readonly url: string;
  /** Every series key seen, with its number of samples. */
  readonly series: ReadonlyMap<string, number>;
  readonly requests: number;
  close(): Promise<void>;
}

async function readBody(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of req) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

/** Listens on a free loopback port and forwards every POST to `upstreamUrl`. */
export async function startRecorder(upstreamUrl: string): Promise<Recorder> {
  const series = new Map<string, number>();
  let requests = 0;
  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const body = await readBody(req);
    const headers: Record<string, string> = {};
    for (const h of ['content-type', 'content-encoding', 'x-prometheus-remote-write-version', 'user-agent']) {
      const v = req.headers[h];
      if (typeof v === 'string') headers[h] = v;
    }
    let status = 502;
    let text = '';
    try {
      const up = await fetch(upstreamUrl, { method: 'POST', headers, body, signal: AbortSignal.timeout(30_000) });
      status = up.status;
      text = await up.text();
    } catch (cause) {
      text = `recorder: POST ${upstreamUrl} failed: ${String(cause)}`;
    }
    if (status >= 200 && status < 300 && headers['content-encoding'] === 'snappy') {
      requests++;
      for (const ts of decodeWriteRequest(snappy.uncompress(body))) {
        const k = seriesKey(ts.labels);
        series.set(k, (series.get(k) ?? 0) + ts.samples.length);
      }
    }
    res.writeHead(status, { 'content-type': 'text/plain' }).end(text);
  };
  const server: Server = createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      if (!res.headersSent) res.writeHead(500).end(`recorder: ${String(err)}`);
    });
  });
  server.keepAliveTimeout = 60_000;
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const addr = server.address();
  if (addr === null || typeof addr === 'string') throw new Error('recorder: no TCP address');
  return {
    url: `http://127.0.0.1:${addr.port}/api/v1/write`,
    series,
    get requests() {
      return requests;
    },
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}
