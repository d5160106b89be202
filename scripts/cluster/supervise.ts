/**
 * The process that holds a running local cluster for `npm run cluster -- up`: it starts the
 * cluster, writes `ready.json` for the command that launched it, and on SIGTERM (from
 * `npm run cluster -- down`) stops and cleans up everything. Its children die with it, so a
 * killed supervisor leaves no daemons; `down` cleans the host state either way.
 */
import { writeFileSync, rmSync } from 'node:fs';
import { startCluster } from './cluster.ts';
import { clusterImages } from './images.ts';
import { supervisorFiles } from './state.ts';

const dir = process.env['JOBMETRICS_CLUSTER_DIR'];
if (!dir) {
  console.error('supervise: JOBMETRICS_CLUSTER_DIR is not set');
  process.exit(2);
}
const files = supervisorFiles(dir);
rmSync(files.ready, { force: true });
writeFileSync(files.pid, String(process.pid));

let stopping: Promise<void> | undefined;
try {
  const cluster = await startCluster({ dir, images: clusterImages(), progress: (line) => console.log(line) });
  const shutdown = (): void => {
    stopping ??= (async () => {
      console.log('stopping the cluster');
      await cluster.stop();
      rmSync(files.ready, { force: true });
      rmSync(files.pid, { force: true });
      console.log('stopped');
      process.exit(0);
    })();
  };
  process.on('SIGTERM', shutdown);
  process.on('SIGINT', shutdown);
  writeFileSync(files.ready, JSON.stringify({ kubeconfig: cluster.kubeconfigPath, prometheusUrl: cluster.prometheusUrl, prometheusAuthorization: cluster.prometheusAuthorization, registry: cluster.registry, pid: process.pid }));
  // Hold the event loop until a signal.
  setInterval(() => {}, 3_600_000);
} catch (err) {
  console.error(err instanceof Error ? err.message : String(err));
  writeFileSync(files.failed, err instanceof Error ? err.message : String(err));
  rmSync(files.pid, { force: true });
  process.exit(1);
}
