// Calls between boxes from the page, in headless Chromium, against two
// `callbox run` boxes (open, simulated board) paired through a `callbox hub`:
//
//   node call.spec.mjs --url http://127.0.0.1:A/ --other http://127.0.0.1:B/
//
// 1. The page on box A shows the Call button (the box has a hub).
// 2. A tap on it calls box B: the page's box state says "in a call with
//    ... (direct)" and box B's /api/state says direct too.
// 3. A second tap hangs up: the button says Call again, box B is idle.
//
// Prints one JSON object per line; the last is {"event":"result",...}.
// call_test.go runs it and judges the result.
import { chromium } from 'playwright-core';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';

const { values: opt } = parseArgs({
  options: {
    url: { type: 'string' },
    other: { type: 'string' },
    timeout: { type: 'string', default: '60' },
  },
});
const emit = (o) => console.log(JSON.stringify(o));
const fail = (e) => { emit({ event: 'error', error: String(e && e.stack || e) }); };
const ms = Number(opt.timeout) * 1000;

const profile = await mkdtemp(join(tmpdir(), 'callbox-call-'));
const browser = await chromium.launchPersistentContext(profile, {
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: ['--no-sandbox', '--autoplay-policy=no-user-gesture-required'],
});
const result = { event: 'result' };
try {
  const page = browser.pages()[0] || await browser.newPage();
  page.on('pageerror', (e) => emit({ event: 'pageerror', error: String(e) }));
  const otherCall = async () => (await (await fetch(new URL('/api/state', opt.other))).json()).call;
  const t0 = Date.now();
  await page.goto(opt.url);
  await page.waitForSelector('#call:not([hidden])', { timeout: ms });
  result.buttonMs = Date.now() - t0;
  result.labelIdle = await page.textContent('#call');

  const t1 = Date.now();
  await page.click('#call');
  await page.waitForFunction(() => /\(direct\)|\(relayed\)/.test(document.getElementById('boxstate').textContent), null, { timeout: ms });
  result.inCallMs = Date.now() - t1;
  result.boxstateInCall = await page.textContent('#boxstate');
  result.labelInCall = await page.textContent('#call');
  result.otherInCall = (await otherCall()).state;

  await page.click('#call');
  await page.waitForFunction(() => document.getElementById('call').textContent === 'Call', null, { timeout: ms });
  for (let i = 0; i < 50 && (await otherCall()).state !== 'idle'; i++) await new Promise((r) => setTimeout(r, 100));
  result.otherAfter = (await otherCall()).state;
  result.callError = await page.evaluate(() => window.callboxStats.callError);
} catch (e) {
  fail(e);
} finally {
  emit(result);
  await browser.close();
  await rm(profile, { recursive: true, force: true });
}
