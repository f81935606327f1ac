// The page server's local "school login" (used by serve.mjs; unit-tested by test/serve.test.mjs):
// the directory check, the sessions behind the cookie, the failed-attempt throttle, the call to
// the token issuer, and the broker URL the pages and the CSP may name. No IO here except
// `issueClassroomToken`'s HTTP call.
//
// What it never does: log or keep a password (it is compared and dropped), keep a token (each is
// handed to the page that asked and forgotten), or take a broker URL from a request.
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { clientIdTextError, roomIdError } from './public/js/core.js';

/** The session cookie's name. */
export const COOKIE = 'classroom_session';
/** How long a sign-in lasts (the school day): after that, the password again. */
export const SESSION_MS = 8 * 3600 * 1000;
/** Largest accepted password (the directory's are ~16 characters). */
export const PASSWORD_MAX = 256;

/** A refusal: HTTP status + the JSON body `{error, field?, message}`. */
export class LoginError extends Error {
  constructor(status, error, message, field = undefined) {
    super(message);
    this.status = status;
    this.error = error;
    this.field = field;
  }

  body() {
    return { error: this.error, ...(this.field ? { field: this.field } : {}), message: this.message };
  }
}

const sha256 = (s) => createHash('sha256').update(String(s), 'utf8').digest();

/**
 * Whether `given` equals `expected`, in time independent of where they differ and of their
 * lengths (both are hashed to 32 bytes first, then compared with timingSafeEqual).
 */
export function passwordMatches(expected, given) {
  return timingSafeEqual(sha256(expected), sha256(given));
}

// Compared against when the client ID is unknown, so that case costs the same time.
const DUMMY = randomBytes(16).toString('base64url');

/** Checks the shape of a /login or /token body; returns {clientId, room, password?}. */
export function readSignInBody(body, { password }) {
  if (!body || typeof body !== 'object' || Array.isArray(body)) throw new LoginError(400, 'invalid_request', 'the body must be a JSON object');
  const { clientId, room } = body;
  if (typeof clientId !== 'string') throw new LoginError(400, 'invalid_request', 'clientId is missing', 'clientId');
  const idErr = clientIdTextError(clientId);
  if (idErr) throw new LoginError(400, 'invalid_request', idErr, 'clientId');
  if (typeof room !== 'string') throw new LoginError(400, 'invalid_request', 'room is missing', 'room');
  const roomErr = roomIdError(room);
  if (roomErr) throw new LoginError(400, 'invalid_request', roomErr, 'room');
  if (!password) return { clientId, room };
  const pw = body.password;
  if (typeof pw !== 'string' || !pw) throw new LoginError(400, 'invalid_request', 'enter the password', 'password');
  if (pw.length > PASSWORD_MAX) throw new LoginError(400, 'invalid_request', `the password is longer than ${PASSWORD_MAX} characters`, 'password');
  return { clientId, room, password: pw };
}

/**
 * The directory's answer for a login: the person, or a LoginError. Unknown person and wrong
 * password give the same 401 and the same work (no telling which client IDs exist); the room
 * is checked only after the password, so enrollments are told only to their owner.
 */
export function checkLogin(directory, { clientId, password, room }) {
  const person = directory.get(clientId);
  const match = passwordMatches(person ? person.password : DUMMY, password);
  if (!person || !match) throw new LoginError(401, 'unauthorized', 'sign-in refused: unknown client ID or wrong password');
  return checkEnrolled(person, clientId, room);
}

/** The person if enrolled in `room`, else a 403 LoginError. */
export function checkEnrolled(person, clientId, room) {
  if (!person.rooms.includes(room)) {
    throw new LoginError(403, 'not_enrolled', `${clientId} is not enrolled in room ${room} (the directory lists ${person.rooms.join(', ') || 'no room'})`, 'room');
  }
  return person;
}

/**
 * Failed logins per client ID: after `limit` failures within `windowMs`, further attempts are
 * refused (429) until the window ends. A success clears the count.
 */
export class Throttle {
  constructor({ limit = 10, windowMs = 60_000, now = Date.now } = {}) {
    this.limit = limit;
    this.windowMs = windowMs;
    this.now = now;
    this.failures = new Map(); // key -> {since, count}
  }

  /** Seconds until `key` may try again (0: now). */
  retryAfter(key) {
    const f = this.failures.get(key);
    if (!f) return 0;
    const left = f.since + this.windowMs - this.now();
    if (left <= 0) {
      this.failures.delete(key);
      return 0;
    }
    return f.count >= this.limit ? Math.ceil(left / 1000) : 0;
  }

  fail(key) {
    const now = this.now();
    const f = this.failures.get(key);
    if (!f || f.since + this.windowMs <= now) this.failures.set(key, { since: now, count: 1 });
    else f.count++;
    if (this.failures.size > 10_000) this.prune();
  }

  succeed(key) {
    this.failures.delete(key);
  }

  prune() {
    const now = this.now();
    for (const [k, f] of this.failures) if (f.since + this.windowMs <= now) this.failures.delete(k);
  }
}

const signInKey = (clientId, room) => `${clientId} ${room}`;

/**
 * The school sessions behind the cookie, in memory: a session ID (32 random bytes) maps to the
 * sign-ins made in that browser, each `(clientId, room)` valid `ttlMs` from its login. One
 * browser may hold several (a teacher page and a student page in two tabs). The ID changes at
 * every login (no fixation).
 */
export class Sessions {
  constructor({ ttlMs = SESSION_MS, max = 10_000, maxSignIns = 20, now = Date.now, random = () => randomBytes(32).toString('base64url') } = {}) {
    this.ttlMs = ttlMs;
    this.max = max;
    this.maxSignIns = maxSignIns;
    this.now = now;
    this.random = random;
    this.byId = new Map(); // id -> Map(signInKey -> {clientId, room, expires})
  }

  /** The live sign-ins of session `id` (expired ones dropped), or null. */
  live(id) {
    if (typeof id !== 'string' || !id) return null;
    const s = this.byId.get(id);
    if (!s) return null;
    const now = this.now();
    for (const [k, v] of s) if (v.expires <= now) s.delete(k);
    if (!s.size) {
      this.byId.delete(id);
      return null;
    }
    return s;
  }

  /**
   * Records a login of `clientId` for `room`: a new session ID holding the previous session's
   * live sign-ins plus this one. Returns {id, maxAgeSecs}.
   */
  login(previousId, clientId, room) {
    const carried = this.live(previousId) || new Map();
    if (previousId) this.byId.delete(previousId);
    const key = signInKey(clientId, room);
    carried.delete(key);
    carried.set(key, { clientId, room, expires: this.now() + this.ttlMs });
    while (carried.size > this.maxSignIns) carried.delete(carried.keys().next().value);
    if (this.byId.size >= this.max) this.prune();
    while (this.byId.size >= this.max) this.byId.delete(this.byId.keys().next().value);
    const id = this.random();
    this.byId.set(id, carried);
    return { id, maxAgeSecs: this.maxAgeSecs(carried) };
  }

  /** The sign-in of `clientId` for `room` in session `id`, or null. */
  find(id, clientId, room) {
    const s = this.live(id);
    return (s && s.get(signInKey(clientId, room))) || null;
  }

  /** Seconds the cookie must live for the longest sign-in of session `id` (0: none left). */
  maxAgeSecs(s) {
    let last = 0;
    for (const v of s.values()) last = Math.max(last, v.expires);
    return Math.max(0, Math.ceil((last - this.now()) / 1000));
  }

  /**
   * Ends the sign-in of `clientId` for `room` (or every sign-in when clientId is null).
   * Returns the seconds the cookie must still live (0: the session is gone).
   */
  logout(id, clientId = null, room = null) {
    const s = this.live(id);
    if (!s) return 0;
    if (clientId == null) s.clear();
    else s.delete(signInKey(clientId, room));
    if (!s.size) {
      this.byId.delete(id);
      return 0;
    }
    return this.maxAgeSecs(s);
  }

  prune() {
    for (const id of [...this.byId.keys()]) this.live(id);
  }

  get size() {
    return this.byId.size;
  }
}

/** The value of cookie `name` in a Cookie header, or null. */
export function cookieValue(header, name = COOKIE) {
  for (const part of String(header || '').split(';')) {
    const i = part.indexOf('=');
    if (i > 0 && part.slice(0, i).trim() === name) return part.slice(i + 1).trim();
  }
  return null;
}

/** Set-Cookie for session `id` (HttpOnly: no script reads it; SameSite=Strict: no other site sends it). */
export function sessionCookie(id, maxAgeSecs) {
  return `${COOKIE}=${id}; Path=/; HttpOnly; SameSite=Strict; Max-Age=${Math.max(0, Math.floor(maxAgeSecs))}`;
}

/** Set-Cookie that removes the session cookie. */
export function clearedCookie() {
  return sessionCookie('', 0);
}

/**
 * The broker the pages may connect to, from the page server's configuration only: `{url,
 * source}` where `source` is the CSP source naming exactly it (`ws://127.0.0.1:1883`), or null
 * when `raw` is not a ws:// or wss:// URL without credentials or fragment.
 */
export function brokerUrl(raw) {
  const text = String(raw || '').trim();
  if (!text) return null;
  let u;
  try {
    u = new URL(text);
  } catch {
    return null;
  }
  if ((u.protocol !== 'ws:' && u.protocol !== 'wss:') || !u.hostname) return null;
  if (u.username || u.password || u.hash) return null;
  return { url: text, source: `${u.protocol}//${u.host}` };
}

/** The Content-Security-Policy of every response: scripts, styles and connections from here, plus exactly the broker. */
export function contentSecurityPolicy(broker) {
  const connect = broker ? `'self' ${broker.source}` : "'self'";
  return `default-src 'self'; connect-src ${connect}; worker-src 'self' blob:; img-src 'self' data:; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'`;
}

/**
 * Asks the local issuer (`POST <apiUrl>/tokens/classroom`, the `token` function's handler) for
 * a classroom token of `clientId` for `room`, valid `lifetimeSecs`. Returns the issuer's 201
 * body; throws a LoginError (502: the issuer refused; 503: it did not answer).
 */
export async function issueClassroomToken(apiUrl, clientId, room, lifetimeSecs, { fetchImpl = fetch, timeoutMs = 5000 } = {}) {
  if (!/^https?:\/\/[^/]/.test(String(apiUrl || ''))) {
    throw new LoginError(503, 'no_issuer', 'no token service configured (TOKEN_API_URL in the stack env): is the stack up? `make up`');
  }
  const url = `${String(apiUrl).replace(/\/+$/, '')}/tokens/classroom`;
  let res;
  try {
    res = await fetchImpl(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ clientId, rooms: [room], expiresIn: lifetimeSecs }),
      signal: AbortSignal.timeout(timeoutMs),
    });
  } catch (e) {
    throw new LoginError(503, 'issuer_unreachable', `the token service at ${apiUrl} did not answer (${e.name === 'TimeoutError' ? 'timeout' : e.cause?.code || e.message}): is the stack up?`);
  }
  const body = await res.json().catch(() => null);
  if (res.status !== 201 && res.status !== 200) {
    const what = body && typeof body.message === 'string' ? body.message : `HTTP ${res.status}`;
    const hint = body && body.field === 'expiresIn' ? ' (WEB_TOKEN_LIFETIME of the page server)' : '';
    throw new LoginError(502, 'issuer_refused', `the token service refused: ${what}${hint}`);
  }
  if (!body || typeof body.token !== 'string' || body.clientId !== clientId || !Number.isFinite(body.expiresAt) || !Number.isFinite(body.issuedAt)) {
    throw new LoginError(502, 'issuer_invalid', 'the token service answered without a token for this client ID');
  }
  return body;
}
