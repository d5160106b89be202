/**
 * The shell of every `npm run render-*` command (render-rules, render-settings, render-dashboards):
 * files generated from a source of truth are written, or with `--check` only compared (exit 1,
 * naming each stale file and the command that renders it). Their unit tests compare the rendered
 * text in-process; this is what a person or CI runs.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';

export interface RenderedFile {
  readonly path: string;
  readonly text: string;
}

/** The files whose content on disk is not `text` (a missing one included). */
export function staleFiles(files: readonly RenderedFile[]): string[] {
  return files.filter(({ path, text }) => {
    try {
      return readFileSync(path, 'utf8') !== text;
    } catch {
      return true;
    }
  }).map((f) => f.path);
}

/** Writes the files, or with `--check` in `argv` says whether they are up to date; returns the exit code. */
export function writeOrCheck(files: readonly RenderedFile[], command: string, argv: readonly string[]): 0 | 1 {
  if (argv.includes('--check')) {
    const stale = staleFiles(files);
    if (stale.length > 0) {
      console.error(`out of date: ${stale.join(', ')}: run ${command}`);
      return 1;
    }
    console.log(`up to date: ${files.map((f) => f.path).join(', ')}`);
    return 0;
  }
  for (const { path, text } of files) {
    mkdirSync(dirname(path), { recursive: true });
    writeFileSync(path, text);
  }
  console.log(`wrote ${files.map((f) => f.path).join(', ')}`);
  return 0;
}
