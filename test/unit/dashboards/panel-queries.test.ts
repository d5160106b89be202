import { expect } from 'chai';
import { panelQueries, substitute, variableNames } from '../../../dashboards/src/panel-queries.ts';

describe('dashboards: panel queries with the variables replaced', () => {
  const values = { namespace: 'batch', job: 'nightly', counter: 'items_total', histogram: 'item_seconds', __range: '3600s', __rate_interval: '1m' };

  const cases: Array<[string, string]> = [
    ['increase(x{namespace="$namespace", job="$job"}[$__range])', 'increase(x{namespace="batch", job="nightly"}[3600s])'],
    ['rate(${counter}{job="$job"}[$__rate_interval])', 'rate(items_total{job="nightly"}[1m])'],
    ['${histogram}_bucket', 'item_seconds_bucket'],
    ['${namespace:regex}', 'batch'],
    ['no variable', 'no variable'],
  ];
  for (const [text, want] of cases) {
    it(`${text} → ${want}`, () => expect(substitute(text, values)).to.equal(want));
  }

  it('a variable without a value is an error (no query leaves with a $ in it), and $job does not match inside $jobs', () => {
    expect(() => substitute('x{job="$jobs"}', values)).to.throw('no value for the variable $jobs in "x{job=\\"$jobs\\"}"');
    expect(() => substitute('${datasource}', values)).to.throw('no value for the variable ${datasource}');
  });

  it('every target of every panel, collapsed rows included, in order, instant or over the range', () => {
    const dashboard = {
      templating: { list: [{ name: 'datasource' }, { name: 'namespace' }] },
      panels: [
        { type: 'row', title: 'A row' },
        { type: 'stat', title: 'Runs in $namespace', targets: [{ refId: 'A', expr: 'sum(x{namespace="$namespace"})', instant: true, legendFormat: 'runs' }] },
        { type: 'row', title: 'Collapsed', panels: [{ type: 'timeseries', title: 'Rate', targets: [{ refId: 'A', expr: 'rate(y[$__rate_interval])' }, { refId: 'B', expr: 'z' }] }] },
      ],
    };
    expect(variableNames(dashboard)).to.deep.equal(['datasource', 'namespace']);
    expect(panelQueries(dashboard, values)).to.deep.equal([
      { panel: 'Runs in batch', refId: 'A', expr: 'sum(x{namespace="batch"})', instant: true, legend: 'runs' },
      { panel: 'Rate', refId: 'A', expr: 'rate(y[1m])', instant: false },
      { panel: 'Rate', refId: 'B', expr: 'z', instant: false },
    ]);
  });
});
