// Packs the addon the way npm publishes it, installs the tarball into an empty folder, and checks that
// what a user gets works there: the compiled server and its Lua files are in the package, the
// `ember-presence-server` bin prints its usage, and `ember-presence/server` imports as a library.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

const root = resolve(import.meta.dirname, '..');
const scratch = mkdtempSync(join(tmpdir(), 'ember-presence-pack-'));
const run = (cmd, args, cwd) =>
  execFileSync(cmd, args, {
    cwd,
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
    timeout: 300_000,
  });

let failures = 0;
let passed = 0;
function check(name, ok, detail = '') {
  console.log(
    `${ok ? 'ok' : 'not ok'} - ${name}${ok || !detail ? '' : `\n  ${detail.split('\n').join('\n  ')}`}`,
  );
  if (ok) passed++;
  else failures++;
}

try {
  const packed = JSON.parse(
    run('npm', ['pack', '--json', '--pack-destination', scratch], root),
  );
  const { filename, files } = packed[0];
  const paths = new Set(files.map((f) => f.path));
  check(
    'the package carries the compiled CLI',
    paths.has('server/dist/main.js'),
  );
  check(
    'the package carries the library entry and its types',
    paths.has('server/dist/index.js') && paths.has('server/dist/index.d.ts'),
  );
  check(
    'the package carries the Lua scripts',
    [...paths].some((p) => /^server\/lua\/.+\.lua$/.test(p)),
  );
  check(
    'the package carries no tests or sources of the dummy app',
    ![...paths].some((p) => p.startsWith('tests/')),
  );
  check(
    'the package carries typings for the addon and test-support, with the server core they use',
    [
      'declarations/addon/index.d.ts',
      'declarations/addon-test-support/index.d.ts',
      'declarations/server/src/core/index.d.ts',
    ].every((p) => paths.has(p)),
  );
  check(
    'test-support carries the server core as one bundled module, not as TypeScript sources',
    paths.has('addon-test-support/-private/core.js') &&
      ![...paths].some((p) => p.startsWith('server/src/')),
  );

  const app = join(scratch, 'app');
  run('mkdir', ['-p', app]);
  writeFileSync(
    join(app, 'package.json'),
    JSON.stringify({ name: 'scratch', private: true, type: 'module' }),
  );
  run(
    'npm',
    [
      'install',
      '--no-audit',
      '--no-fund',
      '--prefer-offline',
      '--omit=dev',
      '--omit=peer',
      join(scratch, filename),
    ],
    app,
  );

  let help = '';
  try {
    help = run(
      join(app, 'node_modules/.bin/ember-presence-server'),
      ['--help'],
      app,
    );
  } catch (error) {
    help = String(error.stdout ?? '') + String(error.stderr ?? error.message);
  }
  check(
    'ember-presence-server --help prints usage',
    /usage/i.test(help) && /--port/.test(help),
    help,
  );

  const lib = run(
    'node',
    [
      '--input-type=module',
      '-e',
      "const m = await import('ember-presence/server'); console.log(typeof m.createPresenceServer);",
    ],
    app,
  ).trim();
  check(
    "import('ember-presence/server') gives createPresenceServer",
    lib === 'function',
    lib,
  );
} catch (error) {
  check(
    'pack and install',
    false,
    String(error.stderr ?? '') + String(error.message),
  );
} finally {
  rmSync(scratch, { recursive: true, force: true });
}

console.log(`${passed} passed, ${failures} failed`);
process.exitCode = failures ? 1 : 0;
