// Proves the addon works where users meet it: in their own apps. Packs ember-presence the way npm publishes
// it, then for each consumer app under test-apps/ (a default Vite + Embroider app and a classic broccoli
// app, each with its own lockfile) copies the app to a scratch folder, installs exactly its lockfile
// (`npm ci`), installs the packed tarball on top the way a user would, type-checks the app with Glint
// (`ember-tsc`: the consumer-facing types) and runs the app's own tests in headless Chromium.
//
//   node scripts/test-apps.mjs                 every app
//   node scripts/test-apps.mjs classic-app     only the named app(s)
//   node scripts/test-apps.mjs --tarball X.tgz reuse a packed tarball instead of packing
//   node scripts/test-apps.mjs --keep          keep the scratch folder (it is printed) for debugging
//
// The repository is never touched: the addon is packed from a copy, apps are copied, and every child
// process gets TMPDIR inside the scratch folder, so ember-cli's tests-dist-* and Chromium's profiles go
// away with it. Every step is bounded in time. The last line is `N passed, N failed` (the QUnit tests of every app, plus one check
// per install and type-check step); the exit code is non-zero on any failure.
import { cpSync, existsSync, readdirSync, symlinkSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import {
  copyRepository,
  createStepRunner,
  finish,
  makeScratch,
  parseTap,
  removeTree,
  tail,
} from './lib/steps.mjs';

const root = resolve(import.meta.dirname, '..');
const appsDir = join(root, 'test-apps');

// Generous bounds: a cold `npm ci` of ~1.4k packages took 40-60 s here, a first Vite build ~30 s; a step
// that needs ten times that is hung, not slow.
const PACK_TIMEOUT_MS = 5 * 60_000;
const INSTALL_TIMEOUT_MS = 10 * 60_000;
const TYPES_TIMEOUT_MS = 3 * 60_000;
const TEST_TIMEOUT_MS = 5 * 60_000;
const E2E_TIMEOUT_MS = 8 * 60_000;
/**
 * Apps that also run end to end: built the way the README says, served against the packed
 * `ember-presence-server`, driven in Chromium (the test gets the scratch copy as APP_DIR).
 */
const END_TO_END = { 'vite-app': 'e2e/consumer-app.test.ts' };
// Folders of an app that are build output or installs, never part of what we copy.
const NOT_COPIED = new Set([
  'node_modules',
  'dist',
  'tmp',
  'declarations',
  '.eslintcache',
]);

const args = process.argv.slice(2);
const keep = takeFlag('--keep');
const givenTarball = takeOption('--tarball');
const known = readdirSync(appsDir, { withFileTypes: true })
  .filter(
    (d) => d.isDirectory() && existsSync(join(appsDir, d.name, 'package.json')),
  )
  .map((d) => d.name)
  .sort();
const unknown = args.filter((a) => !known.includes(a));
if (unknown.length) {
  throw new Error(
    `Unknown app(s): ${unknown.join(', ')}. Known apps in test-apps/: ${known.join(', ')}.`,
  );
}
const apps = args.length ? args : known;

const { scratch, env } = makeScratch('ember-presence-apps-', {
  // ember-template-lint's v8-compile-cache breaks on Node 20.20 (TOOLCHAIN error 11); harmless elsewhere.
  DISABLE_V8_COMPILE_CACHE: '1',
});
const runner = createStepRunner({ env });
const { step, timed } = runner;
let passed = 0;
let failed = 0;

try {
  const tarball = givenTarball ? resolve(givenTarball) : await pack();
  if (tarball) {
    for (const app of apps) {
      if (runner.interrupted) break;
      await testApp(app, tarball);
    }
  }
} finally {
  if (keep) console.log(`\nscratch kept in ${scratch}`);
  // Timed: deleting ~1.5k installed packages per app takes a while on a busy disk.
  else timed('remove the scratch folder', () => removeTree(scratch));
}

runner.printTimings();
finish(passed, failed, runner.interrupted);

/**
 * Packs the addon the way `npm publish` would (prepack builds the declarations and the server), from a
 * copy of the working tree whose node_modules is a symlink to the real one: prepack/postpack then create
 * and delete their build output in the copy, so the tree is never changed and a run cannot race with
 * anyone else building or packing in it.
 */
async function pack() {
  const source = join(scratch, 'pack-source');
  timed('copy the repository to scratch', () => copyRepository(root, source));
  symlinkSync(join(root, 'node_modules'), join(source, 'node_modules'), 'dir');
  const result = await step(
    'pack ember-presence',
    'npm',
    ['pack', '--json', '--pack-destination', scratch],
    { cwd: source, timeout: PACK_TIMEOUT_MS },
  );
  if (!result.ok) {
    check('npm pack', false, result.output);
    return null;
  }
  try {
    // npm prints the lifecycle scripts' output before the JSON on stdout; the JSON is the last array.
    const json = result.stdout.slice(result.stdout.lastIndexOf('\n[') + 1);
    const tarball = join(scratch, JSON.parse(json)[0].filename);
    check(`npm pack → ${basename(tarball)}`, existsSync(tarball));
    return tarball;
  } catch (error) {
    check('npm pack', false, `${error}\n${result.output}`);
    return null;
  }
}

/** Copies one app, installs its lockfile and the tarball, type-checks it and runs its tests. */
async function testApp(app, tarball) {
  console.log(`\n=== ${app}`);
  const dir = join(scratch, app);
  timed(`${app}: copy to scratch`, () =>
    cpSync(join(appsDir, app), dir, {
      recursive: true,
      filter: (src) => !NOT_COPIED.has(basename(src)),
    }),
  );

  // `npm ci` fails when package.json and package-lock.json disagree, so a stale lockfile cannot pass.
  const ci = await step(`${app}: npm ci`, 'npm', ['ci', '--prefer-offline'], {
    cwd: dir,
    timeout: INSTALL_TIMEOUT_MS,
  });
  check(`${app}: npm ci (the committed lockfile)`, ci.ok, ci.output);
  if (!ci.ok) return;

  // What `ember install ember-presence` does; only the copy's package.json and lockfile change.
  const add = await step(
    `${app}: npm install <tarball>`,
    'npm',
    ['install', '--prefer-offline', '--save-dev', tarball],
    { cwd: dir, timeout: INSTALL_TIMEOUT_MS },
  );
  check(`${app}: npm install the packed addon`, add.ok, add.output);
  if (!add.ok) return;

  const types = await step(
    `${app}: ember-tsc --noEmit`,
    'npx',
    ['--no-install', 'ember-tsc', '--noEmit'],
    {
      cwd: dir,
      timeout: TYPES_TIMEOUT_MS,
    },
  );
  check(
    `${app}: the app type-checks against the addon's types (ember-tsc)`,
    types.ok,
    types.output,
  );

  // The app's own test command, output streamed unchanged (CI greps it for skipped tests).
  const tests = await step(
    `${app}: npm run test:ember`,
    'npm',
    ['run', 'test:ember'],
    {
      cwd: dir,
      timeout: TEST_TIMEOUT_MS,
      stream: true,
    },
  );
  const tap = parseTap(tests.stdout);
  if (tap) {
    passed += tap.pass;
    failed += tap.fail;
    console.log(
      `${app}: ${tap.pass} passed, ${tap.fail} failed, ${tap.skip} skipped (QUnit)`,
    );
    if (tap.skip) check(`${app}: no skipped tests`, false);
    if (!tests.ok && tap.fail === 0)
      check(`${app}: test command exit code`, false, tests.stderr);
    if (tap.pass + tap.fail === 0)
      check(`${app}: at least one test ran`, false);
  } else {
    check(`${app}: tests ran`, false, tests.output);
  }

  const e2e = END_TO_END[app];
  if (e2e) await endToEnd(app, dir, e2e);
}

/** The app's README flows in Chromium against the packed server (see END_TO_END). */
async function endToEnd(app, dir, testFile) {
  const run = await step(
    `${app}: end to end (${testFile})`,
    process.execPath,
    [
      '--import',
      'tsx',
      '--test',
      '--test-reporter=tap',
      '--test-concurrency=1',
      testFile,
    ],
    {
      cwd: root,
      env: { APP_DIR: dir },
      timeout: E2E_TIMEOUT_MS,
      stream: true,
    },
  );
  const tap = parseTap(run.stdout);
  if (!tap) {
    check(`${app}: end-to-end tests ran`, false, run.output);
    return;
  }
  // node:test reports tests of a failed `before` hook as cancelled: they did not pass.
  const cancelled = Number(/^# cancelled (\d+)$/m.exec(run.stdout)?.[1] ?? 0);
  passed += tap.pass;
  failed += tap.fail + cancelled;
  console.log(
    `${app} end to end: ${tap.pass} passed, ${tap.fail + cancelled} failed, ${tap.skip} skipped`,
  );
  if (tap.skip) check(`${app}: no skipped end-to-end tests`, false);
  if (!run.ok && tap.fail === 0)
    check(`${app}: end-to-end exit code`, false, run.stderr);
}

function check(name, ok, detail = '') {
  if (ok) passed++;
  else failed++;
  console.log(`${ok ? 'ok' : 'not ok'} - ${name}`);
  if (!ok && detail) console.log(indent(tail(detail, 60)));
}

function takeFlag(flag) {
  const i = args.indexOf(flag);
  if (i === -1) return false;
  args.splice(i, 1);
  return true;
}

function takeOption(option) {
  const i = args.indexOf(option);
  if (i === -1) return null;
  const [, value] = args.splice(i, 2);
  if (!value)
    throw new Error(
      `${option} needs a value, e.g. ${option} /tmp/ember-presence-0.1.0.tgz`,
    );
  return value;
}

function indent(text) {
  return text
    .split('\n')
    .map((l) => `  ${l}`)
    .join('\n');
}
