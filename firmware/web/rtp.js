// RTP (RFC 3550) parsing and the callbox RTCP APP messages of docs/protocol.md.
//
// Everything here works on ArrayBuffers straight off the WebSocket and
// allocates only the small result objects: the page parses a few thousand
// packets a second at 720p30 and the phone's main thread is the bottleneck.

// Seconds between the NTP epoch (1900) and the Unix epoch (1970).
const NTP_UNIX_OFFSET = 2208988800;
const TWO_32 = 4294967296;

// The abs-capture-time extension ID the box uses (RFC 8285 one-byte form).
export const ABS_CAPTURE_TIME_ID = 1;

// isRTCP tells RTCP from RTP on a multiplexed stream (RFC 5761 section 4):
// RTCP packet types 192..223 fall where RTP's marker+payload-type byte
// never lands for the payload types callbox uses.
export function isRTCP(view) {
  if (view.byteLength < 2) return false;
  const pt = view.getUint8(1);
  return pt >= 192 && pt <= 223;
}

// parseRTP returns the header fields and the payload bounds of one RTP
// packet, or throws an Error that says what is wrong with it. captureTime is
// the abs-capture-time as Unix milliseconds on the box's clock, or -1 when
// the packet has none.
export function parseRTP(buf) {
  const view = buf instanceof DataView ? buf : new DataView(buf);
  const n = view.byteLength;
  if (n < 12) throw new Error(`rtp: packet of ${n} bytes is shorter than the 12-byte header`);
  const b0 = view.getUint8(0);
  if (b0 >> 6 !== 2) throw new Error(`rtp: version ${b0 >> 6}, want 2`);
  const padding = (b0 & 0x20) !== 0;
  const ext = (b0 & 0x10) !== 0;
  const cc = b0 & 0x0f;
  const b1 = view.getUint8(1);
  let off = 12 + 4 * cc;
  if (off > n) throw new Error('rtp: CSRC list runs past the packet');
  let captureTime = -1;
  if (ext) {
    if (off + 4 > n) throw new Error('rtp: extension header runs past the packet');
    const profile = view.getUint16(off);
    const words = view.getUint16(off + 2);
    const extStart = off + 4;
    const extEnd = extStart + 4 * words;
    if (extEnd > n) throw new Error('rtp: extension runs past the packet');
    if (profile === 0xbede) captureTime = findAbsCaptureTime(view, extStart, extEnd);
    off = extEnd;
  }
  let end = n;
  if (padding) {
    const pad = view.getUint8(n - 1);
    if (pad === 0 || off + pad > n) throw new Error(`rtp: bad padding length ${pad}`);
    end = n - pad;
  }
  return {
    marker: (b1 & 0x80) !== 0,
    payloadType: b1 & 0x7f,
    seq: view.getUint16(2),
    timestamp: view.getUint32(4),
    ssrc: view.getUint32(8),
    captureTime,
    payloadOffset: off,
    payloadLength: end - off,
  };
}

// findAbsCaptureTime walks RFC 8285 one-byte elements for ID 1.
function findAbsCaptureTime(view, start, end) {
  let i = start;
  while (i < end) {
    const b = view.getUint8(i);
    if (b === 0) { i++; continue; } // padding byte between elements
    const id = b >> 4;
    const len = (b & 0x0f) + 1;
    if (id === 15) break; // reserved: stop parsing (RFC 8285 section 4.2)
    if (i + 1 + len > end) throw new Error('rtp: header extension element runs past the extension');
    if (id === ABS_CAPTURE_TIME_ID) {
      // 8 bytes of NTP time, optionally followed by 8 bytes of clock offset.
      if (len < 8) throw new Error(`rtp: abs-capture-time of ${len} bytes, want 8 or 16`);
      return ntpToUnixMs(view.getUint32(i + 1), view.getUint32(i + 5));
    }
    i += 1 + len;
  }
  return -1;
}

// ntpToUnixMs converts a 64-bit NTP timestamp (UQ32.32 seconds since 1900).
export function ntpToUnixMs(sec, frac) {
  return (sec - NTP_UNIX_OFFSET) * 1000 + (frac / TWO_32) * 1000;
}

// unixMsToNTP is the inverse, as [seconds, fraction].
export function unixMsToNTP(ms) {
  const s = Math.floor(ms / 1000);
  const frac = Math.floor(((ms - s * 1000) / 1000) * TWO_32);
  return [s + NTP_UNIX_OFFSET, Math.min(frac, TWO_32 - 1)];
}

// RTCP APP (RFC 3550 section 6.7): V=2, subtype, PT 204, length in 32-bit
// words minus one, SSRC (0: the page has no stream), 4-char name, data.
function app(name, dataBytes) {
  const buf = new ArrayBuffer(12 + dataBytes);
  const v = new DataView(buf);
  v.setUint8(0, 0x80); // V=2, P=0, subtype 0
  v.setUint8(1, 204);
  v.setUint16(2, (12 + dataBytes) / 4 - 1);
  v.setUint32(4, 0);
  for (let i = 0; i < 4; i++) v.setUint8(8 + i, name.charCodeAt(i));
  return { buf, v };
}

// healthCheck builds CBHC: "I have received another count messages".
export function healthCheck(count, total) {
  const { buf, v } = app('CBHC', 8);
  v.setUint32(12, count >>> 0);
  v.setUint32(16, total >>> 0);
  return buf;
}

// timeQuery builds CBTQ carrying the page's clock (Unix ms) as NTP.
export function timeQuery(clientMs) {
  const { buf, v } = app('CBTQ', 8);
  const [s, f] = unixMsToNTP(clientMs);
  v.setUint32(12, s);
  v.setUint32(16, f);
  return buf;
}

// parseTimeReply returns {clientMs, boxMs} from a CBTR packet, null for any
// other RTCP packet, or throws for a malformed CBTR.
export function parseTimeReply(buf) {
  const v = buf instanceof DataView ? buf : new DataView(buf);
  if (v.byteLength < 12 || v.getUint8(1) !== 204) return null;
  const name = String.fromCharCode(v.getUint8(8), v.getUint8(9), v.getUint8(10), v.getUint8(11));
  if (name !== 'CBTR') return null;
  if (v.byteLength < 28) throw new Error(`rtcp: CBTR of ${v.byteLength} bytes, want 28`);
  return {
    clientMs: ntpToUnixMs(v.getUint32(12), v.getUint32(16)),
    boxMs: ntpToUnixMs(v.getUint32(20), v.getUint32(24)),
  };
}

// ClockSync estimates the box's clock offset (box - page, in ms) from time
// query round trips. The sample with the smallest round trip bounds the
// error best (the reply's true time lies within half the RTT), so the
// estimate is the offset of the min-RTT sample among the recent ones; old
// samples age out so that drift between the clocks is followed.
export class ClockSync {
  constructor(keep = 16) {
    this.keep = keep;
    this.samples = [];
    this.offset = 0;
    this.rtt = Infinity;
    this.valid = false;
  }

  // add records one reply; t1 is the page's clock when it arrived.
  add(t0, t1, tb) {
    const rtt = t1 - t0;
    if (!(rtt >= 0) || !Number.isFinite(tb)) return;
    this.samples.push({ rtt, offset: tb - (t0 + t1) / 2 });
    if (this.samples.length > this.keep) this.samples.shift();
    let best = this.samples[0];
    for (const s of this.samples) if (s.rtt < best.rtt) best = s;
    this.offset = best.offset;
    this.rtt = best.rtt;
    this.valid = true;
  }

  // toLocal maps a box-clock time to the page's clock.
  toLocal(boxMs) {
    return boxMs - this.offset;
  }
}

// now is the page's clock in Unix ms with sub-millisecond resolution, the
// clock every latency in the page is measured on: the monotonic clock
// anchored once to the wall clock (performance.timeOrigin, or Date.now()
// where a browser lacks it), so that wall-clock steps do not show up as
// latency jumps.
const origin = typeof performance.timeOrigin === 'number' && performance.timeOrigin > 0
  ? performance.timeOrigin
  : Date.now() - performance.now();
export function now() {
  return origin + performance.now();
}
