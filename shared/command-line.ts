/**
 * The command line of every binary (`jobmetrics-webhook`, `-sidecar`, `-gateway`, `-recorder`):
 * `--help` and `--version` answer and exit 0 before anything starts (no server, no API call), and
 * an argument the binary does not take is refused with exit 2, naming it. Settings come from the
 * environment (and the webhook's file), so the only option any binary takes is the webhook's
 * `--config <file>`. `commandLine` decides (pure); `handleCommandLine` prints and exits.
 */
import { VERSION } from './version.ts';

export interface CommandLineSpec {
  /** The binary's name, e.g. `jobmetrics-gateway`. */
  readonly name: string;
  /** One line: what it is. */
  readonly summary: string;
  /** Options that take a value (`--config <file>` or `--config=<file>`), with their help line. */
  readonly options?: ReadonlyArray<{ readonly flag: string; readonly value: string; readonly doc: string }>;
  /** Its settings, as the help lists them. */
  readonly settings: ReadonlyArray<{ readonly env: string; readonly default: string; readonly doc?: string }>;
  /** Where the settings are documented, e.g. `docs/gateway.md "Settings"`. */
  readonly docs: string;
}

export type CommandLine =
  | { readonly run: true; readonly options: ReadonlyMap<string, string> }
  | { readonly run: false; readonly exitCode: 0 | 2; readonly stdout: string; readonly stderr: string };

export function commandLine(argv: readonly string[], spec: CommandLineSpec): CommandLine {
  const options = new Map<string, string>();
  const refuse = (message: string): CommandLine => ({ run: false, exitCode: 2, stdout: '', stderr: `${spec.name}: ${message} (see ${spec.name} --help)\n` });
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] ?? '';
    if (arg === '--help' || arg === '-h') return { run: false, exitCode: 0, stdout: helpText(spec), stderr: '' };
    if (arg === '--version') return { run: false, exitCode: 0, stdout: `${spec.name} ${VERSION}\n`, stderr: '' };
    const [flag, inline] = arg.includes('=') ? [arg.slice(0, arg.indexOf('=')), arg.slice(arg.indexOf('=') + 1)] : [arg, undefined];
    const option = spec.options?.find((o) => o.flag === flag);
    if (option === undefined) return refuse(arg.startsWith('-') ? `unknown option ${flag}` : `unexpected argument "${arg}": settings come from the environment`);
    const value = inline ?? argv[++i];
    if (value === undefined || value === '') return refuse(`${flag} needs ${option.value}`);
    options.set(flag, value);
  }
  return { run: true, options };
}

function helpText(spec: CommandLineSpec): string {
  const options = [...(spec.options ?? []).map((o) => [`${o.flag} <${o.value}>`, o.doc] as const), ['--help', 'this text'] as const, ['--version', 'the version'] as const];
  const width = Math.max(...options.map(([f]) => f.length), ...spec.settings.map((s) => s.env.length));
  const pad = (s: string): string => s.padEnd(width + 2);
  return [
    `${spec.name} ${VERSION}: ${spec.summary}`,
    '',
    `Usage: ${spec.name} ${options.map(([f]) => `[${f}]`).join(' ')}`,
    '',
    ...options.map(([f, doc]) => `  ${pad(f)}${doc}`),
    '',
    `Settings (environment variables; ${spec.docs}):`,
    ...spec.settings.map((s) => `  ${pad(s.env)}${s.default === '' ? '(unset)' : s.default}${s.doc ? `  ${s.doc}` : ''}`),
    '',
  ].join('\n');
}

/** The shell: prints what `commandLine` says and exits when the binary is not to run. */
export function handleCommandLine(argv: readonly string[], spec: CommandLineSpec): ReadonlyMap<string, string> {
  const c = commandLine(argv, spec);
  if (c.run) return c.options;
  process.stdout.write(c.stdout);
  process.stderr.write(c.stderr);
  process.exit(c.exitCode);
}

/**
 * The settings list of a binary whose settings are environment variables named in one map
 * (`{ listen: 'JOBMETRICS_LISTEN', … }`) with defaults under the same keys and a meaning for every
 * key (the type makes a setting without one a compile error); a key without a default is
 * `(required)` when listed in `required`, else `(unset)`.
 */
export function envSettings<K extends string>(
  names: Readonly<Record<K, string>>,
  defaults: Readonly<Partial<Record<NoInfer<K>, unknown>>>,
  docs: Readonly<Record<NoInfer<K>, string>>,
  required: ReadonlyArray<NoInfer<K>> = [],
): CommandLineSpec['settings'] {
  return (Object.entries(names) as Array<[K, string]>).map(([key, env]) => {
    const d = defaults[key];
    return { env, default: d !== undefined ? String(d) : required.includes(key) ? '(required)' : '', doc: docs[key] };
  });
}
