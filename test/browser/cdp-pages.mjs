// Opens N copies of the page in one headless Chromium and measures them
// like scenario.mjs's "pages", but over plain DevTools protocol instead of
// playwright-core: Playwright enables the Network domain on every page, and
// Chromium then reports every WebSocket message to the client (1,100 a
// second per 720p30 page), which about doubles the CPU Chromium spends on a
// page (measured: 0.29 -> 0.55 of a core). With ten pages on two cores that
// instrumentation, not the page, would decide the latency.
//
//   node --experimental-websocket cdp-pages.mjs --url URL [--pages N] [--seconds S]
//
// Prints {"event":"live"} and then {"event":"result", ...} (or
// {"event":"error", ...}) as JSON lines.
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir, loadavg, cpus } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';

const { values: opt } = parseArgs({
  options: {
    url: { type: 'string' },
    pages: { type: 'string', default: '10' },
    seconds: { type: 'string', default: '8' },
    // Default: the live budget below plus the measurement plus 30 s.
    timeout: { type: 'string' },
  },
});
const emit = (o) => process.stdout.write(JSON.stringify(o) + '\n');
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
if (!opt.url) {
  console.error('usage: node --experimental-websocket cdp-pages.mjs --url URL [--pages N] [--seconds S]');
  process.exit(2);
}
if (typeof WebSocket !== 'function') {
  emit({ event: 'error', error: 'this Node has no WebSocket: run it with --experimental-websocket (Node 20) or Node 22+' });
  process.exit(2);
}

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

const profile = await mkdtemp(join(tmpdir(), 'callbox-cdp-'));
// The same flags as scenario.mjs; the window is the same phone viewport.
const chromium = spawn('/usr/bin/chromium', [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
  '--autoplay-policy=no-user-gesture-required', '--disable-background-timer-throttling',
  '--disable-renderer-backgrounding', '--disable-backgrounding-occluded-windows',
  `--user-data-dir=${profile}`, '--window-size=412,915', '--remote-debugging-port=0', 'about:blank',
], { stdio: 'ignore' });
let cleaned = false;
async function cleanup() {
  if (cleaned) return;
  cleaned = true;
  chromium.kill('SIGTERM');
  await Promise.race([new Promise((r) => chromium.once('exit', r)), sleep(5000)]);
  if (chromium.exitCode === null && chromium.signalCode === null) chromium.kill('SIGKILL');
  await removeProfile(profile);
}
for (const sig of ['SIGTERM', 'SIGINT']) process.on(sig, () => cleanup().then(() => process.exit(1)));
// Pages go live together, so the time to live grows with their number on
// a busy 2-core machine (ten Chromium pages decode ten 720p streams): 30 s
// plus 6 s a page.
const liveBudget = 30 + 6 * Number(opt.pages);
opt.timeout ??= String(liveBudget + Number(opt.seconds) + 30);
const guard = setTimeout(() => {
  emit({ event: 'error', error: `timed out after ${opt.timeout} s` });
  cleanup().then(() => process.exit(3));
}, Number(opt.timeout) * 1000);

// A minimal DevTools client: commands with ids, sessions flattened.
let ws;
let lastId = 0;
const waiting = new Map();
function send(method, params = {}, sessionId) {
  return new Promise((resolve, reject) => {
    const id = ++lastId;
    waiting.set(id, { resolve, reject });
    ws.send(JSON.stringify({ id, method, params, sessionId }));
  });
}
async function evaluate(sessionId, expression, awaitPromise = false) {
  const r = await send('Runtime.evaluate', { expression, returnByValue: true, awaitPromise }, sessionId);
  if (r.exceptionDetails) throw new Error(`${expression}: ${JSON.stringify(r.exceptionDetails)}`);
  return r.result.value;
}

// cpuSeconds sums user+system time of Chromium and its descendants.
async function cpuSeconds(pid = chromium.pid) {
  let ticks = 0;
  try {
    const st = await readFile(`/proc/${pid}/stat`, 'utf8');
    const f = st.slice(st.lastIndexOf(')') + 2).split(' ');
    ticks = Number(f[11]) + Number(f[12]);
    const kids = (await readFile(`/proc/${pid}/task/${pid}/children`, 'utf8')).trim().split(/\s+/).filter(Boolean);
    for (const k of kids) ticks += (await cpuSeconds(Number(k))) * 100;
  } catch { /* exited meanwhile */ }
  return ticks / 100;
}

function pct(values, p) {
  if (values.length === 0) return null;
  const s = Float64Array.from(values).sort();
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))];
}

const STATS = 'JSON.stringify(window.callboxStats ? { ...window.callboxStats, recentLatencies: undefined } : null)';
// LIVE resolves in the page once it is live and has drawn 5 frames: the
// page's own frame callbacks drive the check, no polling from here.
const LIVE = `new Promise((resolve) => {
  const ok = () => { const s = window.callboxStats; return s && s.state === 'live' && s.framesDrawn >= 5; };
  const step = () => {
    if (ok()) return resolve(true);
    let fired = false;
    const next = () => { if (!fired) { fired = true; step(); } };
    requestAnimationFrame(next); // a drawn frame; the timer for a page not drawing yet
    setTimeout(next, 250);
  };
  step();
})`;
const TAKE = '(() => { const v = window.callboxStats.recentLatencies.slice(); window.callboxStats.recentLatencies.length = 0; return v; })()';

try {
  let port = null;
  for (let i = 0; i < 150 && !port; i++) {
    await sleep(100);
    port = await readFile(join(profile, 'DevToolsActivePort'), 'utf8').then((s) => s.split('\n'), () => null);
  }
  if (!port) throw new Error('Chromium did not open its DevTools port');
  ws = new WebSocket(`ws://127.0.0.1:${port[0]}${port[1]}`);
  await new Promise((resolve, reject) => { ws.onopen = resolve; ws.onerror = () => reject(new Error('DevTools connection failed')); });
  ws.onmessage = (e) => {
    const m = JSON.parse(e.data);
    const w = m.id && waiting.get(m.id);
    if (!w) return;
    waiting.delete(m.id);
    if (m.error) w.reject(new Error(`${m.error.message}`));
    else w.resolve(m.result);
  };

  const n = Number(opt.pages);
  const sessions = [];
  for (let i = 0; i < n; i++) {
    // Each in its own window: tabs behind another are hidden, and a hidden
    // page closes its sockets after a while (main.js).
    const { targetId } = await send('Target.createTarget', { url: opt.url, newWindow: true });
    const { sessionId } = await send('Target.attachToTarget', { targetId, flatten: true });
    sessions.push(sessionId);
  }
  let timer;
  const late = new Promise((_, reject) => {
    timer = setTimeout(async () => {
      const st = await Promise.all(sessions.map((s) => evaluate(s, STATS).catch(() => 'null')));
      reject(new Error(`a page is not live after ${liveBudget} s (load average ${loadavg().map((l) => l.toFixed(1)).join(' ')}): ${st.join(' ')}`));
    }, liveBudget * 1000);
  });
  // A new target starts on about:blank: an evaluation that lands before the
  // page's navigation commits dies with its context, so it is asked again
  // in the page that replaced it.
  const untilLive = async (s) => {
    for (;;) {
      try {
        return await evaluate(s, LIVE, true);
      } catch (e) {
        if (!/context was destroyed|Cannot find (default )?(execution )?context/i.test(String(e.message))) throw e;
        await sleep(100);
      }
    }
  };
  await Promise.race([Promise.all(sessions.map(untilLive)), late]);
  clearTimeout(timer);
  emit({ event: 'live', pages: n });
  await sleep(2000);

  const loadBefore = loadavg()[0];
  const before = await Promise.all(sessions.map((s) => evaluate(s, STATS).then(JSON.parse)));
  await Promise.all(sessions.map((s) => evaluate(s, TAKE)));
  const cpu0 = await cpuSeconds();
  const t0 = Date.now();
  const lat = sessions.map(() => []);
  let left = Number(opt.seconds) * 1000;
  while (left > 0) {
    const step = Math.min(left, 4000);
    await sleep(step);
    left -= step;
    const got = await Promise.all(sessions.map((s) => evaluate(s, TAKE)));
    got.forEach((v, i) => lat[i].push(...v));
  }
  const elapsed = (Date.now() - t0) / 1000;
  const chromiumCores = (await cpuSeconds() - cpu0) / elapsed;
  const after = await Promise.all(sessions.map((s) => evaluate(s, STATS).then(JSON.parse)));
  const pages = after.map((a, i) => ({
    fps: (a.framesDrawn - before[i].framesDrawn) / elapsed,
    framesIncomplete: a.framesIncomplete,
    framesSkipped: a.framesSkipped - before[i].framesSkipped,
    audioFramesPlayed: a.audioFramesPlayed - before[i].audioFramesPlayed,
    state: a.state,
    latencyP50: pct(lat[i], 50),
    latencyP99: pct(lat[i], 99),
    latencySamples: lat[i].length,
  }));
  const all = lat.flat();
  emit({
    event: 'result',
    elapsed,
    load: [loadBefore, loadavg()[0]],
    cpu: `${cpus().length} x ${cpus()[0] ? cpus()[0].model : 'unknown'}`,
    chromiumCores,
    pages,
    latencyP50: pct(all, 50),
    latencyP99: pct(all, 99),
    latencyMax: all.length ? Math.max(...all) : null,
    latencySamples: all.length,
  });
} catch (e) {
  emit({ event: 'error', error: String(e && e.stack || e) });
  process.exitCode = 1;
} finally {
  clearTimeout(guard);
  if (ws) ws.close();
  await cleanup();
}
