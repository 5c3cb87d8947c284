import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { MemoryStore } from '../src/core/memory-store.js';
import { messageIds } from './support/message-ids.js';
import { runStoreContract, user } from './store-contract.js';

runStoreContract('MemoryStore', (options) => {
  let store = new MemoryStore(options);
  return Promise.resolve({
    store,
    // A restarted server process starts with an empty store.
    async reset() {
      await store.close();
      store = new MemoryStore(options);
      return store;
    },
    cleanup: () => store.close(),
  });
});

const T = 1_764_000_000_000;
const HOUR = 60 * 60 * 1000;
const PUBLIC = { countOnly: false, audience: {} };
/** The ids of a backlog created at T, as most backlogs here are. */
const msgId = messageIds(T);

describe('MemoryStore', () => {
  it('drops an empty channel and, emptyChannelTtlMs after it emptied, its backlog; an enter before keeps it', async () => {
    const MIN = 60_000;
    const store = new MemoryStore({ emptyChannelTtlMs: 10 * MIN });
    const BUS = '/presence/site/online';
    await store.present('/site/online', user(1), 'tab', MIN, PUBLIC, T);
    await store.leave('/site/online', 1, 'tab', PUBLIC, T + 1);
    await store.state('/site/online', false, T + 10 * MIN); // the clock moves on
    assert.deepEqual(
      await store.lastIds([BUS]),
      { [BUS]: msgId(2) },
      'kept 10 min',
    );
    await store.state('/site/online', false, T + 1 + 10 * MIN);
    assert.deepEqual(await store.lastIds([BUS]), { [BUS]: 0 }, 'gone after');

    // Emptied by the sweeper, then entered again before the deadline: the backlog stays.
    const T2 = T + HOUR;
    await store.present('/site/b', user(1), 'tab', MIN, PUBLIC, T2);
    await store.sweep(T2 + MIN);
    await store.present('/site/b', user(2), 'tab', MIN, PUBLIC, T2 + 5 * MIN);
    await store.state('/site/b', false, T2 + 30 * MIN);
    assert.equal(
      (await store.lastIds(['/presence/site/b']))['/presence/site/b'],
      messageIds(T2)(3),
      'someone entered before the deadline',
    );
    await store.close();
  });

  it('drops a channel 24 hours after its last activity', async () => {
    const store = new MemoryStore();
    await store.present('/site/online', user(1), 'tab', 48 * HOUR, PUBLIC, T);
    await store.present(
      '/site/online',
      user(1),
      'tab',
      48 * HOUR,
      PUBLIC,
      T + 12 * HOUR,
    );
    assert.equal(
      (await store.state('/site/online', false, T + 36 * HOUR - 1)).count,
      1,
    );
    const state = await store.state('/site/online', false, T + 36 * HOUR);
    assert.deepEqual(
      state,
      { users: [], count: 0, last_message_id: msgId(1) },
      'the backlog outlives the channel',
    );
    assert.deepEqual(await store.sweep(T + 60 * HOUR), {
      expiredClients: 0,
      messages: [],
      lagMs: 0,
    });
    await store.close();
  });

  it('drops a backlog 7 days after its last message, so ids start again, above the old ones', async () => {
    const store = new MemoryStore();
    await store.publish('/chat', 1, {}, T);
    await store.publish('/chat', 2, {}, T + 24 * HOUR);
    await store.ping();
    assert.deepEqual(await store.lastIds(['/chat']), { '/chat': msgId(2) });
    // Calls without `now` use the newest time the store has seen.
    await store.getConfig('/x', T + 24 * HOUR + 7 * 24 * HOUR);
    assert.deepEqual(await store.lastIds(['/chat']), { '/chat': 0 });
    assert.deepEqual(await store.backlog('/chat', 0), []);
    const recreatedAt = T + 8 * 24 * HOUR + 1;
    const recreated = await store.publish('/chat', 3, {}, recreatedAt);
    assert.equal(recreated.message_id, messageIds(recreatedAt)(1));
    assert.ok(recreated.message_id > msgId(2));
    await store.close();
  });

  it('honours custom TTLs and backlog size', async () => {
    const store = new MemoryStore({
      channelTtlMs: 1000,
      backlogTtlMs: 2000,
      backlogSize: 2,
    });
    await store.present('/site/online', user(1), 'tab', 60_000, PUBLIC, T);
    await store.publish('/chat', 'a', {}, T);
    await store.publish('/chat', 'b', {}, T);
    await store.publish('/chat', 'c', {}, T);
    assert.deepEqual(
      (await store.backlog('/chat', 0)).map((m) => m.data),
      ['b', 'c'],
    );
    assert.equal((await store.state('/site/online', false, T + 1000)).count, 0);
    assert.deepEqual(await store.lastIds(['/presence/site/online']), {
      '/presence/site/online': msgId(1),
    });
    await store.state('/site/online', false, T + 2000);
    assert.deepEqual(await store.lastIds(['/chat', '/presence/site/online']), {
      '/chat': 0,
      '/presence/site/online': 0,
    });
    await store.close();
  });

  it('rejects nonsensical options with the option name', () => {
    assert.throws(() => new MemoryStore({ backlogSize: 0 }), /backlogSize/);
    assert.throws(() => new MemoryStore({ channelTtlMs: -1 }), /channelTtlMs/);
  });

  it('notifies listeners synchronously, after the state change, before the call resolves', async () => {
    const store = new MemoryStore();
    const events: string[] = [];
    let count: Promise<number> | undefined;
    await store.subscribe(['/presence/site/online'], (message) => {
      events.push(`listener ${message.message_id}`);
      count = store
        .state('/site/online', false, T)
        .then((state) => state.count);
    });
    const pending = store
      .present('/site/online', user(1), 'tab', 1000, PUBLIC, T)
      .then(() => events.push('resolved'));
    assert.deepEqual(
      events,
      [`listener ${msgId(1)}`],
      'the listener ran during the call itself',
    );
    await pending;
    assert.deepEqual(events, [`listener ${msgId(1)}`, 'resolved']);
    assert.equal(await count, 1, 'the listener saw the change applied');
    await store.close();
  });

  it('a throwing listener neither fails the publish nor starves the others', async () => {
    const errors: unknown[] = [];
    const store = new MemoryStore({
      onListenerError: (error) => errors.push(error),
    });
    const received: unknown[] = [];
    await store.subscribe(['/chat'], () => {
      throw new Error('boom');
    });
    await store.subscribe(['/chat'], (message) => received.push(message.data));
    const message = await store.publish('/chat', 'hi', {}, T);
    assert.equal(message.message_id, msgId(1));
    assert.deepEqual(received, ['hi']);
    assert.equal((errors[0] as Error).message, 'boom');
    await store.close();
  });

  it('never hands out its own copy of a stored message', async () => {
    const store = new MemoryStore();
    const published = await store.publish(
      '/chat',
      { n: 1 },
      { userIds: [1] },
      T,
    );
    (published.data as { n: number }).n = 2;
    published.user_ids?.push(99);
    const [stored] = await store.backlog('/chat', 0);
    assert.deepEqual(stored?.data, { n: 1 });
    assert.deepEqual(stored?.user_ids, [1]);
    await store.close();
  });

  it('sweeps the one due channel among a thousand', async () => {
    const store = new MemoryStore();
    for (let i = 0; i < 1000; i++)
      await store.present(`/site/${i}`, user(i), 'tab', 60_000 + i, PUBLIC, T);
    assert.deepEqual(await store.sweep(T + 60_000), {
      expiredClients: 1,
      messages: [(await store.backlog('/presence/site/0', msgId(1)))[0]!],
      lagMs: 0,
    });
    await store.close();
  });
});
