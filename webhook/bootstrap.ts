/**
 * TLS bootstrap without cert-manager: a CA and a serving certificate kept in one Secret, so every
 * replica serves the same certificate, and the CA written into the MutatingWebhookConfiguration's
 * caBundle. The decisions are pure functions (`planSecret`, `caBundlePatch`); `ensureCertificates`
 * runs them against a small API interface, which webhook/kube-api.ts implements over node:https
 * and tests implement with a fake.
 *
 * Replicas race at first start: each tries to create the Secret, the API server lets exactly one
 * win (409 AlreadyExists for the others), and the losers read and use the winner's.
 */
import type { Operation } from 'fast-json-patch';
import type { Logger } from '../shared/log.ts';
import { describeCert, generateCa, isSignedBy, issueServingCert, keyMatches, type CertPair } from './cert.ts';

export interface StoredCerts {
  readonly ca: CertPair;
  readonly serving: CertPair;
  /** The CA this one replaced, still trusted through the caBundle until it expires. */
  readonly previousCaPem?: string;
}

/** Secret keys: `tls.crt`/`tls.key` as type kubernetes.io/tls requires, plus the CA. */
export const SECRET_KEYS = {
  cert: 'tls.crt',
  key: 'tls.key',
  caCert: 'ca.crt',
  caKey: 'ca.key',
  previousCa: 'ca-previous.crt',
} as const;

export const VALIDITY = {
  caDays: 3650,
  servingDays: 365,
  /** Reissue the serving certificate when less than this is left. */
  servingRenewDays: 30,
  /** Make a new CA when less than this is left; the old one stays in the caBundle meanwhile. */
  caRenewDays: 365,
} as const;

const DAY_MS = 86_400_000;
const b64 = (s: string): string => Buffer.from(s, 'utf8').toString('base64');
const unb64 = (s: string): string => Buffer.from(s, 'base64').toString('utf8');

export function encodeSecretData(c: StoredCerts): Record<string, string> {
  return {
    [SECRET_KEYS.cert]: b64(c.serving.certPem),
    [SECRET_KEYS.key]: b64(c.serving.keyPem),
    [SECRET_KEYS.caCert]: b64(c.ca.certPem),
    [SECRET_KEYS.caKey]: b64(c.ca.keyPem),
    ...(c.previousCaPem !== undefined && { [SECRET_KEYS.previousCa]: b64(c.previousCaPem) }),
  };
}

export function decodeSecretData(data: Readonly<Record<string, string>> | undefined): StoredCerts | { error: string } {
  const get = (k: string): string | undefined => (data?.[k] === undefined ? undefined : unb64(data[k]));
  const cert = get(SECRET_KEYS.cert);
  const key = get(SECRET_KEYS.key);
  const caCert = get(SECRET_KEYS.caCert);
  const caKey = get(SECRET_KEYS.caKey);
  const missing = [
    [SECRET_KEYS.cert, cert],
    [SECRET_KEYS.key, key],
    [SECRET_KEYS.caCert, caCert],
    [SECRET_KEYS.caKey, caKey],
  ]
    .filter(([, v]) => v === undefined || v === '')
    .map(([k]) => k);
  if (missing.length > 0 || !cert || !key || !caCert || !caKey) return { error: `Secret lacks ${missing.join(', ')}` };
  const previousCaPem = get(SECRET_KEYS.previousCa);
  return {
    ca: { certPem: caCert, keyPem: caKey },
    serving: { certPem: cert, keyPem: key },
    ...(previousCaPem !== undefined && previousCaPem !== '' && { previousCaPem }),
  };
}

export type SecretPlan =
  | { readonly action: 'use' }
  | { readonly action: 'reissue-serving'; readonly reason: string }
  | { readonly action: 'regenerate'; readonly reason: string };

/** What to do with what the Secret holds. Pure. */
export function planSecret(
  stored: StoredCerts | { error: string } | undefined,
  opts: { readonly dnsNames: readonly string[]; readonly now: Date },
): SecretPlan {
  if (stored === undefined) return { action: 'regenerate', reason: 'no Secret yet' };
  if ('error' in stored) return { action: 'regenerate', reason: stored.error };
  const now = opts.now.getTime();
  let ca;
  try {
    ca = describeCert(stored.ca.certPem);
  } catch (cause) {
    return { action: 'regenerate', reason: `CA certificate unreadable: ${(cause as Error).message}` };
  }
  if (!ca.isCa || !keyMatches(stored.ca)) return { action: 'regenerate', reason: 'CA certificate and key do not match' };
  if (ca.notAfter.getTime() - now < VALIDITY.caRenewDays * DAY_MS) {
    return { action: 'regenerate', reason: `CA expires ${ca.notAfter.toISOString()}` };
  }
  let serving;
  try {
    serving = describeCert(stored.serving.certPem);
  } catch (cause) {
    return { action: 'reissue-serving', reason: `serving certificate unreadable: ${(cause as Error).message}` };
  }
  if (!keyMatches(stored.serving)) return { action: 'reissue-serving', reason: 'serving certificate and key do not match' };
  if (!isSignedBy(stored.serving.certPem, stored.ca.certPem)) return { action: 'reissue-serving', reason: 'serving certificate not signed by the CA' };
  const missing = opts.dnsNames.filter((n) => !serving.dnsNames.includes(n));
  if (missing.length > 0) return { action: 'reissue-serving', reason: `serving certificate lacks ${missing.join(', ')}` };
  if (serving.notAfter.getTime() - now < VALIDITY.servingRenewDays * DAY_MS) {
    return { action: 'reissue-serving', reason: `serving certificate expires ${serving.notAfter.toISOString()}` };
  }
  return { action: 'use' };
}

/** Carries out a plan that is not `use`. */
export function applyPlan(
  stored: StoredCerts | { error: string } | undefined,
  plan: Exclude<SecretPlan, { action: 'use' }>,
  opts: { readonly dnsNames: readonly string[]; readonly now: Date },
): StoredCerts {
  const issue = (ca: CertPair): CertPair =>
    issueServingCert(ca, { dnsNames: opts.dnsNames, now: opts.now, validityDays: VALIDITY.servingDays });
  const usable = stored !== undefined && !('error' in stored) ? stored : undefined;
  if (plan.action === 'reissue-serving' && usable) {
    return { ...usable, serving: issue(usable.ca) };
  }
  const ca = generateCa({ commonName: 'jobmetrics-webhook-ca', now: opts.now, validityDays: VALIDITY.caDays });
  const previous = usable && stillValid(usable.ca.certPem, opts.now) ? usable.ca.certPem : undefined;
  return { ca, serving: issue(ca), ...(previous !== undefined && { previousCaPem: previous }) };
}

function stillValid(pem: string, now: Date): boolean {
  try {
    return describeCert(pem).notAfter.getTime() > now.getTime();
  } catch {
    return false;
  }
}

/** The CA bundle to trust: the current CA, and the previous one while it is valid. */
export function caBundleOf(c: StoredCerts, now: Date): string {
  const prev = c.previousCaPem !== undefined && stillValid(c.previousCaPem, now) ? c.previousCaPem : '';
  return `${c.ca.certPem.trim()}\n${prev.trim()}`.trim() + '\n';
}

export interface WebhookConfigView {
  readonly webhooks?: readonly { readonly name: string; readonly clientConfig?: { readonly caBundle?: string } }[];
}

/**
 * JSON patch that sets caBundle on every webhook of the configuration that does not have it yet.
 * A `test` of each entry's name guards the index against a concurrent edit of the list. Pure.
 */
export function caBundlePatch(config: WebhookConfigView, bundlePem: string): Operation[] {
  const want = b64(bundlePem);
  const ops: Operation[] = [];
  (config.webhooks ?? []).forEach((w, i) => {
    if (w.clientConfig?.caBundle === want) return;
    ops.push({ op: 'test', path: `/webhooks/${i}/name`, value: w.name });
    ops.push({ op: 'add', path: `/webhooks/${i}/clientConfig/caBundle`, value: want });
  });
  return ops;
}

export interface BootstrapApi {
  /** `null` when the Secret does not exist. */
  readSecret(namespace: string, name: string): Promise<{ data?: Record<string, string>; resourceVersion?: string } | null>;
  /** `exists` on 409 AlreadyExists: another replica was first. */
  createSecret(namespace: string, name: string, data: Record<string, string>): Promise<'created' | 'exists'>;
  /** `conflict` on 409: someone changed it since it was read. */
  replaceSecret(namespace: string, name: string, data: Record<string, string>, resourceVersion: string): Promise<'replaced' | 'conflict'>;
  /** `null` when the configuration does not exist (yet). */
  readWebhookConfiguration(name: string): Promise<WebhookConfigView | null>;
  patchWebhookConfiguration(name: string, ops: Operation[]): Promise<void>;
}

export interface BootstrapOptions {
  readonly namespace: string;
  readonly secretName: string;
  readonly webhookConfigurationName: string;
  readonly dnsNames: readonly string[];
  readonly now: () => Date;
  readonly log: Logger;
}

export interface BootstrapResult {
  readonly certs: StoredCerts;
  readonly secret: 'used' | 'created' | 'replaced' | 'taken-from-another-replica';
  readonly caBundle: 'patched' | 'unchanged' | 'no-configuration';
}

/** Makes sure the Secret holds good certificates and the caBundle trusts them. Throws with context on API errors. */
export async function ensureCertificates(api: BootstrapApi, o: BootstrapOptions): Promise<BootstrapResult> {
  const target = `secret ${o.namespace}/${o.secretName}`;
  let certs: StoredCerts | undefined;
  let secret: BootstrapResult['secret'] = 'used';
  let lostRace = false;
  for (let attempt = 1; attempt <= 3 && certs === undefined; attempt++) {
    const existing = await api.readSecret(o.namespace, o.secretName);
    const stored = existing ? decodeSecretData(existing.data) : undefined;
    const plan = planSecret(stored, { dnsNames: o.dnsNames, now: o.now() });
    if (plan.action === 'use') {
      certs = stored as StoredCerts;
      secret = lostRace ? 'taken-from-another-replica' : 'used';
      break;
    }
    o.log.info('TLS bootstrap: writing new certificates', { target, action: plan.action, reason: plan.reason, attempt });
    const next = applyPlan(stored, plan, { dnsNames: o.dnsNames, now: o.now() });
    if (!existing) {
      const r = await api.createSecret(o.namespace, o.secretName, encodeSecretData(next));
      if (r === 'exists') {
        lostRace = true;
        continue;
      }
      certs = next;
      secret = 'created';
    } else {
      const r = await api.replaceSecret(o.namespace, o.secretName, encodeSecretData(next), existing.resourceVersion ?? '');
      if (r === 'conflict') {
        lostRace = true;
        continue;
      }
      certs = next;
      secret = 'replaced';
    }
  }
  if (certs === undefined) throw new Error(`TLS bootstrap: ${target} kept changing under us in 3 attempts`);

  const config = await api.readWebhookConfiguration(o.webhookConfigurationName);
  if (config === null) {
    o.log.warn('TLS bootstrap: MutatingWebhookConfiguration not found; caBundle not written', {
      target: `mutatingwebhookconfiguration ${o.webhookConfigurationName}`,
    });
    return { certs, secret, caBundle: 'no-configuration' };
  }
  const ops = caBundlePatch(config, caBundleOf(certs, o.now()));
  if (ops.length === 0) return { certs, secret, caBundle: 'unchanged' };
  await api.patchWebhookConfiguration(o.webhookConfigurationName, ops);
  return { certs, secret, caBundle: 'patched' };
}
