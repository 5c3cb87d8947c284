import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { REPO_ROOT } from './paths.js';

const START_TIMEOUT_MS = 20_000;
const STOP_TIMEOUT_MS = 12_000; // the CLI's own shutdown grace is 10 s

/** A running `ember-presence-server` process. */
export interface RunningServer {
  /** e.g. `http://127.0.0.1:41234` (no trailing slash). */
  url: string;
  /** The log lines so far (JSON), for failure messages. */
  output(): string;
  /** SIGTERM, then waits for the exit (SIGKILL after a bound). */
  stop(): Promise<void>;
}

/** Options of {@link startServer}. */
export interface StartServerOptions {
  /** The built demo app to serve (`--static`). */
  staticDir: string;
  /** Run on Redis (`--redis-url`); absent = the embedded memory store. */
  redisUrl?: string;
  /** With `redisUrl`: the run's own key prefix (`--redis-key-prefix`). */
  redisKeyPrefix?: string;
}

/**
 * Starts the real CLI exactly as a user would (`ember-presence-server --demo --config … --static …`, from
 * the TypeScript sources through tsx), on a free port, and resolves once it listens.
 */
export function startServer(
  options: StartServerOptions,
): Promise<RunningServer> {
  const args = [
    '--import',
    'tsx',
    join(REPO_ROOT, 'server/src/main.ts'),
    '--port',
    '0',
    '--demo',
    '--config',
    join(REPO_ROOT, 'e2e/e2e-config.ts'),
    '--static',
    options.staticDir,
    '--log-level',
    'info',
    ...(options.redisUrl ? ['--redis-url', options.redisUrl] : []),
    ...(options.redisKeyPrefix
      ? ['--redis-key-prefix', options.redisKeyPrefix]
      : []),
  ];
  const env = { ...process.env };
  delete env['REDIS_URL']; // the store is chosen by the flag alone
  return startListening(process.execPath, args, {
    cwd: REPO_ROOT,
    env,
    store: options.redisUrl ? 'redis' : 'memory',
  });
}

/** Options of {@link startListening}. */
export interface StartListeningOptions {
  cwd: string;
  env: NodeJS.ProcessEnv;
  /** The store the server must report at startup. */
  store: 'memory' | 'redis';
}

/**
 * Spawns a presence server (`command args`, e.g. an installed `ember-presence-server` bin) and resolves
 * once its log says it listens on the store asked for; rejects with its output when it exits first or
 * does not listen within START_TIMEOUT_MS.
 */
export function startListening(
  command: string,
  args: readonly string[],
  options: StartListeningOptions,
): Promise<RunningServer> {
  const child = spawn(command, args, {
    cwd: options.cwd,
    env: options.env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  const record = (chunk: Buffer): void => {
    output = (output + chunk.toString()).slice(-20_000);
  };
  child.stdout?.on('data', record);
  child.stderr?.on('data', record);

  return new Promise((resolve, reject) => {
    const fail = (message: string): void => {
      clearTimeout(timer);
      child.kill('SIGKILL');
      reject(new Error(`${message}\n--- server output ---\n${output}`));
    };
    const timer = setTimeout(
      () => fail(`the server did not listen within ${START_TIMEOUT_MS} ms`),
      START_TIMEOUT_MS,
    );
    child.once('exit', (code, signal) =>
      fail(`the server exited before listening (${signal ?? `exit ${code}`})`),
    );
    child.stdout?.on('data', function onData() {
      const url = listeningUrl(output);
      if (!url) return;
      child.stdout?.off('data', onData);
      child.removeAllListeners('exit');
      clearTimeout(timer);
      if (!output.includes(`"store":"${options.store}"`)) {
        void stop(child);
        reject(
          new Error(
            `the server did not report the ${options.store} store\n${output}`,
          ),
        );
        return;
      }
      resolve({ url, output: () => output, stop: () => stop(child) });
    });
  });
}

function listeningUrl(output: string): string | undefined {
  for (const line of output.split('\n')) {
    if (!line.includes('"listening"')) continue;
    try {
      const entry = JSON.parse(line) as { msg?: string; url?: string };
      if (entry.msg === 'listening' && entry.url) return entry.url;
    } catch {
      // a partial line; the next chunk completes it
    }
  }
  return undefined;
}

function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null)
    return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), STOP_TIMEOUT_MS);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve();
    });
    child.kill('SIGTERM');
  });
}
