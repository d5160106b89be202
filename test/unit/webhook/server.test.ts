/** The HTTP edge's request and response classes: express's prototypes from construction on. */
import { expect } from 'chai';
import { IncomingMessage, ServerResponse, createServer, request } from 'node:http';
import type { AddressInfo } from 'node:net';
import express from 'express';
import { expressHttpClasses } from '../../../webhook/server.ts';

describe('webhook expressHttpClasses', () => {
  it('builds req and res with the prototypes express would give them, and express works as before', async () => {
    const app = express();
    const classes = expressHttpClasses(app);
    const seen: { reqProto: boolean; resProto: boolean; reqIsHttp: boolean; resIsHttp: boolean }[] = [];
    app.post('/echo', express.raw({ type: () => true }), (req, res) => {
      seen.push({
        // app.handle sets these prototypes; with the classes that changes nothing.
        reqProto: Object.getPrototypeOf(req) === app.request && req instanceof classes.IncomingMessage,
        resProto: Object.getPrototypeOf(res) === app.response && res instanceof classes.ServerResponse,
        reqIsHttp: req instanceof IncomingMessage,
        resIsHttp: res instanceof ServerResponse,
      });
      res.status(201).set('X-Seen', req.get('x-probe') ?? '').json({ got: (req.body as Buffer).toString('utf8') });
    });
    const server = createServer({ ...classes }, app);
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    try {
      const port = (server.address() as AddressInfo).port;
      for (let i = 0; i < 2; i++) {
        const answer = await new Promise<{ status: number; probe: string; body: string }>((resolve, reject) => {
          const req = request({ host: '127.0.0.1', port, path: '/echo', method: 'POST', headers: { 'x-probe': `p${i}` } }, (res) => {
            let body = '';
            res.on('data', (c: Buffer) => (body += c.toString('utf8')));
            res.on('end', () => resolve({ status: res.statusCode ?? 0, probe: String(res.headers['x-seen']), body }));
          });
          req.on('error', reject);
          req.end(`hello ${i}`);
        });
        expect(answer).to.deep.equal({ status: 201, probe: `p${i}`, body: JSON.stringify({ got: `hello ${i}` }) });
      }
      expect(seen).to.deep.equal([
        { reqProto: true, resProto: true, reqIsHttp: true, resIsHttp: true },
        { reqProto: true, resProto: true, reqIsHttp: true, resIsHttp: true },
      ]);
    } finally {
      server.close();
    }
  });
});
