// The Ember version matrix: runs the addon's test suite once per ember-try scenario
// (tests/dummy/config/ember-try.js), one scenario after the other, each bounded in time, and ends with a
// `N passed, N failed` line (one check per scenario). Exit code non-zero when any scenario fails.
//
//   node scripts/ember-matrix.mjs                    every scenario of the config
//   node scripts/ember-matrix.mjs ember-7.3          only the named scenario(s)
//   node scripts/ember-matrix.mjs --keep             keep the scratch copy (it is printed)
//
// ember-try rewrites package.json and reinstalls node_modules in the folder it runs in. So that the
// working tree is never touched (and stays usable by whoever else works in it), everything runs in a
// scratch copy of the repository: one `npm ci` of the committed lockfile, then per scenario
// `ember try:one <scenario> --skip-cleanup`, after which we put package.json and the lockfile back
// ourselves. That replaces ember-try's cleanup, a full reinstall per scenario, with a file copy; the next
// scenario's install then only changes what its dependency set changes.
import { execFileSync, spawn } from 'node:child_process';
import { copyFileSync, cpSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { basename, join, relative, resolve } from 'node:path';

const root = resolve(import.meta.dirname, '..');
const INSTALL_TIMEOUT_MS = 10 * 60_000;
// One scenario = an npm install that changes ember-source (~1 min) plus the build and the tests.
const SCENARIO_TIMEOUT_MS = 10 * 60_000;
// Never copied into the scratch folder: installs, build output, VCS data and the consumer apps.
const NOT_COPIED = new Set([
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

const args = process.argv.slice(2);
const keep = args.includes('--keep');
const wanted = args.filter((a) => a !== '--keep');

const require = createRequire(import.meta.url);
const config = await require(join(root, 'tests/dummy/config/ember-try.js'))();
const known = config.scenarios.map((s) => s.name);
const unknown = wanted.filter((name) => !known.includes(name));
if (unknown.length) {
  throw new Error(
    `Unknown scenario(s): ${unknown.join(', ')}. Known (tests/dummy/config/ember-try.js): ${known.join(', ')}.`,
  );
}
const scenarios = wanted.length ? wanted : known;

const scratch = mkdtempSync(join(tmpdir(), 'ember-presence-matrix-'));
const repo = join(scratch, 'repo');
const childTmp = join(scratch, 'tmp');
mkdirSync(childTmp);
const env = {
  ...process.env,
  CI: 'true',
  TMPDIR: childTmp,
  npm_config_audit: 'false',
  npm_config_fund: 'false',
  npm_config_update_notifier: 'false',
};

const timings = [];
const results = [];
let interrupted = false;
let current = null;
for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, () => {
    interrupted = true;
    if (current) killGroup(current);
  });
}

try {
  timed('copy the repository to scratch', () =>
    cpSync(root, repo, {
      recursive: true,
      filter: (src) => src === root || !NOT_COPIED.has(basename(src)),
    }),
  );
  // The pristine manifest and lockfile, put back before every scenario.
  for (const file of ['package.json', 'package-lock.json']) {
    copyFileSync(join(repo, file), join(scratch, file));
  }

  const install = await step('npm ci', 'npm', ['ci', '--prefer-offline'], {
    timeout: INSTALL_TIMEOUT_MS,
  });
  if (!install.ok) {
    console.log(tail(install.output, 60));
    results.push({ name: 'npm ci', ok: false });
  } else {
    for (const name of scenarios) {
      if (interrupted) break;
      for (const file of ['package.json', 'package-lock.json']) {
        copyFileSync(join(scratch, file), join(repo, file));
      }
      console.log(`\n=== scenario ${name}`);
      const run = await step(
        `scenario ${name}`,
        'npx',
        ['--no-install', 'ember', 'try:one', name, '--skip-cleanup'],
        {
          timeout: SCENARIO_TIMEOUT_MS,
          stream: true,
          // node_modules still holds the previous scenario's ember-source while package.json is back to
          // the pristine range; ember-cli-dependency-checker would refuse to start `ember try:one`
          // before it has installed this scenario's set. The scenario's `ember test` then runs on a tree
          // that matches its package.json anyway.
          env: { SKIP_DEPENDENCY_CHECKER: '1' },
        },
      );
      const tap = parseTap(run.stdout);
      const ok = run.ok && tap !== null && tap.fail === 0 && tap.pass > 0;
      results.push({ name, ok, tap });
      if (!run.ok && !tap) console.log(tail(run.output, 60));
    }
  }
} finally {
  if (keep)
    console.log(
      `\nscratch kept in ${relative(process.cwd(), scratch) || scratch}`,
    );
  // Timed: deleting ~1.6k installed packages takes a while on a busy disk.
  else timed('remove the scratch copy', () => removeTree(scratch));
}

console.log('\nwall time per step:');
for (const { name, ms, ok } of timings) {
  console.log(
    `  ${ok ? 'ok    ' : 'FAILED'} ${(ms / 1000).toFixed(1).padStart(6)} s  ${name}`,
  );
}
console.log('\nscenarios:');
for (const { name, ok, tap } of results) {
  const tests = tap
    ? ` (${tap.pass} passed, ${tap.fail} failed, ${tap.skip} skipped tests)`
    : '';
  console.log(`${ok ? 'ok' : 'not ok'} - ${name}${tests}`);
}
const passed = results.filter((r) => r.ok).length;
const failed = results.length - passed;
console.log(`${passed} passed, ${failed} failed`);
process.exitCode = failed || interrupted || passed === 0 ? 1 : 0;

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
    timings.push({ name, ms: Date.now() - started, ok: true });
  } catch (error) {
    timings.push({ name, ms: Date.now() - started, ok: false });
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

/**
 * Runs one command in the scratch copy, in its own process group, bounded by `timeout` (the whole group
 * is killed, so no Chromium or ember child outlives it), and records its wall time.
 */
function step(
  name,
  cmd,
  cmdArgs,
  { timeout, stream = false, env: extraEnv = {} },
) {
  const started = Date.now();
  console.log(`--- ${name}`);
  return new Promise((resolvePromise) => {
    const child = spawn(cmd, cmdArgs, {
      cwd: repo,
      env: { ...env, ...extraEnv },
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
      timings.push({ name, ms, ok });
      let output = `${stdout}\n${stderr}`.trim();
      if (timedOut)
        output += `\n(killed: still running after ${timeout / 1000} s)`;
      if (error) output += `\n${error.message}`;
      resolvePromise({ ok, stdout, output });
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

function tail(text, lines) {
  const all = text.split('\n');
  return all.length > lines ? ['…', ...all.slice(-lines)].join('\n') : text;
}
