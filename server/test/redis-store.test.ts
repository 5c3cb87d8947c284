import assert from 'node:assert/strict';
import { readdir, readFile } from 'node:fs/promises';
import { after, before, describe, it } from 'node:test';

import { Redis } from 'ioredis';

import { RedisKeys, escapeKeyPart } from '../src/store/keys.js';
import { encodeProfile } from '../src/store/profile-codec.js';
import { PROFILE_TTL_MS, RedisStore } from '../src/store/redis-store.js';
import { runStoreContract, user } from './store-contract.js';
import {
  FAIL_FAST,
  deleteKeys,
  randomKeyPrefix,
  redisStoreFactory,
} from './support/redis-fixture.js';

const REDIS_URL = process.env['REDIS_URL'] ?? 'redis://127.0.0.1:6379';
const T = 1_764_000_000_000;
const HOUR = 60 * 60 * 1000;
const PUBLIC = { countOnly: false, audience: {} };

let shared: Redis;

before(async () => {
  shared = new Redis(REDIS_URL, FAIL_FAST);
  await shared.ping();
});
after(async () => {
  await shared.quit();
});

runStoreContract(
  'RedisStore',
  redisStoreFactory(
    () => shared,
    () => new Redis(REDIS_URL, FAIL_FAST),
  ),
);

/** Runs `run` on a RedisStore with a key prefix of its own, deleted afterwards. */
async function withStore(
  run: (store: RedisStore) => Promise<void>,
): Promise<void> {
  const store = new RedisStore(shared, { keyPrefix: randomKeyPrefix() });
  try {
    await run(store);
  } finally {
    await store.close();
    await deleteKeys(shared, store.keys.pattern());
  }
}

describe('RedisStore on one Redis', () => {
  it("keeps an emptied channel's rules and backlog only emptyChannelTtlMs; an enter restores the long TTLs", async () => {
    const store = new RedisStore(shared, {
      keyPrefix: randomKeyPrefix(),
      emptyChannelTtlMs: 600_000,
    });
    try {
      const keys = store.keys.presence('/site/online');
      const ttls = async () =>
        Promise.all(
          [keys.info, keys.bus.meta, keys.bus.log].map((key) =>
            shared.pttl(key),
          ),
        );
      await store.present('/site/online', user(1), 'tab', 60_000, PUBLIC, T);
      await store.leave('/site/online', 1, 'tab', PUBLIC, T + 1);
      for (const ttl of await ttls())
        assert.ok(ttl > 0 && ttl <= 600_000, `short TTL once empty (${ttl})`);
      assert.equal(await shared.exists(keys.clients, keys.users), 0);

      await store.present(
        '/site/online',
        user(2),
        'tab',
        60_000,
        PUBLIC,
        T + 2,
      );
      for (const ttl of await ttls())
        assert.ok(ttl > 600_000, `long TTL while someone is in (${ttl})`);

      // Emptied by the sweeper: short again.
      await store.sweep(T + 2 + 60_000);
      for (const ttl of await ttls())
        assert.ok(ttl > 0 && ttl <= 600_000, `short after the sweep (${ttl})`);
    } finally {
      await store.close();
      await deleteKeys(shared, store.keys.pattern());
    }
  });

  it("gives a maxUsersShown channel's order and profiles their TTL when a call creates them, between refreshes too", () =>
    withStore(async (store) => {
      const channel = '/site/online';
      const keys = store.keys.presence(channel);
      const shown = { ...PUBLIC, maxUsersShown: 2 };
      await store.present(channel, user(1), 'tab', 60_000, PUBLIC, T);
      // The limit arrives with a heartbeat seconds later, long before the channel's next TTL refresh.
      await store.present(channel, user(1), 'tab', 60_000, shown, T + 5000);
      for (const key of [keys.order, keys.profiles]) {
        const ttl = await shared.pttl(key);
        assert.ok(ttl > 23 * 3_600_000, `${key} PTTL ${ttl}`);
      }
      // The listed set goes with the channel's last user.
      await store.leave(channel, 1, 'tab', null, T + 6000);
      assert.equal(await shared.exists(keys.order, keys.profiles), 0);
    }));

  it('runs a heartbeat as the short script, from any process, and the full present whenever that cannot do', async () => {
    const connection = new Redis(REDIS_URL, FAIL_FAST);
    const store = new RedisStore(connection, { keyPrefix: randomKeyPrefix() });
    // The key counts of the EVALSHAs the store sends: 3 is the heartbeat script, 9 the present script.
    const sent: number[] = [];
    const sendCommand = connection.sendCommand.bind(connection);
    connection.sendCommand = (command, ...rest: unknown[]) => {
      if (command.name === 'evalsha') sent.push(Number(command.args[1]));
      return (sendCommand as (...args: unknown[]) => unknown)(command, ...rest);
    };
    const channel = '/site/online';
    const keys = store.keys.presence(channel);
    const heartbeat = async (now: number, rules = PUBLIC) => {
      sent.length = 0;
      const result = await store.present(
        channel,
        user(1),
        'tab',
        60_000,
        rules,
        now,
      );
      assert.equal(result.changed, false);
      return [...sent];
    };
    const expiry = async () =>
      Number((await shared.zrange(keys.clients, '0', '0', 'WITHSCORES'))[1]);
    const other = new RedisStore(connection, { keyPrefix: store.keys.prefix });
    try {
      // Scripts this connection has not run yet go out twice (EVALSHA, then again after NOSCRIPT).
      await store.present('/site/warm', user(9), 'tab', 60_000, PUBLIC, T);
      // An enter: the short script answers at once that the full one must run.
      sent.length = 0;
      await store.present(channel, user(1), 'tab', 60_000, PUBLIC, T);
      assert.deepEqual(sent, [3, 9]);
      assert.deepEqual(await heartbeat(T + 1000), [3]);
      assert.equal(await expiry(), T + 61_000);
      // Another process, which never saw this client: the short script too.
      sent.length = 0;
      await other.present(channel, user(1), 'tab', 60_000, PUBLIC, T + 1500);
      assert.deepEqual(sent, [3]);
      assert.equal(await expiry(), T + 61_500);
      // Other rules (the channel became count-only): the full present stores them.
      const countOnly = { countOnly: true, audience: {} };
      assert.deepEqual(await heartbeat(T + 2000, countOnly), [3, 9]);
      assert.equal(await shared.hget(keys.info, 'count_only'), '1');
      assert.deepEqual(await heartbeat(T + 3000, countOnly), [3]);
      // The store lost the client: the full present puts it back.
      await shared.del(keys.clients);
      assert.deepEqual(await heartbeat(T + 4000, countOnly), [3, 9]);
      assert.equal(await expiry(), T + 64_000);
      // That present refreshed the TTLs (the channel's first client again); a minute later the full
      // present refreshes them once more.
      assert.deepEqual(await heartbeat(T + 63_000, countOnly), [3]);
      await shared.pexpire(keys.users, 1000);
      assert.deepEqual(await heartbeat(T + 64_500, countOnly), [3, 9]);
      assert.ok((await shared.pttl(keys.users)) > 23 * HOUR);
    } finally {
      await other.close();
      await store.close();
      await deleteKeys(shared, store.keys.pattern());
      connection.disconnect();
    }
  });

  it('expires channel keys 24 hours, profiles 1 hour and backlogs 7 days after their last activity', () =>
    withStore(async (store) => {
      await store.present('/site/online', user(1), 'tab', 60_000, PUBLIC, T);
      await store.setConfig('/site/online', null, 120_000, T);
      await store.hit('user:1', 10_000, T);
      const keys = store.keys.presence('/site/online');
      const profileTtl = await shared.pttl(store.keys.userProfile(1));
      assert.ok(
        profileTtl > PROFILE_TTL_MS - 60_000 && profileTtl <= PROFILE_TTL_MS,
        `profile PTTL ${profileTtl}`,
      );
      for (const key of [keys.clients, keys.users, keys.info]) {
        const ttl = await shared.pttl(key);
        assert.ok(
          ttl > 24 * HOUR - 60_000 && ttl <= 24 * HOUR,
          `${key} PTTL ${ttl}`,
        );
      }
      for (const key of [keys.bus.meta, keys.bus.log]) {
        const ttl = await shared.pttl(key);
        assert.ok(
          ttl > 7 * 24 * HOUR - 60_000 && ttl <= 7 * 24 * HOUR,
          `${key} PTTL ${ttl}`,
        );
      }
      const configTtl = await shared.pttl(store.keys.config('/site/online'));
      assert.ok(
        configTtl > 110_000 && configTtl <= 120_000,
        `config PTTL ${configTtl}`,
      );
      const rateTtl = await shared.pttl(store.keys.rateLimit('user:1'));
      assert.ok(rateTtl > 0 && rateTtl <= 10_000, `rate PTTL ${rateTtl}`);
    }));

  it('a heartbeat refreshes the TTLs only once the last refresh is ttlRefreshMs old; keys created by a call always get theirs', async () => {
    // channelTtlMs 400 s: ttlRefreshMs = min(60 s, 400 s / 4) = 60 s.
    const store = new RedisStore(shared, {
      keyPrefix: randomKeyPrefix(),
      channelTtlMs: 400_000,
    });
    try {
      const keys = store.keys.presence('/site/online');
      const all = [
        keys.clients,
        keys.users,
        keys.info,
        keys.bus.meta,
        keys.bus.log,
      ];
      const ttls = () => Promise.all(all.map((key) => shared.pttl(key)));
      /** Stands in for the time Redis' clock moved since the last refresh. */
      const age = () =>
        Promise.all(all.map((key) => shared.pexpire(key, 100_000)));
      const present = (id: number, tab: string, at: number) =>
        store.present('/site/online', user(id), tab, 30_000, PUBLIC, at);

      await present(1, 'a', T);
      for (const ttl of await ttls()) assert.ok(ttl > 100_000, `new: ${ttl}`);

      await age();
      await present(1, 'a', T + 30_000); // a heartbeat
      await present(1, 'b', T + 40_000); // another tab of a present user
      await present(2, 'c', T + 50_000); // a new user in a live channel
      for (const ttl of await ttls())
        assert.ok(ttl <= 100_000, `not refreshed yet: ${ttl}`);

      await present(1, 'a', T + 60_000); // the refresh is due
      for (const ttl of await ttls())
        assert.ok(ttl > 100_000, `refreshed: ${ttl}`);

      // A backlog the store lost while the channel lived: the enter that creates it gives it a TTL.
      await shared.del(keys.bus.meta, keys.bus.log);
      await present(3, 'd', T + 61_000);
      for (const key of [keys.bus.meta, keys.bus.log])
        assert.ok((await shared.pttl(key)) > 0, `${key} has a TTL`);
      // A client key the store lost (e.g. evicted): the enter that creates it again refreshes them all.
      await shared.del(keys.clients);
      await present(4, 'e', T + 62_000);
      for (const ttl of await ttls()) assert.ok(ttl > 0, `has a TTL: ${ttl}`);
    } finally {
      await store.close();
      await deleteKeys(shared, store.keys.pattern());
    }
  });

  it('stores a profile once per user, compactly; a lost one shows as the id until the next present writes it again', () =>
    withStore(async (store) => {
      for (const channel of ['/a', '/b', '/c'])
        await store.present(channel, user(1), 'tab', 60_000, PUBLIC, T);
      const key = store.keys.userProfile(1);
      assert.equal(
        await shared.get(key),
        '["user1","User 1","/avatars/1/{size}.png"]',
      );
      assert.equal(
        (await shared.keys(`${store.keys.prefix}*profile*`)).length,
        1,
        'one profile key for three channels',
      );

      await shared.del(key); // evicted, or lost with a Redis node
      const lost = await store.state('/a', false, T + 1);
      assert.deepEqual('users' in lost && lost.users, [
        { id: 1, username: '1', name: null, avatar_template: '' },
      ]);
      // A heartbeat of the same client with the same profile: the read forgot it, so it is written.
      await store.present('/a', user(1), 'tab', 60_000, PUBLIC, T + 2);
      const back = await store.state('/a', false, T + 3);
      assert.deepEqual('users' in back && back.users, [user(1)]);

      // Something else under the key (another tool, a later format): shown by id, never a crash.
      await shared.set(key, '{"not":"a profile"}');
      const odd = await store.state('/b', false, T + 4);
      assert.deepEqual('users' in odd && odd.users.map((u) => u.username), [
        '1',
      ]);
    }));

  it('takes over a channel written by the previous layout (raw client ids, counts without fingerprints)', () =>
    withStore(async (store) => {
      const keys = store.keys.presence('/site/online');
      // What 0.1.0 before per-user profiles left: user 1 present with client "tab" until T + 60 s.
      await shared.zadd(keys.clients, T + 60_000, '1:tab');
      await shared.hset(keys.users, '1', '1');
      await shared.hset(
        keys.info,
        ...['count_only', '0', 'publish', '1', 'audience', ''],
        ...['due', String(T + 60_000)],
      );
      await shared.zadd(
        store.keys.sweepShardOf('/site/online'),
        T + 60_000,
        '/site/online',
      );
      const beat = await store.present(
        '/site/online',
        user(1),
        'tab',
        120_000,
        PUBLIC,
        T + 1000,
      );
      assert.deepEqual(
        beat,
        { changed: false, message: null },
        'no re-announce',
      );
      assert.match(
        (await shared.hget(keys.users, '1')) ?? '',
        /^2:[\w-]{4}$/,
        'both clients counted, fingerprint added',
      );
      const left = await store.leave(
        '/site/online',
        1,
        'tab',
        PUBLIC,
        T + 2000,
      );
      assert.equal(left.changed, false, 'the old entry still holds the user');
      const swept = await store.sweep(T + 60_000);
      assert.equal(swept.expiredClients, 1);
      assert.deepEqual(swept.messages[0]?.data, { leaving_user_ids: [1] });
      assert.equal(await shared.exists(keys.users), 0);
    }));

  it('a read of an unchanged channel transfers no users; each process checks its copy against Redis', async () => {
    const prefix = randomKeyPrefix();
    const reader = new RedisStore(shared, { keyPrefix: prefix });
    const uncached = new RedisStore(shared, {
      keyPrefix: prefix,
      stateCacheUsers: 0,
    });
    const writer = new RedisStore(shared, { keyPrefix: prefix });
    try {
      await writer.present('/site/online', user(1), 'a', 60_000, PUBLIC, T);
      const users = async (store: RedisStore) => {
        const state = await store.state('/site/online', false, T + 1);
        return 'users' in state ? state.users.map((u) => u.name) : null;
      };
      assert.deepEqual(await users(reader), ['User 1']);
      // Written behind the stores' back (no version change): a reader holding the list does not see it,
      // which shows its read did not transfer the users; a store without the cache does.
      await shared.set(
        reader.keys.userProfile(1),
        encodeProfile({ ...user(1), name: 'Behind' }),
      );
      assert.deepEqual(await users(reader), ['User 1']);
      assert.deepEqual(await users(uncached), ['Behind']);
      // Any change through a store moves the version: the next read transfers the list again.
      await writer.present('/site/online', user(2), 'b', 60_000, PUBLIC, T);
      assert.deepEqual(await users(reader), ['Behind', 'User 2']);
      assert.throws(
        () => new RedisStore(shared, { stateCacheUsers: -1 }),
        /stateCacheUsers must be a non-negative integer, got -1/,
      );
    } finally {
      await Promise.all([reader.close(), uncached.close(), writer.close()]);
      await deleteKeys(shared, reader.keys.pattern());
    }
  });

  it('indexes a channel for the sweep on its first client, not on heartbeats, and drops it when empty', () =>
    withStore(async (store) => {
      const shard = store.keys.sweepShardOf('/site/online');
      await store.present('/site/online', user(1), 'tab', 1000, PUBLIC, T);
      assert.equal(
        await shared.zscore(shard, '/site/online'),
        String(T + 1000),
      );
      await store.present(
        '/site/online',
        user(1),
        'tab',
        1000,
        PUBLIC,
        T + 500,
      );
      await store.present(
        '/site/online',
        user(2),
        'tab',
        5000,
        PUBLIC,
        T + 500,
      );
      assert.equal(
        await shared.zscore(shard, '/site/online'),
        String(T + 1000),
        'heartbeats leave the index alone',
      );
      assert.equal((await store.sweep(T + 1000)).expiredClients, 0);
      assert.equal(
        await shared.zscore(shard, '/site/online'),
        String(T + 1500),
        're-scored to the next expiry',
      );
      assert.equal((await store.sweep(T + 5500)).expiredClients, 2);
      assert.equal(
        await shared.zscore(shard, '/site/online'),
        null,
        'an empty channel leaves the index',
      );
      const total = await Promise.all(
        store.keys.allSweepShards().map((key) => shared.zcard(key)),
      );
      assert.deepEqual(
        total.filter((n) => n > 0),
        [],
      );
    }));

  it('re-indexes a long-overdue channel whose index write was lost', () =>
    withStore(async (store) => {
      const shard = store.keys.sweepShardOf('/site/online');
      await store.present('/site/online', user(1), 'a', 1000, PUBLIC, T);
      await store.present('/site/online', user(2), 'b', 120_000, PUBLIC, T);
      await shared.zrem(shard, '/site/online'); // as if the process died before its ZADD
      await store.present(
        '/site/online',
        user(2),
        'b',
        120_000,
        PUBLIC,
        T + 60_000,
      );
      assert.equal(
        await shared.zscore(shard, '/site/online'),
        String(T + 1000),
      );
      const swept = await store.sweep(T + 60_000);
      assert.deepEqual(
        swept.messages.map((m) => m.data),
        [{ leaving_user_ids: [1] }],
      );
    }));

  it('changes state, stores and publishes each change in one round trip; heartbeats of known clients touch no shared key', async () => {
    const connection = new Redis(REDIS_URL, FAIL_FAST);
    const store = new RedisStore(connection, { keyPrefix: randomKeyPrefix() });
    const sent: string[] = [];
    const original = connection.sendCommand.bind(connection);
    connection.sendCommand = (
      command: { name: string; args: unknown[] },
      ...rest: unknown[]
    ) => {
      sent.push(
        command.name === 'evalsha'
          ? `script ${String(command.args[2])}`
          : command.name,
      );
      return original(command as never, ...(rest as []));
    };
    try {
      await store.present('/warm/up', user(9), 'tab', 1000, PUBLIC, T); // loads the scripts (EVAL after NOSCRIPT)
      await store.publish('/warm/up', 0, {}, T);
      await store.leave('/warm/up', 9, 'tab', PUBLIC, T);
      const roundTrips = async (
        action: () => Promise<unknown>,
      ): Promise<string[]> => {
        sent.length = 0;
        await action();
        return [...sent];
      };
      const keys = store.keys.presence('/site/online');
      assert.deepEqual(
        await roundTrips(() =>
          store.present('/site/online', user(1), 'tab', 1000, PUBLIC, T),
        ),
        [
          'set',
          `script ${keys.clients}`,
          'zadd',
          `script ${keys.clients}`,
          'zadd',
        ],
        'the short heartbeat script answers that this is no heartbeat; a client this process has not ' +
          'seen is indexed for the sweep, and its profile written, BEFORE the state changes (a crash ' +
          'between them leaves no unswept client and no listed user without a profile); the counters ' +
          'are written later, once a second (see counts); the first client indexes again after, in ' +
          'case a sweeper was re-scoring the entry',
      );
      assert.deepEqual(
        await roundTrips(() =>
          store.present('/site/online', user(1), 'tab', 1000, PUBLIC, T + 1),
        ),
        [`script ${keys.clients}`],
        'a heartbeat of a known client touches no shared key',
      );
      assert.deepEqual(
        await roundTrips(() =>
          store.present('/site/online', user(2), 'tab', 5000, PUBLIC, T + 1),
        ),
        ['set', `script ${keys.clients}`, 'zadd', `script ${keys.clients}`],
        'another new client: index first (ZADD LT, a no-op for a later expiry)',
      );
      assert.deepEqual(
        await roundTrips(() =>
          store.present('/other', user(1), 'tab', 1000, PUBLIC, T + 1),
        ),
        [
          `script ${store.keys.presence('/other').clients}`,
          'zadd',
          'set',
          `script ${store.keys.presence('/other').clients}`,
          'zadd',
        ],
        'a known user in a channel new to them: written again (cheap next to an enter)',
      );
      assert.deepEqual(
        await roundTrips(() =>
          store.present(
            '/site/online',
            { ...user(1), name: 'Edited' },
            'tab',
            1000,
            PUBLIC,
            T + 2,
          ),
        ),
        ['set', `script ${keys.clients}`, `script ${keys.clients}`],
        'an edited profile is written before the heartbeat that carries it (the full script: the ' +
          "channel's fingerprint of it changes)",
      );
      assert.deepEqual(
        await roundTrips(() =>
          store.leave('/site/online', 2, 'tab', PUBLIC, T + 2),
        ),
        [`script ${keys.clients}`],
      );
      // While events are recorded, a change that may cause one indexes the channel for delivery first.
      await store.events.announceConsumer(T, 60_000);
      assert.deepEqual(
        await roundTrips(() =>
          store.present('/site/online', user(3), 'tab', 5000, PUBLIC, T + 3),
        ),
        [
          'set',
          `script ${keys.clients}`,
          'zadd',
          'zadd',
          `script ${keys.clients}`,
        ],
        'with events: profile, sweep index and event index before the state',
      );
      assert.deepEqual(
        await roundTrips(() =>
          store.present('/site/online', user(3), 'tab', 5000, PUBLIC, T + 4),
        ),
        [`script ${keys.clients}`],
        'with events: a heartbeat of a known client still touches no shared key',
      );
      assert.deepEqual(
        await roundTrips(() =>
          store.leave('/site/online', 3, 'tab', PUBLIC, T + 5),
        ),
        ['zadd', `script ${keys.clients}`],
        'with events: a leave indexes the channel for delivery first',
      );
      assert.deepEqual(
        await roundTrips(() => store.publish('/chat', 1, {}, T)),
        [`script ${store.keys.bus('/chat').meta}`],
      );
    } finally {
      await store.close();
      await deleteKeys(shared, store.keys.pattern());
      await connection.quit();
    }
  });

  it('writes exact 16-digit global ids', () =>
    withStore(async (store) => {
      const first = await store.publish('/chat', 1, {}, T);
      const second = await store.publish('/chat', 2, {}, T);
      assert.equal(first.global_id, T * 1000);
      assert.equal(second.global_id, T * 1000 + 1);
    }));

  it('unsubscribes from the shard channel when the last listener goes', () =>
    withStore(async (store) => {
      const shardChannel = store.keys.bus('/chat').pubsub;
      const numsub = async (): Promise<number> =>
        Number(
          (
            (await shared.call('PUBSUB', 'SHARDNUMSUB', shardChannel)) as [
              string,
              number,
            ]
          )[1],
        );
      const stopA = await store.subscribe(['/chat'], () => undefined);
      const stopB = await store.subscribe(['/chat', '/other'], () => undefined);
      assert.equal(
        await numsub(),
        1,
        'one subscription per process, however many listeners',
      );
      await stopA();
      assert.equal(await numsub(), 1);
      await stopB();
      assert.equal(await numsub(), 0);
    }));

  it('connects from a URL and closes the connection it created', async () => {
    const store = new RedisStore(REDIS_URL, {
      keyPrefix: randomKeyPrefix(),
      redisOptions: FAIL_FAST,
    });
    await store.ping();
    await store.close();
    await assert.rejects(store.ping(), /closed/);
  });

  it('fails fast when Redis is unreachable', async () => {
    const store = new RedisStore('redis://127.0.0.1:1', {
      redisOptions: { ...FAIL_FAST, lazyConnect: true },
      onError: () => undefined,
    });
    await assert.rejects(store.ping());
    await store.close();
  });

  it('refuses configurations that would break hash slots or key isolation', () => {
    const prefixed = new Redis(REDIS_URL, {
      ...FAIL_FAST,
      lazyConnect: true,
      keyPrefix: 'app:',
    });
    assert.throws(() => new RedisStore(prefixed, {}), /keyPrefix option/);
    prefixed.disconnect();
    assert.throws(
      () => new RedisStore(shared, { keyPrefix: 'a{b}' }),
      /keyPrefix/,
    );
    assert.throws(() => new RedisStore({} as Redis), /ioredis/);
    assert.throws(
      () => new RedisStore(shared, { backlogSize: 0 }),
      /backlogSize/,
    );
  });
});

describe('RedisStore.admitUpdate (rate limit + channel claims in one script)', () => {
  const RATE = { windowMs: 10_000, limit: 2 };
  const claims = (present: string[], leaving: string[] = [], cap = 2) => ({
    present,
    leaving,
    cap,
    untilMs: T + 120_000,
  });

  it('counts like hit and claims like claimChannels, one window per user shared by every process', async () => {
    const prefix = randomKeyPrefix();
    const a = new RedisStore(shared, { keyPrefix: prefix });
    const other = new Redis(REDIS_URL, FAIL_FAST);
    const b = new RedisStore(other, { keyPrefix: prefix });
    try {
      /** One update of user 7 through `store` at `at`, and what it should answer. */
      const admit = async (
        store: RedisStore,
        at: number,
        [present, leaving]: [string[], string[]],
        rate: { allowed: boolean; count: number; resetMs: number },
        refused: string[],
      ): Promise<void> =>
        assert.deepEqual(
          await store.admitUpdate(
            7,
            { rate: RATE, claims: claims(present, leaving) },
            at,
          ),
          { rate, refused },
        );
      const held = async (): Promise<string[]> =>
        (await shared.zrange(a.keys.userChannels(7), '0', '-1')).sort();
      await admit(
        a,
        T,
        [['/a/1', '/a/2', '/a/3'], []],
        { allowed: true, count: 1, resetMs: 10_000 },
        ['/a/3'],
      );
      // Another process: the same window and the same claims.
      await admit(
        b,
        T + 4000,
        [['/a/3'], ['/a/1']],
        { allowed: true, count: 2, resetMs: 6000 },
        [],
      );
      assert.deepEqual(await held(), ['/a/2', '/a/3']);
      await admit(
        a,
        T + 5000,
        [['/a/4'], ['/a/2']],
        { allowed: false, count: 3, resetMs: 5000 },
        [],
      );
      assert.deepEqual(
        await held(),
        ['/a/2', '/a/3'],
        'past the limit nothing is claimed or freed',
      );
      // Another user has a window of their own; the window reopens after windowMs.
      assert.equal(
        (await b.admitUpdate(8, { rate: RATE, claims: null }, T + 5000)).rate
          ?.count,
        1,
      );
      assert.equal(
        (await b.admitUpdate(7, { rate: RATE, claims: null }, T + 10_000)).rate
          ?.count,
        1,
      );
      const ttl = await shared.pttl(a.keys.userUpdateRate(7));
      assert.ok(ttl > 0 && ttl <= 10_000, `rate PTTL ${ttl}`);
    } finally {
      await a.close();
      await b.close();
      other.disconnect();
      await deleteKeys(shared, a.keys.pattern());
    }
  });

  it('without a limit only claims; checks its arguments', () =>
    withStore(async (store) => {
      assert.deepEqual(
        await store.admitUpdate(
          9,
          { rate: null, claims: claims(['/a/1', '/a/2', '/a/3'], [], 1) },
          T,
        ),
        {
          rate: null,
          refused: ['/a/2', '/a/3'],
        },
      );
      assert.equal(await shared.exists(store.keys.userUpdateRate(9)), 0);
      await assert.rejects(
        store.admitUpdate(1.5, { rate: RATE, claims: null }, T),
        /userId/,
      );
      await assert.rejects(
        store.admitUpdate(9, { rate: RATE, claims: claims(['']) }, T),
        /channel/,
      );
    }));
});

describe('Redis keys', () => {
  it('gives every channel name its own keys, all in the slot of its bus channel', () => {
    const keys = new RedisKeys('ep:', 16);
    const names = [
      '/a/b',
      '/a/b}',
      '/a/{b}',
      '/a/b%7D',
      '/a/b%',
      '/a/b}p|clients',
    ];
    const all = names.flatMap((name) => {
      const k = keys.presence(name);
      return [
        k.clients,
        k.users,
        k.info,
        k.bus.meta,
        k.bus.log,
        k.bus.pubsub,
        keys.config(name),
      ];
    });
    assert.equal(new Set(all).size, all.length);
    const k = keys.presence('/a/{b}');
    for (const key of [k.clients, k.info, k.bus.meta, k.bus.pubsub]) {
      assert.equal(
        key.slice(key.indexOf('{') + 1, key.indexOf('}')),
        escapeKeyPart('/presence/a/{b}'),
      );
    }
    assert.equal(escapeKeyPart('a%b{c}'), 'a%25b%7Bc%7D');
  });

  it('every Lua script documents its keys, arguments and result and uses named locals', async () => {
    const dir = new URL('../lua/', import.meta.url);
    const files = (await readdir(dir)).filter((file) => file.endsWith('.lua'));
    assert.ok(files.length >= 7);
    for (const file of files) {
      const source = await readFile(new URL(file, dir), 'utf8');
      assert.match(source, /^--\[\[/, `${file} opens with a header`);
      assert.match(source, /KEYS\[1\]/, `${file} documents KEYS`);
      assert.match(source, /ARGV\[1\]/, `${file} documents ARGV`);
      assert.match(source, /Returns/, `${file} documents its result`);
      assert.match(
        source,
        /^local rcall = redis\.call$/m,
        `${file} aliases redis.call`,
      );
      const body = source.slice(source.indexOf(']]'));
      assert.doesNotMatch(
        body.replace(/^local .*\b(KEYS|ARGV)\[.*$/gm, ''),
        /\b(KEYS|ARGV)\[/,
        `${file} reads KEYS/ARGV only into locals`,
      );
      assert.doesNotMatch(body, /'TIME'/, `${file} takes now from ARGV`);
    }
  });
});
