import { expect } from 'chai';
import client, { type Registry as RegistryType, type RegistryContentType } from 'prom-client';
import { formatFromContentType } from '../../../shared/exposition/negotiate.ts';
import type { ExpositionFormat, MetricFamily } from '../../../shared/exposition/types.ts';
import { fam, parseOk, s } from './helpers.ts';

const { Counter, Gauge, Histogram, Registry, Summary, collectDefaultMetrics } = client;

type AnyRegistry = RegistryType<RegistryContentType>;

/** A registry like a job's: labels with every escape, special values, exemplars where allowed. */
function jobRegistry(om: boolean): AnyRegistry {
  const registry: AnyRegistry = new Registry<RegistryContentType>();
  if (om) registry.setContentType(Registry.OPENMETRICS_CONTENT_TYPE);
  // prom-client's typings take exemplar label names from the metric's label names.
  const done = new Counter<'path' | 'code' | 'trace_id'>({
    name: 'jobs_done_total',
    help: 'Jobs done \\ "quoted"\nsecond line',
    labelNames: ['path', 'code'],
    registers: [registry],
    enableExemplars: om,
  });
  const depth = new Gauge({ name: 'queue_depth', help: 'Depth.', labelNames: ['q'], registers: [registry] });
  const duration = new Histogram<'m' | 'trace_id'>({
    name: 'job_seconds',
    help: 'Duration.',
    labelNames: ['m'],
    buckets: [0.1, 1, 10],
    registers: [registry],
    enableExemplars: om,
  });
  const payload = new Summary({ name: 'payload_bytes', help: 'Payload.', percentiles: [0.5, 0.9], registers: [registry] });
  new Gauge({ name: 'never_set', help: 'No values yet.', labelNames: ['x'], registers: [registry] });

  // With exemplars enabled prom-client takes the object form only.
  if (om) {
    done.inc({ labels: { path: 'C:\\DIR\\"x"\n', code: '200' }, value: 3 });
    done.inc({ labels: { path: '/ok', code: '500' }, value: 1 });
    done.inc({ labels: { path: '/ex', code: '200' }, value: 2, exemplarLabels: { trace_id: 'abc' } });
    duration.observe({ labels: { m: 'GET' }, value: 0.5, exemplarLabels: { trace_id: 'def' } });
    duration.observe({ labels: { m: 'GET' }, value: 5 });
  } else {
    done.inc({ path: 'C:\\DIR\\"x"\n', code: '200' }, 3);
    done.inc({ path: '/ok', code: '500' }, 1);
    duration.observe({ m: 'GET' }, 0.5);
    duration.observe({ m: 'GET' }, 5);
  }
  depth.set({ q: 'a' }, NaN); // written "Nan"
  depth.set({ q: 'b' }, -Infinity);
  depth.set({ q: 'c' }, 1e-7);
  for (const v of [1, 2, 3]) payload.observe(v);
  return registry;
}

function expected(om: boolean): MetricFamily[] {
  const help = 'Jobs done \\ "quoted"\nsecond line';
  return [
    fam(
      om ? 'jobs_done' : 'jobs_done_total',
      'counter',
      [
        s('jobs_done_total', { path: 'C:\\DIR\\"x"\n', code: '200' }, 3),
        s('jobs_done_total', { path: '/ok', code: '500' }, 1),
        ...(om ? [s('jobs_done_total', { path: '/ex', code: '200' }, 2)] : []),
      ],
      { help },
    ),
    fam('queue_depth', 'gauge', [s('queue_depth', { q: 'a' }, NaN), s('queue_depth', { q: 'b' }, -Infinity), s('queue_depth', { q: 'c' }, 1e-7)], {
      help: 'Depth.',
    }),
    fam(
      'job_seconds',
      'histogram',
      [
        s('job_seconds_bucket', { le: '0.1', m: 'GET' }, 0),
        s('job_seconds_bucket', { le: '1', m: 'GET' }, 1),
        s('job_seconds_bucket', { le: '10', m: 'GET' }, 2),
        s('job_seconds_bucket', { le: '+Inf', m: 'GET' }, 2),
        s('job_seconds_sum', { m: 'GET' }, 5.5),
        s('job_seconds_count', { m: 'GET' }, 2),
      ],
      { help: 'Duration.' },
    ),
    fam(
      'payload_bytes',
      'summary',
      [s('payload_bytes', { quantile: '0.5' }, 2), s('payload_bytes', { quantile: '0.9' }, 3), s('payload_bytes_sum', {}, 6), s('payload_bytes_count', {}, 3)],
      { help: 'Payload.' },
    ),
    fam('never_set', 'gauge', [], { help: 'No values yet.' }),
  ];
}

async function scrape(registry: AnyRegistry): Promise<{ body: string; format: ExpositionFormat }> {
  return { body: await registry.metrics(), format: formatFromContentType(registry.contentType) };
}

describe('exposition parse: real outputs of prom-client', () => {
  for (const om of [false, true]) {
    const label = om ? 'OpenMetrics' : 'text 0.0.4';

    it(`reads register.metrics() in ${label}, escapes, Nan, -Inf and exemplars included`, async () => {
      const { body, format } = await scrape(jobRegistry(om));
      expect(format).to.equal(om ? 'openmetrics' : 'prometheus');
      expect(parseOk(body, { format })).to.deep.equal(expected(om));
    });

    it(`agrees with prom-client's own getMetricsAsJSON() on the default metrics in ${label}`, async () => {
      const registry: AnyRegistry = new Registry<RegistryContentType>();
      if (om) registry.setContentType(Registry.OPENMETRICS_CONTENT_TYPE);
      collectDefaultMetrics({ register: registry });
      const { body, format } = await scrape(registry);
      const families = parseOk(body, { format });
      const truth = await registry.getMetricsAsJSON();
      expect(families.map((f) => f.name)).to.deep.equal(
        // prom-client's typings say `type` is a numeric enum; at run time it is the type's name.
        truth.map((m) => (om && String(m.type) === 'counter' ? m.name.replace(/_total$/, '') : m.name)),
      );
      truth.forEach((m, i) => {
        const family = families[i];
        expect(family?.type, m.name).to.equal(String(m.type));
        expect(family?.help, m.name).to.equal(m.help);
        // Values and even the number of series (active handles) move between the two calls.
        for (const sample of family?.samples ?? []) expect(sample.name.startsWith(family?.name ?? '?'), sample.name).to.equal(true);
      });
    });
  }
});
