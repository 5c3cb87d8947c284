import type { Redis } from 'ioredis';
import type { RedisKeys } from '../../src/store/keys.js';

/**
 * What must hold in a RedisStore's keys whatever happened before (crashes, kills, concurrent sweeps):
 * every presence channel that has clients is in the sweep index with a due time no later than its
 * earliest client expiry, so the sweeper will find every client that stops heart-beating. Returns the
 * violations, one line each (empty when all hold), and how many channels were checked.
 */
export async function sweepIndexViolations(
  redis: Redis,
  keys: RedisKeys,
): Promise<{ checked: number; violations: string[] }> {
  const violations: string[] = [];
  let checked = 0;
  const indexed = new Map<string, number>();
  for (const shard of keys.allSweepShards()) {
    const entries = await redis.zrange(shard, '0', '-1', 'WITHSCORES');
    for (let i = 0; i < entries.length; i += 2)
      indexed.set(entries[i]!, Number(entries[i + 1]));
  }
  let cursor = '0';
  do {
    const [next, batch] = await redis.scan(
      cursor,
      'MATCH',
      `${keys.pattern().replace(/\*$/, '')}*p|clients`,
      'COUNT',
      1000,
    );
    cursor = next;
    for (const clientsKey of batch) {
      const first = await redis.zrange(clientsKey, '0', '0', 'WITHSCORES');
      if (first.length === 0) continue;
      checked += 1;
      const channel = channelOf(clientsKey);
      const due = indexed.get(channel);
      const earliest = Number(first[1]);
      if (due === undefined)
        violations.push(
          `${channel}: has clients but is not in the sweep index`,
        );
      else if (due > earliest)
        violations.push(
          `${channel}: indexed at ${due}, after its earliest expiry ${earliest}`,
        );
    }
  } while (cursor !== '0');
  return { checked, violations };
}

/** `…{/presence/site/online}p|clients` → `/site/online`. */
function channelOf(clientsKey: string): string {
  const open = clientsKey.indexOf('{/presence');
  const close = clientsKey.indexOf('}', open);
  return clientsKey.slice(open + '{/presence'.length, close);
}
