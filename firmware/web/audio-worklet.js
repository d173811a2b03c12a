// AudioWorklet processor: plays the box's 8 kHz PCMU through a small jitter
// buffer, resampled to the AudioContext's rate.
//
// Runs on the audio rendering thread. The page posts each RTP payload (the
// mu-law bytes of one 20 ms packet) here; decoding happens here too, so the
// page's main thread only moves bytes. Counts are posted back a few times a
// second for window.callboxStats. The file imports nothing, so that it
// loads the same in every browser's worklet scope.

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

class PCMUPlayer extends AudioWorkletProcessor {
  constructor(options) {
    super();
    const o = (options && options.processorOptions) || {};
    // Jitter buffer: start (and restart after an underrun) once targetMs is
    // queued; past maxMs the link has delivered a burst after a stall, so the
    // oldest audio goes to come back down to the target: late sound is worse
    // than a short gap in a conversation.
    this.target = Math.round(((o.targetMs || 60) / 1000) * IN_RATE);
    this.max = Math.round(((o.maxMs || 160) / 1000) * IN_RATE);
    this.ring = new Float32Array(IN_RATE * 2); // 2 s of 8 kHz: far beyond max
    this.read = 0; // fractional read position, in input samples
    this.write = 0; // total samples written
    this.playing = false;
    this.step = IN_RATE / sampleRate;
    this.framesIn = 0;
    this.framesPlayed = 0;
    this.samplesPlayed = 0;
    this.underruns = 0;
    this.dropped = 0;
    this.lastReport = 0;
    this.port.onmessage = (e) => this.onPacket(e.data);
  }

  onPacket(bytes) {
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

  process(inputs, outputs) {
    const out = outputs[0][0];
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
    for (let c = 1; c < outputs[0].length; c++) outputs[0][c].set(out);
    // One "frame played" per 20 ms (160 input samples) that left the buffer.
    const before = Math.floor(this.samplesPlayed / 160);
    this.samplesPlayed += played * this.step;
    this.framesPlayed += Math.floor(this.samplesPlayed / 160) - before;
    if (currentTime - this.lastReport >= 0.25) {
      this.lastReport = currentTime;
      this.port.postMessage({
        framesIn: this.framesIn,
        framesPlayed: this.framesPlayed,
        underruns: this.underruns,
        droppedMs: (this.dropped / IN_RATE) * 1000,
        bufferedMs: ((this.write - this.read) / IN_RATE) * 1000,
      });
    }
    return true;
  }
}

registerProcessor('callbox-pcmu', PCMUPlayer);
