import { expect } from 'chai';
import client from 'prom-client';
import { ACCEPT_HEADER, formatFromContentType } from '../../../shared/exposition/negotiate.ts';
import type { ExpositionFormat } from '../../../shared/exposition/types.ts';

describe('exposition negotiation', () => {
  it('sends the Accept header of Prometheus 2.x: OpenMetrics preferred, text 0.0.4 as fallback', () => {
    expect(ACCEPT_HEADER).to.equal(
      'application/openmetrics-text;version=1.0.0;q=0.5,application/openmetrics-text;version=0.0.1;q=0.4,text/plain;version=0.0.4;q=0.3,*/*;q=0.2',
    );
  });

  const cases: ReadonlyArray<readonly [string | undefined, ExpositionFormat]> = [
    ['application/openmetrics-text; version=1.0.0; charset=utf-8', 'openmetrics'],
    ['application/openmetrics-text;version=0.0.1', 'openmetrics'],
    ['application/openmetrics-text', 'openmetrics'],
    ['Application/OpenMetrics-Text ; version=1.0.0', 'openmetrics'],
    ['text/plain; version=0.0.4; charset=utf-8', 'prometheus'],
    ['text/plain', 'prometheus'],
    ['application/json', 'prometheus'],
    ['application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited', 'prometheus'],
    ['', 'prometheus'],
    [';;;', 'prometheus'],
    [undefined, 'prometheus'],
  ];
  for (const [contentType, format] of cases) {
    it(`reads ${JSON.stringify(contentType)} as ${format}`, () => {
      expect(formatFromContentType(contentType)).to.equal(format);
    });
  }

  it("recognises prom-client's two content types", () => {
    expect(formatFromContentType(client.Registry.OPENMETRICS_CONTENT_TYPE)).to.equal('openmetrics');
    expect(formatFromContentType(client.Registry.PROMETHEUS_CONTENT_TYPE)).to.equal('prometheus');
  });
});
