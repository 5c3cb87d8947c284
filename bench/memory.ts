/**
 * memory: Redis bytes per present client, from the INFO `used_memory` delta around populating
 * 1,000 channels × 100 clients and 10 channels × 10,000 clients, with a per-key-kind breakdown from
 * `MEMORY USAGE` (exact for our keys, unaffected by other users of a shared Redis). Absolute figures,
 * compared with the reference design's (≈ 58 bytes per client in small channels, ≈ 200 in channels of
 * 10,000). A dedicated key prefix, deleted afterwards; never FLUSHALL.
 */
import type { Redis } from 'ioredis';

import type { PublishRules } from '../server/src/core/store.js';
import { RedisStore } from '../server/src/store/redis-store.js';
import { runConcurrent } from './lib/load.js';
import {
  benchPrefix,
  connectRedis,
  deletePrefix,
  usedMemory,
  waitForLazyFree,
} from './lib/redis.js';
import { fmt } from './lib/stats.js';
import type { Bench, BenchResult, Table, TargetCheck } from './lib/types.js';
import { benchUserById } from './lib/users.js';

const RULES: PublishRules = { countOnly: false, audience: {} };
const KINDS = [
  'p|clients',
  'p|users',
  'p|profiles',
  'p|info',
  'b|meta',
  'b|log',
  'sweep|',
] as const;
const PRESENCE_KINDS = new Set([
  'p|clients',
  'p|users',
  'p|profiles',
  'p|info',
  'sweep|',
]);

/** `MEMORY USAGE` of every key under `prefix`, summed per key kind. */
async function usageByKind(
  redis: Redis,
  prefix: string,
): Promise<Map<string, number>> {
  const byKind = new Map<string, number>(KINDS.map((k) => [k, 0]));
  const pattern = `${prefix.replace(/[*?[\]\\]/g, '\\$&')}*`;
  let cursor = '0';
  for (let round = 0; round < 100_000; round++) {
    const [next, keys] = await redis.scan(
      cursor,
      'MATCH',
      pattern,
      'COUNT',
      2000,
    );
    const pipeline = redis.pipeline();
    for (const key of keys)
      pipeline.call('MEMORY', 'USAGE', key, 'SAMPLES', '0');
    const answers = (await pipeline.exec()) ?? [];
    keys.forEach((key, i) => {
      const kind =
        KINDS.find(
          (k) => key.endsWith(k) || (k === 'sweep|' && key.includes('sweep|')),
        ) ?? 'other';
      byKind.set(kind, (byKind.get(kind) ?? 0) + Number(answers[i]?.[1] ?? 0));
    });
    cursor = next;
    if (cursor === '0') break;
  }
  return byKind;
}

interface Scenario {
  channels: number;
  clients: number;
}

const bench: Bench = {
  name: 'memory',
  description:
    'Redis bytes per present client (INFO used_memory delta + MEMORY USAGE breakdown)',
  async run(context): Promise<BenchResult> {
    const scenarios: Scenario[] = context.smoke
      ? [
          { channels: 10, clients: 10 },
          { channels: 2, clients: 50 },
        ]
      : [
          { channels: 1000, clients: 100 },
          { channels: 10, clients: 10_000 },
        ];
    const redis = await connectRedis(context.redisUrl);
    const rows: Table['rows'] = [];
    const breakdown: Table['rows'] = [];
    const figures: Record<string, number> = {};
    const targets: TargetCheck[] = [];
    try {
      for (const { channels, clients } of scenarios) {
        const prefix = benchPrefix('memory');
        const store = new RedisStore(redis, { keyPrefix: prefix });
        const total = channels * clients;
        context.log(`${channels} channels × ${clients} clients`);
        try {
          await waitForLazyFree(redis);
          const before = await usedMemory(redis);
          const now = Date.now();
          const result = await runConcurrent(
            (i) =>
              store.present(
                `/bench/mem-${i % channels}`,
                benchUserById(1 + Math.floor(i / channels)),
                'c1',
                60_000,
                RULES,
                now,
              ),
            { total, concurrency: 200, maxMs: 120_000 },
          );
          if (result.ops !== total)
            throw new Error(`populating stopped at ${result.ops} of ${total}`);
          await waitForLazyFree(redis);
          const after = await usedMemory(redis);
          const usage = await usageByKind(redis, prefix);
          const all = [...usage.values()].reduce((a, b) => a + b, 0);
          const presence = [...usage]
            .filter(([k]) => PRESENCE_KINDS.has(k))
            .reduce((a, [, b]) => a + b, 0);
          const infoDelta = (after - before) / total;
          const label = `${fmt(channels)} ch × ${fmt(clients)}`;
          figures[`${label} presence bytes/client`] = presence / total;
          figures[`${label} all keys bytes/client`] = all / total;
          const profiles = usage.get('p|profiles') ?? 0;
          rows.push([
            label,
            infoDelta,
            all / total,
            presence / total,
            (presence - profiles) / total,
            (all - presence) / total,
          ]);
          breakdown.push([
            label,
            ...KINDS.map((k) => (usage.get(k) ?? 0) / total),
          ]);
          const reference = clients >= 10_000 ? 200 : 58;
          targets.push({
            what: `presence state bytes per client, ${label}`,
            target: `≤ reference ≈ ${reference}`,
            measured: `${fmt(presence / total)}, of which ${fmt((presence - profiles) / total)} without user profiles (${fmt(all / total)} with the change-message backlog; INFO delta ${fmt(infoDelta)})`,
            met: context.smoke ? null : presence / total <= reference,
          });
        } finally {
          await store.close();
          await deletePrefix(redis, prefix);
        }
      }
    } finally {
      redis.disconnect();
    }
    return {
      tables: [
        {
          title: 'Redis bytes per present client',
          columns: [
            'scenario',
            'INFO used_memory Δ',
            'MEMORY USAGE, all keys',
            'presence state',
            'of which membership (no profiles)',
            'backlog (b|*)',
          ],
          rows,
        },
        {
          title: 'MEMORY USAGE per client by key kind',
          columns: ['scenario', ...KINDS],
          rows: breakdown,
        },
      ],
      targets,
      notes: [
        'Each client is a distinct user entering with one client id; every first enter appends an `entering_users` message to the channel backlog (capped at 1,000 messages), which the reference design kept in a separate message bus and did not count.',
        'INFO used_memory is server-wide: on a shared Redis other clients move it; MEMORY USAGE (SAMPLES 0) sums our keys exactly.',
      ],
      figures,
    };
  },
};

export default bench;
