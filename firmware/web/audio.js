// The page's sound: PCMU over the relay's audio WebSocket into an
// AudioWorklet (audio-worklet.js) that holds a small jitter buffer.
//
// Phones only let a page make sound after a tap (autoplay rules), so the
// AudioContext starts suspended; the socket runs from the start anyway, so
// that its Health Checks keep the relay's pacing right, and packets that
// arrive before the tap are dropped here.

import { parseRTP } from './rtp.js';
import { MediaSocket } from './conn.js';

export class AudioPlayer {
  constructor(urlFor, opts = {}) {
    this.socket = new MediaSocket('audio', urlFor, opts);
    this.ctx = null;
    this.node = null;
    this.ready = null;
    this.error = '';
    this.stats = { framesIn: 0, framesPlayed: 0, underruns: 0, droppedMs: 0, bufferedMs: 0 };
    this.packetsBeforeTap = 0;
    this.captureTime = -1; // of the newest packet, box clock
    this.onchange = () => {};
    this.socket.onpacket = (buf) => this.onPacket(buf);
  }

  // running tells whether sound is actually coming out.
  get running() { return !!(this.ctx && this.ctx.state === 'running' && this.node); }

  start() {
    this.socket.start();
    // Where autoplay is allowed (desktop browsers, the tests) this starts
    // the sound without a tap; elsewhere the context stays suspended until
    // unlock() runs inside a tap handler.
    this.unlock(false);
  }

  stop() {
    this.socket.stop();
    if (this.ctx) this.ctx.close().catch(() => {});
    this.ctx = null;
    this.node = null;
    this.ready = null;
  }

  // unlock creates and resumes the AudioContext; call it from a user gesture.
  unlock(fromGesture = true) {
    const AC = globalThis.AudioContext || globalThis.webkitAudioContext;
    if (!AC) { this.error = 'no Web Audio in this browser'; return Promise.resolve(false); }
    if (!this.ctx) {
      try {
        this.ctx = new AC({ latencyHint: 'interactive' });
      } catch (e) {
        this.error = String(e);
        return Promise.resolve(false);
      }
      this.ctx.onstatechange = () => this.onchange();
      this.ready = this.setup(this.ctx);
    }
    const ctx = this.ctx;
    // resume() must be called synchronously inside the gesture on iOS.
    const resumed = ctx.state === 'running' ? Promise.resolve() : ctx.resume();
    return Promise.all([resumed, this.ready]).then(
      () => { this.onchange(); return this.running; },
      (e) => { if (fromGesture) this.error = String(e); this.onchange(); return false; },
    );
  }

  async setup(ctx) {
    if (!ctx.audioWorklet) throw new Error('AudioWorklet unavailable (needs iOS 14.5+ or a recent browser)');
    await ctx.audioWorklet.addModule(new URL('./audio-worklet.js', import.meta.url));
    const node = new AudioWorkletNode(ctx, 'callbox-pcmu', {
      numberOfInputs: 0,
      numberOfOutputs: 1,
      outputChannelCount: [1],
      processorOptions: { targetMs: 60, maxMs: 160 },
    });
    node.port.onmessage = (e) => { this.stats = e.data; };
    node.connect(ctx.destination);
    this.node = node;
  }

  onPacket(buf) {
    let pkt;
    try {
      pkt = parseRTP(buf);
    } catch (e) {
      this.error = e.message;
      return;
    }
    if (pkt.payloadType !== 0) return; // only PCMU is defined for audio
    if (pkt.captureTime >= 0) this.captureTime = pkt.captureTime;
    if (!this.running) { this.packetsBeforeTap++; return; }
    // A copy of just the payload, transferred (not cloned) to the worklet.
    const bytes = new Uint8Array(buf, pkt.payloadOffset, pkt.payloadLength).slice();
    this.node.port.postMessage(bytes, [bytes.buffer]);
  }
}
