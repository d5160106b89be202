/**
 * The process's peak resident memory, for the exit summary: VmHWM of /proc/self/status, the
 * high-water mark of this process image's own memory. Not getrusage's ru_maxrss, which Linux
 * carries across execve, so it would report the parent's memory at fork when that was larger.
 */
import { fs } from '../shared/node-builtins.ts';

/** Peak RSS in MiB, rounded; undefined where /proc/self/status has no VmHWM (not Linux). */
export function peakRssMb(): number | undefined {
  try {
    const m = /^VmHWM:\s+(\d+) kB/m.exec(fs.readFileSync('/proc/self/status', 'utf8'));
    return m?.[1] === undefined ? undefined : Math.round(Number(m[1]) / 1024);
  } catch {
    return undefined;
  }
}
