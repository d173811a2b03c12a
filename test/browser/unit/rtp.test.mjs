// Unit tests of the page's RTP/RTCP code (firmware/web/rtp.js) on packets
// built byte by byte here, as docs/protocol.md describes them.
import test from 'node:test';
import assert from 'node:assert/strict';
import {
  parseRTP, isRTCP, healthCheck, timeQuery, parseTimeReply, ClockSync, ntpToUnixMs, unixMsToNTP,
} from '../../../firmware/web/rtp.js';
import { rtpPacket } from './packets.mjs';

test('parseRTP reads the header, marker and payload bounds', () => {
  const pkt = rtpPacket({ pt: 26, seq: 65535, ts: 0xdeadbeef, ssrc: 0x01020304, marker: true, payload: [9, 8, 7] });
  const p = parseRTP(pkt.buffer);
  assert.equal(p.payloadType, 26);
  assert.equal(p.marker, true);
  assert.equal(p.seq, 65535);
  assert.equal(p.timestamp, 0xdeadbeef);
  assert.equal(p.ssrc, 0x01020304);
  assert.equal(p.captureTime, -1);
  assert.deepEqual([...pkt.subarray(p.payloadOffset, p.payloadOffset + p.payloadLength)], [9, 8, 7]);
});

test('parseRTP finds abs-capture-time (ID 1) among other one-byte extensions', () => {
  const ms = Date.UTC(2026, 10, 24, 12, 0, 0) + 123.25;
  const pkt = rtpPacket({ pt: 0, captureMs: ms, otherExt: true, payload: [1, 2, 3, 4], csrc: 2 });
  const p = parseRTP(pkt.buffer);
  assert.ok(Math.abs(p.captureTime - ms) < 0.001, `captureTime ${p.captureTime} want ${ms}`);
  assert.equal(p.payloadLength, 4);
  assert.equal(pkt[p.payloadOffset], 1);
});

test('parseRTP strips padding', () => {
  const pkt = rtpPacket({ pt: 0, payload: [5, 6], padding: 3 });
  const p = parseRTP(pkt.buffer);
  assert.equal(p.payloadLength, 2);
});

test('parseRTP rejects malformed packets with an error, never a crash', () => {
  assert.throws(() => parseRTP(new ArrayBuffer(5)), /shorter than the 12-byte header/);
  const v1 = rtpPacket({ pt: 0, payload: [1] });
  v1[0] = (v1[0] & 0x3f) | 0x40;
  assert.throws(() => parseRTP(v1.buffer), /version 1/);
  const ext = rtpPacket({ pt: 0, captureMs: 1e12, payload: [] });
  assert.throws(() => parseRTP(ext.buffer.slice(0, 18)), /extension runs past/);
  const pad = rtpPacket({ pt: 0, payload: [1], padding: 1 });
  pad[pad.length - 1] = 200;
  assert.throws(() => parseRTP(pad.buffer), /bad padding/);
});

test('RTP and RTCP are told apart on one stream', () => {
  assert.equal(isRTCP(new DataView(healthCheck(8, 8))), true);
  assert.equal(isRTCP(new DataView(rtpPacket({ pt: 26, marker: true, payload: [] }).buffer)), false);
  assert.equal(isRTCP(new DataView(rtpPacket({ pt: 0, payload: [] }).buffer)), false);
});

test('CBHC is an RTCP APP packet with count and total', () => {
  const b = new Uint8Array(healthCheck(8, 4096));
  assert.deepEqual([...b], [
    0x80, 204, 0, 4, // V=2 subtype 0, APP, 5 words
    0, 0, 0, 0, // SSRC 0
    0x43, 0x42, 0x48, 0x43, // "CBHC"
    0, 0, 0, 8,
    0, 0, 0x10, 0,
  ]);
});

test('CBTQ carries the page clock as NTP and CBTR is parsed back', () => {
  const t0 = 1764000000123.5;
  const q = new DataView(timeQuery(t0));
  assert.equal(q.byteLength, 20);
  assert.equal(q.getUint16(2), 4);
  assert.equal(String.fromCharCode(q.getUint8(8), q.getUint8(9), q.getUint8(10), q.getUint8(11)), 'CBTQ');
  assert.ok(Math.abs(ntpToUnixMs(q.getUint32(12), q.getUint32(16)) - t0) < 0.001);

  const r = new DataView(new ArrayBuffer(28));
  r.setUint8(0, 0x80); r.setUint8(1, 204); r.setUint16(2, 6);
  [..."CBTR"].forEach((c, i) => r.setUint8(8 + i, c.charCodeAt(0)));
  r.setUint32(12, q.getUint32(12)); r.setUint32(16, q.getUint32(16));
  const [bs, bf] = unixMsToNTP(t0 + 5000);
  r.setUint32(20, bs); r.setUint32(24, bf);
  const tr = parseTimeReply(r);
  assert.ok(Math.abs(tr.clientMs - t0) < 0.001);
  assert.ok(Math.abs(tr.boxMs - (t0 + 5000)) < 0.001);
  assert.equal(parseTimeReply(new DataView(healthCheck(1, 1))), null);
  assert.throws(() => parseTimeReply(new DataView(r.buffer.slice(0, 20))), /CBTR of 20 bytes/);
});

test('ClockSync takes the offset of the minimum-RTT sample', () => {
  const c = new ClockSync(4);
  // Box clock is 1000 ms ahead. Sample 1: symmetric 10 ms RTT.
  c.add(0, 10, 1005);
  assert.equal(c.offset, 1000);
  // Sample 2: 50 ms RTT with an asymmetric delay: a worse estimate, ignored.
  c.add(100, 150, 1140);
  assert.equal(c.offset, 1000);
  assert.equal(c.rtt, 10);
  // Samples age out: after 4 more the 10 ms one is gone.
  for (let i = 0; i < 4; i++) c.add(200 + i, 222 + i, 1211 + i + 1);
  assert.equal(c.rtt, 22);
  assert.equal(c.offset, 1001);
  assert.equal(c.toLocal(5000), 3999);
  // Nonsense (negative RTT) is ignored.
  c.add(10, 5, 0);
  assert.equal(c.rtt, 22);
});
