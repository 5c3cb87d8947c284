import { Redis } from 'ioredis';

/**
 * Database of the e2e runs on Redis: their own, so that clearing it between runs touches nobody else's
 * keys (the server tests use random prefixes in db 0).
 */
const E2E_REDIS_DB = 13;

/** Where the Redis run keeps its state: `E2E_REDIS_URL` as given, else `REDIS_URL`'s server, db 13. */
export function e2eRedisUrl(): string {
  const given = process.env['E2E_REDIS_URL'];
  if (given) return given;
  const url = new URL(process.env['REDIS_URL'] || 'redis://127.0.0.1:6379');
  url.pathname = `/${E2E_REDIS_DB}`;
  return url.toString();
}

/**
 * Deletes the presence server's keys (default prefix `ep:`) in the e2e database, so a run starts with no
 * one present and no cached channel config from an earlier run. Fails fast, naming the URL, when Redis
 * is down.
 */
export async function clearPresenceKeys(url: string): Promise<void> {
  const redis = new Redis(url, {
    lazyConnect: true,
    connectTimeout: 2000,
    retryStrategy: () => null,
    maxRetriesPerRequest: 0,
  });
  redis.on('error', () => undefined); // reported by the rejected command below
  try {
    await redis.connect().catch((err: unknown) => {
      throw new Error(
        `the Redis e2e run needs Redis at ${url} (set E2E_REDIS_URL or REDIS_URL): ${(err as Error).message}`,
      );
    });
    let cursor = '0';
    do {
      const [next, keys] = await redis.scan(
        cursor,
        'MATCH',
        'ep:*',
        'COUNT',
        500,
      );
      if (keys.length > 0) await redis.unlink(...keys);
      cursor = next;
    } while (cursor !== '0');
  } finally {
    redis.disconnect();
  }
}
