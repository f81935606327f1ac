// The page server's school login (web/serve.mjs, web/school.mjs) without a stack: a temporary
// stack env and directory, a fake token issuer on loopback, the real serve.mjs as a child process.
// `node web/test/serve.test.mjs` (part of `make test-web`).
import test from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createServer, request } from 'node:http';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseDirectory } from '../stack-files.mjs';
import { Sessions, Throttle, brokerUrl, contentSecurityPolicy, cookieValue, passwordMatches } from '../school.mjs';

const web = resolve(dirname(fileURLToPath(import.meta.url)), '..');

// --- the pure parts ---------------------------------------------------------------------------
test('the directory is read as `<clientId> <password> <rooms>`, comments and broken lines skipped', () => {
  const d = parseDirectory('# people\nGID_teacher@@@001 pw-t 1,2\n\n  GID_student@@@001 pw-a 1  \nGID_student@@@002 no-rooms\nGID_student@@@001 second 9\n');
  assert.deepEqual([...d.keys()], ['GID_teacher@@@001', 'GID_student@@@001']);
  assert.deepEqual(d.get('GID_teacher@@@001'), { password: 'pw-t', rooms: ['1', '2'] });
  assert.deepEqual(d.get('GID_student@@@001'), { password: 'pw-a', rooms: ['1'] }, 'the first line of a client ID wins');
});

test('passwords compare equal only when equal, whatever their lengths', () => {
  assert.equal(passwordMatches('s3cret', 's3cret'), true);
  assert.equal(passwordMatches('s3cret', 's3cre'), false);
  assert.equal(passwordMatches('s3cret', 's3cret '), false);
  assert.equal(passwordMatches('s3cret', ''), false);
  assert.equal(passwordMatches('', 'x'.repeat(1000)), false);
});

test('sessions: each login rotates the ID and carries the other sign-ins; each sign-in ends after its 8 hours', () => {
  let now = 0;
  let n = 0;
  const s = new Sessions({ ttlMs: 1000, now: () => now, random: () => `id${++n}` });
  const a = s.login(null, 'GID_teacher@@@001', '1');
  assert.deepEqual(a, { id: 'id1', maxAgeSecs: 1 });
  now = 500;
  const b = s.login(a.id, 'GID_student@@@001', '1');
  assert.equal(b.id, 'id2');
  assert.equal(s.find(a.id, 'GID_teacher@@@001', '1'), null, 'the old ID is gone');
  assert.ok(s.find(b.id, 'GID_teacher@@@001', '1'), 'the teacher sign-in was carried over');
  assert.ok(s.find(b.id, 'GID_student@@@001', '1'));
  assert.equal(s.find(b.id, 'GID_student@@@001', '2'), null, 'another room is another sign-in');
  now = 1000;
  assert.equal(s.find(b.id, 'GID_teacher@@@001', '1'), null, 'the teacher signed in 1000 ms ago');
  assert.ok(s.find(b.id, 'GID_student@@@001', '1'));
  assert.equal(s.logout(b.id, 'GID_student@@@001', '1'), 0, 'no sign-in left: the session is gone');
  assert.equal(s.size, 0);
  assert.equal(s.find('', 'GID_student@@@001', '1'), null);
  assert.equal(s.find(undefined, 'GID_student@@@001', '1'), null);
});

test('the throttle refuses a client ID after 10 failures within a minute, until the minute ends', () => {
  let now = 0;
  const t = new Throttle({ now: () => now });
  for (let i = 0; i < 9; i++) t.fail('x');
  assert.equal(t.retryAfter('x'), 0);
  t.fail('x');
  assert.equal(t.retryAfter('x'), 60);
  assert.equal(t.retryAfter('y'), 0, 'per client ID');
  now = 59_001;
  assert.equal(t.retryAfter('x'), 1);
  now = 60_000;
  assert.equal(t.retryAfter('x'), 0);
  t.fail('y');
  t.succeed('y');
  assert.equal(t.failures.has('y'), false);
});

test('the broker URL: ws:// or wss:// only, no credentials, and the CSP names exactly it', () => {
  assert.deepEqual(brokerUrl('ws://127.0.0.1:9001'), { url: 'ws://127.0.0.1:9001', source: 'ws://127.0.0.1:9001' });
  const aws = brokerUrl('wss://abc-ats.iot.us-east-1.amazonaws.com/mqtt?x-amz-customauthorizer-name=ClassroomTokenAuthorizer');
  assert.equal(aws.source, 'wss://abc-ats.iot.us-east-1.amazonaws.com');
  assert.equal(brokerUrl('http://127.0.0.1:9001'), null);
  assert.equal(brokerUrl('ws://user:pw@127.0.0.1:9001'), null);
  assert.equal(brokerUrl('ws://127.0.0.1:9001/#x'), null);
  assert.equal(brokerUrl('not a url'), null);
  assert.equal(brokerUrl(''), null);
  assert.match(contentSecurityPolicy(brokerUrl('ws://127.0.0.1:9001')), /(^|; )connect-src 'self' ws:\/\/127\.0\.0\.1:9001;/);
  assert.match(contentSecurityPolicy(null), /(^|; )connect-src 'self';/);
  assert.equal(cookieValue('a=1; classroom_session=abc; b=2'), 'abc');
  assert.equal(cookieValue('xclassroom_session=abc'), null);
  assert.equal(cookieValue(undefined), null);
});

// --- serve.mjs against a fake issuer ----------------------------------------------------------
const PEOPLE = {
  'GID_teacher@@@001': ['pw-teacher-1', '1,2'],
  'GID_student@@@001': ['pw-student-1', '1'],
  'GID_student@@@006': ['pw-student-6', '2'],
};

function listen(server) {
  return new Promise((ok) => server.listen(0, '127.0.0.1', () => ok(server.address().port)));
}

async function world(t, { lifetime = '15' } = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'classroom-web-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const issuer = { mode: 'ok', requests: [], issued: [] };
  const fake = createServer((req, res) => {
    let body = '';
    req.on('data', (d) => {
      body += d;
    });
    req.on('end', () => {
      const json = JSON.parse(body || '{}');
      issuer.requests.push({ method: req.method, url: req.url, body: json });
      if (issuer.mode === 'refuse') {
        res.writeHead(400, { 'content-type': 'application/json' }).end(JSON.stringify({ error: 'invalid_request', field: 'expiresIn', message: 'expiresIn must be at least 60 s' }));
        return;
      }
      const now = Math.floor(Date.now() / 1000);
      const token = `ct1.k1.${Buffer.from(`${json.clientId}:${issuer.issued.length}:${Math.random()}`).toString('base64url')}.sig${issuer.issued.length}`;
      issuer.issued.push(token);
      res.writeHead(201, { 'content-type': 'application/json' }).end(
        JSON.stringify({ token, tokenId: `tok-${issuer.issued.length}`, clientId: json.clientId, issuedAt: now, expiresAt: now + json.expiresIn, rooms: json.rooms, role: json.clientId.startsWith('GID_teacher') ? 'teacher' : 'student', read: [], write: [] }),
      );
    });
  });
  const issuerPort = await listen(fake);
  t.after(() => fake.close());
  const directory = join(dir, 'directory');
  const writeDirectory = (people) => writeFileSync(directory, `# test directory\n${Object.entries(people).map(([id, [pw, rooms]]) => `${id} ${pw} ${rooms}`).join('\n')}\n`);
  writeDirectory(PEOPLE);
  const envPath = join(dir, 'stack.env');
  const wsPort = 40000 + Math.floor(Math.random() * 20000);
  const writeEnv = (extra = {}) =>
    writeFileSync(
      envPath,
      `${Object.entries({ MQTT_WS_URL: `ws://127.0.0.1:${wsPort}`, TOKEN_API_URL: `http://127.0.0.1:${issuerPort}`, SCHOOL_DIRECTORY: directory, MAX_MESSAGE_CHARS: '500', ...extra })
        .map(([k, v]) => `${k}=${v}`)
        .join('\n')}\n`,
    );
  writeEnv();
  const proc = spawn(process.execPath, [join(web, 'serve.mjs')], {
    env: { ...process.env, STACK_ENV: envPath, WEB_PORT: '0', WEB_HOST: '127.0.0.1', WEB_TOKEN_LIFETIME: lifetime },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  t.after(() => proc.kill('SIGTERM'));
  const base = await new Promise((ok, fail) => {
    const timer = setTimeout(() => fail(new Error(`page server did not start: ${output}`)), 10_000);
    const read = (d) => {
      output += d;
      const m = /^web: (http:\/\/\S+)$/m.exec(output);
      if (m) {
        clearTimeout(timer);
        ok(m[1]);
      }
    };
    proc.stdout.on('data', read);
    proc.stderr.on('data', read);
    proc.on('exit', (code) => fail(new Error(`page server exited (${code}): ${output}`)));
  });
  const post = async (path, body, { cookie, headers = {}, raw } = {}) => {
    const res = await fetch(`${base}${path}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...(cookie ? { cookie } : {}), ...headers },
      body: raw ?? JSON.stringify(body),
    });
    const text = await res.text();
    let json = null;
    try {
      json = JSON.parse(text);
    } catch {
      json = null;
    }
    const setCookie = res.headers.get('set-cookie');
    return { status: res.status, json, text, setCookie, headers: res.headers, cookie: setCookie ? setCookie.split(';')[0] : null };
  };
  return { base, issuer, post, wsPort, writeEnv, writeDirectory, output: () => output };
}

test('login: the directory password and an enrolled room give a token and an HttpOnly, SameSite=Strict session cookie', async (t) => {
  const w = await world(t);
  const r = await w.post('login', { clientId: 'GID_student@@@001', password: 'pw-student-1', room: '1' });
  assert.equal(r.status, 200, r.text);
  assert.deepEqual(Object.keys(r.json).sort(), ['clientId', 'expiresAt', 'expiresIn', 'issuedAt', 'role', 'room', 'token', 'tokenId', 'wsUrl']);
  assert.equal(r.json.token, w.issuer.issued[0]);
  assert.equal(r.json.clientId, 'GID_student@@@001');
  assert.equal(r.json.room, '1');
  assert.equal(r.json.role, 'student');
  assert.equal(r.json.expiresIn, 15);
  assert.equal(r.json.wsUrl, `ws://127.0.0.1:${w.wsPort}`);
  assert.deepEqual(w.issuer.requests, [{ method: 'POST', url: '/tokens/classroom', body: { clientId: 'GID_student@@@001', rooms: ['1'], expiresIn: 15 } }]);
  const attrs = r.setCookie.split(';').map((s) => s.trim());
  assert.match(attrs[0], /^classroom_session=[A-Za-z0-9_-]{43}$/, '32 random bytes, base64url');
  for (const a of ['Path=/', 'HttpOnly', 'SameSite=Strict', 'Max-Age=28800']) assert.ok(attrs.includes(a), `${a} in ${r.setCookie}`);
  assert.equal(r.headers.get('cache-control'), 'no-store');
});

test('login: unknown person and wrong password get the same 401; a room outside the directory 403; no token is asked for', async (t) => {
  const w = await world(t);
  const wrong = await w.post('login', { clientId: 'GID_teacher@@@001', password: 'pw-student-1', room: '1' });
  assert.equal(wrong.status, 401);
  assert.deepEqual(wrong.json, { error: 'unauthorized', message: 'sign-in refused: unknown client ID or wrong password' });
  assert.equal(wrong.setCookie, null);
  const unknown = await w.post('login', { clientId: 'GID_teacher@@@099', password: 'pw-teacher-1', room: '1' });
  assert.equal(unknown.status, 401);
  assert.deepEqual(unknown.json, wrong.json, 'no telling which client IDs exist');
  const notEnrolled = await w.post('login', { clientId: 'GID_student@@@006', password: 'pw-student-6', room: '1' });
  assert.equal(notEnrolled.status, 403);
  assert.equal(notEnrolled.json.error, 'not_enrolled');
  assert.equal(notEnrolled.json.field, 'room');
  assert.match(notEnrolled.json.message, /GID_student@@@006 is not enrolled in room 1/);
  const badId = await w.post('login', { clientId: 'GID_student@@@0 1', password: 'x', room: '1' });
  assert.equal(badId.status, 400);
  assert.equal(badId.json.field, 'clientId');
  const badRoom = await w.post('login', { clientId: 'GID_student@@@001', password: 'pw-student-1', room: '1/#' });
  assert.equal(badRoom.status, 400);
  assert.equal(badRoom.json.field, 'room');
  const noPw = await w.post('login', { clientId: 'GID_student@@@001', room: '1' });
  assert.equal(noPw.status, 400);
  assert.equal(noPw.json.field, 'password');
  assert.equal(w.issuer.requests.length, 0);
});

test('token: a fresh token for a sign-in of this session only; logout ends it', async (t) => {
  const w = await world(t);
  const login = await w.post('login', { clientId: 'GID_student@@@001', password: 'pw-student-1', room: '1' });
  const first = login.json.token;
  const fresh = await w.post('token', { clientId: 'GID_student@@@001', room: '1' }, { cookie: login.cookie });
  assert.equal(fresh.status, 200, fresh.text);
  assert.notEqual(fresh.json.token, first, 'a new token');
  assert.equal(fresh.setCookie, null);
  assert.equal((await w.post('token', { clientId: 'GID_student@@@001', room: '1' })).status, 401, 'no cookie');
  assert.equal((await w.post('token', { clientId: 'GID_student@@@001', room: '1' }, { cookie: 'classroom_session=forged' })).status, 401, 'unknown session');
  const other = await w.post('token', { clientId: 'GID_teacher@@@001', room: '1' }, { cookie: login.cookie });
  assert.equal(other.status, 401, 'someone else');
  assert.match(other.json.message, /not signed in as GID_teacher@@@001 for room 1/);
  assert.equal((await w.post('token', { clientId: 'GID_student@@@001', room: '2' }, { cookie: login.cookie })).status, 401, 'another room');
  const out = await w.post('logout', { clientId: 'GID_student@@@001', room: '1' }, { cookie: login.cookie });
  assert.equal(out.status, 204);
  assert.match(out.setCookie, /^classroom_session=; .*Max-Age=0/);
  assert.equal((await w.post('token', { clientId: 'GID_student@@@001', room: '1' }, { cookie: login.cookie })).status, 401, 'after logout');
});

test('one browser holds a teacher and a student sign-in; the session ID changes at each login', async (t) => {
  const w = await world(t);
  const a = await w.post('login', { clientId: 'GID_teacher@@@001', password: 'pw-teacher-1', room: '2' });
  const b = await w.post('login', { clientId: 'GID_student@@@001', password: 'pw-student-1', room: '1' }, { cookie: a.cookie });
  assert.equal(b.status, 200);
  assert.notEqual(b.cookie, a.cookie);
  assert.equal((await w.post('token', { clientId: 'GID_teacher@@@001', room: '2' }, { cookie: a.cookie })).status, 401, 'the old ID is dead');
  assert.equal((await w.post('token', { clientId: 'GID_teacher@@@001', room: '2' }, { cookie: b.cookie })).status, 200);
  assert.equal((await w.post('token', { clientId: 'GID_student@@@001', room: '1' }, { cookie: b.cookie })).status, 200);
  const out = await w.post('logout', { clientId: 'GID_student@@@001', room: '1' }, { cookie: b.cookie });
  assert.match(out.setCookie, /Max-Age=28[0-9]{3}/, 'the teacher sign-in keeps the cookie');
  assert.equal((await w.post('token', { clientId: 'GID_teacher@@@001', room: '2' }, { cookie: b.cookie })).status, 200);
  const all = await w.post('logout', {}, { cookie: b.cookie });
  assert.match(all.setCookie, /Max-Age=0/);
  assert.equal((await w.post('token', { clientId: 'GID_teacher@@@001', room: '2' }, { cookie: b.cookie })).status, 401);
});

test('token: the directory is checked again (removed from a room: 403 and the sign-in ends; removed: 401)', async (t) => {
  const w = await world(t);
  const login = await w.post('login', { clientId: 'GID_teacher@@@001', password: 'pw-teacher-1', room: '2' });
  w.writeDirectory({ ...PEOPLE, 'GID_teacher@@@001': ['pw-teacher-1', '1'] });
  const r = await w.post('token', { clientId: 'GID_teacher@@@001', room: '2' }, { cookie: login.cookie });
  assert.equal(r.status, 403);
  assert.match(r.json.message, /not enrolled in room 2/);
  w.writeDirectory(PEOPLE);
  assert.equal((await w.post('token', { clientId: 'GID_teacher@@@001', room: '2' }, { cookie: login.cookie })).status, 401, 'that sign-in ended');
  const again = await w.post('login', { clientId: 'GID_teacher@@@001', password: 'pw-teacher-1', room: '2' });
  const { 'GID_teacher@@@001': _gone, ...rest } = PEOPLE;
  w.writeDirectory(rest);
  assert.equal((await w.post('token', { clientId: 'GID_teacher@@@001', room: '2' }, { cookie: again.cookie })).status, 401);
});

test('ten wrong passwords lock that client ID out for a minute, the right one included', async (t) => {
  const w = await world(t);
  for (let i = 0; i < 10; i++) assert.equal((await w.post('login', { clientId: 'GID_student@@@001', password: `guess${i}`, room: '1' })).status, 401);
  const r = await w.post('login', { clientId: 'GID_student@@@001', password: 'pw-student-1', room: '1' });
  assert.equal(r.status, 429);
  assert.match(r.json.message, /too many failed sign-ins for GID_student@@@001/);
  assert.ok(Number(r.headers.get('retry-after')) > 0);
  assert.equal((await w.post('login', { clientId: 'GID_teacher@@@001', password: 'pw-teacher-1', room: '1' })).status, 200, 'others are not locked out');
});

test('only the page server own pages may call it: JSON only, same origin, its own Host', async (t) => {
  const w = await world(t);
  const ok = { clientId: 'GID_student@@@001', password: 'pw-student-1', room: '1' };
  const form = await w.post('login', null, { headers: { 'content-type': 'application/x-www-form-urlencoded' }, raw: 'clientId=GID_student%40%40%40001&password=pw-student-1&room=1' });
  assert.equal(form.status, 415, 'a cross-site form cannot post JSON');
  assert.equal((await w.post('login', ok, { headers: { origin: 'http://evil.example' } })).status, 403);
  assert.equal((await w.post('login', ok, { headers: { 'sec-fetch-site': 'cross-site' } })).status, 403);
  assert.equal((await w.post('login', null, { raw: '{"clientId":' })).status, 400);
  assert.equal((await w.post('login', null, { raw: JSON.stringify({ ...ok, pad: 'x'.repeat(10_000) }) })).status, 413);
  const status = (hostHeader) =>
    new Promise((ok, fail) => {
      const u = new URL(w.base);
      request({ host: u.hostname, port: u.port, path: '/config.js', headers: { host: hostHeader } }, (res) => {
        res.resume();
        ok(res.statusCode);
      })
        .on('error', fail)
        .end();
    });
  const port = new URL(w.base).port;
  assert.equal(await status(`evil.example:${port}`), 421, 'DNS rebinding: another Host');
  assert.equal(await status(`localhost:${port}`), 200);
  assert.equal((await fetch(`${w.base}login`)).status, 405, 'GET /login');
  assert.equal(w.issuer.requests.length, 0);
});

test('the broker comes from the stack env only: /config.js, the login answer and the CSP name exactly it', async (t) => {
  const w = await world(t);
  const broker = `ws://127.0.0.1:${w.wsPort}`;
  for (const path of ['index.html', 'student.html?ws=ws://127.0.0.1:1', 'config.js?ws=ws://127.0.0.1:1', 'js/app.js']) {
    const res = await fetch(`${w.base}${path}`);
    assert.equal(res.status, 200, path);
    const csp = res.headers.get('content-security-policy');
    assert.match(csp, new RegExp(`(^|; )connect-src 'self' ${broker.replace(/[.:/]/g, '\\$&')};`), `${path}: ${csp}`);
    if (path.startsWith('config.js')) assert.match(await res.text(), new RegExp(`"wsUrl":"${broker}"`));
  }
  // A broker URL carrying credentials is not a broker URL: nothing is offered.
  w.writeEnv({ MQTT_WS_URL: `ws://u:p@127.0.0.1:${w.wsPort}` });
  const res = await fetch(`${w.base}config.js`);
  assert.match(res.headers.get('content-security-policy'), /(^|; )connect-src 'self';/);
  assert.match(await res.text(), /"wsUrl":""/);
});

test('the issuer refusing or down is a 502 or 503 that says so; no session is made', async (t) => {
  const w = await world(t);
  w.issuer.mode = 'refuse';
  const r = await w.post('login', { clientId: 'GID_student@@@001', password: 'pw-student-1', room: '1' });
  assert.equal(r.status, 502);
  assert.match(r.json.message, /the token service refused: expiresIn must be at least 60 s \(WEB_TOKEN_LIFETIME/);
  assert.equal(r.setCookie, null);
  w.writeEnv({ TOKEN_API_URL: 'http://127.0.0.1:9' });
  const down = await w.post('login', { clientId: 'GID_student@@@001', password: 'pw-student-1', room: '1' });
  assert.equal(down.status, 503);
  assert.match(down.json.message, /did not answer/);
});

test('the page server logs who signed in, never a password or a token', async (t) => {
  const w = await world(t);
  const login = await w.post('login', { clientId: 'GID_student@@@001', password: 'pw-student-1', room: '1' });
  await w.post('token', { clientId: 'GID_student@@@001', room: '1' }, { cookie: login.cookie });
  await w.post('login', { clientId: 'GID_teacher@@@001', password: 'pw-student-1', room: '1' });
  await new Promise((ok) => setTimeout(ok, 200));
  const out = w.output();
  assert.match(out, /login GID_student@@@001 room 1: ok/);
  assert.match(out, /login GID_teacher@@@001 room 1 refused: 401 unauthorized/);
  for (const [pw] of Object.values(PEOPLE)) assert.ok(!out.includes(pw), `a password in the log: ${pw}`);
  for (const token of w.issuer.issued) assert.ok(!out.includes(token), 'a token in the log');
  assert.ok(!/ct1\./.test(out), 'nothing token-like in the log');
  assert.ok(!out.includes(login.cookie.split('=')[1]), 'the session ID in the log');
});
