#!/usr/bin/env node
// Serves the classroom pages on loopback (no dependencies beyond Node):
//   web/public/*        the pages
//   /vendor/mqtt.min.js MQTT.js's browser bundle from node_modules (npm ci)
//   /config.js          what the pages need from the stack's env file: the WebSocket URL,
//                       the teacher/student groups and the chat length limit (never a secret)
//
// The sign-in links it prints carry each roster client's password in the URL fragment
// (`#password=`), which the browser never sends to a server; /config.js never holds one.
//
// Environment: STACK_ENV (default <repo>/.run/stack.env, re-read on every /config.js),
// WEB_HOST (default 127.0.0.1), WEB_PORT (default 8380; 0 = any free port).
// Prints `web: http://127.0.0.1:<port>/` once listening.
import { createServer } from 'node:http';
import { readFile, stat } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { dirname, extname, join, normalize, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { readClients, readEnv } from './stack-files.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const pub = join(here, 'public');
const stackEnv = resolve(process.env.STACK_ENV || join(here, '..', '.run', 'stack.env'));
const host = process.env.WEB_HOST || '127.0.0.1';
const port = Number(process.env.WEB_PORT ?? 8380);
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

function configJs() {
  const env = readEnv(stackEnv);
  const cfg = {
    wsUrl: env.MQTT_WS_URL || (env.MQTT_WS_PORT ? `ws://127.0.0.1:${env.MQTT_WS_PORT}` : ''),
    teacherGroups: list(env.TEACHER_GROUPS, ['GID_teacher']),
    studentGroups: list(env.STUDENT_GROUPS, ['GID_student']),
    maxMessageChars: Number(env.MAX_MESSAGE_CHARS) || null,
    staleMs: Number(process.env.WEB_STALE_MS) || null,
    stackEnv: existsSync(stackEnv),
  };
  return `window.CLASSROOM = ${JSON.stringify(cfg)};\n`;
}

const headers = (type) => ({
  'content-type': type,
  'cache-control': 'no-store',
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'content-security-policy': "default-src 'self'; connect-src 'self' ws: wss:; worker-src 'self' blob:; img-src 'self' data:; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
});

const server = createServer(async (req, res) => {
  try {
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, headers('text/plain')).end('method not allowed\n');
      return;
    }
    const path = decodeURIComponent(new URL(req.url, 'http://x').pathname);
    if (path === '/config.js') {
      res.writeHead(200, headers(types['.js'])).end(configJs());
      return;
    }
    let file = vendor[path];
    if (!file) {
      file = normalize(join(pub, path.endsWith('/') ? `${path}index.html` : path));
      if (file !== pub && !file.startsWith(pub + sep)) {
        res.writeHead(403, headers('text/plain')).end('forbidden\n');
        return;
      }
    }
    const st = await stat(file).catch(() => null);
    if (!st || !st.isFile()) {
      const hint = vendor[path] ? ' (run `npm ci` in web/)' : '';
      res.writeHead(404, headers('text/plain')).end(`not found${hint}\n`);
      return;
    }
    const body = await readFile(file);
    res.writeHead(200, headers(types[extname(file)] || 'application/octet-stream'));
    res.end(req.method === 'HEAD' ? undefined : body);
  } catch (e) {
    res.writeHead(500, headers('text/plain')).end(`error: ${e.message}\n`);
  }
});

server.on('error', (e) => {
  console.error(`web: cannot listen on ${host}:${port}: ${e.message}${e.code === 'EADDRINUSE' ? ' (set WEB_PORT=<another port>, or 0 for any)' : ''}`);
  process.exit(1);
});
server.listen(port, host, () => {
  const base = `http://${host}:${server.address().port}/`;
  const env = readEnv(stackEnv);
  console.log(`web: ${base}`);
  console.log(`  sign in      ${base}index.html`);
  const roster = readClients(env.MQTT_CLIENTS_FILE);
  const teacherGroups = list(env.TEACHER_GROUPS, ['GID_teacher']);
  const roleOf = (id) => (teacherGroups.includes(id.split('@@@')[0]) ? 'teacher' : 'student');
  const link = (id, pw) => {
    const role = roleOf(id);
    const device = encodeURIComponent(id.split('@@@')[1] || '');
    return `${role.padEnd(8)}     ${base}${role}.html?device=${device}&room=1#password=${encodeURIComponent(pw)}`;
  };
  const shown = [...roster.filter(([id]) => roleOf(id) === 'teacher').slice(0, 1), ...roster.filter(([id]) => roleOf(id) === 'student').slice(0, 3)];
  for (const [id, pw] of shown) console.log(`  ${link(id, pw)}`);
  if (roster.length) {
    console.log(`               (one page per client ID; every password: infra/local/stack.sh credentials; ${roster.length} in the roster)`);
  } else {
    console.log(`  teacher      ${base}teacher.html?device=001&room=1   (sign in with the password of the client ID)`);
  }
  if (env.MQTT_WS_URL || env.MQTT_WS_PORT) {
    console.log(`  broker       ${env.MQTT_WS_URL || `ws://127.0.0.1:${env.MQTT_WS_PORT}`}  (MQTT 5 over WebSocket, from ${stackEnv})`);
  } else {
    console.log(`  broker       none: ${stackEnv} not found; run \`make up\` first (the pages ask for a broker URL meanwhile)`);
  }
  console.log('  Ctrl-C stops the server');
});
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => {
  server.close(() => process.exit(0));
  server.closeAllConnections();
});
