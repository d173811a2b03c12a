// The page's sound: PCMU over the relay's audio WebSocket into an
// AudioWorklet (audio-worklet.js) that holds a small jitter buffer, or, where
// the page may not have one (insecure contexts), the same jitter buffer in a
// ScriptProcessorNode.
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
    this.path = ''; // 'AudioWorklet' or 'ScriptProcessorNode' once set up
    this.sink = null; // takes one packet's mu-law bytes
    this.captureTime = -1; // of the newest packet, box clock
    this.onchange = () => {};
    this.gain = null; // mute and volume
    this.volume = 1;
    this.muted = false;
    this.socket.onpacket = (buf) => this.onPacket(buf);
  }

  // running tells whether sound is actually coming out.
  get running() { return !!(this.ctx && this.ctx.state === 'running' && this.sink); }

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
    if (!ctx.audioWorklet) {
      // No AudioWorklet: an insecure context (a phone on http://box.local)
      // or an old browser. A ScriptProcessorNode runs the same jitter
      // buffer on the main thread; a larger target absorbs main-thread
      // pauses.
      const { PCMUJitter } = await import('./audio-worklet.js');
      const jitter = new PCMUJitter(ctx.sampleRate, { targetMs: 80, maxMs: 200 });
      const node = ctx.createScriptProcessor(1024, 1, 1);
      let last = 0;
      node.onaudioprocess = (e) => {
        jitter.render(e.outputBuffer.getChannelData(0));
        if (e.playbackTime - last >= 0.25) {
          last = e.playbackTime;
          this.stats = jitter.report();
        }
      };
      node.connect(this.output(ctx));
      this.path = 'ScriptProcessorNode';
      this.sink = (bytes) => jitter.push(bytes);
      this.node = node;
      return;
    }
    await ctx.audioWorklet.addModule(new URL('./audio-worklet.js', import.meta.url));
    const node = new AudioWorkletNode(ctx, 'callbox-pcmu', {
      numberOfInputs: 0,
      numberOfOutputs: 1,
      outputChannelCount: [1],
      processorOptions: { targetMs: 60, maxMs: 160 },
    });
    node.port.onmessage = (e) => { this.stats = e.data; };
    node.connect(this.output(ctx));
    this.path = 'AudioWorklet';
    // The payload is transferred (not copied) to the audio thread.
    this.sink = (bytes) => node.port.postMessage(bytes, [bytes.buffer]);
    this.node = node;
  }

  // output is the gain node every path ends in: mute and volume.
  output(ctx) {
    this.gain = ctx.createGain();
    this.gain.gain.value = this.muted ? 0 : this.volume;
    this.gain.connect(ctx.destination);
    return this.gain;
  }

  setMuted(m) { this.muted = m; if (this.gain) this.gain.gain.value = m ? 0 : this.volume; }

  setVolume(v) { this.volume = v; if (this.gain && !this.muted) this.gain.gain.value = v; }

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
    // A copy of just the payload: the socket's buffer is not ours to keep.
    this.sink(new Uint8Array(buf, pkt.payloadOffset, pkt.payloadLength).slice());
  }
}
