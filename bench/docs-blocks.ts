/**
 * The generated blocks of docs/benchmarks.md: `<!-- bench:NAME -->` … `<!-- /bench:NAME -->`,
 * rewritten by `--write-docs` while the hand-written text around them stays.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

export const BENCHMARKS_DOC = fileURLToPath(new URL('../docs/benchmarks.md', import.meta.url));

/** A benchmark's text as Markdown: its tables stay tables, every other line its own paragraph. */
export function asMarkdown(text: string): string {
  const out: string[] = [];
  for (const line of text.split('\n')) {
    const prev = out.at(-1);
    const plain = (l: string | undefined): boolean => l !== undefined && l !== '' && !l.startsWith('|');
    if (plain(line) && plain(prev)) out.push('');
    out.push(line);
  }
  return out.join('\n');
}

/** Replaces the block's contents with `text`; false (nothing written) when its markers are missing. */
export function writeDocsBlock(name: string, text: string, path: string = BENCHMARKS_DOC): boolean {
  const doc = readFileSync(path, 'utf8');
  const open = `<!-- bench:${name} -->`;
  const close = `<!-- /bench:${name} -->`;
  const start = doc.indexOf(open);
  const end = doc.indexOf(close);
  if (start < 0 || end < start) return false;
  writeFileSync(path, `${doc.slice(0, start + open.length)}\n${text}\n${doc.slice(end)}`);
  return true;
}
