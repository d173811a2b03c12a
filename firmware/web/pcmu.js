// G.711 mu-law (PCMU) decoding: one table lookup per sample.

// decodeTable maps a mu-law byte to a float sample in [-1, 1), following
// ITU-T G.711 (the bits are stored inverted; 8 segments of 16 steps).
export const decodeTable = (() => {
  const t = new Float32Array(256);
  for (let i = 0; i < 256; i++) {
    const u = ~i & 0xff;
    const sign = u & 0x80;
    const exponent = (u >> 4) & 0x07;
    const mantissa = u & 0x0f;
    const magnitude = (((mantissa << 3) + 0x84) << exponent) - 0x84;
    t[i] = (sign ? -magnitude : magnitude) / 32768;
  }
  return t;
})();

// decodePCMU decodes bytes into out (a Float32Array at least as long).
export function decodePCMU(bytes, out) {
  for (let i = 0; i < bytes.length; i++) out[i] = decodeTable[bytes[i]];
  return out;
}
