/** The Job-owner lookup: cache, sharing, timeout, failures as answers. */
import { expect } from 'chai';
import { JobOwnerCache, type JobFetch, type LookupResult } from '../../../webhook/job-owner.ts';

const cronOwned = { uid: 'u1', ownerReferences: [{ apiVersion: 'batch/v1', kind: 'CronJob', name: 'nightly', controller: true }] };

describe('webhook JobOwnerCache', () => {
  it('finds the CronJob, caches it, and shares one GET between concurrent pods', async () => {
    let calls = 0;
    const fetch: JobFetch = async () => {
      calls++;
      await new Promise((r) => setTimeout(r, 10));
      return cronOwned;
    };
    const results: LookupResult[] = [];
    // A timeout far above the 10 ms GET: a loaded machine must not turn it into 'unavailable'.
    const cache = new JobOwnerCache({ fetch, ttlMs: 60_000, timeoutMs: 10_000, onResult: (r) => results.push(r) });
    const answers = await Promise.all(Array.from({ length: 20 }, () => cache.lookup('ns', { name: 'nightly-1', uid: 'u1' })));
    expect(calls).to.equal(1);
    for (const a of answers) expect(a).to.deep.equal({ state: 'found', cronJob: 'nightly' });
    await cache.lookup('ns', { name: 'nightly-1', uid: 'u1' });
    expect(calls).to.equal(1);
    expect(results).to.deep.equal(['found', 'hit']);
  });

  it('a Job no CronJob controls is found with cronJob null', async () => {
    const cache = new JobOwnerCache({ fetch: async () => ({ ownerReferences: [{ kind: 'Workflow', name: 'w', controller: true, apiVersion: 'argoproj.io/v1alpha1' }] }), ttlMs: 1, timeoutMs: 100 });
    expect(await cache.lookup('ns', { name: 'j' })).to.deep.equal({ state: 'found', cronJob: null });
  });

  it('times out, aborting the request, and remembers the failure briefly', async () => {
    let aborted = false;
    let calls = 0;
    let now = 0;
    const fetch: JobFetch = (_ns, _n, signal) => {
      calls++;
      return new Promise((_, reject) => signal.addEventListener('abort', () => ((aborted = true), reject(signal.reason))));
    };
    const cache = new JobOwnerCache({ fetch, ttlMs: 60_000, timeoutMs: 30, failureTtlMs: 1_000, now: () => now });
    const a = await cache.lookup('ns', { name: 'slow' });
    expect(a.state).to.equal('unavailable');
    expect(a.state === 'unavailable' && a.reason).to.match(/timed out after 30 ms/);
    expect(aborted).to.equal(true);
    await cache.lookup('ns', { name: 'slow' });
    expect(calls).to.equal(1);
    now = 2_000;
    await cache.lookup('ns', { name: 'slow' });
    expect(calls).to.equal(2);
  });

  it('turns errors, 404 and a recreated Job into unavailable answers', async () => {
    const boom = new JobOwnerCache({ fetch: async () => { throw new Error('HTTP 403 forbidden'); }, ttlMs: 1, timeoutMs: 100 });
    const e = await boom.lookup('ns', { name: 'x' });
    expect(e.state === 'unavailable' && e.reason).to.match(/failed: HTTP 403 forbidden/);
    const gone = new JobOwnerCache({ fetch: async () => null, ttlMs: 1, timeoutMs: 100 });
    expect((await gone.lookup('ns', { name: 'x' })).state).to.equal('unavailable');
    const recreated = new JobOwnerCache({ fetch: async () => cronOwned, ttlMs: 1, timeoutMs: 100 });
    const r = await recreated.lookup('ns', { name: 'x', uid: 'old-uid' });
    expect(r.state === 'unavailable' && r.reason).to.match(/uid u1, the pod's owner was old-uid/);
  });

  it('stays bounded', async () => {
    const cache = new JobOwnerCache({ fetch: async () => cronOwned, ttlMs: 60_000, timeoutMs: 100, maxEntries: 3 });
    for (let i = 0; i < 10; i++) await cache.lookup('ns', { name: `j${i}` });
    expect(cache.size).to.equal(3);
  });
});
