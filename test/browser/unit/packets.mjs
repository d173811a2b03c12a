// Test helpers: RTP packets built byte by byte (RFC 3550, RFC 8285), the way
// the box's packetizers put them on the wire, and RFC 2435 fragmentation of
// a JFIF image.
import { unixMsToNTP } from '../../../firmware/web/rtp.js';

export function rtpPacket({ pt, seq = 1, ts = 1000, ssrc = 42, marker = false, payload = [], captureMs, otherExt = false, padding = 0, csrc = 0 }) {
  const ext = [];
  if (otherExt) ext.push(0x22, 0xaa, 0xbb, 0xcc); // ID 2, L=2: 3 bytes: someone else's extension
  if (captureMs !== undefined) {
    const [s, f] = unixMsToNTP(captureMs);
    ext.push(0x17, s >>> 24, (s >>> 16) & 0xff, (s >>> 8) & 0xff, s & 0xff, f >>> 24, (f >>> 16) & 0xff, (f >>> 8) & 0xff, f & 0xff);
  }
  while (ext.length % 4) ext.push(0);
  const hasExt = ext.length > 0;
  const n = 12 + 4 * csrc + (hasExt ? 4 + ext.length : 0) + payload.length + padding;
  const b = new Uint8Array(n);
  b[0] = 0x80 | (padding ? 0x20 : 0) | (hasExt ? 0x10 : 0) | csrc;
  b[1] = (marker ? 0x80 : 0) | pt;
  b[2] = seq >> 8; b[3] = seq & 0xff;
  new DataView(b.buffer).setUint32(4, ts);
  new DataView(b.buffer).setUint32(8, ssrc);
  let o = 12 + 4 * csrc;
  if (hasExt) {
    b[o] = 0xbe; b[o + 1] = 0xde; b[o + 2] = 0; b[o + 3] = ext.length / 4;
    b.set(ext, o + 4);
    o += 4 + ext.length;
  }
  b.set(payload, o);
  if (padding) b[n - 1] = padding;
  return b;
}

// parseJFIF finds what RFC 2435 carries of a baseline JFIF image: the two
// quantization tables, the size, the type (from the luma sampling), the
// restart interval and the entropy-coded data.
export function parseJFIF(j) {
  const out = { tables: new Uint8Array(128), dri: 0 };
  let o = 2;
  for (;;) {
    if (j[o] !== 0xff) throw new Error(`marker expected at ${o}`);
    const m = j[o + 1];
    const len = (j[o + 2] << 8) | j[o + 3];
    const seg = j.subarray(o + 4, o + 2 + len);
    if (m === 0xdb) {
      for (let p = 0; p < seg.length; p += 65) out.tables.set(seg.subarray(p + 1, p + 65), (seg[p] & 0x0f) * 64);
    } else if (m === 0xc0) {
      out.height = (seg[1] << 8) | seg[2];
      out.width = (seg[3] << 8) | seg[4];
      out.type = seg[7] === 0x21 ? 0 : 1;
    } else if (m === 0xdd) {
      out.dri = (seg[0] << 8) | seg[1];
    } else if (m === 0xda) {
      out.scan = j.subarray(o + 2 + len);
      return out;
    }
    o += 2 + len;
  }
}

// jpegPackets splits an image into RTP/JPEG packets of at most `size`
// payload bytes, tables in-band on the first (Q=255).
export function jpegPackets(img, { size = 1000, ts = 90000, seq = 1, captureMs } = {}) {
  const type = img.dri ? img.type + 64 : img.type;
  const pkts = [];
  let off = 0;
  while (off < img.scan.length) {
    const h = [0, off >> 16, (off >> 8) & 0xff, off & 0xff, type, 255, img.width / 8, img.height / 8];
    if (img.dri) h.push(img.dri >> 8, img.dri & 0xff, 0xff, 0xff);
    if (off === 0) h.push(0, 0, 0, 128, ...img.tables);
    const n = Math.min(size - h.length, img.scan.length - off);
    const payload = new Uint8Array(h.length + n);
    payload.set(h);
    payload.set(img.scan.subarray(off, off + n), h.length);
    off += n;
    pkts.push(rtpPacket({
      pt: 26, seq: (seq + pkts.length) & 0xffff, ts, marker: off >= img.scan.length, payload,
      captureMs: pkts.length === 0 ? captureMs : undefined,
    }));
  }
  return pkts;
}
