// The page's video path behind a small seam: an object with start(), stop()
// and onframe. This one is JPEG over the relay's WebSocket (RFC 2435); a
// WebRTC/H.264 source can replace it by offering the same three members.
//
// onframe(frame) gets {image, width, height, captureTime, close}: image is
// something drawImage accepts, captureTime is the capture instant on the
// page's clock (or -1 when unknown), and close() releases the image once
// drawn.

import { parseRTP } from './rtp.js';
import { JpegAssembler } from './jpeg.js';
import { MediaSocket } from './conn.js';

// decodeJPEG gives a drawable image for JPEG bytes. createImageBitmap decodes
// off the main thread where it exists; the <img> fallback serves browsers
// that lack it for Blobs.
async function decodeJPEG(jpeg) {
  const blob = new Blob([jpeg], { type: 'image/jpeg' });
  if (typeof createImageBitmap === 'function') {
    const bmp = await createImageBitmap(blob);
    return { image: bmp, close: () => bmp.close() };
  }
  const url = URL.createObjectURL(blob);
  try {
    const img = new Image();
    img.src = url;
    await img.decode();
    return { image: img, close: () => {} };
  } finally {
    URL.revokeObjectURL(url);
  }
}

export class JpegVideo {
  // urlFor(kind) gives the WebSocket URL; opts go to MediaSocket.
  constructor(urlFor, opts = {}) {
    this.socket = new MediaSocket('video', urlFor, opts);
    this.clock = this.socket.clock;
    this.onframe = () => {};
    this.decoding = false;
    this.pending = null; // newest complete frame waiting for the decoder
    this.skipped = 0; // complete frames replaced by a newer one before decoding
    this.decodeErrors = 0;
    this.lastError = '';
    this.assembler = new JpegAssembler((f) => this.enqueue(f));
    this.socket.onpacket = (buf) => {
      let pkt;
      try {
        pkt = parseRTP(buf);
      } catch (e) {
        this.assembler.abandon(e.message);
        return;
      }
      this.assembler.push(pkt, new Uint8Array(buf));
    };
    // A new connection starts mid-stream: whatever was half assembled from
    // the old one can never complete.
    this.socket.onhello = () => this.assembler.reset();
  }

  get incomplete() { return this.assembler.incomplete; }

  start() { this.socket.start(); }

  stop() {
    this.socket.stop();
    this.pending = null;
    this.assembler.reset();
  }

  // enqueue keeps at most one frame waiting: when the page falls behind, the
  // newest frame wins and the stale ones are never decoded.
  enqueue(frame) {
    if (this.pending) this.skipped++;
    this.pending = frame;
    if (!this.decoding) this.decodeNext();
  }

  async decodeNext() {
    while (this.pending) {
      const f = this.pending;
      this.pending = null;
      this.decoding = true;
      let d;
      try {
        d = await decodeJPEG(f.jpeg);
      } catch (e) {
        this.decodeErrors++;
        this.lastError = String(e);
        continue;
      } finally {
        this.decoding = false;
      }
      const captureTime = f.captureTime >= 0 && this.clock.valid ? this.clock.toLocal(f.captureTime) : -1;
      this.onframe({ image: d.image, width: f.width, height: f.height, captureTime, close: d.close, bytes: f.jpeg.length });
    }
  }
}
