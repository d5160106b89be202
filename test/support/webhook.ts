/**
 * The real `jobmetrics-webhook` process for integration tests: certificates made by
 * webhook/cert.ts, a TLS client that verifies the CA, AdmissionReviews of Job pods, and the
 * process started on loopback with the settings a test gives it (env only, as in a pod).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import type { X509Certificate } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';
import { generateCa, issueServingCert, type CertPair } from '../../webhook/cert.ts';
import type { RawPod } from '../../webhook/pod.ts';

export const ROOT = fileURLToPath(new URL('../../', import.meta.url));
/** The webhook from source, through tsx. */
export const MAIN_FROM_SOURCE = ['--import', 'tsx', join(ROOT, 'webhook/main.ts')];
const NOW = new Date();

export function makeCerts(cn: string): { ca: CertPair; serving: CertPair } {
  const ca = generateCa({ commonName: cn, now: NOW, validityDays: 2 });
  const serving = issueServingCert(ca, { dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'], now: NOW, validityDays: 1 });
  return { ca, serving };
}

export interface Answer {
  status: number;
  body: string;
  json: () => { response: { uid: string; allowed: boolean; patch?: string; patchType?: string; status?: { code: number; message: string } } };
  peerCert?: X509Certificate;
}

export function call(port: number, ca: string, method: string, path: string, body?: string | Buffer, headers: Record<string, string> = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request(
      { host: '127.0.0.1', port, method, path, ca, servername: 'localhost', agent: false, headers: { 'content-type': 'application/json', ...headers } },
      (res) => {
        const chunks: Buffer[] = [];
        const peer = res.socket && 'getPeerX509Certificate' in res.socket ? (res.socket as import('node:tls').TLSSocket).getPeerX509Certificate() : undefined;
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          resolve({ status: res.statusCode ?? 0, body: text, json: () => JSON.parse(text), ...(peer && { peerCert: peer }) });
        });
      },
    );
    req.on('error', reject);
    if (body !== undefined) req.end(body);
    else req.end();
  });
}

/**
 * Sends a POST's headers, declaring a body of `contentLength` bytes, and none of the body: the
 * answer a server gives before it reads a body.
 */
export function headersOnly(port: number, ca: string, path: string, contentLength: number): Promise<Answer & { connection: string }> {
  return new Promise((resolve, reject) => {
    const req = request(
      { host: '127.0.0.1', port, method: 'POST', path, ca, servername: 'localhost', agent: false, headers: { 'content-type': 'application/json', 'content-length': String(contentLength) } },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          resolve({ status: res.statusCode ?? 0, body: text, json: () => JSON.parse(text), connection: String(res.headers['connection']) });
          req.destroy();
        });
      },
    );
    req.on('error', reject);
    req.flushHeaders();
  });
}

export function review(object: unknown, extra: Record<string, unknown> = {}, uid = 'e911857d-c318-11e8-bbad-025000000001'): string {
  return JSON.stringify({
    apiVersion: 'admission.k8s.io/v1',
    kind: 'AdmissionReview',
    request: {
      uid,
      kind: { group: '', version: 'v1', kind: 'Pod' },
      resource: { group: '', version: 'v1', resource: 'pods' },
      namespace: 'reports',
      operation: 'CREATE',
      object,
      dryRun: false,
      ...extra,
    },
  });
}

export function podOfJob(job: string): RawPod {
  const pod = parse(readFileSync(join(ROOT, 'test/fixtures/pod-cronjob.yaml'), 'utf8')) as RawPod;
  pod.metadata!.generateName = `${job}-`;
  pod.metadata!.ownerReferences![0]!.name = job;
  for (const l of ['batch.kubernetes.io/job-name', 'job-name']) pod.metadata!.labels![l] = job;
  return pod;
}


export interface Webhook {
  proc: ChildProcess;
  port: number;
  logs: string[];
  exited: Promise<number | null>;
}

/** `command`: node's arguments; default the webhook from source. */
export function startWebhook(env: Record<string, string>, command: readonly string[] = MAIN_FROM_SOURCE): Promise<Webhook> {
  return new Promise((resolve, reject) => {
    const proc = spawn(process.execPath, [...command], {
      cwd: ROOT,
      env: { PATH: process.env['PATH'] ?? '', HOME: process.env['HOME'] ?? '', JOBMETRICS_LISTEN: '127.0.0.1:0', ...env },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    const logs: string[] = [];
    const exited = new Promise<number | null>((r) => proc.on('exit', (code) => r(code)));
    let buf = '';
    const timer = setTimeout(() => reject(new Error(`webhook did not start:\n${logs.join('\n')}`)), 20_000);
    proc.stderr!.on('data', (chunk: Buffer) => {
      buf += chunk.toString('utf8');
      let nl;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        logs.push(line);
        try {
          const rec = JSON.parse(line) as { msg?: string; address?: string };
          if (rec.msg === 'listening' && rec.address) {
            clearTimeout(timer);
            resolve({ proc, port: Number(rec.address.split(':').at(-1)), logs, exited });
          }
        } catch {
          // not a log line
        }
      }
    });
    void exited.then((code) => reject(new Error(`webhook exited with ${code}:\n${logs.join('\n')}`)));
  });
}


/**
 * The webhook serving a fresh certificate (of a new CA named `caName`) from `<dir>/tls`, laid out
 * flat as `tls.crt` and `tls.key`, with `env` added; `ca` is the PEM a client verifies it with.
 */
export async function startWebhookWithFreshCerts(
  dir: string,
  caName: string,
  env: Record<string, string> = {},
  command: readonly string[] = MAIN_FROM_SOURCE,
): Promise<{ wh: Webhook; ca: string }> {
  const tls = join(dir, 'tls');
  mkdirSync(tls);
  const certs = makeCerts(caName);
  writeFileSync(join(tls, 'tls.crt'), certs.serving.certPem);
  writeFileSync(join(tls, 'tls.key'), certs.serving.keyPem);
  const wh = await startWebhook({ JOBMETRICS_TLS_DIR: tls, ...env }, command);
  return { wh, ca: certs.ca.certPem };
}

/** SIGKILL, if it still runs (a suite's `after all`, whatever state a test left it in). */
export function killWebhook(wh: Webhook | undefined): void {
  if (wh && wh.proc.exitCode === null) wh.proc.kill('SIGKILL');
}
