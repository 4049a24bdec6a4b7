// Open a `dvc plots show` HTML page in headless Chromium (Debian's /usr/bin/chromium) with every
// non-file request blocked, wait for vega-embed to draw, and print
// {plots, drawn, blocked, errors} as JSON: plots = vega plot containers, drawn = those holding a
// non-empty canvas or svg, blocked = URLs the page tried to fetch from the network.
// Usage: node tests/evaluate/plots_driver.mjs FILE.html [--timeout-ms N]

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';

import { chromium } from 'playwright-core';

const { values: args, positionals } = parseArgs({
  allowPositionals: true,
  options: { 'timeout-ms': { type: 'string', default: '30000' }, chromium: { type: 'string', default: '/usr/bin/chromium' } },
});
const timeout = Number(args['timeout-ms']);
const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'calltune-plots-'));
const flags = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync', '--disable-dev-shm-usage'];

const context = await chromium.launchPersistentContext(profile, {
  executablePath: args.chromium, headless: true, args: flags, viewport: { width: 1000, height: 800 }, timeout,
});
// Runs in the page: DVC puts each plot in a top-level <div id=...>.
function countPlots() {
  const plots = [...document.querySelectorAll('body > div[id]')];
  const isDrawn = (div) => [...div.querySelectorAll('canvas, svg')].some((c) => c.clientWidth > 50 && c.clientHeight > 50);
  return { plots: plots.length, drawn: plots.filter(isDrawn).length };
}

const blocked = [];
const errors = [];
let counts;
try {
  const page = context.pages()[0] ?? await context.newPage();
  await page.route('**/*', (route) => {
    const url = route.request().url();
    if (url.startsWith('file:') || url.startsWith('data:')) return route.continue();
    blocked.push(url);
    return route.abort();
  });
  page.on('pageerror', (e) => errors.push(e.message));
  await page.goto(pathToFileURL(path.resolve(positionals[0])).href, { timeout });
  await page.waitForFunction(`(${countPlots})().plots > 0 && (${countPlots})().drawn === (${countPlots})().plots`,
    null, { timeout }).catch(() => {});  // on timeout, report what was drawn
  counts = await page.evaluate(countPlots);
} finally {
  await context.close();
  fs.rmSync(profile, { recursive: true, force: true });
}
process.stdout.write(JSON.stringify({ ...counts, blocked, errors }) + '\n');
