/**
 * Structured JSON-line logging: one object per line on stderr, so stdout stays free for
 * program output. Tests and the demo pass their own sink.
 */

export type Level = 'debug' | 'info' | 'warn' | 'error';
export type Fields = Record<string, unknown>;
export type Sink = (line: string) => void;

export interface Logger {
  debug(msg: string, fields?: Fields): void;
  info(msg: string, fields?: Fields): void;
  warn(msg: string, fields?: Fields): void;
  error(msg: string, fields?: Fields): void;
  child(fields: Fields): Logger;
}

const ORDER: Record<Level, number> = { debug: 10, info: 20, warn: 30, error: 40 };

/** Errors become `{ message, cause }` chains instead of `{}` in JSON. */
function serialise(value: unknown, depth = 0): unknown {
  if (value instanceof Error) {
    const out: Fields = { message: value.message };
    if (value.name !== 'Error') out['name'] = value.name;
    const code = (value as { code?: unknown }).code;
    if (code !== undefined) out['code'] = code;
    if (value.cause !== undefined && depth < 5) out['cause'] = serialise(value.cause, depth + 1);
    return out;
  }
  return value;
}

export function createLogger(options: { component: string; level?: Level; sink?: Sink; base?: Fields }): Logger {
  const min = ORDER[options.level ?? 'info'];
  const sink: Sink = options.sink ?? ((line) => process.stderr.write(line + '\n'));
  const base: Fields = { component: options.component, ...options.base };
  const emit = (level: Level, msg: string, fields?: Fields): void => {
    if (ORDER[level] < min) return;
    const record: Fields = { time: new Date().toISOString(), level, ...base, msg };
    if (fields) for (const [k, v] of Object.entries(fields)) record[k] = serialise(v);
    sink(JSON.stringify(record));
  };
  const make = (extra: Fields): Logger => {
    const merged = { ...base, ...extra };
    return createLogger({ ...options, base: merged, sink });
  };
  return {
    debug: (m, f) => emit('debug', m, f),
    info: (m, f) => emit('info', m, f),
    warn: (m, f) => emit('warn', m, f),
    error: (m, f) => emit('error', m, f),
    child: make,
  };
}

/** A logger that drops everything; for pure-function tests that do not care. */
export const silentLogger: Logger = createLogger({ component: 'silent', sink: () => {} });
