// The paired phones (docs/security.md, "Unpairing one phone"): for a
// paired phone, lists the box's paired phones (GET /api/phones) and
// unpairs one (DELETE /api/phones/<id>) after a confirmation. The phone
// unpaired loses its LAN token and its away-from-home link at once, and
// its live picture ends.

const TOKEN_KEY = 'callbox.token';
const $ = (id) => document.getElementById(id);

function token() {
  try { return localStorage.getItem(TOKEN_KEY) || ''; } catch { return ''; }
}

const auth = () => ({ Authorization: `Bearer ${token()}` });

function show(phones) {
  const list = $('phones-list');
  list.replaceChildren(...phones.map((p) => {
    const li = document.createElement('li');
    li.dataset.id = p.id;
    const when = p.paired ? new Date(p.paired).toLocaleDateString() : '';
    const label = document.createElement('span');
    label.textContent = `${p.name || 'phone'}${p.this ? ' (this phone)' : ''}${when ? `, paired ${when}` : ''}`;
    const btn = document.createElement('button');
    btn.type = 'button';
    btn.textContent = 'Unpair';
    btn.dataset.id = p.id;
    btn.addEventListener('click', () => unpair(p));
    li.append(label, btn);
    return li;
  }));
  $('phones').hidden = phones.length === 0;
}

async function load() {
  if (!token()) { $('phones').hidden = true; return; }
  try {
    const r = await fetch('/api/phones', { headers: auth(), cache: 'no-store' });
    if (!r.ok) { $('phones').hidden = true; return; }
    show((await r.json()).phones || []);
  } catch { /* the box is restarting */ }
}

async function unpair(p) {
  const who = p.this ? 'this phone' : (p.name || 'that phone');
  if (!window.confirm(`Unpair ${who}? It stops seeing the box at once, at home and away, until it is paired again with the box's buttons.`)) return;
  const status = $('phones-status');
  try {
    const r = await fetch(`/api/phones/${encodeURIComponent(p.id)}`, { method: 'DELETE', headers: auth() });
    const body = await r.json().catch(() => ({}));
    status.textContent = r.ok ? `Unpaired ${p.name || p.id}.` : `Could not unpair: ${body.error || r.statusText}`;
  } catch (e) {
    status.textContent = `Could not unpair: ${e}`;
  }
  load();
}

$('phones').addEventListener('toggle', () => { if ($('phones').open) load(); });
$('phones').addEventListener('click', (e) => e.stopPropagation());
load();
// Shown soon after this phone pairs (its token appears); refreshed while open.
let ticks = 0;
setInterval(() => { ticks++; if ($('phones').hidden || ($('phones').open && ticks % 5 === 0)) load(); }, 2000);
