// Sign-in: role + device ID + password + room, validated per §3, then the page server's
// school login (POST login): the directory's password for that client ID, and the room must be
// one the person attends. On success the server sets the sign-in cookie and the browser goes on
// to teacher.html or student.html, which fetches its own token (POST token) with that cookie.
// The password is sent once, to this page's own server, and kept nowhere; the token of the
// login answer is not kept either.
import { clientId, clientIdError, forgetSavedPasswords, roomIdError } from './core.js';

const cfg = window.CLASSROOM || {};
const groups = { teacher: (cfg.teacherGroups || ['GID_teacher'])[0], student: (cfg.studentGroups || ['GID_student'])[0] };
const $ = (id) => document.getElementById(id);
const form = $('signin');
const params = new URLSearchParams(location.search);
const store = (() => {
  try {
    return localStorage;
  } catch {
    return null;
  }
})();
// Earlier versions kept a password per client ID in localStorage: no more.
forgetSavedPasswords(store);

// Prefill: what the page was sent back with, else the last sign-in on this browser (role,
// device and room only: nothing secret).
let last = {};
try {
  last = JSON.parse((store && store.getItem('classroom.signin')) || '{}');
} catch {
  last = {};
}
const role = params.get('role') || last.role;
if (role === 'teacher' || role === 'student') $(`role-${role}`).checked = true;
$('device').value = params.get('device') || last.device || '';
$('room').value = params.get('room') || last.room || '1';
if ($('device').value) $('password').focus();

function current() {
  const r = form.role.value;
  return { role: r, group: groups[r], device: $('device').value.trim(), room: $('room').value.trim(), password: $('password').value };
}

function check(showEmpty) {
  const c = current();
  $('client-id').textContent = clientId(c.group, c.device || '…');
  let err = null;
  if (c.device || showEmpty) err = clientIdError(c.group, c.device);
  if (!err && (c.room || showEmpty)) err = roomIdError(c.room);
  if (!err && showEmpty && !c.password) err = 'enter the password of this client ID (the school directory)';
  if (!err && showEmpty && !cfg.wsUrl) err = 'no broker is configured (is the local stack up? `make up`, then `make web`)';
  showError(err || '', err);
  return err;
}

function showError(text, err = text) {
  $('error').textContent = text;
  $('device').setAttribute('aria-invalid', String(!!err && /device|client/.test(err)));
  $('room').setAttribute('aria-invalid', String(!!err && /room/.test(err)));
  $('password').setAttribute('aria-invalid', String(!!err && /password/.test(err)));
}

form.addEventListener('input', () => check(false));
form.addEventListener('submit', async (ev) => {
  ev.preventDefault();
  if (check(true)) return;
  const c = current();
  const id = clientId(c.group, c.device);
  const button = $('enter');
  button.disabled = true;
  $('error').textContent = '';
  let res;
  let body = {};
  try {
    res = await fetch('login', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ clientId: id, password: c.password, room: c.room }),
      credentials: 'same-origin',
      cache: 'no-store',
    });
    body = await res.json().catch(() => ({}));
  } catch (e) {
    button.disabled = false;
    showError(`the school login did not answer (${e.message}): is \`make web\` still running?`);
    return;
  }
  if (!res.ok) {
    button.disabled = false;
    const msg = body.message || `sign-in refused (HTTP ${res.status})`;
    showError(msg);
    document.body.dataset.refused = String(body.error || res.status);
    if (res.status === 401) $('password').select();
    if (res.status === 403) $('room').select();
    return;
  }
  // Signed in: the room page fetches its own token with the cookie. Nothing secret is kept.
  $('password').value = '';
  try {
    if (store) store.setItem('classroom.signin', JSON.stringify({ role: c.role, device: c.device, room: c.room }));
  } catch {
    // storage disabled: no prefill next time
  }
  location.href = `${c.role}.html?${new URLSearchParams({ device: c.device, room: c.room })}`;
});
check(false);
// Sent back by a room page (no sign-in, or it ended): say why, after the form's own check.
if (params.get('error')) $('error').textContent = params.get('error');
