import { decodeWriteRequest as decode } from '../../gateway/write-request.ts';

export interface DecodedTimeSeries {
  labels: Array<[string, string]>;
  samples: Array<{ value: number; timestampMs: number }>;
}

/**
 * Prometheus remote-write v1 `WriteRequest` decoded (uncompressed protobuf), for the tests and the
 * exit-latency bench: the gateway's decoder (gateway/write-request.ts, protobufjs' Reader), which
 * is written independently of shared/remote-write.ts's encoder.
 */
export function decodeWriteRequest(buf: Uint8Array): DecodedTimeSeries[] {
  return decode(buf).map((s) => ({ labels: s.labels.map(([n, v]) => [n, v]), samples: s.samples.map((x) => ({ ...x })) }));
}
