#!/usr/bin/env node
/**
 * `jobmetrics-webhook`: loads the settings, picks the sidecar mode, gets a certificate (files or
 * bootstrap), serves, and shuts down gracefully on SIGTERM (docs/webhook.md).
 *
 * It never stops serving because the API server is unreachable: mode `auto` then injects legacy
 * sidecars (they work on every version) and retries the version probe; the TLS bootstrap serves a
 * temporary self-signed certificate, reports not ready, and retries.
 */
import { readFileSync } from 'node:fs';
import { createLogger, type Logger } from '../shared/log.ts';
import type { SidecarMode } from '../shared/names.ts';
import { handleCommandLine } from '../shared/command-line.ts';
import { formatConfigErrors, loadSettings, WEBHOOK_COMMAND_LINE, type WebhookSettings } from './config.ts';
import { JobOwnerCache } from './job-owner.ts';
import { containerImage, sidecarImageBeside } from './sidecar-image.ts';
import type { KubeApi } from './kube-api.ts';
import { createMetrics, type WebhookMetrics } from './metrics.ts';
import { chooseMode, type ModeChoice } from './mode.ts';
import { createWebhookServer, type WebhookServer } from './server.ts';
import { fingerprint, readTlsDir, watchTlsDir, type TlsMaterial, type TlsWatch } from './tls.ts';

const RETRY_MIN_MS = 5_000;
const RETRY_MAX_MS = 60_000;
const BOOTSTRAP_RESYNC_MS = 3_600_000;

async function main(): Promise<void> {
  const options = handleCommandLine(process.argv.slice(2), WEBHOOK_COMMAND_LINE);
  const configPath = options.get('--config');
  const loaded = loadSettings({ ...(configPath !== undefined && { configPath }), env: process.env, readFile: (p) => readFileSync(p, 'utf8') });
  if (!loaded.ok) {
    createLogger({ component: 'webhook' }).error('invalid settings; not starting', {
      errors: loaded.errors,
      summary: formatConfigErrors(loaded.errors),
    });
    process.exitCode = 2;
    return;
  }
  const settings = loaded.settings;
  const log = createLogger({ component: 'webhook', level: settings.logLevel });
  const metrics = createMetrics();
  const timers: NodeJS.Timeout[] = [];
  const later = (fn: () => void, ms: number): void => {
    const t = setTimeout(fn, ms);
    t.unref();
    timers.push(t);
  };

  // Only when there is an API to talk to.
  const kube: KubeApi | { unavailable: string } =
    settings.kube.kubeconfig !== undefined || settings.kube.inCluster
      ? await (await import('./kube-api.ts')).createKubeApi(settings.kube)
      : { unavailable: 'no kubeconfig set and not running in a cluster (KUBERNETES_SERVICE_HOST unset)' };
  const api: KubeApi | undefined = 'unavailable' in kube ? undefined : kube;
  if (!api) log.warn('no API access', { reason: 'unavailable' in kube ? kube.unavailable : '' });

  // --- sidecar image --------------------------------------------------------------------------
  // Left empty, it follows the webhook's own image (webhook/sidecar-image.ts). Without it the
  // webhook does not start: not ready, so with failurePolicy Ignore Job pods go uninjected rather
  // than waiting on a sidecar image that may not exist.
  let sidecar = settings.sidecar;
  if (settings.sidecarImageFollows !== undefined) {
    const follows = settings.sidecarImageFollows;
    const followed = api ? await imageBesideOwn(api, follows) : { error: 'unavailable' in kube ? kube.unavailable : 'no API access' };
    if ('error' in followed) {
      log.error('cannot tell which sidecar image to inject; not starting', { pod: `${follows.namespace}/${follows.pod}`, error: followed.error });
      process.exitCode = 1;
      return;
    }
    sidecar = { ...sidecar, image: followed.image };
    log.info('sidecar image follows the webhook\'s own', { webhookImage: followed.webhookImage, sidecarImage: followed.image });
  }

  // --- sidecar mode -------------------------------------------------------------------------
  let mode: ModeChoice = chooseMode(settings.mode, api ? undefined : { ok: false, error: 'unavailable' in kube ? kube.unavailable : '' });
  if (settings.mode === 'auto' && api) {
    const probe = async (delay: number): Promise<void> => {
      const v = await api.serverVersion();
      mode = chooseMode('auto', v);
      if (v.ok) {
        log.info('sidecar mode chosen', { mode: mode.mode, reason: mode.reason, server: api.server, client: api.client });
      } else {
        log.warn('sidecar mode: API server unreachable, injecting legacy sidecars meanwhile', { mode: mode.mode, reason: mode.reason, retryInMs: delay });
        later(() => void probe(Math.min(delay * 2, RETRY_MAX_MS)), delay);
      }
    };
    await probe(RETRY_MIN_MS);
  } else {
    log.info('sidecar mode chosen', { mode: mode.mode, reason: mode.reason });
  }

  // --- TLS ------------------------------------------------------------------------------------
  let server: WebhookServer | undefined;
  let trusted = false;
  let tls: TlsMaterial;
  let tlsWatch: TlsWatch | undefined;
  const serve = (m: TlsMaterial, why: string): void => {
    if (fingerprint(m) === fingerprint(tls)) return;
    tls = m;
    server?.setTls(m);
    metrics.tlsReloads.inc({ result: 'ok' });
    log.info('serving a new certificate', { why });
  };
  if (settings.tlsDir !== undefined) {
    try {
      tls = await readTlsDir(settings.tlsDir);
    } catch (e) {
      log.error('cannot serve: the TLS directory has no usable certificate', { dir: settings.tlsDir, error: e });
      process.exitCode = 1;
      return;
    }
    trusted = true;
    tlsWatch = watchTlsDir(settings.tlsDir, tls, (m) => serve(m, `files in ${settings.tlsDir} changed`), {
      log,
      onError: () => metrics.tlsReloads.inc({ result: 'error' }),
    });
  } else {
    // node-forge (certificates) is only needed here, so it is only loaded here.
    const { caBundleOf, ensureCertificates } = await import('./bootstrap.ts');
    const { serviceDnsNames } = await import('./cert.ts');
    tls = await temporaryCertificate(settings);
    if (api) {
      const bootstrap = async (delay: number): Promise<void> => {
        try {
          const r = await ensureCertificates(api.bootstrap, {
            namespace: settings.bootstrap.serviceNamespace,
            secretName: settings.bootstrap.secretName,
            webhookConfigurationName: settings.bootstrap.webhookConfigurationName,
            dnsNames: serviceDnsNames(settings.bootstrap.serviceName, settings.bootstrap.serviceNamespace),
            now: () => new Date(),
            log,
          });
          serve({ cert: r.certs.serving.certPem + caBundleOf(r.certs, new Date()), key: r.certs.serving.keyPem }, `TLS bootstrap: Secret ${r.secret}`);
          trusted = true;
          log.info('TLS bootstrap done', { secret: r.secret, caBundle: r.caBundle });
          // Replicas converge on rotations made by another replica, and the caBundle is re-checked.
          later(() => void bootstrap(RETRY_MIN_MS), BOOTSTRAP_RESYNC_MS);
        } catch (e) {
          metrics.tlsReloads.inc({ result: 'error' });
          log.error('TLS bootstrap failed; serving a temporary certificate the API server does not trust', { error: e, retryInMs: delay });
          later(() => void bootstrap(Math.min(delay * 2, RETRY_MAX_MS)), delay);
        }
      };
      await bootstrap(RETRY_MIN_MS);
    } else {
      log.warn('no TLS directory and no API access: serving a temporary self-signed certificate; not ready', {
        hint: 'set JOBMETRICS_TLS_DIR, or run in a cluster (or with KUBECONFIG) for the bootstrap',
      });
    }
  }

  // --- workload names -------------------------------------------------------------------------
  const jobOwners =
    api && settings.workloadLookup.enabled
      ? new JobOwnerCache({
          fetch: api.fetchJob,
          ttlMs: settings.workloadLookup.cacheTtlMs,
          timeoutMs: settings.workloadLookup.timeoutMs,
          onResult: (result, namespace, job, error) => {
            metrics.lookup(result);
            if (result === 'error' || result === 'timeout') log.warn('Job owner lookup failed; the CronJob name pattern decides', { namespace, job, result, error });
          },
        })
      : undefined;

  // --- serve ----------------------------------------------------------------------------------
  server = createWebhookServer({
    listen: settings.listen,
    limits: { maxRequestBytes: settings.maxRequestBytes, ...settings.limits },
    tls,
    metrics,
    log,
    ready: () => trusted,
    review: {
      sidecar,
      mode: (): SidecarMode => mode.mode,
      now: Date.now,
      excludedNamespaces: settings.excludedNamespaces,
      ...(jobOwners && { lookupJobOwner: (ns: string, job: { name: string; uid?: string }) => jobOwners.lookup(ns, job) }),
    },
  });
  let address;
  try {
    address = await server.listen();
  } catch (e) {
    log.error('cannot listen', { listen: settings.listen, error: e });
    process.exitCode = 1;
    tlsWatch?.close();
    timers.forEach(clearTimeout);
    return;
  }
  log.info('listening', {
    address: `${address.address}:${address.port}`,
    settings: loaded.source,
    mode: mode.mode,
    tls: settings.tlsDir ?? 'bootstrap',
    workloadLookup: jobOwners !== undefined,
  });
  installShutdown(server, settings, log, metrics, () => {
    tlsWatch?.close();
    timers.forEach(clearTimeout);
  });
}

/** The image beside the one this replica's webhook container runs; a few tries, as the API may still be starting. */
async function imageBesideOwn(api: KubeApi, own: NonNullable<WebhookSettings['sidecarImageFollows']>): Promise<{ image: string; webhookImage: string } | { error: string }> {
  let lastError = '';
  for (let attempt = 0, delay = 1_000; attempt < 5; attempt++, delay *= 2) {
    if (attempt > 0) await new Promise((r) => setTimeout(r, delay));
    try {
      const webhookImage = containerImage(await api.readPod(own.namespace, own.pod), own.container);
      if (webhookImage === undefined) return { error: `pod ${own.namespace}/${own.pod} has no container ${own.container}` };
      const beside = sidecarImageBeside(webhookImage);
      return 'error' in beside ? beside : { image: beside.image, webhookImage };
    } catch (e) {
      lastError = e instanceof Error ? e.message : String(e);
    }
  }
  return { error: lastError };
}

async function temporaryCertificate(settings: WebhookSettings): Promise<TlsMaterial> {
  const { generateCa, issueServingCert, serviceDnsNames } = await import('./cert.ts');
  const now = new Date();
  const ca = generateCa({ commonName: 'jobmetrics-webhook-temporary', now, validityDays: 2 });
  const s = issueServingCert(ca, {
    dnsNames: [...serviceDnsNames(settings.bootstrap.serviceName, settings.bootstrap.serviceNamespace), 'localhost'],
    ipAddresses: ['127.0.0.1'],
    now,
    validityDays: 1,
  });
  return { cert: s.certPem, key: s.keyPem };
}

function installShutdown(server: WebhookServer, settings: WebhookSettings, log: Logger, _metrics: WebhookMetrics, cleanup: () => void): void {
  let stopping = false;
  const stop = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    // Endpoints take a moment to drop a terminating pod (the EndpointSlice controller, then every
    // node's kube-proxy): a review routed here meanwhile must still be answered, or the API server
    // creates the pod without the sidecar (failurePolicy Ignore).
    log.info('shutting down: not ready, still accepting while endpoints drop this pod', { signal, delayMs: settings.shutdownDelayMs });
    server.drain();
    setTimeout(() => {
      log.info('shutting down: no new connections, finishing in-flight reviews', { signal, inFlight: server.inFlight(), graceMs: settings.shutdownGraceMs });
      cleanup();
      void server.shutdown(settings.shutdownGraceMs).then(({ forced }) => {
        log.info('stopped', { forced });
        process.exit(0);
      });
    }, settings.shutdownDelayMs).unref();
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}

main().catch((e: unknown) => {
  createLogger({ component: 'webhook' }).error('webhook crashed at start', { error: e });
  process.exitCode = 1;
});
