/**
 * Certificate generation for the TLS bootstrap, pure apart from key generation's randomness:
 * a self-signed CA, and a serving certificate it signs for the webhook Service's DNS names.
 * The API server verifies the webhook against the `caBundle` of its configuration and the
 * Service name `<svc>.<ns>.svc` (https://kubernetes.io/docs/reference/access-authn-authz/extensible-admission-controllers/#contacting-the-webhook).
 *
 * node-forge builds the certificates; it generates RSA keys through node:crypto when available,
 * so this takes milliseconds, not seconds.
 */
import { X509Certificate, createPrivateKey, randomBytes } from 'node:crypto';
import forge from 'node-forge';

export interface CertPair {
  readonly certPem: string;
  readonly keyPem: string;
}

export interface CertInfo {
  readonly subject: string;
  readonly issuer: string;
  readonly notBefore: Date;
  readonly notAfter: Date;
  readonly dnsNames: readonly string[];
  readonly isCa: boolean;
}

const DAY_MS = 86_400_000;

/** The names the API server may use for the Service: it dials `<svc>.<ns>.svc`; the rest help humans and tools. */
export function serviceDnsNames(service: string, namespace: string, clusterDomain = 'cluster.local'): string[] {
  return [service, `${service}.${namespace}`, `${service}.${namespace}.svc`, `${service}.${namespace}.svc.${clusterDomain}`];
}

function serial(): string {
  // Positive (leading bit clear), 16 random bytes: RFC 5280 wants unique, at most 20 octets.
  const b = randomBytes(16);
  b[0] = (b[0] ?? 0) & 0x7f;
  return b.toString('hex');
}

/** A new key pair and an unsigned certificate for its public key, valid from a little before `now`. */
function newCertificate(now: Date, validityDays: number): { keys: forge.pki.rsa.KeyPair; cert: forge.pki.Certificate } {
  const keys = forge.pki.rsa.generateKeyPair({ bits: 2048, e: 0x10001 });
  const cert = forge.pki.createCertificate();
  cert.publicKey = keys.publicKey;
  cert.serialNumber = serial();
  // Backdated a little: clocks of API server and webhook are never quite the same.
  cert.validity.notBefore = new Date(now.getTime() - 5 * 60_000);
  cert.validity.notAfter = new Date(now.getTime() + validityDays * DAY_MS);
  return { keys, cert };
}

export function generateCa(opts: { commonName: string; now: Date; validityDays: number }): CertPair {
  const { keys, cert } = newCertificate(opts.now, opts.validityDays);
  const name = [{ name: 'commonName', value: opts.commonName }];
  cert.setSubject(name);
  cert.setIssuer(name);
  cert.setExtensions([
    { name: 'basicConstraints', cA: true, critical: true, pathLenConstraint: 0 },
    { name: 'keyUsage', keyCertSign: true, cRLSign: true, digitalSignature: true, critical: true },
    { name: 'subjectKeyIdentifier' },
  ]);
  cert.sign(keys.privateKey, forge.md.sha256.create());
  return pemPair(cert, keys.privateKey);
}

/**
 * forge writes PEM with CRLF line ends (RFC 7468 allows both); Kubernetes, kubectl and OpenSSL
 * write LF, and a Secret or caBundle that reads the same as theirs is easier to diff and inspect.
 */
function pemPair(cert: forge.pki.Certificate, key: forge.pki.PrivateKey): CertPair {
  const lf = (pem: string): string => pem.replace(/\r\n/g, '\n');
  return { certPem: lf(forge.pki.certificateToPem(cert)), keyPem: lf(forge.pki.privateKeyToPem(key)) };
}

export function issueServingCert(
  ca: CertPair,
  opts: { dnsNames: readonly string[]; ipAddresses?: readonly string[]; now: Date; validityDays: number },
): CertPair {
  const caCert = forge.pki.certificateFromPem(ca.certPem);
  const caKey = forge.pki.privateKeyFromPem(ca.keyPem);
  const { keys, cert } = newCertificate(opts.now, opts.validityDays);
  cert.setSubject([{ name: 'commonName', value: opts.dnsNames[0] ?? 'jobmetrics-webhook' }]);
  cert.setIssuer(caCert.subject.attributes);
  cert.setExtensions([
    { name: 'basicConstraints', cA: false, critical: true },
    { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, critical: true },
    { name: 'extKeyUsage', serverAuth: true },
    // Go's TLS (the API server) ignores the CN and checks only the SANs.
    {
      name: 'subjectAltName',
      altNames: [
        ...opts.dnsNames.map((value) => ({ type: 2, value })),
        ...(opts.ipAddresses ?? []).map((ip) => ({ type: 7, ip })),
      ],
    },
    { name: 'subjectKeyIdentifier' },
    { name: 'authorityKeyIdentifier', keyIdentifier: caCert.generateSubjectKeyIdentifier().getBytes() },
  ]);
  cert.sign(caKey, forge.md.sha256.create());
  return pemPair(cert, keys.privateKey);
}

/** What a PEM certificate says, read with node:crypto (an independent parser from forge). */
export function describeCert(pem: string): CertInfo {
  const x = new X509Certificate(pem);
  const dnsNames = (x.subjectAltName ?? '')
    .split(', ')
    .filter((s) => s.startsWith('DNS:'))
    .map((s) => s.slice(4));
  return {
    subject: x.subject,
    issuer: x.issuer,
    notBefore: new Date(x.validFrom),
    notAfter: new Date(x.validTo),
    dnsNames,
    isCa: x.ca,
  };
}

/** True when `certPem` was signed by `caPem`'s key and names `caPem` as its issuer. */
export function isSignedBy(certPem: string, caPem: string): boolean {
  try {
    const cert = new X509Certificate(certPem);
    const ca = new X509Certificate(caPem);
    return cert.checkIssued(ca) && cert.verify(ca.publicKey);
  } catch {
    return false;
  }
}

/** True when the private key belongs to the certificate. */
export function keyMatches(pair: CertPair): boolean {
  try {
    return new X509Certificate(pair.certPem).checkPrivateKey(createPrivateKey(pair.keyPem));
  } catch {
    return false;
  }
}

