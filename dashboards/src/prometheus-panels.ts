/**
 * What the three dashboards share: the Prometheus datasource as a variable, and panels whose
 * queries read that datasource. Every query is PromQL over the series docs/promql.md describes;
 * a panel over the dashboard's time range (`[$__range]`, instant) reads as "in the selected
 * period", a time series panel (`[$__rate_interval]`) as "while it ran". The queries are run
 * against a real Prometheus after real workloads by test/e2e/real-pods.test.ts
 * (dashboards/src/panel-queries.ts extracts them).
 */
import {
  DatasourceVariableBuilder,
  QueryVariableBuilder,
  RowBuilder,
  ThresholdsConfigBuilder,
  ThresholdsMode,
  VariableRefresh,
  VariableSort,
  type DataSourceRef,
} from '@grafana/grafana-foundation-sdk/dashboard';
import { DataqueryBuilder, PromQueryFormat } from '@grafana/grafana-foundation-sdk/prometheus';
import { PanelBuilder as StatPanel } from '@grafana/grafana-foundation-sdk/stat';
import { PanelBuilder as TablePanel } from '@grafana/grafana-foundation-sdk/table';
import { PanelBuilder as TimeseriesPanel } from '@grafana/grafana-foundation-sdk/timeseries';

/** The datasource every panel and variable reads: the dashboard's `datasource` variable. */
export const DATASOURCE: DataSourceRef = { type: 'prometheus', uid: '${datasource}' };

/** The Prometheus datasource, chosen when the dashboard is opened (Grafana's default one first). */
export function datasourceVariable(): DatasourceVariableBuilder {
  return new DatasourceVariableBuilder('datasource').label('Prometheus').type('prometheus');
}

/** A variable whose values are a label's values in Prometheus (`label_values(<selector>, <label>)`). */
export function labelValuesVariable(
  name: string,
  label: string,
  selector: string,
  opts: { readonly title: string; readonly all?: boolean; readonly regex?: string },
): QueryVariableBuilder {
  const query = `label_values(${selector}, ${label})`;
  const v = new QueryVariableBuilder(name)
    .label(opts.title)
    .datasource(DATASOURCE)
    .query(query)
    .definition(query)
    .refresh(VariableRefresh.OnTimeRangeChanged)
    .sort(VariableSort.AlphabeticalAsc);
  if (opts.regex !== undefined) v.regex(opts.regex);
  // "All" stands for every value as a regex (used with =~), not Grafana's list of the values seen.
  if (opts.all === true) v.multi(true).includeAll(true).allValue('.+');
  return v;
}

/**
 * A PromQL query. Instant ones are read at the end of the dashboard's time range: as one frame per
 * series for a stat panel (a value per series, named by the legend), as rows of one table for a
 * table panel.
 */
function target(expr: string, legend: string | undefined, kind: 'stat' | 'table' | 'range', refId: string): DataqueryBuilder {
  const q = new DataqueryBuilder().refId(refId).expr(expr).datasource(DATASOURCE);
  if (legend !== undefined) q.legendFormat(legend);
  if (kind === 'range') return q.range();
  return q.instant().format(kind === 'table' ? PromQueryFormat.Table : PromQueryFormat.TimeSeries);
}

export interface Query {
  readonly expr: string;
  /** Grafana's legend, e.g. `{{job}}`; omitted: every label. */
  readonly legend?: string;
}

const refIds = (queries: readonly Query[]) => queries.map((q, i) => ({ ...q, refId: String.fromCharCode(65 + i) }));

/** A single number (or one per series) read at the end of the range. */
export function stat(title: string, description: string, queries: readonly Query[], opts: { unit?: string; decimals?: number } = {}): StatPanel {
  const p = new StatPanel().title(title).description(description).datasource(DATASOURCE).unit(opts.unit ?? 'short');
  if (opts.decimals !== undefined) p.decimals(opts.decimals);
  for (const q of refIds(queries)) p.withTarget(target(q.expr, q.legend, 'stat', q.refId));
  return p;
}

/** Rows of label values and numbers read at the end of the range (one column per query). */
export function table(
  title: string,
  description: string,
  queries: readonly Query[],
  opts: { unit?: string; decimals?: number; redAbove?: number; countColumns?: readonly string[] } = {},
): TablePanel {
  const p = new TablePanel().title(title).description(description).datasource(DATASOURCE).unit(opts.unit ?? 'short');
  if (opts.decimals !== undefined) p.decimals(opts.decimals);
  if (opts.redAbove !== undefined) p.thresholds(redAbove(opts.redAbove));
  // One row per label set across the queries; Grafana names a table query's number column
  // "Value" (one query) or "Value #<refId>": each gets its query's legend. The "Time" column of an
  // instant query says nothing here.
  const named = refIds(queries);
  if (named.length > 1) p.withTransformation({ id: 'merge', options: {} });
  const renameByName = Object.fromEntries(named.flatMap((q) => (q.legend === undefined ? [] : [[named.length > 1 ? `Value #${q.refId}` : 'Value', q.legend]])));
  p.withTransformation({ id: 'organize', options: { excludeByName: { Time: true }, renameByName } });
  // Columns (named by their legend) that count things, in a table of another unit.
  for (const column of opts.countColumns ?? []) p.overrideByName(column, [{ id: 'unit', value: 'none' }, { id: 'decimals', value: 0 }]);
  for (const q of refIds(queries)) p.withTarget(target(q.expr, q.legend, 'table', q.refId));
  return p;
}

/** Lines over the dashboard's time range. */
export function timeseries(title: string, description: string, queries: readonly Query[], opts: { unit?: string; min?: number; redAbove?: number } = {}): TimeseriesPanel {
  const p = new TimeseriesPanel().title(title).description(description).datasource(DATASOURCE).unit(opts.unit ?? 'short');
  if (opts.min !== undefined) p.min(opts.min);
  if (opts.redAbove !== undefined) p.thresholds(redAbove(opts.redAbove));
  for (const q of refIds(queries)) p.withTarget(target(q.expr, q.legend, 'range', q.refId));
  return p;
}

function redAbove(limit: number): ThresholdsConfigBuilder {
  return new ThresholdsConfigBuilder().mode(ThresholdsMode.Absolute).steps([
    { value: null, color: 'green' },
    { value: limit, color: 'red' },
  ]);
}

export function row(title: string): RowBuilder {
  return new RowBuilder(title);
}
