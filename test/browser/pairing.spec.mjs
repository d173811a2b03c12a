// Pairing end to end in headless Chromium, against a `callbox run` that is
// not open (pairing on) on the simulated board:
//
//   node pairing.spec.mjs --url http://127.0.0.1:PORT/ [--artifacts DIR]
//
// 1. A page opened for the first time gets no media at all: it waits for
//    pairing, and for a few seconds not one RTP byte arrives.
// 2. The box's buttons are pressed (A and B together, through the simulated
//    board's /api/sim/button, as a person would press the real ones).
// 3. The page goes live with its token.
// 4. A factory reset (A held 10 s, then A to confirm) revokes the token:
//    the page is cut off, is refused again, and receives nothing more.
//
// Prints one JSON object per line; the last is {"event":"result",...}.
// pairing_test.go runs it and judges the result.
import { chromium } from 'playwright-core';
import { mkdtemp, rm, mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';

const { values: opt } = parseArgs({
  options: {
    url: { type: 'string' },
    artifacts: { type: 'string', default: 'artifacts' },
    quiet: { type: 'string', default: '3' }, // seconds of checking that nothing arrives
    timeout: { type: 'string', default: '90' },
  },
});
if (!opt.url) {
  console.error('usage: node pairing.spec.mjs --url URL [--artifacts DIR] [--quiet SECONDS]');
  process.exit(2);
}
const emit = (o) => process.stdout.write(JSON.stringify(o) + '\n');
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const base = new URL(opt.url);

// Same isolation as scenario.mjs: no background traffic from Chromium.
const ARGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
  '--autoplay-policy=no-user-gesture-required',
];

const profile = await mkdtemp(join(tmpdir(), 'callbox-pairing-'));
let ctx;
const cleanup = async () => {
  try { if (ctx) await ctx.close(); } catch { /* gone */ }
  await rm(profile, { recursive: true, force: true });
};
const guard = setTimeout(async () => {
  emit({ event: 'error', error: `pairing spec timed out after ${opt.timeout} s` });
  await cleanup();
  process.exit(3);
}, Number(opt.timeout) * 1000);

async function press(button, ms) {
  const r = await fetch(new URL('/api/sim/button', base), {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ button, ms }),
  });
  if (!r.ok) throw new Error(`/api/sim/button ${button} ${ms}: ${r.status}`);
  return r.json();
}

async function boxState(token) {
  const r = await fetch(new URL(`/api/state?token=${encodeURIComponent(token || '')}`, base));
  return r.json();
}

const stats = (page) => page.evaluate(() => JSON.parse(JSON.stringify(window.callboxStats || null)));

async function waitFor(page, fn, arg, ms, what) {
  try {
    await page.waitForFunction(fn, arg, { timeout: ms, polling: 100 });
  } catch {
    const s = await stats(page).catch(() => null);
    throw new Error(`${what}: not within ${ms} ms; page stats: ${JSON.stringify(s && { ...s, recentLatencies: undefined })}`);
  }
}

// quietFor watches the page for secs and returns how many media bytes,
// frames and audio chunks arrived meanwhile.
async function quietFor(page, secs) {
  const a = await stats(page);
  await sleep(secs * 1000);
  const b = await stats(page);
  return {
    bytes: b.bytesReceived - a.bytesReceived,
    frames: b.framesDrawn - a.framesDrawn,
    audio: b.audioFramesIn - a.audioFramesIn,
    state: b.state,
  };
}

async function main() {
  await mkdir(opt.artifacts, { recursive: true });
  ctx = await chromium.launchPersistentContext(profile, { executablePath: '/usr/bin/chromium', args: ARGS });
  const page = await ctx.newPage();
  page.on('pageerror', (e) => emit({ event: 'pageerror', error: String(e) }));
  await page.goto(opt.url);

  // 1. Unpaired: waiting, and nothing arrives.
  await waitFor(page, () => window.callboxStats && window.callboxStats.state === 'waiting for pairing',
    null, 15000, 'unpaired page waiting for pairing');
  const before = await quietFor(page, Number(opt.quiet));
  const boxWaiting = await boxState('');
  const first = await stats(page);
  emit({ event: 'unpaired', ...before, totalBytes: first.bytesReceived, boxState: boxWaiting.state, waiting: boxWaiting.waiting });
  await page.screenshot({ path: join(opt.artifacts, 'pairing-unpaired.png') });

  // 2. and 3. The buttons, then live.
  const t0 = Date.now();
  await press('both', 300);
  await waitFor(page, () => window.callboxStats.state === 'live' && window.callboxStats.framesDrawn >= 5,
    null, 20000, 'page live after the buttons were pressed');
  const pairedMs = Date.now() - t0;
  let token = await page.evaluate(() => localStorage.getItem('callbox.token'));
  const paired = await boxState(token);
  emit({ event: 'live', pairedMs, paired: paired.paired });
  await page.screenshot({ path: join(opt.artifacts, 'pairing-live.png') });

  // The paired phones: this one is listed, with its Unpair button.
  await waitFor(page, () => !document.getElementById('phones').hidden, null, 10000, 'the paired phones section shown');
  await page.click('#phones summary');
  await waitFor(page, () => document.querySelectorAll('#phones-list li button').length > 0, null, 5000, 'the paired phones listed');
  const phonesListed = await page.evaluate(() => [...document.querySelectorAll('#phones-list li')].map((li) => li.textContent));

  // Unpairing this phone from its own list (after the confirmation): the
  // page is cut off and waits to pair again; the buttons pair it again.
  page.once('dialog', (d) => d.accept());
  const tu = Date.now();
  await page.click('#phones-list li button');
  await waitFor(page, () => window.callboxStats.state === 'waiting for pairing',
    null, 20000, 'page refused after it unpaired itself');
  const unpairCutOffMs = Date.now() - tu;
  const unpairedSelf = await boxState(token);
  emit({ event: 'unpaired-self', unpairCutOffMs, paired: unpairedSelf.paired });
  await press('both', 300);
  await waitFor(page, () => window.callboxStats.state === 'live' && window.callboxStats.framesDrawn >= 5,
    null, 20000, 'page live again after the buttons');
  token = await page.evaluate(() => localStorage.getItem('callbox.token'));

  // 4. Factory reset: the very long press asks, a short press confirms.
  const asked = await press('a', 10500);
  await press('a', 100);
  const t1 = Date.now();
  await waitFor(page, () => window.callboxStats.state === 'waiting for pairing',
    null, 20000, 'page refused again after the factory reset');
  const cutOffMs = Date.now() - t1;
  await sleep(500); // let anything in flight land before measuring quiet
  const after = await quietFor(page, Number(opt.quiet));
  const revoked = await boxState(token);
  await page.screenshot({ path: join(opt.artifacts, 'pairing-reset.png') });
  emit({
    event: 'result',
    unpairedBytes: first.bytesReceived, // every media byte since the page opened
    unpairedFrames: first.framesDrawn,
    unpairedAudio: first.audioFramesIn,
    boxStateWhileWaiting: boxWaiting.state,
    pairedMs,
    pairedOnBox: paired.paired,
    resetLED: asked.led,
    cutOffMs,
    afterResetBytes: after.bytes,
    afterResetFrames: after.frames,
    afterResetState: after.state,
    revokedTokenPaired: revoked.paired,
    phonesListed,
    unpairCutOffMs,
    unpairedSelfPaired: unpairedSelf.paired,
  });
}

try {
  await main();
  clearTimeout(guard);
  await cleanup();
} catch (e) {
  emit({ event: 'error', error: String(e && e.stack || e) });
  clearTimeout(guard);
  await cleanup();
  process.exit(1);
}
