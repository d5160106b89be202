/**
 * The gateway's HTTP edge (gateway/gateway.ts) against a real local "aggregator": an HTTP server on
 * port 0 that decodes what it receives and notes when, and can be told to refuse. Real sockets,
 * real remote-write bodies; a short hold (200 ms interval + 100 ms margin).
 */
import { expect } from 'chai';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { createRequire } from 'node:module';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseGatewayConfig } from '../../../gateway/config.ts';
import { startGateway, type Gateway } from '../../../gateway/gateway.ts';
import { decodeWriteRequest } from '../../../gateway/write-request.ts';
import { POD_NAME_EXTRA, type ReviewFn, type TokenReviewStatus } from '../../../gateway/writer-identity.ts';
import { createLogger } from '../../../shared/log.ts';
import { closeIdleConnections, encodeWriteRequest, sendWriteRequest, type RwSeries } from '../../../shared/remote-write.ts';

const snappy: typeof import('snappyjs') = createRequire(import.meta.url)('snappyjs');
const HOLD_MS = 300;

interface Received {
  at: number;
  series: RwSeries[];
  authorization: string | undefined;
}

async function fakeAggregator(): Promise<{ url: string; received: Received[]; refuse: (status: number | undefined) => void; close: () => Promise<void> }> {
  const received: Received[] = [];
  let refusing: number | undefined;
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      if (refusing !== undefined) {
        res.writeHead(refusing).end('refused on purpose');
        return;
      }
      received.push({ at: Date.now(), series: decodeWriteRequest(snappy.uncompress(Buffer.concat(chunks))), authorization: req.headers.authorization });
      res.writeHead(204).end();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/api/v1/write`,
    received,
    refuse: (status) => void (refusing = status),
    close: () => new Promise((r) => server.close(() => r())),
  };
}

const counter = (pod: string, ...samples: Array<[value: number, timestampMs: number]>): RwSeries => ({
  labels: [['__name__', 'items_total'], ['namespace', 'ns'], ['job', 'w'], ['pod', pod], ['jobmetrics_kind', 'counter']],
  samples: samples.map(([value, timestampMs]) => ({ value, timestampMs })),
});
/** Every forwarded value of `pod`, with when it reached the aggregator. */
const arrivals = (received: readonly Received[], pod: string): Array<[value: number, at: number]> =>
  received.flatMap((r) => r.series.filter((s) => s.labels.some(([n, v]) => n === 'pod' && v === pod)).flatMap((s) => s.samples.map((x) => [x.value, r.at] as [number, number])));

describe('gateway: the HTTP edge in front of a real local aggregator', function () {
  this.timeout(20_000);
  let agg: Awaited<ReturnType<typeof fakeAggregator>>;
  let gw: Gateway;
  let logs: string[];
  const post = (body: Buffer, headers: Record<string, string> = {}): Promise<{ status: number; text: string }> =>
    fetch(`${gw.url}/api/v1/write`, { method: 'POST', body, headers: { 'Content-Encoding': 'snappy', 'Content-Type': 'application/x-protobuf', ...headers } }).then(async (r) => ({ status: r.status, text: await r.text() }));
  const write = (...s: RwSeries[]) => sendWriteRequest(`${gw.url}/api/v1/write`, encodeWriteRequest(s), { timeoutMs: 5_000 });

  beforeEach(async () => {
    agg = await fakeAggregator();
    logs = [];
    const parsed = parseGatewayConfig({ JOBMETRICS_LISTEN: '127.0.0.1:0', JOBMETRICS_AGGREGATOR_URL: agg.url, JOBMETRICS_AGGREGATION_INTERVAL: '200ms', JOBMETRICS_BIRTH_MARGIN: '100ms', JOBMETRICS_WRITER_AUTH: 'none' });
    if (!parsed.ok) throw new Error(JSON.stringify(parsed.errors));
    gw = await startGateway(parsed.config, { log: createLogger({ component: 'gw', sink: (l) => logs.push(l) }) });
  });
  afterEach(async () => {
    await gw.close();
    await agg.close();
    closeIdleConnections();
  });

  it('answers 204 at once; the 0 reaches the aggregator at once and the value one hold later', async () => {
    const t0 = Date.now();
    expect((await write(counter('p', [0, t0 - 1], [240, t0]))).ok).to.equal(true);
    // Answered while the value is still held: the sender never waits for the hold.
    expect(arrivals(agg.received, 'p').map(([v]) => v)).to.deep.equal([0]);
    await gw.close();
    const got = arrivals(agg.received, 'p');
    expect(got.map(([v]) => v)).to.deep.equal([0, 240]);
    // The hold runs from the 0's acknowledgement, which came after the 0 arrived.
    expect(got[1]![1] - got[0]![1], 'value behind its 0').to.be.at.least(HOLD_MS);
  });

  it('a body that is not snappy, or snappy around garbage, is answered 400 with what was wrong; nothing is forwarded', async () => {
    const notSnappy = await post(Buffer.from('hello, this is not snappy'));
    expect(notSnappy.status).to.equal(400);
    expect(notSnappy.text).to.match(/snappy|WriteRequest/);
    const garbage = await post(Buffer.from(snappy.compress(Buffer.from([0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f]))));
    expect(garbage.status).to.equal(400);
    expect(garbage.text).to.match(/malformed WriteRequest|runs past/);
    expect(agg.received).to.deep.equal([]);
  });

  it('a body over 8 MiB is answered 413 without reading it all; one that would decompress past 32 MiB, 400', async () => {
    expect((await post(Buffer.alloc(9 * 1024 * 1024))).status).to.equal(413);
    // A snappy header stating 64 MiB: refused before any decompression.
    const bomb = Buffer.from([0x80, 0x80, 0x80, 0x20, 0x00]);
    const r = await post(bomb);
    expect(r.status).to.equal(400);
    expect(r.text).to.match(/67108864 bytes, over the limit of 33554432/);
  });

  it('an aggregator that refuses (503) makes the gateway answer 503; the retry sends its 0 first again, and its value still waits a hold', async () => {
    agg.refuse(503);
    const t0 = Date.now();
    const first = await write(counter('p', [0, t0 - 1], [7, t0]));
    expect(first.ok).to.equal(false);
    expect(first.ok === false && first.status).to.equal(503);
    agg.refuse(undefined);
    expect((await write(counter('p', [0, t0 - 1], [7, t0]))).ok).to.equal(true);
    await gw.close();
    const got = arrivals(agg.received, 'p');
    expect(got.map(([v]) => v)).to.deep.equal([0, 7]);
    expect(got[1]![1] - got[0]![1]).to.be.at.least(HOLD_MS);
  });

  it('an aggregator that refuses the data itself (400) is answered 400, so the sender does not retry it', async () => {
    agg.refuse(400);
    const r = await write(counter('p', [0, 1]));
    expect(r.ok === false && r.status).to.equal(400);
    expect(r.ok === false && r.retryable).to.equal(false);
  });

  it('close() delivers what is held when it is due, not earlier', async () => {
    const t0 = Date.now();
    await write(counter('p', [0, t0 - 1], [5, t0]));
    await gw.close();
    const got = arrivals(agg.received, 'p');
    expect(got.map(([v]) => v)).to.deep.equal([0, 5]);
    expect(got[1]![1] - got[0]![1], 'not earlier than due').to.be.at.least(HOLD_MS);
    expect(logs.some((l) => l.includes('gateway stopped; nothing held'))).to.equal(true);
  });

  it('/metrics counts births, held and released samples and answers by code; an unknown route is 404 with where to write', async () => {
    const t0 = Date.now();
    await write(counter('p', [0, t0 - 1], [5, t0]));
    await sleep(HOLD_MS + 200);
    const text = await (await fetch(`${gw.url}/metrics`)).text();
    expect(text).to.match(/^jobmetrics_gateway_births_total 1$/m);
    expect(text).to.match(/^jobmetrics_gateway_held_samples_total 1$/m);
    expect(text).to.match(/^jobmetrics_gateway_released_samples_total 1$/m);
    expect(text).to.match(/^jobmetrics_gateway_write_requests_total\{code="204"\} 1$/m);
    const nf = await fetch(`${gw.url}/api/v2/write`, { method: 'POST' });
    expect(nf.status).to.equal(404);
    expect(await nf.text()).to.match(/POST \/api\/v1\/write/);
  });
});

describe('gateway: limits per namespace at the HTTP edge', function () {
  this.timeout(20_000);
  it('a namespace over its samples per second gets 429 with Retry-After, counted; a namespace over its series cap loses only its new series, counted; another namespace is untouched', async () => {
    const agg = await fakeAggregator();
    const logs: string[] = [];
    const parsed = parseGatewayConfig({
      JOBMETRICS_LISTEN: '127.0.0.1:0',
      JOBMETRICS_AGGREGATOR_URL: agg.url,
      JOBMETRICS_AGGREGATION_INTERVAL: '200ms',
      JOBMETRICS_BIRTH_MARGIN: '100ms',
      JOBMETRICS_NAMESPACE_LIMITS: 'flood=2/-,noisy=-/1',
      JOBMETRICS_WRITER_AUTH: 'none',
    });
    if (!parsed.ok) throw new Error(JSON.stringify(parsed.errors));
    const gw = await startGateway(parsed.config, { log: createLogger({ component: 'gw', sink: (l) => logs.push(l) }) });
    const inNs = (ns: string, pod: string, value: number): RwSeries => ({ labels: [['__name__', 'work_total'], ['namespace', ns], ['job', 'j'], ['pod', pod], ['jobmetrics_kind', 'counter']], samples: [{ value, timestampMs: Date.now() }] });
    try {
      const url = `${gw.url}/api/v1/write`;
      // noisy: 1 sample/s, a bucket of 10: after 10 samples, 2 more must wait 2 s.
      expect((await sendWriteRequest(url, encodeWriteRequest(Array.from({ length: 10 }, (_, i) => inNs('noisy', `p${i}`, 0))), { timeoutMs: 5_000 })).ok).to.equal(true);
      const refused = await fetch(url, { method: 'POST', body: encodeWriteRequest([inNs('noisy', 'q1', 0), inNs('noisy', 'q2', 0)]), headers: { 'Content-Encoding': 'snappy' } });
      expect([refused.status, refused.headers.get('retry-after')]).to.deep.equal([429, '2']);
      expect(await refused.text()).to.match(/namespace noisy is over its samples per second/);
      // flood: 2 series at most; the third is dropped, the first two pass.
      expect((await sendWriteRequest(url, encodeWriteRequest([inNs('flood', 'a', 0), inNs('flood', 'b', 0), inNs('flood', 'c', 0), inNs('calm', 'a', 0)]), { timeoutMs: 5_000 })).ok).to.equal(true);
      const forwarded = agg.received.flatMap((r) => r.series).map((x) => `${x.labels.find((l) => l[0] === 'namespace')?.[1]}/${x.labels.find((l) => l[0] === 'pod')?.[1]}`);
      expect(forwarded.filter((f) => !f.startsWith('noisy/')).sort()).to.deep.equal(['calm/a', 'flood/a', 'flood/b']);
      const text = await (await fetch(`${gw.url}/metrics`)).text();
      expect(text).to.match(/^jobmetrics_gateway_limit_refused_requests_total\{namespace="noisy"\} 1$/m);
      expect(text).to.match(/^jobmetrics_gateway_limit_dropped_samples_total\{namespace="flood",reason="series-limit"\} 1$/m);
      expect(text).to.match(/^jobmetrics_gateway_namespace_live_series\{namespace="flood"\} 2$/m);
      expect(text).to.match(/^jobmetrics_gateway_namespace_live_series\{namespace="calm"\} 1$/m);
      expect(logs.filter((l) => l.includes('samples dropped by a namespace limit'))).to.have.length(1);
    } finally {
      await gw.close();
      await agg.close();
      closeIdleConnections();
    }
  });
});

describe('gateway settings: one line per bad setting, naming it', () => {
  // A kubeconfig, as token review (the default) needs the API server.
  const A = { JOBMETRICS_AGGREGATOR_URL: 'http://a/', KUBECONFIG: '/k' };
  const cases: Array<[string, Record<string, string>, RegExp]> = [
    ['no aggregator URL', { KUBECONFIG: '/k' }, /^JOBMETRICS_AGGREGATOR_URL: is required but not set$/],
    ['an aggregator URL that is not http', { KUBECONFIG: '/k', JOBMETRICS_AGGREGATOR_URL: 'ftp://x/' }, /^JOBMETRICS_AGGREGATOR_URL: "ftp:\/\/x\/" must use http: or https:$/],
    ['a listen address without a port',  { ...A, JOBMETRICS_LISTEN: 'localhost' }, /^JOBMETRICS_LISTEN: "localhost" must be host:port/],
    ['an interval out of range',  { ...A, JOBMETRICS_AGGREGATION_INTERVAL: '10ms' }, /^JOBMETRICS_AGGREGATION_INTERVAL: /],
    ['a namespace limit that is not a number',  { ...A, JOBMETRICS_MAX_SERIES_PER_NAMESPACE: '-1' }, /^JOBMETRICS_MAX_SERIES_PER_NAMESPACE: "-1" must be a whole number/],
    ['namespace overrides that do not parse',  { ...A, JOBMETRICS_NAMESPACE_LIMITS: 'batch=lots' }, /^JOBMETRICS_NAMESPACE_LIMITS: "batch=lots" must be/],
    ['a tracking limit that is not a number',  { ...A, JOBMETRICS_MAX_TRACKED_SERIES: 'lots' }, /^JOBMETRICS_MAX_TRACKED_SERIES: "lots" must be a whole number/],
    ['token review (the default) without an API server', { JOBMETRICS_AGGREGATOR_URL: 'http://a/' }, /^JOBMETRICS_WRITER_AUTH: is tokenreview \(the default\), which needs the API server: set KUBECONFIG, run in a pod, or set JOBMETRICS_WRITER_AUTH=none/],
    ['an unknown writer check', { ...A, JOBMETRICS_WRITER_AUTH: 'mtls' }, /^JOBMETRICS_WRITER_AUTH: "mtls" must be tokenreview or none$/],
    ['a trusted writer that is not namespace:serviceaccount', { ...A, JOBMETRICS_TRUSTED_WRITERS: 'jobmetrics/recorder' }, /^JOBMETRICS_TRUSTED_WRITERS: "jobmetrics\/recorder" is not namespace:serviceaccount/],
  ];
  for (const [what, env, message] of cases) {
    it(what, () => {
      const r = parseGatewayConfig(env);
      expect(r.ok).to.equal(false);
      if (!r.ok) expect(r.errors.map((e) => `${e.setting}: ${e.message}`)).to.satisfy((lines: string[]) => lines.length === 1 && message.test(lines[0]!));
    });
  }
  it('the defaults match the shipped aggregator: 10s interval + 3s margin, 15m staleness, listening on 8480', () => {
    const r = parseGatewayConfig(A);
    expect(r.ok && { interval: r.config.aggregationIntervalMs, margin: r.config.birthMarginMs, staleness: r.config.stalenessMs, listen: r.config.listen }).to.deep.equal({
      interval: 10_000,
      margin: 3_000,
      staleness: 900_000,
      listen: { host: '0.0.0.0', port: 8480 },
    });
  });
});

describe('gateway: who may write what, at the HTTP edge (a scripted TokenReview)', function () {
  this.timeout(20_000);
  // What the API server would answer for each token: a sidecar's of namespace team-a, the
  // recorder's, a token made for another audience, a service-account token bound to no pod.
  const answers: Record<string, TokenReviewStatus> = {
    'sidecar-a': { authenticated: true, audiences: ['jobmetrics-gateway'], user: { username: 'system:serviceaccount:team-a:default', extra: { [POD_NAME_EXTRA]: ['etl-x7k2p'] } } },
    recorder: { authenticated: true, audiences: ['jobmetrics-gateway'], user: { username: 'system:serviceaccount:jobmetrics:jobmetrics-recorder', extra: { [POD_NAME_EXTRA]: ['jobmetrics-recorder-5d9f-abcde'] } } },
    'api-audience': { authenticated: false, error: '[invalid bearer token, token audiences ["https://kubernetes.default.svc"] is invalid for the target audiences ["jobmetrics-gateway"]]' },
    unbound: { authenticated: true, audiences: ['jobmetrics-gateway'], user: { username: 'system:serviceaccount:team-a:ci' } },
  };
  let reviews: string[];
  let apiDown: boolean;
  const review: ReviewFn = async (token) => {
    reviews.push(token);
    if (apiDown) return { error: new Error('connect ECONNREFUSED 10.96.0.1:443') };
    return { status: answers[token] ?? { authenticated: false } };
  };
  let agg: Awaited<ReturnType<typeof fakeAggregator>>;
  let gw: Gateway;
  beforeEach(async () => {
    reviews = [];
    apiDown = false;
    agg = await fakeAggregator();
    const parsed = parseGatewayConfig({ JOBMETRICS_LISTEN: '127.0.0.1:0', JOBMETRICS_AGGREGATOR_URL: agg.url, JOBMETRICS_AGGREGATION_INTERVAL: '200ms', JOBMETRICS_BIRTH_MARGIN: '100ms', KUBECONFIG: '/unused' });
    if (!parsed.ok) throw new Error(JSON.stringify(parsed.errors));
    gw = await startGateway(parsed.config, { log: createLogger({ component: 'gw', sink: () => {} }), review, aggregatorAuthorization: 'Basic am9ibWV0cmljczpzM2NyZXQ=' });
  });
  afterEach(async () => {
    await gw.close();
    await agg.close();
    closeIdleConnections();
  });
  const gauge = (ns: string, pod: string): RwSeries => ({ labels: [['__name__', 'rows'], ['namespace', ns], ['job', 'billing'], ['pod', pod], ['jobmetrics_kind', 'last']], samples: [{ value: 7, timestampMs: Date.now() }] });
  const writeAs = (token: string | undefined, ...s: RwSeries[]) =>
    fetch(`${gw.url}/api/v1/write`, { method: 'POST', body: encodeWriteRequest(s), headers: { 'Content-Encoding': 'snappy', ...(token !== undefined && { Authorization: `Bearer ${token}` }) } });
  const forwarded = (): string[] => agg.received.flatMap((r) => r.series).map((x) => `${x.labels.find((l) => l[0] === 'namespace')?.[1]}/${x.labels.find((l) => l[0] === 'pod')?.[1]}`);
  const metrics = async (): Promise<string> => (await fetch(`${gw.url}/metrics`)).text();

  const refusals: Array<[what: string, token: string | undefined, reason: string, message: RegExp]> = [
    ['no token', undefined, 'no-token', /^no bearer token/],
    ['a token for the API server, not for the gateway', 'api-audience', 'invalid-token', /did not authenticate the token: \[invalid bearer token, token audiences/],
    ['a token nobody knows', 'forged', 'invalid-token', /did not authenticate the token/],
    ['a service account token bound to no pod', 'unbound', 'not-bound-to-a-pod', /team-a:ci is not bound to a pod/],
  ];
  for (const [what, token, reason, message] of refusals) {
    it(`${what}: 401 with WWW-Authenticate, counted by reason, nothing forwarded`, async () => {
      const res = await writeAs(token, gauge('team-b', 'x'));
      expect([res.status, res.headers.get('www-authenticate')]).to.deep.equal([401, 'Bearer']);
      expect(await res.text()).to.match(message);
      expect(forwarded()).to.deep.equal([]);
      expect(await metrics()).to.match(new RegExp(`^jobmetrics_gateway_writer_refusals_total\\{reason="${reason}"\\} 1$`, 'm'));
    });
  }

  it("a pod's write counts for its own namespace and pod, whatever its labels say; its own labels (and a later generation) pass unchanged", async () => {
    expect((await writeAs('sidecar-a', gauge('team-b', 'victim-pod'), gauge('team-a', 'etl-x7k2p'), gauge('team-a', 'etl-x7k2p/gen2'), gauge('team-a', 'other-pod'))).status).to.equal(204);
    expect(forwarded()).to.deep.equal(['team-a/etl-x7k2p', 'team-a/etl-x7k2p', 'team-a/etl-x7k2p/gen2', 'team-a/etl-x7k2p']);
    expect(await metrics()).to.match(/^jobmetrics_gateway_relabelled_series_total\{namespace="team-a"\} 2$/m);
  });

  it('forwards carry the aggregator credentials, the immediate part and the held one alike', async () => {
    const birth: RwSeries = { labels: [['__name__', 'items_total'], ['namespace', 'team-a'], ['job', 'etl'], ['pod', 'etl-x7k2p'], ['jobmetrics_kind', 'counter']], samples: [{ value: 0, timestampMs: Date.now() - 1 }, { value: 5, timestampMs: Date.now() }] };
    expect((await writeAs('sidecar-a', birth)).status).to.equal(204);
    for (const deadline = Date.now() + 5_000; agg.received.length < 2 && Date.now() < deadline; ) await sleep(50);
    expect(agg.received.map((r) => [r.series.map((x) => x.samples.map((p) => p.value)).flat(), r.authorization])).to.deep.equal([
      [[0], 'Basic am9ibWV0cmljczpzM2NyZXQ='],
      [[5], 'Basic am9ibWV0cmljczpzM2NyZXQ='],
    ]);
  });

  it("the trusted recorder's labels are kept (it writes every namespace's outcomes)", async () => {
    // As the recorder sends it: shared/remote-write.ts with the token's Authorization header.
    const sent = await sendWriteRequest(`${gw.url}/api/v1/write`, encodeWriteRequest([gauge('team-b', 'run/0a1b'), gauge('team-c', 'run/2c3d')]), { timeoutMs: 5_000, authorization: 'Bearer recorder' });
    expect(sent).to.deep.equal({ ok: true, status: 204 });
    expect(forwarded()).to.deep.equal(['team-b/run/0a1b', 'team-c/run/2c3d']);
  });

  it('one review per token: later writes use the remembered answer, refusals too', async () => {
    for (let i = 0; i < 3; i++) expect((await writeAs('sidecar-a', gauge('team-a', 'etl-x7k2p'))).status).to.equal(204);
    for (let i = 0; i < 3; i++) expect((await writeAs('forged', gauge('team-a', 'etl-x7k2p'))).status).to.equal(401);
    expect(reviews).to.deep.equal(['sidecar-a', 'forged']);
    const text = await metrics();
    expect(text).to.match(/^jobmetrics_gateway_token_reviews_total\{result="authenticated"\} 1$/m);
    expect(text).to.match(/^jobmetrics_gateway_token_reviews_total\{result="refused"\} 1$/m);
    expect(text).to.match(/^jobmetrics_gateway_token_cache_hits_total 4$/m);
  });

  it('the API server not answering: 503 with Retry-After (the sender retries), not remembered', async () => {
    apiDown = true;
    const res = await writeAs('sidecar-a', gauge('team-a', 'etl-x7k2p'));
    expect([res.status, res.headers.get('retry-after')]).to.deep.equal([503, '1']);
    expect(await res.text()).to.match(/TokenReview failed: connect ECONNREFUSED/);
    apiDown = false;
    expect((await writeAs('sidecar-a', gauge('team-a', 'etl-x7k2p'))).status).to.equal(204);
    expect(reviews).to.deep.equal(['sidecar-a', 'sidecar-a']);
    expect(await metrics()).to.match(/^jobmetrics_gateway_writer_refusals_total\{reason="unavailable"\} 1$/m);
  });
});
