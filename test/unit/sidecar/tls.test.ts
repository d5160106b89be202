/**
 * The sidecar over TLS, with real HTTPS servers on loopback and certificates made by
 * webhook/cert.ts (node:https is loaded only when a URL needs it, shared/https-lazy.ts):
 * - scraping an https:// target works without verifying its certificate (made for the Service
 *   name, never for localhost: README "TLS");
 * - remote write verifies the aggregator's certificate: an unknown CA is a clear error and nothing
 *   reaches the server; the CA added with NODE_EXTRA_CA_CERTS (how a cluster's CA is given to the
 *   sidecar) makes the same delivery work — checked in a child process, as Node reads that
 *   variable only at startup.
 */
import { expect } from 'chai';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { uncompressSync } from 'snappy';
import { decodeWriteRequest } from '../../support/write-request.ts';
import { generateCa, issueServingCert, type CertPair } from '../../../webhook/cert.ts';
import { closeIdleConnections, encodeWriteRequest, sendWriteRequest } from '../../../shared/remote-write.ts';
import { createScraper } from '../../../sidecar/scrape.ts';

const REMOTE_WRITE = fileURLToPath(new URL('../../../shared/remote-write.ts', import.meta.url));

describe('sidecar over TLS (real HTTPS servers on loopback)', function () {
  this.timeout(30_000);
  let ca: CertPair;
  let server: Server;
  let url: string;
  const received: Buffer[] = [];
  let dir: string;

  before(async () => {
    const now = new Date();
    ca = generateCa({ commonName: 'jobmetrics test CA', now, validityDays: 1 });
    const serving = issueServingCert(ca, { dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'], now, validityDays: 1 });
    server = createServer({ cert: serving.certPem, key: serving.keyPem }, (req, res) => {
      if (req.method === 'GET') {
        res.setHeader('content-type', 'text/plain; version=0.0.4').end('# TYPE items_total counter\nitems_total 42\n');
        return;
      }
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        received.push(Buffer.concat(chunks));
        res.writeHead(204).end();
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    url = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
    dir = mkdtempSync(join(tmpdir(), 'jobmetrics-tls-'));
    writeFileSync(join(dir, 'ca.crt'), ca.certPem);
  });
  after(() => {
    closeIdleConnections();
    server.closeAllConnections();
    server.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('scrapes an https:// target whose certificate it cannot verify', async () => {
    const scraper = createScraper(new URL('/metrics', url), { timeoutMs: 5_000, maxBytes: 1 << 20, accept: 'text/plain', userAgent: 'test' });
    const r = await scraper.scrape();
    scraper.close();
    expect(r.ok && r.body).to.equal('# TYPE items_total counter\nitems_total 42\n');
  });

  it('remote write to an aggregator whose CA is unknown: a certificate error, nothing delivered', async () => {
    const before = received.length;
    const body = encodeWriteRequest([{ labels: [['__name__', 'items_total']], samples: [{ value: 1, timestampMs: 1_000 }] }]);
    const outcome = await sendWriteRequest(`${url}/api/v1/write`, body, { timeoutMs: 5_000 });
    expect(outcome.ok).to.equal(false);
    const chain: string[] = [];
    for (let e: unknown = outcome.ok ? undefined : outcome.error; e instanceof Error; e = e.cause) chain.push(`${(e as NodeJS.ErrnoException).code ?? ''} ${e.message}`);
    expect(chain.join(' | ')).to.match(/UNABLE_TO_VERIFY_LEAF_SIGNATURE|SELF_SIGNED_CERT_IN_CHAIN|unable to verify|self-signed certificate/);
    expect(received.length).to.equal(before);
  });

  it('remote write with the CA given by NODE_EXTRA_CA_CERTS: delivered and decodable', async () => {
    const before = received.length;
    const script = [
      `const { encodeWriteRequest, sendWriteRequest, closeIdleConnections } = await import(${JSON.stringify(REMOTE_WRITE)});`,
      "const body = encodeWriteRequest([{ labels: [['__name__', 'items_total'], ['job', 'tls']], samples: [{ value: 7, timestampMs: 2000 }] }]);",
      `const outcome = await sendWriteRequest(${JSON.stringify(`${url}/api/v1/write`)}, body, { timeoutMs: 5000 });`,
      'closeIdleConnections();',
      'console.log(JSON.stringify({ ok: outcome.ok, status: outcome.status, error: outcome.ok ? undefined : String(outcome.error) }));',
    ].join('\n');
    // Asynchronously: the server answering the child lives in this process.
    const r = await promisify(execFile)(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
      env: { ...process.env, NODE_EXTRA_CA_CERTS: join(dir, 'ca.crt') },
      encoding: 'utf8',
      timeout: 20_000,
    });
    expect(JSON.parse(r.stdout.trim()), r.stderr).to.deep.equal({ ok: true, status: 204 });
    expect(received.length).to.equal(before + 1);
    expect(decodeWriteRequest(uncompressSync(received[received.length - 1]!) as Buffer)).to.deep.equal([
      { labels: [['__name__', 'items_total'], ['job', 'tls']], samples: [{ value: 7, timestampMs: 2000 }] },
    ]);
  });
});
