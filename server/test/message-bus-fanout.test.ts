import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { after, afterEach, before, describe, it } from 'node:test';

import { MemoryStore } from '../src/core/memory-store.js';
import type { WireMessage } from '../src/core/message-bus/index.js';
import type { PresenceStore } from '../src/core/store.js';
import {
  openPoll,
  poll,
  startBusServer,
  until,
  type BusServer,
  IDLE_ROUTER_STATS,
} from './support/bus-http.js';
import { messageIds } from './support/message-ids.js';
import {
  connectTestRedis,
  deleteKeys,
  randomKeyPrefix,
} from './support/redis-fixture.js';

/**
 * Two server instances (two Express apps on different ports) sharing one backend: a message published
 * through one reaches a poll held on the other. With the RedisStore each instance has its own store on its
 * own connections (as two processes would), sharing one Redis and key prefix; fan-out goes through
 * sharded pub/sub. Before the RedisStore exists the same tests run on one shared MemoryStore.
 */

/** Both instances publish on one clock stopped at T, so every backlog here is created at T. */
const T = 1_764_000_000_000;
const msgId = messageIds(T);

const hasRedisStore = existsSync(
  new URL('../src/store/redis-store.ts', import.meta.url),
);

interface Backend {
  name: string;
  /** Shard channels of this backend that some connection is subscribed to (always [] in memory). */
  subscribedShardChannels(): Promise<string[]>;
  /** A store for one "process". */
  store(): Promise<PresenceStore>;
  cleanup(): Promise<void>;
}

async function redisBackend(): Promise<Backend> {
  const { RedisStore } = await import('../src/store/redis-store.js');
  const keyPrefix = randomKeyPrefix();
  const connections: ReturnType<typeof connectTestRedis>[] = [];
  const stores: PresenceStore[] = [];
  return {
    name: 'RedisStore',
    async subscribedShardChannels() {
      const admin = connectTestRedis();
      try {
        return (await admin.call(
          'PUBSUB',
          'SHARDCHANNELS',
          `${keyPrefix}*`,
        )) as string[];
      } finally {
        admin.disconnect();
      }
    },
    store() {
      const connection = connectTestRedis();
      connections.push(connection);
      const store = new RedisStore(connection, { keyPrefix });
      stores.push(store);
      return Promise.resolve(store);
    },
    async cleanup() {
      await Promise.all(stores.map((store) => store.close()));
      const admin = connectTestRedis();
      try {
        await deleteKeys(admin, `${keyPrefix}*`);
      } finally {
        admin.disconnect();
        for (const connection of connections) connection.disconnect();
      }
    },
  };
}

function memoryBackend(): Promise<Backend> {
  const shared = new MemoryStore();
  return Promise.resolve({
    name: 'MemoryStore (shared)',
    subscribedShardChannels: () => Promise.resolve([]),
    store: () => Promise.resolve(shared),
    cleanup: () => shared.close(),
  });
}

function ids(messages: readonly WireMessage[]): number[] {
  return messages.map((m) => m.message_id);
}

describe(`message-bus fan-out between two server instances (${hasRedisStore ? 'RedisStore' : 'MemoryStore'})`, () => {
  let backend: Backend;
  let servers: BusServer[] = [];

  before(async () => {
    backend = hasRedisStore ? await redisBackend() : await memoryBackend();
  });
  after(async () => {
    await backend.cleanup();
  });
  afterEach(async () => {
    await Promise.all(servers.map((server) => server.close()));
    servers = [];
  });

  /**
   * Two instances, each with its own store (and connections) on the shared backend. Every poll of these
   * tests comes from 127.0.0.1, so the per-address cap is raised out of the way.
   */
  async function twoInstances(): Promise<[BusServer, BusServer]> {
    const first = await startBusServer({
      store: await backend.store(),
      clock: () => T,
      longPollMs: 5000,
      maxHeldPollsPerPeer: 1000,
    });
    const second = await startBusServer({
      store: await backend.store(),
      clock: () => T,
      longPollMs: 5000,
      maxHeldPollsPerPeer: 1000,
    });
    servers.push(first, second);
    assert.notEqual(first.origin, second.origin);
    return [first, second];
  }

  it('a message published through one instance answers a long poll held on the other', async () => {
    const [a, b] = await twoInstances();
    const channel = `/fanout/${randomBytes(4).toString('hex')}`;
    const held = openPoll(b.origin, {
      dontChunk: true,
      body: { [channel]: null },
    });
    await until(
      () =>
        b.router.stats().heldPolls === 1 && b.router.stats().listeners === 1,
      'the poll is held on b',
    );
    assert.equal(a.router.stats().heldPolls, 0);
    await a.router.bus.publish(channel, { from: 'a' });
    const body = JSON.parse(await held.body) as WireMessage[];
    assert.deepEqual(
      body.map((m) => [m.channel, m.message_id, m.data]),
      [[channel, msgId(1), { from: 'a' }]],
    );
    await until(
      () => b.router.stats().subscribedChannels === 0,
      'b released its subscription',
    );
  });

  it('a stream held on one instance receives every message published through the other, in order', async () => {
    const [a, b] = await twoInstances();
    const channel = `/fanout/${randomBytes(4).toString('hex')}`;
    const stream = openPoll(b.origin, { body: { [channel]: 0 } });
    assert.deepEqual(await stream.nextChunk(), []);
    await until(
      () => b.router.stats().listeners === 1,
      'b follows the channel',
    );
    for (let n = 1; n <= 5; n += 1) await a.router.bus.publish(channel, n);
    const received: WireMessage[] = [];
    while (received.length < 5) received.push(...(await stream.nextChunk()));
    assert.deepEqual(ids(received), [1, 2, 3, 4, 5].map(msgId));
    assert.deepEqual(
      received.map((m) => m.data),
      [1, 2, 3, 4, 5],
    );
    stream.abort();
    await until(
      () =>
        b.router.stats().heldPolls === 0 &&
        b.router.stats().subscribedChannels === 0,
      'released',
    );
  });

  it('audiences apply on the receiving instance', async () => {
    const [a, b] = await twoInstances();
    const channel = `/fanout/${randomBytes(4).toString('hex')}`;
    const held = openPoll(b.origin, {
      clientId: 'tab-b',
      dontChunk: true,
      body: { [channel]: 0 },
    });
    await until(() => b.router.stats().listeners === 1, 'held on b');
    await a.router.bus.publish(channel, 'not for tab-b', {
      clientIds: ['tab-other'],
    });
    await a.router.bus.publish(channel, 'for tab-b', { clientIds: ['tab-b'] });
    const body = JSON.parse(await held.body) as WireMessage[];
    assert.deepEqual(
      body.map((m) => [m.channel, m.message_id]),
      [
        [channel, msgId(2)],
        ['/__status', -1],
      ],
    );
  });

  it('both instances answer from one shared backlog', async () => {
    const [a, b] = await twoInstances();
    const channel = `/fanout/${randomBytes(4).toString('hex')}`;
    await a.router.bus.publish(channel, 'one');
    await b.router.bus.publish(channel, 'two');
    const fromA = await poll(a.origin, { dlp: true, body: { [channel]: 0 } });
    const fromB = await poll(b.origin, { dlp: true, body: { [channel]: 0 } });
    assert.deepEqual(ids(fromA.body as WireMessage[]), [1, 2].map(msgId));
    assert.deepEqual(fromB.body, fromA.body);
  });

  it('polls held on both instances are all woken by one publish', async () => {
    const [a, b] = await twoInstances();
    const channel = `/fanout/${randomBytes(4).toString('hex')}`;
    const polls = [a, b, a, b].map((server, n) =>
      openPoll(server.origin, {
        clientId: `tab-${n}`,
        dontChunk: true,
        body: { [channel]: 0 },
      }),
    );
    await until(
      () =>
        a.router.stats().listeners === 2 && b.router.stats().listeners === 2,
      'two polls held on each instance',
    );
    await b.router.bus.publish(channel, 'everyone');
    for (const held of polls)
      assert.deepEqual(ids(JSON.parse(await held.body) as WireMessage[]), [
        msgId(1),
      ]);
  });

  it('1,000 polls held across both instances and aborted leave no poll, timer, listener or Redis subscription', async () => {
    const [a, b] = await twoInstances();
    const tag = randomBytes(4).toString('hex');
    const polls = Array.from({ length: 1000 }, (_, n) =>
      openPoll((n % 2 === 0 ? a : b).origin, {
        clientId: `tab-${n}`,
        dontChunk: n % 4 < 2,
        body: { [`/fanout/${tag}/${Math.floor(n / 2) % 20}`]: 0, __seq: 1 },
      }),
    );
    await until(
      () =>
        a.router.stats().heldPolls === 500 &&
        b.router.stats().heldPolls === 500,
      '500 polls held on each instance',
      30_000,
    );
    assert.equal(a.router.stats().subscribedChannels, 20);
    assert.equal(
      (await backend.subscribedShardChannels()).length,
      hasRedisStore ? 20 : 0,
    );
    for (const held of polls) held.abort();
    const idle = IDLE_ROUTER_STATS;
    await until(
      () =>
        a.router.stats().subscribedChannels === 0 &&
        b.router.stats().subscribedChannels === 0,
      'every poll released',
      30_000,
    );
    assert.deepEqual(a.router.stats(), idle);
    assert.deepEqual(b.router.stats(), idle);
    const deadline = Date.now() + 5000;
    while (
      (await backend.subscribedShardChannels()).length > 0 &&
      Date.now() < deadline
    ) {
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    assert.deepEqual(
      await backend.subscribedShardChannels(),
      [],
      'no shard channel left subscribed',
    );
  });
});
