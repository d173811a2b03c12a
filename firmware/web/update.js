// The update section (docs/update.md): for a paired phone, shows the last
// update's state and uploads a signed RAUC bundle to POST /api/update. The
// box checks the signature before anything is written, installs into the
// inactive slot and restarts into it; the section follows the progress.

const TOKEN_KEY = 'callbox.token';
const $ = (id) => document.getElementById(id);

function token() {
  try { return localStorage.getItem(TOKEN_KEY) || ''; } catch { return ''; }
}

const words = {
  idle: 'No update installed yet.',
  checking: 'Checking the bundle’s signature…',
  installing: 'Installing…',
  installed: 'Installed. The box restarts into the new version.',
  trying: 'Trying the new version…',
  good: 'Update done.',
  failed: 'The update failed.',
  refused: 'The bundle was refused; nothing was changed.',
};

function show(st) {
  const section = $('update');
  section.hidden = false;
  section.dataset.state = st.state;
  $('update-state').textContent = words[st.state] || st.state;
  $('update-message').textContent = st.message || (st.available ? '' : st.unavailable || '');
  const bar = $('update-progress');
  bar.hidden = st.state !== 'installing';
  bar.value = st.progress || 0;
  $('update-form').hidden = !st.available || st.state === 'checking' || st.state === 'installing';
}

async function poll() {
  const t = token();
  if (!t) return; // only paired phones see the section
  try {
    const r = await fetch(`/api/update?token=${encodeURIComponent(t)}`, { cache: 'no-store' });
    if (r.ok) show(await r.json());
  } catch { /* the box is restarting */ }
}

async function upload(ev) {
  ev.preventDefault();
  const file = $('update-file').files[0];
  if (!file) return;
  show({ state: 'checking', available: true, message: `uploading ${file.name}…` });
  try {
    const r = await fetch(`/api/update?token=${encodeURIComponent(token())}`, {
      method: 'POST', body: file, headers: { 'Content-Type': 'application/octet-stream' },
    });
    const body = await r.json().catch(() => ({}));
    if (!r.ok) show({ state: 'failed', available: true, message: body.error || r.statusText });
  } catch (e) {
    show({ state: 'failed', available: true, message: String(e) });
  }
}

$('update-form').addEventListener('submit', upload);
poll();
setInterval(poll, 2000);
