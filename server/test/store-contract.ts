import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, it } from 'node:test';

import type {
  BusMessage,
  ChannelState,
  FullChannelState,
  PresenceUser,
} from '../src/core/types.js';
import { firstMessageIdBase } from '../src/core/bus-messages.js';
import type { PresenceStore, PublishRules } from '../src/core/store.js';
import { messageIds } from './support/message-ids.js';
import { eventContract } from './store-contract-events.js';
import { shownContract } from './store-contract-shown.js';

/**
 * The behaviour every `PresenceStore` must show (docs/protocol.md §5, issue 3/4). Each implementation's test file
 * calls {@link runStoreContract} with a factory; every test gets a fresh, isolated store.
 *
 * @example
 * runStoreContract('MemoryStore', async () => {
 *   let store = new MemoryStore();
 *   const reset = async () => { await store.close(); return (store = new MemoryStore()); };
 *   return { store, reset, cleanup: () => store.close() };
 * });
 */
export interface StoreFixture {
  store: PresenceStore;
  /**
   * Another store instance on the same backend through its own connection, as another server process
   * would have. Used for concurrency and fan-out tests. Defaults to `store` itself (MemoryStore: one
   * process). Stores returned here are closed by `cleanup`.
   */
  connect?(): Promise<PresenceStore>;
  /**
   * Loses everything the backend stored, as a restart on an empty backend does (RedisStore: the fixture's
   * keys are deleted, as by a Redis restarted empty or flushed; MemoryStore: the server process restarted,
   * so a new store), and returns the store to go on with. `cleanup` still cleans up after it.
   */
  reset(): Promise<PresenceStore>;
  /** Closes everything the fixture created and removes its data. */
  cleanup(): Promise<void>;
}

/** Per-test store options a factory must honour. */
export interface StoreFixtureOptions {
  backlogSize?: number;
}

export type StoreFactory = (
  options?: StoreFixtureOptions,
) => Promise<StoreFixture>;

const T = 1_764_000_000_000;
/** The ids of a backlog created at T, as nearly every backlog here is; see {@link messageIds}. */
const msgId = messageIds(T);
const CHANNEL = '/site/online';
const BUS = '/presence/site/online';
const PUBLIC: PublishRules = { countOnly: false, audience: {} };
const COUNT_ONLY: PublishRules = { countOnly: true, audience: {} };
const NOBODY: PublishRules = { countOnly: false, audience: null };
/** Bounded wait for pub/sub deliveries: generous for CI, never reached when things work. */
const DELIVERY_TIMEOUT_MS = 5000;

export function user(id: number): PresenceUser {
  return {
    id,
    username: `user${id}`,
    name: `User ${id}`,
    avatar_template: `/avatars/${id}/{size}.png`,
  };
}

/** Collects what a store delivers to a `subscribe` listener. */
export class Recorder {
  readonly messages: BusMessage[] = [];
  #waiters: { count: number; resolve: () => void }[] = [];
  #unsubscribe: (() => Promise<void>) | undefined;

  static async start(
    store: PresenceStore,
    channels: readonly string[],
  ): Promise<Recorder> {
    const recorder = new Recorder();
    recorder.#unsubscribe = await store.subscribe(channels, (message) =>
      recorder.#receive(message),
    );
    return recorder;
  }

  /** Resolves once `count` messages arrived; rejects after a bounded wait naming what is missing. */
  async waitFor(count: number): Promise<void> {
    if (this.messages.length >= count) return;
    let timer: ReturnType<typeof setTimeout> | undefined;
    try {
      await Promise.race([
        new Promise<void>((resolve) => this.#waiters.push({ count, resolve })),
        new Promise<never>((_, reject) => {
          timer = setTimeout(
            () =>
              reject(
                new Error(
                  `expected ${count} messages, received ${this.messages.length}`,
                ),
              ),
            DELIVERY_TIMEOUT_MS,
          );
        }),
      ]);
    } finally {
      clearTimeout(timer);
    }
  }

  async stop(): Promise<void> {
    await this.#unsubscribe?.();
  }

  #receive(message: BusMessage): void {
    this.messages.push(message);
    this.#waiters = this.#waiters.filter((waiter) => {
      if (this.messages.length < waiter.count) return true;
      waiter.resolve();
      return false;
    });
  }
}

/**
 * Applies change messages to a snapshot, the way the client does (docs/protocol.md §5): entering users
 * are added, leaving ids removed, and the count moves by `count_delta` when the message has one, else by
 * the change of the list. `base` is the id before the channel's first message: where a snapshot taken
 * before any message (`last_message_id: null`) stands.
 */
export function replay(
  snapshot: ChannelState,
  messages: readonly BusMessage[],
  base: number,
): ChannelState {
  const users = new Map(
    ('users' in snapshot ? snapshot.users : []).map((u) => [u.id, u]),
  );
  let count = snapshot.count;
  let last = snapshot.last_message_id;
  for (const message of messages) {
    assert.equal(
      message.message_id,
      (last ?? base) + 1,
      'replayed messages must be consecutive',
    );
    last = message.message_id;
    const data = message.data as Record<string, unknown>;
    const known = ['entering_users', 'leaving_user_ids', 'count_delta'];
    if (
      Object.keys(data).length === 0 ||
      Object.keys(data).some((key) => !known.includes(key))
    )
      assert.fail(`unexpected change message ${JSON.stringify(data)}`);
    if (!('users' in snapshot) && Object.keys(data).join() !== 'count_delta')
      assert.fail(
        `users change on a count-only channel ${JSON.stringify(data)}`,
      );
    const before = users.size;
    for (const entering of (data['entering_users'] ?? []) as PresenceUser[])
      users.set(entering.id, entering);
    for (const id of (data['leaving_user_ids'] ?? []) as number[])
      users.delete(id);
    count +=
      typeof data['count_delta'] === 'number'
        ? data['count_delta']
        : users.size - before;
  }
  if (!('users' in snapshot)) return { count, last_message_id: last };
  const list = [...users.values()].sort((a, b) => a.id - b.id);
  return { users: list, count, last_message_id: last };
}

function sortedUsers(state: ChannelState): FullChannelState {
  assert.ok('users' in state, 'a normal channel state has users');
  return { ...state, users: [...state.users].sort((a, b) => a.id - b.id) };
}

/**
 * Registers the shared contract suite for one store implementation under `describe(name)`.
 */
export function runStoreContract(name: string, makeStore: StoreFactory): void {
  describe(name, () => {
    let fixture: StoreFixture;
    let store: PresenceStore;
    const connect = async (): Promise<PresenceStore> =>
      fixture.connect ? fixture.connect() : store;
    /** The store and three more connections, as four server processes would have. */
    const fourPeers = async (): Promise<PresenceStore[]> => [
      store,
      await connect(),
      await connect(),
      await connect(),
    ];

    beforeEach(async () => {
      fixture = await makeStore();
      store = fixture.store;
    });
    afterEach(async () => {
      await fixture.cleanup();
    });

    eventContract(() => store, connect);
    shownContract(() => store, connect);

    describe('present and leave', () => {
      it("applies one caller's calls for a client in call order, awaited or not", async () => {
        const calls = [
          store.present(CHANNEL, user(1), 'tab', 60_000, PUBLIC, T),
          store.leave(CHANNEL, 1, 'tab', PUBLIC, T + 1),
          store.present(CHANNEL, user(1), 'tab', 60_000, PUBLIC, T + 2),
          store.present(CHANNEL, user(1), 'tab', 60_000, PUBLIC, T + 3),
          store.leave(CHANNEL, 1, 'tab', PUBLIC, T + 4),
        ];
        const results = await Promise.all(calls);
        assert.deepEqual(
          results.map((r) => r.changed),
          [true, true, true, false, true],
        );
        assert.equal((await store.state(CHANNEL, false, T + 5)).count, 0);
        assert.deepEqual(
          (await store.backlog(BUS, 0)).map((m) =>
            Object.keys(m.data as object),
          ),
          [
            ['entering_users'],
            ['leaving_user_ids'],
            ['entering_users'],
            ['leaving_user_ids'],
          ],
        );
      });

      it('announces a user once for their first client and once when their last client leaves', async () => {
        const recorder = await Recorder.start(store, [BUS]);
        const first = await store.present(
          CHANNEL,
          user(1),
          'tab-a',
          60_000,
          PUBLIC,
          T,
        );
        assert.equal(first.changed, true);
        assert.deepEqual(first.message?.data, { entering_users: [user(1)] });
        assert.equal(first.message?.message_id, msgId(1));
        assert.equal(first.message?.channel, BUS);

        const second = await store.present(
          CHANNEL,
          user(1),
          'tab-b',
          60_000,
          PUBLIC,
          T + 1,
        );
        assert.deepEqual(second, { changed: false, message: null });
        assert.deepEqual(
          await store.leave(CHANNEL, 1, 'tab-a', PUBLIC, T + 2),
          { changed: false, message: null },
        );

        const last = await store.leave(CHANNEL, 1, 'tab-b', PUBLIC, T + 3);
        assert.equal(last.changed, true);
        assert.deepEqual(last.message?.data, { leaving_user_ids: [1] });
        assert.equal(last.message?.message_id, msgId(2));

        assert.deepEqual(await store.state(CHANNEL, false, T + 4), {
          users: [],
          count: 0,
          last_message_id: msgId(2),
        });
        await recorder.waitFor(2);
        assert.deepEqual(recorder.messages, [first.message, last.message]);
        await recorder.stop();
      });

      it('a heartbeat extends the expiry and publishes nothing', async () => {
        await store.present(CHANNEL, user(1), 'tab-a', 1000, PUBLIC, T);
        const beat = await store.present(
          CHANNEL,
          user(1),
          'tab-a',
          1000,
          PUBLIC,
          T + 900,
        );
        assert.deepEqual(beat, { changed: false, message: null });
        assert.deepEqual(await store.lastIds([BUS]), { [BUS]: msgId(1) });

        assert.deepEqual(await store.sweep(T + 1000), {
          expiredClients: 0,
          messages: [],
          lagMs: 0,
        });
        assert.equal((await store.state(CHANNEL, false, T + 1000)).count, 1);
        const swept = await store.sweep(T + 1900);
        assert.equal(swept.expiredClients, 1);
        assert.deepEqual(
          swept.messages.map((m) => m.data),
          [{ leaving_user_ids: [1] }],
        );
      });

      it('leaving an unknown client, or leaving twice, is a silent no-op', async () => {
        const none = { changed: false, message: null };
        assert.deepEqual(
          await store.leave('/site/never-used', 1, 'tab-a', PUBLIC, T),
          none,
        );
        assert.deepEqual(
          await store.leave('/site/never-used', 1, 'tab-a', null, T),
          none,
        );
        await store.present(CHANNEL, user(1), 'tab-a', 60_000, PUBLIC, T);
        assert.deepEqual(
          await store.leave(CHANNEL, 1, 'tab-unknown', PUBLIC, T + 1),
          none,
        );
        assert.deepEqual(
          await store.leave(CHANNEL, 2, 'tab-a', PUBLIC, T + 1),
          none,
          'another user with that client id',
        );
        assert.equal(
          (await store.leave(CHANNEL, 1, 'tab-a', PUBLIC, T + 2)).changed,
          true,
        );
        assert.deepEqual(
          await store.leave(CHANNEL, 1, 'tab-a', PUBLIC, T + 3),
          none,
        );
        assert.deepEqual(await store.lastIds([BUS]), { [BUS]: msgId(2) });
      });

      it('keeps exactly id, username, name and avatar_template of a user', async () => {
        const extra = {
          ...user(1),
          email: 'secret@example.com',
          groupIds: [3],
        } as PresenceUser;
        const result = await store.present(
          CHANNEL,
          extra,
          'tab-a',
          60_000,
          PUBLIC,
          T,
        );
        assert.deepEqual(result.message?.data, { entering_users: [user(1)] });
        assert.deepEqual(await store.state(CHANNEL, false, T), {
          users: [user(1)],
          count: 1,
          last_message_id: msgId(1),
        });
        const nameless = { ...user(2), name: null };
        await store.present(CHANNEL, nameless, 'tab-b', 60_000, PUBLIC, T);
        assert.deepEqual(await store.state(CHANNEL, false, T), {
          users: [user(1), nameless],
          count: 2,
          last_message_id: msgId(2),
        });
      });

      it('counts a user once however many tabs they have open, and lists users by id', async () => {
        await store.present(CHANNEL, user(3), 'tab-1', 60_000, PUBLIC, T);
        await store.present(CHANNEL, user(1), 'tab-2', 60_000, PUBLIC, T);
        await store.present(CHANNEL, user(3), 'tab-3', 60_000, PUBLIC, T);
        await store.present(CHANNEL, user(3), 'tab-4', 60_000, PUBLIC, T);
        assert.deepEqual(await store.state(CHANNEL, false, T), {
          users: [user(1), user(3)],
          count: 2,
          last_message_id: msgId(2),
        });
        assert.deepEqual(await store.state(CHANNEL, true, T), {
          count: 2,
          last_message_id: msgId(2),
        });
      });

      it('keeps channels apart, even ones whose names look alike', async () => {
        const names = ['/a/b', '/a/b}', '/a/{b}', '/a/b:', '/a/b%7D', '/a/b%'];
        for (const [i, channel] of names.entries()) {
          await store.present(channel, user(i + 1), 'tab', 60_000, PUBLIC, T);
        }
        for (const [i, channel] of names.entries()) {
          assert.deepEqual(await store.state(channel, false, T), {
            users: [user(i + 1)],
            count: 1,
            last_message_id: msgId(1),
          });
        }
      });
    });

    describe('sweep', () => {
      it('removes expired clients and publishes one message per channel listing every user who left', async () => {
        const other = '/site/other';
        const recorder = await Recorder.start(store, [
          BUS,
          `/presence${other}`,
        ]);
        for (const id of [1, 2, 3])
          await store.present(CHANNEL, user(id), `tab-${id}`, 1000, PUBLIC, T);
        await store.present(CHANNEL, user(3), 'tab-3', 1000, PUBLIC, T + 500);
        await store.present(other, user(4), 'tab-4', 1000, PUBLIC, T);

        const swept = await store.sweep(T + 1000);
        assert.equal(swept.expiredClients, 3);
        const byChannel = new Map(swept.messages.map((m) => [m.channel, m]));
        assert.equal(swept.messages.length, 2);
        const leaving = (
          byChannel.get(BUS)?.data as { leaving_user_ids: number[] }
        ).leaving_user_ids;
        assert.deepEqual([...leaving].sort(), [1, 2]);
        assert.equal(byChannel.get(BUS)?.message_id, msgId(4));
        assert.deepEqual(byChannel.get(`/presence${other}`)?.data, {
          leaving_user_ids: [4],
        });
        assert.deepEqual(await store.state(CHANNEL, false, T + 1000), {
          users: [user(3)],
          count: 1,
          last_message_id: msgId(4),
        });

        await recorder.waitFor(6);
        assert.deepEqual(
          recorder.messages.filter(
            (m) =>
              (m.data as object) && 'leaving_user_ids' in (m.data as object),
          ).length,
          2,
        );
        await recorder.stop();
      });

      it('a sweep with nothing due removes and publishes nothing', async () => {
        await store.present(CHANNEL, user(1), 'tab-a', 1000, PUBLIC, T);
        assert.deepEqual(await store.sweep(T + 999), {
          expiredClients: 0,
          messages: [],
          lagMs: 0,
        });
        assert.deepEqual(await store.sweep(T - 5000), {
          expiredClients: 0,
          messages: [],
          lagMs: 0,
        });
        assert.equal((await store.state(CHANNEL, false, T + 999)).count, 1);
      });

      it('does not announce a user whose other client is still present', async () => {
        await store.present(CHANNEL, user(1), 'short', 1000, PUBLIC, T);
        await store.present(CHANNEL, user(1), 'long', 60_000, PUBLIC, T);
        assert.deepEqual(await store.sweep(T + 1000), {
          expiredClients: 1,
          messages: [],
          lagMs: 0,
        });
        assert.equal((await store.state(CHANNEL, false, T + 1000)).count, 1);
        assert.deepEqual(await store.lastIds([BUS]), { [BUS]: msgId(1) });
        assert.deepEqual(
          await store.leave(CHANNEL, 1, 'short', PUBLIC, T + 1001),
          { changed: false, message: null },
        );
      });

      it('sweeps a client that entered with an earlier expiry than the ones already present', async () => {
        await store.present(CHANNEL, user(1), 'tab-1', 60_000, PUBLIC, T);
        await store.present(CHANNEL, user(2), 'tab-2', 1000, PUBLIC, T + 10);
        const swept = await store.sweep(T + 1010);
        assert.deepEqual(
          swept.messages.map((m) => m.data),
          [{ leaving_user_ids: [2] }],
        );
        const later = await store.sweep(T + 60_000);
        assert.deepEqual(
          later.messages.map((m) => m.data),
          [{ leaving_user_ids: [1] }],
        );
      });

      it('keeps sweeping a channel whose clients heartbeat, at their new expiry', async () => {
        await store.present(CHANNEL, user(1), 'tab-a', 1000, PUBLIC, T);
        for (let beat = 1; beat <= 3; beat++) {
          await store.present(
            CHANNEL,
            user(1),
            'tab-a',
            1000,
            PUBLIC,
            T + beat * 800,
          );
          assert.equal(
            (await store.sweep(T + beat * 800 + 100)).expiredClients,
            0,
          );
        }
        assert.equal((await store.sweep(T + 3400)).expiredClients, 1);
      });

      it('sweeps a channel that was emptied by leave and entered again', async () => {
        await store.present(CHANNEL, user(1), 'tab-a', 1000, PUBLIC, T);
        await store.leave(CHANNEL, 1, 'tab-a', PUBLIC, T + 10);
        assert.equal((await store.sweep(T + 1000)).expiredClients, 0);
        await store.present(CHANNEL, user(1), 'tab-a', 1000, PUBLIC, T + 2000);
        const swept = await store.sweep(T + 3000);
        assert.equal(swept.expiredClients, 1);
        assert.equal(swept.messages[0]?.message_id, msgId(4));
      });

      it('two sweepers running at once announce each expiry exactly once', async () => {
        const channels = Array.from(
          { length: 20 },
          (_, i) => `/site/room-${i}`,
        );
        await Promise.all(
          channels.map(async (channel, c) => {
            for (let u = 1; u <= 3; u++)
              await store.present(
                channel,
                user(c * 10 + u),
                `tab-${u}`,
                1000,
                PUBLIC,
                T,
              );
          }),
        );
        const peer = await connect();
        const results = await Promise.all([
          store.sweep(T + 1000),
          peer.sweep(T + 1000),
          store.sweep(T + 1001),
        ]);
        assert.equal(
          results.reduce((sum, r) => sum + r.expiredClients, 0),
          60,
        );
        const messages = results.flatMap((r) => r.messages);
        assert.equal(messages.length, 20, 'one message per channel');
        const announced = messages.flatMap(
          (m) => (m.data as { leaving_user_ids: number[] }).leaving_user_ids,
        );
        assert.equal(announced.length, 60);
        assert.equal(new Set(announced).size, 60);
        const last = await store.lastIds(
          channels.map((channel) => `/presence${channel}`),
        );
        assert.ok(
          Object.values(last).every((id) => id === msgId(4)),
          JSON.stringify(last),
        );
      });
    });

    describe('count-only channels', () => {
      it('publishes count deltas, never identities', async () => {
        const r1 = await store.present(
          CHANNEL,
          user(1),
          'tab-a',
          1000,
          COUNT_ONLY,
          T,
        );
        assert.deepEqual(r1.message?.data, { count_delta: 1 });
        assert.equal(
          (await store.present(CHANNEL, user(1), 'tab-b', 1000, COUNT_ONLY, T))
            .message,
          null,
        );
        assert.deepEqual(
          (await store.present(CHANNEL, user(2), 'tab-c', 1000, COUNT_ONLY, T))
            .message?.data,
          { count_delta: 1 },
        );
        assert.deepEqual(
          (await store.leave(CHANNEL, 2, 'tab-c', COUNT_ONLY, T + 1)).message
            ?.data,
          { count_delta: -1 },
        );
        assert.deepEqual(await store.state(CHANNEL, true, T + 1), {
          count: 1,
          last_message_id: msgId(3),
        });
        const backlog = await store.backlog(BUS, 0);
        assert.ok(
          !JSON.stringify(backlog).includes('user1'),
          'no identity in any message',
        );
      });

      it('sums every user a sweep removes into one delta, and publishes no zero delta', async () => {
        for (const id of [1, 2, 3])
          await store.present(CHANNEL, user(id), 'tab', 1000, COUNT_ONLY, T);
        await store.present(
          CHANNEL,
          user(3),
          'extra',
          1000,
          COUNT_ONLY,
          T + 5000,
        );
        await store.present(CHANNEL, user(4), 'short', 1000, COUNT_ONLY, T);
        await store.present(CHANNEL, user(4), 'long', 60_000, COUNT_ONLY, T);
        const swept = await store.sweep(T + 1000);
        assert.equal(swept.expiredClients, 4);
        assert.deepEqual(
          swept.messages.map((m) => m.data),
          [{ count_delta: -2 }],
        );
        assert.deepEqual(await store.state(CHANNEL, true, T + 1000), {
          count: 2,
          last_message_id: msgId(5),
        });
        // Only an extra client expires now: the count does not change, so nothing is published.
        await store.present(
          CHANNEL,
          user(4),
          'short-2',
          1000,
          COUNT_ONLY,
          T + 2000,
        );
        assert.deepEqual(await store.sweep(T + 3000), {
          expiredClients: 1,
          messages: [],
          lagMs: 0,
        });
        assert.deepEqual(await store.state(CHANNEL, true, T + 3000), {
          count: 2,
          last_message_id: msgId(5),
        });
      });
    });

    describe('audience', () => {
      it('copies the audience restriction onto every change message', async () => {
        const rules: PublishRules = {
          countOnly: false,
          audience: { userIds: [1, 2], groupIds: [7] },
        };
        const entered = await store.present(
          CHANNEL,
          user(1),
          'tab-a',
          1000,
          rules,
          T,
        );
        assert.deepEqual(entered.message?.user_ids, [1, 2]);
        assert.deepEqual(entered.message?.group_ids, [7]);
        assert.equal(entered.message?.client_ids, undefined);
        const swept = await store.sweep(T + 1000);
        assert.deepEqual(swept.messages[0]?.user_ids, [1, 2]);
        assert.deepEqual(swept.messages[0]?.group_ids, [7]);
        assert.deepEqual(
          (await store.backlog(BUS, 0)).map((m) => [m.user_ids, m.group_ids]),
          [
            [[1, 2], [7]],
            [[1, 2], [7]],
          ],
        );
      });

      it('treats empty audience lists as absent', async () => {
        const rules: PublishRules = {
          countOnly: false,
          audience: { userIds: [], groupIds: [], clientIds: [] },
        };
        const { message } = await store.present(
          CHANNEL,
          user(1),
          'tab-a',
          1000,
          rules,
          T,
        );
        assert.ok(message);
        assert.deepEqual(Object.keys(message).sort(), [
          'channel',
          'data',
          'global_id',
          'message_id',
        ]);
      });

      it('a channel nobody may view changes state but publishes nothing and uses no message id', async () => {
        const recorder = await Recorder.start(store, [BUS]);
        assert.deepEqual(
          await store.present(CHANNEL, user(1), 'tab-a', 1000, NOBODY, T),
          { changed: true, message: null },
        );
        assert.deepEqual(
          await store.present(CHANNEL, user(2), 'tab-b', 1000, NOBODY, T),
          { changed: true, message: null },
        );
        assert.deepEqual(await store.state(CHANNEL, false, T), {
          users: [user(1), user(2)],
          count: 2,
          last_message_id: null,
        });
        assert.deepEqual(await store.leave(CHANNEL, 2, 'tab-b', null, T), {
          changed: true,
          message: null,
        });
        assert.deepEqual(await store.sweep(T + 1000), {
          expiredClients: 1,
          messages: [],
          lagMs: 0,
        });
        assert.deepEqual(await store.lastIds([BUS]), { [BUS]: 0 });
        assert.deepEqual(await store.backlog(BUS, 0), []);

        // The first message the channel ever publishes still gets the first id of a backlog created now
        // (no id was used before), and is the only one delivered.
        const published = await store.present(
          CHANNEL,
          user(3),
          'tab-c',
          1000,
          PUBLIC,
          T + 2000,
        );
        assert.equal(published.message?.message_id, messageIds(T + 2000)(1));
        await recorder.waitFor(1);
        assert.deepEqual(recorder.messages, [published.message]);
        await recorder.stop();
      });

      it('leave without rules and the sweep publish with the rules of the last present', async () => {
        const restricted: PublishRules = {
          countOnly: false,
          audience: { groupIds: [9] },
        };
        await store.present(CHANNEL, user(1), 'tab-a', 1000, PUBLIC, T);
        await store.present(CHANNEL, user(2), 'tab-b', 1000, restricted, T);
        const left = await store.leave(CHANNEL, 1, 'tab-a', null, T + 1);
        assert.deepEqual(left.message?.group_ids, [9]);
        const swept = await store.sweep(T + 1000);
        assert.deepEqual(swept.messages[0]?.group_ids, [9]);

        await store.present(
          CHANNEL,
          user(3),
          'tab-c',
          1000,
          COUNT_ONLY,
          T + 2000,
        );
        const countLeave = await store.leave(
          CHANNEL,
          3,
          'tab-c',
          null,
          T + 2001,
        );
        assert.deepEqual(countLeave.message?.data, { count_delta: -1 });
      });

      it('leave with explicit rules publishes with them', async () => {
        await store.present(CHANNEL, user(1), 'tab-a', 1000, PUBLIC, T);
        const left = await store.leave(
          CHANNEL,
          1,
          'tab-a',
          { countOnly: false, audience: { userIds: [4] } },
          T + 1,
        );
        assert.deepEqual(left.message?.user_ids, [4]);
        assert.deepEqual(
          (await store.leave(CHANNEL, 1, 'tab-a', NOBODY, T + 2)).message,
          null,
        );
      });
    });

    describe('maxUsers', () => {
      it('refuses a new user beyond maxUsers without changing anything; members, their tabs and heartbeats always pass', async () => {
        const enter = (id: number, tab: string, now: number) =>
          store.present(CHANNEL, user(id), tab, 60_000, PUBLIC, now, 2);
        assert.equal((await enter(1, 'tab-a', T)).changed, true);
        assert.equal((await enter(2, 'tab-a', T)).changed, true);

        const refused = await enter(3, 'tab-a', T + 1);
        assert.deepEqual(refused, {
          changed: false,
          message: null,
          full: true,
        });
        assert.deepEqual(await enter(1, 'tab-b', T + 1), {
          changed: false,
          message: null,
        });
        assert.deepEqual(await enter(2, 'tab-a', T + 2), {
          changed: false,
          message: null,
        });
        const state = await store.state(CHANNEL, false, T + 2);
        assert.deepEqual(
          'users' in state ? state.users.map((u) => u.id) : null,
          [1, 2],
        );
        assert.deepEqual(await store.lastIds([BUS]), { [BUS]: msgId(2) });

        await store.leave(CHANNEL, 2, 'tab-a', PUBLIC, T + 3);
        assert.equal((await enter(3, 'tab-a', T + 4)).changed, true);
        assert.equal((await enter(2, 'tab-a', T + 5)).full, true);
        // A limit does not apply to a present without one, nor to a member: a lower limit never bounces.
        assert.equal(
          (
            await store.present(
              CHANNEL,
              user(1),
              'tab-a',
              60_000,
              PUBLIC,
              T + 6,
              1,
            )
          ).full,
          undefined,
        );
        assert.equal(
          (
            await store.present(
              CHANNEL,
              user(4),
              'tab-a',
              60_000,
              PUBLIC,
              T + 6,
            )
          ).changed,
          true,
        );
      });

      it('frees the places of swept users', async () => {
        await store.present(CHANNEL, user(1), 'tab-a', 1000, PUBLIC, T, 1);
        assert.equal(
          (await store.present(CHANNEL, user(2), 'tab-a', 1000, PUBLIC, T, 1))
            .full,
          true,
        );
        await store.sweep(T + 1000);
        assert.equal(
          (
            await store.present(
              CHANNEL,
              user(2),
              'tab-a',
              1000,
              PUBLIC,
              T + 1001,
              1,
            )
          ).changed,
          true,
        );
      });

      it('never exceeds maxUsers when processes race', async () => {
        const peers = await fourPeers();
        const results = await Promise.all(
          Array.from({ length: 20 }, (_, i) =>
            peers[i % 4]!.present(
              CHANNEL,
              user(i + 1),
              `tab-${i + 1}`,
              60_000,
              PUBLIC,
              T,
              3,
            ),
          ),
        );
        assert.equal(results.filter((r) => r.changed).length, 3);
        assert.equal(results.filter((r) => r.full).length, 17);
        assert.equal((await store.state(CHANNEL, false, T + 1)).count, 3);
        assert.deepEqual(await store.lastIds([BUS]), { [BUS]: msgId(3) });
      });

      it('rejects a maxUsers that is not a positive integer', async () => {
        for (const bad of [0, -1, 1.5, Number.NaN, '2']) {
          const max = bad as number;
          await assert.rejects(
            store.present(CHANNEL, user(1), 'tab', 1000, PUBLIC, T, max),
            /maxUsers/,
          );
        }
      });
    });

    describe('ordering and atomicity', () => {
      it('50 concurrent enters and leaves from parallel connections give gapless ids and a state equal to their replay', async () => {
        const peers = await fourPeers();
        const recorder = await Recorder.start(store, [BUS]);
        for (let id = 1; id <= 25; id++)
          await store.present(
            CHANNEL,
            user(id),
            `tab-${id}`,
            60_000,
            PUBLIC,
            T,
          );

        const operations = Array.from({ length: 25 }, (_, i) => [
          () =>
            peers[i % 4]!.leave(CHANNEL, i + 1, `tab-${i + 1}`, PUBLIC, T + 1),
          () =>
            peers[(i + 1) % 4]!.present(
              CHANNEL,
              user(i + 26),
              `tab-${i + 26}`,
              60_000,
              PUBLIC,
              T + 1,
            ),
        ]).flat();
        const results = await Promise.all(
          operations.map((operation) => operation()),
        );
        assert.ok(results.every((r) => r.changed && r.message));

        const backlog = await store.backlog(BUS, 0);
        assert.deepEqual(
          backlog.map((m) => m.message_id),
          Array.from({ length: 75 }, (_, i) => msgId(i + 1)),
        );
        const empty: ChannelState = {
          users: [],
          count: 0,
          last_message_id: null,
        };
        const final = sortedUsers(await store.state(CHANNEL, false, T + 2));
        assert.deepEqual(replay(empty, backlog, msgId(0)), final);
        assert.deepEqual(
          final.users.map((u) => u.id),
          Array.from({ length: 25 }, (_, i) => i + 26),
        );

        await recorder.waitFor(75);
        assert.deepEqual(
          recorder.messages,
          backlog,
          'listeners receive every message once, in id order',
        );
        const globalIds = backlog.map((m) => m.global_id);
        assert.deepEqual(
          [...globalIds].sort((a, b) => a - b),
          globalIds,
          'global ids increase with message ids',
        );
        assert.equal(new Set(globalIds).size, globalIds.length);
        await recorder.stop();
      });

      it('every snapshot taken during concurrent changes replays to the final state', async () => {
        const peer = await connect();
        const snapshots: Promise<ChannelState>[] = [];
        const changes: Promise<unknown>[] = [];
        for (let id = 1; id <= 30; id++) {
          const target = id % 2 ? store : peer;
          changes.push(
            target.present(CHANNEL, user(id), 'tab', 60_000, PUBLIC, T),
          );
          if (id % 3 === 0)
            changes.push(target.leave(CHANNEL, id - 1, 'tab', PUBLIC, T));
          snapshots.push((id % 2 ? peer : store).state(CHANNEL, false, T));
        }
        await Promise.all(changes);
        const backlog = await store.backlog(BUS, 0);
        const final = await store.state(CHANNEL, false, T);
        for (const snapshot of await Promise.all(snapshots)) {
          const after = backlog.filter(
            (m) => m.message_id > (snapshot.last_message_id ?? 0),
          );
          assert.deepEqual(
            replay(sortedUsers(snapshot), after, msgId(0)),
            sortedUsers(final),
          );
        }
      });

      it('state has last_message_id null before the first message, then the newest id', async () => {
        assert.deepEqual(await store.state(CHANNEL, false, T), {
          users: [],
          count: 0,
          last_message_id: null,
        });
        assert.deepEqual(await store.state(CHANNEL, true, T), {
          count: 0,
          last_message_id: null,
        });
        await store.present(CHANNEL, user(1), 'tab-a', 1000, PUBLIC, T);
        await store.publish(BUS, { custom: true }, {}, T);
        const state = await store.state(CHANNEL, false, T);
        assert.equal(state.last_message_id, msgId(2));
        assert.deepEqual(await store.lastIds([BUS]), { [BUS]: msgId(2) });
      });
    });

    describe('state reads', () => {
      it('every change is seen by the next read of any process: enters, leaves, sweeps and edited profiles', async () => {
        const other = await connect();
        const read = async () =>
          sortedUsers(await store.state(CHANNEL, false, T + 500)).users;
        await store.present(CHANNEL, user(1), 'tab-a', 1000, PUBLIC, T);
        assert.deepEqual(await read(), [user(1)]);
        assert.deepEqual(await read(), [user(1)], 'an unchanged channel');

        // A heartbeat from another process with an edited profile (same id).
        const renamed = { ...user(1), name: 'Renamed', avatar_template: '/b' };
        await other.present(CHANNEL, renamed, 'tab-a', 1000, PUBLIC, T + 1);
        assert.deepEqual(await read(), [renamed]);
        // A second tab with the profile as it was before: the newest profile wins.
        await other.present(CHANNEL, user(1), 'tab-b', 1000, PUBLIC, T + 2);
        assert.deepEqual(await read(), [user(1)]);

        await other.present(CHANNEL, user(2), 'tab-c', 5000, PUBLIC, T + 3);
        assert.deepEqual(await read(), [user(1), user(2)]);
        await other.leave(CHANNEL, 2, 'tab-c', PUBLIC, T + 4);
        assert.deepEqual(await read(), [user(1)]);
        await other.present(CHANNEL, user(3), 'tab-d', 5000, NOBODY, T + 5);
        assert.deepEqual(
          await read(),
          [user(1), user(3)],
          'a change that publishes nothing is still seen',
        );
        await other.sweep(T + 1002);
        assert.deepEqual(await read(), [user(3)]);
      });

      it("a read's users array is the caller's own: changing it changes nothing stored", async () => {
        await store.present(CHANNEL, user(2), 'tab-a', 60_000, PUBLIC, T);
        await store.present(CHANNEL, user(1), 'tab-b', 60_000, PUBLIC, T);
        const first = await store.state(CHANNEL, false, T + 1);
        assert.ok('users' in first);
        first.users.reverse();
        first.users.push(user(9));
        assert.deepEqual(await store.state(CHANNEL, false, T + 2), {
          users: [user(1), user(2)],
          count: 2,
          last_message_id: msgId(2),
        });
      });
    });

    describe('backlog', () => {
      it('keeps the newest messages up to the cap and reads those after an id', async () => {
        const small = await makeStore({ backlogSize: 5 });
        try {
          const s = small.store;
          for (let i = 1; i <= 8; i++)
            await s.publish('/chat', { i }, {}, T + i);
          // The backlog was created by the first publish, at T + 1.
          const chatId = messageIds(T + 1);
          const ids = async (afterId: number): Promise<number[]> =>
            (await s.backlog('/chat', afterId)).map((m) => m.message_id);
          const kept = [4, 5, 6, 7, 8].map(chatId);
          assert.deepEqual(await ids(0), kept);
          assert.deepEqual(await ids(-1), kept);
          assert.deepEqual(await ids(chatId(2)), kept);
          assert.deepEqual(await ids(chatId(6)), [7, 8].map(chatId));
          assert.deepEqual(await ids(chatId(8)), []);
          assert.deepEqual(await ids(chatId(100)), []);
          assert.deepEqual(
            (await s.backlog('/chat', chatId(7))).map((m) => m.data),
            [{ i: 8 }],
          );
          assert.deepEqual(await s.backlog('/nothing', 0), []);
          assert.deepEqual(await s.lastIds(['/chat']), { '/chat': chatId(8) });
        } finally {
          await small.cleanup();
        }
      });

      it('keeps 1000 messages per channel by default', async () => {
        await Promise.all(
          Array.from({ length: 1001 }, (_, i) =>
            store.publish('/chat', i, {}, T),
          ),
        );
        const backlog = await store.backlog('/chat', 0);
        assert.equal(backlog.length, 1000);
        assert.equal(backlog[0]?.message_id, msgId(2));
        assert.equal(backlog.at(-1)?.message_id, msgId(1001));
      });

      it('lastIds reports the newest id of each channel, 0 when it has none', async () => {
        await store.publish('/a', 1, {}, T);
        await store.publish('/a', 2, {}, T);
        await store.publish('/b', 3, {}, T);
        assert.deepEqual(await store.lastIds(['/a', '/b', '/c']), {
          '/a': msgId(2),
          '/b': msgId(1),
          '/c': 0,
        });
        assert.deepEqual(await store.lastIds([]), {});
      });

      it('numbers a new backlog from firstMessageIdBase(now) + 1, and a backlog the backend lost from above every old id', async () => {
        const createdAt = T + 7;
        const lost: BusMessage[] = [];
        for (let i = 0; i < 3; i++)
          lost.push(await store.publish('/chat', i, {}, createdAt + i));
        // Consecutive from the base of the time the backlog was created; later messages do not move it.
        assert.deepEqual(
          lost.map((m) => m.message_id),
          [1, 2, 3].map((n) => firstMessageIdBase(createdAt) + n),
        );
        const entered = await store.present(
          CHANNEL,
          user(1),
          'tab',
          60_000,
          PUBLIC,
          createdAt + 5,
        );
        assert.equal(
          entered.message?.message_id,
          firstMessageIdBase(createdAt + 5) + 1,
          'presence change messages follow the same rule',
        );

        const recreatedAt = createdAt + 60_000;
        const restarted = await fixture.reset();
        assert.deepEqual(await restarted.lastIds(['/chat', BUS]), {
          '/chat': 0,
          [BUS]: 0,
        });
        const recreated = [
          await restarted.publish('/chat', 'again', {}, recreatedAt),
          await restarted.publish('/chat', 'next', {}, recreatedAt + 1),
        ];
        assert.deepEqual(
          recreated.map((m) => m.message_id),
          [1, 2].map((n) => firstMessageIdBase(recreatedAt) + n),
        );
        const oldIds = [
          ...lost.map((m) => m.message_id),
          entered.message?.message_id ?? 0,
        ];
        assert.ok(
          recreated[0]!.message_id > Math.max(...oldIds),
          `${recreated[0]!.message_id} is above every old id (${oldIds.join(', ')})`,
        );
        // A client still at the old last id is handed the new messages, whose first is not old + 1: a gap.
        assert.deepEqual(
          (await restarted.backlog('/chat', lost[2]!.message_id)).map(
            (m) => m.message_id,
          ),
          recreated.map((m) => m.message_id),
        );
        const reentered = await restarted.present(
          CHANNEL,
          user(1),
          'tab',
          60_000,
          PUBLIC,
          recreatedAt,
        );
        assert.equal(
          reentered.message?.message_id,
          firstMessageIdBase(recreatedAt) + 1,
        );
      });

      it('global ids increase within a channel and follow time across channels', async () => {
        const a1 = await store.publish('/a', 1, {}, T);
        const a2 = await store.publish('/a', 2, {}, T);
        const b1 = await store.publish('/b', 1, {}, T + 1);
        const a3 = await store.publish('/a', 3, {}, T + 2);
        assert.ok(a1.global_id < a2.global_id && a2.global_id < a3.global_id);
        assert.ok(a2.global_id < b1.global_id && b1.global_id < a3.global_id);
        assert.ok(Number.isSafeInteger(a3.global_id));
      });
    });

    describe('publish', () => {
      it('publishes a custom message with its audience to the backlog and to listeners of another process', async () => {
        const peer = await connect();
        const recorder = await Recorder.start(peer, ['/chat/1']);
        const message = await store.publish(
          '/chat/1',
          { text: 'hi', n: [1, { deep: null }] },
          { userIds: [1], groupIds: [2], clientIds: ['abc'] },
          T,
        );
        assert.deepEqual(message, {
          global_id: message.global_id,
          message_id: msgId(1),
          channel: '/chat/1',
          data: { text: 'hi', n: [1, { deep: null }] },
          user_ids: [1],
          group_ids: [2],
          client_ids: ['abc'],
        });
        assert.deepEqual(await peer.backlog('/chat/1', 0), [message]);
        await recorder.waitFor(1);
        assert.deepEqual(recorder.messages, [message]);
        await recorder.stop();
      });

      it('publishes strings, numbers, null and unicode unchanged', async () => {
        const values = [
          'plain',
          'quote " and \\ and \u2028 and 🎉',
          0,
          -1.5,
          null,
          true,
          [],
          {},
        ];
        for (const value of values) await store.publish('/chat', value, {}, T);
        assert.deepEqual(
          (await store.backlog('/chat', 0)).map((m) => m.data),
          values,
        );
      });

      it('rejects data that cannot be stored as JSON', async () => {
        await assert.rejects(
          store.publish('/chat', undefined, {}, T),
          TypeError,
        );
        await assert.rejects(store.publish('/chat', 10n, {}, T), /JSON/);
        assert.deepEqual(await store.lastIds(['/chat']), { '/chat': 0 });
      });
    });

    describe('subscribe', () => {
      it('delivers messages from another process until unsubscribed', async () => {
        const peer = await connect();
        const leaving = await Recorder.start(store, ['/chat']);
        const staying = await Recorder.start(store, ['/chat']);
        await peer.publish('/chat', 1, {}, T);
        await leaving.waitFor(1);
        await staying.waitFor(1);

        await leaving.stop();
        await leaving.stop(); // twice is harmless
        await peer.publish('/chat', 2, {}, T);
        await staying.waitFor(2);
        // Deliveries on one connection are ordered: had `leaving` still been subscribed, it would have it by now.
        assert.deepEqual(
          leaving.messages.map((m) => m.data),
          [1],
        );
        await staying.stop();

        const again = await Recorder.start(store, ['/chat']);
        await peer.publish('/chat', 3, {}, T);
        await again.waitFor(1);
        assert.deepEqual(
          again.messages.map((m) => m.data),
          [3],
        );
        assert.deepEqual(
          staying.messages.map((m) => m.data),
          [1, 2],
        );
        await again.stop();
      });

      it('delivers only the channels a listener subscribed to', async () => {
        const recorder = await Recorder.start(store, ['/a', '/b', '/a']);
        const other = await Recorder.start(store, ['/c']);
        await store.publish('/a', 'a', {}, T);
        await store.publish('/c', 'c', {}, T);
        await store.publish('/b', 'b', {}, T);
        await recorder.waitFor(2);
        await other.waitFor(1);
        assert.deepEqual(
          recorder.messages.map((m) => m.data),
          ['a', 'b'],
        );
        assert.deepEqual(
          other.messages.map((m) => m.data),
          ['c'],
        );
        await recorder.stop();
        await other.stop();
      });
    });

    describe('config cache', () => {
      const config = {
        public: true,
        allowedUserIds: [1],
        allowedGroupIds: null,
        countOnly: false,
        timeout: 60,
      };

      it('returns a cached config until its TTL passes', async () => {
        assert.equal(await store.getConfig(CHANNEL, T), undefined);
        await store.setConfig(CHANNEL, config, 120_000, T);
        assert.deepEqual(await store.getConfig(CHANNEL, T + 119_999), {
          config,
        });
        assert.equal(await store.getConfig(CHANNEL, T + 120_000), undefined);
      });

      it('caches "not found" as a null config', async () => {
        await store.setConfig('/site/missing', null, 120_000, T);
        assert.deepEqual(await store.getConfig('/site/missing', T + 1), {
          config: null,
        });
      });

      it('deleteConfig drops the entry for every process', async () => {
        const peer = await connect();
        await store.setConfig(CHANNEL, config, 120_000, T);
        assert.deepEqual(await peer.getConfig(CHANNEL, T), { config });
        await peer.deleteConfig(CHANNEL);
        assert.equal(await store.getConfig(CHANNEL, T), undefined);
        await store.deleteConfig('/site/never-cached');
      });

      it('a new setConfig replaces the entry and its TTL', async () => {
        await store.setConfig(CHANNEL, config, 1000, T);
        await store.setConfig(CHANNEL, null, 5000, T + 500);
        assert.deepEqual(await store.getConfig(CHANNEL, T + 4000), {
          config: null,
        });
      });
    });

    describe('per-user channel cap', () => {
      it('takes slots up to the cap, renews held ones, frees leaves first, and lapses them', async () => {
        const until = T + 120_000;
        assert.deepEqual(
          await store.claimChannels(1, ['/a/1', '/a/2'], [], 3, until, T),
          [],
        );
        assert.deepEqual(
          await store.claimChannels(
            1,
            ['/a/1', '/a/3', '/a/4'],
            [],
            3,
            until,
            T + 1,
          ),
          ['/a/4'],
          'a held slot is renewed; a new one only while fewer than the cap are held',
        );
        assert.deepEqual(
          await store.claimChannels(2, ['/a/4'], [], 3, until, T + 1),
          [],
          'per user',
        );
        assert.deepEqual(
          await store.claimChannels(1, ['/a/4'], ['/a/1'], 3, until, T + 2),
          [],
          'leaving one channel makes room for another in the same update',
        );
        assert.deepEqual(
          await store.claimChannels(1, ['/a/5'], [], 3, until, T + 3),
          ['/a/5'],
        );
        assert.deepEqual(
          await store.claimChannels(1, ['/a/5'], [], 3, until + 200_000, until),
          [],
          'slots lapse at their time unless renewed',
        );
      });
    });

    describe('rate limiter', () => {
      it('counts hits in a fixed window that opens at the first hit', async () => {
        assert.deepEqual(await store.hit('user:1', 10_000, T), {
          allowed: true,
          count: 1,
          resetMs: 10_000,
        });
        assert.deepEqual(await store.hit('user:1', 10_000, T + 4000), {
          allowed: true,
          count: 2,
          resetMs: 6000,
        });
        assert.deepEqual(await store.hit('user:2', 10_000, T + 4000), {
          allowed: true,
          count: 1,
          resetMs: 10_000,
        });
        assert.deepEqual(await store.hit('user:1', 10_000, T + 10_000), {
          allowed: true,
          count: 1,
          resetMs: 10_000,
        });
      });

      it('refuses hits over the limit until the window resets, counted across processes', async () => {
        const peer = await connect();
        assert.equal((await store.hit('k', 1000, T, 2)).allowed, true);
        assert.equal((await peer.hit('k', 1000, T + 1, 2)).allowed, true);
        assert.deepEqual(await store.hit('k', 1000, T + 2, 2), {
          allowed: false,
          count: 3,
          resetMs: 998,
        });
        assert.deepEqual(await peer.hit('k', 1000, T + 1000, 2), {
          allowed: true,
          count: 1,
          resetMs: 1000,
        });
      });

      it('counts concurrent hits exactly', async () => {
        const peer = await connect();
        const results = await Promise.all(
          Array.from({ length: 40 }, (_, i) =>
            (i % 2 ? store : peer).hit('burst', 10_000, T, 20),
          ),
        );
        assert.deepEqual(
          results.map((r) => r.count).sort((a, b) => a - b),
          Array.from({ length: 40 }, (_, i) => i + 1),
        );
        assert.equal(results.filter((r) => r.allowed).length, 20);
      });
    });

    describe('arguments and lifecycle', () => {
      it('rejects invalid arguments with a TypeError naming the argument', async () => {
        await assert.rejects(
          store.present(CHANNEL, user(1), 'tab', 0, PUBLIC, T),
          /timeoutMs/,
        );
        await assert.rejects(
          store.present(
            CHANNEL,
            { ...user(1), id: 1.5 },
            'tab',
            1000,
            PUBLIC,
            T,
          ),
          /user\.id/,
        );
        await assert.rejects(
          store.present(CHANNEL, user(1), '', 1000, PUBLIC, T),
          /clientId/,
        );
        await assert.rejects(
          store.present('', user(1), 'tab', 1000, PUBLIC, T),
          /channel/,
        );
        await assert.rejects(
          store.present(CHANNEL, user(1), 'tab', 1000, PUBLIC, Number.NaN),
          /now/,
        );
        await assert.rejects(
          store.present(
            CHANNEL,
            user(1),
            'tab',
            1000,
            {
              countOnly: false,
              audience: { userIds: ['1'] },
            } as unknown as PublishRules,
            T,
          ),
          /audience\.userIds/,
        );
        await assert.rejects(store.hit('k', -1, T), /windowMs/);
        await assert.rejects(store.setConfig(CHANNEL, null, 0, T), /ttlMs/);
        await assert.rejects(store.backlog('/chat', 0.5), /afterId/);
        assert.deepEqual(await store.state(CHANNEL, false, T), {
          users: [],
          count: 0,
          last_message_id: null,
        });
      });

      it('answers ping while open and rejects every call after close', async () => {
        await store.ping();
        const extra = await makeStore();
        await extra.store.close();
        await extra.store.close(); // twice is harmless
        await assert.rejects(extra.store.ping());
        await assert.rejects(extra.store.state(CHANNEL, false, T));
        await assert.rejects(extra.store.publish('/chat', 1, {}, T));
        // Rejected promises, not throws: callers chain them without a try.
        await assert.rejects(
          extra.store.present(CHANNEL, user(1), 'tab', 60_000, PUBLIC, T),
        );
        await assert.rejects(extra.store.leave(CHANNEL, 1, 'tab', PUBLIC, T));
        await extra.cleanup();
      });
    });
  });
}
