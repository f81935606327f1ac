// Unit tests of the pages' rules (web/public/js/core.js): names (§3), parsing, de-duplication,
// timeliness, mute state. `node web/test/core.test.mjs` (part of `make test-web`).
import test from 'node:test';
import assert from 'node:assert/strict';
import {
  SeenIds,
  applyMuteNotice,
  clientIdError,
  groupIdError,
  isMuted,
  isStale,
  parseIncoming,
  passwordFromHash,
  roomIdError,
  savePassword,
  savedPassword,
  subscriptions,
} from '../public/js/core.js';

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

test('a password comes from a link fragment (then leaves the address bar) or from what was remembered', () => {
  const replaced = [];
  const hist = { replaceState: (_s, _t, url) => replaced.push(url) };
  const loc = { hash: '#password=s%3Dcr%2Bt', pathname: '/student.html', search: '?device=001&room=1' };
  assert.equal(passwordFromHash(loc, hist), 's=cr+t');
  assert.deepEqual(replaced, ['/student.html?device=001&room=1']);
  assert.equal(passwordFromHash({ hash: '', pathname: '/', search: '' }, hist), null);
  assert.equal(passwordFromHash({ hash: '#other=1', pathname: '/', search: '' }, hist), null);
  assert.equal(replaced.length, 1, 'no fragment, no rewrite');

  const map = new Map();
  const store = { getItem: (k) => map.get(k) ?? null, setItem: (k, v) => map.set(k, v) };
  assert.equal(savedPassword(store, 'GID_student@@@001'), null);
  savePassword(store, 'GID_student@@@001', 'pw-a');
  savePassword(store, 'GID_student@@@002', '');
  assert.equal(savedPassword(store, 'GID_student@@@001'), 'pw-a');
  assert.equal(savedPassword(store, 'GID_student@@@002'), null, 'an empty password is not remembered');
  assert.equal(savedPassword(null, 'GID_student@@@001'), null);
  const broken = { getItem: () => { throw new Error('denied'); }, setItem: () => { throw new Error('full'); } };
  assert.equal(savedPassword(broken, 'x'), null);
  savePassword(broken, 'x', 'y'); // does not throw
});
