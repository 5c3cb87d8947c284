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
import { execFileSync } from 'node:child_process';
import { copyFileSync, existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join, relative, resolve } from 'node:path';
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
const INSTALL_TIMEOUT_MS = 10 * 60_000;
// One scenario = an npm install that changes ember-source (~1 min) plus the build and the tests.
const SCENARIO_TIMEOUT_MS = 10 * 60_000;

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
// The scenario of the version package.json pins for development is what `npm run test:ember` already
// runs (in `npm test`, just before): skipped unless named, which saves a reinstall and a suite run.
const pinned = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'))
  .devDependencies['ember-source'];
const isPinned = (name) =>
  config.scenarios.find((s) => s.name === name)?.npm?.devDependencies?.[
    'ember-source'
  ] === pinned;
const scenarios = wanted.length
  ? wanted
  : known.filter((name) => !isPinned(name));
for (const name of known)
  if (!scenarios.includes(name) && isPinned(name))
    console.log(
      `${name}: ember-source ${pinned}, the version package.json pins: run by \`npm run test:ember\`, not again here`,
    );

const { scratch, env } = makeScratch('ember-presence-matrix-');
const repo = join(scratch, 'repo');
const runner = createStepRunner({ env, cwd: repo });
const { step, timed } = runner;
const results = [];

try {
  timed('copy the repository to scratch', () => copyRepository(root, repo));
  // The pristine manifest and lockfile, put back before every scenario.
  for (const file of ['package.json', 'package-lock.json']) {
    copyFileSync(join(repo, file), join(scratch, file));
  }

  // The repository's own node_modules (installed from the same lockfile) copied, then `npm install`
  // checks the tree against the lockfile: ~25 s instead of ~70 s for `npm ci`. Without node_modules
  // (or if the copy fails), a plain `npm ci`.
  let copied = false;
  if (existsSync(join(root, 'node_modules'))) {
    try {
      timed('copy node_modules', () =>
        execFileSync(
          'cp',
          ['-a', '--reflink=auto', join(root, 'node_modules'), repo],
          { stdio: 'ignore', timeout: INSTALL_TIMEOUT_MS },
        ),
      );
      copied = true;
    } catch {
      removeTree(join(repo, 'node_modules'));
    }
  }
  const install = copied
    ? await step(
        'npm install (check the copied tree)',
        'npm',
        ['install', '--prefer-offline', '--no-audit', '--no-fund'],
        { timeout: INSTALL_TIMEOUT_MS },
      )
    : await step(
        'npm ci',
        'npm',
        ['ci', '--prefer-offline', '--no-audit', '--no-fund'],
        {
          timeout: INSTALL_TIMEOUT_MS,
        },
      );
  if (!install.ok) {
    console.log(tail(install.output, 60));
    results.push({ name: 'npm ci', ok: false });
  } else {
    for (const name of scenarios) {
      if (runner.interrupted) break;
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

runner.printTimings();
console.log('\nscenarios:');
for (const { name, ok, tap } of results) {
  const tests = tap
    ? ` (${tap.pass} passed, ${tap.fail} failed, ${tap.skip} skipped tests)`
    : '';
  console.log(`${ok ? 'ok' : 'not ok'} - ${name}${tests}`);
}
const passed = results.filter((r) => r.ok).length;
const failed = results.length - passed;
finish(passed, failed, runner.interrupted);
