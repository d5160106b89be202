'use strict';
// mocha's spec reporter, followed by where the time went: each test file's wall time (its hooks
// included, which the spec reporter never shows) and the slowest hooks and tests. The warm
// `npm test` has a time budget (docs/development.md); this table is where to start when it is
// over. The spec reporter's own summary ("N passing", "N failing") is printed first, unchanged.
// CommonJS because mocha loads reporters with require().
const path = require('node:path');
const Mocha = require('mocha');

const { EVENT_SUITE_BEGIN, EVENT_SUITE_END, EVENT_HOOK_BEGIN, EVENT_HOOK_END, EVENT_TEST_END, EVENT_RUN_END } = Mocha.Runner.constants;

/** How many hooks and tests the table lists, slowest first. */
const SLOWEST = 12;

const seconds = (ms) => `${(ms / 1000).toFixed(1)} s`;

class TimingReporter extends Mocha.reporters.Spec {
  constructor(runner, options) {
    super(runner, options);
    const files = new Map(); // file → { started, ms }
    const hooks = []; // { title, ms }
    const tests = []; // { title, ms }
    const hookStarts = new Map();
    const fileOf = (suite) => (suite.file ? path.relative(process.cwd(), suite.file) : undefined);

    runner.on(EVENT_SUITE_BEGIN, (suite) => {
      const file = fileOf(suite);
      // A file's top-level suites share its entry: its time runs from the first to the last.
      if (file && suite.parent?.root && !files.has(file)) files.set(file, { started: Date.now(), ms: 0 });
    });
    runner.on(EVENT_SUITE_END, (suite) => {
      const entry = files.get(fileOf(suite) ?? '');
      if (entry && suite.parent?.root) entry.ms = Date.now() - entry.started;
    });
    runner.on(EVENT_HOOK_BEGIN, (hook) => hookStarts.set(hook, Date.now()));
    runner.on(EVENT_HOOK_END, (hook) => {
      const started = hookStarts.get(hook);
      hookStarts.delete(hook);
      if (started !== undefined) hooks.push({ title: hook.fullTitle(), ms: Date.now() - started });
    });
    runner.on(EVENT_TEST_END, (test) => {
      if (typeof test.duration === 'number') tests.push({ title: test.fullTitle(), ms: test.duration });
    });
    runner.once(EVENT_RUN_END, () => {
      const out = [];
      out.push('', '  Where the time went (wall time per file, hooks included; slowest hooks and tests):', '');
      const byFile = [...files.entries()].sort((a, b) => b[1].ms - a[1].ms);
      const total = byFile.reduce((sum, [, e]) => sum + e.ms, 0);
      for (const [file, e] of byFile) out.push(`    ${seconds(e.ms).padStart(9)}  ${file}`);
      out.push(`    ${seconds(total).padStart(9)}  all files`, '');
      const list = (label, rows) => {
        out.push(`    ${label}:`);
        for (const r of rows.sort((a, b) => b.ms - a.ms).slice(0, SLOWEST)) out.push(`    ${seconds(r.ms).padStart(9)}  ${r.title.slice(0, 150)}`);
        out.push('');
      };
      list('slowest hooks', hooks);
      list('slowest tests', tests);
      process.stdout.write(`${out.join('\n')}\n`);
    });
  }
}

module.exports = TimingReporter;
