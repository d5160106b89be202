import { expect } from 'chai';
import { flagValues, LocalizeError, localizeArgs, readTopology, shardHosts, splitFlag, type Localization } from '../../../scripts/topology-spec.ts';

describe('topology-spec: the aggregator tier as the overlays ship it', () => {
  describe('readTopology', () => {
    it('sharded-aggregator: 2 routers over 3 shards; the shards take the store URL from the ConfigMap', () => {
      const t = readTopology('sharded-aggregator');
      expect([t.routers, t.shards]).to.deep.equal([2, 3]);
      expect(shardHosts(t)).to.deep.equal([0, 1, 2].map((i) => `jobmetrics-aggregator-shard-${i}.jobmetrics-aggregator-shard.jobmetrics.svc:8429`));
      expect([...t.shardEnv]).to.deep.equal([['REMOTE_WRITE_URL', { value: 'http://jobmetrics-prometheus.jobmetrics.svc:9090/api/v1/write' }]]);
    });

    it('ha-aggregator: 2 routers over 6 aggregators, 2 copies, the pod name as replica label', () => {
      const t = readTopology('ha-aggregator');
      expect([t.routers, t.shards]).to.deep.equal([2, 6]);
      expect(t.routerArgs).to.include('-remoteWrite.shardByURLReplicas=2');
      expect(t.shardArgs.at(-1)).to.equal('-remoteWrite.label=jobmetrics_replica=$(POD_NAME)');
      expect([...t.shardEnv.keys()]).to.deep.equal(['REMOTE_WRITE_URL', 'POD_NAME']);
      expect(t.shardEnv.get('POD_NAME')).to.deep.equal({ podName: true });
    });

    it('names the file when an overlay lacks what it needs', () => {
      expect(() => readTopology('cert-manager')).to.throw(/cert-manager\/router-args\.yaml/);
    });
  });

  describe('vmagent arguments: splitFlag and flagValues', () => {
    const splits: Array<[string, { flag: string; value: string } | undefined]> = [
      ['-remoteWrite.url=http://a:1/w', { flag: '-remoteWrite.url', value: 'http://a:1/w' }],
      ['-remoteWrite.label=jobmetrics_replica=$(POD_NAME)', { flag: '-remoteWrite.label', value: 'jobmetrics_replica=$(POD_NAME)' }],
      ['-httpListenAddr=', { flag: '-httpListenAddr', value: '' }],
      ['-remoteWrite.shardByURL', undefined],
      ['positional=1', undefined],
    ];
    for (const [arg, split] of splits) it(`${arg} → ${JSON.stringify(split)}`, () => expect(splitFlag(arg)).to.deep.equal(split));

    it('flagValues: every value of one flag, in order, and nothing of a flag that only shares its prefix', () => {
      const args = ['-remoteWrite.url=http://a:1/w', '-remoteWrite.urlRelabelConfig=/x', '-remoteWrite.shardByURL', '-remoteWrite.url=http://b:2/w'];
      expect(flagValues(args, '-remoteWrite.url')).to.deep.equal(['http://a:1/w', 'http://b:2/w']);
      expect(flagValues(args, '-remoteWrite.shardByURL')).to.deep.equal([]);
    });
  });

  describe('localizeArgs: only addresses, ports and paths change, and credentials go', () => {
    const l: Localization = {
      env: new Map([['URL', 'http://store.ns.svc:9090/api/v1/write'], ['POD_NAME', 'shard-1']]),
      listen: '127.0.0.1:20001',
      hosts: new Map([['store.ns.svc:9090', '127.0.0.1:20002']]),
      paths: new Map([['/data', '/tmp/x/data'], ['/etc/vmagent', '/tmp/x/etc']]),
    };
    const cases: Array<[string, string]> = [
      ['-httpListenAddr=:8429', '-httpListenAddr=127.0.0.1:20001'],
      ['-remoteWrite.url=$(URL)', '-remoteWrite.url=http://127.0.0.1:20002/api/v1/write'],
      ['-remoteWrite.url=http://store.ns.svc:9090/x?y=1', '-remoteWrite.url=http://127.0.0.1:20002/x?y=1'],
      ['-remoteWrite.tmpDataPath=/data', '-remoteWrite.tmpDataPath=/tmp/x/data'],
      ['-streamAggr.config=/etc/vmagent/stream-aggr.yaml', '-streamAggr.config=/tmp/x/etc/stream-aggr.yaml'],
      ['-remoteWrite.label=jobmetrics_replica=$(POD_NAME)', '-remoteWrite.label=jobmetrics_replica=shard-1'],
      ['-remoteWrite.shardByURL', '-remoteWrite.shardByURL'],
      ['-remoteWrite.shardByURL.ignoreLabels=pod,jobmetrics_kind', '-remoteWrite.shardByURL.ignoreLabels=pod,jobmetrics_kind'],
      ['-remoteWrite.maxDiskUsagePerURL=256MiB', '-remoteWrite.maxDiskUsagePerURL=256MiB'],
    ];
    for (const [arg, local] of cases) it(`${arg} → ${local}`, () => expect(localizeArgs([arg], l)).to.deep.equal([local]));

    it('drops the credential flags (on loopback nothing can skip the gateway; the Secret exists only in a cluster)', () => {
      const creds = ['-httpAuth.username=jobmetrics', '-httpAuth.password=file:///etc/jobmetrics/credentials/password', '-remoteWrite.basicAuth.username=jobmetrics', '-remoteWrite.basicAuth.passwordFile=/etc/jobmetrics/credentials/password'];
      expect(localizeArgs(['-remoteWrite.queues=1', ...creds, '-sortLabels'], l)).to.deep.equal(['-remoteWrite.queues=1', '-sortLabels']);
    });

    const errors: Array<[string, RegExp]> = [
      ['-remoteWrite.url=$(NOPE)', /no value for \$\(NOPE\)/],
      ['-remoteWrite.url=http://elsewhere:1/api/v1/write', /no loopback address for elsewhere:1/],
      ['-remoteWrite.tmpDataPath=/datax', /no local directory for \/datax/],
    ];
    for (const [arg, message] of errors) it(`refuses ${arg}`, () => expect(() => localizeArgs([arg], l)).to.throw(LocalizeError, message));
  });
});
