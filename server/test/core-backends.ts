import { existsSync } from 'node:fs';

import type { Logger } from '../src/core/logger.js';
import { MemoryStore } from '../src/core/memory-store.js';
import type { PresenceStore } from '../src/core/store.js';
import type { CurrentUser } from '../src/core/types.js';

/**
 * Shared fixtures of the `core-*.test.ts` suites: the stores to run on (MemoryStore always, RedisStore too
 * once it exists), a few users and a logger that records what the core reports.
 */

/** One store backend; `connect()` gives a second store on it, as another server process would have. */
export interface Backend {
  store: PresenceStore;
  connect(): Promise<PresenceStore>;
  cleanup(): Promise<void>;
}

export type BackendFactory = () => Promise<Backend>;

function memoryBackend(): Promise<Backend> {
  const store = new MemoryStore();
  return Promise.resolve({
    store,
    connect: () => Promise.resolve(store),
    cleanup: () => store.close(),
  });
}

/**
 * A RedisStore on the real Redis at REDIS_URL under a random key prefix, deleted again by `cleanup()`.
 * Fails fast (no reconnect loop) when Redis is down.
 */
async function redisBackend(): Promise<Backend> {
  const { connectTestRedis, redisStoreFactory } =
    await import('./support/redis-fixture.js');
  const shared = connectTestRedis();
  const fixture = await redisStoreFactory(() => shared, connectTestRedis)();
  await fixture.store.ping();
  return {
    store: fixture.store,
    connect: () => fixture.connect!(),
    async cleanup() {
      await fixture.cleanup();
      await shared.quit();
    },
  };
}

/** `[name, factory]` for every store implementation present in the tree. */
export const backends: Array<[string, BackendFactory]> = [
  ['MemoryStore', memoryBackend],
];
if (existsSync(new URL('../src/store/redis-store.ts', import.meta.url))) {
  backends.push(['RedisStore', redisBackend]);
}

/** A fixed start time for fake clocks. */
export const T = 1_764_000_000_000;

/** In group 10; the allowed user of user-list channels (`allowedUserIds: [1]`). */
export const ann: CurrentUser = {
  id: 1,
  username: 'ann',
  name: 'Ann',
  avatar_template: '/a/{size}.png',
  groupIds: [10],
};
/** In group 20; the group member of group-list channels (`allowedGroupIds: [20]`). */
export const bob: CurrentUser = {
  id: 2,
  username: 'bob',
  name: 'Bob',
  avatar_template: '/b/{size}.png',
  groupIds: [20],
};
/** In no listed group: the outsider. */
export const carl: CurrentUser = {
  id: 3,
  username: 'carl',
  name: null,
  avatar_template: '/c/{size}.png',
  groupIds: [30],
};

/** Records every error the core logs. */
export class CapturingLogger implements Logger {
  readonly entries: Array<{
    message: string;
    details?: Record<string, unknown>;
  }> = [];
  error(message: string, details?: Record<string, unknown>): void {
    this.entries.push(
      details === undefined ? { message } : { message, details },
    );
  }
}
