// The page's video path behind a small seam: an object with start(), stop()
// and onframe. This one is JPEG over the relay's WebSocket (RFC 2435); a
// WebRTC/H.264 source can replace it by offering the same three members.
//
// onframe(frame) gets {image, width, height, frameWidth, frameHeight,
// captureTime, close}: image is something drawImage accepts, width and
// height its size (the frame's, or smaller when decoded for a small view), captureTime is the capture instant on the
// page's clock (or -1 when unknown), completedAt and decodedAt are when its
// last packet arrived and when it was decoded (page clock: for the latency
// breakdown), and close() releases the image once drawn.

import { parseRTP, now } from './rtp.js';
import { JpegAssembler } from './jpeg.js';
import { MediaSocket } from './conn.js';

// Decoders, fastest first. WebCodecs' ImageDecoder (Chromium, Android)
// decodes straight to the size shown, which libjpeg does cheaply by scaling
// in the DCT (1/8 steps): a phone showing a 720p stream in a 400-pixel-wide
// portrait view then decodes a quarter of the pixels. createImageBitmap
// (Safari 15+) decodes off the main thread at full size; <img> serves the
// rest.
let useImageDecoder = typeof globalThis.ImageDecoder === 'function';

// decodeJPEG gives {image, width, height, close} for JPEG bytes, decoded at
// about want = {width, height} (never larger than the JPEG) where it can.
async function decodeJPEG(jpeg, want) {
  if (useImageDecoder) {
    const init = { data: jpeg, type: 'image/jpeg' };
    if (want) { init.desiredWidth = want.width; init.desiredHeight = want.height; }
    let dec;
    try {
      dec = new ImageDecoder(init);
      const { image } = await dec.decode();
      return { image, width: image.displayWidth, height: image.displayHeight, close: () => image.close(), path: 'ImageDecoder' };
    } catch (e) {
      // A browser that has the API but not for JPEG: fall back for good.
      if (e && e.name === 'NotSupportedError') useImageDecoder = false;
      else throw e;
    } finally {
      if (dec) dec.close();
    }
  }
  const blob = new Blob([jpeg], { type: 'image/jpeg' });
  if (typeof createImageBitmap === 'function') {
    const bmp = await createImageBitmap(blob);
    return { image: bmp, width: bmp.width, height: bmp.height, close: () => bmp.close(), path: 'createImageBitmap' };
  }
  const url = URL.createObjectURL(blob);
  try {
    const img = new Image();
    img.src = url;
    await img.decode();
    return { image: img, width: img.naturalWidth, height: img.naturalHeight, close: () => {}, path: 'img' };
  } finally {
    URL.revokeObjectURL(url);
  }
}

// decodeSize picks the size to decode a w x h frame at for a view of
// box = {width, height} device pixels: the frame scaled to fit, in the
// 1/8 steps a JPEG decoder scales by, never above the frame's own size.
export function decodeSize(w, h, box) {
  if (!box || !(box.width > 0) || !(box.height > 0)) return null;
  const fit = Math.min(1, box.width / w, box.height / h);
  const eighths = Math.min(8, Math.max(1, Math.ceil(fit * 8)));
  if (eighths === 8) return null;
  return { width: Math.ceil((w * eighths) / 8), height: Math.ceil((h * eighths) / 8) };
}

export class JpegVideo {
  // urlFor(kind) gives the WebSocket URL; opts go to MediaSocket, except
  // opts.viewSize, a function giving the view's size in device pixels
  // (decoding for it), or absent to decode every frame at full size.
  constructor(urlFor, opts = {}) {
    this.viewSize = opts.viewSize || null;
    this.socket = new MediaSocket('video', urlFor, opts);
    this.clock = this.socket.clock;
    this.onframe = () => {};
    this.decoding = false;
    this.pending = null; // newest complete frame waiting for the decoder
    this.skipped = 0; // complete frames replaced by a newer one before decoding
    this.decodeErrors = 0;
    this.decodePath = ''; // which decoder the last frame went through
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
    frame.completedAt = now();
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
        d = await decodeJPEG(f.jpeg, this.viewSize && decodeSize(f.width, f.height, this.viewSize()));
      } catch (e) {
        this.decodeErrors++;
        this.lastError = String(e);
        continue;
      } finally {
        this.decoding = false;
      }
      this.decodePath = d.path;
      const captureTime = f.captureTime >= 0 && this.clock.valid ? this.clock.toLocal(f.captureTime) : -1;
      this.onframe({
        image: d.image, width: d.width, height: d.height, captureTime, close: d.close, bytes: f.jpeg.length,
        frameWidth: f.width, frameHeight: f.height,
        completedAt: f.completedAt, decodedAt: now(),
      });
    }
  }
}
