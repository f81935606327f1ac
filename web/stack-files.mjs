// Readers of the files the local stack writes (infra/local/stack.sh), shared by the page server
// and the tests.
import { existsSync, readFileSync } from 'node:fs';

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
