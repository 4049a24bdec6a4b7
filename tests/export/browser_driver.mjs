// Drive the calltune page in headless Chromium (Debian's /usr/bin/chromium, no browser download):
// open URL, wait until the model is loaded, type a request, submit, wait for the answer.
// Prints {state, status, call, raw, console} as JSON; saves a screenshot.
// Usage: node tests/export/browser_driver.mjs --url URL --request TEXT --screenshot FILE [--timeout-ms N]

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';

import { chromium } from 'playwright-core';

const { values: args } = parseArgs({
  options: {
    url: { type: 'string' }, request: { type: 'string' }, screenshot: { type: 'string' },
    'timeout-ms': { type: 'string', default: '120000' }, chromium: { type: 'string', default: '/usr/bin/chromium' },
  },
});
const timeout = Number(args['timeout-ms']);
const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'calltune-chromium-'));
const flags = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync', '--disable-dev-shm-usage'];

const context = await chromium.launchPersistentContext(profile, {
  executablePath: args.chromium, headless: true, args: flags, viewport: { width: 900, height: 900 }, timeout,
});
const messages = [];
let result;
try {
  const page = context.pages()[0] ?? await context.newPage();
  page.on('console', (m) => messages.push(`${m.type()}: ${m.text()}`));
  page.on('pageerror', (e) => messages.push(`pageerror: ${e.message}`));
  await page.goto(args.url, { timeout });
  await page.waitForSelector('body[data-state="ready"], body[data-state="error"]', { timeout });
  if (await page.getAttribute('body', 'data-state') === 'ready') {
    await page.fill('#request', args.request);
    await page.click('#send');
    await page.waitForSelector('body[data-state="done"], body[data-state="error"]', { timeout });
  }
  result = await page.evaluate(() => ({
    state: document.body.dataset.state,
    status: document.getElementById('status').textContent,
    call: document.getElementById('call').textContent,
    raw: document.getElementById('raw').textContent,
    isolated: self.crossOriginIsolated,
  }));
  if (args.screenshot) await page.screenshot({ path: args.screenshot, fullPage: true });
} finally {
  await context.close();
  fs.rmSync(profile, { recursive: true, force: true });
}
process.stdout.write(JSON.stringify({ ...result, console: messages }) + '\n');
