import { expect } from 'chai';
import { parse } from 'yaml';
import bcrypt from 'bcryptjs';
import { basicAuthorization, newCredentials, randomPassword, readCredentials } from '../../../gateway/aggregator-credentials.ts';
import { parseGatewayConfig } from '../../../gateway/config.ts';

const b64 = (o: Record<string, string>): Record<string, string> => Object.fromEntries(Object.entries(o).map(([k, v]) => [k, Buffer.from(v).toString('base64')]));

describe("gateway aggregator-credentials: the Secret the tier behind the gateway checks", () => {
  it("a new Secret: the user, a random password, and Prometheus' web config with the password's bcrypt hash", async () => {
    const password = randomPassword();
    expect(password).to.match(/^[A-Za-z0-9_-]{43}$/);
    expect(randomPassword()).to.not.equal(password);
    const data = newCredentials(password, await bcrypt.hash(password, 4));
    expect(Object.keys(data)).to.deep.equal(['username', 'password', 'web-config.yml']);
    const web = parse(data['web-config.yml']!) as { basic_auth_users: Record<string, string> };
    expect(Object.keys(web.basic_auth_users)).to.deep.equal(['jobmetrics']);
    expect(await bcrypt.compare(password, web.basic_auth_users['jobmetrics']!)).to.equal(true);
    expect(readCredentials(b64(data))).to.deep.equal({ username: 'jobmetrics', password });
  });

  const rows: Array<[what: string, data: Record<string, string> | undefined, want: string]> = [
    ['no data', undefined, 'keys missing or empty: username, password, web-config.yml'],
    ['an empty password', b64({ username: 'jobmetrics', password: '', 'web-config.yml': 'x' }), 'keys missing or empty: password'],
    ['no web config', b64({ username: 'jobmetrics', password: 'p' }), 'keys missing or empty: web-config.yml'],
    ['a username with a colon', b64({ username: 'a:b', password: 'p', 'web-config.yml': 'x' }), 'the username "a:b" may not hold a colon or white space (HTTP basic auth)'],
  ];
  for (const [what, data, want] of rows) {
    it(`${what} → ${want}`, () => expect(readCredentials(data)).to.deep.equal({ error: want }));
  }

  it('basic auth as RFC 7617 spells it', () => {
    expect(basicAuthorization({ username: 'jobmetrics', password: 's3cret' })).to.equal('Basic am9ibWV0cmljczpzM2NyZXQ=');
  });

  it('the setting names a Secret as <namespace>/<name>, and needs the API server', () => {
    const ok = parseGatewayConfig({ JOBMETRICS_AGGREGATOR_URL: 'http://a/', KUBECONFIG: '/k', JOBMETRICS_AGGREGATOR_CREDENTIALS: 'jobmetrics/jobmetrics-aggregator-credentials' });
    expect(ok.ok && ok.config.aggregatorCredentials).to.deep.equal({ namespace: 'jobmetrics', name: 'jobmetrics-aggregator-credentials' });
    const errors = (env: Record<string, string>): string[] => {
      const r = parseGatewayConfig({ JOBMETRICS_AGGREGATOR_URL: 'http://a/', JOBMETRICS_WRITER_AUTH: 'none', ...env });
      return r.ok ? [] : r.errors.map((e) => `${e.setting}: ${e.message}`);
    };
    expect(errors({ KUBECONFIG: '/k', JOBMETRICS_AGGREGATOR_CREDENTIALS: 'just-a-name' })).to.deep.equal(['JOBMETRICS_AGGREGATOR_CREDENTIALS: "just-a-name" must be <namespace>/<secret name>']);
    expect(errors({ JOBMETRICS_AGGREGATOR_CREDENTIALS: 'jobmetrics/x' })).to.deep.equal(['JOBMETRICS_AGGREGATOR_CREDENTIALS: names a Secret, which needs the API server: set KUBECONFIG or run in a pod']);
    expect(errors({})).to.deep.equal([]);
  });
});
