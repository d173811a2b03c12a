// Unit tests of the page's relay connection (firmware/web/conn.js) against
// a fake WebSocket: hello, Health Checks every hc messages (design S13),
// time queries, unpaired, and reconnecting with capped exponential backoff.
import test, { mock } from 'node:test';
import assert from 'node:assert/strict';
import { MediaSocket, State } from '../../../firmware/web/conn.js';
import { decodeSize } from '../../../firmware/web/video.js';
import { rtpPacket } from './packets.mjs';

class FakeWebSocket {
  static OPEN = 1;
  static all = [];
  constructor(url) {
    this.url = url;
    this.readyState = FakeWebSocket.OPEN;
    this.sent = [];
    FakeWebSocket.all.push(this);
  }
  send(b) { this.sent.push(new Uint8Array(b)); }
  close() { this.readyState = 3; }
  // helpers for the test
  hello(o) { this.onmessage({ data: JSON.stringify(o) }); }
  rtp(seq) { this.onmessage({ data: rtpPacket({ pt: 26, seq, payload: [1, 2, 3] }).buffer }); }
  drop(code = 1006) { this.readyState = 3; this.onclose({ code, reason: '' }); }
  appNames() { return this.sent.map((b) => String.fromCharCode(...b.subarray(8, 12))); }
}
globalThis.WebSocket = FakeWebSocket;

function socket() {
  FakeWebSocket.all = [];
  const s = new MediaSocket('video', (k) => `ws://box/ws/${k}`);
  const states = [];
  const packets = [];
  s.onstate = (st) => states.push(st);
  s.onpacket = (b) => packets.push(b);
  return { s, states, packets, ws: () => FakeWebSocket.all.at(-1) };
}

test('a Health Check goes out after every hc packets, with count and total', () => {
  mock.timers.enable({ apis: ['setTimeout'] });
  try {
    const { s, ws, packets, states } = socket();
    s.start();
    ws().hello({ kind: 'video', codec: 'jpeg', pt: 26, clock: 90000, hc: 4 });
    assert.equal(s.state, State.LIVE);
    for (let i = 0; i < 10; i++) ws().rtp(100 + i);
    assert.equal(packets.length, 10);
    const hcs = ws().sent.filter((b) => String.fromCharCode(...b.subarray(8, 12)) === 'CBHC');
    assert.equal(hcs.length, 2);
    const dv = new DataView(hcs[1].buffer);
    assert.equal(dv.getUint32(12), 4); // count
    assert.equal(dv.getUint32(16), 8); // total on this connection
    assert.equal(s.healthChecksSent, 2);
    assert.ok(ws().appNames().includes('CBTQ'), 'a time query is sent on connect');
    assert.deepEqual(states, [State.CONNECTING, State.LIVE]);
    s.stop();
  } finally {
    mock.timers.reset();
  }
});

test('sequence gaps are counted as packets the relay dropped', () => {
  const { s, ws } = socket();
  s.start();
  ws().hello({ hc: 100 });
  ws().rtp(65534);
  ws().rtp(65535);
  ws().rtp(3); // wraps: 0, 1, 2 missing
  assert.equal(s.lost, 3);
  s.stop();
});

test('reconnects with doubling backoff capped at 5 s, and resets once live', () => {
  mock.timers.enable({ apis: ['setTimeout'] });
  try {
    const { s, ws } = socket();
    s.start();
    const waits = [];
    for (let i = 0; i < 7; i++) {
      const n = FakeWebSocket.all.length;
      ws().drop();
      assert.equal(s.state, State.RECONNECTING);
      let waited = 0;
      while (FakeWebSocket.all.length === n) { mock.timers.tick(50); waited += 50; }
      waits.push(waited);
    }
    assert.deepEqual(waits, [250, 500, 1000, 2000, 4000, 5000, 5000]);
    ws().hello({ hc: 8 });
    assert.equal(s.state, State.LIVE);
    ws().drop();
    let waited = 0;
    const n = FakeWebSocket.all.length;
    while (FakeWebSocket.all.length === n) { mock.timers.tick(50); waited += 50; }
    assert.equal(waited, 250);
    s.stop();
    assert.equal(s.state, State.STOPPED);
  } finally {
    mock.timers.reset();
  }
});

test('an unpaired hello waits for pairing, and reconnectNow uses the new token at once', () => {
  mock.timers.enable({ apis: ['setTimeout'] });
  try {
    let token = '';
    FakeWebSocket.all = [];
    const s = new MediaSocket('audio', (k) => `ws://box/ws/${k}${token ? `?token=${token}` : ''}`);
    let unpaired = 0;
    s.onunpaired = () => unpaired++;
    s.start();
    const ws = FakeWebSocket.all[0];
    ws.hello({ error: 'unpaired' });
    ws.drop(1008);
    assert.equal(unpaired, 1);
    assert.equal(s.state, State.UNPAIRED);
    token = 'abc';
    s.reconnectNow();
    assert.equal(FakeWebSocket.all.length, 2);
    assert.equal(FakeWebSocket.all[1].url, 'ws://box/ws/audio?token=abc');
    s.stop();
  } finally {
    mock.timers.reset();
  }
});

test('decodeSize fits the frame to the view in eighths, never above full size', () => {
  assert.equal(decodeSize(1280, 720, { width: 2000, height: 2000 }), null);
  assert.equal(decodeSize(1280, 720, null), null);
  assert.deepEqual(decodeSize(1280, 720, { width: 412, height: 915 }), { width: 480, height: 270 }); // 3/8
  assert.deepEqual(decodeSize(1280, 720, { width: 640, height: 360 }), { width: 640, height: 360 }); // 4/8
  assert.deepEqual(decodeSize(1280, 720, { width: 10, height: 10 }), { width: 160, height: 90 }); // 1/8 floor
});
