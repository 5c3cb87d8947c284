import { randomUUID } from 'node:crypto';

import { Redis, type Cluster } from 'ioredis';

import {
  RedisStore,
  type RedisConnection,
  type RedisStoreOptions,
} from '../../src/store/redis-store.js';
import type { StoreFactory, StoreFixture } from '../store-contract.js';

/** The Redis the tests run against: REDIS_URL, by default the local one. */
export const REDIS_URL = process.env['REDIS_URL'] || 'redis://127.0.0.1:6379';

/** ioredis settings for tests: fail at once when Redis is down instead of retrying forever. */
export const FAIL_FAST = {
  retryStrategy: () => null,
  maxRetriesPerRequest: 0,
} as const;

/** A new connection to {@link REDIS_URL} that fails fast when Redis is down; the caller closes it. */
export function connectTestRedis(): Redis {
  return new Redis(REDIS_URL, FAIL_FAST);
}

/** A key prefix no other test (or run) uses. */
export function randomKeyPrefix(): string {
  return `test:${randomUUID()}:`;
}

/** Deletes every key matching `pattern`, on every master of a cluster. */
export async function deleteKeys(
  connection: RedisConnection,
  pattern: string,
): Promise<void> {
  const nodes: Redis[] = (connection as { isCluster?: boolean }).isCluster
    ? (connection as Cluster).nodes('master')
    : [connection as Redis];
  await Promise.all(
    nodes.map(async (node) => {
      let cursor = '0';
      do {
        const [next, keys] = await node.scan(
          cursor,
          'MATCH',
          pattern,
          'COUNT',
          1000,
        );
        cursor = next;
        await Promise.all(keys.map((key) => node.unlink(key)));
      } while (cursor !== '0');
    }),
  );
}

/**
 * A contract-suite factory for RedisStore: each fixture gets a random key prefix on the `shared`
 * connection; `connect()` opens a new connection (another "process") with the same prefix; `cleanup`
 * closes them and deletes the prefix's keys.
 */
export function redisStoreFactory(
  shared: () => RedisConnection,
  newConnection: () => RedisConnection,
  storeOptions: RedisStoreOptions = {},
): StoreFactory {
  return (options = {}) => {
    const keyPrefix = randomKeyPrefix();
    const settings: RedisStoreOptions = {
      ...storeOptions,
      ...options,
      keyPrefix,
    };
    const store = new RedisStore(shared(), settings);
    const extras: { store: RedisStore; connection: RedisConnection }[] = [];
    const fixture: StoreFixture = {
      store,
      connect() {
        const connection = newConnection();
        const peer = new RedisStore(connection, settings);
        extras.push({ store: peer, connection });
        return Promise.resolve(peer);
      },
      async reset() {
        // As a Redis restarted empty (or flushed): every key of the prefix is gone, the store goes on.
        await deleteKeys(shared(), store.keys.pattern());
        return store;
      },
      async cleanup() {
        await store.close();
        for (const extra of extras) {
          await extra.store.close();
          await extra.connection
            .quit()
            .catch(() => extra.connection.disconnect());
        }
        await deleteKeys(shared(), store.keys.pattern());
      },
    };
    return Promise.resolve(fixture);
  };
}
