/**
 * `npm test`'s runner: mocha in two lanes side by side, each line of each lane as it comes,
 * prefixed with the lane's name, then one summary of both in mocha's words (`N passing`,
 * `N failing`, `N pending`), which .ci/run reads.
 *
 * The real-pod suite (a kubelet node, about 14 minutes) spends most of its time waiting on pods,
 * the Job controller and aggregation intervals; so do most integration suites (vmagent's
 * intervals). Side by side they take about as long as the longer lane instead of the sum of both
 * (docs/development.md has the times). The tests are written for a loaded 2-core machine with a
 * cluster beside them, which is what the other lane makes of it.
 *
 *   node --import tsx scripts/run-tests.ts            the two lanes (npm test, after the typecheck)
 *   node --import tsx scripts/run-tests.ts --serial   one mocha over every file, as the lanes would run them
 *
 * Exit status: 0 when every lane passed, 1 otherwise (a lane that died before mocha's summary
 * counts as a failure and is named).
 */
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { ROOT } from './cluster/paths.ts';

export interface Lane {
  /** The prefix of its lines. */
  readonly name: string;
  /** mocha's spec arguments (globs). */
  readonly files: readonly string[];
  readonly ignore: readonly string[];
}

/** The suite that runs a kubelet node, alone; everything else in the other lane, in mocha's order. */
const REAL_PODS = 'test/e2e/real-pods.test.ts';
export const LANES: readonly Lane[] = [
  { name: 'node', files: [REAL_PODS], ignore: [] },
  { name: 'rest', files: ['test/unit/**/*.test.ts', 'test/integration/**/*.test.ts', 'test/e2e/**/*.test.ts'], ignore: [REAL_PODS] },
];
/** The same files in one mocha, the way `npm test` ran them before the lanes. */
export const SERIAL: readonly Lane[] = [
  { name: 'all', files: ['test/unit/**/*.test.ts', 'test/integration/**/*.test.ts', 'test/e2e/**/*.test.ts'], ignore: [] },
];

export interface Counts {
  readonly passing: number;
  readonly failing: number;
  readonly pending: number;
}

/**
 * The counts of mocha's spec summary ("  12 passing (3s)", "  1 failing", "  2 pending"), the
 * last of each in the output (colours stripped), or undefined when there is no summary (mocha
 * died first).
 */
/** mocha's output without its colours. */
export const plainText = (output: string): string => output.replace(/\x1b\[[0-9;]*m/g, '');

export function summaryCounts(output: string): Counts | undefined {
  const plain = plainText(output);
  const last = (word: string): number | undefined => {
    const all = [...plain.matchAll(new RegExp(`^\\s+(\\d+) ${word}\\b`, 'gm'))];
    const m = all.at(-1);
    return m ? Number(m[1]) : undefined;
  };
  const passing = last('passing');
  if (passing === undefined) return undefined;
  return { passing, failing: last('failing') ?? 0, pending: last('pending') ?? 0 };
}

/**
 * The failures mocha lists under "N failing", one line each: "1) suite test" from its
 * "  1) suite" line and the indented title lines up to the one ending with ":".
 */
export function failureHeads(output: string): string[] {
  const plain = plainText(output);
  const at = plain.search(/^\s+\d+ failing\b/m);
  if (at < 0) return [];
  const lines = plain.slice(at).split('\n');
  const heads: string[] = [];
  for (let i = 0; i < lines.length; i++) {
    if (!/^\s+\d+\) /.test(lines[i] ?? '')) continue;
    const parts = [(lines[i] ?? '').trim()];
    // The suite path and the test's title follow, the last one ending with ":" (mocha's spec epilogue).
    while (!parts.at(-1)?.endsWith(':') && i + 1 < lines.length && (lines[i + 1] ?? '').trim() !== '') parts.push((lines[++i] ?? '').trim());
    heads.push(parts.join(' ').replace(/:$/, ''));
  }
  return heads;
}

interface LaneResult {
  readonly lane: Lane;
  readonly output: string;
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly seconds: number;
}

const mochaBin = fileURLToPath(import.meta.resolve('mocha/bin/mocha.js'));
const children = new Set<ReturnType<typeof spawn>>();

export interface RunOptions {
  /** Where mocha runs (its .mocharc and the lanes' globs are read there). */
  readonly cwd: string;
  /** Where every line goes (standard output). */
  readonly write: (text: string) => void;
}

function runLane(lane: Lane, prefix: string, o: RunOptions): Promise<LaneResult> {
  const started = Date.now();
  const args = [mochaBin, ...lane.files, ...lane.ignore.flatMap((f) => ['--ignore', f])];
  const child = spawn(process.execPath, args, { cwd: o.cwd, stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(child);
  const chunks: string[] = [];
  const forward = (stream: NodeJS.ReadableStream): Promise<void> =>
    new Promise((done) => {
      const lines = createInterface({ input: stream, crlfDelay: Infinity });
      lines.on('line', (line) => {
        chunks.push(`${line}\n`);
        o.write(`${prefix}${line}\n`);
      });
      lines.on('close', done);
    });
  const streamed = Promise.all([forward(child.stdout), forward(child.stderr)]);
  return new Promise((resolve) => {
    child.on('error', (err) => chunks.push(`could not start mocha: ${err.message}\n`));
    child.on('close', (code, signal) => {
      children.delete(child);
      void streamed.then(() => resolve({ lane, output: chunks.join(''), code, signal, seconds: (Date.now() - started) / 1000 }));
    });
  });
}

const minutes = (s: number): string => (s < 60 ? `${Math.round(s)}s` : `${Math.floor(s / 60)}m ${Math.round(s % 60)}s`);

/** Runs the lanes side by side and prints their summary; the exit status (0: every lane passed). */
export async function runLanes(lanes: readonly Lane[], o: RunOptions): Promise<number> {
  const width = Math.max(...lanes.map((l) => l.name.length));
  const prefix = (l: Lane): string => (lanes.length === 1 ? '' : `[${l.name.padEnd(width)}] `);
  if (lanes.length > 1) o.write(`run-tests: ${lanes.length} lanes side by side: ${lanes.map((l) => `${l.name} (${l.files.join(' ')}${l.ignore.length ? ` but ${l.ignore.join(' ')}` : ''})`).join('; ')}\n`);
  const started = Date.now();
  const results = await Promise.all(lanes.map((l) => runLane(l, prefix(l), o)));
  const seconds = (Date.now() - started) / 1000;

  const totals = { passing: 0, failing: 0, pending: 0 };
  const lines: string[] = [];
  const heads: string[] = [];
  for (const r of results) {
    const counts = summaryCounts(r.output);
    const ok = r.code === 0;
    if (counts) {
      totals.passing += counts.passing;
      totals.pending += counts.pending;
      // A mocha that printed its summary and still exited non-zero without a failing test
      // (an error after the run) is a failure too.
      totals.failing += counts.failing > 0 || ok ? counts.failing : 1;
      lines.push(`  ${r.lane.name}: ${counts.passing} passing, ${counts.failing} failing${counts.pending ? `, ${counts.pending} pending` : ''} (${minutes(r.seconds)}${ok ? '' : `, exit ${r.code ?? r.signal}`})`);
      heads.push(...failureHeads(r.output).map((h) => `${r.lane.name}: ${h}`));
      if (counts.failing === 0 && !ok) heads.push(`${r.lane.name}: mocha exited ${r.code ?? r.signal} after its summary (its output above says why)`);
    } else {
      totals.failing += 1;
      lines.push(`  ${r.lane.name}: died before mocha's summary (exit ${r.code ?? r.signal}, after ${minutes(r.seconds)}; its lines above say why)`);
      heads.push(`${r.lane.name}: died before mocha's summary`);
    }
  }
  if (lanes.length > 1) {
    o.write(`\nrun-tests: every lane done in ${minutes(seconds)}\n${lines.join('\n')}\n`);
    if (heads.length > 0) o.write(`\n  failed:\n${heads.map((h) => `    ${h}`).join('\n')}\n`);
    o.write(`\n  ${totals.passing} passing (${minutes(seconds)})\n`);
    if (totals.failing > 0) o.write(`  ${totals.failing} failing\n`);
    if (totals.pending > 0) o.write(`  ${totals.pending} pending\n`);
  }
  // Every way a lane fails (a failing test, a non-zero exit, no summary) counted at least one.
  return totals.failing === 0 ? 0 : 1;
}

async function main(argv: readonly string[]): Promise<number> {
  const unknown = argv.filter((a) => a !== '--serial');
  if (unknown.length > 0) {
    process.stderr.write(`run-tests: unknown argument ${unknown.join(' ')} (usage: node --import tsx scripts/run-tests.ts [--serial])\n`);
    return 2;
  }
  // Ctrl-C reaches the lanes through the terminal's process group; a SIGTERM to us alone is passed on.
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.on(signal, () => {
      for (const c of children) c.kill(signal);
    });
  }
  return runLanes(argv.includes('--serial') ? SERIAL : LANES, { cwd: ROOT, write: (text) => process.stdout.write(text) });
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  process.exitCode = await main(process.argv.slice(2));
}
