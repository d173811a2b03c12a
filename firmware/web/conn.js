// One WebSocket to the box's relay for one media kind (docs/protocol.md):
// the JSON hello, RTP in, Health Checks and time queries out, time replies
// in, and reconnecting with backoff when the box goes away.

import { isRTCP, parseTimeReply, healthCheck, timeQuery, ClockSync, now } from './rtp.js';

// Backoff between reconnect attempts: doubled each failure, capped so that a
// box that comes back after a restart is found again within seconds.
const BACKOFF_MIN_MS = 250;
const BACKOFF_MAX_MS = 5000;
// Time queries: a quick burst on connect so latency figures are right from
// the first frames, then one every few seconds to follow drift.
const SYNC_BURST = 5;
const SYNC_BURST_GAP_MS = 100;
const SYNC_PERIOD_MS = 3000;

// MediaSocket states, shown on the page.
export const State = Object.freeze({
  CONNECTING: 'connecting',
  LIVE: 'live',
  RECONNECTING: 'reconnecting',
  UNPAIRED: 'waiting for pairing',
  STOPPED: 'stopped',
});

// MediaSocket keeps one connection open until stop(). Callbacks:
//   onhello(hello)     the relay accepted us (hello is its JSON)
//   onpacket(pkt)      one RTP packet as an ArrayBuffer
//   onstate(state, detail)
//   onunpaired()       the relay said {"error":"unpaired"}
// url(kind) is called before each attempt, and opts.token() (when given)
// as each connection opens: its answer is sent as the first message,
// {"token":"..."}, for a URL that says ?auth=message (docs/protocol.md), so
// a token obtained meanwhile is used on the next attempt and never travels
// in a URL.
export class MediaSocket {
  constructor(kind, urlFor, opts = {}) {
    this.kind = kind;
    this.urlFor = urlFor;
    this.clock = opts.clock || new ClockSync();
    this.tokenFor = opts.token || null;
    this.hcDelayMs = opts.hcDelayMs || 0; // tests: hold Health Checks back to act as a slow client
    this.onhello = () => {};
    this.onpacket = () => {};
    this.onstate = () => {};
    this.onunpaired = () => {};
    this.state = State.STOPPED;
    this.ws = null;
    this.backoff = BACKOFF_MIN_MS;
    this.retryTimer = 0;
    this.syncTimer = 0;
    this.hc = 0;
    this.sinceHC = 0;
    this.received = 0; // RTP messages on this connection
    this.bytes = 0; // RTP bytes, all connections
    this.healthChecksSent = 0;
    this.connects = 0;
    this.lastSeq = -1;
    this.lost = 0; // RTP sequence gaps: packets the relay dropped for us
    this.stopped = true;
  }

  start() {
    if (!this.stopped) return;
    this.stopped = false;
    this.connect(State.CONNECTING);
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.retryTimer);
    clearTimeout(this.syncTimer);
    if (this.ws) {
      this.ws.onclose = this.ws.onerror = this.ws.onmessage = null;
      try { this.ws.close(); } catch { /* already closed */ }
      this.ws = null;
    }
    this.setState(State.STOPPED);
  }

  // reconnectNow skips the backoff wait, e.g. right after pairing succeeded.
  reconnectNow() {
    if (this.stopped) return;
    clearTimeout(this.retryTimer);
    this.backoff = BACKOFF_MIN_MS;
    if (!this.ws) this.connect(State.CONNECTING);
  }

  setState(s, detail = '') {
    if (s === this.state) return;
    this.state = s;
    this.onstate(s, detail);
  }

  connect(state) {
    this.setState(state);
    let ws;
    try {
      ws = new WebSocket(this.urlFor(this.kind));
    } catch (e) {
      this.retry(String(e));
      return;
    }
    ws.binaryType = 'arraybuffer';
    if (this.tokenFor) {
      ws.onopen = () => ws.send(JSON.stringify({ token: this.tokenFor() || '' }));
    }
    this.ws = ws;
    this.hc = 0;
    this.sinceHC = 0;
    this.received = 0;
    this.lastSeq = -1;
    let unpaired = false;
    ws.onmessage = (e) => {
      if (typeof e.data === 'string') {
        let msg;
        try { msg = JSON.parse(e.data); } catch { msg = { error: `bad hello: ${e.data.slice(0, 80)}` }; }
        if (msg.error) {
          if (msg.error === 'unpaired') {
            unpaired = true;
            this.setState(State.UNPAIRED);
            this.onunpaired();
          } else {
            this.setState(State.RECONNECTING, msg.error);
          }
          return;
        }
        this.hc = Math.max(1, msg.hc | 0);
        this.backoff = BACKOFF_MIN_MS;
        this.connects++;
        this.setState(State.LIVE);
        this.onhello(msg);
        this.startSync(ws);
        return;
      }
      const buf = e.data;
      const view = new DataView(buf);
      if (isRTCP(view)) {
        let r = null;
        try { r = parseTimeReply(view); } catch { r = null; }
        if (r) this.clock.add(r.clientMs, now(), r.boxMs);
        return;
      }
      this.received++;
      this.bytes += buf.byteLength;
      if (view.byteLength >= 4) {
        const seq = view.getUint16(2);
        if (this.lastSeq >= 0) {
          const gap = (seq - this.lastSeq - 1) & 0xffff;
          if (gap > 0 && gap < 0x8000) this.lost += gap;
        }
        this.lastSeq = seq;
      }
      this.onpacket(buf);
      // Design S13: a Health Check for every hc messages received, telling
      // the relay this page really is keeping up.
      if (this.hc > 0 && ++this.sinceHC >= this.hc) {
        const msg = healthCheck(this.sinceHC, this.received);
        this.sinceHC = 0;
        this.sendHC(ws, msg);
      }
    };
    ws.onerror = () => {}; // onclose follows with the details that exist
    ws.onclose = (e) => {
      if (this.ws !== ws) return;
      this.ws = null;
      clearTimeout(this.syncTimer);
      if (this.stopped) return;
      if (unpaired) {
        // The pairing flow calls reconnectNow() once it has a token; until
        // then look again now and then, in case the box was paired otherwise.
        clearTimeout(this.retryTimer);
        this.retryTimer = setTimeout(() => this.connect(State.UNPAIRED), BACKOFF_MAX_MS);
        return;
      }
      this.retry(e.reason || `closed (${e.code})`);
    };
  }

  sendHC(ws, msg) {
    const send = () => {
      if (ws.readyState !== WebSocket.OPEN) return;
      ws.send(msg);
      this.healthChecksSent++;
    };
    if (this.hcDelayMs > 0) setTimeout(send, this.hcDelayMs);
    else send();
  }

  startSync(ws) {
    let n = 0;
    const tick = () => {
      if (ws.readyState !== WebSocket.OPEN) return;
      ws.send(timeQuery(now()));
      n++;
      this.syncTimer = setTimeout(tick, n < SYNC_BURST ? SYNC_BURST_GAP_MS : SYNC_PERIOD_MS);
    };
    tick();
  }

  retry(detail) {
    if (this.stopped) return;
    this.setState(State.RECONNECTING, detail);
    const wait = this.backoff;
    this.backoff = Math.min(this.backoff * 2, BACKOFF_MAX_MS);
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => this.connect(State.RECONNECTING), wait);
  }
}
