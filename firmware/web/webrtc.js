// The page's WebRTC path (docs/webrtc.md): a WHEP session (RFC 9725) with
// the box, whose H.264 and audio play in a <video> element with the
// browser's own decoder, jitter buffer and audio output. The box paces it
// by the browser's transport-wide feedback, like the WebSocket path by its
// Health Checks. Latency is capture (abs-capture-time, read through
// getSynchronizationSources) to the frame's playout, on the box's clock
// mapped to ours by the OPTIONS round trip with the smallest RTT.

const NTP_UNIX_MS = 2208988800000; // 1900 to 1970
const ABS_CAPTURE_TIME = 'http://www.webrtc.org/experiments/rtp-hdrext/abs-capture-time';

export class WhepPlayer {
  constructor(el, { token = () => '', url = '/whep' } = {}) {
    this.el = el;
    this.token = token;
    this.url = url;
    this.pc = null;
    this.resource = '';
    this.state = 'connecting';
    this.offsetMs = 0; // box clock minus ours
    this.rttMs = NaN;
    this.lastCapture = -1;
    this.captureSource = ''; // getSynchronizationSources or requestVideoFrameCallback
    this.onstate = () => {};
    this.onlatency = () => {};
    this.onframe = () => {};
    this.framesShown = 0;
    this.candidatePair = ''; // e.g. "host -> prflx"
  }

  static supported() { return typeof globalThis.RTCPeerConnection === 'function'; }

  setState(s) {
    if (s === this.state) return;
    this.state = s;
    this.onstate(s);
  }

  // probeClock estimates the box's clock from a few OPTIONS requests. The
  // box stamps its answer when it handles the request: box time minus our
  // send time is the offset plus the uplink's delay, while the media queue
  // only lengthens the way back. So: the smallest such sample less half the
  // smallest round trip, at most 2 ms (relay/viewer does the same).
  async probeClock(n = 5) {
    let minUp = Infinity;
    let best = Infinity;
    for (let i = 0; i < n; i++) {
      const t0 = performance.timeOrigin + performance.now();
      let r;
      try { r = await fetch(this.url, { method: 'OPTIONS', cache: 'no-store' }); } catch { return; }
      const t1 = performance.timeOrigin + performance.now();
      this.boxVideo = r.headers.get('Callbox-Video') || '';
      const box = Number(r.headers.get('Callbox-Time')) / 1e6;
      if (!Number.isFinite(box) || box <= 0) return;
      minUp = Math.min(minUp, box - t0);
      best = Math.min(best, t1 - t0);
    }
    this.rttMs = best;
    this.offsetMs = minUp - Math.min(best / 2, 2);
  }

  // start posts the offer; it resolves to { ok: true } or { status, error }.
  async start() {
    await this.probeClock();
    if (this.boxVideo && this.boxVideo !== 'h264') return { status: 503, error: `the box's video is ${this.boxVideo}, not H.264` };
    const pc = new RTCPeerConnection({ iceServers: [] }); // the LAN: host candidates only
    this.pc = pc;
    const vt = pc.addTransceiver('video', { direction: 'recvonly' });
    const at = pc.addTransceiver('audio', { direction: 'recvonly' });
    for (const t of [vt, at]) {
      // Ask for abs-capture-time where the browser lets a page choose its
      // header extensions (Chrome 119+); older ones offer what they offer.
      try {
        if (t.getHeaderExtensionsToNegotiate) {
          const exts = t.getHeaderExtensionsToNegotiate();
          for (const e of exts) if (e.uri === ABS_CAPTURE_TIME) e.direction = 'recvonly';
          t.setHeaderExtensionsToNegotiate(exts);
        }
      } catch { /* not supported: latency then comes from requestVideoFrameCallback */ }
    }
    this.videoReceiver = vt.receiver;
    const stream = new MediaStream();
    pc.ontrack = (e) => {
      stream.addTrack(e.track);
      this.el.srcObject = stream;
    };
    pc.onconnectionstatechange = () => {
      const s = pc.connectionState;
      if (s === 'connected') this.setState('live');
      else if (s === 'disconnected') this.setState('reconnecting');
      else if (s === 'failed' || s === 'closed') this.setState('failed');
    };
    const offer = await pc.createOffer();
    await pc.setLocalDescription(offer);
    // No trickle ICE: wait briefly for our candidates (a phone may hide
    // them behind mDNS names; the box then learns our address from our
    // connectivity checks, as a peer-reflexive candidate).
    await new Promise((resolve) => {
      if (pc.iceGatheringState === 'complete') return resolve();
      const timer = setTimeout(resolve, 1000);
      pc.addEventListener('icegatheringstatechange', () => {
        if (pc.iceGatheringState === 'complete') { clearTimeout(timer); resolve(); }
      });
    });
    const headers = { 'Content-Type': 'application/sdp' };
    const tok = this.token();
    if (tok) headers.Authorization = `Bearer ${tok}`;
    let r;
    try {
      r = await fetch(this.url, { method: 'POST', headers, body: pc.localDescription.sdp });
    } catch (e) {
      this.close();
      return { status: 0, error: String(e) };
    }
    if (r.status !== 201) {
      const error = (await r.text().catch(() => '')).trim();
      this.close();
      return { status: r.status, error };
    }
    this.resource = new URL(r.headers.get('Location') || '', location.href).href;
    await pc.setRemoteDescription({ type: 'answer', sdp: await r.text() });
    this.el.muted = this.muted || false;
    this.el.play().catch(() => {
      // Autoplay with sound refused: play muted until a tap.
      this.el.muted = true;
      this.autoplayMuted = true;
      this.el.play().catch(() => {});
    });
    this.watchFrames();
    return { ok: true };
  }

  // watchFrames takes a latency sample per frame shown.
  watchFrames() {
    const el = this.el;
    if (!el.requestVideoFrameCallback) return;
    const onFrame = (now, meta) => {
      if (this.pc === null) return;
      this.framesShown++;
      this.onframe(meta);
      const ss = this.videoReceiver.getSynchronizationSources ? this.videoReceiver.getSynchronizationSources() : [];
      const s = ss[0];
      if (s && s.captureTimestamp > 0) {
        // captureTimestamp: the box's NTP time (ms) of the newest frame;
        // timestamp: its playout, performance.timeOrigin-based.
        const cap = s.captureTimestamp - NTP_UNIX_MS;
        if (cap !== this.lastCapture) {
          this.lastCapture = cap;
          this.captureSource = 'getSynchronizationSources';
          this.onlatency(s.timestamp - (cap - this.offsetMs));
        }
      } else if (meta.captureTime > 0) {
        // The browser's own estimate, in this page's performance clock.
        this.captureSource = 'requestVideoFrameCallback';
        this.onlatency(meta.expectedDisplayTime - meta.captureTime);
      }
      el.requestVideoFrameCallback(onFrame);
    };
    el.requestVideoFrameCallback(onFrame);
  }

  setMuted(m) {
    this.muted = m;
    this.autoplayMuted = false;
    this.el.muted = m;
    if (!m) this.el.play().catch(() => {});
  }

  setVolume(v) { this.el.volume = v; }

  // stats reads the browser's own counters.
  async stats() {
    const out = { framesDecoded: 0, framesDropped: 0, framesReceived: 0, packetsLost: 0, bytes: 0,
      audioBytes: 0, audioPackets: 0, audioEnergy: 0, audioSamples: 0, concealed: 0, width: 0, height: 0,
      codec: '', audioCodec: '', nackCount: 0, pliCount: 0, jitterBufferMs: NaN };
    if (!this.pc) return out;
    const rep = await this.pc.getStats();
    const codecs = {};
    let pairId = '';
    rep.forEach((s) => {
      if (s.type === 'codec') codecs[s.id] = s.mimeType;
      if (s.type === 'transport' && s.selectedCandidatePairId) pairId = s.selectedCandidatePairId;
    });
    rep.forEach((s) => {
      if (s.type !== 'inbound-rtp') return;
      if (s.kind === 'video') {
        out.framesDecoded = s.framesDecoded || 0;
        out.framesDropped = s.framesDropped || 0;
        out.framesReceived = s.framesReceived || 0;
        out.packetsLost += s.packetsLost || 0;
        out.bytes += s.bytesReceived || 0;
        out.width = s.frameWidth || 0;
        out.height = s.frameHeight || 0;
        out.codec = codecs[s.codecId] || '';
        out.nackCount = s.nackCount || 0;
        out.pliCount = s.pliCount || 0;
        if (s.jitterBufferEmittedCount) out.jitterBufferMs = (1000 * s.jitterBufferDelay) / s.jitterBufferEmittedCount;
      } else if (s.kind === 'audio') {
        out.audioBytes = s.bytesReceived || 0;
        out.audioPackets = s.packetsReceived || 0;
        out.audioCodec = codecs[s.codecId] || '';
        out.audioEnergy = s.totalAudioEnergy || 0;
        out.audioSamples = s.totalSamplesReceived || 0;
        out.concealed = s.concealedSamples || 0;
        out.packetsLost += s.packetsLost || 0;
      }
    });
    const pair = pairId && rep.get(pairId);
    if (pair) {
      const l = rep.get(pair.localCandidateId);
      const r = rep.get(pair.remoteCandidateId);
      if (l && r) this.candidatePair = `${l.candidateType} -> ${r.candidateType}`;
    }
    return out;
  }

  // close ends the session: DELETE its resource, close the connection.
  close() {
    if (this.resource) {
      const headers = {};
      const tok = this.token();
      if (tok) headers.Authorization = `Bearer ${tok}`;
      fetch(this.resource, { method: 'DELETE', headers, keepalive: true }).catch(() => {});
      this.resource = '';
    }
    if (this.pc) this.pc.close();
    this.pc = null;
    this.el.srcObject = null;
  }
}
