import { expect } from 'chai';
import { asWriter, jwtExpiry, parseTrustedWriters, POD_NAME_EXTRA, TokenReviewer, writerFromReview, type TokenReviewStatus } from '../../../gateway/writer-identity.ts';
import type { RwSeries } from '../../../shared/remote-write.ts';

const AUD = 'jobmetrics-gateway';
const trusted = new Set(['jobmetrics:jobmetrics-recorder']);
const sa = (ns: string, name: string, pod?: string, audiences = [AUD]): TokenReviewStatus => ({
  authenticated: true,
  audiences,
  user: { username: `system:serviceaccount:${ns}:${name}`, ...(pod !== undefined && { extra: { [POD_NAME_EXTRA]: [pod] } }) },
});

describe('gateway writer-identity: what a TokenReview makes of the writer', () => {
  const rows: Array<[what: string, status: TokenReviewStatus, want: string]> = [
    ["a sidecar's token", sa('team-a', 'default', 'etl-x7k2p'), 'pod team-a/etl-x7k2p (team-a:default)'],
    ["the recorder's token (trusted)", sa('jobmetrics', 'jobmetrics-recorder', 'rec-1'), 'trusted jobmetrics:jobmetrics-recorder'],
    ['a trusted name in another namespace is not trusted', sa('team-a', 'jobmetrics-recorder', 'p'), 'pod team-a/p (team-a:jobmetrics-recorder)'],
    ['not authenticated', { authenticated: false, error: 'token expired' }, 'invalid-token: the API server did not authenticate the token: token expired'],
    ['authenticated for other audiences only', sa('team-a', 'default', 'p', ['https://kubernetes.default.svc']), 'invalid-token: the token is not for audience jobmetrics-gateway'],
    ['a user, not a service account', { authenticated: true, audiences: [AUD], user: { username: 'alice' } }, 'not-a-service-account: alice is not a service account'],
    ['a service account bound to no pod', sa('team-a', 'ci'), 'not-bound-to-a-pod: the token of service account team-a:ci is not bound to a pod (the sidecar\'s projected token is; a token from the TokenRequest API without a pod is not)'],
  ];
  for (const [what, status, want] of rows) {
    it(`${what} → ${want}`, () => {
      const v = writerFromReview(status, { audience: AUD, trusted });
      const got = !v.ok ? `${v.reason}: ${v.message}` : v.writer.kind === 'pod' ? `pod ${v.writer.namespace}/${v.writer.pod} (${v.writer.serviceAccount})` : `trusted ${v.writer.serviceAccount}`;
      expect(got).to.equal(want);
    });
  }

  it('parses JOBMETRICS_TRUSTED_WRITERS: a list of namespace:serviceaccount, blanks ignored, anything else refused', () => {
    const ok = parseTrustedWriters(' jobmetrics:jobmetrics-recorder, ,ops:exporter.v2 ');
    expect(ok.ok && [...ok.writers]).to.deep.equal(['jobmetrics:jobmetrics-recorder', 'ops:exporter.v2']);
    expect(parseTrustedWriters('')).to.deep.equal({ ok: true, writers: new Set() });
    for (const bad of ['recorder', 'Jobmetrics:rec', 'a:b:c', 'system:serviceaccount:a:b']) expect(parseTrustedWriters(bad).ok, bad).to.equal(false);
  });
});

describe("gateway writer-identity: a pod's series as it may write them", () => {
  const s = (labels: Array<[string, string]>): RwSeries => ({ labels: [['__name__', 'x'], ...labels], samples: [{ value: 1, timestampMs: 1 }] });
  const pod = { kind: 'pod', namespace: 'team-a', pod: 'etl-1', serviceAccount: 'team-a:default' } as const;
  const rows: Array<[what: string, labels: Array<[string, string]>, want: string]> = [
    ['its own namespace and pod', [['namespace', 'team-a'], ['pod', 'etl-1']], 'team-a etl-1 same'],
    ['its own pod, a later generation', [['namespace', 'team-a'], ['pod', 'etl-1/gen12']], 'team-a etl-1/gen12 same'],
    ['another namespace', [['namespace', 'team-b'], ['pod', 'etl-1']], 'team-a etl-1 relabelled'],
    ['another pod of its namespace', [['namespace', 'team-a'], ['pod', 'etl-2']], 'team-a etl-1 relabelled'],
    ['a generation-looking suffix that is not one', [['namespace', 'team-a'], ['pod', 'etl-1/gen']], 'team-a etl-1 relabelled'],
    ['a pod named as a prefix of its own', [['namespace', 'team-a'], ['pod', 'etl-1x/gen1']], 'team-a etl-1 relabelled'],
    ['no namespace, no pod', [['job', 'j']], 'team-a etl-1 relabelled'],
  ];
  for (const [what, labels, want] of rows) {
    it(`${what} → ${want}`, () => {
      const input = s(labels);
      const out = asWriter([input], pod);
      const got = out.series[0]!;
      const get = (n: string): string | undefined => got.labels.find((l) => l[0] === n)?.[1];
      expect(`${get('namespace')} ${get('pod')} ${out.relabelled === 0 ? 'same' : 'relabelled'}`).to.equal(want);
      expect(got.labels.filter((l) => l[0] === 'namespace' || l[0] === 'pod')).to.have.length(2);
      if (out.relabelled === 0) expect(got).to.equal(input);
    });
  }
  it('a trusted writer: the very same series', () => {
    const input = [s([['namespace', 'team-b'], ['pod', 'run/1']])];
    expect(asWriter(input, { kind: 'trusted', serviceAccount: 'jobmetrics:jobmetrics-recorder' })).to.deep.equal({ series: input, relabelled: 0 });
  });
});

describe('gateway writer-identity: TokenReviewer remembers answers, never past the token', () => {
  const jwt = (exp?: number): string => `h.${Buffer.from(JSON.stringify(exp === undefined ? {} : { exp })).toString('base64url')}.sig`;
  it('reads exp from a JWT without verifying it; anything else has none', () => {
    expect(jwtExpiry(jwt(1_700_000_000))).to.equal(1_700_000_000_000);
    for (const t of ['opaque', 'a.b.c', jwt()]) expect(jwtExpiry(t), t).to.equal(undefined);
  });

  it('accepted answers last 5 min or until the token expires, refused ones 30 s; the oldest go past maxEntries', async () => {
    let now = 1_000_000;
    const reviews: string[] = [];
    const r = new TokenReviewer({
      audience: AUD,
      trusted,
      maxEntries: 3,
      now: () => now,
      review: async (token) => {
        reviews.push(token.slice(0, 12));
        return { status: token.startsWith('bad') ? { authenticated: false } : sa('team-a', 'default', 'p') };
      },
    });
    const soon = jwt((now + 60_000) / 1000); // expires in 1 min
    const long = jwt((now + 3_600_000) / 1000); // in 1 h
    const check = async (t: string): Promise<boolean> => (await r.check(`Bearer ${t}`)).ok;
    expect([await check(soon), await check(long), await check('bad-1')]).to.deep.equal([true, true, false]);
    expect(reviews).to.have.length(3);
    now += 30_000 - 1;
    await check(soon), await check(long), await check('bad-1');
    expect(reviews, 'all remembered').to.have.length(3);
    now += 1;
    await check('bad-1');
    expect(reviews, 'refusal forgotten after 30 s').to.have.length(4);
    now += 30_000;
    await check(soon);
    expect(reviews, 'forgotten when the token expired (1 min), before 5 min').to.have.length(5);
    await check(long);
    expect(reviews, 'the 1 h token is still remembered').to.have.length(5);
    await check('bad-2');
    await check('bad-3');
    expect(r.size).to.equal(3);
    await check(long);
    expect(reviews.at(-1), 'pushed out by newer answers').to.equal(long.slice(0, 12));
  });

  it('concurrent checks of one token share one review; a malformed header is no token', async () => {
    let calls = 0;
    const r = new TokenReviewer({ audience: AUD, trusted, review: async () => (calls++, await new Promise((res) => setTimeout(res, 20)), { status: sa('a', 'b', 'c') }) });
    const all = await Promise.all([1, 2, 3].map(() => r.check('Bearer same')));
    expect([calls, all.every((c) => c.ok)]).to.deep.equal([1, true]);
    for (const h of [undefined, '', 'Basic dXNlcjpwdw==', 'Bearer', 'Bearer two words']) expect((await r.check(h)).ok === false && (await r.check(h) as { reason: string }).reason, String(h)).to.equal('no-token');
  });
});
