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
import { execFileSync, spawn } from 'node:child_process';
import {
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  rmSync,
  symlinkSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join, resolve } from 'node:path';

const root = resolve(import.meta.dirname, '..');
const appsDir = join(root, 'test-apps');

// Generous bounds: a cold `npm ci` of ~1.4k packages took 40-60 s here, a first Vite build ~30 s; a step
// that needs ten times that is hung, not slow.
const PACK_TIMEOUT_MS = 5 * 60_000;
const INSTALL_TIMEOUT_MS = 10 * 60_000;
const TYPES_TIMEOUT_MS = 3 * 60_000;
const TEST_TIMEOUT_MS = 5 * 60_000;
// What the pack copy of the repository leaves out: installs, build output, VCS data, the apps.
const NOT_COPIED_FROM_ROOT = new Set([
  'node_modules',
  '.git',
  'tmp',
  'dist',
  'declarations',
  'test-apps',
  'coverage',
  '.eslintcache',
  'test-results',
]);
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

const scratch = mkdtempSync(join(tmpdir(), 'ember-presence-apps-'));
const childTmp = join(scratch, 'tmp');
mkdirSync(childTmp);
const env = {
  ...process.env,
  CI: 'true',
  TMPDIR: childTmp,
  // ember-template-lint's v8-compile-cache breaks on Node 20.20 (TOOLCHAIN error 11); harmless elsewhere.
  DISABLE_V8_COMPILE_CACHE: '1',
  npm_config_audit: 'false',
  npm_config_fund: 'false',
  npm_config_update_notifier: 'false',
};

const timings = [];
let passed = 0;
let failed = 0;
let interrupted = false;
let current = null;

for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, () => {
    interrupted = true;
    if (current) killGroup(current);
  });
}

try {
  const tarball = givenTarball ? resolve(givenTarball) : await pack();
  if (tarball) {
    for (const app of apps) {
      if (interrupted) break;
      await testApp(app, tarball);
    }
  }
} finally {
  if (keep) console.log(`\nscratch kept in ${scratch}`);
  // Timed: deleting ~1.5k installed packages per app takes a while on a busy disk.
  else timed('remove the scratch folder', () => removeTree(scratch));
}

console.log('\nwall time per step:');
for (const { step, ms, ok } of timings) {
  console.log(
    `  ${ok ? 'ok    ' : 'FAILED'} ${(ms / 1000).toFixed(1).padStart(6)} s  ${step}`,
  );
}
console.log(`${passed} passed, ${failed} failed`);
process.exitCode = failed || interrupted || passed === 0 ? 1 : 0;

/**
 * Packs the addon the way `npm publish` would (prepack builds the declarations and the server), from a
 * copy of the working tree whose node_modules is a symlink to the real one: prepack/postpack then create
 * and delete their build output in the copy, so the tree is never changed and a run cannot race with
 * anyone else building or packing in it.
 */
async function pack() {
  const source = join(scratch, 'pack-source');
  timed('copy the repository to scratch', () =>
    cpSync(root, source, {
      recursive: true,
      filter: (src) => src === root || !NOT_COPIED_FROM_ROOT.has(basename(src)),
    }),
  );
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
}

/**
 * Deletes a folder tree. `rm -rf` is several times faster than fs.rmSync on ~1.5k installed packages;
 * neither follows symlinks (the pack copy links the real node_modules).
 */
function removeTree(dir) {
  try {
    execFileSync('rm', ['-rf', '--', dir], {
      stdio: 'ignore',
      timeout: 5 * 60_000,
    });
  } catch {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Runs a synchronous step and records its wall time. */
function timed(name, fn) {
  const started = Date.now();
  try {
    fn();
    timings.push({ step: name, ms: Date.now() - started, ok: true });
  } catch (error) {
    timings.push({ step: name, ms: Date.now() - started, ok: false });
    throw error;
  }
}

/** Reads testem's TAP summary (`# pass N`, `# skip N`, `# fail N`); null when there is none. */
function parseTap(text) {
  const count = (name) => {
    const m = text.match(new RegExp(`^# ${name}\\s+(\\d+)\\s*$`, 'm'));
    return m ? Number(m[1]) : null;
  };
  const pass = count('pass');
  if (pass === null) return null;
  return { pass, fail: count('fail') ?? 0, skip: count('skip') ?? 0 };
}

function check(name, ok, detail = '') {
  if (ok) passed++;
  else failed++;
  console.log(`${ok ? 'ok' : 'not ok'} - ${name}`);
  if (!ok && detail) console.log(indent(tail(detail, 60)));
}

/**
 * Runs one command in its own process group, bounded by `timeout` (the whole group is killed, so no
 * Chromium or ember child outlives it), and records its wall time.
 */
function step(name, cmd, cmdArgs, { cwd, timeout, stream = false }) {
  const started = Date.now();
  console.log(`--- ${name}`);
  return new Promise((resolvePromise) => {
    const child = spawn(cmd, cmdArgs, {
      cwd,
      env,
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    current = child;
    let stdout = '';
    let stderr = '';
    let timedOut = false;
    child.stdout.on('data', (chunk) => {
      stdout += chunk;
      if (stream) process.stdout.write(chunk);
    });
    child.stderr.on('data', (chunk) => {
      stderr += chunk;
      if (stream) process.stderr.write(chunk);
    });
    const timer = setTimeout(() => {
      timedOut = true;
      killGroup(child);
    }, timeout);
    const finish = (code, error) => {
      clearTimeout(timer);
      current = null;
      const ms = Date.now() - started;
      const ok = code === 0 && !timedOut && !error;
      timings.push({ step: name, ms, ok });
      let output = `${stdout}\n${stderr}`.trim();
      if (timedOut)
        output += `\n(killed: still running after ${timeout / 1000} s)`;
      if (error) output += `\n${error.message}`;
      resolvePromise({ ok, stdout, stderr, output });
    };
    child.on('error', (error) => finish(null, error));
    child.on('close', (code) => finish(code));
  });
}

function killGroup(child) {
  try {
    process.kill(-child.pid, 'SIGTERM');
    setTimeout(() => {
      try {
        process.kill(-child.pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }, 5000).unref();
  } catch {
    // already gone
  }
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
      `${option} needs a value, e.g. ${option} /tmp/ember-presence-0.0.0.tgz`,
    );
  return value;
}

function tail(text, lines) {
  const all = text.split('\n');
  return all.length > lines ? ['…', ...all.slice(-lines)].join('\n') : text;
}

function indent(text) {
  return text
    .split('\n')
    .map((l) => `  ${l}`)
    .join('\n');
}
