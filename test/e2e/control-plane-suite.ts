/**
 * A real control plane (scripts/cluster/control-plane.ts: etcd, kube-apiserver,
 * kube-controller-manager, on loopback) for one end-to-end suite.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startControlPlane, type ControlPlane } from '../../scripts/cluster/control-plane.ts';

export interface ControlPlaneSuiteOptions {
  /** Runs while the control plane starts (e.g. compiling the webhook). */
  readonly whileStarting?: () => void | Promise<void>;
  /** Runs before the control plane stops (e.g. stopping the suite's webhooks). */
  readonly beforeStop?: () => Promise<void>;
}

export interface ControlPlaneSuite {
  /** The running control plane; throws before `before all` has started it. */
  readonly plane: () => ControlPlane;
  /** The suite's folder: the control plane's logs and data, and whatever else the suite keeps. */
  readonly dir: () => string;
}

/**
 * Registers the suite's hooks: `before all` starts a control plane in a fresh temporary folder
 * (`jobmetrics-e2e-<name>-…`), `after all` stops it and removes the folder, unless a test failed:
 * then the logs are kept and the folder is printed. A suite's own `before` hooks, registered after
 * this call, run once the control plane is up.
 */
export function useControlPlane(name: string, o: ControlPlaneSuiteOptions = {}): ControlPlaneSuite {
  let cp: ControlPlane | undefined;
  let dir = '';
  let failed = false;

  before(async function () {
    this.timeout(180_000);
    dir = await mkdtemp(join(tmpdir(), `jobmetrics-e2e-${name}-`));
    const starting = startControlPlane({ dir });
    // Reported when awaited below; this only keeps a failure during whileStarting from counting as unhandled.
    starting.catch(() => undefined);
    try {
      await o.whileStarting?.();
    } finally {
      // Even when whileStarting failed: `after all` then stops the control plane that did start.
      cp = await starting;
    }
  });
  afterEach(function () {
    if (this.currentTest?.state === 'failed') failed = true;
  });
  after(async function () {
    this.timeout(60_000);
    await o.beforeStop?.();
    await cp?.stop();
    if (failed) console.log(`    logs kept in ${dir}`);
    else if (dir) await rm(dir, { recursive: true, force: true });
  });

  return {
    plane: () => {
      if (!cp) throw new Error('control plane not started');
      return cp;
    },
    dir: () => dir,
  };
}
