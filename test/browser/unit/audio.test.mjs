// Unit tests of the AudioWorklet processor (firmware/web/audio-worklet.js):
// its PCMU table and its jitter buffer, driven here the way the browser's
// audio thread drives it: 128-frame render quanta.
import test from 'node:test';
import assert from 'node:assert/strict';

// A fake AudioWorkletGlobalScope, just what the processor uses.
let Processor;
globalThis.sampleRate = 48000;
globalThis.currentTime = 0;
globalThis.AudioWorkletProcessor = class {
  constructor() {
    this.port = { posted: [], postMessage(m) { this.posted.push(m); }, onmessage: null };
  }
};
globalThis.registerProcessor = (name, cls) => { assert.equal(name, 'callbox-pcmu'); Processor = cls; };
const { decodeTable, PCMUJitter } = await import('../../../firmware/web/audio-worklet.js');

test('mu-law decodes per G.711', () => {
  assert.equal(decodeTable[0xff], 0);
  assert.ok(decodeTable[0x7f] === 0); // negative zero: silence either way
  assert.equal(decodeTable[0x80] * 32768, 32124);
  assert.equal(decodeTable[0x00] * 32768, -32124);
  assert.equal(decodeTable[0xfe] * 32768, 8); // segment 0 has steps of 8
  assert.equal(decodeTable[0xef] * 32768, 132); // segment 1 starts at 132
  // Monotonic within each sign: 0x80 (loudest +) down to 0xff (zero).
  for (let i = 0x80; i < 0xff; i++) assert.ok(decodeTable[i] > decodeTable[i + 1]);
  for (let i = 0x00; i < 0x7f; i++) assert.ok(decodeTable[i] < decodeTable[i + 1]);
});


function render(p, quanta) {
  const outs = [];
  for (let i = 0; i < quanta; i++) {
    const out = [new Float32Array(128)];
    p.process([], [out]);
    globalThis.currentTime += 128 / 48000;
    outs.push(out[0]);
  }
  return outs;
}

const loud = () => new Uint8Array(160).fill(0x80); // 20 ms at full positive scale

test('the jitter buffer waits for its target, then plays resampled audio', () => {
  const p = new Processor({ processorOptions: { targetMs: 60, maxMs: 160 } });
  p.port.onmessage({ data: loud() });
  p.port.onmessage({ data: loud() });
  // 40 ms queued, target 60: silence.
  assert.ok(render(p, 4).every((q) => q.every((s) => s === 0)));
  p.port.onmessage({ data: loud() });
  const out = render(p, 1)[0];
  assert.ok(out.every((s) => Math.abs(s - 32124 / 32768) < 1e-6));
  // 60 ms at 48 kHz is 2880 output frames: 22.5 quanta, then an underrun.
  render(p, 30);
  assert.equal(p.jitter.underruns, 1);
  assert.equal(p.jitter.framesPlayed, 2); // the last 160 samples cannot all interpolate
  assert.equal(p.jitter.framesIn, 3);
});

test('a burst past the maximum drops the oldest audio back to the target', () => {
  const p = new Processor({ processorOptions: { targetMs: 60, maxMs: 160 } });
  for (let i = 0; i < 10; i++) p.port.onmessage({ data: loud() }); // 200 ms at once
  assert.ok(p.jitter.write - p.jitter.read <= 160 * 8);
  assert.ok(p.jitter.dropped > 0);
  globalThis.currentTime += 1;
  render(p, 1);
  const report = p.port.posted.at(-1);
  assert.equal(report.framesIn, 10);
  assert.ok(report.bufferedMs <= 160 && report.bufferedMs >= 40, `buffered ${report.bufferedMs} ms`);
});

test('non-byte messages are ignored', () => {
  const p = new Processor({});
  p.port.onmessage({ data: 'hello' });
  p.port.onmessage({ data: null });
  assert.equal(p.jitter.framesIn, 0);
});

test('the jitter buffer alone resamples to other rates (the ScriptProcessorNode fallback)', () => {
  const j = new PCMUJitter(44100, { targetMs: 80, maxMs: 200 });
  for (let i = 0; i < 4; i++) j.push(loud()); // 80 ms
  const out = new Float32Array(1024);
  j.render(out);
  assert.ok(out.every((s) => Math.abs(s - 32124 / 32768) < 1e-6));
  // 1024 samples at 44.1 kHz take 1024 * 8000 / 44100 = 185.8 input samples.
  assert.ok(Math.abs(j.read - 1024 * 8000 / 44100) < 1e-6);
  assert.equal(j.framesPlayed, 1);
  const r = j.report();
  assert.equal(r.framesIn, 4);
  assert.ok(Math.abs(r.bufferedMs - (640 - 1024 * 8000 / 44100) / 8) < 1e-6);
});
