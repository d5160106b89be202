/**
 * Decoding of a Prometheus remote write 1.0 request body (snappy block format around a protobuf
 * `WriteRequest`; message layout in shared/remote-write.ts). Pure; errors are values of one class
 * that says what was wrong and where, so the server can answer 400 with it.
 *
 * Spec: https://prometheus.io/docs/specs/prw/remote_write_spec/ ("Protocol"): a receiver answers
 * a request it cannot decode with 400, and the sender drops it rather than retrying.
 */
import { createRequire } from 'node:module';
import protobuf from 'protobufjs/minimal.js';
import type { RwSeries, RwSample } from '../shared/remote-write.ts';

const snappy: typeof import('snappyjs') = createRequire(import.meta.url)('snappyjs');

export class WriteRequestError extends Error {
  override readonly name = 'WriteRequestError';
}

export interface DecodeLimits {
  /** Most bytes after decompression (the snappy header states it before any work is done). */
  readonly maxUncompressedBytes: number;
}

/** The series of a compressed body; throws WriteRequestError on anything malformed. */
export function decodeCompressedWriteRequest(body: Uint8Array, limits: DecodeLimits): RwSeries[] {
  const stated = snappyUncompressedLength(body);
  if (stated > limits.maxUncompressedBytes) {
    throw new WriteRequestError(`the body would decompress to ${stated} bytes, over the limit of ${limits.maxUncompressedBytes}`);
  }
  let raw: Uint8Array;
  try {
    raw = snappy.uncompress(body);
  } catch (cause) {
    throw new WriteRequestError(`the body is not snappy block format: ${(cause as Error).message}`, { cause });
  }
  return decodeWriteRequest(raw);
}

/** The length a snappy block's header states (a varint at its start). */
function snappyUncompressedLength(body: Uint8Array): number {
  let result = 0;
  for (let i = 0, shift = 0; i < 5 && i < body.length; i++, shift += 7) {
    const b = body[i]!;
    result += (b & 0x7f) * 2 ** shift;
    if (b < 0x80) return result;
  }
  throw new WriteRequestError('the body is not snappy block format: no length header');
}

/** The series of an uncompressed protobuf `WriteRequest`; unknown fields are skipped, as protobuf says. */
export function decodeWriteRequest(buf: Uint8Array): RwSeries[] {
  const r = protobuf.Reader.create(buf);
  const out: RwSeries[] = [];
  try {
    while (r.pos < r.len) {
      const tag = r.uint32();
      if (tag >>> 3 === 1 && (tag & 7) === 2) out.push(readTimeSeries(r, r.uint32() + r.pos));
      else r.skipType(tag & 7);
    }
  } catch (cause) {
    if (cause instanceof WriteRequestError) throw cause;
    throw new WriteRequestError(`malformed WriteRequest at byte ${r.pos} of ${r.len}: ${(cause as Error).message}`, { cause });
  }
  return out;
}

function readTimeSeries(r: protobuf.Reader, end: number): RwSeries {
  if (end > r.len) throw new WriteRequestError(`a TimeSeries at byte ${r.pos} runs past the end of the request`);
  const labels: Array<[string, string]> = [];
  const samples: RwSample[] = [];
  while (r.pos < end) {
    const tag = r.uint32();
    const field = tag >>> 3;
    if ((tag & 7) !== 2 || (field !== 1 && field !== 2)) {
      r.skipType(tag & 7);
      continue;
    }
    const stop = r.uint32() + r.pos;
    if (stop > end) throw new WriteRequestError(`a ${field === 1 ? 'Label' : 'Sample'} at byte ${r.pos} runs past its TimeSeries`);
    if (field === 1) {
      let name = '';
      let value = '';
      while (r.pos < stop) {
        const t = r.uint32();
        if (t >>> 3 === 1 && (t & 7) === 2) name = r.string();
        else if (t >>> 3 === 2 && (t & 7) === 2) value = r.string();
        else r.skipType(t & 7);
      }
      labels.push([name, value]);
    } else {
      let value = 0;
      let timestampMs = 0;
      while (r.pos < stop) {
        const t = r.uint32();
        if (t >>> 3 === 1 && (t & 7) === 1) value = r.double();
        else if (t >>> 3 === 2 && (t & 7) === 0) timestampMs = Number(r.int64().toString());
        else r.skipType(t & 7);
      }
      samples.push({ value, timestampMs });
    }
  }
  return { labels, samples };
}
