#!/usr/bin/env node
// Serves the classroom pages on loopback, with the local "school login" (no dependencies beyond
// Node):
//   web/public/*        the pages
//   /vendor/mqtt.min.js MQTT.js's browser bundle from node_modules (npm ci)
//   /config.js          what the pages need from the stack's env file: the broker's WebSocket
//                       URL, the teacher/student groups, the chat length limit (never a secret)
//   POST /login         {clientId, password, room}: checks the school directory, asks the local
//                       token issuer for a classroom token for that room; sets the session cookie
//   POST /token         {clientId, room}: a fresh token for a sign-in of this browser's session
//   POST /logout        {clientId, room} ends that sign-in; {} (or no body) the whole session
// Answers: 200 {token, tokenId, clientId, room, role, issuedAt, expiresAt, expiresIn, wsUrl}
// (times in seconds); refusals {error, field?, message}: 400, 401 (unknown client ID or wrong
// password; no session), 403 (not enrolled in that room), 429 (too many failures), 502/503
// (the issuer refused / did not answer).
//
// The broker URL comes only from the stack env (MQTT_WS_URL), never from a request or a link,
// and the Content-Security-Policy's connect-src names exactly that broker. Passwords and
// tokens are never logged nor kept: a password is compared and dropped, a token handed to the
// page that asked. The session (cookie `classroom_session`: 32 random bytes, HttpOnly,
// SameSite=Strict, 8 h) lives in this process's memory only.
//
// Environment: STACK_ENV (default <repo>/.run/stack.env, re-read on every request: a restarted
// stack only needs a page reload), WEB_HOST (default 127.0.0.1), WEB_PORT (default 8380; 0 = any
// free port), WEB_TOKEN_LIFETIME (seconds, default 600: each token's lifetime; the pages renew
// at 80 %), WEB_STALE_MS (the pages' staleness limit, tests).
// Prints `web: http://127.0.0.1:<port>/` once listening.
import { createServer } from 'node:http';
import { readFile, stat } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { dirname, extname, join, normalize, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { readDirectory, readEnv } from './stack-files.mjs';
import {
  LoginError,
  Sessions,
  Throttle,
  brokerUrl,
  checkEnrolled,
  checkLogin,
  clearedCookie,
  contentSecurityPolicy,
  cookieValue,
  issueClassroomToken,
  readSignInBody,
  sessionCookie,
} from './school.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, '..');
const pub = join(here, 'public');
const stackEnv = resolve(process.env.STACK_ENV || join(root, '.run', 'stack.env'));
const host = process.env.WEB_HOST || '127.0.0.1';
const port = Number(process.env.WEB_PORT ?? 8380);
const lifetime = Number(process.env.WEB_TOKEN_LIFETIME ?? 600);
if (!Number.isInteger(lifetime) || lifetime < 1 || lifetime > 30 * 86400) {
  console.error(`web: WEB_TOKEN_LIFETIME=${process.env.WEB_TOKEN_LIFETIME}: give the token lifetime in whole seconds (1..2592000)`);
  process.exit(1);
}
const BODY_MAX = 8 * 1024;
const loopback = ['127.0.0.1', 'localhost', '::1'].includes(host);
const vendor = {
  '/vendor/mqtt.min.js': join(here, 'node_modules', 'mqtt', 'dist', 'mqtt.min.js'),
};
const types = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.json': 'application/json',
};

const list = (v, d) => (v ? v.split(',').map((s) => s.trim()).filter(Boolean) : d);
const sessions = new Sessions();
const throttle = new Throttle();
setInterval(() => {
  sessions.prune();
  throttle.prune();
}, 60_000).unref();

/** What one request sees of the stack's configuration. */
function stackConfig() {
  const env = readEnv(stackEnv);
  const broker = brokerUrl(env.MQTT_WS_URL || (env.MQTT_WS_PORT ? `ws://127.0.0.1:${env.MQTT_WS_PORT}` : ''));
  return { env, broker, teacherGroups: list(env.TEACHER_GROUPS, ['GID_teacher']), studentGroups: list(env.STUDENT_GROUPS, ['GID_student']) };
}

function configJs(c) {
  const cfg = {
    wsUrl: c.broker ? c.broker.url : '',
    teacherGroups: c.teacherGroups,
    studentGroups: c.studentGroups,
    maxMessageChars: Number(c.env.MAX_MESSAGE_CHARS) || null,
    staleMs: Number(process.env.WEB_STALE_MS) || null,
    tokenLifetime: lifetime,
    stackEnv: existsSync(stackEnv),
  };
  return `window.CLASSROOM = ${JSON.stringify(cfg)};\n`;
}

const headers = (type, c) => ({
  'content-type': type,
  'cache-control': 'no-store',
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'cross-origin-opener-policy': 'same-origin',
  'content-security-policy': contentSecurityPolicy(c.broker),
});

function log(msg) {
  console.log(`web: ${new Date().toISOString().slice(11, 19)} ${msg}`);
}

function sendJson(res, c, status, body, extra = {}) {
  res.writeHead(status, { ...headers('application/json; charset=utf-8', c), ...extra });
  res.end(`${JSON.stringify(body)}\n`);
}

/** The request's JSON body (at most BODY_MAX bytes; an empty body is {}). */
async function readJson(req) {
  const chunks = [];
  let size = 0;
  for await (const chunk of req) {
    size += chunk.length;
    if (size > BODY_MAX) throw new LoginError(413, 'too_large', `the body is larger than ${BODY_MAX} bytes`);
    chunks.push(chunk);
  }
  const text = Buffer.concat(chunks).toString('utf8').trim();
  if (!text) return {};
  try {
    return JSON.parse(text);
  } catch {
    throw new LoginError(400, 'invalid_request', 'the body is not JSON');
  }
}

/**
 * Only this page server's own pages may call the API: a JSON content type (a form on another
 * site cannot send one without a CORS preflight, which is never granted), and no Origin or
 * Sec-Fetch-Site saying another site (the SameSite=Strict cookie is the second wall).
 */
function checkSameOrigin(req) {
  if (!/^application\/json\b/i.test(req.headers['content-type'] || '')) {
    throw new LoginError(415, 'unsupported_media_type', 'send the body as application/json');
  }
  const origin = req.headers.origin;
  if (origin && origin !== `http://${req.headers.host}`) throw new LoginError(403, 'cross_origin', 'requests from another origin are refused');
  const site = req.headers['sec-fetch-site'];
  if (site && site !== 'same-origin' && site !== 'none') throw new LoginError(403, 'cross_origin', 'requests from another site are refused');
}

function roleOf(c, clientId) {
  return c.teacherGroups.includes(clientId.split('@@@')[0]) ? 'teacher' : 'student';
}

function directoryOf(c) {
  const dir = readDirectory(c.env.SCHOOL_DIRECTORY);
  if (!dir) {
    throw new LoginError(503, 'no_directory', c.env.SCHOOL_DIRECTORY ? `the school directory ${c.env.SCHOOL_DIRECTORY} is missing: is the stack up?` : `no SCHOOL_DIRECTORY in ${stackEnv}: is the stack up (and recent)? \`make up\``);
  }
  return dir;
}

async function tokenAnswer(c, clientId, room) {
  const issued = await issueClassroomToken(c.env.TOKEN_API_URL, clientId, room, lifetime);
  return {
    token: issued.token,
    tokenId: issued.tokenId,
    clientId,
    room,
    role: issued.role || roleOf(c, clientId),
    issuedAt: issued.issuedAt,
    expiresAt: issued.expiresAt,
    expiresIn: issued.expiresAt - issued.issuedAt,
    wsUrl: c.broker ? c.broker.url : '',
  };
}

const api = {
  async '/login'(req, res, c) {
    const { clientId, room, password } = readSignInBody(await readJson(req), { password: true });
    req.who = `${clientId} room ${room}`;
    const wait = throttle.retryAfter(clientId);
    if (wait) throw Object.assign(new LoginError(429, 'too_many_attempts', `too many failed sign-ins for ${clientId}: try again in ${wait} s`), { retryAfter: wait });
    let person;
    try {
      person = checkLogin(directoryOf(c), { clientId, password, room });
    } catch (e) {
      if (e.status === 401) throttle.fail(clientId);
      throw e;
    }
    throttle.succeed(clientId);
    const answer = await tokenAnswer(c, clientId, room);
    const { id, maxAgeSecs } = sessions.login(cookieValue(req.headers.cookie), clientId, room);
    log(`login ${clientId} room ${room}: ok (${person.rooms.length} room(s) in the directory; token ${answer.expiresIn} s)`);
    sendJson(res, c, 200, answer, { 'set-cookie': sessionCookie(id, maxAgeSecs) });
  },

  async '/token'(req, res, c) {
    const { clientId, room } = readSignInBody(await readJson(req), { password: false });
    req.who = `${clientId} room ${room}`;
    const sid = cookieValue(req.headers.cookie);
    if (!sessions.find(sid, clientId, room)) {
      throw new LoginError(401, 'no_session', `not signed in as ${clientId} for room ${room} in this browser: sign in with the password`);
    }
    // The directory may have changed since the login: still there, still enrolled.
    const person = directoryOf(c).get(clientId);
    try {
      if (!person) throw new LoginError(401, 'no_session', `${clientId} is no longer in the school directory`);
      checkEnrolled(person, clientId, room);
    } catch (e) {
      sessions.logout(sid, clientId, room);
      throw e;
    }
    const answer = await tokenAnswer(c, clientId, room);
    log(`token ${clientId} room ${room}: fresh (${answer.expiresIn} s)`);
    sendJson(res, c, 200, answer);
  },

  async '/logout'(req, res, c) {
    const body = await readJson(req);
    const sid = cookieValue(req.headers.cookie);
    let left;
    if (body && typeof body === 'object' && body.clientId != null) {
      const { clientId, room } = readSignInBody(body, { password: false });
      left = sessions.logout(sid, clientId, room);
      log(`logout ${clientId} room ${room}`);
    } else {
      left = sessions.logout(sid);
      log('logout (session)');
    }
    res.writeHead(204, { ...headers('text/plain', c), 'set-cookie': left ? sessionCookie(sid, left) : clearedCookie() });
    res.end();
  },
};

let actualPort = port;
function hostAllowed(req) {
  if (!loopback) return true;
  const h = String(req.headers.host || '').toLowerCase();
  // DNS rebinding: a page of another site whose name resolves to 127.0.0.1 sends its own Host.
  return [`127.0.0.1:${actualPort}`, `localhost:${actualPort}`, `[::1]:${actualPort}`].includes(h);
}

const server = createServer(async (req, res) => {
  const c = stackConfig();
  try {
    if (!hostAllowed(req)) {
      res.writeHead(421, headers('text/plain', c)).end('unexpected Host: use http://127.0.0.1 or http://localhost\n');
      return;
    }
    let path;
    try {
      path = decodeURIComponent(new URL(req.url, 'http://x').pathname);
    } catch {
      res.writeHead(400, headers('text/plain', c)).end('bad request\n');
      return;
    }
    if (req.method === 'POST' && Object.hasOwn(api, path)) {
      try {
        checkSameOrigin(req);
        await api[path](req, res, c);
      } catch (e) {
        if (!(e instanceof LoginError)) throw e;
        // The client ID and room, never the password (nor a token: none was issued).
        log(`${path.slice(1)}${req.who ? ` ${req.who}` : ''} refused: ${e.status} ${e.error}`);
        sendJson(res, c, e.status, e.body(), e.retryAfter ? { 'retry-after': String(e.retryAfter) } : {});
      }
      return;
    }
    if (Object.hasOwn(api, path) || (req.method !== 'GET' && req.method !== 'HEAD')) {
      res.writeHead(405, { ...headers('text/plain', c), allow: Object.hasOwn(api, path) ? 'POST' : 'GET, HEAD' }).end('method not allowed\n');
      return;
    }
    if (path === '/config.js') {
      res.writeHead(200, headers(types['.js'], c)).end(configJs(c));
      return;
    }
    let file = vendor[path];
    if (!file) {
      file = normalize(join(pub, path.endsWith('/') ? `${path}index.html` : path));
      if (file !== pub && !file.startsWith(pub + sep)) {
        res.writeHead(403, headers('text/plain', c)).end('forbidden\n');
        return;
      }
    }
    const st = await stat(file).catch(() => null);
    if (!st || !st.isFile()) {
      const hint = vendor[path] ? ' (run `npm ci` in web/)' : '';
      res.writeHead(404, headers('text/plain', c)).end(`not found${hint}\n`);
      return;
    }
    const body = await readFile(file);
    res.writeHead(200, headers(types[extname(file)] || 'application/octet-stream', c));
    res.end(req.method === 'HEAD' ? undefined : body);
  } catch (e) {
    log(`error on ${req.method} ${req.url}: ${e.message}`);
    if (!res.headersSent) res.writeHead(500, headers('text/plain', c));
    res.end('internal error\n');
  }
});

server.on('error', (e) => {
  console.error(`web: cannot listen on ${host}:${port}: ${e.message}${e.code === 'EADDRINUSE' ? ' (set WEB_PORT=<another port>, or 0 for any)' : ''}`);
  process.exit(1);
});
server.listen(port, host, () => {
  actualPort = server.address().port;
  const base = `http://${host.includes(':') ? `[${host}]` : host}:${actualPort}/`;
  const c = stackConfig();
  console.log(`web: ${base}`);
  console.log(`  sign in      ${base}index.html   (school login: client ID, password, room)`);
  const dir = readDirectory(c.env.SCHOOL_DIRECTORY);
  const people = dir ? [...dir.entries()] : [];
  const role = (id) => roleOf(c, id);
  const shown = [...people.filter(([id]) => role(id) === 'teacher').slice(0, 1), ...people.filter(([id]) => role(id) === 'student').slice(0, 3)];
  for (const [id, p] of shown) {
    const device = encodeURIComponent(id.split('@@@')[1] || '');
    const room = encodeURIComponent(p.rooms[0] || '1');
    console.log(`  ${role(id).padEnd(8)}     ${base}${role(id)}.html?device=${device}&room=${room}   (${id}, rooms ${p.rooms.join(',')})`);
  }
  const inRepo = relative(root, dirname(stackEnv));
  const stackDirPrefix = inRepo === '.run' ? '' : `STACK_DIR=${dirname(stackEnv)} `;
  if (dir) {
    console.log(`  passwords    ${stackDirPrefix}infra/local/stack.sh directory   (${people.length} people: \`<clientId> <password> <rooms>\`; the link asks for the password)`);
  } else {
    console.log(`  passwords    none: no school directory (SCHOOL_DIRECTORY in ${stackEnv}); run \`make up\` first`);
  }
  console.log(`  broker       ${c.broker ? `${c.broker.url}  (MQTT 5 over WebSocket; username = client ID, password = a token)` : `none: ${stackEnv} has no MQTT_WS_URL; run \`make up\` first`}`);
  if (c.broker && c.broker.url.startsWith('wss://') && c.env.MQTT_CA_FILE) {
    console.log(`  tls          the broker's certificate is from the stack's own CA: trust ${c.env.MQTT_CA_FILE} in your browser (an authority), or open ${c.broker.url.replace(/^wss:/, 'https:')} once and accept it`);
  }
  console.log(`  tokens       ${c.env.TOKEN_API_URL ? `${c.env.TOKEN_API_URL}/tokens/classroom` : 'none: no TOKEN_API_URL in the stack env (a stack from before token sign-in? `make down up`)'}  (${lifetime} s each, renewed by the page at 80 %)`);
  if (!loopback) console.log(`  WARNING      listening on ${host} over plain HTTP: passwords and tokens cross the network in clear`);
  console.log('  Ctrl-C stops the server');
});
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => {
  server.close(() => process.exit(0));
  server.closeAllConnections();
});
