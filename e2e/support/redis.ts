import { Redis } from 'ioredis';

/** The Redis of the e2e run: `E2E_REDIS_URL`, else `REDIS_URL`, else the local one. */
export function e2eRedisUrl(): string {
  return (
    process.env['E2E_REDIS_URL'] ||
    process.env['REDIS_URL'] ||
    'redis://127.0.0.1:6379'
  );
}

/**
 * A key prefix of this run alone (`--redis-key-prefix`): its servers share state and notifications with
 * each other and with nobody else on the same Redis.
 */
export function e2eKeyPrefix(): string {
  return `e2e-${process.pid}-${Date.now().toString(36)}:`;
}

/**
 * Deletes the run's keys (`prefix*`). Before the run it also checks, failing fast and naming the URL, that
 * Redis answers.
 */
export async function clearPresenceKeys(
  url: string,
  prefix: string,
): Promise<void> {
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
        `${prefix}*`,
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
