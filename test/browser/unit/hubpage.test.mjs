// Unit test of the hub's phone page (peer/hub/phone.go, its inline
// scripts) following the box's S7 moves against fakes of the browser:
// it asks the hub where the media is, offers there, and on a move opens
// the new session first, shows it after its first frame, then closes and
// DELETEs the old one (make-before-break); the badge says "via hub" while
// the media comes through the hub's relay. (On one machine Chromium never
// moves: S7 does not count host-to-host sessions. The pion phone in
// test/natlab exercises the protocol end to end.)
import test from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';

const src = readFileSync(new URL('../../../peer/hub/phone.go', import.meta.url), 'utf8');
const tmpl = src.slice(src.indexOf('var phonePageTmpl'));
const box = 'abcdefghijklmnop';
const scripts = [...tmpl.matchAll(/<script>([\s\S]*?)<\/script>/g)].map((m) => m[1]).join('\n')
  .replaceAll('{{.Box}}', box).replaceAll('{{.STUN}}', '[]');
assert.ok(!scripts.includes('{{'), 'a template action the test does not fill');
const cred = 'a'.repeat(64) + '.1900000000.sig';

function element(id) {
  const e = { id, dataset: {}, style: {}, hidden: true, textContent: '', _src: null, listeners: {},
    addEventListener(ev, f) { this.listeners[ev] = f; },
    play() { return Promise.resolve(); },
    set srcObject(s) { this._src = s; },
    get srcObject() { return this._src; },
    // A frame shows once the element has a stream with a video track.
    get videoWidth() { return this._src && this._src.tracks.some((t) => t.kind === 'video') ? 640 : 0; },
    getVideoPlaybackQuality() { return { totalVideoFrames: this.videoWidth ? 1 : 0 }; } };
  return e;
}

test('the hub page follows S7 moves make-before-break', async () => {
  const els = Object.fromEntries(['v', 'vnext', 'msg', 'talk'].map((id) => [id, element(id)]));
  const pcs = [];
  const requests = [];
  const polls = []; // pending long polls: {v, resolve}
  let sessions = 0;
  class FakePC {
    constructor() { this.closed = false; this.connectionState = 'new'; this.iceGatheringState = 'complete'; pcs.push(this); }
    addTransceiver(kind, init) { return { kind, direction: init.direction, sender: { replaceTrack: () => Promise.resolve() } }; }
    createOffer() { return Promise.resolve({ type: 'offer', sdp: 'v=0 offer' }); }
    setLocalDescription(d) { this.localDescription = d; return Promise.resolve(); }
    setRemoteDescription() {
      setTimeout(() => {
        this.ontrack({ track: { kind: 'video' } });
        this.ontrack({ track: { kind: 'audio' } });
        this.connectionState = 'connected';
        this.onconnectionstatechange();
      }, 5);
      return Promise.resolve();
    }
    getStats() {
      return Promise.resolve(new Map([
        ['p', { type: 'candidate-pair', nominated: true, state: 'succeeded', localCandidateId: 'l', remoteCandidateId: 'r' }],
        ['l', { candidateType: 'host' }], ['r', { candidateType: 'srflx' }]]));
    }
    close() { this.closed = true; }
  }
  const g = {
    document: { getElementById: (id) => els[id] },
    localStorage: { m: new Map(), getItem(k) { return this.m.get(k) ?? null; }, setItem(k, v) { this.m.set(k, v); }, removeItem(k) { this.m.delete(k); } },
    location: { hash: '#c=' + cred, pathname: '/box/' + box },
    history: { replaceState() {} },
    navigator: {},
    RTCPeerConnection: FakePC,
    MediaStream: class { constructor() { this.tracks = []; } addTrack(t) { this.tracks.push(t); } },
    fetch: (url, opt = {}) => {
      requests.push({ url, method: opt.method || 'GET', auth: opt.headers && opt.headers.Authorization });
      if (url.startsWith('/box/' + box + '/media?v=')) {
        const v = Number(url.split('=')[1]);
        return new Promise((resolve) => polls.push({ v, resolve: (m) => resolve({ status: 200, ok: true, json: () => Promise.resolve(m) }) }));
      }
      if (opt.method === 'POST') {
        const loc = url + '/s' + ++sessions;
        return Promise.resolve({ status: 201, headers: { get: (h) => (h === 'Location' ? loc : null) }, text: () => Promise.resolve('v=0 answer') });
      }
      return Promise.resolve({ status: 200, ok: true });
    },
  };
  g.window = g;
  g.isSecureContext = false;
  new Function(...Object.keys(g), scripts)(...Object.values(g));

  const until = async (what, f) => {
    for (let i = 0; i < 200; i++) {
      if (f()) return;
      await new Promise((r) => setTimeout(r, 10));
    }
    assert.fail('timed out waiting for ' + what);
  };
  const answer = async (v, m) => {
    await until('a long poll after version ' + v, () => polls.some((p) => p.v === v));
    polls.find((p) => p.v === v).resolve(m);
  };

  // The first poll (version 0) says where the media is: the box.
  await answer(0, { v: 1, mode: 'direct', whep: '/box/' + box + '/whep' });
  await until('live, direct', () => els.msg.textContent === 'live, direct');
  assert.equal(pcs.length, 1);
  assert.ok(requests.some((r) => r.method === 'POST' && r.url === '/box/' + box + '/whep' && r.auth === 'Bearer ' + cred));
  assert.equal(els.v.srcObject.tracks.length, 2);
  assert.equal(g.localStorage.getItem('callbox-remote-' + box), cred);

  // The box moves its phones to the hub.
  const direct = els.v.srcObject;
  await answer(1, { v: 2, mode: 'hub', whep: '/box/' + box + '/hub/whep' });
  await until('the hub session on screen', () => els.msg.dataset.path === 'hub');
  assert.equal(pcs.length, 2);
  assert.ok(requests.some((r) => r.method === 'POST' && r.url === '/box/' + box + '/hub/whep'));
  assert.notEqual(els.v.srcObject, direct, 'the visible video shows the new session');
  assert.ok(pcs[0].closed, 'the old session is let go');
  assert.ok(requests.some((r) => r.method === 'DELETE' && r.url === '/box/' + box + '/whep/s1'), 'and DELETEd');
  assert.match(els.msg.textContent, /via hub/);
  assert.equal(g.callboxS7.mode, 'hub');

  // And back.
  await answer(2, { v: 3, mode: 'direct', whep: '/box/' + box + '/whep' });
  await until('back on the box', () => els.msg.dataset.path === 'direct');
  assert.equal(pcs.length, 3);
  assert.ok(pcs[1].closed);
  assert.ok(requests.some((r) => r.method === 'DELETE' && r.url === '/box/' + box + '/hub/whep/s2'));
  assert.equal(els.msg.textContent, 'live, direct');
  assert.deepEqual(g.callboxS7.moves.map((m) => m.mode), ['direct', 'hub', 'direct']);
  // The next poll waits for version 3; nothing else happens.
  await until('the next poll', () => polls.some((p) => p.v === 3));
  assert.equal(pcs.length, 3);
});
