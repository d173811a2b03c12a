// Drives headless Chromium (Debian's /usr/bin/chromium through playwright-core)
// against a running `callbox run` and reports what the page measured.
//
//   node scenario.mjs <play|throttle|restart|pair|insecure|hidden> --url http://127.0.0.1:PORT/ --artifacts DIR [options]
//
// Output is one JSON object per line on stdout: {"event": ...} as the
// scenario goes (the Go wrapper acts on some, e.g. restarts the box on
// "live" in the restart scenario) and finally {"event":"result", ...}. The
// Go tests (browser_test.go) start the box and judge the numbers.
import { chromium } from 'playwright-core';
import { mkdtemp, rm, mkdir, readdir, readFile, stat } from 'node:fs/promises';
import { tmpdir, loadavg, cpus } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';

const { positionals, values: opt } = parseArgs({
  allowPositionals: true,
  options: {
    url: { type: 'string' },
    artifacts: { type: 'string', default: 'artifacts' },
    seconds: { type: 'string', default: '10' },
    'throttle-kbps': { type: 'string', default: '0' },
    'latency-ms': { type: 'string', default: '0' },
    hcdelay: { type: 'string', default: '0' },
    timeout: { type: 'string', default: '120' },
  },
});
const scenario = positionals[0];
if (!opt.url || !['play', 'throttle', 'restart', 'pair', 'insecure', 'hidden', 'webrtc'].includes(scenario)) {
  console.error('usage: node scenario.mjs <play|throttle|restart|pair|insecure|hidden|webrtc> --url URL [--artifacts DIR] [--seconds N]');
  process.exit(2);
}
const seconds = Number(opt.seconds);

const emit = (o) => process.stdout.write(JSON.stringify(o) + '\n');
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Chromium stays off the network: these flags stop its background fetches
// (updates, sync, field trials), which this machine would refuse anyway.
const ARGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
  '--autoplay-policy=no-user-gesture-required',
  // Pages in background tabs must not be throttled.
  '--disable-background-timer-throttling', '--disable-renderer-backgrounding',
  '--disable-backgrounding-occluded-windows',
  // A name that is not localhost, resolved to loopback: a page loaded
  // through it is not a secure context, like a phone's http://callbox.local/.
  '--host-resolver-rules=MAP callbox.local 127.0.0.1',
];

// removeProfile deletes Chromium's profile directory. A helper process can
// still flush a file into it just after the browser exits (seen: the
// network service's "Network Persistent State"), so check and repeat.
async function removeProfile(dir) {
  for (let i = 0; i < 10; i++) {
    await rm(dir, { recursive: true, force: true, maxRetries: 3, retryDelay: 100 }).catch(() => {});
    await sleep(200);
    if (!(await stat(dir).then(() => true, () => false))) return;
  }
}

const profile = await mkdtemp(join(tmpdir(), 'callbox-chromium-'));
let ctx;
const cleanup = async () => {
  try { if (ctx) await ctx.close(); } catch { /* already gone */ }
  await removeProfile(profile);
};
// A hung scenario must not outlive its test.
const guard = setTimeout(async () => {
  emit({ event: 'error', error: `scenario ${scenario} timed out after ${opt.timeout} s` });
  await cleanup();
  process.exit(3);
}, Number(opt.timeout) * 1000);

// chromiumCPU sums the CPU time (user + system, seconds) of this run's
// Chromium: the process started with our profile and all its descendants
// (renderers, GPU, network service), read from /proc. What the pages cost
// in CPU, unlike latency, does not depend on how busy the machine is.
async function chromiumCPU() {
  const procs = new Map();
  for (const d of await readdir('/proc').catch(() => [])) {
    if (!/^[0-9]+$/.test(d)) continue;
    try {
      const stat = await readFile(`/proc/${d}/stat`, 'utf8');
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      const cmd = await readFile(`/proc/${d}/cmdline`, 'utf8');
      procs.set(Number(d), { ppid: Number(f[1]), ticks: Number(f[11]) + Number(f[12]), cmd });
    } catch { /* exited meanwhile */ }
  }
  const roots = [...procs].filter(([, p]) => p.cmd.includes(profile) && !procs.get(p.ppid)?.cmd.includes(profile)).map(([pid]) => pid);
  let ticks = 0;
  const seen = new Set();
  const walk = (pid) => {
    if (seen.has(pid)) return;
    seen.add(pid);
    ticks += procs.get(pid)?.ticks || 0;
    for (const [c, p] of procs) if (p.ppid === pid) walk(c);
  };
  roots.forEach(walk);
  return ticks / 100; // USER_HZ is 100 on Linux
}

async function readStats(page) {
  return page.evaluate(() => JSON.parse(JSON.stringify(window.callboxStats || null)));
}

// LIVE_MS is the budget for a page to go live: generous, for a 2-core
// machine busy with other tests (the wait ends as soon as the page is live,
// so it costs nothing on a quiet one). Waits that measure a behaviour
// (a grace period, a recovery) keep their own budgets.
const LIVE_MS = 60000;

async function waitFor(page, fn, arg, timeoutMs, what) {
  try {
    await page.waitForFunction(fn, arg, { timeout: timeoutMs, polling: 100 });
  } catch (e) {
    const s = await readStats(page).catch(() => null);
    throw new Error(`${what}: not within ${timeoutMs} ms; page stats: ${JSON.stringify(s && { ...s, recentLatencies: undefined })}`);
  }
}

function pct(values, p) {
  if (values.length === 0) return null;
  const s = Float64Array.from(values).sort();
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))];
}

// openPage opens url in a new tab; before(page) runs before navigating
// (network emulation must be in place before the sockets open: it does not
// apply to connections already made).
async function openPage(url, before) {
  const page = await ctx.newPage();
  if (before) await before(page);
  page.on('pageerror', (e) => emit({ event: 'pageerror', error: String(e) }));
  page.on('console', (m) => { if (m.type() === 'error') emit({ event: 'console', text: m.text() }); });
  await page.goto(url);
  return page;
}

const live = (min) => window.callboxStats && window.callboxStats.state === 'live' && window.callboxStats.framesDrawn >= min;

// measure plays for `secs` and reports deltas of the page's counters; the
// latency samples are collected in halves so that the page's rolling window
// (300 frames) never drops any.
async function measure(pages, secs) {
  const loadBefore = loadavg()[0];
  const cpuBefore = await chromiumCPU();
  const before = await Promise.all(pages.map(readStats));
  for (const p of pages) await p.evaluate(() => { window.callboxStats.recentLatencies.length = 0; });
  const t0 = Date.now();
  const lat = pages.map(() => []);
  const maxLat = [];
  let left = secs * 1000;
  while (left > 0) {
    const step = Math.min(left, 4000);
    await sleep(step);
    left -= step;
    const got = await Promise.all(pages.map((p) => p.evaluate(() => {
      const v = window.callboxStats.recentLatencies.slice();
      window.callboxStats.recentLatencies.length = 0;
      return v;
    })));
    got.forEach((v, i) => lat[i].push(...v));
  }
  const elapsed = (Date.now() - t0) / 1000;
  const chromiumCores = (await chromiumCPU() - cpuBefore) / elapsed;
  const after = await Promise.all(pages.map(readStats));
  const per = after.map((a, i) => {
    const b = before[i];
    maxLat.push(lat[i].length ? Math.max(...lat[i]) : null);
    return {
      fps: (a.framesDrawn - b.framesDrawn) / elapsed,
      framesDrawn: a.framesDrawn - b.framesDrawn,
      framesIncomplete: a.framesIncomplete,
      framesSkipped: a.framesSkipped - b.framesSkipped,
      decodeErrors: a.decodeErrors,
      packetsLost: a.packetsLost - b.packetsLost,
      audioFramesPlayed: a.audioFramesPlayed - b.audioFramesPlayed,
      audioFramesIn: a.audioFramesIn - b.audioFramesIn,
      audioUnderruns: a.audioUnderruns - b.audioUnderruns,
      audioRunning: a.audioRunning,
      healthChecksSent: a.healthChecksSent,
      healthChecksVideo: a.healthChecksVideo,
      healthChecksAudio: a.healthChecksAudio,
      kbps: ((a.bytesReceived - b.bytesReceived) * 8) / elapsed / 1000,
      width: a.width,
      height: a.height,
      clockOffsetMs: a.clockOffsetMs,
      clockRttMs: a.clockRttMs,
      reconnects: a.reconnects - b.reconnects,
      state: a.state,
      networkP50: a.networkP50,
      networkP99: a.networkP99,
      decodeP50: a.decodeP50,
      decodeP99: a.decodeP99,
      latencyP50: pct(lat[i], 50),
      latencyP99: pct(lat[i], 99),
      latencyMax: maxLat[i],
      latencySamples: lat[i].length,
    };
  });
  const all = lat.flat();
  return {
    elapsed,
    // The machine's 1-minute load average before and after, and its CPU:
    // latency under load says little without them.
    load: [loadBefore, loadavg()[0]],
    // CPU seconds per second that Chromium used for these pages, all processes.
    chromiumCores,
    cpu: `${cpus().length} x ${cpus()[0] ? cpus()[0].model : 'unknown'}`,
    pages: per,
    latencyP50: pct(all, 50),
    latencyP99: pct(all, 99),
    latencyMax: all.length ? Math.max(...all) : null,
    latencySamples: all.length,
  };
}

async function main() {
  await mkdir(opt.artifacts, { recursive: true });
  ctx = await chromium.launchPersistentContext(profile, {
    executablePath: '/usr/bin/chromium',
    headless: true,
    args: ARGS,
    viewport: { width: 412, height: 915 }, // a common Android phone, portrait
    deviceScaleFactor: 1,
    hasTouch: true,
  });
  // The persistent context opens one blank page; use it for the first.
  for (const p of ctx.pages()) await p.close();

  if (scenario === 'webrtc') {
    // The page on its WebRTC path: the browser's H.264 decoder and audio,
    // then the mute button and the volume control.
    const page = await openPage(opt.url);
    await waitFor(page, () => {
      const s = window.callboxStats;
      return s && s.path === 'webrtc' && s.state === 'live' && s.framesDecoded >= 10 && s.framesDrawn >= 10;
    }, null, 30000, 'WebRTC live with 10 frames decoded');
    emit({ event: 'live' });
    await sleep(1000);
    const m = await measure([page], seconds);
    const before = await readStats(page);
    await page.click('#mute');
    const muted = await page.evaluate(() => ({ element: document.getElementById('rtc').muted, stats: window.callboxStats.audioMuted }));
    await sleep(1000);
    const whileMuted = await readStats(page);
    await page.click('#mute');
    const unmuted = await page.evaluate(() => !document.getElementById('rtc').muted && !window.callboxStats.audioMuted);
    await page.evaluate(() => { const v = document.getElementById('volume'); v.value = '0.3'; v.dispatchEvent(new Event('input')); });
    const volume = await page.evaluate(() => document.getElementById('rtc').volume);
    const after = await readStats(page);
    await page.screenshot({ path: join(opt.artifacts, 'webrtc-phone.png') });
    emit({
      event: 'result', ...m, path: after.path, fallbackReason: after.fallbackReason, framesDecoded: after.framesDecoded,
      framesDropped: after.framesDropped, codec: after.codec, candidatePair: after.candidatePair, latencySource: after.latencySource,
      audioPackets: after.audioPackets, audioCodec: after.audioCodec, audioEnergyBefore: before.audioEnergy, audioEnergyMuted: whileMuted.audioEnergy,
      audioEnergy: after.audioEnergy, audioRunning: after.audioRunning, muted, unmuted, volume,
      pathShown: await page.evaluate(() => document.getElementById('path').textContent),
    });
  } else if (scenario === 'play') {
    const page = await openPage(opt.url);
    await waitFor(page, live, 10, LIVE_MS, 'page live with 10 frames drawn');
    emit({ event: 'live' });
    await sleep(1000); // the first second includes connection set-up
    const m = await measure([page], seconds);
    await sleep(700); // measure() drained the page's latency window: let the figures refill
    await page.screenshot({ path: join(opt.artifacts, 'play-phone.png') });
    // A tap on the picture asks for full screen (or hides the overlays
    // where the browser has no element full screen).
    await page.tap('#stage');
    const fullScreen = await page.waitForFunction(
      () => !!document.fullscreenElement || document.body.classList.contains('immersive'),
      null, { timeout: 3000 },
    ).then(() => page.evaluate(() => (document.fullscreenElement ? 'fullscreen' : 'immersive')), () => 'no');
    m.fullScreen = fullScreen;
    if (fullScreen === 'fullscreen') await page.evaluate(() => document.exitFullscreen());
    await page.setViewportSize({ width: 1280, height: 720 });
    await sleep(500);
    await page.screenshot({ path: join(opt.artifacts, 'play-landscape.png') });
    emit({ event: 'result', ...m });
  } else if (scenario === 'throttle') {
    const hc = Number(opt.hcdelay);
    const kbps = Number(opt['throttle-kbps']);
    let throttled = false;
    const page = await openPage(hc ? `${opt.url}?hcdelay=${hc}` : opt.url, async (pg) => {
      if (kbps <= 0) return;
      // DevTools network emulation applies to the page's WebSockets too:
      // the box sees a slow phone and its relay must keep the delay bounded.
      const cdp = await ctx.newCDPSession(pg);
      await cdp.send('Network.enable');
      await cdp.send('Network.emulateNetworkConditions', {
        offline: false,
        latency: Number(opt['latency-ms']),
        downloadThroughput: (kbps * 1000) / 8,
        uploadThroughput: (kbps * 1000) / 8,
      });
      throttled = true;
    });
    await waitFor(page, live, 5, LIVE_MS, 'throttled page live with 5 frames drawn');
    emit({ event: 'live' });
    await sleep(2000); // let the relay settle into pacing
    const m = await measure([page], seconds);
    await page.screenshot({ path: join(opt.artifacts, 'throttle.png') });
    emit({ event: 'result', throttled, ...m });
  } else if (scenario === 'restart') {
    const page = await openPage(opt.url);
    await waitFor(page, live, 5, LIVE_MS, 'page live');
    const s0 = await readStats(page);
    emit({ event: 'live', framesDrawn: s0.framesDrawn });
    await waitFor(page, () => window.callboxStats.state !== 'live', null, 15000, 'page noticing the box went away');
    const lost = await readStats(page);
    const tLost = Date.now();
    emit({ event: 'lost', state: lost.state });
    await page.screenshot({ path: join(opt.artifacts, 'restart-reconnecting.png') });
    await waitFor(page, (n) => window.callboxStats.state === 'live' && window.callboxStats.framesDrawn > n + 10,
      lost.framesDrawn, 30000, 'page live again after the box restarted');
    await sleep(1000); // one more stats tick, for the counters below
    const back = await readStats(page);
    emit({
      event: 'result', lostState: lost.state, recoveredAfterMs: Date.now() - tLost,
      framesIncomplete: back.framesIncomplete, reconnects: back.reconnects, state: back.state,
    });
  } else if (scenario === 'insecure') {
    // The page as a phone on the LAN gets it: plain http, not localhost, so
    // no secure context: no ImageDecoder, no AudioWorklet.
    const u = new URL(opt.url);
    u.hostname = 'callbox.local'; // the box answers to its own .local name only (DNS rebinding)
    const page = await openPage(u.href);
    await waitFor(page, live, 10, LIVE_MS, 'insecure page live with 10 frames drawn');
    emit({ event: 'live' });
    await sleep(1000);
    const m = await measure([page], seconds);
    const s = await readStats(page);
    await sleep(700); // as in play: the figures refill
    await page.screenshot({ path: join(opt.artifacts, 'insecure.png') });
    emit({ event: 'result', ...m, secureContext: s.secureContext, decodePath: s.decodePath, audioPath: s.audioPath });
  } else if (scenario === 'hidden') {
    // The page goes to the background (made to look so: headless pages are
    // always visible), closes its sockets after the grace period, and
    // comes back live when visible again.
    const page = await openPage(`${opt.url}?hiddengrace=500`);
    await waitFor(page, live, 5, LIVE_MS, 'page live');
    const setVisibility = (v) => page.evaluate((v) => {
      Object.defineProperty(document, 'visibilityState', { configurable: true, get: () => v });
      document.dispatchEvent(new Event('visibilitychange'));
    }, v);
    const t0 = Date.now();
    await setVisibility('hidden');
    await waitFor(page, () => window.callboxStats.state === 'stopped', null, 5000, 'sockets closed while hidden');
    const pausedAfterMs = Date.now() - t0;
    const n = (await readStats(page)).framesDrawn;
    emit({ event: 'hidden', pausedAfterMs });
    await sleep(3000); // the Go side checks the box has no viewers now
    const t1 = Date.now();
    await setVisibility('visible');
    await waitFor(page, (n) => window.callboxStats.state === 'live' && window.callboxStats.framesDrawn > n + 5, n, 10000, 'live again when visible');
    const s = await readStats(page);
    emit({ event: 'result', pausedAfterMs, liveAgainMs: Date.now() - t1, hiddenPauses: s.hiddenPauses, framesIncomplete: s.framesIncomplete });
  } else if (scenario === 'pair') {
    // A box that needs pairing: the page asks, a person presses both
    // buttons (here: the page's simulated-button row), the page goes live,
    // and after a reload it is still paired (token kept in localStorage).
    const page = await openPage(opt.url);
    await waitFor(page, () => window.callboxStats && window.callboxStats.state === 'waiting for pairing',
      null, 15000, 'page waiting for pairing');
    await page.waitForSelector('#sim:not([hidden])', { timeout: 10000 });
    const notice = await page.textContent('#notice');
    emit({ event: 'unpaired', notice });
    await page.screenshot({ path: join(opt.artifacts, 'pair-waiting.png') });
    const t0 = Date.now();
    await page.click('[data-button="both"]', { delay: 200 });
    await waitFor(page, live, 5, LIVE_MS, 'page live after the buttons were pressed');
    const pairedMs = Date.now() - t0;
    const token = await page.evaluate(() => localStorage.getItem('callbox.token'));
    await page.reload();
    const t1 = Date.now();
    await waitFor(page, live, 5, LIVE_MS, 'page live again after a reload, with its stored token');
    const s = await readStats(page);
    emit({
      event: 'result', notice, pairedMs, tokenStored: !!token, liveAfterReloadMs: Date.now() - t1,
      pairedAgain: s.paired, framesIncomplete: s.framesIncomplete,
    });
  }
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
