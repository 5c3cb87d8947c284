// The server core ships inside test-support as `ember-presence/test-support/-private/core/*` (index.js
// funnels it there at build time). tsc emits its declarations under declarations/server/src/core; this
// moves them to where `typesVersions` resolves that module path.
import { existsSync, mkdirSync, renameSync, rmSync } from 'node:fs';
import { resolve } from 'node:path';

const root = resolve(import.meta.dirname, '..');
const from = resolve(root, 'declarations/server/src/core');
const to = resolve(root, 'declarations/addon-test-support/-private/core');

if (!existsSync(from)) {
  throw new Error(
    `No core declarations at ${from}: run tsc -p tsconfig.declarations.json first`,
  );
}
rmSync(to, { recursive: true, force: true });
mkdirSync(resolve(to, '..'), { recursive: true });
renameSync(from, to);
rmSync(resolve(root, 'declarations/server'), { recursive: true, force: true });
