// What the long-running repository scripts (scripts/test-apps.mjs, scripts/ember-matrix.mjs) share: a
// scratch folder with its own TMPDIR, a copy of the repository, child processes run in their own process
// group and bounded in time, a wall-time table of every step, and testem's TAP summary.
import { execFileSync, spawn } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';

/** What a copy of the repository leaves out: installs, build output, VCS data and the consumer apps. */
export const NOT_COPIED_FROM_ROOT = new Set([
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

/**
 * Creates a scratch folder under the OS temp dir and the environment for child processes: CI mode, TMPDIR
 * inside the scratch folder (so ember-cli's tests-dist-* and Chromium's profiles go away with it) and a
 * quiet npm. `extraEnv` is added on top.
 * @param {string} prefix mkdtemp prefix, e.g. `ember-presence-apps-`
 * @param {Record<string, string>} [extraEnv]
 * @returns {{ scratch: string, env: NodeJS.ProcessEnv }}
 */
export function makeScratch(prefix, extraEnv = {}) {
  const scratch = mkdtempSync(join(tmpdir(), prefix));
  const childTmp = join(scratch, 'tmp');
  mkdirSync(childTmp);
  const env = {
    ...process.env,
    CI: 'true',
    TMPDIR: childTmp,
    ...extraEnv,
    npm_config_audit: 'false',
    npm_config_fund: 'false',
    npm_config_update_notifier: 'false',
  };
  return { scratch, env };
}

/**
 * Copies the repository at `root` to `dest`, without what NOT_COPIED_FROM_ROOT names (at any depth).
 * @param {string} root
 * @param {string} dest
 */
export function copyRepository(root, dest) {
  cpSync(root, dest, {
    recursive: true,
    filter: (src) => src === root || !NOT_COPIED_FROM_ROOT.has(basename(src)),
  });
}

/**
 * Deletes a folder tree. `rm -rf` is several times faster than fs.rmSync on ~1.5k installed packages;
 * neither follows symlinks (the pack copy links the real node_modules).
 * @param {string} dir
 */
export function removeTree(dir) {
  try {
    execFileSync('rm', ['-rf', '--', dir], {
      stdio: 'ignore',
      timeout: 5 * 60_000,
    });
  } catch {
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * Reads testem's TAP summary (`# pass N`, `# skip N`, `# fail N`); null when there is none.
 * @param {string} text
 * @returns {{ pass: number, fail: number, skip: number } | null}
 */
export function parseTap(text) {
  const count = (name) => {
    const m = text.match(new RegExp(`^# ${name}\\s+(\\d+)\\s*$`, 'm'));
    return m ? Number(m[1]) : null;
  };
  const pass = count('pass');
  if (pass === null) return null;
  return { pass, fail: count('fail') ?? 0, skip: count('skip') ?? 0 };
}

/**
 * The last `lines` lines of `text`, with a leading `…` when some were cut.
 * @param {string} text
 * @param {number} lines
 */
export function tail(text, lines) {
  const all = text.split('\n');
  return all.length > lines ? ['…', ...all.slice(-lines)].join('\n') : text;
}

/**
 * Prints the `N passed, N failed` line the scripts end with and sets the exit code: non-zero on any
 * failure, on an interrupt, or when nothing passed at all.
 * @param {number} passed
 * @param {number} failed
 * @param {boolean} interrupted
 */
export function finish(passed, failed, interrupted) {
  console.log(`${passed} passed, ${failed} failed`);
  process.exitCode = failed || interrupted || passed === 0 ? 1 : 0;
}

/**
 * A runner of timed steps. `step` runs one command in its own process group, bounded by `timeout` (the
 * whole group is killed, so no Chromium or ember child outlives it); `timed` runs a synchronous function.
 * Both record their wall time for `printTimings`. SIGINT/SIGTERM mark the run `interrupted` and kill the
 * running step's group.
 * @param {{ env: NodeJS.ProcessEnv, cwd?: string }} defaults environment and default working folder
 */
export function createStepRunner({ env, cwd: defaultCwd }) {
  /** @type {{ name: string, ms: number, ok: boolean }[]} */
  const timings = [];
  let current = null;
  const runner = {
    interrupted: false,
    timings,
    step,
    timed,
    printTimings,
  };
  for (const signal of ['SIGINT', 'SIGTERM']) {
    process.on(signal, () => {
      runner.interrupted = true;
      if (current) killGroup(current);
    });
  }
  return runner;

  /**
   * @param {string} name
   * @param {string} cmd
   * @param {string[]} cmdArgs
   * @param {{ timeout: number, cwd?: string, stream?: boolean, env?: Record<string, string> }} options
   *   `stream` also writes the child's output through; `env` is added to the runner's environment.
   * @returns {Promise<{ ok: boolean, stdout: string, stderr: string, output: string }>}
   */
  function step(
    name,
    cmd,
    cmdArgs,
    { timeout, cwd = defaultCwd, stream = false, env: extraEnv = {} },
  ) {
    const started = Date.now();
    console.log(`--- ${name}`);
    return new Promise((resolvePromise) => {
      const child = spawn(cmd, cmdArgs, {
        cwd,
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
      const done = (code, error) => {
        clearTimeout(timer);
        current = null;
        const ms = Date.now() - started;
        const ok = code === 0 && !timedOut && !error;
        timings.push({ name, ms, ok });
        let output = `${stdout}\n${stderr}`.trim();
        if (timedOut)
          output += `\n(killed: still running after ${timeout / 1000} s)`;
        if (error) output += `\n${error.message}`;
        resolvePromise({ ok, stdout, stderr, output });
      };
      child.on('error', (error) => done(null, error));
      child.on('close', (code) => done(code));
    });
  }

  /**
   * Runs a synchronous step and records its wall time.
   * @param {string} name
   * @param {() => void} fn
   */
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

  /** Prints the wall time of every step so far. */
  function printTimings() {
    console.log('\nwall time per step:');
    for (const { name, ms, ok } of timings) {
      console.log(
        `  ${ok ? 'ok    ' : 'FAILED'} ${(ms / 1000).toFixed(1).padStart(6)} s  ${name}`,
      );
    }
  }
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
