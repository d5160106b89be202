/**
 * Writes families back in either text format: the inverse of `parse` for well-formed families,
 * used by the round-trip property test. Every family gets a TYPE line so that parsing groups the
 * samples back into the same families.
 */
import type { ExpositionFormat, Labels, MetricFamily } from './types.ts';

export function print(families: readonly MetricFamily[], format: ExpositionFormat): string {
  const om = format === 'openmetrics';
  let out = '';
  for (const family of families) {
    if (family.help !== undefined) out += `# HELP ${family.name} ${escapeHelp(family.help, om)}\n`;
    out += `# TYPE ${family.name} ${family.type}\n`;
    if (om && family.unit !== undefined) out += `# UNIT ${family.name} ${family.unit}\n`;
    for (const s of family.samples) {
      out += `${s.name}${printLabels(s.labels)} ${printValue(s.value)}`;
      if (s.timestampMs !== undefined) out += ` ${om ? String(s.timestampMs / 1000) : String(s.timestampMs)}`;
      out += '\n';
    }
  }
  // [om]: `exposition = metricset HASH SP eof [ LF ]`.
  return om ? `${out}# EOF\n` : out;
}

/** [prom]/[om]: `+Inf`, `-Inf`, `NaN`; JavaScript's shortest round-trip form otherwise. */
export function printValue(value: number): string {
  if (Number.isNaN(value)) return 'NaN';
  if (value === Infinity) return '+Inf';
  if (value === -Infinity) return '-Inf';
  return Object.is(value, -0) ? '-0' : String(value);
}

function printLabels(labels: Labels): string {
  if (labels.length === 0) return '';
  return `{${labels.map(([name, value]) => `${name}="${escapeLabelValue(value)}"`).join(',')}}`;
}

/** [prom]/[om]: backslash, double quote and line feed are escaped in label values. */
function escapeLabelValue(value: string): string {
  return value.replace(/[\\"\n]/g, (c) => (c === '\n' ? '\\n' : `\\${c}`));
}

/** [prom]: HELP escapes backslash and line feed only; [om]'s escaped-string escapes `"` too. */
function escapeHelp(help: string, om: boolean): string {
  return help.replace(om ? /[\\"\n]/g : /[\\\n]/g, (c) => (c === '\n' ? '\\n' : `\\${c}`));
}
