/**
 * Table-driven `mutate` tests on real pod specs (test/fixtures/pod-*.yaml). For every case:
 * the result matches its golden, the JSON patch the server would send turns the original into
 * exactly that result, the result is a valid Pod by the Kubernetes schema, and mutating the
 * result again changes nothing.
 */
import { expect } from 'chai';
import jsonPatch from 'fast-json-patch';
import { Pod } from 'kubernetes-models/v1/Pod';
import { ANNOTATION, SIDECAR_CONTAINER, SIDECAR_ENV, STATE_VOLUME, TOKEN_VOLUME, type SidecarMode } from '../../../shared/names.ts';
const TOKEN_MOUNT = { name: TOKEN_VOLUME.name, mountPath: TOKEN_VOLUME.mountPath, readOnly: true };
import { defaultSettings } from '../../../webhook/config.ts';
import { mutate, type MutateContext, type SkipReason } from '../../../webhook/mutate.ts';
import type { RawContainer, RawPod } from '../../../webhook/pod.ts';
import { diffPatch } from '../../../webhook/review.ts';
import type { JobOwnerLookup } from '../../../webhook/workload.ts';
import { checkGolden, describeDifference, loadPod } from './golden.ts';

/** Fixed, so the CronJob name pattern (2015 … tomorrow) gives the same answer on every run. */
const NOW = Date.UTC(2026, 0, 15, 12, 0, 0);

interface Case {
  readonly name: string;
  /** The source fixture when it is shared with another case. */
  readonly from?: string;
  readonly mode: SidecarMode;
  readonly jobOwner?: JobOwnerLookup;
  readonly expect:
    | {
        readonly inject: true;
        readonly scrapeUrl: string;
        readonly workload: string;
        readonly interval?: string;
        readonly container?: string;
        /** JOBMETRICS_FLUSH_TIMEOUT; default: the configured 10s (the fixtures' grace period is 30 s). */
        readonly flushTimeout?: string;
      }
    | { readonly inject: false; readonly reason: SkipReason; readonly status?: RegExp };
}

const cronJobFound: JobOwnerLookup = { state: 'found', cronJob: 'nightly-report' };

const cases: readonly Case[] = [
  { name: 'pod-cronjob', mode: 'legacy', jobOwner: cronJobFound, expect: { inject: true, scrapeUrl: 'http://localhost:9090/metrics', workload: 'nightly-report', container: 'report' } },
  // The lookup timed out: the CronJob controller's naming pattern gives the same name.
  { name: 'pod-cronjob-native', from: 'pod-cronjob', mode: 'native', jobOwner: { state: 'unavailable', reason: 'timeout after 1s' }, expect: { inject: true, scrapeUrl: 'http://localhost:9090/metrics', workload: 'nightly-report' } },
  // The API says no CronJob owns this Job, even though its name looks like a CronJob run's.
  { name: 'pod-cronjob-not-owned', from: 'pod-cronjob', mode: 'legacy', jobOwner: { state: 'found', cronJob: null }, expect: { inject: true, scrapeUrl: 'http://localhost:9090/metrics', workload: 'nightly-report-29430720' } },
  { name: 'pod-istio-legacy', mode: 'legacy', jobOwner: { state: 'found', cronJob: null }, expect: { inject: true, scrapeUrl: 'http://localhost:8080/internal/metrics', workload: 'etl-backfill' } },
  { name: 'pod-istio-legacy-native-mode', from: 'pod-istio-legacy', mode: 'native', jobOwner: { state: 'found', cronJob: null }, expect: { inject: true, scrapeUrl: 'http://localhost:8080/internal/metrics', workload: 'etl-backfill' } },
  { name: 'pod-istio-native', mode: 'native', jobOwner: { state: 'found', cronJob: null }, expect: { inject: true, scrapeUrl: 'http://localhost:8080/metrics', workload: 'etl-compact', container: 'etl' } },
  { name: 'pod-linkerd', mode: 'legacy', jobOwner: { state: 'found', cronJob: null }, expect: { inject: true, scrapeUrl: 'http://localhost:9100/metrics', workload: 'reindex', container: 'indexer' } },
  { name: 'pod-vault-agent', mode: 'native', jobOwner: { state: 'found', cronJob: null }, expect: { inject: true, scrapeUrl: 'http://localhost:9102/metrics', workload: 'invoice-run', container: 'billing' } },
  { name: 'pod-init-containers', mode: 'native', jobOwner: { state: 'found', cronJob: null }, expect: { inject: true, scrapeUrl: 'http://localhost:8000/metrics', workload: 'train-resnet', container: 'trainer' } },
  { name: 'pod-init-containers-legacy', from: 'pod-init-containers', mode: 'legacy', expect: { inject: true, scrapeUrl: 'http://localhost:8000/metrics', workload: 'train-resnet', container: 'trainer' } },
  { name: 'pod-annotations-good', mode: 'native', expect: { inject: true, scrapeUrl: 'https://localhost:8443/internal/metrics?format=prometheus', workload: 'ledger-export', interval: '250ms', container: 'exporter' } },
  { name: 'pod-prometheus-annotations', mode: 'legacy', expect: { inject: true, scrapeUrl: 'http://localhost:10902/debug/metrics', workload: 'compact-blocks' } },
  { name: 'pod-port-by-name', mode: 'legacy', expect: { inject: true, scrapeUrl: 'http://localhost:7070/metrics', workload: 'render-thumbs', container: 'render' } },
  { name: 'pod-bare-opted-in', mode: 'legacy', expect: { inject: true, scrapeUrl: 'http://localhost:9090/metrics', workload: 'one-off-backfill' } },
  { name: 'pod-host-pid', mode: 'native', expect: { inject: false, reason: 'host-pid', status: /^skipped: hostPID: true/ } },
  { name: 'pod-share-process-namespace-false', mode: 'native', expect: { inject: false, reason: 'share-process-namespace-false' } },
  { name: 'pod-annotations-bad-interval', mode: 'native', expect: { inject: false, reason: 'invalid-annotation', status: /jobmetrics\.io\/interval="5ms": "5ms" is outside 100ms…1m/ } },
  { name: 'pod-annotations-bad-port', mode: 'native', expect: { inject: false, reason: 'invalid-annotation', status: /jobmetrics\.io\/port="70000"/ } },
  { name: 'pod-annotations-bad-port-negative', mode: 'native', expect: { inject: false, reason: 'invalid-annotation', status: /jobmetrics\.io\/port="-5": must be an integer port number 1…65535/ } },
  { name: 'pod-container-port-invalid', mode: 'native', expect: { inject: false, reason: 'invalid-port', status: /container port "metrics" of container worker is -5, not an integer port number 1…65535/ } },
  { name: 'pod-annotations-bad-container', mode: 'native', expect: { inject: false, reason: 'invalid-annotation', status: /no such container \(have worker\)/ } },
  { name: 'pod-annotations-bad-scheme', mode: 'native', expect: { inject: false, reason: 'invalid-annotation', status: /prometheus\.io\/scheme="ftp": must be http or https/ } },
  { name: 'pod-annotations-unknown-port-name', mode: 'native', expect: { inject: false, reason: 'invalid-annotation', status: /no container port has that name/ } },
  { name: 'pod-annotations-bad-workload', mode: 'native', expect: { inject: false, reason: 'invalid-annotation', status: /jobmetrics\.io\/workload="export-\$\(JOBMETRICS_POD\)": must not contain "\$\("/ } },
  // The namespace comes from the pod here (the review passes the AdmissionRequest's), and the
  // context gives no excludedNamespaces: the built-in default applies.
  { name: 'pod-namespace-excluded', mode: 'native', expect: { inject: false, reason: 'namespace-excluded', status: /^skipped: namespace kube-system is excluded/ } },
  { name: 'pod-state-volume-conflict', mode: 'native', expect: { inject: false, reason: 'volume-conflict', status: /^skipped: the pod has a volume named jobmetrics-state/ } },
  { name: 'pod-token-volume-conflict', mode: 'native', expect: { inject: false, reason: 'volume-conflict', status: /^skipped: the pod has a volume named jobmetrics-token, the name of the sidecar's token volume/ } },
  { name: 'pod-runs-as-sidecar-uid', mode: 'native', expect: { inject: false, reason: 'main-runs-as-sidecar-uid', status: /^skipped: container thumbnailer runs as uid 65531/ } },
  { name: 'pod-no-port', mode: 'native', expect: { inject: false, reason: 'no-metrics-port' } },
  { name: 'pod-opted-out', mode: 'native', expect: { inject: false, reason: 'opted-out' } },
  // The kubelet restarts the main container in the same pod: only a native sidecar follows that.
  { name: 'pod-on-failure', mode: 'native', jobOwner: { state: 'found', cronJob: null }, expect: { inject: true, scrapeUrl: 'http://localhost:9090/metrics', workload: 'retry-import-7f3k', container: 'report', flushTimeout: '3s' } },
  { name: 'pod-on-failure-legacy', from: 'pod-on-failure', mode: 'legacy', jobOwner: { state: 'found', cronJob: null }, expect: { inject: false, reason: 'restart-needs-native', status: /^skipped: restartPolicy OnFailure needs native sidecar mode/ } },
  { name: 'pod-not-a-job', mode: 'native', expect: { inject: false, reason: 'not-a-job-pod' } },
  { name: 'pod-already-injected', mode: 'native', expect: { inject: false, reason: 'already-injected' } },
];

function contextFor(c: Case): MutateContext {
  return {
    sidecar: defaultSettings().sidecar,
    mode: c.mode,
    nowMs: NOW,
    ...(c.jobOwner !== undefined && { jobOwner: c.jobOwner }),
  };
}

function sidecarOf(pod: RawPod): RawContainer | undefined {
  return [...(pod.spec.initContainers ?? []), ...pod.spec.containers].find((c) => c.name === SIDECAR_CONTAINER);
}

function envOf(c: RawContainer): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const e of (c['env'] ?? []) as { name: string; value?: string; valueFrom?: unknown }[]) out[e.name] = e.value ?? e.valueFrom;
  return out;
}

describe('webhook mutate: golden pod fixtures', () => {
  for (const c of cases) {
    describe(c.name, () => {
      const source = c.from ?? c.name;
      const original = loadPod(source);
      const frozen = structuredClone(original);
      const ctx = contextFor(c);
      const result = mutate(original, ctx);

      it('does not modify its input', () => {
        expect(describeDifference(frozen, original)).to.equal('');
      });

      it('matches the golden', () => {
        const header = [
          `Generated by test/unit/webhook/mutate-golden.test.ts from ${source}.yaml, mode ${c.mode}` +
            (c.jobOwner ? `, Job owner lookup ${JSON.stringify(c.jobOwner)}` : '') + '.',
          result.inject ? `Outcome: injected (${result.injection.workload.source})` : `Outcome: skipped, ${result.skip.reason}`,
          'Regenerate: REFRESH_GOLDEN=1 npx mocha --no-config --node-option import=tsx test/unit/webhook/mutate-golden.test.ts',
        ].join('\n');
        expect(checkGolden(c.name, result.pod, header)).to.equal('');
      });

      it(c.expect.inject ? 'injects as expected' : `skips with reason ${c.expect.reason}`, () => {
        const status = result.pod.metadata?.annotations?.[ANNOTATION.status];
        if (c.expect.inject) {
          expect(result.inject, JSON.stringify(!result.inject && result.skip)).to.equal(true);
          if (!result.inject) return;
          expect(status).to.equal('injected');
          expect(result.pod.spec.shareProcessNamespace).to.equal(true);
          const sidecar = sidecarOf(result.pod);
          expect(sidecar, 'sidecar container').to.not.equal(undefined);
          const env = envOf(sidecar!);
          expect(env[SIDECAR_ENV.scrapeUrl]).to.equal(c.expect.scrapeUrl);
          expect(env[SIDECAR_ENV.job]).to.equal(c.expect.workload);
          expect(env[SIDECAR_ENV.mode]).to.equal(c.mode);
          expect(env[SIDECAR_ENV.interval]).to.equal(c.expect.interval ?? '1s');
          expect(env[SIDECAR_ENV.pod]).to.deep.equal({ fieldRef: { fieldPath: 'metadata.name' } });
          expect(env[SIDECAR_ENV.namespace]).to.deep.equal({ fieldRef: { fieldPath: 'metadata.namespace' } });
          if (c.expect.container !== undefined) expect(result.injection.container).to.equal(c.expect.container);
          expect(env[SIDECAR_ENV.mainContainer], 'the sidecar is told which container is main').to.equal(result.injection.container);
          expect(env[SIDECAR_ENV.flushTimeout]).to.equal(c.expect.flushTimeout ?? '10s');
          // The sidecar's identity towards the gateway, in either mode: the pod's own token with
          // the gateway's audience, mounted into the sidecar alone (docs/gateway.md "Who may write what").
          expect(env[SIDECAR_ENV.writerTokenFile]).to.equal(`${TOKEN_VOLUME.mountPath}/${TOKEN_VOLUME.file}`);
          expect(result.pod.spec.volumes?.at(-1)).to.deep.equal({
            name: TOKEN_VOLUME.name,
            projected: { sources: [{ serviceAccountToken: { audience: 'jobmetrics-gateway', expirationSeconds: 3600, path: 'token' } }] },
          });
          const holders = [...(result.pod.spec.initContainers ?? []), ...result.pod.spec.containers].filter((x) => JSON.stringify(x['volumeMounts'] ?? []).includes(TOKEN_VOLUME.name));
          expect(holders.map((x) => x.name), 'the token is mounted into the sidecar only').to.deep.equal([SIDECAR_CONTAINER]);
          if (c.mode === 'native') {
            const init = result.pod.spec.initContainers ?? [];
            expect(init.at(-1)?.name, 'sidecar is the last init container').to.equal(SIDECAR_CONTAINER);
            expect(init.at(-1)?.restartPolicy).to.equal('Always');
            expect(result.pod.spec.containers.map((x) => x.name)).to.deep.equal(original.spec.containers.map((x) => x.name));
            // A restarted native sidecar goes on from what it had acknowledged (docs/sidecar.md "Restarts").
            expect(env[SIDECAR_ENV.stateDir]).to.equal(STATE_VOLUME.mountPath);
            expect(init.at(-1)?.['volumeMounts']).to.deep.equal([{ name: STATE_VOLUME.name, mountPath: STATE_VOLUME.mountPath }, TOKEN_MOUNT]);
            expect(result.pod.spec.volumes?.at(-2)).to.deep.equal({ name: STATE_VOLUME.name, emptyDir: { sizeLimit: STATE_VOLUME.sizeLimit } });
            expect(result.pod.spec.containers.some((x) => x['volumeMounts'] !== undefined && JSON.stringify(x['volumeMounts']).includes(STATE_VOLUME.name)), 'mounted into the sidecar only').to.equal(false);
          } else {
            expect(sidecar!['volumeMounts']).to.deep.equal([TOKEN_MOUNT]);
            expect(env[SIDECAR_ENV.stateDir], 'a legacy sidecar is never restarted').to.equal(undefined);
            expect(result.pod.spec.containers.at(-1)?.name).to.equal(SIDECAR_CONTAINER);
            expect(result.pod.spec.containers.at(-1)?.restartPolicy).to.equal(undefined);
            expect(result.pod.spec.initContainers ?? []).to.deep.equal(original.spec.initContainers ?? []);
          }
        } else {
          expect(result.inject).to.equal(false);
          if (result.inject) return;
          expect(result.skip.reason).to.equal(c.expect.reason);
          expect(sidecarOf(result.pod) === undefined || c.expect.reason === 'already-injected').to.equal(true);
          if (c.expect.reason === 'already-injected') {
            expect(result.pod, 'already-injected pods come back untouched').to.equal(original);
          } else {
            expect(status).to.equal(`skipped: ${result.skip.message}`);
            if (c.expect.status) expect(status).to.match(c.expect.status);
            // Nothing but the status annotation changes on a skip.
            const ops = diffPatch(original, result.pod);
            expect(ops.map((o) => o.path)).to.satisfy((paths: string[]) =>
              paths.every((p) => p === '/metadata/annotations' || p === '/metadata/annotations/jobmetrics.io~1status'),
            );
          }
        }
      });

      it('the JSON patch turns the original into the result', () => {
        const ops = diffPatch(original, result.pod);
        const patched = jsonPatch.applyPatch(structuredClone(original), ops, true, false).newDocument;
        expect(describeDifference(result.pod, patched)).to.equal('');
      });

      it('the result is a valid Pod by the Kubernetes schema', () => {
        expect(() => new Pod(original as never).validate(), 'the fixture itself').to.not.throw();
        expect(() => new Pod(result.pod as never).validate()).to.not.throw();
      });

      it('mutating the result again changes nothing', () => {
        const again = mutate(result.pod, ctx);
        expect(describeDifference(result.pod, again.pod)).to.equal('');
        expect(diffPatch(result.pod, again.pod)).to.deep.equal([]);
      });
    });
  }
});
