/** Certificate generation (checked with node:crypto) and the TLS bootstrap decisions against a fake API. */
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { expect } from 'chai';
import type { Operation } from 'fast-json-patch';
import { silentLogger } from '../../../shared/log.ts';
import {
  applyPlan,
  caBundleOf,
  caBundlePatch,
  decodeSecretData,
  encodeSecretData,
  ensureCertificates,
  planSecret,
  type BootstrapApi,
  type StoredCerts,
  type WebhookConfigView,
} from '../../../webhook/bootstrap.ts';
import { describeCert, generateCa, isSignedBy, issueServingCert, keyMatches, serviceDnsNames } from '../../../webhook/cert.ts';

const DAY = 86_400_000;
const NOW = new Date('2026-01-15T12:00:00Z');
const NAMES = serviceDnsNames('jobmetrics-webhook', 'jobmetrics');

describe('webhook certificates', function () {
  this.timeout(60_000);
  let certs: StoredCerts;
  before(() => {
    certs = applyPlan(undefined, { action: 'regenerate', reason: 'test' }, { dnsNames: NAMES, now: NOW });
  });

  it('names every DNS name of the Service', () => {
    expect(NAMES).to.deep.equal([
      'jobmetrics-webhook',
      'jobmetrics-webhook.jobmetrics',
      'jobmetrics-webhook.jobmetrics.svc',
      'jobmetrics-webhook.jobmetrics.svc.cluster.local',
    ]);
    const x = new X509Certificate(certs.serving.certPem);
    for (const n of NAMES) expect(x.checkHost(n), n).to.equal(n);
    expect(x.checkHost('evil.example.com')).to.equal(undefined);
  });

  it('the CA signs the serving certificate; the serving certificate is no CA', () => {
    const ca = new X509Certificate(certs.ca.certPem);
    const serving = new X509Certificate(certs.serving.certPem);
    expect(ca.ca).to.equal(true);
    expect(serving.ca).to.equal(false);
    expect(serving.checkIssued(ca)).to.equal(true);
    expect(serving.verify(ca.publicKey)).to.equal(true);
    expect(isSignedBy(certs.serving.certPem, certs.ca.certPem)).to.equal(true);
    expect(isSignedBy(certs.ca.certPem, certs.serving.certPem)).to.equal(false);
    expect(serving.keyUsage ?? []).to.include('1.3.6.1.5.5.7.3.1'); // serverAuth
  });

  it('keys match their certificates', () => {
    expect(keyMatches(certs.serving)).to.equal(true);
    expect(keyMatches(certs.ca)).to.equal(true);
    expect(keyMatches({ certPem: certs.serving.certPem, keyPem: certs.ca.keyPem })).to.equal(false);
    expect(new X509Certificate(certs.serving.certPem).checkPrivateKey(createPrivateKey(certs.serving.keyPem))).to.equal(true);
  });

  it('is valid now, backdated a little, for the documented periods', () => {
    const ca = describeCert(certs.ca.certPem);
    const serving = describeCert(certs.serving.certPem);
    expect(ca.notBefore.getTime()).to.be.lessThan(NOW.getTime());
    expect(Math.round((ca.notAfter.getTime() - NOW.getTime()) / DAY)).to.equal(3650);
    expect(Math.round((serving.notAfter.getTime() - NOW.getTime()) / DAY)).to.equal(365);
  });

  it('round-trips through Secret data', () => {
    const data = encodeSecretData(certs);
    expect(Object.keys(data).sort()).to.deep.equal(['ca.crt', 'ca.key', 'tls.crt', 'tls.key']);
    expect(decodeSecretData(data)).to.deep.equal(certs);
    expect(decodeSecretData({ 'tls.crt': data['tls.crt']! })).to.deep.equal({ error: 'Secret lacks tls.key, ca.crt, ca.key' });
  });

  describe('planSecret', () => {
    it('uses good certificates', () => {
      expect(planSecret(certs, { dnsNames: NAMES, now: NOW })).to.deep.equal({ action: 'use' });
    });
    it('regenerates when there is nothing or garbage', () => {
      expect(planSecret(undefined, { dnsNames: NAMES, now: NOW }).action).to.equal('regenerate');
      expect(planSecret({ error: 'Secret lacks tls.crt' }, { dnsNames: NAMES, now: NOW }).action).to.equal('regenerate');
      expect(planSecret({ ...certs, ca: { ...certs.ca, certPem: 'junk' } }, { dnsNames: NAMES, now: NOW }).action).to.equal('regenerate');
    });
    it('reissues the serving certificate for a renamed Service', () => {
      const p = planSecret(certs, { dnsNames: serviceDnsNames('other', 'jobmetrics'), now: NOW });
      expect(p.action).to.equal('reissue-serving');
      expect(p.action !== 'use' && p.reason).to.match(/lacks other, other\.jobmetrics/);
    });
    it('reissues the serving certificate 30 days before it expires, and the CA a year before', () => {
      expect(planSecret(certs, { dnsNames: NAMES, now: new Date(NOW.getTime() + 340 * DAY) }).action).to.equal('reissue-serving');
      expect(planSecret(certs, { dnsNames: NAMES, now: new Date(NOW.getTime() + 3300 * DAY) }).action).to.equal('regenerate');
    });
    it('reissues a serving certificate another CA signed', () => {
      const stranger = generateCa({ commonName: 'x', now: NOW, validityDays: 10 });
      const foreign = issueServingCert(stranger, { dnsNames: NAMES, now: NOW, validityDays: 100 });
      expect(planSecret({ ...certs, serving: foreign }, { dnsNames: NAMES, now: NOW })).to.deep.equal({
        action: 'reissue-serving',
        reason: 'serving certificate not signed by the CA',
      });
    });
    it('a new CA keeps the old one in the bundle while it is valid', () => {
      const next = applyPlan(certs, { action: 'regenerate', reason: 'CA expires soon' }, { dnsNames: NAMES, now: NOW });
      expect(next.previousCaPem).to.equal(certs.ca.certPem);
      const bundle = caBundleOf(next, NOW);
      expect(bundle).to.contain(next.ca.certPem.trim()).and.contain(certs.ca.certPem.trim());
      expect(caBundleOf(next, new Date(NOW.getTime() + 4000 * DAY))).to.equal(next.ca.certPem.trim() + '\n');
    });
  });

  describe('caBundlePatch', () => {
    const config: WebhookConfigView = {
      webhooks: [{ name: 'pods.jobmetrics.io', clientConfig: {} }, { name: 'optin.jobmetrics.io', clientConfig: { caBundle: 'b2xk' } }],
    };
    it('sets the bundle on every webhook, guarded by a test of the name', () => {
      const ops = caBundlePatch(config, 'PEM\n');
      expect(ops).to.deep.equal([
        { op: 'test', path: '/webhooks/0/name', value: 'pods.jobmetrics.io' },
        { op: 'add', path: '/webhooks/0/clientConfig/caBundle', value: Buffer.from('PEM\n').toString('base64') },
        { op: 'test', path: '/webhooks/1/name', value: 'optin.jobmetrics.io' },
        { op: 'add', path: '/webhooks/1/clientConfig/caBundle', value: Buffer.from('PEM\n').toString('base64') },
      ]);
    });
    it('is empty when every bundle is already right', () => {
      const b = Buffer.from('PEM\n').toString('base64');
      expect(caBundlePatch({ webhooks: [{ name: 'a', clientConfig: { caBundle: b } }] }, 'PEM\n')).to.deep.equal([]);
    });
  });

  describe('ensureCertificates against a fake API', () => {
    class FakeApi implements BootstrapApi {
      secret: { data: Record<string, string>; resourceVersion: string } | null = null;
      config: WebhookConfigView | null = { webhooks: [{ name: 'pods.jobmetrics.io', clientConfig: {} }] };
      patches: Operation[][] = [];
      /** Simulates another replica creating the Secret between our read and our create. */
      raceWith: Record<string, string> | undefined;
      calls: string[] = [];
      async readSecret() {
        this.calls.push('read');
        return this.secret && { ...this.secret };
      }
      async createSecret(_ns: string, _n: string, data: Record<string, string>) {
        this.calls.push('create');
        if (this.raceWith) {
          this.secret = { data: this.raceWith, resourceVersion: '1' };
          this.raceWith = undefined;
        }
        if (this.secret) return 'exists' as const;
        this.secret = { data, resourceVersion: '1' };
        return 'created' as const;
      }
      async replaceSecret(_ns: string, _n: string, data: Record<string, string>, rv: string) {
        this.calls.push('replace');
        if (this.secret?.resourceVersion !== rv) return 'conflict' as const;
        this.secret = { data, resourceVersion: String(Number(rv) + 1) };
        return 'replaced' as const;
      }
      async readWebhookConfiguration() {
        return this.config;
      }
      async patchWebhookConfiguration(_name: string, ops: Operation[]) {
        this.patches.push(ops);
        const add = ops.find((o) => o.op === 'add') as { value: string } | undefined;
        this.config = { webhooks: [{ name: 'pods.jobmetrics.io', clientConfig: { caBundle: add?.value ?? '' } }] };
      }
    }
    const opts = { namespace: 'jobmetrics', secretName: 'jobmetrics-webhook-tls', webhookConfigurationName: 'jobmetrics', dnsNames: NAMES, now: () => NOW, log: silentLogger };

    it('first replica: creates the Secret and patches the caBundle; second replica: reuses both', async () => {
      const api = new FakeApi();
      const first = await ensureCertificates(api, opts);
      expect(first.secret).to.equal('created');
      expect(first.caBundle).to.equal('patched');
      expect(api.patches).to.have.length(1);
      const second = await ensureCertificates(api, opts);
      expect(second.secret).to.equal('used');
      expect(second.caBundle).to.equal('unchanged');
      expect(second.certs).to.deep.equal(first.certs);
    });

    it('losing the create race (409) takes the other replica\'s certificates', async () => {
      const api = new FakeApi();
      api.raceWith = encodeSecretData(certs);
      const r = await ensureCertificates(api, opts);
      expect(r.secret).to.equal('taken-from-another-replica');
      expect(r.certs).to.deep.equal(certs);
      expect(api.calls).to.deep.equal(['read', 'create', 'read']);
    });

    it('replaces a Secret that lacks keys, with its resourceVersion', async () => {
      const api = new FakeApi();
      api.secret = { data: { 'tls.crt': 'eA==' }, resourceVersion: '7' };
      const r = await ensureCertificates(api, opts);
      expect(r.secret).to.equal('replaced');
      expect(api.secret?.resourceVersion).to.equal('8');
    });

    it('without a MutatingWebhookConfiguration it still serves, and says so', async () => {
      const api = new FakeApi();
      api.config = null;
      expect((await ensureCertificates(api, opts)).caBundle).to.equal('no-configuration');
    });
  });
});
