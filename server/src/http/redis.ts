import { Redis, type RedisOptions } from 'ioredis';
import { RedisStore, type RedisStoreOptions } from '../store/redis-store.js';
import { describeError, type Logger } from './logger.js';

/**
 * Connection settings that make an unreachable Redis fail requests FAST (a 503 within about 2 s, never a
 * hang) while the connection keeps healing itself in the background:
 * - `commandTimeout: 2000` bounds every command, including those queued while reconnecting;
 * - `maxRetriesPerRequest: 1` rejects queued commands after one failed reconnect instead of 20;
 * - `retryStrategy` reconnects forever, backing off to one attempt every 2 s, so the server recovers by
 *   itself when Redis returns (no restart);
 * - the offline queue is on until the first connection is ready (startup requests wait for it), and off
 *   whenever the connection is down after that (see {@link createRedisStore}).
 */
export const FAIL_FAST_REDIS_OPTIONS: Readonly<RedisOptions> = Object.freeze({
  commandTimeout: 2000,
  connectTimeout: 2000,
  maxRetriesPerRequest: 1,
  retryStrategy: (times: number) => Math.min(times * 200, 2000),
});

/** A RedisStore on a connection this module owns, and how to release both. */
export interface OwnedRedisStore {
  store: RedisStore;
  /** Closes the store, then its connection. */
  close(): Promise<void>;
}

/**
 * Creates the RedisStore for `redisUrl` with {@link FAIL_FAST_REDIS_OPTIONS} (overridable), logging
 * connection losses and recoveries once each rather than on every reconnect attempt.
 */
export function createRedisStore(
  redisUrl: string,
  logger: Logger,
  options: {
    redisOptions?: RedisOptions;
    storeOptions?: RedisStoreOptions;
  } = {},
): OwnedRedisStore {
  const redis = new Redis(redisUrl, {
    ...FAIL_FAST_REDIS_OPTIONS,
    // The commands of every request in flight that are issued in one tick leave in one write (and one
    // read for Redis): an update's config GETs and scripts, and those of concurrent requests.
    enableAutoPipelining: true,
    ...options.redisOptions,
  });
  let healthy = true;
  let everReady = false;
  redis.on('error', (error: unknown) => {
    if (!healthy) return;
    healthy = false;
    logger.warn('redis unavailable; requests answer 503 until it is back', {
      error: describeError(error),
    });
  });
  // Once the first connection was made, commands issued while the connection is down fail at once
  // (503 now) instead of waiting in the offline queue for `commandTimeout`: nothing piles up during an
  // outage, and nothing sent during it runs late, after the client was told it failed. ioredis reads
  // this option on every command, so it can follow the connection state.
  redis.on('close', () => {
    if (everReady) redis.options.enableOfflineQueue = false;
  });
  redis.on('ready', () => {
    everReady = true;
    redis.options.enableOfflineQueue = true;
    if (healthy) return;
    healthy = true;
    logger.info('redis connection restored');
  });
  const store = new RedisStore(redis, {
    onError: (error, context) =>
      logger.warn(`redis store: ${context}`, { error: describeError(error) }),
    onListenerError: (error, message) =>
      logger.error('a message-bus listener threw', {
        channel: message.channel,
        error: describeError(error),
      }),
    ...options.storeOptions,
  });
  return {
    store,
    close: async () => {
      await store.close();
      try {
        await redis.quit();
      } catch {
        redis.disconnect();
      }
    },
  };
}
