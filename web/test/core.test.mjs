// Unit tests of the pages' rules (web/public/js/core.js): names (§3), parsing, de-duplication,
// timeliness, mute state, token timing. `node web/test/core.test.mjs` (part of `make test-web`).
import test from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  SeenIds,
  applyMuteNotice,
  clientIdError,
  clientIdTextError,
  forgetSavedPasswords,
  groupIdError,
  isMuted,
  isStale,
  parseIncoming,
  rejectionText,
  roomIdError,
  subscriptions,
  tokenTimes,
  tokenUsable,
} from '../public/js/core.js';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

test('client IDs follow §3', () => {
  assert.equal(clientIdError('GID_teacher', '001'), null);
  assert.equal(clientIdError('GID-student', 'a_b-C9'), null);
  assert.match(clientIdError('GID_student', ''), /device ID is empty/);
  assert.match(clientIdError('GID_student', 'a/b'), /"\/"/);
  assert.match(clientIdError('GID_student', 'a+b'), /"\+"/);
  assert.match(clientIdError('GID_student', 'a#'), /"#"/);
  assert.match(clientIdError('GID_student', 'a@b'), /"@"/);
  assert.match(clientIdError('GID_student', 'a b'), /a space/);
  assert.match(clientIdError('GID_student', 'a\u200bb'), /U\+200B/); // invisible
  assert.match(clientIdError('GID_student', 'é'), /U\+00E9/);
  assert.equal(clientIdError('GID_student', 'x'.repeat(64 - 14)), null);
  assert.match(clientIdError('GID_student', 'x'.repeat(64 - 13)), /65 characters long, the limit is 64/);
  assert.match(groupIdError('GROUP_x'), /must start with GID_ or GID-/);
  assert.match(groupIdError('GID_ab'), /minimum is 7/);
  assert.equal(groupIdError('GID_abc'), null);
  assert.equal(roomIdError('1'), null);
  assert.match(roomIdError('1/#'), /room ID contains/);
});

test('a client subscribes to its room, status, system and its own P2P topic', () => {
  assert.deepEqual(subscriptions('7', 'GID_student@@@001'), ['room/message/7', 'room/status/7', 'room/system', 'room/p2p/GID_student@@@001']);
});

test('message ID and time come from the body, else from the MQTT 5 user properties', () => {
  const body = JSON.stringify({ msgId: 'm1', peer: 'GID_student@@@001', roomId: '1', msg: 'hi', ts: 5 });
  const a = parseIncoming('room/message/1', new TextEncoder().encode(body), {});
  assert.equal(a.kind, 'chat');
  assert.equal(a.id, 'm1');
  assert.equal(a.ts, 5);
  const b = parseIncoming('room/system', JSON.stringify({ type: 'system', msg: 'x' }), { userProperties: { mqttMessageId: 'p1', timestamp: '9' } });
  assert.equal(b.kind, 'system');
  assert.equal(b.id, 'p1');
  assert.equal(b.ts, 9);
  const c = parseIncoming('room/p2p/x', '{}', { userProperties: { mqttMessageId: ['p2', 'p3'] } });
  assert.equal(c.id, 'p2');
  assert.equal(c.ts, null);
  assert.equal(parseIncoming('room/status/1', 'nope', {}).kind, 'invalid');
  assert.equal(parseIncoming('room/status/1', '[1]', {}).kind, 'invalid');
});

test('de-duplication remembers IDs (bounded) and survives a reload through storage', () => {
  const mem = new Map();
  const storage = { getItem: (k) => mem.get(k) ?? null, setItem: (k, v) => mem.set(k, v) };
  const seen = new SeenIds(storage, 'k', 3);
  assert.equal(seen.firstTime('a'), true);
  assert.equal(seen.firstTime('a'), false);
  assert.equal(seen.firstTime(null), true);
  assert.equal(seen.firstTime(null), true);
  const again = new SeenIds(storage, 'k', 3);
  assert.equal(again.firstTime('a'), false);
  for (const id of ['b', 'c', 'd']) again.firstTime(id);
  assert.equal(again.firstTime('a'), true, 'the oldest is forgotten past the bound');
});

test('stale: older than the limit; unknown time is never stale', () => {
  assert.equal(isStale(1000, 1000 + 5 * 60_000), false);
  assert.equal(isStale(1000, 1001 + 5 * 60_000), true);
  assert.equal(isStale(null, 1e15), false);
});

test('mute state: the latest notice wins, timed mutes end by themselves', () => {
  let s = applyMuteNotice(null, { type: 'mute', by: 'T', until: null }, 10);
  assert.equal(isMuted(s, 11), true);
  s = applyMuteNotice(s, { type: 'unmute', by: 'T' }, 20);
  assert.equal(isMuted(s, 21), false);
  s = applyMuteNotice(s, { type: 'mute', by: 'T', until: null }, 15); // late redelivery
  assert.equal(isMuted(s, 22), false);
  s = applyMuteNotice(s, { type: 'mute', by: 'T', until: 100 }, 30);
  assert.equal(isMuted(s, 99), true);
  assert.equal(isMuted(s, 100), false);
});

test('a whole client ID is checked like its two parts', () => {
  assert.equal(clientIdTextError('GID_student@@@001'), null);
  assert.match(clientIdTextError('GID_student001'), /no @@@/);
  assert.match(clientIdTextError('GID_student@@@a b'), /a space/);
  assert.match(clientIdTextError('NOPE_x@@@1'), /must start with GID_/);
  assert.match(clientIdTextError(undefined), /no @@@/);
});

test('a token is renewed at 80 % of its lifetime, measured on the local clock', () => {
  // The issuer's clock is an hour ahead of the browser's: only the lifetime counts.
  const t = tokenTimes({ issuedAt: 1_000_000 + 3600, expiresAt: 1_000_000 + 3600 + 600 }, 5_000);
  assert.deepEqual(t, { expiresAt: 5_000 + 600_000, refreshAt: 5_000 + 480_000, lifetimeMs: 600_000 });
  const short = tokenTimes({ issuedAt: 10, expiresAt: 25 }, 0);
  assert.equal(short.refreshAt, 12_000);
  assert.equal(tokenTimes({ issuedAt: 10, expiresAt: 5 }, 0).lifetimeMs, 0, 'never a negative lifetime');
});

test('a token about to expire is not used for a new connection', () => {
  assert.equal(tokenUsable(10_000, 4_000), true);
  assert.equal(tokenUsable(10_000, 5_000), false, 'exactly the margin left');
  assert.equal(tokenUsable(10_000, 11_000), false);
  assert.equal(tokenUsable(undefined, 0), false);
});

test('passwords that earlier versions saved in localStorage are removed, and nothing else', () => {
  const map = new Map([
    ['classroom.password.GID_student@@@001', 'pw-a'],
    ['classroom.password.GID_teacher@@@001', 'pw-t'],
    ['classroom.signin', '{"role":"student"}'],
    ['classroom.GID_student@@@001.1.seen', '[]'],
  ]);
  const store = {
    get length() {
      return map.size;
    },
    key: (i) => [...map.keys()][i] ?? null,
    removeItem: (k) => map.delete(k),
  };
  assert.equal(forgetSavedPasswords(store), 2);
  assert.deepEqual([...map.keys()], ['classroom.signin', 'classroom.GID_student@@@001.1.seen']);
  assert.equal(forgetSavedPasswords(null), 0);
  assert.equal(forgetSavedPasswords({ get length() { throw new Error('denied'); } }), 0);
});

test('a not_enrolled rejection names the room', () => {
  assert.equal(rejectionText('not_enrolled', '2'), 'you are not enrolled in room 2');
  assert.equal(rejectionText('not_enrolled'), 'you are not enrolled in that room');
  assert.equal(rejectionText('muted', '1'), 'you are muted in this room');
  assert.equal(rejectionText('new_reason'), 'refused (new_reason)');
});

test('flood control and the rooms cap read as people would say them', () => {
  assert.equal(rejectionText('rate_limited', '1'), 'you are sending too fast; wait a moment');
  assert.equal(rejectionText('rate_limited'), 'you are sending too fast; wait a moment');
  assert.equal(rejectionText('too_many_rooms', '7'), 'you are already in as many rooms as a client may join, so room 7 was not joined');
  assert.equal(rejectionText('too_many_rooms'), 'you are already in as many rooms as a client may join');
});

test('every reason of the refusal vocabulary (shared/mapping/src/refusal.rs) has a human text', () => {
  const src = readFileSync(join(root, 'shared', 'mapping', 'src', 'refusal.rs'), 'utf8');
  const table = /refusals!\s*\{([\s\S]*?)\n\}/.exec(src);
  assert.ok(table, 'the refusals! table in refusal.rs');
  const reasons = [...table[1].matchAll(/^\s*[A-Z]\w*\s*=\s*"([a-z_]+)",/gm)].map((m) => m[1]);
  assert.ok(reasons.includes('not_enrolled') && reasons.length >= 8, `read the table: ${reasons}`);
  for (const r of reasons) assert.doesNotMatch(rejectionText(r, '1'), /^refused \(/, `no human text for ${r}`);
});
