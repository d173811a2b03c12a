// The phone page: live video and sound from the box, its state, and the
// pairing flow. Everything the page shows comes from window.callboxStats,
// which tests and curious people read too.

import { JpegVideo } from './video.js';
import { AudioPlayer } from './audio.js';
import { State } from './conn.js';
import { now } from './rtp.js';
import { Rolling, Rate } from './stats.js';
import { WhepPlayer } from './webrtc.js';

const TOKEN_KEY = 'callbox.token';
const params = new URLSearchParams(location.search);

const stats = {
  state: State.CONNECTING,
  videoState: State.CONNECTING,
  audioState: State.CONNECTING,
  detail: '',
  framesDrawn: 0,
  framesIncomplete: 0,
  framesSkipped: 0,
  decodeErrors: 0,
  packetsLost: 0,
  width: 0,
  height: 0,
  decodedWidth: 0,
  fps: 0,
  kbps: 0,
  latencyP50: NaN,
  latencyP99: NaN,
  latencyLast: NaN,
  networkP50: NaN,
  networkP99: NaN,
  decodeP50: NaN,
  decodeP99: NaN,
  recentLatencies: [],
  clockOffsetMs: 0,
  clockRttMs: NaN,
  audioRunning: false,
  audioFramesIn: 0,
  audioFramesPlayed: 0,
  audioUnderruns: 0,
  audioBufferedMs: 0,
  healthChecksSent: 0,
  healthChecksVideo: 0,
  healthChecksAudio: 0,
  reconnects: 0,
  frameAgeMs: -1, // since the last frame was drawn (or the video went live)
  decodePath: '', // ImageDecoder, createImageBitmap or img
  audioPath: '', // AudioWorklet or ScriptProcessorNode
  // Over plain http to a LAN address (not localhost) the page is not a
  // secure context: no ImageDecoder, no AudioWorklet. It works without.
  secureContext: window.isSecureContext,
  hiddenPauses: 0, // times the sockets were closed while the page was hidden
  paired: false, // this page obtained a token by pairing
  pairHint: '', // the box's answer while pairing waits
  box: null, // the last /api/state answer, or null when the box has none
  callError: '', // why the last call or hang-up from this page failed
  boxPairError: '', // why the last pairing request from this page failed
  // How the media comes: 'webrtc' (WHEP, the browser's own decoder) first,
  // 'websocket' (JPEG and PCMU rebuilt by the page) as the fallback.
  path: '',
  fallbackReason: '', // why the page is not on WebRTC
  framesDecoded: 0, // WebRTC: the browser's decoder (getStats)
  framesDropped: 0,
  codec: '',
  audioCodec: '', // WebRTC: audio/opus, or audio/PCMU
  candidatePair: '', // WebRTC: local -> remote candidate types
  latencySource: '', // getSynchronizationSources, requestVideoFrameCallback or rtp (WebSocket)
  audioPackets: 0, // WebRTC: audio packets received
  audioEnergy: 0, // WebRTC: totalAudioEnergy, grows while sound plays
  audioMuted: false,
  volume: 1,
};
// Bytes so far, read live (not at the last tick) so rates over any window are exact.
Object.defineProperty(stats, 'bytesReceived', {
  enumerable: true,
  get: () => video.socket.bytes + audio.socket.bytes + rtcBytes + (rtc ? rtc.bytes || 0 : 0),
});
window.callboxStats = stats;

const $ = (id) => document.getElementById(id);
const canvas = $('video');
const rtcEl = $('rtc');
let rtc = null; // the WebRTC session, when the page is on that path
let rtcBytes = 0; // bytes received over WebRTC sessions so far
const g = canvas.getContext('2d', { alpha: false });

let memToken = ''; // where storage is refused (private mode)
function token() {
  try { return localStorage.getItem(TOKEN_KEY) || memToken; } catch { return memToken; }
}

// The token goes in the socket's first message (MediaSocket's token
// option) and in an Authorization header, never in a URL: URLs end up in
// histories and logs.
function wsURL(kind) {
  const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
  return `${proto}//${location.host}/ws/${kind}?auth=message`;
}

function authHeaders(extra = {}) {
  const t = token();
  return t ? { ...extra, Authorization: `Bearer ${t}` } : extra;
}

// hcdelay (ms) holds Health Checks back: a test's stand-in for a slow phone.
const hcDelayMs = Math.max(0, Number(params.get('hcdelay')) || 0);
// Decode for the view's size unless ?decode=full asks for every pixel (to
// measure the full decoding cost on a small screen).
const viewSize = () => {
  const r = canvas.getBoundingClientRect();
  const dpr = window.devicePixelRatio || 1;
  return { width: r.width * dpr, height: r.height * dpr };
};
const video = new JpegVideo(wsURL, { token, hcDelayMs, viewSize: params.get('decode') === 'full' ? null : viewSize });
const audio = new AudioPlayer(wsURL, { token, hcDelayMs, clock: video.clock });
// The other home during a call: the box republishes the other box's media
// on its call relay (docs/peer.md). A call carrying H.264 plays over
// WebRTC (/whep/call: the browser's own decoder, the other box's frames
// forwarded by this box without decoding; docs/webrtc.md); a JPEG call,
// or a browser without RTCPeerConnection, on the WebSocket path
// (/ws/call/video, /ws/call/audio), rebuilt by the page as the box's own.
const callURL = (kind) => wsURL(`call/${kind}`);
const callVideo = new JpegVideo(callURL, { token, viewSize: params.get('decode') === 'full' ? null : () => {
  const r = $('callvideo').getBoundingClientRect();
  const dpr = window.devicePixelRatio || 1;
  return { width: r.width * dpr, height: r.height * dpr };
} });
const callAudio = new AudioPlayer(callURL, { token, clock: callVideo.clock });
let callUpSince = 0; // performance.now() when this page saw the call connect
Object.assign(stats, { callFramesDrawn: 0, callWidth: 0, callHeight: 0, callAudioRunning: false, callDurationS: 0, callView: false,
  // callPath: 'webrtc' or 'websocket' (why not WebRTC: callFallbackReason);
  // callFirstFrameMs: from the call's connection (as this page saw it) to
  // the other home's first frame drawn.
  // callSteps: when (ms after the call's connection) the call relay first
  // said h264, the WHEP answer came, the first frame was drawn.
  callPath: '', callFallbackReason: '', callFirstFrameMs: NaN, callSteps: {}, callCodec: '', callFramesDecoded: 0,
  callAudioCodec: '', callAudioPackets: 0, callAudioEnergy: 0 });
const callRtcEl = $('callrtc');
let callRtc = null; // the call's WebRTC session, when the call view is on that path
let callGen = 0; // bumped whenever the call view starts or stops: stale async steps give up
callVideo.onframe = (f) => {
  const c = $('callvideo');
  if (c.width !== f.width || c.height !== f.height) { c.width = f.width; c.height = f.height; }
  c.getContext('2d', { alpha: false }).drawImage(f.image, 0, 0);
  f.close();
  stats.callFramesDrawn++;
  if (stats.callFramesDrawn === 1) stats.callFirstFrameMs = Math.round(performance.now() - callUpSince);
  stats.callWidth = f.frameWidth;
  stats.callHeight = f.frameHeight;
};

// followCall opens the call's media while the call is up (direct or
// relayed) and closes it after.
function followCall(call) {
  const up = !!(call && (call.state === 'direct' || call.state === 'relayed') && stats.box && stats.box.paired);
  if (up === stats.callView) return;
  stats.callView = up;
  document.body.classList.toggle('in-call', up);
  $('callview').hidden = !up;
  if (up) {
    callUpSince = performance.now();
    Object.assign(stats, { callFramesDrawn: 0, callWidth: 0, callHeight: 0, callFirstFrameMs: NaN, callSteps: {}, callFramesDecoded: 0,
      callAudioPackets: 0, callAudioEnergy: 0, callCodec: '', callAudioCodec: '' });
    callAudio.setMuted(stats.audioMuted);
    callAudio.setVolume(stats.volume);
    startCallMedia();
    // The other home's sound replaces this room's own (which would echo).
    audio.setMuted(true);
    if (rtc) rtc.setMuted(true);
  } else {
    stopCallMedia();
    audio.setMuted(stats.audioMuted);
    if (rtc) rtc.setMuted(stats.audioMuted);
  }
}

// startCallMedia chooses the call view's path: WebRTC when the call's
// relay carries H.264, the WebSocket path for JPEG or without
// RTCPeerConnection. The box's call relay has nothing until the other
// box's first frame arrives, so the page asks (OPTIONS /whep/call,
// Callbox-Video-Live) until it says h264 or jpeg, for up to 10 s.
async function startCallMedia() {
  const gen = ++callGen;
  stats.callPath = '';
  stats.callFallbackReason = '';
  if (wantPath === 'ws' || !WhepPlayer.supported()) {
    callWS(wantPath === 'ws' ? 'asked for (?path=ws)' : 'no RTCPeerConnection in this browser');
    return;
  }
  const t0 = performance.now();
  let live = '';
  while (gen === callGen) {
    live = await callLive();
    if (live === 'h264' || live === 'jpeg' || live === 'absent' || performance.now() - t0 > 10000) break;
    await sleep(200);
  }
  if (gen !== callGen) return;
  stats.callSteps.live = Math.round(performance.now() - callUpSince);
  if (live !== 'h264') {
    callWS(live === 'jpeg' ? 'the call carries JPEG' : live === 'absent' ? 'this box has no /whep/call'
      : `no H.264 from the other box within 10 s (${live || 'no answer'})`);
    return;
  }
  const r = await startCallWebRTC(gen);
  if (r !== true && gen === callGen) callWS(r);
}

// callLive is what the call's relay carries now: h264, jpeg, none;
// 'absent' when the box has no /whep/call (an older box: the WebSocket
// path at once), '' when it cannot be asked right now.
async function callLive() {
  try {
    const r = await fetch('/whep/call', { method: 'OPTIONS', cache: 'no-store' });
    if (!r.ok) return 'absent';
    return r.headers.get('Callbox-Video-Live') || 'absent';
  } catch { return ''; }
}

function callWS(reason) {
  stats.callPath = 'websocket';
  stats.callFallbackReason = reason;
  document.body.classList.remove('call-webrtc');
  callVideo.start();
  callAudio.start();
}

async function startCallWebRTC(gen) {
  const p = new WhepPlayer(callRtcEl, { token, url: '/whep/call' });
  p.muted = stats.audioMuted;
  p.onframe = () => {
    if (callRtc !== p) return;
    stats.callFramesDrawn = p.framesShown;
    if (p.framesShown === 1) stats.callFirstFrameMs = Math.round(performance.now() - callUpSince);
  };
  p.onstate = (s) => {
    if (callRtc === p && s === 'failed') callRtcFailed(p, gen);
  };
  callRtc = p;
  stats.callPath = 'webrtc';
  document.body.classList.add('call-webrtc');
  let r;
  try { r = await p.start(); } catch (e) { r = { status: -1, error: String(e) }; }
  if (gen !== callGen || callRtc !== p) { p.close(); return true; }
  stats.callSteps.answered = Math.round(performance.now() - callUpSince);
  if (r.ok) {
    p.setVolume(stats.volume);
    const t0 = performance.now();
    while (p.framesShown === 0) {
      if (gen !== callGen || callRtc !== p) return true;
      if (performance.now() - t0 > 8000) break;
      await sleep(100);
    }
    if (p.framesShown > 0) return true;
    r = { status: 0, error: 'no frame over WebRTC within 8 s' };
  }
  p.close();
  callRtc = null;
  document.body.classList.remove('call-webrtc');
  return `WHEP ${r.status}${r.error ? ` ${r.error}` : ''}`;
}

// A call's WebRTC session that failed mid-call (the phone's Wi-Fi, say) is
// set up again while the call lasts.
function callRtcFailed(p, gen) {
  setTimeout(() => {
    if (callRtc !== p || gen !== callGen) return;
    p.close();
    callRtc = null;
    startCallMedia();
  }, 500);
}

function stopCallMedia() {
  callGen++;
  if (callRtc) { callRtc.close(); callRtc = null; }
  document.body.classList.remove('call-webrtc');
  callVideo.stop();
  callAudio.stop();
  stats.callPath = '';
}

// callUnlock starts the call's sound from a tap (autoplay rules).
function callUnlock() {
  callAudio.unlock();
  if (callRtc && callRtc.autoplayMuted) callRtc.setMuted(stats.audioMuted);
}

// callRtcTick folds the call's WebRTC counters into callboxStats.
async function callRtcTick() {
  const p = callRtc;
  if (!p) return;
  const st = await p.stats();
  if (callRtc !== p) return;
  Object.assign(stats, { callFramesDecoded: st.framesDecoded, callCodec: st.codec, callAudioCodec: st.audioCodec,
    callAudioPackets: st.audioPackets, callAudioEnergy: st.audioEnergy, callWidth: st.width, callHeight: st.height,
    callAudioRunning: !callRtcEl.paused && !p.autoplayMuted && st.audioPackets > 0 });
}

const latency = new Rolling(300);
// Where the latency goes: capture -> last packet in (box, relay, network,
// the page's message handling) and last packet in -> decoded.
const network = new Rolling(300);
const decode = new Rolling(300);
stats.recentLatencies = latency.values;

let lastDrawn = 0; // performance.now() of the last frame drawn
video.onframe = (f) => {
  if (canvas.width !== f.width || canvas.height !== f.height) {
    canvas.width = f.width;
    canvas.height = f.height;
  }
  g.drawImage(f.image, 0, 0);
  const drawn = now();
  lastDrawn = performance.now();
  f.close();
  stats.framesDrawn++;
  stats.width = f.frameWidth;
  stats.height = f.frameHeight;
  stats.decodedWidth = f.width;
  if (f.captureTime >= 0) {
    stats.latencyLast = drawn - f.captureTime;
    latency.add(stats.latencyLast);
    network.add(f.completedAt - f.captureTime);
  }
  decode.add(f.decodedAt - f.completedAt);
  if (stats.framesDrawn === 1) document.body.classList.add('has-video');
};

function overallState() {
  if (stats.path === 'webrtc') return stats.videoState === 'failed' ? State.RECONNECTING : stats.videoState;
  const v = video.socket.state;
  const a = audio.socket.state;
  if (v === State.UNPAIRED || a === State.UNPAIRED) return State.UNPAIRED;
  return v;
}

function onState() {
  const s = overallState();
  if (s === stats.state) return;
  stats.state = s;
  if (s === State.UNPAIRED) pair();
  render();
}
let liveSince = 0; // performance.now() when the video connection went live
video.socket.onstate = (s, detail) => {
  stats.videoState = s;
  if (detail) stats.detail = detail;
  if (s === State.LIVE) liveSince = performance.now();
  onState();
};
audio.socket.onstate = (s, detail) => { stats.audioState = s; if (detail) stats.detail = detail; onState(); };

// A token the relay no longer accepts is useless: forget it and pair again.
function onUnpaired() {
  memToken = '';
  try { localStorage.removeItem(TOKEN_KEY); } catch { /* private mode */ }
}
video.socket.onunpaired = onUnpaired;
audio.socket.onunpaired = onUnpaired;

// Pairing (the box's /api): a long poll that answers once someone presses
// the button on the box. 408 means "nobody pressed it yet, ask again"; 404
// means this box has no pairing, and the sockets keep retrying by themselves.
let pairing = false;
async function pair() {
  if (pairing) return;
  pairing = true;
  try {
    while (stats.state === State.UNPAIRED) {
      let r;
      try {
        r = await fetch('/api/pair/request', {
          method: 'POST',
          headers: { 'Content-Type': 'application/json' },
          body: JSON.stringify({ name: deviceName() }),
        });
      } catch {
        await sleep(2000);
        continue;
      }
      if (r.status === 404) return;
      const body = await r.json().catch(() => ({}));
      // The box's own words on how to approve (which buttons) are the best hint.
      if (typeof body.error === 'string') stats.pairHint = body.error;
      if (r.status === 408) continue;
      if (r.ok && typeof body.token === 'string' && body.token) {
        stats.pairHint = '';
        memToken = body.token;
        try { localStorage.setItem(TOKEN_KEY, body.token); } catch { /* private mode: kept for this page's life only */ }
        stats.paired = true;
        if (unpairedFallback) {
          // Unpaired sent the page to the WebSocket path; now WebRTC can work.
          unpairedFallback = false;
          video.stop();
          audio.socket.stop();
          startMedia();
        } else {
          video.socket.reconnectNow();
          audio.socket.reconnectNow();
        }
        return;
      }
      await sleep(2000);
    }
  } finally {
    pairing = false;
    render();
  }
}

// deviceName is how the box's owner recognises this phone in its log.
function deviceName() {
  const ua = navigator.userAgent;
  const kind = /iPhone/.test(ua) ? 'iPhone' : /iPad/.test(ua) ? 'iPad' : /Android/.test(ua) ? 'Android' : 'browser';
  return `${kind} page`;
}

function sleep(ms) { return new Promise((r) => setTimeout(r, ms)); }

// The box's own state (LED, errors, whether its buttons are simulated).
async function pollBox() {
  for (;;) {
    try {
      const r = await fetch('/api/state', { cache: 'no-store', headers: authHeaders() });
      if (r.status === 404) { stats.box = null; render(); return; }
      if (r.ok) stats.box = await r.json();
    } catch {
      // The box is away (restarting): its last state would mislead, and
      // its buttons cannot be pressed now. The sockets show the rest.
      stats.box = null;
    }
    render();
    // While a call is being set up, look again soon: it connects within
    // a second or so, and the page should say so when the box does.
    const call = stats.box && stats.box.call;
    const calling = call && (call.state === 'calling' || call.state === 'ringing');
    // A pairing with another box moves when the other box does: look often.
    const pairing = call && call.pairing && ['waiting', 'compare', 'confirmed'].includes(call.pairing.stage);
    await new Promise((r) => { const id = setTimeout(r, calling ? 250 : pairing ? 500 : 2000); wakeBox = () => { clearTimeout(id); r(); }; });
  }
}
let wakeBox = () => {}; // ends pollBox's wait: the page changed the box's state

async function simButton(button, ms) {
  try {
    await fetch('/api/sim/button', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ button, ms }),
    });
  } catch { /* shown by the next /api/state poll */ }
}

// Simulated buttons: the press lasts as long as the finger stays on it, so
// both short presses and long holds can be tried from the phone.
for (const b of document.querySelectorAll('[data-button]')) {
  let down = 0;
  b.addEventListener('pointerdown', (e) => { e.stopPropagation(); down = performance.now(); });
  b.addEventListener('pointerup', (e) => {
    e.stopPropagation();
    if (!down) return;
    // The box takes presses of up to a minute (a factory reset is 10 s).
    const ms = Math.min(60000, Math.max(50, Math.round(performance.now() - down)));
    down = 0;
    simButton(b.dataset.button, ms);
  });
  b.addEventListener('click', (e) => e.stopPropagation());
}

// Calls to another box (docs/peer.md): the button calls the box's paired
// box, or hangs up; /api/state's call says which, and whether direct or
// relayed.
function callText(call) {
  if (!call || call.state === 'idle') return '';
  const who = call.peer ? ` ${call.peer}` : '';
  if (call.state === 'calling') return `calling${who}…`;
  if (call.state === 'ringing') return `${call.peer || 'a box'} is calling`;
  return `in a call${call.peer ? ` with ${call.peer}` : ''} (${call.state})`;
}

// callAPI sends one call request (answer, decline, call, hang up) and
// shows its outcome.
async function callAPI(method, path, reqBody = null) {
  try {
    // JSON, as the box wants of every POST (a cross-site page cannot send it).
    const r = await fetch(path, { method, headers: authHeaders({ 'Content-Type': 'application/json' }), body: reqBody ? JSON.stringify(reqBody) : undefined });
    const body = await r.json().catch(() => ({}));
    stats.callError = r.ok ? '' : (body.error || `HTTP ${r.status}`);
    if (stats.box && stats.box.call && typeof body.state === 'string') {
      stats.box.call = { ...stats.box.call, state: body.state, peer: body.peer || '', missed: body.missed };
    }
  } catch {
    stats.callError = 'the box is away';
  }
  render();
  wakeBox();
}

$('callview').addEventListener('click', () => callUnlock());
$('call').addEventListener('click', (e) => {
  e.stopPropagation();
  callUnlock();
  const call = stats.box && stats.box.call;
  if (!call) return;
  // Several paired boxes: the one chosen in the list (else the box's
  // configured peer, or its only one).
  const peer = call.state === 'idle' && !$('callpeer').hidden ? $('callpeer').value : '';
  callAPI(call.state === 'idle' ? 'POST' : 'DELETE', '/api/call', peer ? { peer } : null);
});
$('callpeer').addEventListener('click', (e) => e.stopPropagation());
// An incoming call rings on every phone: Answer takes it (as button B on
// the box does), Decline ends it.
$('answer').addEventListener('click', (e) => { e.stopPropagation(); audio.unlock(); callUnlock(); callAPI('POST', '/api/call/answer'); });
$('decline').addEventListener('click', (e) => { e.stopPropagation(); callAPI('DELETE', '/api/call'); });
$('missed-ok').addEventListener('click', (e) => { e.stopPropagation(); callAPI('DELETE', '/api/call/missed'); });

// Pairing with another box (docs/peer.md): this page shows a code, or
// enters the other box's; both boxes then show the same confirmation
// (/api/state's call.pairing.sas) and each owner confirms it, so nobody in
// the middle can slip in a box of their own.
async function boxPair(method, path, body) {
  try {
    const r = await fetch(path, { method, headers: authHeaders({ 'Content-Type': 'application/json' }), body: body ? JSON.stringify(body) : undefined });
    const b = await r.json().catch(() => ({}));
    stats.boxPairError = r.ok ? '' : (b.error || `HTTP ${r.status}`);
    const call = stats.box && stats.box.call;
    if (r.ok && call && b.code) call.pairing = { stage: 'waiting', role: 'code', code: b.code };
    if (r.ok && call && b.pairing) call.pairing = b.pairing;
  } catch {
    stats.boxPairError = 'the box is away';
  }
  render();
  wakeBox();
}

// 1234567890 as "1234-567890", easier to read out.
const groupCode = (c) => (c && c.length === 10 ? `${c.slice(0, 4)}-${c.slice(4)}` : c || '');

function boxPairText(p) {
  if (!p) return '';
  switch (p.stage) {
    case 'waiting': return p.role === 'code' ? `Enter ${groupCode(p.code)} on the other box` : 'Waiting for the other box…';
    case 'compare': return `Does the other box show ${p.sas}?`;
    case 'confirmed': return `${p.sas} confirmed here; waiting for the other box`;
    case 'paired': return `Paired with ${p.peer_name || p.peer_id}`;
    case 'failed': return `Pairing failed: ${p.error}`;
  }
  return '';
}

// The phone's link to the hub's page for this box (docs/peer.md, "Phones
// away from home"): asked once the box has a hub and this phone is paired;
// again 10 s after the box said it was not registered yet.
let remoteAsked = false;
function remoteLink() {
  if (remoteAsked) return;
  remoteAsked = true;
  fetch('/api/remote', { headers: authHeaders() }).then((r) => (r.ok ? r.json() : Promise.reject(r.status)))
    .then((j) => {
      const a = $('remote-link'); a.href = j.url; a.hidden = false;
      if (j.qr) { const q = $('remote-qr'); q.src = j.qr; q.hidden = false; }
    })
    .catch((code) => { if (code === 503) setTimeout(() => { remoteAsked = false; }, 10000); });
}

$('boxpair').addEventListener('click', (e) => e.stopPropagation());
$('boxpair-code').addEventListener('click', () => boxPair('POST', '/api/call/pair'));
$('boxpair-join').addEventListener('submit', (e) => {
  e.preventDefault();
  boxPair('POST', '/api/call/pair', { code: $('boxpair-input').value });
});
$('boxpair-confirm').addEventListener('click', () => boxPair('POST', '/api/call/pair/confirm'));
$('boxpair-cancel').addEventListener('click', () => boxPair('DELETE', '/api/call/pair'));

// A tap on the picture: sound on (mobile autoplay rules need the gesture),
// and full screen where the browser has it; iPhones lack element full
// screen, so there the overlays hide instead.
$('stage').addEventListener('click', () => {
  audio.unlock();
  callUnlock();
  if (rtc && rtc.autoplayMuted) rtc.setMuted(stats.audioMuted);
  const d = document;
  if (d.fullscreenElement || d.webkitFullscreenElement) {
    (d.exitFullscreen || d.webkitExitFullscreen).call(d);
    return;
  }
  const el = d.documentElement;
  const req = el.requestFullscreen || el.webkitRequestFullscreen;
  if (req) {
    Promise.resolve(req.call(el)).catch(() => d.body.classList.toggle('immersive'));
  } else {
    d.body.classList.toggle('immersive');
  }
});
$('sound').addEventListener('click', (e) => {
  e.stopPropagation();
  audio.unlock();
  callUnlock();
  if (stats.callView) return; // the room's own sound stays off in a call (it would echo)
  if (rtc) rtc.setMuted(stats.audioMuted);
});
audio.onchange = render;

const fps = new Rate();
const kbps = new Rate();

// tick folds the parts' counters into callboxStats and redraws the figures.
function tick() {
  if (stats.path === 'webrtc') rtcTick().catch(() => {});
  if (callRtc) callRtcTick().catch(() => {});
  const t = performance.now();
  stats.fps = Math.round(fps.tick(stats.framesDrawn, t) * 10) / 10;
  const bytes = stats.bytesReceived;
  stats.kbps = Math.round((kbps.tick(bytes, t) * 8) / 1000);
  if (stats.path !== 'webrtc') {
    stats.framesIncomplete = video.incomplete;
    stats.framesSkipped = video.skipped;
    stats.decodeErrors = video.decodeErrors;
    stats.packetsLost = video.socket.lost + audio.socket.lost;
  }
  stats.latencyP50 = latency.percentile(50);
  stats.latencyP99 = latency.percentile(99);
  stats.networkP50 = network.percentile(50);
  stats.networkP99 = network.percentile(99);
  stats.decodeP50 = decode.percentile(50);
  stats.decodeP99 = decode.percentile(99);
  if (stats.path !== 'webrtc') {
    stats.clockOffsetMs = video.clock.offset;
    stats.clockRttMs = video.clock.rtt;
    stats.audioRunning = audio.running;
    stats.audioFramesIn = audio.stats.framesIn;
    stats.audioFramesPlayed = audio.stats.framesPlayed;
    stats.audioUnderruns = audio.stats.underruns;
    stats.audioBufferedMs = Math.round(audio.stats.bufferedMs);
    stats.healthChecksVideo = video.socket.healthChecksSent;
    stats.healthChecksAudio = audio.socket.healthChecksSent;
    stats.healthChecksSent = stats.healthChecksVideo + stats.healthChecksAudio;
  }
  if (stats.path !== 'webrtc') stats.reconnects = Math.max(stats.reconnects, video.socket.connects - 1);
  // Since the last frame, or since the connection went live if none came.
  const since = Math.max(lastDrawn, liveSince);
  stats.frameAgeMs = since ? Math.round(t - since) : -1;
  if (stats.path !== 'webrtc') {
    stats.decodePath = video.decodePath;
    stats.audioPath = audio.path;
  }
  render();
}

const fmt = (v, unit) => (Number.isFinite(v) ? `${Math.round(v)} ${unit}` : '–');

function render() {
  const s = stats;
  const stateEl = $('state');
  stateEl.textContent = s.state;
  stateEl.dataset.state = s.state;
  $('fps').textContent = `${s.fps.toFixed(0)} fps`;
  $('latency').textContent = `${fmt(s.latencyP50, 'ms')} delay`;
  $('latency').title = `p50 ${fmt(s.latencyP50, 'ms')}, p99 ${fmt(s.latencyP99, 'ms')}`;
  const pathName = (p) => (p === 'webrtc' ? 'WebRTC' : p === 'websocket' ? 'WebSocket' : '');
  $('path').textContent = pathName(s.path);
  $('path').title = s.fallbackReason ? `WebSocket: ${s.fallbackReason}` : 'how the picture comes';
  if (s.callView && s.callPath) {
    // The other home's picture comes its own way (docs/webrtc.md, /whep/call).
    $('path').textContent += ` · call ${pathName(s.callPath)}`;
    $('path').title += s.callFallbackReason ? `; the call on WebSocket: ${s.callFallbackReason}` : '; the call over WebRTC';
  }
  $('kbps').textContent = s.kbps >= 1000 ? `${(s.kbps / 1000).toFixed(1)} Mbit/s` : `${s.kbps} kbit/s`;
  let notice = '';
  if (s.state === State.UNPAIRED) notice = 'Press the button on the box\n(both buttons, A and B, together)' + (s.pairHint ? `\n(${s.pairHint})` : '');
  else if (s.state === State.RECONNECTING) notice = 'Reconnecting to the box…';
  else if (s.state === State.CONNECTING) notice = 'Connecting…';
  // Connected but no picture (a camera unplugged, say): the box's message
  // below usually says why.
  else if (s.state === State.LIVE && s.frameAgeMs > 2000) notice = 'No picture from the box';
  const box = s.box;
  if (box && box.message && notice) notice += '\n' + box.message;
  $('notice').textContent = notice;
  $('notice').hidden = !notice;
  const call = box && box.call;
  const inCall = callText(call);
  $('boxstate').textContent = box ? [inCall || box.state, box.message, s.callError].filter(Boolean).join(': ') : '';
  const callBtn = $('call');
  callBtn.hidden = !(call && call.enabled && box.paired);
  if (call) {
    callBtn.dataset.call = call.state;
    callBtn.textContent = call.state === 'idle' ? 'Call' : 'Hang up';
  }
  if (call && call.enabled && box.paired) remoteLink();
  const bp = call && call.pairing;
  $('boxpair').hidden = !(call && call.enabled && box.paired && call.state === 'idle');
  const bpStatus = $('boxpair-status');
  bpStatus.textContent = [boxPairText(bp), s.boxPairError].filter(Boolean).join(': ');
  bpStatus.dataset.stage = bp ? bp.stage : '';
  bpStatus.dataset.code = bp && bp.code ? bp.code : '';
  bpStatus.dataset.sas = bp && bp.sas ? bp.sas : '';
  $('boxpair-confirm').hidden = !(bp && bp.stage === 'compare');
  $('boxpair-cancel').hidden = !(bp && ['waiting', 'compare', 'confirmed'].includes(bp.stage));
  followCall(call);
  if (stats.callView) {
    const secs = Math.floor((performance.now() - callUpSince) / 1000);
    stats.callDurationS = secs;
    if (stats.callPath !== 'webrtc') stats.callAudioRunning = callAudio.running;
    const dur = `${Math.floor(secs / 60)}:${String(secs % 60).padStart(2, '0')}`;
    $('callinfo').textContent = `${call.peer || 'the other box'} · ${call.state} · ${dur}${stats.audioMuted ? ' · muted' : ''}`;
  }
  // Whom to call: a list when the box has several paired boxes.
  const peers = (call && box.paired && call.peers) || [];
  const sel = $('callpeer');
  sel.hidden = callBtn.hidden || !call || call.state !== 'idle' || peers.length < 2;
  const opts = peers.map((p) => `${p.id}|${p.name || p.id}${p.online ? '' : ' (away)'}`).join('\n');
  if (sel.dataset.opts !== opts) {
    const keep = sel.value;
    sel.replaceChildren(...peers.map((p) => new Option(`${p.name || p.id}${p.online ? '' : ' (away)'}`, p.id)));
    if (peers.some((p) => p.id === keep)) sel.value = keep;
    sel.dataset.opts = opts;
  }
  const ringing = !!(call && call.state === 'ringing' && box.paired);
  $('ring').hidden = !ringing;
  callBtn.hidden = callBtn.hidden || ringing;
  if (ringing) $('ring-text').textContent = `${call.peer || 'Another box'} is calling`;
  const missed = (call && box.paired && call.missed) || [];
  $('missed').hidden = missed.length === 0;
  if (missed.length) {
    const last = missed[missed.length - 1];
    const at = new Date(last.at).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
    $('missed-text').textContent = missed.length === 1 ? `Missed call from ${last.peer} at ${at}`
      : `${missed.length} missed calls, the last from ${last.peer} at ${at}`;
  }
  $('sound').hidden = stats.callView ? stats.callAudioRunning : s.audioRunning;
  $('sim').hidden = !(box && box.simulated);
  // What the box sends (H.264 from the camera, the hardware or the
  // software encoder, with JPEG beside it for the WebSocket path under
  // codec auto; or JPEG) and why: /api/state's "video".
  const v = box && box.video;
  const alongside = v && v.alongside ? ` + ${v.alongside.toUpperCase()}` : '';
  $('codec').textContent = v ? (v.codec === 'h264' ? `H.264 (${v.path})${alongside}` : 'JPEG') : '';
  $('codec').title = v ? [v.encoder, v.reason].filter(Boolean).join(': ') : '';
}

// The media paths: WebRTC first (?path=ws forces the WebSocket path), the
// WebSocket path when WebRTC cannot play here: no RTCPeerConnection, the
// box's video is not H.264 (503), unpaired (401: pairing runs on the
// WebSocket path, then WebRTC is tried again), or no frame within 8 s
// (WebRTC blocked on the way).
const wantPath = params.get('path');
let unpairedFallback = false;

async function startMedia() {
  if (wantPath !== 'ws' && WhepPlayer.supported()) {
    const r = await startWebRTC();
    if (r === true) return;
    stats.fallbackReason = r;
  } else {
    stats.fallbackReason = wantPath === 'ws' ? 'asked for (?path=ws)' : 'no RTCPeerConnection in this browser';
  }
  startWS();
}

function startWS() {
  stats.path = 'websocket';
  stats.latencySource = 'rtp';
  document.body.classList.remove('path-webrtc');
  video.start();
  audio.start();
  render();
}

async function startWebRTC() {
  const p = new WhepPlayer(rtcEl, { token });
  p.muted = stats.audioMuted;
  p.onlatency = (ms) => {
    if (rtc !== p) return;
    stats.latencyLast = ms;
    latency.add(ms);
  };
  p.onframe = () => {
    lastDrawn = performance.now();
    if (p.framesShown === 1) document.body.classList.add('has-video');
  };
  p.onstate = (s) => {
    if (rtc !== p) return;
    stats.videoState = stats.audioState = s;
    if (s === 'live') liveSince = performance.now();
    if (s === 'failed') rtcFailed(p);
    onState();
  };
  rtc = p;
  stats.path = 'webrtc';
  stats.videoState = stats.audioState = State.CONNECTING;
  document.body.classList.add('path-webrtc');
  render();
  let r;
  try { r = await p.start(); } catch (e) { r = { status: -1, error: String(e) }; }
  if (r.ok) {
    p.setVolume(stats.volume);
    const t0 = performance.now();
    while (p.framesShown === 0) {
      if (rtc !== p) return 'the WebRTC session ended before its first frame';
      if (performance.now() - t0 > 8000) {
        p.close();
        rtc = null;
        return 'no frame over WebRTC within 8 s';
      }
      await sleep(100);
    }
    stats.fallbackReason = '';
    return true;
  }
  rtc = null;
  document.body.classList.remove('path-webrtc');
  if (r.status === 401) {
    unpairedFallback = true;
    onUnpaired();
  }
  return `WHEP ${r.status}${r.error ? ` ${r.error}` : ''}`;
}

// A WebRTC session that failed (the box restarted, the Wi-Fi went away) is
// set up again; while the box cannot be reached, every 2 s.
function rtcFailed(p) {
  setTimeout(async () => {
    if (rtc !== p) return;
    rtcBytes += p.bytes || 0;
    p.close();
    rtc = null;
    stats.reconnects++;
    for (;;) {
      const r = await startWebRTC();
      if (r === true) return;
      if (!r.startsWith('WHEP 0') && !r.startsWith('WHEP -1')) {
        stats.fallbackReason = r;
        startWS();
        return;
      }
      stats.videoState = State.RECONNECTING;
      onState();
      await sleep(2000);
    }
  }, 500);
}

function stopMedia() {
  if (rtc) { rtcBytes += rtc.bytes || 0; rtc.close(); rtc = null; }
  video.stop();
  audio.stop();
}

$('mute').addEventListener('click', (e) => {
  e.stopPropagation();
  stats.audioMuted = !stats.audioMuted;
  $('mute').setAttribute('aria-pressed', String(stats.audioMuted));
  $('mute').textContent = stats.audioMuted ? 'Unmute' : 'Mute';
  if (stats.callView) {
    callAudio.setMuted(stats.audioMuted);
    if (callRtc) callRtc.setMuted(stats.audioMuted);
  } else {
    if (rtc) rtc.setMuted(stats.audioMuted);
    audio.setMuted(stats.audioMuted);
  }
  render();
});
$('volume').addEventListener('click', (e) => e.stopPropagation());
$('volume').addEventListener('input', (e) => {
  stats.volume = Number(e.target.value);
  if (rtc) rtc.setVolume(stats.volume);
  audio.setVolume(stats.volume);
  callAudio.setVolume(stats.volume);
  if (callRtc) callRtc.setVolume(stats.volume);
});

// rtcTick folds the browser's WebRTC counters into callboxStats.
async function rtcTick() {
  const p = rtc;
  if (!p) return;
  const st = await p.stats();
  p.bytes = st.bytes + st.audioBytes;
  stats.framesDecoded = st.framesDecoded;
  stats.framesDropped = st.framesDropped;
  stats.framesDrawn = p.framesShown;
  stats.packetsLost = st.packetsLost;
  stats.width = st.width;
  stats.height = st.height;
  stats.decodedWidth = st.width;
  stats.codec = st.codec;
  stats.candidatePair = p.candidatePair;
  stats.latencySource = p.captureSource;
  stats.clockOffsetMs = p.offsetMs;
  stats.clockRttMs = p.rttMs;
  stats.audioPackets = st.audioPackets;
  stats.audioCodec = st.audioCodec;
  stats.audioEnergy = st.audioEnergy;
  stats.audioFramesIn = st.audioPackets;
  stats.audioRunning = !rtcEl.paused && !p.autoplayMuted && st.audioPackets > 0;
  stats.decodePath = 'WebRTC';
  stats.audioPath = 'WebRTC';
}

startMedia();
pollBox();
tick();
setInterval(tick, 500);

// A page nobody looks at (another app in front, the screen locked) would
// keep pulling the whole stream over the phone's radio: after a grace
// period that covers a quick look elsewhere, close both sockets; open them
// again as soon as the page is visible. The AudioContext stays, so sound
// comes back without another tap. ?hiddengrace=ms changes the period (tests).
const hiddenGraceMs = Number(params.get('hiddengrace')) || 10000;
let hiddenTimer = 0;
let hiddenRTC = false; // the WebRTC session was closed while hidden
document.addEventListener('visibilitychange', () => {
  clearTimeout(hiddenTimer);
  if (document.visibilityState === 'hidden') {
    hiddenTimer = setTimeout(() => {
      if (rtc) { rtcBytes += rtc.bytes || 0; rtc.close(); rtc = null; hiddenRTC = true; }
      video.stop();
      audio.socket.stop();
      stats.hiddenPauses++;
    }, hiddenGraceMs);
  } else if (hiddenRTC) {
    hiddenRTC = false;
    startMedia();
  } else if (video.socket.stopped && stats.path === 'websocket') {
    video.start();
    audio.socket.start();
  }
});

// Leaving the page closes the sockets at once, so the relay frees them.
addEventListener('pagehide', () => { stopMedia(); if (stats.callView) stopCallMedia(); });
addEventListener('pageshow', (e) => { if (e.persisted) startMedia(); });
