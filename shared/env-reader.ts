/**
 * Reading settings from an environment, for the gateway's and the recorder's config modules: each
 * reader collects every bad setting (named, with why) instead of stopping at the first, so one
 * start shows them all. The config modules own the names, defaults and bounds.
 */
import { parseBoundedDuration } from './duration.ts';

export interface ConfigError {
  /** The environment variable at fault. */
  readonly setting: string;
  readonly message: string;
}

export type Env = Readonly<Record<string, string | undefined>>;

export interface EnvReader {
  /** Every bad setting so far. */
  readonly errors: ConfigError[];
  fail(setting: string, message: string): void;
  /** The trimmed value; undefined when unset or blank. */
  value(name: string): string | undefined;
  /** A duration within bounds (`500ms`, `10s`, `15m`); 0 after a failure. */
  duration(name: string, fallback: string, bounds: { readonly minMs: number; readonly maxMs: number }): number;
  /** A whole number ≥ 0. */
  whole(name: string, fallback: number): number;
  /** `host:port`, the port 0…65535. */
  hostPort(name: string, fallback: string): { host: string; port: number };
  /** An http: or https: URL; `fallback` undefined makes the setting required. */
  httpUrl(name: string, fallback: string | undefined): URL;
  /** `info` or `debug`. */
  logLevel(name: string, fallback: 'info' | 'debug'): 'info' | 'debug';
}

export function envReader(env: Env): EnvReader {
  const errors: ConfigError[] = [];
  const fail = (setting: string, message: string): void => void errors.push({ setting, message });
  const value = (name: string): string | undefined => {
    const v = env[name]?.trim();
    return v === '' ? undefined : v;
  };
  return {
    errors,
    fail,
    value,
    duration(name, fallback, bounds) {
      const r = parseBoundedDuration(value(name) ?? fallback, bounds);
      if (r.ok) return r.ms;
      fail(name, r.error);
      return 0;
    },
    whole(name, fallback) {
      const raw = value(name);
      const n = raw === undefined ? fallback : Number(raw);
      if (!Number.isSafeInteger(n) || n < 0) fail(name, `"${raw}" must be a whole number ≥ 0`);
      return n;
    },
    hostPort(name, fallback) {
      const raw = value(name) ?? fallback;
      const m = /^(.*):(\d{1,5})$/.exec(raw);
      const port = m ? Number(m[2]) : NaN;
      if (!m || m[1] === '' || port > 65535) fail(name, `"${raw}" must be host:port (port 0…65535)`);
      return { host: m?.[1] ?? '0.0.0.0', port: Number.isFinite(port) ? port : 0 };
    },
    httpUrl(name, fallback) {
      const raw = value(name) ?? fallback;
      if (raw === undefined) {
        fail(name, 'is required but not set');
        return new URL('http://invalid.invalid/');
      }
      try {
        const url = new URL(raw);
        if (url.protocol !== 'http:' && url.protocol !== 'https:') fail(name, `"${raw}" must use http: or https:`);
        return url;
      } catch {
        fail(name, `"${raw}" is not a URL`);
        return new URL('http://invalid.invalid/');
      }
    },
    logLevel(name, fallback) {
      const raw = value(name) ?? fallback;
      if (raw !== 'debug' && raw !== 'info') fail(name, `"${raw}" must be debug or info`);
      return raw === 'debug' ? 'debug' : 'info';
    },
  };
}
