/**
 * The recording and alerting rules (manifests/aggregator/jobmetrics.rules.yml, docs/alerts.md),
 * with Debian's promtool 2.53 (the Prometheus the project bundles): the file checks, its tests
 * (test/rules/jobmetrics.rules.test.yml) pass and cover every alert with series that fire it, and
 * the PrometheusRule rendered from it is up to date.
 */
import { expect } from 'chai';
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { parse } from 'yaml';
import { aggregatorBinaries } from '../../scripts/aggregator-stack.ts';
import { PROMETHEUS_RULE_FILE, renderPrometheusRule, RULES_FILE } from '../../scripts/render-rules.ts';

const run = promisify(execFile);
const TESTS = join(import.meta.dirname, '..', 'rules', 'jobmetrics.rules.test.yml');

interface RuleFile {
  groups: Array<{ name: string; rules: Array<{ alert?: string; record?: string }> }>;
}
interface RuleTests {
  tests: Array<{ alert_rule_test?: Array<{ alertname: string; exp_alerts: unknown[] }> }>;
}

describe('alerting and recording rules (promtool)', function () {
  this.timeout(60_000);
  const rules = parse(readFileSync(RULES_FILE, 'utf8')) as RuleFile;
  const all = rules.groups.flatMap((g) => g.rules);
  const alerts = all.flatMap((r) => (r.alert ? [r.alert] : []));

  it('promtool check rules: the file is valid, every rule counted', async () => {
    const { stdout } = await run(aggregatorBinaries().promtool, ['check', 'rules', RULES_FILE]);
    expect(stdout).to.include(`SUCCESS: ${all.length} rules found`);
    expect({ alerts: alerts.length, records: all.length - alerts.length }).to.deep.equal({ alerts: 13, records: 8 });
  });

  it('promtool test rules: every case passes', async () => {
    const { stdout } = await run(aggregatorBinaries().promtool, ['test', 'rules', TESTS]);
    expect(stdout.trim().split('\n').at(-1)?.trim()).to.equal('SUCCESS');
  });

  it('the tests fire every alert at least once, and check some alert not firing where it must not', () => {
    const cases = (parse(readFileSync(TESTS, 'utf8')) as RuleTests).tests.flatMap((t) => t.alert_rule_test ?? []);
    const firing = new Set(cases.filter((c) => c.exp_alerts.length > 0).map((c) => c.alertname));
    expect(alerts.filter((a) => !firing.has(a)), 'alerts no test fires').to.deep.equal([]);
    expect(cases.filter((c) => c.exp_alerts.length === 0).length, 'cases where an alert must stay silent').to.be.at.least(4);
    expect(cases.map((c) => c.alertname).filter((a) => !alerts.includes(a)), 'tests of alerts that do not exist').to.deep.equal([]);
  });

  it('manifests/monitoring/prometheusrule.yaml is the rule file rendered (npm run render-rules)', () => {
    expect(readFileSync(PROMETHEUS_RULE_FILE, 'utf8')).to.equal(renderPrometheusRule(readFileSync(RULES_FILE, 'utf8')));
  });
});
