import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';

/** The CLI entry point, run through tsx exactly as `npm run start:server` does. */
export const MAIN = fileURLToPath(
  new URL('../../src/main.ts', import.meta.url),
);
const ROOT = fileURLToPath(new URL('../../../', import.meta.url));

/** A running `ember-presence-server` child process. */
export interface RunningServer {
  child: ChildProcess;
  /** `http://127.0.0.1:<port>` read from its "listening" log line. */
  url: string;
  /** Every stdout line so far. */
  lines: string[];
  /** Resolves with the exit code once the process ended. */
  exited: Promise<number | null>;
  /** Sends SIGTERM (if still running) and waits for the exit code. */
  stop(): Promise<number | null>;
}

/** Runs the CLI to completion (for --help and bad flags). Bounded by `timeoutMs`. */
export function runCli(
  args: string[],
  timeoutMs = 20_000,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', MAIN, ...args], {
      cwd: ROOT,
      env: { ...process.env, REDIS_URL: '', PORT: '' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`CLI did not exit within ${timeoutMs} ms: ${stderr}`));
    }, timeoutMs);
    child.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/**
 * Starts the CLI on port 0 with `args` and resolves once it logged "listening" (rejects if it exits
 * first or takes longer than `timeoutMs`).
 */
export function startCli(
  args: string[],
  env: NodeJS.ProcessEnv = {},
  timeoutMs = 20_000,
): Promise<RunningServer> {
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', MAIN, '--port', '0', ...args],
    {
      cwd: ROOT,
      env: { ...process.env, REDIS_URL: '', PORT: '', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  const lines: string[] = [];
  let stderr = '';
  const exited = new Promise<number | null>((resolve) =>
    child.on('exit', (code) => resolve(code)),
  );
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`CLI did not start within ${timeoutMs} ms: ${stderr}`));
    }, timeoutMs);
    let buffered = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.stdout.on('data', (chunk: Buffer) => {
      buffered += chunk.toString();
      let newline: number;
      while ((newline = buffered.indexOf('\n')) !== -1) {
        const line = buffered.slice(0, newline);
        buffered = buffered.slice(newline + 1);
        lines.push(line);
        const record = safeParse(line);
        if (
          record?.['msg'] === 'listening' &&
          typeof record['url'] === 'string'
        ) {
          clearTimeout(timer);
          const url = record['url'];
          resolve({
            child,
            url,
            lines,
            exited,
            stop: () => {
              if (child.exitCode === null && child.signalCode === null)
                child.kill('SIGTERM');
              return exited;
            },
          });
        }
      }
    });
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`CLI exited with ${code} before listening: ${stderr}`));
    });
  });
}

function safeParse(line: string): Record<string, unknown> | null {
  try {
    return JSON.parse(line) as Record<string, unknown>;
  } catch {
    return null;
  }
}
