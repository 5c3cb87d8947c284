import { fork, type ChildProcess } from 'node:child_process';

import type { ChildConfig } from './server-child.js';

/** A server process started by {@link startServer}. */
export interface ChildServer {
  port: number;
  pid: number;
  /** `{ rss, heapUsed, cpuMicros, heldPolls? }` of the server process (CPU: user + system so far). */
  stats(): Promise<{
    rss: number;
    heapUsed: number;
    cpuMicros: number;
    heldPolls?: number;
  }>;
  /** Starts a V8 CPU profile of the server process (see {@link ChildServer.profileStop}). */
  profileStart(): Promise<void>;
  /** Stops it and writes it to `$BENCH_PROFILE_DIR` (default: the temp directory); resolves to the file. */
  profileStop(): Promise<string>;
  /** Closes the server (and its store) and waits for the process to exit. */
  close(): Promise<void>;
}

const SERVER_SCRIPT = new URL('./server-child.ts', import.meta.url);

/** Forks `server-child.ts` with `config` and resolves once it listens (rejects after 20 s). */
export async function startServer(config: ChildConfig): Promise<ChildServer> {
  const child: ChildProcess = fork(SERVER_SCRIPT, [], {
    env: { ...process.env, BENCH_SERVER: JSON.stringify(config) },
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  let nextId = 1;
  const pending = new Map<number, (result: unknown) => void>();
  const exited = new Promise<void>((resolve) =>
    child.once('exit', () => resolve()),
  );
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill();
      reject(
        new Error(`bench server ${config.kind} did not start within 20 s`),
      );
    }, 20_000);
    child.on(
      'message',
      (message: {
        ready?: boolean;
        port?: number;
        id?: number;
        result?: unknown;
      }) => {
        if (message.ready) {
          clearTimeout(timer);
          resolve(message.port!);
        } else if (message.id !== undefined) {
          pending.get(message.id)?.(message.result);
          pending.delete(message.id);
        }
      },
    );
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(
        new Error(
          `bench server ${config.kind} exited with code ${String(code)}`,
        ),
      );
    });
  });
  const call = (method: string): Promise<unknown> =>
    new Promise((resolve, reject) => {
      const id = nextId++;
      const timer = setTimeout(() => {
        pending.delete(id);
        reject(new Error(`bench server ${config.kind}: ${method} timed out`));
      }, 30_000);
      pending.set(id, (result) => {
        clearTimeout(timer);
        resolve(result);
      });
      child.send({ id, method });
    });
  return {
    port,
    pid: child.pid!,
    stats: () => call('stats') as ReturnType<ChildServer['stats']>,
    profileStart: async () => {
      await call('profileStart');
    },
    profileStop: () => call('profileStop') as Promise<string>,
    close: async () => {
      if (child.exitCode === null && child.connected) {
        await call('close').catch(() => undefined);
      }
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(timer);
    },
  };
}
