import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { REPO_ROOT } from './paths.js';

/**
 * Heartbeat of the e2e build: well inside the short channel timeout of e2e/e2e-config.ts, and at one
 * update a second per tab still far from the server's rate limit (20 per 10 s per user).
 */
export const E2E_HEARTBEAT_MS = 1000;

const BUILD_TIMEOUT_MS = 300_000; // a cold ember build on two busy cores takes 15–60 s

/** A built demo app and how to dispose of it. */
export interface BuiltDemo {
  dir: string;
  /** Removes the build unless it was given through `E2E_DIST`. */
  dispose(): void;
}

/**
 * Builds the dummy app (the demo) once, with the e2e heartbeat, into a temporary directory. Set
 * `E2E_DIST=<dir>` to reuse an existing build (built with `EMBER_PRESENCE_HEARTBEAT_MS=1000`).
 */
export async function buildDemo(): Promise<BuiltDemo> {
  const given = process.env['E2E_DIST'];
  if (given) {
    if (!existsSync(join(given, 'index.html'))) {
      throw new Error(
        `E2E_DIST=${given} has no index.html; build it with EMBER_PRESENCE_HEARTBEAT_MS=${E2E_HEARTBEAT_MS} ember build --environment=development --output-path ${given}`,
      );
    }
    return { dir: given, dispose: () => undefined };
  }
  const dir = mkdtempSync(join(tmpdir(), 'ember-presence-e2e-'));
  const dispose = (): void => rmSync(dir, { recursive: true, force: true });
  try {
    await buildDemoInto(dir, {
      EMBER_PRESENCE_HEARTBEAT_MS: String(E2E_HEARTBEAT_MS),
    });
  } catch (err) {
    dispose();
    throw err;
  }
  return { dir, dispose };
}

/**
 * Runs `ember build --environment=<environment> --output-path <outputPath>` of the dummy app (the demo)
 * in the repository, with `env` added to the environment (CI mode always), bounded by BUILD_TIMEOUT_MS.
 * Rejects with the end of the build's output when it fails or times out. Shared by the e2e suite
 * (development: readable failures) and the client bench (production: what users ship).
 */
export function buildDemoInto(
  outputPath: string,
  env: Record<string, string> = {},
  environment: 'development' | 'production' = 'development',
): Promise<void> {
  return runBounded(
    'ember build',
    join(REPO_ROOT, 'node_modules/.bin/ember'),
    ['build', `--environment=${environment}`, '--output-path', outputPath],
    { cwd: REPO_ROOT, env, timeoutMs: BUILD_TIMEOUT_MS },
  );
}

/** Where and how long {@link runBounded} runs a command. */
export interface RunBoundedOptions {
  cwd: string;
  /** Added to the environment (CI mode always). */
  env?: Record<string, string>;
  timeoutMs: number;
}

/**
 * Runs `command args` to completion, bounded in time (SIGKILL past `timeoutMs`). Rejects with `what`, how
 * it ended and the end of its output when it fails or times out.
 */
export function runBounded(
  what: string,
  command: string,
  args: readonly string[],
  options: RunBoundedOptions,
): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, {
      cwd: options.cwd,
      env: { ...process.env, ...options.env, CI: 'true' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    const keep = (chunk: Buffer): void => {
      output = (output + chunk.toString()).slice(-8000);
    };
    child.stdout.on('data', keep);
    child.stderr.on('data', keep);
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(
        new Error(`${what} timed out after ${options.timeoutMs} ms\n${output}`),
      );
    }, options.timeoutMs);
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      if (code === 0) resolve();
      else
        reject(
          new Error(`${what} failed (${signal ?? `exit ${code}`})\n${output}`),
        );
    });
  });
}
