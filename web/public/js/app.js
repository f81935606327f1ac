// The classroom page (teacher.html and student.html; the role is <body data-role>).
// MQTT 5 over WebSocket with MQTT.js (window.mqtt, vendor/mqtt.min.js), a persistent session
// (clean: false + session expiry) and QoS 1 subscriptions, so a page that was away gets what
// it missed (SPEC §3). Message shapes: SPEC §4.5 and shared/mapping/src/notice.rs.
import {
  TOPIC,
  SeenIds,
  applyMuteNotice,
  clientId,
  clientIdError,
  groupOf,
  isMuted,
  isStale,
  newMsgId,
  parseIncoming,
  passwordFromHash,
  savePassword,
  savedPassword,
  rejectionText,
  roomIdError,
  subscriptions,
  STALE_MS,
} from './core.js';

const cfg = window.CLASSROOM || {};
const role = document.body.dataset.role;
const teacherGroups = cfg.teacherGroups || ['GID_teacher'];
const studentGroups = cfg.studentGroups || ['GID_student'];
const params = new URLSearchParams(location.search);
const device = (params.get('device') || '').trim();
const room = (params.get('room') || '').trim();
const group = role === 'teacher' ? teacherGroups[0] : studentGroups[0];
const wsUrl = params.get('ws') || cfg.wsUrl || '';
const staleMs = Number(cfg.staleMs) > 0 ? Number(cfg.staleMs) : STALE_MS;
const maxChars = Number(cfg.maxMessageChars) > 0 ? Number(cfg.maxMessageChars) : null;

const invalid = clientIdError(group, device) || roomIdError(room) || (!/^wss?:\/\//.test(wsUrl) && 'no broker WebSocket URL (is the local stack up? `make up`, then `make web`)');
if (invalid) {
  const back = new URLSearchParams({ role, device, room, error: invalid });
  location.replace(`index.html?${back}`);
  throw new Error(invalid);
}

const me = clientId(group, device);
const $ = (id) => document.getElementById(id);
const el = (tag, cls, text) => {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text != null) e.textContent = text;
  return e;
};
const store = (() => {
  try {
    localStorage.setItem('classroom.probe', '1');
    return localStorage;
  } catch {
    return null;
  }
})();
// The broker checks this client ID's password (the local stack's roster, as IoT Core checks a
// device certificate): from a `make web` link's fragment, else what the sign-in remembered.
const linkPassword = passwordFromHash(location, history);
if (linkPassword) savePassword(store, me, linkPassword);
const password = linkPassword || savedPassword(store, me);
if (!password) {
  const back = new URLSearchParams({ role, device, room, error: `sign in with the password of ${me}` });
  location.replace(`index.html?${back}`);
  throw new Error('no password');
}
const key = (what) => `classroom.${me}.${room}.${what}`;
const load = (what, dflt) => {
  try {
    return JSON.parse((store && store.getItem(key(what))) || 'null') ?? dflt;
  } catch {
    return dflt;
  }
};
const save = (what, v) => {
  try {
    if (store) store.setItem(key(what), JSON.stringify(v));
  } catch {
    /* storage full: in memory only */
  }
};

// --- state --------------------------------------------------------------------------------
const seen = new SeenIds(store, key('seen'));
/** clientId -> {online: bool|null, ts, muted, pending} */
const members = new Map(Object.entries(load('members', {})));
let mute = load('mute', null); // student: our own mute state in this room
const sent = new Map(); // our msgId -> text, to quote a rejected message
let connState = 'connecting';
let staleDropped = 0;
let muteTimer = null;

$('me').textContent = me;
$('me').title = `client ID ${me}`;
$('room-name').textContent = room;
document.title = `Room ${room} — ${role} ${device}`;
$('leave').href = `index.html?${new URLSearchParams({ role, device, room })}`;

// --- rendering ----------------------------------------------------------------------------
function fmtTime(ts) {
  if (ts == null) return '';
  const d = new Date(ts);
  const t = d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', second: '2-digit' });
  return d.toDateString() === new Date().toDateString() ? t : `${d.toLocaleDateString()} ${t}`;
}

function peerLabel(id) {
  const span = el('span', 'peer');
  span.dataset.peer = id;
  span.title = id;
  const g = groupOf(id);
  const dev = g ? id.slice(g.length + 3) : id;
  const isTeacher = teacherGroups.includes(g);
  if (isTeacher) span.classList.add('is-teacher');
  span.append(el('b', null, id === me ? 'You' : dev), ' ', el('small', null, isTeacher ? 'teacher' : studentGroups.includes(g) ? 'student' : g));
  return span;
}

const list = $('messages');
function addLine(li, ts) {
  li.dataset.ts = String(ts ?? Date.now());
  const nearBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 80;
  // Keep time order (a persistent session delivers in order; this guards late duplicates).
  let before = null;
  for (let n = list.lastElementChild; n; n = n.previousElementSibling) {
    if (Number(n.dataset.ts) <= Number(li.dataset.ts)) break;
    before = n;
  }
  list.insertBefore(li, before);
  if (nearBottom || li.classList.contains('mine')) list.scrollTop = list.scrollHeight;
}

function noticeLine(kind, text, ts) {
  const li = el('li', `notice notice-${kind}`);
  li.append(el('span', 'text', text));
  if (ts != null) li.append(el('time', 'time', fmtTime(ts)));
  addLine(li, ts);
  return li;
}

function renderChat(m) {
  const b = m.body;
  const li = el('li', 'msg');
  li.dataset.msgId = m.id || '';
  if (b.peer === me) li.classList.add('mine');
  const head = el('div', 'msg-head');
  head.append(peerLabel(String(b.peer || '?')));
  const time = el('time', 'time', fmtTime(m.ts));
  if (m.ts != null) time.dateTime = new Date(m.ts).toISOString();
  head.append(time);
  if (b.masked) {
    li.classList.add('masked');
    const tag = el('span', 'tag tag-masked', 'masked');
    tag.title = 'A banned word in this message was masked by the server';
    head.append(tag);
  }
  li.append(head, el('div', 'msg-text', String(b.msg ?? '')));
  addLine(li, m.ts);
}

function renderMembers() {
  const ul = $('member-list');
  ul.replaceChildren();
  const ids = [...members.keys()].sort((a, b) => {
    const ta = teacherGroups.includes(groupOf(a)) ? 0 : 1;
    const tb = teacherGroups.includes(groupOf(b)) ? 0 : 1;
    return ta - tb || a.localeCompare(b);
  });
  let online = 0;
  for (const id of ids) {
    const m = members.get(id);
    if (m.online) online++;
    const li = el('li', 'member');
    li.dataset.clientId = id;
    li.dataset.state = m.online ? 'online' : m.online === false ? 'offline' : 'unknown';
    const dot = el('span', 'dot');
    dot.title = li.dataset.state;
    const name = el('span', 'name');
    name.append(dot, peerLabel(id));
    const state = el('span', 'state', li.dataset.state);
    li.append(name, state);
    if (m.muted) {
      li.classList.add('is-muted');
      li.append(el('span', 'tag tag-muted', m.mutedUntil ? `muted until ${fmtTime(m.mutedUntil)}` : 'muted'));
    }
    if (role === 'teacher' && studentGroups.includes(groupOf(id))) {
      const actions = el('span', 'actions');
      const muteBtn = el('button', 'mute', 'Mute');
      muteBtn.type = 'button';
      muteBtn.dataset.target = id;
      muteBtn.disabled = !!m.muted || !!m.pending || connState !== 'online';
      muteBtn.addEventListener('click', () => command('mute', id));
      const unmuteBtn = el('button', 'unmute', 'Unmute');
      unmuteBtn.type = 'button';
      unmuteBtn.dataset.target = id;
      unmuteBtn.disabled = !m.muted || !!m.pending || connState !== 'online';
      unmuteBtn.addEventListener('click', () => command('unmute', id));
      actions.append(muteBtn, unmuteBtn);
      li.append(actions);
    }
    ul.append(li);
  }
  $('member-count').textContent = `${online}/${ids.length}`;
  $('members-hint').textContent = ids.length
    ? ''
    : 'Members appear as they join or come online.';
  save('members', Object.fromEntries([...members].map(([k, v]) => [k, { ...v, pending: false }])));
}

function updateComposer() {
  const input = $('input');
  const note = $('composer-note');
  const muted = role === 'student' && isMuted(mute);
  let why = '';
  if (muted) {
    why = mute.until
      ? `You are muted by the teacher until ${fmtTime(mute.until)}: you cannot send messages.`
      : 'You are muted by the teacher: you cannot send messages until you are unmuted.';
  } else if (connState !== 'online') {
    why = connState === 'taken-over' || connState === 'refused' ? $('conn').textContent : 'Not connected: messages can be sent once back online.';
  }
  input.disabled = !!why;
  $('send').disabled = !!why;
  input.placeholder = muted ? 'Muted by the teacher' : why ? 'Offline…' : 'Message the room';
  note.textContent = why;
  note.dataset.kind = muted ? 'muted' : why ? 'offline' : '';
  document.body.classList.toggle('is-muted', muted);
  clearTimeout(muteTimer);
  if (muted && mute.until) muteTimer = setTimeout(updateComposer, Math.min(mute.until - Date.now() + 50, 2 ** 31 - 1));
}

function setConn(state, text) {
  connState = state;
  const c = $('conn');
  c.dataset.state = state;
  c.textContent = text || state;
  document.body.dataset.conn = state;
  const self = members.get(me);
  if (self) self.online = state === 'online';
  updateComposer();
  renderMembers();
}

// --- members ------------------------------------------------------------------------------
/** Applies an observation of `id` at `ts`: online/offline from a status notice (latest wins). */
function observe(id, online, ts, { announce = false } = {}) {
  if (!id) return;
  const m = members.get(id) || { online: null, ts: 0, muted: false };
  const at = ts ?? Date.now();
  if (at < (m.ts || 0)) return;
  const changed = m.online !== online;
  m.online = online;
  m.ts = at;
  members.set(id, m);
  if (announce && changed && id !== me && !isStale(ts, Date.now(), staleMs)) {
    noticeLine('status', `${id} is ${online ? 'online' : 'offline'}`, ts);
  }
  renderMembers();
}

// --- MQTT ---------------------------------------------------------------------------------
if (!window.mqtt) {
  setConn('refused', 'MQTT library missing (vendor/mqtt.min.js: run npm ci in web/)');
  throw new Error('mqtt.js not loaded');
}
const client = window.mqtt.connect(wsUrl, {
  clientId: me,
  username: me,
  password,
  protocolVersion: 5,
  clean: false,
  keepalive: 30,
  reconnectPeriod: 2000,
  connectTimeout: 10_000,
  resubscribe: true,
  properties: { sessionExpiryInterval: 24 * 3600 },
});
window.classroom = { client, me, room, role, members, get staleDropped() { return staleDropped; } };

let everConnected = false;
// One client ID, one page: the broker closes the older connection when the same ID connects
// again, and two pages would take it from each other forever. The newest page wins: it tells
// the other pages of this browser (BroadcastChannel); across browsers, a connection the broker
// keeps closing right after CONNACK is taken as the same sign (Mosquitto 2.0 closes without
// the MQTT 5 DISCONNECT 0x8E "session taken over").
const tab = newMsgId();
const channel = typeof BroadcastChannel === 'function' ? new BroadcastChannel('classroom') : null;
if (channel) {
  channel.onmessage = (ev) => {
    const d = ev.data || {};
    if (d.type === 'claim' && d.clientId === me && d.tab !== tab && connState !== 'taken-over') {
      stop('taken-over', 'signed in elsewhere: this client ID is open in another page');
    }
  };
}
let connectedAt = 0;
let quickCloses = 0;
function stop(state, text) {
  client.end(true);
  setConn(state, text);
  $('reconnect').hidden = false;
}
client.on('connect', (connack) => {
  everConnected = true;
  connectedAt = Date.now();
  if (channel) channel.postMessage({ type: 'claim', clientId: me, tab });
  observe(me, true, Date.now());
  setConn('online', 'online');
  const topics = Object.fromEntries(subscriptions(room, me).map((t) => [t, { qos: 1 }]));
  client.subscribe(topics, (err, granted) => {
    const refused = err ? [String(err.message || err)] : (granted || []).filter((g) => g.qos >= 128).map((g) => g.topic);
    if (refused.length) noticeLine('error', `Subscription refused: ${refused.join(', ')}`, Date.now());
    // Entering the room: the join makes us a member (status notices); idempotent.
    client.publish(TOPIC.command, JSON.stringify({ type: 'join', roomId: room }), { qos: 1 });
  });
  if (!connack.sessionPresent) console.info('classroom: new session');
});
client.on('reconnect', () => setConn('reconnecting', 'reconnecting…'));
client.on('offline', () => {
  if (connState === 'online') setConn('reconnecting', 'reconnecting…');
});
client.on('close', () => {
  if (connState !== 'online') return;
  quickCloses = connectedAt && Date.now() - connectedAt < 3000 ? quickCloses + 1 : 0;
  if (quickCloses >= 3) {
    stop('taken-over', 'signed in elsewhere? the broker keeps closing this connection');
    return;
  }
  setConn('reconnecting', 'reconnecting…');
});
client.on('disconnect', (packet) => {
  // MQTT 5 server DISCONNECT. 0x8E: another connection with our client ID took the session.
  if (packet && packet.reasonCode === 0x8e) stop('taken-over', 'signed in elsewhere (same client ID)');
});
client.on('error', (err) => {
  const code = err && err.code;
  if (code === 0x86 || code === 0x87) {
    stop('refused', `refused by the broker (${err.message}): wrong password for ${me}? sign in again`);
  } else if (code === 0x85 || code === 0x8c) {
    stop('refused', `refused by the broker: ${err.message}`);
  } else if (!everConnected) {
    setConn('reconnecting', `cannot reach the broker (${err.message || err}); retrying…`);
  }
});

client.on('message', (topic, payload, packet) => {
  const m = parseIncoming(topic, payload, packet.properties);
  if (m.kind === 'invalid') {
    console.warn('classroom: ignored', topic, m.error);
    return;
  }
  if (!seen.firstTime(m.id)) return; // a duplicate (QoS 1 redelivery, redriven record)
  const b = m.body;
  switch (m.kind) {
    case 'chat':
      if (b.roomId != null && String(b.roomId) !== room) return;
      if (isStale(m.ts, Date.now(), staleMs)) {
        staleDropped++;
        document.body.dataset.staleDropped = String(staleDropped);
        return;
      }
      renderChat(m);
      if (b.peer && !members.has(b.peer)) observe(String(b.peer), true, m.ts);
      break;
    case 'status':
      if (b.type === 'online' || b.type === 'offline') observe(String(b.clientId || ''), b.type === 'online', m.ts, { announce: true });
      break;
    case 'system':
      if (isStale(m.ts, Date.now(), staleMs)) {
        staleDropped++;
        document.body.dataset.staleDropped = String(staleDropped);
        return;
      }
      noticeLine('system', `System: ${b.msg ?? ''}`, m.ts);
      break;
    case 'p2p':
      onP2p(m);
      break;
    default:
      break;
  }
});

function onP2p(m) {
  const b = m.body;
  const forUs = b.roomId == null || String(b.roomId) === room;
  switch (b.type) {
    case 'mute':
    case 'unmute': {
      if (!forUs) return;
      const before = isMuted(mute);
      mute = applyMuteNotice(mute, b, m.ts);
      save('mute', mute);
      updateComposer();
      const now = isMuted(mute);
      if (b.type === 'mute' && now && !isStale(m.ts, Date.now(), staleMs)) {
        noticeLine('mute', mute.until ? `The teacher muted you until ${fmtTime(mute.until)}.` : 'The teacher muted you.', m.ts);
      } else if (b.type === 'unmute' && before && !now) {
        noticeLine('unmute', 'The teacher unmuted you: you can send messages again.', m.ts);
      }
      break;
    }
    case 'rejected': {
      if (!forUs) return;
      const text = b.refMsgId && sent.get(String(b.refMsgId));
      const li = noticeLine('rejected', `Not delivered${text != null ? ` (“${text.length > 80 ? `${text.slice(0, 80)}…` : text}”)` : ''}: ${rejectionText(b.reason)}.`, m.ts);
      li.dataset.reason = String(b.reason || '');
      break;
    }
    case 'members': {
      // The room's members when we joined (teachers): online state (latest wins against the
      // status notices) and mute state; our own entry is what our connection says.
      if (!forUs || !Array.isArray(b.members)) return;
      for (const x of b.members) {
        const id = String((x && x.clientId) || '');
        if (!id || id === me) continue;
        observe(id, !!x.online, m.ts);
        const mem = members.get(id);
        if (mem && !mem.pending) mem.muted = !!x.muted;
      }
      renderMembers();
      break;
    }
    case 'commandResult': {
      if (!forUs) return;
      if (b.command === 'join') {
        document.body.dataset.joined = String(!!b.ok);
        return;
      }
      const target = b.target ? String(b.target) : '';
      const mem = members.get(target) || { online: null, ts: 0 };
      mem.pending = false;
      if (b.ok && b.command === 'mute') mem.muted = true;
      if (b.ok && b.command === 'unmute') {
        mem.muted = false;
        mem.mutedUntil = null;
      }
      members.set(target, mem);
      renderMembers();
      noticeLine('result', b.ok ? `${b.command === 'mute' ? 'Muted' : 'Unmuted'} ${target}.` : `Could not ${b.command} ${target} (a newer command won).`, m.ts);
      break;
    }
    default:
      break;
  }
}

function command(type, target) {
  const body = { type, roomId: room, target };
  if (type === 'mute') {
    const secs = Number($('mute-for') ? $('mute-for').value : 0);
    if (secs > 0) body.durationSecs = secs;
    const mem = members.get(target);
    if (mem) mem.mutedUntil = secs > 0 ? Date.now() + secs * 1000 : null;
  }
  const mem = members.get(target);
  if (mem) mem.pending = true;
  renderMembers();
  client.publish(TOPIC.command, JSON.stringify(body), { qos: 1 }, (err) => {
    if (err) {
      if (mem) mem.pending = false;
      renderMembers();
      noticeLine('error', `Could not send the ${type} command: ${err.message}`, Date.now());
    }
  });
}

// --- composer -----------------------------------------------------------------------------
$('composer').addEventListener('submit', (ev) => {
  ev.preventDefault();
  const input = $('input');
  const text = input.value.trim();
  if (!text || input.disabled) return;
  const msgId = newMsgId();
  sent.set(msgId, text);
  if (sent.size > 200) sent.delete(sent.keys().next().value);
  client.publish(TOPIC.chat, JSON.stringify({ roomId: room, msg: text, msgId }), { qos: 1 }, (err) => {
    if (err) noticeLine('error', `Not sent: ${err.message}`, Date.now());
  });
  input.value = '';
  updateLength();
  input.focus();
});
function updateLength() {
  const n = [...$('input').value].length;
  const note = $('composer-note');
  if (note.dataset.kind) return;
  note.textContent = maxChars && n > maxChars ? `${n}/${maxChars} characters: the server will refuse a message this long.` : '';
}
$('input').addEventListener('input', updateLength);

// --- members panel (a drawer on a phone) ----------------------------------------------------
$('toggle-members').addEventListener('click', () => document.body.classList.toggle('show-members'));
if (role === 'teacher') {
  const wrap = el('label', 'mute-for');
  wrap.append('Mute for ');
  const sel = el('select');
  sel.id = 'mute-for';
  for (const [v, t] of [['0', 'until unmuted'], ['300', '5 minutes'], ['900', '15 minutes'], ['3600', '1 hour']]) {
    const o = el('option', null, t);
    o.value = v;
    sel.append(o);
  }
  wrap.append(sel);
  $('members').insertBefore(wrap, $('member-list'));
}
$('leave').addEventListener('click', () => client.end());
$('reconnect').addEventListener('click', () => {
  $('reconnect').hidden = true;
  quickCloses = 0;
  setConn('connecting', 'connecting…');
  client.reconnect();
});

members.set(me, { ...(members.get(me) || {}), online: false, ts: 0 });
setConn('connecting', 'connecting…');
