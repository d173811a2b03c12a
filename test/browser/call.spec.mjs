// Calls between boxes from the page, in headless Chromium, against two
// `callbox run` boxes (open, simulated board) paired through a `callbox hub`:
//
//   node call.spec.mjs --url http://127.0.0.1:A/ --other http://127.0.0.1:B/
//
// 0. The boxes pair from their pages: A's page asks for a code, B's page
//    enters it, both pages show the same confirmation, and both confirm.
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

  // Pairing from the pages.
  const pageB = await browser.newPage();
  pageB.on('pageerror', (e) => emit({ event: 'pageerror', error: String(e) }));
  const tp = Date.now();
  await page.goto(opt.url);
  await pageB.goto(opt.other);
  const stageIs = (p, stage) => p.waitForSelector(`#boxpair-status[data-stage="${stage}"]`, { timeout: ms });
  await page.waitForSelector('#boxpair:not([hidden])', { timeout: ms });
  await pageB.waitForSelector('#boxpair:not([hidden])', { timeout: ms });
  await page.click('#boxpair-code');
  await stageIs(page, 'waiting');
  const code = await page.getAttribute('#boxpair-status', 'data-code');
  result.codeText = await page.textContent('#boxpair-status');
  await pageB.fill('#boxpair-input', `${code.slice(0, 4)}-${code.slice(4)}`); // as a person types it
  await pageB.click('#boxpair-join button[type="submit"]');
  await stageIs(pageB, 'compare');
  await stageIs(page, 'compare');
  result.sasA = await page.getAttribute('#boxpair-status', 'data-sas');
  result.sasB = await pageB.getAttribute('#boxpair-status', 'data-sas');
  result.compareText = await pageB.textContent('#boxpair-status');
  await page.click('#boxpair-confirm');
  await stageIs(page, 'confirmed');
  await pageB.click('#boxpair-confirm');
  await stageIs(page, 'paired');
  await stageIs(pageB, 'paired');
  result.pairedText = await page.textContent('#boxpair-status');
  result.pairMs = Date.now() - tp;
  await pageB.close();

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
