import protobuf from 'protobufjs/minimal.js';

export interface DecodedTimeSeries {
  labels: Array<[string, string]>;
  samples: Array<{ value: number; timestampMs: number }>;
}

/**
 * A reference decoder of Prometheus remote-write v1 `WriteRequest` (protobufjs' Reader, written
 * independently of sidecar/remote-write.ts's encoder), for the tests and the exit-latency bench.
 */
export function decodeWriteRequest(buf: Uint8Array): DecodedTimeSeries[] {
  const r = protobuf.Reader.create(buf);
  const out: DecodedTimeSeries[] = [];
  while (r.pos < r.len) {
    const tag = r.uint32();
    if (tag >>> 3 !== 1) {
      r.skipType(tag & 7);
      continue;
    }
    const end = r.uint32() + r.pos;
    const ts: DecodedTimeSeries = { labels: [], samples: [] };
    while (r.pos < end) {
      const t = r.uint32();
      const len = r.uint32();
      const stop = r.pos + len;
      if (t >>> 3 === 1) {
        let name = '';
        let value = '';
        while (r.pos < stop) {
          const lt = r.uint32();
          if (lt >>> 3 === 1) name = r.string();
          else if (lt >>> 3 === 2) value = r.string();
          else r.skipType(lt & 7);
        }
        ts.labels.push([name, value]);
      } else if (t >>> 3 === 2) {
        let value = 0;
        let timestampMs = 0;
        while (r.pos < stop) {
          const st = r.uint32();
          if (st >>> 3 === 1) value = r.double();
          else if (st >>> 3 === 2) timestampMs = Number(r.int64().toString());
          else r.skipType(st & 7);
        }
        ts.samples.push({ value, timestampMs });
      } else {
        r.pos = stop;
      }
    }
    out.push(ts);
  }
  return out;
}
