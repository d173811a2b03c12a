// rebuild.mjs IN.jpg OUT.jpg: sends a baseline JFIF image through RTP/JPEG
// (RFC 2435) packetization and the page's depacketizer (firmware/web/jpeg.js)
// and writes the JFIF image the page would hand to the browser's decoder.
// TestJPEGRebuildDecodes decodes both with a real JPEG decoder and compares.
import { readFileSync, writeFileSync } from 'node:fs';
import { JpegAssembler } from '../../../firmware/web/jpeg.js';
import { parseRTP } from '../../../firmware/web/rtp.js';
import { jpegPackets, parseJFIF } from './packets.mjs';

const [inPath, outPath, size = '1200'] = process.argv.slice(2);
if (!inPath || !outPath) {
  console.error('usage: node rebuild.mjs IN.jpg OUT.jpg [packet-size]');
  process.exit(2);
}
const img = parseJFIF(new Uint8Array(readFileSync(inPath)));
let out = null;
const a = new JpegAssembler((f) => { out = f.jpeg; });
const pkts = jpegPackets(img, { size: Number(size) });
for (const p of pkts) a.push(parseRTP(p.buffer), p);
if (!out) {
  console.error(`no frame rebuilt: ${a.incomplete} incomplete (${a.lastError})`);
  process.exit(1);
}
writeFileSync(outPath, out);
console.log(JSON.stringify({ packets: pkts.length, bytes: out.length, type: img.type, width: img.width, height: img.height }));
