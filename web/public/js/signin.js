// Sign-in: role + device ID + password + room, validated per SPEC §3, then on to teacher.html
// or student.html with the choice in the query string. The password stays in this browser
// (localStorage, per client ID, like a device keeps its credential), never in a URL sent to a
// server: the links `make web` prints carry it in the fragment.
import { clientId, clientIdError, passwordFromHash, roomIdError, savePassword, savedPassword } from './core.js';

const cfg = window.CLASSROOM || {};
const groups = { teacher: (cfg.teacherGroups || ['GID_teacher'])[0], student: (cfg.studentGroups || ['GID_student'])[0] };
const $ = (id) => document.getElementById(id);
const form = $('signin');
const params = new URLSearchParams(location.search);

// Prefill: what the page was sent back with, else the last sign-in on this browser.
let last = {};
try {
  last = JSON.parse(localStorage.getItem('classroom.signin') || '{}');
} catch {
  last = {};
}
const role = params.get('role') || last.role;
if (role === 'teacher' || role === 'student') $(`role-${role}`).checked = true;
$('device').value = params.get('device') || last.device || '';
$('room').value = params.get('room') || last.room || '1';
$('ws').value = params.get('ws') || cfg.wsUrl || '';
if (params.get('error')) $('error').textContent = params.get('error');
const fromLink = passwordFromHash(location, history);
const store = (() => {
  try {
    return localStorage;
  } catch {
    return null;
  }
})();

function current() {
  const r = form.role.value;
  return { role: r, group: groups[r], device: $('device').value.trim(), room: $('room').value.trim(), ws: $('ws').value.trim(), password: $('password').value };
}
// The password remembered for the client ID being typed (unless the user typed one).
let typedPassword = false;
$('password').addEventListener('input', () => {
  typedPassword = true;
});
function prefillPassword() {
  if (typedPassword) return;
  const c = current();
  $('password').value = fromLink || savedPassword(store, clientId(c.group, c.device)) || '';
}
prefillPassword();

function check(showEmpty) {
  const c = current();
  $('client-id').textContent = clientId(c.group, c.device || '…');
  let err = null;
  if (c.device || showEmpty) err = clientIdError(c.group, c.device);
  if (!err && (c.room || showEmpty)) err = roomIdError(c.room);
  if (!err && showEmpty && !c.password) err = 'enter the password of this client ID';
  if (!err && showEmpty && !/^wss?:\/\//.test(c.ws)) err = 'the broker URL must start with ws:// or wss://';
  $('error').textContent = err || '';
  $('device').setAttribute('aria-invalid', String(!!err && /device|client/.test(err)));
  $('room').setAttribute('aria-invalid', String(!!err && /room/.test(err)));
  return err;
}

form.addEventListener('input', (ev) => {
  if (ev.target.id !== 'password') prefillPassword();
  check(false);
});
form.addEventListener('submit', (ev) => {
  ev.preventDefault();
  if (check(true)) return;
  const c = current();
  localStorage.setItem('classroom.signin', JSON.stringify({ role: c.role, device: c.device, room: c.room }));
  savePassword(store, clientId(c.group, c.device), c.password);
  const q = new URLSearchParams({ device: c.device, room: c.room });
  if (c.ws && c.ws !== cfg.wsUrl) q.set('ws', c.ws);
  location.href = `${c.role}.html?${q}`;
});
check(false);
