// End-to-end browser test of the driftwatch analyst page (src/web/assets, served at /ui/): drives
// the page with system Chromium through playwright-core and checks every write through the HTTP
// API. Owns nothing else; it starts no service.
//
//   cd tests/browser && npm ci
//   BASE_URL=http://127.0.0.1:8080 PROJECT=demo ARTIFACTS=/tmp/dw-shots node labeling.mjs
//
// Env: BASE_URL (service root), PROJECT (an existing labeling project; with CREATE_SERIES=a,b it is
// created through the page's form when missing), ARTIFACTS (screenshot folder, default
// ./artifacts), CHROMIUM (default /usr/bin/chromium), ANALYST (default playwright-<time>),
// READY_TIMEOUT_MS (how long the project may stay "preparing", default 300000).
// Exit 0 when every stage passed, 1 with "FAIL <stage>: <reason>" otherwise. Any browser console
// error or uncaught page exception fails the run.

import { chromium } from 'playwright-core';
import fs from 'node:fs';
import path from 'node:path';

const BASE_URL = (process.env.BASE_URL || 'http://127.0.0.1:8080').replace(/\/+$/, '');
const PROJECT = process.env.PROJECT;
const ARTIFACTS = path.resolve(process.env.ARTIFACTS || 'artifacts');
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const ANALYST = process.env.ANALYST || `playwright-${Date.now().toString(36)}`;
const READY_TIMEOUT_MS = Number(process.env.READY_TIMEOUT_MS || 300_000);
const CREATE_SERIES = (process.env.CREATE_SERIES || '').split(',').map((s) => s.trim()).filter(Boolean);
// `SERIES=name:points`: the series the new-project form must list, with its stored point count.
const SERIES = process.env.SERIES ? process.env.SERIES.split(':') : null;
// `RETENTION_SERIES=name`: a series retention has thinned (checked in stage 7).
const RETENTION_SERIES = process.env.RETENTION_SERIES || '';

class Failure extends Error {}
function check(cond, message) {
  if (!cond) throw new Failure(message);
}
const enc = encodeURIComponent;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function apiGet(p) {
  const res = await fetch(BASE_URL + p, { headers: { accept: 'application/json' } });
  const text = await res.text();
  if (!res.ok) throw new Failure(`GET ${p} answered ${res.status}: ${text.slice(0, 300)}`);
  return JSON.parse(text);
}
/** Retries `fn` until it returns a truthy value; fails with `what` and the last value seen. */
async function eventually(what, fn, timeout = 15_000, interval = 250) {
  const until = Date.now() + timeout;
  let last;
  for (;;) {
    try {
      last = await fn();
      if (last) return last;
    } catch (e) {
      if (!(e instanceof Failure)) throw e;
      last = e.message;
    }
    if (Date.now() > until) throw new Failure(`${what} (after ${timeout} ms; last: ${JSON.stringify(last)?.slice(0, 300)})`);
    await sleep(interval);
  }
}
const overlaps = (a, b) => a.series === b.series && a.start < b.end && b.start < a.end;

async function main() {
  check(PROJECT, 'set PROJECT to the name of a labeling project');
  check(fs.existsSync(CHROMIUM), `no Chromium at ${CHROMIUM} (apt-get install -y chromium, or set CHROMIUM)`);
  fs.mkdirSync(ARTIFACTS, { recursive: true });
  const P = `/v1/labeling/projects/${enc(PROJECT)}`;

  // launch() gives every run a new, empty temporary profile (user data dir), removed on close.
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  const context = await browser.newContext({ viewport: { width: 1440, height: 1000 } });
  const page = await context.newPage();
  page.setDefaultTimeout(20_000);

  const consoleErrors = [];
  page.on('console', (msg) => {
    if (msg.type() === 'error') consoleErrors.push(`console: ${msg.text()} ${msg.location().url || ''}`.trim());
  });
  page.on('pageerror', (err) => consoleErrors.push(`page exception: ${err.message}`));
  page.on('requestfailed', (req) => {
    const f = req.failure();
    if (f && f.errorText !== 'net::ERR_ABORTED') consoleErrors.push(`request failed: ${req.method()} ${req.url()} ${f.errorText}`);
  });

  let n = 0;
  let stageName = 'start';
  const shot = async (name) => {
    const file = path.join(ARTIFACTS, `${String(++n).padStart(2, '0')}-${name}.png`);
    await page.evaluate(() => window.scrollTo(0, 0));
    await page.screenshot({ path: file, fullPage: true });
    console.log(`  screenshot ${file}`);
  };
  /** Runs one stage, then fails on console errors or a visible error banner, then screenshots. */
  const stage = async (name, fn) => {
    stageName = name;
    const t0 = Date.now();
    await fn();
    check(!consoleErrors.length, `browser console errors:\n  ${consoleErrors.join('\n  ')}`);
    if (await page.locator('[data-testid=error-banner]').isVisible()) {
      const msg = await page.locator('[data-testid=error-message]').textContent();
      throw new Failure(`the page shows an error: ${msg}`);
    }
    await shot(name);
    console.log(`ok   ${name} (${Date.now() - t0} ms)`);
  };

  try {
    // ---------------------------------------------------------------- 1. projects
    await stage('projects', async () => {
      await page.goto(`${BASE_URL}/ui/`);
      await page.locator('[data-testid=projects-view]').waitFor();
      await page.locator('[data-testid=analyst-name]').fill(ANALYST);
      await page.locator('[data-testid=analyst-save]').click();
      await eventually('the analyst name is shown as saved',
        async () => (await page.locator('[data-testid=analyst-current]').textContent()).includes(ANALYST));
      check(await page.evaluate(() => localStorage.getItem('driftwatch.analyst')) === ANALYST, 'analyst name not kept in localStorage');
      const row = page.locator(`[data-testid=project-row][data-name="${PROJECT}"]`);
      await page.locator('[data-testid=project-list] table, [data-testid=projects-empty]').first().waitFor();
      if (!(await row.count()) && CREATE_SERIES.length) {
        await page.locator('[data-testid=project-name]').fill(PROJECT);
        await page.locator('[data-testid=project-budget]').fill('20');
        for (const s of CREATE_SERIES) await page.locator(`[data-testid=series-option][value="${s}"]`).check();
        await page.locator('[data-testid=project-create]').click();
        await page.locator('[data-testid=labeling-view]').waitFor();
        await page.goto(`${BASE_URL}/ui/#/`);
      }
      await row.waitFor({ timeout: 10_000 }).catch(() => { throw new Failure(`project ${PROJECT} is not in the list`); });
      if (SERIES) {
        const [name, points] = SERIES;
        const option = page.locator(`[data-testid=series-option-row][data-series="${name}"]`);
        const want = `${Number(points).toLocaleString('en-US')} points`;
        await eventually(`the new-project form lists ${name} with "${want}"`,
          async () => (await option.count()) > 0 && (await option.textContent()).includes(want));
      }
    });

    // ---------------------------------------------------------------- 2. open, wait for a suggestion
    let sug;
    let shownBefore;
    await stage('suggestion', async () => {
      await page.locator(`[data-testid=project-row][data-name="${PROJECT}"] [data-testid=project-link]`).click();
      await page.locator('[data-testid=labeling-view]').waitFor();
      const current = page.locator('[data-testid=suggestion-current][data-id]');
      await eventually('a suggestion is shown (project ready)', async () => {
        if (await current.isVisible()) return true;
        const empty = page.locator('[data-testid=labeling-empty]');
        const stop = (await empty.isVisible()) ? await empty.getAttribute('data-stop') : null;
        if (stop && !['preparing', 'none'].includes(stop)) throw new Error(`no suggestion to label: ${await empty.textContent()}`);
        return false;
      }, READY_TIMEOUT_MS, 500);
      await page.locator('[data-testid=window-main] .u-over').waitFor();
      await page.locator('[data-testid=window-chart][data-from]').waitFor();
      sug = {
        id: Number(await current.getAttribute('data-id')),
        series: await current.getAttribute('data-series'),
        start: Number(await current.getAttribute('data-start')),
        end: Number(await current.getAttribute('data-end')),
      };
      // Display bugs of issue 23 item 6: both panes' plots line up; no Token box while the service
      // takes none; no model probability before a model; the title numbers the list, as keys do.
      const mainBox = await page.locator('[data-testid=window-main] .u-over').boundingBox();
      const laneBox = await page.locator('[data-testid=window-lane] .u-over').boundingBox();
      check(Math.abs(mainBox.x - laneBox.x) <= 1 && Math.abs(mainBox.width - laneBox.width) <= 1,
        `the value and score plots differ: ${JSON.stringify(mainBox)} vs ${JSON.stringify(laneBox)}`);
      check(!(await page.locator('#api-token').isVisible()), 'a Token box shows although the service takes no token');
      const sugs = await apiGet(`${P}/suggestions?analyst=${enc(ANALYST)}&limit=5`);
      if (sugs.model_version === 0) {
        const prob = await page.locator('[data-testid=why-probability]').textContent();
        check(prob.includes('no model fitted yet') && !prob.includes('%'), `a probability shows without a model: ${prob}`);
      }
      if ((await page.locator('[data-testid=suggestion-item]').count()) >= 3) {
        await page.locator('[data-testid=window-chart]').focus();
        await page.keyboard.press('3');
        const third = await page.locator('[data-testid=suggestion-item]').nth(2).getAttribute('data-id');
        await eventually('key 3 opens the third suggestion, titled 3 of N',
          async () => (await current.getAttribute('data-id')) === third && (await page.locator('[data-position]').first().getAttribute('data-position')) === '3');
        await page.keyboard.press('1');
        await eventually('key 1 opens the first again', async () => Number(await current.getAttribute('data-id')) === sug.id);
        await page.locator(`[data-testid=window-chart][data-start="${sug.start}"][data-end="${sug.end}"]`).waitFor();
      }

      // The chart's x axis is time (the points' own), shown under it too (issue 23).
      const chartEl = page.locator('[data-testid=window-chart]');
      check((await chartEl.getAttribute('data-x-axis')) === 'time', 'the window chart x axis is not time');
      const win = await apiGet(`${P}/window?series=${enc(sug.series)}&start=${sug.start}&end=${sug.end}&context=400`);
      const spanText = await page.locator('[data-testid=window-time-span]').textContent();
      const iso = (ms) => new Date(ms).toISOString().replace('T', ' ').replace(/\.\d+Z$/, 'Z');
      check(Number(await chartEl.getAttribute('data-first-ts')) === win.ts[0] && spanText.startsWith(iso(win.ts[0])),
        `the chart's time span "${spanText}" does not start at the window's first time ${iso(win.ts[0])}`);
      check(!spanText.includes('1970'), `the chart shows 1970 times: ${spanText}`);
      shownBefore = await page.locator('[data-testid=suggestion-item]').evaluateAll((els) => els.map((e) => Number(e.dataset.id)));
      check(shownBefore.includes(sug.id), `the current suggestion ${sug.id} is not in the list ${shownBefore}`);
      for (const sel of ['[data-testid=score-breakdown] meter', '[data-testid=lf-row]', '[data-testid=progress-panel] [data-testid=stat-labels-used]']) {
        await page.locator(sel).first().waitFor();
      }
      console.log(`     suggestion #${sug.id} ${sug.series} [${sug.start}, ${sug.end}); shown: ${shownBefore.join(', ')}`);
    });

    // ---------------------------------------------------------------- 3. drag a range, submit with Enter
    let marked;
    let label;
    await stage('marked', async () => {
      const chart = page.locator('[data-testid=window-chart]');
      const from = Number(await chart.getAttribute('data-from'));
      const to = Number(await chart.getAttribute('data-to'));
      const box = await page.locator('[data-testid=window-main] .u-over').boundingBox();
      check(box && box.width > 100, 'the window chart has no plotting area');
      const px = (v) => box.x + ((v - (from - 0.5)) / (to - from)) * box.width;
      const a = sug.start + Math.floor((sug.end - sug.start) * 0.35);
      const b = sug.start + Math.floor((sug.end - sug.start) * 0.5);
      const y = box.y + box.height / 2;
      await page.mouse.move(px(a), y);
      await page.mouse.down();
      await page.mouse.move(px(b), y, { steps: 12 });
      await page.mouse.up();
      const ranges = page.locator('[data-testid=marked-range]');
      await eventually('one marked range after the drag', async () => (await ranges.count()) === 1);
      marked = [Number(await ranges.first().getAttribute('data-start')), Number(await ranges.first().getAttribute('data-end'))];
      const slack = Math.ceil((to - from) / box.width) + 1; // points per pixel
      check(marked[0] >= sug.start && marked[1] <= sug.end && marked[0] < marked[1], `marked range ${marked} is not inside the window`);
      check(Math.abs(marked[0] - a) <= slack && Math.abs(marked[1] - b) <= slack, `marked range ${marked} is not where the drag was (${a}..${b}, ±${slack})`);
      console.log(`     marked [${marked[0]}, ${marked[1]})`);
    });

    await stage('submitted', async () => {
      await page.keyboard.press('Enter');
      label = await eventually('the label is stored with its range and author', async () => {
        const { labels } = await apiGet(`${P}/labels`);
        return labels.find((l) => l.series === sug.series && l.start === sug.start && l.end === sug.end && l.in_force &&
          l.author === `${ANALYST} (unauthenticated)` && (l.anomalies || []).some(([x, y]) => x === marked[0] && y === marked[1]));
      });
      check(label.anomalies.length === 1, `label ${label.id} has ${label.anomalies.length} anomaly ranges, expected 1`);
      const shown = await eventually('the suggestions shown change and no longer offer the labeled window', async () => {
        const cur = page.locator('[data-testid=suggestion-current][data-id]');
        const empty = await page.locator('[data-testid=labeling-empty]').isVisible();
        if (!empty && Number(await cur.getAttribute('data-id')) === sug.id) return false;
        const items = await page.locator('[data-testid=suggestion-item]').evaluateAll((els) => els.map((e) => ({
          id: Number(e.dataset.id), series: e.dataset.series, start: Number(e.dataset.start), end: Number(e.dataset.end) })));
        if (items.some((s) => s.id === sug.id || overlaps(s, sug))) return false;
        return { items, empty };
      });
      const ids = shown.items.map((s) => s.id);
      check(JSON.stringify(ids) !== JSON.stringify(shownBefore), `the suggestion list did not change: ${ids}`);
      console.log(`     label #${label.id}; now shown: ${ids.join(', ') || '(none)'}`);
    });

    // ---------------------------------------------------------------- 4. undo with the shortcut
    // The label just made downloads from the progress panel's export buttons (issue 23).
    await stage('exported', async () => {
      for (const format of ['csv', 'json']) {
        const [download] = await Promise.all([page.waitForEvent('download'), page.locator(`[data-testid=export-${format}]`).click()]);
        const text = fs.readFileSync(await download.path(), 'utf8');
        check(download.suggestedFilename() === `${PROJECT}-labels.${format}`, `export file named ${download.suggestedFilename()}`);
        if (format === 'csv') {
          const lines = text.trim().split('\n');
          check(lines[0] === 'label_id,series,start,end,start_ts,end_ts,label,author,source,created_at', `CSV header: ${lines[0]}`);
          const anomaly = lines.find((l) => l.includes(`,${marked[0]},${marked[1]},`) && l.includes(',anomaly,'));
          check(anomaly && anomaly.includes(sug.series) && anomaly.includes(ANALYST), `the marked range is not an anomaly row: ${text.slice(0, 400)}`);
        } else {
          const { labels } = JSON.parse(text);
          const row = labels.find((r) => r.start === marked[0] && r.end === marked[1]);
          check(row && row.label === 'anomaly' && row.label_id === label.id && Number.isInteger(row.start_ts), `JSON export: ${text.slice(0, 400)}`);
        }
      }
      console.log(`     exported label ${label.id} as CSV and JSON`);
    });

    await stage('undone', async () => {
      await page.locator('[data-testid=view]').focus();
      await page.keyboard.press('u');
      await eventually(`label #${label.id} is no longer in force`, async () => {
        const { labels } = await apiGet(`${P}/labels`);
        const l = labels.find((x) => x.id === label.id);
        check(l, `label #${label.id} vanished from the list`);
        return l.in_force === false && l.undone_at != null;
      });
      await eventually('the page lists the label as undone',
        async () => (await page.locator(`[data-testid=recent-label][data-id="${label.id}"]`).getAttribute('data-in-force')) === 'false');
    });

    // ---------------------------------------------------------------- 5. veto an LF (then restore it)
    await stage('vetoed', async () => {
      const row = page.locator('[data-testid=lf-row][data-vetoed=false]').first();
      await row.waitFor();
      const id = Number(await row.getAttribute('data-lf-id'));
      await row.locator('[data-testid=lf-veto]').click();
      await eventually(`LF ${id} is vetoed in the API`, async () => {
        const { lfs } = await apiGet(`${P}/lfs`);
        return lfs.find((l) => l.id === id)?.vetoed === true;
      });
      const vetoedRow = page.locator(`[data-testid=lf-row][data-lf-id="${id}"]`);
      await eventually('the LF row shows vetoed', async () => (await vetoedRow.getAttribute('data-vetoed')) === 'true');
      await shot('vetoed-lf');
      await vetoedRow.locator('[data-testid=lf-veto]').click();
      await eventually(`LF ${id} is restored in the API`, async () => {
        const { lfs } = await apiGet(`${P}/lfs`);
        return lfs.find((l) => l.id === id)?.vetoed === false;
      });
      console.log(`     LF ${id} vetoed, then restored`);
    });

    // A click on the whole-series strip opens a window nobody suggested; its label is stored
    // with source `free` (issue 23 item 3).
    await stage('free-window', async () => {
      await page.locator('[data-testid=overview-chart] .u-over').scrollIntoViewIfNeeded();
      const strip = await page.locator('[data-testid=overview-chart] .u-over').boundingBox();
      check(strip && strip.width > 100, 'no whole-series strip');
      const before = await page.locator('[data-testid=window-chart]').getAttribute('data-start');
      await page.mouse.click(strip.x + strip.width * 0.12, strip.y + strip.height / 2);
      await eventually('the clicked window opens', async () => (await page.locator('#why-title').getAttribute('data-free')) === 'true');
      const chart = page.locator('[data-testid=window-chart]');
      await eventually('its chart is drawn', async () => (await chart.getAttribute('data-start')) !== before);
      const start = Number(await chart.getAttribute('data-start'));
      const end = Number(await chart.getAttribute('data-end'));
      check(start < 3000 * 0.3, `a click at 12 % of the strip opened [${start}, ${end})`);
      await chart.focus();
      await page.keyboard.press('Enter');
      const free = await eventually('the free window is labeled with source free', async () => {
        const { labels } = await apiGet(`${P}/labels`);
        return labels.find((l) => l.start === start && l.end === end && l.source === 'free' && l.in_force && l.suggestion == null);
      });
      console.log(`     free window [${start}, ${end}) labeled (#${free.id}, source ${free.source})`);
    });

    // ---------------------------------------------------------------- 6. change intervals: confirm one
    await stage('intervals', async () => {
      const project = await apiGet(P);
      const names = (project.series || []).map((s) => (typeof s === 'string' ? s : s.name));
      let target = names[0];
      for (const s of names) {
        const { intervals } = await apiGet(`/v1/series/${enc(s)}/intervals?limit=1`);
        if (intervals.length) { target = s; break; }
      }
      await page.goto(`${BASE_URL}/ui/#/series/${enc(target)}`);
      await page.locator('[data-testid=interval-view]').waitFor();
      await page.locator('[data-testid=interval-row], [data-testid=intervals-empty]:visible').first().waitFor();
      await page.locator('[data-testid=series-chart] .u-over').waitFor();
      const rows = page.locator('[data-testid=interval-row]');
      if (!(await rows.count())) {
        console.log(`     ${target} has no change interval: nothing to confirm`);
        return;
      }
      const row = (await page.locator('[data-testid=interval-row]:not([data-verdict=confirm])').count())
        ? page.locator('[data-testid=interval-row]:not([data-verdict=confirm])').first() : rows.first();
      const start = Number(await row.getAttribute('data-start'));
      await row.locator('[data-testid=interval-confirm]').click();
      await eventually(`interval ${start} of ${target} carries the confirmation`, async () => {
        const { intervals } = await apiGet(`/v1/series/${enc(target)}/intervals?limit=1000`);
        const f = intervals.find((iv) => iv.start === start)?.feedback;
        return f && f.verdict === 'confirm' && f.author === `${ANALYST} (unauthenticated)`;
      });
      await eventually('the row shows the confirmation',
        async () => (await page.locator(`[data-testid=interval-row][data-start="${start}"]`).getAttribute('data-verdict')) === 'confirm');
      console.log(`     confirmed interval ${start} of ${target}`);
    });

    // ---------------------------------------------------------------- 7. a series retention thinned (issue 23)
    if (RETENTION_SERIES) {
      await stage('retention', async () => {
        const meta = await apiGet(`/v1/series/${enc(RETENTION_SERIES)}`);
        check(meta.first_stored_index > 0, `${RETENTION_SERIES} lost no points to retention: ${JSON.stringify(meta)}`);
        await page.goto(`${BASE_URL}/ui/#/series/${enc(RETENTION_SERIES)}`);
        await page.locator('[data-testid=interval-row]').first().waitFor();
        const text = await page.locator('[data-testid=series-meta]').textContent();
        check(text.includes(`${meta.stored_points.toLocaleString('en-US')} points stored`) || text.includes(`${meta.stored_points} points stored`),
          `the page does not say ${meta.stored_points} points are stored: ${text}`);
        check(text.includes('removed by retention'), `the page does not say points were removed: ${text}`);
        const { intervals } = await apiGet(`/v1/series/${enc(RETENTION_SERIES)}/intervals`);
        for (const iv of intervals) {
          const mark = page.locator(`[data-testid=interval-row][data-start="${iv.start}"] [data-testid=interval-data]`);
          if (iv.data === 'stored') check((await mark.count()) === 0, `interval ${iv.start} is stored but marked`);
          else check((await mark.getAttribute('data-data')) === iv.data, `interval ${iv.start} (${iv.data}) is not marked`);
        }
        check(intervals.some((iv) => iv.data === 'removed'), 'no interval lost its data');
        console.log(`     ${RETENTION_SERIES}: ${text}`);
      });
    }
  } catch (err) {
    const file = path.join(ARTIFACTS, `failed-${stageName}.png`);
    await page.screenshot({ path: file, fullPage: true }).catch(() => {});
    if (consoleErrors.length && !(err instanceof Failure && err.message.startsWith('browser console'))) {
      console.error(`browser console errors:\n  ${consoleErrors.join('\n  ')}`);
    }
    console.error(`FAIL ${stageName}: ${err instanceof Failure ? err.message : err.stack || err}`);
    console.error(`  screenshot ${file}`);
    await browser.close();
    process.exit(1);
  }
  await browser.close();
  console.log(`PASS: every stage of the analyst page works against ${BASE_URL} (analyst ${ANALYST}); screenshots in ${ARTIFACTS}`);
}

main().catch((err) => {
  console.error(`FAIL setup: ${err instanceof Failure ? err.message : err.stack || err}`);
  process.exit(1);
});
