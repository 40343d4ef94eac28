#!/usr/bin/env node
// Drive the demo page in headless Chromium (playwright-core with the system browser: nothing is
// downloaded) and print what it computed, as JSON, on stdout.
//
//   node test/drive.mjs JOBS.json
//   JOBS: [{"url": ..., "screenshot": "out.png"?, "upload": "photo.jpg"?}, ...]
//
// Each job opens the URL in a fresh page, waits for <html data-state="done|error"> and records
// window.mfdeploy.last (the page's result), the page's console errors and, if asked, a
// screenshot; with "upload", it then picks that photo in the file input and records the
// page's second result as "upload". CHROMIUM overrides the browser path (default
// /usr/bin/chromium); CHROMIUM_ARGS adds flags (space-separated), e.g. WebGPU on SwiftShader.

import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

const FLAGS = [
  '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
];

const jobs = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const profile = mkdtempSync(join(tmpdir(), 'mfdeploy-chromium-'));
const context = await chromium.launchPersistentContext(profile, {
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: [...FLAGS, ...(process.env.CHROMIUM_ARGS ?? '').split(' ').filter(Boolean)],
  viewport: { width: 1180, height: 740 },
});
const results = [];
try {
  for (const job of jobs) {
    const page = await context.newPage();
    const errors = [];
    page.on('pageerror', (e) => errors.push(`pageerror: ${e.message}`));
    page.on('console', (m) => { if (m.type() === 'error') errors.push(m.text()); });
    await page.goto(job.url);
    await page.waitForFunction(
      () => ['done', 'error'].includes(document.documentElement.dataset.state),
      null,
      { timeout: job.timeoutMs ?? 180000 },
    );
    const read = () => page.evaluate(() => ({
      state: document.documentElement.dataset.state,
      last: window.mfdeploy.last,
      text: {
        golden: document.getElementById('golden').textContent,
        io: document.getElementById('io').textContent,
        latency: document.getElementById('latency').textContent,
        runtime: document.getElementById('runtime').selectedOptions[0]?.textContent ?? '',
        isolation: document.getElementById('isolation').textContent,
      },
    }));
    const result = await read();
    if (job.screenshot) await page.screenshot({ path: job.screenshot, fullPage: true });
    if (job.upload) {
      // then pick a photo through the file input, as a user would
      await page.evaluate(() => { document.documentElement.dataset.state = 'picking'; });
      await page.setInputFiles('#file', job.upload);
      await page.waitForFunction(
        () => ['done', 'error'].includes(document.documentElement.dataset.state),
        null,
        { timeout: job.timeoutMs ?? 180000 },
      );
      result.upload = await read();
    }
    results.push({ url: job.url, ...result, errors });
    await page.close();
  }
} finally {
  await context.close();
  rmSync(profile, { recursive: true, force: true });
}
process.stdout.write(JSON.stringify(results) + '\n');
