/**
 * One string per label set, the same whichever way the labels arrive — from a remote-write
 * request, from Prometheus' API, or from a simulated pod's ground truth — so they can be compared.
 */

/** `name{a="1",b="2"}` with the labels sorted, `__name__` first: one string per label set. */
export function seriesKey(labels: ReadonlyArray<readonly [string, string]>): string {
  let name = '';
  const rest: Array<readonly [string, string]> = [];
  for (const l of labels) {
    if (l[0] === '__name__') name = l[1];
    else rest.push(l);
  }
  rest.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  return `${name}{${rest.map(([n, v]) => `${n}=${JSON.stringify(v)}`).join(',')}}`;
}
