import { expect } from 'chai';
import { readFileSync } from 'node:fs';
import { renderSettingsPage, SETTINGS_PAGE } from '../../../scripts/render-settings.ts';
import { SETTINGS } from '../../../webhook/config.ts';

describe('docs/settings.md: every setting of every binary in one place', () => {
  const page = renderSettingsPage();

  it('is rendered from the lists --help prints (after a change: npm run render-settings)', () => {
    expect(readFileSync(SETTINGS_PAGE, 'utf8') === page, `${SETTINGS_PAGE} is out of date: run npm run render-settings`).to.equal(true);
  });

  it('has a row for every webhook setting with its key, variable and default', () => {
    for (const s of SETTINGS) {
      const def = s.default === '' ? '(unset)' : `\`${s.default}\``;
      expect(page, s.key).to.contain(`| \`${s.key}\` | \`${s.env}\` | ${def} |`);
    }
  });

  it('lists, for each variable several binaries read, every binary that reads it', () => {
    expect(page).to.contain('| `JOBMETRICS_TOKEN_AUDIENCE` | jobmetrics-webhook, jobmetrics-gateway |');
    expect(page).to.contain('| `JOBMETRICS_STALENESS` | jobmetrics-sidecar, jobmetrics-gateway, jobmetrics-recorder |');
    expect(page).to.contain('| `JOBMETRICS_REMOTE_WRITE_URL` | jobmetrics-sidecar, jobmetrics-recorder |');
  });
});
