import { randomBytes } from 'node:crypto';
import { Redis, type RedisOptions } from 'ioredis';

/** Fail fast when Redis is down (a bench must not hang on an unreachable server). */
export const BENCH_REDIS_OPTIONS: RedisOptions = {
  maxRetriesPerRequest: 0,
  retryStrategy: () => null,
  connectTimeout: 2000,
  lazyConnect: true,
};

/** Connects (or rejects within ~2 s with a message naming the fix). */
export async function connectRedis(url: string): Promise<Redis> {
  const redis = new Redis(url, BENCH_REDIS_OPTIONS);
  redis.on('error', () => undefined); // reported through the rejected command instead
  try {
    await redis.connect();
    await redis.ping();
  } catch (error) {
    redis.disconnect();
    throw new Error(
      `Redis is not reachable at ${url} (${String(error)}): start redis-server or set REDIS_URL`,
    );
  }
  return redis;
}

/** A fresh key prefix per bench run, so runs never touch each other's (or the app's) keys. */
export function benchPrefix(name: string): string {
  return `ep-bench:${name}:${randomBytes(4).toString('hex')}:`;
}

/**
 * A unique key prefix as short as a deployment's (the default is `ep:`): 6 characters, `e` + 4 random
 * hex + `:`, for the benches that measure bytes per key (every key name carries the prefix). It names
 * no bench: a crashed run's keys are found by `redis-cli --scan --pattern 'e????:*'`.
 */
export function shortBenchPrefix(): string {
  return `e${randomBytes(2).toString('hex')}:`;
}

/**
 * Deletes every key under `prefix` (SCAN + UNLINK, bounded), never FLUSHALL: the Redis is shared.
 * Returns the number of keys deleted.
 */
export async function deletePrefix(
  redis: Redis,
  prefix: string,
): Promise<number> {
  const pattern = `${prefix.replace(/[*?[\]\\]/g, '\\$&')}*`;
  let cursor = '0';
  let deleted = 0;
  for (let round = 0; round < 100_000; round++) {
    const [next, keys] = await redis.scan(
      cursor,
      'MATCH',
      pattern,
      'COUNT',
      2000,
    );
    if (keys.length > 0) deleted += await redis.unlink(...keys);
    cursor = next;
    if (cursor === '0') break;
  }
  return deleted;
}

/** `redis_version` from INFO server. */
export async function redisVersion(redis: Redis): Promise<string> {
  const info = await redis.info('server');
  return /redis_version:([^\r\n]+)/.exec(info)?.[1] ?? 'unknown';
}

/** `used_memory` from INFO memory, in bytes. */
export async function usedMemory(redis: Redis): Promise<number> {
  const info = await redis.info('memory');
  return Number(/used_memory:(\d+)/.exec(info)?.[1] ?? Number.NaN);
}

/**
 * Waits (at most `maxMs`) until Redis has freed what earlier UNLINKs handed to its background thread, so
 * a `used_memory` sample is not lowered by another bench's deletions.
 */
export async function waitForLazyFree(
  redis: Redis,
  maxMs = 10_000,
): Promise<void> {
  const deadline = Date.now() + maxMs;
  while (Date.now() < deadline) {
    const info = await redis.info('memory');
    if (Number(/lazyfree_pending_objects:(\d+)/.exec(info)?.[1] ?? 0) === 0)
      return;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}
