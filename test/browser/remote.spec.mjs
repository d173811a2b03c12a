// The hub's phone page in headless Chromium, over HTTPS with a test CA
// (its server key trusted through --ignore-certificate-errors-spki-list):
//
//   node remote.spec.mjs --url 'https://127.0.0.1:PORT/box/ID#c=CRED' --spki HASH
//
// 1. A fresh profile opens the page without the credential: "Pair at home first".
// 2. A fresh profile opens the phone's link: the page keeps the credential,
//    posts its offer through the hub to the box, and plays the box's H.264.
// 3. With --state (the box's /api/state, from the box's own machine):
//    push-to-talk. The page holds its "Hold to talk" button (Chromium's
//    fake microphone); the box's talk-back and simulated speaker show the
//    phone's voice; on release the box stops playing.
// 4. With --box and --token (the box's base URL, the phone's LAN token):
//    the phone is unpaired on the box (DELETE /api/phones/<id>): the
//    page's picture stops, and reloaded, it is told to pair at home.
// Prints one JSON object per line; the last is {"event":"result",...}.
import { chromium } from 'playwright-core';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';

const { values: opt } = parseArgs({
  options: {
    url: { type: 'string' },
    spki: { type: 'string' },
    seconds: { type: 'string', default: '4' },
    timeout: { type: 'string', default: '60' },
    state: { type: 'string' },
    box: { type: 'string' },
    token: { type: 'string' },
  },
});
if (!opt.url || !opt.spki) {
  console.error('usage: node remote.spec.mjs --url URL --spki HASH');
  process.exit(2);
}
const emit = (o) => process.stdout.write(JSON.stringify(o) + '\n');
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const ARGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
  '--autoplay-policy=no-user-gesture-required', `--ignore-certificate-errors-spki-list=${opt.spki}`,
  '--use-fake-device-for-media-stream', '--use-fake-ui-for-media-stream',
];
const profiles = [];
const contexts = [];
async function open() {
  const dir = await mkdtemp(join(tmpdir(), 'callbox-remote-'));
  profiles.push(dir);
  const ctx = await chromium.launchPersistentContext(dir, { executablePath: '/usr/bin/chromium', args: ARGS });
  contexts.push(ctx);
  const page = await ctx.newPage();
  page.on('pageerror', (e) => emit({ event: 'pageerror', error: String(e) }));
  return page;
}
const cleanup = async () => {
  for (const c of contexts) { try { await c.close(); } catch { /* gone */ } }
  for (const d of profiles) await rm(d, { recursive: true, force: true });
};
const guard = setTimeout(async () => {
  emit({ event: 'error', error: `remote spec timed out after ${opt.timeout} s` });
  await cleanup();
  process.exit(3);
}, Number(opt.timeout) * 1000);

// boxState reads the box's /api/state (talkback, speaker).
async function boxState() {
  const r = await fetch(opt.state);
  return r.json();
}
const talkSources = (st) => ((st.speaker && st.speaker.sources) || []).filter((s) => s.startsWith('talk-back '));

// talk holds the page's button for a while and releases it, following
// what the box plays.
async function talk(page) {
  const out = {};
  out.talkButtonShown = await page.evaluate(() => !document.getElementById('talk').hidden && window.callboxTalk.ok);
  if (!out.talkButtonShown) return out;
  const before = await boxState();
  out.talkBefore = before.talkback;
  await page.hover('#talk');
  const pressed = Date.now();
  await page.mouse.down();
  await page.waitForFunction(() => window.callboxTalk.sending || window.callboxTalk.error, null, { timeout: 10000, polling: 20 });
  out.micError = await page.evaluate(() => window.callboxTalk.error);
  let st = before;
  for (;;) {
    st = await boxState();
    if (st.talkback && st.talkback.talking.length > 0 && talkSources(st).length > 0) break;
    if (Date.now() - pressed > 10000) break;
    await sleep(20);
  }
  out.pressToBoxPlayingMs = Date.now() - pressed;
  await sleep(1500);
  st = await boxState();
  out.held = { talkback: st.talkback, speakerFrames: st.speaker && st.speaker.frames, speakerLevelDBFS: st.speaker && st.speaker.level_dbfs, sources: talkSources(st) };
  out.heldFramesGained = (st.speaker && before.speaker) ? st.speaker.frames - before.speaker.frames : 0;
  out.heldPacketsGained = st.talkback.packets - before.talkback.packets;
  await page.mouse.up();
  const released = Date.now();
  for (;;) {
    st = await boxState();
    if (st.talkback.talking.length === 0 && talkSources(st).length === 0) break;
    if (Date.now() - released > 10000) break;
    await sleep(10);
  }
  out.releaseToBoxQuietMs = Date.now() - released;
  const quietPackets = st.talkback.packets;
  await sleep(500);
  st = await boxState();
  out.packetsAfterRelease = st.talkback.packets - quietPackets;
  out.after = st.talkback;
  out.pageCounts = await page.evaluate(() => ({ presses: window.callboxTalk.presses, releases: window.callboxTalk.releases, state: document.getElementById('talk').dataset.state }));
  return out;
}

// unpair removes this phone on the box and follows the page.
async function unpair(page) {
  const out = {};
  const auth = { Authorization: `Bearer ${opt.token}` };
  const list = await (await fetch(`${opt.box}/api/phones`, { headers: auth })).json();
  const me = (list.phones || []).find((p) => p.this);
  if (!me) return { unpairError: `this phone is not in ${JSON.stringify(list)}` };
  const frames = () => page.evaluate(() => document.getElementById('v').getVideoPlaybackQuality().totalVideoFrames);
  const t0 = Date.now();
  const r = await fetch(`${opt.box}/api/phones/${me.id}`, { method: 'DELETE', headers: auth });
  out.unpairAnswer = { status: r.status, ...(await r.json()) };
  // The picture stops: no new frame for a second.
  let last = await frames(); let since = Date.now();
  while (Date.now() - since < 1000 && Date.now() - t0 < 15000) {
    await sleep(50);
    const n = await frames();
    if (n !== last) { last = n; since = Date.now(); }
  }
  out.unpairedFramesStopMs = since - t0;
  await page.reload();
  await page.waitForFunction(() => /Pair at home first/.test(document.getElementById('msg').textContent), null, { timeout: 15000 });
  out.unpairedReloadMessage = await page.textContent('#msg');
  out.unpairedTalkHidden = await page.evaluate(() => document.getElementById('talk').hidden);
  return out;
}

try {
  const res = {};
  const bare = opt.url.split('#')[0];
  const p1 = await open();
  await p1.goto(bare);
  await p1.waitForFunction(() => /Pair at home first/.test(document.getElementById('msg').textContent), null, { timeout: 10000 });
  res.unpairedMessage = await p1.textContent('#msg');

  const p2 = await open();
  const t0 = Date.now();
  await p2.goto(opt.url);
  res.addressBarHasCredential = (await p2.evaluate(() => location.href)).includes('#c=');
  await p2.waitForFunction(() => {
    const v = document.getElementById('v');
    return v.videoWidth > 0 && v.getVideoPlaybackQuality().totalVideoFrames > 0;
  }, null, { timeout: 15000, polling: 20 });
  res.firstFrameMs = Date.now() - t0;
  await sleep(Number(opt.seconds) * 1000);
  Object.assign(res, await p2.evaluate(() => {
    const v = document.getElementById('v');
    const q = v.getVideoPlaybackQuality();
    return { width: v.videoWidth, height: v.videoHeight, framesDecoded: q.totalVideoFrames, framesDropped: q.droppedVideoFrames,
      message: document.getElementById('msg').textContent, stored: !!localStorage.getItem(Object.keys(localStorage)[0]) };
  }));
  if (opt.state) Object.assign(res, await talk(p2));
  if (opt.box && opt.token) Object.assign(res, await unpair(p2));
  emit({ event: 'result', ...res });
} catch (e) {
  emit({ event: 'error', error: String(e && e.stack || e) });
}
clearTimeout(guard);
await cleanup();
