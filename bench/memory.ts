/**
 * memory: Redis bytes per present client, from the INFO `used_memory` delta around populating
 * 1,000 channels × 100 clients and 10 channels × 10,000 clients, with a per-key-kind breakdown from
 * `MEMORY USAGE` (exact for our keys, unaffected by other users of a shared Redis). Realistic ids: 10,000
 * distinct users in each scenario, each present in 10 channels with one 32-hex client id (one tab).
 * Absolute figures, printed beside the reference design's (Discourse: 493.2 bytes per client with the
 * change-message backlog, 63 without). The 10 × 10,000 scenario runs again with `maxUsersShown` 50, for
 * what the listed-users keys (`p|order`, `p|profiles`) cost. A dedicated key prefix, deleted afterwards; never FLUSHALL.
 */
import { randomBytes } from 'node:crypto';

import type { Redis } from 'ioredis';

import type { PublishRules } from '../server/src/core/store.js';
import { RedisStore } from '../server/src/store/redis-store.js';
import { runConcurrent } from './lib/load.js';
import {
  shortBenchPrefix,
  connectRedis,
  deletePrefix,
  usedMemory,
  waitForLazyFree,
} from './lib/redis.js';
import { fmt } from './lib/stats.js';
import type { Bench, BenchResult, Table, TargetCheck } from './lib/types.js';
import { benchUserById } from './lib/users.js';

const RULES: PublishRules = { countOnly: false, audience: {} };

/** Discourse's figures for the same measure (bytes per present client). */
const REFERENCE = { withBacklog: 493.2, withoutBacklog: 63 };

/** Channels each user is present in (with one client id: a tab in several channels). */
const CHANNELS_PER_USER = 10;
const KINDS = [
  'p|clients',
  'p|users',
  '}|profile',
  'p|info',
  'b|meta',
  'b|log',
  'sweep|',
  'p|order',
  'p|profiles',
] as const;
const PRESENCE_KINDS = new Set([
  'p|clients',
  'p|users',
  '}|profile',
  'p|info',
  'sweep|',
  'p|order',
  'p|profiles',
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
  /** The channels' `maxUsersShown`, if any. */
  shown?: number;
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
          { channels: 2, clients: 50, shown: 5 },
        ]
      : [
          { channels: 1000, clients: 100 },
          { channels: 10, clients: 10_000 },
          { channels: 10, clients: 10_000, shown: 50 },
        ];
    const redis = await connectRedis(context.redisUrl);
    const rows: Table['rows'] = [];
    const breakdown: Table['rows'] = [];
    const figures: Record<string, number> = {};
    const targets: TargetCheck[] = [];
    try {
      for (const { channels, clients, shown } of scenarios) {
        const rules: PublishRules =
          shown === undefined ? RULES : { ...RULES, maxUsersShown: shown };
        // As short as the default prefix `ep:`: key names are part of what is measured.
        const prefix = shortBenchPrefix();
        const store = new RedisStore(redis, { keyPrefix: prefix });
        const total = channels * clients;
        // Client i is in channel i % channels; users are distinct within a channel, and each is in
        // `perUser` consecutive channels (group ⌊channel / perUser⌋) with one 32-hex client id.
        const perUser = Math.min(CHANNELS_PER_USER, channels);
        const groups = channels / perUser;
        const users = clients * groups;
        const clientIds = Array.from({ length: users }, () =>
          randomBytes(16).toString('hex'),
        );
        const userOf = (i: number): number =>
          Math.floor(i / channels) * groups +
          Math.floor((i % channels) / perUser);
        context.log(
          `${channels} channels × ${clients} clients (${users} users in ${perUser} channels each)`,
        );
        try {
          await waitForLazyFree(redis);
          const before = await usedMemory(redis);
          const now = Date.now();
          const result = await runConcurrent(
            (i) =>
              store.present(
                `/bench/mem-${i % channels}`,
                benchUserById(1 + userOf(i)),
                clientIds[userOf(i)]!,
                60_000,
                rules,
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
          const label = `${fmt(channels)} ch × ${fmt(clients)}, ${fmt(users)} users in ${perUser} ch each${shown === undefined ? '' : `, maxUsersShown ${shown}`}`;
          figures[`${label} presence bytes/client`] = presence / total;
          figures[`${label} all keys bytes/client`] = all / total;
          const profiles = usage.get('}|profile') ?? 0;
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
          const listedKeys =
            (usage.get('p|order') ?? 0) + (usage.get('p|profiles') ?? 0);
          if (shown !== undefined) {
            targets.push({
              what: `what maxUsersShown costs, ${label}`,
              target: 'informational',
              measured: `${fmt(listedKeys / total)} B per client in p|order and p|profiles; ${fmt(all / total)} B in all`,
              met: null,
            });
            continue;
          }
          targets.push(
            {
              what: `total bytes per present client (every key, backlog included), ${label}`,
              target: `reference (Discourse) ${fmt(REFERENCE.withBacklog)} B/client with backlog`,
              measured: `${fmt(all / total)} B (INFO delta ${fmt(infoDelta)})`,
              met: context.smoke ? null : all / total <= REFERENCE.withBacklog,
            },
            {
              what: `presence state bytes per client (no backlog), ${label}`,
              target: `reference (Discourse) ${fmt(REFERENCE.withoutBacklog)} B/client without backlog`,
              measured: `${fmt(presence / total)} B, of which ${fmt((presence - profiles) / total)} without user profiles`,
              met: context.smoke
                ? null
                : presence / total <= REFERENCE.withoutBacklog,
            },
          );
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
          columns: [
            'scenario',
            ...KINDS.map((k) => (k === '}|profile' ? '{user|id}|profile' : k)),
          ],
          rows: breakdown,
        },
      ],
      targets,
      notes: [
        `Each user is present in ${CHANNELS_PER_USER} channels (a channel group of the scenario) with one 32-hex client id, so channels hold distinct users and users repeat across channels as in a deployment; every first enter appends an \`entering_users\` message to the channel backlog (capped at 1,000 messages). Profiles are stored once per user (\`{user|id}|profile\`), so their bytes are shared by the user's ${CHANNELS_PER_USER} channels.`,
        `Reference (Discourse, the design this follows): ${REFERENCE.withBacklog} B per present client with its message backlog, ${REFERENCE.withoutBacklog} B without.`,
        'INFO used_memory is server-wide: on a shared Redis other clients move it; MEMORY USAGE (SAMPLES 0) sums our keys exactly.',
      ],
      figures,
    };
  },
};

export default bench;
