// RTP/JPEG (RFC 2435) depacketization: fragments are reassembled by RTP
// timestamp and fragment offset, checked for completeness, and given back
// the JFIF headers that the payload format strips (RFC 2435 appendices A
// and B), so the browser's own JPEG decoder can show them.

// Standard Huffman tables (ITU T.81 Annex K.3), which RFC 2435 types 0/1
// imply. Counts of codes of each length 1..16, then the symbols.
const LUM_DC_BITS = [0, 1, 5, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0];
const LUM_DC_VALS = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11];
const LUM_AC_BITS = [0, 2, 1, 3, 3, 2, 4, 3, 5, 5, 4, 4, 0, 0, 1, 0x7d];
const LUM_AC_VALS = [
  0x01, 0x02, 0x03, 0x00, 0x04, 0x11, 0x05, 0x12, 0x21, 0x31, 0x41, 0x06, 0x13, 0x51, 0x61, 0x07,
  0x22, 0x71, 0x14, 0x32, 0x81, 0x91, 0xa1, 0x08, 0x23, 0x42, 0xb1, 0xc1, 0x15, 0x52, 0xd1, 0xf0,
  0x24, 0x33, 0x62, 0x72, 0x82, 0x09, 0x0a, 0x16, 0x17, 0x18, 0x19, 0x1a, 0x25, 0x26, 0x27, 0x28,
  0x29, 0x2a, 0x34, 0x35, 0x36, 0x37, 0x38, 0x39, 0x3a, 0x43, 0x44, 0x45, 0x46, 0x47, 0x48, 0x49,
  0x4a, 0x53, 0x54, 0x55, 0x56, 0x57, 0x58, 0x59, 0x5a, 0x63, 0x64, 0x65, 0x66, 0x67, 0x68, 0x69,
  0x6a, 0x73, 0x74, 0x75, 0x76, 0x77, 0x78, 0x79, 0x7a, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89,
  0x8a, 0x92, 0x93, 0x94, 0x95, 0x96, 0x97, 0x98, 0x99, 0x9a, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6, 0xa7,
  0xa8, 0xa9, 0xaa, 0xb2, 0xb3, 0xb4, 0xb5, 0xb6, 0xb7, 0xb8, 0xb9, 0xba, 0xc2, 0xc3, 0xc4, 0xc5,
  0xc6, 0xc7, 0xc8, 0xc9, 0xca, 0xd2, 0xd3, 0xd4, 0xd5, 0xd6, 0xd7, 0xd8, 0xd9, 0xda, 0xe1, 0xe2,
  0xe3, 0xe4, 0xe5, 0xe6, 0xe7, 0xe8, 0xe9, 0xea, 0xf1, 0xf2, 0xf3, 0xf4, 0xf5, 0xf6, 0xf7, 0xf8,
  0xf9, 0xfa,
];
const CHM_DC_BITS = [0, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0];
const CHM_DC_VALS = LUM_DC_VALS;
const CHM_AC_BITS = [0, 2, 1, 2, 4, 4, 3, 4, 7, 5, 4, 4, 0, 1, 2, 0x77];
const CHM_AC_VALS = [
  0x00, 0x01, 0x02, 0x03, 0x11, 0x04, 0x05, 0x21, 0x31, 0x06, 0x12, 0x41, 0x51, 0x07, 0x61, 0x71,
  0x13, 0x22, 0x32, 0x81, 0x08, 0x14, 0x42, 0x91, 0xa1, 0xb1, 0xc1, 0x09, 0x23, 0x33, 0x52, 0xf0,
  0x15, 0x62, 0x72, 0xd1, 0x0a, 0x16, 0x24, 0x34, 0xe1, 0x25, 0xf1, 0x17, 0x18, 0x19, 0x1a, 0x26,
  0x27, 0x28, 0x29, 0x2a, 0x35, 0x36, 0x37, 0x38, 0x39, 0x3a, 0x43, 0x44, 0x45, 0x46, 0x47, 0x48,
  0x49, 0x4a, 0x53, 0x54, 0x55, 0x56, 0x57, 0x58, 0x59, 0x5a, 0x63, 0x64, 0x65, 0x66, 0x67, 0x68,
  0x69, 0x6a, 0x73, 0x74, 0x75, 0x76, 0x77, 0x78, 0x79, 0x7a, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87,
  0x88, 0x89, 0x8a, 0x92, 0x93, 0x94, 0x95, 0x96, 0x97, 0x98, 0x99, 0x9a, 0xa2, 0xa3, 0xa4, 0xa5,
  0xa6, 0xa7, 0xa8, 0xa9, 0xaa, 0xb2, 0xb3, 0xb4, 0xb5, 0xb6, 0xb7, 0xb8, 0xb9, 0xba, 0xc2, 0xc3,
  0xc4, 0xc5, 0xc6, 0xc7, 0xc8, 0xc9, 0xca, 0xd2, 0xd3, 0xd4, 0xd5, 0xd6, 0xd7, 0xd8, 0xd9, 0xda,
  0xe2, 0xe3, 0xe4, 0xe5, 0xe6, 0xe7, 0xe8, 0xe9, 0xea, 0xf2, 0xf3, 0xf4, 0xf5, 0xf6, 0xf7, 0xf8,
  0xf9, 0xfa,
];

// Base quantization tables of RFC 2435 appendix A (ITU T.81 Annex K.1), in
// zig-zag order as DQT carries them.
const LUMA_Q = [
  16, 11, 12, 14, 12, 10, 16, 14, 13, 14, 18, 17, 16, 19, 24, 40,
  26, 24, 22, 22, 24, 49, 35, 37, 29, 40, 58, 51, 61, 60, 57, 51,
  56, 55, 64, 72, 92, 78, 64, 68, 87, 69, 55, 56, 80, 109, 81, 87,
  95, 98, 103, 104, 103, 62, 77, 113, 121, 112, 100, 120, 92, 101, 103, 99,
];
const CHROMA_Q = [
  17, 18, 18, 24, 21, 24, 47, 26, 26, 47, 99, 66, 56, 66, 99, 99,
  99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99,
  99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99,
  99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99,
];

// makeTables is RFC 2435 appendix A's MakeTables: the luma and chroma
// tables for a Q factor of 1..127, as one 128-byte array.
export function makeTables(q) {
  const factor = Math.min(Math.max(q, 1), 99);
  const scale = q < 50 ? Math.floor(5000 / factor) : 200 - factor * 2;
  const out = new Uint8Array(128);
  for (let i = 0; i < 64; i++) {
    out[i] = Math.min(Math.max(Math.floor((LUMA_Q[i] * scale + 50) / 100), 1), 255);
    out[64 + i] = Math.min(Math.max(Math.floor((CHROMA_Q[i] * scale + 50) / 100), 1), 255);
  }
  return out;
}

// makeHeaders is RFC 2435 appendix B's MakeHeaders: SOI, DQT, DRI, SOF0,
// DHT and SOS for an image of the given type, size and tables. tables holds
// the luma table then the chroma table, 64 entries each at 8-bit precision
// or 128 bytes each at 16-bit precision (bit 0 / bit 1 of precision).
export function makeHeaders(type, width, height, tables, precision, dri) {
  const parts = [];
  parts.push([0xff, 0xd8]);
  const lumLen = precision & 1 ? 128 : 64;
  const chmLen = precision & 2 ? 128 : 64;
  if (tables.length < lumLen + chmLen) {
    throw new Error(`jpeg: ${tables.length} bytes of quantization tables, want ${lumLen + chmLen}`);
  }
  parts.push(quantHeader(tables.subarray(0, lumLen), 0, precision & 1));
  parts.push(quantHeader(tables.subarray(lumLen, lumLen + chmLen), 1, (precision >> 1) & 1));
  if (dri !== 0) parts.push([0xff, 0xdd, 0, 4, dri >> 8, dri & 0xff]);
  const base = type & 0x3f; // 64..127 are 0..63 plus restart markers
  parts.push([
    0xff, 0xc0, 0, 17, 8,
    height >> 8, height & 0xff, width >> 8, width & 0xff,
    3,
    0, base === 0 ? 0x21 : 0x22, 0, // Y: 4:2:2 (type 0) or 4:2:0 (type 1)
    1, 0x11, 1,
    2, 0x11, 1,
  ]);
  parts.push(huffmanHeader(LUM_DC_BITS, LUM_DC_VALS, 0, 0));
  parts.push(huffmanHeader(LUM_AC_BITS, LUM_AC_VALS, 0, 1));
  parts.push(huffmanHeader(CHM_DC_BITS, CHM_DC_VALS, 1, 0));
  parts.push(huffmanHeader(CHM_AC_BITS, CHM_AC_VALS, 1, 1));
  parts.push([0xff, 0xda, 0, 12, 3, 0, 0, 1, 0x11, 2, 0x11, 0, 63, 0]);
  let n = 0;
  for (const p of parts) n += p.length;
  const out = new Uint8Array(n);
  let o = 0;
  for (const p of parts) { out.set(p, o); o += p.length; }
  return out;
}

function quantHeader(table, id, sixteenBit) {
  const h = new Uint8Array(5 + table.length);
  const len = 3 + table.length;
  h.set([0xff, 0xdb, len >> 8, len & 0xff, (sixteenBit << 4) | id]);
  h.set(table, 5);
  return h;
}

function huffmanHeader(bits, vals, tableNo, tableClass) {
  const len = 3 + 16 + vals.length;
  return [0xff, 0xc4, len >> 8, len & 0xff, (tableClass << 4) | tableNo, ...bits, ...vals];
}

// Types this depacketizer can rebuild headers for (RFC 2435 section 4.1).
function supportedType(t) {
  return t === 0 || t === 1 || t === 64 || t === 65;
}

// JpegAssembler turns RTP/JPEG packets into whole JFIF images. Feed it with
// push(); it calls onframe({jpeg, timestamp, captureTime, width, height})
// for every complete frame and counts the frames it had to give up on
// (missing fragments, no marker, unsupported type) in `incomplete`: those
// are never shown, since a half-decoded picture is worse than a repeated one.
export class JpegAssembler {
  constructor(onframe) {
    this.onframe = onframe;
    this.incomplete = 0;
    this.complete = 0;
    this.lastError = '';
    this.tableCache = new Map(); // Q -> tables, for Q>=128 frames that omit them
    this.reset();
  }

  reset() {
    this.ts = -1;
    this.frags = [];
    this.hdr = null;
    this.captureTime = -1;
  }

  // abandon counts the frame under assembly as incomplete, if there is one.
  abandon(reason) {
    if (this.frags.length > 0) {
      this.incomplete++;
      this.lastError = reason;
    }
    this.reset();
  }

  // push takes one parsed RTP packet (see rtp.js parseRTP) and its bytes.
  push(pkt, bytes) {
    if (pkt.timestamp !== this.ts) {
      if (this.ts !== -1) this.abandon('frame ended without its marker packet');
      this.ts = pkt.timestamp;
    }
    const payload = bytes.subarray(pkt.payloadOffset, pkt.payloadOffset + pkt.payloadLength);
    let h;
    try {
      h = parsePayloadHeader(payload);
    } catch (e) {
      this.abandon(e.message);
      return;
    }
    if (h.offset === 0) {
      this.hdr = h;
      if (pkt.captureTime >= 0) this.captureTime = pkt.captureTime;
    } else if (this.captureTime < 0 && pkt.captureTime >= 0) {
      this.captureTime = pkt.captureTime;
    }
    this.frags.push({ offset: h.offset, data: payload.subarray(h.dataStart) });
    if (pkt.marker) this.finish();
  }

  finish() {
    const frags = this.frags;
    const hdr = this.hdr;
    if (!hdr) return this.abandon('frame without its first fragment');
    if (!supportedType(hdr.type)) return this.abandon(`unsupported RTP/JPEG type ${hdr.type}`);
    // Packets normally arrive in order; sort only when they did not.
    for (let i = 1; i < frags.length; i++) {
      if (frags[i].offset < frags[i - 1].offset) { frags.sort((a, b) => a.offset - b.offset); break; }
    }
    let size = 0;
    for (const f of frags) {
      if (f.offset !== size) {
        return this.abandon(f.offset > size ? `fragment gap at offset ${size}` : `overlapping fragment at offset ${f.offset}`);
      }
      size += f.data.length;
    }
    let tables = hdr.tables;
    if (hdr.q >= 128) {
      if (tables && tables.length > 0) {
        this.tableCache.set(hdr.q, { tables, precision: hdr.precision });
      } else {
        const c = this.tableCache.get(hdr.q);
        if (!c) return this.abandon(`Q=${hdr.q} frame without quantization tables`);
        tables = c.tables;
        hdr.precision = c.precision;
      }
    } else {
      let c = this.tableCache.get(hdr.q);
      if (!c) { c = { tables: makeTables(hdr.q), precision: 0 }; this.tableCache.set(hdr.q, c); }
      tables = c.tables;
      hdr.precision = 0;
    }
    let head;
    try {
      head = makeHeaders(hdr.type, hdr.width, hdr.height, tables, hdr.precision, hdr.dri);
    } catch (e) {
      return this.abandon(e.message);
    }
    const last = frags[frags.length - 1].data;
    const hasEOI = last.length >= 2 && last[last.length - 2] === 0xff && last[last.length - 1] === 0xd9;
    const jpeg = new Uint8Array(head.length + size + (hasEOI ? 0 : 2));
    jpeg.set(head, 0);
    let o = head.length;
    for (const f of frags) { jpeg.set(f.data, o); o += f.data.length; }
    if (!hasEOI) { jpeg[o] = 0xff; jpeg[o + 1] = 0xd9; }
    const frame = { jpeg, timestamp: this.ts, captureTime: this.captureTime, width: hdr.width, height: hdr.height };
    this.complete++;
    this.reset();
    this.onframe(frame);
  }
}

// parsePayloadHeader reads the RFC 2435 main header (section 3.1), the
// restart marker header (3.1.7) and, on a frame's first fragment with
// Q>=128, the quantization table header (3.1.8).
export function parsePayloadHeader(p) {
  if (p.length < 8) throw new Error(`jpeg: payload of ${p.length} bytes is shorter than the 8-byte header`);
  const h = {
    offset: (p[1] << 16) | (p[2] << 8) | p[3],
    type: p[4],
    q: p[5],
    width: p[6] * 8,
    height: p[7] * 8,
    dri: 0,
    tables: null,
    precision: 0,
    dataStart: 8,
  };
  if (h.q === 0) throw new Error('jpeg: Q=0 is reserved');
  if (h.width === 0 || h.height === 0) throw new Error('jpeg: zero width or height');
  let o = 8;
  if (h.type >= 64 && h.type <= 127) {
    if (p.length < o + 4) throw new Error('jpeg: restart marker header runs past the payload');
    h.dri = (p[o] << 8) | p[o + 1];
    o += 4;
  }
  if (h.q >= 128 && h.offset === 0) {
    if (p.length < o + 4) throw new Error('jpeg: quantization table header runs past the payload');
    h.precision = p[o + 1];
    const len = (p[o + 2] << 8) | p[o + 3];
    o += 4;
    if (p.length < o + len) throw new Error(`jpeg: quantization tables of ${len} bytes run past the payload`);
    h.tables = p.subarray(o, o + len);
    o += len;
  }
  h.dataStart = o;
  return h;
}
