import { expect } from 'chai';
import { WriterToken } from '../../shared/writer-token.ts';

describe('shared writer-token: the token a writer presents, as the kubelet rotates it', () => {
  it('reads the file at most once a minute, follows a rotation, keeps the last token through a failed read and reports the failure once', () => {
    let now = 0;
    let content: string | Error = 'tok-1\n';
    const reads: number[] = [];
    const errors: Array<[string, boolean]> = [];
    const t = new WriterToken('/var/run/secrets/jobmetrics.io/token/token', {
      now: () => now,
      readFile: () => {
        reads.push(now);
        if (content instanceof Error) throw content;
        return content;
      },
      onReadError: (e, older) => errors.push([e.message, older]),
    });
    expect(t.authorization()).to.equal('Bearer tok-1');
    now = 59_999;
    content = 'tok-2';
    expect(t.authorization(), 'not re-read within a minute').to.equal('Bearer tok-1');
    now = 60_000;
    expect(t.authorization(), 'rotated').to.equal('Bearer tok-2');
    content = Object.assign(new Error('ENOENT'), { code: 'ENOENT' });
    now = 120_000;
    expect(t.authorization(), 'the last token still goes').to.equal('Bearer tok-2');
    now = 180_000;
    t.authorization();
    content = 'tok-3';
    now = 240_000;
    expect(t.authorization()).to.equal('Bearer tok-3');
    expect(reads).to.deep.equal([0, 60_000, 120_000, 180_000, 240_000]);
    expect(errors).to.deep.equal([['cannot read the token file /var/run/secrets/jobmetrics.io/token/token', true]]);
  });

  it('no token yet (an empty or missing file): no header, and the error says so', () => {
    const errors: string[] = [];
    const t = new WriterToken('/t', { readFile: () => '  \n', onReadError: (e) => errors.push(`${e.message}: ${(e.cause as Error).message}`) });
    expect(t.authorization()).to.equal(undefined);
    expect(errors).to.deep.equal(['cannot read the token file /t: token file /t is empty']);
  });
});
