// Readers of the files the local stack writes (infra/local/stack.sh), shared by the page server
// and the tests: its env file, the school directory, and the pin of its broker's TLS
// certificate (checked against the stack's CA).
import { createHash, X509Certificate } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { connect as tlsConnect } from 'node:tls';

/** `KEY=value` lines of the stack's env file (`#` comments skipped); {} when it is missing. */
export function readEnv(path) {
  const env = {};
  if (!existsSync(path)) return env;
  for (const line of readFileSync(path, 'utf8').split('\n')) {
    const i = line.indexOf('=');
    if (i > 0 && !line.startsWith('#')) env[line.slice(0, i).trim()] = line.slice(i + 1).trim();
  }
  return env;
}

/**
 * The school's directory (`SCHOOL_DIRECTORY` of the stack env): one person per line,
 * `<clientId> <password> <room>[,<room>...]`, `#` comments and blank lines skipped.
 * Returns a Map clientId -> {password, rooms: [room...]}; a line without rooms, or a repeated
 * client ID after its first line, is ignored (the first line wins, as `stack.sh add-person`
 * keeps an existing entry).
 */
export function parseDirectory(text) {
  const people = new Map();
  for (const raw of String(text).split('\n')) {
    const line = raw.trim();
    if (!line || line.startsWith('#')) continue;
    const [id, password, rooms] = line.split(/\s+/);
    if (!id || !password || !rooms || people.has(id)) continue;
    people.set(id, { password, rooms: rooms.split(',').map((r) => r.trim()).filter(Boolean) });
  }
  return people;
}

/** The directory file at `path` (see parseDirectory); null when there is no such file. */
export function readDirectory(path) {
  if (!path || !existsSync(path)) return null;
  return parseDirectory(readFileSync(path, 'utf8'));
}

/**
 * The SPKI pin of an X.509 certificate (PEM or DER): base64 of the SHA-256 of its
 * DER-encoded SubjectPublicKeyInfo, the form of Chromium's `--ignore-certificate-errors-spki-list`
 * (and of HPKP's `pin-sha256`).
 */
export function spkiPin(cert) {
  const x = cert instanceof X509Certificate ? cert : new X509Certificate(cert);
  const der = x.publicKey.export({ type: 'spki', format: 'der' });
  return createHash('sha256').update(der).digest('base64');
}

/**
 * The certificate the broker at `wssUrl` presents, verified in Node against the stack's CA
 * (`caFile`, PEM) and the URL's host: resolves `{cert, pin}` (an X509Certificate and its
 * spkiPin); rejects when the broker cannot be reached or its certificate is not the CA's for
 * that host. A test browser can then trust exactly this certificate (the pin), not every one.
 */
export function brokerCertificate(wssUrl, caFile, { timeoutMs = 5000 } = {}) {
  const u = new URL(wssUrl);
  const port = Number(u.port) || 443;
  const host = u.hostname.replace(/^\[|\]$/g, '');
  return new Promise((ok, fail) => {
    const sock = tlsConnect({ host, port, ca: readFileSync(caFile), servername: isIP(host) ? undefined : host, rejectUnauthorized: true, timeout: timeoutMs }, () => {
      const cert = sock.getPeerX509Certificate();
      sock.destroy();
      if (!cert) fail(new Error(`${wssUrl}: the broker sent no certificate`));
      else ok({ cert, pin: spkiPin(cert) });
    });
    sock.on('timeout', () => {
      sock.destroy();
      fail(new Error(`${wssUrl}: no TLS handshake within ${timeoutMs} ms`));
    });
    sock.on('error', (e) => fail(new Error(`${wssUrl}: ${e.code || ''} ${e.message} (CA ${caFile})`.replace(/\s+/g, ' '))));
  });
}
