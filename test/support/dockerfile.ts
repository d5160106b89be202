/**
 * Just enough of the Dockerfile format (https://docs.docker.com/reference/dockerfile/) and of
 * `.dockerignore` to check Dockerfile.webhook and Dockerfile.sidecar without a container engine
 * (test/unit/dockerfiles.test.ts) and to lay out their runtime stage on disk
 * (test/integration/dockerfile-runtime.test.ts). Also: the import graph of a compiled program.
 */
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { dirname, join, relative, resolve } from 'node:path';

export interface Instruction {
  /** Upper case: FROM, RUN, COPY, ... */
  keyword: string;
  /** `--name=value` flags (COPY --from, FROM --platform, ...). */
  flags: Record<string, string>;
  /** The rest of the instruction, continuation lines joined as the builder joins them. */
  args: string;
  /** The arguments of the JSON (exec) form, when the instruction is written in it. */
  json?: string[];
  /** 1-based line of the keyword. */
  line: number;
}

export interface Stage {
  /** The `AS` name; the last stage usually has none. */
  name?: string;
  /** The image named by FROM, exactly as written. */
  base: string;
  platform?: string;
  instructions: Instruction[];
}

export interface Dockerfile {
  /** Instructions before the first FROM (global ARGs). */
  preamble: Instruction[];
  stages: Stage[];
  /** Every comment line, without `# `, in order. */
  comments: string[];
}

/** Splits a Dockerfile into instructions: comments, blank lines and `\` continuations as BuildKit handles them. */
export function parseDockerfile(text: string): Dockerfile {
  const lines = text.split('\n');
  const comments: string[] = [];
  const instructions: Instruction[] = [];
  let i = 0;
  while (i < lines.length) {
    const raw = lines[i]!;
    const trimmed = raw.trim();
    if (trimmed === '') {
      i++;
      continue;
    }
    if (trimmed.startsWith('#')) {
      comments.push(trimmed.replace(/^#\s?/, ''));
      i++;
      continue;
    }
    const start = i + 1;
    let body = '';
    let current = trimmed;
    for (;;) {
      // A comment line inside a continuation is dropped, as the builder does.
      if (current.endsWith('\\')) {
        body += current.slice(0, -1);
        i++;
        while (i < lines.length && lines[i]!.trim().startsWith('#')) i++;
        if (i >= lines.length) break;
        current = lines[i]!.trim();
        continue;
      }
      body += current;
      i++;
      break;
    }
    const m = /^(\S+)\s*(.*)$/s.exec(body);
    if (!m) throw new Error(`line ${start}: cannot parse ${JSON.stringify(body)}`);
    const keyword = m[1]!.toUpperCase();
    let rest = m[2]!;
    const flags: Record<string, string> = {};
    if (['FROM', 'COPY', 'ADD', 'RUN'].includes(keyword)) {
      for (;;) {
        const f = /^--([a-z-]+)(?:=(\S*))?\s+/.exec(rest);
        if (!f) break;
        flags[f[1]!] = f[2] ?? 'true';
        rest = rest.slice(f[0].length);
      }
    }
    const instruction: Instruction = { keyword, flags, args: rest.trim(), line: start };
    if (rest.trim().startsWith('[')) {
      try {
        const parsed: unknown = JSON.parse(rest.trim());
        if (Array.isArray(parsed) && parsed.every((a) => typeof a === 'string')) instruction.json = parsed as string[];
      } catch {
        // Not valid JSON: the builder runs it in the shell form.
      }
    }
    instructions.push(instruction);
  }
  const preamble: Instruction[] = [];
  const stages: Stage[] = [];
  for (const ins of instructions) {
    if (ins.keyword === 'FROM') {
      const parts = ins.args.split(/\s+/);
      const stage: Stage = { base: parts[0]!, instructions: [] };
      if (parts.length === 3 && parts[1]!.toUpperCase() === 'AS') stage.name = parts[2]!;
      else if (parts.length !== 1) throw new Error(`line ${ins.line}: FROM ${ins.args}`);
      if (ins.flags['platform'] !== undefined) stage.platform = ins.flags['platform'];
      stages.push(stage);
    } else if (stages.length === 0) {
      preamble.push(ins);
    } else {
      stages.at(-1)!.instructions.push(ins);
    }
  }
  return { preamble, stages, comments };
}

export interface Copy {
  /** Stage name of `--from`, or undefined for the build context. */
  from?: string;
  sources: string[];
  dest: string;
  line: number;
}

export function copies(stage: Stage): Copy[] {
  return stage.instructions
    .filter((i) => i.keyword === 'COPY' || i.keyword === 'ADD')
    .map((i) => {
      const words = i.json ?? i.args.split(/\s+/);
      const copy: Copy = { sources: words.slice(0, -1), dest: words.at(-1)!, line: i.line };
      if (i.flags['from'] !== undefined) copy.from = i.flags['from'];
      return copy;
    });
}

/** WORKDIR in effect at the end of the stage (absolute; `/` when none is set). */
export function workdir(stage: Stage): string {
  let dir = '/';
  for (const i of stage.instructions) if (i.keyword === 'WORKDIR') dir = resolve(dir, i.args);
  return dir;
}

/** Where a COPY destination lands in the stage's filesystem: relative to the WORKDIR at that point. */
export function copyDestination(stage: Stage, copy: Copy): string {
  let dir = '/';
  for (const i of stage.instructions) {
    if (i.line > copy.line) break;
    if (i.keyword === 'WORKDIR') dir = resolve(dir, i.args);
  }
  return resolve(dir, copy.dest);
}

/** ARG name=default pairs of a stage. */
export function args(stage: Stage): Record<string, string> {
  const out: Record<string, string> = {};
  for (const i of stage.instructions) {
    if (i.keyword !== 'ARG') continue;
    const m = /^([A-Za-z_][A-Za-z0-9_]*)(?:=(.*))?$/.exec(i.args);
    if (m) out[m[1]!] = unquote(m[2] ?? '');
  }
  return out;
}

function unquote(s: string): string {
  return s.startsWith('"') && s.endsWith('"') && s.length >= 2 ? s.slice(1, -1).replace(/\\(.)/g, '$1') : s;
}

/** `key=value` pairs of LABEL and ENV (the `key=value` form only), values unquoted. */
export function pairs(stage: Stage, keyword: 'LABEL' | 'ENV'): Record<string, string> {
  const out: Record<string, string> = {};
  for (const i of stage.instructions) {
    if (i.keyword !== keyword) continue;
    const re = /([A-Za-z0-9_.-]+)=("(?:[^"\\]|\\.)*"|\S+)/g;
    let m: RegExpExecArray | null;
    while ((m = re.exec(i.args)) !== null) out[m[1]!] = unquote(m[2]!);
  }
  return out;
}

/** `${NAME}` and `$NAME` replaced from `vars`, as the builder substitutes ARG values. */
export function substitute(value: string, vars: Record<string, string>): string {
  return value.replace(/\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)/g, (_, a: string | undefined, b: string | undefined) => vars[(a ?? b)!] ?? '');
}

/**
 * `.dockerignore` as the builder reads it (github.com/moby/patternmatcher): patterns in order,
 * the last one that matches a path or one of its parent directories decides; `!` re-includes.
 * `*` and `?` stay within one path element, `**` crosses them.
 */
export function dockerignore(text: string): (path: string) => boolean {
  const rules = text
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'))
    .map((l) => {
      const negate = l.startsWith('!');
      const pattern = (negate ? l.slice(1) : l).trim().replace(/^\/+/, '').replace(/\/+$/, '');
      let re = '';
      for (let k = 0; k < pattern.length; k++) {
        const c = pattern[k]!;
        if (c === '*' && pattern[k + 1] === '*') {
          re += '.*';
          k++;
          if (pattern[k + 1] === '/') k++;
        } else if (c === '*') re += '[^/]*';
        else if (c === '?') re += '[^/]';
        else re += c.replace(/[.+^${}()|[\]\\]/g, '\\$&');
      }
      return { negate, re: new RegExp(`^${re}$`) };
    });
  /** True when the path is excluded from the build context. */
  return (path: string) => {
    const parts = path.split('/');
    let excluded = false;
    for (const r of rules) {
      for (let n = parts.length; n >= 1; n--) {
        if (r.re.test(parts.slice(0, n).join('/'))) {
          excluded = !r.negate;
          break;
        }
      }
    }
    return excluded;
  };
}

/** Every file below `path` (or `path` itself), relative to `root`. */
export function filesUnder(root: string, path: string): string[] {
  const full = join(root, path);
  if (!statSync(full).isDirectory()) return [relative(root, full)];
  return readdirSync(full, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile())
    .map((e) => relative(root, join(e.parentPath, e.name)));
}

export interface ImportGraph {
  /** Every module file reached, absolute. */
  files: string[];
  /** Packages imported by those files (`protobufjs` for `protobufjs/minimal.js`), sorted. */
  packages: string[];
}

const BUILTINS = new Set(builtinModules);

/**
 * The modules a compiled program loads: static `import`/`export … from`, and `import('…')` with a
 * literal (the webhook loads some modules only when it needs them; they must be there too).
 */
export function importGraph(entry: string): ImportGraph {
  const seen = new Set<string>();
  const packages = new Set<string>();
  const todo = [resolve(entry)];
  while (todo.length > 0) {
    const file = todo.pop()!;
    if (seen.has(file)) continue;
    seen.add(file);
    const text = readFileSync(file, 'utf8');
    // Static and dynamic imports, and `createRequire(import.meta.url)('pkg')` (remote-write.ts
    // loads a CommonJS package that way).
    const re = /(?:\bimport|\bexport)\s[^'"`;]*?\bfrom\s*(['"])([^'"]+)\1|\bimport\s*(['"])([^'"]+)\3|\bimport\(\s*(['"])([^'"]+)\5\s*\)|\bcreateRequire\([^)]*\)\(\s*(['"])([^'"]+)\7\s*\)/g;
    let m: RegExpExecArray | null;
    while ((m = re.exec(text)) !== null) {
      const spec = (m[2] ?? m[4] ?? m[6] ?? m[8])!;
      if (spec.startsWith('node:') || BUILTINS.has(spec)) continue;
      if (spec.startsWith('.') || spec.startsWith('/')) {
        const target = resolve(dirname(file), spec);
        if (!existsSync(target)) throw new Error(`${file} imports ${spec}, which does not exist`);
        todo.push(target);
      } else {
        const parts = spec.split('/');
        packages.add(spec.startsWith('@') ? parts.slice(0, 2).join('/') : parts[0]!);
      }
    }
  }
  return { files: [...seen].sort(), packages: [...packages].sort() };
}
