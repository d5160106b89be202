/**
 * `npm run bench`: every benchmark of the project, one after the other, each printing its table
 * and its target verdicts on stdout; progress lines go to stderr. Results: docs/benchmarks.md.
 *
 *   npm run bench                            parser, sidecar, sidecar-costs, sidecar-memory, exit-latency, tail-loss,
 *                                            webhook, aggregator-load, webhook-burst, job-completion,
 *                                            recorder-burst, gateway-identity (~50 min, and recorder-burst's own length;
 *                                            job-completion needs root and starts the local node cluster)
 *   npm run bench -- sidecar exit-latency    a subset, in the order given
 *   npm run bench -- --quick                 shorter windows: sidecar 10 s per configuration,
 *                                            exit-latency 20 runs per receiver, tail-loss 10 runs
 *                                            per interval, webhook 3 s runs, aggregator-load
 *                                            200 pods for 60 s, webhook-burst 200 pods, job-completion
 *                                            8 Jobs per row and 20 s of memory samples, recorder-burst
 *                                            100 Jobs and 10 s of settle
 *   npm run bench -- exit-latency --runs 50 --no-vmagent
 *   npm run bench -- sidecar --profile       also a CPU profile of the sidecar per configuration
 *   npm run bench -- aggregator-load --pods 1000 --series 100 --duration 5m --overlay ha-aggregator
 *                                            the aggregator tier under load with faults (its own
 *                                            options: bench/aggregator-load.ts)
 *   npm run bench -- webhook-burst           1 000 pods created at once through a real API server,
 *                                            with and without the webhook (bench/webhook-burst.ts)
 *   npm run bench -- job-completion          real pods on the local node: the sidecar's working set at
 *                                            1 000 series vs an idle Node container, and main exit →
 *                                            Job Complete without/native/legacy (bench/job-completion.ts)
 *   npm run bench -- recorder-burst          1 000 Jobs × 10 pods at once on a real API server, a fake
 *                                            kubelet completing them: the outcome recorder's CPU and RSS
 *                                            next to the API server's, etcd's and the controller-manager's
 *                                            (bench/recorder-burst.ts; --jobs N --pods N, as aggregator-load's)
 *   npm run bench -- gateway-identity        1 000 pods' writes through the gateway with and without
 *                                            token review (TokenReview at a real API server), side by
 *                                            side (bench/gateway-identity.ts)
 *   npm run bench -- --write-docs            also replace the generated blocks of the Sidecar,
 *                                            Sidecar-costs, Parser, Exit, Tail-loss, Aggregator-load,
 *                                            Webhook-burst and Job-completion sections of docs/benchmarks.md
 *                                            (the Webhook section is bench/webhook.ts's own)
 *
 * The machine has few cores and is shared: run measurements under the benchmark lock, so they
 * never overlap with each other or with CI, e.g. `flock /tmp/jobmetrics-bench.lock npm run bench`.
 * BENCH_EXTRA_MODULES: see bench/parser.ts (a third-party parser for comparison).
 */
import { cpus, loadavg, totalmem } from 'node:os';
import { asMarkdown, writeDocsBlock } from './docs-blocks.ts';

const NAMES = ['parser', 'sidecar', 'sidecar-costs', 'sidecar-memory', 'exit-latency', 'tail-loss', 'webhook', 'aggregator-load', 'webhook-burst', 'job-completion', 'recorder-burst', 'gateway-identity'] as const;
type Name = (typeof NAMES)[number];
const ALIASES: Record<string, Name> = { exit: 'exit-latency', latency: 'exit-latency', footprint: 'sidecar', memory: 'sidecar-memory', tail: 'tail-loss', load: 'aggregator-load', scale: 'aggregator-load', 'real-pods': 'job-completion', completion: 'job-completion', recorder: 'recorder-burst', identity: 'gateway-identity' };

interface Args {
  readonly names: Name[];
  readonly quick: boolean;
  readonly profile: boolean;
  readonly writeDocs: boolean;
  readonly runs: number | undefined;
  readonly noVmagent: boolean;
  /** aggregator-load's own options (bench/aggregator-load.ts parseLoadArgs). */
  readonly load: string[];
}

function usage(): string {
  return [
    `usage: npm run bench -- [${NAMES.join('|')} …] [--quick] [--profile] [--runs N] [--no-vmagent] [--write-docs] [aggregator-load options]`,
    '  no names: all of them, in this order. --quick: shorter windows. --profile: CPU profile of the sidecar.',
    '  --runs N: exit-latency runs per receiver and tail-loss runs per interval. --no-vmagent: exit-latency at the local receiver only. --write-docs: update docs/benchmarks.md.',
    '  aggregator-load: --pods N --series N --jobs N --duration D --lifetime D-D --interval D --overlay ha-aggregator|sharded-aggregator --no-faults --seed N',
  ].join('\n');
}

function parseArgs(argv: readonly string[]): Args {
  const names: Name[] = [];
  let quick = false;
  let profile = false;
  let writeDocs = false;
  let runs: number | undefined;
  let noVmagent = false;
  const load: string[] = [];
  const LOAD_VALUE_OPTIONS = ['--pods', '--series', '--jobs', '--duration', '--lifetime', '--interval', '--overlay', '--seed'];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] ?? '';
    if (LOAD_VALUE_OPTIONS.includes(a)) load.push(a, argv[++i] ?? '');
    else if (a === '--no-faults') load.push(a);
    else if (a === '--quick') quick = true;
    else if (a === '--profile') profile = true;
    else if (a === '--write-docs') writeDocs = true;
    else if (a === '--no-vmagent') noVmagent = true;
    else if (a === '--runs') {
      runs = Number(argv[++i]);
      if (!Number.isInteger(runs) || runs < 1) throw new Error(`--runs needs a positive integer\n${usage()}`);
    } else if (a === '--help' || a === '-h') {
      console.log(usage());
      process.exit(0);
    } else {
      const name = (NAMES as readonly string[]).includes(a) ? (a as Name) : ALIASES[a];
      if (name === undefined) throw new Error(`unknown benchmark or option "${a}"\n${usage()}`);
      if (!names.includes(name)) names.push(name);
    }
  }
  return { names: names.length > 0 ? names : [...NAMES], quick, profile, writeDocs, runs, noVmagent, load };
}

const load = (): string => loadavg().map((l) => l.toFixed(2)).join(' ');

export function machine(): string {
  const c = cpus();
  return `${c[0]?.model ?? 'unknown CPU'}, ${c.length} cores, ${(totalmem() / 2 ** 30).toFixed(1)} GiB, Node ${process.version}, ${process.platform}/${process.arch}`;
}

async function runOne(name: Name, a: Args): Promise<string> {
  switch (name) {
    case 'parser':
      return (await import('./parser.ts')).run();
    case 'sidecar':
      return (await import('./sidecar.ts')).run({ quick: a.quick, profile: a.profile });
    case 'sidecar-costs':
      return (await import('./sidecar-costs.ts')).run(a.quick ? { processes: 3, writes: 50 } : {});
    case 'sidecar-memory':
      return (await import('./sidecar-memory.ts')).run({ quick: a.quick });
    case 'exit-latency':
      return (await import('./exit-latency.ts')).run({
        quick: a.quick,
        ...(a.runs !== undefined ? { runs: a.runs } : {}),
        ...(a.noVmagent ? { receivers: ['receiver'] as const } : {}),
      });
    case 'tail-loss':
      return (await import('./tail-loss.ts')).run(a.quick ? { runs: 10 } : a.runs !== undefined ? { runs: a.runs } : {});
    case 'webhook':
      // bench/webhook.ts's own defaults (10 s runs after a 3 s warm-up) unless --quick.
      return (await import('./webhook.ts')).run(a.quick ? { durationS: 3, warmupS: 1 } : {});
    case 'webhook-burst':
      return (await import('./webhook-burst.ts')).run(a.quick ? { pods: 200 } : {});
    case 'job-completion':
      return (await import('./job-completion.ts')).run(a.quick ? { jobs: 8, sampleSeconds: 20 } : {});
    case 'recorder-burst': {
      // --jobs and --pods are read by aggregator-load too, when both are run.
      const given = (flag: string): number | undefined => {
        const i = a.load.indexOf(flag);
        const n = i < 0 ? NaN : Number(a.load[i + 1]);
        return Number.isInteger(n) && n > 0 ? n : undefined;
      };
      const jobs = given('--jobs') ?? (a.quick ? 100 : undefined);
      const pods = given('--pods');
      return (await import('./recorder-burst.ts')).run({ ...(jobs !== undefined ? { jobs } : {}), ...(pods !== undefined ? { pods } : {}), ...(a.quick ? { settleMs: 10_000 } : {}) });
    }
    case 'gateway-identity':
      return (await import('./gateway-identity.ts')).run(a.quick ? { pods: 200, seconds: 20, rounds: 1 } : {});
    case 'aggregator-load': {
      const m = await import('./aggregator-load.ts');
      return m.run({ ...(a.quick ? { pods: 200, durationMs: 60_000 } : {}), ...m.parseLoadArgs(a.load) });
    }
  }
}

const TITLES: Record<Name, string> = {
  parser: 'Parser',
  sidecar: 'Sidecar footprint',
  'sidecar-costs': 'Sidecar design costs',
  'sidecar-memory': 'Sidecar memory at its limits',
  'exit-latency': 'Exit-to-delivered latency',
  'tail-loss': 'Tail loss',
  webhook: 'Webhook',
  'aggregator-load': 'Aggregator tier under load',
  'webhook-burst': 'Webhook under a pod-creation burst',
  'job-completion': 'Real pods: sidecar memory and Job completion delay',
  'recorder-burst': 'Outcome recorder under a burst',
  'gateway-identity': 'Gateway: writes with and without token review',
};

async function main(): Promise<number> {
  const a = parseArgs(process.argv.slice(2));
  const progress = (line: string): void => void process.stderr.write(`${line}\n`);
  const startedAt = new Date();
  console.log(`# jobmetrics benchmarks${a.quick ? ' (quick)' : ''}: ${a.names.join(', ')}`);
  console.log(`Machine: ${machine()}; load average at the start ${load()}; ${startedAt.toISOString()}`);
  const verdicts: string[] = [];
  let failed = 0;
  for (const name of a.names) {
    const before = load();
    const t0 = performance.now();
    progress(`bench: ${name} … (load average ${before})`);
    let text: string;
    try {
      text = await runOne(name, a);
    } catch (error) {
      failed++;
      const message = error instanceof Error ? (error.stack ?? error.message) : String(error);
      progress(`bench: ${name} FAILED: ${message}`);
      console.log(`\n## ${TITLES[name]}\n\nFAILED: ${message}`);
      verdicts.push(`${name}: FAILED`);
      continue;
    }
    const seconds = (performance.now() - t0) / 1000;
    const footer = `Load average before ${before}, after ${load()}; ${seconds.toFixed(0)} s; ${machine()}.`;
    console.log(`\n## ${TITLES[name]}\n\n${text}\n\n${footer}`);
    for (const line of text.split('\n')) if (/: (NOT MET|MET)\b/.test(line)) verdicts.push(`${name}: ${line.trim()}`);
    if (a.writeDocs && name !== 'webhook') {
      const block = [asMarkdown(text), '', footer].join('\n');
      if (writeDocsBlock(name, block)) progress(`bench: ${name}: docs/benchmarks.md updated`);
      else progress(`bench: ${name}: no <!-- bench:${name} --> block in docs/benchmarks.md; not written`);
    }
    progress(`bench: ${name} done in ${seconds.toFixed(0)} s`);
  }
  console.log(`\n## Targets\n\n${verdicts.length ? verdicts.map((v) => `- ${v}`).join('\n') : '(no targets judged)'}`);
  console.log(`\nLoad average at the end ${load()}; ${((Date.now() - startedAt.getTime()) / 1000).toFixed(0)} s in all.`);
  return failed > 0 ? 1 : 0;
}

const code = await main().catch((error: unknown) => {
  process.stderr.write(`${error instanceof Error ? error.message : String(error)}\n`);
  return 2;
});
// A benchmark's leftover keep-alive socket or timer must not hold the run open.
process.exit(code);
