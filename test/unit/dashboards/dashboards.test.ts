/**
 * The dashboards (dashboards/src/, docs/dashboards.md): the JSON in dashboards/ and in the chart is
 * what the sources render (npm run render-dashboards), every query uses only variables its
 * dashboard declares, and every jobmetrics series a query reads is one jobmetrics writes (a
 * metric of its parts, of the recorder, or a recording rule). The queries' answers are checked
 * against a real Prometheus in test/e2e/real-pods.test.ts.
 */
import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { parse, parseAllDocuments } from 'yaml';
import { controlPlaneBinaries } from '../../../scripts/cluster/control-plane.ts';
import { panelQueries, variableNames } from '../../../dashboards/src/panel-queries.ts';
import { ROOT } from '../../../scripts/cluster/paths.ts';
import { DASHBOARD_DIRS, renderDashboards } from '../../../scripts/render-dashboards.ts';

const GRAFANA_BUILTINS = ['__range', '__rate_interval', '__interval'];

/** Every TypeScript source of jobmetrics' parts, as one text. */
function sources(): string {
  return ['webhook', 'gateway', 'recorder', 'sidecar', 'shared']
    .flatMap((dir) => readdirSync(join(ROOT, dir), { recursive: true, encoding: 'utf8' }).filter((f) => f.endsWith('.ts')).map((f) => readFileSync(join(ROOT, dir, f), 'utf8')))
    .join('\n');
}

describe('dashboards: rendered from the sources, variables declared, series that exist', () => {
  const rendered = renderDashboards();

  it('three dashboards, written to dashboards/ and charts/jobmetrics/dashboards/ as the sources render them (npm run render-dashboards)', () => {
    expect(rendered.map((r) => r.file)).to.deep.equal(['overview.json', 'workload.json', 'self.json']);
    for (const dir of DASHBOARD_DIRS) {
      expect(readdirSync(dir).filter((f) => f.endsWith('.json')).sort(), dir).to.deep.equal(rendered.map((r) => r.file).sort());
      for (const { file, text } of rendered) expect(readFileSync(join(dir, file), 'utf8') === text, `${join(dir, file)} is up to date`).to.equal(true);
    }
  });

  it('every query uses only its dashboard\'s variables and Grafana\'s own; each panel reads the Prometheus datasource variable', () => {
    for (const { file, text } of rendered) {
      const dashboard = JSON.parse(text) as Parameters<typeof panelQueries>[0] & Parameters<typeof variableNames>[0];
      const panels = (JSON.parse(text) as { panels: { type: string; datasource?: unknown }[] }).panels;
      const names = variableNames(dashboard);
      expect(names[0], file).to.equal('datasource');
      const values = Object.fromEntries([...names, ...GRAFANA_BUILTINS].map((n) => [n, 'x']));
      expect(panelQueries(dashboard, values).length, file).to.be.above(5);
      for (const p of panels.filter((x) => x.type !== 'row')) expect(p.datasource, file).to.deep.equal({ type: 'prometheus', uid: '${datasource}' });
    }
  });

  it('every jobmetrics series a query reads is a metric of jobmetrics\' sources or a recording rule', () => {
    const code = sources();
    const rules = parse(readFileSync(join(ROOT, 'manifests', 'aggregator', 'jobmetrics.rules.yml'), 'utf8')) as { groups: { rules: { record?: string }[] }[] };
    const records = new Set(rules.groups.flatMap((g) => g.rules.flatMap((r) => (r.record ? [r.record] : []))));
    const read = new Set<string>();
    for (const { text } of rendered) {
      const dashboard = JSON.parse(text) as Parameters<typeof panelQueries>[0] & Parameters<typeof variableNames>[0];
      const values = Object.fromEntries([...variableNames(dashboard), ...GRAFANA_BUILTINS].map((n) => [n, 'x']));
      for (const q of panelQueries(dashboard, values)) for (const name of q.expr.match(/[a-z_:]*jobmetrics_[a-z0-9_:]*[a-z0-9]/g) ?? []) read.add(name);
    }
    const unknown = [...read].filter((name) => {
      if (records.has(name)) return false;
      const base = name.replace(/:(max|last)$/, '').replace(/_(bucket|sum|count)$/, '');
      return !code.includes(`'${base}'`);
    });
    expect(unknown).to.deep.equal([]);
    expect(read.size).to.be.at.least(20);
  });

  it('manifests/monitoring/dashboards (kubectl kustomize): one ConfigMap per dashboard in jobmetrics, labelled grafana_dashboard: "1", holding the rendered JSON', () => {
    const dir = join(ROOT, 'manifests', 'monitoring', 'dashboards');
    const r = spawnSync(controlPlaneBinaries().kubectl, ['kustomize', dir], { encoding: 'utf8', maxBuffer: 16 << 20 });
    expect(r.status, r.stderr).to.equal(0);
    const maps = parseAllDocuments(r.stdout).map((d) => d.toJS() as { kind: string; metadata: { name: string; namespace: string; labels: Record<string, string> }; data: Record<string, string> });
    expect(maps.map((m) => [m.kind, m.metadata.namespace, m.metadata.name, m.metadata.labels['grafana_dashboard']])).to.deep.equal([
      ['ConfigMap', 'jobmetrics', 'jobmetrics-dashboard-overview', '1'],
      ['ConfigMap', 'jobmetrics', 'jobmetrics-dashboard-self', '1'],
      ['ConfigMap', 'jobmetrics', 'jobmetrics-dashboard-workload', '1'],
    ]);
    const data = Object.assign({}, ...maps.map((m) => m.data)) as Record<string, string>;
    for (const { file, text } of rendered) expect(data[file] === text, file).to.equal(true);
  });
});
