/**
 * `npm run render-dashboards`: the Grafana dashboards (docs/dashboards.md), built as typed code in
 * dashboards/src/ (one module per dashboard, the Grafana Foundation SDK), written as Grafana's JSON
 * to dashboards/<name>.json (imported by hand, or as ConfigMaps by the kustomization there) and to
 * charts/jobmetrics/dashboards/<name>.json (the chart's ConfigMaps). `--check` only says whether
 * the written files are up to date (exit 1 when not); test/unit/dashboards/render.test.ts checks
 * the same.
 */
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { jobmetricsDashboard } from '../dashboards/src/jobmetrics.ts';
import { overviewDashboard } from '../dashboards/src/overview.ts';
import { workloadDashboard } from '../dashboards/src/workload.ts';
import { ROOT } from './cluster/paths.ts';
import { writeOrCheck } from './rendered-files.ts';

/** Where the rendered JSON goes: every file in each folder. */
export const DASHBOARD_DIRS = [join(ROOT, 'dashboards'), join(ROOT, 'charts', 'jobmetrics', 'dashboards')] as const;

/** Each dashboard's file name and JSON text, in a fixed order. */
export function renderDashboards(): { file: string; text: string }[] {
  return [overviewDashboard(), workloadDashboard(), jobmetricsDashboard()].map((d) => {
    if (d.uid === undefined) throw new Error(`dashboard ${d.title ?? '?'}: no uid`);
    // overview.json, workload.json, self.json: the chart names its ConfigMaps after them.
    return { file: `${d.uid.replace(/^jobmetrics-/, '')}.json`, text: `${JSON.stringify(d, null, 2)}\n` };
  });
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const rendered = renderDashboards();
  const files = DASHBOARD_DIRS.flatMap((dir) => rendered.map(({ file, text }) => ({ path: join(dir, file), text })));
  process.exit(writeOrCheck(files, 'npm run render-dashboards', process.argv));
}
