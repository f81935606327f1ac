// The classroom's client-side rules, free of DOM and MQTT so Node can test them
// (web/test/core.test.mjs): names per §3, topics, de-duplication and timeliness.

export const CLIENT_ID_SEPARATOR = '@@@';
export const CLIENT_ID_MAX = 64;
export const GROUP_ID_MIN = 7;
export const GROUP_ID_MAX = 64;
export const ROOM_ID_MAX = 64;
/** Chat older than this (by its `ts`, or the `timestamp` user property) is not shown. */
export const STALE_MS = 5 * 60 * 1000;
/** How many message IDs are remembered for de-duplication. */
export const SEEN_MAX = 2000;

const RESOURCE = /^[0-9A-Za-z_-]+$/;

/** Why `value` is not a resource name (`[0-9A-Za-z_-]`, 1..max chars), or null. */
export function resourceNameError(what, value, max) {
  if (!value) return `${what} is empty`;
  const chars = [...value];
  const bad = chars.findIndex((c) => !RESOURCE.test(c));
  if (bad >= 0) {
    const c = chars[bad];
    const shown = c === ' ' ? 'a space' : /^[\x21-\x7e]$/.test(c) ? `"${c}"` : `U+${c.codePointAt(0).toString(16).toUpperCase().padStart(4, '0')}`;
    return `${what} contains ${shown} at character ${bad + 1}; only letters, digits, _ and - are allowed`;
  }
  if (chars.length > max) return `${what} is ${chars.length} characters long, the limit is ${max}`;
  return null;
}

/** Why `group` is not a Group ID (§3: GID_ or GID- prefix, 7 to 64 chars), or null. */
export function groupIdError(group) {
  const e = resourceNameError('group ID', group, GROUP_ID_MAX);
  if (e) return e;
  if (!group.startsWith('GID_') && !group.startsWith('GID-')) return `group ID "${group}" must start with GID_ or GID-`;
  if (group.length < GROUP_ID_MIN) return `group ID is ${group.length} characters long, the minimum is ${GROUP_ID_MIN}`;
  return null;
}

/** Why `<group>@@@<device>` is not a valid client ID (§3), or null. */
export function clientIdError(group, device) {
  const g = groupIdError(group);
  if (g) return g;
  const d = resourceNameError('device ID', device, CLIENT_ID_MAX);
  if (d) return d;
  const len = group.length + CLIENT_ID_SEPARATOR.length + device.length;
  if (len > CLIENT_ID_MAX) return `client ID is ${len} characters long, the limit is ${CLIENT_ID_MAX}`;
  return null;
}

/** Why `room` is not a room ID, or null. */
export function roomIdError(room) {
  return resourceNameError('room ID', room, ROOM_ID_MAX);
}

export function clientId(group, device) {
  return `${group}${CLIENT_ID_SEPARATOR}${device}`;
}

/** The group of a client ID ("" when it has no separator). */
export function groupOf(id) {
  const i = String(id).indexOf(CLIENT_ID_SEPARATOR);
  return i < 0 ? '' : id.slice(0, i);
}

/** The topics a client of `room` subscribes to (§2, §6: what the ACL lets it read). */
export function subscriptions(room, ownClientId) {
  return [`room/message/${room}`, `room/status/${room}`, 'room/system', `room/p2p/${ownClientId}`];
}

export const TOPIC = { chat: 'roomSend/message', command: 'roomSend/command' };

/** A user property's value (MQTT.js gives a string, or an array when repeated). */
function userProp(props, key) {
  const v = props && props.userProperties && props.userProperties[key];
  return Array.isArray(v) ? v[0] : v;
}

/**
 * Reads a received message: `{kind, body, id, ts}` where kind is chat | status | system | p2p |
 * other, `id` the message ID (body `msgId`, else the `mqttMessageId` user property) and `ts`
 * the time in ms (body `ts`, else the `timestamp` user property), or null when unknown.
 * Returns `{kind: 'invalid', error}` for a body that is not a JSON object.
 */
export function parseIncoming(topic, payload, properties) {
  let body;
  try {
    body = JSON.parse(typeof payload === 'string' ? payload : new TextDecoder().decode(payload));
  } catch (e) {
    return { kind: 'invalid', error: `not JSON: ${e.message}`, topic };
  }
  if (!body || typeof body !== 'object' || Array.isArray(body)) return { kind: 'invalid', error: 'not a JSON object', topic };
  const id = (body.msgId != null && String(body.msgId)) || userProp(properties, 'mqttMessageId') || null;
  let ts = Number(body.ts);
  if (!Number.isFinite(ts) || ts <= 0) ts = Number(userProp(properties, 'timestamp'));
  if (!Number.isFinite(ts) || ts <= 0) ts = null;
  const level = topic.split('/');
  let kind = 'other';
  if (level[0] === 'room') {
    if (level[1] === 'message') kind = 'chat';
    else if (level[1] === 'status') kind = 'status';
    else if (level[1] === 'system') kind = 'system';
    else if (level[1] === 'p2p') kind = 'p2p';
  }
  return { kind, body, id, ts, topic };
}

/** Whether a message of time `ts` is too old to show at `now` (unknown time: not stale). */
export function isStale(ts, now = Date.now(), maxAge = STALE_MS) {
  return ts != null && now - ts > maxAge;
}

/**
 * Remembers message IDs (bounded, oldest forgotten first), optionally mirrored into a
 * Storage (localStorage) so a page reload does not show a redelivered message twice.
 */
export class SeenIds {
  constructor(storage = null, key = 'seen', max = SEEN_MAX) {
    this.storage = storage;
    this.key = key;
    this.max = max;
    this.order = [];
    if (storage) {
      try {
        const saved = JSON.parse(storage.getItem(key) || '[]');
        if (Array.isArray(saved)) this.order = saved.slice(-max).map(String);
      } catch {
        this.order = [];
      }
    }
    this.set = new Set(this.order);
  }

  /** True the first time an ID is seen; false for a duplicate. A null ID is always new. */
  firstTime(id) {
    if (id == null) return true;
    if (this.set.has(id)) return false;
    this.set.add(id);
    this.order.push(id);
    while (this.order.length > this.max) this.set.delete(this.order.shift());
    if (this.storage) {
      try {
        this.storage.setItem(this.key, JSON.stringify(this.order));
      } catch {
        /* storage full or disabled: in-memory only */
      }
    }
    return true;
  }
}

/**
 * Human text for a `rejected` notice's reason (`room`: the notice's roomId, when it has one).
 * `rate_limited`: the sender went over the chat rate (moderation's `CHAT_RATE_LIMIT` per
 * window, 10 a second by default); only the first chat over it in a window is answered, the
 * rest of that window are dropped without a word. `too_many_rooms`: a `join` of one room more
 * than `MAX_ROOMS_PER_CLIENT` (20 by default). An unknown reason is shown by its name.
 */
export function rejectionText(reason, room = null) {
  return (
    {
      muted: 'you are muted in this room',
      banned_words: 'it contains banned words',
      too_long: 'it is too long',
      invalid_message: 'it is empty or not a valid chat message',
      not_teacher: 'only a teacher may do that',
      target_not_student: 'only a student can be muted',
      invalid_command: 'the command was not valid',
      not_enrolled: room != null ? `you are not enrolled in room ${room}` : 'you are not enrolled in that room',
      rate_limited: 'you are sending too fast; wait a moment',
      too_large: 'it is too large to send',
      invalid_topic: 'it was sent to a topic that is not a classroom topic',
      too_many_rooms:
        room != null
          ? `you are already in as many rooms as a client may join, so room ${room} was not joined`
          : 'you are already in as many rooms as a client may join',
    }[reason] || `refused (${reason})`
  );
}

/** A message ID of our own, for `msgId` (echoed back as `refMsgId` in a rejection). */
export function newMsgId() {
  const c = globalThis.crypto;
  if (c && typeof c.randomUUID === 'function') return c.randomUUID();
  const bytes = new Uint8Array(16);
  if (c && c.getRandomValues) c.getRandomValues(bytes);
  else for (let i = 0; i < 16; i++) bytes[i] = Math.floor(Math.random() * 256);
  return [...bytes].map((b) => b.toString(16).padStart(2, '0')).join('');
}

/**
 * The mute state of one room from P2P notices, latest `ts` wins (a redelivered or late
 * `mute` never overrides a newer `unmute`). `until` is ms or null (until unmuted).
 */
export function applyMuteNotice(state, body, ts) {
  const at = ts ?? 0;
  if (state && state.at > at) return state;
  if (body.type === 'mute') return { muted: true, by: body.by || null, until: body.until ?? null, at };
  if (body.type === 'unmute') return { muted: false, by: body.by || null, until: null, at };
  return state;
}

/** Whether a mute state still silences at `now` (a timed mute ends by itself). */
export function isMuted(state, now = Date.now()) {
  return !!(state && state.muted && (state.until == null || state.until > now));
}

// --- sign-in ------------------------------------------------------------------------------
// A page signs in with its client ID as MQTT username and a classroom token as password (§8).
// The token comes from the page server's school login (POST /login with the directory's
// password, then POST /token with the session cookie) and lives only in the page's memory, no
// longer than its lifetime: nothing of the sign-in is written to localStorage or a URL.

/** Why `id` is not a `<group>@@@<device>` client ID (§3), or null. */
export function clientIdTextError(id) {
  const s = String(id ?? '');
  const i = s.indexOf(CLIENT_ID_SEPARATOR);
  if (i < 0) return `client ID "${s}" has no ${CLIENT_ID_SEPARATOR} between group and device`;
  return clientIdError(s.slice(0, i), s.slice(i + CLIENT_ID_SEPARATOR.length));
}

/** A token is renewed at this fraction of its lifetime (the broker ends the session at 100 %). */
export const REFRESH_AT = 0.8;
/** A token with less than this left is not used for a new connection: a fresh one is fetched. */
export const TOKEN_MARGIN_MS = 5000;

/**
 * The times of a token received at `receivedAt` (local ms) from a response with `issuedAt` and
 * `expiresAt` (seconds, the issuer's clock): `{expiresAt, refreshAt}` in local ms. Only the
 * lifetime is taken from the issuer, so a browser clock that is off does not matter.
 */
export function tokenTimes(issued, receivedAt) {
  const lifetimeMs = Math.max(0, (Number(issued.expiresAt) - Number(issued.issuedAt)) * 1000);
  return { expiresAt: receivedAt + lifetimeMs, refreshAt: receivedAt + Math.floor(lifetimeMs * REFRESH_AT), lifetimeMs };
}

/** Whether a token expiring at `expiresAt` (local ms) may still open a connection at `now`. */
export function tokenUsable(expiresAt, now = Date.now(), margin = TOKEN_MARGIN_MS) {
  return Number.isFinite(expiresAt) && expiresAt - now > margin;
}

/**
 * Removes what earlier versions of the pages kept in localStorage (a password per client ID,
 * `classroom.password.<id>`): a credential does not stay in the browser. Returns how many.
 */
export function forgetSavedPasswords(store) {
  let n = 0;
  try {
    if (!store) return 0;
    const keys = [];
    for (let i = 0; i < store.length; i++) keys.push(store.key(i));
    for (const k of keys) {
      if (k && k.startsWith('classroom.password.')) {
        store.removeItem(k);
        n++;
      }
    }
  } catch {
    // storage disabled: nothing was kept there either
  }
  return n;
}
