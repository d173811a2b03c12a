// Plays the page in WebKit (WebKitGTK's MiniBrowser through WebKitWebDriver,
// the W3C WebDriver protocol spoken here with fetch): the engine of iOS
// Safari, without ImageDecoder, so the page takes its createImageBitmap
// path. Prints one JSON line: {"event":"result", ...} or {"event":"error"}.
//
//   node webkit.mjs --driver http://127.0.0.1:PORT --url http://127.0.0.1:PORT/ --artifacts DIR
import { writeFile, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { parseArgs } from 'node:util';

const { values: opt } = parseArgs({
  options: {
    driver: { type: 'string' },
    url: { type: 'string' },
    artifacts: { type: 'string', default: 'artifacts' },
    seconds: { type: 'string', default: '6' },
    browser: { type: 'string', default: '/usr/lib/x86_64-linux-gnu/webkit2gtk-4.1/MiniBrowser' },
  },
});
if (!opt.driver || !opt.url) {
  console.error('usage: node webkit.mjs --driver URL --url URL [--artifacts DIR] [--seconds N]');
  process.exit(2);
}
const emit = (o) => process.stdout.write(JSON.stringify(o) + '\n');
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function wd(method, path, body) {
  const r = await fetch(opt.driver + path, {
    method,
    headers: { 'Content-Type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
    signal: AbortSignal.timeout(30000),
  });
  const j = await r.json();
  if (j.value && j.value.error) throw new Error(`${method} ${path}: ${j.value.error}: ${j.value.message}`);
  return j.value;
}

const stats = (id) => wd('POST', `/session/${id}/execute/sync`, {
  script: 'return window.callboxStats ? JSON.stringify(window.callboxStats) : null;',
  args: [],
}).then((s) => (s ? JSON.parse(s) : null));

let id = '';
try {
  // The driver may need a moment after it started listening.
  let session;
  for (let i = 0; ; i++) {
    try {
      session = await wd('POST', '/session', {
        capabilities: { alwaysMatch: { 'webkitgtk:browserOptions': { binary: opt.browser, args: ['--automation'] } } },
      });
      break;
    } catch (e) {
      if (i >= 20) throw e;
      await sleep(250);
    }
  }
  id = session.sessionId;
  await wd('POST', `/session/${id}/url`, { url: opt.url });
  let s = null;
  for (let i = 0; i < 100 && !(s && s.state === 'live' && s.framesDrawn >= 10); i++) {
    await sleep(100);
    s = await stats(id);
  }
  if (!(s && s.state === 'live')) throw new Error(`not live after 10 s: ${JSON.stringify(s)}`);
  await sleep(1000);
  const a = await stats(id);
  const t0 = Date.now();
  await sleep(Number(opt.seconds) * 1000);
  const b = await stats(id);
  const elapsed = (Date.now() - t0) / 1000;
  const png = await wd('GET', `/session/${id}/screenshot`);
  await mkdir(opt.artifacts, { recursive: true });
  await writeFile(join(opt.artifacts, 'webkit.png'), Buffer.from(png, 'base64'));
  const features = await wd('POST', `/session/${id}/execute/sync`, {
    script: 'return JSON.stringify({ userAgent: navigator.userAgent, imageDecoder: typeof ImageDecoder, createImageBitmap: typeof createImageBitmap, audioWorklet: typeof AudioWorkletNode });',
    args: [],
  });
  emit({
    event: 'result',
    fps: (b.framesDrawn - a.framesDrawn) / elapsed,
    framesIncomplete: b.framesIncomplete,
    decodeErrors: b.decodeErrors,
    decodedWidth: b.decodedWidth,
    latencyP50: b.latencyP50,
    latencyP99: b.latencyP99,
    audioRunning: b.audioRunning,
    healthChecksSent: b.healthChecksSent,
    state: b.state,
    ...JSON.parse(features),
  });
} catch (e) {
  emit({ event: 'error', error: String(e && e.stack || e) });
  process.exitCode = 1;
} finally {
  if (id) await wd('DELETE', `/session/${id}`).catch(() => {});
}
