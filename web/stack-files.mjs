// Readers of the files the local stack writes (infra/local/stack.sh), shared by the page server
// and the browser test.
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

/** The stack's roster (`<clientId> <password>` per line) as [id, password] pairs; [] when there is none. */
export function readClients(path) {
  if (!path || !existsSync(path)) return [];
  return readFileSync(path, 'utf8')
    .split('\n')
    .map((l) => l.trim().split(/\s+/))
    .filter(([id, pw]) => id && pw && !id.startsWith('#'));
}
