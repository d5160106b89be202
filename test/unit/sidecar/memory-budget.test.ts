import { expect } from 'chai';
import { readFileSync } from 'node:fs';
import { parse as parseYaml, parseAllDocuments } from 'yaml';
import { SIDECAR_NODE_FLAGS } from '../../../scripts/local-pod.ts';
import { BYTES_PER_LABEL_CHAR, BYTES_PER_SAMPLE, BYTES_PER_SERIES, deriveSidecarMemory, LIVE_SHARE_OF_HEAP, RUNTIME_BYTES, SIDECAR_MEMORY } from '../../../shared/sidecar-memory.ts';
import { defaultSettings } from '../../../webhook/config.ts';

const MiB = 2 ** 20;

describe('sidecar memory budget (shared/sidecar-memory.ts): input limits derived from the injected memory limit', () => {
  for (const limitMiB of [112, 128, 192, 256, 512]) {
    it(`${limitMiB}Mi: runtime + V8 heap cap + body buffer fit the budget, and the live data at every limit fits the heap's working share`, () => {
      const m = deriveSidecarMemory(limitMiB);
      expect(RUNTIME_BYTES + m.heapMiB * MiB + m.maxBodyBytes).to.be.at.most(m.budgetBytes);
      expect(m.budgetBytes).to.be.below(m.limitBytes);
      const live = 2 * m.maxBodyBytes + m.maxLabelChars * BYTES_PER_LABEL_CHAR + m.maxSeries * BYTES_PER_SERIES + m.maxSamples * BYTES_PER_SAMPLE;
      expect(live).to.be.at.most(m.heapMiB * MiB * LIVE_SHARE_OF_HEAP + MiB);
      expect(m.maxSeries).to.be.above(0);
      // The body can carry every series with room for labels.
      expect(m.maxBodyBytes / m.maxSeries).to.be.above(100);
    });
  }

  it('refuses a limit that leaves nothing beyond the runtime', () => {
    expect(() => deriveSidecarMemory(96)).to.throw(RangeError, 'leaves too little');
  });

  it('the shipped numbers (128Mi): 2 MiB bodies, 6 000 series, a 38 MiB heap', () => {
    expect(SIDECAR_MEMORY).to.deep.include({ limit: '128Mi', maxBodyBytes: 2 * MiB, maxSeries: 6_000, maxSamples: 12_000, heapMiB: 38 });
  });

  it('the webhook injects that limit by default, and the manifests say the same', () => {
    expect(defaultSettings().sidecar.resources.limits['memory']).to.equal(SIDECAR_MEMORY.limit);
    const settings = parseYaml(readFileSync(new URL('../../../manifests/base/webhook-settings.yaml', import.meta.url), 'utf8')) as { sidecar: { resources: { limits: { memory: string } } } };
    expect(settings.sidecar.resources.limits.memory).to.equal(SIDECAR_MEMORY.limit);
    const install = parseAllDocuments(readFileSync(new URL('../../../manifests/install.yaml', import.meta.url), 'utf8')).map((d) => d.toJSON() as { kind?: string; data?: Record<string, string> });
    const configMap = install.find((o) => o.kind === 'ConfigMap' && o.data?.['webhook.yaml'] !== undefined);
    expect((parseYaml(configMap!.data!['webhook.yaml']!) as typeof settings).sidecar.resources.limits.memory).to.equal(SIDECAR_MEMORY.limit);
  });

  it('the sidecar runs with the derived V8 heap cap (the image and the local pods alike)', () => {
    expect(SIDECAR_NODE_FLAGS).to.include(`--max-old-space-size=${SIDECAR_MEMORY.heapMiB}`);
  });
});
