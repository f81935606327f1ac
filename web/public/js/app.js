// The classroom page (teacher.html and student.html; the role is <body data-role>).
// MQTT 5 over WebSocket with MQTT.js (window.mqtt, vendor/mqtt.min.js), a persistent session
// (clean: false + session expiry) and QoS 1 subscriptions, so a page that was away gets what
// it missed (§3). Message shapes: §4.5 and shared/mapping/src/notice.rs.
//
// Sign-in (§8): username = the client ID, password = a classroom token for this room from
// the page server (POST token, with the cookie of the school login). The token lives in this
// page's memory only and no longer than its lifetime; at 80 % of it the page fetches a fresh one
// and reconnects at once with it (same persistent session, so nothing is lost; QoS 1 messages
// in flight are resent). The broker URL is the page server's configuration (/config.js), never
// the page's own URL: a link cannot send a credential elsewhere (and the CSP would stop it).
import {
  TOPIC,
  SeenIds,
  applyMuteNotice,
  clientId,
  clientIdError,
  groupOf,
  isMuted,
  isStale,
  forgetSavedPasswords,
  newMsgId,
  parseIncoming,
  rejectionText,
  roomIdError,
  subscriptions,
  tokenTimes,
  tokenUsable,
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
// Only the page server's configuration names the broker (no `?ws=`: a link must not choose
// where this page sends its credential).
const wsUrl = cfg.wsUrl || '';
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
// Earlier versions kept a password per client ID in localStorage: no more.
forgetSavedPasswords(store);
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
/** Refusals about this client rather than one room: shown whichever room the notice names. */
const CLIENT_REFUSALS = new Set(['not_enrolled', 'rate_limited', 'too_many_rooms']);
let connState = 'connecting';
const states = []; // every connection state this page went through (tests read it)
let staleDropped = 0;
let muteTimer = null;
/** Offline notices wait this long: a member back online by then (a token renewal's reconnect) is not announced. */
const OFFLINE_GRACE_MS = 5000;
const pendingOffline = new Map(); // clientId -> timer

$('me').textContent = me;
$('me').title = `client ID ${me}`;
$('room-name').textContent = room;
document.title = `Room ${room} — ${role} ${device}`;
const signInUrl = (error) => `index.html?${new URLSearchParams({ role, device, room, ...(error ? { error } : {}) })}`;
$('leave').href = signInUrl();

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
    why = ['taken-over', 'refused', 'signed-out'].includes(connState) ? $('conn').textContent : 'Not connected: messages can be sent once back online.';
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
  if (states[states.length - 1] !== state) states.push(state);
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
    if (!online) {
      clearTimeout(pendingOffline.get(id));
      pendingOffline.set(id, setTimeout(() => {
        pendingOffline.delete(id);
        if (members.get(id) && members.get(id).online === false) noticeLine('status', `${id} is offline`, ts);
      }, OFFLINE_GRACE_MS));
    } else if (pendingOffline.has(id)) {
      // Back within the grace period (a reconnect, e.g. with a renewed token): nothing to say.
      clearTimeout(pendingOffline.get(id));
      pendingOffline.delete(id);
    } else {
      noticeLine('status', `${id} is online`, ts);
    }
  }
  renderMembers();
}

// --- sign-in: tokens from the page server, in memory only --------------------------------
class SignInError extends Error {
  constructor(status, kind, message) {
    super(message);
    this.status = status;
    this.kind = kind;
  }
}
/** The current token: {token, tokenId, expiresAt, refreshAt, lifetimeMs} (local ms), or null. */
let cred = null;
let credTimer = null;
let refreshTimer = null;
let pendingToken = null;
let tokenRefreshes = 0;
let connectAttempts = 0;

/** A fresh token from the page server (POST token, with the school login's cookie). */
function fetchToken() {
  if (pendingToken) return pendingToken;
  pendingToken = (async () => {
    let res;
    let body = {};
    try {
      res = await fetch('token', {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ clientId: me, room }),
        credentials: 'same-origin',
        cache: 'no-store',
      });
      body = await res.json().catch(() => ({}));
    } catch (e) {
      throw new SignInError(0, 'unreachable', `the school login did not answer (${e.message})`);
    }
    if (!res.ok) throw new SignInError(res.status, body.error || '', body.message || `sign-in refused (HTTP ${res.status})`);
    if (body.clientId !== me || body.room !== room || typeof body.token !== 'string') {
      throw new SignInError(502, 'invalid', 'the school login answered with a token for someone else');
    }
    if (body.wsUrl && body.wsUrl !== wsUrl) {
      // The stack was restarted on another port: this page's configuration (and CSP) is stale.
      location.reload();
      throw new SignInError(0, 'reload', 'the broker changed: reloading');
    }
    setCred(body, Date.now());
    return cred;
  })().finally(() => {
    pendingToken = null;
  });
  return pendingToken;
}

const MAX_TIMER = 2 ** 31 - 1;
function setCred(body, now) {
  const t = tokenTimes(body, now);
  cred = { token: body.token, tokenId: body.tokenId, ...t };
  clearTimeout(credTimer);
  // Kept no longer than its lifetime.
  credTimer = setTimeout(() => {
    if (cred && cred.expiresAt <= Date.now()) dropCred();
  }, Math.min(t.lifetimeMs + 10, MAX_TIMER));
  clearTimeout(refreshTimer);
  refreshTimer = setTimeout(refresh, Math.min(Math.max(0, t.refreshAt - Date.now()), MAX_TIMER));
}

function dropCred() {
  cred = null;
  clearTimeout(credTimer);
  clearTimeout(refreshTimer);
  if (client) client.options.password = undefined;
}

/** 401 (no school session any more) and 403 (not enrolled in the room any more) end the page's sign-in. */
function signInFatal(e) {
  if (e.status === 401) {
    stop('signed-out', `signed out: ${e.message}`);
    $('reconnect').textContent = 'Sign in';
    return true;
  }
  if (e.status === 403) {
    stop('refused', `refused: ${e.message}`);
    return true;
  }
  return e.kind === 'reload';
}

/** At 80 % of the token's lifetime: a fresh token, then a reconnect with it at once. */
let planned = false; // the next close is ours (token renewal): reconnect at once
let refreshing = false; // between that close and the next CONNACK
async function refresh() {
  if (stopped) return;
  try {
    await fetchToken();
  } catch (e) {
    if (signInFatal(e)) return;
    console.warn('classroom: token renewal failed, retrying:', e.message);
    clearTimeout(refreshTimer);
    if (cred && cred.expiresAt - Date.now() > 2500) refreshTimer = setTimeout(refresh, 2000);
    // Else the broker ends the session at expiry, and the reconnect fetches a token.
    return;
  }
  if (stopped) return;
  client.options.password = cred.token;
  if (client.connected) {
    planned = true;
    client.stream.end();
  }
}

// --- MQTT ---------------------------------------------------------------------------------
if (!window.mqtt) {
  setConn('refused', 'MQTT library missing (vendor/mqtt.min.js: run npm ci in web/)');
  throw new Error('mqtt.js not loaded');
}
// Reconnects are this page's (reconnectPeriod 0): each one first makes sure it holds a token
// that is still valid, and keeps MQTT.js's message stores (unacknowledged QoS 1 publishes).
const client = window.mqtt.connect(wsUrl, {
  clientId: me,
  username: me,
  protocolVersion: 5,
  clean: false,
  keepalive: 30,
  reconnectPeriod: 0,
  connectTimeout: 10_000,
  manualConnect: true,
  properties: { sessionExpiryInterval: 24 * 3600 },
});
window.classroom = {
  client,
  me,
  room,
  role,
  members,
  wsUrl,
  states,
  get staleDropped() {
    return staleDropped;
  },
  get tokenRefreshes() {
    return tokenRefreshes;
  },
  get connectAttempts() {
    return connectAttempts;
  },
  get tokenId() {
    return cred ? cred.tokenId : null;
  },
  get tokenExpiresAt() {
    return cred ? cred.expiresAt : null;
  },
};

let everConnected = false;
let stopped = false;
let reconnectTimer = null;
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
  stopped = true;
  planned = false;
  refreshing = false;
  clearTimeout(reconnectTimer);
  dropCred(); // a page that stopped holds no token
  client.end(true);
  setConn(state, text);
  $('reconnect').hidden = false;
}

function scheduleReconnect(delay) {
  clearTimeout(reconnectTimer);
  reconnectTimer = setTimeout(reconnect, delay);
}
async function reconnect() {
  if (stopped || client.connected) return;
  if (!cred || !tokenUsable(cred.expiresAt)) {
    try {
      await fetchToken();
    } catch (e) {
      if (signInFatal(e)) return;
      setConn(connState === 'connecting' ? 'connecting' : 'reconnecting', `${e.message}; retrying…`);
      scheduleReconnect(3000);
      return;
    }
    if (stopped || client.connected) return;
  }
  client.options.password = cred.token;
  connectAttempts++;
  client.reconnect({ incomingStore: client.incomingStore, outgoingStore: client.outgoingStore });
}

client.on('connect', (connack) => {
  everConnected = true;
  connectedAt = Date.now();
  if (refreshing) tokenRefreshes++;
  refreshing = false;
  document.body.dataset.tokenRefreshes = String(tokenRefreshes);
  if (channel) channel.postMessage({ type: 'claim', clientId: me, tab });
  observe(me, true, Date.now());
  setConn('online', 'online');
  const topics = Object.fromEntries(subscriptions(room, me).map((t) => [t, { qos: 1 }]));
  client.subscribe(topics, (err, granted) => {
    // A connection that closed meanwhile is not a refusal: the next connect subscribes again.
    if (err && /connection closed/i.test(String(err.message || err))) return;
    const refused = err ? [String(err.message || err)] : (granted || []).filter((g) => g.qos >= 128).map((g) => g.topic);
    if (refused.length) noticeLine('error', `Subscription refused: ${refused.join(', ')}`, Date.now());
    // Entering the room: the join makes us a member (status notices); idempotent.
    client.publish(TOPIC.command, JSON.stringify({ type: 'join', roomId: room }), { qos: 1 });
  });
  if (!connack.sessionPresent) console.info('classroom: new session');
});
client.on('close', () => {
  if (stopped) return;
  if (planned) {
    // Our own close for a token renewal: straight back with the fresh token. The page stays
    // "online" (a chat typed meanwhile is queued by MQTT.js and sent on the new connection).
    planned = false;
    refreshing = true;
    scheduleReconnect(0);
    return;
  }
  if (connState === 'online') {
    quickCloses = connectedAt && Date.now() - connectedAt < 3000 ? quickCloses + 1 : 0;
    if (quickCloses >= 3) {
      stop('taken-over', 'signed in elsewhere? the broker keeps closing this connection');
      return;
    }
    setConn('reconnecting', 'reconnecting…');
  }
  refreshing = false;
  scheduleReconnect(2000);
});
client.on('disconnect', (packet) => {
  // MQTT 5 server DISCONNECT. 0x8E: another connection with our client ID took the session.
  if (packet && packet.reasonCode === 0x8e) stop('taken-over', 'signed in elsewhere (same client ID)');
});
client.on('error', (err) => {
  const code = err && err.code;
  const reason = String((err && err.message) || err).replace(/^Connection refused: /, '');
  if (code === 0x86 || code === 0x87) {
    stop('refused', `refused by the broker (${reason}): the token was not accepted (revoked, or its key retired); sign in again`);
  } else if (code === 0x85 || code === 0x8a || code === 0x8c) {
    stop('refused', `refused by the broker: ${reason}`);
  } else if (!everConnected) {
    setConn(connState === 'connecting' ? 'connecting' : 'reconnecting', `cannot reach the broker (${reason}); retrying…`);
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
      // One client ID, one page: a rejection quoting our message, or one about the client
      // rather than a room (not enrolled there, over the chat rate, in too many rooms), is
      // ours even when it names another room.
      const text = b.refMsgId && sent.get(String(b.refMsgId));
      if (!forUs && text == null && !CLIENT_REFUSALS.has(b.reason)) return;
      const li = noticeLine('rejected', `Not delivered${text != null ? ` (“${text.length > 80 ? `${text.slice(0, 80)}…` : text}”)` : ''}: ${rejectionText(b.reason, b.roomId)}.`, m.ts);
      li.dataset.room = String(b.roomId ?? '');
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
// Leave: ends this sign-in at the school login too (the next visit asks for the password).
$('leave').addEventListener('click', async (ev) => {
  ev.preventDefault();
  stopped = true;
  clearTimeout(reconnectTimer);
  dropCred();
  client.end();
  await fetch('logout', {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ clientId: me, room }),
    credentials: 'same-origin',
    keepalive: true,
    signal: AbortSignal.timeout(3000),
  }).catch(() => {});
  location.href = signInUrl();
});
$('reconnect').addEventListener('click', async () => {
  if (connState === 'signed-out') {
    location.href = signInUrl();
    return;
  }
  $('reconnect').hidden = true;
  quickCloses = 0;
  stopped = false;
  setConn('connecting', 'connecting…');
  try {
    await fetchToken();
  } catch (e) {
    if (signInFatal(e)) return;
    stopped = true;
    setConn('refused', `${e.message}: try again`);
    $('reconnect').hidden = false;
    return;
  }
  client.options.password = cred.token;
  connectAttempts++;
  client.reconnect();
});

// --- start: a token for this room, then the broker -------------------------------------------
async function start() {
  for (;;) {
    try {
      await fetchToken();
      break;
    } catch (e) {
      if (e.status === 401) {
        // No school sign-in for this client ID and room in this browser (or it ended).
        location.replace(signInUrl(e.message));
        return;
      }
      if (signInFatal(e)) return;
      setConn('connecting', `${e.message}; retrying…`);
      await new Promise((ok) => setTimeout(ok, 3000));
    }
  }
  if (stopped) return;
  client.options.password = cred.token;
  connectAttempts++;
  client.connect();
}

members.set(me, { ...(members.get(me) || {}), online: false, ts: 0 });
setConn('connecting', 'signing in…');
start();
