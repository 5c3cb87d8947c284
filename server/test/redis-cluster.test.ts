import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import { Cluster } from 'ioredis';

import { presenceScriptKeys } from '../src/store/keys.js';
import { RedisStore } from '../src/store/redis-store.js';
import { runStoreContract, user } from './store-contract.js';
import {
  FAIL_FAST,
  deleteKeys,
  randomKeyPrefix,
  redisStoreFactory,
} from './support/redis-fixture.js';
import {
  startRedisCluster,
  type RedisClusterHandle,
} from './support/redis-cluster.js';

let cluster: RedisClusterHandle;
let shared: Cluster;

function connectCluster(): Cluster {
  return new Cluster(cluster.nodes, {
    redisOptions: FAIL_FAST,
    clusterRetryStrategy: () => null,
  });
}

before(async () => {
  cluster = await startRedisCluster();
  shared = connectCluster();
  await shared.ping();
});
after(async () => {
  await shared.quit();
  await cluster.stop();
});

runStoreContract(
  'RedisStore on a Redis Cluster',
  redisStoreFactory(
    () => shared,
    () => connectCluster(),
  ),
);

describe('RedisStore key placement on a Redis Cluster', () => {
  it("admits an update in one script: a user's rate window and claims share a slot", async () => {
    const store = new RedisStore(shared, { keyPrefix: randomKeyPrefix() });
    try {
      const claims = {
        present: ['/site/a', '/site/b'],
        leaving: [],
        cap: 1,
        untilMs: 1_764_000_120_000,
      };
      const rate = { windowMs: 10_000, limit: 1 };
      const at = 1_764_000_000_000;
      assert.deepEqual(await store.admitUpdate(5, { rate, claims }, at), {
        rate: { allowed: true, count: 1, resetMs: 10_000 },
        refused: ['/site/b'],
      });
      assert.equal(
        (await store.admitUpdate(5, { rate, claims }, at)).rate?.allowed,
        false,
      );
    } finally {
      await store.close();
      await deleteKeys(shared, store.keys.pattern());
    }
  });

  it('keeps every key of a channel in one slot and spreads channels over the masters', async () => {
    const store = new RedisStore(shared, { keyPrefix: randomKeyPrefix() });
    try {
      const channels = Array.from({ length: 30 }, (_, i) => `/site/room-${i}`);
      for (const channel of channels) {
        await store.present(
          channel,
          user(1),
          'tab',
          1000,
          { countOnly: false, audience: {} },
          1_764_000_000_000,
        );
      }
      const slots = new Set<number>();
      for (const channel of channels) {
        const keys = presenceScriptKeys(store.keys.presence(channel));
        const keySlots = await Promise.all(
          keys.map(async (key) =>
            Number(await shared.call('CLUSTER', 'KEYSLOT', key)),
          ),
        );
        assert.equal(
          new Set(keySlots).size,
          1,
          `${channel}: ${keySlots.join(',')}`,
        );
        slots.add(keySlots[0]!);
      }
      const ranges = (await shared.call('CLUSTER', 'SLOTS')) as [
        number,
        number,
        ...unknown[],
      ][];
      const mastersUsed = ranges.filter(([from, to]) =>
        [...slots].some((slot) => slot >= from && slot <= to),
      );
      assert.equal(mastersUsed.length, 3, 'channels land on every master');
      const swept = await store.sweep(1_764_000_001_000);
      assert.equal(swept.messages.length, 30);
    } finally {
      await store.close();
      await deleteKeys(shared, store.keys.pattern());
    }
  });
});
