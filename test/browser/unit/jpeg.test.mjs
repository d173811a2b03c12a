// Unit tests of RTP/JPEG reassembly (firmware/web/jpeg.js). The scan data
// here is arbitrary bytes: the assembler never decodes it, and the real
// decode round trip through a JPEG decoder is TestJPEGRebuildDecodes (Go).
import test from 'node:test';
import assert from 'node:assert/strict';
import { JpegAssembler, makeHeaders, makeTables, parsePayloadHeader } from '../../../firmware/web/jpeg.js';
import { parseRTP } from '../../../firmware/web/rtp.js';
import { jpegPackets, parseJFIF, rtpPacket } from './packets.mjs';

function image({ width = 64, height = 48, type = 1, dri = 0, scanBytes = 5000 } = {}) {
  const scan = new Uint8Array(scanBytes);
  for (let i = 0; i < scan.length; i++) scan[i] = (i * 7 + 3) & 0x7f; // no 0xFF: no markers inside
  const tables = new Uint8Array(128);
  for (let i = 0; i < 128; i++) tables[i] = 1 + (i % 50);
  return { width, height, type, dri, scan, tables };
}

function collect() {
  const frames = [];
  const a = new JpegAssembler((f) => frames.push(f));
  const feed = (pkts) => { for (const p of pkts) a.push(parseRTP(p.buffer), p); };
  return { a, frames, feed };
}

test('a complete frame is rebuilt into JFIF with its tables, size and scan', () => {
  const img = image();
  const { a, frames, feed } = collect();
  feed(jpegPackets(img, { size: 700, captureMs: 1.7e12 }));
  assert.equal(frames.length, 1);
  assert.equal(a.incomplete, 0);
  const f = frames[0];
  assert.equal(f.width, 64);
  assert.equal(f.height, 48);
  assert.equal(f.captureTime, 1.7e12);
  assert.deepEqual([...f.jpeg.subarray(0, 2)], [0xff, 0xd8]);
  assert.deepEqual([...f.jpeg.subarray(-2)], [0xff, 0xd9]);
  const back = parseJFIF(f.jpeg);
  assert.equal(back.width, 64);
  assert.equal(back.height, 48);
  assert.equal(back.type, 1);
  assert.deepEqual(back.tables, img.tables);
  assert.deepEqual(back.scan.subarray(0, img.scan.length), img.scan);
});

test('types 0 and 64 (restart markers) give 4:2:2 sampling and a DRI segment', () => {
  const img = image({ type: 0, dri: 4 });
  const { frames, feed } = collect();
  feed(jpegPackets(img));
  assert.equal(frames.length, 1);
  const back = parseJFIF(frames[0].jpeg);
  assert.equal(back.type, 0);
  assert.equal(back.dri, 4);
});

test('packets out of order are put back in order', () => {
  const img = image();
  const { a, frames, feed } = collect();
  const pkts = jpegPackets(img, { size: 500 });
  const marker = pkts.pop();
  pkts.reverse();
  feed([...pkts, marker]);
  assert.equal(frames.length, 1);
  assert.equal(a.incomplete, 0);
  assert.deepEqual(parseJFIF(frames[0].jpeg).scan.subarray(0, img.scan.length), img.scan);
});

test('a frame with a missing fragment is counted and never shown', () => {
  const img = image();
  const { a, frames, feed } = collect();
  const pkts = jpegPackets(img, { size: 500, ts: 1 });
  pkts.splice(3, 1);
  feed(pkts);
  assert.equal(frames.length, 0);
  assert.equal(a.incomplete, 1);
  assert.match(a.lastError, /gap at offset/);
  // The next whole frame is shown.
  feed(jpegPackets(img, { size: 500, ts: 2 }));
  assert.equal(frames.length, 1);
});

test('a frame whose marker packet never came is counted when the next starts', () => {
  const img = image();
  const { a, frames, feed } = collect();
  const first = jpegPackets(img, { ts: 10 });
  first.pop();
  feed(first);
  feed(jpegPackets(img, { ts: 20 }));
  assert.equal(frames.length, 1);
  assert.equal(frames[0].timestamp, 20);
  assert.equal(a.incomplete, 1);
});

test('a frame without its first fragment is counted', () => {
  const img = image();
  const { a, frames, feed } = collect();
  feed(jpegPackets(img, { size: 500 }).slice(1));
  assert.equal(frames.length, 0);
  assert.equal(a.incomplete, 1);
});

test('Q<128 tables come from RFC 2435 appendix A', () => {
  const t50 = makeTables(50);
  assert.equal(t50[0], 16); // Q=50 is the base table itself
  assert.equal(t50[64], 17);
  const t90 = makeTables(90);
  assert.equal(t90[0], 3); // (16*20+50)/100
  const t10 = makeTables(10);
  assert.equal(t10[0], 80); // scale 500
  assert.equal(makeTables(1)[127], 255); // clamped
});

test('unsupported types and malformed payloads are rejected with a reason', () => {
  assert.throws(() => parsePayloadHeader(new Uint8Array(5)), /shorter than the 8-byte header/);
  assert.throws(() => parsePayloadHeader(new Uint8Array([0, 0, 0, 0, 1, 0, 8, 8])), /Q=0/);
  assert.throws(() => parsePayloadHeader(new Uint8Array([0, 0, 0, 0, 1, 255, 8, 8, 0, 0, 0, 128, 1])), /run past/);
  assert.throws(() => makeHeaders(1, 8, 8, new Uint8Array(10), 0, 0), /10 bytes of quantization tables/);
  const { a, frames } = collect();
  const p = rtpPacket({ pt: 26, marker: true, payload: [0, 0, 0, 0, 3, 50, 8, 8, 1, 2] });
  a.push(parseRTP(p.buffer), p);
  assert.equal(frames.length, 0);
  assert.equal(a.incomplete, 1);
  assert.match(a.lastError, /unsupported RTP\/JPEG type 3/);
});

test('a Q>=128 frame without in-band tables reuses the ones last sent for that Q', () => {
  const img = image();
  const { a, frames, feed } = collect();
  feed(jpegPackets(img, { ts: 1 }));
  // Same image, tables left out (length 0) on the first packet.
  const p = jpegPackets(img, { ts: 2 });
  const b = p[0];
  const v = parseRTP(b.buffer);
  const hdrEnd = v.payloadOffset + 8;
  const stripped = new Uint8Array(b.length - 128);
  stripped.set(b.subarray(0, hdrEnd + 4));
  stripped[hdrEnd + 2] = 0; stripped[hdrEnd + 3] = 0;
  stripped.set(b.subarray(hdrEnd + 4 + 128), hdrEnd + 4);
  feed([stripped, ...p.slice(1)]);
  assert.equal(a.incomplete, 0);
  assert.equal(frames.length, 2);
  assert.deepEqual(parseJFIF(frames[1].jpeg).tables, img.tables);
});
