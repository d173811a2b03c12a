// Calls between boxes from the page, in headless Chromium, against two
// `callbox run` boxes (open, simulated board) paired through a `callbox hub`:
//
//   node call.spec.mjs --url http://127.0.0.1:A/ --other http://127.0.0.1:B/
//
// 0. The boxes pair from their pages: A's page asks for a code, B's page
//    enters it, both pages show the same confirmation, and both confirm.
// 1. The page on box A shows the Call button (the box has a hub).
// 2. A tap on it calls box B, which rings: B's page shows the notice; a tap
//    on its Answer takes the call. A's page says "in a call with ...
//    (direct)" and box B's /api/state says direct too.
// 3. B's page shows the other home (A's synthetic camera, its mark colour)
//    full-screen with its own room (B's mark) picture-in-picture, the
//    call's state and duration, and plays A's sound. The call view's path
//    (callboxStats.callPath: WebRTC for an H.264 call, /whep/call; the
//    WebSocket path for a JPEG one) and what the box's call relay carries
//    (OPTIONS /whep/call) are reported.
// 4. A tap on Hang up on B's page ends the call: both boxes are idle.
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
    shot: { type: 'string', default: '' },
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
  var otherCall = async () => (await (await fetch(new URL('/api/state', opt.other))).json()).call;

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

  const t0 = Date.now();
  await page.goto(opt.url);
  await page.waitForSelector('#call:not([hidden])', { timeout: ms });
  result.buttonMs = Date.now() - t0;
  result.labelIdle = await page.textContent('#call');

  const t1 = Date.now();
  await page.click('#call');
  // Box B rings: its page shows the notice; a tap answers.
  await pageB.waitForSelector('#ring:not([hidden])', { timeout: ms });
  result.ringMs = Date.now() - t1;
  result.ringText = await pageB.textContent('#ring-text');
  result.stateRinging = (await otherCall()).state;
  const ta = Date.now();
  await pageB.click('#answer');
  // From the tap on Answer to the other home's first frame drawn on B's
  // page (whatever the path; callPath says which).
  const drawn = pageB.waitForFunction(() => window.callboxStats.callFramesDrawn >= 1, null, { timeout: ms, polling: 20 })
    .then(() => { result.answerToDrawnMs = Date.now() - ta; });
  await page.waitForFunction(() => /\(direct\)|\(relayed\)/.test(document.getElementById('boxstate').textContent), null, { timeout: ms });
  result.inCallMs = Date.now() - ta;
  await drawn;
  result.boxstateInCall = await page.textContent('#boxstate');
  result.labelInCall = await page.textContent('#call');
  result.otherInCall = (await otherCall()).state;

  // B's page: the other home full-screen, decoded; its own room small.
  await pageB.waitForFunction(() => window.callboxStats.callFramesDrawn >= 10, null, { timeout: ms });
  await pageB.waitForFunction(() => window.callboxStats.callDurationS >= 2, null, { timeout: ms });
  result.callFrames = await pageB.evaluate(() => ({ drawn: window.callboxStats.callFramesDrawn, w: window.callboxStats.callWidth, h: window.callboxStats.callHeight }));
  // The call view's path, and what the box's call relay carries.
  result.callLive = (await pageB.evaluate(async () => (await fetch('/whep/call', { method: 'OPTIONS' })).headers.get('Callbox-Video-Live')));
  result.callStats = await pageB.evaluate(() => {
    const s = window.callboxStats;
    return { path: s.callPath, fallbackReason: s.callFallbackReason, firstFrameMs: s.callFirstFrameMs, steps: s.callSteps, codec: s.callCodec,
      decoded: s.callFramesDecoded, audioCodec: s.callAudioCodec, audioPackets: s.callAudioPackets, ownPath: s.path };
  });
  // The mark's colour (synth.MarkRect: the top-right eighth) in the
  // call's picture and in the box's own.
  result.colours = await pageB.evaluate(() => {
    const sample = (el, w, h) => {
      const c = document.createElement('canvas');
      c.width = w; c.height = h;
      const g = c.getContext('2d');
      g.drawImage(el, 0, 0, w, h);
      const d = g.getImageData(Math.floor(w - w / 32), Math.floor(8 * h / 240), 1, 1).data;
      return [d[0], d[1], d[2]];
    };
    const own = document.body.classList.contains('path-webrtc') ? document.getElementById('rtc') : document.getElementById('video');
    const call = window.callboxStats.callPath === 'webrtc' ? document.getElementById('callrtc') : document.getElementById('callvideo');
    const ownW = own.videoWidth || own.width, ownH = own.videoHeight || own.height;
    const callW = call.videoWidth || call.width, callH = call.videoHeight || call.height;
    return { call: sample(call, callW, callH), own: sample(own, ownW, ownH) };
  });
  const rect = async (sel) => pageB.evaluate((s) => { const r = document.querySelector(s).getBoundingClientRect(); return [r.width, r.height]; }, sel);
  result.callRect = await rect((await pageB.evaluate(() => window.callboxStats.callPath)) === 'webrtc' ? '#callrtc' : '#callvideo');
  result.ownRect = await rect('#stage');
  result.callInfo = await pageB.textContent('#callinfo');
  // The frame rate drawn on B's page over 2 s, beside what box B received
  // from A in the call meanwhile (/api/call's last: the call's own figures).
  const boxCall = async (u) => (await (await fetch(new URL('/api/call', u))).json()).last || {};
  const f0 = await pageB.evaluate(() => window.callboxStats.callFramesDrawn);
  const b0 = await boxCall(opt.other);
  const tf = Date.now();
  await new Promise((r) => setTimeout(r, 2000));
  result.callFps = ((await pageB.evaluate(() => window.callboxStats.callFramesDrawn)) - f0) * 1000 / (Date.now() - tf);
  const b1 = await boxCall(opt.other);
  const a1 = await boxCall(opt.url);
  result.boxCall = { receivedFps: ((b1.frames_received || 0) - (b0.frames_received || 0)) * 1000 / (Date.now() - tf),
    videoReceived: b1.video_received, videoSentByA: a1.video_sent, step: a1.step, keyRequestsAtA: a1.keyframe_requests, lost: b1.frames_lost };
  await pageB.click('#callview'); // a tap: sound (autoplay rules)
  await pageB.waitForFunction(() => window.callboxStats.callAudioRunning, null, { timeout: ms }).catch(() => {});
  result.callAudioRunning = await pageB.evaluate(() => window.callboxStats.callAudioRunning);
  // Sound comes out: over WebRTC the browser's audio energy grows.
  const e0 = await pageB.evaluate(() => window.callboxStats.callAudioEnergy);
  if (result.callStats.path === 'webrtc') await pageB.waitForFunction((e) => window.callboxStats.callAudioEnergy > e, e0, { timeout: 5000 }).catch(() => {});
  result.callAudio = await pageB.evaluate(() => ({ codec: window.callboxStats.callAudioCodec, packets: window.callboxStats.callAudioPackets,
    energy: window.callboxStats.callAudioEnergy, muted: window.callboxStats.audioMuted }));
  if (opt.shot) await pageB.screenshot({ path: opt.shot });
  // Mute and unmute by tapping: the call's sound follows (the WebRTC
  // call view's <video>, or the WebSocket path's player).
  const callMuted = () => pageB.evaluate(() => (window.callboxStats.callPath === 'webrtc'
    ? document.getElementById('callrtc').muted : window.callboxStats.audioMuted));
  await pageB.click('#mute');
  result.mutedInCall = { muted: await callMuted(), info: await pageB.textContent('#callinfo') };
  await pageB.click('#mute');
  result.unmutedInCall = { muted: await callMuted(), info: await pageB.textContent('#callinfo') };

  // Hang up by tapping on B's page.
  result.labelB = await pageB.textContent('#call');
  await pageB.click('#call');
  await page.waitForFunction(() => document.getElementById('call').textContent === 'Call', null, { timeout: ms });
  for (let i = 0; i < 50 && (await otherCall()).state !== 'idle'; i++) await new Promise((r) => setTimeout(r, 100));
  result.otherAfter = (await otherCall()).state;
  await pageB.waitForFunction(() => !window.callboxStats.callView, null, { timeout: ms });
  result.callViewAfter = await pageB.evaluate(() => window.callboxStats.callView);
  result.callPathAfter = await pageB.evaluate(() => window.callboxStats.callPath);
  result.callError = await page.evaluate(() => window.callboxStats.callError);
} catch (e) {
  try {
    result.diag = {
      a: await browser.pages()[0].evaluate(() => ({ boxstate: document.getElementById('boxstate').textContent, callError: window.callboxStats.callError, call: window.callboxStats.box && window.callboxStats.box.call })),
      b: await otherCall(),
    };
  } catch { /* the diagnosis is best effort */ }
  fail(e);
} finally {
  emit(result);
  await browser.close();
  await rm(profile, { recursive: true, force: true });
}
