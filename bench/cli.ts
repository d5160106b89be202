/**
 * The benchmarks' own command lines (`node --import tsx bench/<name>.ts --flag N`): one reader of
 * a whole-number flag, so every script says the same thing about a bad value.
 */

/** The value after `flag` in `argv` as a whole number ≥ `min`; undefined when the flag is absent. */
export function wholeFlag(argv: readonly string[], flag: string, min: number): number | undefined {
  const i = argv.indexOf(flag);
  if (i < 0) return undefined;
  const n = Number(argv[i + 1]);
  if (!Number.isInteger(n) || n < min) throw new Error(`${flag} needs a whole number ≥ ${min}, got ${argv[i + 1] ?? 'nothing'}`);
  return n;
}
