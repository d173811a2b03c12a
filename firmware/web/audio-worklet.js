// The page's audio player: the box's 8 kHz PCMU through a small jitter
// buffer, resampled to the AudioContext's rate.
//
// In an AudioWorklet (the normal case) it runs on the audio rendering
// thread: the page posts each RTP payload (the mu-law bytes of one 20 ms
// packet) here, decoding happens here too, and counts are posted back a few
// times a second for window.callboxStats. Browsers offer AudioWorklet only
// in secure contexts (https, localhost), and a phone opening
// http://callbox.local/ is not one; there the page imports PCMUJitter from
// this same file and drives it from a ScriptProcessorNode instead. The file
// imports nothing, so that it loads the same in every browser's worklet
// scope.

// decodeTable maps a G.711 mu-law byte to a sample in [-1, 1): the bits are
// stored inverted; a sign, 3 bits of segment (exponent), 4 of step.
export const decodeTable = (() => {
  const t = new Float32Array(256);
  for (let i = 0; i < 256; i++) {
    const u = ~i & 0xff;
    const magnitude = ((((u & 0x0f) << 3) + 0x84) << ((u >> 4) & 0x07)) - 0x84;
    t[i] = (u & 0x80 ? -magnitude : magnitude) / 32768;
  }
  return t;
})();

const IN_RATE = 8000;

// PCMUJitter is the jitter buffer and resampler. It starts playing (and
// restarts after an underrun) once targetMs is queued; past maxMs the link
// has delivered a burst after a stall, so the oldest audio goes to come back
// down to the target: late sound is worse than a short gap in a
// conversation.
export class PCMUJitter {
  constructor(outRate, { targetMs = 60, maxMs = 160 } = {}) {
    this.target = Math.round((targetMs / 1000) * IN_RATE);
    this.max = Math.round((maxMs / 1000) * IN_RATE);
    this.ring = new Float32Array(IN_RATE * 2); // 2 s of 8 kHz: far beyond max
    this.read = 0; // fractional read position, in input samples
    this.write = 0; // total samples written
    this.playing = false;
    this.step = IN_RATE / outRate;
    this.framesIn = 0;
    this.framesPlayed = 0;
    this.samplesPlayed = 0;
    this.underruns = 0;
    this.dropped = 0;
  }

  // push queues the mu-law bytes of one packet; anything else is ignored.
  push(bytes) {
    if (!(bytes instanceof Uint8Array)) return;
    const ring = this.ring;
    const n = ring.length;
    for (let i = 0; i < bytes.length; i++) ring[(this.write + i) % n] = decodeTable[bytes[i]];
    this.write += bytes.length;
    this.framesIn++;
    const queued = this.write - this.read;
    if (queued > this.max) {
      const skip = Math.floor(queued - this.target);
      this.read += skip;
      this.dropped += skip;
    }
  }

  // render fills out (one channel at the output rate).
  render(out) {
    const ring = this.ring;
    const n = ring.length;
    const queued = this.write - this.read;
    if (!this.playing && queued >= this.target) this.playing = true;
    let played = 0;
    for (let i = 0; i < out.length; i++) {
      if (!this.playing || this.read + 1 >= this.write) {
        out[i] = 0;
        continue;
      }
      // Linear interpolation: good enough for 8 kHz speech, and cheap.
      const p = Math.floor(this.read);
      const f = this.read - p;
      const a = ring[p % n];
      const b = ring[(p + 1) % n];
      out[i] = a + (b - a) * f;
      this.read += this.step;
      played++;
    }
    if (this.playing && this.read + 1 >= this.write) {
      this.playing = false;
      this.underruns++;
    }
    // One "frame played" per 20 ms (160 input samples) that left the buffer.
    const before = Math.floor(this.samplesPlayed / 160);
    this.samplesPlayed += played * this.step;
    this.framesPlayed += Math.floor(this.samplesPlayed / 160) - before;
  }

  report() {
    return {
      framesIn: this.framesIn,
      framesPlayed: this.framesPlayed,
      underruns: this.underruns,
      droppedMs: (this.dropped / IN_RATE) * 1000,
      bufferedMs: ((this.write - this.read) / IN_RATE) * 1000,
    };
  }
}

// Only in an AudioWorkletGlobalScope: the page's main thread imports this
// file too (for the fallback) and has neither of these.
if (typeof AudioWorkletProcessor === 'function' && typeof registerProcessor === 'function') {
  class PCMUPlayer extends AudioWorkletProcessor {
    constructor(options) {
      super();
      this.jitter = new PCMUJitter(sampleRate, (options && options.processorOptions) || {});
      this.lastReport = 0;
      this.port.onmessage = (e) => this.jitter.push(e.data);
    }

    process(inputs, outputs) {
      const out = outputs[0][0];
      this.jitter.render(out);
      for (let c = 1; c < outputs[0].length; c++) outputs[0][c].set(out);
      if (currentTime - this.lastReport >= 0.25) {
        this.lastReport = currentTime;
        this.port.postMessage(this.jitter.report());
      }
      return true;
    }
  }
  registerProcessor('callbox-pcmu', PCMUPlayer);
}
