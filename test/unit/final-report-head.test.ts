import { expect } from 'chai';
import { DROP_REASONS, formatReportHead, parseReportHead, type DeliveryCounts, type ReportHead } from '../../shared/final-report-head.ts';

const PREFIX = 'jobmetrics final values: ';

describe('the first line of the sidecar’s termination message (shared/final-report-head.ts)', () => {
  describe('read back by the recorder', () => {
    const counts = (ok: number, failed: number, retries: number, dropped: DeliveryCounts['dropped'] = {}): DeliveryCounts => ({ ok, failed, retries, dropped });
    const rows: Array<[what: string, message: string | undefined, want: ReportHead | undefined]> = [
      [
        'this sidecar, delivered',
        `${PREFIX}trigger=main-exited attempt=1 delivered=true series=10 deliveries_ok=12 deliveries_failed=0 retries=0\nitems_total 5`,
        { trigger: 'main-exited', attempt: 1, delivered: true, undelivered: 0, series: 10, counts: counts(12, 0, 0) },
      ],
      [
        'this sidecar, given up at the deadline, with drops',
        `${PREFIX}trigger=signal attempt=2 delivered=false undelivered=40 series=40 dropped=9 deliveries_ok=3 deliveries_failed=2 retries=14 dropped_by=invalid-value:3,over-limit:6`,
        { trigger: 'signal', attempt: 2, delivered: false, undelivered: 40, series: 40, counts: counts(3, 2, 14, { 'invalid-value': 3, 'over-limit': 6 }) },
      ],
      [
        'an older sidecar: no counts, which are unknown, not zero',
        `${PREFIX}trigger=main-exited attempt=1 delivered=true series=10\nx 1`,
        { trigger: 'main-exited', attempt: 1, delivered: true, undelivered: 0, series: 10 },
      ],
      [
        'an older sidecar that gave up, with its total of drops',
        `${PREFIX}trigger=signal attempt=2 delivered=false undelivered=37 series=40 dropped=4\n`,
        { trigger: 'signal', attempt: 2, delivered: false, undelivered: 37, series: 40 },
      ],
      [
        'the counts only from the first line, never from a series line below it',
        `${PREFIX}trigger=main-exited attempt=1 delivered=true series=1\nx_total{a="deliveries_ok=1 deliveries_failed=0 retries=0"} 1`,
        { trigger: 'main-exited', attempt: 1, delivered: true, undelivered: 0, series: 1 },
      ],
      [
        'a count that is not a number: no counts rather than wrong ones',
        `${PREFIX}trigger=main-exited attempt=1 delivered=true series=1 deliveries_ok=x deliveries_failed=0 retries=0`,
        { trigger: 'main-exited', attempt: 1, delivered: true, undelivered: 0, series: 1 },
      ],
      [
        'one of the three counts missing',
        `${PREFIX}trigger=main-exited attempt=1 delivered=true series=1 deliveries_ok=4 retries=0`,
        { trigger: 'main-exited', attempt: 1, delivered: true, undelivered: 0, series: 1 },
      ],
      [
        'a drop reason this recorder does not know (it would become a label value): no counts',
        `${PREFIX}trigger=main-exited attempt=1 delivered=true series=1 dropped=2 deliveries_ok=4 deliveries_failed=0 retries=0 dropped_by=cosmic-rays:2`,
        { trigger: 'main-exited', attempt: 1, delivered: true, undelivered: 0, series: 1 },
      ],
      [
        'a drop reason twice: no counts',
        `${PREFIX}trigger=main-exited attempt=1 delivered=true series=1 dropped=2 deliveries_ok=4 deliveries_failed=0 retries=0 dropped_by=duplicate:1,duplicate:1`,
        { trigger: 'main-exited', attempt: 1, delivered: true, undelivered: 0, series: 1 },
      ],
      [
        'a field it does not know (a newer sidecar) is ignored; a repeated field counts once, the first',
        `${PREFIX}trigger=main-exited attempt=1 delivered=true series=1 deliveries_ok=4 deliveries_failed=1 retries=2 scrapes=99 retries=7`,
        { trigger: 'main-exited', attempt: 1, delivered: true, undelivered: 0, series: 1, counts: counts(4, 1, 2) },
      ],
      ['no delivered= field: not a report', `${PREFIX}trigger=main-exited attempt=1 series=1`, undefined],
      ['another program’s message', 'panic: something else', undefined],
      ['an empty message (the sidecar was killed before it wrote one)', '', undefined],
      ['no message at all', undefined, undefined],
    ];
    for (const [what, message, want] of rows) it(what, () => expect(parseReportHead(message)).to.deep.equal(want));
  });

  describe('written by the sidecar', () => {
    const base = { trigger: 'main-exited', attempt: 1, delivered: true, undelivered: 0, series: 10 };
    const rows: Array<[what: string, head: ReportHead & { counts: DeliveryCounts }, line: string]> = [
      [
        'delivered, nothing dropped: zero counts are written (known zeros), no drop fields',
        { ...base, counts: { ok: 12, failed: 0, retries: 0, dropped: { duplicate: 0 } } },
        `${PREFIX}trigger=main-exited attempt=1 delivered=true series=10 deliveries_ok=12 deliveries_failed=0 retries=0`,
      ],
      [
        'not delivered, with drops: the total where older sidecars wrote it, the reasons in a fixed order after the counts',
        { ...base, trigger: 'signal', attempt: 3, delivered: false, undelivered: 40, series: 40, counts: { ok: 3, failed: 2, retries: 14, dropped: { 'over-limit': 6, 'invalid-value': 3 } } },
        `${PREFIX}trigger=signal attempt=3 delivered=false undelivered=40 series=40 dropped=9 deliveries_ok=3 deliveries_failed=2 retries=14 dropped_by=invalid-value:3,over-limit:6`,
      ],
    ];
    for (const [what, head, line] of rows) {
      it(what, () => {
        expect(formatReportHead(head)).to.equal(line);
        expect(parseReportHead(line), 'read back').to.deep.equal({ ...head, counts: { ...head.counts, dropped: Object.fromEntries(Object.entries(head.counts.dropped).filter(([, n]) => n > 0)) } });
      });
    }

    it('stays short, so it is never what the kubelet’s 4 096 bytes cut off: under 400 bytes with every count at 15 digits', () => {
      const big = 999_999_999_999_999;
      const line = formatReportHead({
        trigger: 'no-shared-pid-namespace',
        attempt: big,
        delivered: false,
        undelivered: big,
        series: big,
        counts: { ok: big, failed: big, retries: big, dropped: Object.fromEntries(DROP_REASONS.map((r) => [r, big])) },
      });
      expect(line.length).to.be.below(400);
      expect(parseReportHead(line)?.counts?.dropped).to.deep.equal(Object.fromEntries(DROP_REASONS.map((r) => [r, big])));
    });
  });
});
